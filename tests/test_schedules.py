"""Learning-rate schedules stepped per update: cosine, one-cycle, cosine with restarts.

The rate of each mini-batch is computed inside the compiled epoch
(``skbp._optim.scheduled_lr``).  Tested against the formulas, for their
shapes, and through the estimators on a problem where each SGD update
reveals its learning rate.
"""

import copy
import math
import warnings

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from skbp import BPClassifier, BPRegressor
from skbp._optim import SCHEDULE_CODES, scheduled_lr

SCHEDULES = list(SCHEDULE_CODES)


def reference_lr(name, lr, lr_min, warmup, n_cycles, u, total):
    """The documented formulas, in NumPy."""
    if u >= total:
        return lr_min
    if name == "cosine":
        p = u / total
    elif name == "one_cycle":
        n_warm = warmup * total
        if u < n_warm:
            return lr_min + (lr - lr_min) * min(1.0, (u + 1) / n_warm)
        p = (u - n_warm) / (total - n_warm)
    else:
        cycle = total / n_cycles
        p = (u - cycle * np.floor(u / cycle)) / cycle
    return lr_min + (lr - lr_min) * 0.5 * (1 + np.cos(np.pi * p))


def compiled(name, lr, lr_min, warmup, n_cycles, total):
    code = SCHEDULE_CODES[name]
    return np.array(
        [scheduled_lr(code, lr, lr_min, warmup, n_cycles, u, total) for u in range(total + 3)]
    )


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("total", [1, 7, 100, 1003])
def test_compiled_rate_matches_the_formula(name, total):
    got = compiled(name, 0.3, 0.01, 0.13, 3, total)
    want = [reference_lr(name, 0.3, 0.01, 0.13, 3, u, total) for u in range(total + 3)]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_other_schedules_keep_the_epochs_rate():
    # code 0: the rate the Python loop set for the epoch, whatever the rest
    assert scheduled_lr(0, 0.123, 0.5, 0.5, 7, 10**6, 3) == 0.123


def test_cosine_shape():
    lr = compiled("cosine", 0.5, 0.1, 0.0, 1, 200)
    assert lr[0] == 0.5  # starts at the peak, exactly
    assert lr[100] == pytest.approx(0.3, rel=1e-14)  # halfway: the mean of peak and floor
    assert np.all(np.diff(lr[:200]) < 0)
    assert lr[199] == pytest.approx(0.1, abs=1e-4)  # the last update: near the floor
    assert np.all(lr[200:] == 0.1)  # past the horizon: the floor
    # symmetric about the middle: the cosine
    np.testing.assert_allclose(lr[1:100] - 0.3, 0.3 - lr[199:100:-1], rtol=1e-10)


def test_one_cycle_warms_up_linearly_then_anneals():
    lr = compiled("one_cycle", 0.4, 0.0, 0.1, 1, 300)  # 30 warm-up updates
    np.testing.assert_allclose(lr[:30], 0.4 * np.arange(1, 31) / 30, rtol=1e-14)
    assert lr[29] == lr[30] == 0.4  # the peak ends the warm-up and starts the cosine
    assert np.all(np.diff(lr[30:300]) < 0)
    np.testing.assert_allclose(lr[30:300], compiled("cosine", 0.4, 0.0, 0.0, 1, 270)[:270])
    # no warm-up: the cosine
    np.testing.assert_array_equal(
        compiled("one_cycle", 0.4, 0.0, 0.0, 1, 300), compiled("cosine", 0.4, 0.0, 0.0, 1, 300)
    )


def test_cosine_restarts_repeat_equal_cycles():
    lr = compiled("cosine_restarts", 0.2, 0.02, 0.0, 4, 400)
    cycles = lr[:400].reshape(4, 100)
    for c in cycles:  # each cycle restarts at the peak exactly and anneals
        assert c[0] == 0.2
        assert np.all(np.diff(c) < 0)
        np.testing.assert_array_equal(c, cycles[0])
    np.testing.assert_allclose(cycles[0], compiled("cosine", 0.2, 0.02, 0.0, 1, 100)[:100])
    # cycles that do not divide the updates (3 1/3 each): the rate goes back up
    # at each cycle's first update, to where that update falls in its cycle
    lr = compiled("cosine_restarts", 0.2, 0.0, 0.0, 3, 10)
    assert [u for u in range(1, 10) if lr[u] > lr[u - 1]] == [4, 7]
    # one cycle is the cosine
    np.testing.assert_array_equal(
        compiled("cosine_restarts", 0.2, 0.0, 0.0, 1, 50), compiled("cosine", 0.2, 0.0, 0.0, 1, 50)
    )


# ----------------------------------------------------------- through the estimators
# Inputs of zeros: only the output bias learns, and plain SGD (no momentum)
# on the half squared error moves it by b <- b - lr_u * (b - 1) at update u.
N_ROWS = 6
X0, Y1 = np.zeros((N_ROWS, 2)), np.ones(N_ROWS)


def _bias_model(**params):
    kw = dict(hidden_layer_sizes=(), solver="sgd", momentum=0.0, batch_size=1, shuffle=False,
              alpha=0.0, random_state=0, n_iter_no_change=np.inf)  # fmt: skip
    return BPRegressor(**{**kw, **params})


