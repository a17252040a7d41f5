"""skbp's default threads against n_jobs=1, quiet and beside busy processes.

skbp's default (``n_jobs=None``) may use every core.  On a machine that is
doing something else a parallel region waits for a thread that the operating
system has descheduled, and a naive parallel runtime turns a 2x gain into a
10x loss.  This suite measures exactly that: for each case it times the fit
(or the prediction) at the default settings and at ``n_jobs=1`` (skbp's serial
path, the peer here), first on the quiet machine, then with busy processes of
its own beside it (default: 0, half the cores and all of them), and prints
``n_jobs=1 / default`` (> 1: the default is faster; below 1 it loses to the
serial path it could have taken).

Each case runs the two settings in turn, at least ``--repeats`` times each and
until each has run ``--min-seconds`` in all; the ratio is that of the mean
times (the time a user waits for that many fits), with the ratio of the
medians beside it.  Short fits need the many runs: with two busy processes a
0.02 s fit shares two cores with them and takes either its own time or about
twice it, depending on the time slices it lands in, so a median of three is a
coin toss between the two.

The busy processes are plain ``while True: pass`` loops started by the
harness itself (``benchmarks/suites/_common.py``), each bounded by
``--max-busy-s`` seconds of its own, and ended by pid at the end of every busy
phase -- also when the run is interrupted.

Cases (float32, standardised synthetic data, warm Numba cache):

* ``adam_wide``: 6,000 x 784, 10 classes, (256, 128) relu, adam, batch 200, 2 epochs
* ``adam_wide_1ep``: the same, 1 epoch (too short for an epoch-level choice)
* ``adam_small``: 20,000 x 20, (64, 64), adam, batch 32, 3 epochs
* ``sgd``: 10,000 x 10, (32,), sgd Nesterov, batch 1, 1 epoch
* ``lbfgs``: 20,000 x 50, (100,), lbfgs, 20 iterations
* ``predict``: ``predict`` of 60,000 x 784 rows on a (256, 128) model
"""

import statistics
import time
import warnings

import numpy as np
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from skbp import BPClassifier

from ._common import busy_processes, header, log, md_table, usable_cpus

CASES = {
    "adam_wide": dict(rows=6000, cols=784, classes=10, hidden=(256, 128), solver="adam",
                      batch=200, iters=2),
    "adam_wide_1ep": dict(rows=6000, cols=784, classes=10, hidden=(256, 128), solver="adam",
                          batch=200, iters=1),
    "adam_small": dict(rows=20000, cols=20, classes=2, hidden=(64, 64), solver="adam",
                       batch=32, iters=3),
    "sgd": dict(rows=10000, cols=10, classes=2, hidden=(32,), solver="sgd", batch=1, iters=1),
    "lbfgs": dict(rows=20000, cols=50, classes=2, hidden=(100,), solver="lbfgs", batch=200,
                  iters=20),
    "predict": dict(rows=60000, cols=784, classes=10, hidden=(256, 128), solver="adam",
                    batch=200, iters=1),
}  # fmt: skip


