"""scikit-learn's estimator checks over both estimators, with no expected failures."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from skbp import BPClassifier, BPRegressor

# Small networks keep the ~50 checks per estimator quick; every check runs on
# these exact instances, with no check skipped or expected to fail.
ESTIMATORS = [
    BPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0),
    BPRegressor(hidden_layer_sizes=(16,), max_iter=300, random_state=0),
    BPClassifier(hidden_layer_sizes=(8, 8), solver="lbfgs", random_state=0),
    BPRegressor(hidden_layer_sizes=(8, 8), solver="lbfgs", activation="tanh", random_state=0),
    BPClassifier(hidden_layer_sizes=(16,), solver="sgd", learning_rate_init=0.05, random_state=0),
    BPRegressor(
        solver="sgd",
        learning_rate="adaptive",
        learning_rate_init=0.05,
        activation="logistic",
        random_state=0,
    ),
]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
