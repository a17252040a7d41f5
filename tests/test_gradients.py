"""The compiled loss gradient against central finite differences (float64).

``skbp._training.loss_grad`` (the single entry for the full-batch loss and
gradient) is called directly, the way ``LbfgsTrainer`` calls it, for every hidden
activation and every output/loss pair, with an L2 penalty, non-uniform sample
weights, two hidden layers, dense and CSR input and a row chunk smaller than
the number of rows (so the gradient is accumulated over chunks).

The training toolkit's gradients are checked the same way: batch norm (with
sample-weighted batch statistics), dropout with masks written into the
workspace's ``masks`` buffer by hand, residual skips, the leaky-relu, elu,
selu, gelu and mish activations (gelu and mish keep their pre-activations for
the backward pass, also under dropout and residual skips), one activation per
layer and the L1 penalty, each alone and all combined.  Their loss is also
compared with the NumPy reference network (``np_forward`` in ``conftest.py``).
"""

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import call_kernel, kernel_loss_grad, np_forward, numeric_gradient, ref_row_loss

from skbp._data import Problem, Workspace
from skbp._kernels import (
    ACT_GELU,
    ACT_IDENTITY,
    ACT_LOGISTIC,
    ACT_MISH,
    ACT_RELU,
    ACT_SELU,
    ACT_TANH,
    ACTIVATION_CODES,
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
    "selu": ACT_SELU,
    "gelu": ACT_GELU,
    "mish": ACT_MISH,
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


def loss_and_grad(problem, layout, w, hidden, out_code, alpha=ALPHA, chunk=CHUNK):
    """Loss and a copy of the gradient for a fresh workspace of ``chunk`` rows."""
    return kernel_loss_grad(layout, w, problem, hidden, out_code, alpha, chunk)


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
    num = numeric_gradient(lambda v: loss_and_grad(problem, layout, v, hidden, out_code), w)
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
        call_kernel(layout, w, problem, ACT_RELU, out_code, ALPHA, ws)
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


@pytest.mark.parametrize("hidden", ["tanh", "selu", "gelu", "mish"])
@pytest.mark.parametrize("out_name", list(OUTPUTS))
def test_float32_gradient_close_to_float64(out_name, hidden):
    p64, layout, w, out_code = make_case(out_name, sparse=False, seed=2)
    p32, _, w32, _ = make_case(out_name, sparse=False, seed=2, dtype=np.float32)
    l64, g64 = loss_and_grad(p64, layout, w, HIDDEN_CODES[hidden], out_code)
    l32, g32 = loss_and_grad(p32, layout, w32, HIDDEN_CODES[hidden], out_code)
    assert g32.dtype == np.float32
    np.testing.assert_allclose(l32, l64, rtol=1e-5)
    np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-5)


# ----------------------------------------------------------------------------
# The training toolkit: batch norm, dropout, residual skips, activations, L1
# ----------------------------------------------------------------------------

TK_ROWS, TK_FEATURES = 17, 4
P_DROP = 0.4


def make_problem(out_code, seed=0, sparse=False, n_rows=TK_ROWS):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_rows, TK_FEATURES))
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
    layout = Layout([TK_FEATURES, *hidden, n_out], batch_norm=batch_norm)
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
    per_row = ref_row_loss(np.asarray(problem.Y), P, out)
    W = w[: layout.n_coef_params]
    a1, a2 = objective.alpha * objective.l1_ratio, objective.alpha * (1 - objective.l1_ratio)
    penalty = a1 * np.abs(W).sum() + 0.5 * a2 * np.sum(W**2)
    return (np.sum(sw * per_row) + penalty) / sw.sum()


OUTS = {"squared_error": OUTPUTS["squared_error"], "softmax": OUTPUTS["softmax_log_loss"]}


