"""Default settings against ``n_jobs=1`` on a quiet and on a busy machine.

skbp's default (``n_jobs=None``) may use every core.  On a machine that is
doing something else a parallel region waits for a thread that the operating
system has descheduled, and a naive parallel runtime turns a 2x gain into a
10x loss.  This script measures exactly that: for each case it times the fit
(or the prediction) at the default settings and at ``n_jobs=1``, first on the
quiet machine, then with 1 and with 2 busy processes of its own beside it, and
prints ``default / n_jobs=1`` (> 1: the default is slower than the serial path).

Each case runs the two settings in turn, at least ``--repeats`` times each and
until each has run ``--min-seconds`` (2 s) in all; the ratio is that of the mean
times (the time a user waits for that many fits), with the ratio of the
medians beside it.  Short fits need the many runs: with two busy processes a
0.02 s fit shares two cores with them and takes either its own time or about
twice it, depending on the time slices it lands in, so a median of three is a
coin toss between the two (it gave 1.53 and 1.48 for ``adam_small`` at
``--repeats`` 3 and 5, where 15 runs of each gave 0.7; L-BFGS, whose default and
``n_jobs=1`` fits run the very same serial code, gave 1.30 from 7 runs of each).

The busy processes are plain ``while True: pass`` loops started by this script
with ``subprocess.Popen`` (no wrapper such as ``timeout``, whose child would
outlive it), each bounded by ``--max-busy-s`` seconds of its own, and ended by
pid at the end of every busy phase -- also when the script is interrupted.

    python benchmarks/contention.py                 # quiet, 1 busy, 2 busy
    python benchmarks/contention.py --busy 0,1      # a subset of the phases
    python benchmarks/contention.py --cases lbfgs,predict --repeats 5 --min-seconds 4

Cases (float32, standardised synthetic data, warm Numba cache):

* ``adam_wide``: 6,000 x 784, 10 classes, (256, 128) relu, adam, batch 200, 2 epochs
* ``adam_wide_1ep``: the same, 1 epoch (too short for an epoch-level choice)
* ``adam_small``: 20,000 x 20, (64, 64), adam, batch 32, 3 epochs
* ``sgd``: 10,000 x 10, (32,), sgd Nesterov, batch 1, 1 epoch
* ``lbfgs``: 20,000 x 50, (100,), lbfgs, 20 iterations
* ``predict``: ``predict`` of 60,000 x 784 rows on a (256, 128) model
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from skbp import BPClassifier

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

BUSY_CODE = "import time\nend = time.monotonic() + {s}\nwhile time.monotonic() < end: pass\n"


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


def start_busy(n, seconds):
    return [subprocess.Popen([sys.executable, "-c", BUSY_CODE.format(s=seconds)]) for _ in range(n)]


def stop_busy(procs):
    for p in procs:  # the spinning process itself: Popen ran python directly
        if p.poll() is None:
            p.kill()
    for p in procs:
        p.wait()


def run_phase(cases, datasets, n_busy, repeats, min_seconds, max_busy_s):
    procs = start_busy(n_busy, max_busy_s)
    rows = []
    try:
        time.sleep(0.3 if n_busy else 0.0)  # let the busy loops reach the CPU
        for name in cases:
            t = {None: [], 1: []}
            # interleaved, so a burst of load hits both alike
            while (
                min(len(v) for v in t.values()) < repeats or min(map(sum, t.values())) < min_seconds
            ):
                for n_jobs in (None, 1):
                    t[n_jobs].append(time_case(name, CASES[name], datasets[name], n_jobs))
            d, s = statistics.mean(t[None]), statistics.mean(t[1])
            med = statistics.median(t[None]) / statistics.median(t[1])
            rows.append((name, n_busy, d, s, d / s, med))
            print(
                f"  {name:14s} busy={n_busy}  {len(t[1]):3d} runs each  default {d:7.3f} s  "
                f"n_jobs=1 {s:7.3f} s  ratio {d / s:5.2f}  (of the medians {med:5.2f}, "
                f"worst default / mean serial {max(t[None]) / s:5.2f})",
                flush=True,
            )
            for p in procs:
                if p.poll() is not None:
                    print("  (a busy process ended early: raise --max-busy-s)", flush=True)
                    break
    finally:
        stop_busy(procs)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default=",".join(CASES), help="e.g. lbfgs,predict (all)")
    p.add_argument("--busy", default="0,1,2", help="numbers of busy processes, one phase each")
    p.add_argument("--repeats", type=int, default=3, help="least timings per setting and case (3)")
    p.add_argument("--min-seconds", type=float, default=2.0,
                   help="least total time per setting and case (2.0)")  # fmt: skip
    p.add_argument("--max-busy-s", type=float, default=600.0,
                   help="each busy process ends by itself after this many seconds")  # fmt: skip
    args = p.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    warnings.simplefilter("ignore", ConvergenceWarning)
    import numba

    import skbp
    from skbp._runtime import parallel_available

    parallel_available()
    print(
        f"skbp {skbp.__version__}, numba {numba.__version__} ({numba.threading_layer()} layer), "
        f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}"
    )
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import cores

    print(cores.header())
    print(
        f"cases: {', '.join(cases)}; at least {args.repeats} runs and {args.min_seconds} s of each "
        "setting; ratio = mean default / mean n_jobs=1"
    )
    datasets = {}
    for name in cases:
        case = CASES[name]
        X, y = make_data(case)
        datasets[name] = (X, y)
        warm = estimator(case, None).set_params(max_iter=1).fit(X[:400], y[:400])
        warm.predict(X[:600])
        if name == "predict":
            model = estimator(case, None).fit(X[:6000], y[:6000])
            datasets[name] = (X, y, model)
    results = []
    for n_busy in [int(b) for b in args.busy.split(",")]:
        print(f"phase: {n_busy} busy process(es)", flush=True)
        results += run_phase(
            cases, datasets, n_busy, args.repeats, args.min_seconds, args.max_busy_s
        )
    print("\nsummary: default / n_jobs=1 (target <= 1.3 when busy)")
    print("| case | " + " | ".join(f"busy={b}" for b in args.busy.split(",")) + " |")
    print("|---|" + "---|" * len(args.busy.split(",")))
    for name in cases:
        cells = [f"{r[4]:.2f}" for r in results if r[0] == name]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
