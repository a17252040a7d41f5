"""The training toolkit: batch norm, dropout, residual skips, new activations, L1,
class weights, schedules, gradient clipping and diagnostics, and their parameters.

The gradient tests call ``skbp._training.loss_grad`` (the single entry for the
full-batch loss and gradient) the way ``tests/test_gradients.py`` does, with
dropout masks written into the workspace's ``masks`` buffer by hand.  The loss
itself is also compared with an independent NumPy forward pass, which serves
as well to check ``predict`` (running batch-norm statistics, dropout off).
"""

import copy
import io
import math
import pickle
import warnings

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import expit, softmax
from sklearn.datasets import load_digits, load_iris, make_classification, make_regression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split

from skbp import BPClassifier, BPRegressor
from skbp._base import BaseBP
from skbp._data import Problem, Workspace
from skbp._kernels import ACTIVATION_CODES, BN_EPS, OUT_IDENTITY, OUT_SOFTMAX
from skbp._layout import Layout
from skbp._training import loss_grad
from skbp.exceptions import DivergenceWarning, GradientWarning

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

BN_MOMENTUM = 0.1  # documented momentum of the running statistics


# ----------------------------------------------------------------------------
# NumPy reference network
# ----------------------------------------------------------------------------

HIDDEN_FUNCS = {
    "identity": lambda z: z,
    "logistic": expit,
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0.0))),
}


def np_forward(X, coefs, intercepts, activations, out, *, res=None, bn=None, sw=None, masks=None):
    """Output of the network in NumPy.

    ``bn`` is ``(scales, shifts, means, vars)``; with ``sw`` given the batch's
    weighted statistics (biased variance) are used instead of ``means``/``vars``
    (training mode).  ``masks[l]`` multiplies hidden layer ``l``'s activation.
    ``res[l]`` adds the previous hidden layer's output to hidden layer ``l``'s
    (transition ``l``).
    """
    h = np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float64)
    n_trans = len(coefs)
    for l in range(n_trans):
        z = h @ coefs[l] + intercepts[l]
        if l == n_trans - 1:
            if out == "softmax":
                return softmax(z, axis=1)
            return z
        if bn is not None:
            gamma, beta, run_mean, run_var = (b[l] for b in bn)
            if sw is None:
                mean, var = run_mean, run_var
            else:
                mean = np.average(z, axis=0, weights=sw)
                var = np.average((z - mean) ** 2, axis=0, weights=sw)
            z = gamma * (z - mean) / np.sqrt(var + BN_EPS) + beta
        a = HIDDEN_FUNCS[activations[l]](z)
        if masks is not None:
            a = a * masks[l]
        if res is not None and res[l]:
            a = a + h
        h = a
    raise AssertionError("unreachable")


# ----------------------------------------------------------------------------
# Finite-difference gradient checks through loss_grad
# ----------------------------------------------------------------------------

N_ROWS, N_FEATURES = 17, 4
P_DROP = 0.4


def make_problem(out_code, seed=0, sparse=False, n_rows=N_ROWS):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_rows, N_FEATURES))
    if out_code == OUT_SOFTMAX:
        Y = np.eye(3)[rng.randint(3, size=n_rows)]
    else:
        Y = rng.normal(size=(n_rows, 2))
    sw = rng.uniform(0.2, 3.0, size=n_rows)  # non-uniform: BN statistics are weighted
    if sparse:
        X[rng.uniform(size=X.shape) < 0.4] = 0.0
        X = sp.csr_matrix(X)
    return Problem(X, np.float64, Y, sw)


def make_layout(hidden, n_out, *, batch_norm=False, residual=False, activations="tanh"):
    layout = Layout([N_FEATURES, *hidden, n_out], batch_norm=batch_norm)
    if isinstance(activations, str):
        activations = [activations] * len(hidden)
    layout.codes[: len(hidden)] = [ACTIVATION_CODES[a] for a in activations]
    n_res = layout.set_residual(residual)
    if residual:
        assert n_res > 0
    return layout, list(activations)


def random_params(layout, seed, scale=1.0):
    """Parameters with BN scales/shifts away from their identity start."""
    rng = np.random.RandomState(seed + 100)
    w = layout.init_params(rng, "tanh", np.float64) * scale
    n_base = int(layout.int_off[-1] + layout.sizes[-1])
    w[n_base:] = rng.uniform(0.5, 1.5, size=layout.n_params - n_base)
    return w


def random_masks(layout, rows, p, seed):
    """A masks buffer of 0 and 1 / (1 - p) values, as the kernel draws them."""
    rng = np.random.RandomState(seed + 200)
    size = rows * layout.act_width
    return np.where(rng.uniform(size=size) < p, 0.0, 1.0 / (1.0 - p))


def masks_per_layer(layout, masks, rows, n_rows):
    """The (n_rows, width) block of each hidden layer in a masks buffer."""
    out = []
    for l in range(len(layout.sizes) - 2):
        fo, off = int(layout.sizes[l + 1]), rows * int(layout.act_off[l])
        out.append(masks[off : off + n_rows * fo].reshape(n_rows, fo))
    return out


