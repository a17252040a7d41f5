"""Threads: how many a fit or prediction uses, and keeping BLAS out of their way.

* ``n_jobs`` has scikit-learn's meaning, resolved by :func:`effective_n_threads`
  at every call: ``-1`` every thread Numba may use, ``-2`` all but one, ``k``
  ``k`` threads (at most Numba's maximum), ``None`` every thread Numba may use
  unless an outer joblib context says otherwise.  Inside a joblib/loky worker
  (``GridSearchCV(n_jobs=4)``, ``cross_val_score(n_jobs=...)``) joblib starts the
  worker with ``NUMBA_NUM_THREADS = cores // n_workers``, which is Numba's
  maximum there, so nested parallelism does not oversubscribe the machine; a
  ``joblib.parallel_config(n_jobs=k)`` context makes ``None`` mean ``k``.
* :func:`thread_context` sets Numba's thread count for the duration of one
  call and restores it afterwards.  Numba's setting is per Python thread, so
  fits running side by side in threads do not see each other's count.  Nothing
  is set at import.
* BLAS runs on one thread while any skbp call is running: skbp splits the large
  products itself (``skbp._matmul``), and OpenBLAS threads spinning next to
  Numba's make such a product up to 20x slower.  It also makes results
  independent of BLAS's thread count.  The limit is process-wide (BLAS has no
  per-thread setting); it is reference-counted, so the first of several
  concurrent calls sets it and the last one restores the user's setting.

Threading layer: Numba picks TBB if installed, else GNU OpenMP, else its
``workqueue``; skbp leaves that choice to Numba and the user
(``NUMBA_THREADING_LAYER``) but runs its parallel kernels only on a thread-safe
layer (``tbb`` or ``omp``), because ``workqueue`` aborts the process when two
threads launch parallel kernels at once (joblib's threading backend, or fits in
Python threads).  On ``workqueue`` skbp does not split products and runs
serially.
GNU OpenMP is not safe across ``fork()``: use joblib's default ``loky``
backend (fork + exec) or the ``spawn``/``forkserver`` start methods for
process-based parallelism after a fit in the parent, or install ``tbb``.
"""

import os
import threading
from contextlib import contextmanager

import numba
import numpy as np
from numba import njit, prange

from ._jit import JIT_OPTIONS

_lock = threading.Lock()
_blas_depth = 0
_blas_limiter = None
_controller = None
_layer_ok = None


def max_threads():
    """Threads Numba may use in this process (``NUMBA_NUM_THREADS``)."""
    return int(numba.config.NUMBA_NUM_THREADS)


def effective_n_threads(n_jobs):
    """Resolve ``n_jobs`` to a thread count between 1 and :func:`max_threads`."""
    limit = max_threads()
    if n_jobs is None:
        from joblib.parallel import get_active_backend

        outer = get_active_backend()[1]
        if outer is None:
            return limit
        n_jobs = outer
    n_jobs = int(n_jobs)
    if n_jobs < 0:
        n = (os.cpu_count() or 1) + 1 + n_jobs
        return max(1, min(limit, n))
    return max(1, min(limit, n_jobs))


@njit(parallel=True, **JIT_OPTIONS)
def _probe(out):
    for i in prange(out.shape[0]):
        out[i] = i


def parallel_available():
    """Whether Numba's threading layer is thread-safe (``tbb`` or ``omp``).

    Starting Numba's thread pool initialises the layer the first time.
    """
    global _layer_ok
    if _layer_ok is None:
        try:
            try:  # start the layer without compiling anything
                from numba.np.ufunc.parallel import _launch_threads

                _launch_threads()
            except ImportError:  # a Numba without that internal: launch a tiny kernel
                _probe(np.zeros(2))
            _layer_ok = numba.threading_layer() in ("tbb", "omp")
        except Exception:  # no layer could be loaded at all
            _layer_ok = False
    return _layer_ok


def _blas_controller():
    global _controller
    if _controller is None:
        # Numba's np.dot calls SciPy's BLAS; load it so that threadpoolctl sees it.
        import scipy.linalg.cython_blas  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller


def _enter_blas_single():
    global _blas_depth, _blas_limiter
    with _lock:
        if _blas_depth == 0:
            _blas_limiter = _blas_controller().limit(limits=1, user_api="blas")
        _blas_depth += 1


def _exit_blas_single():
    global _blas_depth, _blas_limiter
    with _lock:
        _blas_depth -= 1
        if _blas_depth == 0:
            _blas_limiter.restore_original_limits()
            _blas_limiter = None


@contextmanager
def thread_context(n_jobs):
    """Run skbp's compiled code on ``n_jobs`` threads (and BLAS on one) inside.

    Yields the number of threads used.
    """
    n = effective_n_threads(n_jobs) if parallel_available() else 1
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    _enter_blas_single()
    try:
        yield n
    finally:
        _exit_blas_single()
        numba.set_num_threads(previous)
