"""
Predicting diamond prices from a mixed numeric/categorical table
================================================================

This example predicts the price (in US dollars) of about 54,000 round-cut
diamonds from their weight (carat), their three dimensions and two proportions
(depth and table), and three graded categories: cut, color and clarity. It is
the classic ``diamonds`` table that ships with the plotnine package.

The numeric columns are standardised and the categorical ones one-hot encoded
by a :class:`~sklearn.compose.ColumnTransformer`, inside a
:class:`~sklearn.pipeline.Pipeline` that ends in :class:`skbp.BPRegressor`.
The same pipeline is trained with scikit-learn's
:class:`~sklearn.neural_network.MLPRegressor` under identical hyperparameters
and epoch budget, next to a ridge regression and a constant baseline. We report
:math:`R^2`, the mean absolute error in dollars on a held-out test split and the
fit wall time of each model, and we look at whether to fit the price itself or
its logarithm.
"""

# %%
# Loading the data
# ----------------
# The table is read straight from plotnine's data folder; plotnine itself is
# not imported (it may be installed without its dependencies). A handful of
# rows carry impossible measurements (a dimension of 0 mm, a 59 mm wide
# diamond, a table of 95 %); we drop those 32 data-entry errors before
# splitting, because a network extrapolates wildly from such inputs and a
# single absurd prediction would dominate the test :math:`R^2`.

import importlib.util
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.dummy import DummyRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import RidgeCV
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skbp import BPRegressor

spec = importlib.util.find_spec("plotnine")
if spec is None:
    raise SystemExit("this example needs the data of plotnine: pip install --no-deps plotnine")
diamonds = pd.read_csv(Path(spec.origin).parent / "data" / "diamonds.csv")

dims = diamonds[["x", "y", "z"]]
plausible = (
    dims.gt(0).all(axis=1)
    & dims.lt(20).all(axis=1)
    & diamonds["table"].between(45, 80)
    & diamonds["depth"].between(50, 75)
)
print(f"{len(diamonds)} diamonds, {(~plausible).sum()} dropped as data-entry errors")
diamonds = diamonds[plausible]

NUMERIC = ["carat", "depth", "table", "x", "y", "z"]
CATEGORICAL = ["cut", "color", "clarity"]
X = diamonds[NUMERIC + CATEGORICAL]
y = diamonds["price"].to_numpy(dtype=float)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
print(f"train: {len(X_train)} rows, test: {len(X_test)} rows (all rows used, no subsampling)")

# %%
# The models
# ----------
# Every model sees the same preprocessing. Prices span $326 to $18,823, so the
# target must be rescaled for a network trained with a squared loss: we either
# standardise the price (``transformer=StandardScaler()``) or fit its logarithm
# (``func=np.log, inverse_func=np.exp``), both with
# :class:`~sklearn.compose.TransformedTargetRegressor`, which maps predictions
# back to dollars. Both networks get two hidden layers (64 and 32 ReLU units),
# Adam with mini-batches of 200 rows, and exactly 40 epochs
# (``n_iter_no_change=EPOCHS`` switches the early-stopping rule off, so the
# budget is the same for both libraries).

EPOCHS = 40
MLP_PARAMS = dict(
    hidden_layer_sizes=(64, 32),
    learning_rate_init=1e-3,
    batch_size=200,
    max_iter=EPOCHS,
    n_iter_no_change=EPOCHS,
    random_state=0,
)


def pipeline(regressor, target="price"):
    """Preprocessing + regressor, fitted on the standardised price or on log(price)."""
    preprocess = ColumnTransformer(
        [
            ("num", StandardScaler(), NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORICAL),
        ]
    )
    model = make_pipeline(preprocess, regressor)
    if target == "log":
        return TransformedTargetRegressor(model, func=np.log, inverse_func=np.exp)
    return TransformedTargetRegressor(model, transformer=StandardScaler())


models = {
    "Dummy (median)": pipeline(DummyRegressor(strategy="median")),
    "RidgeCV, log price": pipeline(RidgeCV(alphas=np.logspace(-3, 3, 13)), "log"),
    "sklearn MLPRegressor, price": pipeline(MLPRegressor(**MLP_PARAMS)),
    "skbp BPRegressor, price": pipeline(BPRegressor(**MLP_PARAMS)),
    "skbp BPRegressor, log price": pipeline(BPRegressor(**MLP_PARAMS), "log"),
}

