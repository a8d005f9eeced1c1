"""Chapter 02's checks: each accepts a right answer and explains five or more kinds of wrong one."""

import time

import numpy as np
import pytest
from answers import assert_result, not_written, raises

import tfcourse
from tfcourse.exercises import ch02


# 02.1 make_pipeline ------------------------------------------------------------------------------
def pipeline(
    tf,
    images,
    labels,
    *,
    scale=255.0,
    shuffle="examples",
    drop=True,
    batch=32,
    dtype=None,
    buffer=None,
    seed=1,
    pixels=None,
):
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle == "examples":
        dataset = dataset.shuffle(buffer or len(images), seed=seed)
    dataset = dataset.map(lambda x, y: (tf.cast(x, dtype or tf.float32) / scale, y))
    if pixels is not None:
        dataset = dataset.map(lambda x, y: (pixels(x), y))
    if batch:
        dataset = dataset.batch(batch, drop_remainder=drop)
    if shuffle == "batches":
        dataset = dataset.shuffle(10, seed=1)
    return dataset


def shuffled_apart(tf, images, labels):
    """Images and labels each shuffled by their own dataset, then zipped: the pairs are broken."""
    xs = tf.data.Dataset.from_tensor_slices(images).shuffle(len(images), seed=1)
    ys = tf.data.Dataset.from_tensor_slices(labels).shuffle(len(labels), seed=2)
    dataset = tf.data.Dataset.zip(xs, ys).map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y))
    return dataset.batch(32, drop_remainder=True)


@pytest.mark.parametrize(
    ("make_answer", "status", "fragment"),
    [
        (lambda tf: lambda x, y: pipeline(tf, x, y), "passed", "shuffled over the whole dataset"),
        (lambda tf: lambda x, y: pipeline(tf, x, y).prefetch(2), "passed", "with a seed"),
        (lambda tf: lambda x, y: shuffled_apart(tf, x, y), "failed", "with another image's label"),
        (
            lambda tf: lambda x, y: pipeline(tf, x, y, scale=255.0 * 255.0),
            "failed",
            "you divided by 255 twice",
        ),
        (
            lambda tf: lambda x, y: pipeline(tf, x, y, scale=127.5, pixels=lambda v: v - 1),
            "failed",
            "not [-1, 1]",
        ),
        (
            lambda tf: lambda x, y: pipeline(tf, x, y, pixels=lambda v: v * 0),
            "failed",
            "every pixel of every image is 0",
        ),
        (
            lambda tf: lambda x, y: pipeline(tf, x, y, pixels=lambda v: v * float("nan")),
            "failed",
            "its images contains NaN",
        ),
        (
            lambda tf: lambda x, y: pipeline(tf, x, y, pixels=lambda v: tf.transpose(v, [1, 0, 2])),
            "failed",
            "transposed",
        ),
        (lambda tf: lambda x, y: pipeline(tf, x, y, buffer=10), "failed", "barely shuffled"),
        (lambda tf: lambda x, y: pipeline(tf, x, y, seed=None), "failed", "pass a seed"),
        (
            lambda tf: lambda x, y: pipeline(tf, x, y, pixels=lambda v: 1.0 - v),
            "failed",
            "are not any input image divided by 255",
        ),
        (lambda tf: lambda x, y: pipeline(tf, x, y).repeat(), "failed", "remove `repeat()`"),
        (lambda tf: lambda x, y: pipeline(tf, x, y).repeat(2), "failed", "more than 3 elements"),
        (lambda tf: lambda x, y: pipeline(tf, x, y).take(2), "failed", "one pass gave 2 batches"),
        (
            lambda tf: lambda x, y: pipeline(tf, x, y, pixels=lambda v: v / 2),
            "failed",
            "not the input images divided by 255",
        ),
        (lambda tf: None, "not attempted", "not attempted yet"),
        (lambda tf: not_written, "not attempted", "not attempted yet"),
        (lambda tf: raises, "failed", "raised RuntimeError"),
        (lambda tf: lambda x, y: [x, y], "failed", "should return a tf.data.Dataset, not list"),
        (lambda tf: lambda x, y: pipeline(tf, x, y, batch=0), "failed", "batch them"),
        (lambda tf: lambda x, y: pipeline(tf, x, y, drop=False), "failed", "drop_remainder=True"),
        (lambda tf: lambda x, y: pipeline(tf, x, y, scale=1.0), "failed", "divide by 255"),
        (lambda tf: lambda x, y: pipeline(tf, x, y, shuffle=None), "failed", "original order"),
        (
            lambda tf: lambda x, y: pipeline(tf, x, y, shuffle="batches"),
            "failed",
            "shuffled batches",
        ),
        (
            lambda tf: lambda x, y: pipeline(tf, x, y, dtype=tf.float64),
            "failed",
            "float64 and int64",
        ),
        (
            lambda tf: lambda x, y: pipeline(tf, x, y, batch=16),
            "failed",
            "expected (32, 28, 28, 1)",
        ),
        (
            lambda tf: lambda x, y: pipeline(tf, x, y).map(lambda a, b: a),
            "failed",
            "(images, labels) pairs",
        ),
    ],
)
def test_check_make_pipeline(tf, make_answer, status, fragment):
    assert_result(ch02.check_make_pipeline(make_answer(tf)), status, fragment)


