"""Self-checks for the exercises of `07_tflite_quantization`."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from tfcourse import litert
from tfcourse.exercises._framework import Wrong, _describe, check
from tfcourse.exercises._learner import call, forbid, learner_code

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


# 07.1 -------------------------------------------------------------------------------------------
def _small_model() -> Any:
    import keras
    from keras import layers

    keras.utils.set_random_seed(71)
    return keras.Sequential(
        [keras.Input((32,)), layers.Dense(64, activation="relu"), layers.Dense(3)], name="small"
    )


@check("07.1", "convert a Keras model to a float .tflite model")
def check_to_tflite(to_tflite: Callable[[Any], Any]) -> str:
    """Check `to_tflite(model)`: the float32 .tflite flatbuffer of a Keras model, as bytes."""
    model = _small_model()
    name = "to_tflite(model)"
    x = np.random.default_rng(7).normal(size=(5, 32)).astype(np.float32)
    want = model(x).numpy()  # before the learner's code: it must convert the model as given
    own = "it calls the check's own converter: write the conversion yourself."
    with forbid("tfcourse.exercises.ch07._float_tflite", own):
        answer = call(to_tflite, model, name=name)
    flatbuffer = _tflite_bytes(answer, name=name)
    weights = litert.weight_tensors(flatbuffer)
    quantized = sorted({w["dtype"] for w in weights.values()} - {"float32"})
    if quantized:
        raise Wrong(
            f"{name}'s weights are stored as {', '.join(quantized)}: you quantized the model. "
            "This exercise wants the float32 model: leave out converter.optimizations."
        )
    try:
        got = litert.predict(flatbuffer, x)
    except (ValueError, RuntimeError) as error:
        shape = litert.interpreter(flatbuffer).get_input_details()[0]["shape"].tolist()
        raise Wrong(
            f"the model {name} returned does not run on the model's inputs of shape (5, 32) "
            f"(its input has shape {shape}; {str(error)[:80]}): convert the model you were given."
        ) from None
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
def _float_accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))


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


#: Exercise 07.2: ops that may stay float32 in a full-integer model: they read only a shape.
_SHAPE_ONLY_OPS = frozenset({"SHAPE"})


@check("07.2", "a full-integer model with LiteRT Quantizer, calibrated on training images")
def check_full_int8(
    full_int8: Callable[[bytes, np.ndarray], Any],
    model: Any,
    x_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
) -> str:
    """Check `full_int8(float_model, x_train)`: the float .tflite model quantized statically, with
    int8 input, output and ops, whose test accuracy is within `ACCURACY_SLACK` of the Keras
    model's; then probe that it quantized its argument and calibrated on its `x_train`."""
    name = "full_int8(float_model, x_train)"
    flatbuffer = _tflite_bytes(_call_full_int8(full_int8, model, x_train, name=name), name=name)
    runner = litert.interpreter(flatbuffer)
    io = {
        "input": runner.get_input_details()[0]["dtype"],
        "output": runner.get_output_details()[0]["dtype"],
    }
    if not any(w["dtype"] == "int8" for w in litert.weight_tensors(flatbuffer).values()):
        raise Wrong(
            f"nothing in the model {name} returned is int8: quantize it with a Quantizer and "
            "recipe.static_wi8_ai8(), and return bytes(result.quantized_model)."
        )
    for side, dtype in io.items():
        if np.dtype(dtype) == np.int16:
            raise Wrong(
                f"the model's {side} is int16: recipe.static_wi8_ai16() quantizes activations to "
                "16 bits. This exercise wants int8 activations: recipe.static_wi8_ai8()."
            )
        if np.dtype(dtype) != np.int8:
            raise Wrong(
                f"the model's {side} is {np.dtype(dtype).name}, not int8: quantize the "
                "activations too, with recipe.static_wi8_ai8() (a dynamic or weight-only recipe "
                "leaves them float) and calibration data."
            )
    float_ops = [
        op
        for op, dtypes in litert.op_dtypes(flatbuffer)
        if "float32" in dtypes and op not in _SHAPE_ONLY_OPS
    ]
    if float_ops:
        raise Wrong(
            f"{len(float_ops)} ops still compute in float ({', '.join(sorted(set(float_ops)))}): "
            "load recipe.static_wi8_ai8() for the whole model, not a recipe for some layers."
        )
    want = _float_accuracy(model, x_test, y_test)
    with learner_code("running the model you returned"):
        got = float(np.mean(np.argmax(litert.predict(flatbuffer, x_test), axis=1) == y_test))
    if got < want - ACCURACY_SLACK:
        raise Wrong(
            f"test accuracy {got:.1%} against {want:.1%} in float: the calibration saw too few "
            "images, or images unlike the test images. Calibrate on a hundred or so real "
            "training images, shaped and scaled exactly as the model's input (here: float32 "
            "pixels 0-255, one batch axis each)."
        )
    for probe_model, probe_x, images, mistake in _calibration_probes(model, x_train, x_test):
        agreement = _agreement(full_int8, probe_model, probe_x, images, name=name)
        if agreement < 0.9:
            raise Wrong(mistake.format(name=name, agreement=agreement))
    return (
        f"int8 input, output and ops; test accuracy {got:.1%} against {want:.1%} in float "
        f"(allowed drop {ACCURACY_SLACK:.0%})."
    )


