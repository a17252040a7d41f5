"""The on-disk cache of compiled kernels, made safe to rely on.

Numba's own ``cache=True`` has three ways to hurt a user, all seen:

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

A cache folder is also a way into the process: Numba's cache files are
pickles, and unpickling runs whatever code the file names.  Where the cache
would have to live in a place others can write (the temporary directory is
shared by every user), another local user could plant files that run their
code in the next fit.

:class:`SafeFunctionCache` replaces Numba's ``FunctionCache`` on every cached
skbp kernel (:func:`install`): the entry kernels, whose machine code contains
the internal ones (those are compiled for linking only and not cached; see
``skbp._jit``):

* the cache lives where Numba would put it (``NUMBA_CACHE_DIR`` if set, the
  package's ``__pycache__``, Numba's user-wide cache directory), else in a
  per-user folder under the temporary directory, else nowhere: kernels are
  then compiled in memory in each process, with a message saying so;
* a folder is used only if nobody else can write it (:func:`folder_problem`):
  the cache folder and the folder holding it must belong to this user (or to
  root) and the cache folder must not be writable by others (the one holding
  it may be, with the sticky bit, as ``/tmp`` is).  The temporary-directory
  folder, whose name anyone can predict, is created private (mode 0700) and
  must belong to this user and be writable by nobody else, not even its group
  (a user-private group is common, so group write is accepted elsewhere).  A
  folder refused is named in a warning on the ``skbp`` logger and the next
  place is tried.  (Windows folders have no such owner and mode: not checked);
* every file, index and data alike, carries a SHA-256 of its contents, checked
  before anything is unpickled or loaded: a file skbp did not write (plain
  Numba's, a planted one) or a damaged one is a cache miss, never unpickled;
  any error while reading or rebuilding an entry is a miss too: the kernel is
  compiled and the entry written anew.  (The checksum proves a file whole, not
  who wrote it: that is the folder check's part);
* several processes may fill one cache at once (a grid search's workers, the
  parallel ``python -m skbp compile``): files are written under a temporary
  name and renamed, an index is read, extended and written back under a lock
  file (Numba's own read-modify-write loses entries, or points one signature's
  entry at another signature's data file, when two processes save different
  signatures of a kernel at the same moment), and every data file holds the
  key it was saved under, checked on load: a mismatch is a miss.  Temporary
  files a killed writer left behind are removed by the next save once they are
  :data:`STALE_AFTER` seconds old (a live writer's are much younger);
* a save that fails (a folder gone read-only, a full disk) keeps the compiled
  code, and a warning says once that the kernels are not cached there;
* a Ctrl-C that Python handles inside llvmlite's callbacks, where ctypes drops
  it, is raised again as the ``KeyboardInterrupt`` it was
  (:func:`_lost_interrupt`), not left to fail later on missing object code;
* the source stamp is a hash of the code of every module that can reach
  compiled code (:func:`kernel_modules`: the kernel modules and what they
  import at module level; their syntax trees without docstrings, so comments,
  docstrings and formatting do not count), so any change to that code
  invalidates every kernel, and a change to the Python layer alone (this
  module included) recompiles nothing; a change to the format of the files
  written here bumps :data:`CACHE_FORMAT`, which every index carries too;
* its files are named apart from Numba's (``skbp-`` in front), so that plain
  Numba's cache, which the fallback path of ``skbp._numba_support`` uses, never
  reads them, nor this cache Numba's.

The first compilation in a process is announced once on the ``skbp`` logger
(a warning-level record, shown by default; silence it with
``logging.getLogger("skbp").setLevel(logging.ERROR)``).
"""

import ast
import contextlib
import hashlib
import itertools
import logging
import os
import pickle
import re
import stat
import tempfile
import threading
import time
import uuid

from numba.core import caching

logger = logging.getLogger("skbp")

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
#: prefix of a data file and of an index file written by skbp: a tag, then the
#: SHA-256 of the rest
_MAGIC = b"skbp-nbc-sha256\n"
_INDEX_MAGIC = b"skbp-nbi-sha256\n"
_DIGEST = hashlib.sha256().digest_size
#: the version of the files written here (names, seals, what an index and a data
#: file hold): an index of another version is a miss
CACHE_FORMAT = 2
#: age in seconds after which a temporary file in a cache folder is taken for one
#: a killed writer left (a live writer renames or removes its own at once)
STALE_AFTER = 600


