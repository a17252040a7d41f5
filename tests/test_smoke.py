"""A quick pass over every solver and option family: fit, predict, probabilities,
a pickle round trip and a small grid search, on small data and few epochs.

CI runs this file (``-m smoke``) on each supported Python, on the declared
minimum versions of the dependencies and with the plain Numba fallback
(``SKBP_PLAIN_NUMBA=1``), where the rest of the suite runs on one installation
only.  What is checked is that everything runs and answers sensibly there;
exact results are the other test files' business.
"""

import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV

from skbp import BPClassifier, BPRegressor, TabularClassifier, TabularRegressor

pytestmark = [
    pytest.mark.smoke,
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

SMALL = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0)

#: one setting of each solver and option family, on top of ``SMALL``
CASES = {
    "sgd": dict(solver="sgd", learning_rate_init=0.05),
    "sgd invscaling": dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.05),
    "sgd adaptive": dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.05),
    "adam": dict(solver="adam", learning_rate_init=0.01),
    "lbfgs": dict(solver="lbfgs", max_iter=20),
    "batch norm": dict(batch_norm=True),
    "dropout": dict(dropout=0.2),
    "residual": dict(hidden_layer_sizes=(8, 8), residual=True),
    "float32": dict(),
    "early stopping": dict(early_stopping=True, n_iter_no_change=2),
    "cosine": dict(learning_rate="cosine"),
    "one cycle": dict(learning_rate="one_cycle"),
    "cosine restarts": dict(learning_rate="cosine_restarts", n_cycles=2),
    "weight decay": dict(weight_decay=1e-3),
    "everything": dict(
        hidden_layer_sizes=(8, 8), batch_norm=True, dropout=0.1, residual=True,
        learning_rate="one_cycle", weight_decay=1e-3, max_grad_norm=1.0,
    ),
}  # fmt: skip


def _data(dtype=np.float64):
    X, y = make_classification(
        n_samples=120, n_features=6, n_informative=4, n_classes=3, random_state=0
    )
    return X.astype(dtype), y


def _round_trip(est, X):
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict(X), est.predict(X))
    return again


@pytest.mark.parametrize("case", CASES)
def test_classifier(case):
    X, y = _data(np.float32 if case == "float32" else np.float64)
    est = BPClassifier(**{**SMALL, **CASES[case]})
    if case == "early stopping":  # scored on the validation data given
        est.fit(X[:90], y[:90], X_val=X[90:], y_val=y[90:])
        assert len(est.validation_scores_) == est.n_iter_
    else:
        est.fit(X, y)
    assert set(est.predict(X)) <= set(y)
    proba = est.predict_proba(X)
    assert proba.shape == (len(X), 3)
    assert proba.dtype == X.dtype
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    _round_trip(est, X)


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_grid_search(solver):
    X, y = _data()
    search = GridSearchCV(BPClassifier(**SMALL, solver=solver), {"alpha": [1e-4, 1e-2]}, cv=2).fit(
        X, y
    )
    assert search.best_params_["alpha"] in (1e-4, 1e-2)
    assert search.score(X, y) > 1 / 3  # better than chance


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
def test_regressor(loss):
    X, y = _data()
    target = np.exp(X[:, 0] / 4) if loss == "poisson" else X[:, 0] - X[:, 1]
    est = BPRegressor(loss, **SMALL, batch_norm=True).fit(X, target)
    pred = _round_trip(est, X).predict(X)
    assert pred.shape == target.shape and np.isfinite(pred).all()


def test_tabular_estimators():
    pd = pytest.importorskip("pandas")
    X, y = _data()
    table = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    table["colour"] = pd.Categorical(np.array(["red", "green", "blue"])[y % 3])
    fast = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    clf = TabularClassifier(**fast).fit(table, y)
    assert clf.predict_proba(table).shape == (len(y), 3)
    _round_trip(clf, table)
    reg = TabularRegressor(**fast).fit(table, X[:, 0])
    assert np.isfinite(_round_trip(reg, table).predict(table)).all()


COLD = textwrap.dedent(
    """
    import warnings
    from sklearn.datasets import load_digits
    from skbp import BPClassifier, _cache
    warnings.simplefilter("ignore")
    X, y = load_digits(return_X_y=True)
    clf = BPClassifier(max_iter=5, random_state=0).fit(X, y)
    print((clf.predict(X) == y).mean(), _cache.STATS)
    """
)


@pytest.mark.slow  # on the main Python, with the slow tests
def test_a_cold_first_use(tmp_path):
    """A fresh process with an empty cache: the kernels come from the shipped store
    or are compiled, and the first default fit works either way."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    p = subprocess.run(
        [sys.executable, "-c", COLD], env=env, capture_output=True, text=True, timeout=900
    )
    assert p.returncode == 0, p.stderr[-3000:]
    accuracy = float(p.stdout.split()[0])
    assert accuracy > 0.5, p.stdout
    assert "'loaded': 0" in p.stdout, p.stdout  # nothing came from a cache
