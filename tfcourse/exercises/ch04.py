"""Self-checks for the exercises of `04_recurrent_networks`: the probes.

Each check is in two parts (see `tfcourse.exercises._split`): the probe here runs the learner's
answer and returns what it saw; the judge, in `tfcourse.exercises.judges.ch04`, decides.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from tfcourse.exercises._expect import expect_tensor, to_numpy
from tfcourse.exercises._framework import NotAttempted, Wrong, _describe
from tfcourse.exercises._learner import call, forbid, learner_code
from tfcourse.exercises._probes import draw_except
from tfcourse.exercises._split import deferred, failed, two_part

__all__ = [
    "NAME_ACCURACY_FLOOR",
    "TRAINING_SECONDS",
    "check_name_classifier",
    "check_pad_and_mask",
    "check_rnn_cell",
    "check_sample",
]

#: Exercise 04.2: the least test accuracy a name classifier must reach.
NAME_ACCURACY_FLOOR = 0.66
#: Exercise 04.2: the seconds `train_name_classifier` may train for.
TRAINING_SECONDS = 180.0

#: The check's own computations, which an answer must not call: the judges of this chapter, and
#: the names under which this module kept two of them (they hand over to the judges).
_CHECK_HELPERS = (
    "tfcourse.exercises.ch04._post_padded",
    "tfcourse.exercises.ch04._length_mask",
    "tfcourse.exercises.judges.ch04",
)
_HELPER_USED = (
    "your answer calls the check's own code (tfcourse.exercises.ch04): write the computation "
    "yourself."
)
_KERAS_WRAPPED = re.compile(r"\x1b\[1m(.*?)\x1b\[0m", re.DOTALL)


@contextlib.contextmanager
def _keras_code(what: str) -> Iterator[None]:
    """`learner_code`, telling the learner's own error from Keras's "Exception encountered" wrapper.

    Keras wraps an error raised in a layer's `call` in a message whose first line is its own; the
    learner's error is the bold line inside it.
    """
    with learner_code(what):
        try:
            yield
        except (Wrong, NotAttempted, NotImplementedError):
            raise
        except Exception as error:
            inner = _KERAS_WRAPPED.search(str(error))
            if inner is None:
                raise
            text = " ".join(inner.group(1).split())[:200]
            raise Wrong(f"{what} raised {type(error).__name__}: {text}") from error


def _in_order(
    steps: dict[str, Callable[[], Any]], *, judged_before: bool = False
) -> dict[str, Any]:
    """What each step observed, in order, up to and including the first that failed.

    A step that raises `Wrong` is recorded as a deferred failure (`_split.deferred`), and the steps
    after it are not run: the judge reads the steps in this order, and stops at that failure, as
    the check in one piece did. The first step's `Wrong` is raised at once where the judge decides
    nothing before that step (`judged_before` False): no later check could come first.
    """
    seen: dict[str, Any] = {}
    for name, step in steps.items():
        seen[name] = deferred(step) if seen or judged_before else step()
        if failed(seen[name]):
            break
    return seen


# 04.1 -------------------------------------------------------------------------------------------
#: Exercise 04.1: the batches the check pads: zeros inside, an empty sequence, one sequence, and
#: sequences of equal length.
PAD_CASES: tuple[list[list[int]], ...] = (
    [[3, 0, 5], [0], [7, 1]],
    [[0, 0, 4, 0], [], [2, 0]],
    [[5, 0, 0]],
    [[1, 2], [0, 3], [4, 0]],
    [[], []],
)


@two_part("04.1", "pad a batch, and mask it by length")
def check_pad_and_mask(pad_and_mask: Callable[[list[list[int]]], Any], seed: int) -> dict[str, Any]:
    """Check `pad_and_mask(sequences)` on batches that hold zeros, an empty sequence and one row,
    then on batches drawn from the seed, whose longest sequence is never the first."""
    return _in_order(
        {
            f"batch {i}": lambda sequences=sequences: _pad_and_mask_of(pad_and_mask, sequences)
            for i, sequences in enumerate(_pad_cases(seed))
        }
    )


def _pad_cases(seed: int) -> list[list[list[int]]]:
    """04.1's batches: `PAD_CASES`, then 3 drawn from `seed`."""
    return [*PAD_CASES, *_drawn_pad_cases(np.random.default_rng(seed))]


