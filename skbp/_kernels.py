"""Compiled kernels: forward pass, loss, backward pass, full-batch gradient, predict.

Conventions shared by every kernel (see ``_layout.Layout``):

* ``w`` is the flat parameter vector; ``sizes``, ``coef_off``, ``int_off`` give
  each layer's width and where its weights and biases start in ``w``.
* ``acts`` and ``deltas`` are flat work buffers holding, for a batch of ``B``
  rows, the output of every layer ``l`` (hidden and output) as a row-major
  ``(B, sizes[l + 1])`` block starting at ``B_max * act_off[l]``.
* The input is either dense (``Xd``, gathered row by row into the buffer
  ``X0``) or CSR (``Xdat``, ``Xind``, ``Xptr``); the unused form is passed as a
  size-0 array, so one compiled version serves both.  The first layer of a CSR
  input is computed from the non-zeros only: the input is never densified.
* Hidden activations and output/loss pairs arrive as integer codes and are
  branched on once per layer, never once per element.
"""

import numpy as np
from numba import njit

from ._jit import JIT_OPTIONS

# Hidden activations.
ACT_IDENTITY, ACT_LOGISTIC, ACT_TANH, ACT_RELU = 0, 1, 2, 3
ACTIVATION_CODES = {
    "identity": ACT_IDENTITY,
    "logistic": ACT_LOGISTIC,
    "sigmoid": ACT_LOGISTIC,
    "tanh": ACT_TANH,
    "relu": ACT_RELU,
}

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


@njit(**JIT_OPTIONS)
def _expit(z):
    if z >= 0:
        return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z)
    return e / (1.0 + e)


@njit(**JIT_OPTIONS)
def _view(buf, start, n_rows, n_cols):
    """Row-major ``(n_rows, n_cols)`` view of ``buf`` starting at ``start``."""
    return buf[start : start + n_rows * n_cols].reshape(n_rows, n_cols)


@njit(**JIT_OPTIONS)
def _hidden_activation(Z, b, code):
    """``Z = f(Z + b)`` in place for the hidden activation ``code``."""
    n, m = Z.shape
    if code == ACT_RELU:
        for i in range(n):
            for j in range(m):
                v = Z[i, j] + b[j]
                Z[i, j] = v if v > 0 else 0.0
    elif code == ACT_TANH:
        for i in range(n):
            for j in range(m):
                Z[i, j] = np.tanh(Z[i, j] + b[j])
    elif code == ACT_LOGISTIC:
        for i in range(n):
            for j in range(m):
                Z[i, j] = _expit(Z[i, j] + b[j])
    else:
        for i in range(n):
            for j in range(m):
                Z[i, j] += b[j]


@njit(**JIT_OPTIONS)
def _hidden_derivative(A, D, code):
    """``D *= f'(z)`` in place, written in terms of the activation output ``A``."""
    n, m = A.shape
    if code == ACT_RELU:
        for i in range(n):
            for j in range(m):
                if A[i, j] <= 0:
                    D[i, j] = 0.0
    elif code == ACT_TANH:
        for i in range(n):
            for j in range(m):
                D[i, j] *= 1.0 - A[i, j] * A[i, j]
    elif code == ACT_LOGISTIC:
        for i in range(n):
            for j in range(m):
                D[i, j] *= A[i, j] * (1.0 - A[i, j])


@njit(**JIT_OPTIONS)
def _output_activation(Z, b, code):
    """``P = g(Z + b)`` in place for the output activation ``code``."""
    n, m = Z.shape
    if code == OUT_SOFTMAX:
        for i in range(n):
            zmax = -np.inf
            for j in range(m):
                Z[i, j] += b[j]
                if Z[i, j] > zmax:
                    zmax = Z[i, j]
            s = 0.0
            for j in range(m):
                e = np.exp(Z[i, j] - zmax)
                Z[i, j] = e
                s += e
            for j in range(m):
                Z[i, j] /= s
    elif code == OUT_LOGISTIC:
        for i in range(n):
            for j in range(m):
                Z[i, j] = _expit(Z[i, j] + b[j])
    elif code == OUT_EXP:
        for i in range(n):
            for j in range(m):
                Z[i, j] = np.exp(Z[i, j] + b[j])
    else:
        for i in range(n):
            for j in range(m):
                Z[i, j] += b[j]


