"""Ensembles of independently initialised networks (``n_ensemble > 1``).

An ensemble is a list of member estimators (``estimators_``): fitted copies of
the estimator with ``n_ensemble=1``, each with its own ``random_state`` (so its
own initial weights, shuffling and early-stopping split), trained with the
estimator's other parameters by the single-network fit.  The members train
concurrently in Python threads (the compiled epochs release the GIL), at most
``effective_n_threads(n_jobs)`` at a time; concurrent skbp calls share the
cores (``skbp._runtime``), so with more members than cores each member's
kernels run on one thread.  A member's weights do not depend on its thread
count, so the ensemble is the same, bit for bit, for any ``n_jobs``.

Predictions average the members' outputs in member order: the classifier's
probabilities (after softmax or the logistic), the regressor's predictions.
"""

from __future__ import annotations

import numbers
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.utils import check_random_state

from ._callbacks import FitTasks
from ._runtime import effective_n_threads

if TYPE_CHECKING:
    from ._base import BaseBP

#: a fitted ensemble's own fields (its members hold the rest of the fitted state)
ENSEMBLE_STATE = (
    "estimators_", "_layout", "_drop_p", "_out_code", "out_activation_", "n_layers_",
    "n_iter_", "t_", "loss_", "loss_curve_",
)  # fmt: skip


def is_ensemble(est: BaseBP) -> bool:
    """Whether ``est`` is fitted as an ensemble (by its fitted state, not its parameter)."""
    return "estimators_" in est.__dict__


def member_seeds(random_state: object, k: int) -> list[int]:
    """The ``random_state`` of each of ``k`` members, derived from the estimator's.

    An int seeds member 0 with itself (member 0 is the network ``n_ensemble=1``
    would fit) and the others with words of ``np.random.SeedSequence(seed)``;
    ``None`` or a ``RandomState`` draws the seeds from it, in this thread, so no
    generator is shared between the members' threads.
    """
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        words = np.random.SeedSequence(int(random_state)).generate_state(k - 1)
        return [int(random_state), *(int(v) for v in words)]
    rng = check_random_state(random_state)
    return [int(v) for v in rng.randint(np.iinfo(np.int32).max, size=k)]


def _member_params(est: BaseBP) -> dict[str, Any]:
    """The parameters a member shares with the ensemble (all but these four)."""
    params = est.get_params(deep=False)
    for name in ("n_ensemble", "random_state", "verbose", "warm_start"):
        del params[name]
    return params


def fit_members(
    est: BaseBP,
    X: Any,
    y: Any,
    sample_weight: Any,
    incremental: bool,
    continuing: bool,
    fit_params: dict[str, Any],
) -> None:
    """Fit (``continuing``: train on) the ensemble's members; the ensemble's books after.

    ``fit_params`` go to each member's ``fit`` (the validation data) or
    ``partial_fit`` (the classes).  A member's error is raised here once every
    member has stopped.  The callbacks see the ensemble's fit as one task,
    without subtasks: the members' epochs run at once in several threads.
    """
    k = est.n_ensemble
    tasks = FitTasks(est, X, y, sample_weight, max_subtasks=k)
    params = _member_params(est)
    if continuing:
        members = est.estimators_
        for m in members:
            m.set_params(**params, warm_start=bool(est.warm_start))
    else:
        cls = type(est)
        members = [
            cls(**params, n_ensemble=1, random_state=seed, verbose=False, warm_start=False)
            for seed in member_seeds(est.random_state, k)
        ]

    def train(i: int) -> None:
        t0 = time.perf_counter()
        m = members[i]
        if incremental:
            m.partial_fit(X, y, sample_weight, **fit_params)
        else:
            m.fit(X, y, sample_weight, **fit_params)
        if est.verbose:
            print(
                "Member %d of %d: %d iterations, loss = %.8f, time = %.3f s"
                % (i + 1, k, m.n_iter_, m.loss_, time.perf_counter() - t0)
            )

    n_threads = min(k, effective_n_threads(est.n_jobs))
    if n_threads == 1:
        for i in range(k):
            train(i)
    else:
        with ThreadPoolExecutor(n_threads, thread_name_prefix="skbp-member") as pool:
            futures = [pool.submit(train, i) for i in range(k)]
        for f in futures:
            f.result()
    _set_books(est, members)
    tasks.close()


