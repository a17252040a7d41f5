"""Digits in a Pipeline with GridSearchCV: skbp's BPClassifier next to scikit-learn's MLP.

Runs on data bundled with scikit-learn (no download).  Prints the best
parameters, the held-out accuracy and the wall time of the same grid search
with BPClassifier and with MLPClassifier.

    python examples/demo_digits.py
"""

import logging
import time
import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

import skbp
from skbp import BPClassifier


def grid_search(estimator, X_train, y_train):
    pipe = make_pipeline(MinMaxScaler(), estimator)
    step = pipe.steps[-1][0]
    grid = {
        f"{step}__hidden_layer_sizes": [(32,), (64,), (64, 32)],
        f"{step}__learning_rate_init": [1e-3, 1e-2],
    }
    search = GridSearchCV(pipe, grid, cv=3)
    t0 = time.perf_counter()
    search.fit(X_train, y_train)
    return search, time.perf_counter() - t0


def main():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    # Compile first, outside the timed searches: skbp.precompile reaches every
    # kernel a fit and a prediction use.  The very first run on a machine
    # compiles them (tens of seconds on 2 cores); later runs load them from the
    # on-disk cache in well under a second.
    logging.getLogger("skbp").setLevel(logging.ERROR)  # this script reports it itself
    print("Compiling skbp's kernels (or loading them from the cache) ...", flush=True)
    seconds = skbp.precompile("float64")  # digits scaled by MinMaxScaler: float64
    print(f"done in {seconds:.1f} s (not counted below)\n")

    warnings.simplefilter("ignore", ConvergenceWarning)
    rows = []
    for name, est in [
        ("skbp.BPClassifier", BPClassifier(max_iter=100, random_state=0)),
        ("sklearn MLPClassifier", MLPClassifier(max_iter=100, random_state=0)),
    ]:
        search, seconds = grid_search(est, X_train, y_train)
        rows.append((name, search.best_params_, search.score(X_test, y_test), seconds))

    print(f"\n{'estimator':<24}{'test accuracy':>14}{'grid time (s)':>15}  best parameters")
    for name, params, acc, seconds in rows:
        short = {k.split("__")[1]: v for k, v in params.items()}
        print(f"{name:<24}{acc:>14.4f}{seconds:>15.2f}  {short}")
    print(
        f"\nskbp speed-up on this grid search: {rows[1][3] / rows[0][3]:.1f}x "
        "(the same searches, the same cores; skbp's compilation excluded above)"
    )


if __name__ == "__main__":
    main()