def _agreement(
    full_int8: Callable[[bytes, np.ndarray], Any],
    model: Any,
    x_train: np.ndarray,
    images: np.ndarray,
    *,
    name: str,
) -> float:
    """The share of `images` on which `full_int8`'s int8 model, made from `model` converted to
    float .tflite and calibrated with `x_train`, predicts the class that `model` predicts."""
    want = np.argmax(model.predict(images, verbose=0), axis=1)
    flatbuffer = _tflite_bytes(_call_full_int8(full_int8, model, x_train, name=name), name=name)
    with learner_code("running the model you returned"):
        got = np.argmax(litert.predict(flatbuffer, images), axis=1)
    return float(np.mean(got == want))


#: Exercise 07.2: how many of x_train's first images the last probe dims, and to what brightness.
_DIMMED_FIRST, _DIMMED_TO = 20, 0.2
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


def _calibration_probes(
    model: Any, x_train: np.ndarray, x_test: np.ndarray
) -> list[tuple[Any, np.ndarray, np.ndarray, str]]:
    """(model, x_train, images, mistake) for the probes after the first call: on each, a model
    quantized from the argument and calibrated on a hundred or so of its images agrees with the
    float model on 90% of `images` or more; `mistake` says what a lower agreement means."""
    import keras

    images = x_test[:200]
    probes = []
    weights = model.get_weights()
    kernel, bias = weights[-2], weights[-1]
    if bias.ndim == 1 and kernel.shape[-1] == bias.shape[0]:  # a dense or convolutional head
        renumbered = keras.models.clone_model(model)  # the classes renumbered: units rolled by one
        renumbered.set_weights([*weights[:-2], np.roll(kernel, 1, axis=-1), np.roll(bias, 1)])
        probes.append((renumbered, x_train, images, _NOT_ITS_MODEL))
    # Behind a Rescaling(255), with x_train scaled alike: calibrated on the notebook's own images
    # (0-255, or the test images), the input scale is 255 times too coarse.
    inputs = keras.Input(model.input_shape[1:])
    wrapped = keras.Model(inputs, model(keras.layers.Rescaling(255.0)(inputs)))
    scaled = (np.asarray(x_train) / 255.0).astype(np.float32)
    probes.append((wrapped, scaled, (images / 255.0).astype(np.float32), _NOT_ITS_IMAGES))
    # The first images dimmed: a hundred or so still set the ranges; a handful do not.
    dimmed = np.array(x_train, dtype=np.float32, copy=True)
    dimmed[:_DIMMED_FIRST] *= _DIMMED_TO
    probes.append((model, dimmed, images, _TOO_FEW_IMAGES))
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


def _interpreter_quantization(x: np.ndarray) -> dict[str, Any]:
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


_OWN_QUANTIZE = (
    "it calls the course's own tfcourse.litert.quantize or dequantize: write the arithmetic "
    "yourself, with NumPy."
)


