"""Judges of chapter 07's checks (probes in `tfcourse.exercises.ch07`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tfcourse import litert
from tfcourse.exercises._framework import Wrong
from tfcourse.exercises.ch07 import (
    _AGREEMENT,
    _DEQUANTIZE_INPUT,
    _DIMMED_FIRST,
    _DIMMED_TO,
    _LAYER_NAMES,
    _SHAPE_ONLY_OPS,
    ACCURACY_SLACK,
    SIZE_CEILING,
    TIE_TOLERANCE,
    _doubler_parameters,
    _quantize_inputs,
    _quantized_doubler,
    _share_equal,
    _small_model,
    _to_tflite_inputs,
    outlier_models,
)
from tfcourse.exercises.judges._observed import _MALFORMED, array, field, items, settled


def _strings(observed: Any) -> list[str]:
    return items(observed, kind=str)


def _classes(observed: Any, count: int | None = None) -> np.ndarray:
    """`observed` as classes, one per image: `count` integers (at least one when None)."""
    classes = array(settled(observed))
    if classes.ndim != 1 or classes.dtype.kind not in "iu" or not len(classes):
        raise Wrong(_MALFORMED.format("expected one class per image"))
    if count is not None and len(classes) != count:
        raise Wrong(_MALFORMED.format(f"expected {count} classes"))
    return classes


# 07.1 -------------------------------------------------------------------------------------------
def to_tflite(observed: Any, seed: int) -> str:
    """07.1: a float32 model that computes what the check's Keras model computes."""
    name = "to_tflite(model)"
    quantized = sorted(set(_strings(field(observed, "weight_dtypes", list))) - {"float32"})
    if quantized:
        raise Wrong(
            f"{name}'s weights are stored as {', '.join(quantized)}: you quantized the model. "
            "This exercise wants the float32 model: leave out converter.optimizations."
        )
    got = array(field(observed, "outputs"))
    want = _small_model()(_to_tflite_inputs()).numpy()
    if got.shape != want.shape:
        raise Wrong(
            f"the model {name} returned gives outputs of shape {got.shape[1:]} per example, the "
            f"Keras model {want.shape[1:]}: convert the model you were given."
        )
    if not np.isfinite(got).all():
        raise Wrong(
            f"the model {name} returned outputs NaN or inf: its weights did not make it into the "
            "file (a concrete function converted without the model's variables?). Export the "
            "model, then TFLiteConverter.from_saved_model."
        )
    if not np.allclose(got, want, atol=1e-5):
        raise Wrong(
            f"the model {name} returned computes other values than the Keras model you were "
            "given (a new or retrained model?): convert that very model, unchanged."
        )
    return "a float32 .tflite model that computes the same outputs as the Keras model."


# 07.2 -------------------------------------------------------------------------------------------
_NOT_ITS_MODEL = (
    "{name} did not quantize the model it was given: for a copy of the model whose classes are "
    "renumbered, its model agrees with the copy on {agreement:.0%} of the test images. Quantize "
    "the `float_model` argument, not a model from the notebook."
)
_NOT_ITS_IMAGES = (
    "{name} did not calibrate on the x_train it was given: for a model that takes pixels scaled "
    "to [0, 1], with x_train scaled alike, its int8 model agrees with the float one on "
    "{agreement:.0%} of the images. Calibrate on images from the x_train argument, not the "
    "notebook's own arrays (and never the test images, on which the accuracy is measured)."
)
_TOO_FEW_IMAGES = (
    "{name} calibrated on too few images: when x_train's first "
    f"{_DIMMED_FIRST} images are dimmed to {_DIMMED_TO:.0%}, its int8 model agrees with the float "
    "one on {agreement:.0%} of the test images. Calibrate on a hundred or so, so that no handful "
    "of odd images sets the ranges."
)

#: What a low agreement on each calibration probe means (`ch07._calibration_probes`).
_MISTAKES = {"renumbered": _NOT_ITS_MODEL, "rescaled": _NOT_ITS_IMAGES, "dimmed": _TOO_FEW_IMAGES}
#: The probes a check runs, in order: "renumbered" only for a model with a dense or conv head.
_PROBE_KINDS = (("renumbered", "rescaled", "dimmed"), ("rescaled", "dimmed"))
#: How many of the test images the calibration probes compare on.
_PROBE_IMAGES = 200


