"""Chapter 07's checks: each accepts a right answer and explains five or more kinds of wrong one."""

import tempfile

import numpy as np
import pytest
from answers import MISBEHAVING, assert_result, assert_survives, not_written, raises

from tfcourse import data, litert
from tfcourse.exercises import _learner, ch07


def export(model):
    import tensorflow as tf

    folder = tempfile.mkdtemp()
    model.export(folder, verbose=False)
    return tf.lite.TFLiteConverter.from_saved_model(folder)


# 07.1 to_tflite ----------------------------------------------------------------------------------
def to_tflite(model, *, optimize=False):
    import tensorflow as tf

    converter = export(model)
    if optimize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def a_new_model(model):
    import keras
    from keras import layers

    keras.utils.set_random_seed(1)
    other = keras.Sequential([keras.Input((32,)), layers.Dense(64), layers.Dense(3)])
    return to_tflite(other)


def the_wrong_outputs(model):
    import keras
    from keras import layers

    other = keras.Sequential([keras.Input((32,)), layers.Dense(5)])
    return to_tflite(other)


def retrained_in_place(model):
    """Trains the given model further, then converts it: not the model as given."""
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(3)
    model.fit(rng.normal(size=(64, 32)), rng.normal(size=(64, 3)), epochs=1, verbose=0)
    return to_tflite(model)


def another_input_shape(model):
    import keras
    from keras import layers

    return to_tflite(
        keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(), layers.Dense(3)])
    )


def a_path(model):
    path = tempfile.mktemp(suffix=".tflite")
    with open(path, "wb") as handle:
        handle.write(to_tflite(model))
    return path


@pytest.mark.parametrize(
    ("answer", "status", "fragment"),
    [
        (to_tflite, "passed", "computes the same outputs"),
        (lambda m: bytearray(to_tflite(m)), "passed", "float32 .tflite model"),
        (None, "not attempted", "not attempted yet"),
        (not_written, "not attempted", "not attempted yet"),
        (raises, "failed", "raised RuntimeError: oops"),
        (lambda m: to_tflite(m, optimize=True), "failed", "stored as int8: you quantized"),
        (a_path, "failed", "returned a path"),
        (lambda m: len(to_tflite(m)), "failed", "returned the number"),
        (lambda m: litert.interpreter(to_tflite(m)), "failed", "returned Interpreter"),
        (a_new_model, "failed", "computes other values"),
        (the_wrong_outputs, "failed", "outputs of shape (5,)"),
        (retrained_in_place, "failed", "convert that very model, unchanged"),
        (lambda m: ch07._float_tflite(m), "failed", "the check's own converter"),
        (another_input_shape, "failed", "does not run on the model's inputs of shape (5, 32)"),
        (lambda m: "converted", "failed", "returned the str 'converted'"),
        (lambda m: b"not a model at all", "failed", "are not a .tflite model"),
        (lambda m: m, "failed", "should return the .tflite model as bytes"),
        (lambda m: None, "failed", "returned None"),
    ],
)
def test_check_to_tflite(tf, answer, status, fragment):
    assert_result(ch07.check_to_tflite(answer), status, fragment)


# 07.2 full_int8 ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits(tf):
    """A small CNN trained for one epoch on the MNIST subset, and the arrays the check gets."""
    import keras
    from keras import layers

    train, test = data.load_numpy("mnist5k", "train"), data.load_numpy("mnist5k", "test")
    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Rescaling(1 / 255),
            layers.Conv2D(8, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(10),
        ]
    )
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x_train = train["image"].astype(np.float32)
    model.fit(x_train, train["label"], epochs=1, verbose=0)
    return model, x_train, test["image"].astype(np.float32), test["label"]


