"""Network layout: layer sizes -> offsets into one flat parameter vector.

All weights and biases of a network live in one contiguous 1-D array ``w``:
first every weight matrix (row-major, ``fan_in x fan_out``), then every bias
vector, in layer order -- the same packing as scikit-learn's ``_pack``, so the
vector can be handed to L-BFGS as it is.  Batch norm's scales and shifts
follow, then the periodic embedding's parameters (:class:`Layout`).
``coefs_`` and ``intercepts_`` are views into it, and the compiled kernels
receive ``w`` plus the integer offset table below, so the depth of a network
never creates a new compiled version.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np

from ._kernels import ACTIVATION_CODES
from ._records import Net
from ._update import param_blocks

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import DTypeLike


class Layout:
    """Offsets of every layer's parameters and activations.

    Parameters
    ----------
    layer_units : sequence of int
        Widths of all layers, input and output included.  With an embedding
        the input layer is the first hidden layer's input: the embedded
        columns' outputs then the passed-through columns.
    batch_norm : bool, default=False
    embedding : dict or None, default=None
        The periodic (PLR) embedding of numeric input columns: ``n_inputs``
        (the data's width), ``columns`` (the embedded input columns, strictly
        increasing), ``n_frequencies`` (k) and ``embedding_dim`` (d).  Each
        embedded column ``j`` becomes ``relu([cos(2 pi c_j x_j), sin(2 pi c_j
        x_j)] @ V_j + b_j)``, its ``d`` outputs in the order of the columns,
        followed by the other columns as they are.  Its parameters come after
        everything else in the flat vector: the frequencies ``c`` ``(n_e, k)``,
        the weights ``V`` ``(n_e, 2k, d)``, the biases ``b`` ``(n_e, d)``.
    """

    def __init__(
        self,
        layer_units: Sequence[int] | np.ndarray,
        batch_norm: bool = False,
        embedding: dict[str, Any] | None = None,
    ) -> None:
        self.sizes = np.asarray(layer_units, dtype=np.int64)
        self.batch_norm = bool(batch_norm)
        n_trans = len(self.sizes) - 1
        fan_in, fan_out = self.sizes[:-1], self.sizes[1:]
        n_coef = fan_in * fan_out
        #: start of each weight matrix in the flat vector
        self.coef_off = np.zeros(n_trans, dtype=np.int64)
        self.coef_off[1:] = np.cumsum(n_coef)[:-1]
        #: start of each bias vector in the flat vector
        self.int_off = np.int64(n_coef.sum()) + np.zeros(n_trans, dtype=np.int64)
        self.int_off[1:] += np.cumsum(fan_out)[:-1]
        n_base = int(n_coef.sum() + fan_out.sum())
        #: start of each hidden layer's batch-norm scale (its shift follows);
        #: batch-norm parameters come after every bias, so the first part of
        #: the vector is packed exactly as scikit-learn packs it
        self.bn_off = np.zeros(n_trans, dtype=np.int64)
        hidden = fan_out[:-1]
        #: where the parameters after the biases (batch norm's) start
        self.n_base = n_base
        if self.batch_norm and n_trans > 1:
            self.bn_off[:-1] = n_base + np.concatenate([[0], np.cumsum(2 * hidden)[:-1]])
            n_base += int(2 * hidden.sum())
        self._set_embedding(embedding, n_base)
        self.n_params = n_base + self.n_emb_params
        self.n_coef_params = int(n_coef.sum())
        #: start of each layer's output block in a per-row activation buffer
        self.act_off = np.zeros(n_trans, dtype=np.int64)
        self.act_off[1:] = np.cumsum(fan_out)[:-1]
        self.act_width = int(fan_out.sum())
        self.max_coef = int(n_coef.max())
        self.max_hidden = int(hidden.max()) if n_trans > 1 else 0
        #: hidden activation code per transition (the output layer's is unused)
        self.codes = np.zeros(n_trans, dtype=np.int64)
        #: 1 where a transition adds a residual skip (set by ``set_residual``)
        self.res = np.zeros(n_trans, dtype=np.int64)

    def _set_embedding(self, embedding: dict[str, Any] | None, start: int) -> None:
        """The embedding's fields; its parameters start at ``start`` in the flat vector."""
        self.embedding = None if embedding is None else dict(embedding)
        #: where the embedding's frequencies start (its weights, then biases, follow)
        self.emb_off = start
        if embedding is None:
            self.n_inputs = int(self.sizes[0])
            self.emb_cols = np.zeros(0, dtype=np.int64)
            self.pass_cols = np.zeros(0, dtype=np.int64)
            self.emb_k = self.emb_d = self.n_emb_params = 0
            return
        self.n_inputs = int(embedding["n_inputs"])
        self.emb_cols = np.asarray(embedding["columns"], dtype=np.int64)
        others = np.ones(self.n_inputs, dtype=bool)
        others[self.emb_cols] = False
        self.pass_cols = np.flatnonzero(others).astype(np.int64)
        k = self.emb_k = int(embedding["n_frequencies"])
        d = self.emb_d = int(embedding["embedding_dim"])
        self.n_emb_params = len(self.emb_cols) * (k + 2 * k * d + d)

    def emb_coef_range(self) -> tuple[int, int]:
        """Where the embedding's weight matrices lie in the flat vector (``(0, 0)``: none)."""
        if self.embedding is None:
            return 0, 0
        start = self.emb_off + len(self.emb_cols) * self.emb_k
        return start, start + len(self.emb_cols) * 2 * self.emb_k * self.emb_d

    def unpack_embedding(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The embedding's frequencies, weights and biases as views into ``w``."""
        n_e, k, d = len(self.emb_cols), self.emb_k, self.emb_d
        c0, c1 = self.emb_coef_range()
        return (
            w[self.emb_off : c0].reshape(n_e, k),
            w[c0:c1].reshape(n_e, 2 * k, d),
            w[c1 : c1 + n_e * d].reshape(n_e, d),
        )

    def set_residual(self, residual: bool) -> int:
        """Skip connections between consecutive hidden layers of equal width.

        Transition ``l`` (hidden layer ``l`` to hidden layer ``l + 1``, for
        ``1 <= l < n_layers - 2``) gets ``h_{l+1} = f(...) + h_l`` when both
        widths are equal; pairs of unequal width get no skip.  Returns the
        number of skips.
        """
        self.res[:] = 0
        if residual:
            for l in range(1, len(self.sizes) - 2):
                if self.sizes[l] == self.sizes[l + 1]:
                    self.res[l] = 1
        return int(self.res.sum())

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A pickled Layout (estimator pickles written before the state was made
        # plain hold one).  The kernels index by its offsets without bounds
        # checks, so everything is rebuilt from the defining fields, which
        # :meth:`from_state` checks, and the stored offsets must be the ones they
        # imply.  The rebuilt arrays are writable (unlike a read-only memmap's).
        try:
            plain = {"layer_units": state["sizes"], "batch_norm": state["batch_norm"],
                     "activation_codes": state["codes"], "residual": state["res"],
                     "embedding": state.get("embedding")}  # fmt: skip
        except (KeyError, TypeError) as exc:
            raise ValueError("not a skbp network layout: it lacks its layer sizes") from exc
        fresh = Layout.from_state(plain)
        for name, value in fresh.__dict__.items():
            if name in state and not _same(state[name], value):
                raise ValueError(
                    f"not a skbp network layout: its {name} {state[name]!r} are not the "
                    f"ones its layer sizes {plain['layer_units']!r} imply ({value!r})"
                )
        self.__dict__.update(fresh.__dict__)

    def to_state(self) -> dict[str, Any]:
        """The layout as builtins (what an estimator pickles, and skops can load untrusted).

        Everything else of a layout follows from the layer sizes, batch norm,
        the activation codes, the residual flags and the embedding:
        :meth:`from_state`.  (A layout without an embedding has no
        ``"embedding"`` entry, as before embeddings existed.)
        """
        state = {
            "layer_units": [int(v) for v in self.sizes],
            "batch_norm": self.batch_norm,
            "activation_codes": [int(v) for v in self.codes],
            "residual": [int(v) for v in self.res],
        }
        if self.embedding is not None:
            state["embedding"] = {
                "n_inputs": self.n_inputs,
                "columns": [int(v) for v in self.emb_cols],
                "n_frequencies": self.emb_k,
                "embedding_dim": self.emb_d,
            }
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Layout:
        """Rebuild a layout from :meth:`to_state`; ``ValueError`` if it is not one."""
        try:
            units = [int(v) for v in state["layer_units"]]
            codes = [int(v) for v in state["activation_codes"]]
            res = [int(v) for v in state["residual"]]
            batch_norm = state["batch_norm"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a skbp network layout: {state!r}") from exc
        n_trans = len(units) - 1
        if (
            n_trans < 1 or min(units) < 1 or not isinstance(batch_norm, bool)
            or len(codes) != n_trans or len(res) != n_trans
            or not all(0 <= c <= max(ACTIVATION_CODES.values()) for c in codes)
            or not all(r in (0, 1) for r in res)
        ):  # fmt: skip
            raise ValueError(f"not a skbp network layout: {state!r}")
        # a skip adds a hidden layer's outputs to the next one's, element by
        # element: only between hidden layers of equal width (``set_residual``),
        # or the kernels would read past the end of a layer
        for l, r in enumerate(res):
            if r and not (0 < l < n_trans - 1 and units[l] == units[l + 1]):
                raise ValueError(
                    f"not a skbp network layout: a residual skip at transition {l} joins "
                    f"layers of widths {units[l]} and {units[l + 1]} ({state!r})"
                )
        embedding = _loaded_embedding(state.get("embedding"), units[0], state)
        layout = cls(units, batch_norm, embedding)
        layout.codes[:] = codes
        layout.res[:] = res
        return layout

    def net(self, drop_p: np.ndarray, out_code: int, tune: np.ndarray) -> Net:
        """The network as the kernels take it: a ``skbp._records.Net``.

        Its arrays are read-only views (also after unpickling), so kernels see
        one array type; ``drop_p`` (per-transition dropout probabilities, read-only
        float64), ``out_code`` (the output activation) and ``tune`` (when a matrix
        product is split over threads: ``skbp._matmul.tune_array``) complete it,
        and the update's parameter blocks (made once, with the views).
        """
        views = self.__dict__.get("_views")
        if views is None:  # made once; views share memory with the arrays
            views = []
            for a in (self.sizes, self.coef_off, self.int_off, self.act_off, self.bn_off,
                      self.codes, self.res, self.emb_cols, self.pass_cols):  # fmt: skip
                v = a.view()
                v.flags.writeable = False
                views.append(v)
            self._views = views = tuple(views)
        return Net(*views[:7], tune, drop_p, int(out_code), self.param_blocks(), *views[7:],
                   self.emb_k, self.emb_d, self.emb_off)  # fmt: skip

    def param_blocks(self) -> np.ndarray:
        """The blocks an update sweeps (``skbp._update.param_blocks``), read-only, made once."""
        blocks = self.__dict__.get("_blocks")
        if blocks is None:
            blocks = self._blocks = param_blocks(
                self.sizes, self.coef_off, self.n_params, self.emb_coef_range()
            )
            blocks.flags.writeable = False
        return blocks

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_views", None)
        state.pop("_blocks", None)
        return state

    def unpack(self, w: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Return ``coefs_`` and ``intercepts_`` as views into ``w``."""
        coefs, intercepts = [], []
        for i in range(len(self.sizes) - 1):
            fi, fo = int(self.sizes[i]), int(self.sizes[i + 1])
            c0, b0 = int(self.coef_off[i]), int(self.int_off[i])
            coefs.append(w[c0 : c0 + fi * fo].reshape(fi, fo))
            intercepts.append(w[b0 : b0 + fo])
        return coefs, intercepts

    def unpack_bn(self, w: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Batch-norm scales and shifts of each hidden layer, as views into ``w``."""
        scales, shifts = [], []
        if self.batch_norm:
            for i in range(len(self.sizes) - 2):
                fo, b0 = int(self.sizes[i + 1]), int(self.bn_off[i])
                scales.append(w[b0 : b0 + fo])
                shifts.append(w[b0 + fo : b0 + 2 * fo])
        return scales, shifts

    def unpack_running(self, run: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Running means and variances of each hidden layer, as views into ``run``."""
        means, variances = [], []
        if self.batch_norm:
            for i in range(len(self.sizes) - 2):
                fo, u = int(self.sizes[i + 1]), int(self.act_off[i])
                means.append(run[u : u + fo])
                variances.append(run[self.act_width + u : self.act_width + u + fo])
        return means, variances

    def pack(
        self,
        coefs: Sequence[np.ndarray],
        intercepts: Sequence[np.ndarray],
        dtype: DTypeLike,
        rest: np.ndarray | None = None,
    ) -> np.ndarray:
        """Copy lists of weight matrices and bias vectors into a new flat vector.

        ``rest`` supplies the parameters after the biases (batch norm's).
        """
        w = np.empty(self.n_params, dtype=dtype)
        for i, (c, b) in enumerate(zip(coefs, intercepts, strict=True)):
            fi, fo = int(self.sizes[i]), int(self.sizes[i + 1])
            if c.shape != (fi, fo) or b.shape != (fo,):
                raise ValueError(
                    f"coefs_[{i}] and intercepts_[{i}] have shapes {c.shape} and "
                    f"{b.shape}; the layout expects {(fi, fo)} and {(fo,)}."
                )
            c0, b0 = int(self.coef_off[i]), int(self.int_off[i])
            w[c0 : c0 + fi * fo] = c.ravel()
            w[b0 : b0 + fo] = b
        if rest is not None:
            w[self.n_base :] = rest
        else:  # batch norm starts as the identity: scale 1, shift 0
            for i in range(len(self.sizes) - 2 if self.batch_norm else 0):
                fo, b0 = int(self.sizes[i + 1]), int(self.bn_off[i])
                w[b0 : b0 + fo] = 1.0
                w[b0 + fo : b0 + 2 * fo] = 0.0
        return w

    def new_running_stats(self, dtype: DTypeLike) -> np.ndarray:
        """Running means (0) and variances (1) of batch norm; size 0 without it."""
        if not self.batch_norm:
            return np.zeros(0, dtype=dtype)
        run = np.zeros(2 * self.act_width, dtype=dtype)
        run[self.act_width :] = 1.0
        return run

    def init_params(
        self,
        random_state: np.random.RandomState,
        activations: str | Sequence[str],
        dtype: DTypeLike,
        frequency_scale: float = 0.1,
    ) -> np.ndarray:
        """Glorot-uniform initialisation, drawn exactly as scikit-learn's MLP.

        The draws (weights then bias, layer by layer, from ``random_state``)
        are the ones ``MLPClassifier``/``MLPRegressor`` make, so the same
        ``random_state`` starts both libraries from the same weights.  The bound
        is ``sqrt(factor / (fan_in + fan_out))`` with factor 2 for a logistic
        layer and 6 otherwise; ``activations`` names each hidden layer's
        activation (the output layer uses the last hidden layer's rule, as
        scikit-learn uses its one hidden activation everywhere).

        The embedding's parameters are drawn after all of those (so they leave
        them as they are): the frequencies from a normal distribution of
        standard deviation ``frequency_scale`` truncated at three of them, the
        weights and biases uniformly in ``+-1 / sqrt(2k)``, as the reference
        implementation of the PLR embedding (``rtdl_num_embeddings``).
        """
        if isinstance(activations, str):
            activations = [activations]
        coefs, intercepts = [], []
        n_trans = len(self.sizes) - 1
        for i in range(n_trans):
            fi, fo = int(self.sizes[i]), int(self.sizes[i + 1])
            name = activations[min(i, len(activations) - 1)] if activations else "relu"
            factor = 2.0 if name in ("logistic", "sigmoid") else 6.0
            bound = np.sqrt(factor / (fi + fo))
            coefs.append(random_state.uniform(-bound, bound, (fi, fo)))
            intercepts.append(random_state.uniform(-bound, bound, fo))
        w = self.pack(coefs, intercepts, dtype)
        if self.embedding is not None:
            freq, emb_coefs, emb_intercepts = self.unpack_embedding(w)
            freq[:] = _truncated_normal(random_state, frequency_scale, freq.shape)
            bound = 1.0 / np.sqrt(2 * self.emb_k)
            emb_coefs[:] = random_state.uniform(-bound, bound, emb_coefs.shape)
            emb_intercepts[:] = random_state.uniform(-bound, bound, emb_intercepts.shape)
        return w


def _truncated_normal(
    random_state: np.random.RandomState, scale: float, shape: tuple[int, ...]
) -> np.ndarray:
    """Normal draws of standard deviation ``scale``, those beyond ``3 * scale`` drawn again."""
    out = random_state.normal(0.0, scale, shape)
    bad = np.abs(out) > 3 * scale
    while bad.any():
        out[bad] = random_state.normal(0.0, scale, int(bad.sum()))
        bad = np.abs(out) > 3 * scale
    return out


def _loaded_embedding(value: object, n_first: int, state: object) -> dict[str, Any] | None:
    """A layout state's embedding, checked against the first layer's width ``n_first``."""
    if value is None:
        return None
    try:
        n_inputs = int(value["n_inputs"])
        columns = [int(v) for v in value["columns"]]
        k, d = int(value["n_frequencies"]), int(value["embedding_dim"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a skbp network layout: {state!r}") from exc
    if not (
        columns and k >= 1 and d >= 1 and 0 <= columns[0] and columns[-1] < n_inputs
        and all(a < b for a, b in itertools.pairwise(columns))
        and n_first == len(columns) * d + n_inputs - len(columns)
    ):  # fmt: skip
        raise ValueError(
            f"not a skbp network layout: its embedding does not fit its input layer ({state!r})"
        )
    return {"n_inputs": n_inputs, "columns": columns, "n_frequencies": k, "embedding_dim": d}


def _same(a: object, b: object) -> bool:
    """Whether a stored layout field equals the rebuilt one (arrays or numbers)."""
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except (TypeError, ValueError):
        return False
