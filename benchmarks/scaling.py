"""Where W2's time goes as threads are added: the whole fit against its products alone.

    python benchmarks/scaling.py                      # all usable cores, block widths 16/32/64
    python benchmarks/scaling.py --threads 1,2 --widths 32 --epochs 1
    python benchmarks/scaling.py --parts              # which part of the rest

``--parts`` instead fits W2 with the optimizer and the row order changed
(Adam; SGD without momentum, a cheaper sweep; SGD with momentum; Adam without
shuffling, rows read in order) on one thread and on all of them, which
separates the Adam sweep and the random row gather from the rest.

For each block width (``skbp._matmul.PAR_BLOCK_COLS``: the narrowest block a
split product is cut into; 32 is skbp's setting) and each thread count, this
fits W2 of ``workloads.py`` (60,000 x 784 float32, (256, 128), Adam, batch
128) with the thread governor off, so that every step uses the given count,
and times, in one compiled loop, the eight matrix products of one W2 update
at the same shapes, split the same way.  It prints per update: the fit, the
products, the rest (row gather, activations, loss, Adam's sweeps, fork/joins),
the speed-ups over one thread, and whether the weights are bit-identical to
the one-thread fit of the same width.  A width other than 32 changes how the
products are cut, hence the last bits of the weights, but never their
dependence on the thread count.

This is the measurement behind issue 8's 16-core W2 target (>= 6x from 1 to
16 threads): it shows how much of an update still runs on one thread.
"""

import argparse
import hashlib
import os
import sys
import time
import warnings

import numba
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cores  # noqa: E402
import workloads  # noqa: E402

import skbp._matmul as mm  # noqa: E402
import skbp._runtime as th  # noqa: E402
from skbp import BPClassifier  # noqa: E402

# (M, K, N, trans_x, trans_y) of one W2 update at batch 128: forward, then
# the weight gradients and the gradients sent down (none below the first layer)
PRODUCTS = [
    (128, 784, 256, False, False), (128, 256, 128, False, False), (128, 128, 10, False, False),
    (128, 128, 10, True, False), (128, 10, 128, False, True),
    (256, 128, 128, True, False), (128, 128, 256, False, True),
    (784, 128, 256, True, False),
]  # fmt: skip


@numba.njit(nogil=True)
def _products(ops, tune, reps):
    for _ in range(reps):
        for X, tx, Y, ty, C in ops:
            mm.matmul(X, tx, Y, ty, C, False, tune)


def _operands(rng):
    ops = []
    for M, K, N, tx, ty in PRODUCTS:
        X = rng.standard_normal((K, M) if tx else (M, K)).astype(np.float32)
        Y = rng.standard_normal((N, K) if ty else (K, N)).astype(np.float32)
        ops.append((X, tx, Y, ty, np.zeros((M, N), np.float32)))
    return tuple(ops)


def _digest(est):
    h = hashlib.sha256()
    for a in (*est.coefs_, *est.intercepts_):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:12]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    top = th.max_threads()
    ap.add_argument("--threads", default=None, help=f"thread counts (1,2,4,8,... up to {top})")
    ap.add_argument("--widths", default="16,32,64", help="block widths to try (16,32,64)")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per fit (2)")
    ap.add_argument("--reps", type=int, default=200, help="product loops per timing (200)")
    ap.add_argument("--parts", action="store_true", help="optimizer / row-order variants instead")
    args = ap.parse_args()
    counts = (
        [int(s) for s in args.threads.split(",")]
        if args.threads
        else sorted({1, 2, 4, 8, top} & set(range(1, top + 1)))
    )
    widths = [int(s) for s in args.widths.split(",")]
    w = workloads.WORKLOADS["W2"]
    X, y = workloads.make_data(w, np.float32)
    updates = args.epochs * -(-w["n_rows"] // w["batch"])
    ops = _operands(np.random.default_rng(0))
    warnings.simplefilter("ignore", ConvergenceWarning)  # 2 epochs, on purpose

    def fit(n_jobs):
        est = BPClassifier(w["hidden"], solver="adam", learning_rate_init=w["lr"],
                           batch_size=w["batch"], max_iter=args.epochs, tol=0.0,
                           n_iter_no_change=10**6, random_state=0, n_jobs=n_jobs)  # fmt: skip
        t = time.perf_counter()
        est.fit(X, y)
        return time.perf_counter() - t, _digest(est)

    th.ADAPTIVE = False
    fit(1)  # compile or load the kernels
    if args.parts:
        _parts(X, y, w, args.epochs, updates, top)
        return
    print(f"{os.cpu_count()} cores, Numba may use {top} threads, layer {numba.threading_layer()}")
    print(cores.header())
    print(f"W2 float32, {args.epochs} epochs = {updates} updates per fit; governor off\n")
    print("| width | threads | blocks fwd/dW1 | fit ms/update | products ms/update | rest ms/update"
          " | fit speed-up | products speed-up | same bits as 1 thread |")  # fmt: skip
    print("|---:|---:|---|---:|---:|---:|---:|---:|---|")
    for width in widths:
        mm.PAR_BLOCK_COLS = width
        mm._TUNE_CACHE.clear()
        tune = mm.tune_array()
        blocks = f"{mm.n_blocks(128, 784, 256, tune)}/{mm.n_blocks(784, 128, 256, tune)}"
        base = None
        for n in counts:
            numba.set_num_threads(n)
            with threadpool_limits(1):
                _products(ops, tune, 2)
                t = time.perf_counter()
                _products(ops, tune, args.reps)
                prod = (time.perf_counter() - t) / args.reps
            numba.set_num_threads(top)
            times = []
            for _ in range(2):
                s, digest = fit(n)
                times.append(s)
            per = min(times) / updates
            if base is None:
                base = (per, prod, digest)
            same = "yes" if digest == base[2] else f"NO ({digest})"
            ms = [f"{v * 1e3:.3f}" for v in (per, prod, per - prod)]
            gains = [f"{base[0] / per:.2f}x", f"{base[1] / prod:.2f}x"]
            row = [width, n, blocks, *ms, *gains, same]
            print("| " + " | ".join(map(str, row)) + " |", flush=True)
    mm.PAR_BLOCK_COLS = 32
    mm._TUNE_CACHE.clear()


PARTS = [
    ("adam", dict(solver="adam")),
    ("sgd m=0", dict(solver="sgd", momentum=0.0)),
    ("sgd m=0.9", dict(solver="sgd", momentum=0.9)),
    ("adam no shuffle", dict(solver="adam", shuffle=False)),
]


def _parts(X, y, w, epochs, updates, top):
    """ms per update of the :data:`PARTS` variants on 1 and ``top`` threads (min of 2)."""

    def per_update(n_jobs, kw):
        est = BPClassifier(w["hidden"], learning_rate_init=w["lr"], batch_size=w["batch"],
                           max_iter=epochs, tol=0.0, n_iter_no_change=10**6, random_state=0,
                           n_jobs=n_jobs, **kw)  # fmt: skip
        t = time.perf_counter()
        est.fit(X, y)
        return (time.perf_counter() - t) / updates * 1e3

    print(f"{os.cpu_count()} cores; ms per update, min of 2")
    for name, kw in PARTS:
        cells = [f"n_jobs={n}: {min(per_update(n, kw) for _ in range(2)):.3f}" for n in (1, top)]
        print(f"{name:16s}", "  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
