"""Compiling every kernel ahead of time: ``python -m skbp compile``.

For container images and CI set-ups: one command fills the on-disk cache for
both dtypes and every kernel family (training epochs, the full-batch loss and
gradient for L-BFGS, prediction, dense and sparse
input, the toolkit options), so that no user process compiles anything.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import TYPE_CHECKING

import numpy as np
from numba.extending import is_jitted

from ._numba_support import PLAIN

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

#: modules holding skbp's compiled kernels
KERNEL_MODULES = ("_epoch", "_kernels", "_matmul", "_optim", "_threads", "_update")


def dispatchers() -> Iterator[tuple[str, object]]:
    """``(qualified name, dispatcher)`` of every kernel skbp defines."""
    import importlib

    for mod_name in KERNEL_MODULES:
        mod = importlib.import_module(f"skbp.{mod_name}")
        for name in sorted(vars(mod)):
            obj = getattr(mod, name)
            if is_jitted(obj) and obj.py_func.__module__ == mod.__name__:
                yield f"{mod.__name__}.{name}", obj


#: what ``python -m skbp compile`` splits its work into, per dtype: ``"plain"``
#: reaches the entry kernels of networks without batch norm (training epochs,
#: L-BFGS's full-batch loss and gradient, prediction; dense and sparse input),
#: ``"more"`` their batch-norm versions (with dropout and residual
#: connections).  The two compile disjoint entry kernels, so two processes can
#: fill the cache with them at once, in about the time of the longer one.
PARTS = ("plain", "more")


def _exercise(dtype: type[np.floating], parts: Iterable[str] = PARTS) -> None:
    """Small fits and predictions that reach every kernel family in ``dtype``
    (those of the given :data:`PARTS`)."""
    import scipy.sparse as sp
    from sklearn.exceptions import ConvergenceWarning

    from ._estimators import BPClassifier, BPRegressor

    parts = set(parts)
    if not parts <= set(PARTS):
        raise ValueError(f"parts must be among {PARTS}, got {sorted(parts)}")
    rng = np.random.RandomState(0)
    X = rng.standard_normal((300, 6)).astype(dtype)
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    t = X[:, :2] @ np.array([1.0, -2.0], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if "plain" in parts:
            _default_path(dtype)
            for Xin in (X, sp.csr_matrix(X)):
                for solver in ("adam", "sgd", "lbfgs"):
                    clf = BPClassifier((8,), solver=solver, max_iter=2, random_state=0)
                    clf.fit(Xin, y).predict_proba(Xin)
                    clf.predict(Xin[:1])
            BPClassifier((8,), max_iter=2, n_jobs=2, random_state=0).fit(X, y).predict(X)
            BPClassifier((8,), random_state=0).partial_fit(X, y, classes=np.unique(y))
            BPRegressor(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X, t).predict(X)
            BPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", loss="poisson", max_iter=2).fit(
                X, np.abs(t)
            )
        if "more" in parts:
            BPClassifier(
                (8, 8), dropout=0.1, batch_norm=True, residual=True, early_stopping=True,
                max_iter=3, random_state=0,
            ).fit(X, y).predict(X)  # fmt: skip


def _default_path(dtype: type[np.floating]) -> None:
    """What a default fit, ``predict`` and a one-row ``predict`` reach in ``dtype``
    (prediction on several threads runs the same kernel from Python threads)."""
    from sklearn.exceptions import ConvergenceWarning

    from ._estimators import BPClassifier

    rng = np.random.RandomState(0)
    X = rng.standard_normal((600, 6)).astype(dtype)
    y = (X[:, 0] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = BPClassifier((8,), max_iter=2, random_state=0).fit(X, y)
    clf.predict(X)
    clf.predict(X[:1])


def precompile(dtype: str | Iterable[str] = "float64", everything: bool = False) -> float:
    """Compile skbp's kernels now (or load them from the on-disk cache).

    The first fit on a machine compiles the kernels it needs, and a later
    ``predict`` may compile more; call this first to pay that up front, e.g.
    before timing something or in a container build.  ``python -m skbp
    compile`` is the command-line form (every family, both dtypes).

    Parameters
    ----------
    dtype : {"float64", "float32"} or list of them, default="float64"
        The dtype(s) of the data you will fit (float32 input trains in float32).
    everything : bool, default=False
        ``False``: the kernels a default fit and prediction use (mini-batch
        training, prediction).  ``True``: every
        kernel family (L-BFGS's full-batch gradient, sparse input, the toolkit
        options), as ``python -m skbp compile``.

    Returns
    -------
    seconds : float
        Wall time taken (a fraction of a second when everything was cached).

    Examples
    --------
    >>> import skbp
    >>> seconds = skbp.precompile("float64")
    """
    dtypes = [dtype] if isinstance(dtype, str) else list(dtype)
    t0 = time.perf_counter()
    for d in dtypes:
        (_exercise if everything else _default_path)(np.dtype(d).type)
    return time.perf_counter() - t0


def _groups(dtypes: list[str], jobs: int) -> list[list[tuple[str, str]]]:
    """Split the ``(dtype, part)`` units over at most ``jobs`` processes.

    Units of one dtype share the internal kernels they compile (an internal
    kernel is compiled inside every process that needs it), so they are split
    only when there are cores for every unit.
    """
    units = [(d, part) for d in dtypes for part in PARTS]
    if jobs >= len(units):
        return [[u] for u in units]
    if jobs >= len(dtypes) > 1:
        return [[u for u in units if u[0] == d] for d in dtypes]
    return [units]


_WORKER = """
import json, logging, sys, time, numpy as np
logging.getLogger("skbp").setLevel(logging.ERROR)
from skbp import _cache
from skbp._compile import _exercise
t0 = time.perf_counter()
for unit in sys.argv[1:]:
    dtype, part = unit.split(":")
    _exercise(np.dtype(dtype).type, [part])
