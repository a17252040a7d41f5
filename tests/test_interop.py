"""skbp with scikit-learn's neighbours: skops persistence and Dask's joblib backend.

(ONNX export has a file of its own, ``test_onnx.py``.)
"""

import logging
import pickle
import warnings

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbp import BPClassifier, BPRegressor
from skbp._layout import Layout
from skbp._optim import OptimizerState

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

X_IRIS, Y_IRIS = load_iris(return_X_y=True)

MODELS = {
    "adam": (BPClassifier, dict()),
    "lbfgs": (BPClassifier, dict(solver="lbfgs")),
    "toolkit": (
        BPClassifier,
        dict(
            hidden_layer_sizes=(8, 8, 8),
            batch_norm=True,
            residual=True,
            dropout=0.1,
            activation=["tanh", "elu", "leaky_relu"],
            solver="sgd",
        ),
    ),  # fmt: skip
    "early_stopping": (BPClassifier, dict(early_stopping=True)),
    "regressor": (BPRegressor, dict(hidden_layer_sizes=(6,))),
}


def fitted(name):
    cls, kw = MODELS[name]
    return cls(max_iter=20, random_state=0, **kw).fit(X_IRIS, Y_IRIS)


# --------------------------------------------------------------------- state
@pytest.mark.parametrize("name", list(MODELS))
def test_pickled_state_is_plain(name):
    # only builtins, arrays and scikit-learn/NumPy objects: nothing of skbp's own
    est = fitted(name)
    state = est.__getstate__()
    own = [k for k, v in state.items() if type(v).__module__.startswith("skbp")]
    assert own == []
    assert isinstance(state["_layout"], dict)
    assert ("_optimizer" in state) == (est.solver != "lbfgs")


def test_old_pickles_with_skbp_objects_still_load():
    # pickles written before the state was made plain held Layout/OptimizerState
    est = fitted("toolkit")
    state = est.__getstate__()
    state["_layout"] = Layout.from_state(state["_layout"])
    state["_optimizer"] = OptimizerState.from_state(state["_optimizer"])
    old = BPClassifier.__new__(BPClassifier)
    old.__setstate__(state)
    np.testing.assert_array_equal(old.predict_proba(X_IRIS), est.predict_proba(X_IRIS))
    old.partial_fit(X_IRIS, Y_IRIS)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda st: st["_layout"].update(layer_units=[4, -1, 3]), "not a skbp network layout"),
        (lambda st: st["_layout"].update(activation_codes=[99, 0]), "not a skbp network layout"),
        (lambda st: st["_layout"].pop("residual"), "not a skbp network layout"),
        (
            lambda st: st["_layout"].update(
                layer_units=[4, 6, 6, 3], activation_codes=[3, 3, 0], residual=[0, 0, 0]
            ),
            "inconsistent",
        ),
        (lambda st: st["_optimizer"].update(code=7), "not a skbp optimizer state"),
        (lambda st: st["_optimizer"].update(m=np.zeros(3)), "optimizer's state does not match"),
    ],
    ids=["negative_width", "activation_code", "missing_key", "wrong_depth", "solver", "m"],
)
def test_damaged_plain_state_is_refused(edit, match):
    est = fitted("adam")
    state = est.__getstate__()
    state["_layout"] = dict(state["_layout"])
    state["_optimizer"] = dict(state["_optimizer"])
    edit(state)
    with pytest.raises(ValueError, match=match):
        BPClassifier.__new__(BPClassifier).__setstate__(state)


# --------------------------------------------------------------------- skops
@pytest.mark.parametrize("name", list(MODELS))
def test_skops_round_trip_trusts_only_the_estimator(name):
    sio = pytest.importorskip("skops.io")
    est = fitted(name)
    blob = sio.dumps(est)
    cls_name = f"skbp._estimators.{type(est).__name__}"
    assert sio.get_untrusted_types(data=blob) == [cls_name]
    loaded = sio.loads(blob, trusted=[cls_name])
    out = "predict_proba" if isinstance(est, BPClassifier) else "predict"
    np.testing.assert_array_equal(getattr(loaded, out)(X_IRIS), getattr(est, out)(X_IRIS))
    if (
        est.solver != "lbfgs" and not est.early_stopping
    ):  # the optimizer state came along: training goes on alike
        est.partial_fit(X_IRIS, Y_IRIS)
        loaded.partial_fit(X_IRIS, Y_IRIS)
        np.testing.assert_array_equal(loaded.coefs_[0], est.coefs_[0])


def test_skops_pipeline():
    sio = pytest.importorskip("skops.io")
    pipe = make_pipeline(StandardScaler(), BPClassifier(max_iter=20, random_state=0))
    pipe.fit(X_IRIS, Y_IRIS)
    blob = sio.dumps(pipe)
    assert sio.get_untrusted_types(data=blob) == ["skbp._estimators.BPClassifier"]
    loaded = sio.loads(blob, trusted=["skbp._estimators.BPClassifier"])
    np.testing.assert_array_equal(loaded.predict_proba(X_IRIS), pipe.predict_proba(X_IRIS))


def test_pickle_still_round_trips_the_plain_state():
    est = fitted("toolkit")
    again = pickle.loads(pickle.dumps(est))
    assert isinstance(again._layout, Layout)
    assert isinstance(again._optimizer, OptimizerState)
    np.testing.assert_array_equal(again.predict_proba(X_IRIS), est.predict_proba(X_IRIS))


# ---------------------------------------------------------------------- Dask
@pytest.mark.slow
def test_grid_search_on_dask_matches_loky():
    distributed = pytest.importorskip("distributed")
    grid = {"bpclassifier__hidden_layer_sizes": [(8,), (16,)],
            "bpclassifier__learning_rate_init": [1e-3, 1e-2]}  # fmt: skip
    pipe = make_pipeline(StandardScaler(), BPClassifier(max_iter=15, random_state=0))

    def search(backend, **kw):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            with joblib.parallel_backend(backend, **kw):
                return GridSearchCV(pipe, grid, cv=3, n_jobs=2).fit(X_IRIS, Y_IRIS)

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):  # fmt: skip
        on_dask = search("dask")
        assert len(client.scheduler_info()["workers"]) == 2
    on_loky = search("loky")
    for key in ("mean_test_score", "std_test_score", "rank_test_score"):
        np.testing.assert_array_equal(on_dask.cv_results_[key], on_loky.cv_results_[key])
    np.testing.assert_array_equal(
        on_dask.best_estimator_.predict_proba(X_IRIS), on_loky.best_estimator_.predict_proba(X_IRIS)
    )


def test_dask_ml_incremental_streams_partial_fit():
    """``dask_ml.wrappers.Incremental`` trains one ``partial_fit`` per block of a Dask array."""
    da = pytest.importorskip("dask.array")
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X, y = X_IRIS, (Y_IRIS == 2).astype(int)
    order = np.random.RandomState(0).permutation(len(y))  # mix the classes over the blocks
    X, y = X[order], y[order]
    inc = wrappers.Incremental(
        BPClassifier((8,), random_state=0), scoring="accuracy", shuffle_blocks=False
    )
    inc.fit(da.from_array(X, chunks=50), da.from_array(y, chunks=50), classes=[0, 1])
    ref = BPClassifier((8,), random_state=0)
    for start in range(0, len(y), 50):
        ref.partial_fit(X[start : start + 50], y[start : start + 50], classes=[0, 1])
    np.testing.assert_array_equal(inc.estimator_.coefs_[0], ref.coefs_[0])
    predicted = inc.predict(da.from_array(X, chunks=50)).compute()
    np.testing.assert_array_equal(predicted, ref.predict(X))
