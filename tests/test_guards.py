"""Guards against hostile but real use: one fit of an estimator object at a time
(threads, callbacks), networks too large for the memory, and ``NUMBA_DISABLE_JIT=1``.

What could crash or hang the interpreter runs in a subprocess with a timeout,
so that a crash or a hang fails the test instead of the test run.
"""

import copy
import json
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import tracemalloc
import warnings

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

import skbp
from skbp import BPClassifier, BPRegressor, _base, _memory

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(skbp.__file__)))


def _python(code, *args, timeout=300, **env):
    """Run ``code`` in a fresh interpreter with this checkout first on the path."""
    full = dict(os.environ, **env)
    full["PYTHONPATH"] = ROOT + os.pathsep + full.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], env=full, capture_output=True,
        text=True, timeout=timeout,
    )  # fmt: skip


def _data(n=120, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n, 6))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


# ----------------------------------------------------------------------------
# One fit of an estimator object at a time
# ----------------------------------------------------------------------------

# ``Held`` is array-like data whose conversion (validate_data, inside fit or
# predict) waits until the test releases it: the fit that gets in stays in while
# the other threads try theirs, whatever the scheduling.  Without the guard every
# thread gets in, and the fits then run on one object at once.
THREADS = r"""
import json, os, sys, threading, traceback, warnings
import numpy as np
from skbp import BPClassifier, BPRegressor

warnings.simplefilter("ignore")
mode = sys.argv[1]
N_THREADS, ROUNDS = 4, 3
rng = np.random.RandomState(0)
X = rng.standard_normal((400, 8))
y = (X[:, 0] + X[:, 1] > 0).astype(int)


class Held:
    def __init__(self, X):
        self.X, self.entered, self.release = X, threading.Event(), threading.Event()

    def __len__(self):
        return len(self.X)

    def __array__(self, dtype=None, copy=None):
        self.entered.set()
        self.release.wait(timeout=15)
        return self.X if dtype is None else self.X.astype(dtype)


def call(est, data):
    if mode == "partial_fit":
        if isinstance(est, BPClassifier):
            return est.partial_fit(data, y, classes=[0, 1])
        return est.partial_fit(data, y.astype(float))
    return est.fit(data, y if isinstance(est, BPClassifier) else y.astype(float))


def race(est, data, on_error=None):
    # every thread calls at once; returns each thread's outcome
    barrier, outcomes = threading.Barrier(N_THREADS), []

    def worker():
        barrier.wait()
        try:
            call(est, data)
            outcomes.append("ok")
        except RuntimeError as exc:
            outcomes.append(str(exc))
            if on_error is not None:
                on_error()

    threads = [threading.Thread(target=worker) for _ in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


report = {}
if mode in ("fit", "partial_fit"):
    for cls in (BPClassifier, BPRegressor):
        est = cls(hidden_layer_sizes=(64, 32), max_iter=30, random_state=0)
        rounds = []
        for _ in range(ROUNDS):
            held, errors = Held(X), []

            def failed():  # the last of the others has tried: let the one fit go on
                errors.append(1)
                if len(errors) == N_THREADS - 1:
                    held.release.set()

            rounds.append(race(est, held, failed))
            rounds.append(race(est, X))  # plain data, no holding: no crash either
        out = est.predict(X)
        report[cls.__name__] = {"rounds": rounds, "finite": bool(np.isfinite(out).all())}
elif mode == "predict":
    est = BPClassifier(hidden_layer_sizes=(64, 32), max_iter=5, random_state=0).fit(X, y)
    # a prediction from another thread while a fit runs
    held = Held(X)
    fitting = threading.Thread(target=est.fit, args=(held, y))
    fitting.start()
    held.entered.wait(timeout=15)
    try:
        est.predict(X)
        report["during_fit"] = "ok"
    except RuntimeError as exc:
        report["during_fit"] = str(exc)
    held.release.set()
    fitting.join()
    report["after_fit"] = bool(np.isfinite(est.predict_proba(X)).all())
    # a fit while a prediction runs: it waits for the prediction to finish
    in_predict, order = Held(X), []

    class Marker:
        def __len__(self):
            return len(X)

        def __array__(self, dtype=None, copy=None):
            order.append("fit reads X")
            return X if dtype is None else X.astype(dtype)

    predicting = threading.Thread(target=est.predict, args=(in_predict,))
    predicting.start()
    in_predict.entered.wait(timeout=15)
    fitting = threading.Thread(target=est.fit, args=(Marker(), y))
    fitting.start()
    fitting.join(timeout=0.5)  # time for a fit that does not wait to get ahead
    order.append("prediction released")
    in_predict.release.set()
    predicting.join()
    fitting.join()
    report["order"] = order
elif mode == "fork":
    est = BPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0, n_jobs=1).fit(X, y)
    held = Held(X)
    fitting = threading.Thread(target=est.fit, args=(held, y))
    fitting.start()
    held.entered.wait(timeout=15)
    pid = os.fork()
    if pid == 0:  # the fitting thread is not in the child: its object is free there
        try:
            ok = np.isfinite(est.predict_proba(X)).all() and est.fit(X, y) is est
            os._exit(0 if ok else 1)
        except BaseException:
            traceback.print_exc()
            os._exit(2)
    status = os.waitpid(pid, 0)[1]
    held.release.set()
    fitting.join()
    report["child"] = os.waitstatus_to_exitcode(status)
print(json.dumps(report))
"""


