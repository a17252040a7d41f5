"""The on-disk cache of compiled kernels, made safe to rely on.

Numba's own ``cache=True`` has three ways to hurt a user, all measured:

* with no writable place for the cache (a read-only package directory and
  home, as in many containers) decorating a function raises ``RuntimeError:
  cannot cache function ...: no locator available``, so ``import skbp`` fails;
* a truncated or damaged cache file makes every later call fail
  (``UnpicklingError``, ``EOFError``, an LLVM parsing error) until someone
  deletes ``__pycache__`` by hand, and damaged machine code can crash the
  process;
* a cached function is invalidated only when *its own* source file changes,
  while its machine code contains the callees it inlined from other files: an
  upgrade that changes ``_kernels.py`` but not ``_epoch.py`` would run the old
  kernels inside the new ``run_epoch``.

:class:`SafeFunctionCache` replaces Numba's ``FunctionCache`` on every cached
skbp kernel (:func:`install`): the entry kernels, whose machine code contains
the internal ones (those are compiled for linking only and not cached; see
``skbp._jit``):

* the cache lives where Numba would put it (``NUMBA_CACHE_DIR`` if set, the
  package's ``__pycache__``, Numba's user-wide cache directory), else in a
  per-user folder under the temporary directory, else nowhere: kernels are
  then compiled in memory in each process, with a message saying so;
* every data file carries a SHA-256 of its contents, checked before anything
  is unpickled or loaded; a file that fails the check, or any error while
  reading or rebuilding an entry, is a cache miss: the kernel is compiled and
  the entry written anew;
* several processes may fill one cache at once (a grid search's workers, the
  parallel ``python -m skbp compile``): files are replaced atomically, an
  index is read, extended and written back under a lock file (Numba's own
  read-modify-write loses entries, or points one signature's entry at another
  signature's data file, when two processes save different signatures of a
  kernel at the same moment), and every data file holds the key it was saved
  under, checked on load: a mismatch is a miss;
* the source stamp is a hash of the sources of every module that can reach
  compiled code (:func:`kernel_modules`: the kernel modules and what they
  import), so any change there invalidates every kernel, and a change to the
  Python layer alone recompiles nothing.

The first compilation in a process is announced once on the ``skbp`` logger
(a warning-level record, shown by default; silence it with
``logging.getLogger("skbp").setLevel(logging.ERROR)``).
"""

import contextlib
import hashlib
import importlib
import itertools
import logging
import os
import pickle
import re
import tempfile
import threading

from numba.core import caching

logger = logging.getLogger("skbp")

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
#: prefix of a data file written by skbp: a tag, then the SHA-256 of the rest
_MAGIC = b"skbp-nbc-sha256\n"
_DIGEST = hashlib.sha256().digest_size


_RELATIVE_IMPORT = re.compile(rb"^\s*from \.(\w*) import ([\w, ]+)", re.MULTILINE)
_KERNEL_DECORATOR = re.compile(rb"^@jit\(", re.MULTILINE)


def kernel_modules(folder=_PACKAGE_DIR):
    """The modules whose source can reach compiled code, as ``{name: source}``.

    Those that define kernels (a line starting ``@jit(``) and every skbp module they import,
    transitively.  The Python layer (estimators, training loops, prediction
    driver) is left out: changing it recompiles nothing.
    """
    sources = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            with open(os.path.join(folder, name), "rb") as f:
                sources[name[:-3]] = f.read()
    todo = [m for m, src in sources.items() if _KERNEL_DECORATOR.search(src)]
    found = {}
    while todo:
        m = todo.pop()
        if m in found or m not in sources:
            continue
        found[m] = sources[m]
        for module, names in _RELATIVE_IMPORT.findall(sources[m]):
            # "from .x import a" imports x; "from . import x, y" imports x and y
            deps = [module] if module else names.replace(b" ", b"").split(b",")
            todo.extend(dep.decode() for dep in deps)
    return dict(sorted(found.items()))


def package_stamp(folder=_PACKAGE_DIR):
    """Hash of the sources of :func:`kernel_modules` (the stamp of every kernel)."""
    h = hashlib.sha256()
    for name, source in kernel_modules(folder).items():
        h.update(name.encode())
        h.update(source)
    return h.hexdigest()


PACKAGE_STAMP = package_stamp()


def temp_cache_dir():
    """The per-user fallback folder under the temporary directory."""
    try:
        user = str(os.getuid())
    except AttributeError:  # Windows
        user = os.environ.get("USERNAME", "user")
    return os.path.join(tempfile.gettempdir(), f"skbp-numba-cache-{user}")


