"""Judges of chapter 04's checks (probes in `tfcourse.exercises.ch04`)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tfcourse.exercises import ch04 as probes
from tfcourse.exercises._expect import expect_dtype, expect_finite, expect_shape
from tfcourse.exercises._framework import Wrong
from tfcourse.exercises.ch04 import (
    _CHAPTER_FEATURES,
    _CHAPTER_UNITS,
    NAME_ACCURACY_FLOOR,
    SAMPLE_CASES,
    SAMPLE_DRAWS,
    SAMPLE_ROWS,
    SAMPLE_TIE_K,
    SAMPLE_TIE_ROW,
    SAMPLE_TIE_TEMPERATURE,
    SAMPLE_Z_LIMIT,
    _cell_inputs,
    _cell_sizes,
    _cell_weights,
    _classify_batches,
    _name_relabelling,
    _pad_cases,
    _sample_plan,
    _sample_seeds,
)
from tfcourse.exercises.judges._observed import _MALFORMED, array, field, items


# 04.1 -------------------------------------------------------------------------------------------
def pad_and_mask(observed: Any, seed: int) -> str:
    """04.1: post-padded int64 batches, and boolean masks by length."""
    for i, sequences in enumerate(_pad_cases(seed)):
        batch = field(observed, f"batch {i}", dict)
        lengths = [len(row) for row in sequences]
        expected = _post_padded(sequences, fill=0)
        _expect_padded(array(field(batch, "padded")), expected, sequences)
        _expect_mask(array(field(batch, "mask")), lengths, expected, sequences)
    return (
        "post-pads with 0 into int64 Tensors and masks by length, for zeros, an empty sequence, "
        "one sequence, equal lengths, all empty and batches drawn at random."
    )


def _post_padded(sequences: Sequence[Sequence[int]], *, fill: int, pre: bool = False) -> np.ndarray:
    longest = max(len(row) for row in sequences)
    padded = np.full((len(sequences), longest), fill, dtype=np.int64)
    for i, row in enumerate(sequences):
        start = longest - len(row) if pre else 0
        padded[i, start : start + len(row)] = row
    return padded


def _length_mask(lengths: list[int], longest: int) -> np.ndarray:
    return np.arange(longest)[None, :] < np.array(lengths)[:, None]


def _expect_padded(padded: np.ndarray, expected: np.ndarray, sequences: list[list[int]]) -> None:
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


def _expect_mask(
    mask: np.ndarray, lengths: list[int], padded: np.ndarray, sequences: list[list[int]]
) -> None:
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
def name_classifier(observed: Any, seed: int) -> str:
    """04.2: the test names classified above the floor with the classes relabelled, a name's
    logits independent of its batch."""
    from tfcourse import data

    seconds = field(observed, "seconds", (int, float))
    if not math.isfinite(seconds) or seconds < 0:
        raise Wrong(_MALFORMED.format("a training time that is not a number of seconds"))
    if seconds > probes.TRAINING_SECONDS:
        raise Wrong(
            f"train_name_classifier ran for more than {probes.TRAINING_SECONDS:g} s, the time "
            "limit, and was stopped: train for fewer epochs or a smaller model, and check that "
            "each epoch ends (no repeat())."
        )
    relabel = _name_relabelling(seed)
    columns = data.load_numpy("names", "test")
    names, labels = [str(name) for name in columns["name"]], relabel[columns["label"]]
    calls = _classify_batches()
    seen = field(observed, "logits", dict)
    batches = [key for key in calls if key.startswith("test names")]
    logits = np.concatenate([_logits(field(seen, key), len(calls[key])) for key in batches])
    _expect_batch_independent(seen, calls)
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


def _logits(observed: Any, count: int) -> np.ndarray:
    logits = array(observed)
    if logits.shape == (count,):
        raise Wrong(
            f"classify gave one number per name, shape ({count},): return the logits, shape "
            f"({count}, 10), not the predicted ids (argmax)."
        )
    expect_shape(logits, (count, 10), name=f"the output of classify for {count} names")
    expect_finite(logits, name="the output of classify")
    return logits.astype(np.float64)


def _expect_batch_independent(seen: Any, calls: dict[str, list[str]]) -> None:
    short = calls["short alone"][0]
    alone = _logits(field(seen, "short alone"), 1)[0]
    pair = _logits(field(seen, "short, long"), 2)
    if np.allclose(alone, 1.0) or np.allclose(pair.sum(axis=0), 1.0, atol=1e-4):
        raise Wrong(
            "classify normalises over the batch (a softmax over axis 0), so a name's scores "
            "depend on the other names: return the logits, or a softmax over the classes "
            "(axis=-1)."
        )
    if not np.allclose(
        _logits(field(seen, "short alone again"), 1)[0], alone, rtol=1e-4, atol=1e-4
    ):
        raise Wrong(
            f"classify gives {short!r} other logits each time it is called: call the model "
            "with training=False, so that dropout is off."
        )
    beside = pair[0]
    after = _logits(field(seen, "long, short"), 2)[1]
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
class _Draws:
    """The ids each call of `sample` drew, checked as the check in one piece checked each draw."""

    def __init__(self, observed: Any, seed: int) -> None:
        self.observed, self.plan = observed, _sample_plan(seed)

    def __call__(self, name: str) -> np.ndarray:
        logits, temperature, k, _ = self.plan[name]
        ids = array(field(self.observed, name))
        expect_shape(ids, (len(logits),), name=f"the output of sample for {len(logits)} rows")
        expect_dtype(ids, np.int64, name="the output of sample")
        size = logits.shape[1]
        if ids.size and (ids.min() < 0 or ids.max() >= size):
            bad = int(ids.max() if ids.max() >= size else ids.min())
            hint = (
                "return tf.argmax(logits, axis=-1) when the temperature is 0 (dividing by 0 gives "
                "inf and NaN)"
                if temperature == 0
                else "look for inf or NaN in the logits you pass (pass logits / temperature, "
                "not exp(), which overflows)"
            )
            raise Wrong(
                f"with temperature {temperature:g} and k={k}, it drew id {bad}, but the logits "
                f"have {size} ids (0-{size - 1}): {hint}."
            )
        return ids


def sample(observed: Any, seed: int) -> str:
    """04.3: draws from softmax(top-k(logits) / temperature), seeded, in and out of tf.function."""
    draws = _Draws(observed, seed)
    _expect_argmax(draws, 0.0)
    for temperature, k in SAMPLE_CASES:
        _expect_distribution(draws, temperature, k)
    _expect_argmax(draws, 0.01)
    _expect_ties(draws)
    chosen, others = _sample_seeds(seed)
    _expect_seeded(draws, chosen, others)
    draws("one row")  # a batch of one row, as the chapter's generator samples, gives shape (1,)
    _expect_in_graph_sample(draws, observed)
    return (
        "draws from softmax(top-k(logits) / temperature) per row, returns the argmax at "
        "temperature 0, repeats its draws for the same seed (and changes them with either part "
        "of it), for one row too and inside tf.function."
    )


def _expect_argmax(draws: _Draws, temperature: float) -> None:
    """At temperature 0, and (all but surely) at 0.01, every row must give its argmax."""
    for k in (None, 3):
        name = f"argmax at {temperature:g}, k={k}"
        logits = draws.plan[name][0]
        ids, wanted = draws(name), logits.argmax(axis=1)
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


def _expect_distribution(draws: _Draws, temperature: float, k: int | None) -> None:
    ids = draws(f"frequencies at {temperature:g}, k={k}")
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


def _expect_ties(draws: _Draws) -> None:
    """A tie at the k-th logit: exactly k kept, or every tied one; both conventions are right.

    A tie broken at random must still follow the seed: the same seed, the same ids.
    """
    row, k, temperature = SAMPLE_TIE_ROW, SAMPLE_TIE_K, SAMPLE_TIE_TEMPERATURE
    ids = draws("a tie")
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
    if not np.array_equal(ids, draws("a tie again")):
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


def _expect_seeded(draws: _Draws, seed: list[int], others: list[list[int]]) -> None:
    first = draws("a seed")
    if not np.array_equal(first, draws("the same seed")):
        raise Wrong(
            "two calls with the same seed drew different ids: draw with "
            "tf.random.stateless_categorical(..., seed=seed), not tf.random.categorical."
        )
    for i, (part, other) in enumerate(zip((0, 1, None), others, strict=True)):
        if np.array_equal(first, draws(f"another seed {i}")):
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


def _expect_in_graph_sample(draws: _Draws, observed: Any) -> None:
    """In `tf.function`, as the chapter's generator runs it, the same seed draws the same ids."""
    eager = draws("eagerly")
    graph = array(field(observed, "in tf.function"))
    if graph.shape != eager.shape or not np.array_equal(graph, eager):
        raise Wrong(
            "inside tf.function it drew other ids than eagerly for the same seed: draw with "
            "tf.random.stateless_categorical(logits, 1, seed=seed), whose draws depend on the "
            "seed alone."
        )


