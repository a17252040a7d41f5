"""One whole epoch of mini-batch training as a single compiled call.

Shuffling, batching, forward, loss, backward and the optimizer update all run
inside :func:`run_epoch`: there is no Python call per mini-batch.  The Python
training loop (``_training.py``) calls it once per epoch and handles what
happens between epochs: schedules, early stopping, diagnostics, printing.
"""

import numpy as np
from numba import njit

from ._jit import JIT_OPTIONS
from ._kernels import _view, backward, finish_gradient, forward, loss_and_delta
from ._optim import SOLVER_SGD, adam_step, sgd_step

# Status codes returned by run_epoch.
EPOCH_OK, EPOCH_DIVERGED = 0, 1


@njit(**JIT_OPTIONS)
def _splitmix64(state):
    """Next 64-bit output of the splitmix64 generator; advances ``state[0]``."""
    z = state[0] + np.uint64(0x9E3779B97F4A7C15)
    state[0] = z
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(**JIT_OPTIONS)
def shuffle_inplace(idx, state):
    """Fisher-Yates shuffle of ``idx`` driven by a splitmix64 ``state``.

    Depends on nothing but the seed, so a ``random_state`` fixes the order of
    the mini-batches on any machine and for any thread count.
    """
    for i in range(idx.shape[0] - 1, 0, -1):
        j = np.int64(_splitmix64(state) % np.uint64(i + 1))
        tmp = idx[i]
        idx[i] = idx[j]
        idx[j] = tmp


@njit(**JIT_OPTIONS)
def run_epoch(
    Xd, Xdat, Xind, Xptr, sparse, Y, sw, idx, shuffle, rng_state, batch_size,
    w, sizes, coef_off, int_off, act_off, n_coef, hidden, out_code, alpha,
    solver, lr, momentum, nesterov, beta_1, beta_2, epsilon, opt_m, opt_v, opt_t,
    X0, acts, deltas, grad, out,
):  # fmt: skip
    """Train for one epoch over the rows ``idx``; return a status code.

    ``out[0]`` receives the sum over mini-batches of ``batch_loss * batch_rows``
    (scikit-learn's ``accumulated_loss``) and ``out[1]`` the loss of the first
    mini-batch before its update (the reference for divergence checks).  The
    epoch stops early with ``EPOCH_DIVERGED`` as soon as a mini-batch loss is
    not finite; the caller then restores its last good parameters.
    """
    if shuffle:
        shuffle_inplace(idx, rng_state)
    n = idx.shape[0]
    n_out = sizes[sizes.shape[0] - 1]
    last = act_off.shape[0] - 1
    acc = 0.0
    gtmp = np.empty(0, dtype=w.dtype)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        rows = idx[start:stop]
        B = stop - start
        forward(Xd, Xdat, Xind, Xptr, sparse, rows, w, sizes, coef_off, int_off,
                act_off, batch_size, hidden, out_code, X0, acts)  # fmt: skip
        P = _view(acts, batch_size * act_off[last], B, n_out)
        D = _view(deltas, batch_size * act_off[last], B, n_out)
        data_loss = loss_and_delta(P, Y, sw, rows, out_code, D)
        sw_sum = 0.0
        for i in range(B):
            sw_sum += sw[rows[i]]
        if sw_sum <= 0.0:
            # Every row of this batch has zero weight: nothing to learn from.
            continue
        backward(Xd, Xdat, Xind, Xptr, sparse, rows, w, sizes, coef_off, int_off,
                 act_off, batch_size, hidden, X0, acts, deltas, grad, gtmp, False)  # fmt: skip
        batch_loss = data_loss / sw_sum + finish_gradient(w, grad, n_coef, alpha, sw_sum)
        if start == 0:
            out[1] = batch_loss
        if not np.isfinite(batch_loss):
            out[0] = acc
            return EPOCH_DIVERGED
        acc += batch_loss * B
        if solver == SOLVER_SGD:
            sgd_step(w, grad, opt_m, lr, momentum, nesterov)
        else:
            opt_t[0] += 1
            adam_step(w, grad, opt_m, opt_v, opt_t[0], lr, beta_1, beta_2, epsilon)
    out[0] = acc
    return EPOCH_OK
