"""Self-checks for the exercises of `02_tf_data`: the probes.

Each check is in two parts (see `tfcourse.exercises._split`): the probe here runs the learner's
answer and returns what it saw; the judge, in `tfcourse.exercises.judges.ch02`, decides.
"""

from __future__ import annotations

import contextlib
import functools
import re
import time
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from tfcourse.exercises._expect import to_numpy
from tfcourse.exercises._framework import Wrong, _describe
from tfcourse.exercises._learner import call, take_all
from tfcourse.exercises._samples import mnist_sample
from tfcourse.exercises._split import deferred, failed, two_part

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
#: 02.1's examples (the first of mnist5k's validation split), and the size of its batches.
PIPELINE_EXAMPLES, PIPELINE_BATCH = 100, 32
#: 02.2's examples, written to a TFRecord file and read back.
ROUND_TRIP_EXAMPLES = 20
#: 02.3's sequences (see `_sequences`).
BUCKET_SEQUENCES = 2000


def _require_dataset(value: Any, name: str) -> Any:
    import tensorflow as tf

    if value is None:
        raise Wrong(f"{name} returned None; did you forget a `return`?")
    if not isinstance(value, tf.data.Dataset):
        raise Wrong(f"{name} should return a tf.data.Dataset, not {type(value).__name__}")
    return value


# 02.1 -------------------------------------------------------------------------------------------
@two_part("02.1", "a pipeline to a spec")
def check_make_pipeline(
    make_pipeline: Callable[[np.ndarray, np.ndarray], Any], seed: int
) -> dict[str, Any]:
    """Check `make_pipeline(images, labels)`: shuffled, scaled to [0, 1] float32, batches of 32.

    It follows every example through the pipeline: each output image must be an input image divided
    by 255, still paired with its label, and the whole dataset must be shuffled, with a seed.
    Observes the element spec, then one pass of each of two datasets from `make_pipeline`.
    """
    images, labels = mnist_sample(PIPELINE_EXAMPLES)
    dataset = _require_dataset(
        call(make_pipeline, images, labels, name="make_pipeline"), "make_pipeline"
    )
    observed = {"spec": _pair_spec_facts(dataset.element_spec)}
    observed["first"] = deferred(lambda: _one_pass(dataset))
    if not failed(observed["first"]):
        observed["second"] = deferred(
            lambda: _one_pass(
                _require_dataset(
                    call(make_pipeline, images, labels, name="make_pipeline"), "make_pipeline"
                )
            )
        )
    return observed


def _pair_spec_facts(spec: Any) -> dict[str, Any]:
    """The element spec as text, and the shape and dtype of each part when it is a pair."""
    pair = isinstance(spec, tuple) and len(spec) == 2
    return {"text": str(spec), "pair": [_tensor_facts(part) for part in spec] if pair else None}


def _tensor_facts(spec: Any) -> dict[str, Any]:
    """A spec's shape (a list with None for unknown sizes; None for an unknown rank) and dtype."""
    shape: Any = getattr(spec, "shape", None)
    dims = None if getattr(shape, "rank", None) is None else shape.as_list()
    dtype = getattr(spec, "dtype", None)
    return {"shape": dims, "dtype": getattr(dtype, "name", str(dtype))}


def _one_pass(dataset: Any) -> dict[str, Any]:
    """How many batches one pass gives, and their images and labels, concatenated."""
    batches = take_all(
        dataset, name="make_pipeline(...)", limit=PIPELINE_EXAMPLES // PIPELINE_BATCH
    )
    return {"batches": len(batches), "data": deferred(lambda: _pass_data(batches))}


def _pass_data(batches: list[Any]) -> dict[str, np.ndarray]:
    pairs = [_pair(element) for element in batches]
    pixels = _concatenated([to_numpy(x, name="a batch of images") for x, _ in pairs])
    seen = _concatenated([to_numpy(y, name="a batch of labels") for _, y in pairs])
    return {"pixels": pixels, "labels": seen}


