"""skbp against an independent plain-NumPy MLP, hand-worked updates and scikit-learn.

The reference network (``np_forward`` and ``ref_row_loss`` in ``conftest.py``)
is written from scikit-learn's formulas, not from skbp's kernels: loss =
weighted mean over rows of the data loss (summed over outputs) + 0.5 * alpha *
sum(W**2) / sum(sw); output delta = (p - y) * sw.

Batch norm's running statistics are checked against NumPy's weighted batch
statistics (momentum 0.1, biased variance, the sample weights applied), and
``predict`` of a model with batch norm, dropout and residual skips against the
reference network (running statistics, dropout off).
"""

import copy
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import (
    HIDDEN_DERIVATIVES,
    bn_data,
    kernel_loss_grad,
    np_forward,
    ref_row_loss,
    reg_data,
    weighted_stats,
)
from sklearn.datasets import load_iris, make_classification, make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer

from skbp import BPClassifier, BPRegressor
from skbp._base import BaseBP
from skbp._data import Problem
from skbp._kernels import ACTIVATION_CODES, BN_EPS, OUTPUT_CODES
from skbp._layout import Layout
from skbp._optim import adam_step, sgd_step
from skbp._predict import network_output

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

BN_MOMENTUM = 0.1  # documented momentum of the running statistics


# ----------------------------------------------------------------------------
# The NumPy reference gradient (the forward pass: np_forward in conftest.py)
# ----------------------------------------------------------------------------


def ref_loss_grad(X, Y, sw, coefs, intercepts, alpha, activation, out):
    """Loss and gradient, packed like scikit-learn's ``_pack`` (all W, then all b)."""
    acts = np_forward(X, coefs, intercepts, activation, out, all_layers=True)
    sw_sum = sw.sum()
    penalty = 0.5 * alpha * sum(np.sum(W**2) for W in coefs) / sw_sum
    loss = np.sum(sw * ref_row_loss(Y, acts[-1], out)) / sw_sum + penalty
    delta = (acts[-1] - Y) * sw[:, None]
    gW, gb = [None] * len(coefs), [None] * len(coefs)
    for layer in range(len(coefs) - 1, -1, -1):
        gW[layer] = (acts[layer].T @ delta + alpha * coefs[layer]) / sw_sum
        gb[layer] = delta.sum(axis=0) / sw_sum
        if layer > 0:
            z = acts[layer - 1] @ coefs[layer - 1] + intercepts[layer - 1]
            delta = (delta @ coefs[layer].T) * HIDDEN_DERIVATIVES[activation](z)
    grad = np.concatenate([g.ravel() for g in gW] + [g.ravel() for g in gb])
    return loss, grad


def random_params(units, rng, scale=1.0):
    coefs = [rng.uniform(-1, 1, (a, b)) * scale for a, b in zip(units[:-1], units[1:], strict=True)]
    intercepts = [rng.uniform(-1, 1, b) * scale for b in units[1:]]
    return coefs, intercepts


def set_params(est, coefs, intercepts):
    """Write parameters in place (coefs_/intercepts_ are views of the flat vector)."""
    for dst, src in zip(est.coefs_, coefs, strict=True):
        dst[...] = src
    for dst, src in zip(est.intercepts_, intercepts, strict=True):
        dst[...] = src


# ----------------------------------------------------------------------------
# Forward pass
# ----------------------------------------------------------------------------

ACTIVATIONS = ["identity", "logistic", "tanh", "relu", "selu", "gelu", "mish"]


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_predict_matches_reference_forward(activation, sparse):
    # 300 rows: more than one prediction chunk (256 rows)
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 4))
    X[rng.uniform(size=X.shape) < 0.3] = 0.0
    Xin = sp.csr_matrix(X) if sparse else X
    y_multi = rng.randint(3, size=300)
    y_bin = rng.randint(2, size=300)
    y_lab = (rng.uniform(size=(300, 3)) < 0.5).astype(int)
    y_reg = rng.normal(size=(300, 2))
    y_pois = rng.poisson(2.0, size=300).astype(float)
    cases = [
        (BPClassifier, y_multi, "softmax"),
        (BPClassifier, y_bin, "logistic"),
        (BPClassifier, y_lab, "logistic"),
        (BPRegressor, y_reg, "identity"),
        (BPRegressor, y_pois, "exp"),
    ]
    for cls, y, out in cases:
        kw = {"loss": "poisson"} if out == "exp" else {}
        est = cls(hidden_layer_sizes=(5, 3), activation=activation, max_iter=1, **kw)
        est.fit(Xin, y)
        assert est.out_activation_ == out
        coefs, intercepts = random_params([4, 5, 3, est.n_outputs_], rng, scale=0.8)
        set_params(est, coefs, intercepts)
        P = np_forward(X, coefs, intercepts, activation, out)
        np.testing.assert_allclose(network_output(est, Problem(Xin, np.float64)), P, rtol=1e-12)
        if cls is BPClassifier:
            proba = est.predict_proba(Xin)
            if est.n_outputs_ == 1:
                np.testing.assert_allclose(proba, np.hstack([1 - P, P]), rtol=1e-12)
                np.testing.assert_array_equal(est.predict(Xin), (P[:, 0] > 0.5).astype(int))
            else:
                np.testing.assert_allclose(proba, P, rtol=1e-12)
                if y.ndim == 1:
                    np.testing.assert_array_equal(est.predict(Xin), P.argmax(axis=1))
                else:
                    np.testing.assert_array_equal(est.predict(Xin), (P > 0.5).astype(int))
            np.testing.assert_allclose(est.predict_log_proba(Xin), np.log(proba), rtol=1e-12)
        else:
            expected = P[:, 0] if est.n_outputs_ == 1 else P
            np.testing.assert_allclose(est.predict(Xin), expected, rtol=1e-12)