def full_int8(observed: Any, seed: int) -> str:
    """07.2: int8 weights, input, output and ops; test accuracy within `ACCURACY_SLACK` of the
    float model's; and, on each calibration probe, 90% agreement with its float model."""
    name = "full_int8(float_model, x_train)"
    weight_dtypes = _strings(field(observed, "weight_dtypes", list))
    io = {"input": field(observed, "input", str), "output": field(observed, "output", str)}
    if "int8" not in weight_dtypes:
        raise Wrong(
            f"nothing in the model {name} returned is int8: quantize it with a Quantizer and "
            "recipe.static_wi8_ai8(), and return bytes(result.quantized_model)."
        )
    for side, dtype in io.items():
        if dtype == "int16":
            raise Wrong(
                f"the model's {side} is int16: recipe.static_wi8_ai16() quantizes activations to "
                "16 bits. This exercise wants int8 activations: recipe.static_wi8_ai8()."
            )
        if dtype != "int8":
            raise Wrong(
                f"the model's {side} is {dtype}, not int8: quantize the "
                "activations too, with recipe.static_wi8_ai8() (a dynamic or weight-only recipe "
                "leaves them float) and calibration data."
            )
    float_ops = [
        op
        for op, dtypes in _ops(field(observed, "ops", list))
        if "float32" in dtypes and op not in _SHAPE_ONLY_OPS
    ]
    if float_ops:
        raise Wrong(
            f"{len(float_ops)} ops still compute in float ({', '.join(sorted(set(float_ops)))}): "
            "load recipe.static_wi8_ai8() for the whole model, not a recipe for some layers."
        )
    labels = _classes(field(observed, "labels"))
    want = _share_equal(_classes(field(observed, "float"), len(labels)), labels)
    got = _share_equal(_classes(field(observed, "classes"), len(labels)), labels)
    if got < want - ACCURACY_SLACK:
        raise Wrong(
            f"test accuracy {got:.1%} against {want:.1%} in float: the calibration saw too few "
            "images, or images unlike the test images. Calibrate on a hundred or so real "
            "training images, shaped and scaled exactly as the model's input (here: float32 "
            "pixels 0-255, one batch axis each)."
        )
    calibration = field(observed, "calibration", dict)
    kinds = tuple(_strings(field(calibration, "kinds", list)))
    if kinds not in _PROBE_KINDS:
        raise Wrong(_MALFORMED.format("calibration probes that the check does not run"))
    probes, count = items(field(calibration, "probes", list)), min(_PROBE_IMAGES, len(labels))
    for index, kind in enumerate(kinds):
        if index >= len(probes):  # the probe stops after the first probe that fails
            raise Wrong(_MALFORMED.format(f"expected {len(kinds)} calibration probes"))
        probe = settled(probes[index])
        predicted = _classes(field(probe, "float"), count)
        agreement = _share_equal(_classes(field(probe, "classes"), count), predicted)
        if agreement < _AGREEMENT:
            raise Wrong(_MISTAKES[kind].format(name=name, agreement=agreement))
    return (
        f"int8 input, output and ops; test accuracy {got:.1%} against {want:.1%} in float "
        f"(allowed drop {ACCURACY_SLACK:.0%})."
    )


def _ops(observed: Any) -> list[tuple[str, list[str]]]:
    """The probe's [op, [input dtypes]] rows as (op, dtypes)."""
    rows = []
    for row in items(observed, kind=list):
        op, dtypes = items(row, 2)
        if not isinstance(op, str):
            raise Wrong(_MALFORMED.format("an op name that is not a str"))
        rows.append((op, _strings(dtypes)))
    return rows


# 07.3 -------------------------------------------------------------------------------------------
def interpreter_quantization(x: np.ndarray) -> dict[str, Any]:
    """What the interpreter computes for `x`: QUANTIZE's int8 output and DEQUANTIZE's float."""
    runner = litert.interpreter(_quantized_doubler(), preserve_all_tensors=True)
    ops = runner._get_ops_details()
    (quantize_op,) = [op for op in ops if op["op_name"] == "QUANTIZE"]
    (dequantize_op,) = [op for op in ops if op["op_name"] == "DEQUANTIZE"]
    runner.set_tensor(runner.get_input_details()[0]["index"], x)
    runner.invoke()
    q_in, q_out = quantize_op["outputs"][0], dequantize_op["inputs"][0]
    return {
        "x_params": runner._get_tensor_details(q_in, 0)["quantization"],
        "q": runner.get_tensor(q_in),
        "y_params": runner._get_tensor_details(q_out, 0)["quantization"],
        "y_int": runner.get_tensor(q_out),
        "y": runner.get_tensor(dequantize_op["outputs"][0]),
    }


def interpreter_dequantization(q: np.ndarray) -> dict[str, Any]:
    """What the interpreter's DEQUANTIZE computes for the int8 values `q` of the doubler's output
    grid: ``{"y_params": (scale, zero point), "y": float32 values}``.

    The doubler multiplies by 2 into a grid twice as coarse, so its integer values pass through
    unchanged: the input whose QUANTIZE is `q` reaches DEQUANTIZE as `q` (verified).
    """
    (scale, zero_point), _ = _doubler_parameters()
    x = ((q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)).astype(np.float32)
    seen = interpreter_quantization(x)
    if not np.array_equal(seen["y_int"], q):
        raise RuntimeError("the doubler's int8 values do not reach DEQUANTIZE unchanged")
    return {"y_params": seen["y_params"], "y": seen["y"]}


