"""Estimator behaviour: determinism (dropout masks included), partial_fit, dtypes,
sparse input, targets, sample and class weights, the L1 penalty, warm start,
persistence, early stopping, learning-rate schedules, ``batch_size='full'``,
``hidden_layer_sizes='auto'``, gradient clipping, accuracy targets and use inside
scikit-learn's meta-estimators."""

import copy
import io
import math
import pickle
import warnings

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from conftest import exploding_data, fit_recording, np_forward, reg_data, toolkit_classifier
from sklearn.datasets import (
    load_diabetes,
    load_digits,
    load_iris,
    make_classification,
    make_regression,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from skbp import BPClassifier, BPRegressor
from skbp._base import BaseBP
from skbp._layout import Layout
from skbp.exceptions import DivergenceWarning

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def clf_data(n=120, n_classes=3, seed=0):
    X, y = make_classification(
        n_samples=n, n_features=6, n_informative=4, n_classes=n_classes, random_state=seed
    )
    return X, y


def params_of(est):
    return [a.copy() for a in est.coefs_ + est.intercepts_]


def assert_params_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def assert_params_close(a, b, rtol, atol=0.0):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


# ----------------------------------------------------------------------------
# Determinism
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("cls", [BPClassifier, BPRegressor])
def test_same_random_state_gives_bit_identical_fits(cls, solver):
    X, y = clf_data() if cls is BPClassifier else reg_data()
    kw = dict(
        hidden_layer_sizes=(8, 4),
        solver=solver,
        shuffle=True,
        random_state=7,
        max_iter=15,
        batch_size=16,
    )
    est = cls(**kw).fit(X, y)
    first = params_of(est)
    est.fit(X, y)  # a second fit of the same object
    assert_params_equal(first, params_of(est))
    assert_params_equal(first, params_of(cls(**kw).fit(X, y)))  # a new object
    # a RandomState instance seeded alike draws alike too
    other = cls(**{**kw, "random_state": np.random.RandomState(7)}).fit(X, y)
    assert_params_equal(first, params_of(other))
    if solver != "lbfgs":
        # the seed does matter: a different one gives a different fit
        assert not np.array_equal(first[0], cls(**{**kw, "random_state": 8}).fit(X, y).coefs_[0])


def test_shuffle_changes_the_trajectory():
    X, y = clf_data()
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", random_state=0, max_iter=3, batch_size=10)
    a = BPClassifier(shuffle=True, **kw).fit(X, y)
    b = BPClassifier(shuffle=False, **kw).fit(X, y)
    assert not np.allclose(a.coefs_[0], b.coefs_[0])


def test_dropout_is_applied_in_training(toolkit_iris):
    X, y, b = toolkit_iris
    a = toolkit_classifier(dropout=0.0).fit(X, y)
    assert not np.allclose(a.coefs_[0], b.coefs_[0])


def test_dropout_masks_come_from_random_state():
    X, y = load_iris(return_X_y=True)
    a = toolkit_classifier(random_state=3).fit(X, y)
    b = toolkit_classifier(random_state=3).fit(X, y)
    for u, v in zip(a.coefs_ + a.bn_running_means_, b.coefs_ + b.bn_running_means_, strict=True):
        np.testing.assert_array_equal(u, v)
    c = toolkit_classifier(random_state=4).fit(X, y)
    assert not np.allclose(a.coefs_[1], c.coefs_[1])
    # from the same weights without shuffling, random_state only drives the masks
    start = toolkit_classifier(shuffle=False, max_iter=1).fit(X, y)

    def go_on(random_state, **kw):
        est = copy.deepcopy(start).set_params(warm_start=True, random_state=random_state, **kw)
        return est.fit(X, y).coefs_[0]

    np.testing.assert_array_equal(go_on(3), go_on(3))
    assert not np.allclose(go_on(3), go_on(4))
    np.testing.assert_array_equal(go_on(3, dropout=0.0), go_on(4, dropout=0.0))


# ----------------------------------------------------------------------------
# partial_fit
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("cls", [BPClassifier, BPRegressor])
def test_partial_fit_chunks_equal_one_fit_epoch(cls, solver):
    X, y = clf_data(n=120) if cls is BPClassifier else reg_data(n=120)
    batch = 20
    kw = dict(
        hidden_layer_sizes=(7,),
        solver=solver,
        random_state=3,
        batch_size=batch,
        learning_rate_init=0.02,
        alpha=1e-3,
    )
    full = cls(shuffle=False, max_iter=1, **kw).fit(X, y)
    inc = cls(shuffle=False, **kw)
    for start in range(0, X.shape[0], batch):
        sl = slice(start, start + batch)
        if cls is BPClassifier:
            inc.partial_fit(X[sl], y[sl], classes=np.unique(y))
        else:
            inc.partial_fit(X[sl], y[sl])
    assert_params_close(params_of(full), params_of(inc), rtol=1e-12, atol=1e-14)
    assert inc.t_ == full.t_ == X.shape[0]


def test_partial_fit_keeps_optimizer_state_across_calls():
    # two partial_fit calls on the same data equal a fit of two epochs
    X, y = reg_data(n=60)
    kw = dict(
        hidden_layer_sizes=(5,),
        solver="adam",
        random_state=0,
        batch_size=60,
        shuffle=False,
        learning_rate_init=0.05,
    )
    two = BPRegressor(max_iter=2, **kw).fit(X, y)
    inc = BPRegressor(**kw)
    inc.partial_fit(X, y)
    inc.partial_fit(X, y)
    assert_params_close(params_of(two), params_of(inc), rtol=1e-12, atol=1e-14)
    assert inc.n_iter_ == 1
    assert len(inc.loss_curve_) == 2
    np.testing.assert_allclose(inc.loss_curve_, two.loss_curve_, rtol=1e-12)


def test_partial_fit_classifier_with_subset_of_classes():
    X, y = clf_data(n=90)
    clf = BPClassifier(hidden_layer_sizes=(5,), random_state=0)
    mask = y != 2
    clf.partial_fit(X[mask], y[mask], classes=[0, 1, 2])
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    assert clf.predict_proba(X).shape == (90, 3)
    clf.partial_fit(X, y)
    assert set(clf.predict(X)) <= {0, 1, 2}


# ----------------------------------------------------------------------------
# dtypes
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["adam", "lbfgs", "sgd"])
def test_float32_in_float32_out(solver):
    X, y = clf_data()
    X32 = X.astype(np.float32)
    clf = BPClassifier(hidden_layer_sizes=(6,), solver=solver, random_state=0, max_iter=20)
    clf.fit(X32, y)
    for a in clf.coefs_ + clf.intercepts_:
        assert a.dtype == np.float32
    assert clf.predict_proba(X32).dtype == np.float32
    assert clf.predict_log_proba(X32).dtype == np.float32
    # binary: the two-column stacking keeps float32 too
    clf2 = BPClassifier(hidden_layer_sizes=(6,), solver=solver, random_state=0, max_iter=20)
    clf2.fit(X32, (y > 0).astype(int))
    assert clf2.predict_proba(X32).dtype == np.float32
    Xr, yr = reg_data()
    reg = BPRegressor(hidden_layer_sizes=(6,), solver=solver, random_state=0, max_iter=20)
    reg.fit(Xr.astype(np.float32), yr.astype(np.float32))
    for a in reg.coefs_ + reg.intercepts_:
        assert a.dtype == np.float32
    pred = reg.predict(Xr.astype(np.float32))
    assert pred.dtype == np.float32
    # float32 training follows float64 training closely
    reg64 = BPRegressor(hidden_layer_sizes=(6,), solver=solver, random_state=0, max_iter=20)
    reg64.fit(Xr, yr)
    np.testing.assert_allclose(pred, reg64.predict(Xr), rtol=0, atol=5e-2)