@njit(**JIT_OPTIONS)
def _first_layer(Xd, Xdat, Xind, Xptr, sparse, rows, X0, W, Z):
    """``Z = X[rows] @ W`` for a dense or CSR input; dense rows are gathered into X0."""
    B = rows.shape[0]
    if sparse:
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
        n_in = Xd.shape[1]
        A = _view(X0, 0, B, n_in)
        for i in range(B):
            r = rows[i]
            for j in range(n_in):
                A[i, j] = Xd[r, j]
        np.dot(A, W, Z)


@njit(**JIT_OPTIONS)
def forward(
    Xd, Xdat, Xind, Xptr, sparse, rows, w, sizes, coef_off, int_off, act_off,
    B_max, hidden, out_code, X0, acts,
):  # fmt: skip
    """Forward pass of the rows ``rows``; fills every layer's block of ``acts``."""
    B = rows.shape[0]
    n_trans = sizes.shape[0] - 1
    for l in range(n_trans):
        fi = sizes[l]
        fo = sizes[l + 1]
        W = _view(w, coef_off[l], fi, fo)
        b = w[int_off[l] : int_off[l] + fo]
        Z = _view(acts, B_max * act_off[l], B, fo)
        if l == 0:
            _first_layer(Xd, Xdat, Xind, Xptr, sparse, rows, X0, W, Z)
        else:
            np.dot(_view(acts, B_max * act_off[l - 1], B, fi), W, Z)
        if l < n_trans - 1:
            _hidden_activation(Z, b, hidden)
        else:
            _output_activation(Z, b, out_code)


@njit(**JIT_OPTIONS)
def loss_and_delta(P, Y, sw, rows, out_code, D):
    """Weighted data loss ``sum_i sw_i * loss_i`` and ``D = (P - Y[rows]) * sw``.

    The per-row loss is summed over outputs: half squared error, binary or
    categorical cross-entropy (probabilities clipped to ``[eps, 1 - eps]`` of the
    dtype, as scikit-learn does) or half Poisson deviance.  Accumulated in float64.
    """
    B, m = P.shape
    eps = np.finfo(P.dtype).eps
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
                pc = min(max(p, eps), 1.0 - eps)
                if y != 0:
                    li -= y * np.log(pc)
                if y != 1:
                    li -= (1.0 - y) * np.log(1.0 - pc)
            elif out_code == OUT_SOFTMAX:
                if y != 0:
                    li -= y * np.log(min(max(p, eps), 1.0 - eps))
            else:
                li += p - y
                if y > 0:
                    li += y * np.log(y / p)
        total += s * li
    return total


@njit(**JIT_OPTIONS)
def backward(
    Xd, Xdat, Xind, Xptr, sparse, rows, w, sizes, coef_off, int_off, act_off,
    B_max, hidden, X0, acts, deltas, grad, gtmp, accumulate,
):  # fmt: skip
    """Backpropagate the output delta; write (or add) the unscaled data gradient.

    On entry the output layer's block of ``deltas`` holds ``(P - Y) * sw``.  On
    exit ``grad`` holds ``sum_i dloss_i/dw`` (weighted, without the penalty and
    without dividing by the weight sum), or has it added when ``accumulate``.
    """
    B = rows.shape[0]
    n_trans = sizes.shape[0] - 1
    for l in range(n_trans - 1, -1, -1):
        fi = sizes[l]
        fo = sizes[l + 1]
        D = _view(deltas, B_max * act_off[l], B, fo)
        gW = _view(grad, coef_off[l], fi, fo)
        gb = grad[int_off[l] : int_off[l] + fo]
        if not accumulate:
            gb[:] = 0.0
        for i in range(B):
            for j in range(fo):
                gb[j] += D[i, j]
        if l == 0 and sparse:
            if not accumulate:
                gW[:, :] = 0.0
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
            if accumulate:
                T = _view(gtmp, 0, fi, fo)
                np.dot(A.T, D, T)
                gW += T
            else:
                np.dot(A.T, D, gW)
        if l > 0:
            W = _view(w, coef_off[l], fi, fo)
            Dprev = _view(deltas, B_max * act_off[l - 1], B, fi)
            np.dot(D, W.T, Dprev)
            _hidden_derivative(_view(acts, B_max * act_off[l - 1], B, fi), Dprev, hidden)


