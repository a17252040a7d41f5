"""The on-disk kernel cache can't hurt (skbp._cache): damage, read-only or full
folders, no temporary directory, races, Ctrl-C while compiling.

Most tests compile two tiny kernels declared with skbp's own decorator
(``skbp._jit.jit``, the one every kernel uses) in a module of a temporary
folder, in fresh processes, so that nothing here depends on -- or disturbs --
the cache of skbp's real kernels, and no test pays a full compile.
"""

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import TINY_KERNELS as KERNELS

import skbp
from skbp import _cache

CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    import tiny_kernels as k
    from skbp import _cache
    out = [float(k.squares(np.arange(5.0)).sum()), k.twice_plus_one(20)]
    print(json.dumps({"out": out, "stats": _cache.STATS,
                      "folder": k.squares._cache._cache_path}))
    """
)
SKBP_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(skbp.__file__)))


def _module(tmp_path):
    d = tmp_path / "mod"
    d.mkdir()
    (d / "tiny_kernels.py").write_text(KERNELS)
    return d


def _env(env=None):
    full = dict(os.environ)
    full.pop("NUMBA_CACHE_DIR", None)
    full["PYTHONPATH"] = SKBP_ROOT + os.pathsep + full.get("PYTHONPATH", "")
    full.update(env or {})
    return full


def _run(moddir, env=None, check=True, prelude=""):
    """Run ``prelude`` then :data:`CHILD` in a fresh process."""
    p = subprocess.Popen(
        [sys.executable, "-c", prelude + CHILD, str(moddir)], env=_env(env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    if not check:
        return p
    return _result(p)


def _result(p):
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-3000:]
    r = json.loads(out.strip().splitlines()[-1])
    assert r["out"] == [30.0, 41], r  # the right answers, whatever the cache held
    r["stderr"] = err
    return r


def _files(folder, suffix):
    return sorted(
        f for f in os.listdir(folder) if f.startswith("skbp-tiny_kernels") and f.endswith(suffix)
    )


def test_cold_then_warm_and_the_compile_message_comes_once(tmp_path):
    moddir = _module(tmp_path)
    cold = _run(moddir)
    assert cold["stats"] == {"loaded": 0, "compiled": 2, "prebuilt": 0}
    assert cold["folder"] == str(moddir / "__pycache__")
    assert cold["stderr"].count("skbp: compiling") == 1
    warm = _run(moddir)
    assert warm["stats"] == {"loaded": 2, "compiled": 0, "prebuilt": 0}
    assert "compiling" not in warm["stderr"]


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _zero_middle(path):  # e.g. machine code overwritten: a valid length, wrong bytes
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 256] = bytes(min(256, len(data) - mid))
    path.write_bytes(bytes(data))


def _garbage(path):
    path.write_bytes(b"\x80\x05not a pickle at all" * 10)


@pytest.mark.parametrize(
    "damage",
    [
        {"nbi": _truncate, "nbc": _zero_middle},
        pytest.param({"nbc": _truncate}, marks=pytest.mark.slow),
        pytest.param({"nbi": _garbage, "nbc": _garbage}, marks=pytest.mark.slow),
    ],
    ids=["truncated-index+zeroed-code", "truncated-data", "garbage"],
)
def test_damaged_cache_files_are_detected_and_rebuilt(tmp_path, damage):
    moddir = _module(tmp_path)
    _run(moddir)
    cache = moddir / "__pycache__"
    for suffix, how in damage.items():
        for name in _files(cache, f".{suffix}"):
            how(cache / name)
    again = _run(moddir)  # right answers (checked in _result), no crash
    assert again["stats"]["compiled"] >= 1
    healed = _run(moddir)
    assert healed["stats"] == {"loaded": 2, "compiled": 0, "prebuilt": 0}


@pytest.mark.slow
def test_files_of_another_format_are_misses_then_replaced(tmp_path):
    """A data file without skbp's checksum header (e.g. plain Numba's) is not trusted."""
    moddir = _module(tmp_path)
    _run(moddir)
    cache = moddir / "__pycache__"
    for name in _files(cache, ".nbc"):
        raw = (cache / name).read_bytes()
        assert raw.startswith(_cache._MAGIC)
        (cache / name).write_bytes(raw[len(_cache._MAGIC) + 32 :])  # the bare pickle
    assert _run(moddir)["stats"]["compiled"] == 2
    assert _run(moddir)["stats"]["loaded"] == 2


def test_plain_numbas_cache_and_skbps_share_a_folder(tmp_path):
    """The plain path (SKBP_PLAIN_NUMBA=1: numba.njit(cache=True)) caches next to
    skbp's own cache without reading its sealed files (Numba would fail on them),
    and skbp's entries survive Numba's saves."""
    moddir = _module(tmp_path)
    assert _run(moddir)["stats"]["compiled"] == 2
    _run(moddir, env={"SKBP_PLAIN_NUMBA": "1"})  # right answers, no error
    _run(moddir, env={"SKBP_PLAIN_NUMBA": "1"})
    cache = moddir / "__pycache__"
    assert _files(cache, ".nbi") and any(f.startswith("tiny_kernels") for f in os.listdir(cache))
    assert _run(moddir)["stats"] == {"loaded": 2, "compiled": 0, "prebuilt": 0}


def test_read_only_folders_fall_back_to_a_temporary_cache(tmp_path):
    """No writable NUMBA_CACHE_DIR, __pycache__ or home: the per-user temporary folder."""
    moddir = _module(tmp_path)
    (moddir / "__pycache__").write_text("a file where the cache folder would be")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {
        "NUMBA_CACHE_DIR": str(blocker / "cache"),
        "HOME": str(blocker / "home"),
        "XDG_CACHE_HOME": str(blocker / "xdg"),
        "TMPDIR": str(tmp),
    }
    first = _run(moddir, env)
    assert first["folder"].startswith(str(tmp / "skbp-numba-cache-"))
    assert first["stats"]["compiled"] == 2
    assert _run(moddir, env)["stats"] == {"loaded": 2, "compiled": 0, "prebuilt": 0}


def test_no_writable_folder_at_all_compiles_in_memory(tmp_path, monkeypatch):
    moddir = _module(tmp_path)
    (moddir / "__pycache__").write_text("")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("HOME", str(blocker / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / "xdg"))
    monkeypatch.setattr("numba.core.config.CACHE_DIR", "")
    monkeypatch.setattr(_cache, "temp_cache_dir", lambda: str(blocker / "tmp"))
    monkeypatch.syspath_prepend(str(moddir))
    monkeypatch.delitem(sys.modules, "tiny_kernels", raising=False)
    import tiny_kernels  # decorating must not raise "no locator available"

    assert tiny_kernels.squares._cache._cache_path is None
    assert tiny_kernels.squares(np.arange(5.0)).sum() == 30.0
    assert tiny_kernels.twice_plus_one(20) == 41


NO_PLACE_AT_ALL = textwrap.dedent(
    """
    import json, sys, tempfile
    blocked = sys.argv[1]
    # no usable temporary directory (a process run as root can write any real
    # one), and a package folder that will not take a cache
    tempfile._candidate_tempdir_list = lambda: [blocked + "/tmp"]
    tempfile.tempdir = None
    from numba.core import caching

    def read_only(self):
        raise PermissionError(13, "Permission denied", self.get_cache_path())

    caching.InTreeCacheLocator.ensure_cache_path = read_only
    import numpy as np
    from skbp import BPClassifier, _cache, _prebuilt
    from skbp.__main__ import main

    main(["info"])
    X = np.random.RandomState(0).rand(80, 4)
    y = (X[:, 0] > 0.5).astype(int)
    score = BPClassifier(max_iter=50, random_state=0).fit(X, y).score(X, y)
    shipped = _prebuilt.enabled() and _prebuilt.store() is not None
    print(json.dumps({"score": score, "stats": _cache.STATS, "shipped": shipped,
                      "folder": _cache.cache_folder()}))
    """
)


@pytest.mark.slow
def test_no_temporary_directory_at_all(tmp_path):
    """No NUMBA_CACHE_DIR, a read-only package and home, and no usable temporary
    directory: ``python -m skbp info`` says nothing is cached, a fit works
    (from the shipped kernels where they serve this installation), and the
    compile message says once that nothing is cached."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    env = _env({"HOME": str(blocker / "home"), "XDG_CACHE_HOME": str(blocker / "xdg")})
    p = subprocess.run(
        [sys.executable, "-c", NO_PLACE_AT_ALL, str(blocker)], env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    info, result = p.stdout.strip().rsplit("\n", 1)
    r = json.loads(result)
    none = "kernel cache: none (no writable cache folder, and no usable temporary directory)"
    assert none in info
    assert r["folder"] is None
    assert r["score"] > 0.7
    assert p.stderr.count("NOT cached: no writable cache folder") == 1
    if r["shipped"]:  # made into machine code in memory, nothing compiled by Numba
        assert r["stats"]["prebuilt"] >= 1 and r["stats"]["compiled"] == 0, r["stats"]


FULL_DISK = textwrap.dedent(
    """
    import resource, signal
    # every write to a file fails, as on a full disk ("File too large" here)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="file size limits are POSIX")
def test_a_full_cache_folder_says_the_kernels_are_not_cached(tmp_path):
    """A folder that takes no more data (full, or gone read-only after it was
    chosen): the kernels work, a warning says once that they are not cached
    there (not the "cached in" of the compile message alone), and no
    temporary file is left behind."""
    moddir = _module(tmp_path)
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    r = _run(moddir, env, prelude=FULL_DISK)
    folder = r["folder"]
    assert r["stats"]["compiled"] == 2
    assert r["stderr"].count(f"NOT cached: {folder} is not writable") == 1
    assert not [name for name in os.listdir(folder) if ".tmp." in name]
    # nothing was cached: the next process (with room) compiles and saves
    assert _run(moddir, env)["stats"]["compiled"] == 2
    assert _run(moddir, env)["stats"]["loaded"] == 2


def test_describe_says_where_the_kernels_are(tmp_path, monkeypatch):
    """The line of ``python -m skbp info``, in each case."""
    monkeypatch.setattr(_cache, "UNWRITABLE", {})
    monkeypatch.setattr(_cache, "cache_folder", lambda: str(tmp_path))
    assert _cache.describe() == str(tmp_path)
    _cache.UNWRITABLE[str(tmp_path)] = "No space left on device"
    assert "(not writable: No space left on device; new kernels are not saved)" in _cache.describe()
    monkeypatch.setattr(_cache, "cache_folder", lambda: None)
    monkeypatch.setattr(_cache, "REFUSED", {"/tmp/x": "is writable by other users (mode 777)"})
    assert _cache.describe().startswith(
        "none (no usable cache folder: /tmp/x is writable by other users (mode 777))"
    )


def test_temporary_files_of_killed_writers_are_removed(tmp_path):
    """A writer killed between writing a temporary file and renaming it leaves
    the file; the next save of that kernel removes those old enough to be no
    live writer's."""
    f = _cache._CheckedCacheFile(cache_path=str(tmp_path), filename_base="k", source_stamp="s")
    old = time.time() - 2 * _cache.STALE_AFTER
    stale = [tmp_path / "k.nbi.tmp.0123456789abcdef", tmp_path / "k.1.nbc.tmp.fedcba9876543210"]
    live = tmp_path / "k.2.nbc.tmp.0011223344556677"  # another process writing it now
    other = tmp_path / "other.nbi.tmp.0123456789abcdef"  # another kernel's: left to its saves
    for path in [*stale, live, other]:
        path.write_bytes(b"half a file")
    for path in [*stale, other]:
        os.utime(path, (old, old))
    f.save("signature", "code")
    assert not any(path.exists() for path in stale)
    assert live.exists() and other.exists()
    assert f.load("signature") == "code"


def test_an_interrupted_write_leaves_no_temporary_file(tmp_path):
    """Ctrl-C while a cache file is written: its temporary file goes too."""
    f = _cache._CheckedCacheFile(cache_path=str(tmp_path), filename_base="k", source_stamp="s")
    with pytest.raises(KeyboardInterrupt), f._open_for_write(str(tmp_path / "k.nbi")) as out:
        out.write(b"half an index")
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


INTERRUPTED_CALLBACK = textwrap.dedent(
    """
    import signal, sys
    from numba.core.codegen import CPUCodeLibrary

    # a terminal's Ctrl-C, whatever disposition of SIGINT the test runner passed on
    signal.signal(signal.SIGINT, signal.default_int_handler)

    # a Ctrl-C whose handler Python runs inside llvmlite's callback that gives
    # (a compile) or takes (a load) a kernel's object code: the first Python
    # code after LLVM's long C call, so where a real Ctrl-C lands
    stage = sys.argv[2]
    name = "_object_compiled_hook" if stage == "compile" else "_object_getbuffer_hook"
    real = getattr(CPUCodeLibrary, name).__func__
    fired = []

    def interrupted(cls, ll_module, *args):
        # the kernel's own code (not that of the NumPy functions it calls)
        library = getattr(ll_module, "_CPUCodeLibrary__library", None)
        if not fired and getattr(library, "name", None) == "squares" and (
            stage == "compile" or library._compiled_object is not None
        ):
            fired.append(True)
            signal.raise_signal(signal.SIGINT)
        return real(cls, ll_module, *args)

    setattr(CPUCodeLibrary, name, classmethod(interrupted))
    import json
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    import tiny_kernels as k

    try:
        k.squares(np.arange(5.0))
        first = "returned"
    except KeyboardInterrupt:
        first = "KeyboardInterrupt"
    again = float(k.squares(np.arange(5.0)).sum())
    print(json.dumps({"fired": bool(fired), "first": first, "again": again}))
    """
)


@pytest.mark.parametrize("stage", ["compile", "load"])
def test_a_ctrl_c_in_llvms_callbacks_is_a_keyboard_interrupt(tmp_path, stage):
    """ctypes drops an exception raised in a callback, so a Ctrl-C handled in
    the one that hands a kernel's object code over was lost, and the kernel's
    save then failed with ``RuntimeError: no compiled object yet``; in the one
    that takes cached code, the kernel came out empty (a crash).  Either is a
    ``KeyboardInterrupt`` now, and the next call works."""
    moddir = _module(tmp_path)
    if stage == "load":
        _run(moddir)  # fill the cache
    p = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_CALLBACK, str(moddir), stage], env=_env(),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r == {"fired": True, "first": "KeyboardInterrupt", "again": 30.0}
    assert _run(moddir)["out"] == [30.0, 41]  # and the cache is sound


CTRL_C = textwrap.dedent(
    """
    import json, os, signal, sys, threading, warnings
    import numpy as np
    from skbp import BPClassifier

    # a terminal's Ctrl-C, whatever disposition of SIGINT the test runner passed on
    signal.signal(signal.SIGINT, signal.default_int_handler)

    X = np.random.RandomState(0).rand(80, 4)
    y = (X[:, 0] > 0.5).astype(int)
    timer = threading.Timer(float(sys.argv[1]), os.kill, (os.getpid(), signal.SIGINT))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            timer.start()
            try:
                BPClassifier(max_iter=5).fit(X, y)
            finally:
                timer.cancel()
        stopped = any("interrupted by user" in str(w.message) for w in caught)
        first = "training stopped" if stopped else "finished"
    except KeyboardInterrupt:
        first = "KeyboardInterrupt"
    score = BPClassifier(max_iter=50, random_state=0).fit(X, y).score(X, y)
    print(json.dumps({"first": first, "score": score}))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.5, 1.5])
def test_ctrl_c_during_the_first_fit(tmp_path, delay):
    """A real SIGINT during a cold first fit: a ``KeyboardInterrupt`` while its
    kernels are being made (surely so at 0.5 s), else the fit's own handling of
    one (training stops with a warning) or a finished fit; never another error.
    A fit after it in the same process works."""
    env = _env({"NUMBA_CACHE_DIR": str(tmp_path / "cache")})
    p = subprocess.run(
        [sys.executable, "-c", CTRL_C, str(delay)], env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    if delay < 1:  # surely still compiling: the Ctrl-C is the caller's
        assert r["first"] == "KeyboardInterrupt", r
    assert r["first"] in ("KeyboardInterrupt", "training stopped", "finished"), r
    assert r["score"] > 0.7


def test_two_processes_filling_a_cold_cache_leave_it_valid(tmp_path):
    moddir = _module(tmp_path)
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "shared-cache")}
    procs = [_run(moddir, env, check=False) for _ in range(2)]
    for p in procs:
        _result(p)
    assert _run(moddir, env)["stats"] == {"loaded": 2, "compiled": 0, "prebuilt": 0}


RACE = textwrap.dedent(
    """
    import os, sys, time
    from skbp import _cache
    folder, who, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    f = _cache._CheckedCacheFile(cache_path=folder, filename_base="race", source_stamp="s")
    open(os.path.join(folder, f"ready{who}"), "w").close()
    while not os.path.exists(os.path.join(folder, "go")):
        time.sleep(0.001)
    for j in range(n):
        f.save(("signature", who, j), ("code", who, j))
    """
)


def test_processes_saving_different_signatures_at_once_lose_nothing(tmp_path):
    """Four processes each save 150 signatures of one kernel into one index at the
    same moments (as loky workers compiling different configurations, or the
    parallel ``python -m skbp compile``): every signature is listed afterwards
    and loads its own data.  Numba's unlocked read-modify-write of the index
    loses most of them here, and can point a signature at another's data file."""
    folder = tmp_path / "cache"
    folder.mkdir()
    n, k = 150, 4
    env = dict(os.environ, PYTHONPATH=SKBP_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = [
        subprocess.Popen([sys.executable, "-c", RACE, str(folder), str(who), str(n)], env=env)
        for who in range(k)
    ]
    while not all((folder / f"ready{who}").exists() for who in range(k)):
        assert all(p.poll() is None for p in procs), "a saving process died"
    (folder / "go").touch()
    assert all(p.wait(timeout=120) == 0 for p in procs)
    f = _cache._CheckedCacheFile(cache_path=str(folder), filename_base="race", source_stamp="s")
    index = f._load_index()
    assert len(index) == n * k
    assert len(set(index.values())) == n * k  # one data file per signature
    for who in range(k):
        for j in range(n):
            assert f.load(("signature", who, j)) == ("code", who, j)


def test_a_data_file_holding_another_signature_is_a_miss(tmp_path):
    """Should an index ever list a signature under another's data file, the key
    stored inside the data file stops the wrong code from being loaded."""
    f = _cache._CheckedCacheFile(cache_path=str(tmp_path), filename_base="k", source_stamp="s")
    f.save("float64 signature", "float64 code")
    f.save("float32 signature", "float32 code")
    index = f._load_index()
    assert f.load("float32 signature") == "float32 code"
    index["float32 signature"] = index["float64 signature"]
    f._save_index(index)
    with pytest.raises(_cache._Damaged):
        f.load("float32 signature")  # SafeFunctionCache.load_overload: a miss
    assert f.load("float64 signature") == "float64 code"
    # the miss compiles and saves again: into a data file of its own, so the
    # two entries do not keep overwriting each other's
    f.save("float32 signature", "float32 code")
    index = f._load_index()
    assert index["float32 signature"] != index["float64 signature"]
    assert f.load("float32 signature") == "float32 code"
    assert f.load("float64 signature") == "float64 code"


def _package_copy(tmp_path):
    src = os.path.dirname(skbp.__file__)
    copy = tmp_path / "pkg"
    copy.mkdir()
    for name in os.listdir(src):
        if name.endswith(".py"):
            shutil.copy(os.path.join(src, name), copy / name)
    assert _cache.package_stamp(str(copy)) == _cache.PACKAGE_STAMP
    return copy


@pytest.mark.parametrize(
    "module", ["_optim", "_kernels", "_jit", "_matmul", "_threads", "_intrinsics", "_linkonly"]
)
def test_a_change_to_a_kernel_module_invalidates_every_kernel(tmp_path, module):
    """Kernels inline callees from other files: one stamp covers every kernel module."""
    copy = _package_copy(tmp_path)
    with open(copy / f"{module}.py", "a") as f:
        f.write("\n_UPGRADE = 1  # an upgrade that touches one file\n")
    assert _cache.package_stamp(str(copy)) != _cache.PACKAGE_STAMP


@pytest.mark.parametrize("module", ["_kernels", "_matmul"])
def test_comments_docstrings_and_formatting_keep_the_stamp(tmp_path, module):
    """The stamp covers what compiles: an edit to a comment, a docstring or the layout
    of the code keeps every cached and shipped kernel; an edit to code does not."""
    copy = _package_copy(tmp_path)
    path = copy / f"{module}.py"
    source = path.read_text()
    edited = source.replace('"""', '"""An edited module docstring. ', 1)
    # a function's docstring, the spacing of a definition, a comment
    edited = re.sub(r'(\ndef [^\n]*:\n    """)', r"\1Edited: ", edited, count=1)
    edited = edited.replace("\ndef ", "\ndef  ", 1) + "\n# a new comment\n"
    assert edited.count("Edited: ") == 1 and "An edited module" in edited
    path.write_text(edited)
    assert _cache.package_stamp(str(copy)) == _cache.PACKAGE_STAMP
    path.write_text(source + "\n_UPGRADE = 1\n")
    assert _cache.package_stamp(str(copy)) != _cache.PACKAGE_STAMP


def test_the_stamp_is_the_same_on_every_python():
    """Newer Pythons add empty fields to syntax trees (``type_params``) and
    ``ast.dump`` shows them or not by version: the stamp's text leaves empty
    fields out, so the stores shipped for each Python carry one stamp."""
    tree = ast.parse("def f(x):\n    return x")
    assert _cache._dump(tree) == (
        "Module(body=[FunctionDef(name='f', args=arguments(args=[arg(arg='x')]), "
        "body=[Return(value=Name(id='x', ctx=Load()))])])"
    )


@pytest.mark.parametrize(
    "module", ["_base", "_training", "_estimators", "_callbacks", "_runtime", "_cache"]
)
def test_a_change_to_the_python_layer_recompiles_nothing(tmp_path, module):
    copy = _package_copy(tmp_path)
    with open(copy / f"{module}.py", "a") as f:
        f.write("\n_UPGRADE = 1  # a change to the Python layer\n")
    assert _cache.package_stamp(str(copy)) == _cache.PACKAGE_STAMP


def test_the_stamped_modules_hold_every_kernel_and_what_they_import():
    """Every module with a compiled kernel, and every skbp module such a module
    imports at module level; not the Python runtime (threads, the on-disk cache)."""
    import ast

    from skbp._compile import KERNEL_MODULES, dispatchers

    modules = _cache.kernel_modules()
    stamped = set(modules)
    assert stamped == {
        # the kernels
        "_epoch", "_kernels", "_matmul", "_optim", "_threads", "_update",
        # the JIT policy, the intrinsics and the pipelines: how the kernels compile
        "_jit", "_intrinsics", "_linkonly", "_numba_support",
    }  # fmt: skip
    kernel_sources = {
        m for m in stamped if _cache._KERNEL_DECORATOR.search(ast.unparse(modules[m]).encode())
    }
    assert kernel_sources == set(KERNEL_MODULES)
    for _, d in dispatchers():
        assert d.py_func.__module__.split(".")[-1] in stamped
    for name, tree in modules.items():
        assert set(_cache._module_level_imports(tree)) <= stamped, name


def test_only_module_level_imports_reach_the_stamp():
    """An import inside a function (the Python side of a kernel module) does not
    bring its module into the stamp; one at module level, even inside an ``if``, does."""
    import ast

    tree = ast.parse(
        "from .a import x\n"
        "from . import b, c\n"
        "if FLAG:\n    from .d import y\nelse:\n    from .e import z\n"
        "try:\n    from .f import w\nexcept ImportError:\n    from .g import v\n"
        "def helper():\n    from .h import u\n"
        "class K:\n    from .i import t\n"
        "import os\nfrom numba import njit\n"
    )
    assert sorted(_cache._module_level_imports(tree)) == ["a", "b", "c", "d", "e", "f", "g"]


def test_every_entry_kernel_uses_the_safe_cache():
    """The kernels the Python layer calls are cached, with the safe cache; the
    internal ones are compiled for linking only, and live inside those
    (tests/test_jit.py checks which is which)."""
    from skbp._compile import dispatchers

    kernels = dict(dispatchers())
    assert len(kernels) > 20
    cached = {name for name, disp in kernels.items() if disp._cache.cache_path is not None}
    assert cached == {
        "skbp._epoch.run_epoch", "skbp._kernels.full_loss_grad", "skbp._kernels.predict",
        "skbp._threads._probe",
    }  # fmt: skip
    for name in cached:
        assert isinstance(kernels[name]._cache, _cache.SafeFunctionCache), name


def test_compile_command_reports_every_dtype(capsys, monkeypatch):
    """`python -m skbp compile` (in-process here: the kernels are shared with the suite),
    past the warm-cache check, which an earlier compile may or may not have armed."""
    from skbp import _compile
    from skbp.__main__ import main

    monkeypatch.setattr(_compile, "_all_cached", lambda dtypes, out: False)
    assert main(["compile", "--dtype", "float32", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "cache folder" in out
    assert "processes at once" not in out
    assert "float32:" in out and "kernels compiled" in out and "loaded from the cache" in out
    assert "made from the shipped IR" in out
    from skbp._compile import dispatchers

    kernels = dict(dispatchers())
    # the families a user can reach: epochs, full-batch loss/gradient, prediction
    for name in ("_epoch.run_epoch", "_kernels.full_loss_grad", "_kernels.predict"):
        sigs = [str(s) for s in kernels[f"skbp.{name}"].signatures]
        assert any("float32" in s for s in sigs), (name, sigs)


@pytest.mark.slow
def test_compile_command_in_processes_of_its_own(capsys, monkeypatch):
    """`--jobs 2`: the parts of one dtype in two processes filling the suite's
    cache (loading it, when earlier tests filled it), then every kernel reached
    in this process: nothing left to compile."""
    from skbp import _compile
    from skbp.__main__ import main

    monkeypatch.setattr(_compile, "_all_cached", lambda dtypes, out: False)  # (a cold cache)
    assert main(["compile", "--dtype", "float32", "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 processes at once" in out
    assert "float32 plain:" in out and "float32 more:" in out
    # this process loads what the workers left (or already holds the kernels)
    assert "float32: 0 kernels compiled," in out
    with pytest.raises(SystemExit):
        main(["compile", "--jobs", "0"])
    assert "--jobs must be at least 1" in capsys.readouterr().err


def test_compile_command_on_a_warm_cache_loads_and_says_so(capsys, monkeypatch):
    """Every kernel in the cache: this process loads them (compiling none), reports
    each dtype once, and starts no worker process."""
    from skbp import _cache, _compile
    from skbp.__main__ import main

    _compile._exercise(np.float32)  # the cache holds every float32 kernel now

    def no_workers(groups, out):
        raise AssertionError("a worker process on a warm cache")

    monkeypatch.setattr(_compile, "_in_workers", no_workers)
    compiled = _cache.STATS["compiled"] + _cache.STATS["prebuilt"]
    assert main(["compile", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert out.count("float32: 0 kernels compiled,") == 1
    assert "nothing to compile" in out
    assert _cache.STATS["compiled"] + _cache.STATS["prebuilt"] == compiled
    # the next check reads the cache index by the manifest this one left: no
    # kernel loaded, no fit run, still a line per dtype naming each family
    folder = _cache.cache_folder()
    assert "float32" in _cache.read_manifest(folder)
    monkeypatch.setattr(_compile, "_exercise", None)  # (a fit would fail)
    stats = dict(_cache.STATS)
    assert main(["compile", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert _cache.STATS == stats
    line = next(x for x in out.splitlines() if x.startswith("  float32: 0 kernels compiled,"))
    for family in ("run_epoch", "full_loss_grad", "predict"):
        assert family in line, line
    assert "nothing to compile" in out
    # a manifest naming a kernel the index lacks (another CPU, other code) is no answer
    manifest = _cache.read_manifest(folder)
    manifest["float32"]["skbp._kernels.predict"].append(("not a signature",))
    _cache.write_manifest(folder, manifest)
    assert not _compile._in_manifest(folder, ["float32"], print)
    # a kernel missing from the cache is reported, not compiled, while loading only
    with _cache.loading_only(), pytest.raises(_cache.NotCached):
        _cache.SafeFunctionCache.load_overload(_Missing(), None, None)


class _Missing:
    """A cache whose lookup always misses (for ``load_overload`` alone)."""

    _enabled = False
    _func_name = "skbp.missing"


def test_a_failing_compile_worker_is_reported(monkeypatch):
    from skbp import _compile

    monkeypatch.setattr(_compile, "_WORKER", "import sys; sys.exit('no compiler today')")
    with pytest.raises(RuntimeError, match="compiling float32 plain failed:\n.*no compiler today"):
        _compile._in_workers([[("float32", "plain")]], print)


def test_compile_work_is_split_per_dtype_then_per_part():
    from skbp._compile import PARTS, _groups

    assert PARTS == ("plain", "more")
    both = ["float64", "float32"]
    assert _groups(both, 1) == [[(d, p) for d in both for p in PARTS]]
    # fewer cores than units: a dtype's parts stay together (they share internal kernels)
    assert _groups(both, 2) == _groups(both, 3) == [[(d, p) for p in PARTS] for d in both]
    assert _groups(both, 4) == _groups(both, 16) == [[(d, p)] for d in both for p in PARTS]
    assert _groups(["float32"], 2) == [[("float32", "plain")], [("float32", "more")]]
    with pytest.raises(ValueError, match="parts must be among"):
        from skbp._compile import _exercise

        _exercise(np.float32, ["bogus"])


def test_info_command(capsys):
    from skbp.__main__ import main

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"skbp {skbp.__version__}") and "kernel cache:" in out
    assert "shipped kernels: " in out


def test_demo_command(capsys, monkeypatch):
    """`python -m skbp` runs the demo: compile time first, then both searches side by side."""
    import skbp._demo
    from skbp.__main__ import main

    real = skbp._demo.main
    monkeypatch.setattr(skbp._demo, "main", lambda: real(max_iter=3))
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.index("Compiling skbp's kernels") < out.index("test accuracy")
    rows = [line for line in out.splitlines() if line.startswith(("skbp.BP", "sklearn MLP"))]
    assert len(rows) == 2
    for row in rows:  # accuracy, then a positive grid time
        name_words = 2 if row.startswith("sklearn") else 1
        accuracy, seconds = (float(v) for v in row.split()[name_words : name_words + 2])
        assert 0.5 < accuracy <= 1.0 and seconds > 0
    assert "speed-up on this grid search" in out


def test_install_never_fails_the_import(monkeypatch):
    """Should Numba's caching internals change, a kernel is compiled in memory:
    decorating never raises."""
    from numba.core.caching import FunctionCache

    from skbp._jit import jit

    def broken(py_func):
        raise AttributeError("a Numba without the internals skbp._cache uses")

    monkeypatch.setattr(_cache, "SafeFunctionCache", broken)
    monkeypatch.setattr(_cache, "_BROKEN", {})

    @jit(entry=True)
    def plus_one(x):
        return x + 1

    # compiled in memory: not Numba's own cache, which unpickles any file it finds
    assert not isinstance(plus_one._cache, FunctionCache)
    assert plus_one._cache.cache_path is None
    assert plus_one(1) == 2
    assert "does not work with this Numba" in _cache._no_cache_reason()


def test_precompile_default_path_and_bad_dtype():
    from skbp import _cache

    seconds = skbp.precompile(["float32"])
    assert isinstance(seconds, float) and seconds >= 0
    # a second call finds every kernel of the default path ready: nothing compiles
    n = len(_cache.COMPILED)
    skbp.precompile("float32")
    assert len(_cache.COMPILED) == n
    with pytest.raises(TypeError, match="bogus"):
        skbp.precompile("bogus")
