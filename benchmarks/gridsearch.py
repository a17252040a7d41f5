"""The benchmark users care about: a whole ``GridSearchCV``, skbp against scikit-learn's MLP.

A 30-fit search -- 3 hidden sizes x 2 learning rates x 5 folds -- over a
``StandardScaler`` -> network pipeline on 8,000 x 30 tabular data (binary
``make_classification``), 40 epochs of Adam with batch 32 each, on the same
cores for both libraries, with joblib's default process backend (loky) and
with its threading backend (``n_jobs`` = the machine's cores for both).

What is timed is the whole search as a user runs it.  For loky that includes
starting the worker processes, importing skbp there and loading its compiled
kernels from the on-disk cache (the first search of a process; a second
search reuses the workers and is printed too).  skbp's kernels are compiled
(on-disk cache filled) before anything is timed; ``benchmarks/first_fit.py``
measures cold compilation.

The same searches run a third time with an estimator that learns nothing
("floor"): their first-search time minus their second is the start-up that
every library pays in a first loky search (starting the workers, importing
scikit-learn there), whatever its fits cost; the script prints the speed-up
skbp's first search would reach if its own start-up in the workers cost
nothing.

    python benchmarks/gridsearch.py               # both backends, both libraries
    python benchmarks/gridsearch.py --repeats 3   # median of 3 processes each
    python benchmarks/gridsearch.py --quick       # smoke run (fewer epochs)
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

# the search of one process, run in a fresh interpreter so that the loky workers
# are started and warmed as in a user's first search
SEARCH = r"""
import sys, time, warnings, json
import joblib
import numpy as np
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

lib, backend, epochs, n_jobs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
warnings.simplefilter("ignore", ConvergenceWarning)
if lib == "skbp":
    from skbp import BPClassifier as Net
elif lib == "sklearn":
    from sklearn.neural_network import MLPClassifier as Net
else:  # "floor": an estimator that learns nothing, to time the search around the fits
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Net(ClassifierMixin, BaseEstimator):
        def __init__(self, hidden_layer_sizes=(100,), learning_rate_init=1e-3, solver="adam",
                     batch_size=32, max_iter=200, tol=1e-4, n_iter_no_change=10,
                     random_state=None):
            self.hidden_layer_sizes = hidden_layer_sizes
            self.learning_rate_init = learning_rate_init
            self.solver = solver
            self.batch_size = batch_size
            self.max_iter = max_iter
            self.tol = tol
            self.n_iter_no_change = n_iter_no_change
            self.random_state = random_state

        def fit(self, X, y):
            self.classes_ = np.unique(y)
            return self

        def predict(self, X):
            return np.full(len(X), self.classes_[0])
X, y = make_classification(n_samples=8000, n_features=30, n_informative=15, random_state=0)
net = Net(solver="adam", batch_size=32, max_iter=epochs, tol=0.0, n_iter_no_change=10**6,
          random_state=0)
pipe = make_pipeline(StandardScaler(), net)
name = type(net).__name__.lower()
grid = {f"{name}__hidden_layer_sizes": [(32,), (64,), (64, 32)],
        f"{name}__learning_rate_init": [1e-3, 1e-2]}
times = []
for _ in range(2):  # the first search starts the workers; the second reuses them
    t0 = time.perf_counter()
    with joblib.parallel_backend(backend, n_jobs=n_jobs):
        search = GridSearchCV(pipe, grid, cv=5, n_jobs=n_jobs).fit(X, y)
    times.append(time.perf_counter() - t0)
print(json.dumps({"times": times, "best": search.best_score_}))
"""


def run_search(lib, backend, epochs, n_jobs):
    out = subprocess.run(
        [sys.executable, "-c", SEARCH, lib, backend, str(epochs), str(n_jobs)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def warm_cache():
    """Fill skbp's on-disk cache (and compile) outside the timed searches."""
    from sklearn.datasets import make_classification

    from skbp import BPClassifier

    X, y = make_classification(n_samples=300, n_features=30, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for hidden in [(32,), (64, 32)]:
            BPClassifier(hidden, batch_size=32, max_iter=2).fit(X, y).predict(X)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--repeats", type=int, default=1,
        help="processes (of two searches each) per library and backend; medians printed (1)",
    )  # fmt: skip
    p.add_argument("--epochs", type=int, default=40, help="epochs of every fit (40)")
    p.add_argument("--quick", action="store_true", help="4 epochs")
    p.add_argument("--backends", default="loky,threading", help="joblib backends, in order")
    args = p.parse_args(argv)
    epochs = 4 if args.quick else args.epochs
    n_jobs = os.cpu_count() or 1
    import numba
    import sklearn

    import skbp

    print(
        f"skbp {skbp.__version__}, scikit-learn {sklearn.__version__}, numba "
        f"{numba.__version__}, numpy {np.__version__}; {n_jobs} cores "
        f"({platform.processor() or platform.machine()}), Python {platform.python_version()}"
    )
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import cores

    print(cores.header())
    print(
        f"GridSearchCV: 3 hidden sizes x 2 learning rates x 5 folds = 30 fits, "
        f"8,000 x 30, adam, batch 32, {epochs} epochs; n_jobs={n_jobs}; "
        f"median of {args.repeats}"
    )
    warm_cache()
    rows = []
    for backend in args.backends.split(","):
        res = {}
        for lib in ("skbp", "sklearn", "floor"):
            runs = [run_search(lib, backend, epochs, n_jobs) for _ in range(args.repeats)]
            first = statistics.median(r["times"][0] for r in runs)
            second = statistics.median(r["times"][1] for r in runs)
            res[lib] = (first, second, runs[0]["best"])
            print(
                f"  {backend:9s} {lib:8s} first search {first:7.2f} s, second {second:7.2f} s, "
                f"best CV accuracy {runs[0]['best']:.4f}",
                flush=True,
            )
        rows.append((backend, res))
    print("\n| backend | skbp first | sklearn first | speed-up | skbp second | sklearn second "
          "| speed-up |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for backend, res in rows:
        s, k = res["skbp"], res["sklearn"]
        print(
            f"| {backend} | {s[0]:.2f} s | {k[0]:.2f} s | **{k[0] / s[0]:.1f}x** | {s[1]:.2f} s "
            f"| {k[1]:.2f} s | {k[1] / s[1]:.1f}x |"
        )
    print(
        "\nThe same searches of an estimator that learns nothing (the floor: worker start-up,"
        "\ncross-validation, scoring; what every library pays), and the first-search speed-up"
        "\nskbp would reach if its own start-up in the workers cost nothing (its second search"
        "\nplus the floor's extra first-search time):\n"
    )
    print(
        "| backend | floor first | floor second | start-up | skbp first, at best "
        "| speed-up at best |"
    )
    print("|---|---|---|---|---|---|")
    for backend, res in rows:
        s, k, f = res["skbp"], res["sklearn"], res["floor"]
        start = max(f[0] - f[1], 0.0)
        best = s[1] + start
        print(
            f"| {backend} | {f[0]:.2f} s | {f[1]:.2f} s | {start:.2f} s | {best:.2f} s "
            f"| {k[0] / best:.1f}x |"
        )


if __name__ == "__main__":
    main()
