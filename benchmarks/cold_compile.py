"""Where a cold first use spends its compile time, kernel by kernel.

Runs, in a fresh process with an empty ``NUMBA_CACHE_DIR``, what issue 9's
first-contact scenario does -- import skbp, fit a default ``BPClassifier`` on
digits, predict every row, predict one row -- and prints those four times and,
for every function Numba compiled on the way, its inclusive and exclusive
compile time (seconds), how often it was compiled and who compiled it first.
A kernel's inclusive time contains the callees compiled for it.

    python benchmarks/cold_compile.py
"""

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
print(f"import {t1 - t0:.1f} s, fit {t2 - t1:.1f} s, predict {t3 - t2:.1f} s, "
      f"one row {t4 - t3:.2f} s")
print("inclusive s  exclusive s  times  function  <- first callers")
for name, v in sorted(inclusive.items(), key=lambda kv: -kv[1]):
    if v >= 0.25:
        print(f"{v:11.2f}  {exclusive[name]:11.2f}  {counts[name]:5d}  {name} "
              f"<- {sorted(callers[name])}")
print(f"{len(inclusive)} functions compiled, {sum(counts.values())} compilations")
"""


def main():
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = subprocess.run(
            [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True
        )
    print(out.stdout, end="")


if __name__ == "__main__":
    main()
