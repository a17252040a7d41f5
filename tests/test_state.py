"""Loading a saved model: a damaged state is refused at load, an intact one loads unchanged.

``pickle``, ``joblib`` and ``skops.io`` all restore an estimator through
``__setstate__``, which checks the whole fitted state (``BaseBP._check_state``).
A damaged file must raise ``ValueError`` there, naming the field, and never
load into a model that predicts something else or crashes the process later
(the kernels index the flat vectors without bounds checks).  Damaged states
that may crash run in a subprocess, so that a crash fails a test instead of
killing pytest.
"""

import copy
import copyreg
import functools
import json
import os
import pickle
import subprocess
import sys
import warnings

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.preprocessing import LabelBinarizer

from skbp import BPClassifier, BPRegressor

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning", "ignore::UserWarning"
)

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
Y_BINARY = (Y_IRIS == 2).astype(int)
Y_MULTILABEL = np.column_stack([Y_IRIS == 0, Y_IRIS == 2, X_IRIS[:, 0] > 5.8]).astype(int)
Y_TWO = np.column_stack([X_IRIS[:, 0] - X_IRIS[:, 1], X_IRIS[:, 2]])
Y_STRINGS = np.array(["setosa", "versicolor", "virginica"])[Y_IRIS]


def _partial_fitted(**params):
    est = BPClassifier((6,), random_state=0, **params)
    for part in np.array_split(np.random.RandomState(0).permutation(150), 3):
        est.partial_fit(X_IRIS[part], Y_IRIS[part], classes=[0, 1, 2])
    return est, X_IRIS, Y_IRIS


def _fit(est, X=X_IRIS, y=Y_IRIS):
    return est.fit(X, y), X, y


def _solver_switched(first, then, how):
    """A model trained on with another solver: books and optimizer state of both."""
    est = BPClassifier((6,), max_iter=5, random_state=0, **first).fit(X_IRIS, Y_IRIS)
    est.set_params(**then)
    if how == "partial_fit":
        return est.partial_fit(X_IRIS, Y_IRIS), X_IRIS, Y_IRIS
    return est.set_params(warm_start=True).fit(X_IRIS, Y_IRIS), X_IRIS, Y_IRIS


