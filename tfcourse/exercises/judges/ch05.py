"""Judges of chapter 05's checks (probes in `tfcourse.exercises.ch05`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tfcourse.exercises._expect import expect_shape
from tfcourse.exercises._framework import Wrong
from tfcourse.exercises.ch05 import (
    _BASE,
    _PAD,
    _VOCAB,
    BEAM_CASES,
    GREEDY_CASES,
    MASKED_WEIGHT_LIMIT,
    _attention_cases,
    _Call,
    _Case,
    _Model,
    _teacher_cases,
)
from tfcourse.exercises.judges._observed import _MALFORMED, array, field, items, settled

# 05.1 -------------------------------------------------------------------------------------------
_NOTEBOOK_IDS = (1, 2)  # the notebook's START and END
_COUNT = "tf.reduce_sum(tf.cast(tokens != PAD, tf.int32), axis=1)"
_INPUTS_FIX = "START, then the tokens: tf.pad(tokens, [[0, 0], [1, 0]], constant_values=start_id)"


def teacher_forcing(observed: Any, seed: int) -> str:
    """05.1: each batch's (decoder_inputs, decoder_targets), or the mistake that made them."""
    cases = _teacher_cases(seed)
    for one, (tokens, start_id, end_id, _) in zip(items(observed, len(cases)), cases, strict=True):
        one = settled(one)
        inputs, targets = array(field(one, "inputs")), array(field(one, "targets"))
        _expect_pair(inputs, targets, tokens, start_id, end_id)
    return (
        "returns (START then the tokens, the tokens with end_id right after each row's last real "
        "token), both (batch, T + 1) in the dtype of tokens, padding kept PAD, for full and "
        "one-token rows, Tensors and arrays."
    )


def _teacher_pair(tokens: np.ndarray, start_id: int, end_id: int) -> tuple[np.ndarray, ...]:
    """The expected (decoder_inputs, decoder_targets)."""
    start = np.full((len(tokens), 1), start_id, dtype=tokens.dtype)
    return np.concatenate([start, tokens], axis=1), _with_end(tokens, end_id, _lengths(tokens))


def _lengths(tokens: np.ndarray) -> np.ndarray:
    return (tokens != _PAD).sum(axis=1)


def _with_end(tokens: np.ndarray, end_id: int, at: np.ndarray, *, add: bool = False) -> np.ndarray:
    """tokens, a PAD column after them, and end_id at index `at` of each row (where it fits)."""
    batch, length = tokens.shape
    result = np.concatenate([tokens, np.zeros((batch, 1), tokens.dtype)], axis=1)
    rows = np.flatnonzero((at >= 0) & (at <= length))
    if add:  # END added to the token there, as tf.one_hot(...) * end_id adds it
        result[rows, at[rows]] += end_id
    else:
        result[rows, at[rows]] = end_id
    return result


def _expect_pair(
    inputs: np.ndarray, targets: np.ndarray, tokens: np.ndarray, start_id: int, end_id: int
) -> None:
    want_inputs, want_targets = _teacher_pair(tokens, start_id, end_id)
    if np.array_equal(inputs, want_targets) and np.array_equal(targets, want_inputs):
        raise Wrong(
            "it returns (decoder_targets, decoder_inputs): the pair is the other way round; "
            "return the inputs first, `return decoder_inputs, decoder_targets`."
        )
    _expect_pair_shape(inputs, targets, tokens, start_id, end_id)
    for answer, name in ((inputs, "the decoder inputs"), (targets, "the decoder targets")):
        if answer.dtype != tokens.dtype:
            raise Wrong(_pair_dtype_mistake(answer, tokens, name))
    swapped = _teacher_pair(tokens, end_id, start_id)
    if np.array_equal(inputs, swapped[0]) and np.array_equal(targets, swapped[1]):
        raise Wrong(_ids_mistake(start_id, end_id))
    if not np.array_equal(targets, want_targets):
        raise Wrong(_targets_mistake(targets, tokens, start_id, end_id))
    if not np.array_equal(inputs, want_inputs) and not np.array_equal(
        inputs, _end_fed_inputs(tokens, start_id, end_id)
    ):
        raise Wrong(_inputs_mistake(inputs, tokens, start_id, end_id))


def _end_fed_inputs(tokens: np.ndarray, start_id: int, end_id: int) -> np.ndarray:
    """START + targets[:, :-1], the chapter's own convention: END is fed after a row's last token
    where the row has padding. The loss ignores that position (its target is PAD), so both train
    alike."""
    targets = _teacher_pair(tokens, start_id, end_id)[1]
    start = np.full((len(tokens), 1), start_id, dtype=tokens.dtype)
    return np.concatenate([start, targets[:, :-1]], axis=1)


