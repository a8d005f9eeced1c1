"""Self-checks for the exercises of `02_tf_data`."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tfcourse.exercises._expect import expect_close, to_numpy
from tfcourse.exercises._framework import Wrong, check
from tfcourse.exercises._learner import call
from tfcourse.exercises._samples import mnist_sample

__all__ = [
    "PADDING_TARGET",
    "check_bucket_batches",
    "check_example_round_trip",
    "check_fast_pipeline",
    "check_make_pipeline",
    "padding_fraction",
]

#: Exercise 02.3: the largest share of pad tokens a bucketed pipeline may produce.
PADDING_TARGET = 0.10


def _require_dataset(value: Any, name: str) -> Any:
    import tensorflow as tf

    if not isinstance(value, tf.data.Dataset):
        raise Wrong(f"{name} should return a tf.data.Dataset, not {type(value).__name__}")
    return value


@check("02.1", "a pipeline to a spec")
def check_make_pipeline(make_pipeline: Callable[[np.ndarray, np.ndarray], Any]) -> str:
    """Check `make_pipeline(images, labels)`: shuffled, scaled to [0, 1] float32, batches of 32."""
    import tensorflow as tf

    images, labels = mnist_sample(100)
    dataset = _require_dataset(
        call(make_pipeline, images, labels, name="make_pipeline"), "make_pipeline"
    )
    x_spec, y_spec = _pair_spec(dataset.element_spec, "make_pipeline(...)")
    if x_spec.shape.rank != 4:
        raise Wrong(
            f"its images have shape {x_spec.shape}; batch them: expected (32, 28, 28, 1) per batch."
        )
    if x_spec.shape[0] is None:
        raise Wrong("its batch size is unknown (None): pass drop_remainder=True to batch().")
    if tuple(x_spec.shape) != (32, 28, 28, 1) or tuple(y_spec.shape) != (32,):
        raise Wrong(
            f"its batches have shapes {x_spec.shape} and {y_spec.shape}, "
            "expected (32, 28, 28, 1) and (32,)"
        )
    if x_spec.dtype != tf.float32 or y_spec.dtype != tf.int64:
        raise Wrong(
            f"its dtypes are {x_spec.dtype.name} and {y_spec.dtype.name}, "
            "expected float32 and int64"
        )
    batches = [(x.numpy(), y.numpy()) for x, y in dataset]
    if len(batches) != 3:
        raise Wrong(
            f"one pass gave {len(batches)} batches; 100 examples make 3 full batches of 32."
        )
    pixels = np.concatenate([x for x, _ in batches])
    if pixels.max() > 1.0:
        raise Wrong(f"its pixels go up to {pixels.max():g}: divide by 255 to scale them to [0, 1].")
    seen = np.concatenate([y for _, y in batches])
    if np.array_equal(seen, labels[:96]):
        raise Wrong("the examples come out in their original order: shuffle before batching.")
    if any(
        np.array_equal(np.sort(y), np.sort(labels[s : s + 32]))
        for _, y in batches
        for s in (0, 32, 64)
    ):
        raise Wrong(
            "whole batches are kept together: you shuffled batches, not examples. Shuffle first."
        )
    if not np.isin(seen, labels).all():
        raise Wrong("some labels are not from the input; map only the images.")
    return (
        "batches of (32, 28, 28, 1) float32 in [0, 1] with int64 labels, shuffled before batching."
    )


def _pair_spec(spec: Any, name: str) -> tuple[Any, Any]:
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise Wrong(f"{name} should yield (images, labels) pairs, but its elements are {spec}")
    return spec


@check("02.2", "a TFRecord round trip")
def check_example_round_trip(
    to_example: Callable[[np.ndarray, int], Any], parse: Callable[[Any], Any], *, folder: str
) -> str:
    """Check `to_example(image, label)` and `parse(serialized)` through a real TFRecord file."""
    import tensorflow as tf

    images, labels = mnist_sample(20)
    path = f"{folder}/check.tfrecord.gz"
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for image, label in zip(images, labels, strict=True):
            example = call(to_example, image, int(label), name="to_example")
            if not isinstance(example, tf.train.Example):
                raise Wrong(
                    f"to_example should return a tf.train.Example, not {type(example).__name__}"
                )
            writer.write(example.SerializeToString())
    reference = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
    }
    first = tf.train.Example.FromString(next(iter(tf.data.TFRecordDataset(path, "GZIP"))).numpy())
    for key, kind in (("image", "bytes_list"), ("label", "int64_list")):
        if key not in first.features.feature:
            raise Wrong(
                f"the Example has no feature {key!r}; it has {sorted(first.features.feature)}"
            )
        if first.features.feature[key].WhichOneof("kind") != kind:
            raise Wrong(
                f"feature {key!r} should be a {kind}, "
                f"not a {first.features.feature[key].WhichOneof('kind')}"
            )
    tf.io.parse_single_example(next(iter(tf.data.TFRecordDataset(path, "GZIP"))), reference)
    dataset = tf.data.TFRecordDataset(path, compression_type="GZIP")
    read = [call(parse, record, name="parse") for record in dataset]
    for index, pair in enumerate(read):
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise Wrong(f"parse should return (image, label), but returned {type(pair).__name__}")
        image, label = pair
        got = to_numpy(image, name="the parsed image")
        if got.shape != (28, 28, 1):
            raise Wrong(f"the parsed image has shape {got.shape}; tf.reshape it to (28, 28, 1).")
        if got.dtype != np.uint8:
            raise Wrong(
                f"the parsed image has dtype {got.dtype}; "
                "decode it with tf.io.decode_raw(..., tf.uint8)."
            )
        expect_close(got, images[index], name=f"parsed image {index}")
        expect_close(
            to_numpy(label, name="the parsed label"), labels[index], name=f"parsed label {index}"
        )
    return "20 images and labels written to a GZIP TFRecord file and read back identical."


def padding_fraction(batches: Any, *, pad_value: int = 0) -> float:
    """The share of entries in padded 2-D batches that are padding.

    Introduced in `02_tf_data`.
    """
    total = padded = 0
    for batch in batches:
        array = np.asarray(batch)
        total += array.size
        padded += int((array == pad_value).sum())
    if total == 0:
        raise ValueError("no batches to measure")
    return padded / total


def _sequences(count: int) -> list[np.ndarray]:
    from tfcourse import data

    texts = data.load_numpy("numwords", "validation")["text"]
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(texts), size=count, replace=False)
    return [np.array([ord(ch) for ch in texts[i]], dtype=np.int64) for i in chosen]


@check("02.3", "pad and bucket")
def check_bucket_batches(bucket_batches: Callable[[Any], Any]) -> str:
    """Check `bucket_batches(dataset)`: padded batches of at most 32, pad 0, <=10% padding."""
    import tensorflow as tf

    sequences = _sequences(2000)
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(sequences), output_signature=tf.TensorSpec([None], tf.int64)
    )
    result = _require_dataset(
        call(bucket_batches, dataset, name="bucket_batches"), "bucket_batches"
    )
    batches = []
    for batch in result:
        if isinstance(batch, tf.RaggedTensor):
            raise Wrong("the batches are ragged: pad them into dense tensors with padded_batch.")
        array = to_numpy(batch, name="a batch")
        if array.ndim != 2:
            raise Wrong(
                f"each batch should be 2-D (sequences, length), but one has shape {array.shape}"
            )
        if len(array) > 32:
            raise Wrong(f"a batch holds {len(array)} sequences; the limit is 32.")
        batches.append(array)
    if batches and (np.concatenate([b.ravel() for b in batches]) < 0).any():
        raise Wrong("some batches contain negative values: pad with 0, not -1.")
    unpadded = sorted(tuple(row[row != 0]) for batch in batches for row in batch)
    if unpadded != sorted(tuple(s) for s in sequences):
        count = sum(len(b) for b in batches)
        raise Wrong(
            f"the batches hold {count} sequences, but the dataset has {len(sequences)}; every "
            "sequence must appear once, whole (check drop_remainder and truncation)."
        )
    fraction = padding_fraction(batches)
    if fraction > PADDING_TARGET:
        raise Wrong(
            f"{fraction:.1%} of the entries are padding; the target is {PADDING_TARGET:.0%}. "
            "Group sequences of similar length: tf.data.Dataset.bucket_by_sequence_length."
        )
    target = f"{PADDING_TARGET:.0%}"
    return f"all 2,000 sequences, batches of <= 32, {fraction:.1%} padding (target {target})."


def _epoch_seconds(dataset: Any, epochs: int) -> tuple[list[float], list[int]]:
    """Seconds for each epoch, and the labels of the first epoch."""
    seconds: list[float] = []
    labels: list[int] = []
    for epoch in range(epochs):
        start = time.perf_counter()
        for element in dataset:
            if epoch == 0:
                labels.extend(np.asarray(element[1]).ravel().tolist())
        seconds.append(time.perf_counter() - start)
    return seconds, labels


@check("02.4", "find and fix the bottleneck")
def check_fast_pipeline(
    fast_pipeline: Callable[[Sequence[str]], Any],
    *,
    baseline: Callable[[Sequence[str]], Any],
    files: Sequence[str],
    min_speedup: float = 3.0,
    epochs: int = 3,
) -> str:
    """Check `fast_pipeline(files)`: the elements of `baseline(files)`, `min_speedup` x faster.

    Speed is compared over the epochs after the first, the steady state of a long training run; the
    first epoch's ratio is reported too.
    """
    if epochs < 2:
        raise ValueError(f"epochs must be >= 2 (the first is reported apart); got {epochs}")
    slow = _require_dataset(call(baseline, files, name="the baseline pipeline"), "the baseline")
    fast = _require_dataset(call(fast_pipeline, files, name="fast_pipeline"), "fast_pipeline")
    if not _specs_compatible(fast.element_spec, slow.element_spec):
        raise Wrong(
            f"fast_pipeline yields {fast.element_spec}, but the baseline yields {slow.element_spec}"
        )
    slow_seconds, slow_labels = _epoch_seconds(slow, epochs)
    fast_seconds, fast_labels = _epoch_seconds(fast, epochs)
    if sorted(fast_labels) != sorted(slow_labels):
        raise Wrong(
            f"an epoch of fast_pipeline gave {len(fast_labels)} examples, the baseline "
            f"{len(slow_labels)}; it must produce the same examples, in any order."
        )
    ratio = sum(slow_seconds[1:]) / sum(fast_seconds[1:])
    first = slow_seconds[0] / fast_seconds[0]
    if ratio < min_speedup:
        hint = (
            " Op determinism is on, and it runs stateful map functions (py_function, random ops) "
            "one element at a time: call tfcourse.setup(seed=42, deterministic=False) first."
            if _op_determinism_enabled()
            else " Read shards and map in parallel, cache after the slow read, prefetch."
        )
        raise Wrong(
            f"after the first epoch, fast_pipeline is only {ratio:.1f}x as fast as the baseline; "
            f"the goal is {min_speedup:g}x.{hint}"
        )
    count = len(fast_labels)
    return (
        f"same {count} examples; {ratio:.1f}x the baseline's throughput after the first epoch "
        f"({first:.1f}x in the first)."
    )


def _specs_compatible(spec: Any, reference: Any) -> bool:
    """Same structure, dtypes and (where known) shapes."""
    import tensorflow as tf

    try:
        tf.nest.assert_same_structure(spec, reference)
    except (TypeError, ValueError):
        return False
    pairs = zip(tf.nest.flatten(spec), tf.nest.flatten(reference), strict=True)
    return all(a.is_compatible_with(b) for a, b in pairs)


def _op_determinism_enabled() -> bool:
    # TensorFlow has no public way to ask; this is the function enable_op_determinism sets.
    from tensorflow.python.framework import config as tf_config

    return bool(tf_config.is_op_determinism_enabled())
