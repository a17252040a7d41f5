"""ONNX export (``skbp.onnx``): onnxruntime's labels equal skbp's, its outputs within 1e-4.

Every option that changes inference is covered -- the periodic embedding,
each hidden activation and per-layer activations, batch norm (running
statistics), residual skips, dropout (off at inference) -- for binary, multiclass and multilabel
classification, single- and multi-output regression and the Poisson loss, in
float32 and float64, alone and inside a ``Pipeline``.
"""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbp import BPClassifier, BPRegressor

pytest.importorskip("skl2onnx")
rt = pytest.importorskip("onnxruntime")
from skl2onnx import to_onnx  # noqa: E402

import skbp.onnx  # noqa: E402,F401  (registers the converters)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def run_onnx(onx, X):
    sess = rt.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: X})


def scaled(X):
    return (X - X.mean(0)) / X.std(0)


IRIS = load_iris(return_X_y=True)
OPTIONS = {
    "default": {},
    "logistic": dict(activation="logistic"),
    "tanh": dict(activation="tanh"),
    "identity": dict(activation="identity"),
    "leaky_relu": dict(activation="leaky_relu"),
    "elu": dict(activation="elu"),
    "selu": dict(activation="selu"),
    "gelu": dict(activation="gelu"),
    "mish": dict(activation="mish"),
    "label_smoothing": dict(label_smoothing=0.2),  # training only: the same graph
    "per_layer": dict(hidden_layer_sizes=(8, 8, 8), activation=["leaky_relu", "elu", "tanh"]),
    "batch_norm": dict(hidden_layer_sizes=(8, 8), batch_norm=True),
    "residual": dict(hidden_layer_sizes=(8, 8, 8), residual=True),
    "dropout": dict(hidden_layer_sizes=(16, 8), dropout=0.3),
    "everything": dict(
        hidden_layer_sizes=(8, 8, 8), batch_norm=True, residual=True, dropout=0.1,
        activation=["relu", "leaky_relu", "elu"], solver="sgd", momentum=0.9,
    ),
}  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("option", list(OPTIONS))
def test_classifier_options(option, dtype):
    X, y = IRIS
    X = scaled(X).astype(dtype)
    est = BPClassifier(max_iter=60, random_state=0, **OPTIONS[option]).fit(X, y)
    labels, proba = run_onnx(to_onnx(est, X[:1], options={"zipmap": False}), X)
    np.testing.assert_array_equal(labels, est.predict(X))
    assert proba.dtype == dtype
    np.testing.assert_allclose(proba, est.predict_proba(X), rtol=0, atol=1e-4)
    if option == "batch_norm":  # the running statistics are really in the graph
        assert not np.allclose(est.bn_running_vars_[0], 1.0)


def test_binary_string_labels_and_zipmap():
    X, y = load_breast_cancer(return_X_y=True)
    X = scaled(X)
    y = np.where(y == 1, "benign", "malignant")
    est = BPClassifier((16,), max_iter=30, random_state=0).fit(X, y)
    labels, proba = run_onnx(to_onnx(est, X[:1], options={"zipmap": False}), X)
    np.testing.assert_array_equal(labels, est.predict(X))
    np.testing.assert_allclose(proba, est.predict_proba(X), atol=1e-4)
    # the default options (ZipMap, float64 input): a dict per row, labels as keys
    labels, maps = run_onnx(to_onnx(est, X[:1]), X)
    np.testing.assert_array_equal(labels, est.predict(X))
    assert set(maps[0]) == set(est.classes_)
    np.testing.assert_allclose(
        [[m[c] for c in est.classes_] for m in maps], est.predict_proba(X), atol=1e-4
    )


def test_nocl_outputs_class_indices():
    X, y = IRIS
    X = scaled(X)
    est = BPClassifier(max_iter=60, random_state=0).fit(X, np.array(["a", "b", "c"])[y])
    labels, _ = run_onnx(to_onnx(est, X[:1], options={"nocl": True, "zipmap": False}), X)
    np.testing.assert_array_equal(est.classes_[labels], est.predict(X))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_multilabel(dtype):
    X, y = IRIS
    X = scaled(X).astype(dtype)
    Y = np.c_[y == 0, y == 1, y == 2].astype(int)
    Y[::3, 0] = 1
    est = BPClassifier((12,), max_iter=80, random_state=0).fit(X, Y)
    labels, proba = run_onnx(to_onnx(est, X[:1], options={"zipmap": False}), X)
    assert labels.shape == Y.shape
    np.testing.assert_array_equal(labels, est.predict(X))
    np.testing.assert_allclose(proba, est.predict_proba(X), atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "kw",
    [{}, dict(loss="poisson"), dict(hidden_layer_sizes=(8, 8), batch_norm=True, residual=True),
     dict(activation=["elu", "leaky_relu"], hidden_layer_sizes=(8, 8), dropout=0.2),
     dict(activation=["selu", "gelu", "mish"], hidden_layer_sizes=(8, 8, 8), residual=True)],
    ids=["default", "poisson", "batch_norm_residual", "per_layer_dropout", "selu_gelu_mish"],
)  # fmt: skip
def test_regressor(kw, dtype):
    X, y = load_diabetes(return_X_y=True)
    X = scaled(X).astype(dtype)
    y = (y / y.std()).astype(dtype)
    est = (
        BPRegressor(hidden_layer_sizes=(16,), max_iter=60, random_state=0)
        .set_params(**kw)
        .fit(X, y)
    )
    (values,) = run_onnx(to_onnx(est, X[:1]), X)
    assert values.shape == (X.shape[0], 1) and values.dtype == dtype
    np.testing.assert_allclose(values.ravel(), est.predict(X), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ["selu", "gelu", "mish"])
