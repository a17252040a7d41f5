"""The training loops in Python: one compiled call per epoch (or per L-BFGS step).

What happens *between* epochs lives here -- learning-rate schedules, early
stopping, divergence checks, verbose output, interrupt handling -- written as
small steps on the estimator's state.  Nothing here loops over mini-batches.
"""

import warnings

import numpy as np
import scipy.optimize
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from ._data import Problem, Workspace, readonly
from ._epoch import EPOCH_OK, run_epoch
from ._kernels import full_loss_grad, predict
from ._optim import SOLVER_SGD, OptimizerState
from .exceptions import DivergenceWarning

#: rows per chunk for prediction and the full-batch (L-BFGS) gradient
CHUNK_ROWS = 256
#: a fit has diverged when its loss exceeds this many times where it started
DIVERGENCE_FACTOR = 1e4


def network_output(est, problem):
    """Output-layer activations for every row of ``problem``, in the model dtype."""
    layout, w = est._layout, est._packed_params()
    chunk = max(1, min(CHUNK_ROWS, problem.n_rows))
    ws = Workspace(layout, chunk, w.dtype, problem.sparse)
    out = np.empty((problem.n_rows, int(layout.sizes[-1])), dtype=w.dtype)
    predict(
        *problem.x_arrays(), problem.n_rows, readonly(w), *layout.offsets(),
        est._hidden_code, est._out_code, chunk,
        ws.X0, ws.acts, out,
    )  # fmt: skip
    return out


def full_loss(est, problem, ws):
    """Objective over all rows of ``problem`` at the current parameters.

    Leaves the gradient in ``ws.grad``; ``ws`` must hold ``ws.batch_rows`` rows.
    """
    layout = est._layout
    return full_loss_grad(
        *problem.x_arrays(), problem.Y, problem.sw, est._w, *layout.offsets(),
        layout.n_coef_params,
        est._hidden_code, est._out_code, float(est.alpha), ws.batch_rows, ws.X0,
        ws.acts, ws.deltas, ws.grad, ws.gtmp,
    )  # fmt: skip


def _full_workspace(est, problem):
    chunk = max(1, min(CHUNK_ROWS, problem.n_rows))
    return Workspace(est._layout, chunk, est._w.dtype, problem.sparse)


def _diverged_message(est, it, why):
    return (
        f"Training diverged at iteration {it}: {why}. The parameters were "
        f"restored to the last ones with a finite, lowest loss and training "
        f"stopped. Try a smaller learning_rate_init (it is "
        f"{est.learning_rate_init!r}), scaling the inputs and targets, or a "
        f"smaller momentum."
    )


def _resolve_batch_size(batch_size, n_samples):
    if batch_size == "auto":
        return min(200, n_samples)
    if batch_size > n_samples:
        warnings.warn(
            "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped"
        )
    return int(np.clip(batch_size, 1, n_samples))


def _split_validation(est, problem, y_val_source):
    """Random (stratified for single-output classification) validation split."""
    from sklearn.base import is_classifier

    n = problem.n_rows
    stratify = y_val_source if (is_classifier(est) and est.n_outputs_ == 1) else None
    idx_train, idx_val = train_test_split(
        np.arange(n),
        random_state=est._random_state,
        test_size=est.validation_fraction,
        stratify=stratify,
    )
    if idx_val.shape[0] < 2:
        raise ValueError(
            "The validation set is too small. Increase 'validation_fraction' or "
            "the size of your dataset."
        )
    X = problem.X
    train = Problem(X[idx_train], problem.dtype, problem.Y[idx_train], problem.sw[idx_train])
    val = Problem(X[idx_val], problem.dtype, problem.Y[idx_val], problem.sw[idx_val])
    return train, val


