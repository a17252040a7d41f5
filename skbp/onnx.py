"""ONNX export of skbp's estimators through `skl2onnx <https://onnx.ai/sklearn-onnx/>`_.

Importing this module registers converters for :class:`~skbp.BPClassifier` and
:class:`~skbp.BPRegressor` with skl2onnx, so that ``skl2onnx.to_onnx`` converts
them, alone or inside a ``Pipeline``, like any scikit-learn estimator::

    import skbp.onnx  # noqa: F401  (registers the converters)
    from skl2onnx import to_onnx

    onx = to_onnx(model, X[:1])

The graph is the network's inference pass exactly as skbp computes it: the
periodic embedding of numeric columns, every hidden activation (per layer,
``leaky_relu``, ``elu``, ``selu``, ``gelu`` and ``mish`` included), batch
normalisation with the running statistics, residual skips, no dropout, and the
output activation (softmax, logistic, identity, or ``exp`` for the Poisson
loss).  Classifiers output labels and probabilities (binary, multiclass and
multilabel, scikit-learn's classifier options ``zipmap`` and ``nocl``
included); regressors output ``(n_samples, n_outputs)`` values.  The graph
computes in the model's own dtype (float32 or float64, as ``predict`` does),
whatever the input's float type, with one exception: onnxruntime has no float64
``Erf``, so a float64 model's gelu computes its ``erf`` in float32 (its values
agree with skbp's to about 1e-7).

Requires the ``onnx`` extra (skl2onnx, onnx, and onnxruntime to run the
result): ``pip install -e ".[onnx]"`` in a checkout of skbp, or
``pip install skl2onnx onnx onnxruntime``.
"""

from __future__ import annotations

import numpy as np

try:
    from skl2onnx import update_registered_converter
    from skl2onnx.common._apply_operation import apply_cast
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
        guess_proto_type,
    )
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
    from skl2onnx.proto import onnx_proto
except ImportError as exc:  # pragma: no cover - exercised without the extra only
    raise ImportError(
        f"skbp.onnx needs skl2onnx, which could not be imported ({exc}). Install it with "
        "'pip install skl2onnx onnx onnxruntime' (or 'pip install -e \".[onnx]\"' in a "
        "checkout of skbp)."
    ) from exc

from ._estimators import BPClassifier, BPRegressor
from ._kernels import (
    ACT_ELU,
    ACT_GELU,
    ACT_IDENTITY,
    ACT_LEAKY_RELU,
    ACT_LOGISTIC,
    ACT_MISH,
    ACT_RELU,
    ACT_SELU,
    ACT_TANH,
    BN_EPS,
    LEAKY_SLOPE,
    SELU_ALPHA,
    SELU_SCALE,
)

__all__ = ["register"]

#: ONNX operator (and its attributes) of each hidden activation code; leaky_relu,
#: elu, selu, gelu and mish are written with basic operators (onnxruntime has no
#: float64 LeakyRelu, Elu, Selu, Softplus or Erf; Mish and Gelu need opsets 18 and 20)
_HIDDEN_OPS = {
    ACT_IDENTITY: ("Identity", {}),
    ACT_LOGISTIC: ("Sigmoid", {}),
    ACT_TANH: ("Tanh", {}),
    ACT_RELU: ("Relu", {}),
}
#: ONNX operator of each output activation (``out_activation_``)
_OUTPUT_OPS = {
    "identity": ("Identity", {}),
    "logistic": ("Sigmoid", {}),
    "softmax": ("Softmax", {"axis": 1}),
    "exp": ("Exp", {}),
}


def _proto(dtype: np.dtype) -> int:
    """ONNX element type of a NumPy dtype (of the model, or of a constant)."""
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return onnx_proto.TensorProto.FLOAT
    if dtype == np.float64:
        return onnx_proto.TensorProto.DOUBLE
    if dtype == np.int64:
        return onnx_proto.TensorProto.INT64
    return onnx_proto.TensorProto.STRING


