"""Bad input and bad parameters (the training toolkit's and ``class_weight`` included)
raise errors that name the problem; divergence is caught, reported with a
DivergenceWarning and leaves a usable model (with dropout too); warnings about the run."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import binary_data, fit_recording, reg_data
from sklearn.datasets import load_diabetes, load_iris
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.metrics import log_loss

from skbp import BPClassifier, BPRegressor
from skbp.exceptions import DivergenceWarning

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ESTIMATORS = [BPClassifier, BPRegressor]


def small(cls, **kw):
    return cls(hidden_layer_sizes=(3,), max_iter=3, random_state=0, **kw)


# ----------------------------------------------------------------------------
# Bad X
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize(
    "bad,match", [(np.nan, "NaN"), (np.inf, "infinity"), (-np.inf, "infinity")]
)
def test_non_finite_X_rejected(cls, bad, match):
    X, y = binary_data()
    X[4, 1] = bad
    with pytest.raises(ValueError, match=match):
        small(cls).fit(X, y)
    with pytest.raises(ValueError, match=match):
        small(cls).fit(sp.csr_matrix(X), y)
    est = small(cls).fit(*binary_data())
    with pytest.raises(ValueError, match=match):
        est.predict(X)
    if cls is BPClassifier:
        with pytest.raises(ValueError, match=match):
            est.predict_proba(X)
        with pytest.raises(ValueError, match=match):
            est.partial_fit(X, y)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_wrong_number_of_features_at_predict(cls):
    X, y = binary_data()
    est = small(cls).fit(X, y)
    with pytest.raises(ValueError, match="3 features"):
        est.predict(X[:, :2])
    with pytest.raises(ValueError, match="3 features"):
        est.predict(np.hstack([X, X]))
    with pytest.raises(ValueError, match="3 features"):
        est.predict(sp.csr_matrix(X[:, :2]))
    with pytest.raises(ValueError, match="3 features"):
        est.partial_fit(X[:, :2], y)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_empty_X(cls):
    with pytest.raises(ValueError, match="0 sample"):
        small(cls).fit(np.empty((0, 3)), np.empty(0))
    with pytest.raises(ValueError, match="0 feature"):
        small(cls).fit(np.empty((5, 0)), np.arange(5) % 2)
    est = small(cls).fit(*binary_data())
    with pytest.raises(ValueError, match="0 sample"):
        est.predict(np.empty((0, 3)))


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_string_X_rejected(cls):
    X = np.array([["a", "b"], ["c", "d"], ["e", "f"]], dtype=object)
    with pytest.raises(ValueError, match="could not convert string to float"):
        small(cls).fit(X, [0, 1, 0])
    est = small(cls).fit(np.ones((4, 2)) * np.arange(4)[:, None], [0, 1, 0, 1])
    with pytest.raises(ValueError, match="could not convert string to float"):
        est.predict(X)


def test_mismatched_X_y_lengths():
    X, y = binary_data()
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        small(BPClassifier).fit(X, y[:10])


def test_predict_before_fit():
    X, _ = binary_data()
    for est in (BPClassifier(), BPRegressor()):
        with pytest.raises(NotFittedError):
            est.predict(X)
    with pytest.raises(NotFittedError):
        BPClassifier().predict_proba(X)


# ----------------------------------------------------------------------------
# Bad targets
# ----------------------------------------------------------------------------


def test_poisson_negative_y():
    X, _ = binary_data()
    y = np.abs(X[:, 0])
    y[3] = -0.5
    with pytest.raises(ValueError, match="negative"):
        BPRegressor(loss="poisson", max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="negative"):
        BPRegressor(loss="poisson").partial_fit(X, y)
    # zeros are fine
    y[3] = 0.0
    BPRegressor(loss="poisson", max_iter=2, hidden_layer_sizes=(2,)).fit(X, y)


def test_regressor_non_numeric_y():
    X, _ = binary_data(n=4)
    with pytest.raises(ValueError, match="could not convert string to float"):
        small(BPRegressor).fit(X, np.array(["a", "b", "c", "d"]))


def test_classifier_continuous_y():
    X, _ = binary_data()
    with pytest.raises(ValueError, match="Unknown label type"):
        small(BPClassifier).fit(X, np.linspace(0, 1, X.shape[0]))


def test_classifier_new_classes_after_first_fit():
    X, y = binary_data()
    clf = small(BPClassifier, warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match="same classes"):
        clf.fit(X, y + 5)
    clf = small(BPClassifier)
    clf.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="classes not in"):
        clf.partial_fit(X, y + 1)
    with pytest.raises(ValueError, match="classes must be passed"):
        small(BPClassifier).partial_fit(X, y)


# ----------------------------------------------------------------------------
# Bad parameters
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize(
    "sizes,exc",
    [
        ((0,), ValueError),
        ((-1,), ValueError),
        ((4, 0), ValueError),
        ((2.5,), TypeError),
        ((3, None), TypeError),
    ],
)
def test_bad_hidden_layer_sizes(cls, sizes, exc):
    X, y = binary_data()
    with pytest.raises(exc, match="hidden_layer_sizes"):
        cls(hidden_layer_sizes=sizes, max_iter=2).fit(X, y)


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize(
    "param,value",
    [
        ("learning_rate_init", 0.0),
        ("learning_rate_init", -0.1),
        ("activation", "softplus"),
        ("solver", "newton"),
        ("learning_rate", "linear"),
        ("alpha", -1.0),
        ("batch_size", 0),
        ("max_iter", 0),
        ("momentum", 1.5),
        ("beta_1", 1.0),
        ("beta_2", -0.1),
        ("epsilon", 0.0),
        ("validation_fraction", 1.0),
        ("n_iter_no_change", 0),
        ("max_fun", 0),
        ("hidden_layer_sizes", 0),
    ],
)
def test_bad_parameters_name_the_parameter(cls, param, value):
    X, y = binary_data()
    with pytest.raises(ValueError, match=param):
        cls(**{param: value}).fit(X, y)


def test_unknown_loss():
    X, y = binary_data()
    with pytest.raises(ValueError, match="loss"):
        BPRegressor(loss="absolute_error").fit(X, y)
    with pytest.raises(TypeError):
        BPClassifier(loss="log_loss")  # the classifier has no loss parameter


BAD_PARAMS = [
    (dict(dropout=1.5), "dropout"),
    (dict(dropout=-0.1), "dropout"),
    (dict(dropout=[0.1, 0.2, 0.3]), "dropout"),
    (dict(dropout=[0.1, 1.0]), "dropout"),
    (dict(decay_rate=0), "decay_rate"),
    (dict(decay_rate=1.5), "decay_rate"),
    (dict(activation="swish"), "activation"),
    (dict(activation=["relu", "tanh", "elu"]), "activation"),
    (dict(activation=["relu", "swish"]), "activation"),
    (dict(l1_ratio=2), "l1_ratio"),
    (dict(l1_ratio=-0.5), "l1_ratio"),
    (dict(max_grad_norm=0), "max_grad_norm"),
    (dict(max_grad_norm=-1.0), "max_grad_norm"),
    (dict(dropout=0.2, solver="lbfgs"), "dropout"),
    (dict(batch_norm=True, batch_size=1, solver="sgd"), "batch_norm"),
    (dict(hidden_layer_sizes="big"), "hidden_layer_sizes"),
    (dict(learning_rate="linear"), "learning_rate"),
]


@pytest.mark.parametrize("cls", [BPClassifier, BPRegressor])
@pytest.mark.parametrize("params,name", BAD_PARAMS, ids=[str(p) for p, _ in BAD_PARAMS])
def test_bad_parameters_raise_naming_the_parameter(cls, params, name):
    X, y = load_iris(return_X_y=True)
    base = dict(hidden_layer_sizes=(4, 4), max_iter=2)
    est = cls(**{**base, **params})
    with pytest.raises((ValueError, TypeError), match=name):
        est.fit(X, y)


def test_class_weight_errors():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match=r"class_weight.*\[5\]"):
        BPClassifier(class_weight={0: 1.0, 5: 2.0}, max_iter=2).fit(X, y)
    est = BPClassifier(class_weight="balanced", max_iter=2)
    with pytest.raises(ValueError, match="class_weight='balanced'.*partial_fit"):
        est.partial_fit(X, y, classes=[0, 1, 2])
    # a dict works with partial_fit
    BPClassifier(class_weight={0: 2.0}).partial_fit(X, y, classes=[0, 1, 2])


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_partial_fit_with_lbfgs(cls):
    X, y = binary_data()
    est = cls(solver="lbfgs")
    assert not hasattr(est, "partial_fit")
    with pytest.raises(AttributeError, match="partial_fit"):
        est.partial_fit(X, y)
    # the underlying reason names the solver
    with pytest.raises(AttributeError, match="stochastic"):
        est._check_solver()


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_partial_fit_with_early_stopping(cls):
    X, y = binary_data()
    kw = {"classes": [0, 1]} if cls is BPClassifier else {}
    with pytest.raises(ValueError, match="early_stopping"):
        cls(early_stopping=True).partial_fit(X, y, **kw)


# ----------------------------------------------------------------------------
# Bad sample weights
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
@pytest.mark.parametrize("cls", ESTIMATORS)
def test_all_zero_sample_weights(cls, solver):
    X, y = binary_data()
    with pytest.raises(ValueError, match="[Ss]ample.?weight"):
        small(cls, solver=solver).fit(X, y, sample_weight=np.zeros(X.shape[0]))


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_negative_or_misshapen_sample_weights(cls):
    X, y = binary_data()
    sw = np.ones(X.shape[0])
    sw[2] = -1.0
    with pytest.raises(ValueError, match="[Nn]egative"):
        small(cls).fit(X, y, sample_weight=sw)
    with pytest.raises(ValueError, match="sample_weight"):
        small(cls).fit(X, y, sample_weight=np.ones(5))
    sw = np.ones(X.shape[0])
    sw[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        small(cls).fit(X, y, sample_weight=sw)


# ----------------------------------------------------------------------------
# Divergence
# ----------------------------------------------------------------------------


def test_divergence_warning_is_a_convergence_warning():
    assert issubclass(DivergenceWarning, ConvergenceWarning)


def test_regressor_divergence_warns_and_keeps_finite_model():
    X, y = load_diabetes(return_X_y=True)  # raw targets, ~25 to ~350
    reg = BPRegressor(solver="sgd", learning_rate_init=10, momentum=0, random_state=0)
    div = fit_recording(reg, X, y, DivergenceWarning)
    assert len(div) == 1
    assert "learning_rate_init" in str(div[0].message)
    assert "10" in str(div[0].message)
    for a in reg.coefs_ + reg.intercepts_:
        assert np.isfinite(a).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        pred = reg.predict(X)
    assert np.isfinite(pred).all()
    # the fitted attributes exist and are finite
    assert np.isfinite(reg.loss_)
    assert all(np.isfinite(reg.loss_curve_))
    assert reg.n_iter_ == len(reg.loss_curve_)
    # the same fit with a sane learning rate does not warn
    X_small = X[:100]
    ok = BPRegressor(solver="sgd", learning_rate_init=1e-3, random_state=0, max_iter=5)
    div = fit_recording(ok, X_small, y[:100], DivergenceWarning)
    assert div == []


def _training_loss(est, X, y):
    """The objective (data loss + L2 penalty, unit weights) at the current parameters."""
    penalty = 0.5 * est.alpha * sum(np.sum(c**2) for c in est.coefs_) / X.shape[0]
    if isinstance(est, BPClassifier):
        return log_loss(y, est.predict_proba(X), labels=est.classes_) + penalty
    return 0.5 * np.mean((est.predict(X) - y) ** 2) + penalty


# With one full batch per epoch, loss_curve_[k] is exactly the loss of the
# parameters at the start of epoch k: the parameters kept after a divergence
# ("the last ones with a finite, lowest loss") must be no worse than the
# lowest loss in loss_curve_.
DIVERGING = [
    pytest.param(BPRegressor, "diabetes", 10.0, id="regressor-diabetes-lr10"),
    pytest.param(BPClassifier, "iris", 100.0, id="classifier-iris-lr100"),
]


def _load(name):
    return load_diabetes(return_X_y=True) if name == "diabetes" else load_iris(return_X_y=True)


@pytest.mark.parametrize("cls,dataset,lr", DIVERGING)
def test_divergence_restores_lowest_loss_parameters(cls, dataset, lr):
    X, y = _load(dataset)
    est = cls(
        solver="sgd",
        learning_rate_init=lr,
        momentum=0,
        random_state=0,
        batch_size=X.shape[0],
        max_iter=50,
    )
    div = fit_recording(est, X, y, DivergenceWarning)
    assert len(div) == 1
    assert len(est.loss_curve_) >= 1
    restored = _training_loss(est, X, y)
    assert np.isfinite(restored)
    assert restored <= min(est.loss_curve_) * (1 + 1e-6), (
        f"parameters kept after divergence have loss {restored:.6g}, "
        f"but loss_curve_ reached {min(est.loss_curve_):.6g}"
    )


@pytest.mark.parametrize(
    "cls,dataset",
    [
        pytest.param(BPClassifier, "iris", id="classifier"),
        pytest.param(BPRegressor, "diabetes", id="regressor"),
    ],
)
def test_divergence_with_huge_learning_rate_keeps_predictions_finite(cls, dataset):
    # the documented promise: after a DivergenceWarning predict never returns NaN
    X, y = _load(dataset)
    est = cls(
        solver="sgd",
        learning_rate_init=1e200,
        momentum=0,
        random_state=0,
        batch_size=X.shape[0],
        max_iter=20,
    )
    div = fit_recording(est, X, y, DivergenceWarning)
    assert len(div) == 1
    assert "learning_rate_init" in str(div[0].message)
    for a in est.coefs_ + est.intercepts_:
        assert np.isfinite(a).all()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = est.predict_proba(X) if cls is BPClassifier else est.predict(X)
    assert np.isfinite(out).all(), "predictions after a caught divergence contain inf/NaN"
    assert not [w for w in rec if issubclass(w.category, RuntimeWarning)]


def test_classifier_divergence_with_mini_batches():
    # divergence inside the first epoch: parameters go back to the initial ones
    X, y = load_iris(return_X_y=True)
    kw = dict(solver="sgd", momentum=0, random_state=0, batch_size=32, max_iter=20)
    clf = BPClassifier(learning_rate_init=1e200, **kw)
    div = fit_recording(clf, X, y, DivergenceWarning)
    assert len(div) == 1 and "learning_rate_init" in str(div[0].message)
    init = BPClassifier(learning_rate_init=1e-300, **{**kw, "max_iter": 1}).fit(X, y)
    for a, b in zip(clf.coefs_ + clf.intercepts_, init.coefs_ + init.intercepts_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert np.isfinite(clf.predict_proba(X)).all()


def test_divergence_with_dropout_reports_a_finite_loss():
    # After a divergence loss_ is recomputed at the restored parameters: it must
    # be the deterministic loss with dropout off (the network predict uses), not
    # one computed with whatever a fresh masks buffer holds.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3))
    y = X[:, 0] - X[:, 1] + 0.1 * rng.normal(size=60)
    est = BPRegressor(
        hidden_layer_sizes=(8,),
        solver="sgd",
        learning_rate_init=10.0,
        dropout=0.5,
        batch_size=10,
        max_iter=50,
        random_state=0,
    )
    with pytest.warns(DivergenceWarning):
        est.fit(X, y)
    assert np.isfinite(est.predict(X)).all()
    expected = _training_loss(est, X, y)
    assert np.isfinite(est.loss_)
    np.testing.assert_allclose(est.loss_, expected, rtol=1e-8)


def _stream_data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 3))
    y = X[:, 0] + 0.1 * rng.normal(size=200)
    return X, y


def test_no_false_divergence_when_partial_fit_data_change_scale():
    # A stream whose first chunk has small targets and later chunks large ones:
    # the loss is larger on the new data, but training is healthy (scikit-learn's
    # MLPRegressor reaches R^2 ~0.97 here).  No DivergenceWarning must stop it.
    X, y = _stream_data()
    reg = BPRegressor(hidden_layer_sizes=(16,), random_state=0, learning_rate_init=0.05)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        reg.partial_fit(X[:100], y[:100])
        for _ in range(100):
            reg.partial_fit(X, 300 * y)
    div = [w for w in rec if issubclass(w.category, DivergenceWarning)]
    assert div == [], str(div[0].message)
    assert len(reg.loss_curve_) == 101
    assert reg.score(X, 300 * y) > 0.9


def test_no_false_divergence_when_warm_start_data_change_scale():
    X, y = _stream_data()
    reg = BPRegressor(hidden_layer_sizes=(16,), random_state=0, learning_rate_init=0.05,
                      max_iter=50, warm_start=True)  # fmt: skip
    reg.fit(X, y)
    div = fit_recording(reg, X, 300 * y, DivergenceWarning)
    assert div == [], str(div[0].message)
    assert reg.n_iter_ >= 1


# ----------------------------------------------------------------------------
# Warnings about the run
# ----------------------------------------------------------------------------


def test_batch_size_larger_than_data_warns_and_clips():
    X, y = binary_data()
    with pytest.warns(UserWarning, match="batch_size"):
        clf = small(BPClassifier, batch_size=1000).fit(X, y)
    assert clf.n_iter_ == 3


def test_residual_without_equal_widths_warns():
    X, y = reg_data(60, n_features=4)
    with pytest.warns(UserWarning, match="residual"):
        BPRegressor(hidden_layer_sizes=(5, 4, 3), residual=True, max_iter=2).fit(X, y)
    est = BPRegressor(hidden_layer_sizes=(5, 5, 3), residual=True, max_iter=2)
    assert not [r for r in fit_recording(est, X, y) if "residual" in str(r.message)]
    np.testing.assert_array_equal(est._layout.res, [0, 1, 0, 0])


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_max_iter_reached_warns(cls):
    X, y = binary_data()
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        small(cls, solver="adam", tol=0.0).fit(X, y)
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        small(cls, solver="lbfgs", tol=0.0).fit(X, y)


def test_lbfgs_max_fun_warns():
    X, y = binary_data()
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        clf = BPClassifier(hidden_layer_sizes=(3,), solver="lbfgs", max_fun=4, max_iter=100,
                           random_state=0, tol=0.0).fit(X, y)  # fmt: skip
    assert clf.n_iter_ <= 4


def test_early_stopping_validation_set_too_small():
    rng = np.random.RandomState(0)
    X, y = rng.normal(size=(15, 2)), rng.normal(size=15)
    with pytest.raises(ValueError, match="validation set is too small"):
        BPRegressor(early_stopping=True, validation_fraction=0.05).fit(X, y)


def test_poisson_overflow_at_predict_warns():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(50, 2))
    y = rng.poisson(np.exp(X[:, 0])).astype(float)
    reg = BPRegressor(loss="poisson", hidden_layer_sizes=(4,), solver="lbfgs", max_iter=50,
                      random_state=0).fit(X, y)  # fmt: skip
    assert np.isfinite(reg.predict(X)).all()
    with pytest.warns(RuntimeWarning, match=r"not finite \(NaN or inf\)"):
        reg.predict(X * 1e6)
