"""Judges of chapter 02's checks (probes in `tfcourse.exercises.ch02`)."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from tfcourse.exercises._expect import expect_close, expect_finite
from tfcourse.exercises._framework import Wrong
from tfcourse.exercises._samples import mnist_sample
from tfcourse.exercises.ch02 import (
    BUCKET_SEQUENCES,
    PADDING_TARGET,
    PIPELINE_BATCH,
    PIPELINE_EXAMPLES,
    ROUND_TRIP_EXAMPLES,
    _caches_after_random_step,
    _sequences,
    _specs_compatible,
    padding_fraction,
)
from tfcourse.exercises.judges._observed import _MALFORMED, array, field, items, settled

#: 02.3: the fewest sequences a batch may hold on average: tiny batches (``batch(1)``) avoid
#: padding without grouping by length.
MIN_MEAN_BATCH = 16
#: 02.4: how many times the baseline's throughput, after the first epoch, a fast pipeline reaches.
MIN_SPEEDUP = 3.0
#: Exercise 02.4: how far the sorted sums of one label's inputs may move between two runs of the
#: pipeline. Its random crop and flip move the digit, and a crop that cuts a stroke changes a sum:
#: over 6 pairs of runs on the chapter's 512 images, single sums moved up to 5.6%, the sorted
#: sums of a label up to 3.1%.
CONTENT_RTOL = 0.05

_NONE = type(None)


def _malformed(what: str) -> Wrong:
    return Wrong(_MALFORMED.format(what))


# 02.1 -------------------------------------------------------------------------------------------
def make_pipeline(observed: Any, seed: int) -> str:
    """02.1: batches of (32, 28, 28, 1) float32 and int64, each image its input / 255 with its own
    label, shuffled over the whole dataset, the same way for two datasets."""
    images, labels = mnist_sample(PIPELINE_EXAMPLES)
    _expect_batch_spec(field(observed, "spec", dict))
    sources = _one_pass(field(observed, "first"), images, labels)
    if _one_pass(field(observed, "second"), images, labels) != sources:
        raise Wrong(
            "two datasets from make_pipeline(...) give the examples in different orders: pass a "
            "seed to shuffle(), so that the pipeline is reproducible."
        )
    return (
        "batches of (32, 28, 28, 1) float32, each image its input / 255 with its own label, "
        "shuffled over the whole dataset with a seed."
    )


def _expect_batch_spec(spec: dict[str, Any]) -> None:
    text = field(spec, "text", str)
    pair = field(spec, "pair", (list, _NONE))
    if pair is None:
        raise Wrong(
            f"make_pipeline(...) should yield (images, labels) pairs, but its elements are {text}"
        )
    (x_dims, x_dtype), (y_dims, y_dtype) = (_tensor(part) for part in items(pair, 2, kind=dict))
    x_shape, y_shape = _shape_text(x_dims), _shape_text(y_dims)
    if x_dims is None or len(x_dims) != 4:
        raise Wrong(
            f"its images have shape {x_shape}; batch them: expected (32, 28, 28, 1) per batch."
        )
    if x_dims[0] is None:
        raise Wrong("its batch size is unknown (None): pass drop_remainder=True to batch().")
    if x_dims != [PIPELINE_BATCH, 28, 28, 1] or y_dims != [PIPELINE_BATCH]:
        raise Wrong(
            f"its batches have shapes {x_shape} and {y_shape}, expected (32, 28, 28, 1) and (32,)"
        )
    if x_dtype != "float32" or y_dtype != "int64":
        raise Wrong(f"its dtypes are {x_dtype} and {y_dtype}, expected float32 and int64")


def _tensor(facts: dict[str, Any]) -> tuple[list[int | None] | None, str]:
    """A spec's sizes (None for an unknown rank) and its dtype's name."""
    shape = field(facts, "shape", (list, _NONE))
    dims = None if shape is None else items(shape, kind=(int, _NONE))
    if dims is not None and any(isinstance(d, bool) or (d is not None and d < 0) for d in dims):
        raise _malformed("a shape with impossible sizes")
    return dims, field(facts, "dtype", str)


def _shape_text(dims: list[int | None] | None) -> str:
    """Sizes as TensorFlow writes a shape: ``(None, 28, 28, 1)``, or ``<unknown>``."""
    import tensorflow as tf

    return str(tf.TensorShape(dims))


def _one_pass(observed: Any, images: np.ndarray, labels: np.ndarray) -> list[int]:
    """Where each example of one pass came from, after checking its pixels and its label."""
    one = settled(observed)
    count = field(one, "batches", int)
    full = PIPELINE_EXAMPLES // PIPELINE_BATCH
    if count != full:
        raise Wrong(
            f"one pass gave {count} batches; {PIPELINE_EXAMPLES} examples make {full} full "
            f"batches of {PIPELINE_BATCH}."
        )
    data = field(one, "data", dict)
    pixels, seen = array(field(data, "pixels")), array(field(data, "labels"))
    examples = full * PIPELINE_BATCH
    if pixels.shape != (examples, 28, 28, 1) or seen.shape != (examples,):
        raise _malformed("images or labels of the wrong shape")
    _expect_scaled(pixels)
    sources = _sources(pixels, images)
    mismatched = int((labels[sources] != seen).sum())
    if mismatched:
        raise Wrong(
            f"{mismatched} of {len(seen)} images come with another image's label: shuffle "
            "(image, label) pairs together, in one dataset, never images and labels apart."
        )
    _expect_shuffled(sources)
    return sources


def _expect_scaled(pixels: np.ndarray) -> None:
    expect_finite(pixels, name="its images")
    low, high = float(pixels.real.min()), float(pixels.real.max())
    if low == high:
        raise Wrong(
            f"every pixel of every image is {low:g}: scale the input images, don't replace them."
        )
    if low < 0:
        raise Wrong(f"its pixels go down to {low:g}: scale to [0, 1] (divide by 255), not [-1, 1].")
    if high > 1.0:
        raise Wrong(f"its pixels go up to {high:g}: divide by 255 to scale them to [0, 1].")
    if high <= 1.5 / 255:
        raise Wrong(f"its pixels only go up to {high:.2g}: you divided by 255 twice; divide once.")


def _sources(pixels: np.ndarray, images: np.ndarray) -> list[int]:
    """The index of the input image each output image is, divided by 255."""
    with np.errstate(all="ignore"):  # forged huge values overflow; they fail just below
        restored = pixels.real.astype(np.float64) * 255
    if not np.allclose(restored, np.rint(restored), atol=0.01):
        raise Wrong("its images are not the input images divided by 255: divide by 255 only.")
    index = {image.tobytes(): i for i, image in enumerate(images)}
    keys = np.rint(restored).astype(np.uint8)
    found = [index.get(key.tobytes()) for key in keys]
    if None in found:
        if all(index.get(key.transpose(1, 0, 2).tobytes()) is not None for key in keys):
            raise Wrong("its images are transposed (rows and columns swapped): keep their layout.")
        raise Wrong(
            f"{found.count(None)} of {len(found)} images are not any input image divided by 255: "
            "change only the scale (cast to float32, divide by 255)."
        )
    if len(set(found)) != len(found):
        raise Wrong("some examples appear twice in one pass: read each example once per epoch.")
    return [int(i) for i in found if i is not None]


def _expect_shuffled(sources: list[int]) -> None:
    if sources == sorted(sources):
        raise Wrong("the examples come out in their original order: shuffle before batching.")
    blocks = [sorted(sources[s : s + 32]) for s in range(0, len(sources), 32)]
    if all(
        block == list(range(block[0], block[0] + 32)) and block[0] % 32 == 0 for block in blocks
    ):
        raise Wrong(
            "whole batches are kept together: you shuffled batches, not examples. Shuffle first."
        )
    order = float(np.corrcoef(np.arange(len(sources)), sources)[0, 1])
    if order > 0.5:
        raise Wrong(
            f"the examples are barely shuffled (order kept with correlation {order:.2f}): a small "
            "shuffle buffer only swaps neighbours. Use a buffer as large as the dataset."
        )


# 02.2 -------------------------------------------------------------------------------------------
def example_round_trip(observed: Any, seed: int) -> str:
    """02.2: each Example holds the raw image and the label; parse gives both back unchanged."""
    images, labels = mnist_sample(ROUND_TRIP_EXAMPLES)
    examples = items(field(observed, "examples", list))
    for example in examples:
        _expect_features(settled(example))
    if len(examples) != ROUND_TRIP_EXAMPLES:
        raise _malformed(f"expected {ROUND_TRIP_EXAMPLES} examples")
    records = items(field(observed, "records", list))
    for index, record in enumerate(records):
        one = settled(record)
        got = array(field(one, "image"))
        if got.shape != (28, 28, 1):
            raise Wrong(f"the parsed image has shape {got.shape}; tf.reshape it to (28, 28, 1).")
        if got.dtype != np.uint8:
            raise Wrong(
                f"the parsed image has dtype {got.dtype}; "
                "decode it with tf.io.decode_raw(..., tf.uint8)."
            )
        expect_close(got, images[index], name=f"parsed image {index}")
        expect_close(array(field(one, "label")), labels[index], name=f"parsed label {index}")
    if len(records) != ROUND_TRIP_EXAMPLES:
        raise _malformed(f"expected {ROUND_TRIP_EXAMPLES} records")
    return "20 images and labels written to a GZIP TFRecord file and read back identical."


def _expect_features(facts: Any) -> None:
    """One bytes value of 784 raw pixels under "image", one int64 under "label"."""
    keys = items(field(facts, "keys", list), kind=str)
    for key, kind in (("image", "bytes_list"), ("label", "int64_list")):
        if key not in keys:
            raise Wrong(f"the Example has no feature {key!r}; it has {keys}")
        feature = field(facts, key, dict)
        got = field(feature, "kind", (str, _NONE))
        if got != kind:
            raise Wrong(f"feature {key!r} should be a {kind}, not a {got}")
        count = field(feature, "count", int)
        if count != 1:
            raise Wrong(f"feature {key!r} holds {count} values; store exactly one.")
    size = items(field(field(facts, "image", dict), "sizes", list), 1, kind=int)[0]
    if size != 28 * 28:
        raise Wrong(
            f"the image feature holds {size} bytes, expected 784 (one uint8 per pixel): "
            "store image.tobytes() of the uint8 image."
        )


# 02.3 -------------------------------------------------------------------------------------------
def bucket_batches(observed: Any, seed: int) -> str:
    """02.3: every sequence once, unchanged, padded with 0, in batches of at most 32 that hold
    `MIN_MEAN_BATCH` or more on average, with at most `PADDING_TARGET` padding."""
    sequences = _sequences(BUCKET_SEQUENCES)
    batches = _padded_batches(items(observed))
    if any((batch < 0).any() for batch in batches):
        raise Wrong("some batches contain negative values: pad with 0, not -1.")
    _expect_each_sequence_once(batches, sequences)
    mean = len(sequences) / len(batches)
    if mean < MIN_MEAN_BATCH:
        raise Wrong(
            f"the batches hold {mean:.1f} sequences on average: tiny batches cut padding without "
            f"grouping by length. Batch up to 32 (at least {MIN_MEAN_BATCH} on average), "
            "grouped by length: tf.data.Dataset.bucket_by_sequence_length."
        )
    fraction = padding_fraction(batches)
    if fraction > PADDING_TARGET:
        raise Wrong(
            f"{fraction:.1%} of the entries are padding; the target is {PADDING_TARGET:.0%}. "
            "Group sequences of similar length: tf.data.Dataset.bucket_by_sequence_length."
        )
    target = f"{PADDING_TARGET:.0%}"
    return (
        f"all 2,000 sequences, batches of <= 32 ({mean:.1f} on average), {fraction:.1%} padding "
        f"(target {target})."
    )


def _padded_batches(elements: list[Any]) -> list[np.ndarray]:
    batches = []
    for element in elements:
        batch = array(element)
        if batch.ndim != 2:
            raise Wrong(
                f"each batch should be 2-D (sequences, length), but one has shape {batch.shape}"
            )
        if len(batch) > 32:
            raise Wrong(f"a batch holds {len(batch)} sequences; the limit is 32.")
        batches.append(batch.real)
    if not batches:
        raise Wrong("bucket_batches(...) gave no batches at all.")
    return batches


def _expect_each_sequence_once(batches: list[np.ndarray], sequences: list[np.ndarray]) -> None:
    found = Counter(tuple(row[row != 0].tolist()) for batch in batches for row in batch)
    expected = Counter(tuple(sequence.tolist()) for sequence in sequences)
    if found == expected:
        return
    count = sum(len(batch) for batch in batches)
    if count != len(sequences):
        raise Wrong(
            f"the batches hold {count:,} sequences, but the dataset has {len(sequences):,}: "
            "every sequence must appear exactly once (check take, repeat and drop_remainder)."
        )
    changed = sum((expected - found).values())
    raise Wrong(
        f"the batches hold {count:,} sequences, as many as the dataset, but {changed:,} of them "
        "come out changed: keep each sequence whole (no truncation) and pad only with 0."
    )


# 02.4 -------------------------------------------------------------------------------------------
def fast_pipeline(observed: Any, seed: int) -> str:
    """02.4: the baseline's steps and examples, at least `MIN_SPEEDUP` times its throughput after
    the first epoch, and no cache after a random step."""
    fast_spec, slow_spec = _spec(field(observed, "fast_spec")), _spec(field(observed, "slow_spec"))
    if not _specs_compatible(fast_spec, slow_spec):
        raise Wrong(
            f"fast_pipeline yields {fast_spec['text']}, but the baseline yields {slow_spec['text']}"
        )
    fast_calls = items(field(observed, "fast_calls", list), kind=str)
    skipped = sorted(set(items(field(observed, "slow_calls", list), kind=str)) - set(fast_calls))
    if skipped:
        raise Wrong(
            f"fast_pipeline never calls {skipped[0]}, which the baseline applies to every record: "
            "keep every step, and hide the slow one's cost (parallel calls, cache, prefetch)."
        )
    if _caches_after_random_step(_graph(field(observed, "graph", (dict, _NONE)))):
        raise Wrong(
            "fast_pipeline calls cache() after a random step (a random transform or a shuffle): "
            "every epoch would replay the first epoch's randomness. Cache before the random step."
        )
    fast_seconds, fast_labels, fast_content = _epochs(field(observed, "fast"))
    slow_seconds, slow_labels, slow_content = _epochs(field(observed, "slow"))
    if len(fast_seconds) != len(slow_seconds):
        raise _malformed("as many epochs of each pipeline")
    if sorted(fast_labels) != sorted(slow_labels):
        raise Wrong(
            f"an epoch of fast_pipeline gave {len(fast_labels)} examples, the baseline "
            f"{len(slow_labels)}; it must produce the same examples, in any order."
        )
    _expect_same_content(fast_labels, fast_content, slow_labels, slow_content)
    goal = max(float(field(observed, "min_speedup", (int, float))), MIN_SPEEDUP)
    if not all(math.isfinite(t) and t > 0 for t in [*slow_seconds, *fast_seconds, goal]):
        raise Wrong(_MALFORMED.format("timings that are not positive, finite seconds"))
    ratio = sum(slow_seconds[1:]) / sum(fast_seconds[1:])
    first = slow_seconds[0] / fast_seconds[0]
    if ratio < goal:
        hint = (
            " Op determinism is on, and it runs stateful map functions (py_function, random ops) "
            "one element at a time: call tfcourse.setup(seed=42, deterministic=False) first."
            if field(observed, "deterministic", bool)
            else " Read shards and map in parallel, cache after the slow read, prefetch."
        )
        raise Wrong(
            f"after the first epoch, fast_pipeline is only {ratio:.1f}x as fast as the baseline; "
            f"the goal is {goal:g}x.{hint}"
        )
    count = len(fast_labels)
    return (
        f"same {count} examples; {ratio:.1f}x the baseline's throughput after the first epoch "
        f"({first:.1f}x in the first)."
    )


def _spec(observed: Any) -> dict[str, Any]:
    """An element spec's facts, as `_specs_compatible` reads them, checked."""
    leaves = []
    for leaf in items(field(observed, "leaves", list), kind=dict):
        shape = field(leaf, "shape", (list, _NONE))
        leaves.append(
            {
                "type": field(leaf, "type", str),
                "dtype": field(leaf, "dtype", str),
                "shape": None if shape is None else items(shape, kind=(int, _NONE)),
            }
        )
    return {
        "text": field(observed, "text", str),
        "structure": field(observed, "structure", str),
        "leaves": leaves,
    }


