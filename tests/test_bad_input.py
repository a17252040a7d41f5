"""The bad-input matrix and a property test.

One parametrised test runs every bad-input case -- data and parameters -- and
expects the exception class and a message naming the problem.  A hypothesis
test draws small datasets and parameter combinations (toolkit options
included) and checks that fit + predict either give finite outputs of the
right shape and dtype or raise ``ValueError``/``TypeError``, never anything
else.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import binary_data
from sklearn.utils._param_validation import InvalidParameterError

from skbp import BPClassifier, BPRegressor

pytestmark = pytest.mark.filterwarnings("ignore")  # only errors matter here


def _fitted(cls, dtype=np.float64):
    X, y = binary_data(dtype=dtype)
    return cls(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(
        X, y if cls is BPClassifier else X[:, 0]
    )


def _with(X, i, j, v):
    X = X.copy()
    X[i, j] = v
    return X


X0, Y0 = binary_data()
BIG = np.finfo(np.float64).max

# (id, estimator class, action(est) -> None, exception, message regex)
DATA_CASES = [
    ("nan-X", "both", lambda e: e.fit(_with(X0, 1, 1, np.nan), Y0), ValueError, "NaN"),
    ("inf-X", "both", lambda e: e.fit(_with(X0, 1, 1, np.inf), Y0), ValueError, "infinity"),
    ("nan-X-sparse", "both", lambda e: e.fit(sp.csr_matrix(_with(X0, 1, 1, np.nan)), Y0),
     ValueError, "NaN"),
    ("str-X", "both", lambda e: e.fit(np.array([["a", "b", "c"]] * 30), Y0), ValueError,
     "string|convert"),
    ("object-X", "both", lambda e: e.fit(np.array([[object()] * 3] * 30), Y0), (TypeError,
     ValueError), "float|number|object"),
    ("complex-X", "both", lambda e: e.fit(X0 + 1j, Y0), ValueError, "[Cc]omplex"),
    ("0-rows", "both", lambda e: e.fit(X0[:0], Y0[:0]), ValueError, "0 sample"),
    ("0-columns", "both", lambda e: e.fit(X0[:, :0], Y0), ValueError, "0 feature"),
    ("3d-X", "both", lambda e: e.fit(X0.reshape(30, 3, 1), Y0), ValueError, "dim 3"),
    ("y-length", "both", lambda e: e.fit(X0, Y0[:-1]), ValueError, "inconsistent numbers"),
    ("nan-y-regression", "reg", lambda e: e.fit(X0, _with(X0, 0, 0, np.nan)[:, 0]), ValueError,
     "NaN"),
    ("nan-y-classification", "clf", lambda e: e.fit(X0, np.where(Y0 > 0, 1.0, np.nan)),
     ValueError, "NaN|[Uu]nknown label"),
    ("continuous-y-classifier", "clf", lambda e: e.fit(X0, X0[:, 0]), ValueError,
     "[Uu]nknown label type"),
    ("unseen-label-partial-fit", "clf",
     lambda e: e.partial_fit(X0, Y0, classes=[0, 1]).partial_fit(X0, Y0 + 5), ValueError,
     "classes not in"),
    ("features-changed-predict", "fitted", lambda e: e.predict(X0[:, :2]), ValueError,
     "features"),
    ("features-changed-partial-fit", "fitted-clf", lambda e: e.partial_fit(X0[:, :2], Y0),
     ValueError, "features"),
    ("beyond-float64-range", "both", lambda e: e.fit(np.full((30, 3), BIG), Y0), ValueError,
     "non-finite parameter weights.*large values"),
    ("beyond-float32-model-range", "fitted32", lambda e: e.predict(np.full((2, 3), 1e39)),
     ValueError, "beyond the range of float32"),
    ("negative-sample-weight", "both", lambda e: e.fit(X0, Y0, sample_weight=-np.ones(30)),
     ValueError, "[Nn]egative"),
    ("zero-sample-weights", "both", lambda e: e.fit(X0, Y0, sample_weight=np.zeros(30)),
     ValueError, "[Ss]ample.weight"),
    ("poisson-negative-y", "reg-poisson", lambda e: e.fit(X0, X0[:, 0]), ValueError,
     "[Pp]oisson|negative|non-negative"),
]  # fmt: skip


def _estimators(kind):
    if kind == "both":
        return [BPClassifier(max_iter=2), BPRegressor(max_iter=2)]
    if kind == "clf":
        return [BPClassifier(max_iter=2)]
    if kind == "reg":
        return [BPRegressor(max_iter=2)]
    if kind == "reg-poisson":
        return [BPRegressor(loss="poisson", max_iter=2)]
    if kind == "fitted":
        return [_fitted(BPClassifier), _fitted(BPRegressor)]
    if kind == "fitted-clf":
        return [_fitted(BPClassifier)]
    if kind == "fitted32":
        return [_fitted(BPClassifier, np.float32), _fitted(BPRegressor, np.float32)]
    raise AssertionError(kind)


@pytest.mark.parametrize("case", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_data(case):
    _, kind, action, exc, match = case
    for est in _estimators(kind):
        with pytest.raises(exc, match=match):
            action(est)


# every parameter: a value of the wrong type, and values out of range
WRONG_TYPE = object()
OUT_OF_RANGE = {
    "hidden_layer_sizes": [(0,), (-3,), "big"],
    "activation": ["bogus", ["relu", "bogus"]],
    "solver": ["bogus"],
    "alpha": [-1.0],
    "batch_size": [0, "bogus"],
    "learning_rate": ["bogus"],
    "learning_rate_init": [0.0, -0.1],
    "power_t": [-1.0],
    "max_iter": [0, -1],
    "tol": [-1.0],
    "momentum": [-0.1, 1.5],
    "validation_fraction": [-0.1, 1.0],
    "scoring": ["bogus"],
    "beta_1": [-0.1, 1.0],
    "beta_2": [-0.1, 1.0],
    "epsilon": [0.0],
    "n_iter_no_change": [0],
    "max_fun": [0],
    "decay_rate": [0.0, 1.5],
    "dropout": [1.0, -0.1],
    "l1_ratio": [-0.1, 1.1],
    "label_smoothing": [-0.1, 1.0],
    "max_grad_norm": [0.0, -1.0],
    "weight_decay": [-0.1],
    "decay_biases": ["yes"],
    "min_learning_rate": [-0.1],
    "warmup_fraction": [-0.1, 1.0],
    "n_cycles": [0, 1.5],
    "n_jobs": [0],
    "numeric_embedding": ["bogus"],
    "embedding_features": [],
    "n_frequencies": [0],
    "n_ensemble": [0, 1.5],
    "embedding_dim": [0],
    "frequency_scale": [0.0, -1.0],
    "loss": ["bogus"],
    "shuffle": ["yes"],
    "warm_start": ["yes"],
    "nesterovs_momentum": ["yes"],
    "early_stopping": ["yes"],
    "batch_norm": ["yes"],
    "residual": ["yes"],
    "verbose": ["loud"],
    "random_state": ["seed"],
}
PARAM_CASES = [
    (cls, name, value)
    for cls in (BPClassifier, BPRegressor)
    for name in cls._parameter_constraints
    for value in [WRONG_TYPE, *OUT_OF_RANGE.get(name, [])]
]


def test_the_parameter_matrix_covers_every_parameter():
    for cls in (BPClassifier, BPRegressor):
        names = set(cls().get_params())
        assert names <= set(cls._parameter_constraints)
        assert names - {"class_weight"} <= set(OUT_OF_RANGE)


@pytest.mark.parametrize(
    "cls, name, value", PARAM_CASES,
    ids=[f"{c.__name__}-{n}-{'wrong-type' if v is WRONG_TYPE else v!r}" for c, n, v in PARAM_CASES],
)  # fmt: skip
def test_bad_parameter_names_the_parameter(cls, name, value):
    X, y = X0, (Y0 if cls is BPClassifier else X0[:, 0])
    with pytest.raises((ValueError, TypeError)) as info:
        cls(**{name: value}).fit(X, y)
    assert name in str(info.value), str(info.value)
    if value is WRONG_TYPE:
        assert isinstance(info.value, InvalidParameterError)
