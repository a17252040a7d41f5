"""RobustSmoothClipScaler: the recipe against a NumPy reference, and its scikit-learn contract."""

import os
import pickle
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.preprocessing import RobustScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skbp.preprocessing import RobustSmoothClipScaler

ROOT = Path(__file__).resolve().parent.parent

# the default recipe, robust scaling alone, the sparse-capable variant, and other
# quantiles and bound: every check runs on each, none skipped or expected to fail
ESTIMATORS = [
    RobustSmoothClipScaler(),
    RobustSmoothClipScaler(clip=False),
    RobustSmoothClipScaler(with_centering=False),
    RobustSmoothClipScaler(quantile_range=(10.0, 90.0), max_abs_value=1.5),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def reference_transform(X_fit, X, quantile_range=(25.0, 75.0), max_abs_value=3.0, clip=True):
    """RealMLP's robust scaling and smooth clip, one feature at a time, in float64.

    From the paper and the ``pytabkit`` reference implementation: center on the
    median, divide by the quantile difference (half the range where the
    quantiles coincide) plus 1e-30, use factor 0 where that spread is 0, then
    ``z / sqrt(1 + (z / max_abs_value)**2)``.  Missing values are dropped from
    the statistics and stay missing.
    """
    X_fit = np.asarray(X_fit, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    out = np.empty_like(X)
    for j in range(X.shape[1]):
        seen = X_fit[~np.isnan(X_fit[:, j]), j]
        median = np.median(seen)
        q_lo, q_hi = np.quantile(seen, [quantile_range[0] / 100, quantile_range[1] / 100])
        quant_diff = q_hi - q_lo
        if quant_diff == 0.0:
            quant_diff = 0.5 * (seen.max() - seen.min())
        factor = 0.0 if quant_diff == 0.0 else 1.0 / (quant_diff + 1e-30)
        z = factor * (X[:, j] - median)
        out[:, j] = z / np.sqrt(1 + (z / max_abs_value) ** 2) if clip else z
    return out


def tabular_data(seed, n=300):
    """Features of the kinds tabular data has, with missing values and outliers."""
    rng = np.random.default_rng(seed)
    X = np.column_stack(
        [
            rng.standard_normal(n),
            10 * rng.standard_cauchy(n) + 5,  # heavy tails
            rng.lognormal(3.0, 1.5, n),  # skewed
            np.full(n, 7.0),  # constant
            np.where(rng.random(n) < 0.9, 1.0, rng.uniform(-50, 50, n)),  # quartiles tie
            rng.integers(0, 3, n).astype(np.float64),  # a few levels
        ]
    )
    X[rng.random(X.shape) < 0.1] = np.nan
    X[[3, 17], 0] = [1e6, -1e4]
    return X


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 2e-5)])
@pytest.mark.parametrize(
    "params",
    [{}, {"clip": False}, {"quantile_range": (10.0, 90.0), "max_abs_value": 1.5}],
    ids=["default", "no-clip", "other-quantiles-and-bound"],
)
def test_matches_reference(dtype, tol, params):
    X_fit, X_new = tabular_data(0).astype(dtype), tabular_data(1).astype(dtype)
    # the data exercise the fallback: a feature whose quartiles coincide
    q_lo, q_hi = np.nanpercentile(X_fit[:, 4], [25, 75])
    assert q_lo == q_hi
    scaler = RobustSmoothClipScaler(**params).fit(X_fit)
    for X in (X_fit, X_new):
        out = scaler.transform(X)
        assert out.dtype == dtype
        assert_array_equal(np.isnan(out), np.isnan(X))
        assert_allclose(out, reference_transform(X_fit, X, **params), rtol=tol, atol=tol)


def test_without_clip_matches_robust_scaler():
    """Robust scaling alone is scikit-learn's RobustScaler where no quartiles tie."""
    X = tabular_data(0)[:, [0, 1, 2, 5]]
    ours = RobustSmoothClipScaler(clip=False).fit(X)
    theirs = RobustScaler().fit(X)
    assert_allclose(ours.center_, theirs.center_)
    assert_allclose(ours.scale_, 1 / theirs.scale_, rtol=1e-12)
    assert_allclose(ours.transform(X), theirs.transform(X), rtol=1e-12)


