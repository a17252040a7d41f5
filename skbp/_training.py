"""The training loops in Python: one compiled call per epoch (or per L-BFGS step).

What happens *between* epochs lives here -- learning-rate schedules, early
stopping, divergence checks, gradient diagnostics, verbose output, interrupt
handling -- as the named steps of two trainers, :class:`StochasticTrainer`
(SGD, Adam) and :class:`LbfgsTrainer`.  Nothing here loops over mini-batches.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.optimize
from scipy.special import xlogy
from sklearn.exceptions import ConvergenceWarning

from ._data import Problem, max_abs, readonly
from ._epoch import EPOCH_OK, run_epoch
from ._kernels import full_loss_grad
from ._matmul import tune_array
from ._optim import SCHEDULE_CODES, OptimizerState
from ._predict import (
    CHUNK_ROWS,
    compile_ahead,
    network,
    network_output,
    running_stats,
    workspace,
)
from ._records import Epoch, Optimizer, Penalty
from ._runtime import ThreadGovernor, compile_interrupted
from ._steps import GovernedSteps, has_parallel_work
from .exceptions import DivergenceWarning, GradientWarning

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import ArrayLike

    from ._base import BaseBP
    from ._callbacks import FitTasks
    from ._data import Workspace
    from ._layout import Layout

#: a fit has diverged when its loss exceeds this many times where it started
DIVERGENCE_FACTOR = 1e4
#: a layer's mean weight-gradient norm below this is reported as vanishing ...
VANISHING_GRAD_NORM = 1e-6
#: ... (while another layer's is above this, so a converged fit is not flagged)
ACTIVE_GRAD_NORM = 1e-4
#: a layer's mean weight-gradient norm above this is reported as exploding
EXPLODING_GRAD_NORM = 1e4


@dataclass(frozen=True)
class TrainConfig:
    """What the trainers read of the estimator's parameters, validated, frozen for one fit.

    ``BaseBP._fit`` validates the parameters and builds this
    (:meth:`from_estimator`); a trainer never reads a parameter from the
    estimator itself, only its fitted state.  ``max_grad_norm`` is 0 when
    clipping is off.
    """

    solver: str
    max_iter: int
    max_fun: int
    tol: float
    n_iter_no_change: float
    shuffle: bool
    early_stopping: bool
    validation_fraction: float
    scoring: str | Callable[..., float] | None
    batch_size: str | int
    batch_norm: bool
    learning_rate: str
    learning_rate_init: float
    power_t: float
    decay_rate: float
    momentum: float
    nesterovs_momentum: bool
    beta_1: float
    beta_2: float
    epsilon: float
    alpha: float
    l1_ratio: float
    max_grad_norm: float
    weight_decay: float
    decay_biases: bool
    min_learning_rate: float
    warmup_fraction: float
    n_cycles: int
    verbose: bool

    @classmethod
    def from_estimator(cls, est: BaseBP) -> TrainConfig:
        """The configuration of ``est``'s (already validated) parameters."""
        values = {f.name: getattr(est, f.name) for f in fields(cls)}
        values["max_grad_norm"] = float(est.max_grad_norm or 0.0)
        values["weight_decay"] = float(est.weight_decay)
        values["decay_biases"] = bool(est.decay_biases)
        values["min_learning_rate"] = float(est.min_learning_rate)
        values["warmup_fraction"] = float(est.warmup_fraction)
        values["n_cycles"] = int(est.n_cycles)
        values["verbose"] = bool(est.verbose)
        return cls(**values)


def run_epoch_steps(steps: GovernedSteps | None, args: tuple[Any, ...], n_rows: int) -> int:
    """:func:`~skbp._epoch.run_epoch` over all rows of an epoch; its status.

    ``args`` are run_epoch's records; ``steps`` is a :class:`GovernedSteps` in
    mini-batches, or ``None`` for one compiled call on the thread count already
    set (no parallel work).  The numbers are those of one call either way.
    """
    sums = args[-1].out
    sums[:] = 0.0
    if steps is None:
        return run_epoch(*args, 0, n_rows)
    status = [EPOCH_OK]

    def step(n: int, start: int, stop: int) -> int:
        status[0] = run_epoch(*args, start, stop)
        return int(sums[3]) if status[0] == EPOCH_OK else n_rows

    steps.run(n_rows, step)
    return status[0]


def _full_workspace(est: BaseBP, problem: Problem) -> Workspace:
    # Batch norm normalises over the whole batch: one chunk holds every row.
    rows = problem.n_rows if est._layout.batch_norm else min(CHUNK_ROWS, problem.n_rows)
    return workspace(est, max(1, rows), problem.sparse, train=True)


