"""Time of a first fit in a fresh process, with a cold and with a warm Numba cache.

Each measurement runs a new Python process that imports skbp and fits once
(import included), with ``NUMBA_CACHE_DIR`` pointing at a fresh directory
(cold: every kernel is made from the LLVM IR skbp ships, or compiled by Numba
where there is none or with ``SKBP_PREBUILT=0`` in the environment) or at the
directory the cold run filled (warm: kernels are loaded from disk).
scikit-learn's MLP is timed the same way for reference.  Three configurations
-- adam in float64 (the default) and float32, lbfgs in float64 -- on digits,
``max_iter=5``; then the compile time of every kernel in each cold run.

    python benchmarks/first_fit.py                  # all three configurations
    python benchmarks/first_fit.py --default-only   # adam, float64 only
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time, warnings
t0 = time.perf_counter()
import numpy as np
from sklearn.datasets import load_digits
kind, dtype, solver = sys.argv[1], sys.argv[2], sys.argv[3]
if kind == "skbp":
    from skbp import BPClassifier as Est
else:
    from sklearn.neural_network import MLPClassifier as Est
t_import = time.perf_counter() - t0
X, y = load_digits(return_X_y=True)
X = (X / 16).astype(dtype)
warnings.simplefilter("ignore")
t1 = time.perf_counter()
Est(solver=solver, max_iter=5, random_state=0).fit(X, y)
t_fit = time.perf_counter() - t1
total = time.perf_counter() - t0
compile_s = {}
if kind == "skbp":
    # per-kernel compile (or cache-load) time; a kernel's time includes the
    # kernels it calls that were compiled for it first
    import skbp
    from numba.core.registry import CPUDispatcher
    for mod in ("_epoch", "_kernels", "_matmul", "_update", "_optim", "_threads"):
        m = getattr(skbp, mod)
        for name in dir(m):
            d = getattr(m, name)
            if isinstance(d, CPUDispatcher) and d.py_func.__module__ == m.__name__:
                for sig in d.signatures:
                    try:
                        t = d.get_metadata(sig).get("timers", {})
                    except Exception:  # loaded from the cache: no compile metadata
                        t = {}
                    key = f"{mod}.{name}"
                    compile_s[key] = compile_s.get(key, 0.0) + t.get("compiler_lock", 0.0)
print(json.dumps({"import": t_import, "fit": t_fit, "total": total, "compile": compile_s}))
"""


def run(kind, dtype, solver, cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, kind, dtype, solver],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--default-only", action="store_true", help="only the default configuration (adam, float64)"
    )
    args = p.parse_args(argv)
    configs = [("float64", "adam"), ("float32", "adam"), ("float64", "lbfgs")]
    if args.default_only:
        configs = configs[:1]
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores")
    print(f"{'configuration':<34}{'cache':>6}{'import s':>10}{'fit s':>8}{'total s':>9}")
    cold_compile = {}
    for dtype, solver in configs:
        with tempfile.TemporaryDirectory() as cache:
            for label in ("cold", "warm"):
                r = run("skbp", dtype, solver, cache)
                name = f"skbp BPClassifier {solver} {dtype}"
                print(f"{name:<34}{label:>6}{r['import']:>10.2f}{r['fit']:>8.2f}{r['total']:>9.2f}")
                if label == "cold":
                    cold_compile[name] = r["compile"]
    r = run("sklearn", "float64", "adam", tempfile.gettempdir())
    name = "sklearn MLPClassifier adam float64"
    print(f"{name:<34}{'-':>6}{r['import']:>10.2f}{r['fit']:>8.2f}{r['total']:>9.2f}")
    print()
    print("Cold compile per kernel (s; a kernel's time includes the kernels it calls that")
    print("were compiled for it first, so entry points such as run_epoch include forward,")
    print("backward, matmul and the update sweep; kernels under 0.05 s are left out):")
    for name, comp in cold_compile.items():
        print(f"  {name}:" + ("" if comp else " nothing compiled (made from the shipped IR)"))
        for key, t in sorted(comp.items(), key=lambda kv: -kv[1]):
            if t >= 0.05:
                print(f"    {key:<34}{t:>7.2f}")


if __name__ == "__main__":
    main()
