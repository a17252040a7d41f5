"""The public estimators: BPClassifier and BPRegressor."""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.validation import _check_y, column_or_1d, validate_data

from ._base import BaseBP, _brief, _plain_array, fits_alone
from ._callbacks import with_callbacks

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    import scipy.sparse as sp
    from numpy.typing import ArrayLike, DTypeLike
    from sklearn.utils import Tags
    from typing_extensions import Self

_COMMON_PARAMS = """
    hidden_layer_sizes : array-like of shape (n_layers - 2,) or 'auto', \
default=(100,)
        The ith element is the number of neurons in the ith hidden layer.
        An empty tuple gives a network without hidden layers (a generalised
        linear model).  ``'auto'`` is the classic rule of thumb: one hidden
        layer of ``max(1, round(1.5 * (n_features + n_outputs) / 2))`` units,
        1.5 times the mean of the input and output widths.

    activation : str or list of str, default='relu'
        Activation function of the hidden layers, one name for all or one per
        hidden layer: ``identity`` f(x) = x, ``logistic`` (alias ``sigmoid``)
        f(x) = 1 / (1 + exp(-x)), ``tanh`` f(x) = tanh(x), ``relu``
        f(x) = max(0, x), ``leaky_relu`` f(x) = x if x > 0 else 0.01 x,
        ``elu`` f(x) = x if x > 0 else exp(x) - 1, ``selu`` f(x) = l x if
        x > 0 else l a (exp(x) - 1) with Klambauer et al.'s l = 1.0507009873554805
        and a = 1.6732632423543772, ``gelu`` f(x) = x Phi(x) = x (1 + erf(x /
        sqrt(2))) / 2 (the exact form, PyTorch's default, not the tanh
        approximation), ``mish`` f(x) = x tanh(log(1 + exp(x))).  Every
        activation starts from scikit-learn's Glorot-uniform initialisation
        (bound ``sqrt(6 / (fan_in + fan_out))``, ``sqrt(2 / ...)`` for
        logistic), selu included (no LeCun-normal start): with the same
        ``random_state`` selu, gelu and mish start from relu's weights.

    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        Weight optimisation: scipy's L-BFGS-B on the compiled full-batch loss
        and gradient; mini-batch stochastic gradient descent with momentum
        (``momentum``, ``nesterovs_momentum``); or Adam.

    alpha : float, default=0.0001
        Strength of the L2 penalty ``alpha / 2 * ||W||^2`` (weights only,
        divided by the sum of sample weights of the batch).

    batch_size : int, 'auto' or 'full', default='auto'
        Mini-batch size of the stochastic solvers; 'auto' is
        ``min(200, n_samples)``, 'full' is every row (batch gradient descent),
        1 is pure stochastic gradient descent.  Ignored by 'lbfgs'.

    learning_rate : {'constant', 'invscaling', 'adaptive', 'exponential', \
'cosine', 'one_cycle', 'cosine_restarts'}, default='constant'
        Learning-rate schedule, for 'sgd' and 'adam' alike (ignored by
        'lbfgs'): constant; ``invscaling`` ``learning_rate_init / (t + 1) **
        power_t`` after each epoch (``t`` the number of samples seen);
        ``adaptive`` divides the rate by 5 whenever ``n_iter_no_change`` epochs
        fail to improve by ``tol``; ``exponential`` multiplies it by
        ``decay_rate`` after each epoch.  The last three change the rate at
        every update, over a horizon of ``max_iter`` epochs of mini-batches
        (``T`` updates, update ``u`` from 0): ``cosine`` anneals it from
        ``learning_rate_init`` to ``min_learning_rate`` along
        ``min + (init - min) * (1 + cos(pi * u / T)) / 2`` (Loshchilov and
        Hutter, 2017); ``one_cycle`` first rises linearly to
        ``learning_rate_init`` over ``warmup_fraction * T`` updates, then
        anneals as ``cosine`` over the rest; ``cosine_restarts`` repeats the
        cosine over ``n_cycles`` equal cycles, each restarting at
        ``learning_rate_init`` (SGDR).  Early stopping may end training before
        the horizon.  ``partial_fit`` trains one epoch of the same horizon per
        call and stays at ``min_learning_rate`` after ``max_iter`` calls;
        ``fit`` (a warm start too) starts the schedule over.

    learning_rate_init : float, default=0.001
        Initial step size of 'sgd' and 'adam'.

    power_t : float, default=0.5
        Exponent of the 'invscaling' schedule.

    max_iter : int, default=200
        Maximum number of epochs (stochastic solvers) or iterations (lbfgs).

    shuffle : bool, default=True
        Shuffle the rows before each epoch (stochastic solvers).

    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation (the same draws as scikit-learn's MLP),
        the validation split of early stopping, and the shuffling.  An int
        gives bit-identical weights on every fit.

    tol : float, default=1e-4
        Improvement below ``tol`` for ``n_iter_no_change`` epochs stops
        training (or adapts the learning rate); the gradient tolerance of lbfgs.

    verbose : bool, default=False
        Print the loss after every epoch.

    warm_start : bool, default=False
        Continue from the previous solution on the next ``fit``.

    momentum : float, default=0.9
        Momentum of 'sgd', in [0, 1].

    nesterovs_momentum : bool, default=True
        Use Nesterov's momentum with 'sgd' and ``momentum > 0``.

    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training rows (or score the
        ``X_val``, ``y_val`` given to ``fit``) and stop when the validation
        score (``scoring``) has not improved by ``tol`` for
        ``n_iter_no_change`` epochs; the weights of the best epoch are
        restored.  With ``shuffle=True`` the
        held-out rows are a random split (stratified for single-output
        classification); with ``shuffle=False`` they are the *last* rows, so
        time-ordered data never validates on its past.  Stochastic solvers only.

    validation_fraction : float, default=0.1
        Fraction of rows held out for early stopping, in [0, 1).  Unused when
        ``fit`` is given ``X_val`` and ``y_val``.

    scoring : str, callable or None, default=None
        What early stopping scores the validation rows by (higher is better):
        ``None``, the estimator's ``score`` (accuracy for the classifier, R²
        for the regressor, as scikit-learn's MLP); ``'loss'``, minus the
        validation loss (the data term of the training loss, without the
        penalty: log-loss, half squared error or half Poisson deviance, summed
        over the outputs, mean over the rows weighted by their sample
        weights), as in :class:`~sklearn.ensemble.HistGradientBoostingClassifier`;
        a scorer name (``'roc_auc'``, ``'neg_log_loss'``, see
        :func:`sklearn.metrics.get_scorer_names`) or a callable
        ``scorer(estimator, X, y)``.  Unused without early stopping and by
        'lbfgs'.

    beta_1 : float, default=0.9
        Adam's decay rate of the first-moment estimate, in [0, 1).

    beta_2 : float, default=0.999
        Adam's decay rate of the second-moment estimate, in [0, 1).

    epsilon : float, default=1e-8
        Adam's numerical-stability constant.

    n_iter_no_change : int, default=10
        Epochs without an improvement of ``tol`` before stopping.

    max_fun : int, default=15000
        Maximum number of loss evaluations of lbfgs.

    decay_rate : float, default=0.95
        Factor applied to the learning rate after each epoch with
        ``learning_rate='exponential'``, in (0, 1].

    min_learning_rate : float, default=0.0
        The floor of the schedules 'cosine', 'one_cycle' and
        'cosine_restarts' (where they start the warm-up and end each cycle),
        at most ``learning_rate_init``.

    warmup_fraction : float, default=0.1
        Fraction of the updates of ``learning_rate='one_cycle'`` spent rising
        linearly to ``learning_rate_init``, in [0, 1).  (PyTorch's
        ``OneCycleLR`` rises over 0.3 of the updates; a tenth, common for
        Adam, keeps more of the training at high rates.)

    n_cycles : int, default=4
        Number of equal cosine cycles of ``learning_rate='cosine_restarts'``;
        1 is ``'cosine'``.

    dropout : float or list of float, default=0.0
        Inverted dropout on the hidden activations while training: each unit is
        zeroed with this probability and the others scaled by ``1 / (1 - p)``;
        off at predict.  One rate for all hidden layers or one per layer, each
        in [0, 1).  The masks are drawn from ``random_state``.  Needs 'sgd' or
        'adam'.

    batch_norm : bool, default=False
        Batch normalization of each hidden layer's pre-activation, with a
        learned scale and shift (``bn_scales_``, ``bn_shifts_``) and running
        mean and variance (momentum 0.1) used by predict.  The batch statistics
        are weighted by the sample weights.
        With 'lbfgs' the statistics are those of the whole training set.
        Needs mini-batches of at least 2 rows.

    residual : bool, default=False
        Identity skip connections ``h_(k+1) = f(W h_k + b) + h_k`` between
        consecutive hidden layers of equal width (after dropout).  Consecutive
        layers of different widths get no skip connection (a warning says so
        when no pair qualifies); there is none from the input.

    l1_ratio : float, default=0.0
        Split of the ``alpha`` penalty between L1 and L2, as in
        :class:`sklearn.linear_model.SGDClassifier`: the penalty is
        ``alpha * (l1_ratio * ||W||_1 + (1 - l1_ratio) / 2 * ||W||^2)``.  0 is
        scikit-learn's pure L2 penalty.

    max_grad_norm : float or None, default=None
        Clip the global norm of the gradient of every update to at most this
        value (against exploding gradients).  Stochastic solvers only.

    weight_decay : float, default=0.0
        Decoupled weight decay (AdamW with 'adam', SGDW with 'sgd'; Loshchilov
        and Hutter, 2019): each update first shrinks the weights,
        ``w <- (1 - lr * weight_decay) * w``, apart from the gradient step,
        where ``lr`` is that update's learning rate (after the schedule, before
        Adam's bias correction), as in PyTorch's ``torch.optim.AdamW``.  Unlike
        ``alpha``, an L2 penalty in the loss that Adam rescales per parameter,
        every weight decays at the same rate.  0 turns it off.  Stochastic
        solvers only: ``solver='lbfgs'`` refuses ``weight_decay > 0``.

    decay_biases : bool, default=False
        Whether ``weight_decay`` also shrinks the biases and batch norm's
        scales and shifts.  By default only the weight matrices decay, the
        common practice.

    n_jobs : int or None, default=None
        The most CPU threads one fit or prediction may use.  ``None`` means
        every core Numba may use, unless an outer joblib context limits it
        (inside a ``GridSearchCV(n_jobs=4)`` worker each fit gets its share of
        the cores; ``joblib.parallel_config(n_jobs=k)`` makes it ``k``); ``-1``
        all cores, ``-2`` all but one, ``k`` at most ``k``.  Unlike
        scikit-learn's ``None`` (one job) this default uses the cores, and is
        safe to: training and prediction run in steps of ~20 ms, and each step
        runs serially unless the cores are free of other processes' work and
        parallel steps measure faster; concurrent calls in threads share the
        cores.  The fitted weights are the same, bit for bit, for every value
        and every step's thread count.  See ``docs/threads.md``.

    n_ensemble : int, default=1
        Number of networks to train, each from its own initial weights and
        with its own shuffling (and early-stopping split), whose predictions
        are averaged: a classifier averages the members' probabilities (after
        softmax or the logistic) and predicts the classes of that average, a
        regressor averages the members' predictions.  Averaging probabilities,
        not logits, keeps each member's calibration and is what the tabular
        recipes (RealMLP, TabM) do.  The members are ``estimators_``; their
        seeds come from ``random_state`` (an int ``r`` seeds member 0 with
        ``r``, so it is the network ``n_ensemble=1`` fits, and the others from
        ``np.random.SeedSequence(r)``).  They train concurrently, up to
        ``n_jobs`` at a time, and the result is the same, bit for bit, for
        every ``n_jobs``.  Training costs about ``n_ensemble`` single fits of
        CPU time (less wall time where a single fit leaves cores idle), and
        prediction ``n_ensemble`` forward passes.  ``warm_start`` and
        ``partial_fit`` train every member on.  1 trains one network, as
        scikit-learn does.  E.g. ``BPClassifier(n_ensemble=8, random_state=0)``.
        See ``docs/toolkit.md``.

    numeric_embedding : {None, 'periodic'}, default=None
        Embed numeric input columns before the first hidden layer.
        ``'periodic'`` is the PLR embedding of Gorishniy et al. (2022, "On
        Embeddings for Numerical Features in Tabular Deep Learning"): each
        embedded column ``x_j`` becomes ``relu([cos(2 pi c_j x_j), sin(2 pi
        c_j x_j)] @ V_j + b_j)``, with ``n_frequencies`` learned frequencies
        ``c_j`` and a learned linear map ``V_j``, ``b_j`` of its own to
        ``embedding_dim`` outputs; the embedded columns' outputs, then the
        other columns as they are, are the first hidden layer's input.  Its
        parameters train with the rest (every solver, schedules, early
        stopping, warm start, ``partial_fit``).  ``alpha`` and
        ``weight_decay`` reach its weights ``V_j`` but not its frequencies nor
        its biases (unless ``decay_biases``), as the paper's code leaves the
        frequencies undecayed.  RealMLP's PBLD variant (a learned phase instead
        of the cos/sin pairs, the raw value appended) is not implemented.
        Dense input only.  None: the columns go to the first layer as they are.

    embedding_features : array-like of bool or int, default=None
        The columns the embedding embeds: a boolean mask of the columns of
        ``X`` or their indices (the outputs follow the columns' order).  None
        embeds every column.  Ignored without ``numeric_embedding``.

    n_frequencies : int, default=16
        Number ``k`` of learned frequencies per embedded column (``2k``
        periodic features).  The reference package ``rtdl_num_embeddings``
        defaults to 48; RealMLP-TD (``pytabkit``) uses 8 (16 features).

    embedding_dim : int, default=16
        Number ``d`` of outputs per embedded column: the first hidden layer's
        input grows by ``d - 1`` per embedded column.  ``rtdl_num_embeddings``
        defaults to 24, RealMLP-TD uses 4.

    frequency_scale : float, default=0.1
        Standard deviation ``sigma`` of the frequencies' initialisation, a
        normal distribution truncated at ``3 sigma`` (as
        ``rtdl_num_embeddings``); the paper calls it an important
        hyper-parameter, to tune on a log scale (its search space is 0.01 to
        100).  0.1 is RealMLP-TD's ``plr_sigma`` for standardised inputs
        (``rtdl_num_embeddings`` defaults to 0.01).  Larger values fit faster
        oscillations of a column.  See ``docs/toolkit.md``."""

