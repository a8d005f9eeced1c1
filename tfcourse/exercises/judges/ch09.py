"""Judges of chapter 09's checks (probes in `tfcourse.exercises.ch09`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tfcourse.exercises._expect import expect_close, expect_finite, expect_shape
from tfcourse.exercises._framework import Wrong
from tfcourse.exercises.ch09 import (
    StepCase,
    _HeadsCase,
    _other_batch,
    attention_step_case,
    decoder_mask_cases,
    multi_head_cases,
    positional_cases,
)
from tfcourse.exercises.judges._observed import array, field, items, nth

# 09.1 -------------------------------------------------------------------------------------------
_MASK_RULE = "True iff key k <= query q and token_ids[b, k] != pad_id"
_LOWER = "the lower triangle, key k <= query q (tf.linalg.band_part(ones, -1, 0))"


def decoder_mask(observed: Any, seed: int) -> str:
    """09.1: [b, q, k] True iff k <= q and token_ids[b, k] != pad_id; a padding query's row may
    be the rule's or all False."""
    _each_case(observed, decoder_mask_cases(seed), _expect_mask)
    return (
        "a (batch, T, T) mask, True where key k <= query q and key k is not padding, with "
        "padding anywhere in a row (left-padded rows too) and any pad_id: MultiHeadAttention's "
        "attention_mask."
    )


def _each_case(
    observed: Any, cases: Sequence[tuple[Any, ...]], expect: Callable[..., None]
) -> None:
    """``expect(array, *case)`` for each case, with the array its probe observed (`until_failure`
    observations: a deferred failure is raised when its case is reached)."""
    seen = items(observed)
    for index, case in enumerate(cases):
        expect(array(nth(seen, index)), *case)


def reference_mask(token_ids: Any, pad_id: int) -> np.ndarray:
    """The expected mask: causal (k <= q) and no padding keys, (batch, T, T) bool."""
    token_ids = np.asarray(token_ids)
    length = token_ids.shape[1]
    causal = np.tril(np.ones((length, length), dtype=bool))
    return causal[np.newaxis] & (token_ids != pad_id)[:, np.newaxis, :]


def _expect_mask(mask: np.ndarray, token_ids: np.ndarray, pad_id: int) -> None:
    truth = _mask_truth(mask)
    _expect_mask_shape(truth.shape, *token_ids.shape)
    real = token_ids != pad_id  # the queries whose rows must follow the rule
    if _same_mask(truth, reference_mask(token_ids, pad_id), real):
        return
    raise Wrong(_mask_mistake(truth, token_ids, pad_id))


def _mask_truth(mask: np.ndarray) -> np.ndarray:
    """The mask as bools, from bools or 0/1 numbers; an additive mask or other values are named."""
    if mask.dtype == bool:
        return mask
    values = np.unique(mask)
    if mask.dtype.kind == "f" and values.size and (np.isneginf(values).any() or values.min() < 0):
        raise Wrong(
            f"it returns an additive mask (0 where attention is allowed, {values.min():g} where "
            "it is blocked), the kind added to the scores; MultiHeadAttention's attention_mask "
            "is boolean: True (or 1) where query q may attend to key k, False (0) elsewhere."
        )
    if mask.dtype.kind == "c" or not set(values.tolist()) <= {0, 1}:
        shown = ", ".join(f"{v:g}" for v in values[:4].real)
        raise Wrong(
            f"the mask holds values {shown}{'...' if values.size > 4 else ''}; it should hold "
            "True and False (or 1 and 0): True where query q may attend to key k."
        )
    return mask != 0


def _expect_mask_shape(shape: tuple[int, ...], batch: int, length: int) -> None:
    fix = "causal[tf.newaxis] & (token_ids != pad_id)[:, tf.newaxis, :]"
    if shape == (batch, length, length):
        return
    if shape == (length, length):
        raise Wrong(
            f"the mask has shape {shape}, (T, T), without the batch axis: the causal part alone. "
            f"Each row has its own padding, so the mask is (batch, T, T): {fix}."
        )
    if shape in ((batch, 1, length), (batch, length)):
        raise Wrong(
            f"the mask has shape {shape}, one flag per key: MultiHeadAttention would broadcast "
            "(batch, 1, T) over the queries, but the causal part differs for every query, so the "
            f"mask is (batch, T, T): {fix}."
        )
    expect_shape(np.empty(shape), (batch, length, length), name="the mask")


