"""TabularClassifier and TabularRegressor: tables in, the recipe's preprocessing inside."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.ensemble._hist_gradient_boosting.gradient_boosting import (
    _check_categorical_features,
)
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GridSearchCV, KFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, TargetEncoder

from skbp import BPClassifier, BPRegressor, TabularClassifier, TabularRegressor
from skbp.preprocessing import RobustSmoothClipScaler

# small and quick: what is tested is the columns' path, not the recipe's accuracy
FAST = dict(hidden_layer_sizes=(32,), max_iter=20, learning_rate_init=0.01, random_state=0)


def make_table(n=300, seed=0):
    """Numbers with NaN and pd.NA, a small and a large categorical with missing values, a bool."""
    rng = np.random.RandomState(seed)
    num = rng.standard_normal(n)
    num[rng.rand(n) < 0.1] = np.nan
    count = pd.array(rng.randint(0, 50, n), dtype="Int64")
    count[rng.rand(n) < 0.1] = pd.NA
    color = rng.choice(["red", "green", "blue", None], n).astype(object)
    city = pd.Categorical(rng.choice([f"city{i:02d}" for i in range(30)], n))
    city[rng.rand(n) < 0.05] = np.nan
    flag = rng.rand(n) < 0.3
    X = pd.DataFrame({"num": num, "count": count, "color": color, "city": city, "flag": flag})
    city_effect = np.asarray(city.codes % 5, dtype=float)
    y = (
        2 * np.nan_to_num(num)
        + (color == "red")
        + city_effect
        + flag
        + 0.1 * rng.standard_normal(n)
    )
    return X, y


def by_hand(X, names):
    """The columns ``names`` of ``X`` as an object array, every missing value NaN."""
    block = X[names].astype(object).to_numpy(dtype=object, copy=True)
    block[pd.isna(block)] = np.nan
    return block


# ------------------------------------------------------------------- columns
def test_fit_predict_on_a_mixed_table():
    X, y = make_table()
    clf = TabularClassifier(**FAST).fit(X, y > np.median(y))
    # object, category and bool columns are categorical; the nullable integers are numbers
    assert_array_equal(clf.is_categorical_, [False, False, True, True, True])
    assert_array_equal(clf.feature_names_in_, X.columns)
    names = clf.preprocessor_.get_feature_names_out(clf.feature_names_in_)
    assert_array_equal(
        names,
        ["num", "count", "missingindicator_num", "missingindicator_count"]
        + ["color_blue", "color_green", "color_red", "color_nan", "flag_False", "flag_True"]
        + ["city"],  # 30 categories: target-encoded
    )
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2) and np.isfinite(proba).all()
    assert clf.score(X, y > np.median(y)) > 0.8
    assert clf.n_iter_ == FAST["max_iter"]


def test_unknown_categories_at_predict():
    X, y = make_table()
    reg = TabularRegressor(**FAST).fit(X, y)
    new = X.iloc[:3].copy()
    new["color"] = ["purple", "red", None]
    new["city"] = pd.Categorical(["atlantis", "city01", "city01"])
    Xt = reg.preprocessor_.transform(new)
    onehot = reg.preprocessor_.onehot_.transform(by_hand(new, ["color", "flag"]))
    # an unseen small category is all zeros in its one-hot block; missing is its own
    assert_array_equal(onehot[0, :4], 0)
    assert_array_equal(onehot[2, :4], [0, 0, 0, 1])
    # an unseen large category gets the target encoder's mean of the (standardised) target
    assert_allclose(Xt[0, -1], reg.preprocessor_.target_.target_mean_)
    assert np.isfinite(reg.predict(new)).all()


def test_feature_names_and_column_order_are_checked():
    X, y = make_table()
    clf = TabularClassifier(**FAST).fit(X, y > 0)
    with pytest.raises(ValueError, match="The feature names should match"):
        clf.predict(X[X.columns[::-1]])
    with pytest.raises(ValueError, match="X has 4 features"):
        clf.predict(X.iloc[:, :4].to_numpy())


def test_arrays_have_no_categorical_column_unless_given():
    X, y = make_table()
    X_num = X[["num", "flag"]].astype(float).to_numpy()
    assert not TabularRegressor(**FAST).fit(X_num, y).is_categorical_.any()
    # an object array with the categorical columns named by index encodes as the DataFrame
    frame = X[["num", "color", "city"]]
    array = frame.astype(object).to_numpy()
    from_frame = TabularRegressor(**FAST).fit(frame, y)
    from_array = TabularRegressor(categorical_features=[1, 2], **FAST).fit(array, y)
    assert_array_equal(from_array.is_categorical_, [False, True, True])
    assert_allclose(from_array.predict(array), from_frame.predict(frame))


@pytest.mark.parametrize(
    "spec",
    [[2, 3], ["c", "d"], [False, False, True, True, False], None, np.array([], dtype=int)],
)
def test_categorical_features_as_hist_gradient_boosting_takes_them(spec):
    rng = np.random.RandomState(0)
    # numbers, and categories of numbers, which either kind of column can hold
    codes = [pd.Categorical(rng.randint(0, k, 100)) for k in (3, 20)]
    X = pd.DataFrame({"a": rng.rand(100), "b": rng.rand(100), "c": codes[0], "d": codes[1]})
    X["e"] = rng.rand(100)
    y = rng.rand(100)
    reg = TabularRegressor(categorical_features=spec, **FAST).fit(X, y)
    expected = _check_categorical_features(X, spec)
    assert_array_equal(reg.is_categorical_, expected if expected is not None else False)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (["colour"], "not a valid feature name"),
        ([7], r"must be in \[0, n_features - 1\]"),
        ([True, False], "must have shape"),
        ([1.5], "array-like of bool, int or str"),
    ],
)
def test_categorical_features_errors(spec, match):
    X, y = make_table()
    with pytest.raises(ValueError, match=match):
        TabularRegressor(categorical_features=spec, **FAST).fit(X, y)


def test_names_need_a_dataframe_and_strings_need_declaring():
    X, y = make_table()
    with pytest.raises(ValueError, match="without feature names"):
        TabularRegressor(categorical_features=["color"], **FAST).fit(X.to_numpy(), y)
    with pytest.raises(ValueError, match=r"\['color'\] are not numeric"):
        TabularRegressor(categorical_features=[3], **FAST).fit(X, y)


# ------------------------------------------------------ the reference pipeline
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_outputs", [1, 2])
def test_regressor_matches_the_pipeline_built_by_hand(weighted, n_outputs):
    X, y = make_table(n=400)
    if n_outputs == 2:
        y = np.column_stack([y, 1000 * y**2 + 5])
    X_train, X_test, y_train, _ = train_test_split(X, y, random_state=0)
    sw = np.random.RandomState(1).uniform(0.5, 2.0, len(X_train)) if weighted else None
    reg = TabularRegressor(**FAST).fit(X_train, y_train, sample_weight=sw)

    # the recipe with scikit-learn's and skbp's public pieces
    numeric = make_pipeline(
        RobustSmoothClipScaler(),
        SimpleImputer(strategy="constant", fill_value=0.0, add_indicator=True),
    )
    onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    target = TargetEncoder(cv=KFold(5, shuffle=True, random_state=0))
    w = np.ones(len(X_train)) if sw is None else sw
    Y = y_train.reshape(len(y_train), -1)
    mean = np.average(Y, axis=0, weights=w)
    std = np.sqrt(np.average((Y - mean) ** 2, axis=0, weights=w))
    Y_std = (Y - mean) / std
    nums = ["num", "count"]
    Xt = np.hstack(
        [
            numeric.fit_transform(X_train[nums].astype(float).to_numpy()),
            onehot.fit_transform(by_hand(X_train, ["color", "flag"])),
            target.fit_transform(by_hand(X_train, ["city"]), Y_std.mean(axis=1)),
        ]
    ).astype(np.float32)  # the network trains in float32 (dtype's default)
    Xt_test = np.hstack(
        [
            numeric.transform(X_test[nums].astype(float).to_numpy()),
            onehot.transform(by_hand(X_test, ["color", "flag"])),
            target.transform(by_hand(X_test, ["city"])),
        ]
    ).astype(np.float32)
    net = BPRegressor(
        hidden_layer_sizes=(32,), activation="mish", learning_rate="one_cycle",
        learning_rate_init=reg.learning_rate_init, max_iter=20, batch_size=256, dropout=0.15,
        weight_decay=reg.weight_decay, alpha=0.0, beta_2=0.95, n_iter_no_change=np.inf,
        early_stopping=reg.early_stopping, validation_fraction=0.2, random_state=0,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net.fit(Xt, Y_std.ravel() if n_outputs == 1 else Y_std, sample_weight=sw)
    expected = net.predict(Xt_test).reshape(len(X_test), -1) * std + mean
    assert_allclose(reg.y_mean_, mean)
    assert_allclose(reg.y_scale_, std)
    got = reg.predict(X_test)
    assert got.shape == ((len(X_test),) if n_outputs == 1 else (len(X_test), 2))
    assert_allclose(got.reshape(len(X_test), -1), expected, rtol=1e-10, atol=1e-10)


def test_sample_weight_reaches_the_network():
    X, y = make_table()
    labels = y > np.median(y)
    # zero weights on one class: the network learns the other one alone
    sw = np.where(labels, 1.0, 0.0)
    clf = TabularClassifier(**FAST).fit(X, labels, sample_weight=sw)
    assert clf.predict(X).all()


# ------------------------------------------------------------------ accuracy
@pytest.mark.slow
@pytest.mark.parametrize(("load", "bar"), [(load_breast_cancer, 0.95), (load_wine, 0.95)])
def test_default_classifier_accuracy(load, bar):
    X, y = load(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
    clf = TabularClassifier(random_state=0).fit(X_train, y_train)
    assert clf.score(X_test, y_test) > bar


# ------------------------------------------------------ conventions and state
def test_random_state_makes_fits_identical():
    X, y = make_table()
    a = TabularClassifier(**FAST).fit(X, y > 0).predict_proba(X)
    b = TabularClassifier(**FAST).fit(X, y > 0).predict_proba(X)
    c = TabularClassifier(**{**FAST, "random_state": 1}).fit(X, y > 0).predict_proba(X)
    assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_pickle_round_trip():
    X, y = make_table()
    clf = TabularClassifier(**FAST).fit(X, y > 0)
    again = pickle.loads(pickle.dumps(clf))
    assert_array_equal(again.predict_proba(X), clf.predict_proba(X))


def test_skops_round_trip():
    sio = pytest.importorskip("skops.io")
    X, y = make_table()
    reg = TabularRegressor(**FAST).fit(X, y)
    blob = sio.dumps(reg)
    untrusted = sio.get_untrusted_types(data=blob)
    # skbp's own types, and what scikit-learn's encoders hold that skops does not trust
    assert set(untrusted) == {
        "skbp.tabular.TabularRegressor",
        "skbp.tabular._ColumnEncoder",
        "skbp._estimators.BPRegressor",
        "skbp.preprocessing.RobustSmoothClipScaler",
        "sklearn.model_selection._split.KFold",
        "numpy.dtype",
    }
    loaded = sio.loads(blob, trusted=untrusted)
    assert_array_equal(loaded.predict(X), reg.predict(X))


def test_grid_search_on_a_dataframe():
    X, y = make_table()
    search = GridSearchCV(
        TabularClassifier(**FAST),
        {"max_onehot_cardinality": [2, 8], "dropout": [0.0, 0.15]},
        cv=3,
    ).fit(X, y > 0)
    assert set(search.best_params_) == {"max_onehot_cardinality", "dropout"}
    assert search.best_estimator_.predict(X).shape == (len(X),)


def test_max_onehot_cardinality_moves_columns_to_the_target_encoder():
    X, y = make_table()
    reg = TabularRegressor(max_onehot_cardinality=2, **FAST).fit(X, y)
    # color has 3 categories (None is missing, not counted), flag 2
    assert_array_equal(reg.preprocessor_.onehot_columns_, [4])
    assert_array_equal(reg.preprocessor_.target_columns_, [2, 3])


def test_validation_rows_are_encoded_like_the_training_rows():
    X, y = make_table(n=400)
    labels = y > np.median(y)
    clf = TabularClassifier(early_stopping=True, **FAST).fit(
        X.iloc[:300], labels[:300], X_val=X.iloc[300:], y_val=labels[300:]
    )
    assert len(clf.network_.validation_scores_) == FAST["max_iter"]
    with pytest.raises(ValueError, match="early_stopping is False"):
        TabularClassifier(**FAST).fit(X, labels, X_val=X, y_val=labels)


def test_network_defaults_are_the_recipe():
    clf, reg = TabularClassifier(), TabularRegressor()
    for est, act in ((clf, "selu"), (reg, "mish")):
        assert est.hidden_layer_sizes == (256, 256, 256) and est.activation == act
        assert (est.max_iter, est.batch_size, est.dropout, est.beta_2) == (256, 256, 0.15, 0.95)
        assert est.max_onehot_cardinality == 8
    assert clf.label_smoothing == 0.1
    assert isinstance(clf._network(), BPClassifier) and isinstance(reg._network(), BPRegressor)
    assert clone(clf).get_params() == clf.get_params()


@pytest.mark.parametrize("Estimator", [TabularClassifier, TabularRegressor])
def test_dtype_sets_the_networks_precision(Estimator):
    X, y = make_table()
    if Estimator is TabularClassifier:
        y = y > np.median(y)
    default = Estimator(**FAST).fit(X, y)
    assert default.network_.coefs_[0].dtype == np.float32
    wide = Estimator(dtype="float64", **FAST).fit(X, y)
    assert wide.network_.coefs_[0].dtype == np.float64
    # the same model up to float32 rounding
    out = "predict_proba" if Estimator is TabularClassifier else "predict"
    assert_allclose(getattr(default, out)(X), getattr(wide, out)(X), rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="dtype"):
        Estimator(dtype="float16", **FAST).fit(X, y)


def test_n_ensemble_averages_the_members_probabilities():
    X, y = make_table()
    labels = y > np.median(y)
    clf = TabularClassifier(n_ensemble=3, **FAST).fit(X, labels)
    members = clf.network_.estimators_
    assert len(members) == 3
    Xt = clf._encoded(X)
    expected = np.mean([m.predict_proba(Xt) for m in members], axis=0)
    assert_allclose(clf.predict_proba(X), expected, rtol=1e-5)  # float32 sums
    # members differ (their own seeds), so the average is not member 0
    assert not np.allclose(members[0].predict_proba(Xt), expected)
    with pytest.raises(ValueError, match="n_ensemble"):
        TabularClassifier(n_ensemble=0, **FAST).fit(X, labels)


def test_numeric_embedding_embeds_the_encoded_numbers_only():
    X, y = make_table()
    X = X.drop(columns="city")  # no target encoding: its training rows are cross-fitted
    reg = TabularRegressor(numeric_embedding="periodic", n_frequencies=4, embedding_dim=3, **FAST)
    reg.fit(X, y)
    names = reg.preprocessor_.get_feature_names_out(X.columns)
    embedded = names[reg.network_._layout.emb_cols].tolist()
    # the numbers, not their missing-value indicators, one-hot or target-encoded columns
    assert embedded == ["num", "count"]
    assert any(n.startswith("missingindicator_") for n in names)
    assert reg.network_.embedding_frequencies_.shape == (2, 4)
    # the same network as the encoded table handed to BPRegressor by hand
    net = clone(reg.network_).set_params(embedding_features=[0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net.fit(reg._encoded(X), (y - reg.y_mean_) / reg.y_scale_)
    assert_array_equal(net._w, reg.network_._w)
    assert TabularRegressor().numeric_embedding is None  # off by default, for now
    # a table without numbers has nothing to embed
    cats = X[["color", "flag"]]
    clf = TabularClassifier(numeric_embedding="periodic", **FAST).fit(cats, y > np.median(y))
    assert clf.network_.numeric_embedding is None
    with pytest.raises(ValueError, match="frequency_scale"):
        TabularRegressor(numeric_embedding="periodic", frequency_scale=0, **FAST).fit(X, y)
