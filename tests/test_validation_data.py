"""Validation data given to ``fit`` (``X_val``, ``y_val``, ``sample_weight_val``) and ``scoring``.

The validation loss is checked against a NumPy computation from the model's
own predictions at every epoch (a scorer is called with the model as it stands
after each epoch), the kept weights against the best epoch, and the
arguments, their routing through ``Pipeline``/``GridSearchCV`` and their errors
against ``HistGradientBoostingClassifier.fit``.
"""

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn
from scipy.special import xlogy
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skbp import BPClassifier, BPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(n_classes=3, n=240, seed=0):
    """Noisy rows that a wide network overfits: its validation loss rises again."""
    X, y = make_classification(
        n_samples=n, n_features=6, n_informative=4, n_classes=n_classes, flip_y=0.2,
        random_state=seed,
    )  # fmt: skip
    return X[:160], y[:160], X[160:], y[160:]


def _reference_loss(est, X, y, sample_weight=None):
    """The weighted mean data loss of ``est``'s predictions, in NumPy."""
    w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, float)
    if isinstance(est, BPClassifier):
        eps = np.finfo(est._w.dtype).eps
        proba = est.predict_proba(X).astype(np.float64)
        if est.out_activation_ == "logistic" and est.n_outputs_ > 1:  # multilabel
            P = np.clip(proba, eps, 1 - eps)
            per_row = -(xlogy(y, P) + xlogy(1 - y, 1 - P)).sum(axis=1)
        else:
            idx = np.searchsorted(est.classes_, y)
            per_row = -np.log(np.clip(proba[np.arange(len(y)), idx], eps, 1 - eps))
    else:
        pred = est.predict(X).astype(np.float64).reshape(len(X), -1)
        Y = np.asarray(y, float).reshape(len(X), -1)
        if est.loss == "poisson":
            per_row = (pred - Y + xlogy(Y, Y / pred)).sum(axis=1)
        else:
            per_row = 0.5 * ((pred - Y) ** 2).sum(axis=1)
    return float(np.dot(w, per_row) / w.sum())


class LossScorer:
    """A scorer that records minus the NumPy loss of the model as it stands."""

    def __init__(self):
        self.losses, self.calls = [], []

    def __call__(self, est, X, y, sample_weight=None):
        self.calls.append((type(X), len(X), sample_weight is not None))
        self.losses.append(_reference_loss(est, X, y, sample_weight))
        return -self.losses[-1]


def _cases():
    X, y, Xv, yv = _data()
    _, yb, _, yvb = _data(n_classes=2)
    rng = np.random.RandomState(0)
    Y2 = np.column_stack([X[:, 0] + X[:, 1], X[:, 2]])
    Y2v = np.column_stack([Xv[:, 0] + Xv[:, 1], Xv[:, 2]])
    yml = np.column_stack([y == 0, X[:, 0] > 0]).astype(int)
    yvml = np.column_stack([yv == 0, Xv[:, 0] > 0]).astype(int)
    sw = rng.uniform(0.2, 2.0, size=len(Xv))
    return {
        "multiclass": (BPClassifier, {}, X, y, Xv, yv, sw),
        "binary": (BPClassifier, {}, X, yb, Xv, yvb, None),
        "multilabel": (BPClassifier, {}, X, yml, Xv, yvml, sw),
        "regression_two_outputs": (BPRegressor, {}, X, Y2, Xv, Y2v, sw),
        "poisson": (BPRegressor, {"loss": "poisson"}, X, np.exp(X[:, 0] / 2), Xv,
                    np.exp(Xv[:, 0] / 2), None),
    }  # fmt: skip


CASES = _cases()


@pytest.mark.parametrize("case", list(CASES))
def test_validation_loss_of_every_epoch_and_the_best_epoch_kept(case):
    cls, kw, X, y, Xv, yv, sw = CASES[case]
    scorer = LossScorer()
    est = cls(
        hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=25, early_stopping=True,
        n_iter_no_change=np.inf, scoring=scorer, random_state=0, **kw,
    ).fit(X, y, X_val=Xv, y_val=yv, sample_weight_val=sw)  # fmt: skip
    # the scorer saw the model after every epoch, with the given rows and weights
    assert est.n_iter_ == 25 == len(scorer.losses) == len(est.validation_loss_curve_)
    assert scorer.calls == [(np.ndarray, len(Xv), sw is not None)] * 25
    np.testing.assert_allclose(est.validation_loss_curve_, scorer.losses, rtol=1e-10)
    assert est.validation_scores_ == [-v for v in scorer.losses]
    # the model returned is the best epoch's, not the last one's
    best = min(est.validation_loss_curve_)
    assert _reference_loss(est, Xv, yv, sw) == pytest.approx(best, rel=1e-10)
    assert est.best_validation_score_ == -best
    assert len(est.loss_curve_) == 25  # the training loss is recorded as before