@njit(**JIT_OPTIONS)
def finish_gradient(w, grad, n_coef, alpha, sw_sum):
    """Add the L2 penalty's gradient and divide by the weight sum; return penalty.

    The objective is ``(sum_i sw_i loss_i + alpha/2 * ||W||^2) / sum_i sw_i``
    (biases are not penalised), as in scikit-learn's MLP.
    """
    inv = 1.0 / sw_sum
    sq = 0.0
    for k in range(n_coef):
        sq += w[k] * w[k]
        grad[k] = (grad[k] + alpha * w[k]) * inv
    for k in range(n_coef, w.shape[0]):
        grad[k] = grad[k] * inv
    return 0.5 * alpha * sq * inv


@njit(**JIT_OPTIONS)
def full_loss_grad(
    Xd, Xdat, Xind, Xptr, sparse, Y, sw, w, sizes, coef_off, int_off, act_off,
    n_coef, hidden, out_code, alpha, chunk, X0, acts, deltas, grad, gtmp,
):  # fmt: skip
    """Loss and gradient over all rows (L-BFGS and full-batch), in row chunks.

    Working ``chunk`` rows at a time keeps memory at ``chunk x sum(widths)``
    whatever the number of rows; the gradient is summed over chunks in a fixed
    order, so the result does not depend on anything but the data.
    """
    n = sw.shape[0]
    sw_sum = 0.0
    for i in range(n):
        sw_sum += sw[i]
    rows_all = np.arange(n)
    total = 0.0
    n_out = sizes[sizes.shape[0] - 1]
    last = act_off.shape[0] - 1
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        rows = rows_all[start:stop]
        B = stop - start
        forward(Xd, Xdat, Xind, Xptr, sparse, rows, w, sizes, coef_off, int_off,
                act_off, chunk, hidden, out_code, X0, acts)  # fmt: skip
        P = _view(acts, chunk * act_off[last], B, n_out)
        D = _view(deltas, chunk * act_off[last], B, n_out)
        total += loss_and_delta(P, Y, sw, rows, out_code, D)
        backward(Xd, Xdat, Xind, Xptr, sparse, rows, w, sizes, coef_off, int_off,
                 act_off, chunk, hidden, X0, acts, deltas, grad, gtmp, start > 0)  # fmt: skip
    penalty = finish_gradient(w, grad, n_coef, alpha, sw_sum)
    return total / sw_sum + penalty


@njit(**JIT_OPTIONS)
def predict(
    Xd, Xdat, Xind, Xptr, sparse, n_rows, w, sizes, coef_off, int_off, act_off,
    hidden, out_code, chunk, X0, acts, out,
):  # fmt: skip
    """Network output for every row, ``chunk`` rows at a time, into ``out``."""
    rows_all = np.arange(n_rows)
    n_out = sizes[sizes.shape[0] - 1]
    last = act_off.shape[0] - 1
    for start in range(0, n_rows, chunk):
        stop = min(start + chunk, n_rows)
        rows = rows_all[start:stop]
        forward(Xd, Xdat, Xind, Xptr, sparse, rows, w, sizes, coef_off, int_off,
                act_off, chunk, hidden, out_code, X0, acts)  # fmt: skip
        P = _view(acts, chunk * act_off[last], stop - start, n_out)
        out[start:stop, :] = P