def manual_predict_proba(est, X):
    acts = [est.activation] * (est.n_layers_ - 2)
    res = est._layout.res if est.residual else None
    bn = (est.bn_scales_, est.bn_shifts_, est.bn_running_means_, est.bn_running_vars_)
    return np_forward(X, est.coefs_, est.intercepts_, acts, "softmax", res=res, bn=bn)


def test_predict_deterministic_and_dropout_off(toolkit_iris):
    X, _, est = toolkit_iris
    p1 = est.predict_proba(X)
    np.testing.assert_array_equal(est.predict_proba(X), p1)
    np.testing.assert_array_equal(copy.deepcopy(est).predict_proba(X), p1)
    np.testing.assert_array_equal(est.predict(X), est.classes_[np.argmax(p1, axis=1)])
    # dropout is off and batch norm uses its running statistics
    np.testing.assert_allclose(p1, manual_predict_proba(est, X), rtol=1e-10, atol=1e-12)
    # predicting a subset gives the same rows (no batch statistics at predict)
    np.testing.assert_array_equal(est.predict_proba(X[7:9]), p1[7:9])
    # and predict does not change the model
    np.testing.assert_array_equal(est.predict_proba(X), p1)


# ----------------------------------------------------------------------------
# Loss and gradient
# ----------------------------------------------------------------------------

OUT_CASES = [("identity", 2), ("logistic", 1), ("logistic", 3), ("softmax", 3), ("exp", 2)]


def _targets(out, n_out, rng, n):
    if out == "identity":
        return rng.normal(size=(n, n_out))
    if out == "logistic":
        return (rng.uniform(size=(n, n_out)) < 0.5).astype(float)
    if out == "softmax":
        return np.eye(n_out)[rng.randint(n_out, size=n)]
    return rng.poisson(1.0, size=(n, n_out)).astype(float)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("out,n_out", OUT_CASES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_full_loss_grad_matches_reference(activation, out, n_out, sparse):
    rng = np.random.RandomState(42)
    n, units = 37, [6, 5, 4, n_out]
    X = rng.normal(size=(n, units[0]))
    X[rng.uniform(size=X.shape) < 0.3] = 0.0
    Y = _targets(out, n_out, rng, n)
    sw = rng.uniform(0.1, 2.0, size=n)
    coefs, intercepts = random_params(units, rng, scale=0.4 if out == "exp" else 1.0)
    alpha = 0.7
    layout = Layout(units)
    w = layout.pack(coefs, intercepts, np.float64)
    problem = Problem(sp.csr_matrix(X) if sparse else X, np.float64, Y, sw)
    chunk = 10
    loss, grad = kernel_loss_grad(
        layout, w, problem, ACTIVATION_CODES[activation], OUTPUT_CODES[out], alpha, chunk
    )
    ref_loss, ref_grad = ref_loss_grad(X, Y, sw, coefs, intercepts, alpha, activation, out)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-9, atol=1e-12)


