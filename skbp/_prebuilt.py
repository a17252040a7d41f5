"""Kernels shipped as LLVM IR: the first use on a machine makes machine code only.

Compiling a kernel with Numba is typing it, lowering it to LLVM IR (Python-side
work, one function at a time, the callees inside their callers), then LLVM's
optimisation of the linked whole and machine code for this CPU.  The first part
takes most of the time of a cold first fit, and does not depend on the
machine: the linked, not yet optimised module of an entry kernel carries no
CPU name or feature (checked: no ``target-cpu`` attribute; only
generic ``llvm.*`` intrinsics), and Numba then runs the very same
optimisation and code generation on it for the CPU at hand.

So skbp ships that module for each entry kernel and signature that
``python -m skbp compile`` reaches (both dtypes, every family), in
``skbp/_prebuilt_ir/``, with what Numba's cache keeps besides the machine code
(function descriptor, environment, signature).  On a cache miss
(:class:`skbp._cache.SafeFunctionCache`) a kernel found there is optimised and
made into machine code for this CPU, then written to the on-disk cache like a
compiled one, so later processes load its machine code.  The same module goes
through the same passes as in a compile on this machine: the weights are the
same bit for bit (``tests/test_prebuilt.py``).

A store is used only when everything it was made with matches:

* its file name carries the Python version, Numba's and llvmlite's versions and
  the platform triple (:func:`tag`); another combination finds no file and
  compiles as before;
* it holds the stamp of the kernel sources (``skbp._cache.PACKAGE_STAMP``); a
  store from other sources is ignored as a whole;
* each entry is keyed like Numba's cache (signature, the entry kernel's
  bytecode), with the platform triple for the CPU;
* it records the Numba settings that change what is compiled (``NUMBA_OPT``,
  ``NUMBA_BOUNDSCHECK``, ``NUMBA_DEBUGINFO``, ...): with other values in this
  process, it is not used;
* the file carries a SHA-256 of its contents; a damaged file, an entry that
  fails to rebuild, or ``SKBP_PREBUILT=0`` in the environment: compiled as
  before.

Making the stores (maintainers, after changing a kernel module or upgrading
Numba; ``tests/test_prebuilt.py`` fails while one is stale or missing)::

    python -m skbp._prebuilt --all-pythons

makes one for each supported Python (:data:`PYTHONS`) found (pyenv's newest
release of each, or ``pythonX.Y`` on the ``PATH``): each in a virtual
environment under ``~/.cache/skbp-build/venv-X.Y`` (made once, then reused)
holding this interpreter's Numba and llvmlite, with this checkout on the
``PYTHONPATH``, so every store carries this checkout's stamp.  ``--python PATH
...`` does the same for the interpreters named; plain ``python -m
skbp._prebuilt``, for this interpreter only.  Each build compiles every kernel
in fresh processes (one per dtype) with an empty cache and writes the store for
its versions, removing stores of other sources; stores of the same sources for
other versions stay side by side.
"""

from __future__ import annotations

import contextlib
import hashlib
import lzma
import os
import pickle
import sys
import threading

FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_prebuilt_ir")
FORMAT = 2
#: Numba settings that change typing, lowering or Numba's per-function passes
#: (``NUMBA_OPT``, ``NUMBA_BOUNDSCHECK``, ``NUMBA_DEBUGINFO``, ...): a store made
#: with other values is not used
_SETTINGS = (
    "OPT", "BOUNDSCHECK", "DEBUGINFO_DEFAULT", "FULL_TRACEBACKS", "EXTEND_VARIABLE_LIFETIMES",
    "LOOP_VECTORIZE", "SLP_VECTORIZE",
)  # fmt: skip
_MAGIC = b"skbp-prebuilt-ir-sha256\n"
_DIGEST = hashlib.sha256().digest_size
#: the kind of library data an entry holds: the linked module before optimisation
_KIND = "skbp-unoptimised-ir"
_UNREAD = object()
_state = {"store": _UNREAD}
_lock = threading.Lock()


def enabled() -> bool:
    """Whether shipped kernels may be used (``SKBP_PREBUILT=0`` turns them off)."""
    return os.environ.get("SKBP_PREBUILT", "1").strip().lower() not in ("0", "false", "no", "off")


def _triple() -> str:
    from llvmlite import binding as ll

    return ll.get_process_triple()


