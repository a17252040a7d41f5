"""Grid searches: skbp against scikit-learn's MLP, joblib's loky and threading backends.

The benchmark users care about: a whole ``GridSearchCV``.  A 30-fit search --
3 hidden sizes x 2 learning rates x 5 folds -- over a ``StandardScaler`` ->
network pipeline on 8,000 x 30 tabular data (binary ``make_classification``),
40 epochs of Adam with batch 32 each, on the same cores for both libraries,
with joblib's default process backend (loky) and with its threading backend
(``n_jobs`` = the machine's cores for both).

What is timed is the whole search as a user runs it, in a fresh interpreter
per library and backend (``benchmarks/suites/_search_child.py``).  For loky
that includes starting the worker processes, importing skbp there and loading
its compiled kernels from the on-disk cache (the first search of a process; a
second search reuses the workers and is printed too).  skbp's kernels are
compiled (on-disk cache filled) before anything is timed; the ``first-use``
suite measures cold compilation.

The same searches run a third time with an estimator that learns nothing
("floor"): their first-search time minus their second is the start-up that
every library pays in a first loky search (starting the workers, importing
scikit-learn there), whatever its fits cost; the suite prints the speed-up
skbp's first search would reach if its own start-up in the workers cost
nothing.  Sequential against threaded skbp searches: the ``threads`` suite.
"""

import json
import os
import subprocess
import sys
import warnings

from ._common import header, log, md_table, median, ratio, usable_cpus

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_search_child.py")
LIBS = ("skbp", "sklearn", "floor")


def add_arguments(p):
    p.add_argument(
        "--repeats", type=int, default=1,
        help="processes (of two searches each) per library and backend; medians printed (1)",
    )  # fmt: skip
    p.add_argument("--epochs", type=int, default=40, help="epochs of every fit (40; --quick 2)")
    p.add_argument("--backends", default="loky,threading", help="joblib backends, in order")


def run_search(lib, backend, epochs, n_jobs):
    out = subprocess.run(
        [sys.executable, CHILD, lib, backend, str(epochs), str(n_jobs)],
        check=True, capture_output=True, text=True, timeout=3600,
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


def run(args):
    epochs = 2 if args.quick else args.epochs
    repeats = 1 if args.quick else args.repeats
    n_jobs = usable_cpus()
    header(args, "skbp benchmark: search")
    print(
        f"GridSearchCV: 3 hidden sizes x 2 learning rates x 5 folds = 30 fits, 8,000 x 30, "
        f"adam, batch 32, {epochs} epochs; n_jobs={n_jobs}; median of {repeats} process(es)"
    )
    print()
    warm_cache()
    res = {}
    for backend in args.backends.split(","):
        for lib in LIBS:
            runs = [run_search(lib, backend, epochs, n_jobs) for _ in range(repeats)]
            first = median([r["times"][0] for r in runs])
            second = median([r["times"][1] for r in runs])
            res[backend, lib] = (first, second, runs[0]["best"])
            log(f"  {backend:9s} {lib:8s} first {first:7.2f} s, second {second:7.2f} s")
    backends = args.backends.split(",")
    rows = []
    for b in backends:
        s, k = res[b, "skbp"], res[b, "sklearn"]
        rows.append([
            b, f"{s[0]:.2f}", f"{k[0]:.2f}", f"**{ratio(k[0], s[0], 1)}**", f"{s[1]:.2f}",
            f"{k[1]:.2f}", ratio(k[1], s[1], 1), f"{s[2]:.4f} / {k[2]:.4f}",
        ])  # fmt: skip
    head = [
        "backend", "skbp first s", "sklearn first s", "sklearn/skbp", "skbp second s",
        "sklearn second s", "sklearn/skbp", "best CV accuracy skbp / sklearn",
    ]  # fmt: skip
    print(md_table(head, rows))
    print()
    print(
        "The same searches of an estimator that learns nothing (the floor: worker start-up, "
        "cross-validation, scoring; what every library pays), and the first-search speed-up "
        "skbp would reach if its own start-up in the workers cost nothing (its second search "
        "plus the floor's extra first-search time):"
    )
    print()
    rows = []
    for b in backends:
        s, k, f = res[b, "skbp"], res[b, "sklearn"], res[b, "floor"]
        start = max(f[0] - f[1], 0.0)
        best = s[1] + start
        rows.append([
            b, f"{f[0]:.2f}", f"{f[1]:.2f}", f"{start:.2f}", f"{best:.2f}", ratio(k[0], best, 1)
        ])  # fmt: skip
    head = [
        "backend", "floor first s", "floor second s", "start-up s", "skbp first at best s",
        "sklearn/skbp at best",
    ]  # fmt: skip
    print(md_table(head, rows))
