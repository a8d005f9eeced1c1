"""Chapter 00's checks: each accepts a right answer and explains five or more kinds of wrong one."""

import numpy as np
import pytest
from answers import assert_result, not_written, raises

from tfcourse.exercises import ch00


# 00.1 count_labels -------------------------------------------------------------------------------
def count_labels(dataset):
    return np.bincount([int(label) for _, label in dataset], minlength=10)


@pytest.mark.parametrize(
    ("answer", "status", "fragment"),
    [
        (count_labels, "passed", "all 10 digits right"),
        (None, "not attempted", "not attempted yet"),
        (not_written, "not attempted", "not attempted yet"),
        (raises, "failed", "raised RuntimeError: oops"),
        (lambda ds: count_labels(ds)[:9], "failed", "shape (9,), expected (10,)"),
        (lambda ds: count_labels(ds).astype(float), "failed", "should be integers"),
        (lambda ds: count_labels(ds) * 2, "failed", "add up to 274, but the dataset has 137"),
        (lambda ds: np.roll(count_labels(ds), 1), "failed", "differs from the expected values"),
        (lambda ds: "ten counts", "failed", "should be a Tensor or array of numbers"),
    ],
)
def test_check_count_labels(tf, answer, status, fragment):
    assert_result(ch00.check_count_labels(answer), status, fragment)


# 00.2 matmul_on ----------------------------------------------------------------------------------
def matmul_on(device, tf_module=None):
    import tensorflow as tf

    with tf.device(device):
        matrix = tf.constant([[1.0, 2.0], [3.0, 4.0]])
        return tf.matmul(matrix, matrix)


def test_check_matmul_on_passes_a_right_answer(tf):
    assert_result(ch00.check_matmul_on(matmul_on), "passed", "ran where asked")


@pytest.mark.parametrize(
    ("make_answer", "status", "fragment"),
    [
        (lambda tf: None, "not attempted", "not attempted yet"),
        (lambda tf: not_written, "not attempted", "not attempted yet"),
        (lambda tf: raises, "failed", "raised RuntimeError"),
        (
            lambda tf: lambda d: matmul_on(d).numpy(),
            "failed",
            "should return a Tensor, not ndarray",
        ),
        (lambda tf: lambda d: matmul_on(d) * 2, "failed", "off by a factor of 2"),
        (
            lambda tf: lambda d: tf.cast(matmul_on(d), tf.float64),
            "failed",
            "dtype float64, expected float32",
        ),
        (
            lambda tf: lambda d: tf.transpose(matmul_on(d)),
            "failed",
            "differs from the expected values",
        ),
    ],
)
def test_check_matmul_on_explains_wrong_answers(tf, make_answer, status, fragment):
    assert_result(ch00.check_matmul_on(make_answer(tf)), status, fragment)


def test_check_matmul_on_catches_an_op_placed_on_the_wrong_device(tf, monkeypatch):
    class FakeLogical:
        def __init__(self, name):
            self.name = name

    monkeypatch.setattr(
        tf.config,
        "list_logical_devices",
        lambda *a: [FakeLogical("/device:CPU:0"), FakeLogical("/device:CPU:7")],
    )
    result = ch00.check_matmul_on(lambda device: matmul_on("/CPU:0"))
    assert_result(result, "failed", "ran on '/job:localhost/replica:0/task:0/device:CPU:0'")


