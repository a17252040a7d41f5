"""Processes: a ``fork()`` child fits and predicts after its parent has, and the
weights do not depend on the threading layer.

GNU OpenMP does not survive a fork: Numba kills a child that enters a parallel
region after its parent started OpenMP threads (any fit starts them), and a
``multiprocessing.Pool`` then waits for ever.  Such a child runs skbp serially,
and a serial run gives the same bits as a parallel one.  Each check runs in a
subprocess with a time limit, so that a killed child or a hang fails the test.
"""

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning

import skbp
from skbp import BPClassifier
from skbp import _matmul as mm
from skbp import _update as upd

# wide enough that its products are split into blocks and its update sweep runs
# in blocks under prange where a parallel region may run
WIDE = (300, 300)
N_FEATURES = 40


def _data():
    return make_classification(600, N_FEATURES, n_informative=20, n_classes=3, random_state=0)


def _weights(clf):
    return np.concatenate([c.ravel() for c in clf.coefs_] + [b.ravel() for b in clf.intercepts_])


def test_the_wide_network_has_parallel_work():
    """The network of these tests reaches both kinds of parallel region."""
    assert N_FEATURES * WIDE[0] + WIDE[0] * WIDE[1] >= upd.PAR_MIN_PARAMS
    tune = mm.tune_array()
    assert mm.n_blocks.py_func(200, WIDE[0], WIDE[1], tune) > 1


def _run(script, tmp_path, env=None, timeout=300):
    env = {**os.environ, **(env or {})}
    root = os.path.dirname(os.path.dirname(skbp.__file__))  # this checkout's skbp
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(script))
    return subprocess.run(
        [sys.executable, "-W", "ignore", str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=tmp_path,
    )


_FIT = f"""
    import numpy as np
    from sklearn.datasets import make_classification
    from skbp import BPClassifier

    X, y = make_classification(600, {N_FEATURES}, n_informative=20, n_classes=3, random_state=0)

    def wide_fit(_=None):
        clf = BPClassifier(hidden_layer_sizes={WIDE}, max_iter=2, random_state=0).fit(X, y)
        w = np.concatenate([c.ravel() for c in clf.coefs_] + [b.ravel() for b in clf.intercepts_])
        return w, clf.predict_proba(X)
"""


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_fork_children_fit_and_predict_after_the_parent_has(tmp_path):
    """os.fork, a fork Pool and a fork ProcessPoolExecutor: each child fits the
    wide network after a fit in the parent, with the parent's very weights."""
    script = (
        _FIT
        + """
    import multiprocessing as mp
    import os
    from concurrent.futures import ProcessPoolExecutor

    BPClassifier(max_iter=2, random_state=0).fit(X[:50], y[:50])  # starts the threads
    ref_w, ref_p = wide_fit()
    np.save("ref.npy", ref_w)

    def same(out):
        return np.array_equal(out[0], ref_w) and np.array_equal(out[1], ref_p)

    pid = os.fork()
    if pid == 0:
        os._exit(0 if same(wide_fit()) else 3)
    _, status = os.waitpid(pid, 0)
    print("os.fork", os.waitstatus_to_exitcode(status))
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        print("Pool", all(map(same, pool.map(wide_fit, range(2)))))
    with ProcessPoolExecutor(2, mp_context=ctx) as ex:
        print("ProcessPoolExecutor", all(map(same, ex.map(wide_fit, range(2)))))
    """
    )
    proc = _run(script, tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fork() called from a process already using GNU OpenMP" not in proc.stderr
    assert proc.stdout.split("\n")[:3] == ["os.fork 0", "Pool True", "ProcessPoolExecutor True"]
    # and the parent's weights are those of a fit in this process
    X, y = _data()
    clf = BPClassifier(hidden_layer_sizes=WIDE, max_iter=2, random_state=0)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    np.testing.assert_array_equal(np.load(tmp_path / "ref.npy"), _weights(clf))


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_fork_child_starts_afresh_while_a_parent_thread_fits(tmp_path):
    """A fork taken while another thread of the parent is inside a fit (holding
    skbp's thread bookkeeping) leaves the child free to fit."""
    script = (
        _FIT
        + """
    import os
    import threading
    import time

    stop = threading.Event()

    def keep_fitting():
        while not stop.is_set():
            BPClassifier(hidden_layer_sizes=(64,), max_iter=5, random_state=0).fit(X, y)

    ref_w, _ = wide_fit()
    t = threading.Thread(target=keep_fitting)
    t.start()
    time.sleep(0.5)
    codes = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            os._exit(0 if np.array_equal(wide_fit()[0], ref_w) else 3)
        codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        time.sleep(0.05)
    stop.set()
    t.join()
    print(codes)
    """
    )
    proc = _run(script, tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "[0, 0, 0]", proc.stdout + proc.stderr


# Adam in float64; SGD with Nesterov momentum in float32; L-BFGS (its full-batch
# gradient is finished by the same blocks)
_CONFIGS = [
    ({"solver": "adam"}, np.float64),
    ({"solver": "sgd", "momentum": 0.9, "nesterovs_momentum": True}, np.float32),
    ({"solver": "lbfgs", "max_iter": 3}, np.float64),
]


def _config_fit(params, dtype):
    X, y = _data()
    clf = BPClassifier(hidden_layer_sizes=WIDE, **{"max_iter": 2, **params}, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _weights(clf.fit(X.astype(dtype), y))


@pytest.mark.slow
def test_weights_do_not_depend_on_the_threading_layer(tmp_path):
    """On Numba's workqueue layer skbp runs no parallel region, yet a split product's
    blocks and the update sweep's blocks are the same computations: the same bits."""
    script = """
    import numba
    import numpy as np
    from test_processes import _CONFIGS, _config_fit
    from skbp._runtime import parallel_available

    for i, (params, dtype) in enumerate(_CONFIGS):
        np.save(f"w{i}.npy", _config_fit(params, dtype))
    print(numba.threading_layer(), parallel_available())
    """
    env = {"NUMBA_THREADING_LAYER": "workqueue", "PYTHONPATH": os.path.dirname(__file__)}
    proc = _run(script, tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split() == ["workqueue", "False"]
    for i, (params, dtype) in enumerate(_CONFIGS):
        w = _config_fit(params, dtype)
        assert w.dtype == dtype
        np.testing.assert_array_equal(np.load(tmp_path / f"w{i}.npy"), w, err_msg=str(params))