def test_float64_stays_float64_and_ints_become_float64():
    X, y = clf_data()
    for Xin in (X, np.round(X * 10).astype(np.int64)):
        clf = BPClassifier(hidden_layer_sizes=(6,), random_state=0, max_iter=5).fit(Xin, y)
        for a in clf.coefs_ + clf.intercepts_:
            assert a.dtype == np.float64
        assert clf.predict_proba(Xin).dtype == np.float64
    Xr, yr = reg_data()
    reg = BPRegressor(hidden_layer_sizes=(6,), random_state=0, max_iter=5).fit(Xr, yr)
    assert reg.predict(Xr).dtype == np.float64
    assert reg.predict(Xr.astype(np.float32)).dtype == np.float64


def test_partial_fit_keeps_dtype_of_first_call():
    X, y = reg_data()
    reg = BPRegressor(hidden_layer_sizes=(4,), random_state=0)
    reg.partial_fit(X.astype(np.float32), y)
    reg.partial_fit(X, y)  # float64 data continue the float32 model
    assert reg.coefs_[0].dtype == np.float32
    assert reg.predict(X).dtype == np.float32


def test_float32_with_batch_norm_dropout_residual(toolkit_iris):
    X, y, est64 = toolkit_iris
    est = toolkit_classifier().fit(X.astype(np.float32), y)
    for name in BaseBP._VIEWS:  # every fitted parameter list
        assert all(a.dtype == np.float32 for a in getattr(est, name)), name
    assert est.predict_proba(X.astype(np.float32)).dtype == np.float32
    assert est.predict_proba(X).dtype == np.float32
    assert est.score(X, y) > 0.7
    assert est64.coefs_[0].dtype == np.float64
    np.testing.assert_allclose(est.predict_proba(X), est64.predict_proba(X), atol=2e-2)


