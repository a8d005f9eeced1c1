"""Run and inspect LiteRT (TensorFlow Lite) models: interpreters, predictions, ops and their dtypes.

Introduced in `07_tflite_quantization`. The notebook first shows the interpreter's own API; these
helpers then run the same steps for every model variant without repeating them.
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Any

import numpy as np

#: The first bytes of every .tflite flatbuffer: a 4-byte offset, then the file identifier.
_IDENTIFIER = b"TFL3"


def _model_bytes(model: Any) -> bytes:
    if isinstance(model, bytearray):
        model = bytes(model)
    if not isinstance(model, bytes):
        raise TypeError(
            f"model must be the .tflite flatbuffer as bytes (what convert() returns), "
            f"got {type(model).__name__}"
        )
    if model[4:8] != _IDENTIFIER:
        raise ValueError(
            f"these {len(model)} bytes are not a .tflite model (no 'TFL3' identifier at byte 4); "
            "pass what TFLiteConverter.convert() or a quantizer returned"
        )
    return model


def interpreter(
    model: bytes, *, xnnpack: bool = True, threads: int = 1, preserve_all_tensors: bool = False
) -> Any:
    """A LiteRT interpreter for `model`, its tensors allocated.

    Args:
        model: The .tflite flatbuffer.
        xnnpack: Run with the default XNNPACK delegate (LiteRT's default); False uses the
            built-in kernels alone (`OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES`).
        threads: How many threads the kernels may use.
        preserve_all_tensors: Keep every intermediate tensor readable after `invoke()`
            (for debugging; uses more memory).

    Introduced in `07_tflite_quantization`.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an int >= 1; got {threads!r}")
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with warnings.catch_warnings():  # preserve_all_tensors warns that it is for debugging: it is
        warnings.filterwarnings("ignore", "Warning: Enabling `experimental_preserve_all_tensors`")
        result = Interpreter(
            model_content=_model_bytes(model),
            num_threads=threads,
            experimental_op_resolver_type=resolver,
            experimental_preserve_all_tensors=preserve_all_tensors,
        )
    result.allocate_tensors()
    return result


def quantize(x: Any, scale: float, zero_point: int, dtype: Any = np.int8) -> np.ndarray:
    """`x` in the integer grid of (`scale`, `zero_point`): round(x / scale) + zero_point, clipped.

    Introduced in `07_tflite_quantization` (exercise 07.3 asks you to write it).
    """
    info = np.iinfo(dtype)
    q = np.round(np.asarray(x, np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: Any, scale: float, zero_point: int) -> np.ndarray:
    """The float32 values that the integers `q` stand for: (q - zero_point) * scale.

    Introduced in `07_tflite_quantization`.
    """
    return ((np.asarray(q).astype(np.int32) - zero_point) * np.float32(scale)).astype(np.float32)


def _quantized(details: dict[str, Any]) -> bool:
    """Whether a tensor holds quantized values: an integer dtype with a scale (ids have none)."""
    return np.issubdtype(details["dtype"], np.integer) and details["quantization"][0] != 0


def predict(model: bytes, x: Any, *, batch_size: int = 500) -> np.ndarray:
    """The model's float outputs for the examples `x`, in batches of `batch_size`.

    A model with quantized integer input gets `x` quantized with its input's (scale, zero point),
    and its quantized output is dequantized, as a caller of a full-integer model must do. Integer
    input without a scale (token ids) is passed as it is.

    Introduced in `07_tflite_quantization`.
    """
    x = np.asarray(x)
    runner = interpreter(model)
    (inp,), (out,) = runner.get_input_details(), runner.get_output_details()
    outputs = []
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        runner.resize_tensor_input(inp["index"], [len(batch), *inp["shape"][1:]])
        runner.allocate_tensors()
        if _quantized(inp):
            batch = quantize(batch, *inp["quantization"], dtype=inp["dtype"])
        runner.set_tensor(inp["index"], batch.astype(inp["dtype"]))
        runner.invoke()
        result = runner.get_tensor(out["index"])
        if _quantized(out):
            result = dequantize(result, *out["quantization"])
        outputs.append(result)
    return np.concatenate(outputs)


def subgraphs(model: bytes) -> list[str]:
    """The names of the model's subgraphs: `main` first, then any a control-flow op runs
    (a recurrent layer's `WHILE` loop has a `..._cond` and a `..._body`).

    Introduced in `07_tflite_quantization`.
    """
    from ai_edge_litert import schema_py_generated as schema

    root = schema.Model.GetRootAs(_model_bytes(model), 0)
    return [(root.Subgraphs(g).Name() or b"").decode() for g in range(root.SubgraphsLength())]


def op_dtypes(model: bytes, subgraph: int = 0) -> list[tuple[str, tuple[str, ...]]]:
    """Each op of one subgraph in order, with the dtypes of its inputs (activations, then weights).

    An op whose inputs are all float computes in float; `(float32, int8, ...)` is a hybrid op
    that quantizes its activations on the fly; `(int8, int8, int32)` is an integer op. Read from
    the flatbuffer itself, so every subgraph is visible (`subgraphs(model)` names them).

    Introduced in `07_tflite_quantization`.
    """
    from ai_edge_litert import schema_py_generated as schema

    root = schema.Model.GetRootAs(_model_bytes(model), 0)
    if not 0 <= subgraph < root.SubgraphsLength():
        raise ValueError(
            f"subgraph must be 0-{root.SubgraphsLength() - 1} for this model, got {subgraph}"
        )
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    graph = root.Subgraphs(subgraph)
    rows = []
    for o in range(graph.OperatorsLength()):
        op = graph.Operators(o)
        code = root.OperatorCodes(op.OpcodeIndex())
        name = op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        inputs = [i for i in op.InputsAsNumpy() if i >= 0] if op.InputsLength() else []
        rows.append((name, tuple(type_names[graph.Tensors(int(i)).Type()] for i in inputs)))
    return rows


def file_parts(model: bytes) -> dict[str, int]:
    """The bytes of a .tflite file by what they hold, read from the flatbuffer (every subgraph).

    `constants`: the data of constant tensors (weights, biases, constant shapes);
    `quantization parameters`: the scales (4 bytes each) and zero points (8 bytes each) of every
    quantized tensor; `rest`: everything else (ops, tensor names and shapes, the signature).

    Introduced in `07_tflite_quantization`.
    """
    from ai_edge_litert import schema_py_generated as schema

    data = _model_bytes(model)
    root = schema.Model.GetRootAs(data, 0)
    constants = sum(root.Buffers(b).DataLength() for b in range(root.BuffersLength()))
    parameters = 0
    for g in range(root.SubgraphsLength()):
        graph = root.Subgraphs(g)
        for t in range(graph.TensorsLength()):
            quantization = graph.Tensors(t).Quantization()
            if quantization is not None:
                parameters += 4 * quantization.ScaleLength() + 8 * quantization.ZeroPointLength()
    return {
        "constants": constants,
        "quantization parameters": parameters,
        "rest": len(data) - constants - parameters,
    }


def op_summary(model: bytes, subgraph: int = 0) -> str:
    """One subgraph's kinds of op, each with its input dtypes, one per line, in order of first
    appearance; repeats counted (`x2`).

    Introduced in `07_tflite_quantization`.
    """
    counts = Counter(f"{name}({', '.join(dtypes)})" for name, dtypes in op_dtypes(model, subgraph))
    return "\n".join(f"{key} x{n}" if n > 1 else key for key, n in counts.items())


def weight_tensors(model: bytes) -> dict[str, dict[str, Any]]:
    """The model's constant tensors of 2+ axes (weights), by name: values, dtype and quantization.

    Each entry holds `values` (as stored), `dtype`, `scales` and `zero_points` (empty when the
    tensor is not quantized) and `axis` (the quantized axis, for per-channel parameters).

    Introduced in `07_tflite_quantization`.
    """
    runner = interpreter(model, xnnpack=False)
    computed = {i for op in runner._get_ops_details() for i in op["outputs"]}
    computed |= {detail["index"] for detail in runner.get_input_details()}
    found = {}
    for detail in runner.get_tensor_details():
        if len(detail["shape"]) < 2 or detail["index"] in computed or not detail["name"]:
            continue
        values = runner.get_tensor(detail["index"])
        params = detail["quantization_parameters"]
        found[detail["name"]] = {
            "values": values,
            "dtype": np.dtype(detail["dtype"]).name,
            "scales": params["scales"],
            "zero_points": params["zero_points"],
            "axis": params["quantized_dimension"],
        }
    return found
