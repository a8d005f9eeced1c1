"""Self-checks for the exercises of `04_recurrent_networks`."""

from __future__ import annotations

import contextlib
import itertools
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from tfcourse.exercises._expect import (
    expect_dtype,
    expect_finite,
    expect_shape,
    expect_tensor,
    to_numpy,
)
from tfcourse.exercises._framework import NotAttempted, Wrong, _describe, check
from tfcourse.exercises._learner import call, forbid, learner_code
from tfcourse.exercises._probes import draw_except, probe_rng

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

#: The check module's own computations, which an answer must not call.
_CHECK_HELPERS = tuple(
    f"tfcourse.exercises.ch04.{name}"
    for name in ("_post_padded", "_length_mask", "_softmax", "_top_k", "_unroll")
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


@check("04.1", "pad a batch, and mask it by length")
def check_pad_and_mask(pad_and_mask: Callable[[list[list[int]]], Any]) -> str:
    """Check `pad_and_mask(sequences)` on batches that hold zeros, an empty sequence and one row,
    then on batches drawn afresh each run, whose longest sequence is never the first."""
    for sequences in [*PAD_CASES, *_drawn_pad_cases(probe_rng())]:
        given = [list(row) for row in sequences]
        with forbid(_CHECK_HELPERS, _HELPER_USED):
            result = call(pad_and_mask, given, name="pad_and_mask")
        if given != sequences:
            raise Wrong(
                f"pad_and_mask changed the lists it was given ({sequences} became {given}): "
                "build new tensors, and leave the caller's lists as they were."
            )
        padded, mask = _padded_and_mask(result)
        lengths = [len(row) for row in sequences]
        expected = _post_padded(sequences, fill=0)
        _expect_padded(padded, expected, sequences)
        _expect_mask(mask, lengths, expected, sequences)
    return (
        "post-pads with 0 into int64 Tensors and masks by length, for zeros, an empty sequence, "
        "one sequence, equal lengths, all empty and batches drawn at random."
    )


def _drawn_pad_cases(rng: np.random.Generator, count: int = 3) -> list[list[list[int]]]:
    """Batches of 2-6 sequences of ids 0-9, the longest one never first, lengths 0-9."""
    cases = []
    for _ in range(count):
        rows = int(rng.integers(2, 7))
        lengths = rng.integers(0, 9, rows)
        lengths[int(rng.integers(1, rows))] = int(lengths.max()) + 1  # longest, not first
        cases.append([rng.integers(0, 10, int(n)).tolist() for n in lengths])
    return cases


def _post_padded(sequences: Sequence[Sequence[int]], *, fill: int, pre: bool = False) -> np.ndarray:
    longest = max(len(row) for row in sequences)
    padded = np.full((len(sequences), longest), fill, dtype=np.int64)
    for i, row in enumerate(sequences):
        start = longest - len(row) if pre else 0
        padded[i, start : start + len(row)] = row
    return padded


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


def _expect_padded(value: Any, expected: np.ndarray, sequences: list[list[int]]) -> None:
    if _is_ragged(value):
        raise Wrong("padded is a RaggedTensor: pad it into a dense Tensor with .to_tensor().")
    expect_tensor(value, name="padded")
    with learner_code("converting your padded Tensor"):
        padded = to_numpy(value, name="padded")
    if padded.dtype == np.bool_:
        raise Wrong("padded holds booleans: return (padded, mask) in that order.")
    count, longest = expected.shape
    if padded.ndim == 2 and padded.shape[0] == count and padded.shape[1] != longest:
        raise Wrong(
            f"for {sequences}, padded has shape {padded.shape}, expected {expected.shape}: pad "
            f"to the length of the longest sequence, {longest}."
        )
    expect_shape(padded, expected.shape, name=f"for {sequences}, padded")
    expect_dtype(padded, np.int64, name="padded")
    if np.array_equal(padded, expected):
        return
    raise Wrong(f"for {sequences}, {_padding_mistake(padded, expected, sequences)}")


def _padding_mistake(padded: np.ndarray, expected: np.ndarray, sequences: list[list[int]]) -> str:
    if np.array_equal(padded, _post_padded(sequences, fill=0, pre=True)):
        return "it puts the zeros before each sequence; put them after it (post-padding)."
    if padded.shape[0] == padded.shape[1] and np.array_equal(padded, expected.T):
        return "padded is transposed: its rows must be the sequences."
    real = _length_mask([len(row) for row in sequences], expected.shape[1])
    if np.array_equal(padded[real], expected[real]):
        fills = sorted(set(padded[~real].tolist()))
        return f"it pads with {fills[0] if len(fills) == 1 else fills}; pad with 0."
    row = int(np.argwhere((padded != expected).any(axis=1))[0, 0])
    return f"padded row {row} is {padded[row].tolist()}, expected {expected[row].tolist()}."


def _length_mask(lengths: list[int], longest: int) -> np.ndarray:
    return np.arange(longest)[None, :] < np.array(lengths)[:, None]


def _expect_mask(
    value: Any, lengths: list[int], padded: np.ndarray, sequences: list[list[int]]
) -> None:
    if _is_ragged(value):
        raise Wrong("mask is a RaggedTensor: return a dense boolean Tensor (tf.sequence_mask).")
    expect_tensor(value, name="mask")
    with learner_code("converting your mask"):
        mask = to_numpy(value, name="mask")
    expect_shape(mask, padded.shape, name=f"for {sequences}, mask")
    if mask.dtype != np.bool_:
        raise Wrong(
            f"mask has dtype {mask.dtype}, expected bool: build it with tf.sequence_mask, "
            "or cast it with tf.cast(mask, tf.bool)."
        )
    expected = _length_mask(lengths, padded.shape[1])
    if np.array_equal(mask, expected):
        return
    raise Wrong(f"for {sequences}, {_mask_mistake(mask, expected, padded)}")


def _mask_mistake(mask: np.ndarray, expected: np.ndarray, padded: np.ndarray) -> str:
    if np.array_equal(mask, ~expected):
        return "the mask is inverted: it must be True at the real elements, False at the padding."
    if np.array_equal(mask, padded != 0):
        return (
            "the mask is False where a real element is 0: 0 is a valid id here, so build the "
            "mask from the lengths (tf.sequence_mask), not from the values."
        )
    if mask.shape[0] == mask.shape[1] and np.array_equal(mask, expected.T):
        return "the mask is transposed: its rows must be the sequences."
    if np.array_equal(mask, expected[:, ::-1]):
        return "the mask is True at the end of each row; real elements come first (post-padding)."
    row = int(np.argwhere((mask != expected).any(axis=1))[0, 0])
    return (
        f"mask row {row} is {mask[row].tolist()}, expected {expected[row].tolist()} (True for "
        f"the first {int(expected[row].sum())} elements, the sequence's length)."
    )


# 04.2 -------------------------------------------------------------------------------------------
_NAME_BATCH = 128


@check("04.2", "a name classifier to an accuracy floor")
def check_name_classifier(
    train_name_classifier: Callable[[Any, Any], Any], *, train_ds: Any, val_ds: Any
) -> str:
    """Check `train_name_classifier(train_ds, val_ds)`'s `classify` on the held-out test names.

    The check relabels the classes with a permutation drawn afresh each run, in `train_ds`,
    `val_ds` and the test labels alike, so that only a model trained on the datasets it is given
    can pass (not one trained earlier, nor one trained on the notebook's own datasets).
    `classify(names)` must map a list of names to logits of shape (len(names), 10) in the order
    of those labels (softmax probabilities are accepted too: they rank the classes alike), give a
    name the same logits alone and beside a longer name, and reach `NAME_ACCURACY_FLOOR`.
    """
    from tfcourse import data

    relabel = _derangement(probe_rng(), len(data.spec("names").classes))
    classify = _trained_classifier(
        train_name_classifier, _relabelled(train_ds, relabel), _relabelled(val_ds, relabel)
    )
    columns = data.load_numpy("names", "test")
    names, labels = [str(name) for name in columns["name"]], relabel[columns["label"]]
    logits = np.concatenate(
        [_classify(classify, names[i : i + _NAME_BATCH]) for i in range(0, len(names), _NAME_BATCH)]
    )
    _expect_batch_independent(classify, names)
    predicted = logits.argmax(axis=1)
    accuracy = float(np.mean(predicted == labels))
    if accuracy < NAME_ACCURACY_FLOOR:
        if np.mean(predicted == columns["label"]) >= NAME_ACCURACY_FLOOR:
            raise Wrong(
                "classify answers with the notebook's label ids, not with those of the train_ds "
                "it was given: the check relabels the classes to tell. Train a new model on the "
                "train_ds argument; don't reuse a trained model or the notebook's datasets."
            )
        majority = np.bincount(labels).max() / len(labels)
        classes = [data.spec("names").classes[i] for i in np.argsort(relabel)]
        explained = _accuracy_mistake(predicted, labels, classes)
        old_labels = float(np.mean(predicted == columns["label"]))
        if "another order" not in explained and old_labels > max(2 * accuracy, majority):
            raise Wrong(
                f"classify gets {accuracy:.1%} of the test names right with the labels of the "
                f"train_ds it was given, but {old_labels:.1%} with the notebook's own labels: it "
                "learned from the notebook's datasets (the check relabels the classes to tell). "
                "Train on the train_ds argument."
            )
        raise Wrong(explained)
    return (
        f"{accuracy:.1%} accuracy on the {len(names)} test names (the floor is "
        f"{NAME_ACCURACY_FLOOR:.0%}) with the classes relabelled, and a name's logits do not "
        "depend on its batch."
    )


def _derangement(rng: np.random.Generator, count: int) -> np.ndarray:
    """A permutation of range(count) that moves every class."""
    while True:
        relabel = rng.permutation(count)
        if not np.any(relabel == np.arange(count)):
            return relabel


def _relabelled(dataset: Any, relabel: np.ndarray) -> Any:
    """`dataset` of (ids, label) with label i replaced by relabel[i]."""
    import tensorflow as tf

    with learner_code("relabelling the dataset you passed"):
        return dataset.map(
            lambda ids, label: (ids, tf.gather(tf.constant(relabel, label.dtype), label))
        )


def _trained_classifier(train: Any, train_ds: Any, val_ds: Any) -> Callable[[list[str]], Any]:
    import keras

    if train is None:
        raise NotAttempted
    if not callable(train):
        raise Wrong(f"expected a function, but got {_describe(train)}. Pass the function itself.")
    start = time.monotonic()
    try:
        with learner_code("train_name_classifier(train_ds, val_ds)", seconds=TRAINING_SECONDS):
            classify = train(train_ds, val_ds)
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
    return classify


def _classify(classify: Callable[[list[str]], Any], names: list[str]) -> np.ndarray:
    result = call(classify, list(names), name="classify")
    with learner_code("converting the output of classify"):
        logits = to_numpy(result, name="the output of classify")
    count = len(names)
    if logits.shape == (count,):
        raise Wrong(
            f"classify gave one number per name, shape ({count},): return the logits, shape "
            f"({count}, 10), not the predicted ids (argmax)."
        )
    expect_shape(logits, (count, 10), name=f"the output of classify for {count} names")
    expect_finite(logits, name="the output of classify")
    return logits.astype(np.float64)


def _expect_batch_independent(classify: Callable[[list[str]], Any], names: list[str]) -> None:
    short, long = min(names, key=len), max(names, key=len)
    alone = _classify(classify, [short])[0]
    pair = _classify(classify, [short, long])
    if np.allclose(alone, 1.0) or np.allclose(pair.sum(axis=0), 1.0, atol=1e-4):
        raise Wrong(
            "classify normalises over the batch (a softmax over axis 0), so a name's scores "
            "depend on the other names: return the logits, or a softmax over the classes "
            "(axis=-1)."
        )
    if not np.allclose(_classify(classify, [short])[0], alone, rtol=1e-4, atol=1e-4):
        raise Wrong(
            f"classify gives {short!r} other logits each time it is called: call the model "
            "with training=False, so that dropout is off."
        )
    beside = pair[0]
    after = _classify(classify, [long, short])[1]
    if not np.allclose(after, alone, rtol=1e-4, atol=1e-4) and np.allclose(
        beside, alone, rtol=1e-4, atol=1e-4
    ):
        raise Wrong(
            f"the logits of {short!r} change when it comes after a longer name in the batch: "
            "return one row per name, in the order of the names given (if you sort them by "
            "length, put the rows back in the original order)."
        )
    if not np.allclose(beside, alone, rtol=1e-4, atol=1e-4):
        gap = float(np.abs(beside - alone).max())
        raise Wrong(
            f"the logits of {short!r} change by up to {gap:.3g} when a longer name shares its "
            "batch: the padding changes the answer; mask it (Embedding(..., mask_zero=True))."
        )


def _accuracy_mistake(predicted: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> str:
    count, accuracy = len(labels), float(np.mean(predicted == labels))
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    columns = confusion.argmax(axis=1)
    permuted = confusion[np.arange(len(classes)), columns].sum() / count
    if len(set(columns.tolist())) == len(classes) and permuted >= NAME_ACCURACY_FLOOR:
        true = int(np.argwhere(columns != np.arange(len(classes)))[0, 0])
        return (
            f"it classifies {accuracy:.1%} of the test names right, but its columns are in "
            f"another order than locales: {classes[true]} names score highest in column "
            f"{int(columns[true])}; column i must be locales[i], the label ids of train_ds."
        )
    majority = np.bincount(labels).max() / count
    hint = "did the model train? " if accuracy < majority + 0.1 else ""
    return (
        f"it classifies {accuracy:.1%} of the {count} test names right, below the floor of "
        f"{NAME_ACCURACY_FLOOR:.0%} (always guessing the most common locale scores "
        f"{majority:.0%}): {hint}train longer, or use a larger or bidirectional layer, masked."
    )


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
#: The seed of the frequency tests; the seed tests draw theirs afresh each run.
_SEED = [4, 2]


@check("04.3", "top-k sampling with a temperature")
def check_sample(sample: Callable[..., Any]) -> str:
    """Check `sample(logits, temperature, k, seed)` by its frequencies over many identical rows.

    Each row's frequencies must match softmax(top-k(logits) / temperature) within
    `SAMPLE_Z_LIMIT` standard errors; a temperature of 0 must give the argmax, the same seed the
    same ids, and another seed other ids.
    """
    _expect_argmax(sample, 0.0)
    for temperature, k in SAMPLE_CASES:
        _expect_distribution(sample, temperature, k)
    _expect_argmax(sample, 0.01)
    _expect_ties(sample)
    rng = probe_rng()
    seed = [int(part) for part in rng.integers(0, 2**31 - 1, 2)]
    _expect_seeded(sample, seed, rng)
    _expect_one_row(sample, seed)
    _expect_in_graph_sample(sample, seed)
    return (
        "draws from softmax(top-k(logits) / temperature) per row, returns the argmax at "
        "temperature 0, repeats its draws for the same seed (and changes them with either part "
        "of it), for one row too and inside tf.function."
    )


def _draw(
    sample: Callable[..., Any], logits: np.ndarray, temperature: float, k: Any, seed: Any
) -> np.ndarray:
    import tensorflow as tf

    with forbid(_CHECK_HELPERS, _HELPER_USED):
        result = call(sample, tf.constant(logits), temperature, k, list(seed), name="sample")
    expect_tensor(result, name="the output of sample")
    with learner_code("converting the output of sample"):
        ids = to_numpy(result, name="the output of sample")
    expect_shape(ids, (len(logits),), name=f"the output of sample for {len(logits)} rows")
    expect_dtype(ids, np.int64, name="the output of sample")
    size = logits.shape[1]
    if ids.min() < 0 or ids.max() >= size:
        bad = int(ids.max() if ids.max() >= size else ids.min())
        hint = (
            "return tf.argmax(logits, axis=-1) when the temperature is 0 (dividing by 0 gives "
            "inf and NaN)"
            if temperature == 0
            else "look for inf or NaN in the logits you pass (pass logits / temperature, "
            "not exp(), which overflows)"
        )
        raise Wrong(
            f"with temperature {temperature:g} and k={k}, it drew id {bad}, but the logits have "
            f"{size} ids (0-{size - 1}): {hint}."
        )
    return ids


def _argmax_rows() -> np.ndarray:
    rows = [SAMPLE_ROWS[0], SAMPLE_ROWS[1], SAMPLE_ROWS[0][::-1], np.roll(SAMPLE_ROWS[1], 2)]
    return np.tile(np.stack(rows), (250, 1)).astype(np.float32)


def _expect_argmax(sample: Callable[..., Any], temperature: float) -> None:
    """At temperature 0, and (all but surely) at 0.01, every row must give its argmax."""
    logits = _argmax_rows()
    for k in (None, 3):
        ids, wanted = _draw(sample, logits, temperature, k, _SEED), logits.argmax(axis=1)
        if np.array_equal(ids, wanted):
            continue
        row = int(np.argwhere(ids != wanted)[0, 0])
        if np.all(ids == logits.argmin(axis=1)):
            fix = "it draws the least likely id; keep the largest logits"
        elif temperature == 0:
            fix = "return tf.argmax(logits, axis=-1) when the temperature is 0"
        else:
            fix = "so small a temperature should almost always give the argmax"
        raise Wrong(
            f"with temperature {temperature:g} and k={k}, row {row} drew id {int(ids[row])}, "
            f"but its most likely id is {int(wanted[row])}: {fix}."
        )


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits[np.isfinite(logits)].max())
    return shifted / shifted.sum()


def _top_k(row: np.ndarray, k: int | None) -> np.ndarray:
    if k is None:
        return row.astype(np.float64)
    kept = np.full(row.shape, -np.inf)
    largest = np.argsort(-row)[:k]
    kept[largest] = row[largest]
    return kept


def _expect_distribution(sample: Callable[..., Any], temperature: float, k: int | None) -> None:
    logits = np.tile(SAMPLE_ROWS, (SAMPLE_DRAWS, 1))
    ids = _draw(sample, logits, temperature, k, _SEED)
    size = SAMPLE_ROWS.shape[1]
    for index, row in enumerate(SAMPLE_ROWS):
        drawn = ids[index :: len(SAMPLE_ROWS)]
        expected = _softmax(_top_k(row, k) / temperature)
        frequencies = np.bincount(drawn, minlength=size) / len(drawn)
        _expect_within_top_k(drawn, frequencies, row, temperature, k)
        if not _fits(frequencies, expected):
            raise Wrong(_sampling_mistake(frequencies, row, temperature, k))


def _expect_within_top_k(
    drawn: np.ndarray, frequencies: np.ndarray, row: np.ndarray, temperature: float, k: int | None
) -> None:
    if k is None:
        return
    order = np.argsort(-row)
    outside = sorted(set(drawn.tolist()) - set(order[:k].tolist()))
    if not outside:
        return
    used = set(drawn.tolist())
    if _fits(frequencies, _softmax(row / temperature)):
        raise Wrong(f"with k={k} it ignores k: keep only the {k} largest logits of each row.")
    if used <= set(order[-k:].tolist()):
        raise Wrong(f"with k={k} it kept the {k} smallest logits; keep the {k} largest (top_k).")
    if used <= set(order[: k + 1].tolist()):
        raise Wrong(f"with k={k} it drew from the {k + 1} largest logits; keep exactly {k}.")
    raise Wrong(
        f"with k={k} it drew id {outside[0]}, which is not among the {k} largest logits of "
        "its row: set the other logits to -inf (not 0), and pass logits, not probabilities."
    )


def _tie_conventions(row: np.ndarray, k: int) -> list[np.ndarray]:
    """The distributions a right answer may sample from when the k-th largest logit is tied.

    Either exactly k ids (any of the tied ones: `tf.math.top_k` keeps the lowest ids, a sort in
    the other direction the highest, random noise any), or every id whose logit is at least the
    k-th largest.
    """
    kth = np.sort(row)[::-1][k - 1]
    above, tied = np.flatnonzero(row > kth), np.flatnonzero(row == kth)
    kept_sets = [
        np.concatenate([above, list(chosen)])
        for chosen in itertools.combinations(tied, k - len(above))
    ]
    kept_sets.append(np.concatenate([above, tied]))
    distributions = []
    for kept in kept_sets:
        masked = np.full(row.shape, -np.inf)
        masked[kept.astype(int)] = row[kept.astype(int)]
        distributions.append(_softmax(masked))
    # exactly k, the tied ones chosen at random per draw: the average of the exactly-k choices
    distributions.append(np.mean(distributions[:-1], axis=0))
    return distributions


def _expect_ties(sample: Callable[..., Any]) -> None:
    """A tie at the k-th logit: exactly k kept, or every tied one; both conventions are right.

    A tie broken at random must still follow the seed: the same seed, the same ids.
    """
    row, k, temperature = SAMPLE_TIE_ROW, SAMPLE_TIE_K, SAMPLE_TIE_TEMPERATURE
    logits = np.tile(row, (SAMPLE_DRAWS, 1))
    ids = _draw(sample, logits, temperature, k, _SEED)
    frequencies = np.bincount(ids, minlength=len(row)) / len(ids)
    conventions = _tie_conventions(row / temperature, k)
    if not any(_fits(frequencies, expected) for expected in conventions):
        used = sorted(set(ids.tolist()))
        raise Wrong(
            f"on the row {row.tolist()} with temperature {temperature:g} and k={k}, whose k-th "
            f"largest logit ({np.sort(row)[::-1][k - 1]:g}) is tied, it drew ids {used} with "
            f"frequencies {np.round(frequencies, 3).tolist()}. Keep exactly k ids (as "
            "tf.math.top_k does) or every id whose logit is at least the k-th largest, and give "
            "the others -inf."
        )
    if not np.array_equal(ids, _draw(sample, logits, temperature, k, _SEED)):
        raise Wrong(
            f"on a row whose k-th largest logit is tied (k={k}), two calls with the same seed "
            "drew different ids: break ties without unseeded randomness (tf.math.top_k breaks "
            "them by position)."
        )


def _fits(frequencies: np.ndarray, expected: np.ndarray) -> bool:
    """Whether every frequency is within `SAMPLE_Z_LIMIT` standard errors of its probability."""
    error = np.sqrt(expected * (1 - expected) / SAMPLE_DRAWS)
    gap = np.abs(frequencies - expected)
    return bool(np.all(np.where(expected > 0, gap <= SAMPLE_Z_LIMIT * error, gap == 0)))


def _sampling_mistakes(row: np.ndarray, temperature: float, k: int | None) -> dict[str, Any]:
    kept = _top_k(row, k)
    mistakes = {
        "it always draws the most likely id: draw with tf.random.stateless_categorical, not "
        "argmax": np.eye(len(row))[row.argmax()],
        "it always draws the least likely id: draw with tf.random.stateless_categorical, "
        "not argmin": np.eye(len(row))[row.argmin()],
        "it multiplies the logits by the temperature; divide them by it": _softmax(
            kept * temperature
        ),
        "it ignores the temperature; divide the logits by it": _softmax(kept),
        "it passes probabilities where logits are expected: stateless_categorical takes logits "
        "(or log-probabilities)": _softmax(np.nan_to_num(_softmax(kept / temperature))),
    }
    if k is not None and k > 1:
        mistakes[f"it keeps only the {k - 1} largest logits (> instead of >=?); keep {k}"] = (
            _softmax(_top_k(row, k - 1) / temperature)
        )
    return mistakes


def _sampling_mistake(
    frequencies: np.ndarray, row: np.ndarray, temperature: float, k: int | None
) -> str:
    setting = f"with temperature {temperature:g} and k={k}"
    for mistake, distribution in _sampling_mistakes(row, temperature, k).items():
        if _fits(frequencies, distribution):
            return f"{setting}, {mistake}."
    expected = _softmax(_top_k(row, k) / temperature)
    shape = "flatter" if _entropy(frequencies) > _entropy(expected) else "sharper"
    return (
        f"{setting}, the frequencies {np.round(frequencies, 3).tolist()} are {shape} than "
        f"softmax(top-k(logits) / temperature) = {np.round(expected, 3).tolist()}."
    )


def _entropy(probabilities: np.ndarray) -> float:
    positive = probabilities[probabilities > 0]
    return float(-(positive * np.log(positive)).sum())


def _expect_seeded(sample: Callable[..., Any], seed: list[int], rng: np.random.Generator) -> None:
    logits = np.tile(SAMPLE_ROWS, (500, 1))
    first = _draw(sample, logits, 1.0, None, seed)
    if not np.array_equal(first, _draw(sample, logits, 1.0, None, seed)):
        raise Wrong(
            "two calls with the same seed drew different ids: draw with "
            "tf.random.stateless_categorical(..., seed=seed), not tf.random.categorical."
        )
    shift = int(rng.integers(1, 1000))
    others = [
        [(seed[0] + shift) % (2**31 - 1), seed[1]],
        [seed[0], (seed[1] + shift) % (2**31 - 1)],
    ]
    others.append(
        [seed[0] + shift, seed[1] - shift]
        if seed[1] >= shift
        else [seed[0] - shift, seed[1] + shift]
    )
    for part, other in zip((0, 1, None), others, strict=True):
        if np.array_equal(first, _draw(sample, logits, 1.0, None, other)):
            if part is None:
                raise Wrong(
                    f"the seeds {seed} and {other}, whose parts have the same sum, drew the same "
                    "ids: pass the seed itself to tf.random.stateless_categorical, not a "
                    "combination of its parts."
                )
            raise Wrong(
                f"the seeds {seed} and {other}, which differ only in seed[{part}], drew the same "
                "ids: pass the whole seed on to tf.random.stateless_categorical (the chapter's "
                "generator varies seed[1] from step to step)."
            )


def _expect_one_row(sample: Callable[..., Any], seed: list[int]) -> None:
    """A batch of one row, as the chapter's generator samples, still gives shape (1,)."""
    _draw(sample, SAMPLE_ROWS[:1], 1.0, 3, seed)


def _in_graph(sample: Callable[..., Any]) -> Callable[..., Any]:
    def graph_sample(logits: Any, seed: Any) -> Any:  # a def, not a lambda: autograph reads it
        return sample(logits, 1.0, 3, seed)

    return graph_sample


def _expect_in_graph_sample(sample: Callable[..., Any], seed: list[int]) -> None:
    """In `tf.function`, as the chapter's generator runs it, the same seed draws the same ids."""
    import tensorflow as tf

    logits = np.tile(SAMPLE_ROWS, (50, 1))
    eager = _draw(sample, logits, 1.0, 3, seed)
    with learner_code("sample inside tf.function (as the chapter's generator runs it)"):
        graph = tf.function(_in_graph(sample))(tf.constant(logits), tf.constant(seed, tf.int64))
        graph = to_numpy(graph, name="the output of sample inside tf.function")
    if graph.shape != eager.shape or not np.array_equal(graph, eager):
        raise Wrong(
            "inside tf.function it drew other ids than eagerly for the same seed: draw with "
            "tf.random.stateless_categorical(logits, 1, seed=seed), whose draws depend on the "
            "seed alone."
        )


# 04.4 -------------------------------------------------------------------------------------------
_STEPS = 6
_WEIGHT_NAMES = ("kernel", "recurrent_kernel", "bias")
#: The sizes of the chapter's example cell (3 features, 4 units): the check never probes with them.
_CHAPTER_FEATURES, _CHAPTER_UNITS = 3, 4
_DELEGATED = (
    "MinimalRNNCell runs Keras's own SimpleRNNCell: write build (add_weight) and call "
    "(the tanh step) yourself."
)


def _weight_shapes(features: int, units: int) -> tuple[tuple[int, ...], ...]:
    return ((features, units), (units, units), (units,))


@check("04.4", "a recurrent cell as a Keras layer")
def check_rnn_cell(cell_class: type) -> str:
    """Check `MinimalRNNCell` inside `keras.layers.RNN` against `SimpleRNN` with the same weights.

    The sizes are drawn afresh each run (never the chapter's 3 features and 4 units). It compares
    outputs on a batch, inside `tf.function`, and on a padded, masked batch, and the gradients with
    respect to the three weights and to the inputs. A cell that runs Keras's `SimpleRNNCell` fails.
    """
    import keras

    rng = probe_rng()
    features = draw_except(rng, 2, 9, {_CHAPTER_FEATURES, _CHAPTER_UNITS})
    units = draw_except(rng, 2, 9, {_CHAPTER_FEATURES, _CHAPTER_UNITS, features})
    with forbid("keras.layers.SimpleRNNCell", _DELEGATED), forbid(_CHECK_HELPERS, _HELPER_USED):
        cell, layer = _wrapped_cell(cell_class, features, units)
        weights = _expect_weights(cell, features, units)
        reference = keras.layers.SimpleRNN(units, return_sequences=True)
        reference.build((None, None, features))
        values = _random_weights(rng, features, units)
        reference.set_weights(values)
        with learner_code("loading SimpleRNN's weights into your cell"):
            for weight, value in zip(weights, values, strict=True):
                weight.assign(value)
        x = rng.normal(size=(3, _STEPS, features)).astype(np.float32)
        _expect_outputs(layer, reference, x, None, values)
        _expect_in_graph(layer, reference, x)
        _expect_gradients(layer, reference, weights, x, rng)
        lengths = [_STEPS, int(rng.integers(2, _STEPS)), 1]
        _expect_outputs(layer, reference, x, _length_mask(lengths, _STEPS), values)
    return (
        "with SimpleRNN's weights, on sizes drawn at random, its outputs (masked and inside "
        "tf.function too) and gradients (to the weights and the inputs) match SimpleRNN's."
    )


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


def _expect_weights(cell: Any, features: int, units: int) -> list[Any]:
    with learner_code("reading your cell's weights"):
        weights = list(cell.weights)
        shapes = [tuple(int(d) for d in weight.shape) for weight in weights]
    expected_shapes = _weight_shapes(features, units)
    wanted = ", ".join(f"{n} {s}" for n, s in zip(_WEIGHT_NAMES, expected_shapes, strict=True))
    if not shapes:
        raise Wrong(
            "the cell has no weights after build(): create them in build() with "
            f"self.add_weight ({wanted})."
        )
    if shapes == list(expected_shapes):
        _expect_varied_start(cell, weights)
        return weights
    if sorted(shapes) == sorted(expected_shapes):
        raise Wrong(f"its weights come in the order {shapes}; create {wanted}, in that order.")
    if len(shapes) != len(expected_shapes):
        raise Wrong(f"the cell has {len(shapes)} weights, {shapes}; expected 3: {wanted}.")
    for name, shape, expected in zip(_WEIGHT_NAMES, shapes, expected_shapes, strict=True):
        if shape != expected:
            raise Wrong(_shape_mistake(name, shape, expected, features, units))
    return weights


def _expect_varied_start(cell: Any, weights: list[Any]) -> None:
    """The kernels must start random: equal values make every unit compute the same thing."""
    with learner_code("reading your cell's weights"):
        starts = [np.asarray(weight.numpy()) for weight in weights[:2]]
    for name, start in zip(_WEIGHT_NAMES, starts, strict=False):
        if start.size > 1 and np.all(start == start.flat[0]):
            raise Wrong(
                f"its {name} starts with every value {start.flat[0]:g}: every unit would compute "
                "the same thing and get the same gradient, forever. Keep add_weight's default "
                "initializer (glorot_uniform), or orthogonal for the recurrent kernel."
            )


def _shape_mistake(
    name: str, shape: tuple[int, ...], expected: tuple[int, ...], features: int, units: int
) -> str:
    text = f"for {features} input features and {units} units, its {name} has shape {shape}, "
    if shape == expected[::-1]:
        return text + f"expected {expected} (transposed: input features × units)."
    if set(shape) & {_CHAPTER_FEATURES, _CHAPTER_UNITS} and not set(shape) <= {features, units}:
        return text + (
            f"expected {expected}: take the sizes from units and from input_shape[-1] in build, "
            "not from the chapter's example."
        )
    return text + f"expected {expected}."


def _random_weights(rng: np.random.Generator, features: int, units: int) -> list[np.ndarray]:
    """Weights large enough that a missing tanh or bias changes the outputs."""
    scales = (0.8, 0.5, 0.5)
    return [
        (scale * rng.normal(size=shape)).astype(np.float32)
        for scale, shape in zip(scales, _weight_shapes(features, units), strict=True)
    ]


def _run(layer: Any, x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    with _keras_code("keras.layers.RNN(your cell)"):
        outputs = layer(x) if mask is None else layer(x, mask=mask)
        return to_numpy(outputs, name="the output of RNN(your cell)").astype(np.float64)


def _expect_outputs(
    layer: Any, reference: Any, x: np.ndarray, mask: np.ndarray | None, values: list[np.ndarray]
) -> None:
    outputs = _run(layer, x, mask)
    expected = np.asarray(reference(x) if mask is None else reference(x, mask=mask))
    if outputs.shape != expected.shape:
        raise Wrong(
            f"RNN(your cell, return_sequences=True) gave shape {outputs.shape} for input "
            f"{x.shape}, expected {expected.shape}: return h, of shape (batch, units)."
        )
    expect_finite(outputs, name="the output of RNN(your cell)")
    if np.allclose(outputs, expected, rtol=1e-4, atol=1e-5):
        return
    if mask is not None:
        raise Wrong(
            "its outputs match SimpleRNN's on a full batch, but not on a padded batch with a "
            "mask: compute each step from inputs and states alone, with no state kept in "
            "attributes of the cell."
        )
    raise Wrong(_cell_mistake(outputs, x, values))


def _unroll(x: np.ndarray, values: list[np.ndarray], mistake: str = "") -> np.ndarray:
    """The SimpleRNN recurrence in NumPy, or a variant with one of the usual mistakes."""
    kernel, recurrent, bias = values
    activation = {"linear": lambda z: z, "relu": lambda z: np.maximum(z, 0.0),
                  "sigmoid": lambda z: 1 / (1 + np.exp(-z))}.get(mistake, np.tanh)  # fmt: skip
    recurrent = recurrent.T if mistake == "transposed" else recurrent
    state, outputs = np.zeros((x.shape[0], recurrent.shape[0])), []
    for t in range(x.shape[1]):
        fed = 0 * state if mistake == "no_feedback" else state
        new = activation(x[:, t] @ kernel + fed @ recurrent + (0 if mistake == "no_bias" else bias))
        outputs.append(state if mistake == "lagged" else new)
        state = new
    return np.stack(outputs, axis=1)


_CELL_MISTAKES = {
    "linear": "it applies no activation: h = tanh(x W + h_prev U + b)",
    "relu": "it applies ReLU; SimpleRNN's cell applies tanh",
    "sigmoid": "it applies a sigmoid; SimpleRNN's cell applies tanh",
    "no_bias": "it leaves out the bias: add self.bias inside the tanh",
    "no_feedback": "it ignores the previous state: use states[0] as h_prev in h_prev U",
    "transposed": "it multiplies by the transposed recurrent_kernel: compute h_prev @ U",
    "lagged": "it outputs the previous state: return the new h as the output and the new state",
}


def _cell_mistake(outputs: np.ndarray, x: np.ndarray, values: list[np.ndarray]) -> str:
    for mistake, text in _CELL_MISTAKES.items():
        if np.allclose(outputs, _unroll(x, values, mistake), rtol=1e-4, atol=1e-5):
            return f"with SimpleRNN's weights loaded, {text}."
    gap = float(np.abs(outputs - _unroll(x, values)).max())
    return (
        f"with SimpleRNN's weights loaded, its outputs differ from SimpleRNN's by up to "
        f"{gap:.3g}: compute h = tanh(inputs @ kernel + states[0] @ recurrent_kernel + bias)."
    )


def _expect_in_graph(layer: Any, reference: Any, x: np.ndarray) -> None:
    """The layer inside `tf.function`, as `fit()` runs it, gives the eager outputs."""
    import tensorflow as tf

    def graph_call(inputs: Any) -> Any:  # a def, not a lambda: autograph reads its source
        return layer(inputs)

    with _keras_code("RNN(your cell) inside tf.function (as fit() runs it)"):
        outputs = tf.function(graph_call)(tf.constant(x))
        outputs = to_numpy(outputs, name="the output of RNN(your cell) in tf.function")
    if not np.allclose(outputs, np.asarray(reference(x)), rtol=1e-4, atol=1e-5):
        raise Wrong(
            "its outputs match SimpleRNN's eagerly but not inside tf.function: compute call "
            "with TensorFlow ops only, no .numpy() or Python branches on tensor values."
        )


def _expect_gradients(
    layer: Any, reference: Any, weights: list[Any], x: np.ndarray, rng: np.random.Generator
) -> None:
    """A second call on the same batch gives the same outputs, and SimpleRNN's gradients with
    respect to the weights and to the inputs (an Embedding below the cell trains through them)."""
    import tensorflow as tf

    units = int(np.asarray(weights[1].shape)[0])  # the recurrent kernel is units x units
    probe = rng.normal(size=(*x.shape[:2], units)).astype(np.float32)
    inputs = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        expected_outputs = reference(inputs)
        loss = tf.reduce_sum(expected_outputs * probe)
    *expected, expected_input = tape.gradient(loss, [*reference.weights, inputs])
    with _keras_code("the gradient through RNN(your cell)"), tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = tf.cast(layer(inputs), tf.float32)
        *gradients, input_gradient = tape.gradient(
            tf.reduce_sum(outputs * probe), [*weights, inputs]
        )
    if not np.allclose(np.asarray(outputs), np.asarray(expected_outputs), rtol=1e-4, atol=1e-5):
        raise Wrong(
            "called again on the same batch, it gives other outputs: compute each step from "
            "inputs and states alone, with no state kept in attributes of the cell."
        )
    for name, gradient, wanted in zip(
        [*_WEIGHT_NAMES, "the inputs"],
        [*gradients, input_gradient],
        [*expected, expected_input],
        strict=True,
    ):
        if gradient is None:
            raise Wrong(
                f"the gradient with respect to {name} is None: keep the weights trainable, and "
                "compute call with TensorFlow ops (@, tf.tanh), not NumPy, .numpy() or "
                "tf.stop_gradient; a layer below the cell (an Embedding) trains through it."
            )
        if not np.allclose(np.asarray(gradient), np.asarray(wanted), rtol=1e-4, atol=1e-5):
            raise Wrong(
                f"the outputs match SimpleRNN's, but the gradient with respect to {name} does "
                "not: compute call with TensorFlow ops, without tf.stop_gradient."
            )
