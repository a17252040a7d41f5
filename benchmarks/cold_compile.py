"""Where a cold first use spends its time, kernel by kernel.

Runs, in a fresh process with an empty ``NUMBA_CACHE_DIR``, what issue 9's
first-contact scenario does -- import skbp, fit a default ``BPClassifier`` on
digits, predict every row, predict one row -- and prints those four times, how
the kernels came (made from the LLVM IR shipped with skbp, ``skbp._prebuilt``;
compiled by Numba; loaded from the cache) and, for every function Numba
compiled on the way, its inclusive and exclusive compile time (seconds), how
often it was compiled and who compiled it first.  A kernel's inclusive time
contains the callees compiled for it.

    python benchmarks/cold_compile.py             # as a user's first use
    python benchmarks/cold_compile.py --native    # without the shipped IR (SKBP_PREBUILT=0)
    python benchmarks/cold_compile.py --repeats 3 --both   # alternating, each way
"""

import argparse
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import collections, time
t0 = time.perf_counter()
from numba.core import event

inclusive, exclusive = collections.defaultdict(float), collections.defaultdict(float)
counts, callers = collections.Counter(), collections.defaultdict(set)
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
import skbp
from sklearn.datasets import load_digits

X, y = load_digits(return_X_y=True)
t1 = time.perf_counter()
clf = skbp.BPClassifier(random_state=0).fit(X, y)
t2 = time.perf_counter()
clf.predict(X)
t3 = time.perf_counter()
clf.predict(X[:1])
t4 = time.perf_counter()
from skbp import _cache
print(f"import {t1 - t0:.1f} s, fit {t2 - t1:.1f} s, predict {t3 - t2:.1f} s, "
      f"one row {t4 - t3:.2f} s; in all {t4 - t0:.1f} s; kernels {_cache.STATS}")
print("inclusive s  exclusive s  times  function  <- first callers")
for name, v in sorted(inclusive.items(), key=lambda kv: -kv[1]):
    if v >= 0.25:
        print(f"{v:11.2f}  {exclusive[name]:11.2f}  {counts[name]:5d}  {name} "
              f"<- {sorted(callers[name])}")
print(f"{len(inclusive)} functions compiled, {sum(counts.values())} compilations")
"""


def run(native):
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, SKBP_PREBUILT="0" if native else "1")
        out = subprocess.run(
            [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True
        )
    return out.stdout


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--native", action="store_true", help="without the shipped IR")
    p.add_argument("--both", action="store_true", help="shipped IR and native, alternating")
    p.add_argument("--repeats", type=int, default=1, help="fresh processes each way (1)")
    args = p.parse_args(argv)
    ways = [False, True] if args.both else [args.native]
    for r in range(args.repeats):
        for native in ways:
            out = run(native)
            label = "native compile" if native else "shipped IR"
            if args.both or args.repeats > 1:
                print(f"run {r + 1}, {label}: " + out.splitlines()[0])
            else:
                print(out, end="")


if __name__ == "__main__":
    main()
