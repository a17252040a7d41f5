"""Compiled kernels: forward pass, loss, backward pass, full-batch gradient, predict.

Conventions shared by every kernel (the records are ``skbp._records``):

* ``w`` is the flat parameter vector; ``net`` (a ``Net``) describes the
  network, one entry per layer transition ``l`` (from layer ``l`` to layer
  ``l + 1``): where its weights, biases and batch-norm parameters start in
  ``w``, where its output starts in a row of the activation buffers, its
  hidden activation code and residual flag, and its dropout probability.
* ``bufs`` (a ``Buffers``) holds the work buffers for batches of up to
  ``bufs.rows`` rows; each holds every layer's ``(B, width)`` block starting at
  ``bufs.rows * act_off[l]``.  The output layer's block of ``deltas`` holds
  ``(p - y) * sw``.  Unused buffers have size 0, so one compiled version serves
  every option.
* ``data`` (a ``Data``) is either dense (``Xd``, gathered row by row) or CSR
  (``Xdat``, ``Xind``, ``Xptr``); the unused form has size 0.  The first layer
  of a CSR input is computed from its non-zeros only.
* Activations and output/loss pairs arrive as integer codes and are branched on
  once per layer, never once per element.
* Batch norm's running statistics ``bn_run`` are ``None`` for a network without
  batch norm: Numba then prunes the batch-norm branches before compiling, so
  a model without batch norm never compiles batch norm's kernels (a good part
  of a cold first fit).  Each kernel has one version with and one without.
* Boolean flags passed from one kernel to another are computed from run-time
  values (``B < 0`` rather than ``False``): Numba types a constant argument
  as a literal and would compile the callee once per caller.

With a periodic embedding (``net.emb_cols`` not empty; dense input only) the
first layer's input is not ``X`` but, per row, each embedded column ``x_j``'s
``relu([cos(2 pi c_j x_j), sin(2 pi c_j x_j)] V_j + b_j)`` followed by the
other columns (:func:`_embed`), gathered into ``bufs.X0``; its backward pass
(:func:`_embed_grad`) runs after the first layer's.  Without one, the same
compiled code skips it at run time.

A hidden layer computes ``z = h W + b``, then (``batch_norm``) ``y = gamma *
(z - mean) / sqrt(var + eps) + beta``, then ``a = f(y)``, then (``dropout``)
``a *= mask``, then (``residual``) ``h' = a + h``.
"""

import math

import numpy as np

from ._jit import FASTMATH, flat_view, jit, prefetch, view_2d
from ._matmul import _zero, matmul
from ._update import finish_blocks

# Hidden activations.
ACT_IDENTITY, ACT_LOGISTIC, ACT_TANH, ACT_RELU, ACT_LEAKY_RELU, ACT_ELU = 0, 1, 2, 3, 4, 5
ACT_SELU, ACT_GELU, ACT_MISH = 6, 7, 8
ACTIVATION_CODES = {
    "identity": ACT_IDENTITY,
    "logistic": ACT_LOGISTIC,
    "sigmoid": ACT_LOGISTIC,
    "tanh": ACT_TANH,
    "relu": ACT_RELU,
    "leaky_relu": ACT_LEAKY_RELU,
    "elu": ACT_ELU,
    "selu": ACT_SELU,
    "gelu": ACT_GELU,
    "mish": ACT_MISH,
}
#: activations whose derivative is not a function of their output (neither is
#: monotonic): the backward pass needs their pre-activation, kept in ``bufs.fa``
PREACTIVATION_CODES = (ACT_GELU, ACT_MISH)
#: slope of leaky_relu for negative inputs
LEAKY_SLOPE = 0.01
#: SELU's scale and alpha (Klambauer et al., 2017), as PyTorch and Keras
SELU_SCALE = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717
#: 1 / sqrt(2) and 1 / sqrt(2 pi), for GELU's normal distribution function and density
_SQRT1_2 = 0.70710678118654752440084436210485
_INV_SQRT_2PI = 0.39894228040143267793994605993438
#: variance epsilon of batch normalization (as PyTorch's BatchNorm1d)
BN_EPS = 1e-5

# Output activation and its canonical loss: each pair has the gradient
# d loss / d z = p - y with respect to the output pre-activation z, which is
# why the backward pass can start from ``delta = (p - y) * sample_weight``:
#   identity + half squared error, logistic + binary cross-entropy (binary and
#   multilabel), softmax + categorical cross-entropy, exp + half Poisson deviance.
OUT_IDENTITY, OUT_LOGISTIC, OUT_SOFTMAX, OUT_EXP = 0, 1, 2, 3
OUTPUT_CODES = {
    "identity": OUT_IDENTITY,
    "logistic": OUT_LOGISTIC,
    "softmax": OUT_SOFTMAX,
    "exp": OUT_EXP,
}


