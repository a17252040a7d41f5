"""One place for the JIT policy of skbp's compiled core.

Every kernel is decorated at module level with :func:`jit`, and so gets
:data:`JIT_OPTIONS`:

* ``nogil=True`` lets several fits run side by side in Python threads;
* ``error_model="numpy"`` makes a division by zero give ``inf``/``nan`` instead
  of raising, which removes an exception check from every inner loop; the
  training loop detects non-finite values itself;
* ``fastmath`` is restricted to :data:`FASTMATH`: it never contains ``nnan``
  or ``ninf``, so ``np.isfinite`` and ``x != x`` keep working inside kernels and
  a diverging fit is detected rather than silently producing NaN.  ``afn``
  (approximate ``exp``/``log``) is left out too, so activations and losses are
  as accurate as NumPy's.

Kernels only ever see C-contiguous float32/float64 arrays, int64 index arrays,
Python scalars and integer option codes, so each kernel has at most two
compiled versions (float32 and float64).

Two compile paths (``skbp._numba_support``):

* **skbp's own**, on the Numba releases it is tested with.  The machine code
  is cached on disk by ``skbp._cache.SafeFunctionCache`` instead of
  ``cache=True`` (a read-only install, a damaged cache file or a partial
  upgrade cannot break it), and a first use on a machine may make it from the
  shipped LLVM IR (``skbp._prebuilt``).  ``_nrt=False``: no reference counting
  of arrays (Numba's runtime, NRT); a kernel never allocates (its scratch
  arrays come in the records of ``skbp._records``) and never returns an array,
  so the counts would buy nothing and cost an atomic increment and decrement
  per array a record carries, at every field read and call
  (``benchmarks/RESULTS.md``).  Only the *entry* kernels, those the Python
  layer calls (``jit(entry=True)``: ``run_epoch``, ``full_loss_grad``,
  ``predict``, ``skbp._threads._probe``), are complete functions: a CPython
  wrapper, machine code, an entry in the on-disk cache.  Every other kernel is
  only ever called from compiled code, which links its LLVM IR into its own,
  so it is compiled without a CPython wrapper (``no_cpython_wrapper``), for
  linking only (``skbp._linkonly``: no module optimisation and no machine code
  of its own) and not cached (its callers' entries contain it).  No kernel gets
  the C callback wrapper (``no_cfunc_wrapper``), which skbp never uses.  This
  is what makes a cold first fit fast (``python benchmarks/bench.py
  first-use``).  Calling an internal kernel from Python still works (tests
  do): :class:`_InternalDispatcher` compiles a twin with a wrapper on first
  use, in memory.  The array views and stack buffers are intrinsics written
  as LLVM IR (``skbp._intrinsics``).
* **plain Numba** elsewhere: every kernel is ``numba.njit(cache=True)`` with
  :data:`JIT_OPTIONS` (public options only, Numba's runtime on), the views
  are ordinary slices and reshapes (:func:`view_2d` and the others below,
  compiled inside their callers), and nothing of the modules named above is
  imported.  The same results up to rounding.

With ``NUMBA_DISABLE_JIT=1`` (debugging, coverage) every kernel runs as plain
Python, the views as the NumPy code below.
"""

import functools

import numpy as np
from numba import config, njit
from numba.extending import register_jitable

from ._numba_support import PLAIN

FASTMATH = {"nsz", "arcp", "contract", "reassoc"}

#: the options every kernel gets, on either path
JIT_OPTIONS = {"nogil": True, "error_model": "numpy", "fastmath": FASTMATH}
#: what skbp's own path adds (see the module docstring)
_OWN_OPTIONS = {"no_cfunc_wrapper": True, "_nrt": False}


def jit(entry=False, **options):
    """``numba.njit`` with :data:`JIT_OPTIONS` (plus ``options``) and skbp's safe cache.

    ``entry=True`` for a kernel the Python layer calls; any other is compiled
    without a CPython wrapper (see the module docstring).  On the plain path,
    ``numba.njit(cache=True)`` for both.
    """

    def decorate(func):
        if config.DISABLE_JIT:
            return _python_kernel(func, entry)
        if PLAIN:
            return njit(cache=True, **{**JIT_OPTIONS, **options})(func)
        return _own_jit(func, entry, options)

    return decorate


