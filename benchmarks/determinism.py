"""Same weights for every thread count, on this machine: W2-shaped fits at several n_jobs.

    python benchmarks/determinism.py [--rows 6000]

Fits ``BPClassifier((256, 128))`` (Adam, batch 128, 2 epochs, float32, and the
same with SGD in float64) on MNIST-shaped synthetic data (``--rows`` x 784, 10
classes) with ``n_jobs`` = 1, 2, 3, 4, 8 and the number of threads Numba may use
here (those counts that do not exceed it), and reports whether each fit's
weights and loss curve are bit-identical to those of the ``n_jobs=1`` fit, with
the time of each fit (the first of each dtype includes Numba's compile or cache
load).
"""

import argparse
import os
import time
import warnings

import numpy as np
from sklearn.datasets import make_classification

from skbp import BPClassifier
from skbp._runtime import max_threads


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=6000, help="rows of the data (6000)")
    args = ap.parse_args()
    X, y = make_classification(args.rows, 784, n_informative=100, n_classes=10, random_state=0)
    X = (X - X.mean(0)) / X.std(0)
    top = max_threads()
    counts = sorted({1, 2, 3, 4, 8, top} & set(range(1, top + 1)))
    print(f"{os.cpu_count()} cores, Numba may use {top} threads; n_jobs tried: {counts}")
    for dtype, solver in ((np.float32, "adam"), (np.float64, "sgd")):
        Xd = X.astype(dtype)
        ref = None
        for n_jobs in counts:
            est = BPClassifier((256, 128), solver=solver, batch_size=128, max_iter=2,
                               random_state=0, n_jobs=n_jobs)  # fmt: skip
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = time.perf_counter()
                est.fit(Xd, y)
                dt = time.perf_counter() - t
            if ref is None:
                ref = est
            same = np.array_equal(est._w, ref._w) and est.loss_curve_ == ref.loss_curve_
            print(f"{np.dtype(dtype).name} {solver} n_jobs={n_jobs:<3} {dt:7.3f} s  "
                  f"loss {est.loss_:.6f}  identical to n_jobs=1: {same}")  # fmt: skip


if __name__ == "__main__":
    main()
