"""The compiled loss gradient against central finite differences (float64).

``skbp._kernels.full_loss_grad`` is called directly, the way ``fit_lbfgs`` calls
it, for every hidden activation and every output/loss pair, with an L2 penalty,
non-uniform sample weights, two hidden layers, dense and CSR input and a row
chunk smaller than the number of rows (so the gradient is accumulated over
chunks).
"""

import numpy as np
import pytest
import scipy.sparse as sp

from skbp._data import Problem, Workspace
from skbp._kernels import (
    ACT_IDENTITY,
    ACT_LOGISTIC,
    ACT_RELU,
    ACT_TANH,
    OUT_EXP,
    OUT_IDENTITY,
    OUT_LOGISTIC,
    OUT_SOFTMAX,
)
from skbp._layout import Layout
from skbp._training import loss_grad

N_ROWS, N_FEATURES, HIDDEN = 23, 5, (4, 3)
CHUNK = 7  # < N_ROWS and not a divisor of it: three full chunks and a partial one
ALPHA = 0.3

HIDDEN_CODES = {
    "identity": ACT_IDENTITY,
    "logistic": ACT_LOGISTIC,
    "tanh": ACT_TANH,
    "relu": ACT_RELU,
}
# name -> (output code, number of outputs)
OUTPUTS = {
    "squared_error": (OUT_IDENTITY, 2),
    "binary_log_loss": (OUT_LOGISTIC, 1),
    "multilabel_log_loss": (OUT_LOGISTIC, 3),
    "softmax_log_loss": (OUT_SOFTMAX, 3),
    "poisson": (OUT_EXP, 2),
}


def make_targets(out_name, n_out, rng, n_rows=N_ROWS):
    if out_name == "squared_error":
        return rng.normal(size=(n_rows, n_out))
    if out_name in ("binary_log_loss", "multilabel_log_loss"):
        return (rng.uniform(size=(n_rows, n_out)) < 0.5).astype(np.float64)
    if out_name == "softmax_log_loss":
        return np.eye(n_out)[rng.randint(n_out, size=n_rows)]
    # Poisson counts, zeros included
    return rng.poisson(1.5, size=(n_rows, n_out)).astype(np.float64)


def make_case(out_name, sparse, seed=0, dtype=np.float64):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(N_ROWS, N_FEATURES))
    X[rng.uniform(size=X.shape) < 0.4] = 0.0  # some structure for the CSR path
    if sparse:
        X = sp.csr_matrix(X)
    out_code, n_out = OUTPUTS[out_name]
    Y = make_targets(out_name, n_out, rng)
    sw = rng.uniform(0.2, 3.0, size=N_ROWS)
    layout = Layout([N_FEATURES, *HIDDEN, n_out])
    # large enough weights that every non-linearity is exercised, smaller for
    # the exponential output so that the Poisson loss stays of order one
    w = layout.init_params(rng, "tanh", np.float64) * (0.5 if out_name == "poisson" else 1.5)
    problem = Problem(X, dtype, Y, sw)
    return problem, layout, w.astype(dtype), out_code


def call_kernel(problem, layout, w, hidden, out_code, alpha, ws):
    """Call the kernel exactly as ``fit_lbfgs`` does (through ``loss_grad``)."""
    layout.codes[:] = hidden
    n_trans = len(layout.sizes) - 1
    run = layout.new_running_stats(problem.dtype)
    return loss_grad(layout, w, problem, ws, out_code, alpha, 0.0, np.zeros(n_trans), run)


def loss_and_grad(problem, layout, w, hidden, out_code, alpha=ALPHA, chunk=CHUNK):
    """Loss and a copy of the gradient for a fresh workspace of ``chunk`` rows."""
    w = np.ascontiguousarray(w, dtype=problem.dtype)
    ws = Workspace(layout, chunk, problem.dtype, problem.sparse)
    loss = call_kernel(problem, layout, w, hidden, out_code, alpha, ws)
    return float(loss), ws.grad.copy()


