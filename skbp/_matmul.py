"""Matrix products of the training core, serial or split over column blocks.

Every product of a training step -- ``Z = H W`` (forward), ``dW = H^T D``
(weight gradient) and ``G = D W^T`` (gradient sent to the layer below) -- goes
through :func:`matmul`.  A product large enough to share (at least
``tune[0]`` multiply-adds) is split into a fixed number of column (or row)
blocks of its result; each block is one single-threaded BLAS ``gemm`` call
that addresses its part in place (leading dimensions, no copies), and the
blocks run under ``prange`` on Numba's threads.

Why this is reproducible for any thread count:

* every element of the result is computed by exactly one BLAS call, over the
  whole inner dimension, in BLAS's own order -- there is no reduction across
  threads at all;
* the number of blocks depends on the shape of the product and the machine's
  core count (``os.cpu_count()``, at most 16) only -- never on ``n_jobs`` or on
  a joblib worker's thread limit -- so 1, 2 or 16 threads make the very same
  BLAS calls and only the assignment of blocks to threads changes;
* BLAS itself runs on one thread during skbp's fits and predictions
  (``skbp._threads``), so no BLAS-internal split can depend on the machine's
  core count either.

Neither BLAS's own threads nor a split chosen by the thread count would do:
measured with the bundled OpenBLAS, ``128 x 784 @ 784 x 256`` in float32 gives
different bits on 1 and 2 BLAS threads, and splitting a product into 2, 3 or
4 column blocks changes the bits of some shapes.  Hence a split fixed by the
shape.

Why column blocks of the result and not row blocks of the mini-batch:
measured on the 2-core machine, splitting ``128 x 784 @ 784 x 256`` into row
blocks costs 30-60% of BLAS's speed on one thread (every call re-packs the
whole weight matrix), column blocks much less, and they leave nothing to
reduce.  Concurrent BLAS calls from ``prange`` threads only run side by side
when BLAS is limited to one thread; otherwise OpenBLAS's spinning threads and
Numba's fight (measured: 20x slower).

Prediction parallelises over row chunks instead and passes a ``tune`` that
never splits, so the two kinds of parallelism never nest.
"""

import os

import numpy as np
from numba import prange, types

from ._jit import blas_scalars, flat_view, jit
from ._threads import parallel_available

#: a product is split when it has at least this many multiply-adds ...
PAR_MIN_WORK = 1 << 20
#: ... into blocks of at least this many result columns (and at most the
#: machine's core count, 2 to 16, of them)
PAR_BLOCK_COLS = 32
#: products of at most this many multiply-adds skip BLAS (one-row updates, predictions)
SMALL_WORK = 4096


_CPU_COUNT = os.cpu_count() or 2
_TUNE_CACHE = {}


def _max_blocks():
    return int(min(16, max(2, _CPU_COUNT)))


def tune_array(split=True):
    """The splitting parameters as the kernels take them (read at every call).

    ``split=False`` never splits (prediction parallelises over row chunks);
    neither does a Numba without a thread-safe threading layer.
    """
    split = split and parallel_available()
    key = (PAR_MIN_WORK if split else 2**62, PAR_BLOCK_COLS, _max_blocks(), SMALL_WORK)
    t = _TUNE_CACHE.get(key)
    if t is None:
        t = np.array(key, np.int64)
        t.flags.writeable = False
        _TUNE_CACHE[key] = t
    return t


@jit()
def n_blocks(M, K, N, tune):
    """Number of blocks for an ``(M, K) @ (K, N)`` product: 1 = one BLAS call.

    The product is split along the longer side of its ``M x N`` result
    (:func:`split_rows`), in blocks at least ``tune[1]`` wide.  A function of
    the shape only, so that the result does not depend on the number of threads.
    """
    if M * K * N < tune[0]:
        return 1
    nb = (M if M > N else N) // tune[1]  # (the builtins min and max compile functions)
    if nb < 2:
        return 1
    return nb if nb < tune[2] else tune[2]


@jit()
def split_rows(M, N):
    """Whether an ``M x N`` result is split into row blocks (else column blocks).

    Every block re-reads -- and BLAS re-packs -- the whole of the operand it
    does not split: all of ``op(X)`` (``M x K``) for column blocks, all of
    ``op(Y)`` (``K x N``) for row blocks.  Splitting the longer side re-packs
    the smaller one: the weight gradient ``H^T D`` (784 x 256 from 128 rows)
    goes by rows, the forward ``H W`` (128 x 256) by columns.
    """
    return M > N


# BLAS's gemm through Numba's own helper (the one its ``np.dot`` calls), so that
# a block of columns can be addressed in place with a leading dimension instead
# of being copied out first (copying the weights cost ~20% of a product).
# Called by name, so compiled code that uses it can be cached.
_xxgemm = types.ExternalFunction(
    "numba_xxgemm",
    types.intc(
        types.char, types.char, types.char, types.intp, types.intp, types.intp,
        types.voidptr, types.voidptr, types.intp, types.voidptr, types.intp,
        types.voidptr, types.voidptr, types.intp,
    ),
)  # fmt: skip
_N, _T = 78, 84  # ord("N"), ord("T")