def test_scoring_loss_stops_and_restores_on_the_validation_loss():
    X, y, Xv, yv = _data()
    est = BPClassifier(
        hidden_layer_sizes=(64,), learning_rate_init=0.03, max_iter=200, early_stopping=True,
        n_iter_no_change=5, scoring="loss", random_state=0,
    ).fit(X, y, X_val=Xv, y_val=yv)  # fmt: skip
    curve = est.validation_loss_curve_
    assert est.validation_scores_ == [-v for v in curve]
    best = int(np.argmin(curve))
    # it overfits: the best epoch is not the last, and training stopped 6 epochs after it
    assert best < len(curve) - 1 and est.n_iter_ == best + 7 < 200
    assert _reference_loss(est, Xv, yv) == pytest.approx(curve[best], rel=1e-10)


def test_given_rows_replace_the_held_out_fraction():
    X, y, Xv, yv = _data()
    est = BPClassifier(
        hidden_layer_sizes=(8,), learning_rate_init=0.01, max_iter=10, early_stopping=True,
        n_iter_no_change=np.inf, validation_fraction=0.5, random_state=0,
    )  # fmt: skip
    est.fit(X, y, X_val=Xv, y_val=yv)
    assert est.t_ == 10 * len(X)  # every training row trained on
    # scoring=None: the estimator's score (accuracy) of the given rows
    assert est.score(Xv, yv) == est.best_validation_score_ == max(est.validation_scores_)
    est.fit(X, y)
    assert est.t_ == 10 * (len(X) // 2)  # half held out
    assert len(est.validation_loss_curve_) == 10  # recorded on the held-out rows too


@pytest.mark.parametrize(
    ("cls", "name"), [(BPClassifier, "accuracy"), (BPRegressor, "r2")]
)  # fmt: skip
def test_default_scoring_is_the_estimators_score(cls, name):
    # scoring=None keeps scikit-learn MLP's early stopping: accuracy / R² of the
    # held-out fraction, the same numbers as the scorer of that name
    X, y, _, _ = _data()
    y = y if cls is BPClassifier else X[:, 0] - X[:, 1]
    kw = dict(hidden_layer_sizes=(8,), max_iter=15, early_stopping=True, random_state=0)
    a = cls(**kw).fit(X, y, sample_weight=np.linspace(0.5, 2, len(X)))
    b = cls(scoring=name, **kw).fit(X, y, sample_weight=np.linspace(0.5, 2, len(X)))
    assert a.validation_scores_ == b.validation_scores_
    np.testing.assert_array_equal(a._w, b._w)
    assert a.validation_loss_curve_ == b.validation_loss_curve_


def test_custom_scorer_on_held_out_dataframe_rows_sees_the_column_names():
    pd = pytest.importorskip("pandas")
    X, y, _, _ = _data()
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    scorer = LossScorer()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X does not have valid feature names"
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = BPClassifier(
            hidden_layer_sizes=(8,), max_iter=4, early_stopping=True, scoring=scorer,
            class_weight="balanced", random_state=0,
        ).fit(df, y)  # fmt: skip
    # the held-out rows as the user gave them, weighted by their class weights
    assert scorer.calls == [(pd.DataFrame, 16, True)] * 4
    np.testing.assert_allclose(est.validation_loss_curve_, [-s for s in est.validation_scores_])


def test_scorer_by_name():
    X, y, Xv, yv = _data(n_classes=2)
    est = BPClassifier(
        hidden_layer_sizes=(8,), max_iter=6, early_stopping=True, scoring="roc_auc",
        random_state=0,
    ).fit(X, y, X_val=Xv, y_val=yv)  # fmt: skip
    from sklearn.metrics import roc_auc_score

    assert est.best_validation_score_ == max(est.validation_scores_)
    assert roc_auc_score(yv, est.predict_proba(Xv)[:, 1]) == est.best_validation_score_


@pytest.mark.parametrize("batch_norm", [False, True])
def test_lbfgs_records_the_validation_loss_of_every_iteration(batch_norm):
    X, y, Xv, yv = _data()
    est = BPClassifier(
        hidden_layer_sizes=(16,), solver="lbfgs", max_iter=15, batch_norm=batch_norm,
        random_state=0,
    ).fit(X, y, X_val=Xv, y_val=yv)  # fmt: skip
    curve = est.validation_loss_curve_
    assert len(curve) == est.n_iter_ == 15
    # nothing is restored: the last entry is the returned model's loss (with
    # batch norm, the running statistics are the training set's at every entry)
    assert _reference_loss(est, Xv, yv) == pytest.approx(curve[-1], rel=1e-10)
    assert not hasattr(est, "validation_scores_")  # as scikit-learn's lbfgs
    refit = BPClassifier(
        hidden_layer_sizes=(16,), solver="lbfgs", max_iter=15, batch_norm=batch_norm,
        random_state=0,
    ).fit(X, y)  # fmt: skip
    np.testing.assert_array_equal(refit._w, est._w)  # the scoring changes nothing
    assert refit.validation_loss_curve_ is None


def test_float32_and_sparse_validation_rows():
    X, y, Xv, yv = _data()
    kw = dict(
        hidden_layer_sizes=(8,), max_iter=5, early_stopping=True, scoring="loss", random_state=0
    )
    X32 = X.astype(np.float32)
    dense = BPClassifier(**kw).fit(X32, y, X_val=Xv, y_val=yv)  # float64 rows, float32 model
    assert dense._w.dtype == np.float32
    # the loss of the float32 model's float32 outputs
    assert _reference_loss(dense, Xv.astype(np.float32), yv) == pytest.approx(
        min(dense.validation_loss_curve_), rel=1e-6
    )
    sparse = BPClassifier(**kw).fit(X32, y, X_val=sp.csr_matrix(Xv), y_val=yv)
    np.testing.assert_allclose(sparse.validation_loss_curve_, dense.validation_loss_curve_)
    assert sparse.validation_scores_ == dense.validation_scores_


def _errors():
    X, y, Xv, yv = _data()
    es = dict(early_stopping=True, max_iter=2)
    return {
        "y_val_alone": (es, dict(y_val=yv), "y_val is provided, but X_val was not"),
        "X_val_alone": (es, dict(X_val=Xv), "X_val is provided, but y_val was not"),
        "weights_alone": (es, dict(sample_weight_val=np.ones(len(Xv))), "sample_weight_val"),
        "early_stopping_off": ({"max_iter": 2}, dict(X_val=Xv, y_val=yv), "early_stopping is"),
        "unseen_class": (es, dict(X_val=Xv, y_val=np.where(yv == 2, 7, yv)), "y_val has classes"),
        "width": (es, dict(X_val=Xv[:, :4], y_val=yv), "X has 4 features, but BPClassifier"),
        "rows": (es, dict(X_val=Xv, y_val=yv[:-1]), "X_val has 80 rows but y_val has 79"),
        "two_columns": (es, dict(X_val=Xv, y_val=np.column_stack([yv, yv])), "y_val has shape"),
        "weights_zero": (es, dict(X_val=Xv, y_val=yv, sample_weight_val=np.zeros(len(Xv))),
                         "sample_weight_val must have a positive sum"),
        "scoring_unknown": ({**es, "scoring": "acuracy"}, {}, "scoring='acuracy' is not a"),
        "scoring_type": ({**es, "scoring": 3}, {}, "'scoring' parameter"),
    }  # fmt: skip


ERRORS = _errors()


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors(case):
    X, y, _, _ = _data()
    params, fit_kw, match = ERRORS[case]
    with pytest.raises(ValueError, match=match):
        BPClassifier((4,), random_state=0, **params).fit(X, y, **fit_kw)


def test_errors_of_the_regressor_and_feature_names():
    X, y, Xv, yv = _data()
    reg = BPRegressor(hidden_layer_sizes=(4,), early_stopping=True, max_iter=2)
    with pytest.raises(ValueError, match="y_val has 2 output"):
        reg.fit(X, X[:, 0], X_val=Xv, y_val=Xv[:, :2])
    with pytest.raises(ValueError, match="y_val are negative"):
        reg.set_params(loss="poisson").fit(X, np.abs(X[:, 0]), X_val=Xv, y_val=-np.abs(Xv[:, 0]))
    pd = pytest.importorskip("pandas")
    cols = [f"f{i}" for i in range(X.shape[1])]
    clf = BPClassifier((4,), early_stopping=True, max_iter=2)
    with pytest.raises(ValueError, match="feature names"):
        clf.fit(pd.DataFrame(X, columns=cols), y, X_val=pd.DataFrame(Xv, columns=cols[::-1]),
                y_val=yv)  # fmt: skip


def test_partial_fit_takes_no_validation_data():
    X, y, Xv, yv = _data()
    with pytest.raises(TypeError, match="X_val"):
        BPClassifier((4,)).partial_fit(X, y, classes=[0, 1, 2], X_val=Xv, y_val=yv)


@pytest.mark.parametrize("first", [False, True])
def test_warm_start_may_switch_early_stopping(first):
    # the books of the rule the second fit follows begin there (they were
    # None, and the fit failed on them)
    X, y, Xv, yv = _data()
    est = BPClassifier((8,), max_iter=3, early_stopping=first, random_state=0).fit(X, y)
    est.set_params(early_stopping=not first, warm_start=True)
    fit_kw = {} if first else dict(X_val=Xv, y_val=yv)
    est.fit(X, y, **fit_kw)
    assert est.n_iter_ == 3 and len(est.loss_curve_) == 6
    if first:
        assert est.best_loss_ == min(est.loss_curve_[3:])
    else:
        assert len(est.validation_scores_) == 3 == len(est.validation_loss_curve_)
    pickle.loads(pickle.dumps(est))  # and the model is a consistent one


def _pipeline():
    clf = BPClassifier(
        (8,), max_iter=6, early_stopping=True, scoring="loss", random_state=0
    ).set_fit_request(X_val=True, y_val=True)  # fmt: skip
    return Pipeline([("scale", StandardScaler()), ("clf", clf)], transform_input=["X_val"])


def test_routing_through_pipeline_and_grid_search():
    X, y, Xv, yv = _data()
    X, Xv = 10 * X + 3, 10 * Xv + 3  # the scaling matters
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = _pipeline().fit(X, y, X_val=Xv, y_val=yv)
        scaler = StandardScaler().fit(X)
        alone = BPClassifier((8,), max_iter=6, early_stopping=True, scoring="loss", random_state=0)
        alone.fit(scaler.transform(X), y, X_val=scaler.transform(Xv), y_val=yv)
        assert pipe[-1].validation_loss_curve_ == alone.validation_loss_curve_
        seen = []

        def scorer(est, X, y):  # (a function: the search's clones share it)
            seen.append(len(X))
            return -_reference_loss(est, X, y)

        search = GridSearchCV(
            _pipeline().set_params(clf__scoring=scorer), {"clf__alpha": [1e-4, 1e-2]}, cv=2
        ).fit(X, y, X_val=Xv, y_val=yv)  # fmt: skip
    # every fit of the search (2 x 2 and the refit, 6 epochs each) scored the given rows
    assert seen == [len(Xv)] * 30
    best = search.best_estimator_[-1]
    alone.set_params(alpha=best.alpha, scoring="loss").fit(
        scaler.transform(X), y, X_val=scaler.transform(Xv), y_val=yv
    )
    np.testing.assert_allclose(best.validation_loss_curve_, alone.validation_loss_curve_)
    assert accuracy_score(yv, search.predict(Xv)) == accuracy_score(
        yv, alone.predict(scaler.transform(Xv))
    )


def test_fit_request_names_those_of_hist_gradient_boosting():
    from sklearn.ensemble import HistGradientBoostingClassifier

    theirs = HistGradientBoostingClassifier().get_metadata_routing().fit.requests
    with sklearn.config_context(enable_metadata_routing=True):
        for cls in (BPClassifier, BPRegressor):
            ours = cls().set_fit_request(X_val=True, y_val=True, sample_weight_val=True)
            routed = ours.get_metadata_routing().fit.requests
            assert set(routed) == set(theirs)
            assert routed["X_val"] and routed["y_val"] and routed["sample_weight_val"]


def test_callbacks_see_the_validation_loss_curve():
    pytest.importorskip("sklearn.callback")

    class Curves:
        def __init__(self):
            self.curves = []

        def setup(self, estimator, context):
            pass

        def teardown(self, estimator, context):
            pass

        def on_fit_task_begin(self, estimator, context, **kwargs):
            pass

        def on_fit_task_end(self, estimator, context, *, fitted_estimator=None, **kwargs):
            if context.parent is not None and fitted_estimator is not None:
                self.curves.append(list(fitted_estimator.validation_loss_curve_))
            return False

    X, y, Xv, yv = _data()
    for solver in ("adam", "lbfgs"):
        rec = Curves()
        est = BPClassifier((8,), solver=solver, max_iter=4, early_stopping=True, random_state=0)
        est.set_callbacks(rec).fit(X, y, X_val=Xv, y_val=yv)
        assert rec.curves == [est.validation_loss_curve_[: k + 1] for k in range(4)]
