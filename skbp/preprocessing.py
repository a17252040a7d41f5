"""Preprocessing transformers for tabular data fed to the networks.

The module needs NumPy, SciPy and scikit-learn only (no Numba), so importing it
does not load the training core.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils._param_validation import Interval
from sklearn.utils.sparsefuncs import inplace_column_scale
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

if TYPE_CHECKING:
    from numpy.typing import ArrayLike
    from sklearn.utils import Tags
    from typing_extensions import Self

__all__ = ["RobustSmoothClipScaler"]

#: added to each feature's spread before inverting it, as in the reference
#: implementation: it keeps the factor finite (at most 1e30, which float32 holds)
#: for spreads too small to invert
SPREAD_EPS = 1e-30

# float64 and float32 are kept; everything else (integers, bool, float16) becomes float64
_DTYPES = [np.float64, np.float32]


class RobustSmoothClipScaler(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    r"""Scale features robustly (median and quantiles), then clip them smoothly.

    The numeric preprocessing of RealMLP (Holzmüller et al., 2024), the tabular
    MLP recipe whose reference implementation is the ``pytabkit`` package: each
    feature is centered on its median, multiplied by the inverse of its
    interquartile range, and squashed into ``(-max_abs_value, max_abs_value)``
    by a smooth, strictly increasing function that is close to the identity near
    zero.  Outliers therefore reach the network as large but bounded values,
    while the bulk of the data keeps its shape.

    Missing values (NaN) are ignored in :meth:`fit` and kept as NaN by
    :meth:`transform`, as in scikit-learn's scalers.

    Parameters
    ----------
    quantile_range : tuple (q_min, q_max), default=(25.0, 75.0)
        Percentiles, ``0 <= q_min <= q_max <= 100``, whose difference is the
        spread that each feature is divided by; the default is the
        interquartile range of the recipe.

    max_abs_value : float, default=3.0
        Bound of the smooth clip: outputs lie in ``(-max_abs_value,
        max_abs_value)``.  ``inf`` clips nothing.  Ignored when ``clip=False``.

    clip : bool, default=True
        Whether to apply the smooth clip after scaling; ``False`` gives the
        robust scaling alone.

    with_centering : bool, default=True
        Whether to subtract the median.  Centering would turn the implicit zeros
        of a sparse matrix into nonzeros, so sparse input needs
        ``with_centering=False``; the smooth clip maps zero to zero and keeps
        the sparsity.

    copy : bool, default=True
        Whether to work on a copy of ``X``; with ``False``, :meth:`transform`
        and :meth:`inverse_transform` scale a float64 or float32 NumPy array or
        CSR/CSC matrix in place.

    Attributes
    ----------
    center_ : ndarray of shape (n_features,)
        The median of each feature in the training data (NaN for a feature with
        no observed value), or zeros when ``with_centering=False``.

    scale_ : ndarray of shape (n_features,)
        The factor each centered feature is multiplied by (see Notes): the
        inverse of its spread, or 0 for a feature that is constant (or
        entirely missing) in the training data.  Unlike the ``scale_`` of
        :class:`sklearn.preprocessing.RobustScaler`, a factor rather than a
        divisor, so that a constant feature can be given 0.

    n_features_in_ : int
        Number of features seen during :meth:`fit`.

    feature_names_in_ : ndarray of shape (n_features,)
        Names of features seen during :meth:`fit`.  Defined only when ``X`` has
        feature names that are all strings.

    See Also
    --------
    sklearn.preprocessing.RobustScaler : Median and quantile scaling without the clip.
    sklearn.preprocessing.QuantileTransformer : A rank-based, nonlinear alternative.

    Notes
    -----
    With :math:`m_j` the median of feature :math:`j`, :math:`q_j^{lo}` and
    :math:`q_j^{hi}` its ``quantile_range`` percentiles (linear interpolation,
    as :func:`numpy.percentile`), and :math:`b` = ``max_abs_value``, the spread
    is the difference of the quantiles, or half the range where the quantiles
    coincide (a feature that is mostly one value):

    .. math::

        d_j = \begin{cases}
            q_j^{hi} - q_j^{lo} & \text{if } q_j^{hi} \neq q_j^{lo}, \\
            (\max_j - \min_j) / 2 & \text{otherwise,}
        \end{cases}
        \qquad
        s_j = \begin{cases}
            1 / (d_j + 10^{-30}) & \text{if } d_j \neq 0, \\
            0 & \text{otherwise,}
        \end{cases}

    and a value :math:`x` becomes

    .. math::

        z = s_j (x - m_j), \qquad
        \operatorname{transform}(x) = \frac{z}{\sqrt{1 + (z / b)^2}}.

    The factor 0 makes a feature that is constant in the training data
    constant (0) at prediction time too.  The clip is computed in a form that
    does not overflow, so that even values at the edge of the float range map
    to :math:`\pm b`.  Its inverse, used by :meth:`inverse_transform`, is
    :math:`y \mapsto y / \sqrt{1 - (y / b)^2}` on :math:`(-b, b)`.

    This follows the reference implementation, with these additions: missing
    values are allowed (the reference implementation refuses them),
    ``quantile_range`` and ``with_centering`` are adjustable, sparse input is
    accepted without centering, and the transform can be inverted.

    References
    ----------
    .. [1] D. Holzmüller, L. Grinsztajn and I. Steinwart, "Better by default:
       Strong pre-tuned MLPs and boosted trees on tabular data", Advances in
       Neural Information Processing Systems 37 (NeurIPS 2024).
       https://arxiv.org/abs/2407.04491
    .. [2] The ``pytabkit`` package, https://github.com/dholzmueller/pytabkit

    Examples
    --------
    >>> import numpy as np
    >>> from skbp.preprocessing import RobustSmoothClipScaler
    >>> X = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 0.0], [1e6, 0.0]])
    >>> scaler = RobustSmoothClipScaler().fit(X)
    >>> scaler.center_, scaler.scale_
    (array([3., 0.]), array([0.5, 0. ]))
    >>> scaler.transform(X).round(3)
    array([[-0.949,  0.   ],
           [-0.493,  0.   ],
           [ 0.   ,  0.   ],
           [ 0.493,  0.   ],
           [ 3.   ,  0.   ]])
    >>> scaler.inverse_transform(scaler.transform(X[:4])).round(6)
    array([[1., 0.],
           [2., 0.],
           [3., 0.],
           [4., 0.]])
    """

    _parameter_constraints: dict = {
        "quantile_range": [tuple],
        "max_abs_value": [Interval(numbers.Real, 0, None, closed="right")],
        "clip": ["boolean"],
        "with_centering": ["boolean"],
        "copy": ["boolean"],
    }

    def __init__(
        self,
        *,
        quantile_range: tuple[float, float] = (25.0, 75.0),
        max_abs_value: float = 3.0,
        clip: bool = True,
        with_centering: bool = True,
        copy: bool = True,
    ) -> None:
        self.quantile_range = quantile_range
        self.max_abs_value = max_abs_value
        self.clip = clip
        self.with_centering = with_centering
        self.copy = copy

    def fit(self, X: ArrayLike, y: None = None) -> Self:
        """Compute each feature's median and scaling factor.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The training data; NaN marks a missing value, which is ignored.
            Sparse input needs ``with_centering=False``.

        y : None
            Ignored.

        Returns
        -------
        self : RobustSmoothClipScaler
            The fitted transformer.
        """
        self._validate_params()
        q_min, q_max = self._checked_quantile_range()
        self._refuse_sparse_centering(X)
        X = validate_data(
            self, X, accept_sparse="csc", dtype=_DTYPES, ensure_all_finite="allow-nan"
        )
        lo, median, hi, low, high = _column_stats(X, (q_min, 50.0, q_max))
        spread = hi - lo
        tied = spread == 0
        # where the quantiles coincide, half the range is the spread; the halves are
        # taken first so that the difference cannot overflow
        spread[tied] = 0.5 * high[tied] - 0.5 * low[tied]
        constant = (spread == 0) | np.isnan(spread)
        scale = np.zeros_like(spread)
        scale[~constant] = 1.0 / (spread[~constant] + SPREAD_EPS)
        self.center_ = (
            median.astype(X.dtype) if self.with_centering else np.zeros(X.shape[1], X.dtype)
        )
        self.scale_ = scale.astype(X.dtype)
        return self

    def transform(self, X: ArrayLike) -> np.ndarray | sp.csr_matrix | sp.csc_matrix:
        """Scale and clip ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The data; NaN is kept as NaN.

        Returns
        -------
        X_tr : {ndarray, sparse matrix} of shape (n_samples, n_features)
            The transformed data, float32 for float32 input and float64
            otherwise; values lie in ``(-max_abs_value, max_abs_value)`` when
            ``clip=True``.
        """
        check_is_fitted(self)
        self._refuse_sparse_centering(X)
        X = validate_data(
            self, X, accept_sparse=("csr", "csc"), dtype=_DTYPES,
            copy=self.copy, force_writeable=True, reset=False, ensure_all_finite="allow-nan",
        )  # fmt: skip
        if sp.issparse(X):
            inplace_column_scale(X, self.scale_.astype(X.dtype))
            values = X.data
        else:
            # a constant feature's values become 0 whatever they are: subtracting
            # 0 rather than its center avoids infinity * 0 where x - center overflows
            X -= np.where(self.scale_ == 0, 0, self.center_)
            X *= self.scale_
            values = X
        if self.clip:
            _smooth_clip(values, self.max_abs_value)
        return X

    def inverse_transform(self, X: ArrayLike) -> np.ndarray | sp.csr_matrix | sp.csc_matrix:
        """Map transformed data back to the original scale.

        The smooth clip is inverted on ``(-max_abs_value, max_abs_value)``;
        values at or beyond the bound, which only rounding of very large inputs
        produces, come back as ``+inf`` or ``-inf``.  Precision is lost as
        values approach the bound.  A feature that was constant in the training
        data comes back as its training value.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Transformed data.

        Returns
        -------
        X_original : {ndarray, sparse matrix} of shape (n_samples, n_features)
            The data on the original scale.
        """
        check_is_fitted(self)
        self._refuse_sparse_centering(X)
        X = check_array(
            X, accept_sparse=("csr", "csc"), dtype=_DTYPES,
            copy=self.copy, force_writeable=True, ensure_all_finite="allow-nan",
        )  # fmt: skip
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} was fitted with "
                f"{self.n_features_in_} features: pass data with the fitted features."
            )
        values = X.data if sp.issparse(X) else X
        if self.clip:
            _smooth_clip_inverse(values, self.max_abs_value)
        with np.errstate(divide="ignore"):
            inverse_scale = np.where(self.scale_ == 0, 0, 1 / self.scale_)
        if sp.issparse(X):
            inplace_column_scale(X, inverse_scale.astype(X.dtype))
        else:
            X *= inverse_scale
            X += self.center_
        return X

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.sparse = not self.with_centering
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def _checked_quantile_range(self) -> tuple[float, float]:
        qr = self.quantile_range
        if not (
            len(qr) == 2
            and all(isinstance(q, numbers.Real) for q in qr)
            and 0 <= qr[0] <= qr[1] <= 100
        ):
            raise ValueError(
                f"quantile_range must be two percentiles (q_min, q_max) with "
                f"0 <= q_min <= q_max <= 100, got {qr!r}."
            )
        return float(qr[0]), float(qr[1])

    def _refuse_sparse_centering(self, X: object) -> None:
        if self.with_centering and sp.issparse(X):
            raise ValueError(
                "RobustSmoothClipScaler cannot center sparse data: subtracting the medians "
                "would make every implicit zero nonzero. Pass with_centering=False to scale "
                "sparse data without centering, or convert X to a dense array (X.toarray())."
            )


def _column_stats(
    X: np.ndarray | sp.csc_matrix, percentiles: tuple[float, ...]
) -> tuple[np.ndarray, ...]:
    """Each column's ``percentiles`` then its minimum and maximum, NaN ignored (float64).

    A column with no observed value gets NaN throughout.  A sparse column's
    implicit zeros count as values.
    """
    n_samples, n_features = X.shape
    stats = np.full((len(percentiles) + 2, n_features), np.nan)
    if sp.issparse(X):
        for j in range(n_features):
            column = np.zeros(n_samples, dtype=X.dtype)
            nonzeros = X.data[X.indptr[j] : X.indptr[j + 1]]
            column[: len(nonzeros)] = nonzeros
            if not np.isnan(column).all():
                stats[:-2, j] = np.nanpercentile(column, percentiles)
                stats[-2:, j] = np.nanmin(column), np.nanmax(column)
        return tuple(stats)
    # columns with no observed value are left out: NumPy warns about them
    observed = ~np.isnan(X).all(axis=0)
    Xo = X if observed.all() else X[:, observed]
    if Xo.shape[1]:
        stats[:-2, observed] = np.nanpercentile(Xo, percentiles, axis=0)
        stats[-2, observed] = np.nanmin(Xo, axis=0)
        stats[-1, observed] = np.nanmax(Xo, axis=0)
    return tuple(stats)


def _smooth_clip(values: np.ndarray, bound: float) -> None:
    """``values / sqrt(1 + (values / bound)**2)``, in place, NaN kept.

    Computed as ``bound * t / hypot(1, t)`` with ``t = values / bound``: the
    direct form overflows in ``(values / bound)**2`` and returns 0 for large
    values (above about 5e19 in float32), where the result is ``+-bound``.
    """
    with np.errstate(over="ignore"):
        b = values.dtype.type(bound)  # a bound beyond the dtype's range clips nothing
    if np.isinf(b):
        return
    fmax = np.finfo(values.dtype).max
    values /= b
    # infinities (from a scaling that overflowed) have the limit +-bound
    np.clip(values, -fmax, fmax, out=values)
    values /= np.hypot(values.dtype.type(1), values)
    values *= b


def _smooth_clip_inverse(values: np.ndarray, bound: float) -> None:
    """``values / sqrt(1 - (values / bound)**2)``, in place; ``+-inf`` at or beyond the bound."""
    with np.errstate(over="ignore"):
        b = values.dtype.type(bound)
    if np.isinf(b):
        return
    values /= b
    np.clip(values, -1, 1, out=values)
    # (1 - u)(1 + u) rather than 1 - u**2: accurate as |u| approaches 1
    with np.errstate(divide="ignore"):
        values /= np.sqrt((1 - values) * (1 + values))
    values *= b
