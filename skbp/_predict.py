"""The prediction driver: network outputs for validated rows.

Dropout is off and batch norm uses its running statistics, so the output is
deterministic; it is the same, bit for bit, whether the rows run serially, in
governed steps or spread over threads (``skbp._kernels.predict_chunks``).
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING

import numpy as np

from ._data import Workspace, empty_data, readonly
from ._kernels import predict, predict_chunks
from ._matmul import tune_array
from ._steps import GovernedSteps
from ._threads import parallel_available

if TYPE_CHECKING:
    from ._base import BaseBP
    from ._data import Problem
    from ._records import Data, Net
    from ._threads import ThreadGovernor

#: rows per chunk for prediction and the full-batch (L-BFGS) gradient
CHUNK_ROWS = 256


_NETS = weakref.WeakKeyDictionary()


def network(est: BaseBP, split: bool = True) -> Net:
    """The fitted network as the kernels take it (``skbp._records.Net``).

    ``split=False``: products are never split over threads (prediction
    parallelises over row chunks instead).  Records are reused (kept per layout,
    weakly: a few microseconds of a one-row prediction), never stored on the
    estimator, whose ``__dict__`` prediction leaves alone.
    """
    drop_p, tune, layout = est._drop_p, tune_array(split), est._layout
    key = (id(tune), est._out_code)
    found = _NETS.get(layout, {}).get(key)
    if found is not None and found[0] is drop_p and found[1].tune is tune:
        return found[1]
    flags_drop_p = readonly(drop_p) if drop_p.flags.writeable else drop_p  # e.g. unpickled
    net = layout.net(flags_drop_p, est._out_code, tune)
    _NETS.setdefault(layout, {})[key] = (drop_p, net)
    return net


def workspace(est: BaseBP, rows: int, sparse: bool, train: bool) -> Workspace:
    """Work buffers for batches of ``rows`` rows of ``est``'s network."""
    layout = est._layout
    dropout = train and bool(np.any(est._drop_p > 0))
    keep = train and (dropout or bool(layout.res.any()))
    return Workspace(layout, rows, est._w.dtype, sparse, dropout, keep)


def running_stats(est: BaseBP) -> np.ndarray | None:
    """Batch norm's running statistics as kernels take them: ``None`` without batch norm.

    ``None`` lets Numba leave batch norm's code out of a network without it.
    """
    return est._bn_run if est._layout.batch_norm else None


_local = threading.local()


def _predict_workspace(est: BaseBP, rows: int, sparse: bool) -> Workspace:
    """A prediction workspace, reused for small inputs (per thread and network).

    Allocating the buffers is a good part of a single-row prediction; a
    thread-local cache keyed weakly by the layout keeps concurrent predictions
    from sharing buffers and lets them go with the model.
    """
    if rows > 16:
        return workspace(est, rows, sparse, train=False)
    cache = getattr(_local, "ws", None)
    if cache is None:
        cache = _local.ws = weakref.WeakKeyDictionary()
    key = (rows, sparse, est._w.dtype.char)
    per_layout = cache.setdefault(est._layout, {})
    ws = per_layout.get(key)
    if ws is None:
        ws = per_layout[key] = workspace(est, rows, sparse, train=False)
    return ws


def small_output(est: BaseBP, X: np.ndarray) -> np.ndarray:
    """:func:`network_output` for a dense float ndarray, without building a ``Problem``.

    The single-row fast path (``BaseBP._forward_pass_fast``).
    """
    return _output(est, empty_data(readonly(X, est._w.dtype)), X.shape[0])


def network_output(est: BaseBP, problem: Problem, gov: ThreadGovernor | None = None) -> np.ndarray:
    """Output-layer activations for every row of ``problem``, in the model dtype.

    With a :class:`~skbp._threads.ThreadGovernor` the rows run in governed steps
    of whole chunks, each serial or spread over threads; without one, serially.
    """
    return _output(est, problem.data(), problem.n_rows, gov)


def _output(est: BaseBP, data: Data, n_rows: int, gov: ThreadGovernor | None = None) -> np.ndarray:
    w = est._packed_params()
    chunk = min(CHUNK_ROWS, n_rows) if n_rows > 0 else 1
    ws = _predict_workspace(est, chunk, data.sparse)
    out = np.empty((n_rows, int(est._layout.sizes[-1])), dtype=w.dtype)
    args = (w, network(est, split=False), ws.bufs, running_stats(est), out)
    if gov is None or gov.n_max <= 1 or n_rows <= chunk or not parallel_available():
        predict(data, 0, n_rows, *args)
        return out

    def step(n: int, start: int, stop: int) -> int:
        (predict_chunks if n > 1 else predict)(data, start, stop, *args)
        return stop

    GovernedSteps(gov, chunk).run(n_rows, step)
    return out