def loss_grad(layout: Layout, w: np.ndarray, problem: Problem, ws: Workspace, out_code: int,
              alpha: float, l1_ratio: float, drop_p: ArrayLike, bn_run: np.ndarray,
              bn_momentum: float = 0.0, gnorm: np.ndarray | None = None) -> float:  # fmt: skip
    """Objective and gradient (left in ``ws.grad``) over all rows of ``problem``.

    The one place that calls ``full_loss_grad``: the estimators (L-BFGS,
    divergence checks) and the gradient tests go through here.  Dropout uses the
    masks in ``ws``; ``layout.codes`` and ``layout.res`` select the activations
    and skips.  ``gnorm`` receives each layer's data-gradient norm.
    """
    if gnorm is None:
        gnorm = np.zeros(len(layout.sizes) - 1)
    net = layout.net(readonly(drop_p, np.float64), out_code, tune_array())
    penalty = Penalty(float(alpha), float(l1_ratio), 0.0)
    return full_loss_grad(
        problem.data(),
        w,
        net,
        ws.bufs,
        bn_run if layout.batch_norm else None,
        penalty,
        float(bn_momentum),
        ws.grad,
        gnorm,
    )


def full_loss(
    est: BaseBP,
    cfg: TrainConfig,
    problem: Problem,
    ws: Workspace,
    bn_momentum: float = 0.0,
    gnorm: np.ndarray | None = None,
) -> float:
    """Objective over all rows of ``problem`` at the estimator's current parameters.

    Dropout is off (the network ``predict`` uses; L-BFGS refuses dropout).
    Leaves the gradient in ``ws.grad``.  With ``bn_momentum=1`` batch norm's
    running statistics become the full-data statistics.
    """
    return loss_grad(
        est._layout, est._w, problem, ws, est._out_code, cfg.alpha, cfg.l1_ratio,
        np.zeros_like(est._drop_p), est._bn_run, bn_momentum, gnorm,
    )  # fmt: skip


def _nonfinite_start_message(loss: float, problem: Problem) -> str:
    """scikit-learn's message for data that overflows, with what skbp measured."""
    big_x = max_abs(problem.Xdat if problem.sparse else problem.Xd)
    big_y = max_abs(problem.Y)
    return (
        "Solver produced non-finite parameter weights. The input data may contain "
        f"large values and need to be preprocessed. (The training loss is {loss:.4g}, "
        "and it or its gradient is not finite already at the starting parameters, "
        "before any update, so the data is the "
        f"problem, not the learning rate: the largest |X| is {big_x:.3g} and the "
        f"largest |y| {big_y:.3g}. Scale them, e.g. with StandardScaler.)"
    )


def _diverged_message(cfg: TrainConfig, it: int, why: str) -> str:
    return (
        f"Training diverged at iteration {it}: {why}. The parameters were "
        f"restored to the last ones with a finite, lowest loss and training "
        f"stopped. Try a smaller learning_rate_init (it is "
        f"{cfg.learning_rate_init!r}), scaling the inputs and targets, "
        f"max_grad_norm, or a smaller momentum."
    )


def _resolve_batch_size(batch_size: str | int, n_samples: int) -> int:
    if batch_size == "auto":
        return min(200, n_samples)
    if batch_size == "full":
        return n_samples
    if batch_size > n_samples:
        warnings.warn(
            "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped"
        )
    return int(np.clip(batch_size, 1, n_samples))


@dataclass
class ValidationSet:
    """Rows scored after every epoch (every L-BFGS iteration): given, or held out.

    ``problem`` holds the rows, their encoded targets and weights (ones where
    none were given), which the validation loss and the estimator's own score
    use; a scorer (``scoring``) is handed ``X`` and ``y`` as the user gave
    them, and ``sample_weight`` only where there are weights.
    """

    problem: Problem
    X: Any
    y: np.ndarray
    sample_weight: np.ndarray | None


def validation_loss(P: np.ndarray, Y: np.ndarray, sw: np.ndarray, out_activation: str) -> float:
    """The weighted mean data loss of network outputs ``P`` against encoded targets ``Y``.

    Per row the loss the network is trained on, summed over the outputs, as
    ``skbp._kernels.loss_and_delta`` computes it (probabilities clipped to
    ``[eps, 1 - eps]`` of the model's dtype), without the penalty; then the
    mean over the rows weighted by ``sw``.  In float64.
    """
    eps = float(np.finfo(P.dtype).eps)
    P, Y = P.astype(np.float64), np.asarray(Y, dtype=np.float64)
    if out_activation == "identity":
        per_row = 0.5 * ((P - Y) ** 2).sum(axis=1)
    elif out_activation == "logistic":
        Pc = np.clip(P, eps, 1 - eps)
        per_row = -(xlogy(Y, Pc) + xlogy(1 - Y, 1 - Pc)).sum(axis=1)
    elif out_activation == "softmax":
        per_row = -xlogy(Y, np.clip(P, eps, 1 - eps)).sum(axis=1)
    else:  # "exp": half Poisson deviance
        with np.errstate(divide="ignore"):
            per_row = (P - Y + xlogy(Y, Y / P)).sum(axis=1)
    sw = np.asarray(sw, dtype=np.float64)
    return float(np.dot(sw, per_row) / sw.sum())


