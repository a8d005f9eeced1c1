"""Self-checks for the exercises of `07_tflite_quantization`: the probes.

Each check is in two parts (see `tfcourse.exercises._split`): the probe here runs the learner's
answer and returns what it saw; the judge, in `tfcourse.exercises.judges.ch07`, decides.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from tfcourse import litert
from tfcourse.exercises._expect import to_numpy
from tfcourse.exercises._framework import (
    Wrong,
    _describe,
)
from tfcourse.exercises._learner import call, forbid, learner_code
from tfcourse.exercises._split import deferred, failed, two_part

__all__ = [
    "ACCURACY_SLACK",
    "SIZE_CEILING",
    "VALIDATION_SIZE",
    "check_full_int8",
    "check_quantize",
    "check_selective",
    "check_to_tflite",
    "outlier_models",
]

#: Exercise 07.2: how many points of test accuracy the full-int8 model may lose to the float one.
ACCURACY_SLACK = 0.01
#: Exercise 07.4: training images held out of the MLP's training, on which `evaluate` measures.
VALIDATION_SIZE = 500
#: Exercise 07.4: the largest model allowed, as a fraction of the float model's size.
SIZE_CEILING = 0.4
_SENSITIVE_LAYERS = ("hidden_b", "hidden_c")
#: Exercise 07.4: the layers the learner's function chooses from (its `layer_names`).
_LAYER_NAMES = ("hidden_a", "hidden_b", "hidden_c")


def _tflite_bytes(value: Any, *, name: str) -> bytes:
    """The learner's answer as a .tflite flatbuffer, or `Wrong` saying what arrived instead."""
    if value is None:
        raise Wrong(f"{name} returned None; did you forget a `return`?")
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        raise Wrong(
            f"{name} returned the number {value}: return the model's bytes; the check measures "
            "their size itself with len()."
        )
    if isinstance(value, str) and not os.path.exists(value):
        raise Wrong(
            f"{name} returned the str {value[:60]!r}; return the .tflite model's bytes, what "
            "converter.convert() or bytes(result.quantized_model) gives you."
        )
    if isinstance(value, str) or hasattr(value, "__fspath__"):
        raise Wrong(
            f"{name} returned a path ({str(value)[:60]}); return the .tflite flatbuffer itself, "
            "the bytes that converter.convert() or bytes(result.quantized_model) gives you."
        )
    if hasattr(value, "invoke") or hasattr(value, "quantized_model"):
        raise Wrong(
            f"{name} returned {type(value).__name__}; return the model's bytes (for a "
            "QuantizationResult, bytes(result.quantized_model))."
        )
    if not isinstance(value, (bytes, bytearray)):
        raise Wrong(
            f"{name} should return the .tflite model as bytes, but returned {_describe(value)}"
        )
    try:
        return litert._model_bytes(value)
    except ValueError as error:
        raise Wrong(f"{name} returned {error}") from None


def _weight_dtypes(flatbuffer: bytes) -> list[str]:
    """The dtypes the model's weights are stored in, sorted, each once."""
    return sorted({w["dtype"] for w in litert.weight_tensors(flatbuffer).values()})


# 07.1 -------------------------------------------------------------------------------------------
def _small_model() -> Any:
    import keras
    from keras import layers

    keras.utils.set_random_seed(71)
    return keras.Sequential(
        [keras.Input((32,)), layers.Dense(64, activation="relu"), layers.Dense(3)], name="small"
    )


def _to_tflite_inputs() -> np.ndarray:
    """The 5 examples 07.1 runs the converted model on."""
    return np.random.default_rng(7).normal(size=(5, 32)).astype(np.float32)


