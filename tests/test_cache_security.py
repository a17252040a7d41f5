"""The kernel cache never runs a file another user planted (skbp._cache).

Numba's cache files are pickles: unpickling one runs whatever code it names.
Each test plants index files whose unpickling would create a marker file, in
every place the cache looks, and checks that the marker never appears: files
skbp did not write are never unpickled, and a folder another user could write
(the predictable fallback folder under the temporary directory first of all)
is refused with a warning naming it.  The kernels are the two tiny ones of
``tests/test_cache.py``, in fresh processes.
"""

import hashlib
import json
import os
import pickle
import stat
import subprocess
import sys
import textwrap

import pytest
from conftest import TINY_KERNELS as KERNELS
from numba.core.caching import _CacheLocator

import skbp
from skbp import _cache

SKBP_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(skbp.__file__)))
CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    import tiny_kernels as k
    out = [float(k.squares(np.arange(5.0)).sum()), k.twice_plus_one(20)]
    print(json.dumps({"out": out, "folder": k.squares._cache.cache_path}))
    """
)
ANOTHER_UID = 12345
pytestmark = pytest.mark.skipif(os.name == "nt", reason="folder owners and modes are POSIX's")
as_root = pytest.mark.skipif(
    not hasattr(os, "getuid") or os.getuid() != 0, reason="giving a folder away needs root"
)


class _Plant:
    """Unpickling this creates the file ``marker`` (as a shell command could)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _module(tmp_path):
    d = tmp_path / "mod"
    d.mkdir()
    (d / "tiny_kernels.py").write_text(KERNELS)
    return d


def _index_names():
    """The names of the kernels' index files (``skbp-``, then Numba's: name, first
    line, Python)."""
    lines = KERNELS.splitlines()
    py = f"py{sys.version_info[0]}{sys.version_info[1]}{getattr(sys, 'abiflags', '')}"
    return [
        f"skbp-tiny_kernels.{lines[i + 1][4 : lines[i + 1].index('(')]}-{i + 1}.{py}.nbi"
        for i, line in enumerate(lines)
        if line.startswith("@jit(")
    ]


def _plant(folder, marker):
    """Index files that create ``marker`` when unpickled: one a bare pickle (as
    Numba writes its index), the other sealed with skbp's checksum (which anyone
    can compute: only the folder check keeps it out)."""
    folder.mkdir(parents=True, exist_ok=True)
    bare, sealed = _index_names()
    payload = pickle.dumps(_Plant(str(marker)))
    (folder / bare).write_bytes(payload)
    (folder / sealed).write_bytes(_cache._INDEX_MAGIC + hashlib.sha256(payload).digest() + payload)