def full_int8(float_model, x_train, *, images=None, recipe_name="static_wi8_ai8", calibrate=True):
    """The notebook's solution (LiteRT Quantizer), with switches for the classic mistakes."""
    from ai_edge_litert.interpreter import Interpreter
    from litert_quantizer import Quantizer, recipe

    quantizer = Quantizer(float_model)
    quantizer.load_quantization_recipe(getattr(recipe, recipe_name)())
    if not calibrate:
        return bytes(quantizer.quantize(enable_progress_report=False).quantized_model)
    images = x_train[:100] if images is None else images
    ((key, io),) = Interpreter(model_content=float_model).get_signature_list().items()
    calibration = {key: [{io["inputs"][0]: image[np.newaxis]} for image in images]}
    calibrated = quantizer.calibrate(calibration, num_threads=1)
    return bytes(quantizer.quantize(calibrated, enable_progress_report=False).quantized_model)


def a_fixed_input_name(float_model, x_train):
    """The notebook's input name, hard-coded: the check's models name theirs their own way."""
    from litert_quantizer import Quantizer, recipe

    quantizer = Quantizer(float_model)
    quantizer.load_quantization_recipe(recipe.static_wi8_ai8())
    calibration = {"serving_default": [{"keras_tensor_20": image[None]} for image in x_train[:100]]}
    return quantizer.quantize(quantizer.calibrate(calibration), enable_progress_report=False)


def the_result_object(float_model, x_train):
    from ai_edge_litert.interpreter import Interpreter
    from litert_quantizer import Quantizer, recipe

    quantizer = Quantizer(float_model)
    quantizer.load_quantization_recipe(recipe.static_wi8_ai8())
    ((key, io),) = Interpreter(model_content=float_model).get_signature_list().items()
    calibration = {key: [{io["inputs"][0]: image[None]} for image in x_train[:100]]}
    return quantizer.quantize(quantizer.calibrate(calibration), enable_progress_report=False)


def the_first_model(float_model, x_train, *, first=[]):  # noqa: B006 (remembers the first model)
    """Quantizes whatever model it saw first: a notebook global instead of the argument."""
    first.append(float_model)
    return full_int8(first[0], x_train)


NOISE = np.random.default_rng(0).uniform(0, 3, size=(100, 28, 28, 1)).astype(np.float32)
PIXEL_NOISE = np.random.default_rng(1).uniform(0, 255, size=(100, 28, 28, 1)).astype(np.float32)
TEST_IMAGES = data.load_numpy("mnist5k", "test")["image"].astype(np.float32)
TRAIN_IMAGES = data.load_numpy("mnist5k", "train")["image"].astype(np.float32)


@pytest.mark.parametrize(
    ("answer", "status", "fragment"),
    [
        (full_int8, "passed", "int8 input, output and ops"),
        (
            lambda m, x: full_int8(
                m, x, images=x[np.random.default_rng(5).permutation(len(x))[:300]]
            ),
            "passed",
            "int8 input, output and ops",
        ),
        (None, "not attempted", "not attempted yet"),
        (not_written, "not attempted", "not attempted yet"),
        (raises, "failed", "raised RuntimeError: oops"),
        (
            lambda m, x: full_int8(m, x, recipe_name="dynamic_wi8_afp32", calibrate=False),
            "failed",
            "input is float32, not int8",
        ),
        (
            lambda m, x: full_int8(m, x, recipe_name="weight_only_wi8_afp32", calibrate=False),
            "failed",
            "input is float32, not int8",
        ),
        (lambda m, x: full_int8(m, x, recipe_name="static_wi8_ai16"), "failed", "input is int16"),
        (lambda m, x: full_int8(m, x, calibrate=False), "failed", "running calibration"),
        (lambda m, x: full_int8(m, x, images=x[:1]), "failed", "too few images"),
        (lambda m, x: full_int8(m, x, images=x[:10]), "failed", "too few images"),
        (lambda m, x: m, "failed", "nothing in the model"),
        (the_result_object, "failed", "returned QuantizationResult"),
        (a_fixed_input_name, "failed", "read the signature and its input's name from the model"),
        (
            lambda m, x: full_int8(m, x, images=x[:100] / 255),
            "failed",
            "images unlike the test images",
        ),
        (lambda m, x: full_int8(m, x, images=NOISE), "failed", "images unlike the test images"),
        (lambda m, x: len(full_int8(m, x)), "failed", "returned the number"),
        (the_first_model, "failed", "did not quantize the model it was given"),
        # calibrated on the notebook's own arrays, not the argument: a data leak with the test set
        (lambda m, x: full_int8(m, x, images=TEST_IMAGES[:100]), "failed", "did not calibrate"),
        (lambda m, x: full_int8(m, x, images=TRAIN_IMAGES[:100]), "failed", "did not calibrate"),
        (
            lambda m, x: full_int8(m, x, images=PIXEL_NOISE),
            "failed",
            "images unlike the test images",
        ),
    ],
)
def test_check_full_int8(digits, answer, status, fragment):
    assert_result(ch07.check_full_int8(answer, *digits), status, fragment)