def _set_books(est: BaseBP, members: list[BaseBP]) -> None:
    """The ensemble's fitted fields from its trained members."""
    m0 = members[0]
    est.estimators_ = members
    for name in ("_layout", "_drop_p", "_out_code", "out_activation_", "n_layers_", "n_outputs_"):
        setattr(est, name, getattr(m0, name))
    est.n_iter_ = max(m.n_iter_ for m in members)
    est.t_ = max(m.t_ for m in members)
    est.loss_ = float(np.mean([m.loss_ for m in members]))
    est.loss_curve_ = mean_curve([m.loss_curve_ for m in members])
    est._set_views()


def mean_curve(curves: list[list[float]]) -> list[float]:
    """Per epoch, the mean over the members that trained it (early stopping ends some sooner)."""
    n = max(len(c) for c in curves)
    return [float(np.mean([c[i] for c in curves if len(c) > i])) for i in range(n)]


def stacked_views(est: BaseBP) -> dict[str, list[np.ndarray]]:
    """The public parameter attributes of an ensemble: each member's, stacked on a first axis.

    Copies, made read-only: writing to them would change nothing the members
    predict with, so it fails instead.
    """
    per_member = [m._views_of(m._w, m._bn_run) for m in est.estimators_]
    views = {}
    for name in per_member[0]:
        layers = []
        for parts in zip(*(v[name] for v in per_member), strict=True):
            a = np.stack(parts)
            a.flags.writeable = False
            layers.append(a)
        views[name] = layers
    return views


def ensemble_output(est: BaseBP, X: Any) -> np.ndarray:
    """The mean of the members' outputs for validated ``X``, summed in member order."""
    members = est.estimators_
    out = members[0]._network_output(X)
    for m in members[1:]:
        out += m._network_output(X)
    out /= len(members)
    return out


def ensemble_state_problems(cls: type[BaseBP], state: dict[str, Any]) -> list[str]:
    """What is wrong with the ensemble's own fields of a loaded fitted ``state``.

    Each member checked its own state when it was loaded; here they must be
    ``n_ensemble`` fitted single networks of the ensemble's class, all of the
    ensemble's network (layout, dropout rates, output, dtype, input width,
    classes).
    """
    members = state["estimators_"]
    k = state["n_ensemble"]
    if not (isinstance(members, list) and _count(k) and k >= 2 and len(members) == k):
        return [
            f"estimators_ is not a list of n_ensemble={_brief(k)} members "
            f"({type(members).__name__}"
            + (f" of {len(members)})" if isinstance(members, list) else ")")
        ]
    layout = state["_layout"].to_state()
    problems = []
    dtypes = set()
    for i, m in enumerate(members):
        fields = getattr(m, "__dict__", {})
        if type(m) is not cls or fields.get("n_ensemble") != 1 or "_w" not in fields:
            problems.append(
                f"estimators_[{i}] is not a fitted {cls.__name__} with n_ensemble=1 "
                f"({type(m).__name__})"
            )
            continue
        dtypes.add(m._w.dtype)
        same = (
            m._layout.to_state() == layout
            and np.array_equal(m._drop_p, state["_drop_p"])
            and m.out_activation_ == state["out_activation_"]
            and m.n_features_in_ == state["n_features_in_"]
            and (
                "classes_" not in state
                or (m.classes_.shape == state["classes_"].shape
                    and np.array_equal(m.classes_, state["classes_"]))
            )
        )  # fmt: skip
        if not same:
            problems.append(
                f"estimators_[{i}]'s network (layout, dropout, output, inputs or classes) is "
                "not the ensemble's"
            )
    if len(dtypes) > 1:
        problems.append(f"the members' weights have different dtypes {sorted(map(str, dtypes))}")
    return problems


def _count(v: object) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _brief(v: object) -> str:
    from ._base import _brief

    return _brief(v)