@jit()
def _gemm(trans_x, trans_y, M, N, K, alpha, X, ldx, Y, ldy, beta, C, ldc):
    """Row-major ``C = alpha op(X) op(Y) + beta C`` (``C`` is ``M x N``).

    ``X``, ``Y``, ``C`` are 1-D views starting at the first element of each
    operand, ``ld*`` their row strides in elements; ``alpha``/``beta`` are
    1-element arrays.  BLAS is column-major, so this asks it for
    ``C^T = op(Y)^T op(X)^T``.
    """
    kind = 115 if C.itemsize == 4 else 100  # "s" or "d"
    _xxgemm(
        kind, _T if trans_y else _N, _T if trans_x else _N, N, M, K, alpha.ctypes,
        Y.ctypes, ldy, X.ctypes, ldx, beta.ctypes, C.ctypes, ldc,
    )  # fmt: skip


@jit(parallel=True)
def _gemm_blocks(X, trans_x, Y, trans_y, C, scal, nb, by_rows):
    """``C = op(X) op(Y) + beta C`` as ``nb`` blocks of ``C``, in parallel.

    Column blocks ``[b N / nb, (b + 1) N / nb)`` read those columns of
    ``op(Y)`` in place (rows of ``Y`` when transposed) and all of ``op(X)``; row
    blocks (``by_rows``) read rows of ``op(X)`` (columns of ``X`` when
    transposed) and all of ``op(Y)``.  One BLAS call per block.
    """
    M, N = C.shape
    K = X.shape[0] if trans_x else X.shape[1]
    ldx, ldy = X.shape[1], Y.shape[1]
    xf = flat_view(X)
    yf = flat_view(Y)
    for b in prange(nb):
        if by_rows:
            i0 = b * M // nb
            i1 = (b + 1) * M // nb
            xb = X[0, i0:] if trans_x else X[i0]
            _gemm(trans_x, trans_y, i1 - i0, N, K, scal[0:1], xb, ldx, yf, ldy, scal[1:2],
                  C[i0], N)  # fmt: skip
        else:
            j0 = b * N // nb
            j1 = (b + 1) * N // nb
            yb = Y[j0] if trans_y else Y[0, j0:]
            _gemm(trans_x, trans_y, M, j1 - j0, K, scal[0:1], xf, ldx, yb, ldy, scal[1:2],
                  C[0, j0:], N)  # fmt: skip


@jit()
def _zero(C):
    """``C[:, :] = 0`` as plain loops (cheaper than Numba's slice assignment)."""
    for i in range(C.shape[0]):
        for j in range(C.shape[1]):
            C[i, j] = 0.0


#: below this many columns the loops of _small_matmul switch to a dot-product order
_NARROW = 8


@jit()
def _small_matmul(X, trans_x, Y, trans_y, C, accumulate):
    """Loops for small products (a few rows), where a BLAS call costs more than it does.

    The loop order keeps the innermost loop on contiguous memory for wide and
    for narrow (1-column) operands alike.  A fixed order of summation of the
    code's own: the result depends neither on BLAS nor on threads.
    """
    M, N = C.shape
    if trans_y:  # C[i, j] = X[i, :] . Y[j, :]
        K = X.shape[1]
        if K >= _NARROW:
            for i in range(M):
                for j in range(N):
                    s = 0.0
                    for k in range(K):
                        s += X[i, k] * Y[j, k]
                    C[i, j] = C[i, j] + s if accumulate else s
        else:
            if not accumulate:
                _zero(C)
            for i in range(M):
                for k in range(K):
                    x = X[i, k]
                    for j in range(N):
                        C[i, j] += x * Y[j, k]
        return
    if trans_x:  # C[i, j] = X[:, i] . Y[:, j]
        if not accumulate:
            _zero(C)
        K = X.shape[0]
        if N >= _NARROW:
            for k in range(K):
                for i in range(M):
                    x = X[k, i]
                    for j in range(N):
                        C[i, j] += x * Y[k, j]
        else:
            for j in range(N):
                for k in range(K):
                    y = Y[k, j]
                    for i in range(M):
                        C[i, j] += X[k, i] * y
        return
    # C[i, j] = X[i, :] . Y[:, j]
    K = X.shape[1]
    if N >= _NARROW:
        if not accumulate:
            _zero(C)
        for i in range(M):
            for k in range(K):
                x = X[i, k]
                for j in range(N):
                    C[i, j] += x * Y[k, j]
    else:
        for i in range(M):
            for j in range(N):
                s = 0.0
                for k in range(K):
                    s += X[i, k] * Y[k, j]
                C[i, j] = C[i, j] + s if accumulate else s


@jit()
def matmul(X, trans_x, Y, trans_y, C, accumulate, tune):
    """``C = op(X) @ op(Y)`` (``C += ...`` when ``accumulate``), all C-contiguous 2-D.

    ``op`` transposes where ``trans_x``/``trans_y`` is set.  A product of at
    least ``tune[0]`` multiply-adds is split into column blocks run in parallel;
    one of at most ``tune[3]`` runs in plain loops (no BLAS call).
    """
    M, N = C.shape
    K = X.shape[0] if trans_x else X.shape[1]
    if M == 0 or N == 0:
        return
    if K == 0 or M * K * N <= tune[3]:
        _small_matmul(X, trans_x, Y, trans_y, C, accumulate)
        return
    scal = blas_scalars(C, 1.0 if accumulate else 0.0)  # BLAS's alpha and beta
    nb = n_blocks(M, K, N, tune)
    if nb > 1:
        _gemm_blocks(X, trans_x, Y, trans_y, C, scal, nb, split_rows(M, N))
    else:
        _gemm(trans_x, trans_y, M, N, K, scal[0:1], flat_view(X), X.shape[1], flat_view(Y),
              Y.shape[1], scal[1:2], flat_view(C), N)  # fmt: skip