# 07.3 quantize / dequantize ----------------------------------------------------------------------
def quantize(x, scale, zero_point):
    q = np.round(np.asarray(x, np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize(q, scale, zero_point):
    return ((np.asarray(q, np.int32) - zero_point) * np.float32(scale)).astype(np.float32)


QUANTIZE_MISTAKES = {
    "truncates": lambda x, s, z: np.clip(np.trunc(x / s) + z, -128, 127).astype(np.int8),
    "wraps around": lambda x, s, z: (np.round(x / s) + z).astype(np.int64).astype(np.int8),
    "subtracts the zero point": lambda x, s, z: np.clip(np.round(x / s) - z, -128, 127).astype(
        np.int8
    ),
    "multiplies by the scale": lambda x, s, z: np.clip(np.round(x * s) + z, -128, 127).astype(
        np.int8
    ),
    "dtype uint8": lambda x, s, z: quantize(x, s, z).astype(np.uint8),
    "dtype float32": lambda x, s, z: quantize(x, s, z).astype(np.float32),
    "has shape (16,)": lambda x, s, z: quantize(x, s, z).ravel(),
    "e.g. x =": lambda x, s, z: np.clip(np.round(x / s + 0.5) + z, -128, 127).astype(np.int8),
}


def away_from_zero(x, s, z):
    """LiteRT's scalar reference rounding (std::round): halves away from zero."""
    v = x / np.float32(s)
    return np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5) + z, -128, 127).astype(np.int8)


RIGHT_QUANTIZE = {
    "half to even (np.round)": lambda x, s, z: quantize(x, s, z),
    "half away from zero (std::round)": away_from_zero,
    "half up": lambda x, s, z: np.clip(np.floor(x / s + 0.5) + z, -128, 127).astype(np.int8),
    "by the reciprocal": lambda x, s, z: np.clip(np.round(x * (1 / s)) + z, -128, 127).astype(
        np.int8
    ),
    "in float64": lambda x, s, z: np.clip(np.round(x.astype(np.float64) / s) + z, -128, 127).astype(
        np.int8
    ),
}


@pytest.mark.parametrize("right", RIGHT_QUANTIZE.values(), ids=list(RIGHT_QUANTIZE))
def test_check_quantize_accepts_every_rounding_of_ties(tf, right):
    assert_result(ch07.check_quantize(right, dequantize), "passed", "either neighbour")


DEQUANTIZE_MISTAKES = {
    "forgets the zero point": lambda q, s, z: q.astype(np.float32) * np.float32(s),
    "adds the zero point": lambda q, s, z: (q.astype(np.float32) + z) * np.float32(s),
    "divides by the scale": lambda q, s, z: (q.astype(np.float32) - z) / np.float32(s),
    "dtype float64": lambda q, s, z: (q.astype(np.float64) - z) * s,
    "dtype int8": lambda q, s, z: q,
    "wraps around": lambda q, s, z: ((q - np.int8(z)) * np.float32(s)).astype(np.float32),
    "dequantizing is (q - zero_point) * scale": lambda q, s, z: dequantize(q, s, z) + 0.5,
}


@pytest.mark.parametrize(("fragment", "wrong"), QUANTIZE_MISTAKES.items())
def test_check_quantize_explains_quantize_mistakes(tf, fragment, wrong):
    assert_result(ch07.check_quantize(wrong, dequantize), "failed", fragment)


@pytest.mark.parametrize(("fragment", "wrong"), DEQUANTIZE_MISTAKES.items())
def test_check_quantize_explains_dequantize_mistakes(tf, fragment, wrong):
    assert_result(ch07.check_quantize(quantize, wrong), "failed", fragment)


