"""The per-update work on the flat parameter vector, in fixed blocks.

After the backward pass a mini-batch update touches every parameter a few
times: the per-layer gradient norms (diagnostics), the penalty and the
division by the weight sum, the norm for gradient clipping, and the optimizer
step.  For a large network (hundreds of thousands of parameters) this is a
good part of an update, so it runs in two sweeps over fixed blocks of the vector:

1. :func:`finish_blocks` -- per block: the squared norm of the data gradient
   (per layer, blocks never straddle two weight matrices), the penalty's
   ``sum w^2`` and ``sum |w|``, then the gradient is finished in place
   (penalty added, divided by the weight sum) and its squared norm taken;
2. :func:`step_blocks` -- the optimizer step, with the clipping scale folded
   in, after the decoupled weight decay (weight blocks only, unless the
   optimizer's ``decay_biases``: the table of blocks says which are which).

Without gradient clipping the two run block by block in a single sweep
(:func:`update_blocks`).  Partial sums are kept per block and added in block
order afterwards, so the result does not depend on how blocks are shared
among threads.  The blocks run under ``prange`` when the vector has at least
:data:`PAR_MIN_PARAMS` entries and a parallel region may run (``par``), and
serially otherwise; either way each block is the same computation, so a
network gets the same bits whatever the thread count or threading layer.
"""

import math

import numpy as np
from numba import prange

from ._jit import jit
from ._optim import SOLVER_SGD, adam_step, decay_step, sgd_step

#: entries per block of the parameter vector
BLOCK = 4096
#: the ``layer`` of the blocks past the weight matrices (biases, batch norm,
#: the embedding's frequencies and biases): neither penalised nor decayed
#: (unless ``decay_biases``), in no layer's gradient norm
REST = -1
#: the ``layer`` of the periodic embedding's weight blocks: penalised and
#: decayed as weights, in no layer's gradient norm
EMB_WEIGHTS = -2
#: vectors at least this long are updated in parallel
PAR_MIN_PARAMS = 1 << 16
#: columns of the per-block partial sums
_GRAD_SQ, _PEN_SQ, _PEN_ABS, _FIN_SQ = 0, 1, 2, 3
#: the sweeps of _sweep_parallel: finish, step, or both block by block
_FINISH, _STEP, _BOTH = 0, 1, 2


def param_blocks(sizes, coef_off, n_params, emb_coefs=(0, 0)):
    """``(n_blocks, 3)`` table of ``start, stop, layer``.

    Each weight matrix is cut into blocks of :data:`BLOCK` entries (``layer``
    its index); the rest of the vector (biases, batch norm, the periodic
    embedding) follows in blocks of its own, ``layer`` :data:`REST`, except the
    embedding's weight matrices ``w[emb_coefs[0]:emb_coefs[1]]``, which are
    penalised and decayed as weights but have no layer: :data:`EMB_WEIGHTS`.
    Plain NumPy: made once per network (``skbp._layout.Layout.net``), so the
    kernels allocate nothing (an allocation is a compiled specialisation of its
    own).
    """
    n_trans = len(sizes) - 1
    rows = []
    for l in range(n_trans):
        start = int(coef_off[l])
        stop = start + int(sizes[l]) * int(sizes[l + 1])
        rows += [(s, min(s + BLOCK, stop), l) for s in range(start, stop, BLOCK)]
    n_coef = int(coef_off[n_trans - 1]) + int(sizes[n_trans - 1]) * int(sizes[n_trans])
    e0, e1 = (int(v) for v in emb_coefs)
    if e1 <= e0:
        e0 = e1 = n_params
    for start, stop, code in ((n_coef, e0, REST), (e0, e1, EMB_WEIGHTS), (e1, n_params, REST)):
        rows += [(s, min(s + BLOCK, stop), code) for s in range(start, stop, BLOCK)]
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


@jit()
def _finish_coef(w, grad, a1, a2, inv):
    # one flat loop over 1-D slices, so that LLVM vectorises it
    g2 = 0.0
    sq = 0.0
    ab = 0.0
    f2 = 0.0
    if a1 == 0.0 and a2 == 0.0:  # no penalty (alpha=0): the same numbers, fewer operations
        for k in range(w.shape[0]):
            g = grad[k]
            g2 += g * g
            g = g * inv
            grad[k] = g
            f2 += g * g
        return g2, sq, ab, f2
    for k in range(w.shape[0]):
        v = w[k]
        g = grad[k]
        g2 += g * g
        sq += v * v
        ab += abs(v)
        sgn = 1.0 if v > 0 else (-1.0 if v < 0 else 0.0)
        g = (g + a2 * v + a1 * sgn) * inv
        grad[k] = g
        f2 += g * g
    return g2, sq, ab, f2