def _threads(mode):
    p = _python(THREADS, mode, timeout=240)
    assert p.returncode == 0, f"the process died ({p.returncode}): {p.stderr[-3000:]}"
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode", ["fit", pytest.param("partial_fit", marks=pytest.mark.slow)])
def test_concurrent_fits_of_one_estimator_raise_instead_of_crashing(mode):
    for name, r in _threads(mode).items():
        held, plain = r["rounds"][::2], r["rounds"][1::2]
        for outcomes in held:
            # exactly one fit ran; the others were told why not, at once
            assert outcomes.count("ok") == 1, (name, outcomes)
            errors = [o for o in outcomes if o != "ok"]
            assert all("already being fitted in another thread" in e for e in errors)
            assert all("sklearn.base.clone" in e for e in errors)
        for outcomes in plain:
            assert "ok" in outcomes, (name, outcomes)
            assert all(o == "ok" or "already being fitted" in o for o in outcomes)
        assert r["finite"], name


@pytest.mark.slow
def test_predict_while_another_thread_fits():
    r = _threads("predict")
    # refused while the fit replaces the network, and fine once it has returned
    assert "being fitted in another thread" in r["during_fit"]
    assert "copy.deepcopy" in r["during_fit"]
    assert r["after_fit"]
    # a fit that starts during a prediction waits for it before touching the network
    assert r["order"] == ["prediction released", "fit reads X"]


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_can_fit_what_another_thread_was_fitting():
    assert _threads("fork")["child"] == 0