def test_layout_packs_like_sklearn():
    from sklearn.neural_network._multilayer_perceptron import _pack

    rng = np.random.RandomState(0)
    units = [3, 4, 2, 5]
    coefs, intercepts = random_params(units, rng)
    layout = Layout(units)
    w = layout.pack(coefs, intercepts, np.float64)
    np.testing.assert_array_equal(w, _pack(coefs, intercepts))
    c2, b2 = layout.unpack(w)
    for a, b in zip(c2 + b2, coefs + intercepts, strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.base is w
    assert layout.n_params == w.size


@pytest.mark.parametrize("activation", ["relu", "logistic", "tanh", "identity"])
def test_init_params_identical_to_sklearn(activation):
    X, y = make_classification(
        n_samples=40, n_features=6, n_classes=3, n_informative=4, random_state=0
    )
    kw = dict(
        hidden_layer_sizes=(7, 5),
        activation=activation,
        random_state=3,
        max_iter=1,
        solver="sgd",
        learning_rate_init=1e-300,
    )
    # a step of 1e-300 leaves the initial weights as they were drawn
    sk = MLPClassifier(**kw).fit(X, y)
    ours = BPClassifier(**kw).fit(X, y)
    from sklearn.neural_network._multilayer_perceptron import _pack

    sk_w = _pack(sk.coefs_, sk.intercepts_)
    w = Layout([6, 7, 5, 3]).init_params(np.random.RandomState(3), activation, np.float64)
    np.testing.assert_array_equal(w, sk_w)
    np.testing.assert_array_equal(ours._packed_params(), sk_w)


# ----------------------------------------------------------------------------
# Batch norm's running statistics
# ----------------------------------------------------------------------------


def first_preactivation(est, X):
    return X @ est.coefs_[0] + est.intercepts_[0]


@pytest.mark.parametrize("weighted", [False, True], ids=["unit", "weighted"])
@pytest.mark.parametrize("batch_size", ["n", "full"])
def test_bn_running_stats_sgd_match_numpy(batch_size, weighted):
    X, y = bn_data()
    n = X.shape[0]
    sw = np.random.RandomState(1).randint(1, 4, size=n).astype(float) if weighted else None
    est = BPRegressor(
        hidden_layer_sizes=(5,),
        batch_norm=True,
        solver="sgd",
        batch_size=n if batch_size == "n" else "full",
        shuffle=False,
        max_iter=1,
        learning_rate_init=0.05,
        random_state=0,
    )
    # a fresh fit starts from (mean 0, var 1) and the initial weights, which
    # are drawn from random_state exactly as scikit-learn draws them
    est.fit(X, y, sample_weight=sw)
    w0 = Layout([3, 5, 1]).init_params(np.random.RandomState(0), "relu", np.float64)
    coefs0, intercepts0 = Layout([3, 5, 1]).unpack(w0)
    mean, var = weighted_stats(X @ coefs0[0] + intercepts0[0], sw)
    np.testing.assert_allclose(est.bn_running_means_[0], BN_MOMENTUM * mean, rtol=1e-10)
    np.testing.assert_allclose(
        est.bn_running_vars_[0], (1 - BN_MOMENTUM) + BN_MOMENTUM * var, rtol=1e-10
    )
    # from known weights and running statistics set by hand (views: edit in place)
    rng = np.random.RandomState(2)
    est.coefs_[0][...] = rng.normal(size=(3, 5))
    est.intercepts_[0][...] = rng.normal(size=5)
    est.bn_running_means_[0][...] = 0.0
    est.bn_running_vars_[0][...] = 1.0
    Z = first_preactivation(est, X)
    est.set_params(warm_start=True).fit(X, y, sample_weight=sw)
    mean, var = weighted_stats(Z, sw)
    run_mean = BN_MOMENTUM * mean
    run_var = (1 - BN_MOMENTUM) + BN_MOMENTUM * var
    np.testing.assert_allclose(est.bn_running_means_[0], run_mean, rtol=1e-10)
    np.testing.assert_allclose(est.bn_running_vars_[0], run_var, rtol=1e-10)
    # one more epoch moves them by momentum 0.1 towards the new weights' statistics
    Z = first_preactivation(est, X)
    est.fit(X, y, sample_weight=sw)
    mean, var = weighted_stats(Z, sw)
    run_mean = (1 - BN_MOMENTUM) * run_mean + BN_MOMENTUM * mean
    run_var = (1 - BN_MOMENTUM) * run_var + BN_MOMENTUM * var
    np.testing.assert_allclose(est.bn_running_means_[0], run_mean, rtol=1e-10)
    np.testing.assert_allclose(est.bn_running_vars_[0], run_var, rtol=1e-10)


@pytest.mark.parametrize("weighted", [False, True], ids=["unit", "weighted"])
def test_bn_running_stats_lbfgs_are_full_data_stats(weighted):
    X, y = bn_data(seed=3)
    sw = np.random.RandomState(4).randint(1, 4, size=X.shape[0]).astype(float) if weighted else None
    est = BPRegressor(
        hidden_layer_sizes=(5, 4), batch_norm=True, solver="lbfgs", max_iter=30, random_state=0
    ).fit(X, y, sample_weight=sw)
    assert est.n_iter_ > 1
    mean, var = weighted_stats(first_preactivation(est, X), sw)
    np.testing.assert_allclose(est.bn_running_means_[0], mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(est.bn_running_vars_[0], var, rtol=1e-9)
    # the second layer's statistics: forward the first hidden layer with batch stats
    z = first_preactivation(est, X)
    bmean, bvar = weighted_stats(z, sw)
    h = np.maximum(est.bn_scales_[0] * (z - bmean) / np.sqrt(bvar + BN_EPS) + est.bn_shifts_[0], 0)
    mean2, var2 = weighted_stats(h @ est.coefs_[1] + est.intercepts_[1], sw)
    np.testing.assert_allclose(est.bn_running_means_[1], mean2, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(est.bn_running_vars_[1], var2, rtol=1e-9)


@pytest.mark.parametrize(
    "solver,kw,rtol",
    [
        ("sgd", dict(batch_size="full", max_iter=5, momentum=0.5), 1e-10),
        ("lbfgs", dict(max_iter=15), 1e-6),
    ],
    ids=["full-batch-sgd", "lbfgs"],
)
def test_bn_weight_two_equals_repeated_row(solver, kw, rtol):
    X, y = bn_data(n=30, seed=5)
    sw = np.ones(X.shape[0])
    sw[[3, 11]] = 2.0
    X_rep = np.vstack([X, X[[3, 11]]])
    y_rep = np.concatenate([y, y[[3, 11]]])
    params = dict(
        hidden_layer_sizes=(6, 4),
        batch_norm=True,
        solver=solver,
        shuffle=False,
        random_state=0,
        **kw,
    )
    a = BPRegressor(**params).fit(X, y, sample_weight=sw)
    b = BPRegressor(**params).fit(X_rep, y_rep)
    for name in BaseBP._VIEWS:  # every fitted parameter list
        for u, v in zip(getattr(a, name), getattr(b, name), strict=True):
            np.testing.assert_allclose(u, v, rtol=rtol, atol=rtol * 1e-2)
    # the weights are not ignored: unit weights train another network
    c = BPRegressor(**params).fit(X, y)
    assert not np.allclose(c.coefs_[0], a.coefs_[0], rtol=1e-4)


def test_bn_running_stats_not_corrupted_by_a_trailing_one_row_batch():
    # With n_samples % batch_size == 1 the last mini-batch of every epoch would
    # have a single row, whose "batch statistics" are that row (variance 0): the
    # running variance would be pulled 10% towards 0 once per epoch (~0.47 of the
    # data's variance with frozen weights).  The row joins the batch before it.
    X, y = bn_data(n=201, seed=6)
    for n, batch_size in ((200, 100), (201, 200)):
        est = BPRegressor(
            hidden_layer_sizes=(5,),
            batch_norm=True,
            solver="sgd",
            batch_size=batch_size,
            shuffle=False,
            momentum=0.0,
            learning_rate_init=1e-12,
            max_iter=80,
            n_iter_no_change=1000,
            random_state=0,
        )
        est.fit(X[:n], y[:n])
        mean, var = weighted_stats(first_preactivation(est, X[:n]))
        np.testing.assert_allclose(est.bn_running_vars_[0], var, rtol=0.05, err_msg=f"n={n}")
        np.testing.assert_allclose(
            est.bn_running_means_[0], mean, atol=0.05 * np.sqrt(var).max(), err_msg=f"n={n}"
        )


def test_bn_running_variance_with_normalised_sample_weights():
    # A Bessel factor S / (S - 1) with the weight sum S as a row count would
    # multiply the running variance by ~4e15 for weights normalised to sum to 1,
    # and triple it for a sum of 1.5; the running statistics, like the fit, must
    # not depend on the weights' scale.
    X, y = bn_data(n=20, seed=7)
    params = dict(
        hidden_layer_sizes=(4,),
        batch_norm=True,
        solver="lbfgs",
        alpha=0.0,
        max_iter=30,
        random_state=0,
    )
    ref = BPRegressor(**params).fit(X, y)
    for c in (1 / 20, 0.075):
        est = BPRegressor(**params).fit(X, y, sample_weight=np.full(20, c))
        _, var = weighted_stats(first_preactivation(est, X))
        np.testing.assert_allclose(est.bn_running_vars_[0], var, rtol=0.1, err_msg=f"c={c}")
        np.testing.assert_allclose(est.predict(X), ref.predict(X), rtol=0.05, atol=0.05)


# ----------------------------------------------------------------------------
# One SGD and one Adam step worked out by hand
# ----------------------------------------------------------------------------
#
# Network 2 -> 2 (relu) -> 1 (identity), two rows, full batch, alpha = 0:
#   X = [[1, 2], [0, 1]], y = [1, 0]
#   W1 = [[0.1, -0.2], [0.3, 0.4]], b1 = [0.0, -0.45], W2 = [[0.5], [-0.5]], b2 = [0.2]
# Row 1: z1 = [0.7, 0.15] -> h = [0.7, 0.15]; p = 0.35 - 0.075 + 0.2 = 0.475; d = -0.525
# Row 2: z1 = [0.3, -0.05] -> h = [0.3, 0.0];  p = 0.15 + 0.0 + 0.2 = 0.35;  d = 0.35
# loss = 0.5 * (0.525**2 + 0.35**2) / 2 = 0.09953125
# gW2 = [0.7*-0.525 + 0.3*0.35, 0.15*-0.525] / 2 = [-0.13125, -0.039375];  gb2 = -0.0875
# hidden deltas: row 1 [-0.2625, 0.2625]; row 2 [0.175, 0.0] (second unit inactive)
# gW1 = [[-0.13125, 0.13125], [-0.175, 0.2625]];  gb1 = [-0.04375, 0.13125]

HAND_X = np.array([[1.0, 2.0], [0.0, 1.0]])
HAND_Y = np.array([1.0, 0.0])
HAND_COEFS = [np.array([[0.1, -0.2], [0.3, 0.4]]), np.array([[0.5], [-0.5]])]
HAND_INTERCEPTS = [np.array([0.0, -0.45]), np.array([0.2])]
HAND_LOSS = 0.09953125
HAND_GRAD_COEFS = [
    np.array([[-0.13125, 0.13125], [-0.175, 0.2625]]),
    np.array([[-0.13125], [-0.039375]]),
]
HAND_GRAD_INTERCEPTS = [np.array([-0.04375, 0.13125]), np.array([-0.0875])]


def _hand_regressor(solver, **kw):
    return BPRegressor(
        hidden_layer_sizes=(2,),
        activation="relu",
        solver=solver,
        alpha=0.0,
        batch_size=2,
        max_iter=1,
        shuffle=False,
        learning_rate_init=0.1,
        random_state=0,
        **kw,
    )


def test_hand_gradient_matches_reference():
    loss, grad = ref_loss_grad(
        HAND_X, HAND_Y[:, None], np.ones(2), HAND_COEFS, HAND_INTERCEPTS, 0.0, "relu", "identity"
    )
    assert loss == pytest.approx(HAND_LOSS, rel=1e-14)
    expected = np.concatenate([g.ravel() for g in HAND_GRAD_COEFS + HAND_GRAD_INTERCEPTS])
    np.testing.assert_allclose(grad, expected, rtol=1e-13)


@pytest.mark.parametrize("path", ["warm_start", "partial_fit"])
def test_one_sgd_step_by_hand(path):
    est = _hand_regressor("sgd", momentum=0.0, warm_start=(path == "warm_start"))
    if path == "warm_start":
        est.fit(HAND_X, HAND_Y)
    else:
        est.partial_fit(HAND_X, HAND_Y)
    set_params(est, HAND_COEFS, HAND_INTERCEPTS)
    if path == "warm_start":
        est.fit(HAND_X, HAND_Y)
    else:
        est.partial_fit(HAND_X, HAND_Y)
    # W <- W - 0.1 * grad, written out
    expected_coefs = [
        np.array([[0.113125, -0.213125], [0.3175, 0.37375]]),
        np.array([[0.513125], [-0.4960625]]),
    ]
    expected_intercepts = [np.array([0.004375, -0.463125]), np.array([0.20875])]
    got_all = est.coefs_ + est.intercepts_
    for got, exp in zip(got_all, expected_coefs + expected_intercepts, strict=True):
        np.testing.assert_allclose(got, exp, rtol=1e-14, atol=1e-15)
    # the epoch loss is the loss of the one batch, before its update
    assert est.loss_ == pytest.approx(HAND_LOSS, rel=1e-14)
    assert est.loss_curve_[-1] == pytest.approx(HAND_LOSS, rel=1e-14)


def _hand_adam_step(param, grad, lr=0.1, beta_1=0.9, beta_2=0.999, eps=1e-8):
    """First Adam step: m = (1-b1) g, v = (1-b2) g^2, lr_t = lr sqrt(1-b2)/(1-b1)."""
    m = (1 - beta_1) * grad
    v = (1 - beta_2) * grad**2
    lr_t = lr * np.sqrt(1 - beta_2) / (1 - beta_1)
    return param - lr_t * m / (np.sqrt(v) + eps)


def test_one_adam_step_by_hand_estimator():
    est = _hand_regressor("adam", warm_start=True)
    est.fit(HAND_X, HAND_Y)
    set_params(est, HAND_COEFS, HAND_INTERCEPTS)
    est.fit(HAND_X, HAND_Y)  # warm start: a fresh optimizer, t = 1
    params = HAND_COEFS + HAND_INTERCEPTS
    grads = HAND_GRAD_COEFS + HAND_GRAD_INTERCEPTS
    for got, p, g in zip(est.coefs_ + est.intercepts_, params, grads, strict=True):
        np.testing.assert_allclose(got, _hand_adam_step(p, g), rtol=1e-13)
        # the first Adam step moves every parameter by almost exactly lr against its gradient
        np.testing.assert_allclose(got, p - 0.1 * np.sign(g), rtol=0, atol=1e-6)
    assert est.loss_ == pytest.approx(HAND_LOSS, rel=1e-14)


def test_one_adam_step_by_hand_kernel():
    w = np.array([0.5, -1.0, 2.0, 0.0])
    g = np.array([0.2, -0.4, 0.0, 1e-3])
    m, v = np.zeros(4), np.zeros(4)
    adam_step(w, g, m, v, 1, 0.1, 0.9, 0.999, 1e-8, 1.0)
    np.testing.assert_allclose(m, [0.02, -0.04, 0.0, 1e-4], rtol=1e-14)
    np.testing.assert_allclose(v, [0.001 * 0.04, 0.001 * 0.16, 0.0, 0.001 * 1e-6], rtol=1e-12)
    np.testing.assert_allclose(w, _hand_adam_step(np.array([0.5, -1.0, 2.0, 0.0]), g), rtol=1e-14)
    assert w[2] == 2.0  # zero gradient: no move


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_decaying_moments_end_at_zero_not_subnormal(dtype):
    # a parameter whose gradient stays 0 (a dead relu unit's): its moments
    # only decay; they go to 0 when they would leave the normal range (subnormal
    # arithmetic is slow), a NaN stays NaN, and the other moments are untouched
    tiny = np.finfo(dtype).tiny
    g = np.array([0.0, 0.0, np.nan, 0.0], dtype)
    w = np.ones(4, dtype)
    m = np.array([4 * tiny, -4 * tiny, 0.0, 0.5], dtype)
    v = np.array([8 * tiny, 8 * tiny, 0.0, 0.5], dtype)
    vel = m.copy()
    for t in range(1, 100):
        adam_step(w, g, m, v, t, 0.1, 0.9, 0.95, 1e-8, 1.0)
        sgd_step(w[:2], g[:2], vel[:2], 0.1, 0.9, False, 1.0)
        assert not np.any((m != 0) & (np.abs(m) < tiny)), t
        assert not np.any((v != 0) & (v < tiny)), t
        assert not np.any((vel[:2] != 0) & (np.abs(vel[:2]) < tiny)), t
    assert m[0] == m[1] == v[0] == v[1] == vel[0] == vel[1] == 0.0
    assert np.isnan(m[2]) and np.isnan(v[2]) and np.isnan(w[2])
    assert m[3] == pytest.approx(0.5 * 0.9**99, rel=1e-5)
    assert v[3] == pytest.approx(0.5 * 0.95**99, rel=1e-5)


def test_adam_kernel_matches_sklearn_optimizer_over_steps():
    rng = np.random.RandomState(0)
    shapes = [(3, 4), (4,)]
    params = [rng.normal(size=s) for s in shapes]
    sk = AdamOptimizer(
        [p.copy() for p in params], learning_rate_init=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-7
    )
    sk_params = [p.copy() for p in params]
    w = np.concatenate([p.ravel() for p in params])
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t in range(1, 6):
        grads = [rng.normal(size=s) for s in shapes]
        sk.update_params(sk_params, grads)
        adam_step(
            w, np.concatenate([g.ravel() for g in grads]), m, v, t, 0.01, 0.8, 0.99, 1e-7, 1.0
        )
    np.testing.assert_allclose(w, np.concatenate([p.ravel() for p in sk_params]), rtol=1e-13)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_kernel_matches_hand_loop(nesterov):
    rng = np.random.RandomState(1)
    w0 = rng.normal(size=6)
    grads = [rng.normal(size=6) for _ in range(4)]
    lr, momentum = 0.05, 0.9
    # hand loop, scikit-learn's rule
    w_ref, vel = w0.copy(), np.zeros(6)
    for g in grads:
        vel = momentum * vel - lr * g
        w_ref = w_ref + (momentum * vel - lr * g if nesterov else vel)
    # scikit-learn's own optimizer
    sk_params = [w0.copy()]
    sk = SGDOptimizer(sk_params, learning_rate_init=lr, momentum=momentum, nesterov=nesterov)
    w, velocity = w0.copy(), np.zeros(6)
    for g in grads:
        sgd_step(w, g, velocity, lr, momentum, nesterov, 1.0)
        sk.update_params(sk_params, [g])
    np.testing.assert_allclose(w, w_ref, rtol=1e-14)
    np.testing.assert_allclose(velocity, vel, rtol=1e-14)
    np.testing.assert_allclose(w, sk_params[0], rtol=1e-14)


def test_sgd_kernel_first_steps_explicit():
    # momentum 0.5, lr 0.1, g = 1 then 2, from w = 0:
    #   plain:    v1 = -0.1, w1 = -0.1; v2 = -0.05 - 0.2 = -0.25, w2 = -0.35
    #   nesterov: w1 = 0.5 * -0.1 - 0.1 = -0.15; w2 = -0.15 + 0.5 * -0.25 - 0.2 = -0.475
    for nesterov, expected in [(False, [-0.1, -0.35]), (True, [-0.15, -0.475])]:
        w, vel = np.zeros(1), np.zeros(1)
        got = []
        for g in (1.0, 2.0):
            sgd_step(w, np.array([g]), vel, 0.1, 0.5, nesterov, 1.0)
            got.append(w[0])
        np.testing.assert_allclose(got, expected, rtol=1e-14)


# ----------------------------------------------------------------------------
# Parity with scikit-learn's MLP
# ----------------------------------------------------------------------------


def _classification_data():
    X, y = make_classification(
        n_samples=120, n_features=8, n_informative=5, n_classes=3, random_state=0
    )
    return X, y


def _regression_data(n_outputs=1):
    return reg_data(110, n_outputs, n_features=6, link=np.tanh, noise=0.1)


def _assert_same_params(ours, sk, rtol):
    assert len(ours.coefs_) == len(sk.coefs_)
    for a, b in zip(ours.coefs_ + ours.intercepts_, sk.coefs_ + sk.intercepts_, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)


PARITY_PARAMS = [
    dict(solver="sgd", learning_rate_init=0.05),
    dict(solver="sgd", learning_rate_init=0.05, nesterovs_momentum=False),
    dict(solver="sgd", learning_rate_init=0.05, momentum=0.0),
    dict(solver="sgd", learning_rate_init=0.05, learning_rate="invscaling", power_t=0.3),
    dict(solver="adam", learning_rate_init=0.01),
]


@pytest.mark.parametrize("params", PARITY_PARAMS, ids=lambda p: "-".join(map(str, p.values())))
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_classifier_parity_with_sklearn(params, activation):
    X, y = _classification_data()
    kw = dict(
        hidden_layer_sizes=(10, 6),
        activation=activation,
        shuffle=False,
        random_state=1,
        max_iter=8,
        batch_size=32,
        alpha=1e-3,
        **params,
    )
    ours = BPClassifier(**kw).fit(X, y)
    sk = MLPClassifier(**kw).fit(X, y)
    _assert_same_params(ours, sk, rtol=1e-9)
    np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-10)
    assert ours.n_iter_ == sk.n_iter_
    assert ours.t_ == sk.t_
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), rtol=1e-9)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_binary_and_multilabel_parity_with_sklearn(solver):
    Xb, yb = make_classification(n_samples=90, n_features=5, random_state=2)
    Xm, ym = make_multilabel_classification(n_samples=90, n_features=5, n_classes=3, random_state=2)
    for X, y in [(Xb, yb), (Xm / 4.0, ym)]:
        kw = dict(
            hidden_layer_sizes=(8,),
            solver=solver,
            shuffle=False,
            random_state=0,
            max_iter=6,
            batch_size=20,
            learning_rate_init=0.02,
        )
        ours = BPClassifier(**kw).fit(X, y)
        sk = MLPClassifier(**kw).fit(X, y)
        assert ours.out_activation_ == sk.out_activation_ == "logistic"
        _assert_same_params(ours, sk, rtol=1e-9)
        np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-10)
        np.testing.assert_array_equal(ours.predict(X), sk.predict(X))


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_regressor_parity_with_sklearn(solver):
    X, y = _regression_data()
    kw = dict(
        hidden_layer_sizes=(9,),
        solver=solver,
        shuffle=False,
        random_state=0,
        max_iter=10,
        batch_size=25,
        learning_rate_init=0.01,
        alpha=0.01,
    )
    ours = BPRegressor(**kw).fit(X, y)
    sk = MLPRegressor(**kw).fit(X, y)
    _assert_same_params(ours, sk, rtol=1e-9)
    np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-10)
    assert ours.loss_ == pytest.approx(sk.loss_, rel=1e-10)
    np.testing.assert_allclose(ours.predict(X), sk.predict(X), rtol=1e-9)


