"""
Vanishing gradients in a deep network, and the remedies
=======================================================

Twelve hidden layers of logistic units is the textbook vanishing-gradient
network: the error signal shrinks by a factor of about four per layer on its
way back, so the layers near the input barely learn.  This example trains that
network and three remedies on the same data (scikit-learn's digits) and plots,
for each, the training loss per epoch and the per-layer gradient norms that
skbp records in ``gradient_norms_``:

* ``activation="relu"`` (gradients of 1 instead of at most 1/4 per layer),
* ``activation="relu", batch_norm=True`` (re-centred, re-scaled layers),
* ``residual=True`` (identity skips carry the gradient past every layer),
  here with ``dropout=0.1`` against over-fitting.
"""

# %%
# Data and networks
# -----------------
# The pixels are scaled to [0, 1]; every network has the same depth, width,
# epochs and learning rate, and only the remedy changes.
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from skbp import BPClassifier
from skbp.exceptions import GradientWarning

DEPTH, WIDTH, EPOCHS = 12, 32, 60

CONFIGS = {
    "logistic (no remedy)": dict(activation="logistic"),
    "relu": dict(activation="relu"),
    "relu + batch_norm": dict(activation="relu", batch_norm=True),
    "logistic + residual + dropout": dict(activation="logistic", residual=True, dropout=0.1),
}

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X / 16.0, y, test_size=0.25, random_state=0, stratify=y
)

# %%
# Training
# --------
# skbp warns with a ``GradientWarning`` when a layer's gradient vanishes or
# explodes; the table notes which fits raised one.
fitted = {}
print(f"{'network':<32}{'test acc':>9}{'final loss':>12}  first/last layer grad norm")
for name, params in CONFIGS.items():
    clf = BPClassifier(
        hidden_layer_sizes=(WIDTH,) * DEPTH,
        max_iter=EPOCHS,
        n_iter_no_change=EPOCHS,
        learning_rate_init=1e-3,
        random_state=0,
        **params,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("ignore", UserWarning)  # e.g. ConvergenceWarning
        warnings.simplefilter("always", GradientWarning)  # takes precedence
        clf.fit(X_train, y_train)
    g = clf.gradient_norms_
    warned = any(issubclass(w.category, GradientWarning) for w in caught)
    print(
        f"{name:<32}{clf.score(X_test, y_test):>9.3f}{clf.loss_:>12.4f}"
        f"  {g[:, 0].mean():.1e} / {g[:, -1].mean():.1e}"
        + ("  <- GradientWarning" if warned else "")
    )
    fitted[name] = clf

# %%
# Loss curves and gradient norms per layer
# ----------------------------------------
# Without a remedy the loss hardly moves and the gradient of the first layers
# is orders of magnitude smaller than the last one's; each remedy keeps the
# gradient alive through all twelve layers.
fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
for name, clf in fitted.items():
    axes[0].plot(clf.loss_curve_, label=name)
    axes[1].semilogy(
        np.arange(1, clf.n_layers_), clf.gradient_norms_.mean(axis=0), marker="o", label=name
    )
axes[0].set(xlabel="epoch", ylabel="training loss", title="Loss curves")
axes[1].set(
    xlabel="layer (1 = input side)",
    ylabel="mean weight-gradient norm",
    title=f"Per-layer gradient norms, {DEPTH} hidden layers",
)
axes[1].axhline(1e-6, color="grey", linestyle=":", label="vanishing threshold")
for ax in axes:
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