print(json.dumps({**_cache.STATS, "seconds": time.perf_counter() - t0}))
"""


def _counts(stats: dict[str, int]) -> str:
    return (
        f"{stats['compiled']} kernels compiled, {stats['prebuilt']} made from the shipped IR, "
        f"{stats['loaded']} loaded from the cache"
    )


def worker_env(**extra: str) -> dict[str, str]:
    """The environment of a worker process that imports this very copy of skbp
    (the cache's stamp is its sources'), with ``extra`` variables set."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _dtype_of(signature: tuple) -> str:
    """The input dtype a signature of an entry kernel was compiled for."""
    return "float32" if "float32" in str(signature) else "float64"


def _entry_signatures(dtypes: Iterable[str]) -> dict[str, dict[str, list]]:
    """``{dtype: {kernel: [signature, ...]}}``: what this process holds of the cached
    (entry) kernels, for the manifest of the cache folder."""
    from . import _cache

    found: dict[str, dict[str, list]] = {d: {} for d in dtypes}
    for name, disp in dispatchers():
        if isinstance(getattr(disp, "_cache", None), _cache.SafeFunctionCache):
            for sig in disp.signatures:
                if _dtype_of(sig) in found:
                    found[_dtype_of(sig)].setdefault(name, []).append(sig)
    return found


def _in_manifest(folder: str, dtypes: list[str], out: Callable[[str], object]) -> bool:
    """Whether the cache index lists every kernel an earlier ``compile`` left for
    ``dtypes`` (then reported per dtype and kernel family): no kernel is loaded
    and no fit is run."""
    from . import _cache

    manifest = _cache.read_manifest(folder)
    if not all(manifest.get(d) for d in dtypes):
        return False
    kernels = dict(dispatchers())
    lines = []
    for dtype in dtypes:
        families = []
        for name, sigs in sorted(manifest[dtype].items()):
            if name not in kernels or not _cache.in_index(kernels[name], sigs):
                return False
            families.append(f"{name.rsplit('.', 1)[1]} {len(sigs)}")
        n = sum(len(sigs) for sigs in manifest[dtype].values())
        lines.append(f"  {dtype}: 0 kernels compiled, {n} in the cache ({', '.join(families)})")
    for line in lines:
        out(line)
    return True


def _all_cached(dtypes: list[str], out: Callable[[str], object]) -> bool:
    """Whether every kernel of ``dtypes`` is in the cache (then reported), compiling
    none: no worker processes needed.

    By the manifest an earlier ``compile`` left (:func:`_in_manifest`), else by
    loading every kernel in this process, which writes that manifest.
    """
    from . import _cache

    folder = _cache.cache_folder()
    if _in_manifest(folder, dtypes, out):
        return True
    loaded = []
    for dtype in dtypes:
        before = dict(_cache.STATS)
        t0 = time.perf_counter()
        try:
            with _cache.loading_only():
                _exercise(np.dtype(dtype).type)
        except _cache.NotCached:
            return False
        counts = {k: v - before[k] for k, v in _cache.STATS.items()}
        loaded.append(f"  {dtype}: {_counts(counts)}, {time.perf_counter() - t0:.1f} s")
    for line in loaded:
        out(line)
    _cache.write_manifest(folder, _entry_signatures(dtypes))
    return True