@two_part("07.1", "convert a Keras model to a float .tflite model")
def check_to_tflite(to_tflite: Callable[[Any], Any], seed: int) -> dict[str, Any]:
    """Check `to_tflite(model)`: the float32 .tflite flatbuffer of a Keras model, as bytes."""
    model = _small_model()
    name = "to_tflite(model)"
    x = _to_tflite_inputs()
    own = "it calls the check's own converter: write the conversion yourself."
    with forbid("tfcourse.exercises.ch07._float_tflite", own):
        answer = call(to_tflite, model, name=name)
    flatbuffer = _tflite_bytes(answer, name=name)
    return {
        "weight_dtypes": _weight_dtypes(flatbuffer),
        "outputs": deferred(lambda: _outputs(flatbuffer, x, name=name)),
    }


def _outputs(flatbuffer: bytes, x: np.ndarray, *, name: str) -> np.ndarray:
    """The model's outputs for `x`, or `Wrong` when it does not run on them."""
    try:
        return litert.predict(flatbuffer, x)
    except (ValueError, RuntimeError) as error:
        shape = litert.interpreter(flatbuffer).get_input_details()[0]["shape"].tolist()
        raise Wrong(
            f"the model {name} returned does not run on the model's inputs of shape (5, 32) "
            f"(its input has shape {shape}; {str(error)[:80]}): convert the model you were given."
        ) from None


# 07.2 -------------------------------------------------------------------------------------------
def _float_tflite(model: Any) -> bytes:
    """The Keras model as a float32 .tflite model: what the learner's function starts from."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as folder:
        model.export(folder, verbose=False)
        return bytes(tf.lite.TFLiteConverter.from_saved_model(folder).convert())


def _call_full_int8(
    full_int8: Callable[[bytes, np.ndarray], Any], model: Any, x_train: np.ndarray, *, name: str
) -> Any:
    """`full_int8` on `model` as a float .tflite; a KeyError says to read the input's name."""
    try:
        return call(full_int8, _float_tflite(model), x_train, name=name)
    except Wrong as wrong:
        if isinstance(wrong.__cause__, KeyError):
            raise Wrong(
                f"{wrong} The check's models name their inputs their own way: read the signature "
                "and its input's name from the model (Interpreter(model_content=float_model)"
                ".get_signature_list())."
            ) from None
        raise


def _classes(outputs: Any) -> np.ndarray:
    """The class each row of `outputs` predicts."""
    return np.argmax(outputs, axis=1)


@two_part("07.2", "a full-integer model with LiteRT Quantizer, calibrated on training images")
def check_full_int8(
    full_int8: Callable[[bytes, np.ndarray], Any],
    model: Any,
    x_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    seed: int,
) -> dict[str, Any]:
    """Check `full_int8(float_model, x_train)`: the float .tflite model quantized statically, with
    int8 input, output and ops, whose test accuracy is within `ACCURACY_SLACK` of the Keras
    model's; then probe that it quantized its argument and calibrated on its `x_train`.

    Observes the returned model's weight, input and output dtypes, its ops, and its predicted
    classes for `x_test`, with those of the model it was given and `y_test`; then, for each
    calibration probe, the classes that the probe's float model and the learner's int8 model of
    it predict. It stops where the judge fails the answer on what was seen already (a model not
    int8 throughout, a test accuracy too low, a probe it disagrees on), sparing calls the judge
    would not read; the judge fails a report that stops anywhere else.
    """
    name = "full_int8(float_model, x_train)"
    flatbuffer = _tflite_bytes(_call_full_int8(full_int8, model, x_train, name=name), name=name)
    runner = litert.interpreter(flatbuffer)
    seen: dict[str, Any] = {
        "weight_dtypes": _weight_dtypes(flatbuffer),
        "input": np.dtype(runner.get_input_details()[0]["dtype"]).name,
        "output": np.dtype(runner.get_output_details()[0]["dtype"]).name,
        "ops": [[op, list(dtypes)] for op, dtypes in litert.op_dtypes(flatbuffer)],
    }
    if not _full_integer(seen):  # the judge fails it on these alone: spare the runs and calls
        return seen
    labels, predicted = np.asarray(y_test), _classes(model.predict(x_test, verbose=0))
    seen |= {
        "labels": labels,
        "float": predicted,
        "classes": deferred(lambda: _int8_classes(flatbuffer, x_test), unwritten=True),
    }
    if failed(seen["classes"]) or _share_equal(seen["classes"], labels) < (
        _share_equal(predicted, labels) - ACCURACY_SLACK
    ):
        return seen  # the judge fails it on its test accuracy: spare the calibration probes
    probes = _calibration_probes(model, x_train, x_test)
    seen["calibration"] = {"kinds": [kind for kind, *_ in probes], "probes": []}
    for _, *inputs in probes:
        one = deferred(
            functools.partial(_calibration_seen, full_int8, *inputs, name=name), unwritten=True
        )
        seen["calibration"]["probes"].append(one)
        if failed(one) or _share_equal(one["classes"], one["float"]) < _AGREEMENT:
            break  # the judge fails it on this probe: spare the others
    return seen


