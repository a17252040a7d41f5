"""skbp: scikit-learn estimators for backpropagation networks on a Numba core."""

__version__ = "0.1.0"

__all__ = ["BPClassifier", "BPRegressor", "precompile", "__version__"]


def __getattr__(name):
    # the estimators (and scikit-learn behind them) load on first use, so that
    # `python -m skbp` and processes that only need the kernels start quickly
    if name in ("BPClassifier", "BPRegressor"):
        from . import _estimators

        return getattr(_estimators, name)
    if name == "precompile":
        from ._compile import precompile

        return precompile
    raise AttributeError(f"module 'skbp' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), "BPClassifier", "BPRegressor", "precompile"])
