"""One place for the JIT policy of skbp's compiled core.

Every kernel is decorated at module level with :data:`JIT_OPTIONS`, so that

* ``nogil=True`` lets several fits run side by side in Python threads;
* the machine code is cached on disk (next to the sources, or wherever Numba
  would cache it), so only the very first fit on a machine pays the compile
  time (see ``benchmarks/RESULTS.md``); :func:`jit` gives every kernel
  ``skbp._cache.SafeFunctionCache`` instead of ``cache=True``: a read-only
  install, a damaged cache file or a partial upgrade cannot break it;
* ``error_model="numpy"`` makes a division by zero give ``inf``/``nan`` instead
  of raising, which removes an exception check from every inner loop; the
  training loop detects non-finite values itself;
* ``fastmath`` is restricted to :data:`FASTMATH`: it never contains ``nnan``
  or ``ninf``, so ``np.isfinite`` and ``x != x`` keep working inside kernels and
  a diverging fit is detected rather than silently producing NaN (umap learned
  this the hard way).  ``afn`` (approximate ``exp``/``log``) is left out too, so
  activations and losses are as accurate as NumPy's;
* ``_nrt=False``: no reference counting of arrays (Numba's runtime, NRT).  A
  kernel never allocates (its scratch arrays come in the records of
  ``skbp._records``) and never returns an array, so the counts bought nothing;
  they cost an atomic increment and decrement per array a record carries, at
  every field read and call -- a few hundred per mini-batch.  Measured on the
  2-core machine, fresh processes alternating with the code that counted:
  float64 batch-32 Adam fits on 6,400 x 30 rows with (32,), (64,) and (64, 32)
  hidden units went from 176-206, 292 and 519-524 ms to 118, 191 and 370 ms;
  a default digits fit and one-row SGD stayed within the machine's noise
  (``benchmarks/RESULTS.md``).  Adam and L-BFGS fits give the same weights bit
  for bit; SGD with momentum differs in the last bits (multiply-adds
  contracted differently: 1e-15 on float64 weights after 2 epochs).

Kernels only ever see C-contiguous float32/float64 arrays, int64 index arrays,
Python scalars and integer option codes, so each kernel has at most two
compiled versions (float32 and float64).

Compile time (issue 9's cold first use): only the *entry* kernels, those the
Python layer calls (``jit(entry=True)``: ``run_epoch``, ``full_loss_grad``,
``predict`` and ``skbp._threads._probe``), are complete
functions: a CPython wrapper that converts Python arguments, machine code, an
entry in the on-disk cache.
Every other kernel is only ever called from compiled code, which links its
LLVM IR into its own.  So an internal kernel is compiled

* without a CPython wrapper (``no_cpython_wrapper``; the records and arrays it
  takes make that wrapper a large piece of code);
* for linking only (``skbp._linkonly``): no module optimisation and no machine
  code of its own, which its callers would redo anyway over the linked whole;
* and not cached on disk: its callers' cache entries contain it.

No kernel gets the C callback wrapper (``no_cfunc_wrapper``), which skbp never
uses.  Measured on the 2-core machine (fresh processes, alternating): a cold
default fit on digits took 27-32 s before, 22-28 s without the wrappers and
about 16 s with both.  The weights are the same bit for bit, except for
last-bit differences in SGD fits (multiply-adds contracted differently once a
callee is optimised inside its caller).  Calling an
internal kernel from Python still works (tests do): :class:`_InternalDispatcher`
compiles a twin with a wrapper on first use, in memory.
"""

import functools

import numpy as np
from llvmlite import ir
from numba import config, njit, types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.core.registry import CPUDispatcher
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array

from ._linkonly import EntryCompiler, LinkOnlyCompiler

FASTMATH = {"nsz", "arcp", "contract", "reassoc"}

JIT_OPTIONS = {
    "nogil": True,
    "error_model": "numpy",
    "fastmath": FASTMATH,
    "no_cfunc_wrapper": True,
    "_nrt": False,
}


