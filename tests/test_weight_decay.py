"""Decoupled weight decay (AdamW, SGDW): one step worked by hand, the estimators, validation.

The decay shrinks the weights in the optimizer step, ``w <- (1 - lr * wd) * w``,
apart from the gradient (Loshchilov and Hutter, 2019), and by default leaves
the biases and batch norm's parameters alone.
"""

import copy
import warnings

import numba
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.utils._param_validation import InvalidParameterError

import skbp._update as upd
from skbp import BPClassifier, BPRegressor
from skbp._optim import SOLVER_ADAM, SOLVER_SGD, adam_step, sgd_step
from skbp._records import Optimizer
from skbp._runtime import thread_context
from skbp._update import param_blocks, step_blocks

X_IRIS, Y_IRIS = load_iris(return_X_y=True)

# a network of two inputs and one output: weights w[0:2], bias w[2]
BLOCKS = param_blocks(np.array([2, 1]), np.array([0]), 3)
W0 = np.array([0.5, -1.0, 0.3])
G = np.array([0.1, -0.2, 0.4])


def _record(solver, lr, momentum, nesterov, m, v, t, wd, decay_biases):
    """An optimizer record at a constant learning rate (no per-update schedule)."""
    return Optimizer(solver, lr, momentum, nesterov, 0.9, 0.999, 1e-8, m, v, np.array([t]),
                     wd, decay_biases, 0, 0.0, 0.0, 1, 0, 1)  # fmt: skip


def _step(solver, w, m, v, t, lr, momentum, nesterov, wd, decay_biases):
    opt = _record(solver, lr, momentum, nesterov, m, v, t, wd, decay_biases)
    step_blocks(BLOCKS, w, G.copy(), 1.0, opt, lr, np.empty((len(BLOCKS), 4)), True)


@pytest.mark.parametrize("decay_biases", [False, True])
def test_one_adamw_step_by_hand(decay_biases):
    w, m, v = W0.copy(), np.zeros(3), np.zeros(3)
    _step(SOLVER_ADAM, w, m, v, 1, 0.1, 0.0, False, 0.5, decay_biases)
    # first step: m = 0.1 g, v = 0.001 g^2, so the Adam step is lr * sign(g)
    # (up to eps); the decay multiplies by 1 - 0.1 * 0.5 = 0.95 first
    bias = 0.3 * 0.95 - 0.1 if decay_biases else 0.3 - 0.1
    np.testing.assert_allclose(w, [0.475 - 0.1, -0.95 + 0.1, bias], atol=1e-6)
    # and exactly PyTorch's AdamW order: shrink, then the bias-corrected step
    keep = np.array([0.95, 0.95, 0.95 if decay_biases else 1.0])
    mr, vr = 0.1 * G, 0.001 * G * G
    lr_t = 0.1 * np.sqrt(1 - 0.999) / (1 - 0.9)
    np.testing.assert_allclose(w, W0 * keep - lr_t * mr / (np.sqrt(vr) + 1e-8), rtol=1e-14)
    np.testing.assert_allclose(m, mr, rtol=1e-15)


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("decay_biases", [False, True])
def test_one_sgdw_step_by_hand(nesterov, decay_biases):
    w, vel = W0.copy(), np.array([0.2, 0.0, -0.1])
    _step(SOLVER_SGD, w, vel, np.zeros(0), 0, 0.1, 0.9, nesterov, 0.5, decay_biases)
    # velocity 0.9 v - 0.1 g = [0.17, 0.02, -0.13], not touched by the decay
    np.testing.assert_allclose(vel, [0.17, 0.02, -0.13], rtol=1e-14)
    # the step: v, or Nesterov's 0.9 v - 0.1 g = [0.143, 0.038, -0.157]
    step = [0.143, 0.038, -0.157] if nesterov else [0.17, 0.02, -0.13]
    bias = 0.3 * 0.95 if decay_biases else 0.3
    np.testing.assert_allclose(w, np.array([0.475, -0.95, bias]) + step, rtol=1e-14)


@pytest.mark.parametrize("solver", [SOLVER_SGD, SOLVER_ADAM])
def test_zero_weight_decay_is_the_plain_step(solver):
    # decay_biases without weight decay changes nothing either
    w, m = W0.copy(), np.full(3, 0.1)
    v = np.full(3 if solver == SOLVER_ADAM else 0, 0.2)
    wr, mr, vr = w.copy(), m.copy(), v.copy()
    _step(solver, w, m, v, 2, 0.1, 0.9, True, 0.0, True)
    if solver == SOLVER_SGD:
        sgd_step(wr, G, mr, 0.1, 0.9, True, 1.0)
    else:
        adam_step(wr, G, mr, vr, 2, 0.1, 0.9, 0.999, 1e-8, 1.0)
    for x, y in ((w, wr), (m, mr), (v, vr)):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("solver", [SOLVER_SGD, SOLVER_ADAM])
