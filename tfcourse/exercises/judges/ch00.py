"""Judges of chapter 00's checks (probes in `tfcourse.exercises.ch00`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tfcourse.exercises._expect import expect_close, expect_dtype, expect_finite, expect_shape
from tfcourse.exercises._framework import Wrong
from tfcourse.exercises._samples import mnist_sample
from tfcourse.exercises.ch00 import (
    DRAWS,
    MATRIX,
    _count_cases,
    _draw_seeds,
    _limits_mib,
    _mean_case,
)
from tfcourse.exercises.judges._observed import array, field, items

_SPREAD = 4.0  # how many standard errors a right answer's statistics of draw() may stray


def count_labels(observed: Any, seed: int) -> str:
    """00.1: three arrays of counts, equal to ``np.bincount(labels, minlength=10)``."""
    cases = _count_cases(seed)
    answers = items(observed, len(cases))
    for counts, (count, missing, sample_seed) in zip(answers, cases, strict=True):
        answer = array(counts)
        labels = mnist_sample(count, drop_digit=missing, seed=sample_seed)[1]
        name = f"count_labels(a dataset of {count} examples)"
        if missing is not None and answer.shape == (9,):
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
    return "counted the labels of three datasets the check built, two with a digit missing."


def matmul_on(observed: Any, seed: int) -> str:
    """00.2: ``x @ x`` right on every logical device, and placed on it."""
    seen = items(observed, kind=dict)
    devices = [field(one, "device", str) for one in seen]
    if not any(device.endswith("CPU:0") for device in devices):
        raise Wrong("the check saw no CPU:0 among the devices it tried: re-run the check cell.")
    for one, device in zip(seen, devices, strict=True):
        name = f"matmul_on({device!r})"
        expect_close(array(field(one, "value")), MATRIX @ MATRIX, name=name, dtype=np.float32)
        ran_on = field(one, "ran_on", str)
        if not ran_on.endswith(device.replace("/device:", "device:")):
            raise Wrong(
                f"matmul_on({device!r}) ran on {ran_on!r}. "
                "Create the inputs and call tf.matmul inside `with tf.device(device):`."
            )
    return f"x @ x is right and ran where asked on all {len(devices)} device(s): {devices}."


def draw(observed: Any, seed: int) -> str:
    """00.3: reproducible, seed-dependent, float32 standard-normal triples."""
    same, other, _ = _draw_seeds(seed)
    first = _one_draw(field(observed, "first"), f"draw({same})")
    if not np.array_equal(first, array(field(observed, "again"))):
        raise Wrong(
            f"draw({same}) gave different numbers on two calls: set the seed inside draw, or use a "
            "stateless op such as tf.random.stateless_normal(shape, seed=[seed, 0])."
        )
    if np.array_equal(first, _one_draw(field(observed, "other"), f"draw({other})")):
        raise Wrong(
            f"draw({same}) and draw({other}) gave the same numbers: the seed must change the draw."
        )
    draws = [array(one) for one in items(field(observed, "draws"), DRAWS)]
    if any(d.shape != (3,) for d in draws):
        raise Wrong("draw(seed) returned different shapes for different seeds; always return 3.")
    samples = np.stack(draws).astype(np.float64)
    expect_finite(samples, name=f"draw(seed) for the check's {DRAWS:,} seeds")
    _expect_standard_normal(samples)
    return "same seed, same numbers; new seed, new numbers; standard normal, float32, shape (3,)."


def _one_draw(numbers: Any, name: str) -> np.ndarray:
    numbers = array(numbers)
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


def gpu_memory_plan(observed: Any, seed: int) -> str:
    """00.4: two logical GPUs of `limit_mib` MiB each, for each limit."""
    limits_mib = _limits_mib(seed)
    plans = items(observed, len(limits_mib), kind=list)
    for limits, limit_mib in zip(plans, limits_mib, strict=True):
        for limit in items(limits, 2):
            _expect_limit(limit, limit_mib, f"gpu_memory_plan({limit_mib})")
    return (
        "two logical GPUs of limit_mib MiB each; tf.config.set_logical_device_configuration "
        "applies it."
    )


_UNITS = {1024 * 1024: "bytes", 1024: "KiB", 1 / 1024: "GiB"}


def _expect_limit(limit: Any, limit_mib: int, name: str) -> None:
    if limit is None:
        raise Wrong("memory_limit is not set: pass memory_limit=limit_mib.")
    number = isinstance(limit, (int, float)) and not isinstance(limit, bool)
    unit = next((u for f, u in _UNITS.items() if number and limit == limit_mib * f), None)
    if unit is not None:
        raise Wrong(
            f"in {name}, memory_limit is {limit:,}: that is {limit_mib} MiB in {unit}, but "
            "memory_limit is in mebibytes (MiB)."
        )
    if isinstance(limit, bool) or not isinstance(limit, int):
        shown = limit["other"] if isinstance(limit, dict) and "other" in limit else repr(limit)
        if isinstance(limit, (bool, float)):
            shown = f"a {type(limit).__name__} ({limit!r})"
        raise Wrong(
            f"in {name}, memory_limit is {shown}; it should be the whole number of "
            "MiB, an int: pass memory_limit=limit_mib."
        )
    if limit != limit_mib:
        raise Wrong(f"in {name}, memory_limit is {limit:,}; each logical GPU gets {limit_mib}.")


def mean_images(observed: Any, seed: int) -> str:
    """00.5: the mean image of each digit, zeros for the digit left out."""
    answer = array(observed)
    count, left_out, sample_seed = _mean_case(seed)
    images, labels = mnist_sample(count, drop_digit=left_out, seed=sample_seed)
    expected = np.zeros((10, 28, 28), dtype=np.float64)
    for digit in range(10):
        if (labels == digit).any():
            expected[digit] = images[labels == digit, ..., 0].mean(axis=0) / 255.0
    if answer.shape == (10, 28, 28, 1):
        raise Wrong("mean_images(...) has shape (10, 28, 28, 1): drop the channel axis.")
    expect_shape(answer, (10, 28, 28), name="mean_images(...)")
    expect_dtype(answer, np.float32, name="mean_images(...)")
    others = np.delete(answer, left_out, 0), np.delete(expected, left_out, 0)
    others_right = np.allclose(*others, 1e-4, 1e-5)
    if not np.isfinite(answer[left_out]).all() or (
        others_right and not np.allclose(answer[left_out], 0.0)
    ):
        raise Wrong(
            f"the mean image of {left_out} should be all zeros, since this dataset has no "
            f"{left_out}s: a digit that is absent gets an image of zeros (avoid dividing by a "
            "count of zero)."
        )
    expect_close(answer, expected, name="mean_images(...)", rtol=1e-4, atol=1e-5)
    return "10 mean images in [0, 1], float32, with zeros for the digit the check left out."