class Objective:
    """``loss_grad`` at fixed data, options and dropout masks, for any ``w``."""

    def __init__(
        self, problem, layout, out_code, *, alpha=0.3, l1_ratio=0.0, drop_p=None, masks=None
    ):
        self.problem, self.layout, self.out_code = problem, layout, out_code
        self.alpha, self.l1_ratio = alpha, l1_ratio
        n_trans = len(layout.sizes) - 1
        self.drop_p = np.zeros(n_trans) if drop_p is None else np.asarray(drop_p, float)
        self.masks = masks
        # batch norm needs every row in one chunk
        self.rows = problem.n_rows

    def __call__(self, w):
        layout = self.layout
        dropout = self.masks is not None
        keep = dropout or bool(layout.res.any())
        ws = Workspace(layout, self.rows, np.float64, self.problem.sparse, dropout, keep)
        if dropout:
            ws.masks[:] = self.masks
        run = layout.new_running_stats(np.float64)
        run0 = run.copy()
        w = np.ascontiguousarray(w, dtype=np.float64)
        loss = loss_grad(
            layout,
            w,
            self.problem,
            ws,
            self.out_code,
            self.alpha,
            self.l1_ratio,
            self.drop_p,
            run,
        )
        # bn_momentum defaults to 0: the running statistics are left alone
        np.testing.assert_array_equal(run, run0)
        return float(loss), ws.grad.copy()


def numeric_gradient(objective, w, h=1e-6):
    g = np.empty_like(w)
    for k in range(w.shape[0]):
        wp, wm = w.copy(), w.copy()
        wp[k] += h
        wm[k] -= h
        g[k] = (objective(wp)[0] - objective(wm)[0]) / (2 * h)
    return g


def assert_gradient_ok(objective, w):
    w0 = w.copy()
    loss, grad = objective(w)
    assert np.isfinite(loss)
    np.testing.assert_array_equal(w, w0)  # the kernel does not touch w
    num = numeric_gradient(objective, w)
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-7)
    return loss, grad


def reference_loss(objective, w, activations):
    """The objective in NumPy: weighted mean loss plus the elastic-net penalty."""
    problem, layout = objective.problem, objective.layout
    coefs, intercepts = layout.unpack(w)
    scales, shifts = layout.unpack_bn(w)
    means, variances = layout.unpack_running(layout.new_running_stats(np.float64))
    bn = (scales, shifts, means, variances) if layout.batch_norm else None
    masks = None
    if objective.masks is not None:
        masks = masks_per_layer(layout, objective.masks, objective.rows, problem.n_rows)
        masks = [m if p > 0 else 1.0 for m, p in zip(masks, objective.drop_p, strict=False)]
    sw = np.asarray(problem.sw)
    out = "softmax" if objective.out_code == OUT_SOFTMAX else "identity"
    P = np_forward(
        problem.X, coefs, intercepts, activations, out, res=layout.res, bn=bn, sw=sw, masks=masks
    )
    Y = np.asarray(problem.Y)
    if out == "softmax":
        per_row = -np.sum(Y * np.log(P), axis=1)
    else:
        per_row = 0.5 * np.sum((P - Y) ** 2, axis=1)
    W = w[: layout.n_coef_params]
    a1, a2 = objective.alpha * objective.l1_ratio, objective.alpha * (1 - objective.l1_ratio)
    penalty = a1 * np.abs(W).sum() + 0.5 * a2 * np.sum(W**2)
    return (np.sum(sw * per_row) + penalty) / sw.sum()


OUTS = {"squared_error": (OUT_IDENTITY, 2), "softmax": (OUT_SOFTMAX, 3)}


def bn_blocks(layout, grad):
    """The (scale, shift) gradient blocks of every hidden layer."""
    return layout.unpack_bn(grad)


@pytest.mark.parametrize("out_name", list(OUTS))
def test_gradient_batch_norm_weighted(out_name):
    out_code, n_out = OUTS[out_name]
    problem = make_problem(out_code)
    layout, acts = make_layout((5, 3), n_out, batch_norm=True)
    w = random_params(layout, 0)
    obj = Objective(problem, layout, out_code)
    loss, grad = assert_gradient_ok(obj, w)
    np.testing.assert_allclose(loss, reference_loss(obj, w, acts), rtol=1e-10)
    scales, shifts = bn_blocks(layout, grad)
    assert len(scales) == 2
    for g in scales + shifts:
        assert np.all(np.abs(g) > 1e-8)
    # batch norm removes the mean: the biases before it get no gradient
    for b in layout.unpack(grad)[1][:-1]:
        np.testing.assert_allclose(b, 0.0, atol=1e-12)
    # the statistics are weighted: unit weights give another gradient
    unit = Problem(problem.X, np.float64, problem.Y, np.ones(N_ROWS))
    _, grad_unit = Objective(unit, layout, out_code)(w)
    assert not np.allclose(grad_unit, grad, rtol=1e-3)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_gradient_dropout_with_fixed_masks(sparse):
    out_code, n_out = OUTS["softmax"]
    problem = make_problem(out_code, seed=1, sparse=sparse)
    layout, acts = make_layout((6, 5), n_out, activations="relu")
    masks = random_masks(layout, N_ROWS, P_DROP, seed=1)
    drop_p = [P_DROP, P_DROP, 0.0]
    obj = Objective(problem, layout, out_code, drop_p=drop_p, masks=masks)
    w = random_params(layout, 1)
    loss, _ = assert_gradient_ok(obj, w)
    # the loss is that of a network with exactly these masks
    np.testing.assert_allclose(loss, reference_loss(obj, w, acts), rtol=1e-10)
    # ... and other masks give another loss: the buffer's masks are used
    other = Objective(
        problem, layout, out_code, drop_p=drop_p, masks=random_masks(layout, N_ROWS, P_DROP, seed=2)
    )
    assert abs(other(w)[0] - loss) > 1e-6


