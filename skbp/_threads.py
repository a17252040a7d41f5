"""The one kernel of the thread machinery (the rest is Python: ``skbp._runtime``).

Kept apart so that the kernels' stamp (``skbp._cache.kernel_modules``) covers
this kernel and not the governor, the load monitor or the BLAS control, which
never reach compiled code.
"""

from numba import prange

from ._jit import jit


@jit(entry=True, parallel=True)
def _probe(out):
    """Fill ``out`` in a parallel loop: starts Numba's threading layer on a Numba
    without the internal that starts it directly (``skbp._runtime.parallel_available``)."""
    for i in prange(out.shape[0]):
        out[i] = i