class _Graph:
    """Adds nodes and constants of one converted model to skl2onnx's container."""

    def __init__(self, scope, container, dtype):
        self.scope, self.container, self.dtype = scope, container, np.dtype(dtype)

    def const(self, name, value, dtype=None):
        value = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        var = self.scope.get_unique_variable_name(name)
        self.container.add_initializer(
            var, _proto(value.dtype), list(value.shape), value.ravel().tolist()
        )
        return var

    def node(self, op, inputs, name=None, out=None, **attrs):
        out = out or self.scope.get_unique_variable_name(name or op.lower())
        self.container.add_node(
            op, inputs, out, name=self.scope.get_unique_operator_name(op), **attrs
        )
        return out


def _hidden_activation(g, code, z):
    """``f(z)`` as ``skbp._kernels._activate`` computes it."""
    if code == ACT_LEAKY_RELU:  # z, or z * slope where z < 0
        zero = g.const("zero", 0.0)
        neg = g.node("Mul", [g.node("Min", [z, zero]), g.const("slope", LEAKY_SLOPE)])
        return g.node("Add", [g.node("Max", [z, zero]), neg], name="hidden")
    if code == ACT_ELU:  # z, or exp(z) - 1 where z < 0
        below = g.node("Less", [z, g.const("zero", 0.0)])
        expm1 = g.node("Sub", [g.node("Exp", [z]), g.const("one", 1.0)])
        return g.node("Where", [below, expm1, z], name="hidden")
    if code == ACT_SELU:  # scale z, or scale alpha (exp(z) - 1) where z <= 0
        above = g.node("Greater", [z, g.const("zero", 0.0)])
        pos = g.node("Mul", [z, g.const("selu_scale", SELU_SCALE)])
        expm1 = g.node("Sub", [g.node("Exp", [z]), g.const("one", 1.0)])
        neg = g.node("Mul", [expm1, g.const("selu_scale_alpha", SELU_SCALE * SELU_ALPHA)])
        return g.node("Where", [above, pos, neg], name="hidden")
    if code == ACT_GELU:  # z (1 + erf(z / sqrt 2)) / 2: the exact form
        u = g.node("Mul", [z, g.const("inv_sqrt2", 1.0 / np.sqrt(2.0))])
        if g.dtype == np.float64:
            u = g.node("Cast", [u], to=onnx_proto.TensorProto.FLOAT)
            erf = g.node("Cast", [g.node("Erf", [u])], to=onnx_proto.TensorProto.DOUBLE)
        else:
            erf = g.node("Erf", [u])
        half_z = g.node("Mul", [z, g.const("half", 0.5)])
        return g.node("Mul", [half_z, g.node("Add", [erf, g.const("one", 1.0)])], name="hidden")
    if code == ACT_MISH:  # z tanh(softplus(z)), softplus = max(z, 0) + log(1 + exp(-|z|))
        tail = g.node("Exp", [g.node("Neg", [g.node("Abs", [z])])])
        softplus = g.node(
            "Add",
            [g.node("Relu", [z]), g.node("Log", [g.node("Add", [tail, g.const("one", 1.0)])])],
        )
        return g.node("Mul", [z, g.node("Tanh", [softplus])], name="hidden")
    op, attrs = _HIDDEN_OPS[code]
    return g.node(op, [z], name="hidden", **attrs)


def _network_output(scope, operator, container):
    """Add the network's inference pass; return the name of its ``(n, n_outputs)`` output.

    Mirrors ``skbp._kernels.forward`` with ``train`` off: ``z = h W + b``; for a
    hidden layer batch norm ``gamma (z - mean) / sqrt(var + eps) + beta`` with
    the running statistics, the activation, and the residual skip ``+ h``.
    """
    est = operator.raw_operator
    g = _Graph(scope, container, est._weights_dtype())
    x = scope.get_unique_variable_name("x")
    apply_cast(scope, operator.inputs[0].full_name, x, container, to=_proto(g.dtype))
    members = getattr(est, "estimators_", None)
    if members is None:
        return _member_output(g, est, x)
    # predict's order: the members' outputs summed one by one, then divided
    P = _member_output(g, members[0], x)
    for m in members[1:]:
        P = g.node("Add", [P, _member_output(g, m, x)])
    return g.node("Div", [P, g.const("n_members", float(len(members)))], name="ensemble_mean")


