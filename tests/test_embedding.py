"""The periodic (PLR) embedding of numeric inputs (``numeric_embedding='periodic'``).

The compiled gradient of the embedding's frequencies, weights and biases
against central finite differences (``skbp._training.loss_grad``, as in
``test_gradients.py``), the forward pass against a NumPy reference written
from the formulas, which parameters the penalty and weight decay reach, the
fitted attributes, float32, determinism over thread counts, ensembles, warm
starts, the errors for bad values, and a periodic target that a plain network
of the same size underfits.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import kernel_loss_grad, np_forward, numeric_gradient
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import InvalidParameterError

from skbp import BPClassifier, BPRegressor, _memory
from skbp._data import Problem
from skbp._kernels import ACT_RELU, ACT_TANH, OUT_IDENTITY, OUT_SOFTMAX
from skbp._layout import Layout
from skbp._update import EMB_WEIGHTS, REST

N_ROWS, N_FEATURES = 23, 5
CHUNK = 7  # not a divisor of N_ROWS: the gradient is accumulated over chunks


def np_embed(X, columns, freq, coefs, intercepts):
    """The first hidden layer's input from the formulas: each embedded column's
    ``relu([cos(2 pi c x), sin(2 pi c x)] V + b)``, then the other columns."""
    X = np.asarray(X, dtype=np.float64)
    parts = []
    for j, col in enumerate(columns):
        a = 2 * np.pi * X[:, [col]] * freq[j]  # (n, k)
        v = np.hstack([np.cos(a), np.sin(a)])
        parts.append(np.maximum(v @ coefs[j] + intercepts[j], 0.0))
    others = [c for c in range(X.shape[1]) if c not in set(columns)]
    return np.hstack([*parts, X[:, others]])


def make_case(columns, k, d, hidden=(4, 3), n_out=2, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(N_ROWS, N_FEATURES))
    Y = rng.normal(size=(N_ROWS, n_out))
    sw = rng.uniform(0.2, 3.0, size=N_ROWS)
    embedding = {"n_inputs": N_FEATURES, "columns": columns, "n_frequencies": k,
                 "embedding_dim": d}  # fmt: skip
    n_first = len(columns) * d + N_FEATURES - len(columns)
    layout = Layout([n_first, *hidden, n_out], False, embedding)
    # frequencies of order one: several periods over the data's range
    w = layout.init_params(rng, "tanh", np.float64, frequency_scale=0.5)
    return Problem(X, np.float64, Y, sw), layout, w


CASES = {
    "all_columns": ([0, 1, 2, 3, 4], 3, 2, (4, 3), ACT_TANH, OUT_IDENTITY),
    "some_columns_passed_through": ([0, 2, 3], 2, 3, (4,), ACT_TANH, OUT_IDENTITY),
    "one_column_softmax": ([4], 4, 2, (3, 3), ACT_RELU, OUT_SOFTMAX),
    "no_hidden_layer": ([1, 3], 2, 2, (), ACT_TANH, OUT_IDENTITY),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_embedding_gradient_matches_finite_differences(case, alpha):
    columns, k, d, hidden, act, out_code = CASES[case]
    n_out = 3 if out_code == OUT_SOFTMAX else 2
    problem, layout, w = make_case(columns, k, d, hidden, n_out)
    if out_code == OUT_SOFTMAX:
        problem = Problem(problem.X, np.float64, np.eye(3)[np.arange(N_ROWS) % 3], problem.sw)
    w0 = w.copy()
    loss, grad = kernel_loss_grad(layout, w, problem, act, out_code, alpha, CHUNK)
    np.testing.assert_array_equal(w, w0)  # the kernel leaves the parameters alone

    def objective(v):
        return kernel_loss_grad(layout, v, problem, act, out_code, alpha, CHUNK)

    num = numeric_gradient(objective, w)
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-7)
    # every part of the embedding learns: frequencies, weights and biases
    for part in layout.unpack_embedding(grad):
        assert np.any(np.abs(part) > 1e-6)


def test_embedding_gradient_does_not_depend_on_the_chunk():
    problem, layout, w = make_case([0, 2, 3], 3, 2)
    _, whole = kernel_loss_grad(layout, w, problem, ACT_TANH, OUT_IDENTITY, 0.1, N_ROWS)
    _, chunked = kernel_loss_grad(layout, w, problem, ACT_TANH, OUT_IDENTITY, 0.1, CHUNK)
    np.testing.assert_allclose(chunked, whole, rtol=1e-12, atol=1e-14)


def test_penalty_reaches_the_embedding_weights_only():
    # alpha's L2 penalty is on the weight matrices, the embedding's included;
    # the frequencies and biases are not penalised (as the first layer's biases)
    problem, layout, w = make_case([0, 2, 3], 3, 2)
    alpha = 0.7
    loss0, g0 = kernel_loss_grad(layout, w, problem, ACT_TANH, OUT_IDENTITY, 0.0, CHUNK)
    loss1, g1 = kernel_loss_grad(layout, w, problem, ACT_TANH, OUT_IDENTITY, alpha, CHUNK)
    freq, coefs, intercepts = layout.unpack_embedding(w)
    sw_sum = problem.sw.sum()
    weights_sq = sum(float((c**2).sum()) for c in layout.unpack(w)[0]) + float((coefs**2).sum())
    np.testing.assert_allclose(loss1 - loss0, 0.5 * alpha * weights_sq / sw_sum, rtol=1e-10)
    before, after = layout.unpack_embedding(g0), layout.unpack_embedding(g1)
    dfreq, dcoefs, dint = (b - a for a, b in zip(before, after, strict=True))
    np.testing.assert_allclose(dcoefs, alpha * coefs / sw_sum, rtol=1e-10)
    assert not dfreq.any() and not dint.any()
    # the update's blocks: weight decay shrinks the embedding's weights, not its
    # frequencies nor biases (unless decay_biases)
    blocks = layout.param_blocks()
    c0, c1 = layout.emb_coef_range()
    assert [(int(s), int(e)) for s, e, code in blocks if code == EMB_WEIGHTS] == [(c0, c1)]
    f0 = layout.emb_off
    assert any(s <= f0 < e and code == REST for s, e, code in blocks)


def embedded_output(est, X):
    """The network output from the fitted attributes, in NumPy."""
    H = np_embed(X, est._layout.emb_cols, est.embedding_frequencies_, est.embedding_coefs_,
                 est.embedding_intercepts_)  # fmt: skip
    return np_forward(H, est.coefs_, est.intercepts_, est.activation, "identity")


def _data(n=400, seed=0, dtype=np.float64):
    rng = np.random.RandomState(seed)
    X = rng.uniform(-1, 1, size=(n, 3))
    y = np.sin(8 * X[:, 0]) + 0.5 * X[:, 1] + 0.05 * rng.normal(size=n)
    return X.astype(dtype), y.astype(dtype)


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


@pytest.mark.parametrize("features", [None, [0, 2], np.array([False, True, False])])
def test_prediction_matches_the_numpy_reference(features):
    X, y = _data()
    est = _fit(
        BPRegressor(hidden_layer_sizes=(8, 5), activation="tanh", numeric_embedding="periodic",
                    embedding_features=features, n_frequencies=3, embedding_dim=4,
                    frequency_scale=0.5, max_iter=5, random_state=0),
        X, y,
    )  # fmt: skip
    n_e = len(est._layout.emb_cols)
    assert est.embedding_frequencies_.shape == (n_e, 3)
    assert est.embedding_coefs_.shape == (n_e, 6, 4)
    assert est.embedding_intercepts_.shape == (n_e, 4)
    assert est.coefs_[0].shape == (n_e * 4 + 3 - n_e, 8)
    np.testing.assert_allclose(est.predict(X), embedded_output(est, X)[:, 0], rtol=1e-10)
    # the attributes are views of the trained parameters: editing one changes predictions
    before = est.predict(X[:5])
    est.embedding_frequencies_[0, 0] += 1.0
    assert not np.allclose(est.predict(X[:5]), before)
    np.testing.assert_allclose(est.predict(X), embedded_output(est, X)[:, 0], rtol=1e-10)


def test_initialisation_follows_the_reference_scales_and_leaves_the_rest_alone():
    X, y = _data()
    params = dict(hidden_layer_sizes=(8,), max_iter=1, random_state=3)
    plain = _fit(BPRegressor(**params), X, y)
    est = BPRegressor(numeric_embedding="periodic", embedding_features=[1], n_frequencies=200,
                      embedding_dim=3, frequency_scale=0.2, **params)  # fmt: skip
    est.set_params(learning_rate_init=1e-12)  # one epoch that barely moves anything
    _fit(est, X, y)
    freq = est.embedding_frequencies_
    assert np.abs(freq).max() <= 3 * 0.2 and 0.15 < freq.std() < 0.25
    bound = 1 / np.sqrt(2 * 200)
    assert np.abs(est.embedding_coefs_).max() <= bound * (1 + 1e-6)
    # the MLP's own draws come first, as without an embedding (only the first
    # layer's width differs, so compare the output layer's)
    assert est.coefs_[-1].shape == plain.coefs_[-1].shape


def test_fitted_attributes_need_an_embedding():
    X, y = _data()
    est = _fit(BPRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0), X, y)
    with pytest.raises(AttributeError, match="has no numeric embedding"):
        _ = est.embedding_frequencies_
    with pytest.raises(AttributeError, match="not fitted"):
        _ = BPRegressor(numeric_embedding="periodic").embedding_coefs_


def test_a_periodic_target_is_fitted_where_a_plain_network_underfits():
    # y = sin(8 x0): four periods over [-1, 1], which a ReLU network of 32
    # units fits poorly in this budget and the embedding fits almost exactly
    X, y = _data(n=2000)
    Xt, yt, Xv, yv = X[:1500], y[:1500], X[1500:], y[1500:]
    params = dict(hidden_layer_sizes=(32,), max_iter=60, learning_rate_init=0.003,
                  random_state=0)  # fmt: skip
    plain = _fit(BPRegressor(**params), Xt, yt).score(Xv, yv)
    emb = _fit(
        BPRegressor(numeric_embedding="periodic", n_frequencies=8, embedding_dim=8, **params),
        Xt, yt,
    ).score(Xv, yv)  # fmt: skip
    assert emb > 0.95
    assert emb > plain + 0.1


def test_float32_trains_in_float32_as_float64_does():
    X, y = _data()
    params = dict(hidden_layer_sizes=(8,), numeric_embedding="periodic", n_frequencies=4,
                  embedding_dim=3, max_iter=20, random_state=0)  # fmt: skip
    est = _fit(BPRegressor(**params), X.astype(np.float32), y.astype(np.float32))
    assert est._w.dtype == np.float32 and est.embedding_frequencies_.dtype == np.float32
    pred = est.predict(X.astype(np.float32))
    assert pred.dtype == np.float32
    np.testing.assert_allclose(pred, embedded_output(est, X)[:, 0], rtol=1e-4, atol=1e-5)
    # the same training in float64: the same network up to float32's rounding
    ref = _fit(BPRegressor(**params), X, y)
    np.testing.assert_allclose(est.embedding_frequencies_, ref.embedding_frequencies_, atol=1e-4)
    np.testing.assert_allclose(pred, ref.predict(X), atol=1e-3)


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_the_same_weights_for_n_jobs_1_and_2(solver):
    X, y = _data()
    fits = [
        _fit(
            BPRegressor(
                hidden_layer_sizes=(16,),
                solver=solver,
                numeric_embedding="periodic",
                embedding_features=[0, 1],
                max_iter=5,
                random_state=0,
                n_jobs=n_jobs,
            ),
            X,
            y,
        )  # fmt: skip
        for n_jobs in (1, 2)
    ]
    np.testing.assert_array_equal(fits[0]._w, fits[1]._w)
    # ... and the same random_state starts from the same weights
    again = _fit(clone(fits[0]), X, y)
    np.testing.assert_array_equal(again._w, fits[0]._w)


def test_options_train_the_embedding_too():
    # early stopping's best-weights copy, weight decay, a schedule, warm start
    # and partial_fit all act on the one parameter vector, the embedding included
    X, y = _data()
    est = BPRegressor(hidden_layer_sizes=(8,), numeric_embedding="periodic", n_frequencies=3,
                      embedding_dim=2, early_stopping=True, weight_decay=0.01,
                      learning_rate="cosine", max_iter=8, random_state=0)  # fmt: skip
    _fit(est, X, y)
    first = est.embedding_frequencies_.copy()
    est.set_params(warm_start=True)
    _fit(est, X, y)
    assert not np.array_equal(est.embedding_frequencies_, first)
    est2 = BPRegressor(hidden_layer_sizes=(8,), numeric_embedding="periodic", random_state=0)
    est2.partial_fit(X, y)
    f1 = est2.embedding_frequencies_.copy()
    est2.partial_fit(X, y)
    assert not np.array_equal(est2.embedding_frequencies_, f1)
    np.testing.assert_allclose(est2.predict(X), embedded_output(est2, X)[:, 0], rtol=1e-10)


def test_warm_start_refuses_a_changed_embedding():
    X, y = _data()
    est = _fit(BPRegressor(hidden_layer_sizes=(4,), numeric_embedding="periodic",
                           max_iter=2, random_state=0), X, y)  # fmt: skip
    est.set_params(warm_start=True, embedding_features=[0])
    with pytest.raises(ValueError, match=r"numeric embedding is periodic on columns \[0, 1, 2\]"):
        est.fit(X, y)
    est.set_params(embedding_features=None, numeric_embedding=None)
    with pytest.raises(ValueError, match="now ask for none"):
        est.fit(X, y)


def test_an_ensemble_of_embedded_networks():
    X, y = _data()
    est = _fit(
        BPRegressor(hidden_layer_sizes=(8,), numeric_embedding="periodic", embedding_features=[0],
                    n_frequencies=3, embedding_dim=2, max_iter=5, random_state=0, n_ensemble=2),
        X, y,
    )  # fmt: skip
    assert est.embedding_frequencies_.shape == (2, 1, 3)
    members = est.estimators_
    assert not np.array_equal(members[0].embedding_frequencies_, members[1].embedding_frequencies_)
    np.testing.assert_allclose(
        est.predict(X), np.mean([m.predict(X) for m in members], axis=0), rtol=1e-12
    )
    with pytest.raises(ValueError, match="read-only"):
        est.embedding_coefs_[0, 0, 0, 0] = 1.0


def test_classifier_with_an_embedding():
    X, _ = _data()
    y = (np.sin(6 * X[:, 0]) > 0).astype(int)
    est = _fit(BPClassifier((16,), numeric_embedding="periodic", frequency_scale=0.5,
                            max_iter=50, random_state=0), X, y)  # fmt: skip
    assert est.score(X, y) > 0.9


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"numeric_embedding": "pbld"}, InvalidParameterError, "'numeric_embedding' parameter"),
        ({"n_frequencies": 0}, InvalidParameterError, "'n_frequencies' parameter"),
        ({"embedding_dim": 0}, InvalidParameterError, "'embedding_dim' parameter"),
        ({"frequency_scale": 0.0}, InvalidParameterError, "'frequency_scale' parameter"),
        ({"frequency_scale": -1.0}, InvalidParameterError, "'frequency_scale' parameter"),
        ({"embedding_features": [True, False]}, ValueError, r"shape \(2,\), but X has 3"),
        ({"embedding_features": [0, 3]}, ValueError, r"distinct column indices in \[0, 3\)"),
        ({"embedding_features": [-1]}, ValueError, "distinct column indices"),
        ({"embedding_features": [1, 1]}, ValueError, "distinct column indices"),
        ({"embedding_features": [0.5]}, ValueError, "boolean mask of the columns of X or"),
        ({"embedding_features": [False] * 3}, ValueError, "selects no column of X"),
        ({"embedding_features": []}, ValueError, "selects no column of X"),
    ],
)
def test_bad_values_are_refused_clearly(params, error, match):
    X, y = _data(n=20)
    params = {"numeric_embedding": "periodic", **params}
    with pytest.raises(error, match=match):
        BPRegressor(hidden_layer_sizes=(3,), max_iter=1, **params).fit(X, y)


def test_sparse_input_is_refused_with_an_embedding():
    X, y = _data(n=20)
    est = BPRegressor(hidden_layer_sizes=(3,), numeric_embedding="periodic", max_iter=1)
    with pytest.raises(ValueError, match="needs dense X"):
        est.fit(sp.csr_matrix(X), y)


def test_embedding_features_are_ignored_without_an_embedding():
    X, y = _data(n=50)
    params = dict(hidden_layer_sizes=(3,), max_iter=2, random_state=0)
    a = _fit(BPRegressor(**params), X, y)
    b = _fit(BPRegressor(embedding_features=[0], n_frequencies=5, **params), X, y)
    np.testing.assert_array_equal(a._w, b._w)


def test_the_memory_check_counts_the_embedding(monkeypatch):
    # an embedding whose own parameters (n_e * 2k * d weights) dwarf the network
    # is refused before anything is allocated, and its parameters are named
    X, y = _data(n=50)
    params = dict(hidden_layer_sizes=(4,), numeric_embedding="periodic", n_frequencies=4000,
                  embedding_dim=100, max_iter=1)  # fmt: skip
    n_e, k, d = 3, 4000, 100
    with_emb = _memory.fit_bytes([n_e * d, 4, 1], np.float64, 50, solver="adam",
                                 embedding=(n_e, k, d))  # fmt: skip
    without = _memory.fit_bytes([n_e * d, 4, 1], np.float64, 50, solver="adam")
    assert with_emb - without >= 5 * n_e * 2 * k * d * 8  # weights, gradient, copies, moments
    monkeypatch.setattr(_memory, "available_memory", lambda: int((without + with_emb) / 2))
    with pytest.raises(MemoryError, match=r"its network has 2,4\d\d,\d\d\d parameters"):
        BPRegressor(**params).fit(X, y)