@jit()
def _expit(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


#: above this, mish(y) = y and mish'(y) = 1 to the last bit of float64 (and float32)
_MISH_LINEAR = 25.0
#: the range of :func:`_exp_parts`' argument: its 2^n is a normal float64 throughout
_EXP_MIN, _EXP_MAX = -708.0, 709.0
#: log2(e), and ln 2 split so that n * _LN2_HI is exact for |n| < 2^11 (fdlibm's split)
_LOG2E = 1.4426950408889634074
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10


@jit(fastmath=FASTMATH - {"reassoc"})  # reassociation would undo the split of ln 2
def _exp_parts(x):
    """``(s, q)`` with ``exp(x) = s (1 + q)``: ``s = 2^n`` and ``q = expm1(r)``.

    ``n = round(x / ln 2)`` and ``r = x - n ln 2`` (``|r| <= ln(2) / 2``);
    ``expm1(r)`` is its Taylor polynomial to degree 12 (truncation below half
    a float64 ulp) and ``2^n`` is built from its exponent bits.  Unlike a call
    to ``math.exp``, this vectorises, which is most of the cost of SELU, ELU
    and Mish.  ``x`` is clamped to ``[-708, 709]``: below, ``exp(x)`` is
    taken as ``exp(-708)`` (about 3e-308) instead of a subnormal or 0.
    """
    x = min(max(x, _EXP_MIN), _EXP_MAX)
    n = math.floor(x * _LOG2E + 0.5)
    r = (x - n * _LN2_HI) - n * _LN2_LO
    p = 1.0 / 479001600.0  # 1 / 12!, then Horner down to 1 / 2!
    p = 1.0 / 39916800.0 + r * p
    p = 1.0 / 3628800.0 + r * p
    p = 1.0 / 362880.0 + r * p
    p = 1.0 / 40320.0 + r * p
    p = 1.0 / 5040.0 + r * p
    p = 1.0 / 720.0 + r * p
    p = 1.0 / 120.0 + r * p
    p = 1.0 / 24.0 + r * p
    p = 1.0 / 6.0 + r * p
    p = 0.5 + r * p
    q = r + (r * r) * p
    s = np.int64((n + 1023) << 52).view(np.float64)
    return s, q


@jit()
def _exp(x):
    """``exp(x)`` for ``x <= 709``, vectorisable (:func:`_exp_parts`)."""
    s, q = _exp_parts(x)
    return s + s * q


@jit()
def _expm1(x):
    """``exp(x) - 1`` for ``x <= 709``, vectorisable; exact to rounding near 0,
    where ``s = 1`` and the result is the polynomial itself (:func:`_exp_parts`)."""
    s, q = _exp_parts(x)
    return (s - 1.0) + s * q


@jit()
def _tanh_softplus(z):
    """``tanh(softplus(z))`` with one exponential: ``u / (u + 2)``, ``u = e^z (e^z + 2)``.

    Mish's cost is its transcendental calls; this form needs one instead of three
    (exp, log1p and tanh) and has no cancellation for negative ``z`` (``u`` is a
    product of positive factors).  Above ``_MISH_LINEAR`` the ratio is 1 in
    either dtype (and ``u`` could overflow), chosen by a select.
    """
    e = _exp(min(z, _MISH_LINEAR))
    u = e * (e + 2.0)
    return 1.0 if z > _MISH_LINEAR else u / (u + 2.0)


@jit()
def _std_normal_cdf(z):
    """``Phi(z) = (1 + erf(z / sqrt 2)) / 2``, written with ``erfc``: the same
    function, without the cancellation of ``1 + erf`` for negative ``z``."""
    return 0.5 * math.erfc(-z * _SQRT1_2)


#: Row-major ``(n_rows, n_cols)`` view of a work buffer from ``start``; out of
#: range raises ``IndexError`` (:func:`skbp._jit.view_2d`).
_view = view_2d


@jit()
def _copy2d(src, dst):
    """``dst[:, :] = src`` as plain loops (Numba's slice assignment is slower)."""
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = src[i, j]


@jit()
def _fill(a, value):
    """``a[:] = value`` for a 1-D array, as a plain loop."""
    for k in range(a.shape[0]):
        a[k] = value


#: splitmix64's increment (2^64 / golden ratio)
_GOLDEN64 = np.uint64(0x9E3779B97F4A7C15)


@jit()
def _mix64(z):
    """splitmix64's output function of its counter ``z``."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@jit()
def splitmix64(state):
    """Next 64-bit output of the splitmix64 generator; advances ``state[0]``."""
    z = state[0] + _GOLDEN64
    state[0] = z
    return _mix64(z)


@jit()
def _uniform_at(s0, k):
    """Uniform float64 in [0, 1) from the top 53 bits of the ``k``-th next
    output of a splitmix64 generator whose state is ``s0`` (``k = 0``: the
    output :func:`splitmix64` returns next).

    That output is a function of ``s0 + (k + 1) * increment`` alone, so a loop
    drawing one number per element has no dependence from one element to the
    next and vectorises; the caller advances the state by the count drawn.
    """
    z = _mix64(s0 + np.uint64(k + 1) * _GOLDEN64)
    return np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@jit()
def _activate(Z, code):
    """``Z = f(Z)`` in place for the hidden activation ``code``.

    Element-wise, so over the flat array: one loop level per branch is less
    code to compile than two (and the same numbers).  Every element is
    written, chosen by a select: a store under a condition vectorises to a
    masked store, which AMD processors execute slowly.
    """
    z = flat_view(Z)
    n = z.shape[0]
    if code == ACT_RELU:
        for k in range(n):
            v = z[k]
            z[k] = 0.0 if v < 0 else v
    elif code == ACT_TANH:
        for k in range(n):
            z[k] = math.tanh(z[k])
    elif code == ACT_LOGISTIC:
        for k in range(n):
            z[k] = _expit(z[k])
    elif code == ACT_LEAKY_RELU:
        for k in range(n):
            v = z[k]
            z[k] = v * LEAKY_SLOPE if v < 0 else v
    elif code == ACT_ELU:  # expm1 of every element, vectorised, and a select
        for k in range(n):
            v = z[k]
            e = _expm1(min(v, 0.0))
            z[k] = e if v < 0 else v
    elif code == ACT_SELU:
        for k in range(n):
            v = z[k]
            e = (SELU_SCALE * SELU_ALPHA) * _expm1(min(v, 0.0))
            z[k] = SELU_SCALE * v if v > 0 else e
    elif code == ACT_GELU:  # the exact form, y Phi(y), not the tanh approximation
        for k in range(n):
            v = z[k]
            z[k] = v * _std_normal_cdf(v)
    elif code == ACT_MISH:
        for k in range(n):
            v = z[k]
            z[k] = v * _tanh_softplus(v)


@jit()
def _activation_grad(G, F, M, use_mask, code, D):
    """``D = G * mask * f'(y)`` (flat, with selects rather than conditional
    stores, as :func:`_activate`).

    ``f'`` is written in terms of ``F = f(y)``, so no pre-activation is kept,
    except for the codes in :data:`PREACTIVATION_CODES` (gelu, mish): their
    ``F`` is the pre-activation ``y`` itself.
    """
    g, f, d = flat_view(G), flat_view(F), flat_view(D)
    n = g.shape[0]
    if code == ACT_RELU and not use_mask:  # the common case in one pass
        for k in range(n):
            d[k] = 0.0 if f[k] <= 0 else g[k]
        return
    if use_mask:
        mask = flat_view(M)
        for k in range(n):
            d[k] = g[k] * mask[k]
    else:
        for k in range(n):
            d[k] = g[k]
    if code == ACT_RELU:
        for k in range(n):
            d[k] = 0.0 if f[k] <= 0 else d[k]
    elif code == ACT_TANH:
        for k in range(n):
            d[k] *= 1.0 - f[k] * f[k]
    elif code == ACT_LOGISTIC:
        for k in range(n):
            d[k] *= f[k] * (1.0 - f[k])
    elif code == ACT_LEAKY_RELU:
        for k in range(n):
            d[k] = d[k] * LEAKY_SLOPE if f[k] <= 0 else d[k]
    elif code == ACT_ELU:
        for k in range(n):
            d[k] = d[k] * (f[k] + 1.0) if f[k] <= 0 else d[k]
    elif code == ACT_SELU:  # scale * alpha * exp(y) = f + scale * alpha where y <= 0
        for k in range(n):
            v = f[k]
            d[k] *= SELU_SCALE if v > 0 else v + SELU_SCALE * SELU_ALPHA
    elif code == ACT_GELU:  # Phi(y) + y phi(y)
        for k in range(n):
            v = f[k]
            d[k] *= _std_normal_cdf(v) + v * _INV_SQRT_2PI * math.exp(-0.5 * v * v)
    elif code == ACT_MISH:  # tanh(sp) + y (1 - tanh(sp)^2) sigmoid(y), sp = softplus(y)
        for k in range(n):
            v = f[k]
            # with e = exp(y) and u = e (e + 2): tanh(sp) = u / (u + 2),
            # 1 - tanh(sp)^2 = 4 (u + 1) / (u + 2)^2, sigmoid(y) = e / (e + 1);
            # above _MISH_LINEAR tanh(sp) is 1 and the second term 0 in either dtype
            e = _exp(min(v, _MISH_LINEAR))
            u = e * (e + 2.0)
            r = 1.0 / (u + 2.0)
            g = u * r + v * (4.0 * (u + 1.0) * r * r) * (e / (e + 1.0))
            d[k] *= 1.0 if v > _MISH_LINEAR else g


@jit()
def _output_activation(Z, code):
    """``P = g(Z)`` in place for the output activation ``code``."""
    n, m = Z.shape
    if code == OUT_SOFTMAX:
        for i in range(n):
            zmax = -np.inf
            for j in range(m):
                if Z[i, j] > zmax:
                    zmax = Z[i, j]
            s = 0.0
            for j in range(m):
                e = math.exp(Z[i, j] - zmax)
                Z[i, j] = e
                s += e
            for j in range(m):
                Z[i, j] /= s
        return
    z = flat_view(Z)  # element-wise: flat (see _activate)
    if code == OUT_LOGISTIC:
        for k in range(z.shape[0]):
            z[k] = _expit(z[k])
    elif code == OUT_EXP:
        for k in range(z.shape[0]):
            z[k] = math.exp(z[k])


@jit()
def prefetch_rows(data, idx, start, stop):
    """Start loading the dense input rows ``X[idx[start:stop]]`` into the caches.

    Called for the next mini-batch before training on this one: the shuffled
    rows are scattered over ``X``, and gathering them (``_first_layer``) waited
    on memory for a noticeable part of a small-batch update.  Only a hint;
    nothing for CSR.
    """
    if data.sparse:
        return
    X = data.Xd
    x = flat_view(X)
    m = X.shape[1]
    step = 64 // X.itemsize  # elements per 64-byte cache line
    for i in range(start, stop):
        base = idx[i] * m
        for c in range(0, m, step):
            prefetch(x, base + c)
        prefetch(x, base + m - 1)  # a row that starts mid-line ends in one more


@jit()
def _first_layer(data, rows, X0, W, Z, tune):
    """``Z = X[rows] @ W`` for a dense or CSR input; dense rows are gathered into X0."""
    B = rows.shape[0]
    if data.sparse:
        Xdat, Xind, Xptr = data.Xdat, data.Xind, data.Xptr
        m = W.shape[1]
        for i in range(B):
            r = rows[i]
            for j in range(m):
                Z[i, j] = 0.0
            for k in range(Xptr[r], Xptr[r + 1]):
                v = Xdat[k]
                c = Xind[k]
                for j in range(m):
                    Z[i, j] += v * W[c, j]
    else:
        Xd = data.Xd
        n_in = Xd.shape[1]
        A = _view(X0, 0, B, n_in)
        for i in range(B):
            r = rows[i]
            for j in range(n_in):
                A[i, j] = Xd[r, j]
        no = B < 0  # False, as a run-time value
        matmul(A, no, W, no, Z, no, tune)


#: 2 pi, the period of the embedding's features in units of ``c x``
_TWO_PI = 2.0 * math.pi


@jit()
def _emb_offsets(net):
    """Where the embedding's frequencies, weights and biases start in ``w``."""
    n_e, k = net.emb_cols.shape[0], net.emb_k
    f0 = net.emb_off
    c0 = f0 + n_e * k
    return f0, c0, c0 + n_e * 2 * k * net.emb_d