# 00.3 draw ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make_answer", "status", "fragment"),
    [
        (
            lambda tf: lambda seed: tf.random.stateless_normal([3], seed=[seed, 0]),
            "passed",
            "same seed, same numbers",
        ),
        (lambda tf: None, "not attempted", "not attempted yet"),
        (lambda tf: not_written, "not attempted", "not attempted yet"),
        (lambda tf: raises, "failed", "raised RuntimeError"),
        (lambda tf: lambda seed: tf.random.normal([3]), "failed", "different numbers on two calls"),
        (
            lambda tf: lambda seed: tf.random.stateless_normal([3], seed=[1, 0]),
            "failed",
            "the same numbers",
        ),
        (
            lambda tf: lambda seed: tf.random.stateless_normal([3, 1], seed=[seed, 0]),
            "failed",
            "shape (3, 1), expected (3,)",
        ),
        (
            lambda tf: lambda seed: np.random.default_rng(seed).normal(size=3),
            "failed",
            "dtype float64, expected float32",
        ),
        (
            lambda tf: lambda seed: tf.random.stateless_uniform([3], seed=[seed, 0]),
            "failed",
            "a standard normal has 0 and 1",
        ),
    ],
)
def test_check_draw(tf, make_answer, status, fragment):
    assert_result(ch00.check_draw(make_answer(tf)), status, fragment)


# 00.4 gpu_memory_plan ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make_answer", "status", "fragment"),
    [
        (
            lambda c: lambda mib: [c(memory_limit=mib), c(memory_limit=mib)],
            "passed",
            "two logical GPUs of 1536 MiB",
        ),
        (lambda c: None, "not attempted", "not attempted yet"),
        (lambda c: not_written, "not attempted", "not attempted yet"),
        (lambda c: raises, "failed", "raised RuntimeError"),
        (
            lambda c: lambda mib: c(memory_limit=mib),
            "failed",
            "a list of LogicalDeviceConfiguration",
        ),
        (
            lambda c: lambda mib: [c(memory_limit=mib)],
            "failed",
            "1 logical device(s); the exercise asks for 2",
        ),
        (
            lambda c: lambda mib: [c(memory_limit=mib * 2**20)] * 2,
            "failed",
            "off by a factor of 1,048,576 (bytes?)",
        ),
        (lambda c: lambda mib: [c(memory_limit=mib / 1024)] * 2, "failed", "(GiB?)"),
        (lambda c: lambda mib: [c()] * 2, "failed", "memory_limit is not set"),
        (
            lambda c: lambda mib: [mib, mib],
            "failed",
            "should be a tf.config.LogicalDeviceConfiguration",
        ),
        (lambda c: lambda mib: "1536", "failed", "should return a list, not str"),
    ],
)
def test_check_gpu_memory_plan(tf, make_answer, status, fragment):
    answer = make_answer(tf.config.LogicalDeviceConfiguration)
    assert_result(ch00.check_gpu_memory_plan(answer), status, fragment)


# 00.5 mean_images --------------------------------------------------------------------------------
def mean_images(dataset, *, guard_empty=True):
    sums, counts = np.zeros((10, 28, 28)), np.zeros(10)
    for image, label in dataset:
        sums[int(label)] += image.numpy()[..., 0] / 255.0
        counts[int(label)] += 1
    with np.errstate(invalid="ignore"):
        divisor = np.maximum(counts, 1) if guard_empty else counts
        return (sums / divisor[:, None, None]).astype(np.float32)


def mean_images_nan(dataset):
    return mean_images(dataset, guard_empty=False)


@pytest.mark.parametrize(
    ("answer", "status", "fragment"),
    [
        (mean_images, "passed", "10 mean images"),
        (None, "not attempted", "not attempted yet"),
        (not_written, "not attempted", "not attempted yet"),
        (raises, "failed", "raised RuntimeError"),
        (lambda ds: mean_images(ds)[..., None], "failed", "drop the channel axis"),
        (
            lambda ds: mean_images(ds).astype(np.float64),
            "failed",
            "dtype float64, expected float32",
        ),
        (lambda ds: mean_images(ds) * 255, "failed", "off by a factor of 255"),
        (mean_images_nan, "failed", "no 7s"),
        (lambda ds: mean_images(ds)[::-1], "failed", "differs from the expected values"),
        (lambda ds: mean_images(ds)[:9], "failed", "shape (9, 28, 28), expected (10, 28, 28)"),
    ],
)
def test_check_mean_images(tf, answer, status, fragment):
    assert_result(ch00.check_mean_images(answer), status, fragment)