def _share_equal(classes: np.ndarray, others: np.ndarray) -> float:
    """The share of places where `classes` equals `others` (an accuracy, an agreement)."""
    return float(np.mean(classes == others))


#: Exercise 07.2: the least agreement, on each calibration probe, of the learner's int8 model
#: with the float model it was made from.
_AGREEMENT = 0.9


#: Exercise 07.2: ops that may stay float32 in a full-integer model: they read only a shape.
_SHAPE_ONLY_OPS = frozenset({"SHAPE"})


def _full_integer(seen: dict[str, Any]) -> bool:
    """Whether the model is int8 throughout: int8 weights, input and output, no float op but
    `_SHAPE_ONLY_OPS`. The judge fails any other model on these facts, before it runs it."""
    return (
        "int8" in seen["weight_dtypes"]
        and seen["input"] == seen["output"] == "int8"
        and not any("float32" in dtypes and op not in _SHAPE_ONLY_OPS for op, dtypes in seen["ops"])
    )


def _int8_classes(flatbuffer: bytes, images: np.ndarray) -> np.ndarray:
    with learner_code("running the model you returned"):
        return _classes(litert.predict(flatbuffer, images))


def _calibration_seen(
    full_int8: Callable[[bytes, np.ndarray], Any],
    model: Any,
    x_train: np.ndarray,
    images: np.ndarray,
    *,
    name: str,
) -> dict[str, np.ndarray]:
    """The classes that `model` predicts for `images`, and those that `full_int8`'s int8 model,
    made from `model` converted to float .tflite and calibrated with `x_train`, predicts."""
    predicted = _classes(model.predict(images, verbose=0))
    flatbuffer = _tflite_bytes(_call_full_int8(full_int8, model, x_train, name=name), name=name)
    return {"float": predicted, "classes": _int8_classes(flatbuffer, images)}


#: Exercise 07.2: how many of x_train's first images the last probe dims, and to what brightness.
_DIMMED_FIRST, _DIMMED_TO = 20, 0.2


def _calibration_probes(
    model: Any, x_train: np.ndarray, x_test: np.ndarray
) -> list[tuple[str, Any, np.ndarray, np.ndarray]]:
    """(kind, model, x_train, images) for the probes after the first call: on each, a model
    quantized from the argument and calibrated on a hundred or so of its images agrees with the
    float model on most of `images`. `kind` names the probe: ``"renumbered"`` (the model's classes
    renumbered), ``"rescaled"`` (a model of pixels in [0, 1]), ``"dimmed"`` (x_train's first
    images dimmed)."""
    import keras

    images = x_test[:200]
    probes = []
    weights = model.get_weights()
    kernel, bias = weights[-2], weights[-1]
    if bias.ndim == 1 and kernel.shape[-1] == bias.shape[0]:  # a dense or convolutional head
        renumbered = keras.models.clone_model(model)  # the classes renumbered: units rolled by one
        renumbered.set_weights([*weights[:-2], np.roll(kernel, 1, axis=-1), np.roll(bias, 1)])
        probes.append(("renumbered", renumbered, x_train, images))
    # Behind a Rescaling(255), with x_train scaled alike: calibrated on the notebook's own images
    # (0-255, or the test images), the input scale is 255 times too coarse.
    inputs = keras.Input(model.input_shape[1:])
    wrapped = keras.Model(inputs, model(keras.layers.Rescaling(255.0)(inputs)))
    scaled = (np.asarray(x_train) / 255.0).astype(np.float32)
    probes.append(("rescaled", wrapped, scaled, (images / 255.0).astype(np.float32)))
    # The first images dimmed: a hundred or so still set the ranges; a handful do not.
    dimmed = np.array(x_train, dtype=np.float32, copy=True)
    dimmed[:_DIMMED_FIRST] *= _DIMMED_TO
    probes.append(("dimmed", model, dimmed, images))
    return probes