@pytest.mark.parametrize("out_name", list(OUTS))
def test_gradient_batch_norm_weighted(out_name):
    out_code, n_out = OUTS[out_name]
    problem = make_problem(out_code)
    layout, acts = make_layout((5, 3), n_out, batch_norm=True)
    w = random_params(layout, 0)
    obj = Objective(problem, layout, out_code)
    loss, grad = assert_gradient_ok(obj, w)
    np.testing.assert_allclose(loss, reference_loss(obj, w, acts), rtol=1e-10)
    scales, shifts = layout.unpack_bn(grad)
    assert len(scales) == 2
    for g in scales + shifts:
        assert np.all(np.abs(g) > 1e-8)
    # batch norm removes the mean: the biases before it get no gradient
    for b in layout.unpack(grad)[1][:-1]:
        np.testing.assert_allclose(b, 0.0, atol=1e-12)
    # the statistics are weighted: unit weights give another gradient
    unit = Problem(problem.X, np.float64, problem.Y, np.ones(TK_ROWS))
    _, grad_unit = Objective(unit, layout, out_code)(w)
    assert not np.allclose(grad_unit, grad, rtol=1e-3)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_gradient_dropout_with_fixed_masks(sparse):
    out_code, n_out = OUTS["softmax"]
    problem = make_problem(out_code, seed=1, sparse=sparse)
    layout, acts = make_layout((6, 5), n_out, activations="relu")
    masks = random_masks(layout, TK_ROWS, P_DROP, seed=1)
    drop_p = [P_DROP, P_DROP, 0.0]
    obj = Objective(problem, layout, out_code, drop_p=drop_p, masks=masks)
    w = random_params(layout, 1)
    loss, _ = assert_gradient_ok(obj, w)
    # the loss is that of a network with exactly these masks
    np.testing.assert_allclose(loss, reference_loss(obj, w, acts), rtol=1e-10)
    # ... and other masks give another loss: the buffer's masks are used
    other_masks = random_masks(layout, TK_ROWS, P_DROP, seed=2)
    other = Objective(problem, layout, out_code, drop_p=drop_p, masks=other_masks)
    assert abs(other(w)[0] - loss) > 1e-6


def test_gradient_dropout_rate_per_layer():
    # dropout only on the second hidden layer: the first layer's mask is ignored
    out_code, n_out = OUTS["squared_error"]
    problem = make_problem(out_code, seed=2)
    layout, acts = make_layout((5, 5), n_out, activations="tanh")
    masks = random_masks(layout, TK_ROWS, 0.5, seed=3)
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
    masks = random_masks(layout, TK_ROWS, 0.3, seed=4)
    w = random_params(layout, 4, scale=1.5)
    n_coef = layout.n_coef_params
    w[:n_coef] += np.where(w[:n_coef] >= 0, 1e-3, -1e-3)  # no weight within h of 0
    obj = Objective(
        problem, layout, out_code, alpha=0.2, l1_ratio=0.5, drop_p=[0.3, 0.2, 0.3, 0.0], masks=masks
    )
    loss, grad = assert_gradient_ok(obj, w)
    np.testing.assert_allclose(loss, reference_loss(obj, w, acts), rtol=1e-10)
    for g in sum(layout.unpack_bn(grad), []):
        assert np.all(np.abs(g) > 1e-8)


@pytest.mark.parametrize("activation", ["leaky_relu", "elu", "selu", "gelu", "mish"])
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


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("out_name", list(OUTS))
def test_gradient_preactivation_activations_combined(out_name, sparse):
    # gelu and mish read their kept pre-activations in the backward pass; with
    # dropout and residual skips the layer outputs differ from both, and with
    # batch norm the pre-activation is the normalised value
    out_code, n_out = OUTS[out_name]
    problem = make_problem(out_code, seed=8, sparse=sparse)
    layout, acts = make_layout(
        (5, 5, 5), n_out, batch_norm=True, residual=True, activations=["gelu", "mish", "selu"]
    )
    masks = random_masks(layout, TK_ROWS, 0.3, seed=8)
    w = random_params(layout, 8, scale=1.5)
    obj = Objective(problem, layout, out_code, drop_p=[0.3, 0.2, 0.3, 0.0], masks=masks)
    loss, _ = assert_gradient_ok(obj, w)
    np.testing.assert_allclose(loss, reference_loss(obj, w, acts), rtol=1e-10)
    # without dropout and skips the buffer holds the pre-activations only for
    # these activations (the others' outputs are read from the layer outputs)
    plain, acts = make_layout((5, 4), n_out, activations=["mish", "gelu"])
    obj = Objective(problem, plain, out_code)
    w = random_params(plain, 9, scale=1.5)
    loss, _ = assert_gradient_ok(obj, w)
    np.testing.assert_allclose(loss, reference_loss(obj, w, acts), rtol=1e-10)


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
