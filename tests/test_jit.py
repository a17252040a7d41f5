"""Compile-time hygiene: a kernel has one compiled version per dtype (and batch norm on/off)."""

import json
import os
import subprocess
import sys

import pytest

from skbp import _epoch, _kernels
from skbp._compile import dispatchers as _dispatchers

# Run cold, in a fresh process: kernels loaded from the on-disk cache bring their
# callees inside their own machine code, so a callee's dispatcher only counts its
# versions when it is really compiled.
_COUNT_VERSIONS = r"""
import json, warnings
import numpy as np
import scipy.sparse as sp
from sklearn.datasets import make_classification
from skbp import BPClassifier, BPRegressor, _compile

X, y = make_classification(n_samples=60, n_features=5, n_classes=3, n_informative=3,
                           random_state=0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for dtype in (np.float32, np.float64):
        Xd = X.astype(dtype)
        for Xin in (Xd, sp.csr_matrix(Xd)):
            for solver in ("sgd", "adam", "lbfgs"):
                for activation in ("identity", "logistic", "tanh", "relu"):
                    clf = BPClassifier((4, 3), activation=activation, solver=solver,
                                       max_iter=2, random_state=0)
                    clf.fit(Xin, y).predict_proba(Xin)
                    clf.set_params(early_stopping=solver != "lbfgs", shuffle=False)
                    clf.fit(Xin, y)
            for loss in ("squared_error", "poisson"):
                BPRegressor(hidden_layer_sizes=(3,), loss=loss, max_iter=2).fit(
                    Xin, np.abs(X[:, :2])).predict(Xin)
        # every family, the parallel twins included (python -m skbp compile's exercise)
        _compile._exercise(dtype)
print(json.dumps({name: [[str(t) for t in sig] for sig in d.signatures]
                  for name, d in _compile.dispatchers()}))
"""


