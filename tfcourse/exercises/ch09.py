"""Self-checks for the exercises of `09_transformers`: the probes.

Each check is in two parts (see `tfcourse.exercises._split`): the probe here runs the learner's
answer and returns what it saw; the judge, in `tfcourse.exercises.judges.ch09`, decides. Every
input is drawn from the check's seed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfcourse.exercises._expect import to_numpy
from tfcourse.exercises._framework import Wrong, _describe
from tfcourse.exercises._learner import call, forbid, learner_code
from tfcourse.exercises._probes import draw_except
from tfcourse.exercises._split import failed, two_part, until_failure
from tfcourse.exercises.ch05 import _LIBRARY_ATTENTION

__all__ = [
    "LIBRARY_ATTENTION",
    "StepCase",
    "attention_step_case",
    "check_attention_step",
    "check_decoder_mask",
    "check_multi_head_attention",
    "check_positional_encoding",
    "decoder_mask_cases",
    "multi_head_cases",
    "positional_cases",
]

#: The judges module, which holds the expected values (absent from the student edition).
_JUDGE = "tfcourse.exercises.judges.ch09"
#: The check's own computations, which an answer must not call.
_CHECK_HELPERS = (_JUDGE,)
_REFERENCE_USED = (
    "your answer calls the check's own code (tfcourse.exercises.judges.ch09): write the "
    "computation yourself, with TensorFlow ops."
)
#: Library attention an answer could hand 09.2 and 09.4 to (keras_hub's is skipped where it is
#: not installed).
LIBRARY_ATTENTION = (
    *_LIBRARY_ATTENTION,
    "keras.src.backend.tensorflow.nn.dot_product_attention",  # what keras.ops' function calls
    "keras.layers.GroupQueryAttention",
    "keras_hub.layers.CachedMultiHeadAttention",
)


def _as_array(value: Any, what: str) -> np.ndarray:
    """`value` (a Tensor or an array the learner's code returned) as NumPy, as learner code."""
    with learner_code(f"converting {what}"):
        return to_numpy(value, name=what)


# 09.1 -------------------------------------------------------------------------------------------
#: 09.1: the kinds of row a batch may hold: no padding, padding after the tokens, or before them.
_ROW_KINDS = ("full", "right", "left")


def decoder_mask_cases(seed: int) -> list[tuple[np.ndarray, int]]:
    """09.1's (token_ids, pad_id), drawn from `seed`: two batches of 2-4 rows of 4-9 ids.

    The first holds a row without padding (with a real token 0), a right-padded row and a
    left-padded row, in a drawn order; the second, in int64, a left-padded row, a row with padding
    between real tokens, and drawn others.
    pad_id is drawn from 3-20, then from 1-20 without the first; other ids from 0-40.
    """
    rng = np.random.default_rng(seed)
    first_pad = int(rng.integers(3, 21))
    batch = int(rng.integers(3, 5))
    kinds = [*_ROW_KINDS, *rng.choice(_ROW_KINDS, batch - 3)]
    first = _mask_batch(rng, [kinds[i] for i in rng.permutation(batch)], first_pad, np.int32)
    full = next(row for row, kind in enumerate(first[0]) if kind == "full")
    first[1][full, rng.integers(0, first[1].shape[1])] = 0  # a real token 0: pad_id is not 0
    second_pad = draw_except(rng, 1, 20, {first_pad})
    kinds = ["left", "middle", *rng.choice(_ROW_KINDS, int(rng.integers(0, 3)))]
    second = _mask_batch(
        rng,
        [kinds[i] for i in rng.permutation(len(kinds))],
        second_pad,
        np.int64,
        avoid=first[1].shape[1],  # another T: a mask sized once and kept fails
    )
    return [(first[1], first_pad), (second[1], second_pad)]


def _mask_batch(
    rng: np.random.Generator, kinds: list[str], pad_id: int, dtype: Any, *, avoid: int = 0
) -> tuple[list[str], np.ndarray]:
    """A batch with one row of each of `kinds`, ids from 0-40 but pad_id, padding of 1 to T - 1;
    T is 4-9, never the batch size (so that a (batch, T) mask is not taken for a (T, T) one) and
    never `avoid`."""
    length = draw_except(rng, 4, 9, {len(kinds), avoid})
    ids = np.array([v for v in range(41) if v != pad_id])
    tokens = rng.choice(ids, (len(kinds), length)).astype(dtype)
    for row, kind in enumerate(kinds):
        padding = int(rng.integers(1, length))
        if kind == "right":
            tokens[row, length - padding :] = pad_id
        elif kind == "left":
            tokens[row, :padding] = pad_id
        elif kind == "middle":  # padding between real tokens: the first and last ids are real
            inside = rng.choice(np.arange(1, length - 1), min(padding, length - 2), replace=False)
            tokens[row, inside] = pad_id
    return kinds, tokens


@two_part("09.1", "a causal and padding mask for a decoder")
def check_decoder_mask(decoder_mask: Callable[[Any, int], Any], seed: int) -> list[Any]:
    """Check `decoder_mask(token_ids, pad_id)`: a boolean (batch, T, T) attention mask.

    [b, q, k] is True iff k <= q and token_ids[b, k] != pad_id, `keras.layers.MultiHeadAttention`'s
    `attention_mask` convention. The probe returns the mask of each of `decoder_mask_cases(seed)`
    (token_ids a Tensor, pad_id an int).
    """
    return until_failure(
        lambda case=case: _mask_of(decoder_mask, *case) for case in decoder_mask_cases(seed)
    )


def _mask_of(decoder_mask: Callable[[Any, int], Any], token_ids: np.ndarray, pad_id: int) -> Any:
    import tensorflow as tf

    with forbid(_CHECK_HELPERS, _REFERENCE_USED):
        mask = call(decoder_mask, tf.constant(token_ids), pad_id, name="decoder_mask")
    return _as_array(mask, "the mask")


# 09.2 -------------------------------------------------------------------------------------------
#: 09.2's model widths, and the numbers of heads they may be split into.
_WIDTHS = {8: (2, 4), 12: (2, 3, 4), 16: (2, 4), 24: (2, 3, 4)}
_HEADS_DELEGATED = (
    "multi_head_attention runs a library's attention (MultiHeadAttention, Attention or "
    "keras.ops.dot_product_attention): write the heads out: split, scaled dot-product "
    "attention per head, merge, then @ wo."
)


@dataclass(frozen=True)
class _HeadsCase:
    """One call of 09.2: x (batch, T, d_model), the four (d_model, d_model) weights, the heads."""

    x: np.ndarray
    wq: np.ndarray
    wk: np.ndarray
    wv: np.ndarray
    wo: np.ndarray
    num_heads: int


def multi_head_cases(seed: int) -> list[_HeadsCase]:
    """09.2's two calls, drawn from `seed`, with different numbers of heads.

    d_model is one of `_WIDTHS`, the heads one of its divisors; batch 2-3, T 3-7 (not the number
    of heads), x ~ N(0, 1), weights ~ N(0, 1/d_model).
    """
    rng = np.random.default_rng(seed)
    first_width = int(rng.choice(list(_WIDTHS)))
    first_heads = int(rng.choice(_WIDTHS[first_width]))
    others = [(w, h) for w, heads in _WIDTHS.items() for h in heads if h != first_heads]
    second = others[int(rng.integers(len(others)))]
    return [_heads_case(rng, first_width, first_heads), _heads_case(rng, *second)]


def _heads_case(rng: np.random.Generator, width: int, heads: int) -> _HeadsCase:
    """Sizes drawn with T != heads, so that (batch, T, heads, depth) and (batch, heads, T, depth)
    tell apart."""
    batch, length = int(rng.integers(2, 4)), draw_except(rng, 3, 7, {heads})
    x = rng.normal(size=(batch, length, width)).astype(np.float32)
    wq, wk, wv, wo = (
        (rng.normal(size=(width, width)) / np.sqrt(width)).astype(np.float32) for _ in range(4)
    )
    return _HeadsCase(x, wq, wk, wv, wo, heads)


@two_part("09.2", "multi-head attention written out")
def check_multi_head_attention(multi_head_attention: Callable[..., Any], seed: int) -> list[Any]:
    """Check `multi_head_attention(x, wq, wk, wv, wo, num_heads)`: self-attention in heads.

    Q, K and V are x @ wq, x @ wk and x @ wv, split into num_heads heads of depth
    d_model // num_heads; each head's softmax(Q K^T / sqrt(depth)) V is merged back, then @ wo,
    as `keras.layers.MultiHeadAttention` without biases computes it. The probe returns the output
    of each of `multi_head_cases(seed)`.
    """
    return until_failure(
        lambda case=case: _heads_of(multi_head_attention, case) for case in multi_head_cases(seed)
    )


def _heads_of(multi_head_attention: Callable[..., Any], case: _HeadsCase) -> np.ndarray:
    import tensorflow as tf

    weights = [tf.constant(w) for w in (case.wq, case.wk, case.wv, case.wo)]
    with forbid(LIBRARY_ATTENTION, _HEADS_DELEGATED), forbid(_CHECK_HELPERS, _REFERENCE_USED):
        output = call(
            multi_head_attention,
            tf.constant(case.x),
            *weights,
            case.num_heads,
            name="multi_head_attention",
        )
    return _as_array(output, "the output of multi_head_attention")


# 09.3 -------------------------------------------------------------------------------------------
#: 09.3's depths are drawn from these even numbers (a depth a learner might hard-code left out).
_DEPTHS = [depth for depth in range(6, 65, 2) if depth != 64]
_SINES_DELEGATED = (
    "positional_encoding uses keras_hub's SinePositionEncoding: compute the sines and cosines "
    "yourself."
)


def positional_cases(seed: int) -> list[tuple[np.ndarray, int]]:
    """09.3's two calls, (positions, depth), drawn from `seed`, with different depths.

    6-8 positions (never as many as the depth, so that a transposed answer shows) from 0-200, in
    no sorted order, one of them twice, and one from 1001-5000.
    """
    rng = np.random.default_rng(seed)
    depths = rng.choice(_DEPTHS, 2, replace=False)
    return [(_positions(rng, int(depth)), int(depth)) for depth in depths]


def _positions(rng: np.random.Generator, depth: int) -> np.ndarray:
    count = draw_except(rng, 4, 6, {depth - 2})
    small = rng.choice(201, count, replace=False)
    values = [*small, small[int(rng.integers(count))], int(rng.integers(1001, 5001))]
    positions = np.array(values, dtype=np.int32)
    while np.all(np.diff(positions) >= 0):
        positions = rng.permutation(positions)
    return positions


@two_part("09.3", "sinusoidal positional encoding")
def check_positional_encoding(
    positional_encoding: Callable[[Any, int], Any], seed: int
) -> list[Any]:
    """Check `positional_encoding(positions, depth)`: the float32 (n, depth) sinusoids.

    Column pairs (2i, 2i + 1) are sin and cos of p / 10000^(2i / depth), interleaved as in
    "Attention is all you need" or all sines then all cosines. The probe returns the encoding of
    each of `positional_cases(seed)` (positions an int32 Tensor).
    """
    return until_failure(
        lambda case=case: _encoding_of(positional_encoding, *case)
        for case in positional_cases(seed)
    )


def _encoding_of(
    positional_encoding: Callable[[Any, int], Any], positions: np.ndarray, depth: int
) -> np.ndarray:
    import tensorflow as tf

    optional = ("keras_hub.layers.SinePositionEncoding",)
    with forbid(optional, _SINES_DELEGATED), forbid(_CHECK_HELPERS, _REFERENCE_USED):
        encoding = call(
            positional_encoding, tf.constant(positions), depth, name="positional_encoding"
        )
    return _as_array(encoding, "the positional encoding")


# 09.4 -------------------------------------------------------------------------------------------
_STEP_DELEGATED = (
    "attention_step runs a library's attention (MultiHeadAttention, Attention or "
    "keras.ops.dot_product_attention): compute softmax(q K^T / sqrt(d_k)) V yourself."
)


@dataclass(frozen=True)
class StepCase:
    """09.4's inputs: a sequence to run step by step, a planted cache, and a second batch.

    Attributes:
        xs: (batch, T, d_model), fed one position at a time from an empty cache.
        wq: (d_model, d_k); also `wk` and `wv`.
        planted: (keys, values), each (batch, t, d_k), a cache that no input produced.
        planted_x: (batch, d_model), the new position fed with the planted cache.
        other_xs: (another batch, 3, d_model), fed step by step from an empty cache.
        other_weights: (wq, wk, wv) for `other_xs`, of another d_k: an answer that kept the first
            call's weights fails there.
    """

    xs: np.ndarray
    wq: np.ndarray
    wk: np.ndarray
    wv: np.ndarray
    planted: tuple[np.ndarray, np.ndarray]
    planted_x: np.ndarray
    other_xs: np.ndarray
    other_weights: tuple[np.ndarray, np.ndarray, np.ndarray]

    def other(self) -> StepCase:
        """The case of the second batch: its inputs and its own weights."""
        wq, wk, wv = self.other_weights
        return dataclasses.replace(self, xs=self.other_xs, wq=wq, wk=wk, wv=wv)


def attention_step_case(seed: int) -> StepCase:
    """09.4's inputs, drawn from `seed`: batch 2-3, T 5-9, d_model 6-12 (even), d_k 3-5, a planted
    cache of 2-6 positions in the same batch, and another batch of 1-4 rows."""
    rng = np.random.default_rng(seed)
    batch, length = int(rng.integers(2, 4)), int(rng.integers(5, 10))
    width, depth = int(rng.choice([6, 8, 10, 12])), int(rng.integers(3, 6))
    weights = [
        (rng.normal(size=(width, depth)) / np.sqrt(width)).astype(np.float32) for _ in range(3)
    ]
    cached = int(rng.integers(2, 7))
    planted = tuple(rng.normal(size=(batch, cached, depth)).astype(np.float32) for _ in range(2))
    other = draw_except(rng, 1, 4, {batch})
    other_depth = draw_except(rng, 3, 5, {depth})  # never d_model (6-12) either
    other_weights = tuple(
        (rng.normal(size=(width, other_depth)) / np.sqrt(width)).astype(np.float32)
        for _ in range(3)
    )
    return StepCase(
        xs=rng.normal(size=(batch, length, width)).astype(np.float32),
        wq=weights[0],
        wk=weights[1],
        wv=weights[2],
        planted=(planted[0], planted[1]),
        planted_x=rng.normal(size=(batch, width)).astype(np.float32),
        other_xs=rng.normal(size=(other, 3, width)).astype(np.float32),
        other_weights=(other_weights[0], other_weights[1], other_weights[2]),
    )


@two_part("09.4", "one attention step with a key/value cache")
def check_attention_step(attention_step: Callable[..., Any], seed: int) -> list[Any]:
    """Check `attention_step(x_new, cache, wq, wk, wv) -> (output, new_cache)`.

    output is softmax(q K^T / sqrt(d_k)) V over the cached positions and the new one, q = x_new @
    wq; new_cache is (keys, values) with x_new @ wk and x_new @ wv appended along axis 1. The
    probe (`attention_step_case(seed)`) runs a sequence step by step from cache=None, feeding back
    each new_cache; then one call with a planted cache (a tuple of Tensors); then another batch
    from cache=None. It returns, for each call, the output and the new cache's arrays.
    """
    case = attention_step_case(seed)
    return until_failure(
        [
            lambda: _run_steps(attention_step, case, case.xs, ""),
            lambda: _planted_step(attention_step, case),
            lambda: _run_steps(attention_step, case.other(), case.other_xs, _other_batch(case)),
        ],
        stop=_stopped,
    )


def _stopped(observed: Any) -> bool:
    return failed(observed) or (isinstance(observed, list) and any(map(failed, observed)))


def _other_batch(case: StepCase) -> str:
    """How messages name 09.4's second run: a batch of another size, from cache=None."""
    return (
        f"on a new batch of {len(case.other_xs)} rows and new weights (the earlier calls had "
        f"{len(case.xs)} rows), "
    )


def _run_steps(
    attention_step: Callable[..., Any], case: StepCase, xs: np.ndarray, label: str
) -> list[Any]:
    """Each step's observations, from cache=None, each step fed the cache the one before made."""
    held: dict[str, Any] = {"cache": None, "seen": None}

    def step(index: int) -> dict[str, Any]:
        hint = _first_step_hint() if index == 0 else _cache_hint(held["seen"], index)
        seen, held["cache"] = _one_step(
            attention_step, case, xs[:, index], held["cache"], f"{label}at step {index + 1}", hint
        )
        held["seen"] = seen
        return seen

    return until_failure(lambda index=index: step(index) for index in range(xs.shape[1]))


def _planted_step(attention_step: Callable[..., Any], case: StepCase) -> dict[str, Any]:
    import tensorflow as tf

    keys, values = case.planted
    cache = (tf.constant(keys), tf.constant(values))
    hint = (
        f"(It was given a cache of {keys.shape[1]} positions, a tuple of Tensors (keys, values) "
        f"of shape {keys.shape}.)"
    )
    return _one_step(attention_step, case, case.planted_x, cache, "with a given cache", hint)[0]


def _first_step_hint() -> str:
    return (
        "(At the first step, cache is None: the new position then attends to itself alone, and "
        "its key and value start the cache.)"
    )


def _cache_hint(seen: dict[str, Any], index: int) -> str:
    keys, values = seen["keys"], seen["values"]
    if keys is None:
        return f"(It was given the cache that step {index} returned: None.)"
    return (
        f"(It was given the cache that step {index} returned: keys of shape {keys.shape}, values "
        f"of shape {values.shape}; each should be (batch, {index}, d_k).)"
    )


def _one_step(
    attention_step: Callable[..., Any],
    case: StepCase,
    x_new: np.ndarray,
    cache: Any,
    when: str,
    hint: str,
) -> tuple[dict[str, Any], Any]:
    """One call's observations (output, and the new cache's keys and values, or None), and the new
    cache itself, to feed back."""
    import tensorflow as tf

    weights = [tf.constant(w) for w in (case.wq, case.wk, case.wv)]
    name = f"attention_step {when}"
    try:
        with forbid(LIBRARY_ATTENTION, _STEP_DELEGATED), forbid(_CHECK_HELPERS, _REFERENCE_USED):
            result = call(attention_step, tf.constant(x_new), cache, *weights, name=name)
    except Wrong as wrong:
        if not str(wrong).startswith(f"{name} raised"):  # a delegation, the time limit: no hint
            raise
        raise Wrong(f"{wrong} {hint}") from wrong
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise Wrong(
            f"{name} returned {_count(result)}; return a pair, (output, new_cache), with "
            "new_cache = (keys, values)."
        )
    output, new_cache = result
    seen: dict[str, Any] = {"output": _as_array(output, f"the output {when}")}
    seen["keys"] = seen["values"] = None
    if new_cache is not None:
        if not isinstance(new_cache, (tuple, list)) or len(new_cache) != 2:
            raise Wrong(
                f"the new cache {when} is {_count(new_cache)}; make it a pair, (keys, values), "
                "each (batch, t, d_k)."
            )
        seen["keys"] = _as_array(new_cache[0], f"the cached keys {when}")
        seen["values"] = _as_array(new_cache[1], f"the cached values {when}")
    return seen, new_cache


def _count(value: Any) -> str:
    """What an answer returned where a pair belongs: how many values, or what the one value is."""
    if isinstance(value, (tuple, list)):
        return f"{len(value)} values"
    if value is None or hasattr(value, "shape"):
        return "None" if value is None else "one value"
    return _describe(value)