def _pair_dtype_mistake(array: np.ndarray, tokens: np.ndarray, name: str) -> str:
    if array.dtype.kind not in "iu":
        return (
            f"{name} have dtype {array.dtype}; keep the dtype of tokens ({tokens.dtype}), integer "
            "ids for an Embedding layer: tf.one_hot returns float32 unless you pass "
            "dtype=tokens.dtype."
        )
    return (
        f"{name} have dtype {array.dtype}, but tokens are {tokens.dtype}: keep the dtype of "
        "tokens (np.full and tf.one_hot pick their own unless you pass dtype=tokens.dtype)."
    )


def _expect_pair_shape(
    inputs: np.ndarray, targets: np.ndarray, tokens: np.ndarray, start_id: int, end_id: int
) -> None:
    batch, length = tokens.shape
    wanted = (batch, length + 1)
    longer = "both are one column longer than tokens, (batch, T + 1)"
    if targets.shape == tokens.shape:
        replaced = _with_end(tokens, end_id, _lengths(tokens) - 1)[:, :length]
        if np.array_equal(targets, replaced):
            raise Wrong(
                f"the decoder targets have shape {targets.shape}, the shape of tokens: END "
                "replaces each row's last real token. Keep every token and put END right after "
                f"it, at index length, so {longer}: tf.pad(tokens, [[0, 0], [0, 1]]), then END."
            )
        raise Wrong(
            f"the decoder targets have shape {targets.shape}, the shape of tokens, so a full row "
            f"has no room for END: {longer}; pad tokens with a column, tf.pad(tokens, "
            "[[0, 0], [0, 1]]), and use depth T + 1 in tf.one_hot."
        )
    if inputs.shape == tokens.shape:
        if np.array_equal(inputs, _teacher_pair(tokens, start_id, end_id)[0][:, :-1]):
            raise Wrong(
                f"the decoder inputs have shape {inputs.shape}: START + tokens[:, :-1] drops each "
                "row's last token (the chapter's shift, for targets that already hold END); here "
                f"{longer}: {_INPUTS_FIX}."
            )
        raise Wrong(f"the decoder inputs have shape {inputs.shape}, the shape of tokens; {longer}.")
    expect_shape(inputs, wanted, name="decoder_inputs")
    expect_shape(targets, wanted, name="decoder_targets")


def _ids_mistake(start_id: int, end_id: int) -> str:
    if (end_id, start_id) == _NOTEBOOK_IDS:
        return (
            f"it uses START = {end_id} and END = {start_id}, the notebook's constants, but this "
            f"call passes start_id={start_id} and end_id={end_id}: use the arguments, not "
            "START and END."
        )
    return (
        f"START and END are swapped: the inputs begin with end_id ({end_id}) and the targets' "
        f"END is start_id ({start_id}); the inputs begin with start_id, and end_id follows each "
        "row's last real token."
    )


def _targets_mistake(targets: np.ndarray, tokens: np.ndarray, start_id: int, end_id: int) -> str:
    length, real = tokens.shape[1], _lengths(tokens)
    expected, padded = _with_end(tokens, end_id, real), _with_end(tokens, _PAD, real)
    if np.array_equal(targets, padded):
        return (
            "the decoder targets have no END: put end_id right after each row's last real "
            f"token, at index length (the count of its non-PAD tokens, {_COUNT})."
        )
    if np.array_equal(targets, _with_end(tokens, end_id, np.full_like(real, length))):
        return (
            f"END is at the very end of each row (index T = {length}), after the padding; put it "
            f"right after the last real token: count the non-PAD tokens, {_COUNT}, not the "
            "length of the row."
        )
    if any(
        np.array_equal(targets, _with_end(tokens, end_id, real - 1, add=a)) for a in (False, True)
    ):
        return (
            "END lands on each row's last real token (index length - 1); put it right after "
            f"it, at index length = {_COUNT}."
        )
    if np.array_equal(targets, _with_end(tokens, end_id, real + 1)):
        return (
            "END comes one position late (index length + 1), after a PAD; put it at index "
            "length, right after the last real token."
        )
    if np.array_equal(targets, np.where(padded == _PAD, end_id, padded)):
        return (
            "it writes END into every padding position: only one END, right after the last "
            "real token; the padding after it stays PAD (0)."
        )
    return _end_value_mistake(targets, expected, tokens, start_id, end_id)


