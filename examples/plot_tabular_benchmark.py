"""
The tabular benchmark: score against fit time
=============================================

skbp's tabular benchmark (``python benchmarks/bench.py tabular``) cross-validates
six models on the same folds of real tables: the classification and regression
sets of the R package mlbench, the diamonds prices and scikit-learn's digits.
This page draws its recorded results: one point per model and data set, the
mean score over the folds against the mean fit time of a fold.

The models, each with its defaults:

* ``HGB``: scikit-learn's
  :class:`~sklearn.ensemble.HistGradientBoostingClassifier` /
  :class:`~sklearn.ensemble.HistGradientBoostingRegressor`, with its native
  support of categorical columns and missing values: the reference.
* ``Linear``: :class:`~sklearn.linear_model.LogisticRegression` or
  :class:`~sklearn.linear_model.Ridge`.
* ``MLP``: scikit-learn's :class:`~sklearn.neural_network.MLPClassifier` /
  :class:`~sklearn.neural_network.MLPRegressor`.
* ``BP``: skbp's :class:`~skbp.BPClassifier` / :class:`~skbp.BPRegressor`, the
  drop-in for ``MLP``.
* ``RealMLP``: pytabkit's RealMLP-TD on PyTorch's CPU build, a network with
  tuned defaults for tables.
* ``Tabular``: skbp's :class:`~skbp.TabularClassifier` /
  :class:`~skbp.TabularRegressor`, networks with RealMLP-like defaults and
  their own preprocessing.

``Linear``, ``MLP`` and ``BP`` share one preprocessing pipeline (median
imputation, standardisation, one-hot encoding); the others take the table as
loaded.  Every model gets the same number of threads.

A full run takes over an hour, so this page does not run the benchmark: it
reads the raw per-fold results the last run wrote to
``benchmarks/output/tabular.json``, and every number it shows comes from that
file.  To make the file again (sets larger than 5,000 rows subsampled, two
threads per model)::

    pip install -e ".[bench]"
    python benchmarks/bench.py tabular --max-rows 5000 --threads 2

and build this page again, or run ``python examples/plot_tabular_benchmark.py``.
``SKBP_TABULAR_RESULTS=FILE`` plots another run's file (one written with
``--json FILE`` or ``--out-suffix``).
"""

# %%
# Reading the results
# -------------------
# The file holds, for each data set, its task and size, and for each model the
# per-fold scores and fit times.  The score is the accuracy for classification
# (higher is better) and the RMSE divided by the standard deviation of the
# target for regression (lower is better; 1 is what predicting the mean
# scores), so that sets can be compared.  A model that failed on a set has an
# error instead of scores and is left out there.
import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

MAKE_IT = "python benchmarks/bench.py tabular --max-rows 5000 --threads 2"
# sphinx-gallery runs an example in the examples folder, without ``__file__``
HERE = Path(globals().get("__file__", "plot_tabular_benchmark.py")).resolve().parent
RESULTS = Path(
    os.environ.get("SKBP_TABULAR_RESULTS", HERE.parent / "benchmarks" / "output" / "tabular.json")
)
if not RESULTS.is_file():
    raise SystemExit(
        f"this example needs the tabular benchmark's raw results, {RESULTS}, which are "
        f"not there: make them with {MAKE_IT} (an hour and more)"
    )
raw = json.loads(RESULTS.read_text())

rows = [
    {
        "set": name,
        "task": entry["info"]["task"],
        "model": model,
        "score": np.mean(r["score"]),
        "fit_s": np.mean(r["fit_s"]),  # per fold
        "fit_total_s": np.sum(r["fit_s"]),
    }
    for name, entry in raw["results"].items()
    for model, r in entry["models"].items()
    if r.get("score")
]
results = pd.DataFrame(rows)
TASKS = [t for t in ("classification", "regression") if t in set(results["task"])]
# the benchmark's order (a model it adds later comes last)
ORDER = ["HGB", "Linear", "MLP", "BP", "RealMLP", "Tabular"]
MODELS = sorted(set(results["model"]), key=lambda m: (ORDER + [m]).index(m))
METRIC = {"classification": "accuracy", "regression": "RMSE / std(target)"}
HIGHER = {"classification": True, "regression": False}