def tag() -> str:
    """What a store must have been made with to serve this process."""
    import llvmlite
    import numba

    py = f"py{sys.version_info[0]}{sys.version_info[1]}"
    return f"{py}-numba{numba.__version__}-llvmlite{llvmlite.__version__}-{_triple()}"


def store_path(folder: str | None = None) -> str:
    """The file of this installation's store (in :data:`FOLDER` by default)."""
    return os.path.join(folder or FOLDER, f"kernels-{tag()}.pkl.xz")


def settings() -> dict[str, str]:
    """This process's values of the Numba settings in :data:`_SETTINGS`."""
    from numba.core import config

    return {name: repr(getattr(config, name, None)) for name in _SETTINGS}


def write_store(path: str, stamp: str, entries: dict) -> None:
    """Write ``{kernel name: [(pickled key, pickled payload), ...]}`` with its checksum."""
    store = {"format": FORMAT, "stamp": stamp, "settings": settings(), "entries": entries}
    data = lzma.compress(pickle.dumps(store))
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(_MAGIC + hashlib.sha256(data).digest() + data)
    os.replace(tmp, path)


def read_store(path: str) -> dict | None:
    """The store in ``path``; ``None`` if it is missing or fails its checksum."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return None
    head = len(_MAGIC) + _DIGEST
    if not raw.startswith(_MAGIC) or hashlib.sha256(raw[head:]).digest() != raw[len(_MAGIC) : head]:
        return None
    return pickle.loads(lzma.decompress(raw[head:]))


def store() -> dict | None:
    """This installation's store (read once per process), or ``None``."""
    with _lock:
        if _state["store"] is _UNREAD:
            from ._cache import PACKAGE_STAMP

            try:
                s = read_store(store_path())
            except Exception:  # a damaged file: no store
                s = None
            if s is not None and (
                s.get("format") != FORMAT
                or s.get("stamp") != PACKAGE_STAMP
                or s.get("settings") != settings()
            ):
                s = None  # made from other sources, or with other Numba settings
            _state["store"] = s
        return _state["store"]


def describe() -> str:
    """One line on the shipped kernels for ``python -m skbp info``."""
    if not enabled():
        return "switched off (SKBP_PREBUILT=0): a first use compiles them"
    s = store()
    if s is None:
        return f"none for this installation ({tag()}): a first use compiles them"
    n = sum(len(v) for v in s["entries"].values())
    return f"{n} kernels as LLVM IR for {tag()}: a first use makes machine code only"


def portable_key(index_key: tuple) -> tuple:
    """Numba's cache key with the platform triple in place of the host CPU."""
    sig, _cpu, code_hashes = index_key
    return (sig, _triple(), code_hashes)


def lookup(func_name: str, index_key: tuple):
    """The stored payload of kernel ``func_name`` for Numba's cache key, or ``None``."""
    if not enabled():
        return None
    s = store()
    if s is None:
        return None
    key = portable_key(index_key)
    for key_bytes, payload in s["entries"].get(func_name, ()):
        if pickle.loads(key_bytes) == key:
            return pickle.loads(payload)
    return None


def rebuild(target_context, payload):
    """A compile result from a stored payload: the module optimised and made into
    machine code for this CPU (what Numba's ``CompileResult._rebuild`` does with
    a cached one, whose machine code is ready)."""
    from llvmlite import binding as ll
    from numba.core.compiler import CompileResult
    from numba.core.runtime import rtsys

    libdata, fndesc, env, signature, objectmode, lifted, typeann, reload_init, envs = payload
    name, kind, bitcode = libdata
    if kind != _KIND:
        raise ValueError(f"not a stored module: {kind!r}")
    rtsys.initialize(target_context)  # the runtime's symbols, which the code may call
    for fn in reload_init:
        fn()
    library = target_context.codegen().create_library(name)
    library.enable_object_caching()  # so that the on-disk cache can save its machine code
    library._final_module = ll.parse_bitcode(bitcode)
    library._optimize_final_module()  # as CPUCodeLibrary.finalize, after linking
    library._final_module.verify()
    library._finalize_final_module()
    cres = CompileResult(
        target_context=target_context,
        typing_context=target_context.typing_context,
        library=library,
        environment=env,
        entry_point=target_context.get_executable(library, fndesc, env),
        fndesc=fndesc,
        type_annotation=typeann,
        signature=signature,
        objectmode=objectmode,
        lifted=lifted,
        typing_error=None,
        call_helper=None,
        metadata=None,
        reload_init=reload_init,
        referenced_envs=envs,
    )
    for e in envs:
        library.codegen.set_env(e.env_name, e)
    return cres