def _end_value_mistake(
    targets: np.ndarray, expected: np.ndarray, tokens: np.ndarray, start_id: int, end_id: int
) -> str:
    batch, length = tokens.shape
    at = np.zeros(expected.shape, bool)
    at[np.arange(batch), _lengths(tokens)] = True
    values = np.unique(targets[at])
    if np.array_equal(targets[~at], expected[~at]) and len(values) == 1:
        return (
            f"the END after each row's tokens is {values[0]}, but end_id is {end_id}: use the "
            "end_id argument, not a constant."
        )
    wrong = (targets != expected).any(axis=1)
    full = _lengths(tokens) == length
    row = int(np.flatnonzero(wrong)[0])
    shown = f"row {row} of the decoder targets is {targets[row].tolist()}"
    if np.all(wrong == full):
        return (
            f"{shown}, but it has no padding, so END goes in the new last column (index T = "
            f"{length}). tf.argmax of tokens == PAD gives 0 for a row without PAD; count the "
            f"non-PAD tokens instead, {_COUNT}."
        )
    if np.all(targets[:, 0] == start_id):
        return f"{shown}: the targets do not begin with START; they are the tokens, then END."
    return (
        f"{shown}, expected {expected[row].tolist()}: the row's tokens, end_id ({end_id}) right "
        "after the last real token, then PAD."
    )


def _inputs_mistake(inputs: np.ndarray, tokens: np.ndarray, start_id: int, end_id: int) -> str:
    first, rest = inputs[:, 0], inputs[:, 1:]
    if np.array_equal(inputs, _with_end(tokens, _PAD, _lengths(tokens))):
        return (
            "the decoder inputs have no START: they are the tokens, then a PAD column; the "
            f"inputs are {_INPUTS_FIX}."
        )
    if np.array_equal(inputs[:, :-1], tokens) and np.all(inputs[:, -1] == start_id):
        return (
            "the decoder inputs are the tokens shifted left, with START after them (paddings "
            f"[[0, 0], [0, 1]]); shift them right: {_INPUTS_FIX}."
        )
    if np.array_equal(rest, tokens) and np.all(first == first[0]):
        if first[0] == _PAD:
            return (
                "the decoder inputs begin with PAD (0), not START: tf.pad fills with 0 unless "
                "you pass constant_values=start_id."
            )
        return (
            f"the decoder inputs begin with {first[0]}, but start_id is {start_id}: use the "
            "start_id argument, not a constant."
        )
    if np.all(first == start_id) and np.all(tokens[rest != tokens] == _PAD):
        return (
            "it changes the padding: positions that hold PAD (0) in tokens stay 0 in the "
            f"decoder inputs, which are {_INPUTS_FIX}."
        )
    expected = _teacher_pair(tokens, start_id, end_id)[0]
    row = int(np.flatnonzero((inputs != expected).any(axis=1))[0])
    return (
        f"row {row} of the decoder inputs is {inputs[row].tolist()}, expected "
        f"{expected[row].tolist()}: {_INPUTS_FIX}, with start_id={start_id}."
    )


# 05.2 -------------------------------------------------------------------------------------------
def attention_weights(observed: Any, seed: int) -> str:
    """05.2: softmax(q·k) over the keys, padded keys at exactly 0, for each (query, keys, mask)."""
    cases = _attention_cases(seed)
    for weights, (query, keys, mask) in zip(items(observed, len(cases)), cases, strict=True):
        _expect_attention(array(weights), query, keys, mask)
    return (
        "softmax over the keys of the unscaled dot products q·k, with exactly no weight on "
        "padded keys and rows that sum to 1 (rows with a real key, sizes drawn at random), as "
        "keras.layers.Attention() computes them."
    )


