"""The selu, gelu and mish hidden activations: values, derivatives, extremes, fits.

The compiled element-wise kernels (``_activate``, ``_activation_grad``) are
compared with the NumPy formulas of ``conftest.py`` (``HIDDEN_FUNCS``,
``HIDDEN_DERIVATIVES``) and with published values, in float32 and float64,
over inputs up to +-1e4; the whole network's loss and gradient stay finite
there.  Finite-difference checks of networks with these activations are in
``test_gradients.py``, the reference network's loss and gradient in
``test_reference.py``, saving and loading in ``test_state.py``.  The
vectorisable exponential they (and elu) are computed with is checked against
NumPy's, and the dropout masks' vectorised draws against the generator.
"""

import warnings

import numpy as np
import pytest
from conftest import HIDDEN_DERIVATIVES, HIDDEN_FUNCS, kernel_loss_grad
from scipy.special import erf
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbp import BPClassifier, BPRegressor
from skbp._data import Problem
from skbp._kernels import (
    ACTIVATION_CODES,
    OUT_SOFTMAX,
    PREACTIVATION_CODES,
    _activate,
    _activation_grad,
    _exp,
    _expm1,
    _uniform_at,
    splitmix64,
)
from skbp._layout import Layout

NEW = ["selu", "gelu", "mish"]
#: both signs, the kinks' neighbourhoods, where exp under- and overflows, +-1e4
Z = np.array(
    [-1e4, -800.0, -50.0, -10.0, -3.0, -1.0, -1e-3, -1e-12, 0.0, 1e-12, 1e-3, 0.5, 1.0, 3.0,
     10.0, 50.0, 800.0, 1e4]
)  # fmt: skip
TOL = {np.float64: dict(rtol=1e-13, atol=1e-300), np.float32: dict(rtol=2e-6, atol=1e-37)}


def test_exp_and_expm1_match_numpy():
    # the whole range, with exp's integer part n from -1021 to 1023, and tiny
    # arguments where expm1 must not cancel: within a few float64 ulps
    x = np.concatenate(
        [np.linspace(-708.0, 709.0, 100_001), np.linspace(-2.0, 2.0, 10_001),
         np.geomspace(1e-300, 1.0, 2_001), -np.geomspace(1e-300, 1.0, 2_001)]
    )  # fmt: skip
    got_exp = np.array([_exp(v) for v in x])
    got_expm1 = np.array([_expm1(v) for v in x])
    np.testing.assert_allclose(got_exp, np.exp(x), rtol=1e-15, atol=0)
    np.testing.assert_allclose(got_expm1, np.expm1(x), rtol=2e-15, atol=0)
    # float32 arguments are computed in float64
    assert _exp(np.float32(-3.0)) == pytest.approx(np.exp(-3.0), rel=1e-15)


def test_exp_clamps_below_and_keeps_nan():
    assert _exp(-1e4) == _exp(-708.0) == pytest.approx(np.exp(-708.0), rel=1e-15)
    assert _expm1(-1e4) == -1.0
    assert np.isnan(_exp(np.nan)) and np.isnan(_expm1(np.nan))


def test_vectorised_dropout_draws_are_the_generators_stream():
    # the k-th draw from state s0 is the generator's (k + 1)-th output, and
    # advancing s0 by the count drawn continues the same stream
    state = np.array([np.uint64(12345678901234567)], dtype=np.uint64)
    s0 = state[0]
    stream = [splitmix64(state) for _ in range(1000)]
    want = [np.float64(z >> np.uint64(11)) / 2.0**53 for z in stream]
    got = [_uniform_at(s0, k) for k in range(1000)]
    assert got == want
    assert all(0.0 <= u < 1.0 for u in got)


def kernel_values(name, z):
    Zk = np.array(z).reshape(2, -1)  # a 2-D block, as a layer's
    _activate(Zk, ACTIVATION_CODES[name])
    return Zk.ravel()