def _pair(element: Any) -> tuple[Any, Any]:
    if not (isinstance(element, (tuple, list)) and len(element) == 2):
        raise Wrong(
            f"make_pipeline(...) should yield (images, labels) pairs, not {_describe(element)}"
        )
    return element[0], element[1]


def _concatenated(arrays: list[np.ndarray]) -> np.ndarray:
    if not arrays:
        return np.zeros((0,), np.float32)
    try:
        return np.concatenate(arrays)
    except ValueError as error:
        raise Wrong(f"its batches do not stack into one array ({error})") from None


# 02.2 -------------------------------------------------------------------------------------------
@two_part("02.2", "a TFRecord round trip")
def check_example_round_trip(
    to_example: Callable[[np.ndarray, int], Any],
    parse: Callable[[Any], Any],
    *,
    folder: str,
    seed: int,
) -> dict[str, Any]:
    """Check `to_example(image, label)` and `parse(serialized)` through a real TFRecord file.

    Called as ``check_example_round_trip(to_example, parse, folder=...)``. Observes the features
    of each Example, then, once all are made, what `parse` gives for each record of the file.
    """
    import tensorflow as tf

    images, labels = mnist_sample(ROUND_TRIP_EXAMPLES)
    serialized: list[bytes] = []

    def made(image: np.ndarray, label: int) -> dict[str, Any]:
        example = call(to_example, image, label, name="to_example")
        if not isinstance(example, tf.train.Example):
            raise Wrong(
                f"to_example should return a tf.train.Example, not {type(example).__name__}"
            )
        serialized.append(example.SerializeToString())
        return _feature_facts(example)

    examples: list[Any] = []
    for image, label in zip(images, labels, strict=True):
        examples.append(deferred(lambda i=image, n=int(label): made(i, n)))
        if failed(examples[-1]):
            return {"examples": examples, "records": None}
    path = f"{folder}/check.tfrecord.gz"
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for record in serialized:
            writer.write(record)
    records: list[Any] = []
    for record in tf.data.TFRecordDataset(path, compression_type="GZIP"):
        records.append(deferred(lambda r=record: _parsed(parse, r)))
        if failed(records[-1]):
            break
    return {"examples": examples, "records": records}


def _feature_facts(example: Any) -> dict[str, Any]:
    """The Example's feature names; the kind, count and (for bytes) sizes of "image" and "label"."""
    features = example.features.feature
    facts: dict[str, Any] = {"keys": sorted(features)}
    for key in ("image", "label"):
        if key in features:
            kind = features[key].WhichOneof("kind")
            values = list(getattr(features[key], kind).value) if kind else []
            sizes = [len(value) for value in values] if kind == "bytes_list" else []
            facts[key] = {"kind": kind, "count": len(values), "sizes": sizes}
    return facts


def _parsed(parse: Callable[[Any], Any], record: Any) -> dict[str, Any]:
    pair = call(parse, record, name="parse")
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
        raise Wrong(f"parse should return (image, label), but returned {_describe(pair)}")
    image, label = pair
    return {
        "image": deferred(lambda: to_numpy(image, name="the parsed image")),
        "label": deferred(lambda: to_numpy(label, name="the parsed label")),
    }


# 02.3 -------------------------------------------------------------------------------------------
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
    """`count` texts of the numwords validation split, as sequences of character codes."""
    from tfcourse import data

    texts = data.load_numpy("numwords", "validation")["text"]
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(texts), size=count, replace=False)
    return [np.array([ord(ch) for ch in texts[i]], dtype=np.int64) for i in chosen]


@two_part("02.3", "pad and bucket")
def check_bucket_batches(bucket_batches: Callable[[Any], Any], seed: int) -> list[Any]:
    """Check `bucket_batches(dataset)`: padded batches of at most 32, pad 0, little padding.

    Observes each batch of one pass, as an array (up to the first that is ragged or not numbers).
    """
    import tensorflow as tf

    sequences = _sequences(BUCKET_SEQUENCES)
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(sequences), output_signature=tf.TensorSpec([None], tf.int64)
    )
    result = _require_dataset(
        call(bucket_batches, dataset, name="bucket_batches"), "bucket_batches"
    )
    batches: list[Any] = []
    for element in take_all(result, name="bucket_batches(...)", limit=len(sequences)):
        batches.append(deferred(lambda e=element: _batch(e)))
        if failed(batches[-1]):
            break
    return batches