def _graph(observed: dict[str, Any] | None) -> dict[str, Any] | None:
    """A pipeline's graph facts, as `_caches_after_random_step` reads them, checked."""
    if observed is None:
        return None
    nodes = [
        {
            "name": field(node, "name", str),
            "op": field(node, "op", str),
            "inputs": items(field(node, "inputs", list), kind=str),
            "calls": items(field(node, "calls", list), kind=str),
        }
        for node in items(field(observed, "nodes", list), kind=dict)
    ]
    functions = {
        name: [
            {"op": field(inner, "op", str), "calls": items(field(inner, "calls", list), kind=str)}
            for inner in items(body, kind=dict)
        ]
        for name, body in field(observed, "functions", dict).items()
    }
    return {"nodes": nodes, "functions": functions}


def _epochs(observed: Any) -> tuple[list[float], list[Any], list[Any]]:
    """Seconds of each epoch, and the labels and inputs' content of the first."""
    seconds = [float(s) for s in items(field(observed, "seconds", list), kind=(int, float))]
    if len(seconds) < 2 or not all(math.isfinite(s) and s > 0 for s in seconds):
        raise _malformed("the seconds of two or more epochs")
    labels = array(field(observed, "labels"))
    if labels.ndim != 1:
        raise _malformed("labels in one dimension")
    content = field(observed, "content", dict)
    if "numbers" in content:
        values: list[Any] = [float(v) for v in array(field(content, "numbers")).real.ravel()]
    else:
        values = items(field(content, "strings", list), kind=str)
    if len(values) != len(labels):
        raise _malformed("one input for each label")
    return seconds, labels.tolist(), values


def _expect_same_content(
    fast_labels: list[Any], fast: list[Any], slow_labels: list[Any], slow: list[Any]
) -> None:
    """Per label, the two epochs' inputs must be the same, up to order and random augmentation."""
    for label in sorted(set(slow_labels)):
        mine = sorted(v for lab, v in zip(fast_labels, fast, strict=True) if lab == label)
        theirs = sorted(v for lab, v in zip(slow_labels, slow, strict=True) if lab == label)
        if theirs and isinstance(theirs[0], float):
            numbers = mine and all(isinstance(v, float) for v in mine)
            same = bool(numbers) and np.allclose(mine, theirs, rtol=CONTENT_RTOL, atol=1e-6)
        else:
            same = mine == theirs
        if not same:
            raise Wrong(
                f"the examples labelled {label} hold other inputs than the baseline's (compared "
                "by their sums, which the random crop and flip keep): keep the same steps on the "
                "same records, each input with its own label (map one record to its pair, don't "
                "zip two datasets)."
            )