@pytest.mark.parametrize(
    ("answers", "status", "fragment"),
    [
        ((quantize, dequantize), "passed", "quantize gives the interpreter's int8 values"),
        ((litert.quantize, dequantize), "failed", "the course's own tfcourse.litert.quantize"),
        ((quantize, litert.dequantize), "failed", "the course's own tfcourse.litert.quantize"),
        ((None, dequantize), "not attempted", "not attempted yet"),
        ((not_written, not_written), "not attempted", "not attempted yet"),
        ((quantize, not_written), "not attempted", "not attempted yet"),
        ((raises, dequantize), "failed", "raised RuntimeError: oops"),
    ],
)
def test_check_quantize(tf, answers, status, fragment):
    assert_result(ch07.check_quantize(*answers), status, fragment)


def test_the_quantize_check_reads_a_model_whose_input_range_needs_clipping(tf):
    seen = ch07._interpreter_quantization(ch07._quantize_inputs())
    scale, zero_point = seen["x_params"]
    assert zero_point != 0 and scale != 1.0
    assert 127 in seen["q"] and -128 in seen["q"]


# 07.4 keep_sensitive_layer_float -----------------------------------------------------------------
def selective(float_model, layer_names, evaluate, *, pick=max, keep=None, base="dynamic_wi8_afp32"):
    """The notebook's solution; `pick=min`, a fixed `keep` or another `base` recipe are mistakes."""
    from litert_quantizer import Quantizer, qtyping, recipe
    from litert_quantizer.algorithm_manager import AlgorithmName

    def quantized(keep_float):
        quantizer = Quantizer(float_model)
        quantizer.load_quantization_recipe(getattr(recipe, base)())
        if keep_float:
            quantizer.update_quantization_recipe(
                regex=f".*{keep_float}.*",
                operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                algorithm_key=AlgorithmName.NO_QUANTIZE,
            )
        return bytes(quantizer.quantize(enable_progress_report=False).quantized_model)

    if keep is not None:
        return quantized(keep)
    scores = {name: evaluate(quantized(name)) for name in layer_names}
    return quantized(pick(scores, key=scores.get))


def weight_only(float_model, layer_names, evaluate):
    """Another recipe instead of the measurement: int8 weights everywhere, nothing kept float."""
    from litert_quantizer import Quantizer, recipe

    quantizer = Quantizer(float_model)
    quantizer.load_quantization_recipe(recipe.weight_only_wi8_afp32())
    return bytes(quantizer.quantize(enable_progress_report=False).quantized_model)


def quantize_one_at_a_time(float_model, layer_names, evaluate):
    """Right, the other way round: quantize one layer alone; the worst accuracy marks the layer."""
    from litert_quantizer import Quantizer, qtyping, recipe
    from litert_quantizer.algorithm_manager import AlgorithmName

    def only(layer):
        quantizer = Quantizer(float_model)
        quantizer.load_quantization_recipe(recipe.dynamic_wi8_afp32())
        for other in layer_names:
            if other != layer:
                quantizer.update_quantization_recipe(
                    regex=f".*{other}.*",
                    operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                    algorithm_key=AlgorithmName.NO_QUANTIZE,
                )
        return bytes(quantizer.quantize(enable_progress_report=False).quantized_model)

    scores = {layer: evaluate(only(layer)) for layer in layer_names}
    return selective(float_model, layer_names, evaluate, keep=min(scores, key=scores.get))


def evaluates_the_float_model_thrice(float_model, layer_names, evaluate):
    """Calls evaluate three times on no candidate, then picks by the largest weight."""
    for _ in layer_names:
        evaluate(float_model)
    return largest_weight(float_model, layer_names, lambda m: 0.0)


def largest_weight(float_model, layer_names, evaluate):
    """No measurement: keeps the layer with the largest weight, which the planted row is."""
    weights = litert.weight_tensors(float_model)
    biggest = max(
        layer_names,
        key=lambda n: max(np.abs(w["values"]).max() for k, w in weights.items() if f"/{n}" in k),
    )
    return selective(float_model, layer_names, evaluate, keep=biggest)


