"""Kernels shipped as LLVM IR (skbp._prebuilt): current, used, exact, and never harmful.

The round trip runs on two tiny kernels declared with skbp's own decorator, in
fresh processes and temporary folders (a store of their own, a cache of their
own), so that it neither depends on nor disturbs skbp's real kernels.  One
test compares skbp's real shipped kernels with Numba's compile of the same
sources, bit for bit.
"""

import json
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import TINY_KERNELS

import skbp
from skbp import _cache, _prebuilt

SKBP_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(skbp.__file__)))

# argv: the kernels' folder, the store folder, "capture", "use" or "no-cache"
CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from skbp import _cache, _prebuilt
    _prebuilt.FOLDER = sys.argv[2]
    import tiny_kernels as k

    def run():
        return [float(k.squares(np.arange(5.0)).sum()), k.twice_plus_one(20)]

    if sys.argv[3] == "no-cache":  # as with no writable folder at all
        k.squares._cache.disable()
        k.twice_plus_one._cache.disable()
    if sys.argv[3] == "capture":
        with _prebuilt.capturing() as entries:
            out = run()
        _prebuilt.write_store(_prebuilt.store_path(), _cache.PACKAGE_STAMP, entries)
    else:
        out = run()
    print(json.dumps({"out": out, "stats": _cache.STATS}))
    """
)


def _run(tmp_path, mode, cache, **env):
    full = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / cache), **env)
    full["PYTHONPATH"] = SKBP_ROOT + os.pathsep + full.get("PYTHONPATH", "")
    args = [sys.executable, "-c", CHILD, str(tmp_path / "mod"), str(tmp_path / "store"), mode]
    p = subprocess.run(args, env=full, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["out"] == [30.0, 41], r  # the right answers, whatever the store held
    return r["stats"], p.stderr


@pytest.fixture
def tiny_store(tmp_path):
    (tmp_path / "mod").mkdir()
    (tmp_path / "mod" / "tiny_kernels.py").write_text(TINY_KERNELS)
    (tmp_path / "store").mkdir()
    stats, _ = _run(tmp_path, "capture", "build-cache", SKBP_PREBUILT="0")
    assert stats == {"loaded": 0, "compiled": 2, "prebuilt": 0}
    path = tmp_path / "store" / os.path.basename(_prebuilt.store_path())
    assert path.exists()
    return path


def test_kernels_come_from_the_store_then_from_the_cache(tmp_path, tiny_store):
    stats, err = _run(tmp_path, "use", "cache")
    assert stats == {"loaded": 0, "compiled": 0, "prebuilt": 2}
    assert err.count("skbp: compiling") == 1  # machine code is still made: said once
    # the machine code went into the cache: the next process loads it
    stats, err = _run(tmp_path, "use", "cache")
    assert stats == {"loaded": 2, "compiled": 0, "prebuilt": 0}
    assert "compiling" not in err
    # and with no cache folder at all, every process makes it from the store
    stats, _ = _run(tmp_path, "no-cache", "cache")
    assert stats == {"loaded": 0, "compiled": 0, "prebuilt": 2}


def test_the_store_can_be_switched_off(tmp_path, tiny_store):
    stats, _ = _run(tmp_path, "use", "cache", SKBP_PREBUILT="0")
    assert stats == {"loaded": 0, "compiled": 2, "prebuilt": 0}


def _rewrite(path, change):
    store = _prebuilt.read_store(str(path))
    change(store)
    _prebuilt.write_store(str(path), store["stamp"], store["entries"])


def _damage_the_ir(store):
    for items in store["entries"].values():
        for i, (key, payload) in enumerate(items):
            libdata, *rest = pickle.loads(payload)
            name, kind, bitcode = libdata
            bad = (name, kind, bitcode[: len(bitcode) // 2])
            items[i] = (key, pickle.dumps((bad, *rest)))


@pytest.mark.parametrize(
    "damage",
    [
        "file", pytest.param("truncated file", marks=pytest.mark.slow),
        pytest.param("ir", marks=pytest.mark.slow), "other sources",
    ],
)  # fmt: skip
def test_a_damaged_or_stale_store_means_compiling(tmp_path, tiny_store, damage, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path / "mod"))  # the stored entries name it
    monkeypatch.delitem(sys.modules, "tiny_kernels", raising=False)
    if damage == "file":
        data = bytearray(tiny_store.read_bytes())
        data[-100:] = bytes(100)  # fails the checksum
        tiny_store.write_bytes(bytes(data))
    elif damage == "truncated file":
        tiny_store.write_bytes(tiny_store.read_bytes()[:50])
    elif damage == "ir":  # a valid file whose modules do not parse
        _rewrite(tiny_store, _damage_the_ir)
    else:  # made from other kernel sources
        store = _prebuilt.read_store(str(tiny_store))
        _prebuilt.write_store(str(tiny_store), "0" * 64, store["entries"])
    stats, _ = _run(tmp_path, "use", "cache")
    assert stats == {"loaded": 0, "compiled": 2, "prebuilt": 0}


def test_read_store_refuses_what_fails_its_checksum(tmp_path):
    path = str(tmp_path / "s.pkl.xz")
    _prebuilt.write_store(path, "stamp", {"k": [(b"key", b"payload")]})
    assert _prebuilt.read_store(path) == {
        "format": _prebuilt.FORMAT, "stamp": "stamp", "settings": _prebuilt.settings(),
        "entries": {"k": [(b"key", b"payload")]},
    }  # fmt: skip
    raw = open(path, "rb").read()
    open(path, "wb").write(raw[:-1] + bytes([raw[-1] ^ 1]))
    assert _prebuilt.read_store(path) is None
    assert _prebuilt.read_store(str(tmp_path / "missing")) is None


REMAKE = "python -m skbp._prebuilt --all-pythons"


def test_the_shipped_store_is_current():
    """A store is shipped for each supported Python with this Numba, llvmlite and
    platform, made from these very kernel sources, holding every family in both
    dtypes.  When this fails after a change to a kernel module or an upgrade of
    Numba: ``python -m skbp._prebuilt --all-pythons``."""
    files = sorted(f for f in os.listdir(_prebuilt.FOLDER) if not f.startswith("."))
    rest = _prebuilt.tag().split("-", 1)[1]  # numba, llvmlite, platform
    for version in _prebuilt.PYTHONS:
        name = f"kernels-py{version.replace('.', '')}-{rest}.pkl.xz"
        assert name in files, f"no store {name} for Python {version}: run `{REMAKE}`"
    for name in files:
        assert name.startswith("kernels-") and name.endswith(".pkl.xz"), name
        store = _prebuilt.read_store(os.path.join(_prebuilt.FOLDER, name))
        assert store is not None, f"{name} is damaged: run `{REMAKE}`"
        assert store["format"] == _prebuilt.FORMAT, f"{name} has an old format: run `{REMAKE}`"
        assert store["stamp"] == _cache.PACKAGE_STAMP, (
            f"{name} was made from other kernel sources: run `{REMAKE}`"
        )
        for kernel in ("_epoch.run_epoch", "_kernels.predict", "_kernels.full_loss_grad"):
            sigs = [str(pickle.loads(k)[0]) for k, _ in store["entries"][f"skbp.{kernel}"]]
            for dtype in ("float32", "float64"):
                assert any(f"array({dtype}, 2d, C)" in s for s in sigs), (name, kernel, dtype)


_FIT = r"""
import json, warnings
import numpy as np
from sklearn.datasets import load_digits
from skbp import BPClassifier, _cache