# ----------------------------------------------------------------------------
# Sparse input
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_sparse_input_gives_same_weights_as_dense(solver, fmt):
    X, y = clf_data()
    X[np.abs(X) < 0.7] = 0.0
    Xs = sp.csr_matrix(X).asformat(fmt)
    kw = dict(hidden_layer_sizes=(6,), solver=solver, random_state=0, max_iter=15, batch_size=24)
    dense = BPClassifier(**kw).fit(X, y)
    sparse = BPClassifier(**kw).fit(Xs, y)
    assert_params_close(params_of(dense), params_of(sparse), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(sparse.predict_proba(Xs), dense.predict_proba(X), rtol=1e-7)
    Xr, yr = reg_data()
    Xr[np.abs(Xr) < 0.7] = 0.0
    dense = BPRegressor(**kw).fit(Xr, yr)
    sparse = BPRegressor(**kw).fit(sp.csr_matrix(Xr).asformat(fmt), yr)
    assert_params_close(params_of(dense), params_of(sparse), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(sparse.predict(sp.csr_matrix(Xr)), dense.predict(Xr), rtol=1e-7)


def test_sparse_float32_and_early_stopping():
    X, y = clf_data(n=150)
    X[np.abs(X) < 0.5] = 0.0
    Xs = sp.csr_matrix(X, dtype=np.float32)
    kw = dict(hidden_layer_sizes=(6,), random_state=0, max_iter=20, early_stopping=True)
    a = BPClassifier(**kw).fit(Xs, y)
    b = BPClassifier(**kw).fit(X.astype(np.float32), y)
    assert a.coefs_[0].dtype == np.float32
    np.testing.assert_allclose(a.validation_scores_, b.validation_scores_)
    assert_params_close(params_of(a), params_of(b), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls", [BPClassifier, BPRegressor])
def test_sparse_equals_dense_with_toolkit_options(cls):
    X, y = load_iris(return_X_y=True)
    if cls is BPRegressor:
        y = X[:, 3] + 0.5 * X[:, 0]
    X = X.copy()
    X[np.random.RandomState(0).uniform(size=X.shape) < 0.3] = 0.0
    params = dict(
        hidden_layer_sizes=(6, 6),
        batch_norm=True,
        dropout=0.25,
        residual=True,
        max_iter=10,
        batch_size=32,
        random_state=0,
    )
    dense = cls(**params).fit(X, y)
    csr = cls(**params).fit(sp.csr_matrix(X), y)
    for name in ("coefs_", "intercepts_", "bn_scales_", "bn_running_means_", "bn_running_vars_"):
        for u, v in zip(getattr(dense, name), getattr(csr, name), strict=True):
            np.testing.assert_allclose(u, v, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(
        csr.predict(sp.csr_matrix(X)), dense.predict(X), rtol=1e-7, atol=1e-9
    )


# ----------------------------------------------------------------------------
# Targets
# ----------------------------------------------------------------------------


def test_string_labels():
    X, y = clf_data(n=150)
    names = np.array(["cat", "dog", "eel"])[y]
    clf = BPClassifier(hidden_layer_sizes=(16,), solver="lbfgs", random_state=0, max_iter=60)
    clf.fit(X, names)
    np.testing.assert_array_equal(clf.classes_, ["cat", "dog", "eel"])
    pred = clf.predict(X)
    assert pred.dtype.kind == "U" and set(pred) <= {"cat", "dog", "eel"}
    assert accuracy_score(names, pred) > 0.9
    # predicted label is the arg-max of predict_proba in classes_ order
    np.testing.assert_array_equal(pred, clf.classes_[clf.predict_proba(X).argmax(axis=1)])
    # binary string labels
    clf.fit(X, np.where(y == 0, "no", "yes"))
    np.testing.assert_array_equal(clf.classes_, ["no", "yes"])
    assert set(clf.predict(X)) <= {"no", "yes"}
    assert clf.predict_proba(X).shape == (150, 2)


def test_multilabel():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 4))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] < 0.5]).astype(int)
    clf = BPClassifier(hidden_layer_sizes=(16,), solver="lbfgs", random_state=0, max_iter=300)
    clf.fit(X, Y)
    assert clf.out_activation_ == "logistic"
    assert clf.n_outputs_ == 3
    P = clf.predict_proba(X)
    assert P.shape == (200, 3)
    assert np.all((P >= 0) & (P <= 1))
    pred = clf.predict(X)
    assert pred.shape == (200, 3)
    np.testing.assert_array_equal(pred, (P > 0.5).astype(int))
    assert np.mean(pred == Y) > 0.95


def test_multioutput_regression():
    X, Y = reg_data(n=150, n_outputs=3)
    reg = BPRegressor(hidden_layer_sizes=(16,), solver="lbfgs", random_state=0, max_iter=300)
    reg.fit(X, Y)
    assert reg.n_outputs_ == 3
    pred = reg.predict(X)
    assert pred.shape == (150, 3)
    assert reg.score(X, Y) > 0.9
    # a column vector target gives 1-D predictions (with the usual warning)
    with pytest.warns(Warning):
        reg.fit(X, Y[:, :1])
    assert reg.predict(X).shape == (150,)


# ----------------------------------------------------------------------------
# Sample weights
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [BPClassifier, BPRegressor])
def test_integer_sample_weight_equals_repeated_rows(cls):
    X, y = clf_data(n=60) if cls is BPClassifier else reg_data(n=60)
    sw = np.random.RandomState(0).randint(1, 4, size=60)
    kw = dict(hidden_layer_sizes=(5,), solver="lbfgs", random_state=0, max_iter=40, alpha=0.01)
    weighted = cls(**kw).fit(X, y, sample_weight=sw)
    repeated = cls(**kw).fit(np.repeat(X, sw, axis=0), np.repeat(y, sw, axis=0))
    assert_params_close(params_of(weighted), params_of(repeated), rtol=1e-5, atol=1e-7)
    assert weighted.loss_ == pytest.approx(repeated.loss_, rel=1e-7)


@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
@pytest.mark.parametrize("cls", [BPClassifier, BPRegressor])
def test_zero_sample_weight_equals_dropping_rows(cls, solver):
    X, y = clf_data(n=60) if cls is BPClassifier else reg_data(n=60)
    sw = np.ones(60)
    drop = np.arange(60) % 7 == 3
    sw[drop] = 0.0
    # full batch for sgd, so that dropping rows does not change the batches
    kw = dict(
        hidden_layer_sizes=(5,),
        solver=solver,
        random_state=0,
        max_iter=30,
        alpha=0.01,
        batch_size=60,
        shuffle=False,
        learning_rate_init=0.05,
    )
    weighted = cls(**kw).fit(X, y, sample_weight=sw)
    kw["batch_size"] = int((~drop).sum())
    dropped = cls(**kw).fit(X[~drop], y[~drop])
    assert_params_close(params_of(weighted), params_of(dropped), rtol=1e-6, atol=1e-8)


def test_sample_weight_changes_the_fit_and_none_equals_ones():
    X, y = reg_data(n=60)
    kw = dict(hidden_layer_sizes=(5,), solver="adam", random_state=0, max_iter=10)
    ones = BPRegressor(**kw).fit(X, y, sample_weight=np.ones(60))
    none = BPRegressor(**kw).fit(X, y)
    assert_params_equal(params_of(ones), params_of(none))
    sw = np.linspace(0.1, 3, 60)
    assert not np.allclose(BPRegressor(**kw).fit(X, y, sample_weight=sw).coefs_[0], none.coefs_[0])


