"""Self-checks for the exercises of `02_tf_data`."""

from __future__ import annotations

import contextlib
import functools
import re
import time
import types
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from tfcourse.exercises._expect import expect_close, expect_finite, to_numpy
from tfcourse.exercises._framework import Wrong, _describe, check
from tfcourse.exercises._learner import call, take_all
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

    if value is None:
        raise Wrong(f"{name} returned None; did you forget a `return`?")
    if not isinstance(value, tf.data.Dataset):
        raise Wrong(f"{name} should return a tf.data.Dataset, not {type(value).__name__}")
    return value


# 02.1 -------------------------------------------------------------------------------------------
@check("02.1", "a pipeline to a spec")
def check_make_pipeline(make_pipeline: Callable[[np.ndarray, np.ndarray], Any]) -> str:
    """Check `make_pipeline(images, labels)`: shuffled, scaled to [0, 1] float32, batches of 32.

    It follows every example through the pipeline: each output image must be an input image divided
    by 255, still paired with its label, and the whole dataset must be shuffled, with a seed.
    """
    images, labels = mnist_sample(100)
    dataset = _require_dataset(
        call(make_pipeline, images, labels, name="make_pipeline"), "make_pipeline"
    )
    _expect_batch_spec(dataset.element_spec)
    sources = _one_pass(dataset, images, labels)
    again = _require_dataset(
        call(make_pipeline, images, labels, name="make_pipeline"), "make_pipeline"
    )
    if _one_pass(again, images, labels) != sources:
        raise Wrong(
            "two datasets from make_pipeline(...) give the examples in different orders: pass a "
            "seed to shuffle(), so that the pipeline is reproducible."
        )
    return (
        "batches of (32, 28, 28, 1) float32, each image its input / 255 with its own label, "
        "shuffled over the whole dataset with a seed."
    )


def _expect_batch_spec(spec: Any) -> None:
    import tensorflow as tf

    x_spec, y_spec = _pair_spec(spec, "make_pipeline(...)")
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


