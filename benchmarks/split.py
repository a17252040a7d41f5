"""Where splitting a product over two threads pays in a fit: the split threshold.

``skbp._matmul.PAR_MIN_WORK`` is the smallest product (in multiply-adds) that
a mini-batch update splits into blocks over the threads.  This fits networks
with one hidden layer (``F`` inputs, ``H`` units, 10 classes, random data) at
batch sizes 64, 128 and 256 in float32 and float64, so that the first layer's
products run from 1 M to 64 M multiply-adds, with every product from
``--min-work`` up split, on one thread and on two (``--threads``) with the
governor off, and
prints the time per update and two threads' gain (> 1: splitting pays).  The
same products alone in a compiled loop gain much more: 1.4x at 1.2 M and 1.9x
at 24 M.  In a fit, every update rewrites the weights and the activations on
one core, and the other core must fetch them again.  Also prints how long data
written by one thread takes to reach the other (``cores.py``), and then the
two fits that motivated skbp's threshold: digits (1,198 x 64, the default
(100,), batch 200, float64) and a 20,000 x 50 L-BFGS fit with (100,) (256-row
chunks, float32), serially and split on two threads.

    python benchmarks/split.py
    python benchmarks/split.py --min-work 1048576 --dtypes float32
    python benchmarks/split.py --threads 16 --dtypes float32    # a 16-core machine
"""

import argparse
import os
import statistics
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cores  # noqa: E402

import skbp._matmul as mm  # noqa: E402
import skbp._runtime as th  # noqa: E402
from skbp import BPClassifier  # noqa: E402

SHAPES = [(128, 128), (128, 256), (256, 256), (256, 512), (512, 512)]  # (F, H)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--min-work", type=int, default=1 << 20,
                   help="split products from this many multiply-adds (2^20)")  # fmt: skip
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--repeats", type=int, default=4, help="fits per setting, best taken (4)")
    p.add_argument("--threads", type=int, default=2, help="threads of the split setting (2)")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)
    print(cores.header())
    print(cores.cross_core_line())
    print(
        f"products split from {args.min_work:,} multiply-adds; governor off; best of {args.repeats}"
    )
    th.ADAPTIVE = False
    mm.PAR_MIN_WORK = args.min_work
    mm._TUNE_CACHE.clear()
    rng = np.random.default_rng(0)
    for dtype in ("float32", "float64"):  # load every kernel (prediction too) before timing
        Xw = rng.standard_normal((400, 8)).astype(dtype)
        BPClassifier((16,), max_iter=1).fit(Xw, np.arange(400) % 10).predict(Xw)
    nt = args.threads
    print("\n| dtype | batch | F | H | first-layer product M | 1 thread us/update "
          f"| {nt} threads us/update | {nt} threads' gain |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for dtype in args.dtypes.split(","):
        for B in (64, 128, 256):
            for F, H in SHAPES:
                work = B * F * H
                rows = max(2000, int(4e9 / work / 20) // B * B)
                X = rng.standard_normal((rows, F)).astype(dtype)
                y = rng.integers(0, 10, rows)

                def fit(n_jobs, X=X, y=y, B=B, H=H):
                    est = BPClassifier(
                        hidden_layer_sizes=(H,), batch_size=B, max_iter=3, random_state=0,
                        n_jobs=n_jobs, tol=0.0, n_iter_no_change=10**6,
                    )  # fmt: skip
                    t0 = time.perf_counter()
                    est.fit(X, y)
                    return time.perf_counter() - t0

                fit(1), fit(args.threads)
                t = {1: [], args.threads: []}
                for _ in range(args.repeats):
                    for n in (1, args.threads):
                        t[n].append(fit(n))
                s, q = min(t[1]), min(t[args.threads])
                updates = rows * 3 / B
                print(
                    f"| {dtype} | {B} | {F} | {H} | {work / 2**20:.2f} | {s / updates * 1e6:.1f} "
                    f"| {q / updates * 1e6:.1f} | {s / q:.2f}x |",
                    flush=True,
                )
    print(f"\n| fit | 1 thread ms | split, {nt} threads ms | {nt} threads' gain |")
    print("|---|---:|---:|---:|")
    for name, fit in _fits().items():
        fit(1), fit(args.threads)
        t = {1: [], args.threads: []}
        for _ in range(2 * args.repeats + 2):
            for n in (1, args.threads):
                t0 = time.perf_counter()
                fit(n)
                t[n].append(time.perf_counter() - t0)
        s, q = statistics.median(t[1]), statistics.median(t[args.threads])
        print(f"| {name} | {s * 1e3:.1f} | {q * 1e3:.1f} | {s / q:.2f}x |", flush=True)
    print(cores.header())


def _fits():
    from sklearn.datasets import load_digits, make_classification
    from sklearn.preprocessing import StandardScaler

    Xd, yd = load_digits(return_X_y=True)
    Xd, yd = Xd[:1198], yd[:1198]
    Xl, yl = make_classification(20000, 50, n_informative=10, n_redundant=0, random_state=0)
    Xl = StandardScaler().fit_transform(Xl).astype(np.float32)
    return {
        "digits, Adam, 30 epochs": lambda n: BPClassifier(
            max_iter=30, random_state=0, n_jobs=n
        ).fit(Xd, yd),
        "L-BFGS, 20 iterations": lambda n: BPClassifier(
            hidden_layer_sizes=(100,), solver="lbfgs", max_iter=20, random_state=0, n_jobs=n,
            alpha=0.0, tol=0.0,
        ).fit(Xl, yl),
    }  # fmt: skip


if __name__ == "__main__":
    main()
