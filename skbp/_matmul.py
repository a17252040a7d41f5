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
  (``skbp._runtime``), so no BLAS-internal split can depend on the machine's
  core count either.

Neither BLAS's own threads nor a split chosen by the thread count would do:
with the bundled OpenBLAS a float32 product can give different bits on 1 and
2 BLAS threads, and splitting a product into 2, 3 or 4 column blocks changes
the bits of some shapes.  Hence a split fixed by the shape.

Why column blocks of the result and not row blocks of the mini-batch: every
row block's BLAS call re-packs the whole weight matrix, which column blocks
avoid, and column blocks leave nothing to reduce.  Concurrent BLAS calls from
``prange`` threads only run side by side when BLAS is limited to one thread;
otherwise OpenBLAS's spinning threads and Numba's compete for the cores.

Small products -- the mini-batch updates of small networks -- skip BLAS:
below ``SMALL_WORK`` multiply-adds plain loops, below ``TILE_WORK`` (in
multiply-adds times the item size; half that with ``Y`` transposed, whose
panels are packed first) skbp's own register tiles, SIMD multiply-adds written as
LLVM IR (:func:`_make_tile`).  At such shapes a BLAS call's fixed cost
(packing both operands, dispatch) is a large part of the product, which the
tiles do not pay; beyond ``TILE_WORK`` BLAS's cache blocking wins.  On a CPU
with AVX-512 a tile row holds two 64-byte vectors (:func:`wide_vectors`).
The tiles compute each element as a sum in a fixed order, so they depend on
no thread count, and a tile's shape never changes an element's bits.
``python benchmarks/bench.py products`` compares them with BLAS
(benchmarks/RESULTS.md).

Where Numba compiles for AVX-512 but SciPy's OpenBLAS runs AVX2 kernels (an
OpenBLAS that does not know the CPU falls back to a Haswell's kernels), the
tiles, at twice BLAS's vector width, beat BLAS at every size they were tried
at; there (``tune[6]``, :data:`DEEP_TILE_K`) every product that fits the tiles
takes them, split into the same blocks as BLAS calls would be
(:func:`_tile_blocks`); since each element is one in-order sum whatever its
block, the split changes no bits there at all.

