"""
Tabular data: accuracy against fit time, next to gradient boosting
===================================================================

This example draws the tabular benchmark's results: six models
cross-validated on real tables that install offline (the classification and
regression sets of the mlbench collection, diamonds, digits), each with its
defaults and the same 5 folds, on the same 2 threads:

* ``HGB``: scikit-learn's :class:`~sklearn.ensemble.HistGradientBoostingClassifier`
  / ``Regressor``, with native categorical support;
* ``Linear``: logistic regression / ridge on scaled and one-hot encoded columns;
* ``MLP``: scikit-learn's :class:`~sklearn.neural_network.MLPClassifier` /
  ``MLPRegressor`` on the same columns;
* ``BP``: :class:`skbp.BPClassifier` / :class:`skbp.BPRegressor`, the drop-in
  with scikit-learn's defaults, on the same columns;
* ``RealMLP``: pytabkit's RealMLP-TD on PyTorch (CPU), a published tabular
  recipe;
* ``Tabular``: :class:`skbp.TabularClassifier` / :class:`skbp.TabularRegressor`,
  which take the table as it is (categorical columns, missing values) and
  train skbp's version of such a recipe.

The full run takes over an hour (RealMLP alone most of it), so the gallery
does not rerun it: it reads the raw per-fold results the benchmark recorded,
``benchmarks/output/tabular.json``, written by::

    python benchmarks/bench.py tabular --max-rows 5000 --threads 2

(data: ``apt-get download r-cran-mlbench`` and ``pip install pyreadr``; RealMLP:
``pip install pytabkit torch``; see ``benchmarks/README.md``).  Rerunning that
command rewrites the file and so this page.  ``benchmarks/RESULTS.md`` has the
same figures as tables.
"""

# %%
# The recorded results
# --------------------
# One entry per data set: its shape and task, and per model the score of each
# fold (accuracy; RMSE divided by the target's standard deviation for
# regression, so that sets are comparable) and the seconds each fit and predict
# took.

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

try:
    HERE = Path(__file__).resolve().parent
except NameError:  # run cell by cell: the working directory is examples/
    HERE = Path.cwd()
RESULTS = HERE.parent / "benchmarks" / "output" / "tabular.json"

with open(RESULTS) as fh:
    raw = json.load(fh)
meta, results = raw["meta"], raw["results"]

print(f"machine: {meta['cpu']}, {meta['cores']} cores; {meta['folds']} folds")
print("versions:", ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
for run in meta["runs"]:
    print("run:", run["command"], f"({run.get('date', 'undated')})")

MODELS = ["HGB", "Linear", "MLP", "BP", "RealMLP", "Tabular"]
STYLE = {
    "HGB": ("tab:green", "s"),
    "Linear": ("tab:gray", "v"),
    "MLP": ("tab:orange", "^"),
    "BP": ("tab:blue", "o"),
    "RealMLP": ("tab:purple", "D"),
    "Tabular": ("tab:red", "*"),
}


def per_set(task):
    """``{set: {model: (mean score, mean fit seconds per fold)}}`` for ``task``."""
    out = {}
    for name, entry in results.items():
        if entry["info"]["task"] != task:
            continue
        out[name] = {
            m: (float(np.mean(r["score"])), float(np.mean(r["fit_s"])))
            for m, r in entry["models"].items()
        }
    return out


classification, regression = per_set("classification"), per_set("regression")
models = [m for m in MODELS if any(m in e["models"] for e in results.values())]
print("models:", ", ".join(models))

# %%
# Score against fit time
# ----------------------
# One point per model and data set: the mean score over the folds against the
# mean seconds one fit took (log scale).  Higher is better for accuracy, lower
# for the relative RMSE.  Points of the same colour are one model.

fig, axes = plt.subplots(1, 2, figsize=(12, 5))
for ax, (task, sets, label) in zip(
    axes,
    [
        ("classification", classification, "accuracy (higher is better)"),
        ("regression", regression, "RMSE / std(target) (lower is better)"),
    ],
    strict=True,
):
    for m in models:
        pts = np.array([sets[s][m] for s in sets if m in sets[s]])
        if pts.size == 0:
            continue
        colour, marker = STYLE[m]
        ax.scatter(pts[:, 1], pts[:, 0], c=colour, marker=marker, s=40, alpha=0.8, label=m)
    ax.set_xscale("log")
    ax.set_xlabel("seconds per fit (mean over the folds)")
    ax.set_ylabel(label)
    ax.set_title(f"{task}: {len(sets)} data sets")
    ax.grid(True, which="both", alpha=0.3)
axes[0].legend(loc="lower right")
fig.tight_layout()
plt.show()

# %%
# Against gradient boosting, set by set
# -------------------------------------
# The same points, each model's score minus HistGradientBoosting's on the same
# set (in points of accuracy, or of relative RMSE with the sign turned so that
# above 0 is better than HGB), against its fit time as a multiple of HGB's.
# The band is one point either side of HGB.

fig, axes = plt.subplots(1, 2, figsize=(12, 5))
for ax, (task, sets, sign) in zip(
    axes, [("classification", classification, 1.0), ("regression", regression, -1.0)], strict=True
):
    for m in models:
        if m == "HGB":
            continue
        xy = [
            (sets[s][m][1] / sets[s]["HGB"][1], 100 * sign * (sets[s][m][0] - sets[s]["HGB"][0]))
            for s in sets
            if m in sets[s] and "HGB" in sets[s]
        ]
        if not xy:
            continue
        colour, marker = STYLE[m]
        ax.scatter(*np.array(xy).T, c=colour, marker=marker, s=40, alpha=0.8, label=m)
    ax.axhspan(-1, 1, color="tab:green", alpha=0.1)
    ax.axhline(0, color="tab:green", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("fit time / HGB's fit time")
    ax.set_ylabel("points better than HGB")
    ax.set_title(task)
    ax.grid(True, which="both", alpha=0.3)
axes[0].legend(loc="lower right")
fig.tight_layout()
plt.show()

# %%
# The summary
# -----------
# Per model: the mean score over the sets every model ran on, the total fit
# time over all folds, and on how many sets it is within one point of
# HistGradientBoosting (or better) and ahead of scikit-learn's MLP.


def summary(sets, higher):
    common = [s for s in sets if all(m in sets[s] for m in models)]
    n, sign = len(common), 1.0 if higher else -1.0
    print("   model  mean score   fit s  within 1 pt of HGB  beats MLP")
    for m in models:
        score = np.mean([sets[s][m][0] for s in common])
        fit = sum(sets[s][m][1] for s in common) * meta["folds"]
        near = sum(sign * (sets[s][m][0] - sets[s]["HGB"][0]) >= -0.01 for s in common)
        beats = sum(sign * (sets[s][m][0] - sets[s]["MLP"][0]) > 0 for s in common)
        print(f"{m:>8} {score:11.4f} {fit:7.1f} {near:>13} of {n:<2} {beats:>5} of {n}")


print("classification (accuracy):")
summary(classification, higher=True)
print("\nregression (RMSE / std(target)):")
summary(regression, higher=False)