@jit()
def _embed(data, rows, w, net, X0, E):
    """The first layer's input of a network with a periodic embedding, into ``X0``.

    Per row: each embedded column's ``relu(v V_j + b_j)`` with ``v = [cos(2 pi
    c_j x), sin(2 pi c_j x)]`` (its ``d`` outputs, column after column), then
    the passed-through columns.  The features ``v`` are kept in ``E`` (``(B,
    n_e * 2k)`` from its start) for the backward pass; the outputs in ``X0``
    give the ReLU's derivative.  The angle is computed in float64 whatever the
    dtype.
    """
    emb_cols, pass_cols, k, d = net.emb_cols, net.pass_cols, net.emb_k, net.emb_d
    Xd = data.Xd
    B = rows.shape[0]
    n_e = emb_cols.shape[0]
    n_p = pass_cols.shape[0]
    k2 = 2 * k
    A = _view(X0, 0, B, n_e * d + n_p)
    V = _view(E, 0, B, n_e * k2)
    f0, c0, b0 = _emb_offsets(net)
    for i in range(B):
        r = rows[i]
        for c in range(n_e):
            x = _TWO_PI * Xd[r, emb_cols[c]]
            vb = c * k2
            for f in range(k):
                a = x * w[f0 + c * k + f]
                V[i, vb + f] = math.cos(a)
                V[i, vb + k + f] = math.sin(a)
            ab = c * d
            for e in range(d):
                A[i, ab + e] = w[b0 + ab + e]
            wc = c0 + c * k2 * d
            for q in range(k2):
                v = V[i, vb + q]
                for e in range(d):
                    A[i, ab + e] += v * w[wc + q * d + e]
            for e in range(d):
                y = A[i, ab + e]
                A[i, ab + e] = 0.0 if y < 0 else y
        for p in range(n_p):
            A[i, n_e * d + p] = Xd[r, pass_cols[p]]


