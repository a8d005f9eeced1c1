"""Chapter 00's checks: each accepts a right answer and explains five or more kinds of wrong one."""

import numpy as np
import pytest
from answers import (
    SEED,
    assert_result,
    assert_result_on,
    assert_seeded,
    not_written,
    observed,
    raises,
    same_observations,
)

from tfcourse.exercises import ch00
from tfcourse.exercises._samples import mnist_sample


# 00.1 count_labels -------------------------------------------------------------------------------
def count_labels(dataset):
    return np.bincount([int(label) for _, label in dataset], minlength=10)


def counts_without_minlength(dataset):
    return np.bincount([int(label) for _, label in dataset])


def counts_present_digits(dataset):
    return np.unique([int(label) for _, label in dataset], return_counts=True)[1]


def counts_padded_at_the_end(dataset):
    """Present digits' counts, then a 0 for a missing one: right only when 9 is the missing one."""
    counts = counts_present_digits(dataset)
    return np.concatenate([counts, np.zeros(10 - len(counts), counts.dtype)])


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
        (count_labels, "passed", "three datasets the check built, two with a digit missing"),
        (lambda ds: count_labels(ds).astype(np.int32), "passed", "counted the labels"),
        (None, "not attempted", "not attempted yet"),
        (not_written, "not attempted", "not attempted yet"),
        (raises, "failed", "raised RuntimeError: oops"),
        (lambda ds: count_labels(ds)[:9], "failed", "shape (9,), expected (10,)"),
        (lambda ds: count_labels(ds).astype(float), "failed", "should be integers"),
        (
            lambda ds: count_labels(ds) * 2,
            "failed",
            "add up to {twice}, but the dataset has {first}",
        ),
        (lambda ds: np.roll(count_labels(ds), 1), "failed", "differs from the expected values"),
        (lambda ds: "ten counts", "failed", "should be a Tensor or array of numbers"),
        (counts_without_minlength, "failed", "this dataset has no 9s"),
        (counts_present_digits, "failed", "minlength=10"),
        (counts_padded_at_the_end, "failed", "dataset of {third} examples) differs from the"),
        (
            lambda ds: count_labels(ds.take(50)),
            "failed",
            "add up to 50, but the dataset has {first}",
        ),
        (lambda ds: count_labels(ds.batch(10)), "failed", "raised TypeError"),
        (RunningCount(), "failed", "start from zero on every call"),
        (lambda ds: count_labels(ds.map(lambda x, y: (x, y + 1)))[:10], "failed", "add up to"),
    ],
)
def test_check_count_labels(tf, seeded, answer, status, fragment):
    (first, _, _), _, (third, _, _) = ch00._count_cases(seeded)
    facts = {"first": first, "twice": 2 * first, "third": third}
    assert_result_on(ch00.check_count_labels(answer), status, fragment, facts)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_the_count_datasets_are_drawn_each_with_every_digit_but_the_one_left_out(seed):
    cases = ch00._count_cases(seed)
    assert [missing for _, missing, _ in cases][:2] == [None, 9] and cases[2][1] in range(9)
    for count, missing, sample_seed in cases:
        assert ch00.COUNT_SIZES[0] <= count <= ch00.COUNT_SIZES[1]
        labels = mnist_sample(count, drop_digit=missing, seed=sample_seed)[1]
        assert len(labels) == count and set(labels.tolist()) == set(range(10)) - {missing}
        again = mnist_sample(count, drop_digit=missing, seed=sample_seed)[1]
        assert np.array_equal(labels, again)


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
    first = ch00._draw_seeds(SEED)[0]
    return tf.constant([np.nan, 0.0, 1.0], tf.float32) if seed == first else normal(tf, seed)


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
        (
            lambda tf: lambda seed: tf.random.normal([3]),
            "failed",
            "draw({first}) gave different numbers on two calls",
        ),
        (
            lambda tf: lambda seed: tf.random.stateless_normal([3], seed=[1, 0]),
            "failed",
            "draw({first}) and draw({other}) gave the same numbers",
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
        (lambda tf: lambda seed: normal(tf, seed) * 0.8, "failed", "standard deviation 0.804"),
        (lambda tf: lambda seed: normal(tf, seed) * 0.9, "failed", "standard deviation 0.905"),
        (lambda tf: lambda seed: normal(tf, seed) + 0.15, "failed", "mean 0.107"),
        (lambda tf: lambda seed: with_nan(tf, seed), "failed", "draw({first}) contains NaN"),
        (
            lambda tf: lambda seed: (tf.random.stateless_uniform([3], [seed, 0]) - 0.5) * 12**0.5,
            "failed",
            "puts 68.3% there",
        ),
        (
            lambda tf: lambda seed: tf.random.stateless_truncated_normal([3], seed=[seed, 0]),
            "failed",
            "standard deviation 0.876",
        ),
        (
            lambda tf: lambda seed: tf.tile(tf.random.stateless_normal([1], [seed, 0]), [3]),
            "failed",
            "must be independent draws",
        ),
        (
            lambda tf: lambda seed: normal(tf, seed % 7 + 7),
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
def test_check_draw(tf, seeded, make_answer, status, fragment):
    """The statistics named are those of `SEED`'s 1,000 seeds, which this test needs."""
    first, other, seeds = ch00._draw_seeds(seeded)
    assert len({first, other, *seeds}) == ch00.DRAWS + 2
    facts = {"first": first, "other": other}
    assert_result_on(ch00.check_draw(make_answer(tf)), status, fragment, facts)


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
            "in gpu_memory_plan({first}), memory_limit is {bytes:,}: that is {first} MiB in bytes",
        ),
        (lambda c: lambda mib: [c(memory_limit=mib * 1024)] * 2, "failed", "{first} MiB in KiB"),
        (lambda c: lambda mib: [c(memory_limit=mib / 1024)] * 2, "failed", "{first} MiB in GiB"),
        (lambda c: lambda mib: [c()] * 2, "failed", "memory_limit is not set"),
        (
            lambda c: lambda mib: [mib, mib],
            "failed",
            "should be a tf.config.LogicalDeviceConfiguration, not an int ({first})",
        ),
        (lambda c: lambda mib: "1536", "failed", "should return a list, not str"),
        (lambda c: lambda mib: [c(memory_limit="1536")] * 2, "failed", "is a str ('1536')"),
        (
            lambda c: lambda mib: [c(memory_limit=mib + 0.001)] * 2,
            "failed",
            "memory_limit is a float ({fraction!r}); it should be the whole number of MiB",
        ),
        (
            lambda c: lambda mib: [c(memory_limit=ch00._limits_mib(SEED)[0])] * 2,
            "failed",
            "gpu_memory_plan({second}), memory_limit is {first:,}; each logical GPU gets {second}",
        ),
        (
            lambda c: lambda mib: [c(memory_limit=mib // 2)] * 2,
            "failed",
            "memory_limit is {half:,};",
        ),
        (
            lambda c: lambda mib: [c(memory_limit=mib + 1)] * 2,
            "failed",
            "memory_limit is {next:,};",
        ),
    ],
)
def test_check_gpu_memory_plan(tf, seeded, make_answer, status, fragment):
    first, second = ch00._limits_mib(seeded)
    facts = {
        "first": first,
        "second": second,
        "bytes": first * 2**20,
        "fraction": first + 0.001,
        "half": first // 2,
        "next": first + 1,
    }
    answer = make_answer(tf.config.LogicalDeviceConfiguration)
    assert_result_on(ch00.check_gpu_memory_plan(answer), status, fragment, facts)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_the_memory_limits_are_two_different_whole_numbers_of_mib(seed):
    first, second = ch00._limits_mib(seed)
    low, high = ch00.LIMIT_RANGE_MIB
    assert first != second and low <= min(first, second) <= max(first, second) <= high


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
        (mean_images_nan, "failed", "no {left_out}s"),
        (lambda ds: mean_images(ds, absent=1.0), "failed", "of {left_out} should be all zeros"),
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
def test_check_mean_images(tf, seeded, answer, status, fragment):
    facts = {"left_out": ch00._mean_case(seeded)[1]}
    assert_result_on(ch00.check_mean_images(answer), status, fragment, facts)


# Inputs drawn from the check's seed ---------------------------------------------------------------
def standard_normal(seed):
    import tensorflow as tf

    return normal(tf, seed)


def gpu_memory_plan(mib):
    import tensorflow as tf

    return [tf.config.LogicalDeviceConfiguration(memory_limit=mib)] * 2


#: A right answer to each check whose inputs are drawn from its seed.
SEEDED = {
    "00.1": (ch00.check_count_labels, count_labels),
    "00.3": (ch00.check_draw, standard_normal),
    "00.4": (ch00.check_gpu_memory_plan, gpu_memory_plan),
    "00.5": (ch00.check_mean_images, mean_images),
}


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_right_answers_pass_for_every_seed(tf, monkeypatch, seed):
    monkeypatch.setenv("TFCOURSE_PROBE_SEED", str(seed))
    for check, answer in SEEDED.values():
        assert_result(check(answer), "passed", "")
    assert_result(ch00.check_matmul_on(matmul_on), "passed", "ran where asked")


@pytest.mark.parametrize("exercise", ["00.1", "00.4", "00.5"])
def test_inputs_differ_by_seed_and_another_seeds_observations_fail(tf, exercise):
    """A replay: what a right answer showed for one seed does not pass the judge of another."""
    assert_seeded(*SEEDED[exercise])


def test_draws_seeds_differ_by_check_seed(tf):
    """00.3's seeds are drawn, but any reproducible standard normal passes, so a right answer's
    observations for one seed are those of another right answer for any other: nothing to replay."""
    check, answer = SEEDED["00.3"]
    assert ch00._draw_seeds(1) != ch00._draw_seeds(2)
    seen = [observed(check, answer, seed) for seed in (1, 2)]
    assert not same_observations(*seen)
