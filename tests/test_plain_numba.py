"""The plain Numba path (skbp._numba_support): outside the tested Numba range, or
with ``SKBP_PLAIN_NUMBA=1``, every kernel is ``numba.njit(cache=True)`` and
skbp's private-internals modules are never imported; the results are those of
skbp's own path up to rounding.  The path is chosen at import, so these run in
fresh processes, each with a cache folder of its own."""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numpy.testing import assert_allclose

from skbp import _numba_support

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: the modules that use Numba internals: none may be imported on the plain path
PRIVATE = ("skbp._linkonly", "skbp._cache", "skbp._prebuilt", "skbp._intrinsics")


def _run(script, tmp_path, timeout, **env):
    full = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), **env)
    full["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, full.get("PYTHONPATH")) if p)
    p = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=full, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout


def _bounds(name):
    """``(first, last)`` ``(major, minor)`` that pyproject.toml allows of ``name``
    (written ``name>=a.b,<c.d``: the last allowed is ``c.(d - 1)``)."""
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        m = re.search(rf'"{name}>=(\d+)\.(\d+),<(\d+)\.(\d+)"', f.read())
    assert m is not None, f"pyproject.toml has no bounded {name} requirement"
    a, b, c, d = map(int, m.groups())
    return (a, b), (c, d - 1)


def test_tested_range_is_pyprojects():
    assert _bounds("numba") == _numba_support.TESTED_NUMBA
    assert _bounds("llvmlite") == _numba_support.TESTED_LLVMLITE


@pytest.mark.parametrize(
    ("version", "env", "why"),
    [
        ("0.68.1", None, None),
        ("0.59.0", "0", None),
        ("0.68.1", "1", "SKBP_PLAIN_NUMBA=1"),
        ("0.69.0", None, "Numba 0.69.0 outside the tested range 0.59-0.68"),
        ("0.58.1", None, "Numba 0.58.1 outside the tested range 0.59-0.68"),
        ("1.0.0rc1", None, "Numba 1.0.0rc1 outside the tested range 0.59-0.68"),
    ],
)
def test_which_path_serves(monkeypatch, version, env, why):
    monkeypatch.setattr(_numba_support.numba, "__version__", version)
    if env is None:
        monkeypatch.delenv("SKBP_PLAIN_NUMBA", raising=False)
    else:
        monkeypatch.setenv("SKBP_PLAIN_NUMBA", env)
    assert _numba_support.plain_reason() == why


def test_this_process_is_on_skbps_own_path(capsys):
    """(The suite runs on a tested Numba, unless CI forces the plain path.)"""
    from skbp.__main__ import main

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    if _numba_support.PLAIN:
        assert "compile path: plain numba.njit(cache=True): " in out
    else:
        assert "tested range 0.59-0.68, skbp's compile path" in out


def test_an_untested_numba_gets_the_plain_path_and_no_private_module(tmp_path):
    """A Numba outside the tested range: ``info`` says why, and importing every
    kernel module and the Python layer brings in none of the modules that use
    Numba internals."""
    out = _run(
        f"""
        import sys
        import numba
        numba.__version__ = "0.99.0"
        from skbp.__main__ import main
        from skbp._compile import dispatchers
        import skbp._estimators, skbp._training, skbp._predict, skbp.tabular
        main(["info"])
        kernels = dict(dispatchers())
        print(sorted(m for m in {PRIVATE!r} if m in sys.modules))
        print(type(kernels["skbp._kernels.predict"]).__name__)
        """,
        tmp_path,
        timeout=300,
    )
    assert "compile path: plain numba.njit(cache=True): Numba 0.99.0 outside the tested " \
        "range 0.59-0.68" in out  # fmt: skip
    assert "kernel cache: Numba's own" in out
    assert "\n[]\nCPUDispatcher\n" in out


_FITS = """
import json, sys, warnings
import numpy as np
from skbp import BPClassifier, BPRegressor

warnings.simplefilter("ignore")
rng = np.random.RandomState(0)
X = rng.standard_normal((200, 5))
y = (X[:, 0] + X[:, 1] > 0).astype(int)
t = X @ np.arange(1.0, 6.0)
clf = BPClassifier((16,), max_iter=5, random_state=0).fit(X, y)
inc = BPClassifier((8,), random_state=0)
for _ in range(3):
    inc.partial_fit(X, y, classes=[0, 1])
reg = BPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=20, random_state=0).fit(X, t)
f32 = BPClassifier((8,), solver="sgd", max_iter=5, random_state=0).fit(X.astype(np.float32), y)
out = {
    "clf": clf.predict_proba(X).tolist(),
    "clf_w": clf.coefs_[0].tolist(),
    "inc": inc.predict_proba(X).tolist(),
    "reg": reg.predict(X).tolist(),
    "f32": f32.predict_proba(X.astype(np.float32)).tolist(),
}
print(json.dumps(out))
print(sorted(m for m in sys.modules if m in PRIVATE))
"""


@pytest.mark.slow
def test_plain_path_fits_like_skbps_own(tmp_path):
    """fit, partial_fit, L-BFGS and float32 on the plain path (compiled by Numba
    in a child process) against this process: the same models up to rounding;
    then ``compile`` on the plain path loads what the child left in Numba's cache."""
    prelude = f"PRIVATE = {PRIVATE!r}\n"
    out = _run(prelude + _FITS, tmp_path, timeout=1800, SKBP_PLAIN_NUMBA="1")
    plain_json, private = out.strip().splitlines()[-2:]
    assert private == "[]"
    plain = json.loads(plain_json)
    own = {}

    def capture(*args, **kwargs):
        text = args[0]
        if isinstance(text, str) and text.startswith("{"):
            own.update(json.loads(text))

    exec(prelude + _FITS, {"print": capture, "__name__": "own"})
    for key in ("clf", "clf_w", "inc", "reg"):
        assert_allclose(plain[key], own[key], rtol=1e-6, atol=1e-9, err_msg=key)
    assert_allclose(plain["f32"], own["f32"], rtol=1e-4, atol=1e-5)
    assert np.asarray(plain["clf_w"]).shape == (5, 16)

    out = _run(
        """
        from skbp import _compile
        from skbp.__main__ import main

        def small(dtype, parts=None):  # the float32 fit the first process compiled
            import warnings
            import numpy as np
            from skbp import BPClassifier

            warnings.simplefilter("ignore")
            X = np.random.RandomState(0).standard_normal((200, 5)).astype(dtype)
            y = (X[:, 0] + X[:, 1] > 0).astype(int)
            BPClassifier((8,), solver="sgd", max_iter=5, random_state=0).fit(X, y).predict(X)

        _compile._exercise = small
        main(["compile", "--dtype", "float32"])
        """,
        tmp_path,
        timeout=600,
        SKBP_PLAIN_NUMBA="1",
    )
    assert "skbp kernels: plain numba.njit(cache=True): SKBP_PLAIN_NUMBA=1" in out
    m = re.search(r"float32: (\d+) kernels compiled, (\d+) loaded from Numba's cache", out)
    assert m is not None, out
    assert m.group(1) == "0" and int(m.group(2)) > 0, out
