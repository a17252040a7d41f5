"""Property test: fit + predict on drawn data and parameters is finite and well-shaped,
or a ValueError/TypeError -- never another exception, never NaN."""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skbp import BPClassifier, BPRegressor

ACTIVATIONS = ["identity", "logistic", "tanh", "relu", "leaky_relu", "elu"]


@st.composite
def problems(draw):
    n = draw(st.integers(1, 40))
    d = draw(st.integers(1, 5))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.RandomState(seed)
    X = (rng.standard_normal((n, d)) * scale).astype(dtype)
    classify = draw(st.booleans())
    if classify:
        k = draw(st.integers(1, 3))
        y = rng.randint(0, k, n)
    else:
        y = rng.standard_normal(n) * draw(st.sampled_from([1e-2, 1.0, 1e2]))
    solver = draw(st.sampled_from(["adam", "sgd", "lbfgs"]))
    hidden = tuple(draw(st.lists(st.integers(1, 6), min_size=0, max_size=2)))
    params = dict(
        hidden_layer_sizes=hidden,
        activation=draw(st.sampled_from(ACTIVATIONS)),
        solver=solver,
        alpha=draw(st.sampled_from([0.0, 1e-4, 1.0])),
        batch_size=draw(st.sampled_from(["auto", 1, 2, 7])),
        learning_rate_init=draw(st.sampled_from([1e-4, 1e-2, 0.5])),
        max_iter=draw(st.integers(1, 4)),
        early_stopping=draw(st.booleans()),
        dropout=draw(st.sampled_from([0.0, 0.3])),
        batch_norm=draw(st.booleans()),
        residual=draw(st.booleans()),
        l1_ratio=draw(st.sampled_from([0.0, 0.5])),
        max_grad_norm=draw(st.sampled_from([None, 1.0])),
        learning_rate=draw(st.sampled_from(["constant", "cosine", "one_cycle", "cosine_restarts"])),
        weight_decay=draw(st.sampled_from([0.0, 0.0, 0.1])) if solver != "lbfgs" else 0.0,
        random_state=seed,
    )
    return X, y, classify, params


@pytest.mark.filterwarnings("ignore")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_fit_predict_is_finite_and_well_shaped_or_a_clear_error(problem):
    X, y, classify, params = problem
    est = (BPClassifier if classify else BPRegressor)(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            est.fit(X, y)
        except (ValueError, TypeError):
            return  # e.g. lbfgs with dropout, too few rows for early stopping
        pred = est.predict(X)
    assert pred.shape == (X.shape[0],)
    assert all(c.dtype == X.dtype for c in est.coefs_)
    assert all(np.isfinite(c).all() for c in est.coefs_ + est.intercepts_)
    if classify:
        assert set(np.unique(pred)) <= set(np.unique(y))
        proba = est.predict_proba(X)
        assert proba.shape == (X.shape[0], max(2, len(np.unique(y))))
        assert proba.dtype == X.dtype and np.isfinite(proba).all()
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-4)
    else:
        assert pred.dtype == X.dtype and np.isfinite(pred).all()