@jit()
def _embed_grad(data, rows, w, net, X0, E, B_max, grad, accumulate):
    """Backward of :func:`_embed`: write (or add) the embedding's parameter gradient.

    On entry ``E`` holds the features ``v`` (from its start) and, from ``B_max
    * n_e * 2k``, the gradient w.r.t. the embedded columns' outputs (``(B, n_e *
    d)``); that block is overwritten with the gradient w.r.t. their
    pre-activations.  ``d cos(a) / dc = -2 pi x sin(a)``, ``d sin(a) / dc =
    2 pi x cos(a)``.
    """
    emb_cols, k, d = net.emb_cols, net.emb_k, net.emb_d
    Xd = data.Xd
    B = rows.shape[0]
    n_e = emb_cols.shape[0]
    k2 = 2 * k
    A = _view(X0, 0, B, n_e * d + net.pass_cols.shape[0])  # the first layer's input
    V = _view(E, 0, B, n_e * k2)
    G = _view(E, B_max * n_e * k2, B, n_e * d)
    f0, c0, b0 = _emb_offsets(net)
    if not accumulate:
        _fill(grad[f0 : b0 + n_e * d], 0.0)
    for i in range(B):
        r = rows[i]
        for c in range(n_e):
            x = _TWO_PI * Xd[r, emb_cols[c]]
            ab = c * d
            for e in range(d):
                g = 0.0 if A[i, ab + e] <= 0 else G[i, ab + e]
                G[i, ab + e] = g
                grad[b0 + ab + e] += g
            vb = c * k2
            wc = c0 + c * k2 * d
            for q in range(k2):
                v = V[i, vb + q]
                s = 0.0
                for e in range(d):
                    g = G[i, ab + e]
                    grad[wc + q * d + e] += v * g
                    s += w[wc + q * d + e] * g
                # s = dL/dv_q; v_q is cos(a_f) for q < k, sin(a_f) after
                if q < k:
                    grad[f0 + c * k + q] -= s * x * V[i, vb + k + q]
                else:
                    grad[f0 + c * k + q - k] += s * x * V[i, vb + q - k]