def test_gradient_dropout_rate_per_layer():
    # dropout only on the second hidden layer: the first layer's mask is ignored
    out_code, n_out = OUTS["squared_error"]
    problem = make_problem(out_code, seed=2)
    layout, acts = make_layout((5, 5), n_out, activations="tanh")
    masks = random_masks(layout, N_ROWS, 0.5, seed=3)
    obj = Objective(problem, layout, out_code, drop_p=[0.0, 0.5, 0.0], masks=masks)
    w = random_params(layout, 2)
    loss, _ = assert_gradient_ok(obj, w)
    np.testing.assert_allclose(loss, reference_loss(obj, w, acts), rtol=1e-10)


@pytest.mark.parametrize("out_name", list(OUTS))
def test_gradient_residual(out_name):
    out_code, n_out = OUTS[out_name]
    problem = make_problem(out_code, seed=3)
    layout, acts = make_layout((4, 4, 4), n_out, residual=True)
    np.testing.assert_array_equal(layout.res, [0, 1, 1, 0])
    obj = Objective(problem, layout, out_code)
    w = random_params(layout, 3)
    loss, _ = assert_gradient_ok(obj, w)
    np.testing.assert_allclose(loss, reference_loss(obj, w, acts), rtol=1e-10)
    # the skips change the network
    plain, _ = make_layout((4, 4, 4), n_out)
    assert abs(Objective(problem, plain, out_code)(w)[0] - loss) > 1e-6


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("out_name", list(OUTS))
def test_gradient_everything_combined(out_name, sparse):
    # batch norm + dropout + residual + a different activation per layer + L1/L2
    out_code, n_out = OUTS[out_name]
    problem = make_problem(out_code, seed=4, sparse=sparse)
    layout, acts = make_layout(
        (5, 5, 5),
        n_out,
        batch_norm=True,
        residual=True,
        activations=["elu", "leaky_relu", "logistic"],
    )
    masks = random_masks(layout, N_ROWS, 0.3, seed=4)
    w = random_params(layout, 4, scale=1.5)
    n_coef = layout.n_coef_params
    w[:n_coef] += np.where(w[:n_coef] >= 0, 1e-3, -1e-3)  # no weight within h of 0
    obj = Objective(
        problem, layout, out_code, alpha=0.2, l1_ratio=0.5, drop_p=[0.3, 0.2, 0.3, 0.0], masks=masks
    )
    loss, grad = assert_gradient_ok(obj, w)
    np.testing.assert_allclose(loss, reference_loss(obj, w, acts), rtol=1e-10)
    for g in sum(bn_blocks(layout, grad), []):
        assert np.all(np.abs(g) > 1e-8)


@pytest.mark.parametrize("activation", ["leaky_relu", "elu"])
def test_gradient_new_activations(activation):
    out_code, n_out = OUTS["squared_error"]
    problem = make_problem(out_code, seed=5)
    layout, acts = make_layout((6, 4), n_out, activations=activation)
    w = random_params(layout, 5, scale=2.0)
    obj = Objective(problem, layout, out_code)
    loss, _ = assert_gradient_ok(obj, w)
    np.testing.assert_allclose(loss, reference_loss(obj, w, acts), rtol=1e-10)
    # both branches of the activation are exercised
    coefs, intercepts = layout.unpack(w)
    z = np.asarray(problem.X) @ coefs[0] + intercepts[0]
    assert (z < 0).mean() > 0.2 and (z > 0).mean() > 0.2


def test_gradient_per_layer_activations():
    out_code, n_out = OUTS["softmax"]
    problem = make_problem(out_code, seed=6)
    acts = ["logistic", "elu", "leaky_relu", "tanh"]
    layout, acts = make_layout((4, 5, 3, 4), n_out, activations=acts)
    np.testing.assert_array_equal(layout.codes[:4], [ACTIVATION_CODES[a] for a in acts])
    w = random_params(layout, 6, scale=1.5)
    obj = Objective(problem, layout, out_code)
    loss, _ = assert_gradient_ok(obj, w)
    np.testing.assert_allclose(loss, reference_loss(obj, w, acts), rtol=1e-10)
    # a single activation for every layer is another network
    same, _ = make_layout((4, 5, 3, 4), n_out, activations="tanh")
    assert abs(Objective(problem, same, out_code)(w)[0] - loss) > 1e-6


