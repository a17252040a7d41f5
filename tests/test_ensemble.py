"""``n_ensemble``: several independently initialised networks, trained concurrently, averaged.

Every member is the network a single fit with the member's ``random_state``
gives (so each option reaches the members), the averages are those of the
members' outputs, and nothing depends on ``n_jobs``.
"""

import pickle
import warnings

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError

from skbp import BPClassifier, BPRegressor, _memory
from skbp._ensemble import member_seeds

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X = (X_IRIS - X_IRIS.mean(0)) / X_IRIS.std(0)
Y_REG = X[:, 2] - 0.5 * X[:, 3]
SMALL = dict(hidden_layer_sizes=(6,), max_iter=8, random_state=0)


def _weights(est):
    return np.stack([m._w for m in est.estimators_])


def test_n_ensemble_1_is_the_single_network_bit_for_bit():
    plain = BPClassifier(**SMALL).fit(X, Y_IRIS)
    one = BPClassifier(**SMALL, n_ensemble=1).fit(X, Y_IRIS)
    assert BPClassifier().n_ensemble == 1
    np.testing.assert_array_equal(one._w, plain._w)
    assert not hasattr(one, "estimators_") and one.coefs_[0].shape == (4, 6)


def test_members_differ_and_member_0_is_the_single_network():
    ens = BPClassifier(**SMALL, n_ensemble=3).fit(X, Y_IRIS)
    single = BPClassifier(**SMALL).fit(X, Y_IRIS)
    np.testing.assert_array_equal(ens.estimators_[0]._w, single._w)
    w = _weights(ens)
    assert not np.array_equal(w[0], w[1]) and not np.array_equal(w[1], w[2])
    assert [m.random_state for m in ens.estimators_] == member_seeds(0, 3)
    assert all(m.n_ensemble == 1 for m in ens.estimators_)


def test_seeds_from_a_random_state_instance_are_reproducible():
    a = BPClassifier(**{**SMALL, "random_state": np.random.RandomState(7)}, n_ensemble=2)
    b = clone(a).set_params(random_state=np.random.RandomState(7))
    np.testing.assert_array_equal(_weights(a.fit(X, Y_IRIS)), _weights(b.fit(X, Y_IRIS)))