Prediction parallelises over row chunks instead and passes a ``tune`` that
never splits, so the two kinds of parallelism never nest.
"""

import functools
import os

import numpy as np
from numba import config, prange, types
from numba.extending import intrinsic

from ._jit import blas_scalars, flat_view, jit, stack_buffer
from ._numba_support import PLAIN

#: a product is split when it has at least this many multiply-adds (a batch of
#: 128 rows through a 256-to-128 layer, 128 x 256 x 128, is the smallest that
#: splits) ... Below it two threads gain little when they gain, and lose as
#: often on a busy machine; and a fit without a split product has no parallel
#: region, so it skips the governor
PAR_MIN_WORK = 1 << 22
#: ... into blocks of at least this many result columns (and at most the
#: machine's core count, 2 to 16, of them)
PAR_BLOCK_COLS = 32
#: products of at most this many multiply-adds skip BLAS (one-row updates, predictions)
SMALL_WORK = 4096
#: ``op(X) @ Y`` products (no transposed right operand) of at most this many
#: multiply-adds times the item size -- 2^19 multiply-adds in float32, 2^18 in
#: float64, whose vectors have half the lanes -- run on skbp's own register
#: tiles (:func:`_tiled_matmul`) instead of BLAS
TILE_WORK = 1 << 21
#: where Numba compiles for AVX-512 but SciPy's OpenBLAS runs AVX2 kernels
#: (:func:`blas_lacks_avx512`, :func:`wide_vectors` 2), products of
#: any size up to this depth run on the tiles too, split into blocks like
#: BLAS's (:func:`_tile_blocks`); 0 elsewhere (``tune[6]``)
DEEP_TILE_K = 8192


_CPU_COUNT = os.cpu_count() or 2
_TUNE_CACHE = {}


def _max_blocks():
    return int(min(16, max(2, _CPU_COUNT)))


def tune_array(split=True):
    """The splitting parameters as the kernels take them (read at every call).

    ``split=False`` never splits (prediction parallelises over row chunks).
    Where no parallel region may run (a Numba without a thread-safe threading
    layer, a process forked from one running GNU OpenMP: ``tune[7]`` is 0) a
    product is split all the same and its blocks run one after the other: the
    same BLAS calls and tiles, so the same bits as on any number of threads.
    """
    from ._runtime import parallel_available  # Python only: not part of the kernels' stamp

    small_kernels = blas_has_small_kernels()
    tiles = TILE_WORK // 4 if small_kernels else TILE_WORK
    wide = wide_vectors()
    deep = DEEP_TILE_K if wide >= 2 and blas_lacks_avx512() else 0
    key = (PAR_MIN_WORK if split else 2**62, PAR_BLOCK_COLS, _max_blocks(), SMALL_WORK, tiles,
           wide, deep, int(parallel_available()))  # fmt: skip
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


# BLAS's gemm through Numba's own wrapper (the one its ``np.dot`` calls), so that
# a block of columns can be addressed in place with a leading dimension instead
# of being copied out first (a copy of the weights per product costs time a
# product of these sizes cannot spare).
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


@jit()
def _gemm_block(X, trans_x, Y, trans_y, C, scal, b, nb, by_rows):
    """Block ``b`` of ``nb`` of :func:`_gemm_blocks`: one BLAS call.

    Column blocks ``[b N / nb, (b + 1) N / nb)`` read those columns of
    ``op(Y)`` in place (rows of ``Y`` when transposed) and all of ``op(X)``; row
    blocks (``by_rows``) read rows of ``op(X)`` (columns of ``X`` when
    transposed) and all of ``op(Y)``.
    """
    M, N = C.shape
    K = X.shape[0] if trans_x else X.shape[1]
    ldx, ldy = X.shape[1], Y.shape[1]
    if by_rows:
        i0 = b * M // nb
        i1 = (b + 1) * M // nb
        xb = X[0, i0:] if trans_x else X[i0]
        _gemm(trans_x, trans_y, i1 - i0, N, K, scal[0:1], xb, ldx, flat_view(Y), ldy,
              scal[1:2], C[i0], N)  # fmt: skip
    else:
        j0 = b * N // nb
        j1 = (b + 1) * N // nb
        yb = Y[j0] if trans_y else Y[0, j0:]
        _gemm(trans_x, trans_y, M, j1 - j0, K, scal[0:1], flat_view(X), ldx, yb, ldy,
              scal[1:2], C[0, j0:], N)  # fmt: skip


@jit(parallel=True)
def _gemm_blocks(X, trans_x, Y, trans_y, C, scal, nb, by_rows):
    """``C = op(X) op(Y) + beta C`` as ``nb`` blocks of ``C`` (:func:`_gemm_block`), in
    parallel."""
    for b in prange(nb):
        _gemm_block(X, trans_x, Y, trans_y, C, scal, np.int64(b), nb, by_rows)


# ------------------------------------------------------------ register tiles
#: bytes of the narrow SIMD vector of a tile (AVX2's ymm): the last panels
_VEC_BYTES = 32
#: bytes of the wide SIMD vector (AVX-512's zmm; AVX2 runs it as two ymm)
_WIDE_BYTES = 64


#: OpenBLAS core types whose gemm has a path for small matrices (no packing)
_SMALL_KERNEL_CORES = ("skylakex", "cooperlake", "sapphirerapids")
#: OpenBLAS core types whose kernels use no AVX-512 (whatever the CPU has)
_AVX2_KERNEL_CORES = ("haswell", "zen", "sandybridge")


@functools.cache
def _openblas_cores():
    """The core types OpenBLAS reports for the BLAS libraries loaded (SciPy's,
    behind Numba's gemm, included); empty without an answer or OpenBLAS."""
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's BLAS)
        from threadpoolctl import threadpool_info

        return frozenset(
            str(i.get("architecture", "")).lower()
            for i in threadpool_info()
            if i.get("internal_api") == "openblas"
        )
    except Exception:  # no threadpoolctl answer
        return frozenset()


def blas_has_small_kernels():
    """Whether the BLAS behind Numba's gemm (SciPy's) is OpenBLAS with AVX-512 kernels.

    Those (SkylakeX and its successors) have a path for small products that
    skips packing, so the tiles' advantage (no packing, no dispatch) shrinks
    to the smallest products.  There the tiles take products up to a quarter
    of ``TILE_WORK`` only.  A property of the
    machine, read once: it never depends on timing.
    """
    return any(c in _openblas_cores() for c in _SMALL_KERNEL_CORES)


def blas_lacks_avx512():
    """Whether SciPy's BLAS is OpenBLAS running kernels without AVX-512
    (Haswell, Zen, Sandy Bridge), known from what it reports: then, on a CPU
    with AVX-512, the tiles beat it at every size (:data:`DEEP_TILE_K`).  Any
    other BLAS (MKL, say) or no answer: False."""
    cores = _openblas_cores()
    return not blas_has_small_kernels() and any(c in cores for c in _AVX2_KERNEL_CORES)


@functools.cache
def wide_vectors():
    """Wide (64-byte) vectors per tile row on this CPU: 2 with AVX-512, else 1.

    What the compiled code is made for: Numba's CPU features (``NUMBA_CPU_FEATURES``
    or the host's).  With AVX-512 a tile of 4 rows x 2 zmm vectors keeps 8
    accumulators in registers (of 32); on AVX2 the same tile would need 16
    ymm accumulators (of 16) and spill, so one wide vector (two ymm) per row
    is the widest there.  Either way each element is the same sum in the same
    order: the choice changes speed, never bits.
    """
    import numba
    from llvmlite import binding

    features = numba.config.CPU_FEATURES
    if features is None:
        if numba.config.CPU_NAME not in (None, "host"):
            return 1  # a named target CPU (portable code): assume no AVX-512
        features = binding.get_host_cpu_features().flatten()
    return 2 if "+avx512f" in features.split(",") else 1


def _make_tile(MR, NV, vec_bytes):
    """An intrinsic computing one ``MR x (NV * W)`` tile of ``C = A B`` (``W`` lanes).

    ``tile(x, pa, sar, sak, y, pb, ldy, c, pc, ldc, K, accumulate)``, all of
    ``x``, ``y``, ``c`` 1-D::

        C[pc + r*ldc + q] (+)= sum over k of x[pa + r*sar + k*sak] * y[pb + k*ldy + q]

    for ``r < MR``, ``q < NV * W``, where ``W`` is the number of elements in
    ``vec_bytes`` (32 or 64) bytes.  The ``MR x NV`` accumulators are SIMD vectors held in registers
    for the whole sum; each step over ``k`` loads ``NV`` vectors of a row of
    ``B``, broadcasts ``MR`` elements of ``A`` and does ``MR * NV``
    multiply-adds (``llvm.fmuladd``: fused where the processor has FMA).  The
    sum over ``k`` runs in order, one term at a time, so an element's bits
    depend on neither its place in the tile nor on threads.  Written as LLVM IR
    because Numba's loops over scalar accumulators do not vectorise this way
    (they run well behind BLAS where this tile runs ahead of it).
    """

    @intrinsic
    def tile(typingctx, x, pa, sar, sak, y, pb, ldy, c, pc, ldc, K, accumulate):
        sig = types.none(x, pa, sar, sak, y, pb, ldy, c, pc, ldc, K, accumulate)

        def codegen(context, builder, sig, args):
            # Numba internals, imported where used: the plain path never compiles a tile
            from llvmlite import ir
            from numba.core import cgutils
            from numba.np.arrayobj import make_array

            T = context.get_data_type(sig.args[0].dtype)
            size = context.get_abi_sizeof(T)
            W = vec_bytes // size
            V = ir.VectorType(T, W)
            intp = context.get_value_type(types.intp)

            def idx(i):
                return context.cast(builder, args[i], sig.args[i], types.intp)

            xd, yd, cd = (
                make_array(sig.args[i])(context, builder, args[i]).data for i in (0, 4, 7)
            )
            pa, sar, sak, pb, ldy, pc, ldc, n_k = (idx(i) for i in (1, 2, 3, 5, 6, 8, 9, 10))
            acc_in = context.cast(builder, args[11], sig.args[11], types.boolean)
            name = f"llvm.fmuladd.v{W}{'f64' if size == 8 else 'f32'}"
            fnty = ir.FunctionType(V, [V, V, V])
            fma = cgutils.get_or_insert_function(builder.module, fnty, name)
            i32 = ir.IntType(32)
            zero = ir.Constant(V, None)
            undef = ir.Constant(V, ir.Undefined)
            splat = ir.Constant(ir.VectorType(i32, W), [0] * W)

            def vptr(data, off):
                return builder.bitcast(builder.gep(data, [off]), V.as_pointer())

            pre = builder.block
            loop = builder.append_basic_block("tile.k")
            done = builder.append_basic_block("tile.done")
            builder.cbranch(builder.icmp_signed(">", n_k, intp(0)), loop, done)

            builder.position_at_end(loop)
            k = builder.phi(intp)
            k.add_incoming(intp(0), pre)
            acc = [builder.phi(V) for _ in range(MR * NV)]
            for a in acc:
                a.add_incoming(zero, pre)
            brow = builder.add(pb, builder.mul(k, ldy))
            b = [
                builder.load(vptr(yd, builder.add(brow, intp(v * W))), align=size)
                for v in range(NV)
            ]
            acol = builder.add(pa, builder.mul(k, sak))
            new = []
            for r in range(MR):
                a = builder.load(builder.gep(xd, [builder.add(acol, builder.mul(intp(r), sar))]))
                av = builder.shuffle_vector(builder.insert_element(undef, a, i32(0)), undef, splat)
                new += [builder.call(fma, [av, b[v], acc[r * NV + v]]) for v in range(NV)]
            k_next = builder.add(k, intp(1))
            k.add_incoming(k_next, loop)
            for a, n in zip(acc, new, strict=True):
                a.add_incoming(n, loop)
            builder.cbranch(builder.icmp_signed("<", k_next, n_k), loop, done)

            builder.position_at_end(done)
            sums = [builder.phi(V) for _ in range(MR * NV)]
            for s, n in zip(sums, new, strict=True):
                s.add_incoming(zero, pre)
                s.add_incoming(n, loop)
            for r in range(MR):
                crow = builder.add(pc, builder.mul(intp(r), ldc))
                for v in range(NV):
                    ptr = vptr(cd, builder.add(crow, intp(v * W)))
                    s = sums[r * NV + v]
                    with builder.if_else(acc_in) as (then, otherwise):
                        with then:
                            old = builder.load(ptr, align=size)
                            builder.store(builder.fadd(old, s), ptr, align=size)
                        with otherwise:
                            builder.store(s, ptr, align=size)
            return context.get_dummy_value()

        return sig, codegen

    return tile


# wide tiles (64-byte vectors) by rows x vectors, and narrow ones (32 bytes, one vector)
_wide_12x2, _wide_8x2, _wide_4x2, _wide_2x2, _wide_1x2 = (
    _make_tile(r, 2, _WIDE_BYTES) for r in (12, 8, 4, 2, 1)
)
_wide_8x1, _wide_4x1, _wide_2x1, _wide_1x1 = (_make_tile(r, 1, _WIDE_BYTES) for r in (8, 4, 2, 1))
_tile_4x1, _tile_2x1, _tile_1x1 = (_make_tile(r, 1, _VEC_BYTES) for r in (4, 2, 1))


#: elements of the stack buffer the last, zero-padded column panel of ``Y``
#: (``K x W``) is packed into: 16 KiB in float64, 8 KiB in float32 (small, as
#: kernels also run on Python threads, whose stacks can be small)
_PANEL = 2048
#: elements of the buffer for one tile of the zero-padded last panel (4 rows x 1 vector)
_PART = 4 * (_VEC_BYTES // 4)


@jit()
def _tiled_matmul(X, trans_x, Y, trans_y, C, accumulate, wide):
    """``C (+)= op(X) @ op(Y)`` in register tiles (see :func:`_make_tile`).

    Columns go in panels of ``wide`` (2 with AVX-512, else 1:
    :func:`wide_vectors`) 64-byte vectors, then one, then one 32-byte vector;
    the last few columns (fewer than that) form one more panel, packed with
    zeros to a whole 32-byte vector into a buffer on the stack (``K x W``
    elements, at most :data:`_PANEL`: :func:`tiles_fit`); its tiles go through
    a second small buffer, of which only the real columns are kept.  Within a
    panel, rows go in tiles of 12 (two wide vectors) or 8 (one) where a tile
    row is held in AVX-512 registers (24 or 8 accumulators of 32 registers),
    then 8, 4, 2, 1.  Every element is one sum
    over ``k`` in order (a padded lane only ever adds ``a * 0`` to a lane that
    is thrown away), whatever the tile it falls in, so the result is a function
    of the shapes only -- the same for ``wide`` 1 and 2, and for any split of
    ``C`` into blocks (:func:`_tile_blocks`).

    With ``trans_y`` (the gradient sent down, ``D W^T``) every panel of
    ``op(Y)`` is packed into the stack buffer first (``K x`` its width, so
    deep products take narrower panels: :func:`tiles_fit`).
    """
    M, N = C.shape
    zero = np.int64(0)  # a run-time integer, not a literal (one compiled version)
    _tiles(X, trans_x, Y, trans_y, C, accumulate, wide, zero, M, zero, N)


@jit()
def _tiles(X, trans_x, Y, trans_y, C, accumulate, wide, i0, i1, j0, j1):
    """The block ``C[i0:i1, j0:j1]`` of :func:`_tiled_matmul`, in place."""
    N = C.shape[1]
    K = X.shape[0] if trans_x else X.shape[1]
    ldx = X.shape[1]
    sar = 1 if trans_x else ldx  # step of A(i, k) along i ...
    sak = ldx if trans_x else 1  # ... and along k
    x = flat_view(X)
    y = flat_view(Y)
    c = flat_view(C)
    buf = stack_buffer(C, _PANEL)
    part = stack_buffer(C, _PART)
    W = _VEC_BYTES // C.itemsize  # lanes of a narrow vector; a wide one has 2 W
    # panel kinds -- 2: two wide vectors (4 W lanes), 1: one wide vector, 0: one
    # narrow vector -- up to the widest allowed (a packed panel must fit the buffer)
    top = wide
    if trans_y:
        top = 2 if wide >= 2 and 4 * W * K <= _PANEL else (1 if 2 * W * K <= _PANEL else 0)
    j = j0
    while j < j1:
        kind = 2 if top >= 2 and j + 4 * W <= j1 else (1 if top >= 1 and j + 2 * W <= j1 else 0)
        width = W << kind
        cols = width if j + width <= j1 else j1 - j  # < width: the padded panel
        if trans_y:  # rows j.. of Y, transposed (and zero-padded to the width)
            for q in range(width):
                if q < cols:
                    for k in range(K):
                        buf[k * width + q] = Y[j + q, k]
                else:
                    for k in range(K):
                        buf[k * width + q] = 0.0
        elif cols < width:  # Y[:, j:], zero-padded to one vector
            for k in range(K):
                for q in range(width):
                    buf[k * width + q] = Y[k, j + q] if q < cols else 0.0
        if cols < width:
            yb, pb, ldy, out, ldc = buf, 0, width, part, width
        elif trans_y:
            yb, pb, ldy, out, ldc = buf, 0, width, c, N
        else:
            yb, pb, ldy, out, ldc = y, j, N, c, N
        # the most rows a tile of this panel takes: 12 (two wide vectors, 24
        # accumulators) or 8 (one) only where a tile row is AVX-512 registers
        top_rows = 4 if wide < 2 or kind == 0 else (12 if kind == 2 else 8)
        i = i0
        while i < i1:
            left = i1 - i
            mr = 12 if top_rows == 12 and left >= 12 else (8 if top_rows >= 8 and left >= 8 else (
                4 if left >= 4 else (2 if left >= 2 else 1)))  # fmt: skip
            pa = i * sar
            pc = i * N + j if cols == width else 0
            acc = accumulate and cols == width
            # one of the twelve tiles, by its rows (mr) and kind
            if kind == 2:
                if mr == 12:
                    _wide_12x2(x, pa, sar, sak, yb, pb, ldy, out, pc, ldc, K, acc)
                elif mr == 8:
                    _wide_8x2(x, pa, sar, sak, yb, pb, ldy, out, pc, ldc, K, acc)
                elif mr == 4:
                    _wide_4x2(x, pa, sar, sak, yb, pb, ldy, out, pc, ldc, K, acc)
                elif mr == 2:
                    _wide_2x2(x, pa, sar, sak, yb, pb, ldy, out, pc, ldc, K, acc)
                else:
                    _wide_1x2(x, pa, sar, sak, yb, pb, ldy, out, pc, ldc, K, acc)
            elif kind == 1:
                if mr == 8:
                    _wide_8x1(x, pa, sar, sak, yb, pb, ldy, out, pc, ldc, K, acc)
                elif mr == 4:
                    _wide_4x1(x, pa, sar, sak, yb, pb, ldy, out, pc, ldc, K, acc)
                elif mr == 2:
                    _wide_2x1(x, pa, sar, sak, yb, pb, ldy, out, pc, ldc, K, acc)
                else:
                    _wide_1x1(x, pa, sar, sak, yb, pb, ldy, out, pc, ldc, K, acc)
            elif mr == 4:
                _tile_4x1(x, pa, sar, sak, yb, pb, ldy, out, pc, ldc, K, acc)
            elif mr == 2:
                _tile_2x1(x, pa, sar, sak, yb, pb, ldy, out, pc, ldc, K, acc)
            else:
                _tile_1x1(x, pa, sar, sak, yb, pb, ldy, out, pc, ldc, K, acc)
            if cols < width:
                for r in range(mr):
                    for q in range(cols):
                        v = part[r * width + q]
                        C[i + r, j + q] = C[i + r, j + q] + v if accumulate else v
            i += mr
        j += width


@jit()
def _tile_block(X, trans_x, Y, trans_y, C, accumulate, wide, b, nb, by_rows):
    """Block ``b`` of ``nb`` of :func:`_tile_blocks`, in place."""
    M, N = C.shape
    W = _VEC_BYTES // C.itemsize
    zero = np.int64(0)  # run-time integers, not literals (one compiled version)
    if by_rows:
        _tiles(X, trans_x, Y, trans_y, C, accumulate, wide, b * M // nb, (b + 1) * M // nb,
               zero, N)  # fmt: skip
    else:
        j0 = b * N // nb // W * W
        j1 = N if b == nb - 1 else (b + 1) * N // nb // W * W
        _tiles(X, trans_x, Y, trans_y, C, accumulate, wide, zero, M, j0, j1)


@jit(parallel=True)
def _tile_blocks(X, trans_x, Y, trans_y, C, accumulate, wide, nb, by_rows):
    """:func:`_tiled_matmul` as ``nb`` blocks of ``C``, in parallel.

    The blocks are those of :func:`_gemm_blocks` (rows or columns of ``C``),
    except that column blocks start at a multiple of a narrow vector's lanes:
    only the last block can then end in a zero-padded panel, the one the
    whole product has (which :func:`tiles_fit` checked fits the stack buffer).
    Each element is the same in-order sum in any block, so the split changes
    no bits (it only shares the work).
    """
    for b in prange(nb):
        # prange's index is unsigned: cast, or the callees compile twice
        _tile_block(X, trans_x, Y, trans_y, C, accumulate, wide, np.int64(b), nb, by_rows)


@jit()
def tiles_fit(K, N, itemsize, trans_y):
    """Whether :func:`_tiled_matmul` should take a ``K``-deep product into ``N`` columns.

    Its zero-padded last panel (with ``trans_y``, every panel: they are all
    packed) must fit the stack buffer, and waste at most a quarter of the
    lanes: a float32 product into 10 columns (a 10-class output layer) would
    compute 16 lanes, more waste than the tile's savings over BLAS make up
    for.
    """
    W = _VEC_BYTES // itemsize
    pad = (W - N % W) % W
    return 4 * pad <= N and ((pad == 0 and not trans_y) or K * W <= _PANEL)


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

    ``op`` transposes where ``trans_x``/``trans_y`` is set.  By size (in
    multiply-adds): at most ``tune[3]`` runs in plain loops; at most
    ``tune[4]`` (times the item size; half that with ``Y`` transposed) in skbp's
    register tiles (``tune[5]``: wide vectors per tile row, see
    :func:`wide_vectors`), and so is any product at most ``tune[6]`` deep
    (:data:`DEEP_TILE_K`, where the tiles beat the BLAS at every size); at least
    ``tune[0]`` is split into blocks (tiles or BLAS calls), run in parallel
    where ``tune[7]`` allows a parallel region and one after the other
    elsewhere; the rest is one BLAS call.
    """
    M, N = C.shape
    K = X.shape[0] if trans_x else X.shape[1]
    if M == 0 or N == 0:
        return
    if K == 0 or M * K * N <= tune[3]:
        _small_matmul(X, trans_x, Y, trans_y, C, accumulate)
        return
    # with Y transposed, packing its panels costs the tiles' lead at half the size
    work = M * K * N * C.itemsize * (2 if trans_y else 1)
    nb = n_blocks(M, K, N, tune)
    by_rows = split_rows(M, N)
    if (work <= tune[4] or K <= tune[6]) and tiles_fit(K, N, C.itemsize, trans_y):
        if nb > 1 and tune[7]:
            _tile_blocks(X, trans_x, Y, trans_y, C, accumulate, tune[5], nb, by_rows)
        elif nb > 1:
            for b in range(nb):
                _tile_block(X, trans_x, Y, trans_y, C, accumulate, tune[5], b, nb, by_rows)
        else:
            _tiled_matmul(X, trans_x, Y, trans_y, C, accumulate, tune[5])
        return
    scal = blas_scalars(C, 1.0 if accumulate else 0.0)  # BLAS's alpha and beta
    if nb > 1 and tune[7]:
        _gemm_blocks(X, trans_x, Y, trans_y, C, scal, nb, by_rows)
    elif nb > 1:
        for b in range(nb):
            _gemm_block(X, trans_x, Y, trans_y, C, scal, b, nb, by_rows)
    else:
        _gemm(trans_x, trans_y, M, N, K, scal[0:1], flat_view(X), X.shape[1], flat_view(Y),
              Y.shape[1], scal[1:2], flat_view(C), N)  # fmt: skip


if config.DISABLE_JIT:
    # NUMBA_DISABLE_JIT=1 runs the kernels as Python, which can run neither the
    # tiles (LLVM IR) nor the BLAS wrapper compiled code calls: NumPy computes
    # every product instead (the same values, summed in another order)

    def matmul(X, trans_x, Y, trans_y, C, accumulate, tune):  # noqa: F811
        """``C = op(X) @ op(Y)`` (``C += ...`` when ``accumulate``), by NumPy."""
        P = (X.T if trans_x else X) @ (Y.T if trans_y else Y)
        if accumulate:
            C += P
        else:
            C[...] = P
elif PLAIN:
    # plain Numba (skbp._numba_support): no tiles (LLVM IR) and no call into
    # Numba's BLAS helper, np.dot instead (the same values up to rounding)

    @jit()
    def matmul(X, trans_x, Y, trans_y, C, accumulate, tune):  # noqa: F811
        """``C = op(X) @ op(Y)`` (``C += ...`` when ``accumulate``), by ``np.dot``."""
        M, N = C.shape
        K = X.shape[0] if trans_x else X.shape[1]
        if M == 0 or N == 0:
            return
        if K == 0 or M * K * N <= tune[3]:
            _small_matmul(X, trans_x, Y, trans_y, C, accumulate)
            return
        if trans_x:
            P = np.dot(X.T, Y.T) if trans_y else np.dot(X.T, Y)
        else:
            P = np.dot(X, Y.T) if trans_y else np.dot(X, Y)
        for i in range(M):
            for j in range(N):
                C[i, j] = C[i, j] + P[i, j] if accumulate else P[i, j]