def fit_stochastic(est, problem, incremental, y_raw):
    """Mini-batch training with SGD or Adam: the epoch loop.

    Mirrors scikit-learn's ``_fit_stochastic`` (same attributes, schedules and
    stopping rule) with each epoch one compiled call.
    """
    layout, w = est._layout, est._w
    if not incremental or not hasattr(est, "_optimizer"):
        est._optimizer = OptimizerState(
            est.solver, layout.n_params, w.dtype, est.learning_rate_init
        )
    opt = est._optimizer.astype(w.dtype)
    # divergence is judged against the start of this call: the data (and the
    # scale of the loss) may differ from those of earlier fit/partial_fit calls
    est._loss_ref = None
    if est.early_stopping and incremental:
        raise ValueError("partial_fit does not support early_stopping=True")
    early_stopping = est.early_stopping
    if early_stopping:
        train, val = _split_validation(est, problem, y_raw)
        y_val = est._decode_targets(val.Y)
    else:
        train, val, y_val = problem, None, None

    n_samples = train.n_rows
    batch_size = _resolve_batch_size(est.batch_size, n_samples)
    ws = Workspace(layout, batch_size, w.dtype, train.sparse)
    idx = np.arange(n_samples, dtype=np.int64)
    rng_state = np.array(
        [est._random_state.randint(np.iinfo(np.int64).max, dtype=np.int64)],
        dtype=np.uint64,
    )
    sums = np.zeros(2, dtype=np.float64)
    best_w, best_w_loss = w.copy(), np.inf
    hyper = (
        float(est.momentum), bool(est.nesterovs_momentum), float(est.beta_1),
        float(est.beta_2), float(est.epsilon),
    )  # fmt: skip

    try:
        est.n_iter_ = 0
        w_start = w.copy()
        for _ in range(est.max_iter):
            w_start[:] = w
            status = run_epoch(
                *train.x_arrays(), train.Y, train.sw, idx, bool(est.shuffle),
                rng_state, batch_size, w, *layout.offsets(), layout.n_coef_params,
                est._hidden_code, est._out_code, float(est.alpha), opt.code,
                opt.learning_rate, *hyper, opt.m, opt.v, opt.t, ws.X0, ws.acts,
                ws.deltas, ws.grad, sums,
            )  # fmt: skip
            if est._loss_ref is None and np.isfinite(sums[1]):
                est._loss_ref = float(sums[1])
            loss = sums[0] / n_samples
            why = _divergence(est, status, loss, w)
            if why:
                w[:] = best_w
                est.loss_ = float(full_loss(est, train, _full_workspace(est, train)))
                warnings.warn(_diverged_message(est, est.n_iter_ + 1, why), DivergenceWarning)
                break
            if loss <= best_w_loss:
                best_w[:] = w_start
                best_w_loss = loss

            est.n_iter_ += 1
            est.loss_ = float(loss)
            est.t_ += n_samples
            est.loss_curve_.append(est.loss_)
            if est.verbose:
                print("Iteration %d, loss = %.8f" % (est.n_iter_, est.loss_))

            _update_no_improvement_count(est, early_stopping, val, y_val)

            if opt.code == SOLVER_SGD and est.learning_rate == "invscaling":
                opt.learning_rate = est.learning_rate_init / (est.t_ + 1) ** est.power_t

            if est._no_improvement_count > est.n_iter_no_change:
                if early_stopping:
                    msg = (
                        "Validation score did not improve more than tol=%f for %d "
                        "consecutive epochs." % (est.tol, est.n_iter_no_change)
                    )
                else:
                    msg = (
                        "Training loss did not improve more than tol=%f for %d "
                        "consecutive epochs." % (est.tol, est.n_iter_no_change)
                    )
                if _trigger_stopping(est, opt, msg):
                    break
                est._no_improvement_count = 0

            if incremental:
                break

            if est.n_iter_ == est.max_iter:
                warnings.warn(
                    "Stochastic Optimizer: Maximum iterations (%d) reached and the "
                    "optimization hasn't converged yet." % est.max_iter,
                    ConvergenceWarning,
                )
    except KeyboardInterrupt:
        warnings.warn("Training interrupted by user.")

    if early_stopping:
        w[:] = est._best_w


