"""TabularClassifier and TabularRegressor: a table in, the tabular-MLP recipe inside.

The estimators take a pandas DataFrame (or an array) as
:class:`~sklearn.ensemble.HistGradientBoostingClassifier` does and need no
preprocessing: the columns are split into numbers and categories, encoded by
:class:`_ColumnEncoder`, and fed to a :class:`~skbp.BPClassifier` or
:class:`~skbp.BPRegressor` with the defaults of RealMLP-TD (Holzmüller et al.,
2024) that carry over to skbp's network.
"""

from __future__ import annotations

import numbers
import sys
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, TargetEncoder
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import (
    _check_sample_weight,
    _check_y,
    check_array,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from .preprocessing import RobustSmoothClipScaler

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from numpy.typing import ArrayLike
    from sklearn.utils import Tags
    from typing_extensions import Self

__all__ = ["TabularClassifier", "TabularRegressor"]


# ------------------------------------------------------------------ columns
# pandas is not a dependency of skbp: a DataFrame brings it along, and its own
# methods are used here rather than an import


def _is_dataframe(X: object) -> bool:
    """Whether ``X`` is a pandas DataFrame (pandas is loaded already if it is one)."""
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(X, pd.DataFrame)


def _is_categorical_dtype(dtype: Any) -> bool:
    """Category, object, string (all of kind ``O``) and boolean (kind ``b``) dtypes."""
    return getattr(dtype, "name", "") == "category" or getattr(dtype, "kind", "") in "Ob"


def _categorical_mask(X: Any, categorical_features: object) -> np.ndarray:
    """Which columns of ``X`` are categorical, as a boolean mask.

    The accepted values and errors are those of
    :class:`~sklearn.ensemble.HistGradientBoostingClassifier`, with one
    difference: ``"from_dtype"`` takes ``object``, string and boolean columns as
    categorical too (HistGradientBoosting takes category dtype only, and refuses
    string columns), since a network has no other use for them.
    """
    n_features = X.shape[1]
    names = list(X.columns) if _is_dataframe(X) else None
    if isinstance(categorical_features, str) and categorical_features == "from_dtype":
        if names is None:  # an array has no dtypes per column: no categories unless given
            return np.zeros(n_features, dtype=bool)
        return np.array([_is_categorical_dtype(d) for d in X.dtypes], dtype=bool)
    if categorical_features is None:
        return np.zeros(n_features, dtype=bool)
    given = np.asarray(categorical_features)
    if given.size == 0:
        return np.zeros(n_features, dtype=bool)
    if given.dtype.kind not in "ibUO":
        raise ValueError(
            "categorical_features must be an array-like of bool, int or str, got: "
            f"{given.dtype.name}."
        )
    if given.dtype.kind == "O" and {type(f) for f in given.ravel()} != {str}:
        raise ValueError(
            "categorical_features must be an array-like of bool, int or str, got: "
            + ", ".join(sorted({type(f).__name__ for f in given.ravel()}))
            + "."
        )
    mask = np.zeros(n_features, dtype=bool)
    if given.dtype.kind in "UO":
        if names is None:
            raise ValueError(
                "categorical_features should be passed as an array of integers or as a "
                "boolean mask when the model is fitted on data without feature names."
            )
        for name in given:
            if name not in names:
                raise ValueError(
                    f"categorical_features has an item value '{name}' which is not a valid "
                    f"feature name of the training data. Observed feature names: {names}"
                )
            mask[names.index(name)] = True
    elif given.dtype.kind == "i":
        if given.max() >= n_features or given.min() < 0:
            raise ValueError(
                "categorical_features set as integer indices must be in [0, n_features - 1]"
            )
        mask[given] = True
    else:
        if given.shape[0] != n_features:
            raise ValueError(
                "categorical_features set as a boolean mask must have shape (n_features,), "
                f"got: {given.shape}"
            )
        mask[:] = given
    return mask


def _numeric_block(X: Any, columns: np.ndarray) -> np.ndarray:
    """The numeric ``columns`` of ``X`` as float64, every missing marker (None, pd.NA) NaN."""
    if _is_dataframe(X):
        block = X.iloc[:, columns]
        try:
            # nullable integer and boolean columns turn pd.NA into NaN here
            return block.astype("float64").to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            bad = [str(c) for c in block.columns if block[c].dtype.kind not in "biuf"]
            raise ValueError(
                f"The columns {bad} are not numeric and not categorical ({exc}). Declare them "
                "categorical with categorical_features (names, indices or a mask), or give "
                "them a category or string dtype."
            ) from exc
    return np.asarray(X[:, columns], dtype=np.float64)


def _is_missing(value: object) -> bool:
    try:
        return value is None or bool(value != value)  # NaN and NaT differ from themselves
    except TypeError:  # pd.NA: its comparisons are NA, which has no truth value
        return True


_missing = np.frompyfunc(_is_missing, 1, 1)


def _categorical_block(X: Any, columns: np.ndarray) -> np.ndarray:
    """The categorical ``columns`` of ``X`` as an object array, every missing marker NaN.

    scikit-learn's encoders take NaN as the missing value of an object column;
    None, pd.NA and NaT all become it, so that each is the same, own category.
    """
    if _is_dataframe(X):
        block = X.iloc[:, columns]
        missing = block.isna().to_numpy(dtype=bool)
        block = block.astype(object).to_numpy(dtype=object, copy=True)
    else:
        block = np.array(X[:, columns], dtype=object)
        missing = _missing(block).astype(bool)
    block[missing] = np.nan
    return block


class _ColumnEncoder(TransformerMixin, BaseEstimator):
    """The recipe's preprocessing of a table, as one float64 matrix.

    Numeric columns: RealMLP's robust scaling and smooth clip
    (:class:`~skbp.preprocessing.RobustSmoothClipScaler`), then each missing
    value becomes 0 and a column of the rows where it was missing is added.
    The scaler ignores missing values and centers each column on its median,
    so 0 is the median imputation on the scaled axis; imputing after scaling
    keeps the imputed values out of the quantiles (imputing first would shrink
    each spread by the number of missing values) and keeps the indicators 0 and
    1 unscaled.

    Categorical columns of at most ``max_onehot_cardinality`` categories (not
    counting missing): one-hot, missing its own category when seen in fit,
    categories unseen in fit all zeros.  Larger ones: scikit-learn's
    :class:`~sklearn.preprocessing.TargetEncoder`, one column per category
    (binary or continuous target) or per class (multiclass), cross-fitted on
    the training rows so that a row's code never saw its own target.  RealMLP
    learns an embedding of 8 numbers per category of such a column, which skbp's
    network does not have yet; ordinal codes would impose an arbitrary order and
    one-hot would give a wide, sparse first layer for a few rows per category,
    so the target encoder, the standard dense encoding of many categories, is
    what stands in.  Missing is its own category there too; unseen categories
    get the target's mean.

    Not a public transformer (yet): it is the estimators' part, whose
    behaviour the tabular estimators document; ``fit_transform`` needs the
    encoded target ``y_encode`` for the target encoder.
    """

    def __init__(
        self,
        categorical_features: object = "from_dtype",
        max_onehot_cardinality: int = 8,
        max_abs_value: float = 3.0,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.categorical_features = categorical_features
        self.max_onehot_cardinality = max_onehot_cardinality
        self.max_abs_value = max_abs_value
        self.random_state = random_state

    def fit_transform(self, X: Any, y_encode: np.ndarray | None = None, **_: Any) -> np.ndarray:
        """Fit on ``X`` (a DataFrame or a 2-D array), and encode it (cross-fitted)."""
        self.is_categorical_ = _categorical_mask(X, self.categorical_features)
        numeric = np.flatnonzero(~self.is_categorical_)
        categorical = np.flatnonzero(self.is_categorical_)
        cats = _categorical_block(X, categorical)
        # the cardinality of a column: its distinct values seen in fit, missing not counted
        cardinality = np.array(
            [len({v for v in col if v == v}) for col in cats.T], dtype=int
        )  # v != v only for NaN
        small = cardinality <= self.max_onehot_cardinality
        self.numeric_columns_ = numeric
        self.onehot_columns_ = categorical[small]
        self.target_columns_ = categorical[~small]
        parts = []
        self.numeric_ = None
        if numeric.shape[0]:
            self.numeric_ = make_pipeline(
                RobustSmoothClipScaler(max_abs_value=self.max_abs_value),
                SimpleImputer(strategy="constant", fill_value=0.0, add_indicator=True),
            )
            parts.append(self.numeric_.fit_transform(_numeric_block(X, numeric)))
        # the encoded numbers come first, the imputer's missing-value indicators after them
        self.n_numeric_out_ = parts[0].shape[1] - _n_indicators(self.numeric_) if parts else 0
        self.onehot_ = None
        if small.any():
            self.onehot_ = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
            parts.append(self.onehot_.fit_transform(cats[:, small]))
        self.target_ = None
        if (~small).any():
            if y_encode is None or np.ndim(y_encode) != 1:
                raise ValueError(
                    f"The categorical columns {self._names(self.target_columns_)} have more "
                    f"than max_onehot_cardinality={self.max_onehot_cardinality} categories, "
                    "which are target-encoded, and a target encoder needs one target column "
                    "(a multilabel target has several). Raise max_onehot_cardinality to "
                    "one-hot encode them."
                )
            # the cross-fitting folds of TargetEncoder's default, seeded
            folds = (
                StratifiedKFold if type_of_target(y_encode) in ("binary", "multiclass") else KFold
            )
            self.target_ = TargetEncoder(cv=folds(5, shuffle=True, random_state=self.random_state))
            parts.append(self.target_.fit_transform(cats[:, ~small], y_encode))
        self.n_features_out_ = sum(p.shape[1] for p in parts)
        return self._stack(parts, X.shape[0])

    def fit(self, X: Any, y_encode: np.ndarray | None = None) -> Self:
        """Fit on ``X``; see :meth:`fit_transform`."""
        self.fit_transform(X, y_encode)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Encode ``X`` (validated, with the fitted columns) with the fitted encoders."""
        check_is_fitted(self)
        parts = []
        if self.numeric_ is not None:
            parts.append(self.numeric_.transform(_numeric_block(X, self.numeric_columns_)))
        if self.onehot_ is not None:
            parts.append(self.onehot_.transform(_categorical_block(X, self.onehot_columns_)))
        if self.target_ is not None:
            parts.append(self.target_.transform(_categorical_block(X, self.target_columns_)))
        return self._stack(parts, X.shape[0])

    def get_feature_names_out(self, input_features: ArrayLike | None = None) -> np.ndarray:
        """Names of the encoded columns, e.g. ``x0``, ``missingindicator_x0``, ``color_red``."""
        check_is_fitted(self)
        names = np.asarray(
            input_features
            if input_features is not None
            else [f"x{i}" for i in range(self.is_categorical_.shape[0])],
            dtype=object,
        )
        out: list[str] = []
        for enc, cols in (
            (self.numeric_, self.numeric_columns_),
            (self.onehot_, self.onehot_columns_),
            (self.target_, self.target_columns_),
        ):
            if enc is not None:
                out.extend(enc.get_feature_names_out(names[cols]))
        return np.asarray(out, dtype=object)

    def _names(self, columns: np.ndarray) -> list[Any]:
        names = getattr(self, "feature_names_in_", None)
        return [names[c] for c in columns] if names is not None else columns.tolist()

    def _stack(self, parts: list[np.ndarray], n_rows: int) -> np.ndarray:
        if not parts:
            return np.zeros((n_rows, 0))
        return np.ascontiguousarray(np.hstack(parts), dtype=np.float64)


def _n_indicators(numeric: Any) -> int:
    """The number of missing-value indicator columns the numeric pipeline adds."""
    indicator = getattr(numeric[-1], "indicator_", None)
    return 0 if indicator is None else len(indicator.features_)


# --------------------------------------------------------------- estimators
_PARAMS_DOC = """
    categorical_features : array-like of {{bool, int, str}} or 'from_dtype' or \
None, default='from_dtype'
        Which columns are categorical, with the values
        :class:`~sklearn.ensemble.HistGradientBoostingClassifier` takes: a
        boolean mask, column indices, column names (a DataFrame's), ``None``
        (no categorical column) or ``'from_dtype'``: the DataFrame columns of
        category, object, string and boolean dtype (HistGradientBoosting takes
        category dtype only).  An array has no such dtypes: it has no
        categorical column unless given here.  Every other column must be
        numeric.

    max_onehot_cardinality : int, default=8
        Categorical columns with at most this many distinct values in fit
        (missing not counted) are one-hot encoded; larger ones are
        target-encoded (cross-fitted :class:`~sklearn.preprocessing.TargetEncoder`).
        Source: RealMLP-TD, which one-hot encodes up to 9 categories counting
        one for missing and unknown values.

    max_abs_value : float, default=3.0
        Bound of the smooth clip of the numeric columns
        (:class:`~skbp.preprocessing.RobustSmoothClipScaler`).  Source: RealMLP-TD.

    hidden_layer_sizes : array-like of int, default=(256, 256, 256)
        Widths of the hidden layers.  Source: RealMLP-TD.

    activation : str or list of str, default={activation!r}
        Activation of the hidden layers (the names of :class:`~skbp.{network}`).
        Source: RealMLP-TD, which uses a parametric {activation} (a learned
        mix with the identity) that skbp does not have.

    learning_rate_init : float, default={lr}
        Peak learning rate of Adam.  Chosen on the tabular benchmark's sets
        (see Notes): RealMLP-TD's rates belong to its NTK parametrisation and
        learning-rate factors per layer, which skbp's network does not have.

    learning_rate : str, default='one_cycle'
        Learning-rate schedule, stepped at every update (the values of
        :class:`~skbp.{network}`).  ``'one_cycle'``: a linear warm-up over
        ``warmup_fraction`` of the updates, then a cosine decay to
        ``min_learning_rate``.  RealMLP-TD uses a multi-cycle cosine-log
        schedule ('coslog4', as ``'cosine_restarts'`` with ``n_cycles=4`` on a
        log scale); chosen on the bundled data sets (see Notes).

    warmup_fraction : float, default=0.1
        Fraction of the updates of the warm-up of ``'one_cycle'``.  skbp's default.

    min_learning_rate : float, default=0.0
        Where the cosine schedules end.  skbp's default.

    n_cycles : int, default=4
        Cycles of ``learning_rate='cosine_restarts'``.  Source: RealMLP-TD ('coslog4').

    max_iter : int, default=256
        Epochs.  Source: RealMLP-TD.

    batch_size : int, default=256
        Rows per update.  Source: RealMLP-TD.

    dropout : float or list of float, default=0.15
        Dropout rate of the hidden layers.  Source: RealMLP-TD, whose rate
        then decays along a flat-then-cosine schedule; skbp's is constant.

    weight_decay : float, default={wd}
        Decoupled weight decay, ``w <- (1 - lr * weight_decay) * w`` at every
        update (the AdamW form RealMLP-TD uses).  {wd_source}

    decay_biases : bool, default=False
        Whether the biases decay too.  Source: RealMLP-TD (no bias decay).

    alpha : float, default=0.0
        L2 penalty in the loss.  Source: RealMLP-TD (none; it decays weights instead).

    beta_1 : float, default=0.9
        Adam's first-moment decay.  Source: RealMLP-TD (PyTorch's default).

    beta_2 : float, default=0.95
        Adam's second-moment decay.  Source: RealMLP-TD.

    epsilon : float, default=1e-8
        Adam's stability constant.  Source: RealMLP-TD (PyTorch's default).

    early_stopping : bool, default={es}
        Hold out ``validation_fraction`` of the rows (or score the ``X_val``,
        ``y_val`` given to ``fit``), score them after every epoch and keep the
        best epoch's weights; training stops after ``n_iter_no_change`` epochs
        without improvement.  {es_source}

    validation_fraction : float, default=0.2
        Fraction of the rows held out with ``early_stopping=True``.
        Source: RealMLP-TD.

    n_iter_no_change : int or np.inf, default=np.inf
        Epochs without improvement before stopping early; ``np.inf`` trains
        every epoch and keeps the best.  Source: RealMLP-TD (no early
        termination, best epoch kept).

    scoring : str, callable or None, default=None
        What the validation rows are scored by (higher is better): ``None``,
        {score}; ``'loss'``; a scorer name or callable.  Source: RealMLP-TD
        ({val_metric}).

    tol : float, default=1e-4
        Least improvement of the validation score that counts.  skbp's default.
{extra}
    numeric_embedding : {{None, 'periodic'}}, default=None
        Embed each encoded numeric column with learned periodic features
        before the first layer (the PLR embedding; see
        :class:`~skbp.{network}`).  The missing-value indicators, one-hot
        and target-encoded columns are passed through as they are.  None for
        now: whether it becomes the default waits on the benchmark.  RealMLP-TD
        uses its PBLD variant, which skbp does not have.

    n_frequencies : int, default=16
        Frequencies per embedded column (see :class:`~skbp.{network}`).

    embedding_dim : int, default=16
        Outputs per embedded column (see :class:`~skbp.{network}`).

    frequency_scale : float, default=0.1
        Standard deviation of the frequencies' initialisation.  Source:
        RealMLP-TD's ``plr_sigma``, for inputs scaled as these are.

    n_ensemble : int, default=1
        Number of networks trained, each from its own initial weights and
        shuffling, and averaged (see :class:`~skbp.{network}`).  An ensemble
        is the recipes' surest gain on small tables, at ``n_ensemble`` times
        the CPU time.  Source: RealMLP-TD (one network; TabM's and RealMLP's
        ensembles are options).

    dtype : {{'float32', 'float64'}}, default='float32'
        Precision the network trains and predicts in.  The encoded columns are
        bounded (the smooth clip, encodings in the target's range), so float32
        loses nothing that matters and makes every product about twice as
        fast.  Source: RealMLP-TD (PyTorch's float32).

    random_state : int, RandomState instance or None, default=None
        Seeds the network (initialisation, shuffling, dropout, the held-out
        rows) and the target encoder's cross-fitting folds.  An int gives the
        same model on every fit.

    n_jobs : int or None, default=None
        The most threads one fit or prediction may use (see
        :class:`~skbp.{network}`); the model does not depend on it.

    verbose : bool, default=False
        Print the loss after every epoch."""

_ATTRIBUTES_DOC = """
    preprocessor_ : object
        The fitted column encoder.  Its ``is_categorical_`` is the mask of
        categorical columns; ``numeric_``, ``onehot_`` and ``target_`` are the
        fitted scikit-learn pipeline (scaler and imputer), one-hot encoder and
        target encoder (``None`` where no column is theirs);
        ``get_feature_names_out()`` names the network's inputs.

    network_ : {network}
        The fitted network, trained on ``preprocessor_``'s output{target}.

    n_features_in_ : int
        Number of columns seen during fit.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the columns seen during fit, when ``X`` has string column names.

    is_categorical_ : ndarray of shape (`n_features_in_`,), dtype=bool
        Which columns were taken as categorical.

    n_iter_ : int
        Epochs the network trained (``network_.n_iter_``)."""

_NOTES_DOC = """
    The recipe is RealMLP-TD's (Holzmüller, Grinsztajn and Steinwart, "Better
    by default: strong pre-tuned MLPs and boosted trees on tabular data",
    NeurIPS 2024; the ``pytabkit`` package): robust scaling with a smooth clip
    of numbers, one-hot encoding of small categories, a 3 x 256 network with
    dropout, decoupled weight decay, Adam with ``beta_2=0.95``, 256 epochs of
    256 rows, {recipe_extra}and the best epoch on a validation split.  What
    skbp's network has no counterpart for yet is left out: RealMLP's numeric
    embeddings (PBLD; skbp's PLR embedding is an option, ``numeric_embedding``,
    off by default), its NTK parametrisation, the learned scaling layer, the
    parametric activations, learned embeddings of large categories, and the
    schedules of dropout and weight decay.  Ensembles are an option,
    ``n_ensemble``.

    The schedule and {chosen} were chosen by 5-fold cross-validation on
    scikit-learn's bundled breast cancer, wine, digits and diabetes data, the
    learning rate ({lr}) on the smaller classification sets and the regression
    sets of the tabular benchmark (``python benchmarks/bench.py tabular``); see
    ``docs/tabular.md``.  The figures against other models are in
    ``benchmarks/RESULTS.md``.

    Sample weights weigh the network's loss{sw_extra}; the preprocessing's
    medians, quantiles and target encodings are unweighted (scikit-learn's
    imputer and target encoder take no weights), so a weight of 2 is not quite
    a repeated row."""

_COMMON_CONSTRAINTS: dict = {
    "categorical_features": ["array-like", StrOptions({"from_dtype"}), None],
    "max_onehot_cardinality": [Interval(numbers.Integral, 0, None, closed="left")],
    "max_abs_value": [Interval(numbers.Real, 0, None, closed="right")],
    "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
    "activation": [str, list, tuple],
    "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
    "learning_rate": [str],
    "warmup_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
    "min_learning_rate": [Interval(numbers.Real, 0, None, closed="left")],
    "n_cycles": [Interval(numbers.Integral, 1, None, closed="left")],
    "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
    "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
    "dropout": [Interval(numbers.Real, 0, 1, closed="left"), list, tuple, np.ndarray],
    "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
    "decay_biases": ["boolean"],
    "alpha": [Interval(numbers.Real, 0, None, closed="left")],
    "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
    "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
    "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(numbers.Real, 0, 1, closed="left")],
    "n_iter_no_change": [
        Interval(numbers.Integral, 1, None, closed="left"),
        Options(numbers.Real, {np.inf}),
    ],
    "scoring": [str, callable, None],
    "tol": [Interval(numbers.Real, 0, None, closed="left")],
    "n_ensemble": [Interval(numbers.Integral, 1, None, closed="left")],
    "numeric_embedding": [None, StrOptions({"periodic"})],
    "n_frequencies": [Interval(numbers.Integral, 1, None, closed="left")],
    "embedding_dim": [Interval(numbers.Integral, 1, None, closed="left")],
    "frequency_scale": [Interval(numbers.Real, 0, None, closed="neither")],
    "dtype": [StrOptions({"float32", "float64"})],
    "random_state": ["random_state"],
    "n_jobs": [None, numbers.Integral],
    "verbose": ["verbose"],
}

#: the parameters handed to the network as they are (the rest configure the columns)
_NETWORK_PARAMS = (
    "hidden_layer_sizes", "activation", "learning_rate_init", "learning_rate",
    "warmup_fraction", "min_learning_rate", "n_cycles", "max_iter", "batch_size", "dropout",
    "weight_decay", "decay_biases", "alpha", "beta_1", "beta_2", "epsilon", "early_stopping",
    "validation_fraction", "n_iter_no_change", "scoring", "tol", "n_ensemble", "random_state",
    "n_jobs", "verbose", "numeric_embedding", "n_frequencies", "embedding_dim",
    "frequency_scale",
)  # fmt: skip


_CLASSIFIER_PARAMS = _PARAMS_DOC.format(
    activation="selu",
    network="BPClassifier",
    lr=0.003,
    wd=0.02,
    wd_source="Source: RealMLP-TD's value.",
    es=False,
    es_source="Chosen on the bundled data sets (see Notes).",
    score="accuracy",
    val_metric="classification error",
    extra="""
    label_smoothing : float, default=0.1
        Label smoothing of the log-loss.  Source: RealMLP-TD.

    class_weight : dict, 'balanced' or None, default=None
        Weights of the classes (see :class:`~skbp.BPClassifier`).
""",
)
_REGRESSOR_PARAMS = _PARAMS_DOC.format(
    activation="mish",
    network="BPRegressor",
    lr=0.003,
    wd=0.02,
    wd_source="Source: RealMLP-TD's value.",
    es=False,
    es_source="Chosen on the bundled data sets (see Notes).",
    score="R²",
    val_metric="RMSE",
    extra="",
)
_CLASSIFIER_NOTES = _NOTES_DOC.format(
    recipe_extra="label smoothing 0.1, ",
    lr=0.003,
    chosen="early stopping",
    sw_extra=" (times ``class_weight``)",
)
_REGRESSOR_NOTES = _NOTES_DOC.format(
    recipe_extra="a standardised target, ",
    lr=0.003,
    chosen="early stopping",
    sw_extra=" and the target's mean and scale",
)


class _TabularBase(BaseEstimator):
    """The shared part: validate the table, encode its columns, hand them to the network."""

    def _network(self) -> Any:
        """An unfitted network with this estimator's settings (subclass hook)."""
        raise NotImplementedError

    def _network_params(self) -> dict[str, Any]:
        params = {name: getattr(self, name) for name in _NETWORK_PARAMS}
        # the embedding takes the encoded numbers only (the encoder puts them first);
        # a table without numeric columns has nothing to embed
        n_numeric = getattr(getattr(self, "preprocessor_", None), "n_numeric_out_", 0)
        if self.numeric_embedding is not None and n_numeric == 0:
            params["numeric_embedding"] = None
        elif self.numeric_embedding is not None:
            params["embedding_features"] = np.arange(n_numeric)
        return params

    def _checked_xy(self, X: Any, y: object, y_numeric: bool) -> tuple[Any, np.ndarray]:
        """The training table (:meth:`_checked_table`) and its target, one row each;
        a one-column 2-D target becomes 1-D."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        X = self._checked_table(X, reset=True)
        y = _check_y(y, multi_output=True, y_numeric=y_numeric, estimator=self)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if y.shape[0] != X.shape[0]:
            what = "target" if y_numeric else "label"
            raise ValueError(
                f"X has {X.shape[0]} rows but y has {y.shape[0]}: give one {what} per row."
            )
        return X, y

    def _checked_table(self, X: Any, reset: bool) -> Any:
        """``X`` as a pandas DataFrame or a 2-D array, its width and names checked."""
        if _is_dataframe(X):
            if X.shape[0] == 0:
                raise ValueError(
                    f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 "
                    f"is required by {type(self).__name__}."
                )
        else:
            # dtype=None keeps object arrays (strings for categorical columns) as they are
            X = check_array(X, dtype=None, ensure_all_finite="allow-nan")
            if X.dtype.kind in "US":  # strings, for the columns categorical_features names
                X = X.astype(object)
            elif X.dtype.kind not in "biufO":
                X = check_array(X, dtype=np.float64, ensure_all_finite="allow-nan")
        validate_data(self, X, skip_check_array=True, reset=reset)
        return X

    def _fit_table(
        self,
        X: Any,
        y_net: np.ndarray,
        y_encode: np.ndarray | None,
        sample_weight: ArrayLike | None,
        X_val: Any,
        y_val_net: np.ndarray | None,
        sample_weight_val: ArrayLike | None,
    ) -> Self:
        self.preprocessor_ = _ColumnEncoder(
            categorical_features=self.categorical_features,
            max_onehot_cardinality=self.max_onehot_cardinality,
            max_abs_value=self.max_abs_value,
            random_state=self.random_state,
        )
        if hasattr(self, "feature_names_in_"):
            self.preprocessor_.feature_names_in_ = self.feature_names_in_
        Xt = self.preprocessor_.fit_transform(X, y_encode).astype(self.dtype, copy=False)
        self.is_categorical_ = self.preprocessor_.is_categorical_
        extra = {}
        if X_val is not None or y_val_net is not None or sample_weight_val is not None:
            if X_val is not None:
                X_val = self.preprocessor_.transform(self._checked_table(X_val, reset=False))
                X_val = X_val.astype(self.dtype, copy=False)
            extra = {"X_val": X_val, "y_val": y_val_net, "sample_weight_val": sample_weight_val}
        self.network_ = self._network()
        with warnings.catch_warnings():
            if self.n_iter_no_change == np.inf:
                # a fixed number of epochs, along a schedule that ends there, is the
                # plan: reaching max_iter is no sign of trouble
                warnings.simplefilter("ignore", ConvergenceWarning)
            # a table smaller than a batch trains on full batches, as intended
            warnings.filterwarnings("ignore", message="Got `batch_size`", category=UserWarning)
            self.network_.fit(Xt, y_net, sample_weight=sample_weight, **extra)
        self.n_iter_ = self.network_.n_iter_
        return self

    def _encoded(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "network_")
        Xt = self.preprocessor_.transform(self._checked_table(X, reset=False))
        return Xt.astype(self.network_.coefs_[0].dtype, copy=False)

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        return tags


class TabularClassifier(ClassifierMixin, _TabularBase):
    __doc__ = f"""A network classifier for tables: DataFrame in, no preprocessing needed.

    Takes a pandas DataFrame or an array, as
    :class:`~sklearn.ensemble.HistGradientBoostingClassifier` does, with
    numeric and categorical columns and missing values; encodes the columns
    (robust scaling and a smooth clip of numbers, one-hot or target encoding of
    categories, missing-value indicators) and trains a
    :class:`~skbp.BPClassifier` on them with the defaults of the RealMLP-TD
    recipe that carry over to skbp's network.

    Parameters
    ----------{_CLASSIFIER_PARAMS}

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
{_ATTRIBUTES_DOC.format(network="BPClassifier", target="")}

    See Also
    --------
    TabularRegressor : The regressor.
    skbp.BPClassifier : The network inside, for data you preprocess yourself.
    sklearn.ensemble.HistGradientBoostingClassifier : The model with the same interface.

    Notes
    -----{_CLASSIFIER_NOTES}

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from skbp import TabularClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = pd.DataFrame({{
    ...     "age": rng.uniform(20, 70, 300),
    ...     "city": pd.Categorical(rng.choice(["Paris", "Rome", "Oslo"], 300)),
    ... }})
    >>> X.loc[::10, "age"] = np.nan  # missing values are fine
    >>> y = (X["city"] == "Oslo") | (X["age"] > 60)
    >>> clf = TabularClassifier(max_iter=50, random_state=0).fit(X, y)
    >>> clf.is_categorical_
    array([False,  True])
    >>> bool(clf.score(X, y) > 0.9)
    True
    """

    _parameter_constraints: dict = {
        **_COMMON_CONSTRAINTS,
        "label_smoothing": [Interval(numbers.Real, 0, 1, closed="left")],
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def __init__(
        self, *, categorical_features: ArrayLike | str | None = "from_dtype",
        max_onehot_cardinality: int = 8, max_abs_value: float = 3.0,
        hidden_layer_sizes: Iterable[int] = (256, 256, 256),
        activation: str | Sequence[str] = "selu", learning_rate_init: float = 0.003,
        learning_rate: str = "one_cycle", warmup_fraction: float = 0.1,
        min_learning_rate: float = 0.0, n_cycles: int = 4, max_iter: int = 256,
        batch_size: int = 256, dropout: float | Iterable[float] = 0.15,
        weight_decay: float = 0.02, decay_biases: bool = False, alpha: float = 0.0,
        beta_1: float = 0.9, beta_2: float = 0.95, epsilon: float = 1e-8,
        early_stopping: bool = False, validation_fraction: float = 0.2,
        n_iter_no_change: float = np.inf, scoring: str | Callable[..., float] | None = None,
        tol: float = 1e-4, label_smoothing: float = 0.1,
        class_weight: dict[Any, float] | str | None = None,
        n_ensemble: int = 1, numeric_embedding: str | None = None, n_frequencies: int = 16,
        embedding_dim: int = 16, frequency_scale: float = 0.1, dtype: str = "float32",
        random_state: int | np.random.RandomState | None = None, n_jobs: int | None = None,
        verbose: bool = False,
    ) -> None:  # fmt: skip
        self.categorical_features = categorical_features
        self.max_onehot_cardinality = max_onehot_cardinality
        self.max_abs_value = max_abs_value
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.learning_rate_init = learning_rate_init
        self.learning_rate = learning_rate
        self.warmup_fraction = warmup_fraction
        self.min_learning_rate = min_learning_rate
        self.n_cycles = n_cycles
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.dropout = dropout
        self.weight_decay = weight_decay
        self.decay_biases = decay_biases
        self.alpha = alpha
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.scoring = scoring
        self.tol = tol
        self.label_smoothing = label_smoothing
        self.class_weight = class_weight
        self.n_ensemble = n_ensemble
        self.numeric_embedding = numeric_embedding
        self.n_frequencies = n_frequencies
        self.embedding_dim = embedding_dim
        self.frequency_scale = frequency_scale
        self.dtype = dtype
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _network(self) -> Any:
        from ._estimators import BPClassifier

        return BPClassifier(
            **self._network_params(),
            label_smoothing=self.label_smoothing,
            class_weight=self.class_weight,
        )

    def fit(
        self,
        X: Any,
        y: ArrayLike,
        sample_weight: ArrayLike | None = None,
        *,
        X_val: Any = None,
        y_val: ArrayLike | None = None,
        sample_weight_val: ArrayLike | None = None,
    ) -> Self:
        """Encode the columns of ``X`` and fit the network to them.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            The table: numeric columns, categorical columns (see
            ``categorical_features``), missing values as NaN, None or pd.NA.
        y : array-like of shape (n_samples,)
            Class labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows in the network's loss.
        X_val : DataFrame or array-like of shape (n_val, n_features), default=None
            Validation rows, in the form of ``X``, encoded by the encoder
            fitted on ``X``; needs ``early_stopping=True``.
        y_val : array-like of shape (n_val,), default=None
            Class labels of ``X_val``.
        sample_weight_val : array-like of shape (n_val,), default=None
            Weights of the validation rows.

        Returns
        -------
        self : TabularClassifier
            The fitted estimator.
        """
        self._validate_params()
        X, y = self._checked_xy(X, y, y_numeric=False)
        check_classification_targets(y)
        self._fit_table(X, y, y if y.ndim == 1 else None, sample_weight,
                        X_val, y_val, sample_weight_val)  # fmt: skip
        self.classes_ = self.network_.classes_
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predict the class of each row of ``X``.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Rows with the fitted columns.

        Returns
        -------
        y : ndarray of shape (n_samples,)
            The predicted classes.
        """
        Xt = self._encoded(X)
        return self.network_.predict(Xt)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probability of each class for each row of ``X``.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Rows with the fitted columns.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities in the order of ``classes_``.
        """
        Xt = self._encoded(X)
        return self.network_.predict_proba(Xt)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Rows with the fitted columns.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Log-probabilities in the order of ``classes_``.
        """
        Xt = self._encoded(X)
        return self.network_.predict_log_proba(Xt)

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class TabularRegressor(RegressorMixin, _TabularBase):
    __doc__ = f"""A network regressor for tables: DataFrame in, no preprocessing needed.

    Takes a pandas DataFrame or an array, as
    :class:`~sklearn.ensemble.HistGradientBoostingRegressor` does, with
    numeric and categorical columns and missing values; encodes the columns
    (robust scaling and a smooth clip of numbers, one-hot or target encoding of
    categories, missing-value indicators), standardises the target, and trains
    a :class:`~skbp.BPRegressor` with the defaults of the RealMLP-TD recipe
    that carry over to skbp's network.  Single and multi-output targets.

    Parameters
    ----------{_REGRESSOR_PARAMS}

    Attributes
    ----------
    y_mean_, y_scale_ : ndarray of shape (n_outputs,)
        The (sample-weighted) mean and standard deviation of each target
        column in fit (a constant column's scale is 1); the network learns
        ``(y - y_mean_) / y_scale_`` and predictions are mapped back.  Source:
        RealMLP-TD.
{_ATTRIBUTES_DOC.format(network="BPRegressor", target=" and the standardised target")}

    See Also
    --------
    TabularClassifier : The classifier.
    skbp.BPRegressor : The network inside, for data you preprocess yourself.
    sklearn.ensemble.HistGradientBoostingRegressor : The model with the same interface.

    Notes
    -----{_REGRESSOR_NOTES}
    RealMLP-TD also clips predictions to the range of the training targets;
    this estimator does not (yet).  A multi-output target is target-encoded by
    the mean of its standardised columns.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from skbp import TabularRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = pd.DataFrame({{
    ...     "area": rng.uniform(20, 200, 300),
    ...     "district": rng.choice(["north", "south"], 300),  # object dtype: categorical
    ... }})
    >>> y = 3000 * X["area"] + 50000 * (X["district"] == "south")
    >>> reg = TabularRegressor(max_iter=50, random_state=0).fit(X, y)
    >>> reg.preprocessor_.get_feature_names_out(reg.feature_names_in_)
    array(['area', 'district_north', 'district_south'], dtype=object)
    >>> bool(reg.score(X, y) > 0.95)
    True
    """

    _parameter_constraints: dict = {**_COMMON_CONSTRAINTS}

    def __init__(
        self, *, categorical_features: ArrayLike | str | None = "from_dtype",
        max_onehot_cardinality: int = 8, max_abs_value: float = 3.0,
        hidden_layer_sizes: Iterable[int] = (256, 256, 256),
        activation: str | Sequence[str] = "mish", learning_rate_init: float = 0.003,
        learning_rate: str = "one_cycle", warmup_fraction: float = 0.1,
        min_learning_rate: float = 0.0, n_cycles: int = 4, max_iter: int = 256,
        batch_size: int = 256, dropout: float | Iterable[float] = 0.15,
        weight_decay: float = 0.02, decay_biases: bool = False, alpha: float = 0.0,
        beta_1: float = 0.9, beta_2: float = 0.95, epsilon: float = 1e-8,
        early_stopping: bool = False, validation_fraction: float = 0.2,
        n_iter_no_change: float = np.inf, scoring: str | Callable[..., float] | None = None,
        tol: float = 1e-4, n_ensemble: int = 1, numeric_embedding: str | None = None,
        n_frequencies: int = 16, embedding_dim: int = 16, frequency_scale: float = 0.1,
        dtype: str = "float32", random_state: int | np.random.RandomState | None = None,
        n_jobs: int | None = None, verbose: bool = False,
    ) -> None:  # fmt: skip
        self.categorical_features = categorical_features
        self.max_onehot_cardinality = max_onehot_cardinality
        self.max_abs_value = max_abs_value
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.learning_rate_init = learning_rate_init
        self.learning_rate = learning_rate
        self.warmup_fraction = warmup_fraction
        self.min_learning_rate = min_learning_rate
        self.n_cycles = n_cycles
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.dropout = dropout
        self.weight_decay = weight_decay
        self.decay_biases = decay_biases
        self.alpha = alpha
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.scoring = scoring
        self.tol = tol
        self.n_ensemble = n_ensemble
        self.numeric_embedding = numeric_embedding
        self.n_frequencies = n_frequencies
        self.embedding_dim = embedding_dim
        self.frequency_scale = frequency_scale
        self.dtype = dtype
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _network(self) -> Any:
        from ._estimators import BPRegressor

        return BPRegressor(**self._network_params())

    def fit(
        self,
        X: Any,
        y: ArrayLike,
        sample_weight: ArrayLike | None = None,
        *,
        X_val: Any = None,
        y_val: ArrayLike | None = None,
        sample_weight_val: ArrayLike | None = None,
    ) -> Self:
        """Encode the columns of ``X``, standardise ``y``, and fit the network.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            The table: numeric columns, categorical columns (see
            ``categorical_features``), missing values as NaN, None or pd.NA.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows in the network's loss and the target's
            standardisation.
        X_val : DataFrame or array-like of shape (n_val, n_features), default=None
            Validation rows, in the form of ``X``, encoded by the encoder
            fitted on ``X``; needs ``early_stopping=True``.
        y_val : array-like of shape (n_val,) or (n_val, n_outputs), default=None
            Targets of ``X_val``, standardised as ``y``.
        sample_weight_val : array-like of shape (n_val,), default=None
            Weights of the validation rows.

        Returns
        -------
        self : TabularRegressor
            The fitted estimator.
        """
        self._validate_params()
        X, y = self._checked_xy(X, y, y_numeric=True)
        sw = _check_sample_weight(sample_weight, X, dtype=np.float64)
        Y = y.reshape(y.shape[0], -1).astype(np.float64)
        if sw.sum() > 0:
            self.y_mean_ = np.average(Y, axis=0, weights=sw)
            self.y_scale_ = np.sqrt(np.average((Y - self.y_mean_) ** 2, axis=0, weights=sw))
        else:  # every weight zero: the network refuses such weights, with its message
            self.y_mean_, self.y_scale_ = np.zeros(Y.shape[1]), np.ones(Y.shape[1])
        # a constant target keeps scale 1: the network then learns the constant 0
        self.y_scale_[~(self.y_scale_ > 0)] = 1.0
        y_net = self._standardised(y)
        y_val_net = None if y_val is None else self._standardised(
            _check_y(y_val, multi_output=True, y_numeric=True, estimator=self)
        )  # fmt: skip
        y_encode = y_net if y_net.ndim == 1 else y_net.mean(axis=1)
        self._fit_table(X, y_net, y_encode, sample_weight, X_val, y_val_net,
                        sample_weight_val)  # fmt: skip
        return self

    def _standardised(self, y: np.ndarray) -> np.ndarray:
        out = (np.asarray(y, dtype=np.float64).reshape(y.shape[0], -1) - self.y_mean_) / (
            self.y_scale_
        )
        return out.ravel() if y.ndim == 1 else out

    def predict(self, X: Any) -> np.ndarray:
        """Predict the target of each row of ``X``.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Rows with the fitted columns.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predictions, on the scale of the training target.
        """
        Xt = self._encoded(X)
        P = self.network_.predict(Xt)
        if P.ndim == 1:
            return P * self.y_scale_[0] + self.y_mean_[0]
        return P * self.y_scale_ + self.y_mean_