#: every option family a legitimate model can be saved with: (estimator, X, y)
FAMILIES = {
    "adam": lambda: _fit(BPClassifier((6,), max_iter=5, random_state=0)),
    "sgd_nesterov": lambda: _fit(
        BPClassifier((6,), solver="sgd", momentum=0.9, max_iter=5, random_state=0)
    ),
    "sgd_plain": lambda: _fit(
        BPClassifier((6,), solver="sgd", momentum=0.0, max_iter=5, random_state=0)
    ),
    "lbfgs": lambda: _fit(BPClassifier((6,), solver="lbfgs", max_iter=5, random_state=0)),
    "weight_decay": lambda: _fit(
        BPClassifier(
            (6,), batch_norm=True, weight_decay=0.1, decay_biases=True, max_iter=5, random_state=0
        )
    ),  # fmt: skip
    "batch_norm_residual_dropout": lambda: _fit(
        BPClassifier(
            (6, 6, 6),
            activation=["tanh", "elu", "relu"],
            batch_norm=True,
            residual=True,
            dropout=[0.1, 0.2, 0.0],
            max_iter=5,
            random_state=0,
        )  # fmt: skip
    ),
    "selu_gelu_mish_dropout": lambda: _fit(
        BPClassifier(
            (6, 6, 6),
            activation=["selu", "gelu", "mish"],
            dropout=[0.1, 0.0, 0.2],
            max_iter=5,
            random_state=0,
        )  # fmt: skip
    ),
    "regressor_gelu": lambda: _fit(
        BPRegressor(hidden_layer_sizes=(6,), activation="gelu", max_iter=5, random_state=0),
        y=Y_TWO,
    ),
    "label_smoothing": lambda: _fit(
        BPClassifier((6,), label_smoothing=0.1, max_iter=5, random_state=0)
    ),
    "early_stopping": lambda: _fit(
        BPClassifier((6,), early_stopping=True, max_iter=5, random_state=0)
    ),
    "validation_data_scoring_loss": lambda: (
        BPClassifier((6,), early_stopping=True, scoring="loss", max_iter=5, random_state=0).fit(
            X_IRIS[::2], Y_IRIS[::2], X_val=X_IRIS[1::2], y_val=Y_IRIS[1::2]
        ),
        X_IRIS,
        Y_IRIS,
    ),
    "lbfgs_validation_data": lambda: (
        BPRegressor(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=5, random_state=0).fit(
            X_IRIS[::2], Y_TWO[::2], X_val=X_IRIS[1::2], y_val=Y_TWO[1::2]
        ),
        X_IRIS,
        Y_TWO,
    ),
    "binary": lambda: _fit(BPClassifier((6,), max_iter=5, random_state=0), y=Y_BINARY),
    "multilabel": lambda: _fit(BPClassifier((6,), max_iter=5, random_state=0), y=Y_MULTILABEL),
    "string_labels": lambda: _fit(BPClassifier((6,), max_iter=5, random_state=0), y=Y_STRINGS),
    "one_class": lambda: _fit(
        BPClassifier((3,), max_iter=3, random_state=0), y=np.zeros(150, dtype=int)
    ),
    "float32": lambda: _fit(
        BPClassifier((6,), max_iter=5, random_state=0), X=X_IRIS.astype(np.float32)
    ),
    "partial_fit": _partial_fitted,
    "one_cycle_partial_fit": lambda: _partial_fitted(
        learning_rate="one_cycle", min_learning_rate=1e-4, warmup_fraction=0.2, max_iter=4
    ),
    "cosine_restarts_sgd": lambda: _fit(
        BPClassifier(
            (6,),
            solver="sgd",
            learning_rate="cosine_restarts",
            n_cycles=2,
            max_iter=5,
            random_state=0,
        )
    ),  # fmt: skip
    "lbfgs_after_early_stopping": lambda: _solver_switched(
        {"early_stopping": True}, {"solver": "lbfgs"}, "fit"
    ),
    "sgd_partial_fit_after_adam": lambda: _solver_switched({}, {"solver": "sgd"}, "partial_fit"),
    "no_hidden_layer": lambda: _fit(BPClassifier((), max_iter=5, random_state=0)),
    "auto_width_class_weight": lambda: _fit(
        BPClassifier("auto", class_weight={0: 2.0}, max_iter=5, random_state=0)
    ),
    "regressor_multi_output": lambda: _fit(
        BPRegressor(hidden_layer_sizes=(6,), max_iter=5, random_state=0), y=Y_TWO
    ),
    "regressor_poisson_batch_norm": lambda: _fit(
        BPRegressor(
            "poisson", hidden_layer_sizes=(6, 6), batch_norm=True, max_iter=5, random_state=0
        ),
        y=X_IRIS[:, 2],
    ),
    "regressor_lbfgs_float32": lambda: _fit(
        BPRegressor(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=5, random_state=0),
        X=X_IRIS.astype(np.float32),
        y=Y_TWO.astype(np.float32),
    ),
    "ensemble": lambda: _fit(BPClassifier((6,), max_iter=5, random_state=0, n_ensemble=3)),
    "ensemble_early_stopping_strings": lambda: _fit(
        BPClassifier((6,), early_stopping=True, max_iter=5, random_state=0, n_ensemble=2),
        y=Y_STRINGS,
    ),
    "ensemble_regressor_batch_norm_float32": lambda: _fit(
        BPRegressor(
            hidden_layer_sizes=(6, 6), batch_norm=True, max_iter=5, random_state=0, n_ensemble=2
        ),
        X=X_IRIS.astype(np.float32),
        y=Y_TWO.astype(np.float32),
    ),
    "ensemble_lbfgs": lambda: _fit(
        BPRegressor(
            hidden_layer_sizes=(6,), solver="lbfgs", max_iter=5, random_state=0, n_ensemble=2
        ),
        y=Y_TWO,
    ),  # fmt: skip
    "periodic_embedding": lambda: _fit(
        BPClassifier(
            (6,),
            numeric_embedding="periodic",
            embedding_features=[0, 2],
            n_frequencies=3,
            embedding_dim=2,
            max_iter=5,
            random_state=0,
        )
    ),  # fmt: skip
    "periodic_embedding_all_lbfgs_float32": lambda: _fit(
        BPRegressor(
            hidden_layer_sizes=(6,),
            solver="lbfgs",
            numeric_embedding="periodic",
            n_frequencies=2,
            embedding_dim=3,
            max_iter=5,
            random_state=0,
        ),
        X=X_IRIS.astype(np.float32),
        y=Y_TWO.astype(np.float32),
    ),  # fmt: skip
    "ensemble_periodic_embedding": lambda: _fit(
        BPClassifier(
            (6,),
            numeric_embedding="periodic",
            embedding_features=[True, False, True, True],
            n_frequencies=2,
            embedding_dim=2,
            max_iter=5,
            random_state=0,
            n_ensemble=2,
        )
    ),  # fmt: skip
}


def weights(est):
    """The flat parameter vector (each member's, stacked, for an ensemble)."""
    if hasattr(est, "estimators_"):
        return np.stack([m._w for m in est.estimators_])
    return est._w