def _same_mask(mask: np.ndarray, want: np.ndarray, real: np.ndarray) -> bool:
    """Equal on the real queries' rows; a padding query's row equal too, or all False."""
    rows = np.all(mask == want, axis=-1)
    return bool(np.all(np.where(real, rows, rows | ~mask.any(axis=-1))))


_MASK_MISTAKES = {
    "inverted": "the mask is inverted: True marks the blocked positions, but MultiHeadAttention's "
    "attention_mask is True where query q may attend to key k (key k <= q, and not padding).",
    "strict": "the diagonal is False, so each query is blocked from its own position (k < q); a "
    f"query attends to itself too: keep {_LOWER}.",
    "upper": "it lets each query attend to the keys after it (the upper triangle), which a "
    f"decoder must not see: keep {_LOWER}.",
    "transposed": "the query and key axes are swapped: mask[b, q, k] is for query q (axis 1) and "
    "key k (axis 2); the padding goes on the key axis, (token_ids != pad_id)[:, None, :].",
    "queries": "it masks the padding on the query axis, mask[:, :, None]; the padded KEYS are "
    "what no query may attend to: (token_ids != pad_id)[:, None, :].",
    "causal_only": "padded keys are not masked: combine the causal mask with the padding of the "
    "keys, causal & (token_ids != pad_id)[:, None, :].",
    "padding_only": "it has no causal part, so query q sees the keys after it: combine the "
    f"padding mask with {_LOWER}.",
}


def _mask_candidates(token_ids: np.ndarray, pad_id: int) -> dict[str, np.ndarray]:
    """The masks that classic mistakes make, by name."""
    length = token_ids.shape[1]
    query, key = np.arange(length)[:, None], np.arange(length)[None, :]
    keys, queries = (token_ids != pad_id)[:, None, :], (token_ids != pad_id)[:, :, None]
    want = reference_mask(token_ids, pad_id)
    lengths = (token_ids != pad_id).sum(axis=1)
    return {
        "inverted": ~want,
        "strict": (key < query)[None] & keys,
        "upper": (key >= query)[None] & keys,
        "upper_strict": (key > query)[None] & keys,
        "transposed": np.swapaxes(want, 1, 2),
        "queries": (key <= query)[None] & queries,
        "causal_only": np.broadcast_to((key <= query)[None], want.shape),
        "padding_only": np.broadcast_to(keys, want.shape),
        "pad_zero": (key <= query)[None] & (token_ids != 0)[:, None, :],
        "lengths": (key <= query)[None] & (key[None] < lengths[:, None, None]),
    }


def _mask_mistake(mask: np.ndarray, token_ids: np.ndarray, pad_id: int) -> str:
    real = token_ids != pad_id
    candidates = _mask_candidates(token_ids, pad_id)
    matched = [name for name, wrong in candidates.items() if np.array_equal(mask, wrong)]
    matched += [
        name for name, wrong in candidates.items() if np.array_equal(mask[real], wrong[real])
    ]
    if matched:
        return _named_mask_mistake(matched[0], token_ids, pad_id)
    want = reference_mask(token_ids, pad_id)
    rows = np.all(mask == want, axis=-1)
    bad = np.argwhere(~np.where(real, rows, rows | ~mask.any(axis=-1)))[0]
    row, query = (int(i) for i in bad)
    key = int(np.flatnonzero(mask[row, query] != want[row, query])[0])
    padding = "" if real[row, query] else " (a padding query: its row may also be all False)"
    return (
        f"mask[{row}, {query}, {key}] is {bool(mask[row, query, key])}, expected "
        f"{bool(want[row, query, key])}{padding}: the mask is {_MASK_RULE} ({pad_id})."
    )