def _scorer(est: BaseBP, scoring: str | Callable[..., float] | None) -> Callable[..., float] | None:
    """The scorer of ``scoring`` (``None`` for the estimator's score and for ``'loss'``)."""
    if scoring is None or (isinstance(scoring, str) and scoring == "loss"):
        return None
    from sklearn.metrics import check_scoring

    return check_scoring(est, scoring)


def score_validation(
    est: BaseBP,
    cfg: TrainConfig,
    val: ValidationSet,
    scorer: Callable[..., float] | None,
    gov: ThreadGovernor,
) -> float:
    """Score the network as it stands on ``val``; its validation loss joins the books.

    ``scoring=None`` is the estimator's ``score`` (accuracy, R²), ``'loss'``
    minus the validation loss (higher is better, as every score), anything
    else the scorer.  Non-finite outputs score NaN, as in scikit-learn.
    """
    P = network_output(est, val.problem, gov)
    loss = validation_loss(P, val.problem.Y, val.problem.sw, est.out_activation_)
    est.validation_loss_curve_.append(loss)
    if cfg.scoring is None:
        return est._score_output(P, val.y, val.problem.sw)
    if scorer is None:  # 'loss'
        return -loss
    if not np.isfinite(P).all():
        return np.nan
    if val.sample_weight is None:
        return float(scorer(est, val.X, val.y))
    return float(scorer(est, val.X, val.y, sample_weight=val.sample_weight))