def test_poisson_regressor_parity_with_sklearn():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(80, 4))
    y = rng.poisson(np.exp(0.5 * X[:, 0])).astype(float)
    kw = dict(
        loss="poisson",
        hidden_layer_sizes=(6,),
        solver="adam",
        shuffle=False,
        random_state=0,
        max_iter=8,
        batch_size=16,
        learning_rate_init=0.01,
    )
    ours = BPRegressor(**kw).fit(X, y)
    sk = MLPRegressor(**kw).fit(X, y)
    _assert_same_params(ours, sk, rtol=1e-9)
    np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-10)


def test_sample_weight_parity_with_sklearn():
    X, y = _classification_data()
    sw = np.random.RandomState(0).uniform(0.1, 3.0, size=y.shape[0])
    kw = dict(
        hidden_layer_sizes=(7,),
        solver="sgd",
        shuffle=False,
        random_state=0,
        max_iter=5,
        batch_size=30,
        learning_rate_init=0.05,
        alpha=0.01,
    )
    ours = BPClassifier(**kw).fit(X, y, sample_weight=sw)
    sk = MLPClassifier(**kw).fit(X, y, sample_weight=sw)
    _assert_same_params(ours, sk, rtol=1e-9)
    np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-10)


def test_multioutput_squared_error_is_summed_over_outputs():
    # Same weights as scikit-learn (the gradient is the same), but loss_ is the
    # half squared error summed over outputs where scikit-learn averages it.
    X, y = _regression_data(n_outputs=2)
    kw = dict(
        hidden_layer_sizes=(5,),
        solver="sgd",
        shuffle=False,
        random_state=0,
        max_iter=1,
        batch_size=X.shape[0],
        learning_rate_init=0.01,
        alpha=0.0,
    )
    ours = BPRegressor(**kw).fit(X, y)
    sk = MLPRegressor(**kw).fit(X, y)
    _assert_same_params(ours, sk, rtol=1e-10)
    # one full batch, alpha = 0: the loss is measured at the initial weights
    assert ours.loss_ == pytest.approx(2 * sk.loss_, rel=1e-12)


