"""A deep network on digits, with and without the BP toolkit's remedies.

Twelve hidden layers of logistic units is the textbook vanishing-gradient
network: the error signal shrinks by a factor of about four per layer on its
way back, so the layers near the input barely learn.  This example trains that
network and three remedies on the same data and plots, for each, the training
loss per epoch and the per-layer gradient norms (``gradient_norms_``):

* ``activation="relu"`` (gradients of 1 instead of at most 1/4 per layer),
* ``activation="relu", batch_norm=True`` (re-centred, re-scaled layers),
* ``residual=True`` (identity skips carry the gradient past every layer),
  here with ``dropout=0.1`` against over-fitting.

Run it with ``python examples/plot_deep_network_remedies.py``; it prints a
table and writes ``deep_network_remedies.png`` (needs matplotlib:
``pip install -e ".[examples]"``).
"""

import sys
import warnings

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


def main(output="deep_network_remedies.png"):
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X / 16.0, y, test_size=0.25, random_state=0, stratify=y
    )
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
        note = (
            "  <- GradientWarning"
            if any(issubclass(w.category, GradientWarning) for w in caught)
            else ""
        )
        print(
            f"{name:<32}{clf.score(X_test, y_test):>9.3f}{clf.loss_:>12.4f}"
            f"  {g[:, 0].mean():.1e} / {g[:, -1].mean():.1e}{note}"
        )
        fitted[name] = clf

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return
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
    fig.savefig(output, dpi=110)
    print(f"wrote {output}")


if __name__ == "__main__":
    main(*sys.argv[1:])