def _run(moddir, env):
    full = dict(os.environ)
    full.pop("NUMBA_CACHE_DIR", None)
    full["PYTHONPATH"] = SKBP_ROOT + os.pathsep + full.get("PYTHONPATH", "")
    full.update(env)
    p = subprocess.run(
        [sys.executable, "-c", CHILD, str(moddir)], env=full, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["out"] == [30.0, 41], r
    r["stderr"] = p.stderr
    return r


def _only_the_fallback(tmp_path, moddir):
    """The environment of a process whose only writable place is the temporary
    directory (``tmp_path / "tmp"``): no NUMBA_CACHE_DIR, a ``__pycache__`` that
    cannot be a folder, a home under a file."""
    (moddir / "__pycache__").write_text("a file where the cache folder would be")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    home = {"HOME": str(blocker / "home"), "XDG_CACHE_HOME": str(blocker / "xdg")}
    return tmp, {**home, "TMPDIR": str(tmp)}


def _give_away(path):
    os.chown(path, ANOTHER_UID, ANOTHER_UID)


@pytest.mark.parametrize(
    "how",
    [
        pytest.param("another-user", marks=as_root),
        "world-writable",
        "group-writable",
        "a-link",
        "its-folder-world-writable",
    ],
)
def test_a_planted_fallback_folder_is_refused(tmp_path, how):
    """Another user creates ``skbp-numba-cache-<uid>`` under the temporary
    directory before this user's first fit, with index files that run code:
    the folder is refused with a warning naming it, the kernels are compiled in
    memory, and nothing planted is unpickled."""
    moddir = _module(tmp_path)
    tmp, env = _only_the_fallback(tmp_path, moddir)
    root = tmp / os.path.basename(_cache.temp_cache_dir())
    sub = _CacheLocator.get_suitable_cache_subpath(str(moddir / "tiny_kernels.py"))
    marker = tmp_path / "planted-code-ran"
    refused = root
    if how == "a-link":  # a link the other user can point anywhere later
        elsewhere = tmp_path / "elsewhere"
        _plant(elsewhere / sub, marker)
        root.symlink_to(elsewhere)
    else:
        _plant(root / sub, marker)
        if how == "another-user":
            _give_away(root)
            _give_away(root / sub)
        elif how == "world-writable":
            root.chmod(0o777)
        elif how == "group-writable":
            root.chmod(0o770)
        else:
            root.chmod(0o700)
            (root / sub).chmod(0o777)
            refused = root / sub
    r = _run(moddir, env)
    assert not marker.exists(), "a planted cache file was unpickled"
    assert r["folder"] is None
    assert f"not using the kernel cache folder {refused}:" in r["stderr"]
    assert r["stderr"].count("not using the kernel cache folder") == 1  # once, for two kernels
    assert "NOT cached: no usable cache folder" in r["stderr"]


def test_the_fallback_folder_is_made_private(tmp_path):
    moddir = _module(tmp_path)
    tmp, env = _only_the_fallback(tmp_path, moddir)
    folder = _run(moddir, env)["folder"]
    root = tmp / os.path.basename(_cache.temp_cache_dir())
    assert folder.startswith(str(root))
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    # and used again by the next process: it is this user's, and private
    assert _run(moddir, env)["folder"] == folder


@pytest.mark.parametrize(
    "where",
    [
        "__pycache__",
        "NUMBA_CACHE_DIR",
        pytest.param(
            "user-cache",
            marks=pytest.mark.skipif(
                not sys.platform.startswith("linux"), reason="XDG_CACHE_HOME is Linux's"
            ),
        ),
    ],
)
def test_an_index_without_the_checksum_is_never_unpickled(tmp_path, where):
    """In a folder of this user's own (the package's ``__pycache__``,
    ``NUMBA_CACHE_DIR``, Numba's user-wide cache), an index file skbp did not
    write -- Numba's bare pickle, or one planted -- is a miss: never unpickled,
    then replaced by skbp's own."""
    moddir = _module(tmp_path)
    marker = tmp_path / "planted-code-ran"
    py_file = str(moddir / "tiny_kernels.py")
    env = {}
    if where == "__pycache__":
        folder = moddir / "__pycache__"
    elif where == "NUMBA_CACHE_DIR":
        env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba-cache")
        folder = tmp_path / "numba-cache" / _CacheLocator.get_suitable_cache_subpath(py_file)
    else:
        (moddir / "__pycache__").write_text("not a folder")
        env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
        folder = tmp_path / "xdg" / "numba" / _CacheLocator.get_suitable_cache_subpath(py_file)
    folder.mkdir(parents=True)
    payload = pickle.dumps(_Plant(str(marker)))
    for name in _index_names():
        (folder / name).write_bytes(payload)
    r = _run(moddir, env)
    assert not marker.exists(), "a planted cache file was unpickled"
    assert r["folder"] == str(folder)
    for name in _index_names():
        assert (folder / name).read_bytes().startswith(_cache._INDEX_MAGIC)
    assert "compiling" not in _run(moddir, env)["stderr"]  # skbp's own entries load


@pytest.mark.parametrize("how", [pytest.param("another-user", marks=as_root), "world-writable"])
def test_a_numba_cache_dir_others_can_write_is_refused(tmp_path, how):
    """``NUMBA_CACHE_DIR`` pointing at a folder another user owns or everyone may
    write: refused (a planted index with a valid checksum would otherwise run),
    and the next place, the module's ``__pycache__``, is used."""
    moddir = _module(tmp_path)
    shared = tmp_path / "shared"
    sub = shared / _CacheLocator.get_suitable_cache_subpath(str(moddir / "tiny_kernels.py"))
    marker = tmp_path / "planted-code-ran"
    _plant(sub, marker)
    if how == "another-user":
        _give_away(shared)
        _give_away(sub)
    else:
        shared.chmod(0o777)
        sub.chmod(0o777)
    r = _run(moddir, {"NUMBA_CACHE_DIR": str(shared)})
    assert not marker.exists(), "a planted cache file was unpickled"
    assert r["folder"] == str(moddir / "__pycache__")
    assert f"not using the kernel cache folder {shared}:" in r["stderr"]


def test_folder_problem(tmp_path):
    """The policy, folder by folder."""
    d = tmp_path / "d"
    d.mkdir()
    for mode, strict, holder, ok in [
        (0o700, True, False, True),
        (0o755, True, False, True),
        (0o775, True, False, False),  # the fallback: not even the group
        (0o775, False, False, True),  # elsewhere: a user-private group is common
        (0o777, False, False, False),
        (0o1777, False, True, True),  # a holder like /tmp: others cannot replace what is ours
        (0o1777, False, False, False),  # ... but files could be planted in the folder itself
        (0o777, False, True, False),
    ]:
        d.chmod(mode)
        assert (_cache.folder_problem(str(d), strict, holder) is None) == ok, (oct(mode), strict)
    d.chmod(0o700)
    link = tmp_path / "link"
    link.symlink_to(d)
    assert "link" in _cache.folder_problem(str(link), strict=True)
    assert _cache.folder_problem(str(link)) is None  # NUMBA_CACHE_DIR may be a link
    assert "cannot be checked" in _cache.folder_problem(str(tmp_path / "missing"))
    if os.getuid() == 0:
        _give_away(d)
        assert "another user (uid 12345)" in _cache.folder_problem(str(d))