# ----------------------------------------------------------------------------
# Class weights
# ----------------------------------------------------------------------------


def imbalanced_data(n=1000, seed=0):
    X, y = make_classification(
        n_samples=n,
        n_features=6,
        n_informative=3,
        n_redundant=0,
        weights=[0.95],
        flip_y=0.01,
        class_sep=0.8,
        random_state=seed,
    )
    return train_test_split(X, y, test_size=0.5, stratify=y, random_state=0)


def test_class_weight_balanced_improves_balanced_accuracy():
    X_train, X_test, y_train, y_test = imbalanced_data()
    assert 0.02 < y_train.mean() < 0.1
    scores = {}
    for cw in (None, "balanced"):
        est = BPClassifier(
            hidden_layer_sizes=(8,),
            alpha=1.0,
            class_weight=cw,
            max_iter=100,
            learning_rate_init=0.01,
            random_state=0,
        ).fit(X_train, y_train)
        scores[cw] = balanced_accuracy_score(y_test, est.predict(X_test))
    assert scores["balanced"] > scores[None] + 0.1, scores


def test_class_weight_dict_equals_sample_weight():
    X, y = load_iris(return_X_y=True)
    cw = {0: 0.5, 1: 3.0, 2: 1.5}
    params = dict(hidden_layer_sizes=(5,), max_iter=20, random_state=0, batch_norm=True)
    a = BPClassifier(class_weight=cw, **params).fit(X, y)
    sw = np.array([cw[c] for c in y])
    b = BPClassifier(**params).fit(X, y, sample_weight=sw)
    for u, v in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
        np.testing.assert_array_equal(u, v)
    # a class left out of the dict weighs 1
    c = BPClassifier(class_weight={1: 3.0}, **params).fit(X, y)
    d = BPClassifier(**params).fit(X, y, sample_weight=np.where(y == 1, 3.0, 1.0))
    np.testing.assert_array_equal(c.coefs_[0], d.coefs_[0])
    assert not np.array_equal(a.coefs_[0], BPClassifier(**params).fit(X, y).coefs_[0])


@pytest.mark.parametrize("cw", ["balanced", {0: 2.0, 1: 0.5, 2: 4.0}], ids=["balanced", "dict"])
def test_class_weight_multiplies_sample_weight(cw):
    X, y = load_iris(return_X_y=True)
    X, y = X[:130], y[:130]  # unequal class counts: 'balanced' is not uniform
    sw = np.random.RandomState(0).uniform(0.5, 2.0, size=y.shape[0])
    params = dict(hidden_layer_sizes=(5,), max_iter=20, random_state=0)
    a = BPClassifier(class_weight=cw, **params).fit(X, y, sample_weight=sw)
    if cw == "balanced":
        counts = np.bincount(y)
        per_class = y.shape[0] / (len(counts) * counts)
    else:
        per_class = np.array([cw[k] for k in range(3)])
    b = BPClassifier(**params).fit(X, y, sample_weight=sw * per_class[y])
    for u, v in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------
# L1 penalty
# ----------------------------------------------------------------------------


def test_l1_ratio_one_gives_sparser_weights():
    X, y = make_regression(n_samples=200, n_features=20, n_informative=3, noise=1.0, random_state=0)
    X /= X.std(axis=0)
    y = (y - y.mean()) / y.std()
    n_small = {}
    for l1_ratio in (0.0, 1.0):
        est = BPRegressor(
            hidden_layer_sizes=(10,),
            solver="sgd",
            alpha=5.0,
            l1_ratio=l1_ratio,
            learning_rate_init=0.01,
            max_iter=300,
            random_state=0,
        ).fit(X, y)
        w = np.concatenate([c.ravel() for c in est.coefs_])
        n_small[l1_ratio] = int(np.sum(np.abs(w) < 1e-3))
        assert est.score(X, y) > 0.9
    assert n_small[1.0] > n_small[0.0] + 50, n_small


# ----------------------------------------------------------------------------
# warm_start
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_warm_start_continues(solver):
    X, y = clf_data()
    clf = BPClassifier(
        hidden_layer_sizes=(6,), solver=solver, random_state=0, max_iter=5, warm_start=True
    )
    clf.fit(X, y)
    after_first = params_of(clf)
    n_curve = len(clf.loss_curve_)
    clf.fit(X, y)
    if solver == "adam":
        assert len(clf.loss_curve_) == n_curve + 5  # the curve grows
        # continued: the second fit starts from where the first stopped
        assert clf.loss_curve_[n_curve] < clf.loss_curve_[0]
    assert not np.array_equal(after_first[0], clf.coefs_[0])
    # warm start from the first fit's weights equals a fresh 10-epoch fit for sgd
    # without momentum (the optimizer has no other state)
    kw = dict(
        hidden_layer_sizes=(6,),
        solver="sgd",
        momentum=0.0,
        random_state=0,
        shuffle=False,
        batch_size=40,
        learning_rate_init=0.05,
    )
    ws = BPClassifier(max_iter=5, warm_start=True, **kw).fit(X, y)
    ws.fit(X, y)
    assert len(ws.loss_curve_) == 10
    ten = BPClassifier(max_iter=10, **kw).fit(X, y)
    assert_params_close(params_of(ws), params_of(ten), rtol=1e-12, atol=1e-14)