def test_tied_quartiles_fall_back_to_half_the_range():
    X = np.array([[0.0], [0.0], [0.0], [0.0], [0.0], [0.0], [-10.0], [10.0], [0.0]])
    scaler = RobustSmoothClipScaler(clip=False).fit(X)
    assert_allclose(scaler.scale_, [0.1])
    assert_allclose(scaler.transform([[5.0]]), [[0.5]])


def test_constant_and_unobserved_features_map_to_zero():
    """A feature constant (or entirely missing) in fit gives 0, never inf or NaN."""
    big = 1e308  # x - center overflows for the new value -big
    X = np.array([[1.0, big, np.nan], [2.0, big, np.nan], [3.0, big, np.nan]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor a NumPy warning about the empty feature
        scaler = RobustSmoothClipScaler().fit(X)
        out = scaler.transform([[2.0, big, 1.0], [2.0, -big, 5.0], [2.0, np.nan, np.nan]])
    assert_array_equal(scaler.scale_[1:], [0.0, 0.0])
    assert_array_equal(out, [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, np.nan, np.nan]])
    # a constant feature comes back as its training value
    assert_array_equal(scaler.inverse_transform(out[:2])[:, 1], [big, big])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_outliers_map_near_the_bound(dtype):
    rng = np.random.default_rng(0)
    bulk = rng.standard_normal((1000, 1))
    X = np.vstack([bulk, [[1e6], [-1e6]]]).astype(dtype)
    scaler = RobustSmoothClipScaler().fit(X)
    out = scaler.transform(X)
    assert_allclose(out[-2:, 0], [3.0, -3.0], rtol=1e-6)
    assert np.all(np.abs(out) <= 3.0)
    # the outliers hardly move the scaling of the bulk (a standard scaler's standard
    # deviation would grow more than ten thousandfold)
    without = RobustSmoothClipScaler().fit(bulk.astype(dtype)).transform(bulk.astype(dtype))
    assert np.max(np.abs(out[:-2] - without)) < 0.02


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_values_at_the_edge_of_the_float_range_clip_to_the_bound(dtype):
    """The direct formula overflows in (z / 3)**2 and gives 0 here (float32: from about 5e19)."""
    big = np.finfo(dtype).max
    scaler = RobustSmoothClipScaler().fit(np.array([[-1.0], [0.0], [1.0]], dtype=dtype))
    X = np.array([[1e25], [-1e25], [big], [-big]], dtype=dtype)
    out = scaler.transform(X)
    assert_allclose(out, [[3.0], [-3.0], [3.0], [-3.0]], rtol=1e-6)
    # and with a center that makes x - center overflow
    scaler = RobustSmoothClipScaler().fit(np.array([[-big], [-big / 2], [0.0]], dtype=dtype))
    with np.errstate(over="ignore"):
        assert_allclose(scaler.transform(np.array([[big]], dtype=dtype)), [[3.0]], rtol=1e-6)


@pytest.mark.parametrize("params", [{}, {"clip": False}, {"max_abs_value": 1.5}])
def test_inverse_transform_round_trip(params):
    X = tabular_data(0)
    X[[3, 17], 0] = [4.0, -3.0]  # no outliers: their inverse is lossy near the bound
    scaler = RobustSmoothClipScaler(**params).fit(X)
    assert_allclose(scaler.inverse_transform(scaler.transform(X)), X, rtol=1e-9, atol=1e-9)


def test_inverse_transform_of_the_bound_is_infinite():
    scaler = RobustSmoothClipScaler().fit([[0.0], [1.0], [2.0]])
    out = scaler.inverse_transform([[3.0], [-3.5], [0.0], [np.nan]])
    assert_array_equal(out, [[np.inf], [-np.inf], [1.0], [np.nan]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64, np.float16, bool])
def test_output_dtype(dtype):
    X = np.array([[0, 1], [1, 0], [1, 1], [0, 0]]).astype(dtype)
    scaler = RobustSmoothClipScaler().fit(X)
    expected = np.float32 if dtype == np.float32 else np.float64
    assert scaler.transform(X).dtype == expected
    assert scaler.center_.dtype == scaler.scale_.dtype == expected
    assert scaler.inverse_transform(scaler.transform(X)).dtype == expected


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_without_centering_matches_dense(fmt):
    X = sp.random(200, 5, density=0.3, format=fmt, random_state=0, dtype=np.float64)
    X.data = 100 * (X.data - 0.5)
    X.data[::11] = np.nan
    scaler = RobustSmoothClipScaler(with_centering=False).fit(X)
    dense = RobustSmoothClipScaler(with_centering=False).fit(X.toarray())
    assert_allclose(scaler.scale_, dense.scale_)
    assert_array_equal(scaler.center_, np.zeros(5))
    out = scaler.transform(X)
    assert out.format == fmt and out.nnz == X.nnz  # implicit zeros stay implicit
    assert_allclose(out.toarray(), dense.transform(X.toarray()))
    assert_allclose(scaler.inverse_transform(out).toarray(), X.toarray(), rtol=1e-9)


def test_sparse_with_centering_is_refused_clearly():
    X = sp.random(20, 3, density=0.5, format="csr", random_state=0)
    message = re.escape("with_centering=False")
    with pytest.raises(ValueError, match=message):
        RobustSmoothClipScaler().fit(X)
    scaler = RobustSmoothClipScaler().fit(X.toarray())
    with pytest.raises(ValueError, match=message):
        scaler.transform(X)
    with pytest.raises(ValueError, match=message):
        scaler.inverse_transform(X)


def test_pandas_in_and_out():
    X = pd.DataFrame(
        tabular_data(0)[:, :3], columns=["age", "income", "debt"], index=np.arange(300) + 1000
    )
    scaler = RobustSmoothClipScaler().set_output(transform="pandas").fit(X)
    assert_array_equal(scaler.feature_names_in_, ["age", "income", "debt"])
    assert_array_equal(scaler.get_feature_names_out(), ["age", "income", "debt"])
    out = scaler.transform(X)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["age", "income", "debt"]
    assert out.index.equals(X.index)
    assert_allclose(out.to_numpy(), reference_transform(X, X), rtol=1e-10, atol=1e-10)
    assert_allclose(scaler.inverse_transform(out), X.to_numpy(), rtol=1e-3)
    with pytest.raises(ValueError, match="feature names"):
        scaler.transform(X[["debt", "age", "income"]])


def test_pickle_round_trip():
    X = tabular_data(0)
    scaler = RobustSmoothClipScaler(quantile_range=(10.0, 90.0), max_abs_value=2.0).fit(X)
    restored = pickle.loads(pickle.dumps(scaler))
    assert restored.get_params() == scaler.get_params()
    assert_array_equal(restored.center_, scaler.center_)
    assert_array_equal(restored.scale_, scaler.scale_)
    assert_array_equal(restored.transform(X), scaler.transform(X))


def test_copy_false_scales_in_place():
    X = tabular_data(0)
    expected = RobustSmoothClipScaler().fit(X).transform(X)
    scaler = RobustSmoothClipScaler(copy=False).fit(X)
    out = scaler.transform(X)
    assert out is X
    assert_array_equal(X, expected)


def test_bound_parameter():
    X = tabular_data(0)
    out = RobustSmoothClipScaler(max_abs_value=1.5).fit_transform(X)
    assert np.nanmax(np.abs(out)) <= 1.5
    # an infinite bound clips nothing
    assert_array_equal(
        RobustSmoothClipScaler(max_abs_value=np.inf).fit_transform(X),
        RobustSmoothClipScaler(clip=False).fit_transform(X),
    )


@pytest.mark.parametrize(
    "quantile_range", [(75.0, 25.0), (-1.0, 50.0), (25.0, 101.0), (25.0,), (1, 2, 3), ("a", "b")]
)
def test_invalid_quantile_range(quantile_range):
    with pytest.raises(ValueError, match=re.escape("0 <= q_min <= q_max <= 100")):
        RobustSmoothClipScaler(quantile_range=quantile_range).fit([[0.0], [1.0]])


def test_import_does_not_load_the_numba_core():
    """A pipeline's preprocessing step alone starts without loading Numba."""
    code = (
        "import sys, skbp.preprocessing; print(sorted({'numba', 'skbp._base'} & set(sys.modules)))"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], env=dict(os.environ), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.strip() == "[]"