class FitsAgain:
    """At the end of the first epoch: fit the estimator again (re-entrantly), predict
    with it, and copy, clone and pickle it mid-fit."""

    def __init__(self, X, y):
        self.X, self.y, self.seen = X, y, {}

    def setup(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context, **kwargs):
        pass

    def on_fit_task_end(self, estimator, context, **kwargs):
        if context.parent is None or self.seen:
            return False
        try:
            estimator.fit(self.X, self.y)
            self.seen["refit"] = "ok"
        except RuntimeError as exc:
            self.seen["refit"] = str(exc)
        self.seen["predict"] = estimator.predict_proba(self.X)
        self.seen["pickled"] = pickle.loads(pickle.dumps(estimator)).predict_proba(self.X)
        self.seen["deepcopy"] = copy.deepcopy(estimator).predict_proba(self.X)
        self.seen["clone"] = clone(estimator).get_params()
        return False


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_fit_from_a_callback_of_its_own_fit_raises_instead_of_deadlocking(solver):
    pytest.importorskip("sklearn.callback")
    X, y = _data()
    clf = BPClassifier((8,), solver=solver, max_iter=5, random_state=0)
    cb = FitsAgain(X, y)
    clf.set_callbacks(cb).fit(X, y)
    assert "from inside its own fit" in cb.seen["refit"]
    # the fit's own thread may predict, pickle, copy and clone it between epochs
    np.testing.assert_array_equal(cb.seen["pickled"], cb.seen["predict"])
    np.testing.assert_array_equal(cb.seen["deepcopy"], cb.seen["predict"])
    assert cb.seen["clone"] == clf.get_params()
    assert np.isfinite(clf.predict_proba(X)).all()
    clf.set_callbacks()
    clf.fit(X, y)  # released: the next fit runs


class Interrupting:
    """Array-like data whose conversion (inside fit) raises ``exc``."""

    def __init__(self, exc):
        self.exc = exc

    def __len__(self):
        return 120

    def __array__(self, dtype=None, copy=None):
        raise self.exc


@pytest.mark.parametrize("exc", [KeyboardInterrupt, MemoryError, ValueError("bad")])
def test_the_guard_is_released_however_a_fit_ends(exc):
    X, y = _data()
    clf = BPClassifier((8,), max_iter=5, random_state=0)
    with pytest.raises(type(exc) if not isinstance(exc, type) else exc):
        clf.fit(Interrupting(exc), y)
    with pytest.raises(type(exc) if not isinstance(exc, type) else exc):
        clf.partial_fit(Interrupting(exc), y, classes=[0, 1])
    assert clf.fit(X, y).predict(X).shape == (120,)
    assert clf.partial_fit(X, y).predict(X).shape == (120,)
    assert id(clf) not in _base._fitting and id(clf) not in _base._predicting


def test_the_guard_leaves_no_trace_on_the_estimator():
    X, y = _data()
    clf = BPClassifier((8,), max_iter=5, random_state=0).fit(X, y)
    lock_types = (type(threading.Lock()), type(threading.RLock()), threading.Condition)
    assert not any(isinstance(v, lock_types) for v in vars(clf).values())
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict(X), clf.predict(X))


def test_different_estimators_still_fit_in_parallel_threads():
    X, y = _data(200)
    clfs = [
        BPClassifier((16,), learning_rate_init=0.01, max_iter=30, random_state=i) for i in range(4)
    ]
    errors = []

    def fit(clf):
        try:
            clf.fit(X, y)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fit, args=(c,)) for c in clfs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(c.score(X, y) > 0.8 for c in clfs)
    # a grid search on the threading backend: a clone per fit
    with joblib.parallel_backend("threading", n_jobs=2):
        grid = GridSearchCV(BPClassifier(learning_rate_init=0.01, max_iter=30, random_state=0),
                            {"hidden_layer_sizes": [(8,), (16,)]}, cv=2).fit(X, y)  # fmt: skip
    assert grid.best_score_ > 0.8


# ----------------------------------------------------------------------------
# A network too large for the memory
# ----------------------------------------------------------------------------