@jit()
def _finish_rest(grad, inv):
    f2 = 0.0
    for k in range(grad.shape[0]):
        g = grad[k] * inv
        grad[k] = g
        f2 += g * g
    return f2


@jit()
def _finish_one(b, blocks, w, grad, a1, a2, inv, part):
    s, e, layer = blocks[b, 0], blocks[b, 1], blocks[b, 2]
    if layer != REST:
        g2, sq, ab, f2 = _finish_coef(w[s:e], grad[s:e], a1, a2, inv)
    else:
        g2, sq, ab = 0.0, 0.0, 0.0
        f2 = _finish_rest(grad[s:e], inv)
    part[b, _GRAD_SQ] = g2
    part[b, _PEN_SQ] = sq
    part[b, _PEN_ABS] = ab
    part[b, _FIN_SQ] = f2


@jit()
def finish_blocks(blocks, w, grad, alpha, l1_ratio, sw_sum, part, gnorm, max_grad_norm, par):
    """Finish the gradient in place; return ``(penalty, clip_scale)``.

    Adds ``1 / sw_sum`` times each layer's data-gradient norm to ``gnorm``.
    The gradient becomes ``(g + alpha * ((1 - l1_ratio) w + l1_ratio sign(w))) /
    sw_sum`` on the weights and ``g / sw_sum`` elsewhere: the one place of the
    penalty's formula (mini-batch updates and ``full_loss_grad`` alike).
    ``clip_scale`` is the factor that
    brings the finished gradient's norm down to ``max_grad_norm`` (1 when
    clipping is off or not needed).  ``par``: whether a parallel region may run
    (``tune[7]`` of ``skbp._matmul.tune_array``).
    """
    inv = 1.0 / sw_sum
    a1 = alpha * l1_ratio
    a2 = alpha * (1.0 - l1_ratio)
    if par and w.shape[0] >= PAR_MIN_PARAMS:
        off = a1 < 0  # False, as a run-time value
        hp = (0.0, 0.0, off, np.int64(0), 0.0, 0.0, 0.0, 0.0, off)  # unused by _FINISH
        # np.int64(...): run-time integers, not literals (one compiled version)
        _sweep_parallel(np.int64(_FINISH), blocks, w, grad, a1, a2, inv, part, 1.0,
                        np.int64(0), grad, grad, hp)  # fmt: skip
    else:
        for b in range(blocks.shape[0]):
            _finish_one(b, blocks, w, grad, a1, a2, inv, part)
    return _sum_parts(blocks, part, inv, a1, a2, gnorm, max_grad_norm)


@jit()
def _sum_parts(blocks, part, inv, a1, a2, gnorm, max_grad_norm):
    """Add the per-block partial sums in block order: ``(penalty, clip_scale)``."""
    sq = 0.0
    ab = 0.0
    f2 = 0.0
    layer = -1
    g2 = 0.0
    for b in range(blocks.shape[0]):
        if blocks[b, 2] != layer:
            if layer >= 0:
                gnorm[layer] += inv * math.sqrt(g2)
            layer = blocks[b, 2]
            g2 = 0.0
        g2 += part[b, _GRAD_SQ]
        sq += part[b, _PEN_SQ]
        ab += part[b, _PEN_ABS]
        f2 += part[b, _FIN_SQ]
    if layer >= 0:
        gnorm[layer] += inv * math.sqrt(g2)
    scale = 1.0
    if max_grad_norm > 0:
        norm = math.sqrt(f2)
        if norm > max_grad_norm:
            scale = max_grad_norm / norm
    return (0.5 * a2 * sq + a1 * ab) * inv, scale