def _drawn_pad_cases(rng: np.random.Generator, count: int = 3) -> list[list[list[int]]]:
    """Batches of 2-6 sequences of ids 0-9, the longest one never first, lengths 0-9."""
    cases = []
    for _ in range(count):
        rows = int(rng.integers(2, 7))
        lengths = rng.integers(0, 9, rows)
        lengths[int(rng.integers(1, rows))] = int(lengths.max()) + 1  # longest, not first
        cases.append([rng.integers(0, 10, int(n)).tolist() for n in lengths])
    return cases


def _pad_and_mask_of(
    pad_and_mask: Callable[[list[list[int]]], Any], sequences: list[list[int]]
) -> dict[str, Any]:
    """The answer's padded batch, and its mask (whose problems come after the padded batch's)."""
    given = [list(row) for row in sequences]
    with forbid(_CHECK_HELPERS, _HELPER_USED):
        result = call(pad_and_mask, given, name="pad_and_mask")
    if given != sequences:
        raise Wrong(
            f"pad_and_mask changed the lists it was given ({sequences} became {given}): "
            "build new tensors, and leave the caller's lists as they were."
        )
    padded, mask = _padded_and_mask(result)
    if _is_ragged(padded):
        raise Wrong("padded is a RaggedTensor: pad it into a dense Tensor with .to_tensor().")
    expect_tensor(padded, name="padded")
    with learner_code("converting your padded Tensor"):
        padded = to_numpy(padded, name="padded")
    return {"padded": padded, "mask": deferred(lambda: _mask_array(mask))}


def _is_ragged(value: Any) -> bool:
    import tensorflow as tf

    return isinstance(value, tf.RaggedTensor)


def _padded_and_mask(result: Any) -> tuple[Any, Any]:
    if _is_ragged(result):
        raise Wrong("it returned a RaggedTensor: pad it (.to_tensor()) and return (padded, mask).")
    if isinstance(result, (tuple, list)) and len(result) == 2:
        return result[0], result[1]
    if hasattr(result, "shape"):
        raise Wrong("it returned one value; return two, (padded, mask).")
    raise Wrong(f"it should return a pair (padded, mask), but returned {_describe(result)}")


def _mask_array(value: Any) -> np.ndarray:
    if _is_ragged(value):
        raise Wrong("mask is a RaggedTensor: return a dense boolean Tensor (tf.sequence_mask).")
    expect_tensor(value, name="mask")
    with learner_code("converting your mask"):
        return to_numpy(value, name="mask")


def _post_padded(sequences: Sequence[Sequence[int]], *, fill: int, pre: bool = False) -> np.ndarray:
    """The judge's padding, under the name it had here (an answer that calls it fails)."""
    from tfcourse.exercises.judges import ch04 as judges

    return judges._post_padded(sequences, fill=fill, pre=pre)


def _length_mask(lengths: list[int], longest: int) -> np.ndarray:
    """The judge's mask, under the name it had here (an answer that calls it fails)."""
    from tfcourse.exercises.judges import ch04 as judges

    return judges._length_mask(lengths, longest)


# 04.2 -------------------------------------------------------------------------------------------
_NAME_BATCH = 128


#: 04.2's datasets, (train_ds, val_ds), while a call of its check lasts.
@two_part("04.2", "a name classifier to an accuracy floor")
def check_name_classifier(
    train_name_classifier: Callable[[Any, Any], Any],
    seed: int,
    *,
    train_ds: Any = None,
    val_ds: Any = None,
) -> dict[str, Any]:
    """Check `train_name_classifier(train_ds, val_ds)`'s `classify` on the held-out test names.

    Called as ``check_name_classifier(train_name_classifier, train_ds=..., val_ds=...)``. The
    check relabels the classes with a permutation drawn from the seed, in `train_ds`, `val_ds` and
    the test labels alike, so that only a model trained on the datasets it is given can pass (not
    one trained earlier, nor one trained on the notebook's own datasets). `classify(names)` must
    map a list of names to logits of shape (len(names), 10) in the order of those labels (softmax
    probabilities are accepted too: they rank the classes alike), give a name the same logits alone
    and beside a longer name, and reach `NAME_ACCURACY_FLOOR`.
    """
    relabel = _name_relabelling(seed)
    classify, seconds = _trained_classifier(
        train_name_classifier, _relabelled(train_ds, relabel), _relabelled(val_ds, relabel)
    )
    return {"seconds": seconds, "logits": _in_order(_classify_calls(classify))}