@pytest.mark.parametrize(
    ("answer", "status", "fragment"),
    [
        (selective, "passed", "kept exactly that layer in float"),
        (
            lambda m, n, e: selective(m, list(reversed(n)), lambda f: round(e(f), 3)),
            "passed",
            "kept exactly that layer in float",
        ),
        (largest_weight, "failed", "evaluated 0 model(s)"),
        (quantize_one_at_a_time, "passed", "kept exactly that layer in float"),
        (evaluates_the_float_model_thrice, "failed", "evaluated 3 model(s), 0 of them a candidate"),
        (
            lambda m, n, e: selective(m, n, e, base="weight_only_wi8_afp32"),
            "failed",
            "dequantizes its int8 weights",
        ),
        (
            lambda m, n, e: selective(m, n, e, base="dynamic_legacy_wi8_afp32"),
            "failed",
            "dynamic_legacy_wi8_afp32() leaves float",
        ),
        (None, "not attempted", "not attempted yet"),
        (not_written, "not attempted", "not attempted yet"),
        (raises, "failed", "raised RuntimeError: oops"),
        (lambda m, names, ev: m, "failed", "of the float model's size (ceiling 40%)"),
        (lambda m, n, e: selective(m, n, e, keep=""), "failed", "layers kept float: none"),
        (lambda m, n, e: selective(m, n, e, keep="hidden_a"), "failed", "ceiling 40%"),
        (lambda m, n, e: selective(m, n, e, keep="hidden_b"), "failed", "evaluated 0 model(s)"),
        (lambda m, n, e: selective(m, n, e, pick=min), "failed", "ceiling 40%"),
        (weight_only, "failed", "dequantizes its int8 weights"),
        (lambda m, n, e: selective(m, n, e).hex(), "failed", "returned the str"),
        (lambda m, n, e: None, "failed", "returned None"),
    ],
)
def test_check_selective(tf, answer, status, fragment):
    assert_result(ch07.check_selective(answer), status, fragment)


def test_outlier_models_break_only_when_their_sensitive_layer_is_quantized(tf):
    models, evaluate, grade = ch07.outlier_models()
    assert sorted(models) == ["hidden_b", "hidden_c"]
    assert evaluate(models["hidden_b"]) != grade(models["hidden_b"])  # two splits
    for target, float_model in models.items():
        everything = selective(float_model, [], evaluate, keep="")
        assert evaluate(everything) < evaluate(float_model) - 0.1, target
        assert (
            evaluate(selective(float_model, [], evaluate, keep=target))
            >= evaluate(float_model) - 0.01
        )


CHECKS = {
    "07.1": lambda answer: ch07.check_to_tflite(answer),
    "07.3": lambda answer: ch07.check_quantize(answer, dequantize),
    "07.4": lambda answer: ch07.check_selective(answer),
}


@pytest.mark.parametrize("exercise", sorted(CHECKS))
@pytest.mark.parametrize(("answer", "fragment"), MISBEHAVING)
def test_every_check_survives_a_misbehaving_answer(
    tf, monkeypatch, capsys, exercise, answer, fragment
):
    monkeypatch.setattr(_learner, "TIME_BUDGET", 0.5)
    assert_survives(CHECKS[exercise](answer), fragment, capsys)


@pytest.mark.parametrize(("answer", "fragment"), MISBEHAVING)
def test_check_full_int8_survives_a_misbehaving_answer(
    digits, monkeypatch, capsys, answer, fragment
):
    monkeypatch.setattr(_learner, "TIME_BUDGET", 0.5)
    assert_survives(ch07.check_full_int8(answer, *digits), fragment, capsys)


def test_check_quantize_names_a_forgotten_return(tf):
    def no_return(x, scale, zero_point):
        np.clip(np.round(np.asarray(x) / scale) + zero_point, -128, 127).astype(np.int8)

    assert_result(ch07.check_quantize(no_return, dequantize), "failed", "forget a `return`")
    assert_result(
        ch07.check_quantize(quantize, lambda q, s, z: None), "failed", "forget a `return`"
    )