_KERNEL_DECORATOR = re.compile(rb"^@jit\(", re.MULTILINE)


def _module_level_imports(tree):
    """The skbp modules a module's syntax ``tree`` imports at module level.

    Statements inside functions and classes are left out: only a name bound
    at module level can be a global of a kernel (a kernel cannot import), so
    a module imported inside a function (the Python side of a kernel module,
    compile machinery imported on first use) does not reach compiled code.
    Imports inside ``if``/``try`` blocks at module level count.
    """
    found = []
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            # "from .x import a" imports x; "from . import x, y" imports x and y
            found += [node.module] if node.module else [a.name for a in node.names]
        for field in ("body", "orelse", "finalbody", "handlers"):
            todo.extend(getattr(node, field, ()))
    return found


def kernel_modules(folder=_PACKAGE_DIR):
    """The modules whose code can reach compiled code, as ``{name: syntax tree}``.

    Those that define kernels (a line starting ``@jit(``) and every skbp
    module they import at module level (:func:`_module_level_imports`),
    transitively: the kernels, the constants and intrinsics they use, and the
    compile machinery that decides how they are compiled (``skbp._jit``,
    ``skbp._linkonly``).  The Python layer (estimators, training loops,
    prediction driver, the thread runtime, the on-disk cache) is left out:
    changing it recompiles nothing.
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
        found[m] = tree = ast.parse(sources[m])
        todo.extend(_module_level_imports(tree))
    return dict(sorted(found.items()))


def _dump(node) -> str:
    """A syntax tree as text, the same on every supported Python: fields that are
    empty (``None``, ``[]``) are left out, since newer Pythons add such fields
    (``type_params``) and ``ast.dump`` shows them or not depending on the version."""
    if isinstance(node, ast.AST):
        fields = (f"{k}={_dump(v)}" for k, v in ast.iter_fields(node) if v is not None and v != [])
        return f"{type(node).__name__}({', '.join(fields)})"
    if isinstance(node, list):
        return f"[{', '.join(_dump(v) for v in node)}]"
    return repr(node)


def _code_of(tree):
    """The code of a module's syntax ``tree``, without comments, formatting or docstrings.

    Its syntax tree, docstrings removed: what compiles.  An edit to a comment
    or a docstring then invalidates no kernel (every user's cache and the
    shipped store stay valid); any edit to code does.  The text is the same on
    every supported Python, so that the stores shipped for each carry one stamp.
    """
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    node.body = body[1:] or [ast.Pass()]
    return _dump(tree).encode()


def package_stamp(folder=_PACKAGE_DIR):
    """Hash of the code of :func:`kernel_modules` (the stamp of every kernel)."""
    h = hashlib.sha256()
    for name, tree in kernel_modules(folder).items():
        h.update(name.encode())
        h.update(_code_of(tree))
    return h.hexdigest()


PACKAGE_STAMP = package_stamp()


def temp_cache_dir():
    """The per-user fallback folder under the temporary directory (``None``
    where there is no usable temporary directory)."""
    try:
        user = str(os.getuid())
    except AttributeError:  # Windows
        user = os.environ.get("USERNAME", "user")
    try:
        return os.path.join(tempfile.gettempdir(), f"skbp-numba-cache-{user}")
    except OSError:  # "No usable temporary directory found"
        return None


#: the folders refused in this process, ``{folder: why}``, and those a save
#: failed in, ``{folder: error}`` (each is warned about once)
REFUSED = {}
UNWRITABLE = {}
#: why the safe cache could not be set up at all (a Numba whose internals differ)
_BROKEN = {}
_warn_lock = threading.Lock()


def _warn_once(table, folder, why, message, *args):
    with _warn_lock:
        if folder in table:
            return
        table[folder] = why
    logger.warning(message, *args)


def folder_problem(folder, strict=False, holder=False):
    """Why ``folder`` may not hold skbp's cache, or ``None`` if it may.

    Parameters
    ----------
    folder : str
        The folder to check (it must exist).
    strict : bool, default=False
        For a folder whose name others can predict in a place they can write
        (the temporary directory): it must be a real folder (not a link), of
        this user, writable by nobody else.  Otherwise it may belong to this
        user or to root, and be writable by its group (a user-private group is
        the common case).
    holder : bool, default=False
        For the folder holding a cache folder: writable by others is accepted
        with the sticky bit (as ``/tmp``), which keeps them from renaming or
        replacing what this user made there.

    Returns
    -------
    str or None
        A short reason, for a warning.
    """
    try:
        uid = os.getuid()
    except AttributeError:  # pragma: no cover - Windows: no owner or mode to check
        return None
    try:
        st = os.lstat(folder) if strict else os.stat(folder)
    except OSError as e:
        return f"cannot be checked ({e.strerror})"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a folder (a link?)"
    if st.st_uid != uid and (strict or st.st_uid != 0):
        return f"belongs to another user (uid {st.st_uid})"
    others = stat.S_IWOTH | (stat.S_IWGRP if strict else 0)
    if st.st_mode & others and not (holder and st.st_mode & stat.S_ISVTX):
        return f"is writable by other users (mode {stat.S_IMODE(st.st_mode):o})"
    return None


class _Untrusted(OSError):
    """A cache folder others could write (raised where Numba expects an OSError)."""


def _refuse(folder, why):
    _warn_once(
        REFUSED, folder, why,
        "skbp: not using the kernel cache folder %s: it %s, so another user could "
        "plant files that run code in this process. Remove it, or make it yours "
        "and private (chmod 700), or set NUMBA_CACHE_DIR to a folder of your own.",
        folder, why,
    )  # fmt: skip
    raise _Untrusted(f"untrusted cache folder {folder}: {why}")


def _check_folder(folder, strict=False):
    """Raise :class:`_Untrusted` (after a warning) unless ``folder`` and the folder
    holding it are fit for a cache."""
    for path, is_holder in ((os.path.dirname(folder), True), (folder, False)):
        why = folder_problem(path, strict=strict and not is_holder, holder=is_holder)
        if why is not None:
            _refuse(path, why)


# Numba's names for these changed over versions (leading underscores before 0.60)
_UserLocator = getattr(caching, "UserProvidedCacheLocator", None)
if _UserLocator is None:  # pragma: no cover - older Numba
    _UserLocator = caching._UserProvidedCacheLocator


class _TempDirLocator(_UserLocator):
    """Numba's user-provided-directory locator, pointed at :func:`temp_cache_dir`:
    created private, and used only while it is."""

    _skbp_checked = True

    def __init__(self, py_func, py_file):
        super().__init__(py_func, py_file)
        self._root = temp_cache_dir()
        self._cache_path = os.path.join(self._root, self.get_suitable_cache_subpath(py_file))

    def ensure_cache_path(self):
        for folder in (self._root, self._cache_path):
            with contextlib.suppress(FileExistsError):
                os.mkdir(folder, 0o700)
            _check_folder(folder, strict=True)
        tempfile.TemporaryFile(dir=self._cache_path).close()  # writable?

    @classmethod
    def from_function(cls, py_func, py_file):
        if temp_cache_dir() is None:
            return None
        # skip UserProvidedCacheLocator's "only when NUMBA_CACHE_DIR is set"
        return caching._SourceFileBackedLocatorMixin.from_function.__func__(cls, py_func, py_file)


def _checked(locator_class):
    """``locator_class``, used only where :func:`folder_problem` finds nothing
    wrong with its folder (else Numba goes on to the next locator)."""

    class Checked(locator_class):
        _skbp_checked = True

        def ensure_cache_path(self):
            super().ensure_cache_path()
            _check_folder(self.get_cache_path())

    Checked.__name__ = Checked.__qualname__ = f"Checked{locator_class.__name__}"
    return Checked


class _Impl(caching.CompileResultCacheImpl):
    _locator_classes = [
        *map(_checked, caching.CompileResultCacheImpl._locator_classes),
        _TempDirLocator,
    ]

    def get_filename_base(self, fullname, abiflags):
        # not Numba's names: Numba's cache (the plain path's) would fail on
        # skbp's sealed index, and skbp's would throw Numba's away at every save
        return "skbp-" + super().get_filename_base(fullname, abiflags)

    def rebuild(self, target_context, payload):
        # Numba's, stopped where the cached machine code was not taken (see
        # _lost_interrupt): the library would be empty, and the environment
        # pointers Numba writes next would go to address 0 (a crash)
        codegen = target_context.codegen()
        unserialize = codegen.unserialize_library

        def checked(serialized):
            library = unserialize(serialized)
            if _lost_interrupt(library, loaded=True):
                raise KeyboardInterrupt
            return library

        # on the instance, while the compiler lock (held around every cache
        # load) keeps any other compile from using it
        codegen.unserialize_library = checked
        try:
            return super().rebuild(target_context, payload)
        finally:
            del codegen.unserialize_library


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


def _sealed(magic, data):
    return magic + hashlib.sha256(data).digest() + data


def _unsealed(magic, raw, path):
    """The pickle inside ``raw``, read from ``path``; :class:`_Damaged` if ``raw``
    does not carry skbp's tag ``magic`` and a matching SHA-256."""
    head = len(magic) + _DIGEST
    if (
        len(raw) <= head
        or not raw.startswith(magic)
        or hashlib.sha256(raw[head:]).digest() != raw[len(magic) : head]
    ):
        raise _Damaged(path)
    return raw[head:]