def _named_mask_mistake(name: str, token_ids: np.ndarray, pad_id: int) -> str:
    if name == "pad_zero":
        return (
            f"it masks the keys whose token id is 0, but pad_id is {pad_id}: compare with the "
            "pad_id argument, token_ids != pad_id."
        )
    if name == "lengths":
        row = int(np.flatnonzero(token_ids[:, 0] == pad_id)[0])
        return (
            f"row {row} is left-padded (padding first, as in batched generation), and the mask "
            "takes its first positions for tokens: padding can be anywhere in a row: test "
            "token_ids != pad_id, not positions against a length."
        )
    return _MASK_MISTAKES[name.removesuffix("_strict")]


# 09.2 -------------------------------------------------------------------------------------------
def multi_head_attention(observed: Any, seed: int) -> str:
    """09.2: keras.layers.MultiHeadAttention's output, without biases, for two numbers of heads."""
    _each_case(observed, [(case,) for case in multi_head_cases(seed)], _expect_heads)
    return (
        "matches keras.layers.MultiHeadAttention without biases, for two numbers of heads: Q, K "
        "and V split into heads of depth d_model // num_heads, scaled by 1/sqrt(depth), merged "
        "back and projected by wo."
    )


def reference_heads(x: Any, wq: Any, wk: Any, wv: Any, wo: Any, num_heads: int) -> np.ndarray:
    """The expected output of 09.2, in float64."""
    case = _HeadsCase(*(np.asarray(a) for a in (x, wq, wk, wv, wo)), num_heads=num_heads)
    return _heads(case)