def _embedding(g, est, h):
    """The first layer's input of a network with a periodic embedding (``skbp._kernels._embed``).

    The embedded columns ``(n, n_e)`` become angles ``2 pi x c`` ``(n, n_e, k)``,
    their cosines and sines ``v`` ``(n, n_e, 2k)``, then per column ``relu(v V_j
    + b_j)`` as one batched ``MatMul`` over the columns, flattened to ``(n, n_e
    d)`` and followed by the passed-through columns.
    """
    layout = est._layout
    n_e, k, d = len(layout.emb_cols), layout.emb_k, layout.emb_d
    x = g.node("Gather", [h, g.const("embedded", layout.emb_cols, np.int64)], axis=1)
    x = g.node("Reshape", [x, g.const("shape", [-1, n_e, 1], np.int64)])
    x = g.node("Mul", [x, g.const("two_pi", 2 * np.pi)])  # the kernel's order
    a = g.node("Mul", [x, g.const("frequencies", est.embedding_frequencies_.reshape(1, n_e, k))])
    v = g.node("Concat", [g.node("Cos", [a]), g.node("Sin", [a])], axis=2)
    v = g.node("Transpose", [v], perm=[1, 0, 2])  # (n_e, n, 2k): one product per column
    z = g.node("MatMul", [v, g.const("embedding_coefs", est.embedding_coefs_)])
    z = g.node("Transpose", [z], perm=[1, 0, 2])
    z = g.node("Add", [z, g.const("embedding_intercepts", est.embedding_intercepts_[None])])
    z = g.node("Reshape", [g.node("Relu", [z]), g.const("shape", [-1, n_e * d], np.int64)])
    if not len(layout.pass_cols):
        return z
    rest = g.node("Gather", [h, g.const("passed", layout.pass_cols, np.int64)], axis=1)
    return g.node("Concat", [z, rest], axis=1, name="embedded_input")


def _member_output(g, est, h):
    """One network's output for the input ``h`` (a single network, or a member)."""
    layout = est._layout
    last = est.n_layers_ - 2  # the output layer's transition
    if layout.embedding is not None:
        h = _embedding(g, est, h)

    def affine(l, h):
        z = g.node("MatMul", [h, g.const("coef", est.coefs_[l])])
        return g.node("Add", [z, g.const("intercept", est.intercepts_[l].reshape(1, -1))])

    for l in range(last):
        z = affine(l, h)
        if layout.batch_norm:
            # the kernel's order of operations, so float32 models agree to rounding
            mean = est.bn_running_means_[l].reshape(1, -1)
            std = np.sqrt(est.bn_running_vars_[l].astype(np.float64) + BN_EPS).reshape(1, -1)
            z = g.node("Sub", [z, g.const("bn_mean", mean)])
            z = g.node("Div", [z, g.const("bn_std", std)])
            z = g.node("Mul", [z, g.const("bn_scale", est.bn_scales_[l].reshape(1, -1))])
            z = g.node("Add", [z, g.const("bn_shift", est.bn_shifts_[l].reshape(1, -1))])
        a = _hidden_activation(g, int(layout.codes[l]), z)
        h = g.node("Add", [a, h], name="residual") if layout.res[l] else a
    op, attrs = _OUTPUT_OPS[est.out_activation_]
    return g.node(op, [affine(last, h)], name="network_output", **attrs)


def _class_labels(classes):
    """``(labels, onnx type)`` as scikit-learn's classifier converters encode them:
    numbers and booleans as int64 (a classifier's float labels are whole numbers),
    anything else as strings."""
    if classes.dtype.kind in "biuf":
        return classes.astype(np.int64), onnx_proto.TensorProto.INT64
    return np.array([str(c).encode("utf-8") for c in classes]), onnx_proto.TensorProto.STRING


