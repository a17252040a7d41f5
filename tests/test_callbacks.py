"""scikit-learn's callback API (``sklearn.callback``, 1.9+) on skbp's estimators."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbp import BPClassifier, BPRegressor

callback = pytest.importorskip("sklearn.callback")

SOLVERS = ["adam", "sgd", "lbfgs"]


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


class Recorder:
    """Records every hook; ``stop_at``: return True at the end of that subtask;
    ``raise_at``: raise KeyboardInterrupt at ``("begin" | "end", subtask)``."""

    def __init__(self, stop_at=None, raise_at=None):
        self.events, self.models = [], []
        self.stop_at, self.raise_at = stop_at, raise_at

    def setup(self, estimator, context):
        self.events.append(("setup", context.task_name))

    def teardown(self, estimator, context):
        self.events.append(("teardown", context.task_name))

    def on_fit_task_begin(self, estimator, context, *, X=None, y=None, fitted_estimator=None):
        self.events.append(("begin", context.task_name))
        if self.raise_at == ("begin", self._subtask(context)):
            raise KeyboardInterrupt

    def on_fit_task_end(self, estimator, context, *, X=None, y=None, fitted_estimator=None):
        self.events.append(("end", context.task_name))
        sub = self._subtask(context)
        if sub is None:
            return False
        if fitted_estimator is not None:
            self.models.append(fitted_estimator)
        if self.raise_at == ("end", sub):
            raise KeyboardInterrupt
        return sub == self.stop_at

    @staticmethod
    def _subtask(context):
        return None if context.parent is None else context.task_id

    def count(self, kind, name):
        return self.events.count((kind, name))


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*args, **kwargs)


def _net(solver, **kw):
    return BPClassifier(hidden_layer_sizes=(8,), solver=solver, random_state=0, **kw)


def test_set_callbacks_returns_the_estimator_and_checks_its_arguments():
    clf = BPClassifier()
    assert clf.set_callbacks(Recorder()) is clf
    with pytest.raises(TypeError, match="FitCallback"):
        clf.set_callbacks(object())


@pytest.mark.parametrize("solver", SOLVERS)
def test_one_subtask_per_epoch_and_hooks_paired(iris, solver):
    X, y = iris
    rec = Recorder()
    clf = _quiet(_net(solver, max_iter=4).set_callbacks(rec).fit, X, y)
    name = "iteration" if solver == "lbfgs" else "epoch"
    assert rec.count("setup", "fit") == rec.count("teardown", "fit") == 1
    assert rec.count("begin", "fit") == rec.count("end", "fit") == 1
    assert rec.count("begin", name) == rec.count("end", name) == clf.n_iter_ == 4
    assert rec.events[1] == ("begin", "fit") and rec.events[-2] == ("end", "fit")
    # nothing of the fit's callback machinery is left on the estimator
    assert not hasattr(clf, "_callback_fit_ctx")


@pytest.mark.parametrize("solver", SOLVERS)
def test_model_handed_over_after_each_epoch_equals_a_shorter_fit(iris, solver):
    X, y = iris
    rec = Recorder()
    clf = _quiet(_net(solver, max_iter=4).set_callbacks(rec).fit, X, y)
    assert len(rec.models) == 4
    for i, model in enumerate(rec.models):
        short = _quiet(_net(solver, max_iter=i + 1).fit, X, y)
        assert model.n_iter_ == short.n_iter_ == i + 1
        for a, b in zip(model.coefs_, short.coefs_, strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(model.predict_proba(X), short.predict_proba(X))
        assert model.loss_curve_ == short.loss_curve_
    # the models are copies: the fit that went on did not change them
    assert not np.array_equal(rec.models[0].coefs_[0], clf.coefs_[0])


@pytest.mark.parametrize("solver", SOLVERS)
def test_scoring_monitor_logs_the_score_after_each_epoch(iris, solver):
    X, y = iris
    mon = callback.ScoringMonitor(scoring="accuracy")
    _quiet(_net(solver, max_iter=3).set_callbacks(mon).fit, X, y)
    rows = [r for r in mon.get_logs().data if r["task_id_path"] != (0,)]
    assert [r["task_id"] for r in rows] == [0, 1, 2]
    for r in rows:
        short = _quiet(_net(solver, max_iter=r["task_id"] + 1).fit, X, y)
        assert r["accuracy"] == short.score(X, y)


@pytest.mark.parametrize("solver", SOLVERS)
def test_a_callback_stops_the_fit_with_a_usable_model(iris, solver):
    X, y = iris
    rec = Recorder(stop_at=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConvergenceWarning: the stop was asked for
        clf = _net(solver, max_iter=50).set_callbacks(rec).fit(X, y)
    assert clf.n_iter_ == 2
    assert len(clf.loss_curve_) == 2
    assert clf.gradient_norms_.shape == (2, 2)
    short = _quiet(_net(solver, max_iter=2).fit, X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), short.predict_proba(X))
    assert clf.loss_ == short.loss_


def test_stop_with_early_stopping_keeps_the_best_validated_weights(iris):
    X, y = iris
    rec = Recorder(stop_at=3)
    clf = _net("adam", max_iter=50, early_stopping=True).set_callbacks(rec).fit(X, y)
    assert clf.n_iter_ == 4 and len(clf.validation_scores_) == 4
    best = int(np.argmax(clf.validation_scores_))
    np.testing.assert_array_equal(clf.coefs_[0], rec.models[best].coefs_[0])


def test_partial_fit_is_one_subtask(iris):
    X, y = iris
    rec = Recorder()
    clf = _net("adam").set_callbacks(rec)
    clf.partial_fit(X, y, classes=np.unique(y))
    clf.partial_fit(X, y)
    assert rec.count("begin", "fit") == 2
    assert rec.count("end", "epoch") == 2
    assert len(rec.models) == 2 and rec.models[1].n_iter_ == 1


def test_regressor_supports_callbacks():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    y = X @ [1.0, -2.0, 0.5]
    mon = callback.ScoringMonitor(scoring="r2")
    reg = BPRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    _quiet(reg.set_callbacks(mon).fit, X, y)
    scores = [r["r2"] for r in mon.get_logs().data if r["task_name"] == "epoch"]
    assert len(scores) == 3 and scores[-1] == reg.score(X, y)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_interrupt_after_an_epoch_leaves_a_usable_model(iris, solver):
    X, y = iris
    rec = Recorder(raise_at=("end", 2))
    with pytest.warns(UserWarning, match="interrupted"):
        clf = _net(solver, max_iter=50).set_callbacks(rec).fit(X, y)
    assert clf.n_iter_ == 3 and len(clf.loss_curve_) == 3
    assert np.isfinite(clf.predict_proba(X)).all()
    assert rec.count("teardown", "fit") == 1


def test_interrupt_in_the_first_lbfgs_iteration_leaves_a_usable_model(iris):
    X, y = iris
    rec = Recorder(raise_at=("begin", 0))
    with pytest.warns(UserWarning, match="interrupted"):
        clf = _net("lbfgs", max_iter=50).set_callbacks(rec).fit(X, y)
    assert clf.n_iter_ == 0 and clf.loss_curve_ == []
    assert np.isfinite(clf.loss_) and clf.best_loss_ == clf.loss_
    start = BPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0)
    _quiet(start.set_params(max_iter=1).fit, X, y)
    # the starting parameters: the first evaluation never finished
    assert clf.loss_ > start.loss_
    assert np.isfinite(clf.predict_proba(X)).all()


def test_no_callbacks_no_context(iris):
    X, y = iris
    clf = _quiet(_net("adam", max_iter=2).fit, X, y)
    assert not hasattr(clf, "_skl_callbacks") and not hasattr(clf, "_callback_fit_ctx")


def test_verbose_prints_the_time_of_each_epoch(iris, capsys):
    X, y = iris
    for solver in ("adam", "lbfgs"):
        _quiet(_net(solver, max_iter=2, verbose=True).fit, X, y)
        lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("Iteration")]
        assert len(lines) == 2
        assert all(ln.endswith(" s") and "time = " in ln for ln in lines)


@pytest.mark.parametrize("n_jobs", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_progress_bar_on_an_estimator_a_pipeline_and_a_grid_search(iris, n_jobs):
    pytest.importorskip("rich")
    X, y = iris
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ConvergenceWarning)
        _net("adam", max_iter=3).set_callbacks(callback.ProgressBar()).fit(X, y)
        pipe = make_pipeline(StandardScaler(), _net("adam", max_iter=3))
        pipe.set_callbacks(callback.ProgressBar(max_propagation_depth=None)).fit(X, y)
        search = GridSearchCV(
            make_pipeline(StandardScaler(), _net("adam", max_iter=3)),
            {"bpclassifier__hidden_layer_sizes": [(4,), (8,)]},
            cv=2,
            n_jobs=n_jobs,
        )
        search.set_callbacks(callback.ProgressBar(max_propagation_depth=None)).fit(X, y)
    assert search.best_estimator_[-1].n_iter_ == 3


def test_callbacks_survive_clone_and_pickle(iris):
    import pickle

    from sklearn.base import clone

    X, y = iris
    mon = callback.ScoringMonitor(scoring="accuracy")
    clf = _net("adam", max_iter=2).set_callbacks(mon)
    assert clone(clf)._skl_callbacks == [mon]
    fitted = _quiet(clf.fit, X, y)
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict(X), fitted.predict(X))