_COMMON_ATTRIBUTES = """
    loss_ : float
        The loss of the last epoch (stochastic solvers: the mean of the
        mini-batch losses) or of the final L-BFGS iterate.

    best_loss_ : float or None
        The lowest training loss seen; None when early stopping is on.

    loss_curve_ : list of float
        The loss after every epoch (every iteration for lbfgs).

    validation_scores_ : list of float or None
        The validation score (``scoring``) after every epoch with
        ``early_stopping=True``.

    best_validation_score_ : float or None
        The best of ``validation_scores_``: the epoch whose weights are kept.

    validation_loss_curve_ : list of float or None
        The validation loss (see ``scoring='loss'``) after every epoch with
        ``early_stopping=True``, whatever ``scoring`` is; after every L-BFGS
        iteration when ``fit`` is given ``X_val`` and ``y_val``.  None without
        validation rows.

    t_ : int
        Number of training samples seen by the stochastic solver.

    coefs_ : list of ndarray of shape (n_layers - 1,)
        Weight matrices, ``coefs_[i]`` of shape ``(units[i], units[i + 1])``.
        They are views of one flat parameter vector: change them in place.
        With ``n_ensemble > 1`` every parameter attribute (``coefs_``,
        ``intercepts_``, the ``bn_*`` lists) holds the members' arrays stacked
        on a first axis of length ``n_ensemble`` (``coefs_[i]`` of shape
        ``(n_ensemble, units[i], units[i + 1])``): read-only copies; change a
        member's own (``estimators_[m].coefs_``) instead.

    intercepts_ : list of ndarray of shape (n_layers - 1,)
        Bias vectors, ``intercepts_[i]`` of shape ``(units[i + 1],)``.

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when X has string column names.

    n_iter_ : int
        Number of epochs (or L-BFGS iterations) run by the last fit.

    n_layers_ : int
        Number of layers, input and output included.

    n_outputs_ : int
        Number of output units.

    out_activation_ : str
        Name of the output activation.

    gradient_norms_ : ndarray of shape (n_epochs, n_layers - 1)
        Mean norm of the gradient of the data loss (without the penalty) with
        respect to each layer's weights in every epoch (every
        iteration for lbfgs), over all fits like ``loss_curve_``.  A layer below
        1e-6 while another is above 1e-4 (vanishing) or above 1e4 (exploding)
        triggers one :class:`skbp.exceptions.GradientWarning` per fit.

    bn_scales_, bn_shifts_ : list of ndarray
        Batch norm's learned scale and shift per hidden layer (empty without
        ``batch_norm``).

    bn_running_means_, bn_running_vars_ : list of ndarray
        Batch norm's running mean and variance per hidden layer, used by predict.

    embedding_frequencies_ : ndarray of shape (n_embedded, n_frequencies)
        With ``numeric_embedding``: the learned frequencies ``c_j`` of each
        embedded column (views of the parameter vector, as ``coefs_``).

    embedding_coefs_ : ndarray of shape (n_embedded, 2 * n_frequencies, embedding_dim)
        With ``numeric_embedding``: each embedded column's weights ``V_j``
        (rows: the cosines, then the sines).

    embedding_intercepts_ : ndarray of shape (n_embedded, embedding_dim)
        With ``numeric_embedding``: each embedded column's biases ``b_j``.

    estimators_ : list of estimators
        With ``n_ensemble > 1`` only: the members, fitted estimators of this
        class with ``n_ensemble=1`` and each its own ``random_state``, holding
        each member's books (``loss_curve_``, ``validation_scores_``,
        ``best_loss_``, ``gradient_norms_``, ...).  The ensemble's own
        ``n_iter_`` is the most epochs a member ran, ``loss_`` the mean of
        the members' and ``loss_curve_`` per epoch the mean over the members
        that trained it; the other books are the members' only."""

