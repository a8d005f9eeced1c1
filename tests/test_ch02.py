"""Chapter 02's checks: each accepts a right answer and explains five or more kinds of wrong one."""

import time

import numpy as np
import pytest
from answers import assert_result, not_written, raises

import tfcourse
from tfcourse.exercises import ch02


# 02.1 make_pipeline ------------------------------------------------------------------------------
def pipeline(
    tf, images, labels, *, scale=255.0, shuffle="examples", drop=True, batch=32, dtype=None
):
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle == "examples":
        dataset = dataset.shuffle(len(images), seed=1)
    dataset = dataset.map(lambda x, y: (tf.cast(x, dtype or tf.float32) / scale, y))
    if batch:
        dataset = dataset.batch(batch, drop_remainder=drop)
    if shuffle == "batches":
        dataset = dataset.shuffle(10, seed=1)
    return dataset


@pytest.mark.parametrize(
    ("make_answer", "status", "fragment"),
    [
        (lambda tf: lambda x, y: pipeline(tf, x, y), "passed", "shuffled before batching"),
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
    label_feature = (
        tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))
        if label_kind == "int64"
        else tf.train.Feature(float_list=tf.train.FloatList(value=[label]))
    )
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
    ],
)
def test_check_example_round_trip(tf, tmp_path, make_answers, status, fragment):
    to_example, parse = make_answers(tf)
    result = ch02.check_example_round_trip(to_example, parse, folder=str(tmp_path))
    assert_result(result, status, fragment)


# 02.3 bucket_batches -----------------------------------------------------------------------------
def bucket(tf, dataset, width=4):
    bounds = list(range(width, 48, width))
    return dataset.bucket_by_sequence_length(
        lambda s: tf.shape(s)[0],
        bucket_boundaries=bounds,
        bucket_batch_sizes=[32] * (len(bounds) + 1),
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
            "every sequence must appear once",
        ),
        (lambda tf: lambda ds: ds.ragged_batch(32), "failed", "ragged"),
        (
            lambda tf: lambda ds: ds.padded_batch(64),
            "failed",
            "holds 64 sequences; the limit is 32",
        ),
        (lambda tf: lambda ds: ds.map(lambda s: s[:10]).padded_batch(8), "failed", "whole"),
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


def fast(tf, *, keep=None):
    def make(paths):
        records = tf.data.Dataset.from_tensor_slices(paths).interleave(
            tf.data.TFRecordDataset, cycle_length=4, num_parallel_calls=4
        )
        records = records.map(lambda r: slow_read(tf, r), num_parallel_calls=16).cache()
        dataset = records.map(lambda r: to_pair(tf, r)).batch(8).prefetch(2)
        return dataset.take(keep) if keep else dataset

    return make


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
        (lambda tf: lambda paths: None, "failed", "should return a tf.data.Dataset, not NoneType"),
    ],
)
def test_check_fast_pipeline(tf, shards, nondeterministic, make_answer, status, fragment):
    result = ch02.check_fast_pipeline(make_answer(tf), baseline=baseline(tf), files=shards)
    assert_result(result, status, fragment)


def test_check_fast_pipeline_points_at_op_determinism_when_it_is_the_cause(tf, shards):
    tfcourse.setup(seed=0, deterministic=True)
    # Without a cache, only parallel reads could help, and op determinism runs them one at a time.
    result = ch02.check_fast_pipeline(parallel_only(tf), baseline=baseline(tf), files=shards)
    assert_result(result, "failed", "Op determinism is on")