@pytest.mark.parametrize("l1_ratio", [0.5, 1.0])
def test_gradient_l1_penalty(l1_ratio):
    out_code, n_out = OUTS["squared_error"]
    problem = make_problem(out_code, seed=7)
    layout, acts = make_layout((5,), n_out)
    w = random_params(layout, 7)
    n_coef = layout.n_coef_params
    w[:n_coef] += np.where(w[:n_coef] >= 0, 1e-3, -1e-3)  # no weight within h of 0
    obj = Objective(problem, layout, out_code, alpha=0.7, l1_ratio=l1_ratio)
    loss, grad = assert_gradient_ok(obj, w)
    np.testing.assert_allclose(loss, reference_loss(obj, w, acts), rtol=1e-10)
    # the penalty's gradient: alpha * (l1 * sign(W) + (1 - l1) * W) / sum(sw), W only
    _, grad0 = Objective(problem, layout, out_code, alpha=0.0)(w)
    W = w[:n_coef]
    expected = 0.7 * (l1_ratio * np.sign(W) + (1 - l1_ratio) * W) / problem.sw.sum()
    np.testing.assert_allclose(grad[:n_coef] - grad0[:n_coef], expected, atol=1e-13)
    np.testing.assert_array_equal(grad[n_coef:], grad0[n_coef:])


# ----------------------------------------------------------------------------
# Batch norm's running statistics
# ----------------------------------------------------------------------------


def bn_data(n=40, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 3)) * [1.0, 2.0, 0.5] + [0.5, -1.0, 2.0]
    y = X[:, 0] - X[:, 1] ** 2 / 4 + 0.1 * rng.normal(size=n)
    return X, y


def weighted_stats(Z, sw=None):
    """Weighted mean and (biased) variance: batch norm's running statistics (as Keras)."""
    sw = np.ones(Z.shape[0]) if sw is None else np.asarray(sw, dtype=np.float64)
    mean = np.average(Z, axis=0, weights=sw)
    var = np.average((Z - mean) ** 2, axis=0, weights=sw)
    return mean, var


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
    bmean = np.average(z, axis=0, weights=sw)
    bvar = np.average((z - bmean) ** 2, axis=0, weights=sw)
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
# Class weights
# ----------------------------------------------------------------------------


def imbalanced_data(n=1000, seed=0):
    X, y = make_classification(
        n_samples=n,
        n_features=6,
        n_informative=3,
        n_redundant=0,
        weights=[0.95],
        flip_y=0.01,
        class_sep=0.8,
        random_state=seed,
    )
    return train_test_split(X, y, test_size=0.5, stratify=y, random_state=0)


def test_class_weight_balanced_improves_balanced_accuracy():
    X_train, X_test, y_train, y_test = imbalanced_data()
    assert 0.02 < y_train.mean() < 0.1
    scores = {}
    for cw in (None, "balanced"):
        est = BPClassifier(
            hidden_layer_sizes=(8,),
            alpha=1.0,
            class_weight=cw,
            max_iter=100,
            learning_rate_init=0.01,
            random_state=0,
        ).fit(X_train, y_train)
        scores[cw] = balanced_accuracy_score(y_test, est.predict(X_test))
    assert scores["balanced"] > scores[None] + 0.1, scores


def test_class_weight_dict_equals_sample_weight():
    X, y = load_iris(return_X_y=True)
    cw = {0: 0.5, 1: 3.0, 2: 1.5}
    params = dict(hidden_layer_sizes=(5,), max_iter=20, random_state=0, batch_norm=True)
    a = BPClassifier(class_weight=cw, **params).fit(X, y)
    sw = np.array([cw[c] for c in y])
    b = BPClassifier(**params).fit(X, y, sample_weight=sw)
    for u, v in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
        np.testing.assert_array_equal(u, v)
    # a class left out of the dict weighs 1
    c = BPClassifier(class_weight={1: 3.0}, **params).fit(X, y)
    d = BPClassifier(**params).fit(X, y, sample_weight=np.where(y == 1, 3.0, 1.0))
    np.testing.assert_array_equal(c.coefs_[0], d.coefs_[0])
    assert not np.array_equal(a.coefs_[0], BPClassifier(**params).fit(X, y).coefs_[0])


@pytest.mark.parametrize("cw", ["balanced", {0: 2.0, 1: 0.5, 2: 4.0}], ids=["balanced", "dict"])
def test_class_weight_multiplies_sample_weight(cw):
    X, y = load_iris(return_X_y=True)
    X, y = X[:130], y[:130]  # unequal class counts: 'balanced' is not uniform
    sw = np.random.RandomState(0).uniform(0.5, 2.0, size=y.shape[0])
    params = dict(hidden_layer_sizes=(5,), max_iter=20, random_state=0)
    a = BPClassifier(class_weight=cw, **params).fit(X, y, sample_weight=sw)
    if cw == "balanced":
        counts = np.bincount(y)
        per_class = y.shape[0] / (len(counts) * counts)
    else:
        per_class = np.array([cw[k] for k in range(3)])
    b = BPClassifier(**params).fit(X, y, sample_weight=sw * per_class[y])
    for u, v in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-14)