def test_lbfgs_reaches_similar_loss_to_sklearn():
    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    kw = dict(hidden_layer_sizes=(6,), solver="lbfgs", random_state=0, max_iter=60)
    ours = BPClassifier(**kw).fit(X, y)
    sk = MLPClassifier(**kw).fit(X, y)
    # same start, same objective and gradient: L-BFGS follows the same path
    assert ours.loss_ == pytest.approx(sk.loss_, rel=1e-4)
    assert ours.score(X, y) >= sk.score(X, y) - 0.02
    Xr, yr = _regression_data()
    ours = BPRegressor(**kw).fit(Xr, yr)
    sk = MLPRegressor(**kw).fit(Xr, yr)
    assert ours.loss_ == pytest.approx(sk.loss_, rel=1e-4)
    _assert_same_params(ours, sk, rtol=1e-4)
    assert ours.n_iter_ == sk.n_iter_
    assert len(ours.loss_curve_) == ours.n_iter_
    assert ours.loss_curve_[-1] == pytest.approx(ours.loss_)
    assert ours.best_loss_ == pytest.approx(min(ours.loss_curve_))


def test_lbfgs_objective_matches_sklearn_at_same_weights():
    X, y = _classification_data()
    sw = np.random.RandomState(0).uniform(0.5, 2.0, size=y.shape[0])
    sk = MLPClassifier(
        hidden_layer_sizes=(5,), solver="lbfgs", random_state=0, max_iter=1, alpha=0.1
    ).fit(X, y, sample_weight=sw)
    ours = BPClassifier(
        hidden_layer_sizes=(5,), solver="lbfgs", random_state=0, max_iter=1, alpha=0.1
    ).fit(X, y, sample_weight=sw)
    set_params(ours, sk.coefs_, sk.intercepts_)
    from sklearn.neural_network._multilayer_perceptron import _pack

    Y = np.eye(3)[y]
    w = _pack(sk.coefs_, sk.intercepts_)
    ref_loss, ref_grad = ref_loss_grad(X, Y, sw, sk.coefs_, sk.intercepts_, 0.1, "relu", "softmax")
    layer_units = [X.shape[1], 5, 3]
    act = [X] + [None] * (len(layer_units) - 1)
    deltas = [None] * (len(act) - 1)
    cg = [np.empty((a, b)) for a, b in zip(layer_units[:-1], layer_units[1:], strict=True)]
    ig = [np.empty(b) for b in layer_units[1:]]
    sk_loss, sk_grad = sk._loss_grad_lbfgs(w, X, Y, sw, act, deltas, cg, ig)
    np.testing.assert_allclose(ref_loss, sk_loss, rtol=1e-12)
    np.testing.assert_allclose(ref_grad, sk_grad, rtol=1e-10, atol=1e-14)
    layout = ours._layout
    problem = Problem(X, np.float64, Y, sw)
    ours_w = ours._packed_params()
    loss, grad = kernel_loss_grad(
        layout, ours_w, problem, layout.codes.copy(), ours._out_code, 0.1, 16
    )
    np.testing.assert_allclose(loss, sk_loss, rtol=1e-12)
    np.testing.assert_allclose(grad, sk_grad, rtol=1e-10, atol=1e-14)