def _name_relabelling(seed: int) -> np.ndarray:
    """04.2's relabelling of the classes, drawn from `seed`."""
    from tfcourse import data

    return _derangement(np.random.default_rng(seed), len(data.spec("names").classes))


def _derangement(rng: np.random.Generator, count: int) -> np.ndarray:
    """A permutation of range(count) that moves every class."""
    while True:
        relabel = rng.permutation(count)
        if not np.any(relabel == np.arange(count)):
            return relabel


def _test_names() -> list[str]:
    from tfcourse import data

    return [str(name) for name in data.load_numpy("names", "test")["name"]]


def _classify_batches() -> dict[str, list[str]]:
    """The lists of names 04.2 classifies, in order: the test names in batches, then a shortest
    name alone, beside a longest one, alone again, and after the longest one."""
    names = _test_names()
    batches = {
        f"test names {i}-{i + len(names[i : i + _NAME_BATCH]) - 1}": names[i : i + _NAME_BATCH]
        for i in range(0, len(names), _NAME_BATCH)
    }
    short, long = min(names, key=len), max(names, key=len)
    return {
        **batches,
        "short alone": [short],
        "short, long": [short, long],
        "short alone again": [short],
        "long, short": [long, short],
    }


def _classify_calls(classify: Callable[[list[str]], Any]) -> dict[str, Callable[[], Any]]:
    return {
        key: lambda names=names: _logits(classify, names)
        for key, names in _classify_batches().items()
    }


def _relabelled(dataset: Any, relabel: np.ndarray) -> Any:
    """`dataset` of (ids, label) with label i replaced by relabel[i]."""
    import tensorflow as tf

    with learner_code("relabelling the dataset you passed"):
        return dataset.map(
            lambda ids, label: (ids, tf.gather(tf.constant(relabel, label.dtype), label))
        )


def _trained_classifier(
    train: Any, train_ds: Any, val_ds: Any
) -> tuple[Callable[[list[str]], Any], float]:
    """The answer's `classify`, and the seconds it took to train (stopped at `TRAINING_SECONDS`)."""
    import keras

    if train is None:
        raise NotAttempted
    if not callable(train):
        raise Wrong(f"expected a function, but got {_describe(train)}. Pass the function itself.")
    start = time.monotonic()
    try:
        with learner_code("train_name_classifier(train_ds, val_ds)", seconds=TRAINING_SECONDS):
            classify = train(train_ds, val_ds)
            seconds = time.monotonic() - start
    except Wrong:
        if time.monotonic() - start < TRAINING_SECONDS:
            raise
        raise Wrong(
            f"train_name_classifier ran for more than {TRAINING_SECONDS:g} s, the time limit, "
            "and was stopped: train for fewer epochs or a smaller model, and check that each "
            "epoch ends (no repeat())."
        ) from None
    if classify is None:
        raise Wrong("train_name_classifier returned None; return the function classify.")
    if isinstance(classify, keras.layers.Layer):
        raise Wrong(
            "train_name_classifier returned a Keras model, which takes ids; return a function of "
            "a list of names, e.g. lambda names: model(encode(tf.constant(names)).to_tensor())."
        )
    if not callable(classify):
        raise Wrong(f"train_name_classifier should return a function, not {_describe(classify)}")
    return classify, seconds


def _logits(classify: Callable[[list[str]], Any], names: list[str]) -> np.ndarray:
    result = call(classify, list(names), name="classify")
    with learner_code("converting the output of classify"):
        return to_numpy(result, name="the output of classify")


