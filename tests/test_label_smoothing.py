"""Label smoothing of BPClassifier's log-loss (``label_smoothing``).

The targets become ``y (1 - eps) + eps / K`` (``K`` classes for softmax, 2 per
logistic output); the compiled cross-entropy of such soft targets and its
gradient are checked against the NumPy reference and finite differences, the
reported loss against the reference at the fitted weights (with sample and
class weights), and ``label_smoothing=0`` against the plain fit, bit for bit.
"""

import warnings

import numpy as np
import pytest
from conftest import kernel_loss_grad, np_forward, numeric_gradient, ref_row_loss
from sklearn.datasets import load_iris, make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from skbp import BPClassifier
from skbp._data import Problem
from skbp._kernels import ACT_TANH, OUT_LOGISTIC, OUT_SOFTMAX
from skbp._layout import Layout

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_IRIS = StandardScaler().fit_transform(X_IRIS)
X_ML, Y_ML = make_multilabel_classification(n_samples=60, n_features=5, n_classes=3, random_state=0)


def smoothed(Y, eps, k):
    return Y * (1 - eps) + eps / k


def fitted_loss(est, X, Y, sw=None):
    """The objective at ``est``'s weights in NumPy: weighted mean cross-entropy of
    the targets ``Y`` plus the L2 penalty, divided by the sum of the weights."""
    sw = np.ones(X.shape[0]) if sw is None else np.asarray(sw, dtype=float)
    P = np_forward(X, est.coefs_, est.intercepts_, est.activation, est.out_activation_)
    data = np.sum(sw * ref_row_loss(Y, P, est.out_activation_))
    penalty = 0.5 * est.alpha * sum(np.sum(W**2) for W in est.coefs_)
    return (data + penalty) / sw.sum()


CASES = {
    "multiclass": (X_IRIS, Y_IRIS, "softmax", 3),
    "binary": (X_IRIS, Y_IRIS == 1, "logistic", 2),
    "multilabel": (X_ML, Y_ML, "logistic", 2),
}


@pytest.mark.parametrize("case", list(CASES))
def test_targets_are_smoothed(case):
    X, y, out, k = CASES[case]
    est = BPClassifier((4,), label_smoothing=0.2, max_iter=1, random_state=0).fit(X, y)
    assert est.out_activation_ == out
    Y = BPClassifier((4,), max_iter=1).fit(X, y)._encode_targets(y, np.float64)
    assert set(np.unique(Y)) == {0.0, 1.0}
    np.testing.assert_allclose(est._encode_targets(y, np.float64), smoothed(Y, 0.2, k), rtol=1e-15)
    if out == "softmax":  # still a distribution: p - y stays the gradient
        np.testing.assert_allclose(smoothed(Y, 0.2, k).sum(axis=1), 1.0)
    assert est._encode_targets(y, np.float32).dtype == np.float32
    # early stopping decodes its validation targets: the labels survive any eps < 1
    est.set_params(label_smoothing=0.999)
    np.testing.assert_array_equal(est._decode_targets(est._encode_targets(y, np.float64)), y)


@pytest.mark.parametrize(
    "out_code, n_out", [(OUT_SOFTMAX, 3), (OUT_LOGISTIC, 1), (OUT_LOGISTIC, 3)]
)
def test_soft_target_loss_and_gradient_match_reference(out_code, n_out):
    rng = np.random.RandomState(0)
    n = 19
    X = rng.normal(size=(n, 4))
    if out_code == OUT_SOFTMAX:
        hard = np.eye(n_out)[rng.randint(n_out, size=n)]
        Y, out = smoothed(hard, 0.3, n_out), "softmax"
    else:
        hard = (rng.uniform(size=(n, n_out)) < 0.5).astype(float)
        Y, out = smoothed(hard, 0.3, 2), "logistic"
    sw = rng.uniform(0.2, 3.0, size=n)
    layout = Layout([4, 5, n_out])
    w = layout.init_params(rng, "tanh", np.float64) * 1.5
    problem = Problem(X, np.float64, Y, sw)

    def objective(v):
        return kernel_loss_grad(layout, v, problem, ACT_TANH, out_code, 0.0, 6)

    loss, grad = objective(w)
    coefs, intercepts = layout.unpack(w)
    P = np_forward(X, coefs, intercepts, "tanh", out)
    # -sum(q log p) (+ the (1 - q) log(1 - p) terms for logistic outputs)
    np.testing.assert_allclose(loss, np.sum(sw * ref_row_loss(Y, P, out)) / sw.sum(), rtol=1e-12)
    np.testing.assert_allclose(grad, numeric_gradient(objective, w), rtol=1e-5, atol=1e-8)
    # the soft targets' loss is another number than the hard ones'
    hard_problem = Problem(X, np.float64, hard, sw)
    hard_loss, _ = kernel_loss_grad(layout, w, hard_problem, ACT_TANH, out_code, 0.0, 6)
    assert abs(loss - hard_loss) > 1e-3


