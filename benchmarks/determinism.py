"""Same weights for every thread count, on this machine: W2-shaped fits at several n_jobs.

    python benchmarks/determinism.py [--rows 6000]

Fits ``BPClassifier((256, 128))`` (Adam, batch 128, 2 epochs, float32, and the
same in float64 with SGD) on MNIST-shaped synthetic data with ``n_jobs`` = 1, 2,
4, ... up to the machine's cores, and reports whether every fit's weights are
bit-identical to the 1-thread fit, with the time of each fit.
"""

import argparse
import os
import time
import warnings

import numpy as np
from sklearn.datasets import make_classification

from skbp import BPClassifier
from skbp._threads import max_threads


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=6000)
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