# %%
# Training and evaluation
# -----------------------
# skbp compiles its Numba kernels the first time they are used in a process,
# so we first fit it once on 200 rows (same dense float64 input as below) to
# keep compilation out of the timings. A fixed epoch budget is deliberate,
# hence the silenced :class:`~sklearn.exceptions.ConvergenceWarning`.

with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    warm = pipeline(BPRegressor(**{**MLP_PARAMS, "max_iter": 2}))
    warm.fit(X_train[:200], y_train[:200]).predict(X_test[:10])

results, predictions = {}, {}
for name, model in models.items():
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train, y_train)
    fit_time = time.perf_counter() - start
    pred = model.predict(X_test)
    predictions[name] = pred
    results[name] = {
        "R2": r2_score(y_test, pred),
        "MAE ($)": mean_absolute_error(y_test, pred),
        "MAPE (%)": 100 * mean_absolute_percentage_error(y_test, pred),
        "epochs": getattr(model.regressor_[-1], "n_iter_", np.nan),
        "fit (s)": fit_time,
    }

table = pd.DataFrame(results).T
formats = {"R2": "{:.3f}", "MAE ($)": "{:.0f}", "MAPE (%)": "{:.1f}", "epochs": "{:.0f}"}
formats["fit (s)"] = "{:.2f}"
print(table.to_string(formatters={c: f.format for c, f in formats.items()}, na_rep="-"))

# %%
# Predicted versus actual prices
# ------------------------------
# On log axes the skbp predictions (standardised price target) hug the
# diagonal over the whole range (the empty band near $1,500 is a gap in the
# data set itself). The right panel shows the median relative error per price
# band: the networks fitted on the price in dollars are the most accurate for
# expensive stones, while fitting log(price) keeps the relative error low for
# cheap ones too. With a dollar-scale loss, a $400 stone's error barely counts,
# and its relative error changes a lot with ``random_state``, for either
# library.

best = "skbp BPRegressor, price"
fig, axes = plt.subplots(1, 2, figsize=(12, 5))
ax = axes[0]
ax.scatter(y_test, predictions[best], s=3, alpha=0.25)
lims = [300, 20000]
ax.plot(lims, lims, color="black", linewidth=1, label="perfect prediction")
ax.set(xscale="log", yscale="log", xlim=lims, ylim=lims)
ax.set(xlabel="actual price ($)", ylabel="predicted price ($)")
ax.set_title(f"{best} on the test set (R$^2$ = {results[best]['R2']:.3f})")
ax.legend(loc="upper left")

bands = np.geomspace(326, 18823, 9)
centres = np.sqrt(bands[:-1] * bands[1:])
band_of = np.digitize(y_test, bands[1:-1])
for name in [n for n in models if n != "Dummy (median)"]:
    rel_err = np.abs(predictions[name] - y_test) / y_test
    medians = [100 * np.median(rel_err[band_of == b]) for b in range(len(centres))]
    axes[1].plot(centres, medians, marker="o", label=name)
axes[1].set(xscale="log", xlabel="actual price ($, band centre)")
axes[1].set(ylabel="median absolute error (% of price)", title="Relative error per price band")
axes[1].legend()
fig.tight_layout()

# %%
# Accuracy and fit time
# ---------------------
# Both neural networks cut the ridge regression's error in dollars by about a
# quarter. With the same architecture, optimiser, batch size and number of
# epochs, skbp and scikit-learn reach the same accuracy (the gap between them is
# within the spread one gets by changing ``random_state``), and skbp fits
# faster (the printed table has this run's times).

names = [n for n in table.index if n != "Dummy (median)"]
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
axes[0].barh(names, table.loc[names, "MAE ($)"], color="tab:blue")
axes[0].set(xlabel="mean absolute error on the test set ($)", title="Test error (lower is better)")
axes[1].barh(names, table.loc[names, "fit (s)"], color="tab:orange")
axes[1].set(xlabel="fit wall time (s)", title=f"Fit time, {len(X_train)} rows")
axes[1].set_yticklabels([])
for ax in axes:
    ax.invert_yaxis()
fig.tight_layout()

# %%
# What this does and does not show
# --------------------------------
# For this table a standardised price target gives the lower error in dollars
# and the higher :math:`R^2`, which is why it is our main model; the log target
# costs about $35 of MAE but spreads the relative error more evenly over cheap
# and dear stones (right panel of the first figure), so the choice follows the
# metric you care about. For the linear baseline the log target is essential
# (on the raw price a linear model predicts negative prices for small stones,
# and its MAE is about $730). The timings are single runs on
# one machine, and the accuracy numbers come from one split and one seed; they
# do not show that one library generalises better than the other, only that
# skbp trains the same model faster.

plt.show()