def _in_sklearn_split_order(X, y, kw, units, stratify):
    """Rows reordered so that skbp's time-ordered split equals sklearn's random one.

    With ``shuffle=False`` skbp validates on the last ``validation_fraction`` of
    the rows; scikit-learn draws a random split from ``random_state`` after the
    initial weights.  Replaying those draws and putting sklearn's validation rows
    last gives both libraries the same training and validation rows, in the same
    order, so the rest of early stopping can be compared exactly.
    """
    from sklearn.model_selection import train_test_split

    rs = np.random.RandomState(kw["random_state"])
    Layout(units).init_params(rs, kw.get("activation", "relu"), np.float64)
    idx_train, idx_val = train_test_split(
        np.arange(len(y)), random_state=rs, test_size=kw["validation_fraction"],
        stratify=y if stratify else None,
    )  # fmt: skip
    order = np.concatenate([idx_train, idx_val])
    return X[order], y[order]


def test_early_stopping_parity_with_sklearn():
    X, y = _classification_data()
    kw = dict(
        hidden_layer_sizes=(8,),
        solver="sgd",
        shuffle=False,
        random_state=0,
        max_iter=30,
        learning_rate_init=0.05,
        early_stopping=True,
        validation_fraction=0.25,
        n_iter_no_change=4,
    )
    # multiclass: sklearn does not stratify
    X_ord, y_ord = _in_sklearn_split_order(X, y, kw, [X.shape[1], 8, 3], stratify=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = BPClassifier(**kw).fit(X_ord, y_ord)
        sk = MLPClassifier(**kw).fit(X, y)
    # same validation split, same training, same scores, same restored weights
    np.testing.assert_allclose(ours.validation_scores_, sk.validation_scores_, rtol=1e-12)
    assert ours.best_validation_score_ == pytest.approx(sk.best_validation_score_)
    assert ours.n_iter_ == sk.n_iter_
    _assert_same_params(ours, sk, rtol=1e-9)


@pytest.mark.parametrize(
    "extra",
    [
        dict(learning_rate="adaptive", tol=0.05, n_iter_no_change=2),
        dict(tol=0.02, n_iter_no_change=3),
        dict(solver="adam", tol=0.02, n_iter_no_change=3, learning_rate_init=0.01),
    ],
    ids=["sgd-adaptive", "sgd-stop", "adam-stop"],
)
def test_stopping_rule_parity_with_sklearn(extra):
    # the no-improvement counter, the adaptive division of the learning rate by 5
    # and the stopping decision follow scikit-learn epoch for epoch
    X, y = _classification_data()
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", shuffle=False, random_state=0,
              max_iter=100, batch_size=30, learning_rate_init=0.05)  # fmt: skip
    kw.update(extra)
    ours = BPClassifier(**kw).fit(X, y)
    sk = MLPClassifier(**kw).fit(X, y)
    assert ours.n_iter_ == sk.n_iter_ < 100
    np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-10)
    assert ours.best_loss_ == pytest.approx(sk.best_loss_, rel=1e-10)
    _assert_same_params(ours, sk, rtol=1e-9)


