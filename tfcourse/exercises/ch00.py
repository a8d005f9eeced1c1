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

#: The range (inclusive) of the sizes of 00.1's datasets, drawn from the seed.
COUNT_SIZES = (60, 200)
#: The matrix 00.2 squares: the exercise's own, which `matmul_on(device)` builds itself.
MATRIX = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
#: Calls of draw(seed) in 00.3: 3,000 numbers, so a standard error of the std is 0.013.
DRAWS = 1000
#: 00.3's seeds are distinct integers drawn from [0, DRAW_SEED_LIMIT), valid for any seeding API.
DRAW_SEED_LIMIT = 2**31 - 1
#: The range (inclusive) of 00.4's two limits, in MiB: different whole numbers, drawn.
LIMIT_RANGE_MIB = (512, 16384)
#: The range (inclusive) of 00.5's sample size; the digit it leaves out is drawn too.
MEAN_SIZES = (150, 400)


def _count_cases(seed: int) -> list[tuple[int, int | None, int]]:
    """00.1's datasets, drawn from `seed`: (examples, the digit left out, the sample's seed).

    The first has every digit. The second has no 9s, so that ``np.bincount`` without
    ``minlength`` comes up short (9 is the only digit whose absence shortens it). The third leaves
    out a digit drawn from 0-8, so that an answer that skips an absent digit, or that special-cases
    a missing 9, is found. Sizes are drawn from `COUNT_SIZES`.
    """
    rng = np.random.default_rng(seed)
    sizes = rng.integers(COUNT_SIZES[0], COUNT_SIZES[1] + 1, 3)
    missing = (None, 9, int(rng.integers(0, 9)))
    return [(int(n), d, int(rng.integers(2**63))) for n, d in zip(sizes, missing, strict=True)]


def _draw_seeds(seed: int) -> tuple[int, int, list[int]]:
    """00.3's seeds, drawn from `seed` and all different: one that draw is called with twice,
    another, and `DRAWS` more for the statistics."""
    seeds = np.random.default_rng(seed).choice(DRAW_SEED_LIMIT, DRAWS + 2, replace=False)
    return int(seeds[0]), int(seeds[1]), [int(s) for s in seeds[2:]]


def _limits_mib(seed: int) -> list[int]:
    """00.4's two limits in MiB, drawn from `seed`: different whole numbers in `LIMIT_RANGE_MIB`."""
    low, high = LIMIT_RANGE_MIB
    drawn = np.random.default_rng(seed).choice(high - low + 1, 2, replace=False) + low
    return [int(limit) for limit in drawn]


def _mean_case(seed: int) -> tuple[int, int, int]:
    """00.5's sample, drawn from `seed`: (examples, the digit left out, the sample's seed)."""
    rng = np.random.default_rng(seed)
    count = int(rng.integers(MEAN_SIZES[0], MEAN_SIZES[1] + 1))
    return count, int(rng.integers(0, 10)), int(rng.integers(2**63))


def _mnist_sample(
    count: int, *, drop_digit: int | None = None, seed: int | None = None
) -> tuple[Any, np.ndarray, np.ndarray]:
    """A small (image, label) dataset from mnist5k's validation split, and its NumPy arrays."""
    import tensorflow as tf

    images, labels = mnist_sample(count, drop_digit=drop_digit, seed=seed)
    return tf.data.Dataset.from_tensor_slices((images, labels)), images, labels


@two_part("00.1", "count the digits")
def check_count_labels(count_labels: Callable[[Any], Any], seed: int) -> list[np.ndarray]:
    """Check `count_labels(dataset)` on three datasets: 10 integer counts, one per digit 0-9.

    The datasets are drawn from `seed` (see `_count_cases`): one has every digit, one no 9s, so
    that ``np.bincount`` without ``minlength`` comes up short, and one lacks another digit.
    """
    counts = []
    for count, missing, sample_seed in _count_cases(seed):
        dataset, _, _ = _mnist_sample(count, drop_digit=missing, seed=sample_seed)
        name = f"count_labels(a dataset of {count} examples)"
        counts.append(to_numpy(call(count_labels, dataset, name=name), name=name))
    return counts


@two_part("00.2", "place an op on a device")
def check_matmul_on(matmul_on: Callable[[str], Any], seed: int) -> list[dict[str, Any]]:
    """Check `matmul_on(device)`: ``x @ x`` for the exercise's matrix, computed on `device`.

    The answer builds `MATRIX` itself (the exercise says which), so `seed` draws nothing here.
    """
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
    few standard errors. The seeds are drawn from the check's `seed` (see `_draw_seeds`), so a
    given answer always gets the same verdict for the same check seed.
    """
    same, other, seeds = _draw_seeds(seed)
    seen = {"first": to_numpy(call(draw, same, name=f"draw({same})"), name=f"draw({same})")}
    again = call(draw, same, name=f"draw({same})")
    seen["again"] = to_numpy(again, name=f"draw({same}) called again")
    seen["other"] = to_numpy(call(draw, other, name=f"draw({other})"), name=f"draw({other})")
    with learner_code("draw(seed)"):
        seen["draws"] = [to_numpy(draw(s), name=f"draw({s})") for s in seeds]
    return seen


@two_part("00.4", "plan GPU memory")
def check_gpu_memory_plan(gpu_memory_plan: Callable[[int], Any], seed: int) -> list[list[Any]]:
    """Check `gpu_memory_plan(limit_mib)` for two limits drawn from `seed` (see `_limits_mib`):
    two logical GPUs of `limit_mib` MiB."""
    limits = []
    for limit_mib in _limits_mib(seed):
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
    """Check `mean_images(dataset)`: (10, 28, 28) float32 means in [0, 1], zeros if absent.

    The dataset's size and the digit it leaves out are drawn from `seed` (see `_mean_case`).
    """
    count, left_out, sample_seed = _mean_case(seed)
    dataset, _, _ = _mnist_sample(count, drop_digit=left_out, seed=sample_seed)
    return to_numpy(call(mean_images, dataset, name="mean_images"), name="mean_images(...)")
