"""The shared estimator layer: parameters, data validation, fit/predict drivers.

Public methods validate, then hand clean arrays to the training loops in
``_training.py``, which call the compiled kernels.  Options are turned into
integer codes here, once per fit.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import numbers
import os
import reprlib
import threading
import warnings
from abc import ABCMeta, abstractmethod
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ._callbacks import CallbackSupportMixin, FitTasks, with_callbacks
from ._data import Problem, max_abs, readonly
from ._ensemble import (
    ENSEMBLE_STATE,
    ensemble_output,
    ensemble_state_problems,
    fit_members,
    is_ensemble,
    stacked_views,
)
from ._kernels import ACTIVATION_CODES, OUTPUT_CODES
from ._layout import Layout
from ._matmul import SMALL_WORK
from ._memory import check_fit_memory
from ._optim import SCHEDULE_CODES, OptimizerState
from ._predict import network_output, small_output
from ._runtime import effective_n_threads, thread_context
from ._training import LbfgsTrainer, StochasticTrainer, TrainConfig, ValidationSet
from .exceptions import PrecisionWarning

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    import scipy.sparse as sp
    from numpy.typing import ArrayLike, DTypeLike
    from sklearn.utils import Tags
    from typing_extensions import Self

_STOCHASTIC_SOLVERS = ("sgd", "adam")


def _per_hidden_layer(
    value: str | float | Iterable[Any], n_hidden: int, name: str, check: Callable[[Any], None]
) -> list[Any]:
    """One value per hidden layer from a scalar or a sequence, validated."""
    if isinstance(value, (str, numbers.Real)):
        values = [value] * n_hidden
    else:
        values = list(value)
        if len(values) != n_hidden:
            raise ValueError(
                f"{name} has {len(values)} entries but the network has {n_hidden} "
                f"hidden layer(s); give one value per hidden layer or a single value."
            )
    for v in values:
        check(v)
    return values


def _check_activation(v: object) -> None:
    if not isinstance(v, str) or v not in ACTIVATION_CODES:
        raise ValueError(
            f"activation entries must be one of {sorted(ACTIVATION_CODES)}; got {v!r}."
        )


def _check_dropout(v: object) -> None:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 <= v < 1:
        raise ValueError(f"dropout rates must be floats in [0, 1); got {v!r}.")


def check_hidden_layer_sizes(
    hidden_layer_sizes: int | Iterable[int] | str, n_features: int, n_outputs: int
) -> list[int]:
    """Return ``hidden_layer_sizes`` as a list of positive ints, or raise.

    ``"auto"`` is one hidden layer of ``max(1, round(1.5 * (n_features +
    n_outputs) / 2))`` units: 1.5 times the mean of the input and output widths.
    """
    if isinstance(hidden_layer_sizes, str) and hidden_layer_sizes == "auto":
        return [max(1, round(0.75 * (n_features + n_outputs)))]
    sizes = hidden_layer_sizes
    if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
        sizes = [sizes]
    try:
        sizes = list(sizes)
    except TypeError:
        raise TypeError(
            f"hidden_layer_sizes must be an int or a sequence of ints, got {hidden_layer_sizes!r}."
        ) from None
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral):
            raise TypeError(
                f"hidden_layer_sizes must contain integers, got {hidden_layer_sizes!r}."
            )
        if s <= 0:
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden_layer_sizes!r}.")
    return [int(s) for s in sizes]


def embedding_spec(est: BaseBP, n_features: int, sparse: bool) -> dict[str, Any] | None:
    """The periodic embedding ``est``'s parameters ask for on ``n_features`` columns.

    ``None`` without ``numeric_embedding`` (``embedding_features`` is then
    ignored); otherwise what :class:`skbp._layout.Layout` takes.  ``ValueError``
    for a selection that does not fit the data, or sparse data.
    """
    if est.numeric_embedding is None:
        return None
    selected = est.embedding_features
    if selected is None:
        columns = list(range(n_features))
    else:
        mask = np.asarray(selected)
        if mask.dtype == bool:
            if mask.shape != (n_features,):
                raise ValueError(
                    f"embedding_features is a boolean mask of shape {mask.shape}, but X has "
                    f"{n_features} columns; give one entry per column of X, or column indices."
                )
            columns = np.flatnonzero(mask).tolist()
        elif mask.ndim == 1 and (mask.size == 0 or mask.dtype.kind in "iu"):
            columns = sorted({int(v) for v in mask})
            if len(columns) != mask.size or (
                columns and not 0 <= columns[0] <= columns[-1] < n_features
            ):
                raise ValueError(
                    f"embedding_features={_brief(selected)} must be distinct column indices in "
                    f"[0, {n_features}) (X has {n_features} columns), or a boolean mask."
                )
        else:
            raise ValueError(
                f"embedding_features must be None, a boolean mask of the columns of X or "
                f"integer column indices; got {_brief(selected)}."
            )
    if not columns:
        raise ValueError(
            "embedding_features selects no column of X; select at least one, or set "
            "numeric_embedding=None."
        )
    if sparse:
        raise ValueError(
            "numeric_embedding='periodic' needs dense X, not a sparse matrix: it embeds each "
            "column's value, zeros included. Convert X with X.toarray(), or set "
            "numeric_embedding=None."
        )
    return {
        "n_inputs": int(n_features),
        "columns": columns,
        "n_frequencies": int(est.n_frequencies),
        "embedding_dim": int(est.embedding_dim),
    }


def embedded_width(embedding: dict[str, Any] | None, n_features: int) -> int:
    """The first hidden layer's input width: the embedded columns' outputs and the others."""
    if embedding is None:
        return n_features
    n_e = len(embedding["columns"])
    return n_e * embedding["embedding_dim"] + n_features - n_e


def _embedding_words(embedding: dict[str, Any] | None) -> str:
    if embedding is None:
        return "none"
    return (
        f"periodic on columns {_brief(embedding['columns'])} with n_frequencies="
        f"{embedding['n_frequencies']} and embedding_dim={embedding['embedding_dim']}"
    )


# One fit of an estimator object at a time.  A fit replaces the network's arrays
# and updates them in place, and the kernels index them by the layout's offsets
# without bounds checks: a second fit of the same object at the same moment,
# or a prediction from another thread while it runs, could pair one network's
# offsets with another's arrays and crash the process.  Objects are tracked by
# ``id()`` here, not by an attribute of theirs, so that nothing of it is
# pickled, copied, cloned or seen by scikit-learn's checks.
_lock = threading.Lock()
#: a fit waiting for running predictions to finish waits on this (``with _lock``
#: is the same lock, and cheaper than ``with _busy`` at every prediction)
_busy = threading.Condition(_lock)
#: ``id`` of each estimator being fitted -> the thread fitting it
_fitting: dict[int, int] = {}
#: ``id`` of each estimator with predictions running -> how many
_predicting: dict[int, int] = {}


def _busy_message(est: BaseBP, owner: int, predicting: bool = False) -> str:
    name = type(est).__name__
    if owner == threading.get_ident():
        return (
            f"fit or partial_fit was called on this {name} from inside its own fit (by a "
            "callback?), which owns the network until it returns. Fit a clone "
            "(sklearn.base.clone) there instead, or fit again after the fit has returned."
        )
    if predicting:
        return (
            f"This {name} is being fitted in another thread, so it cannot predict until that "
            "fit returns: its network is being replaced and updated. Predict with a copy made "
            "before the fit (copy.deepcopy), or fit a clone (sklearn.base.clone) in the other "
            "thread and keep this one for predictions."
        )
    return (
        f"This {name} is already being fitted in another thread; two fits of one estimator "
        "object at once would corrupt it. Fit a clone (sklearn.base.clone) per thread, or "
        "wait for the other fit to return."
    )


def fits_alone(method: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate ``fit`` and ``partial_fit``: one fit of an estimator object at a time.

    A fit of an object that is being fitted -- in another thread, or from a
    callback of its own fit -- raises ``RuntimeError`` at once (it never
    waits: that would deadlock the callback).  A fit waits for the predictions
    already running on the object to finish, and while it runs, predictions
    from other threads raise (:func:`_start_prediction`).  Released however
    the fit ends, ``KeyboardInterrupt`` included.
    """

    @functools.wraps(method)
    def fit_alone(self: BaseBP, *args: Any, **kwargs: Any) -> Any:
        key = id(self)
        with _busy:
            owner = _fitting.get(key)
            if owner is not None:
                raise RuntimeError(_busy_message(self, owner))
            _fitting[key] = threading.get_ident()
            try:
                _busy.wait_for(lambda: key not in _predicting)
            except BaseException:
                del _fitting[key]
                raise
        try:
            return method(self, *args, **kwargs)
        finally:
            with _busy:
                del _fitting[key]

    return fit_alone