def _masked_softmax(scores: np.ndarray, mask: np.ndarray | None, axis: int = -1) -> np.ndarray:
    if mask is not None:
        scores = np.where(mask[:, None, :], scores, -1e9)
    shifted = np.exp(scores - scores.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def _scores(query: np.ndarray, keys: np.ndarray) -> np.ndarray:
    return np.einsum("bqd,bkd->bqk", query.astype(np.float64), keys.astype(np.float64))


def reference_attention(query: Any, keys: Any, mask: Any) -> np.ndarray:
    """The expected weights, in float64: softmax over the keys of q·k, padded keys at -1e9."""
    return _masked_softmax(_scores(np.asarray(query), np.asarray(keys)), np.asarray(mask, bool))


def _close(actual: np.ndarray, expected: np.ndarray) -> bool:
    return actual.shape == expected.shape and np.allclose(actual, expected, rtol=1e-4, atol=1e-5)


def _expect_attention(
    weights: np.ndarray, query: np.ndarray, keys: np.ndarray, mask: np.ndarray
) -> None:
    batch, queries, count = *query.shape[:2], keys.shape[1]
    name = "the attention weights"
    if weights.shape == (batch, count, queries):
        raise Wrong(
            f"{name} have shape {weights.shape}, (batch, keys, queries); the last axis must run "
            "over the keys: scores = tf.matmul(query, keys, transpose_b=True)."
        )
    if weights.shape == (batch, queries, queries) and queries != count:
        raise Wrong(
            f"{name} have shape {weights.shape}, (batch, queries, queries): it scores the "
            "queries against themselves; score them against the keys, query @ keys^T."
        )
    expect_shape(weights, (batch, queries, count), name="the output")
    w = weights.astype(np.float64)
    _expect_softmax_axis(w)
    if np.isnan(w).any():
        raise Wrong(
            f"{name} contain NaN at {int(np.isnan(w).sum())} of {w.size} positions: 0 * -inf "
            "is NaN, so don't multiply the mask into -inf scores; use tf.where(mask[:, None, :], "
            "scores, -1e9) before the softmax."
        )
    if not np.isfinite(w).all():
        raise Wrong(f"{name} contain infinite values; a softmax gives values from 0 to 1.")
    scores = _scores(query, keys)
    sums = w.sum(axis=-1)
    if not np.allclose(sums, 1.0, atol=1e-4):
        raise Wrong(_sum_mistake(w, sums, scores, mask))
    padded = np.broadcast_to(~mask[:, None, :], w.shape)
    if w[padded].size and w[padded].max() > MASKED_WEIGHT_LIMIT:
        raise Wrong(_leak_mistake(w, padded, scores, mask))
    if _close(w, _masked_softmax(scores, mask)):
        return
    raise Wrong(_score_mistake(w, query, keys, mask))


def _sums_to_one(w: np.ndarray, axis: int) -> bool:
    sums = w.sum(axis=axis)
    finite = np.isfinite(sums)
    return bool(finite.mean() >= 0.5 and np.allclose(sums[finite], 1.0, atol=1e-4))


def _expect_softmax_axis(w: np.ndarray) -> None:
    if _sums_to_one(w, -1):
        return
    for axis, what in ((1, "the queries (axis 1)"), (0, "the batch (axis 0)")):
        if _sums_to_one(w, axis):
            raise Wrong(
                f"the weights sum to 1 over {what}; take the softmax over the keys, the last "
                "axis: tf.nn.softmax(scores, axis=-1)."
            )


def _sum_mistake(w: np.ndarray, sums: np.ndarray, scores: np.ndarray, mask: np.ndarray) -> str:
    row, query = (int(i) for i in np.argwhere(~np.isclose(sums, 1.0, atol=1e-4))[0])
    if _close(w, _masked_softmax(scores, None) * mask[:, None, :]):
        return (
            f"it zeroes the padded keys' weights after the softmax, so the weights of row {row} "
            f"sum to {sums[row, query]:.4g}, not 1: mask the scores before the softmax "
            "(tf.where(mask[:, None, :], scores, -1e9)), or divide by the new sum."
        )
    return (
        f"the weights of query {query} in row {row} sum to {sums[row, query]:.4g}, not 1: end "
        "with a softmax over the last axis (the keys)."
    )


def _leak_mistake(w: np.ndarray, padded: np.ndarray, scores: np.ndarray, mask: np.ndarray) -> str:
    partial = ~mask.all(axis=1)
    real = np.broadcast_to(mask[:, None, :], w.shape) & partial[:, None, None]
    if w[real].max() <= MASKED_WEIGHT_LIMIT:
        return (
            "the mask is inverted: the weights fall on the padded keys. mask is True at real "
            "keys; keep their scores and set the others to -1e9: tf.where(mask[:, None, :], "
            "scores, -1e9)."
        )
    if _close(w, _masked_softmax(scores, None)):
        return (
            "it ignores the mask, so padded keys get weight: set their scores to -1e9 before the "
            "softmax, tf.where(mask[:, None, :], scores, -1e9)."
        )
    if _close(w, _masked_softmax(scores * mask[:, None, :], None)):
        return (
            "it multiplies the scores by the mask: a padded key's score becomes 0, not -inf, "
            "and still gets weight; use tf.where(mask[:, None, :], scores, -1e9)."
        )
    if w[padded].max() > 0.01:
        return (
            f"keys where the mask argument is False get weights up to {w[padded].max():.3g}: "
            "mask exactly the keys the mask you are given marks False, with "
            "tf.where(mask[:, None, :], scores, -1e9) before the softmax."
        )
    return (
        f"padded keys get weights up to {w[padded].max():.3g}, not exactly 0: give their scores "
        "-1e9 (or -inf), not a small negative number, before the softmax."
    )


def _score_mistake(w: np.ndarray, query: np.ndarray, keys: np.ndarray, mask: np.ndarray) -> str:
    scores, depth = _scores(query, keys), query.shape[-1]
    if _close(w, _masked_softmax(scores / np.sqrt(depth), mask)):
        return (
            f"it divides the scores by sqrt(d) = sqrt({depth}), as Transformers do; Luong's dot "
            "product, keras.layers.Attention()'s default, does not scale: softmax(q·k)."
        )
    if keys.shape[1] == depth:
        untransposed = np.einsum("bqd,bdk->bqk", query, keys)
        if _close(w, _masked_softmax(untransposed, mask)):
            return (
                "it multiplies the query by the keys without transposing them: scores = "
                "tf.matmul(query, keys, transpose_b=True), so that the features meet."
            )
    expected = _masked_softmax(scores, mask)
    wrong = ~np.isclose(w, expected, rtol=1e-4, atol=1e-5)
    row, query_index, key = (int(i) for i in np.argwhere(wrong)[0])
    return (
        f"the weight of key {key} for query {query_index} in row {row} is "
        f"{w[row, query_index, key]:.5g}, expected {expected[row, query_index, key]:.5g}: "
        "weights = softmax over the keys of query @ keys^T, padded keys at -1e9."
    )


# 05.3 and 05.4: what the probe saw of a decoder ------------------------------------------------
def _decoding(observed: Any, case: _Case) -> tuple[_Model, list[list[int]]]:
    """A model of `case` holding the calls the probe recorded, and the sequences decoded."""
    observed = settled(observed)
    model = _Model(case)
    for one in items(field(observed, "calls", list), kind=dict):
        tokens = _ints(field(one, "tokens", list), 0, _VOCAB)
        codes = _ints(field(one, "codes", list), 0, _BASE ** (case.max_length + 2))
        if len(tokens) != len(codes):
            raise Wrong(_MALFORMED.format("a call with as many tokens as prefixes"))
        model.calls.append(_Call(np.array(tokens, np.int64), np.array(codes, np.int64)))
    for one in items(field(observed, "evaluated", list), kind=list):
        prefix = _ints(one)
        if not prefix:
            raise Wrong(_MALFORMED.format("an evaluated prefix without its row"))
        model.evaluated.add((prefix[0], tuple(prefix[1:])))
    rows = items(field(observed, "sequences", list), len(case.rows), kind=list)
    return model, [_ints(tokens) for tokens in rows]


def _ints(values: list[Any], low: int | None = None, high: int | None = None) -> list[int]:
    """`values`, which must all be ints (from `low` up to `high`, where given)."""
    if not all(isinstance(value, int) and not isinstance(value, bool) for value in values):
        raise Wrong(_MALFORMED.format("expected token ids, of type int"))
    if (low is not None and any(v < low for v in values)) or (
        high is not None and any(v >= high for v in values)
    ):
        raise Wrong(_MALFORMED.format("a token id or prefix that step_fn never passes"))
    return list(values)


def _score(model: _Model, row: int, tokens: list[int]) -> float:
    """The summed log-prob of `tokens`, END's included when it is shorter than max_length (-inf
    for an id outside the vocabulary)."""
    case = model.case
    fed, total = (case.start_id,), 0.0
    ending = [case.end_id] if len(tokens) < case.max_length else []
    for token in [*tokens, *ending]:
        if not 0 <= token < _VOCAB:
            return -np.inf
        total += float(model.log_probs(row, fed)[token])
        fed = (*fed, token)
    return total


def _edge_mistake(row: int, tokens: list[int], want: list[int], case: _Case) -> str | None:
    """START or END left in a sequence, or tokens after END."""
    start, end = case.start_id, case.end_id
    if tokens[:1] == [start] and start not in want[:1]:
        return f"row {row} begins with start_id ({start}); return only the generated tokens."
    if end in tokens:
        at = tokens.index(end)
        if at == len(tokens) - 1:
            return f"row {row} ends with end_id ({end}); leave END out of the result."
        return (
            f"row {row} goes on after END: {tokens}; a sequence stops at its first END, which "
            "is left out (cut each row there)."
        )
    return None


def _search(case: _Case, method: Callable[..., Any], **options: Any) -> Any:
    """`method` (a `tfcourse.decoding` search) over `case`'s hand-made model."""
    model = _Model(case)
    return method(
        model.step_fn,
        model.initial_state(),
        batch_size=len(case.rows),
        start_id=case.start_id,
        end_id=case.end_id,
        max_length=case.max_length,
        **options,
    )


# 05.3 -------------------------------------------------------------------------------------------
def greedy_decode(observed: Any, seed: int) -> str:
    """05.3: the sequences of `tfcourse.decoding.greedy_search`, and step_fn fed as it feeds it."""
    for one, case in zip(items(observed, len(GREEDY_CASES)), GREEDY_CASES, strict=True):
        expected = _greedy(case)
        model, sequences = _decoding(one, case)
        _expect_greedy_calls(model)
        for row, (tokens, want) in enumerate(zip(sequences, expected, strict=True)):
            if tokens != want:
                raise Wrong(_greedy_mistake(row, tokens, want, model))
    return (
        "matches tfcourse.decoding.greedy_search: it feeds back each argmax, carries the state, "
        "and stops each row at END or after max_length tokens, without START or END."
    )


def _greedy(case: _Case) -> list[list[int]]:
    from tfcourse import decoding

    return _search(case, decoding.greedy_search).tokens


def _expect_greedy_calls(model: _Model) -> None:
    start, calls = model.case.start_id, model.calls
    if not calls:
        raise Wrong("greedy_decode never called step_fn; call it once per generated token.")
    if not np.all(calls[0].tokens == start):
        raise Wrong(
            f"the first tokens fed to step_fn were {calls[0].tokens.tolist()}; feed start_id "
            f"({start}) to every row first."
        )
    if len(calls) > 1 and all(np.all(c.tokens == start) for c in calls):
        raise Wrong(
            "it feeds start_id at every step; feed back each row's prediction (the argmax of "
            "the last log_probs) as its next token."
        )
    if any(np.any((c.codes == 0) & (c.tokens != start)) for c in calls):
        raise Wrong(
            "it passes initial_state at every step, so the model forgets what it read: carry "
            "the state forward (state = the new_state step_fn returned)."
        )


def _greedy_mistake(row: int, tokens: list[int], want: list[int], model: _Model) -> str:
    case = model.case
    edge = _edge_mistake(row, tokens, want, case)
    if edge:
        return edge
    limit = case.max_length
    if len(want) == limit and len(tokens) == limit + 1 and tokens[:limit] == want:
        return (
            f"row {row} has {len(tokens)} tokens, one more than max_length ({limit}): generate "
            "at most max_length tokens."
        )
    if len(want) == limit and tokens == want[:-1]:
        return f"row {row} stops one token short of max_length ({limit}); generate max_length."
    if tokens == want[1:]:
        return f"row {row} lacks its first generated token, {want[0]}: keep every prediction."
    fed = (case.start_id,)
    for step, token in enumerate(tokens, start=1):
        best = int(np.argmax(model.log_probs(row, fed)))
        if token != best:
            return (
                f"at step {step}, row {row} takes token {token}, but {best} has the highest "
                "log-prob: take the argmax over the vocabulary, tf.argmax(log_probs, axis=-1), "
                "not a sample."
            )
        fed = (*fed, token)
    return f"row {row} is {tokens}, expected {want}."


# 05.4 -------------------------------------------------------------------------------------------
# How the rows of BEAM_CASES with a table catch mistakes (notes kept here, with the answers):
# - case 0, row 0 (seed 31): greedy search goes 3, 4, 3, ...; [3] then END is best, and drops out
#   of a beam of two that keeps finished hypotheses, pushed out by 3, 4, 3 and 3, 4, 4.
# - case 0, row 3 (seed 34): [4, 3] is best, found in the second slot and moved to the first: a
#   beam search that does not reorder the state reads [3, 3]'s log-probs for it.
# - case 0, row 4 (seed 57): the best sequence, [3, 3, 3, 3, 3], reaches max_length without END,
#   after [] has finished at step 1: a search that prefers any finished hypothesis to the live
#   ones, or that runs max_length - 1 steps, misses it.
# - case 1, row 1 (seed 43): so sure of [2] that a beam search ranking the whole batch at once
#   gives its hypotheses to the first row.
def beam_search(observed: Any, seed: int) -> str:
    """05.4: each row's best sequence, by `tfcourse.decoding.exhaustive_search`, found by a search
    that reads at most beam_width prefixes a step, and greedy search's with ``beam_width=1``.

    Every prefix of a row's sequence must have been fed to step_fn with that row's state.
    """
    seen = items(observed, len(BEAM_CASES) + 1)
    runs = []
    for one, case in zip(seen, BEAM_CASES, strict=False):
        best = _best(case)
        model, sequences = _decoding(one, case)
        for row, tokens in enumerate(sequences):
            _expect_beam_row(row, tokens, best[row][0], model)
        _expect_beam_width_kept(model)
        runs.append((best, model, sequences))
    for best, model, sequences in runs:
        scores = [_score(model, row, tokens) for row, tokens in enumerate(sequences)]
        worse = [row for row, (_, top) in enumerate(best) if scores[row] < top - 1e-4]
        if worse:
            raise Wrong(_beam_mistake(worse[0], sequences, scores, best, model))
    case = BEAM_CASES[0]
    _, sequences = _decoding(seen[-1], case)
    for row, (tokens, want) in enumerate(zip(sequences, _greedy(case), strict=True)):
        if tokens != want:
            raise Wrong(
                f"with beam_width=1, row {row} is {tokens}, but greedy search gives {want}: one "
                "beam keeps only the best extension at every step, as greedy search does."
            )
    return (
        "finds each row's best sequence (the highest summed log-prob, END included, checked "
        "against every possible sequence) where greedy search misses it, and equals greedy "
        "search with beam_width=1."
    )


def _expect_beam_width_kept(model: _Model) -> None:
    """A beam search extends at most beam_width hypotheses of a row per step: over max_length steps,
    at most beam_width * max_length distinct prefixes of each row reach step_fn (a wider search,
    or an exhaustive one, reads more)."""
    case = model.case
    limit = case.beam_width * case.max_length
    for row in range(len(case.rows)):
        read = sum(1 for r, _ in model.evaluated if r == row)
        if read > limit:
            raise Wrong(
                f"step_fn read {read} different prefixes of row {row}, more than beam_width "
                f"({case.beam_width}) per step for max_length ({case.max_length}) steps allows "
                f"({limit}): after each step keep only the beam_width best hypotheses of each row "
                "(a search that keeps more is not a beam search of that width)."
            )


def _best(case: _Case) -> list[tuple[list[int], float]]:
    from tfcourse import decoding

    found = _search(case, decoding.exhaustive_search)
    return [
        (tokens, float(score)) for tokens, score in zip(found.tokens, found.scores, strict=True)
    ]


def _expect_beam_row(row: int, tokens: list[int], best: list[int], model: _Model) -> None:
    case = model.case
    edge = _edge_mistake(row, tokens, best, case)
    if edge:
        raise Wrong(edge)
    if len(tokens) > case.max_length:
        raise Wrong(
            f"row {row} has {len(tokens)} tokens, more than max_length ({case.max_length})."
        )
    _expect_scored(row, tokens, model)


def _expect_scored(row: int, tokens: list[int], model: _Model) -> None:
    """Every prefix of the sequence must have been fed to step_fn, with this row's state."""
    case = model.case
    fed = (case.start_id, *tokens)
    needed = len(tokens) + (len(tokens) < case.max_length)
    for length in range(1, needed + 1):
        prefix = fed[:length]
        if (row, prefix) in model.evaluated:
            continue
        if any((other, prefix) in model.evaluated for other in range(len(case.rows))):
            raise Wrong(
                f"row {row}'s sequence {tokens} was extended with the state of another row of "
                "the batch: rank the candidates of each row apart (top-k per row, not over the "
                "whole batch)."
            )
        if length == needed and len(model.calls) == case.max_length - 1:
            raise Wrong(f"row {row} is {tokens}: {_BEAM_MISTAKES['one_short']}.")
        if length == needed and len(model.calls) < case.max_length:
            raise Wrong(
                f"it stopped after {len(model.calls)} steps, before max_length "
                f"({case.max_length}), although row {row}'s hypothesis {tokens} was still live "
                "(never extended to END): stop only when every hypothesis of every row has "
                "finished, or after max_length steps."
            )
        raise Wrong(
            f"row {row}'s sequence {tokens} was never fed to step_fn as a whole: after the top "
            "k, reorder the state with the beams chosen (tf.gather(new_state, parents)), so "
            "each beam keeps its own state."
        )


_BEAM_MISTAKES = {
    "greedy": "that is greedy search's result; keep beam_width hypotheses per row and rank them "
    "by summed log-prob",
    "worst": "it returns the worst beam; return the one with the highest summed log-prob",
    "last_step": "it ranks beams by the last token's log-prob; rank them by the sum of the "
    "log-probs of all their tokens (add each step's log_probs to the beam's score)",
    "probabilities": "it adds up probabilities, which favours long sequences; add up "
    "log-probabilities (a product of probabilities)",
    "pushed_out": "it keeps finished hypotheses in the beam, where live ones push them out; set "
    "each hypothesis that reaches END aside, and compare them all at the end",
    "after_end": "it goes on extending hypotheses after END; set each hypothesis that reaches END "
    "aside with its score, and extend only the others",
    "no_reorder": "it keeps each slot's state while its beam moves: reorder the state with the "
    "beams chosen (tf.gather(new_state, parents)), so each beam keeps its own state",
    "finished_first": "it returns the best finished hypothesis whenever one finished, but a "
    "hypothesis still live at max_length scores higher: at the end, rank the live ones together "
    "with the finished ones",
    "one_short": "it runs max_length - 1 steps; run max_length steps (a hypothesis may reach "
    "max_length tokens without END)",
}


def _beam_mistake(
    row: int,
    sequences: list[list[int]],
    scores: list[float],
    best: list[tuple[list[int], float]],
    model: _Model,
) -> str:
    """Name the mistake whose beam search gives every row's sequence, or show the first row."""
    shown = (
        f"row {row} is {sequences[row]} (summed log-prob {scores[row]:.3f}), but "
        f"{best[row][0]} scores {best[row][1]:.3f}"
    )
    rows = range(len(sequences))
    for mistake, text in _BEAM_MISTAKES.items():
        if all(sequences[r] == _beam_row(model, r, mistake) for r in rows):
            return f"{shown}: {text}."
    if scores[row] < _score(model, row, _beam_row(model, row, "greedy")) - 1e-4:
        return f"{shown}, less than even greedy search's sequence: return the best beam."
    return f"{shown}: keep the beam_width best extensions of each row at every step."


def _beam_row(model: _Model, row: int, mistake: str = "") -> list[int]:
    """One row's beam search in plain Python, right or with one of `_BEAM_MISTAKES`.

    It works as a batched beam search does, in ``beam_width`` slots: the best extensions of the
    live slots are ranked together, the ``beam_width`` best take the slots (with their parent's
    state), and those that end with END are set aside as finished, their slots dead. With one
    beam it is greedy search.
    """
    case = model.case
    end, width = case.end_id, 1 if mistake == "greedy" else case.beam_width
    scores = [0.0] + [-np.inf] * (width - 1)  # one live slot at first
    sequences: list[tuple[int, ...]] = [()] * width
    read: list[tuple[int, ...]] = [()] * width  # the tokens each slot's state has read
    tokens, finished = [case.start_id] * width, []
    for _ in range(case.max_length - (mistake == "one_short")):
        read = [(*done, token) for done, token in zip(read, tokens, strict=True)]
        candidates = []
        for slot, score in enumerate(scores):
            log_probs = model.log_probs(row, read[slot]).astype(np.float64)
            if mistake == "pushed_out" and end in sequences[slot]:
                log_probs = np.where(np.arange(_VOCAB) == end, 0.0, -np.inf)
            candidates += [(_extend(score, lp, mistake), slot, t) for t, lp in enumerate(log_probs)]
        top = sorted(candidates, key=lambda c: -c[0])[:width]
        scores = [score for score, _, _ in top]
        sequences = [sequences[parent] + (token,) for _, parent, token in top]
        tokens = [token for _, _, token in top]
        read = read if mistake == "no_reorder" else [read[parent] for _, parent, _ in top]
        if mistake in ("pushed_out", "after_end"):  # finished hypotheses stay in the beam
            continue
        for slot, token in enumerate(tokens):
            if token == end and np.isfinite(scores[slot]):
                finished.append((scores[slot], sequences[slot][:-1]))
                scores[slot] = -np.inf
        if not np.isfinite(scores).any():
            break
    live = [(s, q) for s, q in zip(scores, sequences, strict=True) if np.isfinite(s)]
    finished += [] if mistake == "finished_first" and finished else live
    _, best = (min if mistake == "worst" else max)(finished, key=lambda h: h[0])
    return list(best[: best.index(end)] if end in best else best)


def _extend(score: float, log_prob: float, mistake: str) -> float:
    if not np.isfinite(score):  # a dead slot stays dead
        return score
    if mistake == "last_step":
        return log_prob
    if mistake == "probabilities":
        return score + float(np.exp(log_prob))
    return score + log_prob