# 02.2 example round trip -------------------------------------------------------------------------
def example_of(tf, image, label, *, label_kind="int64"):
    label_feature = {
        "int64": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
        "twice": tf.train.Feature(int64_list=tf.train.Int64List(value=[label, label])),
        "float": tf.train.Feature(float_list=tf.train.FloatList(value=[label])),
    }[label_kind]
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()])),
                "label": label_feature,
            }
        )
    )


def read_example(tf, serialized, *, shape=(28, 28, 1), dtype=None):
    features = tf.io.parse_single_example(
        serialized,
        {
            "image": tf.io.FixedLenFeature([], tf.string),
            "label": tf.io.FixedLenFeature([], tf.int64),
        },
    )
    image = tf.reshape(tf.io.decode_raw(features["image"], tf.uint8), shape)
    return (tf.cast(image, dtype) if dtype else image), features["label"]


@pytest.mark.parametrize(
    ("make_answers", "status", "fragment"),
    [
        (
            lambda tf: (lambda i, n: example_of(tf, i, n), lambda s: read_example(tf, s)),
            "passed",
            "read back identical",
        ),
        (lambda tf: (None, None), "not attempted", "not attempted yet"),
        (
            lambda tf: (not_written, lambda s: read_example(tf, s)),
            "not attempted",
            "not attempted yet",
        ),
        (lambda tf: (raises, raises), "failed", "raised RuntimeError"),
        (
            lambda tf: (lambda i, n: i.tobytes(), raises),
            "failed",
            "should return a tf.train.Example, not bytes",
        ),
        (
            lambda tf: (lambda i, n: example_of(tf, i, n, label_kind="float"), raises),
            "failed",
            "should be a int64_list",
        ),
        (
            lambda tf: (
                lambda i, n: example_of(tf, i, n),
                lambda s: read_example(tf, s, shape=(784,)),
            ),
            "failed",
            "reshape it to (28, 28, 1)",
        ),
        (
            lambda tf: (
                lambda i, n: example_of(tf, i, n),
                lambda s: read_example(tf, s, dtype=tf.float32),
            ),
            "failed",
            "decode_raw",
        ),
        (
            lambda tf: (lambda i, n: example_of(tf, i, n), lambda s: read_example(tf, s)[0]),
            "failed",
            "should return (image, label)",
        ),
        (
            lambda tf: (lambda i, n: example_of(tf, i[::-1], n), lambda s: read_example(tf, s)),
            "failed",
            "parsed image 0",
        ),
        (
            lambda tf: (lambda i, n: example_of(tf, i, n + 1), lambda s: read_example(tf, s)),
            "failed",
            "parsed label 0",
        ),
        (
            lambda tf: (lambda i, n: example_of(tf, i.astype("int64"), n), raises),
            "failed",
            "holds 6272 bytes, expected 784",
        ),
        (
            lambda tf: (lambda i, n: example_of(tf, i, n, label_kind="twice"), raises),
            "failed",
            "feature 'label' holds 2 values",
        ),
        (lambda tf: (lambda i, n: tf.train.Example(), raises), "failed", "has no feature 'image'"),
        (
            lambda tf: (lambda i, n: example_of(tf, i, n), lambda s: list(read_example(tf, s))),
            "passed",
            "read back identical",
        ),
        (
            lambda tf: (lambda i, n: example_of(tf, i, n), lambda s: {"image": s}),
            "failed",
            "should return (image, label), but returned a dict",
        ),
        (
            lambda tf: (lambda i, n: example_of(tf, i, n), lambda s: read_example(tf, s[:-1])),
            "failed",
            "parse raised",
        ),
    ],
)
def test_check_example_round_trip(tf, tmp_path, make_answers, status, fragment):
    to_example, parse = make_answers(tf)
    result = ch02.check_example_round_trip(to_example, parse, folder=str(tmp_path))
    assert_result(result, status, fragment)


# 02.3 bucket_batches -----------------------------------------------------------------------------
def bucket(tf, dataset, width=4, batch=32):
    bounds = list(range(width, 48, width))
    return dataset.bucket_by_sequence_length(
        lambda s: tf.shape(s)[0],
        bucket_boundaries=bounds,
        bucket_batch_sizes=[batch] * (len(bounds) + 1),
    )