# 04.4 -------------------------------------------------------------------------------------------
_WEIGHT_NAMES = ("kernel", "recurrent_kernel", "bias")


def _weight_shapes(features: int, units: int) -> tuple[tuple[int, ...], ...]:
    return ((features, units), (units, units), (units,))


def rnn_cell(observed: Any, seed: int) -> str:
    """04.4: with SimpleRNN's weights loaded, SimpleRNN's outputs and gradients."""
    rng = np.random.default_rng(seed)
    features, units = _cell_sizes(rng)
    _expect_weights(observed, features, units)
    values = _cell_weights(rng, _weight_shapes(features, units))
    x, cotangent, mask = _cell_inputs(rng, features, units)
    field(observed, "loading")  # a deferred failure to load the weights is raised here
    reference = _simple_rnn(features, units, values)
    _expect_outputs(field(observed, "outputs"), reference, x, None, values)
    _expect_in_graph(field(observed, "in tf.function"), reference, x)
    _expect_gradients(field(observed, "gradients", dict), reference, x, cotangent)
    _expect_outputs(field(observed, "masked outputs"), reference, x, mask, values)
    return (
        "with SimpleRNN's weights, on sizes drawn at random, its outputs (masked and inside "
        "tf.function too) and gradients (to the weights and the inputs) match SimpleRNN's."
    )


