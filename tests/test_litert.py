"""tfcourse.litert: the helpers chapter 07 runs every model variant through."""

import numpy as np
import pytest

from tfcourse import litert


@pytest.fixture(scope="module")
def models(tf):
    """A small dense model, its float .tflite, and its dynamic-range .tflite."""
    import tempfile

    import keras
    from keras import layers

    keras.utils.set_random_seed(3)
    biases = "random_normal"  # zero biases would be dropped from the converted model
    model = keras.Sequential(
        [
            keras.Input((32,)),
            layers.Dense(64, activation="relu", bias_initializer=biases, name="hidden"),
            layers.Dense(3, bias_initializer=biases),
        ]
    )
    folder = tempfile.mkdtemp()
    model.export(folder, verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(folder)
    float_model = converter.convert()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return model, float_model, converter.convert()


def test_quantize_rounds_halves_to_even_shifts_and_clips():
    x = np.array([-1000.0, -0.5, 0.5, 1.5, 2.49, 1000.0], np.float32)
    q = litert.quantize(x, scale=1.0, zero_point=3)
    assert q.dtype == np.int8
    assert q.tolist() == [-128, 3, 3, 5, 5, 127]


def test_dequantize_is_the_inverse_on_the_grid_and_float32():
    q = np.array([-128, -3, 0, 127], np.int8)
    y = litert.dequantize(q, scale=0.5, zero_point=-3)
    assert y.dtype == np.float32
    assert y.tolist() == [-62.5, 0.0, 1.5, 65.0]  # no int8 overflow in q - zero_point
    assert np.array_equal(litert.quantize(y, 0.5, -3), q)


def test_predict_matches_keras_and_batches(models):
    model, float_model, _ = models
    x = np.random.default_rng(0).normal(size=(37, 32)).astype(np.float32)
    got = litert.predict(float_model, x, batch_size=8)
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-5)


def test_predict_passes_token_ids_through_unquantized(tf):
    """Integer input with no scale (token ids for an Embedding) is not quantized: chapter 09."""
    import tempfile

    import keras
    from keras import layers

    keras.utils.set_random_seed(4)
    model = keras.Sequential(
        [keras.Input((6,), dtype="int64"), layers.Embedding(50, 4), layers.Dense(3)]
    )
    folder = tempfile.mkdtemp()
    model.export(folder, verbose=False)
    tflite = tf.lite.TFLiteConverter.from_saved_model(folder).convert()
    ids = np.random.default_rng(1).integers(0, 50, size=(5, 6))
    np.testing.assert_allclose(
        litert.predict(tflite, ids), model.predict(ids, verbose=0), atol=1e-5
    )


def test_op_dtypes_tell_float_from_hybrid_ops(models):
    _, float_model, dynamic_model = models
    assert litert.op_dtypes(float_model) == [
        ("FULLY_CONNECTED", ("float32", "float32", "float32")),
        ("FULLY_CONNECTED", ("float32", "float32", "float32")),
    ]
    # 64 x 3 = 192 weights: under the converter's 1,024, so the last layer stays float
    assert [dtypes[1] for _, dtypes in litert.op_dtypes(dynamic_model)] == ["int8", "float32"]
    assert litert.op_summary(float_model) == "FULLY_CONNECTED(float32, float32, float32) x2"
    assert litert.subgraphs(float_model) == ["main"]


def test_op_dtypes_reject_a_subgraph_the_model_lacks(models):
    with pytest.raises(ValueError, match="subgraph must be 0-0 for this model, got 2"):
        litert.op_dtypes(models[1], subgraph=2)


def test_weight_tensors_are_the_stored_weights_with_their_scales(models):
    model, float_model, dynamic_model = models
    kernel = model.get_layer("hidden").kernel.numpy()
    (hidden,) = [w for name, w in litert.weight_tensors(float_model).items() if "hidden" in name]
    assert hidden["dtype"] == "float32" and np.array_equal(hidden["values"], kernel.T)
    (hidden,) = [w for name, w in litert.weight_tensors(dynamic_model).items() if "hidden" in name]
    assert hidden["dtype"] == "int8" and len(hidden["scales"]) == 64  # one scale per unit
    restored = hidden["values"] * np.reshape(hidden["scales"], (-1, 1))
    assert np.abs(restored - kernel.T).max() <= hidden["scales"].max() / 2 + 1e-7


def test_file_parts_add_up_and_count_the_quantization_parameters(models):
    _, float_model, dynamic_model = models
    parts = {name: litert.file_parts(m) for name, m in [("f", float_model), ("d", dynamic_model)]}
    assert sum(parts["f"].values()) == len(float_model)
    assert sum(parts["d"].values()) == len(dynamic_model)
    assert parts["f"]["quantization parameters"] == 0
    # the hidden kernel (32x64) is int8 with 64 scales and zero points; the 3-unit layer stays float
    assert parts["d"]["quantization parameters"] == 64 * (4 + 8)
    assert parts["f"]["constants"] - parts["d"]["constants"] == 32 * 64 * 3
    assert abs(parts["f"]["rest"] - parts["d"]["rest"]) < 0.2 * parts["f"]["rest"]


@pytest.mark.parametrize(
    ("model", "error", "fragment"),
    [
        ("model.tflite", TypeError, "as bytes (what convert() returns), got str"),
        (b"\x00" * 64, ValueError, "not a .tflite model (no 'TFL3' identifier"),
        (None, TypeError, "got NoneType"),
    ],
)
def test_bad_models_get_a_clear_error(model, error, fragment):
    for helper in (litert.interpreter, litert.op_dtypes, litert.subgraphs):
        with pytest.raises(error, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            helper(model)