@pytest.mark.parametrize("cls", [BPClassifier, BPRegressor])
def test_the_same_bits_for_any_n_jobs(cls):
    y = Y_IRIS if cls is BPClassifier else Y_REG
    fits = [
        cls(hidden_layer_sizes=(32, 32), max_iter=5, random_state=0, n_ensemble=4, n_jobs=n)
        .fit(X, y)
        for n in (1, 2, -1)
    ]  # fmt: skip
    for other in fits[1:]:
        np.testing.assert_array_equal(_weights(other), _weights(fits[0]))
        for a, b in zip(other.coefs_, fits[0].coefs_, strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(other.predict(X), fits[0].predict(X))


def test_classifier_averages_probabilities_and_predicts_their_argmax():
    ens = BPClassifier(**SMALL, n_ensemble=3).fit(X, Y_IRIS)
    mean = np.mean([m.predict_proba(X) for m in ens.estimators_], axis=0)
    np.testing.assert_allclose(ens.predict_proba(X), mean, rtol=1e-12)
    np.testing.assert_array_equal(ens.predict(X), ens.classes_[mean.argmax(axis=1)])
    # binary: the mean of the members' logistic outputs, thresholded at 0.5
    yb = Y_IRIS == 2
    ens = BPClassifier(**SMALL, n_ensemble=3).fit(X, yb)
    p = np.mean([m.predict_proba(X)[:, 1] for m in ens.estimators_], axis=0)
    np.testing.assert_allclose(ens.predict_proba(X)[:, 1], p, rtol=1e-12)
    np.testing.assert_array_equal(ens.predict(X), p > 0.5)


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
def test_regressor_averages_predictions(loss):
    y = Y_REG - Y_REG.min() if loss == "poisson" else np.c_[Y_REG, X[:, 0]]
    ens = BPRegressor(loss, **SMALL, n_ensemble=3).fit(X, y)
    mean = np.mean([m.predict(X) for m in ens.estimators_], axis=0)
    np.testing.assert_allclose(ens.predict(X), mean, rtol=1e-12)
    assert ens.predict(X).shape == y.shape


#: every option family, with k=3: (estimator, X, y[, fit keywords])
FAMILIES = {
    "sgd": (BPClassifier(solver="sgd", learning_rate="invscaling"), X, Y_IRIS),
    "adam": (BPClassifier(), X, Y_IRIS),
    "lbfgs": (BPClassifier(solver="lbfgs"), X, Y_IRIS),
    "batch_norm_residual": (
        BPRegressor(hidden_layer_sizes=(6, 6), batch_norm=True, residual=True),
        X,
        Y_REG,
    ),  # fmt: skip
    "dropout": (BPClassifier(dropout=0.2), X, Y_IRIS),
    "float32": (BPRegressor(), X.astype(np.float32), Y_REG.astype(np.float32)),
    "schedule": (BPClassifier(learning_rate="one_cycle", warmup_fraction=0.2), X, Y_IRIS),
    "weight_decay": (BPClassifier(weight_decay=0.01, decay_biases=True), X, Y_IRIS),
    "label_smoothing_class_weight": (
        BPClassifier(label_smoothing=0.1, class_weight="balanced"),
        X,
        Y_IRIS,
    ),  # fmt: skip
    "early_stopping": (BPClassifier(early_stopping=True, n_iter_no_change=2), X, Y_IRIS),
    "validation_data": (
        BPClassifier(early_stopping=True, scoring="loss"),
        X[::2],
        Y_IRIS[::2],
        {"X_val": X[1::2], "y_val": Y_IRIS[1::2]},
    ),  # fmt: skip
    "lbfgs_validation_data": (
        BPRegressor(solver="lbfgs"),
        X[::2],
        Y_REG[::2],
        {"X_val": X[1::2], "y_val": Y_REG[1::2]},
    ),  # fmt: skip
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_option_reaches_every_member(family):
    est, Xf, yf, *kw = FAMILIES[family]
    kw = kw[0] if kw else {}
    params = {**SMALL, "hidden_layer_sizes": est.hidden_layer_sizes}
    ens = clone(est).set_params(**params, n_ensemble=3).fit(Xf, yf, **kw)
    assert len(ens.estimators_) == 3 and ens.coefs_[0].shape[0] == 3
    assert ens.coefs_[0].dtype == Xf.dtype
    for m in ens.estimators_:
        # each member is the fit of a single network with its own seed
        alone = clone(est).set_params(**{**params, "random_state": m.random_state})
        alone.fit(Xf, yf, **kw)
        np.testing.assert_array_equal(m._w, alone._w)
        np.testing.assert_array_equal(m._bn_run, alone._bn_run)
        assert m.n_iter_ == alone.n_iter_
    assert ens.n_iter_ == max(m.n_iter_ for m in ens.estimators_)
    curves = [m.loss_curve_ for m in ens.estimators_]
    assert ens.loss_curve_[0] == pytest.approx(np.mean([c[0] for c in curves]))
    assert len(ens.loss_curve_) == max(map(len, curves))
    assert np.isfinite(ens.predict(Xf).astype(float)).all()


def test_early_stopping_holds_out_each_members_own_rows():
    ens = BPClassifier(**SMALL, early_stopping=True, n_ensemble=2).fit(X, Y_IRIS)
    a, b = (m.validation_scores_ for m in ens.estimators_)
    assert len(a) and len(b) and a != b


@pytest.mark.parametrize("bad", [0, -1, 1.5, "3", None])
def test_n_ensemble_is_validated(bad):
    with pytest.raises(InvalidParameterError, match="'n_ensemble' parameter"):
        BPClassifier(n_ensemble=bad).fit(X, Y_IRIS)


def test_params_clone_and_grid_search():
    est = BPClassifier(**SMALL, n_ensemble=2)
    assert est.get_params()["n_ensemble"] == 2 and clone(est).n_ensemble == 2
    grid = GridSearchCV(est, {"n_ensemble": [1, 2]}, cv=2).fit(X, Y_IRIS)
    assert grid.best_estimator_.n_ensemble in (1, 2)
    assert len(grid.cv_results_["params"]) == 2


def test_warm_start_and_partial_fit_train_every_member_on():
    ens = BPClassifier(**SMALL, n_ensemble=2).fit(X, Y_IRIS)
    first = _weights(ens).copy()
    ens.set_params(warm_start=True, max_iter=3).fit(X, Y_IRIS)
    assert all(len(m.loss_curve_) == 11 for m in ens.estimators_)
    assert len(ens.loss_curve_) == 11 and ens.n_iter_ == 3
    # as each member trained on alone
    for m, w in zip(ens.estimators_, first, strict=True):
        alone = BPClassifier(**{**SMALL, "random_state": m.random_state}).fit(X, Y_IRIS)
        np.testing.assert_array_equal(alone._w, w)
        alone.set_params(warm_start=True, max_iter=3).fit(X, Y_IRIS)
        np.testing.assert_array_equal(alone._w, m._w)
    before = _weights(ens).copy()
    ens.partial_fit(X, Y_IRIS)
    assert not np.array_equal(_weights(ens), before) and ens.n_iter_ == 1
    with pytest.raises(ValueError, match="an ensemble of 2 network.*n_ensemble=3"):
        ens.set_params(n_ensemble=3).fit(X, Y_IRIS)
    with pytest.raises(ValueError, match="an ensemble of 2 network.*n_ensemble=1"):
        ens.set_params(n_ensemble=1).partial_fit(X, Y_IRIS)
    single = BPClassifier(**SMALL).fit(X, Y_IRIS)
    with pytest.raises(ValueError, match="an ensemble of 1 network.*n_ensemble=2"):
        single.set_params(n_ensemble=2, warm_start=True).fit(X, Y_IRIS)


def test_partial_fit_from_scratch():
    ens = BPClassifier((6,), random_state=0, n_ensemble=2)
    ens.partial_fit(X[:70], Y_IRIS[:70], classes=[0, 1, 2]).partial_fit(X[70:], Y_IRIS[70:])
    for m in ens.estimators_:
        alone = BPClassifier((6,), random_state=m.random_state)
        alone.partial_fit(X[:70], Y_IRIS[:70], classes=[0, 1, 2]).partial_fit(X[70:], Y_IRIS[70:])
        np.testing.assert_array_equal(alone._w, m._w)
    np.testing.assert_array_equal(ens.classes_, [0, 1, 2])


def test_refit_switches_between_one_network_and_an_ensemble():
    est = BPClassifier(**SMALL, n_ensemble=2).fit(X, Y_IRIS)
    est.set_params(n_ensemble=1).fit(X, Y_IRIS)
    assert not hasattr(est, "estimators_") and est.coefs_[0].shape == (4, 6)
    pickle.loads(pickle.dumps(est))
    est.set_params(n_ensemble=3).fit(X, Y_IRIS)
    assert not hasattr(est, "_w") and not hasattr(est, "_optimizer")
    assert est.coefs_[0].shape == (3, 4, 6)
    pickle.loads(pickle.dumps(est))


def test_stacked_parameters_are_read_only_copies():
    ens = BPRegressor(**{**SMALL, "hidden_layer_sizes": (6, 6)}, batch_norm=True, n_ensemble=2)
    ens.fit(X, Y_REG)
    assert [c.shape for c in ens.coefs_] == [(2, 4, 6), (2, 6, 6), (2, 6, 1)]
    assert [b.shape for b in ens.intercepts_] == [(2, 6), (2, 6), (2, 1)]
    assert ens.bn_running_vars_[1].shape == (2, 6)
    np.testing.assert_array_equal(ens.coefs_[1][1], ens.estimators_[1].coefs_[1])
    with pytest.raises(ValueError, match="read-only"):
        ens.coefs_[0][0, 0, 0] = 1.0


def test_verbose_reports_each_member(capsys):
    BPClassifier(**SMALL, n_ensemble=2, verbose=True).fit(X, Y_IRIS)
    out = capsys.readouterr().out
    assert "Member 1 of 2: 8 iterations" in out and "Member 2 of 2" in out
    assert "Iteration" not in out  # the members' own epochs are not interleaved


@pytest.mark.parametrize("how", ["pickle", "joblib", "skops"])
def test_round_trips(how, tmp_path):
    ens = BPClassifier(**SMALL, n_ensemble=3).fit(X, Y_IRIS)
    if how == "pickle":
        loaded = pickle.loads(pickle.dumps(ens))
    elif how == "joblib":
        joblib.dump(ens, tmp_path / "m.joblib")
        loaded = joblib.load(tmp_path / "m.joblib")
    else:
        sio = pytest.importorskip("skops.io")
        sio.dump(ens, tmp_path / "m.skops")
        loaded = sio.load(tmp_path / "m.skops", trusted=["skbp._estimators.BPClassifier"])
    np.testing.assert_array_equal(loaded.predict_proba(X), ens.predict_proba(X))
    np.testing.assert_array_equal(loaded.coefs_[0], ens.coefs_[0])


def test_memory_check_counts_every_member(monkeypatch):
    kw = dict(solver="adam", batch_size=200)
    one = _memory.fit_bytes([20, 2000, 2000, 1], np.float64, 5000, **kw)
    eight = _memory.fit_bytes([20, 2000, 2000, 1], np.float64, 5000, n_networks=(8, 2), **kw)
    assert eight > 5 * one
    # room for two networks, not for eight: the ensemble is refused before it starts
    monkeypatch.setattr(_memory, "available_memory", lambda: int(2.5 * one / _memory.HEADROOM))
    est = BPRegressor(hidden_layer_sizes=(2000, 2000), max_iter=1, n_ensemble=8)
    Xb = np.zeros((5000, 20))
    with pytest.raises(MemoryError, match="needs at least"):
        est.fit(Xb, Xb[:, 0])
    assert not hasattr(est, "estimators_")


def test_a_members_error_is_raised():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = BPRegressor(**SMALL, n_ensemble=2)
        with pytest.raises(ValueError, match="non-finite|large values"):
            est.fit(np.full((20, 2), 1e200), np.full(20, 1e200))


def test_callbacks_see_the_ensembles_fit_as_one_task():
    pytest.importorskip("sklearn.callback")

    class Recorder:
        def __init__(self):
            self.events = []

        def setup(self, estimator, context):
            self.events.append("setup")

        def teardown(self, estimator, context):
            self.events.append("teardown")

        def on_fit_task_begin(self, estimator, context, **kw):
            self.events.append(("begin", context.task_name))

        def on_fit_task_end(self, estimator, context, *, fitted_estimator=None, **kw):
            self.events.append(("end", context.task_name))
            self.model = fitted_estimator

    rec = Recorder()
    ens = BPClassifier(**SMALL, n_ensemble=2).set_callbacks(rec).fit(X, Y_IRIS)
    assert rec.events == ["setup", ("begin", "fit"), ("end", "fit"), "teardown"]
    np.testing.assert_array_equal(rec.model.predict_proba(X), ens.predict_proba(X))
    assert not any(hasattr(m, "_skl_callbacks") for m in ens.estimators_)