@pytest.mark.parametrize(
    ("make_answer", "status", "fragment"),
    [
        (lambda tf: lambda ds: bucket(tf, ds), "passed", "padding (target 10%)"),
        (lambda tf: None, "not attempted", "not attempted yet"),
        (lambda tf: not_written, "not attempted", "not attempted yet"),
        (lambda tf: raises, "failed", "raised RuntimeError"),
        (
            lambda tf: lambda ds: ds.padded_batch(32),
            "failed",
            "of the entries are padding; the target is 10%",
        ),
        (
            lambda tf: lambda ds: ds.padded_batch(32, padding_values=tf.constant(-1, tf.int64)),
            "failed",
            "pad with 0, not -1",
        ),
        (
            lambda tf: lambda ds: bucket(tf, ds).take(10),
            "failed",
            "hold 320 sequences, but the dataset has 2,000",
        ),
        (lambda tf: lambda ds: ds.padded_batch(1), "failed", "1.0 sequences on average"),
        (lambda tf: lambda ds: ds.batch(1), "failed", "tiny batches cut padding"),
        (lambda tf: lambda ds: bucket(tf, ds, batch=4), "failed", "on average"),
        (lambda tf: lambda ds: bucket(tf, ds).repeat(), "failed", "never ends"),
        (lambda tf: lambda ds: ds.repeat(2).padded_batch(32), "failed", "hold 4,000 sequences"),
        (
            lambda tf: lambda ds: ds.map(lambda s: s + 1).padded_batch(32),
            "failed",
            "as many as the dataset, but 2,000 of them come out changed",
        ),
        (
            lambda tf: lambda ds: ds.padded_batch(32, padding_values=tf.constant(1, tf.int64)),
            "failed",
            "pad only with 0",
        ),
        (lambda tf: lambda ds: bucket(tf, ds, width=16), "failed", "of the entries are padding"),
        (lambda tf: lambda ds: ds.ragged_batch(32), "failed", "ragged"),
        (
            lambda tf: lambda ds: ds.padded_batch(64),
            "failed",
            "holds 64 sequences; the limit is 32",
        ),
        (lambda tf: lambda ds: ds.map(lambda s: s[:10]).padded_batch(8), "failed", "whole"),
        (lambda tf: lambda ds: bucket(tf, ds).unbatch().padded_batch(32), "passed", "padding"),
        (lambda tf: lambda ds: ds, "failed", "should be 2-D"),
        (lambda tf: lambda ds: "batches", "failed", "should return a tf.data.Dataset"),
    ],
)
def test_check_bucket_batches(tf, make_answer, status, fragment):
    assert_result(ch02.check_bucket_batches(make_answer(tf)), status, fragment)