@jit()
def _batch_norm(Z, gamma, beta, train, momentum, sw, rows, Zhat, mean, invstd, run_mean, run_var):
    """Normalise the columns of ``Z`` in place, ``Z = gamma * zhat + beta``.

    In training the batch's mean and (biased) variance are used, weighted by the
    sample weights ``sw[rows]``, so that a weight of 2 is the same as a repeated
    row and a weight of 0 the same as a dropped one.  ``zhat``, the mean and
    ``1 / sqrt(var + eps)`` are kept for the backward pass, and the running
    statistics move by ``momentum`` towards the batch's.  The running variance
    takes the batch's weighted (biased) variance, as Keras does: unlike PyTorch's
    ``B / (B - 1)`` correction it does not depend on how the weights are scaled,
    and a weight of 2 stays exactly a repeated row.  Otherwise the running
    statistics are used.
    """
    B, m = Z.shape
    if train:
        S = 0.0
        for i in range(B):
            S += sw[rows[i]]
        for j in range(m):
            mean[j] = 0.0
            invstd[j] = 0.0
        for i in range(B):
            s = sw[rows[i]]
            for j in range(m):
                mean[j] += s * Z[i, j]
        for j in range(m):
            mean[j] /= S
        for i in range(B):
            s = sw[rows[i]]
            for j in range(m):
                d = Z[i, j] - mean[j]
                invstd[j] += s * d * d
        for j in range(m):
            var = invstd[j] / S
            invstd[j] = 1.0 / math.sqrt(var + BN_EPS)
            if momentum > 0:
                run_mean[j] = (1.0 - momentum) * run_mean[j] + momentum * mean[j]
                run_var[j] = (1.0 - momentum) * run_var[j] + momentum * var
        for i in range(B):
            for j in range(m):
                zh = (Z[i, j] - mean[j]) * invstd[j]
                Zhat[i, j] = zh
                Z[i, j] = gamma[j] * zh + beta[j]
    else:
        for i in range(B):
            for j in range(m):
                zh = (Z[i, j] - run_mean[j]) / math.sqrt(run_var[j] + BN_EPS)
                Z[i, j] = gamma[j] * zh + beta[j]