def test_new_activations_at_extreme_inputs(activation, dtype):
    # pre-activations from about -1e4 to 1e4, where exp overflows in one branch
    X, y = load_diabetes(return_X_y=True)
    X = scaled(X)
    est = BPRegressor(hidden_layer_sizes=(8,), activation=activation, max_iter=5, random_state=0)
    est.fit(X.astype(dtype), (y / y.std()).astype(dtype))
    X_far = (np.r_[X, np.zeros((1, X.shape[1]))] * 3e3).astype(dtype)
    z = X_far @ est.coefs_[0] + est.intercepts_[0]
    assert z.min() < -3e3 and z.max() > 3e3
    (values,) = run_onnx(to_onnx(est, X_far[:1]), X_far)
    assert np.all(np.isfinite(values))
    np.testing.assert_allclose(values.ravel(), est.predict(X_far), rtol=1e-4, atol=1e-4)


def test_multi_output_regressor():
    X, y = load_diabetes(return_X_y=True)
    X = scaled(X)
    Y = np.c_[y, -2 * y] / y.std()
    est = BPRegressor(hidden_layer_sizes=(16,), max_iter=60, random_state=0).fit(X, Y)
    (values,) = run_onnx(to_onnx(est, X[:1]), X)
    assert values.shape == Y.shape
    np.testing.assert_allclose(values, est.predict(X), rtol=1e-4, atol=1e-4)


def test_float32_model_with_float64_input():
    # the graph computes in the model's dtype, as predict casts the rows to it
    X, y = IRIS
    est = BPClassifier(max_iter=60, random_state=0).fit(scaled(X).astype(np.float32), y)
    X64 = scaled(X)
    labels, proba = run_onnx(to_onnx(est, X64[:1], options={"zipmap": False}), X64)
    np.testing.assert_array_equal(labels, est.predict(X64))
    np.testing.assert_allclose(proba, est.predict_proba(X64), atol=1e-6)


def test_pipeline():
    X, y = IRIS
    pipe = make_pipeline(StandardScaler(), BPClassifier(max_iter=60, random_state=0)).fit(X, y)
    labels, proba = run_onnx(to_onnx(pipe, X[:1].astype(np.float32), options={"zipmap": False}),
                             X.astype(np.float32))  # fmt: skip
    np.testing.assert_array_equal(labels, pipe.predict(X))
    np.testing.assert_allclose(proba, pipe.predict_proba(X), atol=1e-4)


def test_single_class():
    X, _ = IRIS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = BPClassifier((4,), max_iter=5, random_state=0).fit(X, np.full(len(X), 7))
    labels, _ = run_onnx(to_onnx(est, X[:1], options={"zipmap": False}), X)
    np.testing.assert_array_equal(labels, est.predict(X))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "target", ["multiclass", "binary", "multilabel", "regressor", "poisson_batch_norm"]
)
def test_ensemble_graph_averages_the_members(target, dtype):
    # predict_proba averages the members' probabilities and predict takes the
    # labels of that mean: the graph must do the same, not export one member
    X, y = IRIS
    X = scaled(X).astype(dtype)
    kw = dict(hidden_layer_sizes=(8,), max_iter=30, random_state=0, n_ensemble=3)
    if target in ("regressor", "poisson_batch_norm"):
        extra = dict(loss="poisson", batch_norm=True) if target == "poisson_batch_norm" else {}
        est = BPRegressor(**kw, **extra).fit(X, (X[:, 2] - X[:, 2].min()).astype(dtype))
        (values,) = run_onnx(to_onnx(est, X[:1]), X)
        np.testing.assert_allclose(values.ravel(), est.predict(X), rtol=1e-4, atol=1e-4)
        one = est.estimators_[0].predict(X)
        assert not np.allclose(values.ravel(), one, rtol=1e-4, atol=1e-4)
        return
    targets = {
        "multiclass": y,
        "binary": (y == 2).astype(int),
        "multilabel": np.c_[y == 0, y == 1, y == 2].astype(int),
    }
    est = BPClassifier(**kw).fit(X, targets[target])
    labels, proba = run_onnx(to_onnx(est, X[:1], options={"zipmap": False}), X)
    np.testing.assert_array_equal(labels, est.predict(X))
    np.testing.assert_allclose(proba, est.predict_proba(X), rtol=0, atol=1e-4)
    assert not np.allclose(proba, est.estimators_[0].predict_proba(X), rtol=0, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "kw",
    [
        dict(numeric_embedding="periodic", embedding_features=[0, 2], n_frequencies=3),
        dict(numeric_embedding="periodic", embedding_dim=2, batch_norm=True, n_ensemble=2),
    ],
    ids=["some_columns", "all_columns_batch_norm_ensemble"],
)
def test_periodic_embedding(kw, dtype):
    X, y = IRIS
    X = scaled(X).astype(dtype)
    est = BPClassifier((8,), max_iter=30, random_state=0, frequency_scale=0.5, **kw).fit(X, y)
    labels, proba = run_onnx(to_onnx(est, X[:1], options={"zipmap": False}), X)
    np.testing.assert_array_equal(labels, est.predict(X))
    np.testing.assert_allclose(proba, est.predict_proba(X), rtol=0, atol=1e-4)
    reg = BPRegressor(hidden_layer_sizes=(8,), max_iter=30, random_state=0, **kw)
    reg.fit(X, X[:, 3] * 2)
    (values,) = run_onnx(to_onnx(reg, X[:1]), X)
    np.testing.assert_allclose(values.ravel(), reg.predict(X), rtol=1e-4, atol=1e-4)