def numeric_gradient(problem, layout, w, hidden, out_code, h=1e-6):
    g = np.empty_like(w)
    for k in range(w.shape[0]):
        wp, wm = w.copy(), w.copy()
        wp[k] += h
        wm[k] -= h
        lp, _ = loss_and_grad(problem, layout, wp, hidden, out_code)
        lm, _ = loss_and_grad(problem, layout, wm, hidden, out_code)
        g[k] = (lp - lm) / (2 * h)
    return g


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("out_name", list(OUTPUTS))
@pytest.mark.parametrize("activation", list(HIDDEN_CODES))
def test_gradient_matches_finite_differences(activation, out_name, sparse):
    problem, layout, w, out_code = make_case(out_name, sparse)
    hidden = HIDDEN_CODES[activation]
    w0 = w.copy()
    loss, grad = loss_and_grad(problem, layout, w, hidden, out_code)
    assert np.isfinite(loss)
    assert grad.shape == (layout.n_params,)
    # the kernel must not modify the parameters
    np.testing.assert_array_equal(w, w0)
    num = numeric_gradient(problem, layout, w, hidden, out_code)
    # relu: the data are random, so no pre-activation sits within h of its kink
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-7)
    # every parameter block contributes (no block silently left at zero)
    assert np.all(np.abs(grad[: layout.n_coef_params]) > 0) or activation == "relu"
    assert np.any(np.abs(grad[layout.n_coef_params :]) > 0)


@pytest.mark.parametrize("out_name", list(OUTPUTS))
def test_gradient_does_not_depend_on_chunk_size_or_sparsity(out_name):
    dense, layout, w, out_code = make_case(out_name, sparse=False, seed=1)
    csr, _, _, _ = make_case(out_name, sparse=True, seed=1)
    ref_loss, ref_grad = loss_and_grad(dense, layout, w, ACT_TANH, out_code, chunk=N_ROWS)
    for problem in (dense, csr):
        for chunk in (1, 2, CHUNK, N_ROWS - 1, N_ROWS, 64):
            loss, grad = loss_and_grad(problem, layout, w, ACT_TANH, out_code, chunk=chunk)
            np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
            np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-13)


def test_gradient_repeated_calls_do_not_accumulate():
    # the gradient buffer is overwritten, not added to, on each call
    problem, layout, w, out_code = make_case("softmax_log_loss", sparse=False)
    ws = Workspace(layout, CHUNK, np.float64, False)
    grads = []
    for _ in range(3):
        call_kernel(problem, layout, w, ACT_RELU, out_code, ALPHA, ws)
        grads.append(ws.grad.copy())
    np.testing.assert_array_equal(grads[0], grads[1])
    np.testing.assert_array_equal(grads[0], grads[2])


def test_penalty_only_on_weights_and_scaled_by_weight_sum():
    # loss(alpha) - loss(0) = alpha/2 * ||W||^2 / sum(sw), biases not penalised
    problem, layout, w, out_code = make_case("squared_error", sparse=False)
    l0, g0 = loss_and_grad(problem, layout, w, ACT_LOGISTIC, out_code, alpha=0.0)
    l1, g1 = loss_and_grad(problem, layout, w, ACT_LOGISTIC, out_code, alpha=ALPHA)
    n_coef = layout.n_coef_params
    sw_sum = problem.sw.sum()
    np.testing.assert_allclose(l1 - l0, 0.5 * ALPHA * np.sum(w[:n_coef] ** 2) / sw_sum)
    np.testing.assert_allclose(g1[:n_coef] - g0[:n_coef], ALPHA * w[:n_coef] / sw_sum, atol=1e-14)
    np.testing.assert_array_equal(g1[n_coef:], g0[n_coef:])


@pytest.mark.parametrize("out_name", ["squared_error", "softmax_log_loss", "poisson"])
def test_gradient_scale_invariant_in_sample_weight(out_name):
    # multiplying every weight by a constant changes neither loss nor gradient
    problem, layout, w, out_code = make_case(out_name, sparse=False)
    loss, grad = loss_and_grad(problem, layout, w, ACT_TANH, out_code)
    scaled = Problem(problem.X, np.float64, problem.Y, problem.sw * 7.0)
    # the penalty is divided by sum(sw): scale alpha too
    loss7, grad7 = loss_and_grad(scaled, layout, w, ACT_TANH, out_code, alpha=ALPHA * 7.0)
    np.testing.assert_allclose(loss7, loss, rtol=1e-12)
    np.testing.assert_allclose(grad7, grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("out_name", list(OUTPUTS))
def test_float32_gradient_close_to_float64(out_name):
    p64, layout, w, out_code = make_case(out_name, sparse=False, seed=2)
    p32, _, w32, _ = make_case(out_name, sparse=False, seed=2, dtype=np.float32)
    l64, g64 = loss_and_grad(p64, layout, w, ACT_TANH, out_code)
    l32, g32 = loss_and_grad(p32, layout, w32, ACT_TANH, out_code)
    assert g32.dtype == np.float32
    np.testing.assert_allclose(l32, l64, rtol=1e-5)
    np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-5)