def _start_prediction(est: BaseBP) -> int:
    """Count a prediction of ``est`` as running (``RuntimeError`` if another thread fits it).

    Returns the key :func:`_end_prediction` takes.  The thread fitting ``est``
    may predict with it (a callback, between epochs).
    """
    key = id(est)
    with _lock:
        owner = _fitting.get(key)
        if owner is not None and owner != threading.get_ident():
            raise RuntimeError(_busy_message(est, owner, predicting=True))
        _predicting[key] = _predicting.get(key, 0) + 1
    return key


def _end_prediction(key: int) -> None:
    with _lock:
        n = _predicting.pop(key) - 1
        if n:
            _predicting[key] = n
        else:  # a fit may be waiting for the last prediction
            _busy.notify_all()


def _reset_after_fork() -> None:
    # a forked child has only the thread that forked: the other threads' fits and
    # predictions do not run there (their objects must not stay busy for ever),
    # and a lock one of them held would stay held
    global _lock, _busy
    _lock = threading.Lock()
    _busy = threading.Condition(_lock)
    me = threading.get_ident()
    for key in [k for k, owner in _fitting.items() if owner != me]:
        del _fitting[key]
    _predicting.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


class BaseBP(CallbackSupportMixin, BaseEstimator, metaclass=ABCMeta):
    """Base class of BPClassifier and BPRegressor.

    Warning: this class should not be used directly; use the derived classes.
    """

    # No ``_doc_link_module``/``_doc_link_template``: the documentation is not hosted
    # anywhere, so the HTML representation (Jupyter) has no "?" link.  scikit-learn's
    # default module (``sklearn``) gives no link to an estimator of another package.

    _parameter_constraints: dict = {
        "hidden_layer_sizes": [
            "array-like",
            Interval(numbers.Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "activation": [StrOptions(set(ACTIVATION_CODES)), list, tuple],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [
            StrOptions({"auto", "full"}),
            Interval(numbers.Integral, 1, None, closed="left"),
        ],
        "learning_rate": [
            StrOptions({"constant", "invscaling", "adaptive", "exponential", *SCHEDULE_CODES})
        ],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "power_t": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(numbers.Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "scoring": [str, callable, None],
        "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_iter_no_change": [
            Interval(numbers.Integral, 1, None, closed="left"),
            Options(numbers.Real, {np.inf}),
        ],
        "max_fun": [Interval(numbers.Integral, 1, None, closed="left")],
        "decay_rate": [Interval(numbers.Real, 0, 1, closed="right")],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left"), list, tuple, np.ndarray],
        "batch_norm": ["boolean"],
        "residual": ["boolean"],
        "l1_ratio": [Interval(numbers.Real, 0, 1, closed="both")],
        "max_grad_norm": [None, Interval(numbers.Real, 0, None, closed="neither")],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "decay_biases": ["boolean"],
        "min_learning_rate": [Interval(numbers.Real, 0, None, closed="left")],
        "warmup_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
        "n_cycles": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_jobs": [None, numbers.Integral],
        "n_ensemble": [Interval(numbers.Integral, 1, None, closed="left")],
        "numeric_embedding": [None, StrOptions({"periodic"})],
        "embedding_features": [None, "array-like"],
        "n_frequencies": [Interval(numbers.Integral, 1, None, closed="left")],
        "embedding_dim": [Interval(numbers.Integral, 1, None, closed="left")],
        "frequency_scale": [Interval(numbers.Real, 0, None, closed="neither")],
    }

    @abstractmethod
    def __init__(
        self, hidden_layer_sizes: int | Iterable[int] | str, activation: str | Sequence[str],
        solver: str, alpha: float, batch_size: int | str, learning_rate: str,
        learning_rate_init: float, power_t: float, max_iter: int, loss: str, shuffle: bool,
        random_state: int | np.random.RandomState | None, tol: float, verbose: bool,
        warm_start: bool, momentum: float, nesterovs_momentum: bool, early_stopping: bool,
        validation_fraction: float, scoring: str | Callable[..., float] | None,
        beta_1: float, beta_2: float, epsilon: float,
        n_iter_no_change: float, max_fun: int, decay_rate: float,
        dropout: float | Iterable[float], batch_norm: bool, residual: bool, l1_ratio: float,
        max_grad_norm: float | None, n_jobs: int | None, weight_decay: float,
        decay_biases: bool, min_learning_rate: float, warmup_fraction: float, n_cycles: int,
        n_ensemble: int, numeric_embedding: str | None, embedding_features: ArrayLike | None,
        n_frequencies: int, embedding_dim: int, frequency_scale: float,
    ) -> None:  # fmt: skip
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.scoring = scoring
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.decay_rate = decay_rate
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.residual = residual
        self.l1_ratio = l1_ratio
        self.max_grad_norm = max_grad_norm
        self.n_jobs = n_jobs
        self.weight_decay = weight_decay
        self.decay_biases = decay_biases
        self.min_learning_rate = min_learning_rate
        self.warmup_fraction = warmup_fraction
        self.n_cycles = n_cycles
        self.n_ensemble = n_ensemble
        self.numeric_embedding = numeric_embedding
        self.embedding_features = embedding_features
        self.n_frequencies = n_frequencies
        self.embedding_dim = embedding_dim
        self.frequency_scale = frequency_scale

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _validate_input(
        self, X: ArrayLike | sp.spmatrix | sp.sparray, y: ArrayLike, incremental: bool, reset: bool
    ) -> tuple[np.ndarray | sp.spmatrix | sp.sparray, np.ndarray]:
        """Validate X and y; (re)define the target encoding on a first fit."""

    @abstractmethod
    def _validate_val_targets(self, y_val: ArrayLike) -> np.ndarray:
        """Validate ``y_val`` against the fitted targets (classes, outputs); ``ValueError``."""

    @abstractmethod
    def _encode_targets(self, y: np.ndarray, dtype: DTypeLike) -> np.ndarray:
        """2-D float targets the network is trained on."""

    @abstractmethod
    def _decode_targets(self, Y: np.ndarray) -> np.ndarray:
        """Inverse of ``_encode_targets`` (used for validation scores)."""

    @abstractmethod
    def _output_activation(self) -> str:
        """Name of the output activation for the fitted targets."""

    @abstractmethod
    def _outputs_to_predictions(self, P: np.ndarray) -> np.ndarray:
        """What ``predict`` returns for the network outputs ``P``."""

    def _score_output(
        self, P: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None
    ) -> float:
        """Score of network outputs ``P`` against ``y`` (early stopping's validation).

        ``_score_metric`` is accuracy for the classifier and R² for the regressor,
        as ``score``; non-finite outputs score NaN, as in scikit-learn.
        """
        if not np.isfinite(P).all():
            return np.nan
        return self._score_metric(y, self._outputs_to_predictions(P), sample_weight=sample_weight)

    # ------------------------------------------------------------ parameters
    def _packed_params(self) -> np.ndarray:
        """The flat parameter vector, repacked if ``coefs_``/``intercepts_`` were replaced."""
        w = self._w
        views = self.coefs_ + self.intercepts_
        if (
            not w.flags.writeable  # e.g. loaded from a read-only memmap
            or not self._bn_run.flags.writeable
            or len(views) != 2 * (self.n_layers_ - 1)
            or any(v.base is not w for v in views)
        ):
            rest = w[self._layout.n_base :]  # batch norm's parameters, kept as they are
            self._w = self._layout.pack(self.coefs_, self.intercepts_, w.dtype, rest)
            self._bn_run = self._bn_run.copy()
            self._set_views()
        return self._w

    _VIEWS = (
        "coefs_",
        "intercepts_",
        "bn_scales_",
        "bn_shifts_",
        "bn_running_means_",
        "bn_running_vars_",
    )

    def _views_of(self, w: np.ndarray, run: np.ndarray) -> dict[str, list[np.ndarray]]:
        """The public parameter attributes (:data:`_VIEWS`) as views of ``w`` and ``run``."""
        layout = self._layout
        values = (*layout.unpack(w), *layout.unpack_bn(w), *layout.unpack_running(run))
        return dict(zip(self._VIEWS, values, strict=True))

    def _embedding_part(self, i: int, name: str) -> np.ndarray:
        """Part ``i`` of the fitted embedding's parameters (views; an ensemble's stacked)."""
        if is_ensemble(self):
            a = np.stack([m._embedding_part(i, name) for m in self.estimators_])
            a.flags.writeable = False
            return a
        layout = self.__dict__.get("_layout")
        if layout is None or layout.embedding is None:
            raise AttributeError(
                f"{type(self).__name__} has no {name}: "
                + ("it is not fitted" if layout is None else "it has no numeric embedding")
            )
        return layout.unpack_embedding(self._w)[i]

    @property
    def embedding_frequencies_(self) -> np.ndarray:
        """The periodic embedding's frequencies, ``(n_embedded, n_frequencies)``."""
        return self._embedding_part(0, "embedding_frequencies_")

    @property
    def embedding_coefs_(self) -> np.ndarray:
        """The embedding's weights, ``(n_embedded, 2 * n_frequencies, embedding_dim)``."""
        return self._embedding_part(1, "embedding_coefs_")

    @property
    def embedding_intercepts_(self) -> np.ndarray:
        """The embedding's biases, ``(n_embedded, embedding_dim)``."""
        return self._embedding_part(2, "embedding_intercepts_")

    def _set_views(self) -> None:
        if is_ensemble(self):
            self.__dict__.update(stacked_views(self))
        else:
            self.__dict__.update(self._views_of(self._w, self._bn_run))

    def __getstate__(self) -> dict[str, Any]:
        # BaseEstimator may return the instance __dict__ itself: never mutate it.
        state = dict(super().__getstate__())
        if "_w" in state:
            state["_w"] = self._packed_params()
            # coefs_/intercepts_ are views of _w: pickle the vector once and
            # rebuild the views on load.
            for name in self._VIEWS:
                state.pop(name, None)
        if "estimators_" in state:  # an ensemble's views are stacked copies of its members'
            for name in self._VIEWS:
                state.pop(name, None)
        # skbp's own objects as builtins and arrays, so that skops.io can load a
        # model without trusting more than the estimator's class
        if isinstance(state.get("_layout"), Layout):
            state["_layout"] = state["_layout"].to_state()
        if isinstance(state.get("_optimizer"), OptimizerState):
            state["_optimizer"] = state["_optimizer"].to_state()
        if not _NETWORK_STATE.isdisjoint(state):
            # what loading would refuse is refused now, when it can still be refit,
            # not in a file that no longer loads
            self._check_state(dict(state), saving=True)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # pickle, joblib, copy and skops.io (which builds the attributes, then
        # calls this) all load an estimator through here: a fitted state is
        # checked whole before any of it is set
        if not isinstance(state, dict):
            raise ValueError(
                f"A {type(self).__name__} loads from a dict of its attributes, not from "
                f"{type(state).__name__}: the file is damaged or does not hold a skbp model."
            )
        state = dict(state)
        fitted = not _NETWORK_STATE.isdisjoint(state)
        if fitted:
            self._check_state(state)
        super().__setstate__(state)
        if fitted:
            self._set_views()

    def _check_state(self, state: dict[str, Any], saving: bool = False) -> None:
        """``ValueError`` unless a loaded fitted ``state`` is whole and describes one network.

        The kernels index the flat vectors by the layout's offsets without bounds
        checks, and a value that disagrees with the rest would be predicted or
        trained with silently, so a damaged or hand-edited file is refused here,
        at load, naming the field: every array against the layout and the
        weights' dtype (the weights, batch norm's running statistics, the
        optimizer's state, the early-stopping copies), the counts, codes and
        books; the parameters, valid and those the network was fitted with; the
        output activation against the targets (:meth:`_target_state_problems`).
        Turns ``state``'s layout and optimizer state into skbp's objects.
        ``saving``: the state is being saved (``__getstate__``), so that a model
        edited after fitting is refused before it is written, not when loaded.
        """
        cls = type(self)
        if not saving:
            # a model saved before a parameter existed: its default, which keeps
            # the behaviour the model was fitted with (a new option's default
            # always does); one that shapes the network is still checked below
            defaults = inspect.signature(cls.__init__).parameters
            for name in cls._get_param_names():
                if name not in state:
                    state[name] = defaults[name].default
        try:
            if "estimators_" in state:
                problems = _ensemble_problems(cls, state)
            else:
                problems = _state_problems(state, cls._get_param_names())
            if not problems:
                problems = _parameter_problems(cls, state)
            if not problems:
                problems = self._target_state_problems(state)
        except Exception as exc:  # a value too damaged to inspect is refused too
            problems = [_clip(f"a field could not be read ({type(exc).__name__}: {exc})")]
        if problems and saving:
            raise ValueError(
                f"This {cls.__name__} cannot be saved or copied, it is inconsistent: "
                + "; ".join(problems)
                + ". It was edited after fitting (set_params too); refit it first, or "
                "save or copy it before changing what shapes its network."
            )
        if problems:
            raise ValueError(
                f"This loaded {cls.__name__} is inconsistent: "
                + "; ".join(problems)
                + ". The file was damaged, or the model edited after fitting (set_params "
                "too); refit it or load an intact copy."
            )

    def _target_state_problems(self, state: dict[str, Any]) -> list[str]:
        """What in a loaded ``state`` disagrees with the targets it was fitted on (hook).

        Called by :meth:`_check_state` once the network's own fields are sound;
        each problem names its field.
        """
        return []

    # -------------------------------------------------------------------- fit
    def _initialize(
        self, layer_units: list[int], dtype: DTypeLike, embedding: dict[str, Any] | None
    ) -> None:
        self.n_iter_ = 0
        self.t_ = 0
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._output_activation()
        self._layout = Layout(layer_units, self.batch_norm, embedding)
        acts = [self.activation] if isinstance(self.activation, str) else list(self.activation)
        self._w = self._layout.init_params(
            self._random_state, acts, dtype, float(self.frequency_scale)
        )
        self._bn_run = self._layout.new_running_stats(dtype)
        self._set_views()
        self._best_w = self._w.copy()
        self._best_bn_run = self._bn_run.copy()
        self._loss_ref = None
        self._gradient_norms = []
        if hasattr(self, "_optimizer"):
            del self._optimizer
        if self.solver in _STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._reset_stopping_books()

    def _reset_stopping_books(self) -> None:
        """The attributes the stochastic solvers' stopping rule keeps, at their start."""
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
            self.validation_loss_curve_ = []
            self.best_loss_ = None
        else:
            self.validation_scores_, self.best_validation_score_ = None, None
            self.validation_loss_curve_ = None
            self.best_loss_ = np.inf

    def _fit(
        self,
        X: ArrayLike | sp.spmatrix | sp.sparray,
        y: ArrayLike,
        sample_weight: ArrayLike | None = None,
        incremental: bool = False,
        X_val: ArrayLike | sp.spmatrix | sp.sparray | None = None,
        y_val: ArrayLike | None = None,
        sample_weight_val: ArrayLike | None = None,
    ) -> Self:
        """Validate everything, set up the network, then hand it to a trainer."""
        self._check_fit_arguments(incremental, X_val, y_val, sample_weight_val)
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        if self.n_ensemble > 1 or (is_ensemble(self) and not first_pass):
            return self._fit_ensemble(
                X, y, sample_weight, incremental, first_pass,
                {"X_val": X_val, "y_val": y_val, "sample_weight_val": sample_weight_val},
            )  # fmt: skip
        self.__dict__.pop("estimators_", None)
        stochastic = self.solver in _STOCHASTIC_SOLVERS
        X_given = X
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        dtype = X.dtype if first_pass else self._w.dtype
        weighted = sample_weight is not None or getattr(self, "class_weight", None) is not None
        sample_weight = self._fit_sample_weight(X, y, sample_weight, dtype, incremental)
        Y = self._encode_targets(y, dtype)
        validation = None
        if X_val is not None:
            validation = self._validation_set(X_val, y_val, sample_weight_val, dtype, Y.shape[1])
        self.n_outputs_ = Y.shape[1]
        layer_units = self._prepare_network(X, dtype, first_pass, incremental)

        _warn_if_too_large_for(dtype, X, Y)
        problem = Problem(X, dtype, Y, sample_weight)
        # the callbacks' root task: one subtask per epoch or L-BFGS iteration
        n_tasks = (1 if incremental else self.max_iter) if stochastic else self.max_iter + 1
        tasks = FitTasks(self, X, y, sample_weight, max_subtasks=n_tasks)
        cfg = TrainConfig.from_estimator(self)
        with thread_context(self.n_jobs) as gov:
            if stochastic:
                StochasticTrainer(
                    self, cfg, problem, incremental, y, gov, tasks, validation, X_given, weighted
                ).run()
            else:
                LbfgsTrainer(self, cfg, problem, gov, tasks, validation).run()
        self.gradient_norms_ = np.array(self._gradient_norms).reshape(-1, len(layer_units) - 1)
        tasks.close()
        return self

    def _check_fit_arguments(
        self,
        incremental: bool,
        X_val: object,
        y_val: object,
        sample_weight_val: object,
    ) -> None:
        """The parameters and the validation arguments of a fit, checked before any data."""
        self._validate_params()
        if self.n_jobs == 0:
            raise ValueError("n_jobs == 0 has no meaning; use None, -1 or a positive number.")
        self._check_optimizer_options()
        if self.solver in _STOCHASTIC_SOLVERS and self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        _check_validation_arguments(self, X_val, y_val, sample_weight_val)
        _check_scoring_name(self.scoring)  # now, not after the first epoch

    def _fit_ensemble(
        self,
        X: ArrayLike | sp.spmatrix | sp.sparray,
        y: ArrayLike,
        sample_weight: ArrayLike | None,
        incremental: bool,
        first_pass: bool,
        validation: dict[str, Any],
    ) -> Self:
        """Fit ``n_ensemble`` networks (``skbp._ensemble``), or train the fitted ones on.

        The data are validated here, once, for the ensemble's own fitted
        fields (widths, column names, classes) and the memory check of all
        members; each member is handed the data as given.
        """
        k = self.n_ensemble
        fitted_k = len(self.estimators_) if is_ensemble(self) else 1
        if not first_pass and fitted_k != k:
            raise ValueError(
                f"warm_start and partial_fit continue the fitted model, an ensemble of "
                f"{fitted_k} network(s), but n_ensemble={k}. Set n_ensemble={fitted_k} to "
                "train it on, or fit from scratch with warm_start=False."
            )
        X_checked, y_checked = self._validate_input(X, y, incremental, reset=first_pass)
        dtype = X_checked.dtype if first_pass else self._weights_dtype()
        n_outputs = self._encode_targets(y_checked, dtype).shape[1]
        hidden = check_hidden_layer_sizes(
            self.hidden_layer_sizes, X_checked.shape[1], n_outputs
        )  # fmt: skip
        dropout = _per_hidden_layer(self.dropout, len(hidden), "dropout", _check_dropout)
        n_threads = min(k, effective_n_threads(self.n_jobs))
        embedding = embedding_spec(self, X_checked.shape[1], not isinstance(X_checked, np.ndarray))
        n_in = embedded_width(embedding, X_checked.shape[1])
        self._check_memory(
            X_checked, hidden, [n_in, *hidden, n_outputs], dtype,
            any(p > 0 for p in dropout), new_network=first_pass,
            new_optimizer=not (incremental and not first_pass), n_networks=(k, n_threads),
        )  # fmt: skip
        if first_pass:
            for name in _SINGLE_STATE:
                self.__dict__.pop(name, None)
        if incremental:
            fit_params = {"classes": self.classes_} if hasattr(self, "classes_") else {}
        else:
            fit_params = validation
        fit_members(self, X, y, sample_weight, incremental, not first_pass, fit_params)
        return self

    def _weights_dtype(self) -> np.dtype:
        """The dtype of the fitted network's weights (of its members' for an ensemble)."""
        if is_ensemble(self):
            return self.estimators_[0]._w.dtype
        return self._w.dtype

    def _validation_set(
        self,
        X_val: ArrayLike | sp.spmatrix | sp.sparray,
        y_val: ArrayLike,
        sample_weight_val: ArrayLike | None,
        dtype: DTypeLike,
        n_outputs: int,
    ) -> ValidationSet:
        """The given validation rows, validated as ``X`` and ``y`` are, in the model's dtype.

        ``X_val`` must have the fitted width and column names, ``y_val`` only
        classes (or outputs) the model is fitted on.  The class weights do not
        apply to them (as in ``HistGradientBoostingClassifier``): only
        ``sample_weight_val`` weighs the rows.
        """
        X_checked = validate_data(
            self, X_val, accept_sparse=["csr", "csc", "coo"], reset=False,
            dtype=(np.float64, np.float32), order="C",
        )  # fmt: skip
        y_checked = self._validate_val_targets(y_val)
        if X_checked.shape[0] != y_checked.shape[0]:
            raise ValueError(
                f"X_val has {X_checked.shape[0]} rows but y_val has {y_checked.shape[0]}; "
                "give one target per validation row."
            )
        _check_range(X_checked, dtype)
        Y_val = self._encode_targets(y_checked, dtype)
        if Y_val.shape[1] != n_outputs:
            raise ValueError(
                f"y_val has {Y_val.shape[1]} output(s) where y has {n_outputs}; give the "
                "validation targets in the form of y."
            )
        sw = None
        if sample_weight_val is not None:
            sw = _check_sample_weight(
                sample_weight_val, X_checked, dtype=dtype, ensure_non_negative=True,
                allow_all_zero_weights=True,
            )  # fmt: skip
            if not sw.sum() > 0:
                raise ValueError(
                    "sample_weight_val must have a positive sum; all weights are zero."
                )
        return ValidationSet(Problem(X_checked, dtype, Y_val, sw), X_val, y_checked, sw)

    def _check_optimizer_options(self) -> None:
        """``ValueError`` for optimizer options that contradict the solver."""
        if self.solver == "lbfgs" and self.weight_decay > 0:
            raise ValueError(
                f"weight_decay={self.weight_decay!r} needs a stochastic solver ('sgd' or "
                "'adam'): decoupled weight decay shrinks the weights in each optimizer "
                "step, and L-BFGS takes no such steps. Use alpha (an L2 penalty in the "
                "loss) with 'lbfgs', or set weight_decay=0."
            )
        if (
            self.learning_rate in SCHEDULE_CODES
            and self.min_learning_rate > self.learning_rate_init
        ):
            raise ValueError(
                f"min_learning_rate={self.min_learning_rate!r} is above learning_rate_init="
                f"{self.learning_rate_init!r}: learning_rate={self.learning_rate!r} anneals from "
                "learning_rate_init down to min_learning_rate. Set min_learning_rate at most "
                "learning_rate_init."
            )

    def _fit_sample_weight(
        self,
        X: np.ndarray | sp.spmatrix | sp.sparray,
        y: np.ndarray,
        sample_weight: ArrayLike | None,
        dtype: DTypeLike,
        incremental: bool,
    ) -> np.ndarray | None:
        """Validated sample weights times class weights (``None``: all ones)."""
        if sample_weight is not None:
            sample_weight = _check_sample_weight(
                sample_weight, X, dtype=dtype, ensure_non_negative=True
            )
        sample_weight = self._class_sample_weight(y, sample_weight, incremental)
        if sample_weight is not None and not sample_weight.sum() > 0:
            raise ValueError("sample_weight must have a positive sum; all weights are zero.")
        return sample_weight

    def _prepare_network(
        self,
        X: np.ndarray | sp.spmatrix | sp.sparray,
        dtype: DTypeLike,
        first_pass: bool,
        incremental: bool,
    ) -> list[int]:
        """A new network, or the fitted one checked for continuing; per-layer options set.

        Returns the layer widths (input and output included).  ``MemoryError``
        before anything is allocated when the fit cannot fit in memory.
        """
        n_features = X.shape[1]
        hidden = check_hidden_layer_sizes(self.hidden_layer_sizes, n_features, self.n_outputs_)
        embedding = embedding_spec(self, n_features, not isinstance(X, np.ndarray))
        layer_units = [embedded_width(embedding, n_features)] + hidden + [self.n_outputs_]
        activations = _per_hidden_layer(
            self.activation, len(hidden), "activation", _check_activation
        )
        dropout = _per_hidden_layer(self.dropout, len(hidden), "dropout", _check_dropout)
        if self.solver == "lbfgs" and any(p > 0 for p in dropout):
            raise ValueError(
                "dropout needs a stochastic solver ('sgd' or 'adam'): L-BFGS's line "
                "search needs a deterministic loss. Set dropout=0 or change solver."
            )
        self._random_state = check_random_state(self.random_state)
        memory = {
            "X": X, "hidden": hidden, "layer_units": layer_units, "dtype": dtype,
            "dropout": any(p > 0 for p in dropout), "new_network": first_pass,
            "new_optimizer": not (incremental and hasattr(self, "_optimizer")),
        }  # fmt: skip
        if first_pass:
            self._check_memory(**memory)
            self._initialize(layer_units, dtype, embedding)
        else:
            self._continue(layer_units, embedding)  # (its errors first: the sizes may be wrong)
            self._check_memory(**memory)
        layout = self._layout
        layout.codes[: len(hidden)] = [ACTIVATION_CODES[a] for a in activations]
        drop_p = np.zeros(len(layer_units) - 1)
        drop_p[: len(hidden)] = dropout
        self._drop_p = readonly(drop_p)
        if layout.set_residual(self.residual) == 0 and self.residual:
            warnings.warn(
                f"residual=True has no effect: no two consecutive hidden layers of "
                f"hidden_layer_sizes={hidden} have the same width.",
                UserWarning,
            )
        self._out_code = OUTPUT_CODES[self.out_activation_]
        return layer_units

    def _check_memory(
        self, X: np.ndarray | sp.spmatrix | sp.sparray, hidden: list[int],
        layer_units: list[int], dtype: DTypeLike, dropout: bool, new_network: bool,
        new_optimizer: bool, n_networks: tuple[int, int] = (1, 1),
    ) -> None:  # fmt: skip
        """``MemoryError`` when this fit's arrays exceed the available memory (``skbp._memory``).

        ``n_networks``: the networks the fit keeps, and those it trains at once.
        """
        stochastic = self.solver in _STOCHASTIC_SOLVERS
        spec = embedding_spec(self, X.shape[1], not isinstance(X, np.ndarray))
        embedding = (0, 0, 0) if spec is None else (
            len(spec["columns"]), spec["n_frequencies"], spec["embedding_dim"]
        )  # fmt: skip
        check_fit_memory(
            type(self).__name__, hidden, layer_units, dtype, X.shape[0], solver=self.solver,
            batch_size=self.batch_size, batch_norm=bool(self.batch_norm), dropout=dropout,
            residual=bool(self.residual), early_stopping=stochastic and bool(self.early_stopping),
            validation_fraction=self.validation_fraction, sparse=not isinstance(X, np.ndarray),
            new_network=new_network, new_optimizer=stochastic and new_optimizer,
            n_networks=n_networks, embedding=embedding,
        )  # fmt: skip

    def _continue(self, layer_units: list[int], embedding: dict[str, Any] | None) -> None:
        """Check that warm_start/partial_fit can continue the fitted network."""
        self._packed_params()
        if self._layout.embedding != embedding:
            raise ValueError(
                "warm_start and partial_fit continue the fitted network, whose numeric "
                f"embedding is {_embedding_words(self._layout.embedding)}; the parameters "
                f"now ask for {_embedding_words(embedding)}. Set numeric_embedding, "
                "embedding_features, n_frequencies and embedding_dim back, or fit from "
                "scratch with warm_start=False."
            )
        if list(self._layout.sizes) != layer_units or (
            self._layout.batch_norm != bool(self.batch_norm)
        ):
            raise ValueError(
                "warm_start and partial_fit continue the fitted network, whose "
                f"layer sizes are {list(self._layout.sizes)} (batch_norm="
                f"{self._layout.batch_norm}); the parameters and data now ask for "
                f"{layer_units} (batch_norm={bool(self.batch_norm)}). Change "
                "hidden_layer_sizes or batch_norm back, or fit from scratch with "
                "warm_start=False."
            )
        if self.solver in _STOCHASTIC_SOLVERS and not hasattr(self, "_no_improvement_count"):
            # continuing an L-BFGS model with a stochastic solver
            self.loss_curve_ = list(getattr(self, "loss_curve_", []))
            self._reset_stopping_books()

    def _class_sample_weight(
        self, y: np.ndarray, sample_weight: np.ndarray | None, incremental: bool
    ) -> np.ndarray | None:
        """Sample weights combined with class weights (classifier hook)."""
        return sample_weight

    @fits_alone
    @with_callbacks
    def fit(
        self,
        X: ArrayLike | sp.spmatrix | sp.sparray,
        y: ArrayLike,
        sample_weight: ArrayLike | None = None,
        *,
        X_val: ArrayLike | sp.spmatrix | sp.sparray | None = None,
        y_val: ArrayLike | None = None,
        sample_weight_val: ArrayLike | None = None,
    ) -> Self:
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.  float32 input trains in float32, anything else in
            float64.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The target values (class labels in classification, real numbers in
            regression).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        X_val : {array-like, sparse matrix} of shape (n_val, n_features), default=None
            Validation rows, scored after every epoch instead of holding out
            ``validation_fraction`` of ``X``, with the names of
            :meth:`sklearn.ensemble.HistGradientBoostingClassifier.fit`.
            ``early_stopping=True`` is required with 'sgd' and 'adam' (as
            HistGradientBoosting requires early stopping): training stops when
            ``scoring`` on them has not improved by ``tol`` for
            ``n_iter_no_change`` epochs (``n_iter_no_change=np.inf`` trains
            every epoch), and the weights of the best epoch are kept.  With
            'lbfgs' (which never stops early) their loss after every iteration
            is recorded in ``validation_loss_curve_``.  Validated as ``X`` is
            (width, column names; converted to the model's dtype; sparse
            accepted).  In a :class:`~sklearn.pipeline.Pipeline`,
            ``transform_input=["X_val"]`` transforms them as ``X``; with
            metadata routing request them with
            ``set_fit_request(X_val=True, y_val=True)``.
        y_val : array-like of shape (n_val,) or (n_val, n_outputs), default=None
            Targets of ``X_val``, in the form of ``y``; a classifier's must be
            among the classes of ``y``.  Required with ``X_val``.
        sample_weight_val : array-like of shape (n_val,), default=None
            Weights of the validation rows (the validation loss is their
            weighted mean; a scorer gets them as ``sample_weight``).  Class
            weights do not apply to them.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._fit(
            X, y, sample_weight=sample_weight, incremental=False,
            X_val=X_val, y_val=y_val, sample_weight_val=sample_weight_val,
        )  # fmt: skip

    def _check_solver(self) -> bool:
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError(
                "partial_fit is only available for stochastic optimizers. "
                f"{self.solver} is not stochastic."
            )
        return True

    # ---------------------------------------------------------------- predict
    def _network_output(self, X: np.ndarray | sp.spmatrix | sp.sparray) -> np.ndarray:
        """Output-layer activations for validated ``X`` (an ensemble's: their mean)."""
        if is_ensemble(self):
            return ensemble_output(self, X)
        if X.shape[0] * self._layout.max_coef <= SMALL_WORK:
            # every product runs in skbp's own loops, on this thread: no BLAS or
            # Numba threads to set up (a single-row prediction)
            if isinstance(X, np.ndarray):
                return small_output(self, X)
            return network_output(self, Problem(X, self._w.dtype))
        with thread_context(getattr(self, "n_jobs", None)) as gov:
            return network_output(self, Problem(X, self._w.dtype), gov)

    def _forward_pass_fast(
        self, X: ArrayLike | sp.spmatrix | sp.sparray, check_input: bool = True
    ) -> np.ndarray:
        """Output-layer activations for X (validated unless ``check_input=False``).

        Rows beyond the range of the model's dtype (float64 rows for a float32
        model) raise ``ValueError``; non-finite outputs warn.
        """
        key = _start_prediction(self)
        try:
            if check_input and not self._plain_input(X):
                # a plain finite float ndarray of the fitted width is accepted as it
                # is, which skips validate_data's checks (most of a one-row predict)
                X = validate_data(
                    self, X, accept_sparse=["csr", "csc", "coo"], reset=False,
                    dtype=(np.float64, np.float32), order="C",
                )  # fmt: skip
            _check_range(X, self._weights_dtype())
            out = self._network_output(X)
        finally:
            _end_prediction(key)
        _warn_if_nonfinite(out)
        return out

    def _plain_input(self, X: object) -> bool:
        """Whether ``X`` is a finite float ndarray of the fitted width (the fast path).

        Anything else (lists, DataFrames, sparse, other dtypes, wrong width,
        NaN/inf) goes through ``validate_data`` and its errors and warnings.
        """
        return (
            type(X) is np.ndarray
            and X.ndim == 2
            and X.dtype.char in "fd"
            and X.shape[0] > 0
            and X.shape[1] == self.n_features_in_
            and not hasattr(self, "feature_names_in_")
            and bool(np.isfinite(X).all())
        )

    def _check_fitted(self) -> None:
        d = self.__dict__
        if "_w" not in d and "estimators_" not in d:  # check_is_fitted's, without its overhead
            check_is_fitted(self, "_w")

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _scoring_problem(scoring: object) -> str | None:
    """Why ``scoring`` (valid by its constraints) names no scorer, or ``None``."""
    if not isinstance(scoring, str) or scoring == "loss":
        return None
    from sklearn.metrics import get_scorer_names

    if scoring in get_scorer_names():
        return None
    return f"scoring={_brief(scoring)} is not a scorer name"


def _check_scoring_name(scoring: object) -> None:
    """``ValueError`` when ``scoring`` is a string that names no scorer."""
    problem = _scoring_problem(scoring)
    if problem:
        raise ValueError(
            f"{problem}. Use None (the estimator's score), 'loss' (the validation loss), a "
            "name from sklearn.metrics.get_scorer_names() (e.g. 'roc_auc', 'neg_log_loss') or "
            "a callable scorer(estimator, X, y)."
        )


def _check_validation_arguments(
    est: BaseBP,
    X_val: object,
    y_val: object,
    sample_weight_val: object,
) -> None:
    """``ValueError`` for validation data given by halves, or where nothing would score them.

    The messages of ``HistGradientBoostingClassifier.fit``, with what to do.
    """
    if X_val is None and y_val is None:
        if sample_weight_val is not None:
            raise ValueError(
                "sample_weight_val is provided, but X_val and y_val were not provided; "
                "give the validation rows they weigh, or leave sample_weight_val out."
            )
        return
    if y_val is None:
        raise ValueError("X_val is provided, but y_val was not provided.")
    if X_val is None:
        raise ValueError("y_val is provided, but X_val was not provided.")
    if est.solver in _STOCHASTIC_SOLVERS and not est.early_stopping:
        raise ValueError(
            "X_val and y_val are passed to fit while at the same time early_stopping is "
            f"False. With solver={est.solver!r} the validation data are scored for early "
            "stopping: set early_stopping=True (with n_iter_no_change=np.inf every epoch "
            "is trained and the best one kept), or do not pass X_val and y_val."
        )


def _warn_if_too_large_for(
    dtype: DTypeLike, X: np.ndarray | sp.spmatrix | sp.sparray, Y: np.ndarray
) -> None:
    """:class:`~skbp.exceptions.PrecisionWarning` when float32 training would overflow."""
    if np.dtype(dtype) != np.float32:
        return
    limit = float(np.sqrt(np.finfo(np.float32).max))
    for what, A in (("X has", X), ("the targets have", Y)):
        big = max_abs(A)
        if big > limit:
            warnings.warn(
                f"{what} values up to {big:.3g}, and this fit runs in float32, "
                f"whose squares overflow above {limit:.3g}: gradients, the loss or "
                "Adam's second moment will become infinite and training will stall. "
                "Scale the data (e.g. StandardScaler, TransformedTargetRegressor) or "
                "fit on float64 data.",
                PrecisionWarning,
            )


def _check_range(X: np.ndarray | sp.spmatrix | sp.sparray, dtype: np.dtype) -> None:
    """``ValueError`` when float64 ``X`` holds values a ``dtype`` (float32) model can't."""
    if X.dtype == dtype or np.dtype(dtype) != np.float32:
        return
    big = max_abs(X)
    limit = float(np.finfo(np.float32).max)
    if big > limit:
        raise ValueError(
            f"X has values up to {big:.3g}, beyond the range of float32 (+-{limit:.3g}), "
            "and this model was fitted in float32, so they would become infinite. Scale "
            "the inputs as in training, or fit the model on float64 data."
        )


def _warn_if_nonfinite(y_pred: np.ndarray) -> None:
    """Warn when some outputs are NaN or infinite (they would be predicted silently).

    Training keeps the parameters finite, but an input far outside the training
    range can still overflow (an ``exp`` output, a huge activation).
    """
    finite = np.isfinite(y_pred)
    if not finite.all():
        bad = int(np.count_nonzero(~finite.all(axis=1)))
        warnings.warn(
            f"The network output is not finite (NaN or inf) for {bad} of "
            f"{y_pred.shape[0]} rows: their inputs are far outside the range seen in "
            "training. The predictions for those rows are meaningless; scale the inputs "
            "as in training.",
            RuntimeWarning,
        )


# ------------------------------------------------------------ loaded state
#: what a fit sets up with the network (``_initialize``, ``_prepare_network``):
#: a loaded state with any of these is a fitted one, and must have them all
_NETWORK_STATE = frozenset(
    ("_w", "_bn_run", "_best_w", "_best_bn_run", "_layout", "_drop_p", "_out_code",
     "out_activation_", "n_layers_", "n_iter_", "t_", "_gradient_norms", "_optimizer")
)  # fmt: skip
#: what a fitted state has besides (the data's widths), ``_optimizer`` aside
_FITTED_STATE = (*sorted(_NETWORK_STATE - {"_optimizer"}), "n_features_in_", "n_outputs_")
#: what a single network's fits set besides, all gone when an ensemble is fitted in its place
_SINGLE_STATE = (
    *_NETWORK_STATE, *BaseBP._VIEWS, "_loss_ref", "_no_improvement_count",
    "validation_scores_", "best_validation_score_", "validation_loss_curve_", "best_loss_",
    "gradient_norms_", "_random_state", "_gradient_warned", "loss_", "loss_curve_",
)  # fmt: skip

_REPR = reprlib.Repr()
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = 8
_REPR.maxstring, _REPR.maxother = 60, 80


def _brief(v: object) -> str:
    """``repr(v)``, shortened: a damaged value can be huge."""
    return _REPR.repr(v)


def _clip(text: str, size: int = 300) -> str:
    """``text`` cut to ``size`` characters (a message that quotes a damaged value)."""
    return text if len(text) <= size else text[: size - 3] + "..."


def _plain_array(a: object, ndim: int = 1) -> bool:
    """Whether ``a`` is a C-contiguous ndarray (or a joblib memmap) of ``ndim`` dimensions."""
    return (
        type(a) in (np.ndarray, np.memmap)
        and a.ndim == ndim
        and a.flags.c_contiguous
        and a.dtype.isnative
    )


def _count(v: object) -> bool:
    """Whether ``v`` is a non-negative integer (not a bool)."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0


def _number(v: object) -> bool:
    """Whether ``v`` is a real number that is not NaN (infinities are)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and v == v


def _numbers(v: object) -> bool:
    """Whether ``v`` is a list of real numbers (NaN allowed: a score can be)."""
    return isinstance(v, list) and all(
        isinstance(x, numbers.Real) and not isinstance(x, bool) for x in v
    )


def _vector_problem(what: str, a: object, dtype: np.dtype, n: int) -> str | None:
    """Why ``a`` is not ``n`` ``dtype`` values in a 1-D array, or ``None``."""
    if not _plain_array(a):
        return f"{what} is not a 1-D NumPy array ({type(a).__name__})"
    if a.dtype != dtype:
        return f"{what} is {a.dtype} where the weights are {dtype}"
    if a.shape[0] != n:
        return f"{what} has {a.shape[0]} entries where the network needs {n}"
    return None


def _loaded_layout(value: object) -> Layout:
    if isinstance(value, dict):
        return Layout.from_state(value)
    if isinstance(value, Layout):  # an old pickle's: checked by Layout.__setstate__
        return value
    raise ValueError(f"not a skbp network layout: a {type(value).__name__}")


def _loaded_optimizer(value: object) -> OptimizerState:
    if isinstance(value, OptimizerState):  # an old pickle's, restored unchecked
        value = dict(vars(value))
    if not isinstance(value, dict):
        raise ValueError(f"not a skbp optimizer state: a {type(value).__name__}")
    return OptimizerState.from_state(value)


def _state_problems(state: dict[str, Any], param_names: Iterable[str]) -> list[str]:
    """What is wrong with the network's own fields of a loaded fitted ``state``.

    See ``BaseBP._check_state``.  Turns the layout and the optimizer state into
    skbp's objects, in ``state``.
    """
    problems = _loaded_fields(state, (*param_names, *_FITTED_STATE))
    if problems:
        return problems
    layout = state["_layout"]
    sizes = [int(v) for v in layout.sizes]
    n_trans, n = len(sizes) - 1, layout.n_params
    # the size in Python's integers: widths whose products overflow int64
    # would give the layout offsets that wrap around
    exact = sum(a * b + b for a, b in itertools.pairwise(sizes))
    exact += 2 * sum(sizes[1:-1]) if layout.batch_norm else 0
    if layout.embedding is not None:
        n_e, k, d = len(layout.emb_cols), layout.emb_k, layout.emb_d
        exact += n_e * (k + 2 * k * d + d)
    w = state["_w"]
    if not (_plain_array(w) and w.dtype in (np.float32, np.float64)):
        return ["the weight vector _w is not a 1-D float32/float64 array"]
    if w.shape[0] != exact or exact != n:
        return [
            f"the weight vector _w has {w.shape[0]} entries where the layer sizes {_brief(sizes)} "
            f"need {exact}"
        ]
    n_run = 2 * layout.act_width if layout.batch_norm else 0
    copies = (
        ("_best_w", "the early-stopping copy of the weights", n),
        ("_bn_run", "batch norm's running statistics", n_run),
        ("_best_bn_run", "the early-stopping copy of batch norm's running statistics", n_run),
    )
    problems = [
        p
        for name, what, size in copies
        if (p := _vector_problem(f"{what} {name}", state[name], w.dtype, size)) is not None
    ]
    if problems:
        return problems
    for name in ("_w", "_best_w", "_bn_run", "_best_bn_run"):
        if not np.isfinite(state[name]).all():
            problems.append(f"{name} holds NaN or infinite values")
        elif name.endswith("_run") and (state[name][layout.act_width :] < 0).any():
            problems.append(f"{name} holds negative variances")
    problems += _network_problems(state, sizes, layout.n_inputs)
    if "_optimizer" in state:
        problems += _optimizer_problems(state["_optimizer"], w.dtype, n)
    problems += _book_problems(state, n_trans)
    return problems


def _loaded_fields(state: dict[str, Any], required: Iterable[str]) -> list[str]:
    """Problems unless ``state`` has every ``required`` field; layout, optimizer made skbp's."""
    missing = [name for name in required if name not in state]
    if missing:
        return [f"it lacks {', '.join(missing)} (a fitted model has them all)"]
    for name, load in (("_layout", _loaded_layout), ("_optimizer", _loaded_optimizer)):
        if name in state:
            try:
                state[name] = load(state[name])
            except (ValueError, TypeError, ArithmeticError) as exc:
                return [_clip(f"{name} is {exc}")]
    return []


def _network_problems(state: dict[str, Any], sizes: list[int], n_inputs: int) -> list[str]:
    """The counts, output and dropout codes and column names against the layer ``sizes``
    and the network's ``n_inputs`` input columns."""
    problems = []
    n_trans = len(sizes) - 1
    for name, want, what in (
        ("n_features_in_", n_inputs, "the network takes {} input columns"),
        ("n_outputs_", sizes[-1], "the output layer has {}"),
        ("n_layers_", len(sizes), "there are {} layers"),
    ):
        if not _count(state[name]) or state[name] != want:
            problems.append(f"{name}={_brief(state[name])} but " + what.format(want))
    for name in ("n_iter_", "t_"):
        if not _count(state[name]):
            problems.append(f"{name}={_brief(state[name])} is not a count")
    out, code = state["out_activation_"], state["_out_code"]
    if not (isinstance(out, str) and out in OUTPUT_CODES):
        problems.append(f"out_activation_={_brief(out)} is not one of {sorted(OUTPUT_CODES)}")
    elif not (_count(code) and code == OUTPUT_CODES[out]):
        problems.append(
            f"_out_code={_brief(code)} is not the code of out_activation_={out!r} "
            f"({OUTPUT_CODES[out]})"
        )
    drop = state["_drop_p"]
    if not (
        _plain_array(drop) and drop.dtype == np.float64 and drop.shape == (n_trans,)
        and ((drop >= 0) & (drop < 1)).all() and drop[-1] == 0
    ):  # fmt: skip
        problems.append(
            f"the dropout rates _drop_p are not {n_trans} float64 rates in [0, 1), one per "
            "layer (0 for the output layer)"
        )
    names = state.get("feature_names_in_")
    if "feature_names_in_" in state and not (
        _plain_array(names) and names.shape == (n_inputs,)
        and all(isinstance(v, str) for v in names)
    ):  # fmt: skip
        problems.append(f"feature_names_in_ is not {n_inputs} column names")
    return problems


def _ensemble_problems(cls: type[BaseBP], state: dict[str, Any]) -> list[str]:
    """What is wrong with a loaded fitted ensemble's ``state`` (``skbp._ensemble``).

    Its members were checked whole as they loaded; here the ensemble's own
    fields, and the members against them.
    """
    required = (*cls._get_param_names(), *ENSEMBLE_STATE, "n_features_in_", "n_outputs_")
    problems = _loaded_fields(state, required)
    if problems:
        return problems
    sizes = [int(v) for v in state["_layout"].sizes]
    problems = _network_problems(state, sizes, state["_layout"].n_inputs)
    if not _numbers(state["loss_curve_"]):
        problems.append("loss_curve_ is not a list of numbers")
    if not _number(state["loss_"]):
        problems.append(f"loss_={_brief(state['loss_'])} is not a number")
    return problems or ensemble_state_problems(cls, state)


def _optimizer_problems(opt: OptimizerState, dtype: np.dtype, n: int) -> list[str]:
    """SGD's or Adam's arrays and counters against the weights.

    NaN in the moments is not refused: a fit that diverged leaves them so (its
    parameters are restored), and training on from them warns as it did.
    """
    from ._optim import SOLVER_ADAM

    problems = [
        f"the optimizer's state does not match the weights (_optimizer): {p}"
        for p in (
            _vector_problem("its first moment or velocity m", opt.m, dtype, n),
            _vector_problem(
                "Adam's second moment v", opt.v, dtype, n if opt.code == SOLVER_ADAM else 0
            ),  # fmt: skip
        )
        if p is not None
    ]
    if not problems and (opt.v < 0).any():
        problems.append("Adam's second moment v in _optimizer holds negative values")
    if not _count(opt.epochs):
        problems.append(
            f"the optimizer's epoch count epochs={_brief(opt.epochs)} in _optimizer is not a count"
        )
    t = opt.t
    if not (_plain_array(t) and t.dtype == np.int64 and t.shape == (1,) and t[0] >= 0):
        problems.append(
            f"the optimizer's step count t={_brief(t)} in _optimizer is not one non-negative int64"
        )
    if not (np.isfinite(opt.learning_rate) and opt.learning_rate >= 0):
        problems.append(
            f"the optimizer's learning rate {opt.learning_rate!r} in _optimizer is not >= 0"
        )
    return problems


def _book_problems(state: dict[str, Any], n_trans: int) -> list[str]:
    """The curves and gradient norms that training extends."""
    problems = []
    if "loss_curve_" in state and not _numbers(state["loss_curve_"]):
        problems.append("loss_curve_ is not a list of numbers")
    curve = state.get("validation_loss_curve_")
    if curve is not None and not _numbers(curve):
        problems.append(
            f"validation_loss_curve_={_brief(curve)} is not a list of numbers (or None)"
        )
    if "loss_" in state and not (
        isinstance(state["loss_"], numbers.Real) and not isinstance(state["loss_"], bool)
    ):
        problems.append(f"loss_={_brief(state['loss_'])} is not a number")
    norms = state["_gradient_norms"]
    if not (
        isinstance(norms, list)
        and all(
            isinstance(v, np.ndarray) and v.shape == (n_trans,) and v.dtype.kind == "f"
            for v in norms
        )
    ):
        problems.append(f"_gradient_norms is not a list of arrays of {n_trans} norms")
    norms = state.get("gradient_norms_")
    if "gradient_norms_" in state and not (
        _plain_array(norms, 2) and norms.shape[1] == n_trans and norms.dtype.kind == "f"
    ):
        problems.append(f"gradient_norms_ is not an array of {n_trans} columns of norms")
    return problems


def _parameter_problems(cls: type[BaseBP], state: dict[str, Any]) -> list[str]:
    """The parameters of a loaded fitted ``state``: valid, and those of its network.

    Each must be valid, as ``fit`` requires; those that shape the network
    (``hidden_layer_sizes``, ``activation``, ``batch_norm``, ``residual``,
    ``dropout``) must be the ones it was fitted with, since ``partial_fit`` and
    a warm start rebuild the per-layer options from them; ``n_ensemble`` must
    count the fitted networks; and ``early_stopping`` must have the stopping
    books it reads.
    """
    params = {name: state[name] for name in cls._get_param_names()}
    try:
        validate_parameter_constraints(cls._parameter_constraints, params, caller_name=cls.__name__)
    except InvalidParameterError as exc:
        return [_clip(str(exc)).rstrip(".")]
    problems = [p for p in (_scoring_problem(params["scoring"]),) if p]
    fitted_k = len(state["estimators_"]) if "estimators_" in state else 1
    if params["n_ensemble"] != fitted_k:
        problems.append(
            f"n_ensemble={params['n_ensemble']} but the fitted model has {fitted_k} network(s)"
        )
    layout = state["_layout"]
    sizes = [int(v) for v in layout.sizes]
    hidden, n_hidden = sizes[1:-1], len(sizes) - 2
    try:
        want = embedding_spec(SimpleNamespace(**params), layout.n_inputs, sparse=False)
    except ValueError as exc:
        want = f"none: {exc}"
    if want != layout.embedding:
        problems.append(
            f"numeric_embedding={_brief(params['numeric_embedding'])}, embedding_features="
            f"{_brief(params['embedding_features'])}, n_frequencies={params['n_frequencies']!r} "
            f"and embedding_dim={params['embedding_dim']!r} but the fitted network's embedding "
            f"is {_embedding_words(layout.embedding)}"
        )
    try:
        want = check_hidden_layer_sizes(params["hidden_layer_sizes"], layout.n_inputs, sizes[-1])
    except (TypeError, ValueError):
        want = None
    if want != hidden:
        problems.append(
            f"hidden_layer_sizes={_brief(params['hidden_layer_sizes'])} but the fitted "
            f"network's hidden layers are {hidden}"
        )
    if bool(params["batch_norm"]) != layout.batch_norm:
        problems.append(
            f"batch_norm={params['batch_norm']!r} but the fitted network has "
            f"batch_norm={layout.batch_norm}"
        )
    per_layer = {}
    for name, check in (("activation", _check_activation), ("dropout", _check_dropout)):
        try:
            per_layer[name] = _per_hidden_layer(params[name], n_hidden, name, check)
        except (TypeError, ValueError) as exc:
            problems.append(f"{name}={_brief(params[name])} does not fit the network: {exc}")
    if "activation" in per_layer:
        want = [ACTIVATION_CODES[a] for a in per_layer["activation"]] + [0]
        have = [int(c) for c in layout.codes]
        if have != want:
            problems.append(
                f"the layers' activation codes {have} in _layout are not those of "
                f"activation={_brief(params['activation'])} ({want})"
            )
    if "dropout" in per_layer:
        want = [float(p) for p in per_layer["dropout"]]
        if [float(p) for p in state["_drop_p"][:n_hidden]] != want:
            problems.append(
                f"the dropout rates _drop_p {state['_drop_p'].tolist()} are not those of "
                f"dropout={_brief(params['dropout'])}"
            )
    want = [0] * (len(sizes) - 1)
    if params["residual"]:  # what ``Layout.set_residual`` sets
        for l in range(1, len(sizes) - 2):
            want[l] = int(sizes[l] == sizes[l + 1])
    have = [int(r) for r in layout.res]
    if have != want:
        problems.append(
            f"the residual skips {have} in _layout are not those of "
            f"residual={params['residual']!r} with the layer sizes {sizes} ({want})"
        )
    return problems + _stopping_problems(state, bool(params["early_stopping"]))


def _stopping_problems(state: dict[str, Any], early_stopping: bool) -> list[str]:
    """The stochastic solvers' stopping books against ``early_stopping``.

    A model fitted with L-BFGS has none (a stochastic solver starts them); the
    books that the parameter does not use may hold anything a fit leaves there
    (an L-BFGS warm start after early stopping sets ``best_loss_``, for one).
    """
    if "_no_improvement_count" not in state:
        return []
    problems = []
    if not _count(state["_no_improvement_count"]):
        problems.append(
            f"_no_improvement_count={_brief(state['_no_improvement_count'])} is not a count"
        )
    if "loss_curve_" not in state:
        problems.append("it has the stopping books but no loss_curve_")
    if early_stopping:
        scores, best = state.get("validation_scores_"), state.get("best_validation_score_")
        if not (_numbers(scores) and _number(best)):
            problems.append(
                f"early_stopping=True follows validation_scores_ (a list of scores) and "
                f"best_validation_score_ (a number); they are {_brief(scores)} and "
                f"{_brief(best)}"
            )
    elif not _number(state.get("best_loss_")):
        problems.append(
            "early_stopping=False follows best_loss_, a number; it is "
            f"{_brief(state.get('best_loss_'))}"
        )
    return problems