def test_decay_in_the_parallel_sweep_gives_the_serial_bits(dtype, solver, monkeypatch):
    # weights of 300 x 256 and 256 x 3, then 259 biases: weight and bias blocks
    n = 300 * 256 + 256 * 3 + 259
    blocks = param_blocks(np.array([300, 256, 3]), np.array([0, 300 * 256]), n)
    rng = np.random.default_rng(0)
    w0, g = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    results = []
    for par_min in (2**62, 1):  # serial, then parallel
        monkeypatch.setattr(upd, "PAR_MIN_PARAMS", par_min)
        w, m = w0.copy(), np.zeros(n, dtype)
        v = np.zeros(n if solver == SOLVER_ADAM else 0, dtype)
        opt = _record(solver, 0.01, 0.9, True, m, v, 1, 0.1, False)
        with thread_context(2) as gov:
            numba.set_num_threads(gov.n_max)
            step_blocks.py_func(blocks, w, g.copy(), 1.0, opt, 0.01, np.empty((len(blocks), 4)),
                                True)  # fmt: skip
        results.append(w)
    np.testing.assert_array_equal(results[0], results[1])


def _quiet_fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("decay_biases", [False, True])
def test_estimator_update_shrinks_the_weights_and_leaves_biases(solver, decay_biases):
    """One full-batch update with and without decay from the same start: the
    weights differ by exactly the shrink, the biases only when asked."""
    y = Y_IRIS.astype(float)
    start = _quiet_fit(
        BPRegressor(hidden_layer_sizes=(5,), solver=solver, batch_size="full", max_iter=1,
                    shuffle=False, random_state=0, learning_rate_init=0.05),
        X_IRIS, y,
    )  # fmt: skip
    # a warm start continues the weights with a fresh optimizer: a first step
    plain = _quiet_fit(copy.deepcopy(start).set_params(warm_start=True), X_IRIS, y)
    decayed = _quiet_fit(
        copy.deepcopy(start).set_params(
            warm_start=True, weight_decay=0.4, decay_biases=decay_biases
        ),
        X_IRIS, y,
    )  # fmt: skip
    keep = 1 - 0.05 * 0.4
    for w_plain, w_dec, w0 in zip(plain.coefs_, decayed.coefs_, start.coefs_, strict=True):
        np.testing.assert_allclose(w_dec, w_plain + (keep - 1) * w0, rtol=1e-12, atol=1e-15)
        assert not np.array_equal(w_dec, w_plain)
    for b_plain, b_dec, b0 in zip(
        plain.intercepts_, decayed.intercepts_, start.intercepts_, strict=True
    ):
        if decay_biases:
            np.testing.assert_allclose(b_dec, b_plain + (keep - 1) * b0, rtol=1e-12, atol=1e-15)
        else:
            np.testing.assert_array_equal(b_dec, b_plain)


def test_weight_decay_shrinks_the_weights_of_a_fit():
    def fit(**kw):
        est = BPClassifier((16,), max_iter=60, random_state=0, learning_rate_init=0.01, **kw)
        return _quiet_fit(est, X_IRIS, Y_IRIS)

    norms = [
        sum(float(np.sum(c**2)) for c in fit(weight_decay=wd).coefs_) for wd in (0.0, 0.5, 2.0)
    ]
    assert norms[0] > norms[1] > norms[2]
    assert fit(weight_decay=0.5).score(X_IRIS, Y_IRIS) > 0.9


def test_batch_norm_parameters_decay_only_when_asked():
    def fit(decay_biases):
        est = BPClassifier((6,), batch_norm=True, max_iter=1, batch_size="full",
                           shuffle=False, random_state=0, weight_decay=5.0,
                           learning_rate_init=0.1, decay_biases=decay_biases)  # fmt: skip
        return _quiet_fit(est, X_IRIS, Y_IRIS)

    plain, decayed = fit(False), fit(True)
    # the first Adam step moves every parameter by about lr whatever its
    # size, so the scales (1 at the start) differ by the decay's 0.5
    np.testing.assert_allclose(decayed.bn_scales_[0], plain.bn_scales_[0] - 0.5, atol=1e-5)
    # the weights decay alike in both
    for a, b in zip(decayed.coefs_, plain.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"weight_decay": -0.1}, "'weight_decay' parameter"),
        ({"weight_decay": "0.1"}, "'weight_decay' parameter"),
        ({"decay_biases": "yes"}, "'decay_biases' parameter"),
    ],
)
def test_invalid_parameters_are_refused(params, match):
    with pytest.raises(InvalidParameterError, match=match):
        BPClassifier(**params).fit(X_IRIS, Y_IRIS)


def test_lbfgs_refuses_weight_decay():
    with pytest.raises(ValueError, match=r"weight_decay=0\.1 needs a stochastic solver"):
        BPClassifier(solver="lbfgs", weight_decay=0.1).fit(X_IRIS, Y_IRIS)
    _quiet_fit(BPClassifier((4,), solver="lbfgs", max_iter=3), X_IRIS, Y_IRIS)
