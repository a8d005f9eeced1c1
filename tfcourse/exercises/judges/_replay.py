"""Running, in the judge's own process, a function that a learner's kernel exported as a graph.

A probe can report a number it measured, and code in the learner's kernel can change that number.
Where an exercise asks for a `tf.function` of plain math, the probe sends the function's graph
instead (a serialized `GraphDef`, its captured tensors folded in as constants), and the judge
imports, runs, compiles and times that graph itself. The graph is checked first: only the math ops
in `ALLOWED_OPS`, small constants, one vector input and one output of the same shape, so that a
graph made to harm the grader (a file write, a huge allocation, a Python callback) never runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tfcourse.exercises._framework import Wrong
from tfcourse.exercises.judges._observed import _MALFORMED, array, field

#: Stateless elementwise ops: each output has the shape of its inputs, broadcast against scalar
#: constants. Nothing that reshapes, reduces, reads a shape, broadcasts to a shape of its own, reads
#: or writes files, calls Python, draws random numbers or holds state.
ALLOWED_OPS = frozenset(
    {"Placeholder", "Const", "Identity", "NoOp", "StopGradient", "Snapshot", "Cast"}
    | {"PreventGradient", "CheckNumerics", "ZerosLike", "OnesLike"}
    | {"Abs", "Neg", "Sign", "Square", "Sqrt", "Rsqrt", "Reciprocal", "Inv", "Exp", "Expm1", "Log"}
    | {"Log1p", "Sigmoid", "Tanh", "Softplus", "Softsign", "Relu", "Relu6", "Elu", "Selu", "Erf"}
    | {"Erfc", "Floor", "Ceil", "Round", "Rint", "Sin", "Cos", "Tan", "Atan", "Asin", "Acos"}
    | {"Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "IsNan", "IsFinite", "IsInf", "LeakyRelu", "Gelu"}
    | {"Add", "AddV2", "Sub", "Mul", "Div", "RealDiv", "DivNoNan", "Pow", "Maximum"}
    | {"Minimum", "SquaredDifference", "ClipByValue", "Select", "SelectV2", "Atan2", "Xlogy"}
    | {"Xdivy", "FloorDiv", "FloorMod", "Mod", "TruncateDiv", "TruncateMod"}
    | {"Less", "LessEqual", "Greater", "GreaterEqual", "Equal", "NotEqual"}
    | {"LogicalAnd", "LogicalOr", "LogicalNot"}
)
#: The most ops and bytes a replayed graph may have: several times what any answer needs (06.4's
#: reference has 14 ops and under 1 kB), and few enough that one call stays cheap.
MAX_NODES = 64
MAX_BYTES = 64_000
#: The most inputs one op may take (`tf.where` and `tf.clip_by_value` take 3): an op that lists
#: one input thousands of times would cost thousands of passes.
MAX_INPUTS = 3
#: Data types a constant may have.
_CONSTANT_DTYPES = frozenset(
    {"float16", "bfloat16", "float32", "float64", "int32", "int64", "bool"}
)


def replayed(observed: Any, *, name: str) -> Any:
    """The function a probe exported (see `tfcourse.exercises.ch06._exported`), as a
    `tf.function(jit_compile=True)` of one float32 vector, built in this process.

    Every tensor in it is a scalar or a vector of x's length, so running it costs at most a few
    dozen passes over x, and no more memory.

    Raises:
        Wrong: If the graph does not parse or import, or holds anything but the ops of
            `ALLOWED_OPS`, more than `MAX_NODES` of them, a constant that is not a scalar, or a
            tensor that is not a scalar or a vector of x's length.
    """
    import tensorflow as tf

    raw = array(field(observed, "graph_def"))
    if raw.dtype != np.uint8 or raw.ndim != 1 or raw.size > MAX_BYTES:
        raise Wrong(_MALFORMED.format(f"a graph that is not up to {MAX_BYTES:,} bytes"))
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(raw.tobytes())
    except Exception:  # protobuf's DecodeError has no stable home
        raise Wrong(_MALFORMED.format("a graph that does not parse")) from None
    placeholder, output = _expect_plain_math(graph_def, name)
    output_name = field(observed, "output", str)
    if output_name != f"{output}:0":
        raise Wrong(_MALFORMED.format("an output that is not the graph's last Identity"))

    def imports() -> None:
        tf.compat.v1.import_graph_def(graph_def, name="")

    try:
        wrapped = tf.compat.v1.wrap_function(imports, [])
        pruned = wrapped.prune(
            wrapped.graph.as_graph_element(f"{placeholder}:0"),
            wrapped.graph.as_graph_element(output_name),
        )
    except Exception as error:  # any failure to import is the graph's
        raise Wrong(_MALFORMED.format(f"a graph that does not import: {_short(error)}")) from None
    for operation in wrapped.graph.get_operations():
        for tensor in operation.outputs:
            if tensor.shape.rank is None or tensor.shape.as_list() not in ([], [None]):
                raise Wrong(
                    f"{name} makes a tensor of shape {tensor.shape} ({operation.type}): keep to "
                    "elementwise math on x, with no reshapes, reductions or stacking."
                )
    result = pruned.outputs[0]
    if result.dtype != tf.float32 or result.shape.as_list() != [None]:
        raise Wrong(
            f"{name}'s graph returns {result.dtype.name} of shape {result.shape} for a float32 "
            "vector: return a float32 vector of x's length, computed elementwise."
        )
    return tf.function(pruned, jit_compile=True)


def run_replayed(fn: Callable[[], Any], *, name: str) -> Any:
    """``fn()``, which runs a replayed graph: any error it raises is the graph's (`Wrong`)."""
    try:
        return fn()
    except Exception as error:  # the graph came from the learner's kernel
        raise Wrong(f"{name}'s graph failed when the check ran it: {_short(error)}") from None