def test_class_weight_errors():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match=r"class_weight.*\[5\]"):
        BPClassifier(class_weight={0: 1.0, 5: 2.0}, max_iter=2).fit(X, y)
    est = BPClassifier(class_weight="balanced", max_iter=2)
    with pytest.raises(ValueError, match="class_weight='balanced'.*partial_fit"):
        est.partial_fit(X, y, classes=[0, 1, 2])
    # a dict works with partial_fit
    BPClassifier(class_weight={0: 2.0}).partial_fit(X, y, classes=[0, 1, 2])


# ----------------------------------------------------------------------------
# L1 penalty
# ----------------------------------------------------------------------------


def test_l1_ratio_one_gives_sparser_weights():
    X, y = make_regression(n_samples=200, n_features=20, n_informative=3, noise=1.0, random_state=0)
    X /= X.std(axis=0)
    y = (y - y.mean()) / y.std()
    n_small = {}
    for l1_ratio in (0.0, 1.0):
        est = BPRegressor(
            hidden_layer_sizes=(10,),
            solver="sgd",
            alpha=5.0,
            l1_ratio=l1_ratio,
            learning_rate_init=0.01,
            max_iter=300,
            random_state=0,
        ).fit(X, y)
        w = np.concatenate([c.ravel() for c in est.coefs_])
        n_small[l1_ratio] = int(np.sum(np.abs(w) < 1e-3))
        assert est.score(X, y) > 0.9
    assert n_small[1.0] > n_small[0.0] + 50, n_small


# ----------------------------------------------------------------------------
# Gradient diagnostics
# ----------------------------------------------------------------------------


def digits_small():
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16.0, y[:300]


def fit_recording(est, X, y, **kw):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        est.fit(X, y, **kw)
    return [r for r in rec if issubclass(r.category, GradientWarning)]


def test_vanishing_gradient_warns_once_for_deep_sigmoid_net():
    X, y = digits_small()
    est = BPClassifier(
        hidden_layer_sizes=(16,) * 12, activation="logistic", max_iter=5, random_state=0
    )
    grad_warnings = fit_recording(est, X, y)
    assert len(grad_warnings) == 1
    msg = str(grad_warnings[0].message)
    assert "Vanishing" in msg
    assert "layer 1 of 13" in msg
    g = est.gradient_norms_
    assert g.shape == (est.n_iter_, est.n_layers_ - 1) == (5, 13)
    assert np.isfinite(g).all()
    assert np.all(g[:, 0] < 1e-4 * g[:, -1])
    # once per fit: a second fit warns again, once
    assert len(fit_recording(est, X, y)) == 1


def test_no_gradient_warning_for_deep_relu_batch_norm_net():
    X, y = digits_small()
    est = BPClassifier(
        hidden_layer_sizes=(16,) * 12,
        activation="relu",
        batch_norm=True,
        max_iter=5,
        random_state=0,
    )
    assert fit_recording(est, X, y) == []
    g = est.gradient_norms_
    assert g.shape == (est.n_iter_, 13)
    assert np.isfinite(g).all() and np.all(g > 0)
    assert np.all(g[:, 0] > 1e-2 * g[:, -1])


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
    ws = Workspace(layout, 30, np.float64, False)
    loss_grad(
        layout,
        w0,
        problem,
        ws,
        OUT_IDENTITY,
        0.0,
        0.0,
        np.zeros(3),
        layout.new_running_stats(np.float64),
    )
    expected = [np.linalg.norm(g) for g in layout.unpack(ws.grad)[0]]
    assert est.gradient_norms_.shape == (1, 3)
    np.testing.assert_allclose(est.gradient_norms_[0], expected, rtol=1e-10)


def test_gradient_norms_lbfgs_shape():
    X, y = digits_small()
    est = BPClassifier(hidden_layer_sizes=(8, 8), solver="lbfgs", max_iter=7, random_state=0)
    est.fit(X, y)
    assert est.gradient_norms_.shape == (est.n_iter_, 3)
    assert np.isfinite(est.gradient_norms_).all()


def exploding_data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(100, 4)) * 100
    y = X @ rng.normal(size=4) * 1e3  # unscaled, huge targets
    return X, y


def test_exploding_gradient_warns():
    X, y = exploding_data()
    est = BPRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    grad_warnings = fit_recording(est, X, y)
    assert len(grad_warnings) == 1
    msg = str(grad_warnings[0].message)
    assert "Exploding" in msg and "max_grad_norm" in msg
    assert "layer" in msg
    assert est.gradient_norms_.max() > 1e4
    # scaled targets do not warn
    assert (
        fit_recording(
            BPRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0), X / 100, y / y.std()
        )
        == []
    )


def test_verbose_prints_gradient_norms(capsys):
    X, y = digits_small()
    BPClassifier(hidden_layer_sizes=(4, 4), max_iter=3, verbose=True, random_state=0).fit(X, y)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "gradient norms" in line]
    assert len(lines) == 3
    assert lines[0].startswith("Iteration 1,")


