"""What crosses into the compiled core: the data arrays and the work buffers.

Only C-contiguous float32/float64 arrays and int64 index arrays reach a kernel
(never ``None``, lists or sparse matrix objects).  A dense input travels as the
2-D ``Xd`` with size-0 CSR arrays; a sparse input as CSR arrays with a size-0
``Xd``.  Both take the same compiled code path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from ._kernels import PREACTIVATION_CODES
from ._records import Buffers, Data

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, DTypeLike

    from ._layout import Layout


def readonly(a: ArrayLike, dtype: DTypeLike | None = None) -> np.ndarray:
    """C-contiguous ``a`` in ``dtype`` as a read-only view.

    Kernels only read the data, and Numba compiles a separate version for
    read-only arrays (joblib memmaps, ``check_estimators`` read-only data).
    Passing every data array read-only keeps that to one version per dtype
    without copying read-only inputs.
    """
    v = np.ascontiguousarray(a, dtype=dtype).view()
    v.flags.writeable = False
    return v


_EMPTY = {}


def _empty(dtype: np.dtype) -> np.ndarray:
    """A shared read-only size-0 array of ``dtype`` (for the unused inputs)."""
    e = _EMPTY.get(dtype)
    if e is None:
        e = _EMPTY[dtype] = readonly(np.empty(0), dtype)
    return e


def _empty2d(dtype: np.dtype) -> np.ndarray:
    """A shared read-only ``(0, 0)`` array of ``dtype`` (no targets: prediction)."""
    key = ("2d", dtype)
    e = _EMPTY.get(key)
    if e is None:
        e = _EMPTY[key] = readonly(np.empty((0, 0)), dtype)
    return e


def empty_data(Xd: np.ndarray) -> Data:
    """The ``Data`` record of a dense read-only ``Xd`` to predict on (no targets)."""
    ei = _empty(np.dtype(np.int64))
    e = _empty(Xd.dtype)
    return Data(Xd, e, ei, ei, False, _empty2d(Xd.dtype), e)


def max_abs(A: np.ndarray | sp.spmatrix | sp.sparray) -> float:
    """The largest absolute value of a dense array or of a sparse matrix's entries (0 if empty)."""
    data = A.data if sp.issparse(A) else np.asarray(A)
    if not data.size:
        return 0.0
    # the largest and the smallest, not np.abs: no temporary the size of X (half the
    # time on a 60,000 x 784 X); a NaN makes both NaN, and so the result
    return max(float(np.max(data)), -float(np.min(data)))


class Problem:
    """Training or prediction data in kernel-ready form.

    Parameters
    ----------
    X : ndarray or scipy sparse matrix of shape (n_samples, n_features)
    dtype : {np.float32, np.float64}
    Y : ndarray of shape (n_samples, n_outputs), optional
    sample_weight : ndarray of shape (n_samples,), optional
        ``None`` means unit weights.
    """

    def __init__(
        self,
        X: np.ndarray | sp.spmatrix | sp.sparray,
        dtype: DTypeLike,
        Y: np.ndarray | None = None,
        sample_weight: np.ndarray | None = None,
    ) -> None:
        self.dtype = np.dtype(dtype)
        self.n_rows = X.shape[0]
        self.sparse = sp.issparse(X)
        if self.sparse:
            X = sp.csr_matrix(X)
            self.Xd = readonly(np.empty((0, 0)), dtype)
            self.Xdat = readonly(X.data, dtype)
            self.Xind = readonly(X.indices, np.int64)
            self.Xptr = readonly(X.indptr, np.int64)
        else:
            self.Xd = readonly(X, dtype)
            self.Xdat = _empty(self.dtype)
            self.Xind = self.Xptr = _empty(np.dtype(np.int64))
        self.X = X
        if Y is None:  # prediction: no targets, and no weights are read
            self.Y = _empty2d(self.dtype)
            self.sw = _empty(self.dtype)
        else:
            self.Y = readonly(Y, dtype)
            if sample_weight is None:
                sample_weight = np.ones(self.n_rows)
            self.sw = readonly(sample_weight, dtype)

    def data(self) -> Data:
        """The rows as kernels take them (``skbp._records.Data``)."""
        return Data(self.Xd, self.Xdat, self.Xind, self.Xptr, self.sparse, self.Y, self.sw)


class Workspace:
    """Work buffers for batches of up to ``batch_rows`` rows.

    Parameters
    ----------
    layout : skbp._layout.Layout
    batch_rows : int
    dtype : numpy dtype
    sparse : bool
        A CSR input needs no dense gather buffer for the first layer.
    dropout : bool
        Whether any hidden layer uses dropout (needs the mask buffer).
    keep_activations : bool
        Whether activation outputs must be kept apart from the layer outputs
        (dropout or residual connections change the latter).  A network with
        a gelu or mish layer keeps them anyway: the backward pass reads those
        layers' pre-activations there, and the layout's codes decide it here so
        that no caller can forget it.
    """

    def __init__(
        self,
        layout: Layout,
        batch_rows: int,
        dtype: DTypeLike,
        sparse: bool,
        dropout: bool = False,
        keep_activations: bool = False,
    ) -> None:
        n_in = 0 if sparse else int(layout.sizes[0])
        rows = self.batch_rows = int(batch_rows)
        per_row = rows * layout.act_width
        hidden = layout.codes[: len(layout.sizes) - 2]
        keep_activations = keep_activations or bool(np.isin(hidden, PREACTIVATION_CODES).any())

        def buf(n: int) -> np.ndarray:
            return np.empty(n, dtype=dtype)

        self.bufs = Buffers(
            rows,
            X0=buf(rows * n_in),  # gathered dense input rows
            acts=buf(per_row),
            deltas=buf(per_row),
            fa=buf(per_row if keep_activations else 0),
            masks=buf(per_row if dropout else 0),
            bnz=buf(per_row if layout.batch_norm else 0),
            bnstat=buf(2 * layout.act_width if layout.batch_norm else 0),
            dz=buf(rows * layout.max_hidden),
            ridx=np.empty(rows, dtype=np.int64),
            rng=np.zeros(1, dtype=np.uint64),
            part=np.empty((len(layout.param_blocks()), 4)),
            bnsum=np.empty(2 * layout.max_hidden if layout.batch_norm else 0),
            # the embedding's features, then its outputs' gradient (skbp._kernels._embed)
            emb=buf(rows * len(layout.emb_cols) * (2 * layout.emb_k + layout.emb_d)),
        )
        self.grad = np.empty(layout.n_params, dtype=dtype)

    @property
    def masks(self) -> np.ndarray:
        return self.bufs.masks