@pytest.mark.parametrize("labels", ["int", "str"])
def test_binary_early_stopping_parity_with_sklearn(labels):
    # single-output classification: the validation split is stratified
    X, y = make_classification(n_samples=100, n_features=5, random_state=3)
    if labels == "str":
        y = np.array(["neg", "pos"])[y]
    kw = dict(hidden_layer_sizes=(6,), solver="sgd", shuffle=False, random_state=0,
              max_iter=40, early_stopping=True, n_iter_no_change=3, learning_rate_init=0.1,
              validation_fraction=0.2)  # fmt: skip
    X_ord, y_ord = _in_sklearn_split_order(X, y, kw, [5, 6, 1], stratify=True)
    ours = BPClassifier(**kw).fit(X_ord, y_ord)
    sk = MLPClassifier(**kw).fit(X, y)
    assert ours.n_iter_ == sk.n_iter_
    np.testing.assert_allclose(ours.validation_scores_, sk.validation_scores_, rtol=1e-12)
    _assert_same_params(ours, sk, rtol=1e-9)


def test_regressor_early_stopping_parity_with_sklearn():
    X, y = _regression_data()
    kw = dict(hidden_layer_sizes=(6,), solver="adam", shuffle=False, random_state=0,
              max_iter=40, early_stopping=True, n_iter_no_change=3, learning_rate_init=0.02,
              validation_fraction=0.2)  # fmt: skip
    n_out = 1 if y.ndim == 1 else y.shape[1]
    X_ord, y_ord = _in_sklearn_split_order(X, y, kw, [X.shape[1], 6, n_out], stratify=False)
    ours = BPRegressor(**kw).fit(X_ord, y_ord)
    sk = MLPRegressor(**kw).fit(X, y)
    assert ours.n_iter_ == sk.n_iter_
    np.testing.assert_allclose(ours.validation_scores_, sk.validation_scores_, rtol=1e-9)
    _assert_same_params(ours, sk, rtol=1e-9)


