"""Numbers are never silently wrong: overflow, dtype ranges, one class, damaged
pickles, and the gradient diagnostics (``gradient_norms_``, vanishing and exploding
gradients reported with a ``GradientWarning``).

Includes scikit-learn's own ``test_nonfinite_params``,
``test_mlp_regressor_dtypes_casting`` and ``test_preserve_feature_names``
(sklearn/neural_network/tests/test_mlp.py) with skbp's estimators swapped in.
"""

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import bn_data, exploding_data, fit_recording, kernel_loss_grad
from numpy.testing import assert_allclose
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skbp import BPClassifier, BPRegressor
from skbp._data import Problem
from skbp._kernels import ACTIVATION_CODES, OUT_IDENTITY
from skbp._layout import Layout
from skbp.exceptions import GradientWarning, PrecisionWarning

ESTIMATORS = [BPClassifier, BPRegressor]
NONFINITE_MSG = (
    "Solver produced non-finite parameter weights. The input data may contain large"
    " values and need to be preprocessed."
)


# ------------------------------------------------------- scikit-learn's own tests
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_nonfinite_params(solver):
    """scikit-learn's test: data so large that the loss is inf at the start is an error."""
    rng = np.random.RandomState(0)
    n_samples = 10
    fmax = np.finfo(np.float64).max
    X = fmax * rng.uniform(size=(n_samples, 2))
    y = rng.standard_normal(size=n_samples)
    clf = BPRegressor(solver=solver)
    with pytest.raises(ValueError, match=NONFINITE_MSG) as info:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X, y)
    assert "before any update" in str(info.value) and "1.7" in str(info.value)


def test_mlp_regressor_dtypes_casting():
    """scikit-learn's test: float32 and float64 fits agree to rtol 5e-4."""
    X_digits, y_digits = load_digits(n_class=2, return_X_y=True)
    params = dict(alpha=1e-5, hidden_layer_sizes=(5, 3), random_state=1, max_iter=150, tol=1e-3)
    mlp_64 = BPRegressor(**params)
    mlp_64.fit(X_digits[:300], y_digits[:300])
    pred_64 = mlp_64.predict(X_digits[300:])
    mlp_32 = BPRegressor(**params)
    mlp_32.fit(X_digits[:300].astype(np.float32), y_digits[:300])
    pred_32 = mlp_32.predict(X_digits[300:].astype(np.float32))
    assert pred_32.dtype == np.float32
    assert_allclose(pred_64, pred_32, rtol=5e-04)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("seed", range(8))