@check("07.3", "quantize and dequantize by hand, as the interpreter does")
def check_quantize(
    quantize: Callable[[Any, float, int], Any], dequantize: Callable[[Any, float, int], Any]
) -> str:
    """Check `quantize(x, scale, zero_point)` (int8) and `dequantize(q, scale, zero_point)`
    (float32) against the interpreter's QUANTIZE and DEQUANTIZE ops, value for value."""
    scale, _ = _interpreter_quantization(_quantize_inputs())["x_params"]
    x = _quantize_inputs(ties_for=scale)
    seen = _interpreter_quantization(x)
    scale, zero_point = seen["x_params"]
    name = f"quantize(x, scale={scale:.4g}, zero_point={zero_point})"
    with (
        forbid("tfcourse.litert.quantize", _OWN_QUANTIZE),
        forbid("tfcourse.litert.dequantize", _OWN_QUANTIZE),
    ):
        q = _not_none(call(quantize, x.copy(), scale, zero_point, name=name), name)
    _expect_quantized(q, seen["q"], x, scale, zero_point, name=name)
    scale, zero_point = seen["y_params"]
    name = f"dequantize(q, scale={scale:.4g}, zero_point={zero_point})"
    with (
        forbid("tfcourse.litert.quantize", _OWN_QUANTIZE),
        forbid("tfcourse.litert.dequantize", _OWN_QUANTIZE),
    ):
        y = _not_none(call(dequantize, seen["y_int"].copy(), scale, zero_point, name=name), name)
    _expect_dequantized(y, seen["y"], seen["y_int"], scale, zero_point, name=name)
    return (
        "quantize gives the interpreter's int8 values (rounded, shifted by the zero point, "
        "clipped; at an exact half either neighbour, as kernels differ), and dequantize its "
        "float32 values."
    )


def _not_none(value: Any, name: str) -> np.ndarray:
    if value is None:
        raise Wrong(f"{name} returned None; did you forget a `return`?")
    return np.asarray(value)


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


#: Exercise 07.3: how close to k + 0.5 x / scale must be to count as a tie. Kernels round ties
#: differently (LiteRT's scalar reference code rounds halves away from zero with std::round; the
#: vectorised x86 and XNNPACK paths to even), and x * (1 / scale) or float64 arithmetic can land a
#: hair off the half: at a tie either neighbour is right.
TIE_TOLERANCE = 1e-4


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


@check("07.4", "keep the sensitive layer in float")
def check_selective(
    keep_sensitive_layer_float: Callable[[bytes, list[str], Callable[[bytes], float]], Any],
) -> str:
    """Check `keep_sensitive_layer_float(float_model, layer_names, evaluate)`: found by
    measurement, the one layer kept in float; the model within `SIZE_CEILING` of the float size
    and within one point of its accuracy."""
    models, evaluate, grade = outlier_models()
    layer_names = ["hidden_a", "hidden_b", "hidden_c"]
    for target, float_model in models.items():
        name = f"keep_sensitive_layer_float(model with {target} sensitive, ...)"
        calls: list[tuple[list[str], float]] = []

        def counted(flatbuffer: bytes, calls: list[tuple[list[str], float]] = calls) -> float:
            score = evaluate(flatbuffer)
            calls.append((_float_layers(flatbuffer), score))
            return score

        answer = call(
            keep_sensitive_layer_float, float_model, list(layer_names), counted, name=name
        )
        flatbuffer = _tflite_bytes(answer, name=name)
        kept = _float_layers(flatbuffer)
        share = len(flatbuffer) / len(float_model)
        float_accuracy = grade(float_model)
        with learner_code("running the model you returned"):
            accuracy = grade(flatbuffer)
        ops = {op for op, _ in litert.op_dtypes(flatbuffer)}
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
        _expect_chosen_by_measurement(calls, layer_names, target, name=name)
    return (
        f"on two models with a different sensitive layer, you kept exactly that layer in float: "
        f"under {SIZE_CEILING:.0%} of the float size, within a point of its accuracy."
    )