# Numba's names for these changed over versions (leading underscores before 0.60)
_UserLocator = getattr(caching, "UserProvidedCacheLocator", None)
if _UserLocator is None:  # pragma: no cover - older Numba
    _UserLocator = caching._UserProvidedCacheLocator


class _TempDirLocator(_UserLocator):
    """Numba's user-provided-directory locator, pointed at :func:`temp_cache_dir`."""

    def __init__(self, py_func, py_file):
        super().__init__(py_func, py_file)
        self._cache_path = os.path.join(temp_cache_dir(), self.get_suitable_cache_subpath(py_file))

    @classmethod
    def from_function(cls, py_func, py_file):
        # skip UserProvidedCacheLocator's "only when NUMBA_CACHE_DIR is set"
        return caching._SourceFileBackedLocatorMixin.from_function.__func__(cls, py_func, py_file)


class _Impl(caching.CompileResultCacheImpl):
    _locator_classes = [*caching.CompileResultCacheImpl._locator_classes, _TempDirLocator]


def _lock_calls():
    """``(lock, unlock)`` of an open file: ``fcntl.flock`` on POSIX,
    ``msvcrt.locking`` of its first byte on Windows."""
    if os.name == "nt":  # pragma: no cover - Windows
        import msvcrt

        def lock(f, mode=msvcrt.LK_LOCK):
            f.seek(0)
            msvcrt.locking(f.fileno(), mode, 1)

        return lock, lambda f: lock(f, msvcrt.LK_UNLCK)
    import fcntl

    return (
        lambda f: fcntl.flock(f.fileno(), fcntl.LOCK_EX),
        lambda f: fcntl.flock(f.fileno(), fcntl.LOCK_UN),
    )


@contextlib.contextmanager
def _locked(path):
    """Hold an exclusive lock on the file ``path`` (created if need be).

    Where no lock can be had (a folder that will not take the lock file, a
    file system without locks) the block runs unlocked: the atomic replaces
    and the key in every data file still keep the cache from serving wrong
    code.
    """
    lock, unlock = _lock_calls()
    try:
        f = open(path, "a+b")
    except OSError:
        yield
        return
    with f:
        try:
            lock(f)
        except OSError:  # pragma: no cover - no lock to be had
            yield
            return
        try:
            yield
        finally:
            unlock(f)


class _CheckedCacheFile(caching.IndexDataCacheFile):
    """Index and data files where damage reads as a miss, never as an error,
    and that several processes can fill at once."""

    def save(self, key, data):
        # Numba's save with the index update under the lock, and the key kept
        # inside the data file (checked by load)
        with _locked(self._index_path + ".lock"):
            overloads = self._load_index()
            data_name = overloads.get(key)
            # a new key, or one whose data file another key shares (an index
            # written by Numba's unlocked save): a data file of its own
            if data_name is None or list(overloads.values()).count(data_name) > 1:
                taken = set(overloads.values())
                data_name = next(
                    name for name in map(self._data_name, itertools.count(1)) if name not in taken
                )
                overloads[key] = data_name
                self._save_index(overloads)
            self._save_data(data_name, (key, data))

    def load(self, key):
        data_name = self._load_index().get(key)
        if data_name is None:
            return None
        try:
            saved_key, data = self._load_data(data_name)
        except OSError:  # listed in the index, not (yet) written
            return None
        if saved_key != key:  # another signature's code: never run it
            raise _Damaged(self._data_path(data_name))
        return data

    def flush(self):
        with _locked(self._index_path + ".lock"):
            self._save_index({})

    def _load_index(self):
        try:
            return super()._load_index()
        except Exception:  # truncated or damaged index: start afresh
            return {}

    def _save_data(self, name, data):
        data = self._dump(data)
        with self._open_for_write(self._data_path(name)) as f:
            f.write(_MAGIC + hashlib.sha256(data).digest() + data)

    def _load_data(self, name):
        with open(self._data_path(name), "rb") as f:
            raw = f.read()
        head = len(_MAGIC) + _DIGEST
        if (
            len(raw) <= head
            or not raw.startswith(_MAGIC)
            or hashlib.sha256(raw[head:]).digest() != raw[len(_MAGIC) : head]
        ):
            raise _Damaged(self._data_path(name))
        return pickle.loads(raw[head:])


class _Damaged(Exception):
    """A cache file that fails its checksum (or was not written by skbp)."""


