"""Guards against hostile but real use: one fit of an estimator object at a time
(threads, callbacks).

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

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

import skbp
from skbp import BPClassifier, _base

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
import json, sys, threading, warnings
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
print(json.dumps(report))
"""


def _threads(mode):
    p = _python(THREADS, mode, timeout=240)
    assert p.returncode == 0, f"the process died ({p.returncode}): {p.stderr[-3000:]}"
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode", ["fit", "partial_fit"])
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


def test_predict_while_another_thread_fits():
    r = _threads("predict")
    # refused while the fit replaces the network, and fine once it has returned
    assert "being fitted in another thread" in r["during_fit"]
    assert "copy.deepcopy" in r["during_fit"]
    assert r["after_fit"]
    # a fit that starts during a prediction waits for it before touching the network
    assert r["order"] == ["prediction released", "fit reads X"]


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