@pytest.mark.slow
def test_options_do_not_multiply_compiled_versions(tmp_path):
    # compiled by Numba, not made from the IR shipped with skbp (skbp._prebuilt),
    # which would compile no internal kernel at all
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), SKBP_PREBUILT="0")
    out = subprocess.run(
        [sys.executable, "-c", _COUNT_VERSIONS], env=env, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    versions = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(versions) == {name for name, _ in _dispatchers()}
    # the fallback that starts the threading layer on a Numba without _launch_threads
    del versions["skbp._threads._probe"]

    # every kernel compiled by the fits above, once per dtype -- and, for the kernels
    # that take batch norm's running statistics, once with them and once with None
    # (a network without batch norm compiles none of batch norm's code)
    def kind(sig):
        return tuple(
            "array(float64, 1d, C)" if t == "none" else t.replace("float32", "float64") for t in sig
        )

    bad = {
        name: sigs
        for name, sigs in versions.items()
        if not 1 <= len(sigs) <= 4 or len({kind(sig) for sig in sigs}) != 1
    }
    assert bad == {}


class _PredictSpy:
    """Stands in for the prediction kernel: records what is compiled and called."""

    def __init__(self, real, delay=0.0):
        self.real, self.delay = real, delay
        self.overloads, self.asked, self.called = {}, [], []

    def compile(self, sig):
        import time

        time.sleep(self.delay)
        self.asked.append(sig)

    def __call__(self, *args):
        from numba.core.typing.typeof import Purpose, typeof

        self.called.append(tuple(typeof(a, Purpose.argument) for a in args))
        return self.real(*args)


def test_a_fit_compiles_the_prediction_kernel_beside_it(monkeypatch):
    """Once a fit's kernel runs, a thread compiles the prediction kernel for exactly
    the signature the first ``predict`` will call (so a cold first ``predict``
    finds it ready): dense, float32, CSR, batch norm, L-BFGS, regression."""
    import numpy as np
    import scipy.sparse as sp
    from sklearn.datasets import load_digits

    from skbp import BPClassifier, BPRegressor, _predict

    X, y = load_digits(return_X_y=True)
    X, y = X[:200] / 16, y[:200]
    cases = [
        (BPClassifier(), X), (BPClassifier(), X.astype(np.float32)),
        (BPClassifier(), sp.csr_matrix(X)), (BPClassifier(solver="lbfgs"), X),
        (BPClassifier((8, 8), batch_norm=True, dropout=0.2, residual=True), X),
        (BPRegressor(), X[:, :5]),
    ]  # fmt: skip
    for est, Xin in cases:
        spy = _PredictSpy(_kernels.predict)
        monkeypatch.setattr(_predict, "predict", spy)
        monkeypatch.setattr(_predict, "_ahead_threads", {})
        target = y if isinstance(est, BPClassifier) else X[:, 0]
        est.set_params(max_iter=2, n_jobs=1, random_state=0).fit(Xin, target)
        _predict._join_ahead()
        assert len(spy.asked) == 1 and not spy.called, est
        est.predict(Xin)
        est.predict(Xin[:1])
        assert set(spy.called) == set(spy.asked), (est, spy.called, spy.asked)
        # compiled already: nothing more to do
        spy.overloads[spy.asked[0]] = object()
        monkeypatch.setattr(_predict, "_ahead_threads", {})
        est.fit(Xin, target)
        assert len(spy.asked) == 1


_FIRST_COMPILE = r"""
import pickle, sys, warnings
import numpy as np
from sklearn.datasets import load_digits
from skbp import BPClassifier

warnings.simplefilter("ignore")
X, y = load_digits(return_X_y=True)
X = X[:600] / 16
if sys.argv[1] == "predict-first":  # a fitted model's prediction compiles first
    model = pickle.load(open(sys.argv[2], "rb")).set_params(n_jobs=2)
    model.predict_proba(np.vstack([X] * 3))
a = BPClassifier((16,), solver="lbfgs", max_iter=10, activation="logistic",
                 random_state=0).fit(X, y[:600])
print(repr(np.concatenate([c.ravel() for c in a.coefs_]).tobytes().hex()))
"""


@pytest.mark.slow
def test_weights_do_not_depend_on_which_kernel_a_process_compiled_first(tmp_path):
    """An internal kernel (the forward pass, ...) is compiled once per process, in
    the context of the first entry kernel that needs it, and the cache keeps it.
    With a prediction kernel compiled first (in threads), the L-BFGS fit that
    follows must give the weights of a process that fitted first (a prediction
    kernel that compiles the forward pass differently, e.g. a parallel one,
    would make them differ)."""
    import pickle

    import numpy as np

    from skbp import BPClassifier

    rng = np.random.default_rng(0)
    model = BPClassifier((8,), max_iter=2, random_state=0).fit(
        rng.standard_normal((50, 64)), rng.integers(0, 10, 50)
    )
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    weights = []
    for mode in ("fit-first", "predict-first"):
        env = dict(
            os.environ, NUMBA_CACHE_DIR=str(tmp_path / mode), SKBP_ADAPTIVE_THREADS="0",
            SKBP_PREBUILT="0",  # Numba's compile, not the shipped IR (skbp._prebuilt)
        )  # fmt: skip
        out = subprocess.run(
            [sys.executable, "-c", _FIRST_COMPILE, mode, str(path)], env=env,
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        weights.append(out.stdout.strip().splitlines()[-1])
    assert weights[0] == weights[1]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_fork_waits_for_the_prediction_kernel_compiling_beside_a_fit(monkeypatch):
    """Numba's compiler lock held by that thread at a fork would stay held in the
    child for ever: the fork waits for the compile to finish."""
    import numpy as np

    from skbp import BPClassifier, _predict

    spy = _PredictSpy(_kernels.predict, delay=0.5)
    monkeypatch.setattr(_predict, "predict", spy)
    monkeypatch.setattr(_predict, "_ahead_threads", {})
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((50, 4)), rng.integers(0, 2, 50)
    BPClassifier((4,), max_iter=1, n_jobs=1).fit(X, y)
    assert not spy.asked  # still compiling ...
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    assert len(spy.asked) == 1  # ... and done before the fork


@pytest.mark.parametrize("name", ["run_epoch", "full_loss_grad", "predict"])
def test_kernels_release_the_gil(name):
    module = _epoch if name == "run_epoch" else _kernels
    assert getattr(module, name).targetoptions["nogil"] is True


def test_only_entry_kernels_get_a_python_wrapper():
    """The kernels the Python layer calls have a CPython wrapper; the others are
    compiled without one (compile time), yet still run when called from Python."""
    entries = {
        "skbp._epoch.run_epoch", "skbp._kernels.full_loss_grad", "skbp._kernels.predict",
        "skbp._threads._probe",
    }  # fmt: skip
    from skbp._cache import SafeFunctionCache
    from skbp._linkonly import EntryCompiler, LinkOnlyCompiler

    assert LinkOnlyCompiler is not None  # this Numba has what skbp._linkonly needs
    for name, d in _dispatchers():
        entry = name in entries
        assert d.targetoptions.get("no_cpython_wrapper", False) is not entry, name
        assert d.targetoptions["no_cfunc_wrapper"] is True, name
        # one set of options for every kernel: an internal kernel is compiled once,
        # in the context of the first entry kernel that needs it, and an entry
        # kernel with other options (the parallel, reference-counting
        # predict_chunks of old) gave it other code -- and later fits other bits
        assert d.targetoptions["_nrt"] is False, name
        # entries are cached on disk; internal kernels live inside their machine code
        assert isinstance(d._cache, SafeFunctionCache) is entry, name
        assert d._compiler.pipeline_class is (EntryCompiler if entry else LinkOnlyCompiler), name
    import numpy as np

    from skbp._matmul import _small_matmul

    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((3, 9)), rng.standard_normal((9, 4))
    C = np.empty((3, 4))
    no = False
    _small_matmul(X, no, Y, no, C, no)  # through the twin with a wrapper
    np.testing.assert_allclose(C, X @ Y, rtol=1e-12)


_DYNAMIC_KERNELS = """
from skbp._jit import jit

# run-time exception arguments need Numba's runtime (NRT), which skbp's kernels
# go without (they raise constant messages only)
@jit(_nrt=True)
def _checked(n):
    if n < 0:
        raise ValueError("bad value", n)  # run-time arguments: needs the environment
    return 2 * n

@jit(entry=True, _nrt=True)
def double(n):
    return _checked(n)
"""

_DYNAMIC_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from skbp import _cache
import dyn_kernels as k

try:
    k.double(-3)
except ValueError as e:
    print(repr(e.args), k.double(4), _cache.STATS)
"""


def _cold_then_warm(tmp_path, module, kernels, child):
    """Write ``kernels`` as ``module``, run ``child`` in two fresh processes on one
    empty cache (compiled, then loaded); the last line each printed."""
    (tmp_path / f"{module}.py").write_text(kernels)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    return [
        subprocess.run(
            [sys.executable, "-c", child, str(tmp_path)], env=env, capture_output=True,
            text=True, check=True,
        ).stdout.strip().splitlines()[-1]
        for _ in range(2)  # cold, then warm
    ]  # fmt: skip


def test_internal_kernels_raise_with_run_time_arguments(tmp_path):
    """An internal kernel (compiled for linking only) that raises with run-time
    arguments gives the real exception, compiled fresh and loaded from the cache."""
    outs = _cold_then_warm(tmp_path, "dyn_kernels", _DYNAMIC_KERNELS, _DYNAMIC_CHILD)
    assert outs == [
        "('bad value', -3) 8 {'loaded': 0, 'compiled': 1, 'prebuilt': 0}",
        "('bad value', -3) 8 {'loaded': 1, 'compiled': 0, 'prebuilt': 0}",
    ]


_PARALLEL_KERNELS = """
import numpy as np
from numba import prange
from skbp._jit import jit

@jit(parallel=True)
def _scaled(x, out):
    for i in prange(x.shape[0]):
        out[i] = 2.0 * x[i] + i

@jit(entry=True, _nrt=True)  # it allocates: needs NRT
def scaled(x):
    out = np.empty_like(x)
    _scaled(x, out)
    return out
"""

_PARALLEL_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from numba.core import codegen

made = []  # the code libraries turned into machine code
_specific = codegen.JITCodeLibrary._finalize_specific

def _record(self):
    made.append(self.name)
    _specific(self)

codegen.JITCodeLibrary._finalize_specific = _record
import par_kernels as k

x = np.arange(1000.0)
print(bool(np.array_equal(k.scaled(x), 2.0 * x + np.arange(1000))),
      sorted({str(n) for n in made if "gufunc" in str(n) or n == "_scaled"}))
"""


def test_a_parallel_loop_is_compiled_once_inside_its_entry_kernel(tmp_path):
    """Lowering a ``prange`` loop compiles its body and two wrappers as code
    libraries of their own; inside skbp's kernels they are link-only: only the
    entry kernel that contains them becomes machine code (compile time).  The
    loop gives the right numbers compiled fresh and loaded from the cache."""
    outs = _cold_then_warm(tmp_path, "par_kernels", _PARALLEL_KERNELS, _PARALLEL_CHILD)
    assert outs == ["True []", "True []"]
