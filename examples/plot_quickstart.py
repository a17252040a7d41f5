"""
Quickstart
==========

skbp's :class:`~skbp.BPClassifier` and :class:`~skbp.BPRegressor` are drop-in
replacements for scikit-learn's ``MLPClassifier`` and ``MLPRegressor``: the same
parameter names and defaults, the same fitted attributes, and they work in
pipelines, cross-validation and grid searches like any scikit-learn estimator.

This example classifies scikit-learn's bundled breast cancer data (569 tumours,
30 features): it cross-validates a ``StandardScaler -> BPClassifier`` pipeline,
fits it once and uses ``predict``, ``predict_proba`` and ``score``, compares
with ``MLPClassifier`` on the same folds, and ends with a regression
counterpart on the diabetes data.
"""

# %%
# Cross-validate a pipeline
# -------------------------
# Neural networks want standardized features, so the network sits behind a
# ``StandardScaler`` in a pipeline. Before timing anything we do a tiny
# warm-up fit: skbp compiles its kernels on first use in a process (seconds),
# and we do not want that counted in the fit times below.
import warnings

import matplotlib.pyplot as plt
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import cross_val_score, cross_validate, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbp import BPClassifier, BPRegressor

X, y = load_breast_cancer(return_X_y=True)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)  # 2 epochs: just to compile
    BPClassifier(hidden_layer_sizes=(4,), max_iter=2).fit(X[:20], y[:20]).predict(X[:5])

params = dict(hidden_layer_sizes=(64,), max_iter=300, random_state=0)
cv = {}
for est in (BPClassifier(**params), MLPClassifier(**params)):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter=300 is a fixed budget
        res = cross_validate(make_pipeline(StandardScaler(), est), X, y, cv=5)
    name = type(est).__name__
    cv[name] = res
    acc, fit = res["test_score"], res["fit_time"]
    print(f"{name:<14} accuracy {acc.mean():.3f} +- {acc.std():.3f}   fit {fit.mean():.3f} s/fold")

# %%
# Migrating from scikit-learn
# ---------------------------
# Code written for ``MLPClassifier`` runs unchanged with skbp: change the
# import and the class name, keep the parameters (the loop above built both
# estimators from the same ``params``)::
#
#     from sklearn.neural_network import MLPClassifier   # before
#     clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=300)
#
#     from skbp import BPClassifier                      # after
#     clf = BPClassifier(hidden_layer_sizes=(64,), max_iter=300)
#
# Fit, predict, predict_proba, score
# ----------------------------------
# Fit on a training split and look at a few held-out rows: ``predict`` gives
# the class, ``predict_proba`` the probability of each class (0: malignant,
# 1: benign), and ``score`` the accuracy on the whole test split (143 rows: a
# single split is noisier than the 5-fold mean above).
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
clf = make_pipeline(StandardScaler(), BPClassifier(**params)).fit(X_train, y_train)
print("\npredicted:", clf.predict(X_test[:5]), "  true:", y_test[:5])
print("probabilities:\n", clf.predict_proba(X_test[:5]).round(3))
print(f"test accuracy: {clf.score(X_test, y_test):.3f}")

# %%
# Regression in five lines
# ------------------------
# :class:`~skbp.BPRegressor` mirrors ``MLPRegressor``; here on the diabetes
# data (442 patients, 10 features), scored by R^2 over 5 folds. The target is
# unscaled (25 to 346), so a larger step size than the default converges in the
# budget; R^2 near 0.5 is about what linear models reach on this data too.
Xd, yd = load_diabetes(return_X_y=True)
reg = BPRegressor(hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=500, random_state=0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    r2 = cross_val_score(make_pipeline(StandardScaler(), reg), Xd, yd, cv=5, scoring="r2")
print(f"\nBPRegressor on diabetes: R^2 {r2.mean():.3f} +- {r2.std():.3f}")

# %%
# Plot the training loss and the per-fold accuracy
# ------------------------------------------------
# A fitted network keeps its training loss after every epoch in ``loss_curve_``,
# just like scikit-learn's. The right panel shows the 5 cross-validation folds
# of both estimators: on this small, easy data set they differ by at most one
# test row (of 114) per fold, while skbp fits faster (the printed fit times).
# A speed-up holds for one network and data size on one machine; the accuracy
# of both is set by the model and the data, not by the implementation.
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
ax1.plot(clf[-1].loss_curve_)
ax1.set(title="BPClassifier training loss", xlabel="epoch", ylabel="log-loss", yscale="log")
for i, (name, res) in enumerate(cv.items()):
    ax2.bar([f + 0.4 * i for f in range(5)], res["test_score"], width=0.4, label=name)
ax2.set_xticks([f + 0.2 for f in range(5)], [str(f + 1) for f in range(5)])
ax2.set(title="Accuracy per CV fold", xlabel="fold", ylabel="accuracy", ylim=(0.9, 1.0))
ax2.legend(loc="lower right")
fig.tight_layout()
plt.show()