def _batch(element: Any) -> np.ndarray:
    import tensorflow as tf

    if isinstance(element, tf.RaggedTensor):
        raise Wrong("the batches are ragged: pad them into dense tensors with padded_batch.")
    return to_numpy(element, name="a batch")


# 02.4 -------------------------------------------------------------------------------------------
@two_part("02.4", "find and fix the bottleneck")
def check_fast_pipeline(
    fast_pipeline: Callable[[Sequence[str]], Any],
    *,
    baseline: Callable[[Sequence[str]], Any],
    files: Sequence[str],
    min_speedup: float = 3.0,
    epochs: int = 3,
    seed: int,
) -> dict[str, Any]:
    """Check `fast_pipeline(files)`: the elements of `baseline(files)`, `min_speedup` x faster.

    Speed is compared over the epochs after the first, the steady state of a long training run; the
    first epoch's ratio is reported too. The answer must keep every step of the baseline (it may
    not drop the slow read), and may not `cache()` after a random step, which freezes it.

    Observes both pipelines' element specs, the baseline's helpers each one calls while it is
    built, the steps of the answer's pipeline, whether op determinism is on, and, unless those
    already fail it, the seconds of each epoch of both and the labels and inputs of the first.
    """
    if epochs < 2:
        raise ValueError(f"epochs must be >= 2 (the first is reported apart); got {epochs}")
    with _spying_on_helpers(baseline, fast_pipeline) as calls:
        fast = _require_dataset(call(fast_pipeline, files, name="fast_pipeline"), "fast_pipeline")
        fast_calls = sorted(calls)
        calls.clear()
        slow = _require_dataset(call(baseline, files, name="the baseline pipeline"), "the baseline")
        slow_calls = sorted(calls)
    observed: dict[str, Any] = {
        "fast_spec": _spec_facts(fast.element_spec),
        "slow_spec": _spec_facts(slow.element_spec),
        "fast_calls": fast_calls,
        "slow_calls": slow_calls,
        "graph": _graph_facts(fast),
        "deterministic": _op_determinism_enabled(),
        "min_speedup": float(min_speedup),
    }
    if not _specs_compatible(observed["fast_spec"], observed["slow_spec"]) or (
        set(slow_calls) - set(fast_calls) or _caches_after_random_step(observed["graph"])
    ):
        return observed  # its judge fails it on these; timing it would only cost the learner time
    observed["fast"] = _epochs(fast, epochs, "fast_pipeline(...)")
    observed["slow"] = _epochs(slow, epochs, "the baseline's dataset")
    return observed


def _epochs(dataset: Any, epochs: int, name: str) -> dict[str, Any]:
    """Seconds for each epoch, and the labels and inputs' content of the first epoch (see
    `_content`)."""
    seconds: list[float] = []
    labels: list[np.ndarray] = []
    content: list[Any] = []
    for epoch in range(epochs):
        start = time.perf_counter()
        elements = take_all(dataset, name=name)
        seconds.append(time.perf_counter() - start)
        if epoch == 0:
            for element in elements:
                batch = to_numpy(element[1], name=f"the labels of {name}").ravel()
                labels.append(batch)
                content.extend(_content(element[0], len(batch), name))
    numbers = all(isinstance(value, float) for value in content)
    return {
        "seconds": seconds,
        "labels": np.concatenate(labels) if labels else np.zeros((0,), np.int64),
        "content": {"numbers": np.asarray(content, np.float64)}
        if numbers
        else {"strings": [repr(value) for value in content]},
    }


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
    return [float(total) for total in numbers.reshape(count, -1).sum(axis=1)]


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


def _spec_facts(spec: Any) -> dict[str, Any]:
    """An element spec as plain data: its text, its nesting, and each leaf's type, dtype, shape."""
    import tensorflow as tf

    leaves = [
        {"type": type(leaf).__name__, **_tensor_facts(leaf)} for leaf in tf.nest.flatten(spec)
    ]
    return {"text": str(spec), "structure": _structure(spec), "leaves": leaves}