_DIFFERENCES = """
    Differences from scikit-learn's MLP, all deliberate:

    * A fit that diverges (the loss becomes inf/NaN or grows more than 1e4
      times above where it started) stops with a
      :class:`skbp.exceptions.DivergenceWarning` naming ``learning_rate_init``
      and keeps the last finite parameters with the lowest loss, so ``predict``
      never returns NaN.  scikit-learn keeps training to overflow.
    * ``loss_curve_`` and ``best_loss_`` are set for 'lbfgs' too.
    * Learning-rate schedules apply to 'adam' as well as 'sgd' (scikit-learn
      ignores ``learning_rate`` for 'adam'); the default 'constant' behaves the
      same in both libraries.
    * The half squared error of a multi-output regression is summed over the
      outputs (the quantity whose gradient is trained on); scikit-learn reports
      it averaged over outputs while training on the summed gradient.
    * The first layer of a sparse input is computed from its non-zeros, and
      float32 input keeps float32 parameters, buffers and outputs.
    * ``n_jobs`` (added) caps the threads of training and prediction, which
      adapt to the machine's load; the weights do not depend on it.  Inside
      fits and predictions BLAS runs on one thread (skbp splits large products
      itself).
    * ``fit`` takes validation data (``X_val``, ``y_val``,
      ``sample_weight_val``, as :class:`~sklearn.ensemble.HistGradientBoostingClassifier`),
      and ``scoring`` (added) chooses what early stopping tracks;
      ``validation_loss_curve_`` records the validation loss.
    * With scikit-learn 1.9+, ``set_callbacks`` (added) takes scikit-learn's
      callbacks (``sklearn.callback``): the fit is a task and each epoch or
      L-BFGS iteration a subtask whose end can hand the callbacks the network
      as it stands and stop the fit."""