# ----------------------------------------------------------------------------
# Parameter validation
# ----------------------------------------------------------------------------

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
    (dict(learning_rate="cosine"), "learning_rate"),
]


@pytest.mark.parametrize("cls", [BPClassifier, BPRegressor])
@pytest.mark.parametrize("params,name", BAD_PARAMS, ids=[str(p) for p, _ in BAD_PARAMS])
def test_bad_parameters_raise_naming_the_parameter(cls, params, name):
    X, y = load_iris(return_X_y=True)
    base = dict(hidden_layer_sizes=(4, 4), max_iter=2)
    est = cls(**{**base, **params})
    with pytest.raises((ValueError, TypeError), match=name):
        est.fit(X, y)


# ----------------------------------------------------------------------------
# Persistence, determinism of predict, dropout off at predict
# ----------------------------------------------------------------------------


def toolkit_classifier(**kw):
    params = dict(
        hidden_layer_sizes=(6, 6),
        batch_norm=True,
        dropout=[0.3, 0.2],
        residual=True,
        max_iter=15,
        learning_rate_init=0.01,
        random_state=0,
    )
    return BPClassifier(**{**params, **kw})


def manual_predict_proba(est, X):
    acts = [est.activation] * (est.n_layers_ - 2)
    res = est._layout.res if est.residual else None
    bn = (est.bn_scales_, est.bn_shifts_, est.bn_running_means_, est.bn_running_vars_)
    return np_forward(X, est.coefs_, est.intercepts_, acts, "softmax", res=res, bn=bn)


@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_pickle_batch_norm_dropout_model(dump):
    X, y = load_iris(return_X_y=True)
    est = toolkit_classifier().fit(X, y)
    if dump == "pickle":
        est2 = pickle.loads(pickle.dumps(est))
    else:
        buf = io.BytesIO()
        joblib.dump(est, buf)
        buf.seek(0)
        est2 = joblib.load(buf)
    np.testing.assert_array_equal(est2.predict_proba(X), est.predict_proba(X))
    np.testing.assert_array_equal(est2.predict(X), est.predict(X))
    for name in BaseBP._VIEWS:  # every fitted parameter list
        a, b = getattr(est, name), getattr(est2, name)
        assert len(a) == len(b) > 0
        for u, v in zip(a, b, strict=True):
            np.testing.assert_array_equal(u, v)
    # the running statistics are not the initial (0, 1)
    assert not np.allclose(est2.bn_running_vars_[0], 1.0)
    # in-place edits of the restored running statistics reach predict
    est2.bn_running_means_[0][...] += 1.0
    assert not np.allclose(est2.predict_proba(X), est.predict_proba(X))


def test_predict_deterministic_and_dropout_off():
    X, y = load_iris(return_X_y=True)
    est = toolkit_classifier().fit(X, y)
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


def test_dropout_is_applied_in_training():
    X, y = load_iris(return_X_y=True)
    a = toolkit_classifier(dropout=0.0).fit(X, y)
    b = toolkit_classifier().fit(X, y)
    assert not np.allclose(a.coefs_[0], b.coefs_[0])


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
    penalty = 0.5 * est.alpha * sum(np.sum(c**2) for c in est.coefs_) / X.shape[0]
    expected = 0.5 * np.mean((est.predict(X) - y) ** 2) + penalty
    assert np.isfinite(est.loss_)
    np.testing.assert_allclose(est.loss_, expected, rtol=1e-8)


# ----------------------------------------------------------------------------
# Learning-rate schedules, batch_size='full', hidden_layer_sizes='auto', clipping
# ----------------------------------------------------------------------------


def reg_data(n=60, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 4))
    y = np.sin(X @ rng.normal(size=4)) + 0.05 * rng.normal(size=n)
    return X, y


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_exponential_schedule(solver):
    X, y = reg_data()
    lr0, d = 0.01, 0.8
    params = dict(
        hidden_layer_sizes=(6,),
        solver=solver,
        learning_rate_init=lr0,
        max_iter=7,
        n_iter_no_change=100,
        random_state=0,
    )
    est = BPRegressor(learning_rate="exponential", decay_rate=d, **params).fit(X, y)
    assert est.n_iter_ == 7
    np.testing.assert_allclose(est._optimizer.learning_rate, lr0 * d**est.n_iter_, rtol=1e-12)
    # the decayed rate is the one the updates use
    const = BPRegressor(learning_rate="constant", **params).fit(X, y)
    assert const._optimizer.learning_rate == lr0
    assert not np.allclose(est.coefs_[0], const.coefs_[0])
    one = BPRegressor(learning_rate="exponential", decay_rate=1.0, **params).fit(X, y)
    np.testing.assert_array_equal(one.coefs_[0], const.coefs_[0])