@pytest.mark.parametrize(
    "kw",
    [
        dict(hidden_layer_sizes=(), solver="sgd", batch_size=16),
        dict(hidden_layer_sizes=(5,), solver="sgd", batch_size=1, max_iter=2),
        dict(hidden_layer_sizes=(4, 4, 3), solver="adam", batch_size=50, activation="logistic"),
    ],
    ids=["no-hidden-layer", "batch-size-1", "three-hidden-logistic"],
)
def test_architecture_parity_with_sklearn(kw):
    X, y = _classification_data()
    kw = dict(shuffle=False, random_state=0, learning_rate_init=0.01, **{"max_iter": 5, **kw})
    ours = BPClassifier(**kw).fit(X, y)
    sk = MLPClassifier(**kw).fit(X, y)
    _assert_same_params(ours, sk, rtol=1e-9)
    np.testing.assert_allclose(ours.loss_curve_, sk.loss_curve_, rtol=1e-10)


def test_lbfgs_parity_with_sklearn_over_several_chunks():
    # 600 rows: the full-batch loss and gradient are summed over 256-row chunks
    rng = np.random.RandomState(0)
    X = rng.normal(size=(600, 5))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    sw = rng.uniform(0.5, 2.0, size=600)
    kw = dict(hidden_layer_sizes=(7,), solver="lbfgs", random_state=0, max_iter=15, alpha=0.01)
    ours = BPClassifier(**kw).fit(X, y, sample_weight=sw)
    sk = MLPClassifier(**kw).fit(X, y, sample_weight=sw)
    assert ours.n_iter_ == sk.n_iter_
    assert ours.loss_ == pytest.approx(sk.loss_, rel=1e-8)
    _assert_same_params(ours, sk, rtol=1e-6)