class _CheckedCacheFile(caching.IndexDataCacheFile):
    """Index and data files where damage reads as a miss, never as an error,
    that are unpickled only when skbp wrote them, and that several processes
    can fill at once."""

    def save(self, key, data):
        # Numba's save with the index update under the lock, and the key kept
        # inside the data file (checked by load)
        with _locked(self._index_path + ".lock"):
            self._remove_stale_temp_files()
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
        # Numba's index starts with a bare pickle, unpickled before anything
        # is checked; skbp's is sealed like its data files
        try:
            with open(self._index_path, "rb") as f:
                raw = f.read()
            version, stamp, overloads = pickle.loads(_unsealed(_INDEX_MAGIC, raw, self._index_path))
        except Exception:  # none yet, damaged, or not skbp's: start afresh
            return {}
        if (
            version != self._version
            or stamp != self._source_stamp
            or not isinstance(overloads, dict)
        ):
            return {}
        return overloads

    def _save_index(self, overloads):
        data = self._dump((self._version, self._source_stamp, overloads))
        with self._open_for_write(self._index_path) as f:
            f.write(_sealed(_INDEX_MAGIC, data))

    def _save_data(self, name, data):
        with self._open_for_write(self._data_path(name)) as f:
            f.write(_sealed(_MAGIC, self._dump(data)))

    def _load_data(self, name):
        path = self._data_path(name)
        with open(path, "rb") as f:
            raw = f.read()
        return pickle.loads(_unsealed(_MAGIC, raw, path))

    @contextlib.contextmanager
    def _open_for_write(self, filepath):
        # Numba's, except that the temporary file goes whatever interrupts the
        # write (Numba keeps it on a KeyboardInterrupt)
        tmpname = f"{filepath}.tmp.{uuid.uuid4().hex[:16]}"
        try:
            with open(tmpname, "wb") as f:
                yield f
            os.replace(tmpname, filepath)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmpname)
            raise

    def _remove_stale_temp_files(self):
        """Remove this kernel's temporary files older than :data:`STALE_AFTER`:
        left by a writer that was killed before it could rename or remove them."""
        prefix = self._index_name[: -len("nbi")]  # "<filename base>."
        now = time.time()
        try:
            entries = list(os.scandir(self._cache_path))
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith(prefix) and ".tmp." in entry.name:
                with contextlib.suppress(OSError):
                    if now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER:
                        os.unlink(entry.path)