# 04.3 -------------------------------------------------------------------------------------------
#: Exercise 04.3: rows of logits, interleaved in the batch, whose order and k-th values differ.
SAMPLE_ROWS = np.array(
    [
        [2.0, 1.2, 0.6, 0.1, -0.5, -1.5],
        [-1.0, 0.3, 1.6, -0.2, 2.4, 0.9],
        [3.1, 2.2, 2.9, 2.5, 3.4, 2.0],  # all high: one k-th largest for the whole batch fails
    ],
    dtype=np.float32,
)
#: Exercise 04.3: a row whose 3rd largest logit is tied three ways (ids 0, 2 and 5), drawn with k=3.
SAMPLE_TIE_ROW = np.array([1.0, 2.0, 1.0, 0.5, 1.7, 1.0], dtype=np.float32)
SAMPLE_TIE_K, SAMPLE_TIE_TEMPERATURE = 3, 0.7
#: Exercise 04.3: (temperature, k) pairs whose draws the check compares with their distribution.
SAMPLE_CASES: tuple[tuple[float, int | None], ...] = ((1.0, None), (2.0, None), (0.5, 3), (1.5, 2))
#: Exercise 04.3: draws per row, and the most standard errors a frequency may be off.
SAMPLE_DRAWS, SAMPLE_Z_LIMIT = 10_000, 5.0
#: The seed of the frequency tests; the seed tests draw theirs from the check's seed.
_SEED = [4, 2]

#: One call of `sample`: (logits, temperature, k, seed).
_Draw = tuple[np.ndarray, float, int | None, list[int]]


@two_part("04.3", "top-k sampling with a temperature")
def check_sample(sample: Callable[..., Any], seed: int) -> dict[str, Any]:
    """Check `sample(logits, temperature, k, seed)` by its frequencies over many identical rows.

    Each row's frequencies must match softmax(top-k(logits) / temperature) within
    `SAMPLE_Z_LIMIT` standard errors; a temperature of 0 must give the argmax, the same seed the
    same ids, and another seed other ids.
    """
    plan = _sample_plan(seed)
    steps: dict[str, Callable[[], Any]] = {
        name: lambda draw=draw: _draw(sample, *draw) for name, draw in plan.items()
    }
    steps["in tf.function"] = lambda: _draw_in_graph(sample, plan["eagerly"])
    return _in_order(steps)


def _argmax_rows() -> np.ndarray:
    rows = [SAMPLE_ROWS[0], SAMPLE_ROWS[1], SAMPLE_ROWS[0][::-1], np.roll(SAMPLE_ROWS[1], 2)]
    return np.tile(np.stack(rows), (250, 1)).astype(np.float32)


def _sample_seeds(seed: int) -> tuple[list[int], list[list[int]]]:
    """04.3's seed for `sample`, drawn from the check's `seed`, and three others: one differs in
    seed[0], one in seed[1], and one has the same sum."""
    rng = np.random.default_rng(seed)
    first = [int(part) for part in rng.integers(0, 2**31 - 1, 2)]
    shift = int(rng.integers(1, 1000))
    others = [
        [(first[0] + shift) % (2**31 - 1), first[1]],
        [first[0], (first[1] + shift) % (2**31 - 1)],
        [first[0] + shift, first[1] - shift]
        if first[1] >= shift
        else [first[0] - shift, first[1] + shift],
    ]
    return first, others


def _sample_plan(seed: int) -> dict[str, _Draw]:
    """04.3's calls of `sample`, in the order the check makes them (the last one again in
    tf.function)."""
    chosen, others = _sample_seeds(seed)
    argmax_rows = _argmax_rows()
    plan: dict[str, _Draw] = {}
    for k in (None, 3):
        plan[f"argmax at 0, k={k}"] = (argmax_rows, 0.0, k, _SEED)
    rows = np.tile(SAMPLE_ROWS, (SAMPLE_DRAWS, 1))
    for temperature, k in SAMPLE_CASES:
        plan[f"frequencies at {temperature:g}, k={k}"] = (rows, temperature, k, _SEED)
    for k in (None, 3):
        plan[f"argmax at 0.01, k={k}"] = (argmax_rows, 0.01, k, _SEED)
    ties = np.tile(SAMPLE_TIE_ROW, (SAMPLE_DRAWS, 1))
    plan["a tie"] = (ties, SAMPLE_TIE_TEMPERATURE, SAMPLE_TIE_K, _SEED)
    plan["a tie again"] = (ties, SAMPLE_TIE_TEMPERATURE, SAMPLE_TIE_K, _SEED)
    seeded = np.tile(SAMPLE_ROWS, (500, 1))
    plan["a seed"] = (seeded, 1.0, None, chosen)
    plan["the same seed"] = (seeded, 1.0, None, chosen)
    for i, other in enumerate(others):
        plan[f"another seed {i}"] = (seeded, 1.0, None, other)
    plan["one row"] = (SAMPLE_ROWS[:1], 1.0, 3, chosen)
    plan["eagerly"] = (np.tile(SAMPLE_ROWS, (50, 1)), 1.0, 3, chosen)
    return plan