def _short(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"


def _expect_plain_math(graph_def: Any, name: str) -> tuple[str, str]:
    """The graph's one placeholder (made a float32 vector of any length) and its output node;
    Wrong unless it is plain elementwise math with scalar constants."""
    import tensorflow as tf

    control_flow = sorted(
        {node.op for node in graph_def.node}
        & {"While", "StatelessWhile", "If", "StatelessIf", "Case", "StatelessCase"}
    )
    if control_flow:
        raise Wrong(
            f"{name} uses {', '.join(control_flow)}: a Python loop or `if` on a tensor becomes "
            "a tf.while_loop or tf.cond. Compute every element at once instead, with tf.where "
            "for a choice."
        )
    if graph_def.library.function:
        raise Wrong(
            f"{name} calls another tf.function that the check cannot replay (one with "
            "jit_compile=True keeps its own graph): write the math in its own body, or drop "
            "jit_compile from the helper."
        )
    nodes = list(graph_def.node)
    if len(nodes) > MAX_NODES:
        raise Wrong(f"{name}'s graph has {len(nodes)} ops; keep it to a few elementwise ops.")
    for node in nodes:
        if node.op not in ALLOWED_OPS:
            raise Wrong(
                f"{name} uses the op {node.op}, which the check does not run: keep to elementwise "
                "tf.math ops on x (tf.clip_by_value, tf.sigmoid, tf.tanh, tf.abs, tf.where, "
                "+ - * /), with Python numbers as constants."
            )
        if len(node.input) > MAX_INPUTS:
            raise Wrong(_MALFORMED.format(f"an op with {len(node.input)} inputs"))
        node.device = ""
        if node.op == "Const":
            _expect_scalar(node, name)
    placeholders = [node for node in nodes if node.op == "Placeholder"]
    if len(placeholders) != 1 or placeholders[0].attr["dtype"].type != tf.float32.as_datatype_enum:
        raise Wrong(_MALFORMED.format("a graph without exactly one float32 input"))
    # The input is a vector of any length, whatever shape the graph claims for it.
    placeholders[0].attr["shape"].shape.CopyFrom(tf.TensorShape([None]).as_proto())
    consumed = {edge.split(":")[0].lstrip("^") for node in nodes for edge in node.input}
    outputs = [node.name for node in nodes if node.op == "Identity" and node.name not in consumed]
    if len(outputs) != 1:
        raise Wrong(f"{name} returns {len(outputs)} tensors: return one tensor, x's activation.")
    return placeholders[0].name, outputs[0]


def _expect_scalar(node: Any, name: str) -> None:
    """A constant must be one number: its shape is read before its value, since one value with a
    huge shape would be broadcast to that shape as it loads."""
    from tensorflow.python.framework import tensor_util

    tensor = node.attr["value"].tensor
    dims = [d.size for d in tensor.tensor_shape.dim]
    if any(d != 1 for d in dims):
        raise Wrong(
            f"{name} holds a constant of shape {dims}: use scalars (Python numbers) as its "
            "constants, and compute from x (a table of values ignores the x it is given)."
        )
    try:
        value = tensor_util.MakeNdarray(tensor)
    except Exception:  # a forged constant
        raise Wrong(_MALFORMED.format("a constant that does not load")) from None
    if value.dtype.name not in _CONSTANT_DTYPES:
        raise Wrong(f"{name} holds a constant of type {value.dtype.name}: compute with numbers.")
