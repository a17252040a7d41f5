"""
Learning curves with scikit-learn's callbacks
=============================================

skbp's estimators support scikit-learn's callback API (``sklearn.callback``,
scikit-learn 1.9+): a fit is a task, each epoch a subtask, and at the end of
each epoch the callbacks can be handed the network as it stands then, ready to
predict.  This example uses that to draw learning curves on digits:

* ``ScoringMonitor(scoring="accuracy")``, scikit-learn's own callback, scores
  the training rows after every epoch;
* ``HeldOutScore``, a callback of a dozen lines written here, scores rows the
  network never trains on, and can stop the fit when that score has not
  improved for ``patience`` epochs (returning True from ``on_fit_task_end``
  stops a fit after that epoch, with a usable model).

The training accuracy climbs to 1 while the held-out accuracy levels off near
0.94 after about 25 epochs: the gap is over-fitting, and the fit stopped by
``HeldOutScore`` ends on that plateau in about half the epochs (both fits
have the same ``random_state``, so their curves coincide until the stop).  A
third fit uses scikit-learn's own remedy, ``early_stopping=True``: it sets
aside 10% of the training rows, stops when their score has not improved for
``n_iter_no_change`` epochs, and keeps the weights that scored best on them.
On 300 rows that is a noisy guide (30 validation rows): it stops earliest and
ends a little lower on the held-out rows than the callback does.
"""

# %%
# A callback that scores held-out rows
# ------------------------------------
# scikit-learn's callback protocol: ``setup``/``teardown`` around the fit and
# ``on_fit_task_begin``/``on_fit_task_end`` around the fit and each epoch.
# ``fitted_estimator`` is a copy of the network as it stands at the end of the
# epoch, ready to predict.
import warnings

import matplotlib.pyplot as plt
from sklearn.callback import ScoringMonitor
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skbp import BPClassifier

EPOCHS = 60


class HeldOutScore:
    """Score ``fitted_estimator`` on held-out rows after every epoch; optionally stop.

    A callback of scikit-learn's protocol: ``setup``/``teardown`` around the
    fit, ``on_fit_task_begin``/``on_fit_task_end`` around the fit (the root
    task, ``context.parent is None``) and each of its epochs.
    """

    def __init__(self, X, y, patience=None):
        self.X, self.y, self.patience = X, y, patience
        self.scores = []

    def setup(self, estimator, context):
        self.scores = []

    def teardown(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context):
        pass

    def on_fit_task_end(self, estimator, context, *, fitted_estimator=None):
        if context.parent is None or fitted_estimator is None:
            return False  # the end of the whole fit, not of an epoch
        self.scores.append(fitted_estimator.score(self.X, self.y))
        if self.patience is None or len(self.scores) <= self.patience:
            return False
        best_before = max(self.scores[: -self.patience])
        return max(self.scores[-self.patience :]) <= best_before  # True: stop


# %%
# Three fits: all epochs, stopped by the callback, and early stopping
# -------------------------------------------------------------------
# A small training set (300 digits), so that the network over-fits within a
# few dozen epochs.
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X / 16.0, y, train_size=300, stratify=y, random_state=0
)

RUNS = (  # label, patience of HeldOutScore, early_stopping
    ("full run", None, False),
    ("stopped by HeldOutScore", 5, False),
    ("early_stopping=True", None, True),
)
curves = {}
for label, patience, early_stopping in RUNS:
    monitor = ScoringMonitor(scoring="accuracy")
    held_out = HeldOutScore(X_test, y_test, patience=patience)
    clf = BPClassifier(
        hidden_layer_sizes=(128,),
        batch_size=32,
        learning_rate_init=0.003,
        max_iter=EPOCHS,
        early_stopping=early_stopping,
        random_state=0,
    )
    clf.set_callbacks(monitor, held_out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_train, y_train)
    train = [row["accuracy"] for row in monitor.get_logs().data if row["task_name"] == "epoch"]
    curves[label] = (train, held_out.scores, clf)

# the final model's held-out score: with early_stopping, the best validated weights
print(f"{'run':26s} {'epochs':>6s} {'train acc':>9s} {'held-out acc':>12s}")
for label, (train, _, clf) in curves.items():
    print(f"{label:26s} {clf.n_iter_:6d} {train[-1]:9.3f} {clf.score(X_test, y_test):12.3f}")

# %%
# The learning curves
# -------------------
# Dashed: accuracy on the training rows (``ScoringMonitor``); solid: on the
# held-out rows (``HeldOutScore``).  The early-stopping fit trains on 270 of
# the 300 rows, so its curves differ from the start.
fig, ax = plt.subplots(figsize=(7, 4))
for (label, (train, test, _)), color in zip(curves.items(), ("C0", "C3", "C2"), strict=True):
    epochs = range(1, len(train) + 1)
    ax.plot(epochs, train, color=color, linestyle="--", label=f"{label}: training")
    ax.plot(epochs, test, color=color, label=f"{label}: held out")
ax.set_xlabel("epoch")
ax.set_ylabel("accuracy")
ax.set_title("BPClassifier on 300 digits: learning curves from callbacks")
ax.legend(loc="lower right", fontsize=8)
fig.tight_layout()
plt.show()