@contextlib.contextmanager
def capturing():
    """Record every entry kernel the on-disk cache saves, with its linked module
    before optimisation: ``{kernel name: [(pickled key, pickled payload)]}``.

    For :func:`build` only (a process of its own): it wraps two methods of
    Numba's and skbp's classes while it lasts.
    """
    from numba.core.codegen import CPUCodeLibrary

    from . import _cache
    from ._linkonly import LinkOnlyLibrary

    entries: dict[str, list] = {}
    optimize, save = CPUCodeLibrary._optimize_final_module, _cache.SafeFunctionCache.save_overload

    def keep_ir(self):
        if not isinstance(self, LinkOnlyLibrary):  # an entry kernel's linked whole
            self._skbp_ir = self._final_module.as_bitcode()
        optimize(self)

    def save_and_keep(self, sig, cres):
        key = self._index_key(sig, cres.target_context.codegen())
        payload = list(cres._reduce())
        payload[0] = (cres.library.name, _KIND, cres.library._skbp_ir)
        entries.setdefault(self._func_name, []).append(
            (pickle.dumps(portable_key(key)), pickle.dumps(tuple(payload)))
        )
        save(self, sig, cres)

    CPUCodeLibrary._optimize_final_module = keep_ir
    _cache.SafeFunctionCache.save_overload = save_and_keep
    try:
        yield entries
    finally:
        CPUCodeLibrary._optimize_final_module = optimize
        _cache.SafeFunctionCache.save_overload = save


_WORKER = """
import pickle, sys, numpy as np
from skbp import _prebuilt
from skbp._compile import _exercise
with _prebuilt.capturing() as entries:
    _exercise(np.dtype(sys.argv[1]).type)
with open(sys.argv[2], "wb") as f:
    pickle.dump(entries, f)
"""


def build(folder: str | None = None, dtypes=("float64", "float32"), out=print) -> str:
    """Compile every kernel ``python -m skbp compile`` reaches, in fresh processes
    (one per dtype) with empty caches and no store, and write this
    installation's store; remove stores made from other sources."""
    import subprocess
    import tempfile
    import time

    from ._numba_support import plain_reason

    reason = plain_reason()
    if reason is not None:
        raise RuntimeError(
            f"a store holds the kernels of skbp's own compile path, which this process "
            f"does not use ({reason}): unset SKBP_PLAIN_NUMBA, or install a Numba in the "
            f"tested range"
        )
    from ._cache import PACKAGE_STAMP
    from ._compile import worker_env

    folder = folder or FOLDER
    os.makedirs(folder, exist_ok=True)
    t0 = time.perf_counter()
    entries: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = worker_env(NUMBA_CACHE_DIR=os.path.join(tmp, "cache"), SKBP_PREBUILT="0")
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _WORKER, d, os.path.join(tmp, d)],
                env=env,
                stderr=subprocess.PIPE,
                text=True,
            )
            for d in dtypes
        ]
        errors = [p.communicate()[1] for p in procs]
        for d, p, err in zip(dtypes, procs, errors, strict=True):
            if p.returncode != 0:
                raise RuntimeError(f"compiling {d} failed:\n{err[-3000:]}")
            with open(os.path.join(tmp, d), "rb") as f:
                for name, items in pickle.load(f).items():
                    entries.setdefault(name, []).extend(items)
    path = store_path(folder)
    write_store(path, PACKAGE_STAMP, entries)
    for other in os.listdir(folder):
        full = os.path.join(folder, other)
        if full != path and other.endswith(".pkl.xz"):
            s = read_store(full)
            if s is None or s.get("stamp") != PACKAGE_STAMP:
                os.remove(full)
                out(f"removed {other} (other sources)")
    n = sum(len(v) for v in entries.values())
    size = os.path.getsize(path) / 1e6
    out(f"wrote {path}: {n} kernels, {size:.2f} MB, {time.perf_counter() - t0:.1f} s")
    return path


#: the Python versions skbp supports: ``--all-pythons`` makes a store for each
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
#: where ``--all-pythons`` keeps one virtual environment per Python (outside the checkout)
VENVS = os.path.join(os.path.expanduser("~"), ".cache", "skbp-build")