# 07.3 -------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _quantized_doubler() -> bytes:
    """A float-in, float-out model whose inside is int8: QUANTIZE, an integer op, DEQUANTIZE."""
    import keras
    import tensorflow as tf
    from keras import layers

    model = keras.Sequential([keras.Input((16,)), layers.Rescaling(2.0)], name="doubler")
    rng = np.random.default_rng(73)

    def calibration() -> Any:
        for _ in range(20):
            yield [rng.normal(0.3, 2.0, size=(1, 16)).astype(np.float32)]

    with tempfile.TemporaryDirectory() as folder:
        model.export(folder, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = calibration
        return bytes(converter.convert())


def _doubler_parameters() -> tuple[tuple[float, int], tuple[float, int]]:
    """The (scale, zero point) of the doubler's QUANTIZE output and of its DEQUANTIZE input,
    read from the model (they are fixed when it is converted; nothing runs)."""
    runner = litert.interpreter(_quantized_doubler())
    ops = runner._get_ops_details()
    (quantize_op,) = [op for op in ops if op["op_name"] == "QUANTIZE"]
    (dequantize_op,) = [op for op in ops if op["op_name"] == "DEQUANTIZE"]
    x_params = runner._get_tensor_details(quantize_op["outputs"][0], 0)["quantization"]
    y_params = runner._get_tensor_details(dequantize_op["inputs"][0], 0)["quantization"]
    return (float(x_params[0]), int(x_params[1])), (float(y_params[0]), int(y_params[1]))


def _interpreter_quantization(x: np.ndarray) -> dict[str, Any]:
    """What the interpreter computes for `x`: QUANTIZE's int8 output and DEQUANTIZE's float.

    The judge's reference (`tfcourse.exercises.judges.ch07.interpreter_quantization`), so absent
    from the student edition.
    """
    from tfcourse.exercises.judges.ch07 import interpreter_quantization

    return interpreter_quantization(x)


def _quantize_inputs(ties_for: float | None = None) -> np.ndarray:
    """16 inputs: beyond the calibrated range, zero, random, and (given the scale) exact halves.

    At a half, `x / scale` is k + 0.5, where kernels differ: the check accepts either neighbour
    there (`TIE_TOLERANCE`), and the exact value everywhere else.
    """
    x = np.random.default_rng(74).normal(0.3, 2.0, size=(1, 16)).astype(np.float32)
    x[0, :4] = [-40.0, 40.0, 0.0, -0.0]
    if ties_for is not None:
        halves = np.array([-3.5, -2.5, 1.5, 2.5, 4.5], np.float32)
        ties = halves * np.float32(ties_for)
        exact = ties / np.float32(ties_for) == halves
        x[0, 4 : 4 + int(exact.sum())] = ties[exact]
    return x


#: Exercise 07.3: the int8 values the check dequantizes, from one end of the range to the other,
#: so that subtracting a zero point in int8 wraps around at one end.
_DEQUANTIZE_INPUT = np.linspace(-128, 127, 16).round().astype(np.int8).reshape(1, 16)

_OWN_QUANTIZE = (
    "it calls the course's own tfcourse.litert.quantize or dequantize: write the arithmetic "
    "yourself, with NumPy."
)


@two_part("07.3", "quantize and dequantize by hand, as the interpreter does")
def check_quantize(
    quantize: Callable[[Any, float, int], Any],
    dequantize: Callable[[Any, float, int], Any] | None = None,
    *,
    seed: int,
) -> dict[str, Any]:
    """Check `quantize(x, scale, zero_point)` (int8) and `dequantize(q, scale, zero_point)`
    (float32) against the interpreter's QUANTIZE and DEQUANTIZE ops, value for value.

    Observes what `quantize` returns for `_quantize_inputs` in the doubler's input parameters,
    and what `dequantize` returns for `_DEQUANTIZE_INPUT` in its output parameters.
    """
    (scale, zero_point), y_params = _doubler_parameters()
    x = _quantize_inputs(ties_for=scale)
    name = f"quantize(x, scale={scale:.4g}, zero_point={zero_point})"
    with (
        forbid("tfcourse.litert.quantize", _OWN_QUANTIZE),
        forbid("tfcourse.litert.dequantize", _OWN_QUANTIZE),
    ):
        q = _numbers(call(quantize, x.copy(), scale, zero_point, name=name), name)
    return {
        "quantized": q,
        "dequantized": deferred(lambda: _dequantized(dequantize, *y_params), unwritten=True),
    }


def _dequantized(
    dequantize: Callable[[Any, float, int], Any] | None, scale: float, zero_point: int
) -> np.ndarray:
    name = f"dequantize(q, scale={scale:.4g}, zero_point={zero_point})"
    with (
        forbid("tfcourse.litert.quantize", _OWN_QUANTIZE),
        forbid("tfcourse.litert.dequantize", _OWN_QUANTIZE),
    ):
        return _numbers(
            call(dequantize, _DEQUANTIZE_INPUT.copy(), scale, zero_point, name=name), name
        )


def _numbers(value: Any, name: str) -> np.ndarray:
    if value is None:
        raise Wrong(f"{name} returned None; did you forget a `return`?")
    return to_numpy(value, name=name)


#: Exercise 07.3: how close to k + 0.5 x / scale must be to count as a tie. Kernels round ties
#: differently (LiteRT's scalar reference code rounds halves away from zero with std::round; the
#: vectorised x86 and XNNPACK paths to even), and x * (1 / scale) or float64 arithmetic can land a
#: hair off the half: at a tie either neighbour is right.
TIE_TOLERANCE = 1e-4


# 07.4 -------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def outlier_models() -> tuple[dict[str, bytes], Callable[[bytes], float], Callable[[bytes], float]]:
    """Float .tflite MLPs for exercise 07.4, one per sensitive layer, and an `evaluate` function.

    Each model is the same trained MLP (hidden_a 128, hidden_b 64, hidden_c 32, logits 10) with
    one layer made sensitive to quantization: a unit feeding it is dead (always 0), and that
    unit's row of its weights is huge. The float model computes the same function, but quantizing
    that layer rounds all its other weights to zero. `evaluate(model)` is the accuracy on a
    validation split (500 training images held out from the MLP's training), for choices;
    `grade(model)` is the test accuracy, which the check alone uses.

    Introduced in `07_tflite_quantization`.
    """
    import keras
    import tensorflow as tf
    from keras import layers

    from tfcourse import data

    train, test = data.load_numpy("mnist5k", "train"), data.load_numpy("mnist5k", "test")
    keras.utils.set_random_seed(74)
    names = ("hidden_a", "hidden_b", "hidden_c")
    model = keras.Sequential(
        [keras.Input((28, 28, 1)), layers.Rescaling(1 / 255), layers.Flatten()]
        + [
            layers.Dense(n, activation="relu", name=k)
            for n, k in zip((128, 64, 32), names, strict=True)
        ]
        + [layers.Dense(10, name="logits")],
        name="mlp",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    images, labels = train["image"].astype(np.float32), train["label"]
    x_val, y_val = images[-VALIDATION_SIZE:], labels[-VALIDATION_SIZE:]
    model.fit(images[:-VALIDATION_SIZE], labels[:-VALIDATION_SIZE], epochs=3, verbose=0)
    trained = model.get_weights()
    models = {}
    for target in _SENSITIVE_LAYERS:
        model.set_weights(trained)
        _plant_outlier(model.get_layer(names[names.index(target) - 1]), model.get_layer(target))
        with tempfile.TemporaryDirectory() as folder:
            model.export(folder, verbose=False)
            models[target] = bytes(tf.lite.TFLiteConverter.from_saved_model(folder).convert())
    x_test, y_test = test["image"].astype(np.float32), test["label"]

    def evaluate(flatbuffer: bytes) -> float:
        """Validation accuracy of a .tflite model of the MNIST MLP (500 held-out images)."""
        return float(np.mean(np.argmax(litert.predict(flatbuffer, x_val), axis=1) == y_val))

    def grade(flatbuffer: bytes) -> float:
        """Test accuracy of a .tflite model of the MNIST MLP (500 images): the check's alone."""
        return float(np.mean(np.argmax(litert.predict(flatbuffer, x_test), axis=1) == y_test))

    return models, evaluate, grade


def _plant_outlier(before: Any, layer: Any) -> None:
    kernel, bias = before.get_weights()
    dead = int(np.argmin(np.abs(kernel).sum(axis=0)))
    kernel[:, dead], bias[dead] = 0.0, -1.0  # ReLU(-1) = 0 for every input
    before.set_weights([kernel, bias])
    kernel, bias = layer.get_weights()
    kernel[dead, :] = 200.0  # multiplied by 0 in float; sets the int8 scale to 200 / 127
    layer.set_weights([kernel, bias])


def _float_layers(flatbuffer: bytes) -> list[str]:
    weights = litert.weight_tensors(flatbuffer)
    names = ("hidden_a", "hidden_b", "hidden_c", "logits")
    return [
        n for n in names for k, w in weights.items() if f"/{n}" in k and w["dtype"] == "float32"
    ]


def _test_images() -> np.ndarray:
    """The test images of 07.4 (`outlier_models`' `grade`): on these the check runs the models."""
    from tfcourse import data

    return data.load_numpy("mnist5k", "test")["image"].astype(np.float32)


@two_part("07.4", "keep the sensitive layer in float")
def check_selective(
    keep_sensitive_layer_float: Callable[[bytes, list[str], Callable[[bytes], float]], Any],
    seed: int,
) -> list[Any]:
    """Check `keep_sensitive_layer_float(float_model, layer_names, evaluate)`: found by
    measurement, the one layer kept in float; the model within `SIZE_CEILING` of the float size
    and within one point of its accuracy.

    Observes, for each of the two models, the evaluate calls (the layers each evaluated model
    kept in float, and its score), and the returned model's layers kept float, size, ops and
    predicted classes for the test images.
    """
    models, evaluate, _ = outlier_models()
    images = _test_images()
    seen = []
    for target, float_model in models.items():
        observe = functools.partial(
            _selective_seen, keep_sensitive_layer_float, target, float_model, evaluate, images
        )
        seen.append(deferred(observe, unwritten=True) if seen else observe())
    return seen


def _selective_seen(
    keep_sensitive_layer_float: Callable[[bytes, list[str], Callable[[bytes], float]], Any],
    target: str,
    float_model: bytes,
    evaluate: Callable[[bytes], float],
    images: np.ndarray,
) -> dict[str, Any]:
    name = f"keep_sensitive_layer_float(model with {target} sensitive, ...)"
    calls: list[dict[str, Any]] = []

    def counted(flatbuffer: bytes) -> float:
        score = evaluate(flatbuffer)
        calls.append({"float_layers": _float_layers(flatbuffer), "score": score})
        return score

    answer = call(keep_sensitive_layer_float, float_model, list(_LAYER_NAMES), counted, name=name)
    flatbuffer = _tflite_bytes(answer, name=name)
    kept = _float_layers(flatbuffer)
    classes = _int8_classes(flatbuffer, images)
    return {
        "calls": list(calls),
        "kept": kept,
        "size": len(flatbuffer),
        "ops": sorted({op for op, _ in litert.op_dtypes(flatbuffer)}),
        "classes": classes,
    }