def _small_memory(monkeypatch, n_bytes):
    monkeypatch.setattr(_memory, "available_memory", lambda: n_bytes)


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_a_network_too_large_for_the_memory_is_refused_before_allocating(monkeypatch, solver):
    X, y = _data(10)
    _small_memory(monkeypatch, 64 << 20)
    clf = BPClassifier((2000, 2000), solver=solver, max_iter=1, random_state=0)
    tracemalloc.start()
    try:
        with pytest.raises(MemoryError) as info:
            clf.fit(X[:, :5], y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the weights alone would be 32 MB: none of the network was allocated
    assert peak < 8 << 20
    msg = str(info.value)
    assert "4,016,001 parameters" in msg
    assert "[5, 2000, 2000, 1]" in msg and "hidden_layer_sizes=(2000, 2000)" in msg
    assert "GiB" in msg and "smaller hidden_layer_sizes" in msg
    assert not hasattr(clf, "coefs_")


@pytest.mark.slow
def test_a_huge_network_is_refused_under_an_address_space_limit():
    # ``ulimit -v`` a little above what the process has: the check reads the limit,
    # and refuses (20000, 20000) before NumPy even tries its 3 GB of initial weights
    p = _python(
        """
        import resource
        import numpy as np
        from skbp import BPClassifier

        X = np.random.RandomState(0).standard_normal((10, 5))
        y = np.arange(10) % 2
        with open("/proc/self/status") as f:
            vm = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + (2 << 30), resource.RLIM_INFINITY))
        try:
            BPClassifier(hidden_layer_sizes=(20000, 20000)).fit(X, y)
        except MemoryError as exc:
            print(exc)
        """,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "400,160,001 parameters" in p.stdout
    assert "hidden_layer_sizes=(20000, 20000)" in p.stdout


@pytest.mark.slow
def test_partial_fit_and_warm_start_are_checked_too(monkeypatch):
    X, y = _data()
    _small_memory(monkeypatch, 64 << 20)
    with pytest.raises(MemoryError, match="parameters"):
        BPClassifier((2000, 2000)).partial_fit(X, y, classes=[0, 1])
    with pytest.raises(MemoryError, match="parameters"):
        BPRegressor(hidden_layer_sizes=(2000, 2000)).partial_fit(X, y.astype(float))
    # continuing a fitted network allocates its gradient, copies and work buffers anew
    _small_memory(monkeypatch, None)  # unknown: no check
    clf = BPClassifier((2000, 2000), max_iter=1, random_state=0, warm_start=True).fit(X, y)
    before = clf.predict_proba(X)
    _small_memory(monkeypatch, 64 << 20)
    with pytest.raises(MemoryError, match="parameters"):
        clf.fit(X, y)
    with pytest.raises(MemoryError, match="parameters"):
        clf.partial_fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), before)  # left as it was
    _small_memory(monkeypatch, 1 << 30)
    clf.fit(X, y)


