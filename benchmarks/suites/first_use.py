"""First use in fresh processes: cold and warm kernel cache, shipped kernels or not.

Each measurement runs a new Python process that imports the library, fits a
classifier on digits (features scaled to [0, 1]) with the estimator's defaults
and ``random_state=0``, predicts every row and then one row, and reports those
times.  skbp runs with ``NUMBA_CACHE_DIR`` pointing at a fresh directory (cold:
every kernel is made from the LLVM IR skbp ships, ``skbp._prebuilt``, or, with
``SKBP_PREBUILT=0``, compiled by Numba) and then at the directory the cold run
filled (warm: kernels loaded from disk; the same whichever way they were
made).  scikit-learn's ``MLPClassifier`` is timed the same way as the peer.
Three configurations: adam in float64 (the default: a user's first contact)
and float32, lbfgs in float64.  For every cold run that compiled anything, the
functions Numba compiled on the way, with their inclusive and exclusive
compile time (a kernel's inclusive time contains the callees compiled for it),
how often and for whom.
"""

import json
import os
import subprocess
import sys
import tempfile

from ._common import header, log, md_table, ratio

CHILD = r"""
import collections, json, sys, time, warnings
t0 = time.perf_counter()
kind, dtype, solver, max_iter = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
inclusive, exclusive = collections.defaultdict(float), collections.defaultdict(float)
counts, callers = collections.Counter(), collections.defaultdict(set)
if kind == "skbp":
    from numba.core import event

    stack, children = [], []

    class Listener(event.Listener):
        def on_start(self, ev):
            stack.append((ev.data["dispatcher"], time.perf_counter()))
            children.append(0.0)

        def on_end(self, ev):
            disp, start = stack.pop()
            dt = time.perf_counter() - start
            name = disp.py_func.__module__ + "." + disp.py_func.__qualname__
            inclusive[name] += dt
            exclusive[name] += dt - children.pop()
            counts[name] += 1
            callers[name].add(stack[-1][0].py_func.__qualname__ if stack else "-")
            if children:
                children[-1] += dt

    event.register("numba:compile", Listener())
    from skbp import BPClassifier as Est
else:
    from sklearn.neural_network import MLPClassifier as Est
from sklearn.datasets import load_digits

X, y = load_digits(return_X_y=True)
X = (X / 16).astype(dtype)
warnings.simplefilter("ignore")
t1 = time.perf_counter()
params = dict(solver=solver, random_state=0)
if max_iter:
    params["max_iter"] = max_iter
clf = Est(**params).fit(X, y)
t2 = time.perf_counter()
clf.predict(X)
t3 = time.perf_counter()
clf.predict(X[:1])
t4 = time.perf_counter()
stats = {}
if kind == "skbp":
    from skbp import _cache
    stats = dict(_cache.STATS)
compiled = [
    [name, v, exclusive[name], counts[name], sorted(callers[name])]
    for name, v in sorted(inclusive.items(), key=lambda kv: -kv[1])
]
print(json.dumps({"import": t1 - t0, "fit": t2 - t1, "predict": t3 - t2, "one_row": t4 - t3,
                  "total": t4 - t0, "kernels": stats, "compiled": compiled}))
"""

CONFIGS = [("adam", "float64"), ("adam", "float32"), ("lbfgs", "float64")]


def add_arguments(p):
    p.add_argument("--default-only", action="store_true", help="adam, float64 only")
    p.add_argument("--no-native", action="store_true", help="skip SKBP_PREBUILT=0 (slow)")
    p.add_argument("--repeats", type=int, default=1, help="rounds of fresh processes (1)")
    p.add_argument("--max-iter", type=int, default=0, help="epochs of each fit (default: 200)")


def child(kind, solver, dtype, max_iter, cache, prebuilt=True):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, SKBP_PREBUILT="1" if prebuilt else "0")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, kind, dtype, solver, str(max_iter)],
        env=env, capture_output=True, text=True, check=True, timeout=1800,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(args):
    configs = CONFIGS[:1] if args.default_only or args.quick else CONFIGS
    native = not (args.no_native or args.quick)
    max_iter = 5 if args.quick else args.max_iter
    header(args, "skbp benchmark: first-use")
    rows, compiled = [], []
    for r in range(1 if args.quick else args.repeats):
        for solver, dtype in configs:
            ways = [("shipped", True)] + ([("compiled by Numba", False)] if native else [])
            peer = child("sklearn", solver, dtype, max_iter, tempfile.gettempdir())
            runs = []
            for label, prebuilt in ways:
                with tempfile.TemporaryDirectory() as cache:
                    cold = child("skbp", solver, dtype, max_iter, cache, prebuilt)
                    runs.append((label, "cold", cold))
                    if prebuilt:  # the warm cache is the same whichever way it was filled
                        warm = child("skbp", solver, dtype, max_iter, cache)
                        runs.append(("loaded", "warm", warm))
            config = f"{solver} {dtype}"
            for label, cache, d in runs:
                k = d["kernels"]
                rows.append([
                    config, "skbp", label, cache, f"{d['import']:.2f}", f"{d['fit']:.2f}",
                    f"{d['predict']:.3f}", f"{d['one_row']:.4f}", f"{d['total']:.2f}",
                    ratio(peer["total"], d["total"]),
                    f"{k.get('prebuilt', 0)}/{k.get('compiled', 0)}/{k.get('loaded', 0)}",
                ])  # fmt: skip
                if cache == "cold" and d["compiled"]:
                    compiled.append((f"{config}, {label}, round {r + 1}", d["compiled"]))
                log(f"  {config} {label} {cache}: {d['total']:.2f} s")
            rows.append([
                config, "sklearn", "-", "-", f"{peer['import']:.2f}", f"{peer['fit']:.2f}",
                f"{peer['predict']:.3f}", f"{peer['one_row']:.4f}", f"{peer['total']:.2f}",
                "1.00", "-",
            ])  # fmt: skip
    head = [
        "configuration", "library", "kernels", "cache", "import s", "fit s", "predict s",
        "one row s", "total s", "sklearn/skbp", "kernels shipped/compiled/loaded",
    ]  # fmt: skip
    print(md_table(head, rows, ["l", "l", "l", "l"] + ["r"] * 6 + ["l"]))
    print()
    iters = f"max_iter={max_iter}" if max_iter else "the default max_iter"
    print(
        f"Each row: one fresh process; digits (1,797 x 64), {iters}.  total: from the "
        "process's first statement to the one-row prediction (interpreter start not "
        "included).  sklearn/skbp: scikit-learn's total over skbp's (> 1: skbp's first use "
        "is shorter)."
    )
    for label, funcs in compiled:
        print()
        print(f"Compiled in the cold run {label} ({len(funcs)} functions; 0.25 s or more shown):")
        print()
        lines = [
            [name, f"{inc:.2f}", f"{exc:.2f}", n, ", ".join(callers)]
            for name, inc, exc, n, callers in funcs
            if inc >= 0.25
        ]
        head = ["function", "inclusive s", "exclusive s", "times", "first callers"]
        print(md_table(head, lines, ["l", "r", "r", "r", "l"]))
