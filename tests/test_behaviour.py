"""Estimator behaviour: determinism, partial_fit, dtypes, sparse input, targets,
sample weights, warm start, persistence, early stopping, accuracy targets and
use inside scikit-learn's meta-estimators."""

import io
import pickle
import warnings

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_diabetes, load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from skbp import BPClassifier, BPRegressor
from skbp._layout import Layout

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def clf_data(n=120, n_classes=3, seed=0):
    X, y = make_classification(
        n_samples=n, n_features=6, n_informative=4, n_classes=n_classes, random_state=seed
    )
    return X, y


def reg_data(n=100, n_outputs=1, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 5))
    y = np.sin(X @ rng.normal(size=(5, n_outputs))) + 0.05 * rng.normal(size=(n, n_outputs))
    return X, (y[:, 0] if n_outputs == 1 else y)


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


@pytest.mark.parametrize("dump", ["pickle", "joblib"])
@pytest.mark.parametrize("cls", [BPClassifier, BPRegressor])
def test_pickle_round_trip(cls, dump):
    X, y = clf_data() if cls is BPClassifier else reg_data()
    est = cls(hidden_layer_sizes=(6, 3), random_state=0, max_iter=10).fit(X, y)
    if dump == "pickle":
        est2 = pickle.loads(pickle.dumps(est))
    else:
        buf = io.BytesIO()
        joblib.dump(est, buf)
        buf.seek(0)
        est2 = joblib.load(buf)
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
    a = X
    for i, (W, b) in enumerate(zip(est.coefs_, est.intercepts_, strict=True)):
        a = a @ W + b
        if i < len(est.coefs_) - 1:
            a = np.maximum(a, 0.0)
    return a.ravel()


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