def fitted_label_binarizer(y: np.ndarray) -> LabelBinarizer:
    """``LabelBinarizer().fit(y)``, with integer and boolean 1-D labels taken directly.

    For those the fitted attributes are simply ``np.unique(y)`` and ``"binary"``
    or ``"multiclass"``; LabelBinarizer's own checks (parameter validation and
    ``type_of_target`` twice) take time held under the GIL, which a grid search
    on the threading backend pays for every fit.  Any other target
    (strings, floats, multilabel) goes through ``LabelBinarizer.fit``.
    """
    lb = LabelBinarizer()
    if y.ndim == 1 and y.shape[0] > 0 and y.dtype.kind in "iub":
        lb.classes_ = np.unique(y)
        lb.y_type_ = "binary" if lb.classes_.shape[0] <= 2 else "multiclass"
        lb.sparse_input_ = False
        return lb
    return lb.fit(y)


class BPClassifier(ClassifierMixin, BaseBP):
    __doc__ = f"""Multilayer feed-forward network classifier trained by backpropagation.

    A drop-in superset of :class:`sklearn.neural_network.MLPClassifier`: same
    parameters, defaults and fitted attributes, with the forward pass, the
    cross-entropy loss, the backward pass and whole epochs of optimizer updates
    compiled with Numba.  Binary, multiclass and multilabel targets; string
    labels; sample weights; dense or sparse input.

    Parameters
    ----------{_COMMON_PARAMS}

    class_weight : dict, 'balanced' or None, default=None
        Weights of the classes, as in scikit-learn's linear models: a dict
        ``{{class_label: weight}}``, or 'balanced' for
        ``n_samples / (n_classes * np.bincount(y))``.  Multiplies
        ``sample_weight``.  'balanced' is not available in ``partial_fit``
        (the class frequencies of a stream are unknown): give a dict there.

    label_smoothing : float in [0, 1), default=0.0
        Label smoothing of the log-loss (Szegedy et al., 2016), as PyTorch's
        and Keras's cross-entropies: the targets are mixed with the uniform
        distribution, ``y * (1 - label_smoothing) + label_smoothing / K``,
        with ``K`` the number of classes for a multiclass (softmax) target and
        ``K = 2`` for each output of a binary or multilabel (logistic) target.
        ``loss_``, ``loss_curve_`` and ``best_loss_`` are then the
        cross-entropy with the smoothed targets (as PyTorch and Keras report
        it; it does not reach 0); early stopping's validation score
        (accuracy) is unaffected.  0 is scikit-learn's loss, bit for bit.

    Attributes
    ----------
    classes_ : ndarray or list of ndarray
        Class labels of each output.{_COMMON_ATTRIBUTES}

    See Also
    --------
    BPRegressor : The regressor.
    sklearn.neural_network.MLPClassifier : The scikit-learn estimator this extends.

    Notes
    -----{_DIFFERENCES}

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skbp import BPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = make_pipeline(StandardScaler(), BPClassifier(hidden_layer_sizes=(16,),
    ...                     learning_rate_init=0.01, random_state=0)).fit(X, y)
    >>> clf.predict(X[:3])
    array([0, 0, 0])
    >>> bool(clf.score(X, y) > 0.95)
    True
    """

    def __init__(
        self, hidden_layer_sizes: int | Iterable[int] | str = (100,),
        activation: str | Sequence[str] = "relu", *, solver: str = "adam",
        alpha: float = 0.0001, batch_size: int | str = "auto", learning_rate: str = "constant",
        learning_rate_init: float = 0.001, power_t: float = 0.5, max_iter: int = 200,
        shuffle: bool = True, random_state: int | np.random.RandomState | None = None,
        tol: float = 1e-4, verbose: bool = False, warm_start: bool = False,
        momentum: float = 0.9, nesterovs_momentum: bool = True, early_stopping: bool = False,
        validation_fraction: float = 0.1,
        scoring: str | Callable[..., float] | None = None, beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8, n_iter_no_change: float = 10, max_fun: int = 15000,
        decay_rate: float = 0.95, dropout: float | Iterable[float] = 0.0,
        batch_norm: bool = False, residual: bool = False, l1_ratio: float = 0.0,
        max_grad_norm: float | None = None, class_weight: dict[Any, float] | str | None = None,
        label_smoothing: float = 0.0, n_jobs: int | None = None, weight_decay: float = 0.0,
        decay_biases: bool = False, min_learning_rate: float = 0.0, warmup_fraction: float = 0.1,
        n_cycles: int = 4, n_ensemble: int = 1, numeric_embedding: str | None = None,
        embedding_features: ArrayLike | None = None, n_frequencies: int = 16,
        embedding_dim: int = 16, frequency_scale: float = 0.1,
    ) -> None:  # fmt: skip
        self.class_weight = class_weight
        self.label_smoothing = label_smoothing
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            loss="log_loss", shuffle=shuffle, random_state=random_state, tol=tol,
            verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, scoring=scoring, beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            decay_rate=decay_rate, dropout=dropout, batch_norm=batch_norm,
            residual=residual, l1_ratio=l1_ratio, max_grad_norm=max_grad_norm,
            n_jobs=n_jobs, weight_decay=weight_decay, decay_biases=decay_biases,
            min_learning_rate=min_learning_rate, warmup_fraction=warmup_fraction,
            n_cycles=n_cycles, n_ensemble=n_ensemble, numeric_embedding=numeric_embedding,
            embedding_features=embedding_features, n_frequencies=n_frequencies,
            embedding_dim=embedding_dim, frequency_scale=frequency_scale,
        )  # fmt: skip

    def _validate_input(
        self, X: ArrayLike | sp.spmatrix | sp.sparray, y: ArrayLike, incremental: bool, reset: bool
    ) -> tuple[np.ndarray | sp.spmatrix | sp.sparray, np.ndarray]:
        X, y = validate_data(
            self, X, y, accept_sparse=["csr", "csc", "coo"], multi_output=True,
            dtype=(np.float64, np.float32), order="C", reset=reset,
        )  # fmt: skip
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = fitted_label_binarizer(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as "
                        f"in the previous call to fit. Previously got {self.classes_}, "
                        f"`y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has "
                    f"{self.classes_}. 'y' has {classes}."
                )
        return X, y

    def _validate_val_targets(self, y_val: ArrayLike) -> np.ndarray:
        y_val = _check_y(y_val, multi_output=True, estimator=self)
        if y_val.ndim == 2 and y_val.shape[1] == 1:
            y_val = column_or_1d(y_val, warn=True)
        if self._label_binarizer.y_type_ == "multilabel-indicator":
            n = len(self.classes_)
            if y_val.ndim != 2 or y_val.shape[1] != n or not np.isin(y_val, (0, 1)).all():
                raise ValueError(
                    f"y_val must be a multilabel indicator matrix of {n} columns of 0 and 1, "
                    f"as y was; got shape {y_val.shape}."
                )
            return y_val
        if y_val.ndim != 1:
            raise ValueError(
                f"y_val has shape {y_val.shape} where y was one column of class labels; "
                "give one label per validation row."
            )
        unseen = [c for c in unique_labels(y_val) if c not in set(self.classes_.tolist())]
        if unseen:
            raise ValueError(
                f"y_val has classes not in `self.classes_`, which the network has no output "
                f"for: {_brief(unseen)}. `self.classes_` has {self.classes_}. Drop those "
                "validation rows, or fit on data that has those classes."
            )
        return y_val

    _parameter_constraints: dict = {
        **BaseBP._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "label_smoothing": [Interval(numbers.Real, 0, 1, closed="left")],
    }

    def _class_sample_weight(
        self, y: np.ndarray, sample_weight: np.ndarray | None, incremental: bool
    ) -> np.ndarray | None:
        if self.class_weight is None:
            return sample_weight
        if incremental and self.class_weight == "balanced":
            raise ValueError(
                "class_weight='balanced' is not supported for partial_fit: the class "
                "frequencies of the whole stream are unknown. Use a dict of class "
                "weights, e.g. computed with sklearn.utils.class_weight."
                "compute_class_weight on a sample."
            )
        if isinstance(self.class_weight, dict):
            unknown = set(self.class_weight) - set(np.asarray(self.classes_).tolist())
            if unknown:
                raise ValueError(
                    f"class_weight names classes that are not in the data: {sorted(unknown)!r}"
                    f"; the classes are {list(self.classes_)!r}."
                )
            if self._label_binarizer.y_type_.startswith("multilabel"):
                raise ValueError(
                    "class_weight as a dict is not supported for multilabel targets; use "
                    "class_weight='balanced' or sample_weight."
                )
            # rows of classes missing from the dict (or from this batch) weigh 1
            cw = np.array([self.class_weight.get(label, 1.0) for label in y.tolist()])
        else:
            cw = compute_sample_weight(self.class_weight, y)
        if sample_weight is None:
            return cw.astype(np.float64)
        return sample_weight * cw.astype(sample_weight.dtype)

    def _encode_targets(self, y: np.ndarray, dtype: DTypeLike) -> np.ndarray:
        """One-hot (softmax) or 0/1 (logistic) targets, smoothed by ``label_smoothing``.

        Both output/loss pairs keep ``d loss / d z = p - y`` for smoothed targets
        (a softmax target still sums to 1), and the kernels' cross-entropy is
        written for any target in [0, 1], so nothing else changes.  Decoding a
        smoothed target (early stopping's labels) gives the same labels: with
        ``label_smoothing < 1`` the true class keeps the largest target.
        """
        Y = self._binarize(y, dtype)
        eps = self.label_smoothing
        if eps > 0:  # 0 leaves the targets untouched, bit for bit
            k = Y.shape[1] if self._output_activation() == "softmax" else 2
            Y = Y * (1.0 - eps) + eps / k
            Y = Y.astype(dtype, copy=False)
        return Y

    def _binarize(self, y: np.ndarray, dtype: DTypeLike) -> np.ndarray:
        lb = self._label_binarizer
        if (
            lb.y_type_ in ("binary", "multiclass") and not lb.sparse_output
            and lb.neg_label == 0 and lb.pos_label == 1 and y.ndim == 1 and y.shape[0]
        ):  # fmt: skip
            # LabelBinarizer.transform's result without its target-type checks
            # (which cost every fit again), for labels it knows
            classes = lb.classes_
            idx = np.minimum(np.searchsorted(classes, y), len(classes) - 1)
            if np.all(classes[idx] == y):
                if lb.y_type_ == "binary":
                    return (idx == 1).astype(dtype).reshape(-1, 1)
                Y = np.zeros((y.shape[0], len(classes)), dtype=dtype)
                Y[np.arange(y.shape[0]), idx] = 1
                return Y
        return lb.transform(y).astype(dtype)

    def _decode_targets(self, Y: np.ndarray) -> np.ndarray:
        return self._label_binarizer.inverse_transform(Y[:, 0] if Y.shape[1] == 1 else Y)

    def _output_activation(self) -> str:
        if self._label_binarizer.y_type_ == "multiclass":
            return "softmax"
        return "logistic"

    def _target_state_problems(self, state: dict[str, Any]) -> list[str]:
        """The label binarizer, ``classes_``, the outputs and their activation of a loaded state.

        ``predict`` reads the labels from the binarizer, so a ``classes_`` that
        disagrees with it, unsorted classes (the encoding searches them), a
        threshold other than 0.5 or an output activation of another target
        type would give wrong labels or probabilities without a word.
        """
        lb = state.get("_label_binarizer")
        if type(lb) is not LabelBinarizer:
            return [f"_label_binarizer is not a LabelBinarizer ({type(lb).__name__})"]
        settings = {k: getattr(lb, k, None) for k in ("neg_label", "pos_label", "sparse_output")}
        sparse_input = getattr(lb, "sparse_input_", None)
        if settings != {"neg_label": 0, "pos_label": 1, "sparse_output": False} or not (
            isinstance(sparse_input, (bool, np.bool_))
        ):
            return [
                f"the label binarizer's {settings} and sparse_input_={sparse_input!r} in "
                "_label_binarizer are not those of a fitted LabelBinarizer()"
            ]
        y_type, classes = getattr(lb, "y_type_", None), getattr(lb, "classes_", None)
        if y_type not in ("binary", "multiclass", "multilabel-indicator"):
            return [
                f"the label binarizer's target type y_type_={y_type!r} is not one a classifier fits"
            ]
        if not (_plain_array(classes) and _increasing(classes)):
            return [
                f"the label binarizer's classes_ {_brief(classes)} are not sorted unique labels"
            ]
        problems = []
        mine = state.get("classes_")
        if not (
            _plain_array(mine)
            and mine.shape == classes.shape
            and _label_kind(mine) == _label_kind(classes)
            and np.array_equal(mine, classes)
        ):
            problems.append(
                f"classes_={_brief(mine)} disagrees with the label binarizer's classes "
                f"{_brief(classes)}"
            )
        n = len(classes)
        n_out = {"binary": 1}.get(y_type, n)
        if (y_type == "binary" and n > 2) or (y_type == "multiclass" and n < 2):
            problems.append(f"{n} classes are not a {y_type} target (_label_binarizer)")
        if y_type == "multilabel-indicator" and not np.array_equal(classes, np.arange(n)):
            problems.append(f"the multilabel classes {_brief(classes)} are not 0, ..., {n - 1}")
        if state["n_outputs_"] != n_out:
            problems.append(
                f"n_outputs_={state['n_outputs_']} but a {y_type} target of {n} classes has {n_out}"
            )
        want = "softmax" if y_type == "multiclass" else "logistic"
        if state["out_activation_"] != want:
            problems.append(
                f"out_activation_={state['out_activation_']!r} but a {y_type} target needs {want!r}"
            )
        return problems

    def _labels_from_output(self, P: np.ndarray) -> np.ndarray:
        lb = self._label_binarizer
        if len(lb.classes_) == 1:
            # one class seen in training (LabelBinarizer encodes it as 0): it is
            # every prediction, as LabelBinarizer.inverse_transform says
            return np.repeat(lb.classes_, P.shape[0])
        if lb.y_type_ == "multiclass" and not lb.sparse_output:
            return lb.classes_.take(P.argmax(axis=1), mode="clip")
        if lb.y_type_ == "binary" and not lb.sparse_output and lb.neg_label == 0:
            # LabelBinarizer's threshold for binary outputs: (pos + neg) / 2
            return lb.classes_[(P.ravel() > lb.pos_label / 2.0).astype(int)]
        if self.n_outputs_ == 1:
            P = P.ravel()
        return lb.inverse_transform(P)

    _score_metric = staticmethod(accuracy_score)

    def _outputs_to_predictions(self, P: np.ndarray) -> np.ndarray:
        return self._labels_from_output(P)

    def predict(self, X: ArrayLike | sp.spmatrix | sp.sparray) -> np.ndarray:
        """Predict using the trained network.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_classes)
            The predicted classes.
        """
        self._check_fitted()
        return self._labels_from_output(self._forward_pass_fast(X))

    @available_if(lambda est: est._check_solver())
    @fits_alone
    @with_callbacks
    def partial_fit(
        self,
        X: ArrayLike | sp.spmatrix | sp.sparray,
        y: ArrayLike,
        sample_weight: ArrayLike | None = None,
        classes: ArrayLike | None = None,
    ) -> Self:
        """Update the model with one epoch over the given data.

        No validation data are taken here: ``partial_fit`` does not stop early
        (as scikit-learn's MLP, it refuses ``early_stopping=True``).  Score a
        stream's validation rows between calls, e.g. with ``score``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        classes : array of shape (n_classes,), default=None
            Classes across all calls to partial_fit; required on the first call.

        Returns
        -------
        self : object
            The updated estimator.
        """
        self._validate_params()
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_proba(self, X: ArrayLike | sp.spmatrix | sp.sparray) -> np.ndarray:
        """Probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y_prob : ndarray of shape (n_samples, n_classes)
            Probability of each class, in the order of ``classes_``.
        """
        self._check_fitted()
        y_pred = self._forward_pass_fast(X)
        if self.out_activation_ == "logistic":
            # A saturated sigmoid rounds to exactly 0 or 1; clip to the range the
            # loss uses, so probabilities stay strictly inside (0, 1) and
            # predict_log_proba stays finite.
            eps = np.finfo(y_pred.dtype).eps
            np.clip(y_pred, eps, 1 - eps, out=y_pred)
        if self.n_outputs_ == 1:
            proba = np.empty((y_pred.shape[0], 2), dtype=y_pred.dtype)
            proba[:, 1] = y_pred[:, 0]
            np.subtract(1, y_pred[:, 0], out=proba[:, 0])
            return proba
        return y_pred

    def predict_log_proba(self, X: ArrayLike | sp.spmatrix | sp.sparray) -> np.ndarray:
        """Logarithm of the probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        log_y_prob : ndarray of shape (n_samples, n_classes)
            ``log(predict_proba(X))``.
        """
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class BPRegressor(RegressorMixin, BaseBP):
    __doc__ = f"""Multilayer feed-forward network regressor trained by backpropagation.

    A drop-in superset of :class:`sklearn.neural_network.MLPRegressor`: same
    parameters, defaults and fitted attributes, with the training core compiled
    with Numba.  Single- and multi-output targets; sample weights; dense or
    sparse input.

    Parameters
    ----------
    loss : {{'squared_error', 'poisson'}}, default='squared_error'
        Half squared error with an identity output, or half Poisson deviance
        with an exponential output (log link; requires ``y >= 0``).
{_COMMON_PARAMS}

    Attributes
    ----------{_COMMON_ATTRIBUTES}

    See Also
    --------
    BPClassifier : The classifier.
    sklearn.neural_network.MLPRegressor : The scikit-learn estimator this extends.

    Notes
    -----{_DIFFERENCES}

    Examples
    --------
    >>> import numpy as np
    >>> from skbp import BPRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-1, 1, size=(300, 2))
    >>> y = X[:, 0] - 2 * X[:, 1]
    >>> reg = BPRegressor(hidden_layer_sizes=(16,), solver="lbfgs",
    ...                   random_state=0).fit(X, y)
    >>> bool(reg.score(X, y) > 0.99)
    True
    """

    _parameter_constraints: dict = {
        **BaseBP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(
        self, loss: str = "squared_error", hidden_layer_sizes: int | Iterable[int] | str = (100,),
        activation: str | Sequence[str] = "relu", *, solver: str = "adam",
        alpha: float = 0.0001, batch_size: int | str = "auto", learning_rate: str = "constant",
        learning_rate_init: float = 0.001, power_t: float = 0.5, max_iter: int = 200,
        shuffle: bool = True, random_state: int | np.random.RandomState | None = None,
        tol: float = 1e-4, verbose: bool = False, warm_start: bool = False,
        momentum: float = 0.9, nesterovs_momentum: bool = True, early_stopping: bool = False,
        validation_fraction: float = 0.1,
        scoring: str | Callable[..., float] | None = None, beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8, n_iter_no_change: float = 10, max_fun: int = 15000,
        decay_rate: float = 0.95, dropout: float | Iterable[float] = 0.0,
        batch_norm: bool = False, residual: bool = False, l1_ratio: float = 0.0,
        max_grad_norm: float | None = None, n_jobs: int | None = None,
        weight_decay: float = 0.0, decay_biases: bool = False, min_learning_rate: float = 0.0,
        warmup_fraction: float = 0.1, n_cycles: int = 4, n_ensemble: int = 1,
        numeric_embedding: str | None = None, embedding_features: ArrayLike | None = None,
        n_frequencies: int = 16, embedding_dim: int = 16, frequency_scale: float = 0.1,
    ) -> None:  # fmt: skip
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            loss=loss, shuffle=shuffle, random_state=random_state, tol=tol,
            verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, scoring=scoring, beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            decay_rate=decay_rate, dropout=dropout, batch_norm=batch_norm,
            residual=residual, l1_ratio=l1_ratio, max_grad_norm=max_grad_norm,
            n_jobs=n_jobs, weight_decay=weight_decay, decay_biases=decay_biases,
            min_learning_rate=min_learning_rate, warmup_fraction=warmup_fraction,
            n_cycles=n_cycles, n_ensemble=n_ensemble, numeric_embedding=numeric_embedding,
            embedding_features=embedding_features, n_frequencies=n_frequencies,
            embedding_dim=embedding_dim, frequency_scale=frequency_scale,
        )  # fmt: skip

    def _validate_input(
        self, X: ArrayLike | sp.spmatrix | sp.sparray, y: ArrayLike, incremental: bool, reset: bool
    ) -> tuple[np.ndarray | sp.spmatrix | sp.sparray, np.ndarray]:
        X, y = validate_data(
            self, X, y, accept_sparse=["csr", "csc", "coo"], multi_output=True,
            y_numeric=True, dtype=(np.float64, np.float32), order="C", reset=reset,
        )  # fmt: skip
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError(
                "Some value(s) of y are negative which is not allowed for loss='poisson'."
            )
        return X, y

    def _validate_val_targets(self, y_val: ArrayLike) -> np.ndarray:
        y_val = _check_y(y_val, multi_output=True, y_numeric=True, estimator=self)
        if y_val.ndim == 2 and y_val.shape[1] == 1:
            y_val = column_or_1d(y_val, warn=True)
        if self.loss == "poisson" and np.any(y_val < 0):
            raise ValueError(
                "Some value(s) of y_val are negative which is not allowed for loss='poisson'."
            )
        return y_val

    def _encode_targets(self, y: np.ndarray, dtype: DTypeLike) -> np.ndarray:
        return np.asarray(y, dtype=dtype).reshape(y.shape[0], -1)

    def _decode_targets(self, Y: np.ndarray) -> np.ndarray:
        return Y.ravel() if Y.shape[1] == 1 else Y

    def _output_activation(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def _target_state_problems(self, state: dict[str, Any]) -> list[str]:
        """The loss and the output activation of a loaded state: one implies the other."""
        loss = state.get("loss")
        if not (isinstance(loss, str) and loss in ("squared_error", "poisson")):
            return [f"loss={_brief(loss)} is not 'squared_error' or 'poisson'"]
        want = "exp" if loss == "poisson" else "identity"
        if state["out_activation_"] != want:
            return [
                f"out_activation_={state['out_activation_']!r} but loss={loss!r} needs {want!r}"
            ]
        return []

    _score_metric = staticmethod(r2_score)

    def _outputs_to_predictions(self, P: np.ndarray) -> np.ndarray:
        return self._decode_targets(P)

    def predict(self, X: ArrayLike | sp.spmatrix | sp.sparray) -> np.ndarray:
        """Predict using the trained network.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predicted values.
        """
        self._check_fitted()
        return self._decode_targets(self._forward_pass_fast(X))

    @available_if(lambda est: est._check_solver())
    @fits_alone
    @with_callbacks
    def partial_fit(
        self,
        X: ArrayLike | sp.spmatrix | sp.sparray,
        y: ArrayLike,
        sample_weight: ArrayLike | None = None,
    ) -> Self:
        """Update the model with one epoch over the given data.

        No validation data are taken here: ``partial_fit`` does not stop early
        (as scikit-learn's MLP, it refuses ``early_stopping=True``).  Score a
        stream's validation rows between calls, e.g. with ``score``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        self : object
            The updated estimator.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)


def _increasing(a: np.ndarray) -> bool:
    """Whether ``a`` is non-empty and strictly increasing (sorted unique labels)."""
    if a.shape[0] == 0:
        return False
    try:
        return bool(np.all(a[1:] > a[:-1]))
    except TypeError:  # labels that do not compare
        return False


def _label_kind(a: np.ndarray) -> str:
    """What kind of labels ``a`` holds: integers of any width alike."""
    return "i" if a.dtype.kind in "iu" else a.dtype.kind