def test_preserve_feature_names(Estimator, seed):
    """scikit-learn's test (a single class, early stopping), over several initialisations:
    it used to raise IndexError in the label decoding for some of them."""
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(seed)
    X = pd.DataFrame(data=rng.randn(10, 2), columns=["colname_a", "colname_b"])
    y = pd.Series(data=np.full(10, 1), name="colname_y")
    model = Estimator(early_stopping=True, validation_fraction=0.2, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model.fit(X, y)


# ------------------------------------------------------------------- one class
def test_single_class_predicts_that_class_whatever_the_outputs():
    X = np.random.RandomState(0).randn(12, 3)
    for seed in range(6):
        clf = BPClassifier((4,), max_iter=3, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, np.array(["only"] * 12))
        assert list(clf.predict(X)) == ["only"] * 12
        assert clf.predict_proba(X).shape == (12, 2)  # as scikit-learn's LabelBinarizer


# --------------------------------------------------------------- data too large
def test_float32_targets_beyond_float32_squares_warn_twice_over():
    """Targets ~1e30 in float32: Adam's second moment overflows and the weights freeze;
    skbp says so up front (PrecisionWarning) and when the gradient overflows."""
    rng = np.random.RandomState(0)
    X = rng.standard_normal((200, 4)).astype(np.float32)
    y = (X[:, 0] * 1e30).astype(np.float32)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        reg = BPRegressor(max_iter=5, random_state=0).fit(X, y)
    kinds = {w.category for w in rec}
    assert PrecisionWarning in kinds and GradientWarning in kinds
    msg = next(str(w.message) for w in rec if w.category is PrecisionWarning)
    assert "targets" in msg and "float32" in msg and "float64" in msg
    assert all(np.isfinite(c).all() for c in reg.coefs_)
    # the same data in float64: no overflow (its huge gradients are reported as exploding)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        BPRegressor(max_iter=5, random_state=0).fit(X.astype(np.float64), y.astype(np.float64))
    assert PrecisionWarning not in {w.category for w in rec}
    assert not any("overflow" in str(w.message) for w in rec)


def test_precision_warning_for_large_float32_inputs_dense_and_sparse():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((60, 3)).astype(np.float32)
    X[0, 0] = 1e25
    y = (rng.rand(60) > 0.5).astype(int)
    for Xin in (X, sp.csr_matrix(X)):
        with pytest.warns(PrecisionWarning, match="X has values up to 1e"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", GradientWarning)
                BPClassifier((3,), max_iter=2).fit(Xin, y)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_float64_rows_beyond_a_float32_model_raise(Estimator):
    rng = np.random.RandomState(0)
    X = rng.standard_normal((60, 3)).astype(np.float32)
    y = X[:, 0] > 0 if Estimator is BPClassifier else X[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = Estimator(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
    big = np.full((2, 3), 1e39)
    for Xin in (big, big[:1], sp.csr_matrix(big)):
        with pytest.raises(ValueError, match="beyond the range of float32"):
            est.predict(Xin)
    est.predict(np.full((2, 3), 1e30))  # within float32: fine


def test_non_finite_outputs_warn_for_predict_too():
    """A classifier whose outputs overflow used to predict class 0 without a word."""
    rng = np.random.RandomState(0)
    X = rng.standard_normal((80, 2))
    y = (X[:, 0] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = BPClassifier((3,), activation="identity", max_iter=3, random_state=0).fit(X, y)
    clf.coefs_[0][:] = 1e300  # an edited model: the hidden layer overflows to inf - inf
    clf.coefs_[1][:] = np.array([[1.0], [-1.0], [1.0]])
    Xbig = np.full((3, 2), 1e10)
    for method in (clf.predict, clf.predict_proba):
        with pytest.warns(RuntimeWarning, match=r"not finite \(NaN or inf\) for 3 of 3 rows"):
            method(Xbig)


def test_nonfinite_start_restores_the_parameters_for_partial_fit():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((40, 2))
    y = X[:, 0]
    reg = BPRegressor(hidden_layer_sizes=(3,), random_state=0).partial_fit(X, y)
    before = [c.copy() for c in reg.coefs_]
    with pytest.raises(ValueError, match=NONFINITE_MSG):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reg.partial_fit(np.full((40, 2), np.finfo(np.float64).max), y)
    for a, b in zip(before, reg.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)
    reg.partial_fit(X, y)  # and it goes on learning


# ------------------------------------------------------------- pickled state
@pytest.fixture(scope="module")
def fitted_clf():
    """``(clf, X)``, fitted once: the test below damages copies of its state, never ``clf``."""
    X = np.random.RandomState(0).rand(50, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return BPClassifier((4,), max_iter=3, random_state=0).fit(X, X[:, 0] > 0.5), X


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda st: st.update(_w=st["_w"][:-1]), "has 20 entries where the layer sizes"),
        (lambda st: st.update(_w=np.append(st["_w"], 1.0)), "has 22 entries"),
        (lambda st: st.update(_w=st["_w"].astype(np.int64)), "not a 1-D float32/float64"),
        (lambda st: st.update(n_features_in_=4), "n_features_in_=4 but the network takes 3"),
        (lambda st: st.update(_bn_run=np.ones(3)), "running statistics"),
    ],
    ids=["short", "long", "int", "features", "bn"],
)
def test_inconsistent_pickled_state_is_refused(edit, match, fitted_clf):
    clf, X = fitted_clf
    state = clf.__getstate__()
    edit(state)
    bad = BPClassifier.__new__(BPClassifier)
    with pytest.raises(ValueError, match=match):
        bad.__setstate__(state)
    # an intact round trip still works
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))


# ------------------------------------------------------- gradient diagnostics
IGNORE_CONVERGENCE = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def digits_small():
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16.0, y[:300]


@IGNORE_CONVERGENCE
def test_vanishing_gradient_warns_once_for_deep_sigmoid_net():
    X, y = digits_small()
    est = BPClassifier(
        hidden_layer_sizes=(16,) * 12, activation="logistic", max_iter=5, random_state=0
    )
    grad_warnings = fit_recording(est, X, y, GradientWarning)
    assert len(grad_warnings) == 1
    msg = str(grad_warnings[0].message)
    assert "Vanishing" in msg
    assert "layer 1 of 13" in msg
    g = est.gradient_norms_
    assert g.shape == (est.n_iter_, est.n_layers_ - 1) == (5, 13)
    assert np.isfinite(g).all()
    assert np.all(g[:, 0] < 1e-4 * g[:, -1])
    # once per fit: a second fit warns again, once
    assert len(fit_recording(est, X, y, GradientWarning)) == 1


@IGNORE_CONVERGENCE
def test_no_gradient_warning_for_deep_relu_batch_norm_net():
    X, y = digits_small()
    est = BPClassifier(
        hidden_layer_sizes=(16,) * 12,
        activation="relu",
        batch_norm=True,
        max_iter=5,
        random_state=0,
    )
    assert fit_recording(est, X, y, GradientWarning) == []
    g = est.gradient_norms_
    assert g.shape == (est.n_iter_, 13)
    assert np.isfinite(g).all() and np.all(g > 0)
    assert np.all(g[:, 0] > 1e-2 * g[:, -1])


@IGNORE_CONVERGENCE
def test_gradient_norms_are_the_data_gradient_norms_per_layer():
    # one full-batch epoch: gradient_norms_[0] is, per layer, the norm of the
    # data loss's weight gradient (mean over rows, no penalty) at the initial weights
    X, y = bn_data(n=30, seed=8)
    sw = np.random.RandomState(0).uniform(0.5, 2.0, size=30)
    est = BPRegressor(
        hidden_layer_sizes=(5, 4),
        solver="sgd",
        batch_size="full",
        alpha=0.5,
        max_iter=1,
        random_state=0,
    ).fit(X, y, sample_weight=sw)
    layout = Layout([3, 5, 4, 1])
    layout.codes[:2] = ACTIVATION_CODES["relu"]
    w0 = layout.init_params(np.random.RandomState(0), "relu", np.float64)
    problem = Problem(X, np.float64, y.reshape(-1, 1), sw)
    # alpha = 0: the data loss only, the whole data set in one chunk
    _, grad = kernel_loss_grad(layout, w0, problem, layout.codes.copy(), OUT_IDENTITY, 0.0, 30)
    expected = [np.linalg.norm(g) for g in layout.unpack(grad)[0]]
    assert est.gradient_norms_.shape == (1, 3)
    np.testing.assert_allclose(est.gradient_norms_[0], expected, rtol=1e-10)


@IGNORE_CONVERGENCE
def test_gradient_norms_lbfgs_shape():
    X, y = digits_small()
    est = BPClassifier(hidden_layer_sizes=(8, 8), solver="lbfgs", max_iter=7, random_state=0)
    est.fit(X, y)
    assert est.gradient_norms_.shape == (est.n_iter_, 3)
    assert np.isfinite(est.gradient_norms_).all()


@IGNORE_CONVERGENCE
def test_exploding_gradient_warns():
    X, y = exploding_data()
    est = BPRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    grad_warnings = fit_recording(est, X, y, GradientWarning)
    assert len(grad_warnings) == 1
    msg = str(grad_warnings[0].message)
    assert "Exploding" in msg and "max_grad_norm" in msg
    assert "layer" in msg
    assert est.gradient_norms_.max() > 1e4
    # scaled targets do not warn
    quiet = BPRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    assert fit_recording(quiet, X / 100, y / y.std(), GradientWarning) == []


@IGNORE_CONVERGENCE
def test_verbose_prints_gradient_norms(capsys):
    X, y = digits_small()
    BPClassifier(hidden_layer_sizes=(4, 4), max_iter=3, verbose=True, random_state=0).fit(X, y)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "gradient norms" in line]
    assert len(lines) == 3
    assert lines[0].startswith("Iteration 1,")
