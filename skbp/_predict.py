"""The prediction driver: network outputs for validated rows.

Dropout is off and batch norm uses its running statistics, so the output is
deterministic; it is the same, bit for bit, whether the rows run serially, in
governed steps or spread over threads.

Spreading rows over threads calls the one prediction kernel
(``skbp._kernels.predict``) from a few Python threads at once (it releases the
GIL), each on contiguous whole chunks of rows with work buffers of its own,
rather than a parallel kernel: a parallel kernel would be one more kernel to
compile on a cold first use, and a forward pass compiled apart may round its last bits
differently (LLVM optimises it in another context), which would make the
output depend on the thread count.

The prediction kernel is compiled while a fit trains (:func:`compile_ahead`),
so the first ``predict`` after a cold fit finds it ready.
"""

from __future__ import annotations

import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from ._data import Workspace, empty_data, readonly
from ._kernels import predict
from ._matmul import tune_array
from ._runtime import max_threads, parallel_available
from ._steps import GovernedSteps

if TYPE_CHECKING:
    from ._base import BaseBP
    from ._data import Problem
    from ._records import Buffers, Data, Net
    from ._runtime import ThreadGovernor

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


_ahead_lock = threading.Lock()
_ahead_threads = {}


def compile_ahead(
    data: Data, w: np.ndarray, net: Net, bufs: Buffers, bn_run: np.ndarray | None
) -> None:
    """Compile (or load from the cache) the prediction kernel in a background thread.

    Called by a fit once its own kernel runs (``skbp._training``): on a cold
    machine the prediction kernel (seconds to compile) is then ready by the
    first ``predict``, compiled on the other core while the fit trains (Numba's
    compiler lock lets only one compile run at a time; training runs compiled
    code, which needs no lock).  ``data``, ``net``, ``bufs`` and ``bn_run`` are
    the fit's records: a prediction passes records of the same types.  Nothing
    happens when the kernel is compiled already or a thread is at it.  A fork
    waits for the thread (see :func:`_join_ahead`), and so does the end of the
    process (the thread is not a daemon: a compile cut short at exit could
    crash the interpreter); either way the cache then holds the kernel.
    """
    from numba.core import types
    from numba.core.typing.typeof import Purpose, typeof

    if not hasattr(predict, "overloads"):  # not a Numba dispatcher (NUMBA_DISABLE_JIT)
        return
    key = (w.dtype.char, bn_run is None)
    with _ahead_lock:
        if key in _ahead_threads:
            return
        try:
            sig = tuple(typeof(a, Purpose.argument) for a in (data, 0, 0, w, net, bufs, bn_run))
        except Exception:  # not typeable: the prediction itself will say why
            return
        sig = (*sig, types.Array(typeof(w, Purpose.argument).dtype, 2, "C"))
        if sig in predict.overloads:
            _ahead_threads[key] = None
            return
        thread = threading.Thread(
            target=_compile_quietly, args=(sig,), name="skbp-compile-predict"
        )  # fmt: skip
        _ahead_threads[key] = thread
        thread.start()


def _compile_quietly(sig: tuple) -> None:
    try:
        predict.compile(sig)
    except Exception:  # the prediction will compile (and report) it itself
        pass


def _join_ahead() -> None:
    # Numba's compiler lock, held by a compiling thread at the moment of a fork,
    # would stay held for ever in the child: let the compile finish first
    for thread in list(_ahead_threads.values()):
        if thread is not None and thread.is_alive():
            thread.join()


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

    With a :class:`~skbp._runtime.ThreadGovernor` the rows run in governed steps
    of whole chunks, each serial or spread over threads; without one, serially.
    """
    return _output(est, problem.data(), problem.n_rows, gov)


_pool = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """The threads that share a prediction step with its caller (made on first use)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=max(1, max_threads() - 1), thread_name_prefix="skbp-predict"
            )
        return _pool


def _reset_after_fork() -> None:
    # a forked child has none of its parent's threads: it makes its own pool, and
    # a lock some other thread held at the fork would stay held
    global _pool, _pool_lock, _ahead_lock
    _pool, _pool_lock, _ahead_lock = None, threading.Lock(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_join_ahead, after_in_child=_reset_after_fork)


def _predict_spread(
    data: Data, start: int, stop: int, n: int, w: np.ndarray, net: Net,
    buffers: list[Buffers], bn_run: np.ndarray | None, out: np.ndarray,
) -> None:  # fmt: skip
    """The rows ``[start, stop)`` as ``n`` contiguous parts of whole chunks, one per thread.

    The calling thread takes the first part (all of them when ``n`` is 1).  Each
    part starts on a chunk boundary (``start`` is one), so every row is computed
    in the very chunk, and with the very code, that a serial prediction uses:
    the same bits.
    """
    chunk = buffers[0].rows
    n_chunks = -(-(stop - start) // chunk)
    n = max(1, min(n, n_chunks, len(buffers)))
    bounds = [min(stop, start + (i * n_chunks // n) * chunk) for i in range(n)] + [stop]
    pool = _executor() if n > 1 else None
    futures = [
        pool.submit(predict, data, bounds[i], bounds[i + 1], w, net, buffers[i], bn_run, out)
        for i in range(1, n)
    ]  # fmt: skip
    try:
        predict(data, bounds[0], bounds[1], w, net, buffers[0], bn_run, out)
    finally:
        for f in futures:
            f.result()


def _output(est: BaseBP, data: Data, n_rows: int, gov: ThreadGovernor | None = None) -> np.ndarray:
    w = est._packed_params()
    chunk = min(CHUNK_ROWS, n_rows) if n_rows > 0 else 1
    ws = _predict_workspace(est, chunk, data.sparse)
    out = np.empty((n_rows, int(est._layout.sizes[-1])), dtype=w.dtype)
    net, bn_run = network(est, split=False), running_stats(est)
    if gov is None or gov.n_max <= 1 or n_rows <= chunk or not parallel_available():
        predict(data, 0, n_rows, w, net, ws.bufs, bn_run, out)
        return out
    buffers = [ws.bufs]

    def step(n: int, start: int, stop: int) -> int:
        while len(buffers) < n:  # work buffers of its own for each thread
            buffers.append(workspace(est, chunk, data.sparse, train=False).bufs)
        _predict_spread(data, start, stop, n, w, net, buffers, bn_run, out)
        return stop

    GovernedSteps(gov, chunk).run(n_rows, step)
    return out