def _simple_rnn(features: int, units: int, values: list[np.ndarray]) -> Any:
    import keras

    reference = keras.layers.SimpleRNN(units, return_sequences=True)
    reference.build((None, None, features))
    reference.set_weights(values)
    return reference


def _expect_weights(observed: Any, features: int, units: int) -> None:
    shapes = [
        tuple(items(shape, kind=int)) for shape in items(field(observed, "shapes", list), kind=list)
    ]
    expected_shapes = _weight_shapes(features, units)
    wanted = ", ".join(f"{n} {s}" for n, s in zip(_WEIGHT_NAMES, expected_shapes, strict=True))
    if not shapes:
        raise Wrong(
            "the cell has no weights after build(): create them in build() with "
            f"self.add_weight ({wanted})."
        )
    if shapes == list(expected_shapes):
        _expect_varied_start(field(observed, "starts", list))
        return
    if sorted(shapes) == sorted(expected_shapes):
        raise Wrong(f"its weights come in the order {shapes}; create {wanted}, in that order.")
    if len(shapes) != len(expected_shapes):
        raise Wrong(f"the cell has {len(shapes)} weights, {shapes}; expected 3: {wanted}.")
    for name, shape, expected in zip(_WEIGHT_NAMES, shapes, expected_shapes, strict=True):
        if shape != expected:
            raise Wrong(_shape_mistake(name, shape, expected, features, units))


def _expect_varied_start(observed: Any) -> None:
    """The kernels must start random: equal values make every unit compute the same thing."""
    starts = [array(start) for start in items(observed, 2)]
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


def _expect_outputs(
    observed: Any, reference: Any, x: np.ndarray, mask: np.ndarray | None, values: list[np.ndarray]
) -> None:
    outputs = array(observed)
    expected = np.asarray(reference(x) if mask is None else reference(x, mask=mask))
    if outputs.shape != expected.shape:
        raise Wrong(
            f"RNN(your cell, return_sequences=True) gave shape {outputs.shape} for input "
            f"{x.shape}, expected {expected.shape}: return h, of shape (batch, units)."
        )
    expect_finite(outputs, name="the output of RNN(your cell)")
    outputs = outputs.astype(np.float64)
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


def _expect_in_graph(observed: Any, reference: Any, x: np.ndarray) -> None:
    """The layer inside `tf.function`, as `fit()` runs it, gives the eager outputs."""
    outputs = array(observed)
    expected = np.asarray(reference(x))
    if outputs.shape != expected.shape or not np.allclose(outputs, expected, rtol=1e-4, atol=1e-5):
        raise Wrong(
            "its outputs match SimpleRNN's eagerly but not inside tf.function: compute call "
            "with TensorFlow ops only, no .numpy() or Python branches on tensor values."
        )


def _expect_gradients(observed: Any, reference: Any, x: np.ndarray, cotangent: np.ndarray) -> None:
    """A second call on the same batch gives the same outputs, and SimpleRNN's gradients with
    respect to the weights and to the inputs (an Embedding below the cell trains through them)."""
    import tensorflow as tf

    inputs = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        expected_outputs = reference(inputs)
        loss = tf.reduce_sum(expected_outputs * cotangent)
    *expected, expected_input = tape.gradient(loss, [*reference.weights, inputs])
    outputs = array(field(observed, "outputs"))
    gradients = items(field(observed, "gradients", list), 4)
    if outputs.shape != tuple(expected_outputs.shape) or not np.allclose(
        outputs, np.asarray(expected_outputs), rtol=1e-4, atol=1e-5
    ):
        raise Wrong(
            "called again on the same batch, it gives other outputs: compute each step from "
            "inputs and states alone, with no state kept in attributes of the cell."
        )
    for name, gradient, wanted in zip(
        [*_WEIGHT_NAMES, "the inputs"], gradients, [*expected, expected_input], strict=True
    ):
        if gradient is None:
            raise Wrong(
                f"the gradient with respect to {name} is None: keep the weights trainable, and "
                "compute call with TensorFlow ops (@, tf.tanh), not NumPy, .numpy() or "
                "tf.stop_gradient; a layer below the cell (an Embedding) trains through it."
            )
        gradient, wanted = array(gradient), np.asarray(wanted)
        if gradient.shape != wanted.shape or not np.allclose(
            gradient, wanted, rtol=1e-4, atol=1e-5
        ):
            raise Wrong(
                f"the outputs match SimpleRNN's, but the gradient with respect to {name} does "
                "not: compute call with TensorFlow ops, without tf.stop_gradient."
            )