@jit()
def _batch_norm_grad(D, Zhat, gamma, invstd, sw, rows, ggamma, gbeta, accumulate, s1, s2):
    """Backward of (weighted) batch norm in place: ``D`` goes from dL/dy to dL/dz.

    With ``g = dy * gamma``, weights ``s`` and ``S = sum(s)``:
    ``dz_i = invstd * (g_i - s_i / S * sum(g) - s_i * zhat_i / S * sum(g * zhat))``
    (the batch mean and variance depend on every row); unit weights give the
    classic ``invstd / B * (B g - sum(g) - zhat * sum(g * zhat))``.  ``s1`` and
    ``s2`` (float64, one entry per column) receive the two sums.
    """
    B, m = D.shape
    if not accumulate:
        for j in range(m):
            ggamma[j] = 0.0
            gbeta[j] = 0.0
    S = 0.0
    for i in range(B):
        S += sw[rows[i]]
    _fill(s1, 0.0)
    _fill(s2, 0.0)
    for i in range(B):
        for j in range(m):
            dy = D[i, j]
            ggamma[j] += dy * Zhat[i, j]
            gbeta[j] += dy
            g = dy * gamma[j]
            s1[j] += g
            s2[j] += g * Zhat[i, j]
    for i in range(B):
        c = sw[rows[i]] / S
        for j in range(m):
            g = D[i, j] * gamma[j]
            D[i, j] = invstd[j] * (g - c * s1[j] - c * Zhat[i, j] * s2[j])


@jit()
def forward(data, rows, w, net, train, sample_mask, bn_momentum, rng, bufs, bn_run):
    """Forward pass of the rows ``rows``; fills every layer's block of ``bufs.acts``.

    ``train`` selects batch statistics for batch norm and switches dropout on;
    ``sample_mask`` draws new dropout masks from ``rng`` (otherwise the masks in
    the buffer are used, e.g. to check gradients with a fixed mask).
    """
    # the records' fields, read once (each read of an array field is a reference
    # count taken and dropped, which small networks feel in the loop)
    sizes, coef_off, int_off, act_off = net.sizes, net.coef_off, net.int_off, net.act_off
    bn_off, codes, res, tune, drop_p = net.bn_off, net.codes, net.res, net.tune, net.drop_p
    acts, fa, masks, bnz, bnstat = bufs.acts, bufs.fa, bufs.masks, bufs.bnz, bufs.bnstat
    B = rows.shape[0]
    B_max = bufs.rows
    n_trans = sizes.shape[0] - 1
    width = acts.shape[0] // B_max if B_max > 0 else 0
    use_fa = fa.shape[0] > 0
    no = B < 0  # False, as a run-time value (see the module docstring)
    for l in range(n_trans):
        fi = sizes[l]
        fo = sizes[l + 1]
        W = _view(w, coef_off[l], fi, fo)
        b = w[int_off[l] : int_off[l] + fo]
        off = B_max * act_off[l]
        Z = _view(acts, off, B, fo)
        if l == 0 and net.emb_cols.shape[0] > 0:
            _embed(data, rows, w, net, bufs.X0, bufs.emb)
            matmul(_view(bufs.X0, 0, B, fi), no, W, no, Z, no, tune)
        elif l == 0:
            _first_layer(data, rows, bufs.X0, W, Z, tune)
        else:
            matmul(_view(acts, B_max * act_off[l - 1], B, fi), no, W, no, Z, no, tune)
        for i in range(B):
            for j in range(fo):
                Z[i, j] += b[j]
        if l == n_trans - 1:
            _output_activation(Z, net.out_code)
            break
        if bn_run is not None:  # batch norm (compiled only where a model has it)
            u = act_off[l]
            g0 = bn_off[l]
            _batch_norm(
                Z, w[g0 : g0 + fo], w[g0 + fo : g0 + 2 * fo], train, bn_momentum, data.sw,
                rows, _view(bnz, off, B, fo), bnstat[u : u + fo],
                bnstat[width + u : width + u + fo], bn_run[u : u + fo],
                bn_run[width + u : width + u + fo],
            )  # fmt: skip
        code = codes[l]
        # what the backward pass reads (_activation_grad): the pre-activation
        # for gelu and mish, otherwise the activation's output
        keep_pre = use_fa and (code == ACT_GELU or code == ACT_MISH)
        if keep_pre:
            _copy2d(Z, _view(fa, off, B, fo))
        _activate(Z, code)
        p = drop_p[l]
        dropping = train and p > 0
        if use_fa and not keep_pre:
            _copy2d(Z, _view(fa, off, B, fo))
        if dropping:
            mask = flat_view(_view(masks, off, B, fo))
            if sample_mask:
                keep = 1.0 / (1.0 - p)
                s0 = rng[0]
                for k in range(B * fo):
                    mask[k] = 0.0 if _uniform_at(s0, k) < p else keep
                rng[0] = s0 + np.uint64(B * fo) * _GOLDEN64
            z = flat_view(Z)
            for k in range(B * fo):
                z[k] *= mask[k]
        if res[l]:
            z, h = flat_view(Z), flat_view(_view(acts, B_max * act_off[l - 1], B, fi))
            for k in range(B * fo):
                z[k] += h[k]


