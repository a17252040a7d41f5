"""scikit-learn's callback API (``sklearn.callback``, scikit-learn 1.9+) for skbp's fits.

A fit (or ``partial_fit``) is the root task; each epoch of SGD or Adam, and
each L-BFGS iteration, is one subtask.  The end of a subtask hands the
callbacks, when they ask for it, a ``fitted_estimator``: a copy of the
estimator with the network as it stands at that moment, ready to predict
(so ``ScoringMonitor`` logs the real score after each epoch).  A callback
whose ``on_fit_task_end`` returns True stops the fit after that subtask.

Without callbacks nothing is created or called (no cost per epoch), and with
a scikit-learn older than 1.9 the estimators simply have no ``set_callbacks``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    import numpy as np
    import scipy.sparse as sp

    from ._base import BaseBP

    _F = TypeVar("_F", bound=Callable[..., Any])

try:  # scikit-learn >= 1.9
    from sklearn.callback import CallbackSupportMixin, with_callbacks
except ImportError:  # pragma: no cover - exercised with older scikit-learn only

    class CallbackSupportMixin:
        """Stand-in: this scikit-learn has no callback API."""

    def with_callbacks(method: _F) -> _F:
        return method


__all__ = ["CallbackSupportMixin", "FitTasks", "with_callbacks"]


def snapshot(est: BaseBP, w: np.ndarray | None = None) -> dict[str, Any]:
    """The fitted attributes of ``est`` as they stand now, as copies.

    ``w`` replaces the current flat parameter vector (L-BFGS hands its accepted
    point).  These attributes, set on a shallow copy of the estimator, give a
    model that predicts as ``est`` would now and that later training cannot
    change.
    """
    w = est._w.copy() if w is None else w.astype(est._w.dtype, copy=True)
    run = est._bn_run.copy()
    attrs = {"_w": w, "_bn_run": run, **est._views_of(w, run), "n_iter_": est.n_iter_}
    for name in ("loss_", "best_loss_"):
        if hasattr(est, name):
            attrs[name] = getattr(est, name)
    for name in ("loss_curve_", "validation_scores_", "validation_loss_curve_"):
        if getattr(est, name, None) is not None:
            attrs[name] = list(getattr(est, name))
    return attrs


class FitTasks:
    """The callback tasks of one fit: the root task and one subtask at a time.

    ``FitTasks(est, ...)`` does nothing at all when ``est`` has no callbacks.
    Otherwise it opens the root context (``_init_callback_context``) and calls
    the root's ``on_fit_task_begin``; :meth:`begin` and :meth:`end` bracket
    each epoch or iteration, and :meth:`close` ends the root task.
    """

    def __init__(
        self,
        est: BaseBP,
        X: np.ndarray | sp.spmatrix | sp.sparray,
        y: np.ndarray,
        sample_weight: np.ndarray | None,
        max_subtasks: int,
    ) -> None:
        self.est = est
        self.active = bool(getattr(est, "_skl_callbacks", None)) and hasattr(
            est, "_init_callback_context"
        )
        self.task = None
        if not self.active:
            return
        self.X, self.y = X, y
        self.metadata = None if sample_weight is None else {"sample_weight": sample_weight}
        self.root = est._init_callback_context(max_subtasks=max_subtasks)
        self.root.call_on_fit_task_begin(estimator=est, X=X, y=y, metadata=self.metadata)

    def _hooks(self, **attrs: Any) -> dict[str, Any]:
        return dict(estimator=self.est, X=self.X, y=self.y, metadata=self.metadata, **attrs)

    def begin(self, name: str) -> None:
        """Start the next subtask (an epoch or an L-BFGS iteration)."""
        if not self.active:
            return
        self.task = self.root.subcontext(task_name=name)
        self.task.call_on_fit_task_begin(
            **self._hooks(reconstruction_attributes=lambda: snapshot(self.est))
        )

    def end(self, w: np.ndarray | None = None) -> bool:
        """End the open subtask with the model as it stands; True: a callback asks to stop.

        ``w`` is the parameter vector the model has now, where it is not yet
        the estimator's own (L-BFGS's accepted point).
        """
        if self.task is None:
            return False
        task, self.task = self.task, None
        return bool(
            task.call_on_fit_task_end(
                **self._hooks(reconstruction_attributes=lambda: snapshot(self.est, w))
            )
        )

    def abandon(self) -> None:
        """End an open subtask that did not complete (no model is handed over)."""
        if self.task is not None:
            task, self.task = self.task, None
            task.call_on_fit_task_end(estimator=self.est)

    def close(self) -> None:
        """End the root task: the fitted estimator is the estimator itself."""
        if not self.active:
            return
        self.abandon()
        self.root.call_on_fit_task_end(**self._hooks(reconstruction_attributes={}))
