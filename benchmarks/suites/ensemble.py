"""n_ensemble: time of k members against one member (default n_jobs), as a markdown table.

For each problem one network is fitted with the default ``n_jobs`` (all
cores), then ensembles of ``k`` members (trained concurrently, up to one per
core); each fit is timed ``--repeats`` times and the median reported, with
its ratio to the single network.  A warm-up fit of each estimator and
prediction kernel comes first, so that compile time is excluded.

The last row of each problem is its largest ensemble on one thread
(``n_jobs=1``), against the default: the members' threads must not lose on a
busy machine either, which ``--busy N`` checks (N bounded busy processes
beside every fit, ended by pid).

    python benchmarks/bench.py ensemble                       # both problems
    python benchmarks/bench.py ensemble --problems tabular --ks 2 8 --repeats 5
    python benchmarks/bench.py ensemble --busy 2 --ks 8      # beside 2 busy processes
"""

import statistics
import time
import warnings

PROBLEMS = ("tabular", "digits")


def _problem(name):
    """``(estimator class, parameters, X, y)`` of a named problem."""
    from skbp import BPClassifier

    if name == "tabular":
        from sklearn.datasets import make_classification

        X, y = make_classification(
            n_samples=5000, n_features=20, n_informative=12, n_classes=3, random_state=0
        )
        params = dict(hidden_layer_sizes=(256, 256, 256), batch_size=256, max_iter=20)
        return BPClassifier, params, X, y
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return BPClassifier, {}, X / 16.0, y


def _fit_seconds(cls, params, X, y, k, n_jobs=None):
    est = cls(**params, n_ensemble=k, random_state=0, n_jobs=n_jobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        est.fit(X, y)
    return time.perf_counter() - t0


def add_arguments(parser):
    """The suite's options."""
    parser.add_argument("--problems", nargs="+", choices=PROBLEMS, default=list(PROBLEMS))
    parser.add_argument("--ks", nargs="+", type=int, default=[2, 4, 8, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", type=int, default=0, help="busy processes beside the fits (0)")


def run(args):
    """Time the fits and print the table."""
    from skbp._runtime import effective_n_threads

    from ._common import busy_processes

    print(f"threads (n_jobs=None): {effective_n_threads(None)}; busy processes: {args.busy}\n")
    print("| problem | members | seconds (median) | ratio to one member |")
    print("|---|---:|---:|---:|")
    with busy_processes(args.busy):
        for name in args.problems:
            _time_problem(name, args)


def _time_problem(name, args):
    """The rows of one problem."""
    cls, params, X, y = _problem(name)
    # warm-up: kernels compiled (or loaded), prediction included
    warm = {**params, "max_iter": 1}
    for k in (1, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cls(**warm, n_ensemble=k, random_state=0).fit(X, y).predict(X[:300])
    base = None
    for k in (1, *args.ks):
        times = [_fit_seconds(cls, params, X, y, k) for _ in range(args.repeats)]
        med = statistics.median(times)
        base = med if base is None else base
        print(f"| {name} | {k} | {med:.3f} | {med / base:.2f} |", flush=True)
    k = max(args.ks)
    med = statistics.median(
        _fit_seconds(cls, params, X, y, k, n_jobs=1) for _ in range(args.repeats)
    )
    print(f"| {name} | {k}, n_jobs=1 | {med:.3f} | {med / base:.2f} |", flush=True)