def test_warm_start_refuses_changed_hidden_layer_sizes():
    X, y = clf_data()
    clf = BPClassifier(hidden_layer_sizes=(6,), random_state=0, max_iter=3, warm_start=True)
    clf.fit(X, y)
    clf.set_params(hidden_layer_sizes=(7,))
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        clf.fit(X, y)
    clf.set_params(hidden_layer_sizes=(6, 2))
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        clf.fit(X, y)
    # without warm_start the new architecture is simply fitted
    clf.set_params(warm_start=False)
    clf.fit(X, y)
    assert [c.shape for c in clf.coefs_] == [(6, 6), (6, 2), (2, 3)]


@pytest.mark.parametrize("early_stopping", [False, True])
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_warm_start_from_lbfgs_with_stochastic_solver(solver, early_stopping):
    # skbp sets loss_curve_ for lbfgs too; continuing such a model with a
    # stochastic solver must set up the stochastic bookkeeping, not crash
    X, y = clf_data()
    clf = BPClassifier(hidden_layer_sizes=(6,), solver="lbfgs", random_state=0, max_iter=5,
                       warm_start=True)  # fmt: skip
    clf.fit(X, y)
    n_lbfgs = len(clf.loss_curve_)
    start = params_of(clf)
    clf.set_params(solver=solver, max_iter=4, early_stopping=early_stopping)
    clf.fit(X, y)
    assert clf.n_iter_ == 4
    assert len(clf.loss_curve_) == n_lbfgs + 4
    assert not np.array_equal(start[0], clf.coefs_[0])
    if early_stopping:
        assert len(clf.validation_scores_) == 4
        assert clf.best_validation_score_ == max(clf.validation_scores_)
    else:
        assert clf.validation_scores_ is None


def test_warm_start_without_previous_fit_is_a_plain_fit():
    X, y = reg_data()
    kw = dict(hidden_layer_sizes=(4,), random_state=0, max_iter=5)
    a = BPRegressor(warm_start=True, **kw).fit(X, y)
    b = BPRegressor(**kw).fit(X, y)
    assert_params_equal(params_of(a), params_of(b))


# ----------------------------------------------------------------------------
# Persistence and parameter views
# ----------------------------------------------------------------------------


def round_trip(est, dump):
    """``est`` through ``pickle`` or ``joblib`` (in memory)."""
    if dump == "pickle":
        return pickle.loads(pickle.dumps(est))
    buf = io.BytesIO()
    joblib.dump(est, buf)
    buf.seek(0)
    return joblib.load(buf)


@pytest.fixture(scope="module")
def pickled_models():
    """``{cls: (X, y, est)}``: the models test_pickle_round_trip pickles, fitted once for
    both ``dump`` values (the test only reads them; it edits and trains the copies)."""
    models = {}
    for cls in (BPClassifier, BPRegressor):
        X, y = clf_data() if cls is BPClassifier else reg_data()
        models[cls] = X, y, cls(hidden_layer_sizes=(6, 3), random_state=0, max_iter=10).fit(X, y)
    return models


@pytest.mark.parametrize("dump", ["pickle", "joblib"])
@pytest.mark.parametrize("cls", [BPClassifier, BPRegressor])
def test_pickle_round_trip(cls, dump, pickled_models):
    X, y, est = pickled_models[cls]
    est2 = round_trip(est, dump)
    np.testing.assert_array_equal(est2.predict(X), est.predict(X))
    if cls is BPClassifier:
        np.testing.assert_array_equal(est2.predict_proba(X), est.predict_proba(X))
    assert_params_equal(params_of(est), params_of(est2))
    for c in est2.coefs_ + est2.intercepts_:
        assert c.base is est2._w
    # in-place edits of the restored views reach predict
    est2.intercepts_[-1][...] += 1.0
    out = "predict_proba" if cls is BPClassifier else "predict"
    assert not np.array_equal(getattr(est2, out)(X), getattr(est, out)(X))
    # the restored model keeps training
    est2.partial_fit(X, y)
    assert np.isfinite(est2.loss_)


@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_pickle_batch_norm_dropout_model(dump, toolkit_iris):
    X, _, est = toolkit_iris
    est2 = round_trip(est, dump)
    np.testing.assert_array_equal(est2.predict_proba(X), est.predict_proba(X))
    np.testing.assert_array_equal(est2.predict(X), est.predict(X))
    for name in BaseBP._VIEWS:  # every fitted parameter list
        a, b = getattr(est, name), getattr(est2, name)
        assert len(a) == len(b) > 0
        for u, v in zip(a, b, strict=True):
            np.testing.assert_array_equal(u, v)
    # the running statistics are not the initial (0, 1)
    assert not np.allclose(est2.bn_running_vars_[0], 1.0)
    # in-place edits of the restored running statistics reach predict
    est2.bn_running_means_[0][...] += 1.0
    assert not np.allclose(est2.predict_proba(X), est.predict_proba(X))


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_pickle_keeps_optimizer_state(solver):
    # pickling in the middle of incremental training changes nothing
    X, y = clf_data()
    a = BPClassifier(hidden_layer_sizes=(5,), solver=solver, random_state=0, shuffle=False)
    a.partial_fit(X, y, classes=np.unique(y))
    a.partial_fit(X, y)
    b = pickle.loads(pickle.dumps(a))
    for _ in range(2):
        a.partial_fit(X, y)
        b.partial_fit(X, y)
    assert_params_equal(params_of(a), params_of(b))
    assert a.loss_curve_ == b.loss_curve_


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_joblib_memmap_load_keeps_training(solver, tmp_path):
    # joblib.load(mmap_mode="r") gives read-only arrays: the parameters and the
    # optimizer state must be copied before training writes to them
    X, y = clf_data()
    est = BPClassifier(hidden_layer_sizes=(5,), solver=solver, random_state=0, max_iter=3)
    est.fit(X, y)
    path = tmp_path / "model.joblib"
    joblib.dump(est, path)
    loaded = joblib.load(path, mmap_mode="r")
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
    est.partial_fit(X, y)
    loaded.partial_fit(X, y)
    assert_params_equal(params_of(est), params_of(loaded))
    for c in loaded.coefs_ + loaded.intercepts_:
        assert c.base is loaded._w
    # the file on disk is untouched
    again = joblib.load(path)
    assert not np.array_equal(again.coefs_[0], loaded.coefs_[0])