def make_data(case, seed=0):
    X, y = make_classification(
        n_samples=case["rows"], n_features=case["cols"], n_redundant=0,
        n_informative=min(10, case["cols"] // 2), n_classes=case["classes"], random_state=seed,
    )  # fmt: skip
    return StandardScaler().fit_transform(X).astype(np.float32), y


def estimator(case, n_jobs):
    return BPClassifier(
        hidden_layer_sizes=case["hidden"], solver=case["solver"], batch_size=case["batch"],
        max_iter=case["iters"], learning_rate_init=1e-2 if case["solver"] == "sgd" else 1e-3,
        momentum=0.9, alpha=0.0, tol=0.0, n_iter_no_change=10**6, random_state=0,
        n_jobs=n_jobs,
    )  # fmt: skip


def time_case(name, case, data, n_jobs):
    X, y = data[:2]
    if name == "predict":
        model = data[2]
        model.set_params(n_jobs=n_jobs)
        t0 = time.perf_counter()
        model.predict(X)
        return time.perf_counter() - t0
    est = estimator(case, n_jobs)
    t0 = time.perf_counter()
    est.fit(X, y)
    return time.perf_counter() - t0


def run_phase(cases, datasets, n_busy, repeats, min_seconds, max_busy_s):
    rows = []
    with busy_processes(n_busy, max_busy_s) as procs:
        for name in cases:
            t = {None: [], 1: []}
            # interleaved, so a burst of load hits both alike
            while (
                min(len(v) for v in t.values()) < repeats or min(map(sum, t.values())) < min_seconds
            ):
                for n_jobs in (None, 1):
                    t[n_jobs].append(time_case(name, CASES[name], datasets[name], n_jobs))
            d, s = statistics.mean(t[None]), statistics.mean(t[1])
            med = statistics.median(t[1]) / statistics.median(t[None])
            rows.append([
                name, n_busy, len(t[1]), f"{d:.3f}", f"{s:.3f}", f"{s / d:.2f}", f"{med:.2f}",
                f"{s / max(t[None]):.2f}",
            ])  # fmt: skip
            log(f"  {name:14s} busy={n_busy}  {len(t[1]):3d} runs each  ratio {s / d:5.2f}")
            if any(p.poll() is not None for p in procs):
                rows[-1][1] = f"{n_busy} (one ended early: raise --max-busy-s)"
    return rows


def add_arguments(p):
    p.add_argument("--cases", default=",".join(CASES), help="e.g. lbfgs,predict (all)")
    p.add_argument(
        "--busy", default=None,
        help="numbers of busy processes, one phase each (0, half the cores, all of them)",
    )  # fmt: skip
    p.add_argument("--repeats", type=int, default=3, help="least timings per setting and case (3)")
    p.add_argument(
        "--min-seconds", type=float, default=2.0,
        help="least total time per setting and case (2.0)",
    )  # fmt: skip
    p.add_argument(
        "--max-busy-s", type=float, default=600.0,
        help="each busy process ends by itself after this many seconds (600)",
    )  # fmt: skip


def run(args):
    cases = [c for c in args.cases.split(",") if c]
    unknown = set(cases) - set(CASES)
    if unknown:
        raise SystemExit(f"--cases: unknown {sorted(unknown)}; choose from {', '.join(CASES)}")
    n = usable_cpus()
    busy = [int(b) for b in args.busy.split(",")] if args.busy else sorted({0, max(1, n // 2), n})
    repeats, min_seconds = (1, 0.0) if args.quick else (args.repeats, args.min_seconds)
    warnings.simplefilter("ignore", ConvergenceWarning)
    header(args, "skbp benchmark: busy")
    print(
        f"Cases: {', '.join(cases)}; at least {repeats} runs and {min_seconds} s of each "
        f"setting; busy processes: {', '.join(map(str, busy))}."
    )
    print()
    datasets = {}
    for name in cases:
        case = dict(CASES[name])
        if args.quick:
            case["rows"] = min(case["rows"], 2000)
        X, y = make_data(case)
        datasets[name] = (X, y)
        warm = estimator(case, None).set_params(max_iter=1).fit(X[:400], y[:400])
        warm.predict(X[:600])
        if name == "predict":
            model = estimator(case, None).fit(X[:6000], y[:6000])
            datasets[name] = (X, y, model)
    rows = []
    for n_busy in busy:
        log(f"phase: {n_busy} busy process(es)")
        rows += run_phase(cases, datasets, n_busy, repeats, min_seconds, args.max_busy_s)
    head = [
        "case", "busy processes", "runs each", "default s (mean)", "n_jobs=1 s (mean)",
        "n_jobs=1 / default", "of the medians", "n_jobs=1 mean / slowest default",
    ]  # fmt: skip
    print(md_table(head, rows))
    print()
    print("Summary, n_jobs=1 / default (> 1: the default is faster; aim: >= 0.77 when busy):")
    print()
    summary = [[name] + [r[5] for r in rows if r[0] == name] for name in cases]
    print(md_table(["case"] + [f"busy={b}" for b in busy], summary))