def _one_pass(dataset: Any, images: np.ndarray, labels: np.ndarray) -> list[int]:
    """Where each example of one pass came from, after checking its pixels and its label."""
    batches = take_all(dataset, name="make_pipeline(...)", limit=len(images) // 32)
    if len(batches) != len(images) // 32:
        raise Wrong(
            f"one pass gave {len(batches)} batches; 100 examples make 3 full batches of 32."
        )
    pixels = np.concatenate([to_numpy(x, name="a batch of images") for x, _ in batches])
    seen = np.concatenate([to_numpy(y, name="a batch of labels") for _, y in batches])
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
    low, high = float(pixels.min()), float(pixels.max())
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
    restored = pixels.astype(np.float64) * 255
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
    return [int(i) for i in found]


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


def _pair_spec(spec: Any, name: str) -> tuple[Any, Any]:
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise Wrong(f"{name} should yield (images, labels) pairs, but its elements are {spec}")
    return spec


# 02.2 -------------------------------------------------------------------------------------------
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
            _expect_features(example)
            writer.write(example.SerializeToString())
    records = [record for record in tf.data.TFRecordDataset(path, compression_type="GZIP")]
    for index, record in enumerate(records):
        pair = call(parse, record, name="parse")
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise Wrong(f"parse should return (image, label), but returned {_describe(pair)}")
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


def _expect_features(example: Any) -> None:
    """One bytes value of 784 raw pixels under "image", one int64 under "label"."""
    features = example.features.feature
    for key, kind in (("image", "bytes_list"), ("label", "int64_list")):
        if key not in features:
            raise Wrong(f"the Example has no feature {key!r}; it has {sorted(features)}")
        if features[key].WhichOneof("kind") != kind:
            raise Wrong(
                f"feature {key!r} should be a {kind}, not a {features[key].WhichOneof('kind')}"
            )
        count = len(getattr(features[key], kind).value)
        if count != 1:
            raise Wrong(f"feature {key!r} holds {count} values; store exactly one.")
    size = len(features["image"].bytes_list.value[0])
    if size != 28 * 28:
        raise Wrong(
            f"the image feature holds {size} bytes, expected 784 (one uint8 per pixel): "
            "store image.tobytes() of the uint8 image."
        )


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
    """Check `bucket_batches(dataset)`: padded batches of at most 32, pad 0, <=10% padding.

    Batches must hold `_MIN_MEAN_BATCH` sequences or more on average: tiny batches (``batch(1)``)
    avoid padding without grouping by length.
    """
    import tensorflow as tf

    sequences = _sequences(2000)
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(sequences), output_signature=tf.TensorSpec([None], tf.int64)
    )
    result = _require_dataset(
        call(bucket_batches, dataset, name="bucket_batches"), "bucket_batches"
    )
    batches = _padded_batches(take_all(result, name="bucket_batches(...)", limit=len(sequences)))
    if any((batch < 0).any() for batch in batches):
        raise Wrong("some batches contain negative values: pad with 0, not -1.")
    _expect_each_sequence_once(batches, sequences)
    mean = len(sequences) / len(batches)
    if mean < _MIN_MEAN_BATCH:
        raise Wrong(
            f"the batches hold {mean:.1f} sequences on average: tiny batches cut padding without "
            f"grouping by length. Batch up to 32 (at least {_MIN_MEAN_BATCH} on average), "
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


_MIN_MEAN_BATCH = 16


def _padded_batches(elements: list[Any]) -> list[np.ndarray]:
    import tensorflow as tf

    batches = []
    for batch in elements:
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
    first epoch's ratio is reported too. The answer must keep every step of the baseline (it may
    not drop the slow read), and may not `cache()` after a random step, which freezes it.
    """
    if epochs < 2:
        raise ValueError(f"epochs must be >= 2 (the first is reported apart); got {epochs}")
    with _spying_on_helpers(baseline, fast_pipeline) as calls:
        fast = _require_dataset(call(fast_pipeline, files, name="fast_pipeline"), "fast_pipeline")
        fast_calls = set(calls)
        calls.clear()
        slow = _require_dataset(call(baseline, files, name="the baseline pipeline"), "the baseline")
    if not _specs_compatible(fast.element_spec, slow.element_spec):
        raise Wrong(
            f"fast_pipeline yields {fast.element_spec}, but the baseline yields {slow.element_spec}"
        )
    skipped = sorted(set(calls) - fast_calls)
    if skipped:
        raise Wrong(
            f"fast_pipeline never calls {skipped[0]}, which the baseline applies to every record: "
            "keep every step, and hide the slow one's cost (parallel calls, cache, prefetch)."
        )
    if _caches_after_random_step(fast):
        raise Wrong(
            "fast_pipeline calls cache() after a random step (a random transform or a shuffle): "
            "every epoch would replay the first epoch's randomness. Cache before the random step."
        )
    fast_seconds, fast_labels, fast_content = _epoch_seconds(fast, epochs, "fast_pipeline(...)")
    slow_seconds, slow_labels, slow_content = _epoch_seconds(slow, epochs, "the baseline's dataset")
    if sorted(fast_labels) != sorted(slow_labels):
        raise Wrong(
            f"an epoch of fast_pipeline gave {len(fast_labels)} examples, the baseline "
            f"{len(slow_labels)}; it must produce the same examples, in any order."
        )
    _expect_same_content(fast_labels, fast_content, slow_labels, slow_content)
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


def _epoch_seconds(
    dataset: Any, epochs: int, name: str
) -> tuple[list[float], list[int], list[Any]]:
    """Seconds for each epoch, and the labels and inputs' content of the first epoch (see
    `_content`)."""
    seconds: list[float] = []
    labels: list[int] = []
    content: list[Any] = []
    for epoch in range(epochs):
        start = time.perf_counter()
        elements = take_all(dataset, name=name)
        seconds.append(time.perf_counter() - start)
        if epoch == 0:
            for element in elements:
                batch = to_numpy(element[1], name=f"the labels of {name}").ravel().tolist()
                labels.extend(batch)
                content.extend(_content(element[0], len(batch), name))
    return seconds, labels, content


#: Exercise 02.4: how far the sorted sums of one label's inputs may move between two runs of the
#: pipeline. Its random crop and flip move the digit, and a crop that cuts a stroke changes a sum:
#: over 6 pairs of runs on the chapter's 512 images, single sums moved up to 5.6%, the sorted
#: sums of a label up to 3.1%.
CONTENT_RTOL = 0.05


def _content(inputs: Any, count: int, name: str) -> list[Any]:
    """What each example's input holds, in a form that random crops and flips keep: the sum of
    its numbers, or its bytes for a string."""
    import tensorflow as tf

    first = tf.nest.flatten(inputs)[0]  # the first feature, for inputs that are a dict or tuple
    numpy = getattr(first, "numpy", None)
    array = np.asarray(numpy() if callable(numpy) else first)
    if array.dtype.kind in "SUO":  # strings (records): compared as they are
        return list(array.ravel())
    numbers = to_numpy(array, name=f"the inputs of {name}").astype(np.float64)
    return numbers.reshape(count, -1).sum(axis=1).tolist()


def _expect_same_content(
    fast_labels: list[int], fast: list[Any], slow_labels: list[int], slow: list[Any]
) -> None:
    """Per label, the two epochs' inputs must be the same, up to order and random augmentation."""
    for label in sorted(set(slow_labels)):
        mine = sorted(v for lab, v in zip(fast_labels, fast, strict=True) if lab == label)
        theirs = sorted(v for lab, v in zip(slow_labels, slow, strict=True) if lab == label)
        if theirs and isinstance(theirs[0], float):
            same = np.allclose(mine, theirs, rtol=CONTENT_RTOL, atol=1e-6) if mine else False
        else:
            same = mine == theirs
        if not same:
            raise Wrong(
                f"the examples labelled {label} hold other inputs than the baseline's (compared "
                "by their sums, which the random crop and flip keep): keep the same steps on the "
                "same records, each input with its own label (map one record to its pair, don't "
                "zip two datasets)."
            )


