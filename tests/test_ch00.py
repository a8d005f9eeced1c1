"""Chapter 00's checks: each accepts a right answer and explains five or more kinds of wrong one."""

import numpy as np
import pytest
from answers import assert_result, not_written, raises

from tfcourse.exercises import ch00


# 00.1 count_labels -------------------------------------------------------------------------------
def count_labels(dataset):
    return np.bincount([int(label) for _, label in dataset], minlength=10)


def counts_without_minlength(dataset):
    return np.bincount([int(label) for _, label in dataset])


def counts_present_digits(dataset):
    return np.unique([int(label) for _, label in dataset], return_counts=True)[1]


class RunningCount:
    """The counts live outside the function, so a second call adds to the first."""

    counts = np.zeros(10, np.int64)

    def __call__(self, dataset):
        for _, label in dataset:
            self.counts[int(label)] += 1
        return self.counts


@pytest.mark.parametrize(
    ("answer", "status", "fragment"),
    [
        (count_labels, "passed", "one with a digit missing"),
        (lambda ds: count_labels(ds).astype(np.int32), "passed", "counted the labels"),
        (None, "not attempted", "not attempted yet"),
        (not_written, "not attempted", "not attempted yet"),
        (raises, "failed", "raised RuntimeError: oops"),
        (lambda ds: count_labels(ds)[:9], "failed", "shape (9,), expected (10,)"),
        (lambda ds: count_labels(ds).astype(float), "failed", "should be integers"),
        (lambda ds: count_labels(ds) * 2, "failed", "add up to 274, but the dataset has 137"),
        (lambda ds: np.roll(count_labels(ds), 1), "failed", "differs from the expected values"),
        (lambda ds: "ten counts", "failed", "should be a Tensor or array of numbers"),
        (counts_without_minlength, "failed", "this dataset has no 9s"),
        (counts_present_digits, "failed", "minlength=10"),
        (lambda ds: count_labels(ds.take(100)), "failed", "add up to 100, but the dataset has 137"),
        (lambda ds: count_labels(ds.batch(10)), "failed", "raised TypeError"),
        (RunningCount(), "failed", "start from zero on every call"),
        (lambda ds: count_labels(ds.map(lambda x, y: (x, y + 1)))[:10], "failed", "add up to"),
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
def normal(tf, seed):
    return tf.random.stateless_normal([3], seed=[seed, 0])


def with_nan(tf, seed):
    return tf.constant([np.nan, 0.0, 1.0], tf.float32) if seed == 7 else normal(tf, seed)


@pytest.mark.parametrize(
    ("make_answer", "status", "fragment"),
    [
        (lambda tf: lambda seed: normal(tf, seed), "passed", "same seed, same numbers"),
        (
            lambda tf: lambda seed: tf.random.Generator.from_seed(seed).normal([3]),
            "passed",
            "standard normal",
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
        (lambda tf: lambda seed: normal(tf, seed) * 0.8, "failed", "standard deviation 0.783"),
        (lambda tf: lambda seed: normal(tf, seed) * 0.95, "failed", "standard deviation 0.930"),
        (lambda tf: lambda seed: normal(tf, seed) + 0.1, "failed", "mean 0.078"),
        (lambda tf: lambda seed: with_nan(tf, seed), "failed", "draw(7) contains NaN"),
        (
            lambda tf: lambda seed: (tf.random.stateless_uniform([3], [seed, 0]) - 0.5) * 12**0.5,
            "failed",
            "puts 68.3% there",
        ),
        (
            lambda tf: lambda seed: tf.random.stateless_truncated_normal([3], seed=[seed, 0]),
            "failed",
            "standard deviation 0.862",
        ),
        (
            lambda tf: lambda seed: tf.tile(tf.random.stateless_normal([1], [seed, 0]), [3]),
            "failed",
            "must be independent draws",
        ),
        (
            lambda tf: lambda seed: normal(tf, seed % 5 + 7),
            "failed",
            "a standard normal has 0 and 1",
        ),
        (
            lambda tf: lambda seed: normal(tf, seed % 500),
            "failed",
            "different seeds must give new numbers",
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
            "two logical GPUs of limit_mib MiB",
        ),
        (lambda c: lambda mib: (c(memory_limit=mib),) * 2, "passed", "two logical GPUs"),
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
            lambda c: lambda mib: [c(memory_limit=mib)] * 3,
            "failed",
            "3 logical device(s); the exercise asks for 2",
        ),
        (
            lambda c: lambda mib: [c(memory_limit=mib * 2**20)] * 2,
            "failed",
            "memory_limit is 1,610,612,736: that is 1536 MiB in bytes",
        ),
        (lambda c: lambda mib: [c(memory_limit=mib * 1024)] * 2, "failed", "1536 MiB in KiB"),
        (lambda c: lambda mib: [c(memory_limit=mib / 1024)] * 2, "failed", "1536 MiB in GiB"),
        (lambda c: lambda mib: [c()] * 2, "failed", "memory_limit is not set"),
        (
            lambda c: lambda mib: [mib, mib],
            "failed",
            "should be a tf.config.LogicalDeviceConfiguration, not an int (1536)",
        ),
        (lambda c: lambda mib: "1536", "failed", "should return a list, not str"),
        (lambda c: lambda mib: [c(memory_limit="1536")] * 2, "failed", "is a str ('1536')"),
        (
            lambda c: lambda mib: [c(memory_limit=mib + 0.001)] * 2,
            "failed",
            "memory_limit is a float (1536.001); it should be the whole number of MiB",
        ),
        (
            lambda c: lambda mib: [c(memory_limit=1536)] * 2,
            "failed",
            "in gpu_memory_plan(700), memory_limit is 1,536; each logical GPU gets 700",
        ),
        (lambda c: lambda mib: [c(memory_limit=mib // 2)] * 2, "failed", "memory_limit is 768;"),
        (lambda c: lambda mib: [c(memory_limit=mib + 1)] * 2, "failed", "memory_limit is 1,537;"),
    ],
)
def test_check_gpu_memory_plan(tf, make_answer, status, fragment):
    answer = make_answer(tf.config.LogicalDeviceConfiguration)
    assert_result(ch00.check_gpu_memory_plan(answer), status, fragment)


# 00.5 mean_images --------------------------------------------------------------------------------
def mean_images(dataset, *, guard_empty=True, scale=255.0, absent=0.0):
    sums, counts = np.zeros((10, 28, 28)), np.zeros(10)
    for image, label in dataset:
        sums[int(label)] += image.numpy()[..., 0] / scale
        counts[int(label)] += 1
    with np.errstate(invalid="ignore"):
        divisor = np.maximum(counts, 1) if guard_empty else counts
        means = sums / divisor[:, None, None]
    means[counts == 0] = absent if guard_empty else means[counts == 0]
    return means.astype(np.float32)


def mean_images_nan(dataset):
    return mean_images(dataset, guard_empty=False)


def overall_mean(dataset):
    images = np.stack([image.numpy()[..., 0] / 255.0 for image, _ in dataset])
    return np.repeat(images.mean(axis=0)[None], 10, axis=0).astype(np.float32)


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
        (lambda ds: mean_images(ds, scale=1.0), "failed", "off by a factor of 255"),
        (mean_images_nan, "failed", "no 7s"),
        (lambda ds: mean_images(ds, absent=1.0), "failed", "of 7 should be all zeros"),
        (lambda ds: mean_images(ds)[::-1], "failed", "differs from the expected values"),
        (lambda ds: mean_images(ds)[:9], "failed", "shape (9, 28, 28), expected (10, 28, 28)"),
        (
            lambda ds: mean_images(ds).transpose(0, 2, 1).copy(),
            "failed",
            "differs from the expected values",
        ),
        (overall_mean, "failed", "differs from the expected values"),
        (lambda ds: mean_images(ds.take(100)), "failed", "differs from the expected values"),
    ],
)
def test_check_mean_images(tf, answer, status, fragment):
    assert_result(ch00.check_mean_images(answer), status, fragment)