def _in_workers(groups, out):
    """Run each group of units in a process of its own, all at once."""
    import json
    import subprocess
    import sys

    env = worker_env()
    pipe = subprocess.PIPE
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, *(f"{d}:{part}" for d, part in group)],
            stdout=pipe,
            stderr=pipe,
            text=True,
            env=env,
        )
        for group in groups
    ]
    failed = []
    for group, p in zip(groups, procs, strict=True):  # every worker ends before a failure is raised
        stdout, stderr = p.communicate()
        what = " + ".join(f"{d} {part}" for d, part in group)
        if p.returncode != 0:
            failed.append(f"compiling {what} failed:\n{stderr[-3000:]}")
            continue
        r = json.loads(stdout.strip().splitlines()[-1])
        out(f"  {what}: {_counts(r)}, {r['seconds']:.1f} s (a process of its own)")
    if failed:
        raise RuntimeError("\n".join(failed))


def compile_all(
    dtypes: Iterable[str] = ("float64", "float32"),
    out: Callable[[str], object] = print,
    jobs: int | None = None,
) -> dict[str, float]:
    """Compile (or load) every kernel for ``dtypes``; report what and how long.

    With ``jobs`` > 1 (default: the cores this process may use, as joblib
    counts them: CPU affinity and a container's quota included) and a cache
    folder, the work is split over that many processes filling the cache at
    once (per dtype, then per :data:`PARTS`); this process then loads every
    kernel from the cache and reports it, which checks the cache.  Returns
    ``{dtype: seconds}``: each dtype's share of this process's time (the
    loading, after parallel workers).  On the plain Numba path
    (``skbp._numba_support``) this process fills Numba's own cache by itself.
    """
    dtypes = list(dtypes)
    if PLAIN:
        return _compile_plain(dtypes, out)
    from . import _cache

    folder = _cache.cache_folder()
    out(f"skbp kernels: cache folder {_cache.describe()}")
    if folder and _all_cached(dtypes, out):
        out("  every kernel is in the cache already: nothing to compile")
        return {}
    if jobs is None:
        from joblib import cpu_count  # CPU affinity and cgroup (container) quotas

        jobs = cpu_count()
    groups = _groups(dtypes, jobs) if folder else []  # no cache: this process alone
    t_all = time.perf_counter()
    if len(groups) > 1:
        out(f"  {len(groups)} processes at once:")
        _in_workers(groups, out)
    times = {}
    for dtype in dtypes:
        before = dict(_cache.STATS)
        t0 = time.perf_counter()
        _exercise(np.dtype(dtype).type)
        times[dtype] = time.perf_counter() - t0
        counts = {k: v - before[k] for k, v in _cache.STATS.items()}
        out(f"  {dtype}: {_counts(counts)}, {times[dtype]:.1f} s")
    if len(groups) > 1:
        out(f"  {time.perf_counter() - t_all:.1f} s in all")
    if folder:
        _cache.write_manifest(folder, _entry_signatures(dtypes))
        out("  later processes load them from the cache")
    return times


def _compile_plain(dtypes: list[str], out: Callable[[str], object]) -> dict[str, float]:
    """:func:`compile_all` on the plain Numba path: every kernel is
    ``numba.njit(cache=True)``, cached by Numba itself (in this process only:
    Numba's cache is not made for several writers at once)."""
    from ._numba_support import describe

    def counts():
        hits = misses = 0
        for _, disp in dispatchers():
            stats = getattr(disp, "stats", None)
            hits += sum(getattr(stats, "cache_hits", {}).values())
            misses += sum(getattr(stats, "cache_misses", {}).values())
        return hits, misses

    out(f"skbp kernels: {describe()}; cached by Numba itself")
    times = {}
    for dtype in dtypes:
        before = counts()
        t0 = time.perf_counter()
        _exercise(np.dtype(dtype).type)
        times[dtype] = time.perf_counter() - t0
        hits, misses = (a - b for a, b in zip(counts(), before, strict=True))
        out(
            f"  {dtype}: {misses} kernels compiled, {hits} loaded from Numba's cache, "
            f"{times[dtype]:.1f} s"
        )
    return times
