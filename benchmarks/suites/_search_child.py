"""The grid search of the ``search`` suite, also run as a script in a fresh process.

Run as ``python _search_child.py LIB BACKEND EPOCHS N_JOBS`` it makes two
searches in a new interpreter (the first starts and warms the loky workers as
in a user's first search; the second reuses them) and prints their times as
JSON.  It imports scikit-learn only (skbp for ``LIB`` skbp), never the
benchmark harness, so that the workers pay what a user's would.
"""

import json
import sys
import time
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

HIDDEN = [(32,), (64,), (64, 32)]
LEARNING_RATES = [1e-3, 1e-2]
FOLDS = 5


def search_data():
    """8,000 x 30 binary tabular data."""
    from sklearn.datasets import make_classification

    return make_classification(n_samples=8000, n_features=30, n_informative=15, random_state=0)


def pipeline_search(Net, epochs, n_jobs):
    """An unfitted ``GridSearchCV`` of a ``StandardScaler`` -> ``Net`` pipeline:
    3 hidden sizes x 2 learning rates x 5 folds, Adam, batch 32."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    net = Net(solver="adam", batch_size=32, max_iter=epochs, tol=0.0, n_iter_no_change=10**6,
              random_state=0)  # fmt: skip
    name = type(net).__name__.lower()
    grid = {f"{name}__hidden_layer_sizes": HIDDEN, f"{name}__learning_rate_init": LEARNING_RATES}
    return GridSearchCV(make_pipeline(StandardScaler(), net), grid, cv=FOLDS, n_jobs=n_jobs)


class Floor(ClassifierMixin, BaseEstimator):
    """An estimator that learns nothing: the search around the fits (the floor)."""

    def __init__(self, hidden_layer_sizes=(100,), learning_rate_init=1e-3, solver="adam",
                 batch_size=32, max_iter=200, tol=1e-4, n_iter_no_change=10,
                 random_state=None):  # fmt: skip
        self.hidden_layer_sizes = hidden_layer_sizes
        self.learning_rate_init = learning_rate_init
        self.solver = solver
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def main(lib, backend, epochs, n_jobs):
    import joblib
    from sklearn.exceptions import ConvergenceWarning

    warnings.simplefilter("ignore", ConvergenceWarning)
    if lib == "skbp":
        from skbp import BPClassifier as Net
    elif lib == "sklearn":
        from sklearn.neural_network import MLPClassifier as Net
    else:
        Net = Floor
    X, y = search_data()
    times = []
    for _ in range(2):  # the first search starts the workers; the second reuses them
        search = pipeline_search(Net, epochs, n_jobs)
        t0 = time.perf_counter()
        with joblib.parallel_backend(backend, n_jobs=n_jobs):
            search.fit(X, y)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"times": times, "best": search.best_score_}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