warnings.simplefilter("ignore")
X, y = load_digits(return_X_y=True)
X, y = X[:400] / 16, y[:400]
clf = BPClassifier(random_state=0, max_iter=20).fit(X, y)
arrays = [*clf.coefs_, *clf.intercepts_, clf.predict_proba(X)]
print(json.dumps({"bits": b"".join(a.tobytes() for a in arrays).hex(), "stats": _cache.STATS}))
"""


@pytest.mark.skipif(
    _prebuilt.read_store(_prebuilt.store_path()) is None,
    reason="no store shipped for this Python, Numba and llvmlite",
)
@pytest.mark.slow
def test_shipped_kernels_give_the_bits_of_numbas_compile(tmp_path):
    """A default fit and its probabilities, from the shipped IR and from Numba's
    compile of the same sources (fresh processes, empty caches): the same bits."""
    results = {}
    for mode, switch in (("shipped", "1"), ("compiled", "0")):
        env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / mode), SKBP_PREBUILT=switch)
        p = subprocess.run(
            [sys.executable, "-c", _FIT], env=env, capture_output=True, text=True, timeout=600
        )
        assert p.returncode == 0, p.stderr[-3000:]
        results[mode] = json.loads(p.stdout.strip().splitlines()[-1])
    assert results["shipped"]["stats"] == {"loaded": 0, "compiled": 0, "prebuilt": 2}
    assert results["compiled"]["stats"] == {"loaded": 0, "compiled": 2, "prebuilt": 0}
    assert results["shipped"]["bits"] == results["compiled"]["bits"]
    assert np.isfinite(np.frombuffer(bytes.fromhex(results["shipped"]["bits"]))).all()


def test_info_line(monkeypatch, tmp_path):
    monkeypatch.setenv("SKBP_PREBUILT", "0")
    assert _prebuilt.describe().startswith("switched off")
    assert _prebuilt.lookup("skbp._epoch.run_epoch", (None, None, None)) is None
    monkeypatch.delenv("SKBP_PREBUILT")
    monkeypatch.setattr(_prebuilt, "FOLDER", str(tmp_path))  # no store there
    monkeypatch.setitem(_prebuilt._state, "store", _prebuilt._UNREAD)
    assert _prebuilt.describe().startswith("none for this installation")
    assert _prebuilt.lookup("skbp._epoch.run_epoch", (None, None, None)) is None


@pytest.mark.parametrize("setting", ["BOUNDSCHECK", "OPT", "DEBUGINFO_DEFAULT"])
def test_a_store_made_with_other_numba_settings_is_not_used(monkeypatch, tmp_path, setting):
    """``NUMBA_BOUNDSCHECK=1`` (and the like) changes what lowering makes: the
    shipped IR, made without it, must not stand in for such a compile."""
    monkeypatch.setattr(_prebuilt, "FOLDER", str(tmp_path))
    _prebuilt.write_store(_prebuilt.store_path(), _cache.PACKAGE_STAMP, {})
    monkeypatch.setitem(_prebuilt._state, "store", _prebuilt._UNREAD)
    assert _prebuilt.store() is not None
    monkeypatch.setattr(f"numba.core.config.{setting}", 1)
    monkeypatch.setitem(_prebuilt._state, "store", _prebuilt._UNREAD)
    assert _prebuilt.store() is None


def test_all_pythons_finds_the_newest_release_of_each(tmp_path, monkeypatch):
    """``--all-pythons`` takes pyenv's newest patch release (3.10.13 after 3.10.9,
    not before it as text would sort) and reports a version it cannot find."""
    for release in ("3.10.9", "3.10.13", "3.10.13t", "3.12.1"):
        exe = tmp_path / "versions" / release / "bin" / "python"
        exe.parent.mkdir(parents=True)
        exe.write_text("")
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    found = _prebuilt.find_pythons(("3.10", "3.11", "3.12"))
    assert found == {
        "3.10": str(tmp_path / "versions" / "3.10.13" / "bin" / "python"),
        "3.11": None,
        "3.12": str(tmp_path / "versions" / "3.12.1" / "bin" / "python"),
    }
