"""One whole epoch of mini-batch training as a single compiled call.

Shuffling, batching, dropout masks, forward, loss, backward, gradient clipping
and the optimizer update all run inside :func:`run_epoch`: there is no Python
call per mini-batch.  The Python training loop (``_training.py``) calls it
once per epoch and handles what happens between epochs: the per-epoch
schedules, early stopping, diagnostics, printing.  (The schedules stepped per
update compute each mini-batch's rate in here, from the optimizer record.)
"""

import math

import numpy as np

from ._jit import jit
from ._kernels import _view, backward, forward, loss_and_delta, prefetch_rows, splitmix64
from ._optim import SOLVER_SGD, scheduled_lr
from ._update import update_blocks

# Status codes returned by run_epoch.
EPOCH_OK, EPOCH_DIVERGED = 0, 1
#: momentum of batch norm's running statistics (as PyTorch's default)
BN_MOMENTUM = 0.1


@jit()
def shuffle_inplace(idx, state):
    """Fisher-Yates shuffle of ``idx`` driven by a splitmix64 ``state``.

    Depends on nothing but the seed, so a ``random_state`` fixes the order of
    the mini-batches on any machine and for any thread count.
    """
    for i in range(idx.shape[0] - 1, 0, -1):
        j = np.int64(splitmix64(state) % np.uint64(i + 1))
        tmp = idx[i]
        idx[i] = idx[j]
        idx[j] = tmp


@jit(entry=True)
def run_epoch(data, w, net, bufs, bn_run, penalty, opt, epoch, row_start, row_stop):
    """Train on the mini-batches of one epoch over ``epoch.idx`` that start in
    ``[row_start, row_stop)``; return a status code.

    The arguments are the records of ``skbp._records``: the training rows
    ``data``, the parameters ``w`` and network ``net``, the work buffers, batch
    norm's running statistics, the ``penalty`` (and clipping), the optimizer
    ``opt`` (its state arrays advance in place) and the ``epoch``'s order and
    outputs.  An epoch may run as one call (``0, len(idx)``) or as several calls
    over consecutive row ranges (the steps of ``skbp._runtime.ThreadGovernor``):
    the rows are shuffled when ``row_start == 0``, and ``epoch.out``
    accumulates over the calls of an epoch (the caller zeroes it first), so both
    give the same numbers.  ``out[0]`` receives the sum over mini-batches of
    ``batch_loss * batch_rows`` (scikit-learn's ``accumulated_loss``), ``out[1]``
    the loss of the first mini-batch before its update (the reference for
    divergence checks), ``out[2]`` the number of updates and ``out[3]`` the row
    where the next call starts (``len(idx)`` at the end of the epoch).
    Each update's learning rate is ``skbp._optim.scheduled_lr`` at the
    mini-batch's place ``opt.u0 + start // batch_size`` in the schedule: it
    depends on where the batch starts, not on which call trains it.
    ``epoch.gnorm`` receives, per layer, the sum over updates of the norm of the
    data loss's weight gradient (without the penalty, before clipping).  The
    epoch stops early with ``EPOCH_DIVERGED`` as soon as a mini-batch loss is
    not finite; the caller then restores its last good parameters.
    """
    # the records' fields used per mini-batch, read once (see skbp._kernels.forward)
    sizes, act_off, out_code = net.sizes, net.act_off, net.out_code
    idx, rng, batch_size, grad, out = epoch.idx, epoch.rng, epoch.batch_size, epoch.grad, epoch.out
    gnorm, Y, sw, acts, deltas = epoch.gnorm, data.Y, data.sw, bufs.acts, bufs.deltas
    solver, t = opt.solver, opt.t
    if epoch.shuffle and row_start == 0:
        shuffle_inplace(idx, rng)
    n = idx.shape[0]
    n_out = sizes[sizes.shape[0] - 1]
    last = act_off.shape[0] - 1
    B_max = bufs.rows
    blocks, part = net.blocks, bufs.part
    par = net.tune[7] != 0  # whether a parallel region may run (skbp._matmul.tune_array)
    acc = out[0]  # continued, not restarted: the same sum for any split into calls
    n_updates = 0
    start = row_start
    # run-time flags, never literals (see skbp._kernels): train with fresh dropout
    # masks, and write (not accumulate) the gradient
    on = batch_size > 0
    off = batch_size < 0
    end = row_stop if row_stop < n else n
    while start < end:
        stop = start + batch_size if start + batch_size < n else n
        if bn_run is not None and n - stop == 1:
            # batch norm cannot normalise a one-row batch (its variance is 0):
            # the last row joins this batch (the buffers hold batch_size + 1 rows)
            stop = n
        rows = idx[start:stop]
        B = stop - start
        first = start == 0
        # the schedule's clock counts mini-batches (one skipped below for zero
        # weights too), so each batch's place depends on the batching alone
        u = opt.u0 + start // batch_size
        start = stop
        sw_sum = 0.0
        for i in range(B):
            sw_sum += sw[rows[i]]
        if sw_sum <= 0.0:
            # Every row of this batch has zero weight: nothing to learn from.
            continue
        # the next batch's rows arrive while this one trains
        prefetch_rows(data, idx, stop, stop + batch_size if stop + batch_size < n else n)
        forward(data, rows, w, net, on, on, BN_MOMENTUM, rng, bufs, bn_run)
        P = _view(acts, B_max * act_off[last], B, n_out)
        D = _view(deltas, B_max * act_off[last], B, n_out)
        data_loss = loss_and_delta(P, Y, sw, rows, out_code, D)
        if not math.isfinite(data_loss):
            if first:
                out[1] = data_loss
            out[0] = acc
            out[2] += n_updates
            out[3] = start
            return EPOCH_DIVERGED
        backward(data, rows, w, net, bufs, bn_run, grad, off)
        if solver != SOLVER_SGD:
            t[0] += 1
        # diagnostics on the data gradient alone: the penalty would mask a vanishing one
        lr = scheduled_lr(opt.schedule, opt.lr, opt.lr_min, opt.warmup, opt.n_cycles, u,
                          opt.horizon)  # fmt: skip
        value = update_blocks(blocks, w, grad, sw_sum, part, gnorm, penalty, opt, lr, par)
        batch_loss = data_loss / sw_sum + value
        if first:
            out[1] = batch_loss
        n_updates += 1
        if not math.isfinite(batch_loss):
            # a non-finite penalty: the parameters were already non-finite (the
            # caller restores its last good ones)
            out[0] = acc
            out[2] += n_updates
            out[3] = start
            return EPOCH_DIVERGED
        acc += batch_loss * B
    out[0] = acc
    out[2] += n_updates
    out[3] = start
    return EPOCH_OK