def jit(entry=False, **options):
    """``numba.njit`` with :data:`JIT_OPTIONS` (plus ``options``) and skbp's safe cache.

    ``entry=True`` for a kernel the Python layer calls; any other is compiled
    without a CPython wrapper (see the module docstring).
    """
    from ._cache import install

    def decorate(func):
        if config.DISABLE_JIT:
            return _python_kernel(func, entry)
        if entry:
            pipeline = {} if EntryCompiler is None else {"pipeline_class": EntryCompiler}
            return install(njit(**{**JIT_OPTIONS, **pipeline, **options})(func))
        internal = {**JIT_OPTIONS, "no_cpython_wrapper": True, **options}
        if LinkOnlyCompiler is None:  # a Numba without the internals it needs
            disp = install(njit(**internal)(func))
        else:
            disp = njit(**internal, pipeline_class=LinkOnlyCompiler)(func)
        if isinstance(disp, CPUDispatcher):  # not with NUMBA_DISABLE_JIT
            disp.__class__ = _InternalDispatcher
            disp._skbp_options = options
        return disp

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
            twin = self._skbp_twin = njit(**{**JIT_OPTIONS, **self._skbp_options})(self.py_func)
        return twin(*args, **kwargs)


@intrinsic
def view_2d(typingctx, buf, start, n_rows, n_cols):
    """Row-major ``(n_rows, n_cols)`` view of the 1-D C-contiguous ``buf`` from ``start``.

    Out of range raises ``IndexError``.  Builds the array structure directly:
    ``buf[a:b].reshape(n, m)`` costs about 45 ns in Numba (a slice, a reshape
    normaliser and a no-copy-reshape attempt), this about 2 ns -- it matters at
    ~20 views per mini-batch update of a small network -- and, being expanded
    where it is used rather than called, it is no compiled function of its own
    (nor one returning an array, which a kernel without Numba's reference
    counting could not do).  The view shares ``buf``'s memory owner.
    """
    if not (isinstance(buf, types.Array) and buf.ndim == 1 and buf.layout == "C"):
        return None
    retty = buf.copy(ndim=2, layout="C")
    sig = retty(buf, start, n_rows, n_cols)

    def codegen(context, builder, sig, args):
        bufty, start_ty, n_ty, m_ty = sig.args
        ary = make_array(bufty)(context, builder, args[0])
        start = context.cast(builder, args[1], start_ty, types.intp)
        n = context.cast(builder, args[2], n_ty, types.intp)
        m = context.cast(builder, args[3], m_ty, types.intp)
        zero = start.type(0)
        bad = builder.or_(
            builder.or_(builder.icmp_signed("<", start, zero), builder.icmp_signed("<", n, zero)),
            builder.or_(
                builder.icmp_signed("<", m, zero),
                builder.icmp_signed(">", builder.add(start, builder.mul(n, m)), ary.nitems),
            ),
        )
        with builder.if_then(bad, likely=False):
            context.call_conv.return_user_exc(
                builder, IndexError, ("skbp: work-buffer view out of range",)
            )
        itemsize = ary.itemsize
        out = make_array(retty)(context, builder)
        populate_array(
            out, data=builder.gep(ary.data, [start]), shape=[n, m],
            strides=[builder.mul(m, itemsize), itemsize], itemsize=itemsize,
            meminfo=ary.meminfo, parent=ary.parent,
        )  # fmt: skip
        return impl_ret_borrowed(context, builder, retty, out._getvalue())

    return sig, codegen