_announced = threading.Event()
#: kernels loaded from the cache, compiled, and made from the shipped IR
#: (``skbp._prebuilt``) in this process (``python -m skbp compile``)
STATS = {"loaded": 0, "compiled": 0, "prebuilt": 0}
#: the names of the kernels compiled in this process, in order
COMPILED = []


def _announce_compile(name, where):
    if _announced.is_set():
        return
    _announced.set()
    where = f"cached in {where}" if where else "NOT cached: no writable cache folder"
    logger.warning(
        "skbp: compiling its kernels for this configuration (%s first); this happens "
        "once per machine and takes a few seconds per kernel family (%s; "
        "`python -m skbp compile` does it ahead of time).",
        name,
        where,
    )


class SafeFunctionCache(caching.FunctionCache):
    """Numba's ``FunctionCache`` with the protections of this module.

    When no cache folder is writable at all, the cache is disabled and
    kernels are compiled in memory.
    """

    _impl_class = _Impl

    def __init__(self, py_func):
        self._name = repr(py_func)
        self._py_func = py_func
        self._func_name = f"{py_func.__module__}.{py_func.__qualname__}"
        try:
            self._impl = self._impl_class(py_func)
        except RuntimeError:  # no locator: not even the temporary directory
            self._impl = None
            self._cache_path = None
            self._cache_file = None
            self.disable()
            return
        self._cache_path = self._impl.locator.get_cache_path()
        self._cache_file = _CheckedCacheFile(
            cache_path=self._cache_path,
            filename_base=self._impl.filename_base,
            source_stamp=PACKAGE_STAMP,
        )
        self.enable()

    def load_overload(self, sig, target_context):
        data = None
        if self._enabled:
            try:
                data = self._load_lean(sig, target_context)
            except Exception:  # damaged entry, stale format, failed rebuild: a miss
                data = None
        if data is not None:
            STATS["loaded"] += 1
            return data
        _announce_compile(self._func_name, self._cache_path)
        data = self._from_prebuilt(sig, target_context)
        if data is not None:
            STATS["prebuilt"] += 1
            self.save_overload(sig, data)  # later processes load its machine code
        else:
            STATS["compiled"] += 1
            COMPILED.append(self._func_name)
        return data

    def _from_prebuilt(self, sig, target_context):
        """The kernel from the LLVM IR shipped with skbp (``skbp._prebuilt``), made
        into machine code for this CPU; ``None`` where there is none (or it fails)."""
        try:
            # imported by name: the shipped IR's loader is not part of the
            # kernels' stamp (it changes how code is loaded, not the code)
            prebuilt = importlib.import_module("._prebuilt", __package__)
            key = self._index_key(sig, target_context.codegen())
            payload = prebuilt.lookup(self._func_name, key)
            return None if payload is None else prebuilt.rebuild(target_context, payload)
        except Exception:  # a store that does not fit this Numba: compile
            return None

    def _load_lean(self, sig, target_context):
        """Numba's ``load_overload`` without its refresh of the target context.

        That refresh imports and installs every typing and lowering registry
        (0.4-0.5 s, once per process: measured, a warm first fit went from
        1.09 to 0.72 s).  Linking cached machine code needs only the runtime's
        symbols (NRT; without them the code would call null pointers), and a
        compile, when one comes, refreshes by itself.  A Numba without these
        internals gets its own ``load_overload``.
        """
        try:
            from numba.core.runtime import rtsys
        except ImportError:
            rtsys = None
        load = getattr(self, "_load_overload", None)
        guard = getattr(self, "_guard_against_spurious_io_errors", None)
        if rtsys is None or load is None or guard is None:
            return super().load_overload(sig, target_context)
        rtsys.initialize(target_context)
        with guard():
            return load(sig, target_context)

    def save_overload(self, sig, data):
        if not self._enabled:
            return
        try:
            super().save_overload(sig, data)
        except OSError:  # the folder went read-only or full: keep the compiled code
            pass

    def flush(self):
        if self._cache_file is not None:
            self._cache_file.flush()


def install(dispatcher):
    """Give a Numba dispatcher (compiled without ``cache=True``) the safe cache.

    Should this Numba's caching internals differ from what this module expects,
    the kernel gets Numba's own cache if it can, else none (compiled in
    memory): never an import error.
    """
    try:
        dispatcher._cache = SafeFunctionCache(dispatcher.py_func)
    except Exception:
        try:
            dispatcher.enable_caching()
        except Exception:
            pass
    return dispatcher


def cache_folder():
    """Where skbp's kernels are cached in this process (``None``: not cached)."""
    from . import _epoch

    return _epoch.run_epoch._cache._cache_path