class _Damaged(Exception):
    """A cache file that fails its checksum (or was not written by skbp)."""


_announced = threading.Event()
#: kernels loaded from the cache, compiled, and made from the shipped IR
#: (``skbp._prebuilt``) in this process (``python -m skbp compile``)
STATS = {"loaded": 0, "compiled": 0, "prebuilt": 0}
#: the names of the kernels compiled in this process, in order
COMPILED = []


def _no_cache_reason():
    if _BROKEN:
        return f"skbp's cache does not work with this Numba ({_BROKEN['install']})"
    if REFUSED:
        refused = "; ".join(f"{folder} {why}" for folder, why in REFUSED.items())
        return f"no usable cache folder: {refused}"
    if temp_cache_dir() is None:
        return "no writable cache folder, and no usable temporary directory"
    return "no writable cache folder"


def _announce_compile(name, where):
    if _announced.is_set():
        return
    _announced.set()
    if where is None:
        logger.warning(
            "skbp: compiling its kernels for this configuration (%s first) in memory, "
            "NOT cached: %s; every process compiles them again (set NUMBA_CACHE_DIR to "
            "a folder of your own to cache them).",
            name,
            _no_cache_reason(),
        )
        return
    logger.warning(
        "skbp: compiling its kernels for this configuration (%s first); this happens "
        "once per machine and takes a few seconds per kernel family (cached in %s; "
        "`python -m skbp compile` does it ahead of time).",
        name,
        where,
    )