@jit()
def update_blocks(blocks, w, grad, sw_sum, part, gnorm, penalty, opt, lr, par):
    """:func:`finish_blocks` then :func:`step_blocks`; return the penalty.

    ``penalty`` and ``opt`` are ``skbp._records.Penalty`` and ``Optimizer``;
    ``opt.t[0]`` is Adam's step number after this update; ``lr`` is this
    update's learning rate (``skbp._optim.scheduled_lr``).  Without clipping
    (``max_grad_norm <= 0``) the step needs no norm of the whole gradient, so
    each block is finished and stepped in turn, in one sweep (one parallel
    region, each block still in cache): the same arithmetic as two sweeps,
    since each entry's step only reads that entry (the compiler may contract
    multiply-adds differently, a last-bit difference).  Serial or parallel is
    chosen by the size alone, so a network gets the same bits on any number of
    threads.  The penalty is summed from ``w`` before its update, as in two
    sweeps.  (The serial loops are written out here and in the two functions
    above rather than shared through one more call level, whose cost small
    one-row updates feel.)
    """
    alpha, l1_ratio, max_grad_norm = penalty.alpha, penalty.l1_ratio, penalty.max_grad_norm
    if max_grad_norm > 0:
        value, clip = finish_blocks(blocks, w, grad, alpha, l1_ratio, sw_sum, part, gnorm,
                                    max_grad_norm, par)  # fmt: skip
        step_blocks(blocks, w, grad, clip, opt, lr, part, par)
        return value
    inv = 1.0 / sw_sum
    a1 = alpha * l1_ratio
    a2 = alpha * (1.0 - l1_ratio)
    # the optimizer's scalars as the sweeps take them (Adam's step number read now)
    hp = (lr, opt.momentum, opt.nesterov, opt.t[0], opt.beta_1, opt.beta_2, opt.epsilon,
          opt.weight_decay, opt.decay_biases)  # fmt: skip
    solver, m, v = opt.solver, opt.m, opt.v
    if par and w.shape[0] >= PAR_MIN_PARAMS:
        _sweep_parallel(np.int64(_BOTH), blocks, w, grad, a1, a2, inv, part, 1.0, solver, m, v,
                        hp)  # fmt: skip
    else:
        for b in range(blocks.shape[0]):
            _finish_one(b, blocks, w, grad, a1, a2, inv, part)
            _step_one(b, blocks, w, grad, 1.0, solver, m, v, hp)
    return _sum_parts(blocks, part, inv, a1, a2, gnorm, max_grad_norm)[0]


@jit()
def _step_one(b, blocks, w, grad, scale, solver, m, v, hp):
    lr, momentum, nesterov, t, b1, b2, eps, wd, decay_biases = hp
    s, e = blocks[b, 0], blocks[b, 1]
    # blocks past the weights (REST) hold the biases, batch norm's parameters
    # and the embedding's frequencies and biases
    if wd > 0.0 and (blocks[b, 2] != REST or decay_biases):
        decay_step(w[s:e], lr * wd)
    if solver == SOLVER_SGD:
        sgd_step(w[s:e], grad[s:e], m[s:e], lr, momentum, nesterov, scale)
    else:
        adam_step(w[s:e], grad[s:e], m[s:e], v[s:e], t, lr, b1, b2, eps, scale)


@jit(parallel=True)
def _sweep_parallel(op, blocks, w, grad, a1, a2, inv, part, scale, solver, m, v, hp):
    """The blocks of :func:`finish_blocks` (``op=_FINISH``), :func:`step_blocks`
    (``op=_STEP``) or both in turn (``op=_BOTH``) under ``prange``: one parallel
    kernel for all three (compile time)."""
    for b in prange(blocks.shape[0]):
        bb = np.int64(b)  # prange's index is unsigned: cast, or the callees compile twice
        if op != _STEP:
            _finish_one(bb, blocks, w, grad, a1, a2, inv, part)
        if op != _FINISH:
            _step_one(bb, blocks, w, grad, scale, solver, m, v, hp)


@jit()
def step_blocks(blocks, w, grad, scale, opt, lr, part, par):
    """One optimizer step on ``scale * grad`` at learning rate ``lr``: ``skbp._optim``'s
    rules, block by block (``opt.lr`` is not read: ``lr`` is the update's rate).

    With ``opt.weight_decay > 0`` each weight block (and with
    ``opt.decay_biases`` every block) first shrinks by ``1 - lr * weight_decay``.

    ``opt.t[0]`` is Adam's step number after this update (1-based); unused for SGD.
    ``part`` (the partial sums of :func:`finish_blocks`) is passed along unused.
    """
    # the optimizer's scalars as the sweeps take them (Adam's step number read now)
    hp = (lr, opt.momentum, opt.nesterov, opt.t[0], opt.beta_1, opt.beta_2, opt.epsilon,
          opt.weight_decay, opt.decay_biases)  # fmt: skip
    solver, m, v = opt.solver, opt.m, opt.v
    if par and w.shape[0] >= PAR_MIN_PARAMS:
        _sweep_parallel(np.int64(_STEP), blocks, w, grad, 0.0, 0.0, 0.0, part, scale, solver, m,
                        v, hp)  # fmt: skip
    else:
        for b in range(blocks.shape[0]):
            _step_one(b, blocks, w, grad, scale, solver, m, v, hp)
