"""skbp: scikit-learn estimators for backpropagation networks on a Numba core."""

from ._estimators import BPClassifier, BPRegressor

__version__ = "0.1.0"

__all__ = ["BPClassifier", "BPRegressor", "__version__"]