@intrinsic
def flat_view(typingctx, arr):
    """The 1-D view of a C-contiguous 2-D array (``arr.ravel()`` without its ~45 ns)."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2 and arr.layout == "C"):
        return None
    retty = arr.copy(ndim=1, layout="C")
    sig = retty(arr)

    def codegen(context, builder, sig, args):
        ary = make_array(sig.args[0])(context, builder, args[0])
        out = make_array(retty)(context, builder)
        populate_array(
            out, data=ary.data, shape=[ary.nitems], strides=[ary.itemsize],
            itemsize=ary.itemsize, meminfo=ary.meminfo, parent=ary.parent,
        )  # fmt: skip
        return impl_ret_borrowed(context, builder, retty, out._getvalue())

    return sig, codegen


@intrinsic
def blas_scalars(typingctx, like, beta):
    """``[1, beta]`` in the dtype of the array ``like``, on the caller's stack.

    BLAS's ``gemm`` takes ``alpha`` and ``beta`` by pointer; this gives them a
    1-D array without allocating one (``np.ones(2)`` is an allocation per
    product, and a compiled specialisation of Numba's ``np.ones`` and
    ``np.empty``: compile time).  The array has no memory owner: it lives as
    long as the calling function's frame, so it must not be returned or stored.
    """
    if not (isinstance(like, types.Array) and isinstance(beta, types.Float)):
        return None
    retty = types.Array(like.dtype, 1, "C")
    sig = retty(like, beta)

    def codegen(context, builder, sig, args):
        dtype = sig.return_type.dtype
        out, ptr = _stack_array(context, builder, retty, 2)
        builder.store(context.get_constant(dtype, 1.0), ptr)
        beta = context.cast(builder, args[1], sig.args[1], dtype)
        builder.store(beta, builder.gep(ptr, [cgutils.int32_t(1)]))
        return out

    return sig, codegen


def _stack_array(context, builder, retty, n):
    """``(array, data pointer)``: a 1-D array of ``n`` elements on the stack frame.

    Allocated in the entry block, uninitialised, with no memory owner.
    """
    llty = context.get_data_type(retty.dtype)
    ptr = cgutils.alloca_once(builder, llty, size=n)
    intp = context.get_value_type(types.intp)
    itemsize = intp(context.get_abi_sizeof(llty))
    out = make_array(retty)(context, builder)
    populate_array(
        out, data=ptr, shape=[intp(n)], strides=[itemsize], itemsize=itemsize,
        meminfo=None, parent=None,
    )  # fmt: skip
    return out._getvalue(), ptr


@intrinsic
def stack_buffer(typingctx, like, size):
    """A 1-D scratch array of ``size`` (a compile-time literal) elements of ``like``'s dtype.

    On the caller's stack, uninitialised, like :func:`blas_scalars`: no
    allocation, no memory owner; it lives as long as the calling function's
    frame, so it must not be returned or stored.
    """
    if not (isinstance(like, types.Array) and isinstance(size, types.IntegerLiteral)):
        return None
    n = size.literal_value
    retty = types.Array(like.dtype, 1, "C")
    sig = retty(like, size)

    def codegen(context, builder, sig, args):
        return _stack_array(context, builder, retty, n)[0]

    return sig, codegen


@intrinsic
def prefetch(typingctx, arr, index):
    """Ask the processor to start loading the cache line of ``arr[index]`` (1-D).

    A hint (``llvm.prefetch``, for reading, kept in every cache level): no
    effect on results, and an index out of range does no harm.
    """
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and isinstance(index, types.Integer)):
        return None
    sig = types.none(arr, index)

    def codegen(context, builder, sig, args):
        ary = make_array(sig.args[0])(context, builder, args[0])
        i = context.cast(builder, args[1], sig.args[1], types.intp)
        ptr = builder.bitcast(builder.gep(ary.data, [i]), cgutils.voidptr_t)
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [cgutils.voidptr_t, i32, i32, i32])
        # named as this llvmlite names pointer types (an LLVM with opaque
        # pointers reads the older name too)
        fn = builder.module.declare_intrinsic("llvm.prefetch", [cgutils.voidptr_t], fnty)
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


if config.DISABLE_JIT:
    # NUMBA_DISABLE_JIT=1 (debugging, coverage) runs every kernel as plain
    # Python, and an intrinsic has no Python body: these do what each one's
    # generated code does, with NumPy.

    def view_2d(buf, start, n_rows, n_cols):  # noqa: F811
        if start < 0 or n_rows < 0 or n_cols < 0 or start + n_rows * n_cols > buf.shape[0]:
            raise IndexError("skbp: work-buffer view out of range")
        return buf[start : start + n_rows * n_cols].reshape(n_rows, n_cols)

    def flat_view(arr):  # noqa: F811
        return arr.reshape(-1)

    def blas_scalars(like, beta):  # noqa: F811
        return np.array([1.0, beta], dtype=like.dtype)

    def stack_buffer(like, size):  # noqa: F811
        return np.empty(size, dtype=like.dtype)

    def prefetch(arr, index):  # noqa: F811
        pass
