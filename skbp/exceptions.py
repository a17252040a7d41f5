"""Warnings raised by skbp."""

from sklearn.exceptions import ConvergenceWarning


class DivergenceWarning(ConvergenceWarning):
    """The training loss became non-finite or grew by orders of magnitude.

    The fit stops, keeps the last parameters that gave a finite loss, and the
    message suggests a smaller ``learning_rate_init``.  Subclasses
    :class:`sklearn.exceptions.ConvergenceWarning`, so code that already filters
    scikit-learn's convergence warnings keeps working.
    """


class GradientWarning(UserWarning):
    """A layer's gradient vanished or exploded during training.

    Emitted at most once per fit, naming the layer and suggesting a remedy
    (ReLU instead of sigmoid, batch normalization, residual connections, a
    smaller learning rate, ``max_grad_norm``).  The per-epoch, per-layer norms
    are in the fitted attribute ``gradient_norms_``.
    """


class PrecisionWarning(UserWarning):
    """The data is too large for the precision the model trains in.

    float32 squares overflow above about 1.8e19, so inputs or targets beyond
    that make gradients, losses or Adam's second moment infinite.  Raised once
    at the start of such a fit; scale the data (``StandardScaler``,
    ``TransformedTargetRegressor``) or fit on float64 data.
    """