def test_invscaling_and_adaptive_apply_to_adam():
    X, y = reg_data()
    lr0 = 0.01
    params = dict(hidden_layer_sizes=(6,), solver="adam", learning_rate_init=lr0, random_state=0)
    const = BPRegressor(max_iter=4, n_iter_no_change=100, **params).fit(X, y)
    inv = BPRegressor(
        learning_rate="invscaling", power_t=0.5, max_iter=4, n_iter_no_change=100, **params
    ).fit(X, y)
    assert inv.t_ == 4 * X.shape[0]
    np.testing.assert_allclose(inv._optimizer.learning_rate, lr0 / (inv.t_ + 1) ** 0.5)
    assert not np.allclose(inv.coefs_[0], const.coefs_[0])
    # adaptive: tol so large that no epoch improves; after n_iter_no_change + 1
    # epochs without improvement (the first epoch sets the reference) the rate
    # is divided by 5 and training goes on
    ada = BPRegressor(
        learning_rate="adaptive", tol=1e10, n_iter_no_change=2, max_iter=4, **params
    ).fit(X, y)
    assert ada.n_iter_ == 4
    np.testing.assert_allclose(ada._optimizer.learning_rate, lr0 / 5)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_batch_size_full_equals_n_samples(solver):
    X, y = reg_data()
    params = dict(
        hidden_layer_sizes=(5, 5),
        solver=solver,
        batch_norm=True,
        dropout=0.2,
        max_iter=5,
        random_state=0,
    )
    a = BPRegressor(batch_size="full", **params).fit(X, y)
    b = BPRegressor(batch_size=X.shape[0], **params).fit(X, y)
    for u, v in zip(
        a.coefs_ + a.intercepts_ + a.bn_running_vars_,
        b.coefs_ + b.intercepts_ + b.bn_running_vars_,
        strict=True,
    ):
        np.testing.assert_array_equal(u, v)
    c = BPRegressor(batch_size=X.shape[0] // 2, **params).fit(X, y)
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])


RNG = np.random.RandomState(0)


@pytest.mark.parametrize(
    "cls,X,y",
    [
        (BPClassifier, *load_iris(return_X_y=True)),
        (BPClassifier, RNG.normal(size=(10, 7)), np.arange(10) % 2),
        (BPRegressor, RNG.normal(size=(10, 5)), RNG.normal(size=(10, 2))),
        (BPRegressor, RNG.normal(size=(10, 1)), RNG.normal(size=10)),
    ],
    ids=["iris", "binary-7", "reg-5-2", "reg-1-1"],
)
def test_hidden_layer_sizes_auto(cls, X, y):
    est = cls(hidden_layer_sizes="auto", max_iter=2).fit(X, y)
    expected = max(1, round(1.5 * (X.shape[1] + est.n_outputs_) / 2))
    assert len(est.coefs_) == 2
    assert est.coefs_[0].shape == (X.shape[1], expected)
    assert est.hidden_layer_sizes == "auto"  # the parameter is not modified


def flat(est):
    return np.concatenate([a.ravel() for a in est.coefs_ + est.intercepts_])


