"""skbp in Python threads: a threaded grid search and concurrent fits, against sequential runs.

Issue 8 point 2: ``GridSearchCV`` under joblib's threading backend with
``n_jobs=2`` should be at least 1.5x faster than the sequential search, and
repeated runs should stay within 1.5x of each other.  Two cases, each run
``--repeats`` times, sequential and threaded alternating so that both see the
same machine:

* ``search``: ``GridSearchCV`` on digits (4 candidates x 3 folds = 12 fits of
  ``BPClassifier(max_iter=30)``, default ``n_jobs``), sequential (``n_jobs=1``)
  against ``joblib.parallel_backend("threading")`` with ``n_jobs=2``;
* ``fits``: 8 fits of ``BPClassifier(max_iter=30)`` (``random_state`` 0-7) on
  the first 1,198 rows of digits (a fold's training size), one after the
  other, against two plain Python threads doing 4 fits each.

The threaded search must give every candidate the same CV scores as the
sequential one, and every threaded fit the same first-layer weights; the script
asserts both.  Prints the times of each run, the ratio sequential / threaded
(> 1: threads faster), its median, and the spread (slowest / fastest threaded run).

    python benchmarks/threads.py                 # 10 repeats
    python benchmarks/threads.py --repeats 3
"""

import argparse
import os
import platform
import statistics
import sys
import threading
import time
import warnings

import joblib
import numpy as np
import sklearn
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

import skbp
from skbp import BPClassifier

GRID = {"hidden_layer_sizes": [(50,), (100,)], "learning_rate_init": [1e-3, 1e-2]}


def _search(X, y, backend, n_jobs):
    g = GridSearchCV(BPClassifier(max_iter=30, random_state=0), GRID, cv=3, n_jobs=n_jobs)
    t0 = time.perf_counter()
    with joblib.parallel_backend(backend):
        g.fit(X, y)
    return time.perf_counter() - t0, g.cv_results_["mean_test_score"]


def _fits(X, y, n_threads, n_fits=8):
    models = [None] * n_fits

    def work(ids):
        for i in ids:
            models[i] = BPClassifier(max_iter=30, random_state=i).fit(X, y)

    t0 = time.perf_counter()
    if n_threads == 1:
        work(range(n_fits))
    else:
        ths = [
            threading.Thread(target=work, args=(range(k, n_fits, n_threads),))
            for k in range(n_threads)
        ]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
    return time.perf_counter() - t0, [m.coefs_[0] for m in models]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=10, help="runs of each case (10)")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = load_digits(return_X_y=True)
    Xf, yf = X[:1198], y[:1198]
    print(
        f"skbp {skbp.__version__}, scikit-learn {sklearn.__version__}; "
        f"{os.cpu_count()} cores ({platform.machine()}), Python {platform.python_version()}"
    )
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import cores

    print(cores.header())
    BPClassifier(max_iter=2).fit(X, y)  # compile / load the cache outside the timings
    rows = {"search": [], "fits": []}
    for _ in range(args.repeats):
        ts, ss = _search(X, y, "loky", 1)  # n_jobs=1: joblib runs it sequentially
        tt, st = _search(X, y, "threading", 2)
        assert np.array_equal(ss, st), "threaded search scored differently"
        rows["search"].append((ts, tt))
        fs, cs = _fits(Xf, yf, 1)
        ft, ct = _fits(Xf, yf, 2)
        assert all(np.array_equal(a, b) for a, b in zip(cs, ct, strict=True)), "weights differ"
        rows["fits"].append((fs, ft))
    print("\n| case | sequential s | threaded s | sequential / threaded |")
    print("|---|---|---|---|")
    for case, runs in rows.items():
        for s, t in runs:
            print(f"| {case} | {s:.3f} | {t:.3f} | {s / t:.2f}x |")
    print("\n| case | median speed-up | min | max | threaded runs: slowest / fastest |")
    print("|---|---|---|---|---|")
    for case, runs in rows.items():
        r = [s / t for s, t in runs]
        th = [t for _, t in runs]
        print(
            f"| {case} | {statistics.median(r):.2f}x | {min(r):.2f}x | {max(r):.2f}x "
            f"| {max(th) / min(th):.2f} |"
        )
    print("\nThreaded results equal the sequential ones (scores and weights): checked.")


if __name__ == "__main__":
    main()