@pytest.mark.parametrize("solver", ["lbfgs", "adam"])
def test_reported_loss_is_the_smoothed_cross_entropy(solver):
    eps = 0.1
    est = BPClassifier((8,), solver=solver, label_smoothing=eps, max_iter=30, random_state=0)
    est.fit(X_IRIS, Y_IRIS)
    Y = smoothed(np.eye(3)[Y_IRIS], eps, 3)
    if solver == "lbfgs":  # the final iterate's objective
        np.testing.assert_allclose(est.loss_, fitted_loss(est, X_IRIS, Y), rtol=1e-10)
    # the smoothed targets' entropy is a floor of the loss, which never reaches 0
    entropy = -np.sum(Y[0] * np.log(Y[0]))
    assert est.loss_ > entropy
    assert est.loss_curve_[-1] == est.loss_


def test_sample_weight_and_class_weight():
    eps, rng = 0.15, np.random.RandomState(1)
    sw = rng.uniform(0.2, 3.0, size=150)
    kw = dict(
        hidden_layer_sizes=(8,), solver="lbfgs", label_smoothing=eps, max_iter=20, random_state=0
    )
    est = BPClassifier(**kw).fit(X_IRIS, Y_IRIS, sample_weight=sw)
    Y = smoothed(np.eye(3)[Y_IRIS], eps, 3)
    np.testing.assert_allclose(est.loss_, fitted_loss(est, X_IRIS, Y, sw), rtol=1e-10)
    # class weights are sample weights: the same fit
    cw = {0: 2.0, 1: 0.5, 2: 1.0}
    by_class = BPClassifier(**kw, class_weight=cw).fit(X_IRIS, Y_IRIS)
    by_rows = BPClassifier(**kw).fit(X_IRIS, Y_IRIS, sample_weight=[cw[c] for c in Y_IRIS])
    np.testing.assert_array_equal(by_class._w, by_rows._w)
    assert not np.array_equal(by_class._w, BPClassifier(**kw).fit(X_IRIS, Y_IRIS)._w)


def test_multilabel_fit():
    kw = dict(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=200, random_state=0)
    est = BPClassifier(**kw, label_smoothing=0.2).fit(X_ML, Y_ML)
    np.testing.assert_allclose(
        est.loss_, fitted_loss(est, X_ML, smoothed(Y_ML, 0.2, 2)), rtol=1e-10
    )
    assert est.score(X_ML, Y_ML) > 0.5
    # each output's probability is pulled towards 1/2
    plain = BPClassifier(**kw).fit(X_ML, Y_ML)
    confidence = [np.abs(m.predict_proba(X_ML) - 0.5).mean() for m in (est, plain)]
    assert confidence[0] < confidence[1] - 0.05


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_zero_is_the_plain_fit_bit_for_bit(solver):
    kw = dict(hidden_layer_sizes=(8,), solver=solver, max_iter=5, random_state=0)
    plain = BPClassifier(**kw).fit(X_IRIS, Y_IRIS)
    zero = BPClassifier(**kw, label_smoothing=0.0).fit(X_IRIS, Y_IRIS)
    np.testing.assert_array_equal(zero._w, plain._w)
    assert zero.loss_curve_ == plain.loss_curve_
    other = BPClassifier(**kw, label_smoothing=0.1).fit(X_IRIS, Y_IRIS)
    assert not np.array_equal(other._w, plain._w)


def test_lowers_confidence_but_not_accuracy():
    kw = dict(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=300, alpha=1e-5, random_state=0)
    plain = BPClassifier(**kw).fit(X_IRIS, Y_IRIS)
    smooth = BPClassifier(**kw, label_smoothing=0.2).fit(X_IRIS, Y_IRIS)
    # the loss is lowest where p equals the smoothed target, 1 - 0.2 + 0.2 / 3
    assert plain.predict_proba(X_IRIS).max(axis=1).mean() > 0.97
    assert smooth.predict_proba(X_IRIS).max(axis=1).mean() < 0.92
    assert smooth.score(X_IRIS, Y_IRIS) >= 0.95


def test_early_stopping_scores_accuracy_and_partial_fit():
    est = BPClassifier((8,), label_smoothing=0.3, early_stopping=True, max_iter=30, random_state=0)
    est.fit(X_IRIS, Y_IRIS)
    n_val = 15  # validation_fraction=0.1 of 150 rows
    scores = np.array(est.validation_scores_) * n_val
    np.testing.assert_allclose(scores, np.round(scores), atol=1e-9)  # accuracies
    assert est.best_validation_score_ == max(est.validation_scores_)
    # partial_fit smooths each batch's targets alike
    stream = BPClassifier((8,), label_smoothing=0.3, random_state=0)
    stream.partial_fit(X_IRIS[:75], Y_IRIS[:75], classes=[0, 1, 2])
    stream.partial_fit(X_IRIS[75:], Y_IRIS[75:])
    assert np.isfinite(stream.loss_)


@pytest.mark.parametrize("value", [1.0, 1.5, -0.1, "0.1", None])
def test_invalid_values_are_refused(value):
    with pytest.raises(InvalidParameterError, match="label_smoothing"):
        BPClassifier(label_smoothing=value, max_iter=1).fit(X_IRIS, Y_IRIS)


def test_just_below_one_is_accepted():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = BPClassifier((4,), label_smoothing=0.999, max_iter=2, random_state=0)
        assert np.isfinite(est.fit(X_IRIS, Y_IRIS).loss_)