def _draw(
    sample: Callable[..., Any], logits: np.ndarray, temperature: float, k: Any, seed: Any
) -> np.ndarray:
    import tensorflow as tf

    with forbid(_CHECK_HELPERS, _HELPER_USED):
        result = call(sample, tf.constant(logits), temperature, k, list(seed), name="sample")
    expect_tensor(result, name="the output of sample")
    with learner_code("converting the output of sample"):
        return to_numpy(result, name="the output of sample")


def _in_graph(sample: Callable[..., Any]) -> Callable[..., Any]:
    def graph_sample(logits: Any, seed: Any) -> Any:  # a def, not a lambda: autograph reads it
        return sample(logits, 1.0, 3, seed)

    return graph_sample


def _draw_in_graph(sample: Callable[..., Any], draw: _Draw) -> np.ndarray:
    """`sample` inside `tf.function`, as the chapter's generator runs it (temperature 1, k=3)."""
    import tensorflow as tf

    logits, _, _, seed = draw
    with learner_code("sample inside tf.function (as the chapter's generator runs it)"):
        graph = tf.function(_in_graph(sample))(tf.constant(logits), tf.constant(seed, tf.int64))
        return to_numpy(graph, name="the output of sample inside tf.function")


# 04.4 -------------------------------------------------------------------------------------------
_STEPS = 6
#: The sizes of the chapter's example cell (3 features, 4 units): the check never probes with them.
_CHAPTER_FEATURES, _CHAPTER_UNITS = 3, 4
#: The scales of the weights the check loads: large enough that a missing tanh or bias shows.
_WEIGHT_SCALES = (0.8, 0.5, 0.5)
_DELEGATED = (
    "MinimalRNNCell runs Keras's own SimpleRNNCell: write build (add_weight) and call "
    "(the tanh step) yourself."
)


@two_part("04.4", "a recurrent cell as a Keras layer")
def check_rnn_cell(cell_class: type, seed: int) -> dict[str, Any]:
    """Check `MinimalRNNCell` inside `keras.layers.RNN` against `SimpleRNN` with the same weights.

    The sizes are drawn from the seed (never the chapter's 3 features and 4 units). It compares
    outputs on a batch, inside `tf.function`, and on a padded, masked batch, and the gradients with
    respect to the three weights and to the inputs. A cell that runs Keras's `SimpleRNNCell` fails.
    """
    rng = np.random.default_rng(seed)
    features, units = _cell_sizes(rng)
    with forbid("keras.layers.SimpleRNNCell", _DELEGATED), forbid(_CHECK_HELPERS, _HELPER_USED):
        cell, layer = _wrapped_cell(cell_class, features, units)
        with learner_code("reading your cell's weights"):
            weights = list(cell.weights)
            shapes = [[int(d) for d in weight.shape] for weight in weights]
        seen: dict[str, Any] = {"shapes": shapes, "starts": deferred(lambda: _starts(weights))}
        if len(shapes) != len(_WEIGHT_SCALES):
            return seen  # the judge stops at the shapes
        # The weights are drawn in the cell's own shapes: the judge draws them in the right ones,
        # and the same numbers where the cell's shapes are right (it stops where they are not).
        values = _cell_weights(rng, [tuple(shape) for shape in shapes])
        x, cotangent, mask = _cell_inputs(rng, features, units)
        seen |= _in_order(
            judged_before=True,  # the weights' shapes and starting values
            steps={
                "loading": lambda: _load(weights, values),
                "outputs": lambda: _run(layer, x, None),
                "in tf.function": lambda: _run_in_graph(layer, x),
                "gradients": lambda: _gradients(layer, weights, x, cotangent),
                "masked outputs": lambda: _run(layer, x, mask),
            },
        )
    return seen


def _cell_sizes(rng: np.random.Generator) -> tuple[int, int]:
    """04.4's input features and units, drawn from `rng` (first), never the chapter's."""
    features = draw_except(rng, 2, 9, {_CHAPTER_FEATURES, _CHAPTER_UNITS})
    units = draw_except(rng, 2, 9, {_CHAPTER_FEATURES, _CHAPTER_UNITS, features})
    return features, units