def _batches_per_epoch(n_samples: int, batch_size: int, batch_norm: bool) -> int:
    """The mini-batches of an epoch (``run_epoch``'s batching; the schedules' unit)."""
    n = -(-n_samples // batch_size)
    if batch_norm and n > 1 and n_samples % batch_size == 1:
        n -= 1  # a one-row last batch joins the one before
    return n


def _split_validation(
    est: BaseBP, cfg: TrainConfig, problem: Problem, y_raw: np.ndarray
) -> tuple[Problem, Problem, np.ndarray]:
    """Rows for training and for the early-stopping validation score, and the latter's indices.

    With ``shuffle=True``: a random split (stratified for single-output
    classification), as scikit-learn.  With ``shuffle=False`` the rows are taken
    to be ordered (time series): the last ``validation_fraction`` of them are
    held out, so the validation set never lies before the training set.
    """
    from sklearn.base import is_classifier
    from sklearn.model_selection import train_test_split

    n = problem.n_rows
    if cfg.shuffle:
        stratify = y_raw if (is_classifier(est) and est.n_outputs_ == 1) else None
        idx_train, idx_val = train_test_split(
            np.arange(n),
            random_state=est._random_state,
            test_size=cfg.validation_fraction,
            stratify=stratify,
        )
    else:
        n_val = math.ceil(cfg.validation_fraction * n)
        idx_train, idx_val = np.arange(n - n_val), np.arange(n - n_val, n)
    if idx_val.shape[0] < 2:
        raise ValueError(
            "The validation set is too small. Increase 'validation_fraction' or "
            "the size of your dataset."
        )
    X = problem.X
    train = Problem(X[idx_train], problem.dtype, problem.Y[idx_train], problem.sw[idx_train])
    val = Problem(X[idx_val], problem.dtype, problem.Y[idx_val], problem.sw[idx_val])
    return train, val, idx_val


def _held_out(
    est: BaseBP, cfg: TrainConfig, problem: Problem, y_raw: np.ndarray, X_given: Any,
    weighted: bool,
) -> tuple[Problem, ValidationSet]:  # fmt: skip
    """Training rows and the ``validation_fraction`` held out of them for early stopping.

    A scorer is handed the held-out rows of ``X_given`` (the rows as the user
    gave them: a DataFrame keeps its column names) and, where the fit is
    weighted (``weighted``), their weights.
    """
    train, val, idx_val = _split_validation(est, cfg, problem, y_raw)
    X_rows = None
    if _scorer(est, cfg.scoring) is not None:
        from sklearn.utils import _safe_indexing

        X_rows = _safe_indexing(X_given, idx_val)
    sw = np.asarray(val.sw) if weighted else None
    return train, ValidationSet(val, X_rows, est._decode_targets(val.Y), sw)


def _ensure_stopping_books(est: BaseBP, cfg: TrainConfig) -> None:
    """Start the books of the stopping rule ``early_stopping`` now asks for, where missing.

    A warm start may switch ``early_stopping`` (or continue a model saved
    before the validation-loss curve existed): the books of the other rule are
    left as they are, those of this one begin.
    """
    if cfg.early_stopping:
        if est.validation_scores_ is None:
            est.validation_scores_, est.best_validation_score_ = [], -np.inf
        if getattr(est, "validation_loss_curve_", None) is None:
            est.validation_loss_curve_ = []
    elif est.best_loss_ is None:
        est.best_loss_ = np.inf


def _layer_name(est: BaseBP, layer: int) -> str:
    n_trans = est.n_layers_ - 1
    src = "input" if layer == 0 else f"hidden layer {layer}"
    dst = "output" if layer == n_trans - 1 else f"hidden layer {layer + 1}"
    return f"layer {layer + 1} of {n_trans} ({src} -> {dst})"


def check_gradients(est: BaseBP, cfg: TrainConfig, norms: np.ndarray, it: int) -> None:
    """Warn once per fit when a layer's gradient vanishes or explodes."""
    if est._gradient_warned:
        return
    lo, hi = float(norms.min()), float(norms.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        layer = int(np.flatnonzero(~np.isfinite(norms))[0])
        est._gradient_warned = True
        warnings.warn(
            f"Gradient overflow at iteration {it}: the weight-gradient norm of "
            f"{_layer_name(est, layer)} is {norms[layer]}, so the updates are "
            "meaningless (e.g. Adam's second moment is infinite and the weights stop "
            f"moving). The inputs or targets are too large for {est._w.dtype.name} "
            "arithmetic: scale them (StandardScaler, TransformedTargetRegressor) or fit "
            "on float64 data.",
            GradientWarning,
        )
        return
    if lo >= VANISHING_GRAD_NORM and hi <= EXPLODING_GRAD_NORM:
        return  # nothing to say (every epoch of a healthy fit): no more array work
    vanishing = np.flatnonzero(norms < VANISHING_GRAD_NORM)
    if vanishing.size and norms.max() > ACTIVE_GRAD_NORM:
        layer = int(vanishing[0])
        msg = (
            f"Vanishing gradient at iteration {it}: the weight-gradient norm of "
            f"{_layer_name(est, layer)} is {norms[layer]:.2g} while another layer's is "
            f"{norms.max():.2g}, so the layers near the input barely learn. Remedies: "
            "activation='relu' (or 'leaky_relu', 'elu') instead of 'logistic'/'tanh', "
            "batch_norm=True, residual=True, or fewer layers."
        )
    elif norms.max() > EXPLODING_GRAD_NORM:
        layer = int(np.argmax(norms))
        msg = (
            f"Exploding gradient at iteration {it}: the weight-gradient norm of "
            f"{_layer_name(est, layer)} is {norms[layer]:.2g}. Remedies: a smaller "
            f"learning_rate_init (it is {cfg.learning_rate_init!r}), max_grad_norm "
            "(e.g. 1.0), batch_norm=True, or scaling the inputs and targets."
        )
    else:
        return
    est._gradient_warned = True
    warnings.warn(msg, GradientWarning)


class StochasticTrainer:
    """Mini-batch training with SGD or Adam: the epoch loop, in named steps.

    Mirrors scikit-learn's ``_fit_stochastic`` (same attributes, schedules and
    stopping rule) with each epoch one compiled call.  :meth:`run` reads top to
    bottom: per epoch, :meth:`epoch` trains, :meth:`diverged` checks,
    :meth:`record` keeps the books (loss curve, gradient diagnostics,
    printing), :meth:`track_improvement` scores, the schedule moves the
    learning rate, the callbacks see the model (``tasks``, a
    :class:`~skbp._callbacks.FitTasks`) and :meth:`should_stop` decides.
    """

    def __init__(
        self,
        est: BaseBP,
        cfg: TrainConfig,
        problem: Problem,
        incremental: bool,
        y_raw: np.ndarray,
        gov: ThreadGovernor,
        tasks: FitTasks,
        validation: ValidationSet | None = None,
        X_given: Any = None,
        weighted: bool = False,
    ) -> None:
        self.est, self.cfg, self.gov, self.tasks = est, cfg, gov, tasks
        self.incremental = incremental
        layout, w = est._layout, est._w
        if not incremental or not hasattr(est, "_optimizer"):
            est._optimizer = OptimizerState(
                cfg.solver, layout.n_params, w.dtype, cfg.learning_rate_init
            )
        self.opt = est._optimizer.astype(w.dtype)
        # divergence is judged against the start of this call: the data (and the
        # scale of the loss) may differ from those of earlier fit/partial_fit calls
        est._loss_ref = None
        _ensure_stopping_books(est, cfg)
        # early stopping scores the given validation rows, or holds some out
        self.train, self.val = problem, None
        if cfg.early_stopping and validation is not None:
            self.val = validation
        elif cfg.early_stopping:
            self.train, self.val = _held_out(est, cfg, problem, y_raw, X_given, weighted)
        self.scorer = _scorer(est, cfg.scoring) if self.val is not None else None
        self.n_samples = self.train.n_rows
        self.batch_size = _resolve_batch_size(cfg.batch_size, self.n_samples)
        self.n_batches = _batches_per_epoch(self.n_samples, self.batch_size, cfg.batch_norm)
        if cfg.batch_norm and self.batch_size < 2:
            raise ValueError(
                "batch_norm=True needs mini-batches of at least 2 rows; got batch_size="
                f"{cfg.batch_size!r} with n_samples = {self.n_samples}."
            )
        # with batch norm a one-row last batch joins the one before: one row more
        self.ws = workspace(est, self.batch_size + int(cfg.batch_norm), self.train.sparse, True)
        self.sums = np.zeros(4, dtype=np.float64)
        self.gnorm = np.zeros(layout.sizes.shape[0] - 1, dtype=np.float64)
        self.best_w, self.best_w_loss = w.copy(), np.inf
        self.best_run = est._bn_run.copy()
        self.w_start, self.run_start = w.copy(), est._bn_run.copy()
        est._gradient_warned = False
        rows, sparse = self.ws.batch_rows, self.train.sparse
        parallel = gov.n_max > 1 and has_parallel_work(layout, rows, sparse)
        self.steps = GovernedSteps(gov, self.batch_size) if parallel else None
        self.val_gov = ThreadGovernor(gov.n_max)  # its own timings: prediction is cheaper
        rng = np.array(
            [est._random_state.randint(np.iinfo(np.int64).max, dtype=np.int64)],
            dtype=np.uint64,
        )
        # run_epoch's records that stay the same for the whole call (their arrays
        # change in place); the optimizer's is made per epoch (its learning rate)
        self.data, self.net, self.bn_run = self.train.data(), network(est), running_stats(est)
        self.penalty = Penalty(float(cfg.alpha), float(cfg.l1_ratio), cfg.max_grad_norm)
        self.order = Epoch(
            np.arange(self.n_samples, dtype=np.int64), bool(cfg.shuffle), rng,
            self.batch_size, self.ws.grad, self.gnorm, self.sums,
        )  # fmt: skip

    def _optimizer(self) -> Optimizer:
        """The optimizer record at this epoch's learning rate and place in the schedule.

        A per-update schedule runs over ``max_iter`` epochs of this call's
        mini-batches; the epochs trained with the optimizer state before
        (``partial_fit``) move it on, and past its end it stays at its floor.
        """
        cfg, opt = self.cfg, self.opt
        return Optimizer(
            opt.code, float(opt.learning_rate), float(cfg.momentum),
            bool(cfg.nesterovs_momentum), float(cfg.beta_1), float(cfg.beta_2),
            float(cfg.epsilon), opt.m, opt.v, opt.t, cfg.weight_decay, cfg.decay_biases,
            SCHEDULE_CODES.get(cfg.learning_rate, 0), cfg.min_learning_rate,
            cfg.warmup_fraction, cfg.n_cycles, min(int(opt.epochs), cfg.max_iter) * self.n_batches,
            cfg.max_iter * self.n_batches,
        )  # fmt: skip

    def run(self) -> None:
        """Train for up to ``max_iter`` epochs (one for ``partial_fit``)."""
        cfg = self.cfg
        est, tasks = self.est, self.tasks
        est.n_iter_ = 0
        compile_interrupted()  # (forget one cut short outside a fit)
        try:
            for i in range(cfg.max_iter):
                tasks.begin("epoch")
                t0 = time.perf_counter()
                status = self.epoch()
                if i == 0:  # the fit's kernel runs: the prediction kernel compiles beside it
                    compile_ahead(self.data, est._w, self.net, self.ws.bufs, self.bn_run)
                if self.diverged(status):
                    tasks.abandon()
                    break
                self.record(time.perf_counter() - t0)
                self.track_improvement()
                _end_of_epoch_schedule(est, self.cfg, self.opt)
                if self.should_stop(tasks.end()):
                    break
        except KeyboardInterrupt:
            tasks.abandon()
            if compile_interrupted():
                # a Ctrl-C while the kernels were compiling: nothing was
                # trained, and the user wants the wait over, not a model
                raise
            warnings.warn("Training interrupted by user.")
        if cfg.early_stopping:
            est._w[:] = est._best_w
            est._bn_run[:] = est._best_bn_run

    def epoch(self) -> int:
        """One pass over the training rows (compiled); its status."""
        est = self.est
        self.gnorm[:] = 0.0
        self.w_start[:] = est._w
        self.run_start[:] = est._bn_run
        args = (
            self.data, est._w, self.net, self.ws.bufs, self.bn_run, self.penalty,
            self._optimizer(), self.order,
        )  # fmt: skip
        status = run_epoch_steps(self.steps, args, self.n_samples)
        self.opt.epochs += 1
        if est._loss_ref is None and np.isfinite(self.sums[1]):
            est._loss_ref = float(self.sums[1])
        self.loss = self.sums[0] / self.n_samples
        return status

    def diverged(self, status: int) -> bool:
        """Whether the epoch diverged: then the best parameters are back, with a warning."""
        est = self.est
        why = _divergence(est, status, self.loss, est._w)
        if why:
            est._w[:] = self.best_w
            est._bn_run[:] = self.best_run
            ws_full = _full_workspace(est, self.train)
            best_loss = float(full_loss(est, self.cfg, self.train, ws_full))
            if est.n_iter_ == 0 and not (
                np.isfinite(best_loss) and np.isfinite(ws_full.grad).all()
            ):
                # diverged in the first epoch of this call (best_w: the starting
                # parameters), and the loss or its gradient is not finite even
                # there: the data overflows, whatever the learning rate
                raise ValueError(_nonfinite_start_message(best_loss, self.train))
            est.loss_ = best_loss
            warnings.warn(_diverged_message(self.cfg, est.n_iter_ + 1, why), DivergenceWarning)
            return True
        if self.loss <= self.best_w_loss:
            self.best_w[:] = self.w_start
            self.best_run[:] = self.run_start
            self.best_w_loss = self.loss
        return False

    def record(self, seconds: float) -> None:
        """The epoch's books: counters, loss curve, gradient norms, printing, diagnostics."""
        cfg = self.cfg
        est = self.est
        est.n_iter_ += 1
        est.loss_ = float(self.loss)
        est.t_ += self.n_samples
        est.loss_curve_.append(est.loss_)
        norms = self.gnorm / max(self.sums[2], 1.0)
        est._gradient_norms.append(norms.copy())
        if cfg.verbose:
            print(
                "Iteration %d, loss = %.8f, gradient norms per layer = %s, time = %.3f s"
                % (est.n_iter_, est.loss_, np.array2string(norms, precision=3), seconds)
            )
        check_gradients(est, self.cfg, norms, est.n_iter_)

    def track_improvement(self) -> None:
        """The validation score or training loss against the best so far."""
        _update_no_improvement_count(self.est, self.cfg, self.val, self.scorer, self.val_gov)

    def should_stop(self, callback_stop: bool) -> bool:
        """Whether training ends after this epoch (and why, with a warning where due)."""
        cfg = self.cfg
        est = self.est
        if est._no_improvement_count > cfg.n_iter_no_change:
            what = "Validation score" if cfg.early_stopping else "Training loss"
            msg = "%s did not improve more than tol=%f for %d consecutive epochs." % (
                what, cfg.tol, cfg.n_iter_no_change,
            )  # fmt: skip
            if _trigger_stopping(cfg, self.opt, msg):
                return True
            est._no_improvement_count = 0
        if callback_stop:
            if cfg.verbose:
                print("A callback asked to stop after iteration %d. Stopping." % est.n_iter_)
            return True
        if self.incremental:
            return True
        if est.n_iter_ == cfg.max_iter:
            warnings.warn(
                "Stochastic Optimizer: Maximum iterations (%d) reached and the "
                "optimization hasn't converged yet." % cfg.max_iter,
                ConvergenceWarning,
            )
        return False


def _end_of_epoch_schedule(est: BaseBP, cfg: TrainConfig, opt: OptimizerState) -> None:
    """Learning-rate schedules, applied after every epoch for SGD and Adam alike."""
    if cfg.learning_rate == "invscaling":
        opt.learning_rate = cfg.learning_rate_init / (est.t_ + 1) ** cfg.power_t
    elif cfg.learning_rate == "exponential":
        opt.learning_rate *= cfg.decay_rate


def _divergence(est: BaseBP, status: int, loss: float, w: np.ndarray) -> str:
    """Why the last epoch counts as diverged, or an empty string."""
    if status != EPOCH_OK or not np.isfinite(loss):
        return "the training loss became infinite or NaN"
    if not np.isfinite(w).all():
        return "the parameters became infinite or NaN"
    ref = est._loss_ref if est._loss_ref is not None else loss
    if loss > DIVERGENCE_FACTOR * max(ref, 1.0):
        return f"the training loss grew from {ref:.4g} to {loss:.4g}"
    return ""


def _trigger_stopping(cfg: TrainConfig, opt: OptimizerState, msg: str) -> bool:
    """scikit-learn's rule: stop, or divide an adaptive learning rate by 5."""
    if cfg.learning_rate != "adaptive":
        if cfg.verbose:
            print(msg + " Stopping.")
        return True
    if opt.learning_rate <= 1e-6:
        if cfg.verbose:
            print(msg + " Learning rate too small. Stopping.")
        return True
    opt.learning_rate /= 5.0
    if cfg.verbose:
        print(msg + " Setting learning rate to %f" % opt.learning_rate)
    return False


def _update_no_improvement_count(
    est: BaseBP,
    cfg: TrainConfig,
    val: ValidationSet | None,
    scorer: Callable[..., float] | None,
    gov: ThreadGovernor,
) -> None:
    if cfg.early_stopping:
        score = score_validation(est, cfg, val, scorer, gov)
        est.validation_scores_.append(score)
        if cfg.verbose:
            print("Validation score: %f" % score)
        if score < est.best_validation_score_ + cfg.tol:
            est._no_improvement_count += 1
        else:
            est._no_improvement_count = 0
        if score > est.best_validation_score_:
            est.best_validation_score_ = score
            est._best_w = est._w.copy()
            est._best_bn_run = est._bn_run.copy()
    else:
        if est.loss_curve_[-1] > est.best_loss_ - cfg.tol:
            est._no_improvement_count += 1
        else:
            est._no_improvement_count = 0
        if est.loss_curve_[-1] < est.best_loss_:
            est.best_loss_ = est.loss_curve_[-1]


class LbfgsTrainer:
    """Full-batch training with scipy's L-BFGS-B on the compiled loss and gradient.

    scipy drives the iterations: :meth:`loss_grad` is its objective (and opens
    the callbacks' task of an iteration at its first evaluation), and
    :meth:`end_of_iteration` its ``callback`` (books, printing, diagnostics,
    the callbacks' end of the iteration; ``StopIteration`` when one asks to
    stop).  With batch norm the statistics are those of the whole training set,
    and the running statistics used by ``predict`` are set to them at the end.
    Given validation rows (``validation``) are scored after every iteration,
    into ``validation_loss_curve_``; nothing stops or is restored on them.
    """

    def __init__(
        self,
        est: BaseBP,
        cfg: TrainConfig,
        problem: Problem,
        gov: ThreadGovernor,
        tasks: FitTasks,
        validation: ValidationSet | None = None,
    ) -> None:
        self.est, self.cfg, self.problem, self.gov, self.tasks = est, cfg, problem, gov, tasks
        self.val, self.val_curve = validation, []
        self.val_gov = ThreadGovernor(gov.n_max)
        self.ws = _full_workspace(est, problem)
        # "w": the starting parameters until a finite loss
        self.best = {"loss": np.inf, "w": est._w.copy()}
        self.parallel = has_parallel_work(est._layout, self.ws.batch_rows, problem.sparse)
        self.curve, self.grad_norms = [], []
        self.norms = np.zeros(est.n_layers_ - 1)
        self.stopped = False
        self.t0 = time.perf_counter()
        est._gradient_warned = False

    def loss_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """scipy's objective: loss and gradient (float64) at ``x``."""
        est, w, best = self.est, self.est._w, self.best
        if self.tasks.task is None:
            self.tasks.begin("iteration")
        w[:] = x
        n = self.gov.threads() if self.parallel else 1
        t0 = time.perf_counter()
        loss = full_loss(est, self.cfg, self.problem, self.ws, gnorm=self.norms)
        self.gov.record(n, time.perf_counter() - t0)
        first = best["loss"] == np.inf  # no finite evaluation yet: this is the first
        if first and not (np.isfinite(loss) and np.isfinite(self.ws.grad).all()):
            # the loss or gradient at the starting parameters: the data overflows
            w[:] = best["w"]
            raise ValueError(_nonfinite_start_message(float(loss), self.problem))
        if first:  # the fit's kernel runs: the prediction kernel compiles beside it
            compile_ahead(self.problem.data(), w, network(est), self.ws.bufs, running_stats(est))
        if np.isfinite(loss) and loss < best["loss"] and np.isfinite(w).all():
            best["loss"] = loss
            best["w"][:] = w
        return loss, self.ws.grad.astype(np.float64)

    def end_of_iteration(self, intermediate_result: scipy.optimize.OptimizeResult) -> None:
        """scipy's callback after each iteration."""
        cfg = self.cfg
        est = self.est
        self.curve.append(float(intermediate_result.fun))
        # self.norms: each layer's data-gradient norm at the last evaluation
        self.grad_norms.append(self.norms.copy())
        if cfg.verbose:
            now = time.perf_counter()
            print(
                "Iteration %d, loss = %.8f, time = %.3f s"
                % (len(self.curve), self.curve[-1], now - self.t0)
            )
            self.t0 = now
        check_gradients(est, self.cfg, self.norms, len(self.curve))
        est.n_iter_, est.loss_ = len(self.curve), self.curve[-1]
        est.loss_curve_ = self.curve
        if self.val is not None:
            self.score_validation(intermediate_result.x)
        if self.tasks.end(intermediate_result.x):
            self.stopped = True
            if cfg.verbose:
                print("A callback asked to stop after iteration %d. Stopping." % est.n_iter_)
            raise StopIteration

    def score_validation(self, x: np.ndarray) -> None:
        """The validation loss of the iterate ``x``, appended to ``validation_loss_curve_``.

        The network is set to ``x`` (the next evaluation sets its own point)
        and, with batch norm, its running statistics to the training set's, as
        at the end of the fit, so the loss is that of the model ``x`` would be.
        """
        est = self.est
        est._w[:] = x
        if est._layout.batch_norm:
            full_loss(est, self.cfg, self.problem, self.ws, bn_momentum=1.0)
        P = network_output(est, self.val.problem, self.val_gov)
        self.val_curve.append(
            validation_loss(P, self.val.problem.Y, self.val.problem.sw, est.out_activation_)
        )
        est.validation_loss_curve_ = self.val_curve

    def run(self) -> None:
        cfg = self.cfg
        est = self.est
        w = est._w
        compile_interrupted()  # (forget one cut short outside a fit)
        try:
            res = scipy.optimize.minimize(
                self.loss_grad,
                w.astype(np.float64),
                method="L-BFGS-B",
                jac=True,
                callback=self.end_of_iteration,
                options={"maxfun": cfg.max_fun, "maxiter": cfg.max_iter, "gtol": cfg.tol},
            )
        except KeyboardInterrupt:
            if compile_interrupted():  # (as in StochasticTrainer.run)
                self.tasks.abandon()
                w[:] = self.best["w"]
                raise
            warnings.warn("Training interrupted by user.")
            res = None
        self.tasks.abandon()  # evaluations after the last completed iteration
        if res is None:
            self._interrupted()
        else:
            self._finish(res)
        if est._layout.batch_norm:
            full_loss(est, self.cfg, self.problem, self.ws, bn_momentum=1.0)
        est.loss_curve_ = self.curve
        est.validation_loss_curve_ = self.val_curve if self.val is not None else None
        est._gradient_norms = self.grad_norms
        est.best_loss_ = min(self.curve) if self.curve else est.loss_

    def _interrupted(self) -> None:
        """Ctrl-C: keep the best parameters evaluated so far (the start, at the latest)."""
        est, best = self.est, self.best
        est._w[:] = best["w"]
        est.n_iter_ = len(self.curve)
        if np.isfinite(best["loss"]):
            est.loss_ = float(best["loss"])
        else:  # interrupted before the first evaluation finished
            est.loss_ = float(full_loss(est, self.cfg, self.problem, self.ws))

    def _finish(self, res: scipy.optimize.OptimizeResult) -> None:
        cfg = self.cfg
        est, w = self.est, self.est._w
        w[:] = res.x
        est.n_iter_ = min(int(res.nit), cfg.max_iter) if not self.stopped else len(self.curve)
        est.loss_ = float(res.fun)
        if not np.isfinite(res.fun) or not np.isfinite(w).all():
            w[:] = self.best["w"]
            est.loss_ = float(self.best["loss"])
            warnings.warn(
                _diverged_message(self.cfg, est.n_iter_, "the loss became infinite or NaN"),
                DivergenceWarning,
            )
        elif res.status != 0 and not self.stopped:
            warnings.warn(
                f"lbfgs failed to converge after {est.n_iter_} iteration(s) "
                f"(status={res.status}): {res.message}. Increase the number of "
                "iterations (max_iter, max_fun) or scale the data.",
                ConvergenceWarning,
            )
