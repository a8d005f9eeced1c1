"""Running, in the judge's own process, a function that a learner's kernel exported as a graph.

A probe can report a number it measured, and code in the learner's kernel can change that number.
Where an exercise asks for a `tf.function` of plain math, the probe sends the function's graph
instead (a serialized `GraphDef`, its captured tensors folded in as constants), and the judge
imports, runs, compiles and times that graph itself. The graph is checked first: only the math ops
in `ALLOWED_OPS`, small constants, one vector input and one output of the same shape, so that a
graph made to harm the grader (a file write, a huge allocation, a Python callback) never runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfcourse.exercises._framework import Wrong
from tfcourse.exercises.judges._observed import _MALFORMED, array, field

#: Stateless ops whose output is no bigger than their largest input: elementwise math, casts,
#: comparisons, reductions and reshapes. Nothing that reads or writes files, calls Python, draws
#: random numbers, holds state or makes a tensor of a size that a constant chooses.
ALLOWED_OPS = frozenset(
    {"Placeholder", "Const", "Identity", "IdentityN", "NoOp", "StopGradient", "Cast"}
    | {"Abs", "Neg", "Sign", "Square", "Sqrt", "Rsqrt", "Reciprocal", "Inv", "Exp", "Expm1", "Log"}
    | {"Log1p", "Sigmoid", "Tanh", "Softplus", "Softsign", "Relu", "Relu6", "Elu", "Selu", "Erf"}
    | {"Floor", "Ceil", "Round", "Rint", "Sin", "Cos", "Atan", "Sinh", "Cosh", "IsNan", "IsFinite"}
    | {"Add", "AddV2", "Sub", "Mul", "Div", "RealDiv", "DivNoNan", "Pow", "Maximum", "Minimum"}
    | {"SquaredDifference", "ClipByValue", "Select", "SelectV2", "LeakyRelu", "Gelu"}
    | {"Less", "LessEqual", "Greater", "GreaterEqual", "Equal", "NotEqual"}
    | {"LogicalAnd", "LogicalOr", "LogicalNot"}
    | {"Sum", "Mean", "Max", "Min", "Prod", "Reshape", "ExpandDims", "Squeeze", "Shape", "Size"}
)
#: The most nodes, bytes and elements per constant a replayed graph may have: far more than any
#: answer needs (06.4's reference has 14 nodes and under 1 kB).
MAX_NODES = 500
MAX_BYTES = 256_000
MAX_CONSTANT_ELEMENTS = 8


def replayed(observed: Any, *, name: str) -> Any:
    """The function a probe exported (see `tfcourse.exercises.ch06._exported`), as a
    `tf.function(jit_compile=True)` of one float32 vector, built in this process.

    Raises:
        Wrong: If the graph does not parse, or holds anything but the math ops of `ALLOWED_OPS`,
            constants of more than `MAX_CONSTANT_ELEMENTS` elements, or other than one vector in
            and one vector of the same length out.
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
    inputs, output = _expect_plain_math(graph_def, name)
    input_name, output_name = f"{inputs[0]}:0", field(observed, "output", str)
    if output_name.rsplit(":", 1)[0] != output:
        raise Wrong(_MALFORMED.format("an output that is not the graph's last Identity"))

    def imports() -> None:
        tf.compat.v1.import_graph_def(graph_def, name="")

    try:
        wrapped = tf.compat.v1.wrap_function(imports, [])
        pruned = wrapped.prune(
            wrapped.graph.as_graph_element(input_name), wrapped.graph.as_graph_element(output_name)
        )
    except (ValueError, TypeError, KeyError, tf.errors.OpError) as error:
        raise Wrong(_MALFORMED.format(f"a graph that does not import: {error}")) from None
    shape = pruned.outputs[0].shape
    if pruned.outputs[0].dtype != tf.float32 or shape.rank != 1:
        raise Wrong(
            f"{name}'s graph returns {pruned.outputs[0].dtype.name} of shape {shape} for a float32 "
            "vector: return a float32 vector of x's length, computed elementwise."
        )
    return tf.function(pruned, jit_compile=True)


def _expect_plain_math(graph_def: Any, name: str) -> tuple[list[str], str]:
    """The graph's placeholders and its output node; Wrong unless it is plain math."""
    from tensorflow.python.framework import tensor_util

    if graph_def.library.function:
        raise Wrong(
            f"{name} calls other tf.functions, which the check cannot replay: write its math in "
            "its own body."
        )
    nodes = list(graph_def.node)
    if len(nodes) > MAX_NODES:
        raise Wrong(f"{name}'s graph has {len(nodes)} ops; keep it to a few elementwise ops.")
    for node in nodes:
        if node.op not in ALLOWED_OPS:
            raise Wrong(
                f"{name} uses the op {node.op}, which the check does not run: keep to elementwise "
                "math (tf.clip_by_value, tf.sigmoid, tf.tanh, tf.abs, + - * /)."
            )
        node.device = ""
        if node.op == "Const":
            # The shape is checked before the value is loaded: a constant of one value and a
            # huge shape would otherwise be broadcast to that shape here.
            dims = [d.size for d in node.attr["value"].tensor.tensor_shape.dim]
            if any(d < 0 for d in dims) or np.prod(dims, dtype=np.float64) > MAX_CONSTANT_ELEMENTS:
                raise Wrong(
                    f"{name} holds a constant of shape {dims}: use scalars (Python numbers) as "
                    "its constants."
                )
            try:
                tensor_util.MakeNdarray(node.attr["value"].tensor)
            except (ValueError, TypeError):
                raise Wrong(_MALFORMED.format("a constant that does not load")) from None
    placeholders = [node.name for node in nodes if node.op == "Placeholder"]
    if len(placeholders) != 1:
        raise Wrong(_MALFORMED.format(f"a graph with {len(placeholders)} inputs, not 1"))
    consumed = {edge.split(":")[0].lstrip("^") for node in nodes for edge in node.input}
    outputs = [node.name for node in nodes if node.op == "Identity" and node.name not in consumed]
    if len(outputs) != 1:
        raise Wrong(f"{name} returns {len(outputs)} tensors: return one tensor, x's activation.")
    return placeholders, outputs[0]