#: machine epsilons of float32 and float64 (``np.finfo`` costs half a second of compile)
_EPS32 = float(np.finfo(np.float32).eps)
_EPS64 = float(np.finfo(np.float64).eps)


@jit()
def _clip(p, eps):
    """``min(max(p, eps), 1 - eps)`` as Python computes it (float64; NaN stays NaN),
    written out: the builtins are compiled functions of their own."""
    q = eps if eps > p else p
    return 1.0 - eps if 1.0 - eps < q else q


@jit()
def loss_and_delta(P, Y, sw, rows, out_code, D):
    """Weighted data loss ``sum_i sw_i * loss_i`` and ``D = (P - Y[rows]) * sw``.

    The per-row loss is summed over outputs: half squared error, binary or
    categorical cross-entropy (probabilities clipped to ``[eps, 1 - eps]`` of the
    dtype, as scikit-learn does) or half Poisson deviance.  Accumulated in float64.
    """
    B, m = P.shape
    eps = _EPS32 if P.itemsize == 4 else _EPS64
    total = 0.0
    for i in range(B):
        r = rows[i]
        s = sw[r]
        li = 0.0
        for j in range(m):
            p = P[i, j]
            y = Y[r, j]
            D[i, j] = (p - y) * s
            if out_code == OUT_IDENTITY:
                li += 0.5 * (p - y) * (p - y)
            elif out_code == OUT_LOGISTIC:
                pc = _clip(p, eps)
                if y != 0:
                    li -= y * math.log(pc)
                if y != 1:
                    li -= (1.0 - y) * math.log(1.0 - pc)
            elif out_code == OUT_SOFTMAX:
                if y != 0:
                    li -= y * math.log(_clip(p, eps))
            else:
                li += p - y
                if y > 0:
                    li += y * math.log(y / p)
        total += s * li
    return total


@jit()
def backward(data, rows, w, net, bufs, bn_run, grad, accumulate):
    """Backpropagate the output delta; write (or add) the unscaled data gradient.

    On entry the output layer's block of ``bufs.deltas`` holds ``(P - Y) * sw``.
    On exit ``grad`` holds ``sum_i dloss_i/dw`` (weighted, without the penalty
    and without dividing by the weight sum), or has it added when ``accumulate``.
    """
    # the records' fields, read once (see forward)
    sizes, coef_off, int_off, act_off = net.sizes, net.coef_off, net.int_off, net.act_off
    bn_off, codes, res, tune, drop_p = net.bn_off, net.codes, net.res, net.tune, net.drop_p
    acts, deltas, fa, masks, bnz = bufs.acts, bufs.deltas, bufs.fa, bufs.masks, bufs.bnz
    bnstat, dz, X0, bnsum = bufs.bnstat, bufs.dz, bufs.X0, bufs.bnsum
    B = rows.shape[0]
    B_max = bufs.rows
    n_trans = sizes.shape[0] - 1
    width = acts.shape[0] // B_max
    use_fa = fa.shape[0] > 0
    # matmul's transpose flags and "write, don't add", as run-time values
    T, N = B >= 0, B < 0
    for l in range(n_trans - 1, -1, -1):
        fi = sizes[l]
        fo = sizes[l + 1]
        off = B_max * act_off[l]
        if l == n_trans - 1:
            D = _view(deltas, off, B, fo)
        else:
            G = _view(deltas, off, B, fo)
            D = _view(dz, 0, B, fo)
            F = _view(fa, off, B, fo) if use_fa else _view(acts, off, B, fo)
            dropping = drop_p[l] > 0
            M = _view(masks, off, B, fo) if dropping else D
            _activation_grad(G, F, M, dropping, codes[l], D)
            if bn_run is not None:  # batch norm: only the argument's type matters here
                u = act_off[l]
                b0 = bn_off[l]
                _batch_norm_grad(
                    D, _view(bnz, off, B, fo), w[b0 : b0 + fo],
                    bnstat[width + u : width + u + fo], data.sw, rows, grad[b0 : b0 + fo],
                    grad[b0 + fo : b0 + 2 * fo], accumulate, bnsum[:fo], bnsum[fo : 2 * fo],
                )  # fmt: skip
        gW = _view(grad, coef_off[l], fi, fo)
        gb = grad[int_off[l] : int_off[l] + fo]
        if not accumulate:
            _fill(gb, 0.0)
        for i in range(B):
            for j in range(fo):
                gb[j] += D[i, j]
        if l == 0 and data.sparse:
            Xdat, Xind, Xptr = data.Xdat, data.Xind, data.Xptr
            if not accumulate:
                _zero(gW)
            for i in range(B):
                r = rows[i]
                for k in range(Xptr[r], Xptr[r + 1]):
                    v = Xdat[k]
                    c = Xind[k]
                    for j in range(fo):
                        gW[c, j] += v * D[i, j]
        else:
            if l == 0:
                A = _view(X0, 0, B, fi)
            else:
                A = _view(acts, B_max * act_off[l - 1], B, fi)
            matmul(A, T, D, N, gW, accumulate, tune)  # dW = H^T D
        if l == 0 and net.emb_cols.shape[0] > 0:
            # the gradient reaching the embedded columns' outputs, G = D W[:n_e d]^T
            n_ed = net.emb_cols.shape[0] * net.emb_d
            G = _view(bufs.emb, B_max * net.emb_cols.shape[0] * 2 * net.emb_k, B, n_ed)
            matmul(D, N, _view(w, coef_off[0], n_ed, fo), T, G, N, tune)
            _embed_grad(data, rows, w, net, X0, bufs.emb, B_max, grad, accumulate)
        if l > 0:
            W = _view(w, coef_off[l], fi, fo)
            Gprev = _view(deltas, B_max * act_off[l - 1], B, fi)
            matmul(D, N, W, T, Gprev, N, tune)  # G = D W^T
            if res[l]:
                # h_{l+1} = a + h_l: the gradient reaching h_{l+1} also flows
                # straight into h_l.
                gp, gres = flat_view(Gprev), flat_view(_view(deltas, off, B, fo))
                for k in range(B * fi):
                    gp[k] += gres[k]