@pytest.mark.parametrize(
    "options",
    [
        {"solver": "adam"},
        {"solver": "sgd"},
        {"solver": "lbfgs"},
        {"solver": "adam", "early_stopping": True},
        {"solver": "sgd", "batch_norm": True, "dropout": 0.2, "residual": True},
        {"solver": "lbfgs", "batch_norm": True},
        {"solver": "adam", "batch_size": 500},
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_estimate_never_exceeds_what_a_fit_allocates(options, dtype):
    # so a fit that fits in memory is never refused
    rng = np.random.RandomState(0)
    X = rng.standard_normal((500, 30)).astype(dtype)
    y = (X[:, 0] > 0).astype(int)
    clf = BPClassifier((300, 300), max_iter=2, random_state=0, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X[:50], y[:50])  # kernels compiled (or loaded) outside the measurement
        clf = clone(clf)
        tracemalloc.start()
        try:
            clf.fit(X, y)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    opts = {k: v for k, v in options.items() if k != "dropout"}
    need = _memory.fit_bytes([30, 300, 300, 1], dtype, 500, dropout="dropout" in options, **opts)
    assert 0.5 * peak < need <= peak


def test_small_fits_are_not_checked(monkeypatch):
    X, y = _data()

    def unreadable():
        raise AssertionError("read the available memory for a small fit")

    monkeypatch.setattr(_memory, "available_memory", unreadable)
    BPClassifier(max_iter=3, random_state=0).fit(X, y).predict(X)


def test_available_memory_is_read():
    avail = _memory.available_memory()
    if sys.platform.startswith("linux"):
        assert isinstance(avail, int) and avail > 0


# ----------------------------------------------------------------------------
# NUMBA_DISABLE_JIT=1
# ----------------------------------------------------------------------------

# small fits that reach every kernel family: products large enough for skbp's
# tiles and BLAS, batch norm, dropout, residual skips, L-BFGS, sparse float32 input
NO_JIT_FITS = r"""
import json, warnings
import numpy as np
import scipy.sparse as sp
from skbp import BPClassifier, BPRegressor

rng = np.random.RandomState(0)
X = rng.standard_normal((120, 12))
y = (X[:, 0] + X[:, 1] > 0).astype(int)
y3 = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
CASES = {
    "adam": (BPClassifier, dict(hidden_layer_sizes=(40, 24), max_iter=5), X, y),
    "sgd, batch norm, dropout, residual": (BPClassifier, dict(
        hidden_layer_sizes=(32, 32), solver="sgd", batch_norm=True, dropout=0.2,
        residual=True, max_iter=4), X, y3),
    "lbfgs": (BPRegressor, dict(hidden_layer_sizes=(20,), solver="lbfgs", max_iter=20),
              X, 2 * X[:, 0]),
    "sparse float32, early stopping": (BPClassifier, dict(
        hidden_layer_sizes=(16,), max_iter=3, early_stopping=True),
        sp.csr_matrix(X.astype(np.float32)), y),
}


def outputs():
    out = {}
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for name, (cls, kw, XX, yy) in CASES.items():
            est = cls(random_state=0, **kw).fit(XX, yy)
            out[name] = (est.predict_proba(XX) if hasattr(est, "predict_proba")
                         else est.predict(XX)).tolist()
    warned = sorted({f"{w.category.__name__}: {w.message}" for w in seen
                     if w.category.__name__ != "ConvergenceWarning"})
    return out, warned


if __name__ == "__main__":
    print(json.dumps(outputs()))
"""


@pytest.mark.slow
def test_numba_disable_jit_fits_and_predicts_as_compiled():
    p = _python(NO_JIT_FITS, NUMBA_DISABLE_JIT="1")
    assert p.returncode == 0, p.stderr[-3000:]
    python_out, warned = json.loads(p.stdout.strip().splitlines()[-1])
    assert warned == []  # e.g. no overflow warnings from the generator's wrapping arithmetic
    namespace = {"__name__": "no_jit_fits"}
    exec(NO_JIT_FITS, namespace)
    compiled_out, _ = namespace["outputs"]()
    assert python_out.keys() == compiled_out.keys()
    for name, out in compiled_out.items():
        rtol = 1e-5 if "float32" in name else 1e-9
        np.testing.assert_allclose(python_out[name], out, rtol=rtol, atol=rtol, err_msg=name)


@pytest.mark.slow
def test_numba_disable_jit_info_and_compile_commands():
    for command, says in (("info", "NUMBA_DISABLE_JIT=1"), ("compile", "nothing to compile")):
        p = _python(f"from skbp.__main__ import main; main([{command!r}])", NUMBA_DISABLE_JIT="1")
        assert p.returncode == 0, p.stderr[-3000:]
        assert says in p.stdout


def test_a_fit_that_would_take_nearly_all_the_memory_is_refused(monkeypatch):
    # its arrays are a lower bound of its peak: one needing 90% of what is
    # available is refused (the rest is for temporaries and the machine), unless
    # the check is turned off
    X, y = _data(10)
    layer_units = [X.shape[1], 2000, 2000, 1]
    need = _memory.fit_bytes(layer_units, np.float64, len(X), solver="adam")
    _small_memory(monkeypatch, int(need / 0.9))
    clf = BPClassifier((2000, 2000), max_iter=1, random_state=0)
    with pytest.raises(MemoryError, match=r"more than 85% of the .* GiB available"):
        clf.fit(X, y)
    _small_memory(monkeypatch, int(need / 0.8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    _small_memory(monkeypatch, int(need / 0.9))
    monkeypatch.setattr(_memory, "ENABLED", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