def test_pickle_after_replacing_coefs():
    X, y = reg_data()
    est = BPRegressor(hidden_layer_sizes=(4,), random_state=0, max_iter=5).fit(X, y)
    est.coefs_[0] = np.zeros_like(est.coefs_[0])
    est2 = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(est2.coefs_[0], 0.0)
    np.testing.assert_allclose(est2.predict(X), est.predict(X))


def _manual_predict(est, X):
    return np_forward(X, est.coefs_, est.intercepts_, est.activation, "identity").ravel()


def test_replacing_coefs_array_is_honoured():
    X, y = reg_data()
    est = BPRegressor(hidden_layer_sizes=(4,), random_state=0, max_iter=5).fit(X, y)
    before = est.predict(X)
    rng = np.random.RandomState(1)
    est.coefs_[0] = rng.normal(size=est.coefs_[0].shape)  # a new array, not an in-place edit
    est.intercepts_[1] = np.array([3.0])
    after = est.predict(X)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, _manual_predict(est, X), rtol=1e-12)
    # and whole-list replacement too
    est.coefs_ = [c * 0.5 for c in est.coefs_]
    np.testing.assert_allclose(est.predict(X), _manual_predict(est, X), rtol=1e-12)
    # training continues from the replaced weights
    est.set_params(warm_start=True, max_iter=1, solver="sgd", learning_rate_init=1e-12)
    start = params_of(est)
    est.fit(X, y)
    assert_params_close(start, params_of(est), rtol=1e-6, atol=1e-8)
    for c in est.coefs_ + est.intercepts_:
        assert c.base is est._w


def test_replacing_coefs_with_wrong_shape_raises():
    X, y = reg_data()
    est = BPRegressor(hidden_layer_sizes=(4,), random_state=0, max_iter=5).fit(X, y)
    est.coefs_[0] = np.zeros((3, 3))
    with pytest.raises(ValueError, match="coefs_"):
        est.predict(X)


# ----------------------------------------------------------------------------
# Early stopping
# ----------------------------------------------------------------------------


def test_early_stopping_sets_scores_and_restores_best_weights():
    X, y = clf_data(n=300, seed=1)
    rs = 0
    clf = BPClassifier(
        hidden_layer_sizes=(32,),
        solver="sgd",
        learning_rate_init=0.3,
        early_stopping=True,
        validation_fraction=0.2,
        n_iter_no_change=5,
        random_state=rs,
        max_iter=200,
    )
    clf.fit(X, y)
    scores = clf.validation_scores_
    assert isinstance(scores, list) and len(scores) == clf.n_iter_ >= 1
    assert clf.best_validation_score_ == max(scores)
    assert clf.best_loss_ is None
    assert clf.n_iter_ < 200  # it did stop early
    # The split: the generator state after the weight draws, as in scikit-learn,
    # which stratifies only single-output targets (not one-hot multiclass ones).
    state = np.random.RandomState(rs)
    Layout([6, 32, 3]).init_params(state, "relu", np.float64)
    assert clf.n_outputs_ == 3
    _, idx_val = train_test_split(np.arange(300), random_state=state, test_size=0.2)
    # the restored weights are the best ones, not the last ones
    assert clf.score(X[idx_val], y[idx_val]) == pytest.approx(clf.best_validation_score_)
    assert scores[-1] < clf.best_validation_score_


def test_no_early_stopping_attributes():
    X, y = clf_data()
    clf = BPClassifier(hidden_layer_sizes=(4,), random_state=0, max_iter=5).fit(X, y)
    assert clf.validation_scores_ is None
    assert clf.best_validation_score_ is None
    assert clf.best_loss_ == min(clf.loss_curve_)
    assert clf.n_iter_ == 5 == len(clf.loss_curve_)
    assert clf.n_layers_ == 3