@contextlib.contextmanager
def _spying_on_helpers(baseline: Any, answer: Any) -> Iterator[set[str]]:
    """Note which of the baseline's helper functions get called while the block runs.

    Each plain function the baseline names (``slow_read``, ``transform``) is swapped, in the
    module namespaces of the baseline and the answer, for a wrapper that notes its name. tf.data
    traces map functions when a pipeline is built, so building one calls each helper it uses,
    once. Comparing the names seen while building each pipeline tells whether the answer dropped
    a step, whatever its own helpers and lambdas are called.
    """
    calls: set[str] = set()
    home = getattr(baseline, "__globals__", {})
    helpers = {
        name: home[name]
        for name in _global_names(getattr(baseline, "__code__", None))
        if isinstance(home.get(name), types.FunctionType) and home[name] is not baseline
    }
    spaces = [home, *[ns for ns in [getattr(answer, "__globals__", home)] if ns is not home]]
    swapped = [(ns, name) for ns in spaces for name, fn in helpers.items() if ns.get(name) is fn]
    for ns, name in swapped:
        ns[name] = _noting(helpers[name], name, calls)
    try:
        yield calls
    finally:
        for ns, name in swapped:
            ns[name] = helpers[name]


def _noting(fn: Callable[..., Any], name: str, calls: set[str]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def noted(*args: Any, **kwargs: Any) -> Any:
        calls.add(name)
        return fn(*args, **kwargs)

    return noted


def _global_names(code: Any) -> set[str]:
    """The global names a code object and the functions nested in it refer to."""
    if code is None:
        return set()
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


_RANDOM_OPS = re.compile(
    r"^(Random|StatefulUniform|StatefulStandardNormal|StatefulTruncatedNormal|"
    r"TruncatedNormal$|Multinomial$|ParameterizedTruncatedNormal$|RngReadAndSkip$|ShuffleDataset|"
    r"ShuffleAndRepeatDataset)"
)


def _caches_after_random_step(dataset: Any) -> bool:
    """Whether the pipeline's graph has a cache downstream of a random op or a shuffle."""
    try:
        nodes, functions = _dataset_graph(dataset)
    except Exception:  # an unusual pipeline the graph cannot be read from: give it the benefit
        return False
    for node in nodes.values():
        if node.op.startswith("CacheDataset") and _random_upstream(node, nodes, functions):
            return True
    return False


def _dataset_graph(dataset: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    import tensorflow as tf
    from tensorflow.core.framework import graph_pb2

    graph = graph_pb2.GraphDef()
    policy = tf.data.experimental.ExternalStatePolicy.IGNORE
    # tf.data has no public way to list a pipeline's steps; this is what tf.data.experimental.save
    # and distribution use to copy one.
    graph.ParseFromString(dataset._as_serialized_graph(external_state_policy=policy).numpy())
    functions = {function.signature.name: function for function in graph.library.function}
    return {node.name: node for node in graph.node}, functions


def _random_upstream(node: Any, nodes: dict[str, Any], functions: dict[str, Any]) -> bool:
    seen, todo = set(), [name.split(":")[0].lstrip("^") for name in node.input]
    while todo:
        name = todo.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        upstream = nodes[name]
        if _is_random(upstream, functions, set()):
            return True
        todo.extend(i.split(":")[0].lstrip("^") for i in upstream.input)
    return False


def _is_random(node: Any, functions: dict[str, Any], visited: set[str]) -> bool:
    """Whether a node is a random op or calls a function that (eventually) runs one."""
    if _RANDOM_OPS.match(node.op):
        return True
    for value in node.attr.values():
        name = value.func.name
        if name and name in functions and name not in visited:
            visited.add(name)
            if any(_is_random(inner, functions, visited) for inner in functions[name].node_def):
                return True
    return False


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
