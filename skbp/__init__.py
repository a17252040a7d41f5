"""skbp: scikit-learn estimators for backpropagation networks on a Numba core."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what the lazy ``__getattr__`` below returns, for type checkers
    from ._compile import precompile
    from ._estimators import BPClassifier, BPRegressor
    from .tabular import TabularClassifier, TabularRegressor

__version__ = "0.1.0"

__all__ = [
    "BPClassifier",
    "BPRegressor",
    "TabularClassifier",
    "TabularRegressor",
    "precompile",
    "__version__",
]


def __getattr__(name: str) -> object:
    # the estimators (and scikit-learn behind them) load on first use, so that
    # `python -m skbp` and processes that only need the kernels start quickly
    if name in ("BPClassifier", "BPRegressor"):
        from . import _estimators

        return getattr(_estimators, name)
    if name in ("TabularClassifier", "TabularRegressor"):
        from . import tabular

        return getattr(tabular, name)
    if name == "precompile":
        from ._compile import precompile

        return precompile
    raise AttributeError(f"module 'skbp' has no attribute {name!r}")


def __dir__() -> list[str]:
    names = [n for n in globals() if n not in ("annotations", "TYPE_CHECKING")]
    lazy = ["BPClassifier", "BPRegressor", "TabularClassifier", "TabularRegressor", "precompile"]
    return sorted([*names, *lazy])
