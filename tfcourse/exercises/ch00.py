"""Self-checks for the exercises of `00_welcome_and_setup`: the probes.

Each check is in two parts (see `tfcourse.exercises._split`): the probe here runs the learner's
answer and returns what it saw; the judge, in `tfcourse.exercises.judges.ch00`, decides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tfcourse.exercises._expect import to_numpy
from tfcourse.exercises._framework import Wrong, _describe
from tfcourse.exercises._learner import call, learner_code
from tfcourse.exercises._samples import mnist_sample
from tfcourse.exercises._split import two_part

__all__ = [
    "check_count_labels",
    "check_draw",
    "check_gpu_memory_plan",
    "check_matmul_on",
    "check_mean_images",
]

#: The datasets 00.1 counts: (examples, the digit left out).
COUNT_CASES = ((137, None), (60, 9))
#: The matrix 00.2 squares.
MATRIX = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
#: Calls of draw(seed) in 00.3: 3,000 numbers, so a standard error of the std is 0.013.
DRAWS = 1000
#: 00.4's limits in MiB, and 00.5's sample: (examples, the digit left out).
LIMITS_MIB = (1536, 700)
MEAN_CASE = (300, 7)


def _mnist_sample(
    count: int, *, drop_digit: int | None = None
) -> tuple[Any, np.ndarray, np.ndarray]:
    """A small (image, label) dataset from mnist5k's validation split, and its NumPy arrays."""
    import tensorflow as tf

    images, labels = mnist_sample(count, drop_digit=drop_digit)
    return tf.data.Dataset.from_tensor_slices((images, labels)), images, labels


@two_part("00.1", "count the digits")
def check_count_labels(count_labels: Callable[[Any], Any], seed: int) -> list[np.ndarray]:
    """Check `count_labels(dataset)` on two datasets: 10 integer counts, one per digit 0-9.

    The second dataset has no 9s, so that ``np.bincount`` without ``minlength`` comes up short.
    """
    counts = []
    for count, missing in COUNT_CASES:
        dataset, _, _ = _mnist_sample(count, drop_digit=missing)
        name = f"count_labels(a dataset of {count} examples)"
        counts.append(to_numpy(call(count_labels, dataset, name=name), name=name))
    return counts


@two_part("00.2", "place an op on a device")
def check_matmul_on(matmul_on: Callable[[str], Any], seed: int) -> list[dict[str, Any]]:
    """Check `matmul_on(device)`: ``x @ x`` for the check's matrix, computed on `device`."""
    import tensorflow as tf

    seen = []
    for device in [d.name for d in tf.config.list_logical_devices()]:
        result = call(matmul_on, device, name=f"matmul_on({device!r})")
        if not isinstance(result, tf.Tensor):
            raise Wrong(
                f"matmul_on({device!r}) should return a Tensor, not {type(result).__name__}"
            )
        value = to_numpy(result, name=f"matmul_on({device!r})")
        seen.append({"device": device, "value": value, "ran_on": str(result.device)})
    return seen


@two_part("00.3", "reproducible random numbers")
def check_draw(draw: Callable[[int], Any], seed: int) -> dict[str, Any]:
    """Check `draw(seed)`: 3 float32 standard-normal numbers, the same for the same seed.

    The statistics of 3,000 numbers from 1,000 seeds must be those of a standard normal within a
    few standard errors. The seeds are fixed, so a given answer always gets the same verdict.
    """
    seen = {"seven": to_numpy(call(draw, 7, name="draw(7)"), name="draw(7)")}
    seen["again"] = to_numpy(call(draw, 7, name="draw(7)"), name="draw(7) called again")
    seen["eight"] = to_numpy(call(draw, 8, name="draw(8)"), name="draw(8)")
    with learner_code("draw(seed)"):
        seen["draws"] = [to_numpy(draw(s), name=f"draw({s})") for s in range(DRAWS)]
    return seen


@two_part("00.4", "plan GPU memory")
def check_gpu_memory_plan(gpu_memory_plan: Callable[[int], Any], seed: int) -> list[list[Any]]:
    """Check `gpu_memory_plan(limit_mib)` for two limits: two logical GPUs of `limit_mib` MiB."""
    limits = []
    for limit_mib in LIMITS_MIB:
        name = f"gpu_memory_plan({limit_mib})"
        plan = call(gpu_memory_plan, limit_mib, name=name)
        limits.append([_plain_limit(item.memory_limit) for item in _two_configurations(plan, name)])
    return limits


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


def _plain_limit(limit: Any) -> Any:
    """A memory_limit as plain data: None, a bool, an int, a float, or a description."""
    if limit is None or isinstance(limit, (bool, int, float)):
        return limit
    if isinstance(limit, np.integer):
        return int(limit)
    if isinstance(limit, np.floating):
        return float(limit)
    return {"other": _describe(limit)}


@two_part("00.5", "mean image of each digit")
def check_mean_images(mean_images: Callable[[Any], Any], seed: int) -> np.ndarray:
    """Check `mean_images(dataset)`: (10, 28, 28) float32 means in [0, 1], zeros if absent."""
    dataset, _, _ = _mnist_sample(MEAN_CASE[0], drop_digit=MEAN_CASE[1])
    return to_numpy(call(mean_images, dataset, name="mean_images"), name="mean_images(...)")