def find_pythons(versions=PYTHONS) -> dict[str, str | None]:
    """``{version: interpreter}`` for each of ``versions``: pyenv's newest release
    of it, else ``pythonX.Y`` on the ``PATH``, else ``None``."""
    import re
    import shutil

    root = os.path.join(
        os.environ.get("PYENV_ROOT") or os.path.join(os.path.expanduser("~"), ".pyenv"), "versions"
    )
    releases = os.listdir(root) if os.path.isdir(root) else []
    found = {}
    for v in versions:
        patches = [int(m[1]) for r in releases if (m := re.fullmatch(rf"{re.escape(v)}\.(\d+)", r))]
        exe = os.path.join(root, f"{v}.{max(patches)}", "bin", "python") if patches else None
        found[v] = exe if exe and os.path.exists(exe) else shutil.which(f"python{v}")
    return found


def venv(python: str, path: str, requirements: list[str], out=print) -> str:
    """The interpreter of a virtual environment at ``path`` made with ``python``,
    holding exactly ``requirements`` (pip's syntax); one made earlier with the
    same requirements is reused, any other made anew."""
    import shutil
    import subprocess

    exe = os.path.join(path, "Scripts" if os.name == "nt" else "bin", "python")
    pins = os.path.join(path, "skbp-requirements.txt")
    wanted = "\n".join(requirements) + "\n"
    if os.path.exists(exe) and os.path.exists(pins):
        with open(pins) as f:
            if f.read() == wanted:
                return exe
    shutil.rmtree(path, ignore_errors=True)
    out(f"making {path}: {' '.join(requirements)}")
    for cmd in (
        [python, "-m", "venv", path],
        [exe, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements],
    ):
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{(p.stdout + p.stderr)[-3000:]}")
    with open(pins, "w") as f:  # last: a venv whose installation failed is never reused
        f.write(wanted)
    return exe


def build_all(pythons: list[str], folder: str = VENVS, out=print) -> bool:
    """Make the store of each interpreter in ``pythons``, each in a virtual
    environment of its own under ``folder`` with this process's Numba and
    llvmlite (a store serves those versions only), from this very checkout (so
    that every store carries this process's stamp).

    The environments are made side by side (mostly downloads); the builds,
    two processes each, one after another per pair of cores.  Returns whether
    every store was written.
    """
    import subprocess
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import llvmlite
    import numba

    from ._compile import worker_env

    requirements = [
        f"numba=={numba.__version__}", f"llvmlite=={llvmlite.__version__}",
        "numpy", "scipy", "scikit-learn",
    ]  # fmt: skip
    builds = threading.Semaphore(max(1, (os.cpu_count() or 1) // 2))
    printing = threading.Lock()

    def say(line):
        with printing:
            out(line)

    def one(python):
        try:
            v = subprocess.run(
                [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True, text=True, check=True,
            ).stdout.strip()  # fmt: skip
            exe = venv(python, os.path.join(folder, f"venv-{v}"), requirements, say)
            with builds:
                p = subprocess.run(
                    [exe, "-m", "skbp._prebuilt"], env=worker_env(), capture_output=True, text=True
                )
        except (OSError, RuntimeError, subprocess.CalledProcessError) as e:
            say(f"{python}: failed: {e}")
            return False
        for line in p.stdout.splitlines():
            say(f"Python {v}: {line}")
        if p.returncode != 0:
            say(f"Python {v}: failed:\n{p.stderr[-3000:]}")
        return p.returncode == 0

    with ThreadPoolExecutor(max_workers=max(1, len(pythons))) as pool:
        return all(list(pool.map(one, pythons)))


def main(argv=None) -> int:
    """``python -m skbp._prebuilt``: this interpreter's store;
    ``--all-pythons``: one for each supported Python found; ``--python PATH ...``:
    one for each of these interpreters."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m skbp._prebuilt", description=main.__doc__)
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--all-pythons",
        action="store_true",
        help=f"a store for each of Python {', '.join(PYTHONS)} found (pyenv, or pythonX.Y on "
        f"the PATH), each built in a virtual environment under {VENVS}",
    )
    which.add_argument(
        "--python", nargs="+", metavar="PATH", help="a store for each of these interpreters"
    )
    args = parser.parse_args(argv)
    if args.python:
        return 0 if build_all(args.python) else 1
    if not args.all_pythons:
        build()
        return 0
    found = find_pythons()
    missing = [v for v, exe in found.items() if exe is None]
    if missing:
        print(f"not found: Python {', '.join(missing)} (pyenv, or pythonX.Y on the PATH)")
    ok = build_all([exe for exe in found.values() if exe])
    return 0 if ok and not missing else 1


if __name__ == "__main__":
    sys.exit(main())