def quantize(observed: Any, seed: int) -> str:
    """07.3: quantize gives the interpreter's int8 values (either neighbour at a tie), and
    dequantize its float32 values."""
    scale, _ = interpreter_quantization(_quantize_inputs())["x_params"]
    x = _quantize_inputs(ties_for=scale)
    seen = interpreter_quantization(x)
    scale, zero_point = seen["x_params"]
    name = f"quantize(x, scale={scale:.4g}, zero_point={zero_point})"
    _expect_quantized(
        array(field(observed, "quantized")), seen["q"], x, scale, zero_point, name=name
    )
    reference = interpreter_dequantization(_DEQUANTIZE_INPUT)
    scale, zero_point = reference["y_params"]
    name = f"dequantize(q, scale={scale:.4g}, zero_point={zero_point})"
    y = array(field(observed, "dequantized"))
    _expect_dequantized(y, reference["y"], _DEQUANTIZE_INPUT, scale, zero_point, name=name)
    return (
        "quantize gives the interpreter's int8 values (rounded, shifted by the zero point, "
        "clipped; at an exact half either neighbour, as kernels differ), and dequantize its "
        "float32 values."
    )


def _expect_quantized(
    q: np.ndarray, want: np.ndarray, x: np.ndarray, scale: float, zero_point: int, *, name: str
) -> None:
    if q.shape != want.shape:
        raise Wrong(f"{name} has shape {q.shape}, expected {want.shape} (one value per value of x)")
    if q.dtype != np.int8:
        raise Wrong(f"{name} has dtype {q.dtype}, expected int8: finish with .astype(np.int8).")
    if np.array_equal(q, want) or _equal_but_ties(q, want, x, scale, zero_point):
        return
    if np.array_equal(q, np.clip(np.trunc(x / scale) + zero_point, -128, 127).astype(np.int8)):
        raise Wrong(f"{name} truncates x / scale toward zero: round to the nearest integer first.")
    if np.array_equal(q, np.clip(np.round(x / scale) - zero_point, -128, 127).astype(np.int8)):
        raise Wrong(
            f"{name} subtracts the zero point: quantizing adds it, (x / scale) + zero_point."
        )
    if np.array_equal(q, np.clip(np.round(x * scale) + zero_point, -128, 127).astype(np.int8)):
        raise Wrong(f"{name} multiplies by the scale: quantizing divides, x / scale.")
    wide = np.round(x / scale) + zero_point
    if np.array_equal(q, wide.astype(np.int64).astype(np.int8)) or np.any(
        (wide > 127) & (q != 127)
    ):
        raise Wrong(
            f"{name} wraps around for values of x outside the range: x = 40.0 gives {q[0, 1]}, "
            f"the interpreter {want[0, 1]}. Clip to [-128, 127] before the cast to int8."
        )
    wrong = int(np.sum(q != want))
    index = tuple(np.argwhere(q != want)[0])
    raise Wrong(
        f"{name} differs from the interpreter in {wrong} of {q.size} values, e.g. x = "
        f"{x[index]:.4g} gives {q[index]}, the interpreter {want[index]}: q = "
        "clip(round(x / scale) + zero_point, -128, 127) as int8."
    )


def _equal_but_ties(
    q: np.ndarray, want: np.ndarray, x: np.ndarray, scale: float, zero_point: int
) -> bool:
    """Equal to the interpreter's values except at ties, where `q` holds one of the neighbours."""
    ratio = x.astype(np.float64) / float(scale)
    tie = np.abs(np.abs(ratio - np.floor(ratio)) - 0.5) < TIE_TOLERANCE
    below = np.clip(np.floor(ratio) + zero_point, -128, 127)
    above = np.clip(np.ceil(ratio) + zero_point, -128, 127)
    at_ties = (q == below) | (q == above)
    return bool(np.all(np.where(tie, at_ties, q == want)))


def _expect_dequantized(
    y: np.ndarray, want: np.ndarray, q: np.ndarray, scale: float, zero_point: int, *, name: str
) -> None:
    if y.shape != want.shape:
        raise Wrong(f"{name} has shape {y.shape}, expected {want.shape}")
    if y.dtype != np.float32:
        raise Wrong(f"{name} has dtype {y.dtype}, expected float32: the interpreter's dtype.")
    if np.allclose(y, want, rtol=1e-6, atol=0):
        return
    wide = q.astype(np.float64)
    mistakes = {
        "forgets the zero point: (q - zero_point) * scale": wide * scale,
        "adds the zero point: dequantizing subtracts it, (q - zero_point) * scale": (
            (wide + zero_point) * scale
        ),
        "divides by the scale: dequantizing multiplies, (q - zero_point) * scale": (
            (wide - zero_point) / scale
        ),
        "subtracts the zero point in int8, which wraps around (-128 - 5 becomes 123): convert q "
        "first, q.astype(np.int32) - zero_point": (
            (q.astype(np.int64) - zero_point).astype(np.int8).astype(np.float64) * scale
        ),
    }
    for mistake, values in mistakes.items():
        if np.allclose(y, values, rtol=1e-5):
            raise Wrong(f"{name} {mistake}.")
    raise Wrong(
        f"{name} gives {y.ravel()[:2]} where the interpreter gives {want.ravel()[:2]}: "
        "dequantizing is (q - zero_point) * scale, in float32."
    )


