"""Compile-time hygiene: every kernel has at most two compiled versions."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_classification

from skbp import BPClassifier, BPRegressor, _epoch, _kernels
from skbp._compile import dispatchers as _dispatchers


def test_options_do_not_multiply_compiled_versions():
    X, y = make_classification(n_samples=60, n_features=5, n_classes=3, n_informative=3,
                               random_state=0)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for dtype in (np.float32, np.float64):
            Xd = X.astype(dtype)
            for Xin in (Xd, sp.csr_matrix(Xd)):
                for solver in ("sgd", "adam", "lbfgs"):
                    for activation in ("identity", "logistic", "tanh", "relu"):
                        clf = BPClassifier((4, 3), activation=activation, solver=solver,
                                           max_iter=2, random_state=0)  # fmt: skip
                        clf.fit(Xin, y).predict_proba(Xin)
                        clf.set_params(early_stopping=solver != "lbfgs", shuffle=False)
                        clf.fit(Xin, y)
                for loss in ("squared_error", "poisson"):
                    BPRegressor(hidden_layer_sizes=(3,), loss=loss, max_iter=2).fit(
                        Xin, np.abs(X[:, :2])
                    ).predict(Xin)
    seen = dict(_dispatchers())
    assert "skbp._epoch.run_epoch" in seen and "skbp._kernels.full_loss_grad" in seen
    assert "skbp._matmul.matmul" in seen and "skbp._update.step_blocks" in seen
    for name, disp in seen.items():
        assert len(disp.signatures) <= 2, (name, [[str(t) for t in s] for s in disp.signatures])


@pytest.mark.parametrize("name", ["run_epoch", "full_loss_grad", "predict"])
def test_kernels_release_the_gil(name):
    module = _epoch if name == "run_epoch" else _kernels
    assert getattr(module, name).targetoptions["nogil"] is True
