"""The intrinsics of skbp's compile path: array views and stack buffers as LLVM IR.

Each one is expanded where it is used rather than called, and none allocates
or returns a new memory owner, which kernels compiled without Numba's
reference counting (``_nrt=False``, ``skbp._jit``) need.  ``skbp._jit`` picks
these on the tested Numba releases and plain jitted bodies elsewhere
(``skbp._numba_support``); the internals used here (``make_array``,
``populate_array``, ``cgutils``) are why.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array


@intrinsic
def view_2d(typingctx, buf, start, n_rows, n_cols):
    """Row-major ``(n_rows, n_cols)`` view of the 1-D C-contiguous ``buf`` from ``start``.

    Out of range raises ``IndexError``.  Builds the array structure directly,
    skipping the slice and reshape machinery of ``buf[a:b].reshape(n, m)``
    (a mini-batch update of a small network takes a few dozen views), and,
    being expanded where it is used rather than called, it is no compiled
    function of its own (nor one returning an array, which a kernel without
    Numba's reference counting could not do).  The view shares ``buf``'s
    memory owner.
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
    """The 1-D view of a C-contiguous 2-D array (``arr.ravel()`` without its machinery)."""
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
    product, and a compiled specialisation of Numba's ``np.ones``: compile
    time).  The array has no memory owner: it lives as
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