def _softmax(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def _heads(
    case: _HeadsCase,
    *,
    heads: int | None = None,
    scale: str = "depth",
    split: str = "transpose",
    merge: str = "transpose",
    axis: int = -1,
    values: str = "wv",
    project: bool = True,
) -> np.ndarray:
    """09.2's output in float64; the options make the classic mistakes."""
    x = case.x.astype(np.float64)
    batch, length, width = x.shape
    heads = heads or case.num_heads
    depth = width // heads

    def split_heads(t: np.ndarray) -> np.ndarray:
        if split == "reshape":  # straight to (batch, heads, T, depth): the classic bug
            return t.reshape(batch, heads, length, depth)
        return t.reshape(batch, length, heads, depth).transpose(0, 2, 1, 3)

    q, k = split_heads(x @ case.wq), split_heads(x @ case.wk)
    v = split_heads(x @ (case.wk if values == "wk" else case.wv))
    divisor = {"depth": np.sqrt(depth), "d_model": np.sqrt(width), "none": 1.0}[scale]
    out = _softmax(q @ k.transpose(0, 1, 3, 2) / divisor, axis=axis) @ v
    if merge == "reshape":
        merged = out.reshape(batch, length, width)
    else:
        merged = out.transpose(0, 2, 1, 3).reshape(batch, length, width)
    return merged @ case.wo if project else merged


_HEADS_MISTAKES: dict[str, tuple[dict[str, Any], str]] = {
    "d_model": (
        {"scale": "d_model"},
        "it divides the scores by sqrt(d_model); each head divides by the square root of its own "
        "depth, sqrt(d_model // num_heads).",
    ),
    "none": (
        {"scale": "none"},
        "the scores are not scaled: divide them by sqrt(depth), depth = d_model // num_heads.",
    ),
    "reshape": (
        {"split": "reshape", "merge": "reshape"},
        "it reshapes (batch, T, d_model) straight to (batch, heads, T, depth), which mixes "
        "positions into the heads: reshape to (batch, T, heads, depth), then transpose to "
        "(batch, heads, T, depth) (perm=[0, 2, 1, 3]), and back the same way.",
    ),
    "merge": (
        {"merge": "reshape"},
        "it merges the heads without transposing back: transpose (batch, heads, T, depth) to "
        "(batch, T, heads, depth) (perm=[0, 2, 1, 3]) before reshaping to (batch, T, d_model).",
    ),
    "queries": (
        {"axis": -2},
        "the softmax runs over the queries (axis -2); each query's weights sum to 1 over the "
        "keys, the last axis: tf.nn.softmax(scores, axis=-1).",
    ),
    "no_wo": (
        {"project": False},
        "the merged heads are not projected: multiply them by wo last, (batch, T, d_model) @ wo.",
    ),
    "one_head": (
        {"heads": 1},
        "it computes one head over all of d_model, ignoring num_heads: split Q, K and V into "
        "num_heads heads of depth d_model // num_heads.",
    ),
    "values_wk": (
        {"values": "wk"},
        "the values are x @ wk: they are x @ wv.",
    ),
}


def _expect_heads(output: np.ndarray, case: _HeadsCase) -> None:
    batch, length, width = case.x.shape
    heads, depth = case.num_heads, width // case.num_heads
    name = "the output of multi_head_attention"
    if output.shape == (batch, heads, length, depth):
        raise Wrong(
            f"{name} has shape {output.shape}, (batch, heads, T, depth): merge the heads back, "
            "transpose to (batch, T, heads, depth), reshape to (batch, T, d_model), then @ wo."
        )
    if output.shape == (batch, length, heads, depth):
        raise Wrong(
            f"{name} has shape {output.shape}, (batch, T, heads, depth): reshape it to "
            "(batch, T, d_model), then @ wo."
        )
    expect_shape(output, (batch, length, width), name=name)
    expect_finite(output, name=name)
    if _close(output, _heads(case)):
        return
    for options, message in _HEADS_MISTAKES.values():
        if _close(output, _heads(case, **options)):
            raise Wrong(message)
    for other in (h for h in (2, 3, 4, 6, 8) if width % h == 0 and h != heads):
        if _close(output, _heads(case, heads=other)):
            raise Wrong(
                f"it splits d_model ({width}) into {other} heads, but num_heads is {heads}: use "
                "the num_heads argument, depth = d_model // num_heads."
            )
    expect_close(output, _heads(case), name=name, rtol=1e-4, atol=1e-4)


def _close(actual: np.ndarray, expected: np.ndarray, atol: float = 1e-4) -> bool:
    return actual.shape == expected.shape and bool(
        np.allclose(actual.astype(np.float64), expected, rtol=1e-4, atol=atol)
    )


# 09.3 -------------------------------------------------------------------------------------------
#: 09.3's tolerance: float32 rounds p / 10000^(2i/depth) by up to ~2e-4 for p up to 5,000.
_SINES_ATOL = 1e-3
_PE_RULE = "PE[p, 2i] = sin(p / 10000^(2i/depth)), PE[p, 2i+1] = cos(p / 10000^(2i/depth))"


def positional_encoding(observed: Any, seed: int) -> str:
    """09.3: the sinusoids, interleaved or all sines then all cosines, in float32."""
    _each_case(observed, positional_cases(seed), _expect_encoding)
    return (
        "float32 sines and cosines of p / 10000^(2i/depth), for positions in any order, repeated "
        "and past 1,000, and two depths (interleaved and concatenated both pass)."
    )


def reference_encoding(positions: Any, depth: int, *, interleaved: bool = True) -> np.ndarray:
    """The expected encoding in float64: sin and cos pairs, interleaved or concatenated."""
    layout = "interleaved" if interleaved else "concatenated"
    return _sinusoids(np.asarray(positions), depth, layout=layout)


def _sinusoids(
    positions: np.ndarray,
    depth: int,
    *,
    layout: str = "interleaved",
    base: float = 10000.0,
    exponent: str = "2i",
    over: int | None = None,
    functions: tuple[str, str] = ("sin", "cos"),
    degrees: bool = False,
) -> np.ndarray:
    """09.3's encoding in float64; the options make the classic mistakes."""
    pairs = np.arange(depth // 2)
    power = {"2i": 2 * pairs, "i": pairs, "zero": 0 * pairs}[exponent] / (over or depth)
    angles = positions.astype(np.float64)[:, None] / base**power
    if degrees:
        angles = np.deg2rad(angles)
    first, second = (getattr(np, function)(angles) for function in functions)
    if layout == "interleaved":
        return np.stack([first, second], axis=-1).reshape(len(positions), -1)
    return np.concatenate([first, second], axis=1)


def _sines_mistakes(positions: np.ndarray, depth: int) -> list[tuple[dict[str, Any], str]]:
    shown = positions.tolist()
    return [
        (
            {"exponent": "i"},
            "the frequencies are off: the exponent is i/depth; for the columns 2i and 2i + 1 it "
            "is 2i/depth, p / 10000^(2i/depth).",
        ),
        ({"base": 1000.0}, "it uses 1000 as the base: the paper's is 10000."),
        (
            {"functions": ("cos", "sin")},
            "sin and cos are swapped: the even columns (or the first half) are sines, the odd "
            "columns (or the second half) cosines.",
        ),
        (
            {"positions": np.arange(len(positions))},
            f"it encodes 0 to n - 1, not the positions it is given ({shown}): use the positions "
            "argument (they may come in any order, and repeat).",
        ),
        (
            {"degrees": True},
            "it converts the angles from degrees: p / 10000^(2i/depth) is in radians already; "
            "take its sin and cos directly.",
        ),
        (
            {"functions": ("sin", "sin")},
            "every column is a sine: the odd columns (or the second half) are cosines.",
        ),
        (
            {"exponent": "zero"},
            "every pair of columns has frequency 1, as if the exponent 2i/depth were 0: integer "
            "division rounds it down; divide floats (tf.cast(..., tf.float32)).",
        ),
        *(
            (
                {"over": hard},
                f"the exponent divides by {hard}, not by depth ({depth}): use the depth argument.",
            )
            for hard in (64, 128, 256, 512)
        ),
    ]


def _expect_encoding(encoding: np.ndarray, positions: np.ndarray, depth: int) -> None:
    count, name = len(positions), "the positional encoding"
    if encoding.shape == (depth, count) != (count, depth):
        raise Wrong(
            f"{name} has shape {encoding.shape}, (depth, n): one row per position, (n, depth); "
            "transpose it."
        )
    if encoding.ndim == 2 and encoding.shape[0] == count and encoding.shape[1] != depth:
        raise Wrong(
            f"{name} has {encoding.shape[1]} columns, but depth is {depth}: use the depth "
            "argument for the number of columns (depth // 2 sines and depth // 2 cosines)."
        )
    expect_shape(encoding, (count, depth), name=name)
    expect_finite(encoding, name=name)
    layouts = ("interleaved", "concatenated")
    wants = (_sinusoids(positions, depth, layout=layout) for layout in layouts)
    if not any(_close(encoding, want, _SINES_ATOL) for want in wants):
        raise Wrong(_sines_mistake(encoding, positions, depth))
    if encoding.dtype != np.float32:
        raise Wrong(
            f"the values are right, but {name} has dtype {encoding.dtype}: Keras layers compute "
            f"in float32, and TensorFlow does not add a {encoding.dtype} Tensor to float32 "
            "embeddings. Cast it: tf.cast(encoding, tf.float32) (or .astype(np.float32))."
        )


#: The two accepted layouts of 09.3's columns, as messages name them.
_LAYOUTS = {
    "interleaved": "interleaved (sin, cos, sin, ...)",
    "concatenated": "all sines, then all cosines",
}


def _sines_mistake(encoding: np.ndarray, positions: np.ndarray, depth: int) -> str:
    for options, message in _sines_mistakes(positions, depth):
        given = options.pop("positions", positions)
        for layout in ("interleaved", "concatenated"):
            wrong = _sinusoids(given, depth, layout=layout, **options)
            if _close(encoding, wrong, _SINES_ATOL):
                return message
    layouts = {layout: _sinusoids(positions, depth, layout=layout) for layout in _LAYOUTS}
    layout = min(
        layouts,
        key=lambda name: int(np.sum(~np.isclose(encoding, layouts[name], atol=_SINES_ATOL))),
    )
    want = layouts[layout]
    row, column = (int(i) for i in np.argwhere(~np.isclose(encoding, want, atol=_SINES_ATOL))[0])
    return (
        f"row {row} (position {positions[row]}), column {column} is {encoding[row, column]:.5g}, "
        f"expected {want[row, column]:.5g} in the {_LAYOUTS[layout]} layout, the closer of the two "
        f"to your answer: {_PE_RULE}."
    )


# 09.4 -------------------------------------------------------------------------------------------
def attention_step(observed: Any, seed: int) -> str:
    """09.4: each step's output is causal attention over the positions so far, the cache their
    keys and values; a planted cache is used as given; another batch works from a fresh start."""
    case = attention_step_case(seed)
    seen = items(observed)
    _expect_run(nth(seen, 0), case, case.xs, "")
    _expect_planted(nth(seen, 1), case)
    _expect_run(nth(seen, 2), case.other(), case.other_xs, _other_batch(case))
    return (
        "each step's output is softmax(q K^T / sqrt(d_k)) V over the cached positions and the "
        "new one, equal to full causal attention; the cache grows by one key and value along "
        "axis 1, a given cache is used as it is, and nothing is kept between calls."
    )


def reference_step(x_new: Any, cache: Any, wq: Any, wk: Any, wv: Any) -> tuple[Any, Any]:
    """The expected (output, new_cache) of 09.4, in float64."""
    x_new = np.asarray(x_new, np.float64)
    keys, values = (x_new @ np.asarray(w, np.float64) for w in (wk, wv))
    if cache is not None:
        keys = np.concatenate([np.asarray(cache[0]), keys[:, None]], axis=1)
        values = np.concatenate([np.asarray(cache[1]), values[:, None]], axis=1)
    else:
        keys, values = keys[:, None], values[:, None]
    return _attend(x_new @ np.asarray(wq, np.float64), keys, values), (keys, values)


def _attend(
    query: np.ndarray, keys: np.ndarray, values: np.ndarray, *, divisor: float = 0.0, axis: int = -1
) -> np.ndarray:
    """softmax(q K^T / divisor) V for each row: query (batch, d_k), keys and values (batch, t,
    d_k); `divisor` sqrt(d_k) unless given, the softmax over the keys unless `axis` says not."""
    scores = np.einsum("bk,btk->bt", query, keys) / (divisor or np.sqrt(keys.shape[-1]))
    return np.einsum("bt,btk->bk", _softmax(scores, axis=axis), values)


def _expect_run(run: Any, case: StepCase, xs: np.ndarray, label: str) -> None:
    steps = items(run)
    fallback = None
    if label:
        fallback = (
            "though it was right on the first batch: keep nothing between calls (no global "
            "list, closure or attribute): all a step needs comes in x_new and cache."
        )
    for index in range(xs.shape[1]):
        seen, when = nth(steps, index), f"{label}at step {index + 1}"
        past = xs[:, : index + 1].astype(np.float64)
        keys, values = past @ case.wk, past @ case.wv
        query = past[:, -1] @ case.wq
        _expect_output(field(seen, "output"), query, keys, values, case, when, fallback)
        _expect_cache(seen, keys, values, past, when)


def _expect_output(
    output: Any,
    query: np.ndarray,
    keys: np.ndarray,
    values: np.ndarray,
    case: StepCase,
    when: str,
    fallback: str | None,
) -> None:
    output, (batch, depth), width = array(output), query.shape, case.xs.shape[-1]
    name = f"the output {when}"
    if output.shape == (batch, 1, depth):
        raise Wrong(
            f"{name} has shape {output.shape}: x_new has no time axis, so the output has none "
            "either: return (batch, d_k), e.g. output[:, 0, :]."
        )
    if output.shape == (batch, width):
        raise Wrong(
            f"{name} has d_model ({width}) columns: it is projected back to d_model, but nothing "
            "asks for wo here: return the weighted sum of the values, (batch, d_k)."
        )
    expect_shape(output, (batch, depth), name=name)
    expect_finite(output, name=name)
    if _close(output, _attend(query, keys, values)):
        return
    raise Wrong(_step_mistake(output, query, keys, values, width, name, fallback))


def _step_mistake(
    output: np.ndarray,
    query: np.ndarray,
    keys: np.ndarray,
    values: np.ndarray,
    width: int,
    name: str,
    fallback: str | None,
) -> str:
    wrongs = {
        "it does not scale the scores: divide q K^T by sqrt(d_k).": _attend(
            query, keys, values, divisor=1.0
        ),
        f"it divides the scores by sqrt(d_model) = sqrt({width}); divide by sqrt(d_k), the "
        "depth of q and K.": _attend(query, keys, values, divisor=np.sqrt(width)),
        "keys and values are swapped in the attention: score q against the keys, then weight "
        "the values, softmax(q K^T / sqrt(d_k)) V.": _attend(query, values, keys),
        "the softmax runs over the batch (axis 0); each row's weights sum to 1 over its "
        "positions, the last axis.": _attend(query, keys, values, axis=0),
    }
    if keys.shape[1] > 1:
        wrongs[
            "the new position is left out of its own attention (it attends to the cache only): "
            "append its key and value to the cache first, then attend over them all."
        ] = _attend(query, keys[:, :-1], values[:, :-1])
    for message, wrong in wrongs.items():
        if _close(output, wrong):
            return f"{name}: {message}"
    if fallback:
        return f"{name} is not softmax(q K^T / sqrt(d_k)) V, {fallback}"
    want = _attend(query, keys, values)
    row, column = (int(i) for i in np.argwhere(~np.isclose(output, want, rtol=1e-4, atol=1e-4))[0])
    return (
        f"{name}[{row}, {column}] is {output[row, column]:.5g}, expected {want[row, column]:.5g}: "
        "q = x_new @ wq, then softmax(q K^T / sqrt(d_k)) V over the cached positions and the new."
    )


def _expect_cache(
    seen: Any, keys: np.ndarray, values: np.ndarray, past: np.ndarray, when: str
) -> None:
    got_keys, got_values = field(seen, "keys"), field(seen, "values")
    if got_keys is None:
        raise Wrong(
            f"the new cache {when} is None: return (keys, values), the cache with the new "
            "position's key (x_new @ wk) and value (x_new @ wv) appended along axis 1."
        )
    got_keys, got_values = array(got_keys), array(got_values)
    if _close(got_keys, values) and _close(got_values, keys):
        raise Wrong(f"the new cache {when} is (values, keys): return (keys, values).")
    for got, want, what in ((got_keys, keys, "keys"), (got_values, values, "values")):
        _expect_cache_shape(got, want, past, f"the cached {what} {when}")
        if not _close(got, want, atol=1e-5):
            raise Wrong(
                f"the cached {what} {when} are not x @ w{what[0]} of the positions so far: "
                f"append x_new @ w{what[0]} to the {what} given, along axis 1."
            )


def _expect_cache_shape(got: np.ndarray, want: np.ndarray, past: np.ndarray, name: str) -> None:
    batch, count, depth = want.shape
    if got.shape == want.shape:
        return
    if got.shape == past.shape and _close(got, past):
        raise Wrong(
            f"{name} are the inputs x_new themselves (d_model features): cache their projections, "
            "x_new @ wk and x_new @ wv, which later steps would otherwise compute again."
        )
    if got.shape == (batch, depth, count):
        raise Wrong(
            f"{name} have shape {got.shape}, the positions on the last axis: the cache holds "
            "(batch, t, d_k) arrays; concatenate along axis 1."
        )
    if got.shape in ((batch * count, 1, depth), (batch * count, depth)):
        raise Wrong(
            f"{name} have shape {got.shape}: the cache grows along axis 0, the batch; "
            "concatenate along axis 1, the positions: tf.concat([keys, k[:, tf.newaxis]], 1)."
        )
    if got.shape == (batch, count - 1, depth):
        raise Wrong(
            f"{name} hold {count - 1} position{'s' if count != 2 else ''}, as many as the cache "
            "it was given: the cache did not grow. Append the new key and value and return the "
            "longer cache."
        )
    if got.shape in ((batch, depth), (batch, count * depth)):
        raise Wrong(
            f"{name} have shape {got.shape}, without a positions axis: keep (batch, t, d_k), "
            "adding the new key as k[:, tf.newaxis, :]."
        )
    expect_shape(got, want.shape, name=name)


def _expect_planted(seen: Any, case: StepCase) -> None:
    cached, when = case.planted[0].shape[1], "with a given cache"
    query = case.planted_x.astype(np.float64) @ case.wq
    _, (keys, values) = reference_step(case.planted_x, case.planted, case.wq, case.wk, case.wv)
    _expect_output(
        field(seen, "output"),
        query,
        keys,
        values,
        case,
        when,
        f"with a cache of {cached} drawn positions that no input produced: attend over exactly "
        "the cache it is given plus the new position, and keep no history of your own (no "
        "global list, closure or attribute, no stored inputs to recompute from).",
    )
    _expect_cache(seen, keys, values, np.empty((0,)), when)