def _lost_interrupt(library, loaded=False):
    """Whether LLVM made the machine code of ``library`` without handing its
    object code over (``loaded=False``), or loaded it without taking the cached
    object code (``loaded=True``): the one trace of a Ctrl-C that came then.

    Python runs a signal's handler at the first Python code after a long C
    call, here one of llvmlite's callbacks that give or take object code;
    ctypes prints and drops any exception raised in a callback, so the
    ``KeyboardInterrupt`` is lost there.  A compiled kernel then fails to save
    (``RuntimeError: no compiled object yet``); a loaded one has no code.
    """
    if not getattr(library, "_object_caching_enabled", False):
        return False
    unused = getattr(library, "_compiled_object", None) is not None
    return unused if loaded else not unused


#: the kernel this thread is compiling (from the cache's miss to its save)
_compiling = threading.local()
_load_only = threading.local()


class NotCached(Exception):
    """A kernel not in the cache, met inside :func:`loading_only`."""


@contextlib.contextmanager
def loading_only():
    """Kernels this thread needs inside are loaded from the cache, never compiled: a
    miss raises :class:`NotCached` (``python -m skbp compile`` on a warm cache)."""
    _load_only.on = True
    try:
        yield
    finally:
        _load_only.on = False


def compile_interrupted():
    """Whether a kernel compile of this thread was cut short (a Ctrl-C) since the
    last call; clears the record."""
    name = getattr(_compiling, "name", None)
    _compiling.name = None
    return name is not None