def _cell_weights(rng: np.random.Generator, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    """The three weights loaded into the cell, of `shapes`, drawn from `rng` (second)."""
    return [
        (scale * rng.normal(size=shape)).astype(np.float32)
        for scale, shape in zip(_WEIGHT_SCALES, shapes, strict=True)
    ]


def _cell_inputs(
    rng: np.random.Generator, features: int, units: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The batch, the weights of the outputs whose gradient is taken, and the mask of the padded
    batch (3 sequences of lengths 6, 2-5 and 1), drawn from `rng` (third)."""
    x = rng.normal(size=(3, _STEPS, features)).astype(np.float32)
    cotangent = rng.normal(size=(3, _STEPS, units)).astype(np.float32)
    lengths = [_STEPS, int(rng.integers(2, _STEPS)), 1]
    mask = np.array([[step < length for step in range(_STEPS)] for length in lengths])
    return x, cotangent, mask


def _wrapped_cell(cell_class: Any, features: int, units: int) -> tuple[Any, Any]:
    import keras

    if isinstance(cell_class, keras.layers.Layer):
        raise Wrong("pass the class itself, MinimalRNNCell, not an instance of it.")
    if isinstance(cell_class, type) and issubclass(cell_class, keras.layers.SimpleRNNCell):
        raise Wrong(_DELEGATED)
    cell = call(cell_class, units, name=f"MinimalRNNCell({units})")
    if not isinstance(cell, keras.layers.Layer):
        raise Wrong(f"MinimalRNNCell({units}) should be a keras Layer, not {_describe(cell)}")
    with learner_code("reading your cell's state_size"):
        state_size = getattr(cell, "state_size", None)
    if state_size is None:
        raise Wrong("the cell has no state_size: set self.state_size = units in __init__.")
    with _keras_code("keras.layers.RNN(your cell)"):
        layer = keras.layers.RNN(cell, return_sequences=True)
    with _keras_code("building your cell (its build method)"):
        layer.build((None, None, features))
    return cell, layer


def _starts(weights: list[Any]) -> list[np.ndarray]:
    """The starting values of the first two weights (the kernels)."""
    with learner_code("reading your cell's weights"):
        return [np.asarray(weight.numpy()) for weight in weights[:2]]


def _load(weights: list[Any], values: list[np.ndarray]) -> None:
    with learner_code("loading SimpleRNN's weights into your cell"):
        for weight, value in zip(weights, values, strict=True):
            weight.assign(value)


def _run(layer: Any, x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    with _keras_code("keras.layers.RNN(your cell)"):
        outputs = layer(x) if mask is None else layer(x, mask=mask)
        return to_numpy(outputs, name="the output of RNN(your cell)").astype(np.float64)


def _run_in_graph(layer: Any, x: np.ndarray) -> np.ndarray:
    """The layer inside `tf.function`, as `fit()` runs it."""
    import tensorflow as tf

    def graph_call(inputs: Any) -> Any:  # a def, not a lambda: autograph reads its source
        return layer(inputs)

    with _keras_code("RNN(your cell) inside tf.function (as fit() runs it)"):
        outputs = tf.function(graph_call)(tf.constant(x))
        return to_numpy(outputs, name="the output of RNN(your cell) in tf.function")


def _gradients(
    layer: Any, weights: list[Any], x: np.ndarray, cotangent: np.ndarray
) -> dict[str, Any]:
    """A second call on the same batch, and the gradients of sum(outputs * cotangent) with respect
    to the three weights and to the inputs (None where there is none)."""
    import tensorflow as tf

    inputs = tf.constant(x)
    with _keras_code("the gradient through RNN(your cell)"), tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = tf.cast(layer(inputs), tf.float32)
        *gradients, input_gradient = tape.gradient(
            tf.reduce_sum(outputs * cotangent), [*weights, inputs]
        )
    with learner_code("converting the gradients through RNN(your cell)"):
        return {
            "outputs": to_numpy(outputs, name="the output of RNN(your cell)"),
            "gradients": [
                None if gradient is None else to_numpy(tf.convert_to_tensor(gradient))
                for gradient in [*gradients, input_gradient]
            ],
        }
