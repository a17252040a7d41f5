"""Network layout: layer sizes -> offsets into one flat parameter vector.

All weights and biases of a network live in one contiguous 1-D array ``w``:
first every weight matrix (row-major, ``fan_in x fan_out``), then every bias
vector, in layer order -- the same packing as scikit-learn's ``_pack``, so the
vector can be handed to L-BFGS as it is.  ``coefs_`` and ``intercepts_`` are
views into it, and the compiled kernels receive ``w`` plus the integer offset
table below, so the depth of a network never creates a new compiled version.
"""

import numpy as np


class Layout:
    """Offsets of every layer's parameters and activations.

    Parameters
    ----------
    layer_units : sequence of int
        Widths of all layers, input and output included.
    """

    def __init__(self, layer_units):
        self.sizes = np.asarray(layer_units, dtype=np.int64)
        n_trans = len(self.sizes) - 1
        fan_in, fan_out = self.sizes[:-1], self.sizes[1:]
        n_coef = fan_in * fan_out
        #: start of each weight matrix in the flat vector
        self.coef_off = np.zeros(n_trans, dtype=np.int64)
        self.coef_off[1:] = np.cumsum(n_coef)[:-1]
        #: start of each bias vector in the flat vector
        self.int_off = np.int64(n_coef.sum()) + np.zeros(n_trans, dtype=np.int64)
        self.int_off[1:] += np.cumsum(fan_out)[:-1]
        self.n_params = int(n_coef.sum() + fan_out.sum())
        self.n_coef_params = int(n_coef.sum())
        #: start of each layer's output block in a per-row activation buffer
        self.act_off = np.zeros(n_trans, dtype=np.int64)
        self.act_off[1:] = np.cumsum(fan_out)[:-1]
        self.act_width = int(fan_out.sum())
        self.max_coef = int(n_coef.max())

    def offsets(self):
        """``sizes, coef_off, int_off, act_off`` as read-only views, for kernels.

        Always read-only (also after unpickling), so kernels see one array type.
        """
        out = []
        for a in (self.sizes, self.coef_off, self.int_off, self.act_off):
            v = a.view()
            v.flags.writeable = False
            out.append(v)
        return tuple(out)

    @property
    def n_layers(self):
        """Number of layers, input and output included (``n_layers_``)."""
        return len(self.sizes)

    def unpack(self, w):
        """Return ``coefs_`` and ``intercepts_`` as views into ``w``."""
        coefs, intercepts = [], []
        for i in range(len(self.sizes) - 1):
            fi, fo = int(self.sizes[i]), int(self.sizes[i + 1])
            c0, b0 = int(self.coef_off[i]), int(self.int_off[i])
            coefs.append(w[c0 : c0 + fi * fo].reshape(fi, fo))
            intercepts.append(w[b0 : b0 + fo])
        return coefs, intercepts

    def pack(self, coefs, intercepts, dtype):
        """Copy lists of weight matrices and bias vectors into a new flat vector."""
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
        return w

    def init_params(self, random_state, activation, dtype):
        """Glorot-uniform initialisation, drawn exactly as scikit-learn's MLP.

        The draws (weights then bias, layer by layer, from ``random_state``)
        are the ones ``MLPClassifier``/``MLPRegressor`` make, so the same
        ``random_state`` starts both libraries from the same weights.
        """
        coefs, intercepts = [], []
        factor = 2.0 if activation == "logistic" else 6.0
        for i in range(len(self.sizes) - 1):
            fi, fo = int(self.sizes[i]), int(self.sizes[i + 1])
            bound = np.sqrt(factor / (fi + fo))
            coefs.append(random_state.uniform(-bound, bound, (fi, fo)))
            intercepts.append(random_state.uniform(-bound, bound, fo))
        return self.pack(coefs, intercepts, dtype)
