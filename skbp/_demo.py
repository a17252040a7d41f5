"""``python -m skbp``: digits in a Pipeline with GridSearchCV, skbp next to scikit-learn's MLP.

Runs on data bundled with scikit-learn (no download).  Compiles (or loads)
skbp's kernels first and says how long that took, then prints the best
parameters, the held-out accuracy and the wall time of the same grid search
with BPClassifier and with MLPClassifier.

    python -m skbp                  # this demo
    python examples/demo_digits.py  # the same, from a checkout
"""

from __future__ import annotations

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

__all__ = ["main"]


def grid_search(estimator, X_train, y_train):
    """The timed search: ``(fitted GridSearchCV, seconds)``."""
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


def main(max_iter: int = 100) -> None:
    """Run the demo (it prints how long each part took).

    ``max_iter`` is every fit's epoch budget (the tests run it small).
    """
    print(
        "skbp demo: a 6-candidate x 3-fold GridSearchCV over a MinMaxScaler -> network\n"
        "pipeline on scikit-learn's digits (1,347 training images of 64 pixels), once\n"
        "with skbp.BPClassifier, once with sklearn.neural_network.MLPClassifier.\n"
    )
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    # Compile first, outside the timed searches: skbp.precompile reaches every
    # kernel a fit and a prediction use.  The very first run on a machine
    # makes their machine code from the LLVM IR skbp ships (or has Numba compile
    # them, which takes longer); later runs load them from the on-disk cache.
    logging.getLogger("skbp").setLevel(logging.ERROR)  # this script reports it itself
    print("Compiling skbp's kernels (or loading them from the cache) ...", flush=True)
    seconds = skbp.precompile("float64")  # digits scaled by MinMaxScaler: float64
    print(f"done in {seconds:.1f} s (not counted below)\n")

    warnings.simplefilter("ignore", ConvergenceWarning)
    rows = []
    for name, est in [
        ("skbp.BPClassifier", BPClassifier(max_iter=max_iter, random_state=0)),
        ("sklearn MLPClassifier", MLPClassifier(max_iter=max_iter, random_state=0)),
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
