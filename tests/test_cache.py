"""The on-disk kernel cache can't hurt (skbp._cache): damage, read-only folders, races.

Each test compiles two tiny kernels declared with skbp's own decorator
(``skbp._jit.jit``, the one every kernel uses) in a module of a temporary
folder, in fresh processes, so that nothing here depends on -- or disturbs --
the cache of skbp's real kernels, and no test pays a full compile.
"""

import inspect
import json
import os
import shutil
import subprocess
import sys
import textwrap

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


def _run(moddir, env=None, check=True):
    full = dict(os.environ)
    full.pop("NUMBA_CACHE_DIR", None)
    full["PYTHONPATH"] = SKBP_ROOT + os.pathsep + full.get("PYTHONPATH", "")
    full.update(env or {})
    p = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(moddir)], env=full, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
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
        f for f in os.listdir(folder) if f.startswith("tiny_kernels") and f.endswith(suffix)
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
        {"nbc": _truncate},
        {"nbi": _garbage, "nbc": _garbage},
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


@pytest.mark.parametrize("module", ["_optim", "_kernels", "_jit", "_matmul"])
def test_a_change_to_a_kernel_module_invalidates_every_kernel(tmp_path, module):
    """Kernels inline callees from other files: one stamp covers every kernel module."""
    copy = _package_copy(tmp_path)
    with open(copy / f"{module}.py", "a") as f:
        f.write("\n# an upgrade that touches one file\n")
    assert _cache.package_stamp(str(copy)) != _cache.PACKAGE_STAMP


@pytest.mark.parametrize("module", ["_base", "_training", "_estimators", "_callbacks"])
def test_a_change_to_the_python_layer_recompiles_nothing(tmp_path, module):
    copy = _package_copy(tmp_path)
    with open(copy / f"{module}.py", "a") as f:
        f.write("\n# a change to the Python layer\n")
    assert _cache.package_stamp(str(copy)) == _cache.PACKAGE_STAMP


def test_the_stamped_modules_hold_every_kernel_and_what_they_import():
    """Every module with a compiled kernel, and every skbp module such a module imports."""
    import ast
    import importlib

    from skbp._compile import KERNEL_MODULES, dispatchers

    modules = _cache.kernel_modules()
    stamped = set(modules)
    assert {m for m, src in modules.items() if _cache._KERNEL_DECORATOR.search(src)} == set(
        KERNEL_MODULES
    )
    for _, d in dispatchers():
        assert d.py_func.__module__.split(".")[-1] in stamped
    for name in stamped:
        tree = ast.parse(inspect.getsource(importlib.import_module(f"skbp.{name}")))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                imported = [node.module] if node.module else [a.name for a in node.names]
                assert set(imported) <= stamped, (name, imported)


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


def test_compile_command_reports_every_dtype(capsys):
    """`python -m skbp compile` (in-process here: the kernels are shared with the suite)."""
    from skbp.__main__ import main

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


def test_compile_command_in_processes_of_its_own(capsys):
    """`--jobs 2`: the parts of one dtype in two processes filling the suite's
    cache (loading it, when earlier tests filled it), then every kernel reached
    in this process: nothing left to compile."""
    from skbp.__main__ import main

    assert main(["compile", "--dtype", "float32", "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 processes at once" in out
    assert "float32 plain:" in out and "float32 more:" in out
    # this process loads what the workers left (or already holds the kernels)
    assert "float32: 0 kernels compiled," in out
    with pytest.raises(SystemExit):
        main(["compile", "--jobs", "0"])
    assert "--jobs must be at least 1" in capsys.readouterr().err


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
    """Should Numba's caching internals change, a kernel falls back to Numba's own
    cache or to none: decorating never raises."""
    from numba.core.caching import FunctionCache

    from skbp._jit import jit

    def broken(py_func):
        raise AttributeError("a Numba without the internals skbp._cache uses")

    monkeypatch.setattr(_cache, "SafeFunctionCache", broken)

    @jit(entry=True)
    def plus_one(x):
        return x + 1

    assert isinstance(plus_one._cache, FunctionCache)
    assert plus_one(1) == 2


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
