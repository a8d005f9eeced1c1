"""Self-checks for the exercises of `00_welcome_and_setup`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tfcourse.exercises._expect import expect_close, expect_dtype, expect_shape, to_numpy
from tfcourse.exercises._framework import Wrong, call, check
from tfcourse.exercises._samples import mnist_sample

__all__ = [
    "check_count_labels",
    "check_draw",
    "check_gpu_memory_plan",
    "check_matmul_on",
    "check_mean_images",
]


def _mnist_sample(
    count: int, *, drop_digit: int | None = None
) -> tuple[Any, np.ndarray, np.ndarray]:
    """A small (image, label) dataset from mnist5k's validation split, and its NumPy arrays."""
    import tensorflow as tf

    images, labels = mnist_sample(count, drop_digit=drop_digit)
    return tf.data.Dataset.from_tensor_slices((images, labels)), images, labels


@check("00.1", "count the digits")
def check_count_labels(count_labels: Callable[[Any], Any]) -> str:
    """Check `count_labels(dataset)`: how many examples of each digit 0-9, as 10 int64 counts."""
    dataset, _, labels = _mnist_sample(137)
    answer = to_numpy(call(count_labels, dataset, name="count_labels"), name="count_labels(...)")
    expected = np.bincount(labels, minlength=10)
    expect_shape(answer, (10,), name="count_labels(...)")
    if not np.issubdtype(answer.dtype, np.integer):
        raise Wrong(f"counts should be integers, but count_labels(...) has dtype {answer.dtype}")
    if int(answer.sum()) != len(labels):
        raise Wrong(
            f"your counts add up to {int(answer.sum())}, but the dataset has {len(labels)} "
            "examples: each example should be counted exactly once."
        )
    expect_close(answer, expected, name="count_labels(...)")
    return f"counted {len(labels)} labels from a dataset the check built, all 10 digits right."


@check("00.2", "place an op on a device")
def check_matmul_on(matmul_on: Callable[[str], Any]) -> str:
    """Check `matmul_on(device)`: ``x @ x`` for the check's matrix, computed on `device`."""
    import tensorflow as tf

    devices = [d.name for d in tf.config.list_logical_devices()]
    matrix = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    for device in devices:
        result = call(matmul_on, device, name=f"matmul_on({device!r})")
        if not isinstance(result, tf.Tensor):
            raise Wrong(
                f"matmul_on({device!r}) should return a Tensor, not {type(result).__name__}"
            )
        expect_close(result, matrix @ matrix, name=f"matmul_on({device!r})", dtype=np.float32)
        if not result.device.endswith(device.replace("/device:", "device:")):
            raise Wrong(
                f"matmul_on({device!r}) ran on {result.device!r}. "
                "Create the inputs and call tf.matmul inside `with tf.device(device):`."
            )
    return f"x @ x is right and ran where asked on all {len(devices)} device(s): {devices}."


@check("00.3", "reproducible random numbers")
def check_draw(draw: Callable[[int], Any]) -> str:
    """Check `draw(seed)`: 3 float32 standard-normal numbers, the same for the same seed."""
    first = to_numpy(call(draw, 7, name="draw(7)"), name="draw(7)")
    expect_shape(first, (3,), name="draw(7)")
    expect_dtype(first, np.float32, name="draw(7)")
    again = to_numpy(call(draw, 7, name="draw(7)"), name="draw(7) called again")
    if not np.array_equal(first, again):
        raise Wrong(
            "draw(7) gave different numbers on two calls: set the seed inside draw, or use a "
            "stateless op such as tf.random.stateless_normal(shape, seed=[seed, 0])."
        )
    other = to_numpy(call(draw, 8, name="draw(8)"), name="draw(8)")
    if np.array_equal(first, other):
        raise Wrong("draw(7) and draw(8) gave the same numbers: the seed must change the draw.")
    samples = np.concatenate([to_numpy(call(draw, seed), name="draw(seed)") for seed in range(200)])
    if abs(samples.mean()) > 0.25 or not 0.75 < samples.std() < 1.25:
        raise Wrong(
            f"600 numbers from draw() have mean {samples.mean():.2f} and standard deviation "
            f"{samples.std():.2f}; a standard normal has 0 and 1. Use tf.random.normal."
        )
    return "same seed, same numbers; new seed, new numbers; standard normal, float32, shape (3,)."


@check("00.4", "plan GPU memory")
def check_gpu_memory_plan(gpu_memory_plan: Callable[[int], Any]) -> str:
    """Check `gpu_memory_plan(limit_mib)`: two logical GPUs of `limit_mib` MiB each."""
    import tensorflow as tf

    plan = call(gpu_memory_plan, 1536, name="gpu_memory_plan(1536)")
    if isinstance(plan, tf.config.LogicalDeviceConfiguration):
        raise Wrong("return a list of LogicalDeviceConfiguration, one per logical GPU, not one.")
    if not isinstance(plan, (list, tuple)):
        raise Wrong(f"gpu_memory_plan should return a list, not {type(plan).__name__}")
    if len(plan) != 2:
        raise Wrong(f"the plan has {len(plan)} logical device(s); the exercise asks for 2.")
    for item in plan:
        if not isinstance(item, tf.config.LogicalDeviceConfiguration):
            raise Wrong(f"each item should be a tf.config.LogicalDeviceConfiguration, not {item!r}")
        limit = item.memory_limit
        if limit is None:
            raise Wrong("memory_limit is not set: pass memory_limit=limit_mib.")
        if limit != 1536:
            factor = limit / 1536
            unit = {1024 * 1024: " (bytes?)", 1024: " (KiB?)", 1 / 1024: " (GiB?)"}.get(factor, "")
            shown = f"{factor:,.0f}" if factor >= 1 and factor == int(factor) else f"{factor:.4g}"
            raise Wrong(
                f"memory_limit is {limit} for 1536 MiB: off by a factor of {shown}{unit}. "
                "memory_limit is in mebibytes (MiB)."
            )
    return (
        "two logical GPUs of 1536 MiB each; tf.config.set_logical_device_configuration applies it."
    )


@check("00.5", "mean image of each digit")
def check_mean_images(mean_images: Callable[[Any], Any]) -> str:
    """Check `mean_images(dataset)`: (10, 28, 28) float32 means in [0, 1], zeros if absent."""
    dataset, images, labels = _mnist_sample(300, drop_digit=7)
    answer = to_numpy(call(mean_images, dataset, name="mean_images"), name="mean_images(...)")
    expected = np.zeros((10, 28, 28), dtype=np.float64)
    for digit in range(10):
        if (labels == digit).any():
            expected[digit] = images[labels == digit, ..., 0].mean(axis=0) / 255.0
    if answer.shape == (10, 28, 28, 1):
        raise Wrong("mean_images(...) has shape (10, 28, 28, 1): drop the channel axis.")
    expect_shape(answer, (10, 28, 28), name="mean_images(...)")
    expect_dtype(answer, np.float32, name="mean_images(...)")
    if np.isnan(answer[7]).any():
        raise Wrong(
            "the mean image of 7 is NaN, but this dataset has no 7s: a digit that is absent "
            "should get an image of zeros (avoid dividing by a count of zero)."
        )
    expect_close(answer, expected, name="mean_images(...)", rtol=1e-4, atol=1e-5)
    return "10 mean images in [0, 1], float32, with zeros for the digit the check left out."