def _divergence(est, status, loss, w):
    """Why the last epoch counts as diverged, or an empty string."""
    if status != EPOCH_OK or not np.isfinite(loss):
        return "the training loss became infinite or NaN"
    if not np.isfinite(w).all():
        return "the parameters became infinite or NaN"
    ref = est._loss_ref if est._loss_ref is not None else loss
    if loss > DIVERGENCE_FACTOR * max(ref, 1.0):
        return f"the training loss grew from {ref:.4g} to {loss:.4g}"
    return ""


def _trigger_stopping(est, opt, msg):
    """scikit-learn's rule: stop, or divide an adaptive SGD learning rate by 5."""
    if opt.code != SOLVER_SGD or est.learning_rate != "adaptive":
        if est.verbose:
            print(msg + " Stopping.")
        return True
    if opt.learning_rate <= 1e-6:
        if est.verbose:
            print(msg + " Learning rate too small. Stopping.")
        return True
    opt.learning_rate /= 5.0
    if est.verbose:
        print(msg + " Setting learning rate to %f" % opt.learning_rate)
    return False


def _update_no_improvement_count(est, early_stopping, val, y_val):
    if early_stopping:
        score = est._score_output(network_output(est, val), y_val, val.sw)
        est.validation_scores_.append(score)
        if est.verbose:
            print("Validation score: %f" % score)
        if score < est.best_validation_score_ + est.tol:
            est._no_improvement_count += 1
        else:
            est._no_improvement_count = 0
        if score > est.best_validation_score_:
            est.best_validation_score_ = score
            est._best_w = est._w.copy()
    else:
        if est.loss_curve_[-1] > est.best_loss_ - est.tol:
            est._no_improvement_count += 1
        else:
            est._no_improvement_count = 0
        if est.loss_curve_[-1] < est.best_loss_:
            est.best_loss_ = est.loss_curve_[-1]


def fit_lbfgs(est, problem):
    """Full-batch training with scipy's L-BFGS-B on the compiled loss and gradient."""
    w = est._w
    ws = _full_workspace(est, problem)
    best = {"loss": np.inf, "w": w.copy()}

    def loss_grad(x):
        w[:] = x
        loss = full_loss(est, problem, ws)
        if np.isfinite(loss) and loss < best["loss"] and np.isfinite(w).all():
            best["loss"] = loss
            best["w"][:] = w
        return loss, ws.grad.astype(np.float64)

    curve = []

    def callback(intermediate_result):
        curve.append(float(intermediate_result.fun))
        if est.verbose:
            print("Iteration %d, loss = %.8f" % (len(curve), curve[-1]))

    try:
        res = scipy.optimize.minimize(
            loss_grad,
            w.astype(np.float64),
            method="L-BFGS-B",
            jac=True,
            callback=callback,
            options={"maxfun": est.max_fun, "maxiter": est.max_iter, "gtol": est.tol},
        )
    except KeyboardInterrupt:
        warnings.warn("Training interrupted by user.")
        res = None
    if res is None:
        w[:] = best["w"]
        est.n_iter_ = len(curve)
        est.loss_ = float(best["loss"])
    else:
        w[:] = res.x
        est.n_iter_ = min(int(res.nit), est.max_iter)
        est.loss_ = float(res.fun)
        if not np.isfinite(res.fun) or not np.isfinite(w).all():
            w[:] = best["w"]
            est.loss_ = float(best["loss"])
            warnings.warn(
                _diverged_message(est, est.n_iter_, "the loss became infinite or NaN"),
                DivergenceWarning,
            )
        elif res.status != 0:
            warnings.warn(
                f"lbfgs failed to converge after {est.n_iter_} iteration(s) "
                f"(status={res.status}): {res.message}. Increase the number of "
                "iterations (max_iter, max_fun) or scale the data.",
                ConvergenceWarning,
            )
    est.loss_curve_ = curve
    est.best_loss_ = min(curve) if curve else est.loss_