def kernel_derivative(name, z):
    """f'(z) from the backward kernel, given what the forward pass keeps for it."""
    code = ACTIVATION_CODES[name]
    kept = z.copy() if code in PREACTIVATION_CODES else kernel_values(name, z)
    G, D = np.ones((2, z.size // 2), z.dtype), np.empty((2, z.size // 2), z.dtype)
    _activation_grad(G, kept.reshape(2, -1), D, False, code, D)
    return D.ravel()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", NEW)
def test_values_and_derivatives_match_numpy(name, dtype):
    z = Z.astype(dtype)
    ref = HIDDEN_FUNCS[name](z.astype(np.float64))
    ref_d = HIDDEN_DERIVATIVES[name](z.astype(np.float64))
    with np.errstate(all="raise"):  # the references themselves stay finite
        assert np.all(np.isfinite(ref)) and np.all(np.isfinite(ref_d))
    f, d = kernel_values(name, z), kernel_derivative(name, z)
    assert f.dtype == d.dtype == dtype
    assert np.all(np.isfinite(f)) and np.all(np.isfinite(d))
    np.testing.assert_allclose(f, ref, **TOL[dtype])
    # the derivative of selu at 0 is its left one (as PyTorch), the reference's right
    # one; selu's is computed from its output, as PyTorch does: f + scale * alpha
    # loses the digits of a derivative far below 1 (exact to 1e-15 absolute)
    ok = z != 0 if name == "selu" else slice(None)
    atol = 4 * np.finfo(dtype).eps if name == "selu" else TOL[dtype]["atol"]
    np.testing.assert_allclose(d[ok], ref_d[ok], rtol=TOL[dtype]["rtol"], atol=atol)


def test_published_values():
    z = np.array([-1.0, 1.0, 2.0, 0.0, 0.0, 0.0])
    selu, gelu, mish = (kernel_values(n, z)[:3] for n in NEW)
    # Klambauer et al. (2017): lambda = 1.0507009873554805, alpha = 1.6732632423543772
    np.testing.assert_allclose(
        selu, [1.0507009873554805 * 1.6732632423543772 * np.expm1(-1.0), 1.0507009873554805,
               2 * 1.0507009873554805], rtol=1e-15,
    )  # fmt: skip
    # the exact GELU, z * (1 + erf(z / sqrt 2)) / 2, not the tanh approximation
    exact = z[:3] * 0.5 * (1.0 + erf(z[:3] / np.sqrt(2.0)))
    np.testing.assert_allclose(gelu, exact, rtol=1e-15)
    np.testing.assert_allclose(gelu[1], 0.8413447460685429, rtol=1e-15)
    approx = 0.5 * (1 + np.tanh(np.sqrt(2 / np.pi) * (1 + 0.044715)))
    assert abs(gelu[1] - approx) > 1e-4
    np.testing.assert_allclose(mish, [-0.30340146137410895, 0.8650983882673103,
                                      1.9439589595339946], rtol=1e-14)  # fmt: skip


def test_selu_left_derivative_at_zero_and_continuity():
    # f'(0-) = scale * alpha, f'(0+) = scale: the kink; f itself is continuous
    d = kernel_derivative("selu", np.array([0.0, 1e-300]))
    np.testing.assert_allclose(d, [1.0507009873554805 * 1.6732632423543772, 1.0507009873554805])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", NEW)
def test_whole_network_finite_at_extreme_inputs(name, dtype):
    # pre-activations of order +-1e4 in both hidden layers: loss and gradient finite
    rng = np.random.RandomState(0)
    X = rng.choice([-1e4, 1e4], size=(12, 3))
    Y = np.eye(3)[rng.randint(3, size=12)]
    layout = Layout([3, 4, 4, 3])
    w = np.sign(layout.init_params(rng, name, np.float64))
    problem = Problem(X, dtype, Y, np.ones(12))
    loss, grad = kernel_loss_grad(
        layout, w, problem, ACTIVATION_CODES[name], OUT_SOFTMAX, 1e-4, 5
    )  # fmt: skip
    assert np.isfinite(loss)
    assert grad.dtype == dtype
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("activation", [*NEW, ["selu", "gelu", "mish"]])
def test_fit_learns_iris(activation):
    X, y = load_iris(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    clf = make_pipeline(
        StandardScaler(),
        BPClassifier((16, 16, 16), activation=activation, max_iter=300, random_state=0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(Xtr, ytr)
    assert clf.score(Xte, yte) >= 0.9


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NEW)
def test_regressor_fits_and_keeps_the_dtype(name, dtype):
    rng = np.random.RandomState(1)
    X = rng.normal(size=(200, 3)).astype(dtype)
    y = (np.sin(X[:, 0]) + X[:, 1] * X[:, 2]).astype(dtype)
    reg = BPRegressor(
        hidden_layer_sizes=(32,), activation=name, learning_rate_init=0.01, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y)
    assert reg.predict(X).dtype == dtype
    assert reg.score(X, y) > 0.95


@pytest.mark.parametrize("name", NEW)
def test_initialisation_is_scikit_learns(name):
    # the same Glorot-uniform draws as relu (no LeCun normal for selu)
    a = Layout([4, 5, 3]).init_params(np.random.RandomState(0), name, np.float64)
    b = Layout([4, 5, 3]).init_params(np.random.RandomState(0), "relu", np.float64)
    np.testing.assert_array_equal(a, b)