def _structure(value: Any) -> str:
    """The nesting of a spec, with its leaves as ``*``: the same for two specs that tf.nest calls
    the same structure (dict keys in any order)."""
    if isinstance(value, Mapping):
        inner = ", ".join(f"{key!r}: {_structure(value[key])}" for key in sorted(value, key=repr))
        return f"{type(value).__name__}{{{inner}}}"
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__}({', '.join(_structure(item) for item in value)})"
    return "*"


def _specs_compatible(spec: dict[str, Any], reference: dict[str, Any]) -> bool:
    """Same structure, kinds of spec, dtypes and (where known) shapes, from `_spec_facts`."""
    if spec["structure"] != reference["structure"] or len(spec["leaves"]) != len(
        reference["leaves"]
    ):
        return False
    return all(
        a["type"] == b["type"] and a["dtype"] == b["dtype"] and _shapes_compatible(a, b)
        for a, b in zip(spec["leaves"], reference["leaves"], strict=True)
    )


def _shapes_compatible(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a["shape"] is None or b["shape"] is None:
        return True
    return len(a["shape"]) == len(b["shape"]) and all(
        x is None or y is None or x == y for x, y in zip(a["shape"], b["shape"], strict=True)
    )


def _graph_facts(dataset: Any) -> dict[str, Any] | None:
    """The steps of a pipeline's graph: each node's name, op, inputs and the functions it calls,
    and each function's ops and the functions they call. None when the graph cannot be read."""
    try:
        nodes, functions = _dataset_graph(dataset)
    except Exception:  # an unusual pipeline the graph cannot be read from: give it the benefit
        return None
    return {
        "nodes": [
            {"name": n.name, "op": n.op, "inputs": list(n.input), "calls": _called(n)}
            for n in nodes.values()
        ],
        "functions": {
            name: [{"op": inner.op, "calls": _called(inner)} for inner in function.node_def]
            for name, function in functions.items()
        },
    }


def _called(node: Any) -> list[str]:
    return [value.func.name for value in node.attr.values() if value.func.name]


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


_RANDOM_OPS = re.compile(
    r"^(Random|StatefulUniform|StatefulStandardNormal|StatefulTruncatedNormal|"
    r"TruncatedNormal$|Multinomial$|ParameterizedTruncatedNormal$|RngReadAndSkip$|ShuffleDataset|"
    r"ShuffleAndRepeatDataset)"
)


def _caches_after_random_step(graph: dict[str, Any] | None) -> bool:
    """Whether the pipeline's graph (`_graph_facts`) has a cache downstream of a random op or a
    shuffle; False when the graph could not be read."""
    if graph is None:
        return False
    nodes = {node["name"]: node for node in graph["nodes"]}
    return any(
        node["op"].startswith("CacheDataset") and _random_upstream(node, nodes, graph["functions"])
        for node in nodes.values()
    )


def _random_upstream(
    node: dict[str, Any], nodes: dict[str, Any], functions: dict[str, Any]
) -> bool:
    seen, todo = set(), [name.split(":")[0].lstrip("^") for name in node["inputs"]]
    while todo:
        name = todo.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        upstream = nodes[name]
        if _is_random(upstream, functions, set()):
            return True
        todo.extend(i.split(":")[0].lstrip("^") for i in upstream["inputs"])
    return False


def _is_random(node: dict[str, Any], functions: dict[str, Any], visited: set[str]) -> bool:
    """Whether a node is a random op or calls a function that (eventually) runs one."""
    if _RANDOM_OPS.match(node["op"]):
        return True
    for name in node["calls"]:
        if name in functions and name not in visited:
            visited.add(name)
            if any(_is_random(inner, functions, visited) for inner in functions[name]):
                return True
    return False


def _op_determinism_enabled() -> bool:
    # TensorFlow has no public way to ask; this is the function enable_op_determinism sets.
    from tensorflow.python.framework import config as tf_config

    return bool(tf_config.is_op_determinism_enabled())