def _quiet(call, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call(*args, **kwargs)


SCHEDULE_PARAMS = dict(learning_rate_init=0.5, min_learning_rate=0.05, warmup_fraction=0.25,
                       n_cycles=3)  # fmt: skip


@pytest.mark.parametrize("name", SCHEDULES)
def test_fit_takes_each_updates_rate_from_the_schedule(name):
    """A warm start restarts the schedule over max_iter epochs of mini-batches."""
    start = _quiet(_bias_model(max_iter=1, learning_rate_init=0.1).fit, X0, Y1)
    b = float(start.intercepts_[0][0])
    est = copy.deepcopy(start).set_params(
        warm_start=True, learning_rate=name, max_iter=4, **SCHEDULE_PARAMS
    )
    _quiet(est.fit, X0, Y1)
    total = 4 * N_ROWS
    rates = [reference_lr(name, 0.5, 0.05, 0.25, 3, u, total) for u in range(total)]
    for lr in rates:
        b = b + -(lr * (b - 1.0))
    assert est.n_iter_ == 4
    assert float(est.intercepts_[0][0]) == pytest.approx(b, rel=1e-13)
    # a constant rate gives another result: the test sees the schedule
    for lr in rates:
        assert 0.05 <= lr <= 0.5
    assert len(set(np.round(rates, 12))) > 3


@pytest.mark.parametrize("name", SCHEDULES)
def test_partial_fit_goes_on_along_the_schedule_then_stays_at_the_floor(name):
    est = _bias_model(learning_rate=name, max_iter=8, **SCHEDULE_PARAMS)
    x, y = X0[:1], Y1[:1]  # one row: each call is one update
    biases = []
    for _ in range(11):
        _quiet(est.partial_fit, x, y)
        biases.append(float(est.intercepts_[0][0]))
    got = [(biases[k] - biases[k + 1]) / (biases[k] - 1.0) for k in range(10)]
    want = [reference_lr(name, 0.5, 0.05, 0.25, 3, u, 8) for u in range(1, 11)]
    np.testing.assert_allclose(got, want, rtol=1e-9)
    assert want[-3:] == [0.05] * 3  # past max_iter calls: the floor


def test_a_floor_of_zero_stops_partial_fit_past_the_horizon():
    est = _bias_model(learning_rate="cosine", max_iter=2, learning_rate_init=0.5)
    for _ in range(2):
        _quiet(est.partial_fit, X0, Y1)
    w = est._w.copy()
    _quiet(est.partial_fit, X0, Y1)
    np.testing.assert_array_equal(est._w, w)


def test_partial_fit_after_fit_continues_the_schedule():
    def fitted():
        return _quiet(_bias_model(learning_rate="cosine", max_iter=3).fit, X0, Y1)

    est = fitted()
    assert est._optimizer.epochs == 3
    _quiet(est.partial_fit, X0, Y1)  # past the horizon at a floor of 0: nothing moves
    np.testing.assert_array_equal(est._w, fitted()._w)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_schedule_counts_the_epochs_mini_batches(batch_norm):
    # 13 rows in batches of 4: 4 batches, or 3 with batch norm (the one-row
    # last batch joins the one before); a schedule over 2 epochs then ends
    # at its floor exactly where the next epoch would start
    from skbp._training import _batches_per_epoch

    assert _batches_per_epoch(13, 4, batch_norm) == (3 if batch_norm else 4)
    assert _batches_per_epoch(12, 4, batch_norm) == 3
    assert _batches_per_epoch(3, 4, batch_norm) == 1


def test_the_new_parameters_leave_the_per_epoch_schedules_alone():
    X, y = np.random.RandomState(0).standard_normal((60, 3)), np.arange(60) % 2
    for schedule in ("constant", "invscaling", "exponential", "adaptive"):
        kw = dict(hidden_layer_sizes=(5,), solver="sgd", learning_rate=schedule, max_iter=5,
                  random_state=0)  # fmt: skip
        plain = _quiet(BPClassifier(**kw).fit, X, y)
        other = _quiet(
            BPClassifier(**kw, min_learning_rate=1e-4, warmup_fraction=0.5, n_cycles=7).fit, X, y
        )
        np.testing.assert_array_equal(plain._w, other._w)


def test_each_schedule_trains_a_classifier():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    for name in SCHEDULES:
        est = BPClassifier((16,), learning_rate=name, learning_rate_init=0.01, max_iter=80,
                           random_state=0)  # fmt: skip
        assert _quiet(est.fit, X, y).score(X, y) > 0.9, name


@pytest.mark.parametrize(
    "params, match",
    [
        ({"learning_rate": "cosinus"}, "'learning_rate' parameter"),
        ({"min_learning_rate": -1e-3}, "'min_learning_rate' parameter"),
        ({"warmup_fraction": 1.0}, "'warmup_fraction' parameter"),
        ({"warmup_fraction": -0.1}, "'warmup_fraction' parameter"),
        ({"n_cycles": 0}, "'n_cycles' parameter"),
        ({"n_cycles": 2.5}, "'n_cycles' parameter"),
    ],
)
def test_invalid_parameters_are_refused(params, match):
    with pytest.raises(InvalidParameterError, match=match):
        BPClassifier(**params).fit(X0, np.arange(N_ROWS) % 2)


def test_a_floor_above_the_start_is_refused():
    est = _bias_model(learning_rate="one_cycle", learning_rate_init=0.01, min_learning_rate=0.1)
    with pytest.raises(ValueError, match=r"min_learning_rate=0\.1 is above learning_rate_init"):
        est.fit(X0, Y1)
    # the per-epoch schedules do not read it
    _quiet(est.set_params(learning_rate="constant").fit, X0, Y1)
    assert math.isfinite(est.loss_)