def convert_bp_classifier(scope, operator, container):
    """skl2onnx converter of :class:`~skbp.BPClassifier`: labels and probabilities."""
    est = operator.raw_operator
    lb = est._label_binarizer
    g = _Graph(scope, container, est._weights_dtype())
    P = _network_output(scope, operator, container)
    if est.out_activation_ == "logistic":  # as predict_proba: strictly inside (0, 1)
        eps = np.finfo(g.dtype).eps
        P = g.node("Clip", [P, g.const("eps", eps), g.const("one_minus_eps", 1 - eps)])
    out_type = guess_proto_type(operator.outputs[1].type)
    proba = operator.outputs[1].full_name
    multilabel = lb.y_type_.startswith("multilabel")
    if est.n_outputs_ == 1 and not multilabel:  # binary: [1 - p, p]
        P = g.node("Concat", [g.node("Sub", [g.const("one", 1.0), P]), P], axis=1)
    apply_cast(scope, P, proba, container, to=out_type)
    labels = operator.outputs[0].full_name
    if multilabel:  # LabelBinarizer.inverse_transform: p > 0.5
        above = g.node("Greater", [P, g.const("half", 0.5)])
        apply_cast(scope, above, labels, container, to=onnx_proto.TensorProto.INT64)
        return
    nocl = scope.get_options(est, {"nocl": False}).get("nocl", False)
    # nocl: the label is the class's index (the classes are not stored in the graph)
    classes, class_type = _class_labels(np.arange(len(lb.classes_)) if nocl else lb.classes_)
    # argmax takes the first of equal values: p = 0.5 is the negative class, as in predict
    best = g.node("ArgMax", [P], axis=1, keepdims=0)
    if len(classes) == 1:
        best = g.node("Mul", [best, g.const("zero", 0, np.int64)])
    picked = g.node(
        "ArrayFeatureExtractor", [g.const("classes", classes, classes.dtype), best],
        op_domain="ai.onnx.ml",
    )  # fmt: skip
    flat = g.node("Reshape", [picked, g.const("shape", [-1], np.int64)])
    if class_type == onnx_proto.TensorProto.STRING:
        g.node("Identity", [flat], out=labels)
    else:
        apply_cast(scope, flat, labels, container, to=class_type)


def convert_bp_regressor(scope, operator, container):
    """skl2onnx converter of :class:`~skbp.BPRegressor`: ``(n_samples, n_outputs)`` values."""
    P = _network_output(scope, operator, container)
    out_type = guess_proto_type(operator.outputs[0].type)
    apply_cast(scope, P, operator.outputs[0].full_name, container, to=out_type)


def classifier_shapes(operator):
    """Output types of a classifier: scikit-learn's, with ``(N, n_labels)`` labels if multilabel.

    With the default ``zipmap`` option the probabilities are float32 even for a
    float64 input: ONNX's ZipMap takes nothing else (scikit-learn's own
    classifiers fail there; ``options={"zipmap": False}`` keeps float64).
    """
    calculate_linear_classifier_output_shapes(operator)
    est = operator.raw_operator
    zipmap = operator.scope_inst.get_options(est, {"zipmap": True}).get("zipmap", True)
    if zipmap and isinstance(operator.outputs[1].type, DoubleTensorType):
        operator.outputs[1].set_type(FloatTensorType(operator.outputs[1].type.shape))
    if est._label_binarizer.y_type_.startswith("multilabel"):
        N = operator.inputs[0].get_first_dimension()
        operator.outputs[0].set_type(Int64TensorType([N, est.n_outputs_]))


def regressor_shapes(operator):
    """Output type of a regressor: the input's float type, ``(N, n_outputs)``."""
    kind = operator.inputs[0].type
    cls = DoubleTensorType if isinstance(kind, DoubleTensorType) else FloatTensorType
    N = operator.inputs[0].get_first_dimension()
    operator.outputs[0].set_type(cls([N, operator.raw_operator.n_outputs_]))


def register():
    """Register the converters with skl2onnx (done once on import of this module)."""
    update_registered_converter(
        BPClassifier, "SkbpBPClassifier", classifier_shapes, convert_bp_classifier,
        options={"zipmap": [True, False, "columns"], "nocl": [True, False]},
    )  # fmt: skip
    update_registered_converter(
        BPRegressor, "SkbpBPRegressor", regressor_shapes, convert_bp_regressor
    )


register()
