"""skbp in Python threads: a threaded grid search and concurrent fits, against sequential runs.

Issue 8 point 2: ``GridSearchCV`` under joblib's threading backend with
``n_jobs=2`` should be at least 1.5x faster than the sequential search, on
the digits search and on the search of point 4, and repeated runs should stay
within 1.5x of each other.  Three cases, each run
``--repeats`` times, sequential and threaded alternating so that both see the
same machine:

* ``search``: ``GridSearchCV`` on digits (4 candidates x 3 folds = 12 fits of
  ``BPClassifier(max_iter=30)``, default ``n_jobs``), sequential (``n_jobs=1``)
  against ``joblib.parallel_backend("threading")`` with ``n_jobs=2``;
* ``fits``: 8 fits of ``BPClassifier(max_iter=30)`` (``random_state`` 0-7) on
  the first 1,198 rows of digits (a fold's training size), one after the
  other, against two plain Python threads doing 4 fits each;
* ``gridsearch``: the search of ``gridsearch.py`` (issue 8 point 4: a
  ``StandardScaler`` pipeline, 3 hidden sizes x 2 learning rates x 5 folds =
  30 fits on 8,000 x 30, Adam, batch 32, 40 epochs), sequential against the
  threading backend with ``n_jobs=2``, in this one process.

The threaded search must give every candidate the same CV scores as the
sequential one, and every threaded fit the same first-layer weights; the script
asserts both.  Prints the times of each run, the ratio sequential / threaded
(> 1: threads faster), its median, and the spread (slowest / fastest threaded run).

    python benchmarks/threads.py                 # 10 repeats
    python benchmarks/threads.py --repeats 3
    python benchmarks/threads.py --cases gridsearch
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
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skbp
from skbp import BPClassifier

GRID = {"hidden_layer_sizes": [(50,), (100,)], "learning_rate_init": [1e-3, 1e-2]}


def _search(X, y, backend, n_jobs):
    g = GridSearchCV(BPClassifier(max_iter=30, random_state=0), GRID, cv=3, n_jobs=n_jobs)
    t0 = time.perf_counter()
    with joblib.parallel_backend(backend):
        g.fit(X, y)
    return time.perf_counter() - t0, g.cv_results_["mean_test_score"]


def _gridsearch(X, y, backend, n_jobs):
    net = BPClassifier(
        solver="adam", batch_size=32, max_iter=40, tol=0.0, n_iter_no_change=10**6,
        random_state=0,
    )  # fmt: skip
    grid = {
        "bpclassifier__hidden_layer_sizes": [(32,), (64,), (64, 32)],
        "bpclassifier__learning_rate_init": [1e-3, 1e-2],
    }
    g = GridSearchCV(make_pipeline(StandardScaler(), net), grid, cv=5, n_jobs=n_jobs)
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
    p.add_argument("--cases", default="search,fits,gridsearch", help="(all)")
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
    Xg, yg = make_classification(n_samples=8000, n_features=30, n_informative=15, random_state=0)
    BPClassifier(max_iter=2).fit(X, y)  # compile / load the cache outside the timings
    BPClassifier((64, 32), batch_size=32, max_iter=2).fit(Xg, yg).predict(Xg)
    cases = [c for c in args.cases.split(",") if c]
    rows = {c: [] for c in cases}
    for _ in range(args.repeats):
        if "search" in rows:
            ts, ss = _search(X, y, "loky", 1)  # n_jobs=1: joblib runs it sequentially
            tt, st = _search(X, y, "threading", 2)
            assert np.array_equal(ss, st), "threaded search scored differently"
            rows["search"].append((ts, tt))
        if "fits" in rows:
            fs, cs = _fits(Xf, yf, 1)
            ft, ct = _fits(Xf, yf, 2)
            same = all(np.array_equal(a, b) for a, b in zip(cs, ct, strict=True))
            assert same, "weights differ"
            rows["fits"].append((fs, ft))
        if "gridsearch" in rows:
            ts, ss = _gridsearch(Xg, yg, "loky", 1)
            tt, st = _gridsearch(Xg, yg, "threading", 2)
            assert np.array_equal(ss, st), "threaded grid search scored differently"
            rows["gridsearch"].append((ts, tt))
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