@jit(entry=True)
def full_loss_grad(data, w, net, bufs, bn_run, penalty, bn_momentum, grad, gnorm):
    """Objective and its gradient over all rows (L-BFGS and full-batch), in row chunks.

    Working ``bufs.rows`` rows at a time keeps memory at ``bufs.rows x
    sum(widths)`` whatever the number of rows; the gradient is summed over
    chunks in a fixed order, then finished by ``skbp._update.finish_blocks``
    (penalty added, divided by the weight sum: the same code as a mini-batch
    update), which also writes each layer's data-gradient norm to ``gnorm``.
    Batch norm needs the whole batch at once: callers pass buffers for all the
    rows then.  Dropout uses the masks already in the buffer.
    """
    sizes, act_off = net.sizes, net.act_off
    chunk = bufs.rows
    n = data.sw.shape[0]
    sw_sum = 0.0
    for i in range(n):
        sw_sum += data.sw[i]
    total = 0.0
    n_out = sizes[sizes.shape[0] - 1]
    last = act_off.shape[0] - 1
    rng, ridx = bufs.rng, bufs.ridx  # scratch (no mask is drawn: rng is unused)
    train = chunk > 0  # True (run-time flags: see the module docstring)
    sample_mask = chunk < 0  # False: dropout uses the masks in the buffer
    for start in range(0, n, chunk):
        stop = start + chunk if start + chunk < n else n
        B = stop - start
        rows = ridx[:B]
        for i in range(B):
            rows[i] = start + i
        forward(data, rows, w, net, train, sample_mask, bn_momentum, rng, bufs, bn_run)
        P = _view(bufs.acts, chunk * act_off[last], B, n_out)
        D = _view(bufs.deltas, chunk * act_off[last], B, n_out)
        total += loss_and_delta(P, data.Y, data.sw, rows, net.out_code, D)
        backward(data, rows, w, net, bufs, bn_run, grad, start > 0)
    _fill(gnorm, 0.0)
    value, _ = finish_blocks(
        net.blocks,
        w,
        grad,
        penalty.alpha,
        penalty.l1_ratio,
        sw_sum,
        bufs.part,
        gnorm,
        0.0,
        net.tune[7] != 0,
    )
    return total / sw_sum + value


@jit(entry=True)
def predict(data, row0, row1, w, net, bufs, bn_run, out):
    """Network output for the rows ``[row0, row1)``, ``bufs.rows`` rows at a time, into ``out``.

    Dropout is off and batch norm uses its running statistics: deterministic.
    Prediction on several threads runs this same machine code from a few
    Python threads (``skbp._predict``), so its bits never depend on them.
    """
    n_out = net.sizes[net.sizes.shape[0] - 1]
    last = net.act_off.shape[0] - 1
    chunk = bufs.rows
    rng, ridx = bufs.rng, bufs.ridx  # scratch (no mask is drawn: rng is unused)
    off = chunk < 0  # False (run-time flag: see the module docstring)
    for start in range(row0, row1, chunk):
        stop = start + chunk if start + chunk < row1 else row1
        rows = ridx[: stop - start]
        for i in range(stop - start):
            rows[i] = start + i
        forward(data, rows, w, net, off, off, 0.0, rng, bufs, bn_run)
        P = _view(bufs.acts, chunk * net.act_off[last], stop - start, n_out)
        _copy2d(P, out[start:stop])