def ordered_data(flipped_at_end):
    """80 rows whose label is x0 > 0, except 20 rows with the label flipped."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(100, 2))
    y = (X[:, 0] > 0).astype(int)
    flip = slice(80, 100) if flipped_at_end else slice(0, 20)
    y[flip] = 1 - y[flip]
    return X, y


def test_early_stopping_without_shuffle_holds_out_the_last_rows():
    params = dict(
        hidden_layer_sizes=(8,),
        early_stopping=True,
        shuffle=False,
        validation_fraction=0.2,
        learning_rate_init=0.02,
        max_iter=60,
        n_iter_no_change=5,
        random_state=0,
    )
    X, y = ordered_data(flipped_at_end=True)
    est = BPClassifier(**params).fit(X, y)
    n_val = math.ceil(0.2 * X.shape[0])
    assert n_val == 20
    # the restored (best) model scores best_validation_score_ on the last rows
    assert est.best_validation_score_ == max(est.validation_scores_)
    assert est.score(X[-n_val:], y[-n_val:]) == est.best_validation_score_
    # the last rows' labels are the opposite of the rule the other rows follow
    assert max(est.validation_scores_) < 0.5
    # with the flipped rows at the start, the held-out last rows are easy
    X2, y2 = ordered_data(flipped_at_end=False)
    est2 = BPClassifier(**params).fit(X2, y2)
    assert est2.best_validation_score_ > 0.8
    assert est2.score(X2[-n_val:], y2[-n_val:]) == est2.best_validation_score_


# ----------------------------------------------------------------------------
# Learning-rate schedules, batch_size='full', hidden_layer_sizes='auto', clipping
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_exponential_schedule(solver):
    X, y = reg_data(60, n_features=4)
    lr0, d = 0.01, 0.8
    params = dict(
        hidden_layer_sizes=(6,),
        solver=solver,
        learning_rate_init=lr0,
        max_iter=7,
        n_iter_no_change=100,
        random_state=0,
    )
    est = BPRegressor(learning_rate="exponential", decay_rate=d, **params).fit(X, y)
    assert est.n_iter_ == 7
    np.testing.assert_allclose(est._optimizer.learning_rate, lr0 * d**est.n_iter_, rtol=1e-12)
    # the decayed rate is the one the updates use
    const = BPRegressor(learning_rate="constant", **params).fit(X, y)
    assert const._optimizer.learning_rate == lr0
    assert not np.allclose(est.coefs_[0], const.coefs_[0])
    one = BPRegressor(learning_rate="exponential", decay_rate=1.0, **params).fit(X, y)
    np.testing.assert_array_equal(one.coefs_[0], const.coefs_[0])


def test_invscaling_and_adaptive_apply_to_adam():
    X, y = reg_data(60, n_features=4)
    lr0 = 0.01
    params = dict(hidden_layer_sizes=(6,), solver="adam", learning_rate_init=lr0, random_state=0)
    const = BPRegressor(max_iter=4, n_iter_no_change=100, **params).fit(X, y)
    inv = BPRegressor(
        learning_rate="invscaling", power_t=0.5, max_iter=4, n_iter_no_change=100, **params
    ).fit(X, y)
    assert inv.t_ == 4 * X.shape[0]
    np.testing.assert_allclose(inv._optimizer.learning_rate, lr0 / (inv.t_ + 1) ** 0.5)
    assert not np.allclose(inv.coefs_[0], const.coefs_[0])
    # adaptive: tol so large that no epoch improves; after n_iter_no_change + 1
    # epochs without improvement (the first epoch sets the reference) the rate
    # is divided by 5 and training goes on
    ada = BPRegressor(
        learning_rate="adaptive", tol=1e10, n_iter_no_change=2, max_iter=4, **params
    ).fit(X, y)
    assert ada.n_iter_ == 4
    np.testing.assert_allclose(ada._optimizer.learning_rate, lr0 / 5)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_batch_size_full_equals_n_samples(solver):
    X, y = reg_data(60, n_features=4)
    params = dict(
        hidden_layer_sizes=(5, 5),
        solver=solver,
        batch_norm=True,
        dropout=0.2,
        max_iter=5,
        random_state=0,
    )
    a = BPRegressor(batch_size="full", **params).fit(X, y)
    b = BPRegressor(batch_size=X.shape[0], **params).fit(X, y)
    for u, v in zip(
        a.coefs_ + a.intercepts_ + a.bn_running_vars_,
        b.coefs_ + b.intercepts_ + b.bn_running_vars_,
        strict=True,
    ):
        np.testing.assert_array_equal(u, v)
    c = BPRegressor(batch_size=X.shape[0] // 2, **params).fit(X, y)
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])


RNG = np.random.RandomState(0)


@pytest.mark.parametrize(
    "cls,X,y",
    [
        (BPClassifier, *load_iris(return_X_y=True)),
        (BPClassifier, RNG.normal(size=(10, 7)), np.arange(10) % 2),
        (BPRegressor, RNG.normal(size=(10, 5)), RNG.normal(size=(10, 2))),
        (BPRegressor, RNG.normal(size=(10, 1)), RNG.normal(size=10)),
    ],
    ids=["iris", "binary-7", "reg-5-2", "reg-1-1"],
)
def test_hidden_layer_sizes_auto(cls, X, y):
    est = cls(hidden_layer_sizes="auto", max_iter=2).fit(X, y)
    expected = max(1, round(1.5 * (X.shape[1] + est.n_outputs_) / 2))
    assert len(est.coefs_) == 2
    assert est.coefs_[0].shape == (X.shape[1], expected)
    assert est.hidden_layer_sizes == "auto"  # the parameter is not modified


def flat(est):
    return np.concatenate([a.ravel() for a in est.coefs_ + est.intercepts_])


def test_max_grad_norm_scales_one_full_batch_step():
    X, y = reg_data(60, n_features=4)
    lr = 0.05
    start = BPRegressor(
        hidden_layer_sizes=(6,),
        solver="sgd",
        batch_size="full",
        momentum=0.0,
        shuffle=False,
        max_iter=1,
        learning_rate_init=lr,
        alpha=0.01,
        random_state=0,
    ).fit(X, y)
    w0 = flat(start)

    def one_step(**kw):
        est = copy.deepcopy(start).set_params(warm_start=True, **kw)
        est.fit(X, y)
        return flat(est) - w0

    step = one_step()
    grad = step / -lr
    norm = np.linalg.norm(grad)
    assert norm > 0.1
    c = 0.3 * norm
    clipped = one_step(max_grad_norm=c)
    np.testing.assert_allclose(clipped, step * (c / norm), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(np.linalg.norm(clipped / -lr), c, rtol=1e-9)
    # a bound above the gradient's norm changes nothing
    np.testing.assert_array_equal(one_step(max_grad_norm=2 * norm), step)


def test_max_grad_norm_bounds_every_update():
    # huge targets: unclipped SGD diverges; each clipped update moves the
    # weights by at most lr * max_grad_norm
    X, y = exploding_data()
    lr, c, batch = 1e-3, 1.0, 20
    params = dict(
        hidden_layer_sizes=(8,),
        solver="sgd",
        momentum=0.0,
        batch_size=batch,
        learning_rate_init=lr,
        max_iter=3,
        random_state=0,
    )
    assert fit_recording(BPRegressor(**params), X, y, DivergenceWarning)
    tame = BPRegressor(max_grad_norm=c, **params)
    assert not fit_recording(tame, X, y, DivergenceWarning)
    assert tame.n_iter_ == 3
    w0 = Layout([4, 8, 1]).init_params(np.random.RandomState(0), "relu", np.float64)
    moved = np.linalg.norm(flat(tame) - w0)
    n_updates = tame.n_iter_ * X.shape[0] // batch
    assert 0 < moved <= lr * c * n_updates * (1 + 1e-9)


# ----------------------------------------------------------------------------
# Accuracy targets
# ----------------------------------------------------------------------------


def test_digits_accuracy():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.25, random_state=0)
    clf = BPClassifier(hidden_layer_sizes=(64,), random_state=0).fit(X_train, y_train)
    assert clf.score(X_test, y_test) >= 0.96


def test_diabetes_cross_val_close_to_sklearn():
    X, y = load_diabetes(return_X_y=True)
    kw = dict(
        hidden_layer_sizes=(32,),
        max_iter=400,
        solver="adam",
        learning_rate_init=0.01,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = cross_val_score(make_pipeline(StandardScaler(), BPRegressor(**kw)), X, y, cv=5)
        sk = cross_val_score(make_pipeline(StandardScaler(), MLPRegressor(**kw)), X, y, cv=5)
    assert np.all(np.isfinite(ours))
    assert ours.mean() > 0.3
    assert abs(ours.mean() - sk.mean()) <= 0.02


def test_pipeline_and_grid_search():
    X, y = clf_data(n=120)
    pipe = Pipeline(
        [("scale", StandardScaler()), ("net", BPClassifier(max_iter=60, random_state=0))]
    )
    grid = {"net__hidden_layer_sizes": [(4,), (8, 4)], "net__learning_rate_init": [1e-3, 3e-2]}
    search = GridSearchCV(pipe, grid, cv=3).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_params_["net__hidden_layer_sizes"] in [(4,), (8, 4)]
    # the larger learning rate learns far more in 60 epochs
    assert search.best_params_["net__learning_rate_init"] == 3e-2
    assert search.best_score_ > 0.6
    assert search.predict(X).shape == (120,)
    best = search.best_estimator_.named_steps["net"]
    assert best.coefs_[0].shape[1] == search.best_params_["net__hidden_layer_sizes"][0]
    assert best.learning_rate_init == 3e-2
    # cloned estimators are independent: the template was never fitted
    assert not hasattr(pipe.named_steps["net"], "coefs_")
    # regression through a pipeline
    Xr, yr = reg_data()
    reg = make_pipeline(
        StandardScaler(), BPRegressor(hidden_layer_sizes=(8,), random_state=0, max_iter=200)
    )
    search = GridSearchCV(reg, {"bpregressor__learning_rate_init": [0.01, 0.03]}, cv=3)
    search.fit(Xr, yr)
    assert search.best_score_ > 0.5


# ----------------------------------------------------------------------------
# Threads and verbose output
# ----------------------------------------------------------------------------


def test_fits_in_threads_equal_sequential_fits():
    # the kernels release the GIL: concurrent fits must not share any buffer
    from concurrent.futures import ThreadPoolExecutor

    X, y = clf_data(n=150)
    Xr, yr = reg_data(n=150)

    def job(i):
        if i % 2:
            est = BPRegressor(hidden_layer_sizes=(8,), random_state=i, max_iter=20, batch_size=16)
            return params_of(est.fit(Xr, yr))
        solver = ["adam", "lbfgs"][(i // 2) % 2]
        est = BPClassifier(hidden_layer_sizes=(8,), solver=solver, random_state=i, max_iter=20)
        return params_of(est.fit(X, y))

    sequential = [job(i) for i in range(6)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        threaded = list(pool.map(job, range(6)))
    for a, b in zip(sequential, threaded, strict=True):
        assert_params_equal(a, b)


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_verbose_prints_the_loss(solver, capsys):
    X, y = clf_data()
    clf = BPClassifier(hidden_layer_sizes=(4,), solver=solver, max_iter=3, random_state=0,
                       verbose=True)  # fmt: skip
    clf.fit(X, y)
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out
    assert f"{clf.loss_curve_[0]:.8f}" in out
    clf.set_params(verbose=False).fit(X, y)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "y",
    [
        np.array([0, 1, 1, 0]), np.array([3, 1, 2], dtype=np.int32),
        np.array([1, 1, 1], dtype=np.uint8), np.array([True, False, True]),
        np.array([-1, 4, 4, 9]), np.array(["b", "a", "c"]), np.array([0.0, 1.0, 1.0]),
        np.array([[0, 1], [1, 1], [1, 0]]),
    ],
    ids=["int64", "int32", "uint8-one-class", "bool", "negative", "str", "float", "multilabel"],
)  # fmt: skip
def test_label_binarizer_fast_path_equals_fit(y):
    from sklearn.preprocessing import LabelBinarizer

    from skbp._estimators import fitted_label_binarizer

    fast, ref = fitted_label_binarizer(y), LabelBinarizer().fit(y)
    assert sorted(vars(fast)) == sorted(vars(ref))
    for name, value in vars(ref).items():
        got = getattr(fast, name)
        assert type(got) is type(value), name
        np.testing.assert_array_equal(got, value)
        if isinstance(value, np.ndarray):
            assert got.dtype == value.dtype, name
    np.testing.assert_array_equal(fast.transform(y), ref.transform(y))
