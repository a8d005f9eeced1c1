"""Self-checks for the exercises of `00_welcome_and_setup`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tfcourse.exercises._expect import (
    expect_close,
    expect_dtype,
    expect_finite,
    expect_shape,
    to_numpy,
)
from tfcourse.exercises._framework import Wrong, _describe, check
from tfcourse.exercises._learner import call, learner_code
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
    """Check `count_labels(dataset)` on two datasets: 10 integer counts, one per digit 0-9.

    The second dataset has no 9s, so that ``np.bincount`` without ``minlength`` comes up short.
    """
    for count, missing in ((137, None), (60, 9)):
        dataset, _, labels = _mnist_sample(count, drop_digit=missing)
        name = f"count_labels(a dataset of {count} examples)"
        answer = to_numpy(call(count_labels, dataset, name=name), name=name)
        if missing is not None and answer.shape == (missing,):
            raise Wrong(
                f"{name} has shape {answer.shape}: this dataset has no {missing}s, and a digit "
                "that is absent still needs a count of 0: np.bincount(labels, minlength=10)."
            )
        expect_shape(answer, (10,), name=name)
        if not np.issubdtype(answer.dtype, np.integer):
            raise Wrong(f"counts should be integers, but {name} has dtype {answer.dtype}")
        if int(answer.sum()) != len(labels):
            raise Wrong(
                f"your counts add up to {int(answer.sum())}, but the dataset has {len(labels)} "
                "examples: count each example exactly once, and start from zero on every call."
            )
        expect_close(answer, np.bincount(labels, minlength=10), name=name)
    return "counted the labels of two datasets the check built, one with a digit missing."


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


_DRAWS = 1000  # calls of draw(seed): 3,000 numbers, so a standard error of the std is 0.013
_SPREAD = 4.0  # how many standard errors a right answer's statistics may stray


@check("00.3", "reproducible random numbers")
def check_draw(draw: Callable[[int], Any]) -> str:
    """Check `draw(seed)`: 3 float32 standard-normal numbers, the same for the same seed.

    The statistics of 3,000 numbers from 1,000 seeds must be those of a standard normal within
    `_SPREAD` standard errors. The seeds are fixed, so a given answer always gets the same verdict.
    """
    first = _one_draw(draw, 7)
    again = to_numpy(call(draw, 7, name="draw(7)"), name="draw(7) called again")
    if not np.array_equal(first, again):
        raise Wrong(
            "draw(7) gave different numbers on two calls: set the seed inside draw, or use a "
            "stateless op such as tf.random.stateless_normal(shape, seed=[seed, 0])."
        )
    if np.array_equal(first, _one_draw(draw, 8)):
        raise Wrong("draw(7) and draw(8) gave the same numbers: the seed must change the draw.")
    with learner_code("draw(seed)"):
        draws = [to_numpy(draw(seed), name=f"draw({seed})") for seed in range(_DRAWS)]
    if any(d.shape != (3,) for d in draws):
        raise Wrong("draw(seed) returned different shapes for different seeds; always return 3.")
    samples = np.stack(draws).astype(np.float64)
    expect_finite(samples, name=f"draw(seed) for seeds 0-{_DRAWS - 1}")
    _expect_standard_normal(samples)
    return "same seed, same numbers; new seed, new numbers; standard normal, float32, shape (3,)."


def _one_draw(draw: Callable[[int], Any], seed: int) -> np.ndarray:
    name = f"draw({seed})"
    numbers = to_numpy(call(draw, seed, name=name), name=name)
    expect_shape(numbers, (3,), name=name)
    expect_dtype(numbers, np.float32, name=name)
    expect_finite(numbers, name=name)
    return numbers


def _expect_standard_normal(samples: np.ndarray) -> None:
    """Mean, spread, shape and independence of (draws, 3) numbers, each within `_SPREAD` errors."""
    flat, count = samples.ravel(), samples.size
    mean, std, inside = flat.mean(), flat.std(), np.mean(np.abs(flat) < 1.0)
    if abs(mean) > _SPREAD / np.sqrt(count) or abs(std - 1) > _SPREAD / np.sqrt(2 * count):
        raise Wrong(
            f"{count:,} numbers from draw() have mean {mean:.3f} and standard deviation "
            f"{std:.3f}; a standard normal has 0 and 1. Use tf.random.normal."
        )
    if abs(inside - 0.6827) > _SPREAD * np.sqrt(0.6827 * 0.3173 / count):
        raise Wrong(
            f"{inside:.1%} of {count:,} numbers from draw() lie within 1 of 0; a standard normal "
            "puts 68.3% there. Draw from a normal distribution (tf.random.normal), not another one."
        )
    correlation = np.corrcoef(samples[:, 0], samples[:, 1])[0, 1]
    if abs(correlation) > _SPREAD / np.sqrt(len(samples)):
        raise Wrong(
            f"the first and second numbers of a draw have correlation {correlation:.2f}: the 3 "
            "numbers must be independent draws, not one number repeated or scaled."
        )
    if len(np.unique(flat)) < 0.99 * count:
        raise Wrong(
            f"only {len(np.unique(flat)):,} of {count:,} numbers from draw() are different: "
            "different seeds must give new numbers, not the same few."
        )


@check("00.4", "plan GPU memory")
def check_gpu_memory_plan(gpu_memory_plan: Callable[[int], Any]) -> str:
    """Check `gpu_memory_plan(limit_mib)` for two limits: two logical GPUs of `limit_mib` MiB."""
    for limit_mib in (1536, 700):
        name = f"gpu_memory_plan({limit_mib})"
        plan = call(gpu_memory_plan, limit_mib, name=name)
        for item in _two_configurations(plan, name):
            _expect_limit(item.memory_limit, limit_mib, name)
    return (
        "two logical GPUs of limit_mib MiB each; tf.config.set_logical_device_configuration "
        "applies it."
    )


def _two_configurations(plan: Any, name: str) -> list[Any]:
    import tensorflow as tf

    if isinstance(plan, tf.config.LogicalDeviceConfiguration):
        raise Wrong("return a list of LogicalDeviceConfiguration, one per logical GPU, not one.")
    if not isinstance(plan, (list, tuple)):
        raise Wrong(f"{name} should return a list, not {type(plan).__name__}")
    if len(plan) != 2:
        raise Wrong(f"the plan has {len(plan)} logical device(s); the exercise asks for 2.")
    for item in plan:
        if not isinstance(item, tf.config.LogicalDeviceConfiguration):
            raise Wrong(
                f"each item should be a tf.config.LogicalDeviceConfiguration, not {_describe(item)}"
            )
    return list(plan)


_UNITS = {1024 * 1024: "bytes", 1024: "KiB", 1 / 1024: "GiB"}


def _expect_limit(limit: Any, limit_mib: int, name: str) -> None:
    if limit is None:
        raise Wrong("memory_limit is not set: pass memory_limit=limit_mib.")
    number = isinstance(limit, (int, float, np.number)) and not isinstance(limit, bool)
    unit = next((u for f, u in _UNITS.items() if number and limit == limit_mib * f), None)
    if unit is not None:
        raise Wrong(
            f"in {name}, memory_limit is {limit:,}: that is {limit_mib} MiB in {unit}, but "
            "memory_limit is in mebibytes (MiB)."
        )
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)):
        raise Wrong(
            f"in {name}, memory_limit is {_describe(limit)}; it should be the whole number of "
            "MiB, an int: pass memory_limit=limit_mib."
        )
    if limit != limit_mib:
        raise Wrong(f"in {name}, memory_limit is {limit:,}; each logical GPU gets {limit_mib}.")


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
    others_right = np.allclose(np.delete(answer, 7, 0), np.delete(expected, 7, 0), 1e-4, 1e-5)
    if not np.isfinite(answer[7]).all() or (others_right and not np.allclose(answer[7], 0.0)):
        raise Wrong(
            "the mean image of 7 should be all zeros, since this dataset has no 7s: a digit that "
            "is absent gets an image of zeros (avoid dividing by a count of zero)."
        )
    expect_close(answer, expected, name="mean_images(...)", rtol=1e-4, atol=1e-5)
    return "10 mean images in [0, 1], float32, with zeros for the digit the check left out."