@functools.cache
def fitted(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return FAMILIES[name]()


def outputs(est, X):
    """Everything a model predicts for ``X``."""
    out = {"predict": est.predict(X)}
    if isinstance(est, BPClassifier):
        out["predict_proba"] = est.predict_proba(X)
    return out


def assert_same_outputs(a, b, X):
    for (key, u), v in zip(outputs(a, X).items(), outputs(b, X).values(), strict=True):
        np.testing.assert_array_equal(u, v, err_msg=key)


def train_on(est, X, y):
    """One more step of training: ``partial_fit``, or a warm-started fit where it has none."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if est.solver != "lbfgs" and not est.early_stopping:
            return est.partial_fit(X, y)
        return est.set_params(warm_start=True, max_iter=2).fit(X, y)


def _skops_round_trip(est, tmp_path):
    sio = pytest.importorskip("skops.io")
    path = tmp_path / "model.skops"
    sio.dump(est, path)
    name = f"skbp._estimators.{type(est).__name__}"
    assert sio.get_untrusted_types(file=path) == [name]
    return sio.load(path, trusted=[name])


def _joblib_round_trip(est, tmp_path, **kw):
    joblib.dump(est, tmp_path / "model.joblib")
    return joblib.load(tmp_path / "model.joblib", **kw)


ROUND_TRIPS = {
    "pickle": lambda est, tmp_path: pickle.loads(pickle.dumps(est)),
    "joblib": _joblib_round_trip,
    "joblib_mmap": functools.partial(_joblib_round_trip, mmap_mode="r"),
    "skops": _skops_round_trip,
}


# ---------------------------------------------------------------- intact states
@pytest.mark.parametrize("how", list(ROUND_TRIPS))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_intact_state_round_trips_unchanged(family, how, tmp_path):
    est, X, y = fitted(family)
    est = copy.deepcopy(est)  # the cached model stays as fitted
    loaded = ROUND_TRIPS[how](est, tmp_path)
    assert type(loaded) is type(est)
    assert_same_outputs(loaded, est, X)
    # training goes on alike: the optimizer's state and the books came along
    train_on(est, X, y)
    train_on(loaded, X, y)
    assert_same_outputs(loaded, est, X)
    np.testing.assert_array_equal(weights(loaded), weights(est))


def test_feature_names_round_trip(tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X_IRIS, columns=["a", "b", "c", "d"])
    est = BPClassifier((6,), max_iter=5, random_state=0).fit(df, Y_IRIS)
    for how in ("pickle", "skops"):
        loaded = ROUND_TRIPS[how](est, tmp_path)
        np.testing.assert_array_equal(loaded.feature_names_in_, est.feature_names_in_)
        np.testing.assert_array_equal(loaded.predict_proba(df), est.predict_proba(df))


@pytest.mark.parametrize("how", ["pickle", "skops"])
def test_unfitted_states_load(how, tmp_path):
    # parameters are checked by fit, as for any scikit-learn estimator, not at load
    for est in (BPClassifier(), BPRegressor(activation=["tanh"], batch_norm=True),
                BPClassifier(alpha=-1.0)):  # fmt: skip
        loaded = ROUND_TRIPS[how](est, tmp_path)
        assert loaded.get_params() == est.get_params()
        assert not hasattr(loaded, "_w")
    loaded.set_params(alpha=1e-4).fit(X_IRIS, Y_IRIS)


def test_a_copy_goes_through_the_check_and_loads():
    # copy.copy goes through __getstate__/__setstate__ too (the callbacks' snapshots)
    est, X, _ = fitted("batch_norm_residual_dropout")
    assert_same_outputs(copy.copy(est), est, X)


# ------------------------------------------------------- the damaged states
def damaged_state(est, edit):
    """``est``'s saved state with ``edit`` applied (nested dicts and the binarizer copied)."""
    state = {
        k: (dict(v) if isinstance(v, dict) else copy.copy(v) if k == "_label_binarizer" else v)
        for k, v in est.__getstate__().items()
    }
    edit(state)
    return state


class Saved:
    """Pickles as the estimator class ``cls`` with ``state``: a file holding that state."""

    def __init__(self, cls, state):
        self.cls, self.state = cls, state

    def __reduce__(self):
        # what pickle writes for an object of ``cls``: make it, then __setstate__
        return copyreg._reconstructor, (self.cls, object, None), self.state


def load_damaged(est, edit):
    return pickle.loads(pickle.dumps(Saved(type(est), damaged_state(est, edit))))


def _set(**kw):
    return lambda st: st.update(kw)


def _nested(field, **kw):
    return lambda st: st[field].update(kw)


def _binarizer(**kw):
    return lambda st: [setattr(st["_label_binarizer"], k, v) for k, v in kw.items()]


def _array(field, fn):
    return lambda st: st.update({field: fn(st[field])})


def _nan_at_0(a):
    a = a.copy()
    a[0] = np.nan
    return a


def _optimizer_array(key, fn):
    return lambda st: st["_optimizer"].update({key: fn(st["_optimizer"][key])})


#: the layout entry of the "periodic_embedding" model's embedding
_EMBEDDING = {"n_inputs": 4, "columns": [0, 2], "n_frequencies": 3, "embedding_dim": 2}

#: (model, damage, what the error names): every checked field, each alone
REFUSED = {
    # the arrays against the layout and the weights' dtype
    "weights_short": ("adam", _array("_w", lambda a: a[:-1]), "_w has"),
    "weights_2d": ("adam", _array("_w", lambda a: a.reshape(1, -1)), "_w is not"),
    "weights_nan": ("adam", _array("_w", _nan_at_0), "_w holds NaN"),
    "weights_int": ("adam", _array("_w", lambda a: a.astype(np.int64)), "_w is not"),
    "best_weights_float32": (
        "adam",
        _array("_best_w", lambda a: a.astype(np.float32)),
        "_best_w is float32",
    ),  # fmt: skip
    "bn_running_short": (
        "batch_norm_residual_dropout",
        _array("_bn_run", lambda a: a[:-2]),
        "_bn_run has",
    ),  # fmt: skip
    "bn_running_negative_variance": (
        "batch_norm_residual_dropout",
        _array("_bn_run", lambda a: -np.abs(a) - 1),
        "_bn_run holds negative variances",
    ),
    "bn_running_float32": (
        "batch_norm_residual_dropout",
        _array("_bn_run", lambda a: a.astype(np.float32)),
        "_bn_run is float32",
    ),
    "bn_running_inf": (
        "batch_norm_residual_dropout",
        _array("_best_bn_run", lambda a: a + np.inf),
        "_best_bn_run holds NaN or infinite",
    ),
    # the optimizer's state
    "adam_v_short": ("adam", _optimizer_array("v", lambda a: a[:-5]), "second moment v has"),
    "adam_v_float32": (
        "adam",
        _optimizer_array("v", lambda a: a.astype(np.float32)),
        "moment v is float32",
    ),  # fmt: skip
    "adam_v_negative": ("adam", _optimizer_array("v", lambda a: a - 1), "v in _optimizer holds"),
    "adam_m_long": ("adam", _optimizer_array("m", lambda a: np.append(a, 0.0)), "velocity m has"),
    "adam_t_float": ("adam", _optimizer_array("t", lambda a: a.astype(float)), "step count t"),
    "adam_t_negative": ("adam", _optimizer_array("t", lambda a: a - 10**6), "step count t"),
    "adam_lr_nan": ("adam", _nested("_optimizer", learning_rate=np.nan), "learning rate"),
    "epochs_negative": ("one_cycle_partial_fit", _nested("_optimizer", epochs=-1), "epoch count"),
    "epochs_float": ("one_cycle_partial_fit", _nested("_optimizer", epochs=1.5), "epoch count"),
    "min_learning_rate_negative": (
        "one_cycle_partial_fit",
        _set(min_learning_rate=-1.0),
        "'min_learning_rate' parameter",
    ),
    "n_cycles_zero": ("cosine_restarts_sgd", _set(n_cycles=0), "'n_cycles' parameter"),
    "sgd_velocity_short": ("sgd_nesterov", _optimizer_array("m", lambda a: a[:3]), "velocity m"),
    "sgd_as_adam": ("sgd_nesterov", _nested("_optimizer", code=1), "second moment v has 0"),
    "optimizer_none": ("adam", _set(_optimizer=None), "_optimizer is not a skbp optimizer"),
    # the layout
    "layout_widths": (
        "adam",
        _nested("_layout", layer_units=[4, 7, 3]),
        "_w has 51 entries where the layer sizes [4, 7, 3] need 59",
    ),  # fmt: skip
    "layout_widths_wrap_around": (  # int64 products that wrap to the weights' size
        "adam",
        _nested("_layout", layer_units=[4, 2**61 + 6, 3]),
        "_w has 51 entries where the layer sizes [4, 2305843009213693958, 3] need",
    ),
    "layout_code_range": (
        "adam",
        _nested("_layout", activation_codes=[99, 0]),
        "not a skbp network layout",
    ),  # fmt: skip
    "layout_residual_unequal_widths": (
        "adam",
        _nested("_layout", residual=[0, 1]),
        "a residual skip at transition 1",
    ),  # fmt: skip
    "layout_batch_norm_int": ("adam", _nested("_layout", batch_norm=1), "network layout"),
    # the periodic embedding: its layout entry, its parameters
    "embedding_column_out_of_range": (
        "periodic_embedding",
        _nested("_layout", embedding={**_EMBEDDING, "columns": [0, 4]}),
        "its embedding does not fit its input layer",
    ),
    "embedding_columns_unsorted": (
        "periodic_embedding",
        _nested("_layout", embedding={**_EMBEDDING, "columns": [2, 0]}),
        "its embedding does not fit its input layer",
    ),
    "embedding_dim_against_first_layer": (
        "periodic_embedding",
        _nested("_layout", embedding={**_EMBEDDING, "embedding_dim": 3}),
        "its embedding does not fit its input layer",
    ),
    "embedding_frequencies_against_weights": (
        "periodic_embedding",
        _nested("_layout", embedding={**_EMBEDDING, "n_frequencies": 4}),
        "_w has",
    ),
    "embedding_dropped_from_layout": (
        "periodic_embedding",
        lambda st: st["_layout"].pop("embedding"),
        "_w has",
    ),
    "embedding_entry_not_a_dict": (
        "periodic_embedding",
        _nested("_layout", embedding=[0, 2]),
        "not a skbp network layout",
    ),
    "embedding_parameter_n_frequencies": (
        "periodic_embedding",
        _set(n_frequencies=5),
        "n_frequencies=5 and embedding_dim=2 but the fitted network's embedding is periodic",
    ),
    "embedding_parameter_features": (
        "periodic_embedding",
        _set(embedding_features=[1]),
        "embedding_features=[1]",
    ),
    "embedding_parameter_off": (
        "periodic_embedding",
        _set(numeric_embedding=None),
        "numeric_embedding=None",
    ),
    "embedding_parameter_on": ("adam", _set(numeric_embedding="periodic"), "embedding is none"),
    "embedding_frequency_scale": (
        "periodic_embedding",
        _set(frequency_scale=0.0),
        "'frequency_scale' parameter",
    ),
    "embedding_member_differs": (
        "ensemble_periodic_embedding",
        lambda st: st["estimators_"].__setitem__(0, fitted("periodic_embedding")[0]),
        "estimators_",
    ),
    # the counts against the layout
    "n_features_in": ("adam", _set(n_features_in_=5), "n_features_in_=5 but"),
    "n_outputs": ("adam", _set(n_outputs_=2), "n_outputs_=2 but"),
    "n_layers": ("adam", _set(n_layers_=4), "n_layers_=4 but"),
    "t_negative": ("adam", _set(t_=-1), "t_=-1 is not a count"),
    "dropout_rates": (
        "batch_norm_residual_dropout",
        _array("_drop_p", lambda a: a + 0.5),
        "the dropout rates _drop_p",
    ),
    # the activation and output codes
    "out_code_out_of_range": ("adam", _set(_out_code=9), "_out_code=9"),
    "out_code_wrong": ("adam", _set(_out_code=1), "_out_code=1 is not the code"),
    "out_activation_unknown": ("adam", _set(out_activation_="relu"), "out_activation_='relu'"),
    "multiclass_logistic": (
        "adam",
        _set(out_activation_="logistic", _out_code=1),
        "a multiclass target needs",
    ),  # fmt: skip
    "binary_softmax": (
        "binary",
        _set(out_activation_="softmax", _out_code=2),
        "a binary target needs",
    ),  # fmt: skip
    "multilabel_softmax": (
        "multilabel",
        _set(out_activation_="softmax", _out_code=2),
        "multilabel-indicator",
    ),  # fmt: skip
    "regressor_exp_output": (
        "regressor_multi_output",
        _set(out_activation_="exp", _out_code=3),
        "loss='squared_error' needs 'identity'",
    ),
    "regressor_loss_changed": (
        "regressor_multi_output",
        _set(loss="poisson"),
        "loss='poisson' needs 'exp'",
    ),  # fmt: skip
    "poisson_identity_output": (
        "regressor_poisson_batch_norm",
        _set(out_activation_="identity", _out_code=0),
        "loss='poisson' needs 'exp'",
    ),
    # the classes
    "classes_changed": ("adam", _set(classes_=np.array([0, 1, 5])), "classes_=array([0, 1, 5])"),
    "classes_reordered": ("adam", _set(classes_=np.array([2, 1, 0])), "disagrees with the label"),
    "classes_as_strings": (
        "string_labels",
        _set(classes_=np.array(["setosa", "versicolor", "virginicA"])),
        "disagrees with the label binarizer",
    ),
    "binarizer_classes_renamed": (
        "adam",
        _binarizer(classes_=np.array([0, 1, 5])),
        "disagrees with the label",
    ),  # fmt: skip
    "binarizer_classes_unsorted": (
        "adam",
        _binarizer(classes_=np.array([2, 1, 0])),
        "not sorted unique labels",
    ),  # fmt: skip
    "binarizer_target_type": ("binary", _binarizer(y_type_="multiclass"), "n_outputs_=1 but"),
    "binarizer_pos_label": ("binary", _binarizer(pos_label=2), "label binarizer's"),
    "binarizer_missing": ("adam", _set(_label_binarizer=None), "_label_binarizer is not"),
    "binarizer_other_type": (
        "adam",
        _set(_label_binarizer=LabelBinarizer),
        "_label_binarizer is not",
    ),  # fmt: skip
    # the parameters: valid, and those of the fitted network
    "parameter_invalid": ("adam", _set(alpha=-1.0), "'alpha' parameter"),
    "parameter_wrong_type": ("adam", _set(n_jobs="all"), "'n_jobs' parameter"),
    "shaping_parameter_missing": (
        "adam",
        lambda st: st.pop("hidden_layer_sizes"),
        "hidden_layer_sizes=(100,) but",
    ),  # fmt: skip
    "scoring_unknown": ("adam", _set(scoring="acuracy"), "scoring='acuracy' is not a scorer"),
    "weight_decay_negative": ("weight_decay", _set(weight_decay=-0.1), "'weight_decay' param"),
    "decay_biases_not_bool": ("weight_decay", _set(decay_biases="no"), "'decay_biases' param"),
    "activation_changed": ("adam", _set(activation="tanh"), "activation='tanh'"),
    "hidden_layer_sizes_changed": ("adam", _set(hidden_layer_sizes=(7,)), "hidden_layer_sizes"),
    "batch_norm_changed": ("adam", _set(batch_norm=True), "batch_norm=True but"),
    "residual_changed": (
        "batch_norm_residual_dropout",
        _set(residual=False),
        "residual skips [0, 1, 1, 0]",
    ),  # fmt: skip
    "dropout_changed": ("batch_norm_residual_dropout", _set(dropout=0.3), "dropout=0.3"),
    "early_stopping_books": ("adam", _set(early_stopping=True), "early_stopping=True follows"),
    "stopping_books": ("adam", _set(best_loss_=None), "early_stopping=False follows"),
    # the books training extends
    "loss_curve": ("adam", _set(loss_curve_=None), "loss_curve_ is not"),
    "validation_loss_curve": (
        "validation_data_scoring_loss",
        _set(validation_loss_curve_=[0.5, "x"]),
        "validation_loss_curve_=[0.5, 'x'] is not",
    ),
    "gradient_norms": ("adam", _set(_gradient_norms=[np.zeros(5)]), "_gradient_norms is not"),
    "no_improvement_count": ("adam", _set(_no_improvement_count=-3), "_no_improvement_count"),
    "missing_weights": ("adam", lambda st: st.pop("_w"), "it lacks _w"),
    # an ensemble: its members against n_ensemble and its network
    "n_ensemble_of_a_single_network": (
        "adam",
        _set(n_ensemble=2),
        "n_ensemble=2 but the fitted model has 1 network(s)",
    ),
    "ensemble_member_missing": (
        "ensemble",
        _array("estimators_", lambda a: a[:2]),
        "not a list of n_ensemble=3 members (list of 2)",
    ),
    "ensemble_n_ensemble_changed": (
        "ensemble",
        _set(n_ensemble=2),
        "not a list of n_ensemble=2 members (list of 3)",
    ),
    "ensemble_members_not_a_list": (
        "ensemble",
        _array("estimators_", tuple),
        "estimators_ is not a list",
    ),  # fmt: skip
    "ensemble_member_unfitted": (
        "ensemble",
        _array("estimators_", lambda a: [a[0], BPClassifier((6,)), a[2]]),
        "estimators_[1] is not a fitted BPClassifier",
    ),
    "ensemble_member_of_another_class": (
        "ensemble",
        _array("estimators_", lambda a: [a[0], fitted("regressor_gelu")[0], a[2]]),
        "estimators_[1] is not a fitted BPClassifier with n_ensemble=1 (BPRegressor)",
    ),
    "ensemble_member_an_ensemble": (
        "ensemble",
        _array("estimators_", lambda a: [a[0], a[1], fitted("ensemble")[0]]),
        "estimators_[2] is not a fitted BPClassifier with n_ensemble=1",
    ),
    "ensemble_member_other_network": (
        "ensemble",
        _array("estimators_", lambda a: [a[0], fitted("batch_norm_residual_dropout")[0], a[2]]),
        "estimators_[1]'s network",
    ),
    "ensemble_member_other_classes": (
        "ensemble",
        _array("estimators_", lambda a: [fitted("string_labels")[0], a[1], a[2]]),
        "estimators_[0]'s network",
    ),
    "ensemble_member_other_dtype": (
        "ensemble",
        _array("estimators_", lambda a: [a[0], fitted("float32")[0], a[2]]),
        "different dtypes ['float32', 'float64']",
    ),
    "ensemble_layout_widths": (
        "ensemble",
        _nested("_layout", layer_units=[4, 7, 3]),
        "estimators_[0]'s network",
    ),  # fmt: skip
    "ensemble_n_features_in": ("ensemble", _set(n_features_in_=5), "n_features_in_=5 but"),
    "ensemble_out_code": ("ensemble", _set(_out_code=1), "_out_code=1 is not the code"),
    "ensemble_loss_curve": ("ensemble", _set(loss_curve_=None), "loss_curve_ is not"),
    "ensemble_n_iter": ("ensemble", _set(n_iter_=-1), "n_iter_=-1 is not a count"),
    "ensemble_missing_layout": ("ensemble", lambda st: st.pop("_layout"), "it lacks _layout"),
    "ensemble_classes_changed": (
        "ensemble",
        _set(classes_=np.array([0, 1, 5])),
        "estimators_[0]'s network",
    ),  # fmt: skip
    "ensemble_hidden_layer_sizes_changed": (
        "ensemble",
        _set(hidden_layer_sizes=(7,)),
        "hidden_layer_sizes",
    ),  # fmt: skip
    "ensemble_regressor_loss_changed": (
        "ensemble_lbfgs",
        _set(loss="poisson"),
        "loss='poisson' needs 'exp'",
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_damaged_state_is_refused_at_load_naming_the_field(case):
    family, edit, match = REFUSED[case]
    est = fitted(family)[0]
    with pytest.raises(ValueError, match="is inconsistent: ") as info:
        load_damaged(est, edit)
    assert match in str(info.value)
    assert "refit it or load an intact copy" in str(info.value)


def test_the_state_a_parameter_was_changed_in_after_fitting_is_refused():
    # partial_fit would rebuild the layers with the new activation: a model
    # that is not the one saved, so it is refused when saved (not in a file
    # that no longer loads) until refit
    est = copy.deepcopy(fitted("adam")[0]).set_params(activation="tanh")
    with pytest.raises(ValueError, match=r"cannot be saved.*activation='tanh'.*refit it first"):
        pickle.dumps(est)
    with pytest.raises(ValueError, match=r"cannot be saved.*activation='tanh'"):
        copy.deepcopy(est)
    est.fit(X_IRIS, Y_IRIS)
    pickle.loads(pickle.dumps(est))
    # parameters that do not shape the network may change freely
    est.set_params(max_iter=7, learning_rate_init=0.01, warm_start=True, solver="sgd")
    assert pickle.loads(pickle.dumps(est)).get_params() == est.get_params()


_LOAD_AND_TRAIN = """
import pickle, sys, warnings
import numpy as np
warnings.simplefilter("ignore")
with open(sys.argv[1], "rb") as f:
    how, blob, X, y = pickle.load(f)
if how == "skops":
    import skops.io as sio
    try:
        est = sio.loads(blob, trusted=["skbp._estimators.BPClassifier"])
    except ValueError as exc:
        print("refused:", exc)
        sys.exit(0)
else:
    try:
        est = pickle.loads(blob)
    except ValueError as exc:
        print("refused:", exc)
        sys.exit(0)
est.predict(X)
print("loaded", flush=True)
for _ in range(3):
    est.partial_fit(X, y)
print("trained", flush=True)
"""


def run_python(script, *args, timeout=180):
    env = dict(os.environ)
    return subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


@pytest.mark.parametrize("how", [pytest.param("skops", marks=pytest.mark.slow), "pickle"])
@pytest.mark.parametrize("family", ["adam", "batch_norm_residual_dropout"])
def test_short_adam_second_moment_is_refused_before_partial_fit_can_crash(
    family, how, tmp_path, monkeypatch
):
    # a file trusted for the estimator's class alone: the load itself refuses
    # it, before partial_fit runs Adam over a second moment shorter than the weights
    est, X, y = fitted(family)
    est = copy.deepcopy(est)
    est._optimizer.v = est._optimizer.v[:3].copy()
    with pytest.raises(ValueError, match="cannot be saved.*Adam's second moment v has 3"):
        pickle.dumps(est)  # refused when saved, too
    # a file damaged after it was written
    monkeypatch.setattr(type(est), "_check_state", lambda self, state, saving=False: None)
    if how == "skops":
        sio = pytest.importorskip("skops.io")
        blob = sio.dumps(est)
        assert sio.get_untrusted_types(data=blob) == ["skbp._estimators.BPClassifier"]
    else:
        blob = pickle.dumps(est)
    with open(tmp_path / "case.pkl", "wb") as f:
        pickle.dump((how, blob, X, y), f)
    done = run_python(_LOAD_AND_TRAIN, tmp_path / "case.pkl")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("refused:"), done.stdout
    assert "Adam's second moment v has 3 entries" in done.stdout


# --------------------------------------------------------------------- fuzz
_FUZZ = """
import json, pickle, sys, warnings
import numpy as np
warnings.simplefilter("ignore")
cases_path, progress_path, result_path = sys.argv[1:4]
with open(cases_path, "rb") as f:
    models = pickle.load(f)
failures, counts = [], {"refused": 0, "loaded": 0}
with open(progress_path, "w") as progress:
    for name, (intact, X, y, cases) in models.items():
        reference = pickle.loads(intact)
        def outputs(est):
            out = [est.predict(X)]
            if hasattr(est, "predict_proba"):
                out.append(est.predict_proba(X))
            return out
        want = outputs(reference)
        for case, blob in cases:
            progress.write(case + "\\n")
            progress.flush()
            try:
                est = pickle.loads(blob)
            except (ValueError, TypeError):
                counts["refused"] += 1
                continue
            except Exception as exc:
                failures.append([case, f"load raised {type(exc).__name__}: {exc}"[:300]])
                continue
            counts["loaded"] += 1
            try:
                got = outputs(est)
                if not all(np.array_equal(a, b) for a, b in zip(got, want, strict=True)):
                    failures.append([case, "loaded, and predicts something else"])
                    continue
                est.partial_fit(X, y)
                outputs(est)
            except Exception as exc:
                failures.append([case, f"{type(exc).__name__}: {exc}"[:300]])
with open(result_path, "w") as f:
    json.dump({"failures": failures, "counts": counts}, f)
"""

#: small fitted models the fuzz damages: (estimator, X, y)
FUZZED = {
    "multiclass_adam": lambda: _fit(BPClassifier((5,), max_iter=3, random_state=0)),
    "binary_sgd_momentum": lambda: _fit(
        BPClassifier((4,), solver="sgd", momentum=0.9, max_iter=3, random_state=0), y=Y_BINARY
    ),
    "regressor": lambda: _fit(
        BPRegressor(hidden_layer_sizes=(4,), max_iter=3, random_state=0), y=Y_TWO
    ),
    "batch_norm": lambda: _fit(
        BPClassifier(
            (4, 4), batch_norm=True, residual=True, dropout=0.1, max_iter=3, random_state=0
        )
    ),
}


def _damages(value, rng):
    """Damaged versions of one field's ``value``: ``(kind, new value)`` pairs."""
    out = [("none", None)]
    if isinstance(value, np.ndarray):
        out.append(("list", value.tolist()))
        if value.ndim == 1 and value.shape[0]:
            i = int(rng.randint(value.shape[0]))
            out += [("shorter", value[:-1]), ("longer", np.append(value, value[-1:]))]
            out.append(("2d", value.reshape(1, -1)))
            if value.dtype.kind == "f":
                for kind, bad in (("nan", np.nan), ("inf", np.inf)):
                    a = value.copy()
                    a[i] = bad
                    out.append((kind, a))
                other = np.float32 if value.dtype == np.float64 else np.float64
                out.append(("dtype", value.astype(other)))
            elif value.dtype.kind in "iub":
                a = value.astype(np.int64)
                a[i] = rng.choice([-1, 2**40])
                out += [("out_of_range", a), ("dtype", value.astype(np.float64))]
                if value.shape[0] > 1:
                    out.append(("swapped", value[::-1].copy()))
                b = value.copy()
                b[i] = value.max() + 1
                out.append(("renamed", b))
            elif value.dtype.kind in "UO":
                out += [("swapped", value[::-1].copy()), ("dtype", value.astype(object))]
                b = value.copy()
                b[i] = "renamed"
                out.append(("renamed", b))
    elif isinstance(value, bool):
        out += [("flipped", not value), ("int", int(not value) + 1), ("str", "yes")]
    elif isinstance(value, (int, np.integer)):
        out += [("negative", -1), ("huge", 2**40), ("plus_one", value + 1)]
        out += [("float", float(value) + 0.5), ("str", str(value))]
    elif isinstance(value, float):
        out += [("nan", np.nan), ("negative", -1.0), ("str", "1.0")]
    elif isinstance(value, str):
        out += [("unknown", "bogus"), ("int", 7), ("list", [value])]
    elif isinstance(value, (list, tuple)):
        out += [("str", "x"), ("dict", {"a": 1})]
        if len(value):
            out += [("shorter", value[:-1]), ("longer", value + value[-1:])]
            i = int(rng.randint(len(value)))
            bad = list(value)
            bad[i] = "x"
            out.append(("element", type(value)(bad)))
            bad = list(value)
            bad[i] = -1
            out.append(("negative_element", type(value)(bad)))
        else:
            out.append(("longer", type(value)([1])))
    elif isinstance(value, dict):
        out.append(("items", list(value.items())))
    else:  # the label binarizer, the random state
        out += [("str", "x"), ("dict", dict(getattr(value, "__dict__", {})))]
    return out


def _fuzz_cases(est, rng):
    """``(name, pickled damaged state)`` for every damage of every field of ``est``'s state."""
    state = est.__getstate__()
    fields = [((k,), v) for k, v in state.items()]
    for k in ("_layout", "_optimizer"):
        fields += [((k, j), v) for j, v in state[k].items()]
    if "_label_binarizer" in state:
        fields += [(("_label_binarizer", j), v) for j, v in vars(state["_label_binarizer"]).items()]
    for path, value in fields:
        for kind, bad in _damages(value, rng):

            def edit(st, path=path, bad=bad):
                if len(path) == 1:
                    st[path[0]] = bad
                elif isinstance(st[path[0]], dict):
                    st[path[0]][path[1]] = bad
                else:
                    setattr(st[path[0]], path[1], bad)

            name = f"{'.'.join(path)}:{kind}"
            yield name, pickle.dumps(Saved(type(est), damaged_state(est, edit)))


@pytest.mark.slow
def test_fuzz_damaged_states_are_refused_or_harmless(tmp_path):
    """Random damage to each field of a saved state, loaded in another process.

    Each damaged state is refused at load, or loads into a model that predicts
    exactly what the intact one does and trains on without an error.  The
    subprocess names each case in a file before running it, so a crash names
    the state that was running (memory damaged by a case can also fail one
    shortly after it).
    """
    rng = np.random.RandomState(0)
    models = {}
    for name, make in FUZZED.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est, X, y = make()
        cases = [(f"{name}:{case}", blob) for case, blob in _fuzz_cases(est, rng)]
        models[name] = (pickle.dumps(est), X, y, cases)
    paths = [tmp_path / p for p in ("cases.pkl", "progress.txt", "result.json")]
    with open(paths[0], "wb") as f:
        pickle.dump(models, f)
    done = run_python(_FUZZ, *paths, timeout=300)
    if done.returncode != 0:
        last = paths[1].read_text().splitlines()[-1:] if paths[1].exists() else []
        pytest.fail(
            f"the fuzz process ended with {done.returncode} at case {last}:\n" + done.stderr[-3000:]
        )
    result = json.loads(paths[2].read_text())
    n_cases = sum(len(m[3]) for m in models.values())
    assert sum(result["counts"].values()) == n_cases > 1000
    assert result["failures"] == [], "\n".join(": ".join(f) for f in result["failures"])


def test_a_model_saved_before_a_parameter_existed_loads_with_its_default():
    """A parameter added to skbp after the model was saved takes its default, which
    keeps the behaviour the model was fitted with."""
    est = fitted("adam")[0]
    state = dict(est.__getstate__())
    del state["scoring"], state["batch_size"]
    loaded = pickle.loads(pickle.dumps(Saved(type(est), state)))
    assert loaded.scoring is None and loaded.batch_size == "auto"
    np.testing.assert_array_equal(loaded.predict_proba(X_IRIS), est.predict_proba(X_IRIS))


def test_an_optimizer_state_saved_before_epochs_were_counted_loads():
    """A model saved before the optimizer counted its epochs (for the per-update
    schedules) loads with none counted, and trains on."""
    est = fitted("adam")[0]
    state = dict(est.__getstate__())
    state["_optimizer"] = {k: v for k, v in state["_optimizer"].items() if k != "epochs"}
    loaded = pickle.loads(pickle.dumps(Saved(type(est), state)))
    assert loaded._optimizer.epochs == 0
    np.testing.assert_array_equal(loaded.predict_proba(X_IRIS), est.predict_proba(X_IRIS))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded.partial_fit(X_IRIS, Y_IRIS)