class SafeFunctionCache(caching.FunctionCache):
    """Numba's ``FunctionCache`` with the protections of this module.

    When no cache folder is usable at all, the cache is disabled and kernels
    are compiled in memory.
    """

    _impl_class = _Impl

    def __init__(self, py_func):
        self._name = repr(py_func)
        self._py_func = py_func
        self._func_name = f"{py_func.__module__}.{py_func.__qualname__}"
        self._impl = self._cache_path = self._cache_file = None
        self.disable()
        try:
            impl = self._impl_class(py_func)
            if not getattr(impl.locator, "_skbp_checked", False):
                # Numba's own locators (NUMBA_CACHE_LOCATOR_CLASSES): check here
                _check_folder(impl.locator.get_cache_path())
        except (RuntimeError, OSError):  # no locator, not even the temporary directory
            return
        self._impl = impl
        self._cache_path = impl.locator.get_cache_path()
        self._cache_file = _CheckedCacheFile(
            cache_path=self._cache_path,
            filename_base=impl.filename_base,
            source_stamp=(CACHE_FORMAT, PACKAGE_STAMP),
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
        if getattr(_load_only, "on", False):
            raise NotCached(self._func_name)
        # until save_overload: a Ctrl-C in between cut this compile short
        _compiling.name = self._func_name
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
            from . import _prebuilt as prebuilt

            key = self._index_key(sig, target_context.codegen())
            payload = prebuilt.lookup(self._func_name, key)
            return None if payload is None else prebuilt.rebuild(target_context, payload)
        except Exception:  # a store that does not fit this Numba: compile
            return None

    def _load_lean(self, sig, target_context):
        """Numba's ``load_overload`` without its refresh of the target context.

        That refresh imports and installs every typing and lowering registry,
        once per process: a large share of a warm first fit.  Linking cached
        machine code needs only the runtime's
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
        if _lost_interrupt(getattr(data, "library", None)):
            # the kernel stays compiled (Numba added it before saving), uncached
            raise KeyboardInterrupt
        _compiling.name = None
        if not self._enabled:
            return
        try:
            super().save_overload(sig, data)
        except _Untrusted:  # the folder changed hands since it was checked (warned)
            self._cache_path = None
            self.disable()
        except OSError as e:  # the folder went read-only or full: keep the compiled code
            folder = self._cache_path
            _warn_once(
                UNWRITABLE, folder, e.strerror or str(e),
                "skbp: kernels compiled in this process are NOT cached: %s is not "
                "writable (%s), so the next process compiles them again. Make room "
                "there or make it writable, or set NUMBA_CACHE_DIR to a writable folder.",
                folder, e.strerror or e,
            )  # fmt: skip

    def flush(self):
        if self._cache_file is not None:
            self._cache_file.flush()


def install(dispatcher):
    """Give a Numba dispatcher (compiled without ``cache=True``) the safe cache.

    Should this Numba's caching internals differ from what this module expects,
    the kernel is compiled in memory in every process (with a warning), never
    an import error; not Numba's own cache, which would unpickle any file
    found in its folder.
    """
    try:
        dispatcher._cache = SafeFunctionCache(dispatcher.py_func)
    except Exception as e:
        _warn_once(
            _BROKEN, "install", f"{type(e).__name__}: {e}",
            "skbp: its kernel cache does not work with this Numba (%s: %s): kernels "
            "are compiled in memory in every process.",
            type(e).__name__, e,
        )  # fmt: skip
    return dispatcher


#: the list of what ``python -m skbp compile`` left in a cache folder, and its tag
MANIFEST = "skbp-compiled.manifest"
_MANIFEST_MAGIC = b"skbp-nbm-sha256\n"


def _manifest_stamp():
    import numba

    return (CACHE_FORMAT, PACKAGE_STAMP, numba.__version__)


def read_manifest(folder):
    """``{dtype: {kernel name: [signature, ...]}}`` that ``python -m skbp compile``
    left in the cache ``folder`` for these sources and this Numba; ``{}`` if none.

    Sealed like the index files, so a file skbp did not write is never unpickled.
    """
    path = os.path.join(folder, MANIFEST)
    try:
        with open(path, "rb") as f:
            stamp, entries = pickle.loads(_unsealed(_MANIFEST_MAGIC, f.read(), path))
    except Exception:  # none, damaged, or not skbp's
        return {}
    return entries if stamp == _manifest_stamp() and isinstance(entries, dict) else {}


def write_manifest(folder, entries):
    """Record ``{dtype: {kernel name: [signature, ...]}}`` in the cache ``folder``
    (with what it held for other dtypes); a folder that will not take it: nothing."""
    path = os.path.join(folder, MANIFEST)
    with contextlib.suppress(OSError), _locked(path + ".lock"):
        data = pickle.dumps((_manifest_stamp(), {**read_manifest(folder), **entries}))
        tmp = f"{path}.tmp.{uuid.uuid4().hex[:16]}"
        try:
            with open(tmp, "wb") as f:
                f.write(_sealed(_MANIFEST_MAGIC, data))
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def in_index(dispatcher, signatures):
    """Whether the cache index of the entry kernel ``dispatcher`` lists every one of
    ``signatures`` for this CPU and this code, with its data file present.

    Reads the index only (no machine code is loaded): what a warm ``python -m
    skbp compile`` checks.  A data file damaged since is still a miss when a fit
    loads it, and compiled then.
    """
    cache = getattr(dispatcher, "_cache", None)
    if not isinstance(cache, SafeFunctionCache) or not cache._enabled:
        return False
    overloads = cache._cache_file._load_index()
    codegen = dispatcher.targetctx.codegen()
    for sig in signatures:
        name = overloads.get(cache._index_key(sig, codegen))
        if name is None or not os.path.exists(cache._cache_file._data_path(name)):
            return False
    return True


def cache_folder():
    """Where skbp's kernels are cached in this process (``None``: not cached)."""
    from . import _epoch

    return getattr(_epoch.run_epoch._cache, "cache_path", None)


def describe():
    """One line on the kernel cache, for ``python -m skbp info``."""
    folder = cache_folder()
    if folder is None:
        return f"none ({_no_cache_reason()}): kernels are compiled in memory in every process"
    if folder in UNWRITABLE:
        return f"{folder} (not writable: {UNWRITABLE[folder]}; new kernels are not saved)"
    try:
        st = os.statvfs(folder)
    except (AttributeError, OSError):  # Windows
        return folder
    if st.f_bavail * st.f_frsize < 1 << 20:
        return f"{folder} (nearly full: new kernels may not be saved)"
    return folder