def _python_kernel(func, entry):
    """``func`` as plain Python (``NUMBA_DISABLE_JIT=1``): nothing to compile or cache.

    An entry kernel runs under ``np.errstate(all="ignore")``: compiled, its
    arithmetic overflows and divides by zero silently (``error_model="numpy"``,
    the generator's wrapping ``uint64`` products); NumPy's scalars would warn.
    """
    kernel = func
    if entry:

        @functools.wraps(func)
        def kernel(*args):
            with np.errstate(all="ignore"):
                return func(*args)

    kernel.py_func = func  # what callers read of a dispatcher
    return kernel


if config.DISABLE_JIT or PLAIN:
    # Python bodies of the views and buffers: the NUMBA_DISABLE_JIT=1 kernels run
    # them as they are, and on the plain path Numba compiles them into their callers
    # (register_jitable).  On skbp's own path the intrinsics replace them.

    @register_jitable
    def view_2d(buf, start, n_rows, n_cols):
        """Row-major ``(n_rows, n_cols)`` view of the 1-D C-contiguous ``buf`` from ``start``.

        Out of range raises ``IndexError``.
        """
        if start < 0 or n_rows < 0 or n_cols < 0 or start + n_rows * n_cols > buf.shape[0]:
            raise IndexError("skbp: work-buffer view out of range")
        return buf[start : start + n_rows * n_cols].reshape((n_rows, n_cols))

    @register_jitable
    def flat_view(arr):
        """The 1-D view of a C-contiguous 2-D array."""
        return arr.reshape(arr.size)

    @register_jitable
    def blas_scalars(like, beta):
        """``[1, beta]`` in the dtype of the array ``like``."""
        out = np.empty(2, like.dtype)
        out[0] = 1.0
        out[1] = beta
        return out

    @register_jitable
    def stack_buffer(like, size):
        """A 1-D scratch array of ``size`` elements of ``like``'s dtype, uninitialised."""
        return np.empty(size, like.dtype)

    @register_jitable
    def prefetch(arr, index):
        """A hint to load ``arr[index]``'s cache line: nothing here."""
else:
    from numba.core.registry import CPUDispatcher

    from ._intrinsics import (  # noqa: F401  (what the kernel modules import from here)
        blas_scalars,
        flat_view,
        prefetch,
        stack_buffer,
        view_2d,
    )
    from ._linkonly import EntryCompiler, LinkOnlyCompiler

    def _own_jit(func, entry, options):
        """``func`` compiled on skbp's own path (see the module docstring)."""
        from ._cache import install

        own = {**JIT_OPTIONS, **_OWN_OPTIONS}
        if entry:
            pipeline = {} if EntryCompiler is None else {"pipeline_class": EntryCompiler}
            return install(njit(**{**own, **pipeline, **options})(func))
        internal = {**own, "no_cpython_wrapper": True, **options}
        if LinkOnlyCompiler is None:  # a Numba without the internals it needs
            disp = install(njit(**internal)(func))
        else:
            disp = njit(**internal, pipeline_class=LinkOnlyCompiler)(func)
        disp.__class__ = _InternalDispatcher
        disp._skbp_options = options
        return disp

    class _InternalDispatcher(CPUDispatcher):
        """A kernel compiled without a CPython wrapper, callable from Python all the same.

        Compiled code calls it as any dispatcher.  A call from Python (never made
        by skbp itself, but tests check kernels one by one) goes to a twin compiled
        with the wrapper, in memory only: the twin's cache entry would otherwise
        share this kernel's name.
        """

        def __call__(self, *args, **kwargs):
            twin = self.__dict__.get("_skbp_twin")
            if twin is None:
                options = {**JIT_OPTIONS, **_OWN_OPTIONS, **self._skbp_options}
                twin = self._skbp_twin = njit(**options)(self.py_func)
            return twin(*args, **kwargs)
