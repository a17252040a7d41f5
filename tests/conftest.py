"""Functions and fixtures shared by several test files (imported as ``from conftest import ...``).

* ``np_forward``: the plain-NumPy reference network (per-layer activations,
  residual skips, batch norm, sample-weighted batch statistics, dropout masks),
  with ``weighted_stats`` and the per-row data loss ``ref_row_loss``; each hidden
  activation and its derivative: ``HIDDEN_FUNCS``, ``HIDDEN_DERIVATIVES``;
* ``call_kernel`` / ``kernel_loss_grad``: the compiled loss and gradient, called
  the way ``LbfgsTrainer`` calls them, and ``numeric_gradient``, central finite
  differences of any such objective;
* data factories: ``reg_data``, ``binary_data``, ``bn_data``, ``exploding_data``;
* ``fit_recording``: fit and return the warnings of one category;
* ``TINY_KERNELS``: two tiny kernels the cache tests write as a module;
* ``toolkit_classifier`` and the session fixture ``toolkit_iris`` (that
  classifier fitted once on iris, for tests that only read it).

Those used by a single file live in that file.
"""

import textwrap
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import expit, ndtr, softmax, xlogy
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning

from skbp import BPClassifier
from skbp._data import Workspace
from skbp._kernels import BN_EPS
from skbp._training import loss_grad

# ----------------------------------------------------------------------------
# The NumPy reference network
# ----------------------------------------------------------------------------

#: SELU's constants, as Klambauer et al. (2017) give them (not read from skbp)
SELU_SCALE = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717

HIDDEN_FUNCS = {
    "identity": lambda z: z,
    "logistic": expit,
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0.0))),
    "selu": lambda z: np.where(
        z > 0, SELU_SCALE * z, SELU_SCALE * SELU_ALPHA * np.expm1(np.minimum(z, 0.0))
    ),
    "gelu": lambda z: z * ndtr(z),  # exact: z * Phi(z), Phi the standard normal CDF
    "mish": lambda z: z * np.tanh(np.logaddexp(0.0, z)),  # softplus = log(1 + e^z)
}

#: f'(z) of each hidden activation, in terms of its pre-activation z
HIDDEN_DERIVATIVES = {
    "identity": np.ones_like,
    "logistic": lambda z: expit(z) * (1.0 - expit(z)),
    "tanh": lambda z: 1.0 - np.tanh(z) ** 2,
    "relu": lambda z: (z > 0).astype(z.dtype),
    "leaky_relu": lambda z: np.where(z > 0, 1.0, 0.01),
    "elu": lambda z: np.where(z > 0, 1.0, np.exp(np.minimum(z, 0.0))),
    "selu": lambda z: SELU_SCALE * np.where(z > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(z, 0.0))),
    "gelu": lambda z: ndtr(z) + z * np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi),
    "mish": lambda z: (
        np.tanh(np.logaddexp(0.0, z)) + z * (1.0 - np.tanh(np.logaddexp(0.0, z)) ** 2) * expit(z)
    ),
}

OUTPUT_FUNCS = {
    "identity": lambda z: z,
    "logistic": expit,
    "softmax": lambda z: softmax(z, axis=1),
    "exp": np.exp,
}


def weighted_stats(Z, sw=None):
    """Weighted mean and (biased) variance: batch norm's running statistics (as Keras)."""
    sw = np.ones(Z.shape[0]) if sw is None else np.asarray(sw, dtype=np.float64)
    mean = np.average(Z, axis=0, weights=sw)
    var = np.average((Z - mean) ** 2, axis=0, weights=sw)
    return mean, var


def np_forward(
    X,
    coefs,
    intercepts,
    activations,
    out,
    *,
    res=None,
    bn=None,
    sw=None,
    masks=None,
    all_layers=False,
):
    """Output of the network in NumPy, written from the formulas, not from skbp's kernels.

    ``activations`` is one hidden activation name for every hidden layer or a
    list with one per hidden layer; ``out`` is ``"identity"``, ``"logistic"``,
    ``"softmax"`` or ``"exp"``.  ``bn`` is ``(scales, shifts, means, vars)``;
    with ``sw`` given the batch's weighted statistics (biased variance) are used
    instead of ``means``/``vars`` (training mode).  ``masks[l]`` multiplies hidden
    layer ``l``'s activation.  ``res[l]`` adds the previous hidden layer's output
    to hidden layer ``l``'s (transition ``l``).  With ``all_layers`` the list of
    every layer's activation, input included, is returned instead of the output.
    """
    h = np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float64)
    n_trans = len(coefs)
    if isinstance(activations, str):
        activations = [activations] * (n_trans - 1)
    layers = [h]
    for l in range(n_trans):
        z = h @ coefs[l] + intercepts[l]
        if l == n_trans - 1:
            layers.append(OUTPUT_FUNCS[out](z))
            return layers if all_layers else layers[-1]
        if bn is not None:
            gamma, beta, run_mean, run_var = (b[l] for b in bn)
            if sw is None:
                mean, var = run_mean, run_var
            else:
                mean, var = weighted_stats(z, sw)
            z = gamma * (z - mean) / np.sqrt(var + BN_EPS) + beta
        a = HIDDEN_FUNCS[activations[l]](z)
        if masks is not None:
            a = a * masks[l]
        if res is not None and res[l]:
            a = a + h
        h = a
        layers.append(h)
    raise AssertionError("unreachable")