meta = raw["meta"]
print(f"results: {RESULTS.name}, {meta['folds']} folds per set")
print(f"machine: {meta['cpu']}, {meta['cores']} usable cores")
print("versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
for run in meta["runs"]:
    date = run.get("date", "date not recorded")
    print(f"run ({date}, {run['threads']} thread(s) per model): {run['command']}")
for task in TASKS:
    sets = results.loc[results["task"] == task, "set"].unique()
    print(f"{task}: {len(sets)} sets: {', '.join(sets)}")

# %%
# Score against fit time
# ----------------------
# Each small marker is one model on one data set; the large outlined marker is
# the model's mean score over the sets at the geometric mean of its fit times.
# Points to the left fit faster; points higher up (classification) or lower
# down (regression) score better.  The spread along the score axis is mostly
# the sets' own difficulty: compare the colours within a set in the second
# figure.
MARKERS = dict(zip(MODELS, "osD^vP*X", strict=False))
COLOURS = dict(zip(MODELS, plt.get_cmap("tab10").colors, strict=False))


def style(model):
    return {"marker": MARKERS[model], "color": COLOURS[model]}


fig, axes = plt.subplots(1, len(TASKS), figsize=(6 * len(TASKS), 5), squeeze=False)
for ax, task in zip(axes[0], TASKS, strict=True):
    part = results[results["task"] == task]
    for model in [m for m in MODELS if m in set(part["model"])]:
        points = part[part["model"] == model]
        ax.scatter(points["fit_s"], points["score"], s=25, alpha=0.6, **style(model))
        ax.scatter(
            np.exp(np.log(points["fit_s"]).mean()),
            points["score"].mean(),
            s=160,
            edgecolors="black",
            label=model,
            **style(model),
        )
    better = "higher" if HIGHER[task] else "lower"
    ax.set(xscale="log", xlabel="mean fit time per fold (s)")
    ax.set(ylabel=f"mean {METRIC[task]} over the folds", title=f"{task} ({better} is better)")
    ax.grid(True, which="major", alpha=0.3)
axes[0][0].legend(title="model")
fig.tight_layout()

# %%
# Against HistGradientBoosting, set by set
# ----------------------------------------
# The same points relative to ``HGB`` on the same set: across, each model's
# fit time over HGB's; up, how much better its score is than HGB's (for
# regression, HGB's RMSE / std minus the model's, so that up is better on both
# panels).  The dashed lines mark HGB itself: a point in the upper left
# quadrant beats HGB and fits faster.
if "HGB" in MODELS:
    hgb = results[results["model"] == "HGB"].set_index("set")
    others = results[(results["model"] != "HGB") & results["set"].isin(hgb.index)].copy()
    sign = np.where(others["task"] == "classification", 1.0, -1.0)
    others["gain"] = sign * (others["score"] - hgb.loc[others["set"], "score"].to_numpy())
    others["time_ratio"] = others["fit_s"] / hgb.loc[others["set"], "fit_s"].to_numpy()

    fig, axes = plt.subplots(1, len(TASKS), figsize=(6 * len(TASKS), 5), squeeze=False)
    for ax, task in zip(axes[0], TASKS, strict=True):
        part = others[others["task"] == task]
        for model in [m for m in MODELS if m in set(part["model"])]:
            points = part[part["model"] == model]
            ax.scatter(points["time_ratio"], points["gain"], s=30, label=model, **style(model))
        ax.axhline(0, color="black", linestyle="--", linewidth=1)
        ax.axvline(1, color="black", linestyle="--", linewidth=1)
        ax.set(xscale="log", xlabel="fit time / HGB's on the same set")
        ax.set(ylabel=f"{METRIC[task]}: better than HGB by", title=task)
        ax.grid(True, which="major", alpha=0.3)
    axes[0][0].legend(title="model")
    fig.tight_layout()

# %%
# Summary per model
# -----------------
# Over the sets of each task that every model ran on: the mean score, the total
# fit time over all folds of those sets, and on how many sets the model's mean
# score is at most one point (0.01) worse than HGB's, or better.
WITHIN = 0.01


def summary(results, task):
    """Mean score, total fit seconds and sets within ``WITHIN`` of HGB, per model."""
    part = results[results["task"] == task]
    scores = part.pivot(index="set", columns="model", values="score").dropna()
    scores = scores[[m for m in MODELS if m in scores]]
    fit = part.pivot(index="set", columns="model", values="fit_total_s").loc[scores.index]
    table = pd.DataFrame(
        {"mean score": scores.mean(), "total fit s": fit.sum()}, index=list(scores.columns)
    )
    if "HGB" in scores:
        gain = scores.sub(scores["HGB"], axis=0) * (1 if HIGHER[task] else -1)
        near = (gain >= -WITHIN - 1e-12).sum()  # 1e-12: 0.95 - 0.96 is just below -0.01
        table["within 1 pt of HGB"] = [
            "-" if m == "HGB" else f"{near[m]}/{len(scores)}" for m in table.index
        ]
    return table, len(scores)


for task in TASKS:
    table, n_sets = summary(results, task)
    better = "higher" if HIGHER[task] else "lower"
    print(f"\n{task}: {METRIC[task]} ({better} is better), over {n_sets} sets")
    print(
        table.to_string(formatters={"mean score": "{:.3f}".format, "total fit s": "{:.1f}".format})
    )

plt.show()
