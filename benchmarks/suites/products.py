"""skbp's register tiles against one BLAS call per product, and the GEMM peak.

The products of a small network's mini-batch update go through skbp's own
register tiles (``skbp._matmul._tiled_matmul``) instead of BLAS when they are
small enough (``skbp._matmul.TILE_WORK``), and products of any size where
Numba compiles AVX-512 code beside an OpenBLAS with AVX2 kernels
(``skbp._matmul.DEEP_TILE_K``).  This times, for each shape, dtype and kind
(``NN``: the forward ``H W``; ``TN``: the weight gradient ``H^T D``; ``NT``:
the gradient sent down ``D W^T``, whose panels the tiles pack first), one
product in a compiled loop (best of 5), through BLAS and through the tiles
with tile rows of one and of two 64-byte vectors (two is what skbp uses on a
CPU with AVX-512, one elsewhere: ``skbp._matmul.wide_vectors``), and prints
BLAS time / tile time (> 1: the tiles are faster), the GFLOP/s of the faster
path against the machine's measured one-thread GEMM peak (numpy, 2048 x 2048:
the physical bound) and whether ``matmul`` takes the tiles at that shape here.
BLAS is held to one thread, as during skbp's fits.
"""

import time

import numba
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import skbp._matmul as mm

from ._common import gemm_peak, header, md_table

# (M, K, N, kind): batch-32 updates of (64,) / (64, 32) networks on 20-30
# features (W1, the grid-search benchmark), W3's batch-64 products, two above
# the tile threshold, then W2's batch-128 products (784 inputs, (256, 128)),
# which take the tiles only where ``tune[6]`` says so (AVX-512 code beside an
# OpenBLAS with AVX2 kernels)
SHAPES = [
    (32, 30, 64, "NN"), (32, 64, 64, "NN"), (64, 32, 64, "TN"), (30, 32, 64, "TN"),
    (32, 64, 64, "NT"), (32, 32, 64, "NT"), (64, 50, 128, "NN"), (50, 64, 128, "TN"),
    (64, 128, 64, "NN"), (128, 64, 64, "TN"), (64, 64, 128, "NT"), (128, 128, 128, "NN"),
    (200, 64, 100, "NN"), (128, 784, 256, "NN"), (784, 128, 256, "TN"), (128, 256, 128, "NN"),
    (256, 128, 128, "TN"), (128, 128, 256, "NT"),
]  # fmt: skip


DTYPES = (np.float32, np.float64)


@numba.njit
def _loop(X, tx, Y, ty, C, tune, reps):
    for _ in range(reps):
        mm.matmul(X, tx, Y, ty, C, False, tune)


def _tune(tiles, wide):
    t = mm.tune_array(split=False).copy()
    t[4] = 1 << 40 if tiles else 0
    t[5] = wide
    t[6] = 0  # (every product on the tiles already, or none)
    return t


def _time(X, tx, Y, ty, C, tune, reps):
    _loop(X, tx, Y, ty, C, tune, 3)
    best = np.inf
    for _ in range(5):
        t0 = time.perf_counter()
        _loop(X, tx, Y, ty, C, tune, reps)
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


def add_arguments(p):
    p.add_argument(
        "--reps", type=int, default=2000,
        help="products per timing at the smallest shapes, fewer for larger ones (2000)",
    )  # fmt: skip


def run(args):
    reps_top = 20 if args.quick else args.reps
    shapes = SHAPES[:3] + SHAPES[-2:] if args.quick else SHAPES
    header(args, "skbp benchmark: products")
    rng = np.random.default_rng(0)
    # SciPy's BLAS (behind Numba's gemm) must be loaded before the limit is set,
    # or the limit never reaches it (BLAS's own threads would then be timed)
    import scipy.linalg.cython_blas  # noqa: F401

    rows = []
    with threadpool_limits(1):
        counts = {i["filepath"].rsplit("/", 1)[-1]: i["num_threads"] for i in threadpool_info()}
        assert set(counts.values()) == {1}, counts
        peaks = {dt: gemm_peak(dt, repeats=3 if args.quick else 7, threads=1) for dt in DTYPES}
        for dtype in DTYPES:
            for M, K, N, kind in shapes:
                tx, ty = kind == "TN", kind == "NT"
                X = rng.standard_normal((K, M) if tx else (M, K)).astype(dtype)
                Y = rng.standard_normal((N, K) if ty else (K, N)).astype(dtype)
                C = np.zeros((M, N), dtype)
                reps = max(20, min(reps_top, reps_top * 2**17 // (M * K * N)))
                blas = _time(X, tx, Y, ty, C, _tune(False, 1), reps)
                t1 = _time(X, tx, Y, ty, C, _tune(True, 1), reps)
                t2 = _time(X, tx, Y, ty, C, _tune(True, 2), reps)
                item = np.dtype(dtype).itemsize
                tune = mm.tune_array()
                work = M * K * N * item * (2 if ty else 1)
                used = (work <= tune[4] or K <= tune[6]) and mm.tiles_fit(K, N, item, ty)
                gflops = 2.0 * M * K * N / min(blas, t1, t2) / 1e9
                rows.append([
                    np.dtype(dtype).name, f"{M} x {K} x {N}", kind, f"{blas * 1e6:.2f}",
                    f"{t1 * 1e6:.2f}", f"{t2 * 1e6:.2f}", f"{blas / t1:.2f}",
                    f"{blas / t2:.2f}", f"{gflops:.1f}", f"{100 * gflops / peaks[dtype]:.0f}%",
                    "yes" if used else "no",
                ])  # fmt: skip
    print(
        f"Tile rows of two 64-byte vectors are skbp's choice here: "
        f"{'yes' if mm.wide_vectors() == 2 else 'no'}.  numpy GEMM peak on one thread (the "
        f"physical bound): float32 {peaks[np.float32]:.1f} GFLOP/s, float64 "
        f"{peaks[np.float64]:.1f} GFLOP/s."
    )
    print()
    head = [
        "dtype", "M x K x N", "kind", "BLAS us", "tiles (1 wide) us", "tiles (2 wide) us",
        "BLAS / tiles (1)", "BLAS / tiles (2)", "best GFLOP/s", "% of GEMM peak",
        "tiles used here",
    ]  # fmt: skip
    print(md_table(head, rows, ["l", "l", "l"] + ["r"] * 7 + ["l"]))
    print()
    print(
        "us: best of 5 timings of one product (BLAS held to one thread).  BLAS / tiles > 1: "
        "the tiles are faster.  best GFLOP/s: 2 M K N over the fastest of the three."
    )