def ref_row_loss(Y, P, out):
    """Data loss of each row, summed over the outputs."""
    eps = np.finfo(P.dtype).eps
    if out == "identity":
        return 0.5 * np.sum((P - Y) ** 2, axis=1)
    if out == "logistic":
        Pc = np.clip(P, eps, 1 - eps)
        return -np.sum(xlogy(Y, Pc) + xlogy(1 - Y, 1 - Pc), axis=1)
    if out == "softmax":
        return -np.sum(xlogy(Y, np.clip(P, eps, 1 - eps)), axis=1)
    return np.sum(xlogy(Y, Y / P) - Y + P, axis=1)


# ----------------------------------------------------------------------------
# The compiled loss and gradient, and finite differences
# ----------------------------------------------------------------------------


def call_kernel(layout, w, problem, hidden, out_code, alpha, ws):
    """The compiled loss (gradient left in ``ws.grad``), through ``loss_grad`` as
    ``LbfgsTrainer`` calls it: hidden activation code(s) ``hidden``, no L1, no dropout."""
    layout.codes[:] = hidden
    n_trans = len(layout.sizes) - 1
    run = layout.new_running_stats(problem.dtype)
    return loss_grad(layout, w, problem, ws, out_code, alpha, 0.0, np.zeros(n_trans), run)


def kernel_loss_grad(layout, w, problem, hidden, out_code, alpha, chunk):
    """Loss and a copy of the gradient, with a fresh workspace of ``chunk`` rows."""
    w = np.ascontiguousarray(w, dtype=problem.dtype)
    layout.codes[:] = hidden  # before the workspace: gelu and mish need a buffer more
    ws = Workspace(layout, chunk, problem.dtype, problem.sparse)
    loss = call_kernel(layout, w, problem, hidden, out_code, alpha, ws)
    return float(loss), ws.grad.copy()


def numeric_gradient(objective, w, h=1e-6):
    """Central finite differences of ``objective(w)[0]`` (``objective`` returns
    ``(loss, grad)``; only the loss is used)."""
    g = np.empty_like(w)
    for k in range(w.shape[0]):
        wp, wm = w.copy(), w.copy()
        wp[k] += h
        wm[k] -= h
        g[k] = (objective(wp)[0] - objective(wm)[0]) / (2 * h)
    return g


# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------


def reg_data(n=100, n_outputs=1, seed=0, *, n_features=5, link=np.sin, noise=0.05):
    """A smooth regression problem: ``link(X @ W)`` plus Gaussian noise."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, n_features))
    W = rng.normal(size=(n_features, n_outputs))
    y = link(X @ W) + noise * rng.normal(size=(n, n_outputs))
    return X, (y[:, 0] if n_outputs == 1 else y)


def binary_data(n=30, d=3, dtype=np.float64):
    """Standard normal features; the label is ``x0 > 0``."""
    X = np.random.RandomState(0).normal(size=(n, d)).astype(dtype)
    return X, (X[:, 0] > 0).astype(int)


def bn_data(n=40, seed=0):
    """Three features of unequal scales and means (batch norm has work to do)."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 3)) * [1.0, 2.0, 0.5] + [0.5, -1.0, 2.0]
    y = X[:, 0] - X[:, 1] ** 2 / 4 + 0.1 * rng.normal(size=n)
    return X, y


def exploding_data():
    """Unscaled features and huge targets: exploding gradients, unclipped SGD diverges."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(100, 4)) * 100
    y = X @ rng.normal(size=4) * 1e3
    return X, y


# ----------------------------------------------------------------------------
# Estimators
# ----------------------------------------------------------------------------


def fit_recording(est, X, y, category=Warning, **fit_params):
    """Fit with every warning recorded; return those of ``category``."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        est.fit(X, y, **fit_params)
    return [r for r in rec if issubclass(r.category, category)]


def toolkit_classifier(**kw):
    """A small classifier with batch norm, dropout and residual skips."""
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


@pytest.fixture(scope="session")
def toolkit_iris():
    """``(X, y, toolkit_classifier().fit(X, y))`` on iris, fitted once.

    Shared: tests may predict with it, copy or pickle it, never fit, set or edit it.
    """
    X, y = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = toolkit_classifier().fit(X, y)
    return X, y, est


#: two tiny kernels declared with skbp's own decorator, written as the module
#: ``tiny_kernels`` by the cache tests (test_cache.py, test_prebuilt.py)
TINY_KERNELS = textwrap.dedent(
    """
    import numpy as np
    from skbp._jit import jit

    @jit(entry=True, _nrt=True)
    def squares(x):
        # an array allocated in compiled code and returned: Numba's runtime (NRT;
        # skbp's own kernels go without it), which a process
        # that only loads cached code must still have set up (without it this
        # call crashes)
        y = np.empty_like(x)
        for i in range(x.shape[0]):
            y[i] = x[i] * x[i]
        return y

    @jit(entry=True)
    def twice_plus_one(n):
        return 2 * n + 1
    """
)