def test_max_grad_norm_scales_one_full_batch_step():
    X, y = reg_data()
    lr = 0.05
    start = BPRegressor(
        hidden_layer_sizes=(6,),
        solver="sgd",
        batch_size="full",
        momentum=0.0,
        shuffle=False,
        max_iter=1,
        learning_rate_init=lr,
        alpha=0.01,
        random_state=0,
    ).fit(X, y)
    w0 = flat(start)

    def one_step(**kw):
        est = copy.deepcopy(start).set_params(warm_start=True, **kw)
        est.fit(X, y)
        return flat(est) - w0

    step = one_step()
    grad = step / -lr
    norm = np.linalg.norm(grad)
    assert norm > 0.1
    c = 0.3 * norm
    clipped = one_step(max_grad_norm=c)
    np.testing.assert_allclose(clipped, step * (c / norm), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(np.linalg.norm(clipped / -lr), c, rtol=1e-9)
    # a bound above the gradient's norm changes nothing
    np.testing.assert_array_equal(one_step(max_grad_norm=2 * norm), step)


def test_max_grad_norm_bounds_every_update():
    # huge targets: unclipped SGD diverges; each clipped update moves the
    # weights by at most lr * max_grad_norm
    X, y = exploding_data()
    lr, c, batch = 1e-3, 1.0, 20
    params = dict(
        hidden_layer_sizes=(8,),
        solver="sgd",
        momentum=0.0,
        batch_size=batch,
        learning_rate_init=lr,
        max_iter=3,
        random_state=0,
    )
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        BPRegressor(**params).fit(X, y)
    assert any(issubclass(r.category, DivergenceWarning) for r in rec)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        tame = BPRegressor(max_grad_norm=c, **params).fit(X, y)
    assert not any(issubclass(r.category, DivergenceWarning) for r in rec)
    assert tame.n_iter_ == 3
    w0 = Layout([4, 8, 1]).init_params(np.random.RandomState(0), "relu", np.float64)
    moved = np.linalg.norm(flat(tame) - w0)
    n_updates = tame.n_iter_ * X.shape[0] // batch
    assert 0 < moved <= lr * c * n_updates * (1 + 1e-9)


# ----------------------------------------------------------------------------
# Residual warning, early stopping on the last rows
# ----------------------------------------------------------------------------


def test_residual_without_equal_widths_warns():
    X, y = reg_data()
    with pytest.warns(UserWarning, match="residual"):
        BPRegressor(hidden_layer_sizes=(5, 4, 3), residual=True, max_iter=2).fit(X, y)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        est = BPRegressor(hidden_layer_sizes=(5, 5, 3), residual=True, max_iter=2).fit(X, y)
    assert not [r for r in rec if "residual" in str(r.message)]
    np.testing.assert_array_equal(est._layout.res, [0, 1, 0, 0])


def ordered_data(flipped_at_end):
    """80 rows whose label is x0 > 0, except 20 rows with the label flipped."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(100, 2))
    y = (X[:, 0] > 0).astype(int)
    flip = slice(80, 100) if flipped_at_end else slice(0, 20)
    y[flip] = 1 - y[flip]
    return X, y


def test_early_stopping_without_shuffle_holds_out_the_last_rows():
    params = dict(
        hidden_layer_sizes=(8,),
        early_stopping=True,
        shuffle=False,
        validation_fraction=0.2,
        learning_rate_init=0.02,
        max_iter=60,
        n_iter_no_change=5,
        random_state=0,
    )
    X, y = ordered_data(flipped_at_end=True)
    est = BPClassifier(**params).fit(X, y)
    n_val = math.ceil(0.2 * X.shape[0])
    assert n_val == 20
    # the restored (best) model scores best_validation_score_ on the last rows
    assert est.best_validation_score_ == max(est.validation_scores_)
    assert est.score(X[-n_val:], y[-n_val:]) == est.best_validation_score_
    # the last rows' labels are the opposite of the rule the other rows follow
    assert max(est.validation_scores_) < 0.5
    # with the flipped rows at the start, the held-out last rows are easy
    X2, y2 = ordered_data(flipped_at_end=False)
    est2 = BPClassifier(**params).fit(X2, y2)
    assert est2.best_validation_score_ > 0.8
    assert est2.score(X2[-n_val:], y2[-n_val:]) == est2.best_validation_score_


# ----------------------------------------------------------------------------
# dtypes, sparse input, reproducibility
# ----------------------------------------------------------------------------


def test_float32_with_batch_norm_dropout_residual():
    X, y = load_iris(return_X_y=True)
    est = toolkit_classifier().fit(X.astype(np.float32), y)
    for name in BaseBP._VIEWS:  # every fitted parameter list
        assert all(a.dtype == np.float32 for a in getattr(est, name)), name
    assert est.predict_proba(X.astype(np.float32)).dtype == np.float32
    assert est.predict_proba(X).dtype == np.float32
    assert est.score(X, y) > 0.7
    est64 = toolkit_classifier().fit(X, y)
    assert est64.coefs_[0].dtype == np.float64
    np.testing.assert_allclose(est.predict_proba(X), est64.predict_proba(X), atol=2e-2)


@pytest.mark.parametrize("cls", [BPClassifier, BPRegressor])
def test_sparse_equals_dense_with_toolkit_options(cls):
    X, y = load_iris(return_X_y=True)
    if cls is BPRegressor:
        y = X[:, 3] + 0.5 * X[:, 0]
    X = X.copy()
    X[np.random.RandomState(0).uniform(size=X.shape) < 0.3] = 0.0
    params = dict(
        hidden_layer_sizes=(6, 6),
        batch_norm=True,
        dropout=0.25,
        residual=True,
        max_iter=10,
        batch_size=32,
        random_state=0,
    )
    dense = cls(**params).fit(X, y)
    csr = cls(**params).fit(sp.csr_matrix(X), y)
    for name in ("coefs_", "intercepts_", "bn_scales_", "bn_running_means_", "bn_running_vars_"):
        for u, v in zip(getattr(dense, name), getattr(csr, name), strict=True):
            np.testing.assert_allclose(u, v, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(
        csr.predict(sp.csr_matrix(X)), dense.predict(X), rtol=1e-7, atol=1e-9
    )


def test_dropout_masks_come_from_random_state():
    X, y = load_iris(return_X_y=True)
    a = toolkit_classifier(random_state=3).fit(X, y)
    b = toolkit_classifier(random_state=3).fit(X, y)
    for u, v in zip(a.coefs_ + a.bn_running_means_, b.coefs_ + b.bn_running_means_, strict=True):
        np.testing.assert_array_equal(u, v)
    c = toolkit_classifier(random_state=4).fit(X, y)
    assert not np.allclose(a.coefs_[1], c.coefs_[1])
    # from the same weights without shuffling, random_state only drives the masks
    start = toolkit_classifier(shuffle=False, max_iter=1).fit(X, y)

    def go_on(random_state, **kw):
        est = copy.deepcopy(start).set_params(warm_start=True, random_state=random_state, **kw)
        return est.fit(X, y).coefs_[0]

    np.testing.assert_array_equal(go_on(3), go_on(3))
    assert not np.allclose(go_on(3), go_on(4))
    np.testing.assert_array_equal(go_on(3, dropout=0.0), go_on(4, dropout=0.0))