def test_padding_fraction_counts_pad_entries():
    assert ch02.padding_fraction([np.array([[1, 2, 0], [3, 0, 0]])]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no batches"):
        ch02.padding_fraction([])


# 02.4 fast_pipeline ------------------------------------------------------------------------------
LATENCY = 0.01  # a latency-dominated workload, so the ratio is large and stable on any machine


@pytest.fixture
def shards(tf, tmp_path):
    paths = []
    for shard in range(4):
        path = str(tmp_path / f"shard-{shard}.tfrecord")
        with tf.io.TFRecordWriter(path) as writer:
            for label in range(shard, 64, 4):
                writer.write(tf.constant(str(label)).numpy())
        paths.append(path)
    return paths


@pytest.fixture
def nondeterministic(tf):
    tfcourse.setup(seed=0, deterministic=False)
    yield
    tfcourse.setup(seed=0)


def slow_read(tf, record):
    return tf.py_function(lambda r: (time.sleep(LATENCY), r)[1], [record], tf.string)


def to_pair(tf, record):
    record = tf.ensure_shape(record, [])
    return record, tf.strings.to_number(record, tf.int64)


def baseline(tf):
    return lambda paths: (
        tf.data.TFRecordDataset(paths)
        .map(lambda r: slow_read(tf, r))
        .map(lambda r: to_pair(tf, r))
        .batch(8)
    )


def augment(tf, record, label):
    """A random step: it appends a random digit to the record, and keeps the label."""
    digit = tf.strings.as_string(tf.random.uniform([], maxval=10, dtype=tf.int64))
    return tf.strings.join([record, digit]), label


def fast(tf, *, keep=None, read=True, late_cache=None):
    def make(paths):
        records = tf.data.Dataset.from_tensor_slices(paths).interleave(
            tf.data.TFRecordDataset, cycle_length=4, num_parallel_calls=4
        )
        if read:
            records = records.map(lambda r: slow_read(tf, r), num_parallel_calls=16)
        if late_cache == "shuffle":
            records = records.shuffle(64)
        dataset = records.cache().map(lambda r: to_pair(tf, r))
        if late_cache == "augment":
            dataset = records.map(lambda r: to_pair(tf, r)).map(lambda *p: augment(tf, *p)).cache()
        dataset = dataset.batch(8).prefetch(2)
        return dataset.take(keep) if keep else dataset

    return make


def fast_with(tf, change):
    """The fast answer, with `change(records, labels)` applied to each batch."""
    return lambda paths: fast(tf)(paths).map(change)


def mismatched_labels(tf):
    """Right inputs and labels, but not each input with its own label (two datasets zipped)."""

    def make(paths):
        records = fast(tf)(paths).unbatch()
        inputs = records.map(lambda r, label: r)
        labels = records.map(lambda r, label: label).shuffle(64, seed=3)
        return tf.data.Dataset.zip((inputs, labels)).batch(8)

    return make


def numeric(tf, make):
    """A pipeline whose inputs are numbers: the record's value, times 0.01, in a vector of 4."""
    return lambda paths: make(paths).map(
        lambda r, label: (
            tf.fill([tf.shape(r)[0], 4], 0.01) * tf.cast(label, tf.float32)[:, None],
            label,
        )
    )


def parallel_only(tf):
    def make(paths):
        records = tf.data.Dataset.from_tensor_slices(paths).interleave(
            tf.data.TFRecordDataset, cycle_length=4, num_parallel_calls=4
        )
        return (
            records.map(lambda r: slow_read(tf, r), num_parallel_calls=16)
            .map(lambda r: to_pair(tf, r))
            .batch(8)
        )

    return make


@pytest.mark.parametrize(
    ("make_answer", "status", "fragment"),
    [
        (lambda tf: fast(tf), "passed", "the baseline's throughput after the first epoch"),
        (lambda tf: None, "not attempted", "not attempted yet"),
        (lambda tf: not_written, "not attempted", "not attempted yet"),
        (lambda tf: raises, "failed", "raised RuntimeError"),
        (lambda tf: baseline(tf), "failed", "the goal is 3x. Read shards and map in parallel"),
        (lambda tf: fast(tf, keep=3), "failed", "it must produce the same examples"),
        (lambda tf: lambda paths: fast(tf)(paths).unbatch(), "failed", "but the baseline yields"),
        (lambda tf: lambda paths: None, "failed", "returned None; did you forget a `return`?"),
        (lambda tf: lambda paths: 42, "failed", "should return a tf.data.Dataset, not int"),
        (lambda tf: fast(tf, read=False), "failed", "never calls slow_read"),
        (lambda tf: fast(tf, late_cache="augment"), "failed", "cache() after a random step"),
        (lambda tf: fast(tf, late_cache="shuffle"), "failed", "cache() after a random step"),
        (lambda tf: lambda paths: fast(tf)(paths).repeat(), "failed", "never ends"),
        (lambda tf: lambda paths: fast(tf)(paths + paths), "failed", "gave 128 examples"),
        (mismatched_labels, "failed", "hold other inputs than the baseline's"),
        (
            lambda tf: fast_with(tf, lambda r, y: (tf.strings.join([r, "x"]), y)),
            "failed",
            "hold other inputs than the baseline's",
        ),
    ],
)
def test_check_fast_pipeline(tf, shards, nondeterministic, make_answer, status, fragment):
    result = ch02.check_fast_pipeline(make_answer(tf), baseline=baseline(tf), files=shards)
    assert_result(result, status, fragment)


@pytest.mark.parametrize(
    ("change", "status"),
    [
        (lambda x: x, "passed"),
        (lambda x: x * 1.02, "passed"),  # within what a random crop moves
        (lambda x: x * 0.0, "failed"),  # blank images
        (lambda x: x * 255.0, "failed"),  # not scaled to [0, 1]
        (lambda x: x + 0.5, "failed"),
    ],
)
def test_check_fast_pipeline_compares_numeric_inputs(tf, shards, nondeterministic, change, status):
    answer = numeric(tf, fast_with(tf, lambda r, y: (r, y)))
    answer_changed = lambda paths: answer(paths).map(lambda x, y: (change(x), y))  # noqa: E731
    result = ch02.check_fast_pipeline(
        answer_changed, baseline=numeric(tf, baseline(tf)), files=shards
    )
    assert result.status == status, result


def test_check_fast_pipeline_points_at_op_determinism_when_it_is_the_cause(tf, shards):
    tfcourse.setup(seed=0, deterministic=True)
    # Without a cache, only parallel reads could help, and op determinism runs them one at a time.
    result = ch02.check_fast_pipeline(parallel_only(tf), baseline=baseline(tf), files=shards)
    assert_result(result, "failed", "Op determinism is on")