# 07.4 -------------------------------------------------------------------------------------------
def _expect_chosen_by_measurement(
    calls: list[tuple[list[str], float]], layer_names: list[str], kept: str, *, name: str
) -> None:
    """The layer kept float must be the one the learner's own `evaluate` calls found most
    sensitive: a model keeping only it float scored best, or one quantizing only it worst."""
    sensitivity: dict[str, float] = {}
    for float_layers, score in calls:
        candidates = [n for n in layer_names if n in float_layers]
        if len(candidates) == 1:  # everything quantized but this layer
            sensitivity[candidates[0]] = score
        elif len(candidates) == len(layer_names) - 1:  # only this layer quantized
            (quantized,) = set(layer_names) - set(candidates)
            sensitivity[quantized] = -score
    if len(sensitivity) < len(layer_names):
        raise Wrong(
            f"{name} evaluated {len(calls)} model(s), {len(sensitivity)} of them a candidate for "
            f"one of the {len(layer_names)} layers: find the layer by measurement, evaluating a "
            "model for each candidate, not by looking at the weights."
        )
    best = max(sensitivity, key=sensitivity.get)
    if best != kept:
        raise Wrong(
            f"{name} keeps {kept} in float, but its own evaluate calls found {best} the most "
            "sensitive: keep the layer whose candidate model measured best."
        )


def selective(observed: Any, seed: int) -> str:
    """07.4: on each model, only its sensitive layer kept float, found by the learner's own
    evaluate calls; under `SIZE_CEILING` of the float size, within a point of its accuracy."""
    from tfcourse import data

    models, _, grade = outlier_models()
    labels = data.load_numpy("mnist5k", "test")["label"]
    layer_names = list(_LAYER_NAMES)
    for one, (target, float_model) in zip(
        items(observed, len(models)), models.items(), strict=True
    ):
        one = settled(one)
        name = f"keep_sensitive_layer_float(model with {target} sensitive, ...)"
        kept = _strings(field(one, "kept", list))
        size = field(one, "size", int)
        if isinstance(size, bool) or size < 0:
            raise Wrong(_MALFORMED.format("a size that is not a count of bytes"))
        share = size / len(float_model)
        float_accuracy = grade(float_model)
        accuracy = float(np.mean(_classes(field(one, "classes"), len(labels)) == labels))
        ops = set(_strings(field(one, "ops", list)))
        if "DEQUANTIZE" in ops:
            raise Wrong(
                f"{name} dequantizes its int8 weights back to float before use (a weight-only "
                "recipe): quantize with recipe.dynamic_wi8_afp32(), whose ops multiply in int8."
            )
        if share > SIZE_CEILING:
            raise Wrong(
                f"{name} is {share:.0%} of the float model's size (ceiling {SIZE_CEILING:.0%}); "
                f"layers still float: {', '.join(kept) or 'none'}. Quantize every layer but the "
                "one whose quantization costs the most accuracy."
            )
        if accuracy < float_accuracy - 0.01:
            raise Wrong(
                f"{name} has {accuracy:.1%} test accuracy against {float_accuracy:.1%} in float; "
                f"layers kept float: {', '.join(kept) or 'none'}. Measure: quantize all but one "
                "layer at a time, evaluate each, and keep the layer that matters."
            )
        if kept != [target]:
            legacy = (
                " (logits has fewer than 1,024 weights, which recipe.dynamic_legacy_wi8_afp32() "
                "leaves float: load recipe.dynamic_wi8_afp32())"
                if "logits" in kept
                else ""
            )
            raise Wrong(
                f"{name} keeps {', '.join(kept) or 'no layer'} in float; expected only "
                f"{target}{legacy}."
            )
        calls = [
            (_strings(field(c, "float_layers", list)), float(field(c, "score", (int, float))))
            for c in items(field(one, "calls", list), kind=dict)
        ]
        _expect_chosen_by_measurement(calls, layer_names, target, name=name)
    return (
        f"on two models with a different sensitive layer, you kept exactly that layer in float: "
        f"under {SIZE_CEILING:.0%} of the float size, within a point of its accuracy."
    )
