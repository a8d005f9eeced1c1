"""Chapter 09's checks: each passes right answers in several styles and names 15+ mistakes."""

import sys

import numpy as np
import pytest
from answers import (
    MISBEHAVING,
    assert_result,
    assert_seeded,
    assert_survives,
    not_written,
    raises,
)

from tfcourse.exercises import _learner, _split, ch09
from tfcourse.exercises._framework import UNJUDGED
from tfcourse.exercises.judges import ch09 as judges


# 09.1 decoder_mask -------------------------------------------------------------------------------
def decoder_mask(token_ids, pad_id):
    """The notebook's solution: the lower triangle, and the keys that are not padding."""
    import tensorflow as tf

    length = tf.shape(token_ids)[1]
    causal = tf.linalg.band_part(tf.ones((length, length), tf.bool), -1, 0)  # key k <= query q
    return causal[tf.newaxis] & (token_ids != pad_id)[:, tf.newaxis, :]


def numpy_mask(token_ids, pad_id):
    """A right answer in NumPy, 0/1 integers, padding queries' rows all False."""
    ids = np.asarray(token_ids)
    real = ids != pad_id
    causal = np.tri(ids.shape[1], dtype=bool)
    return (causal & real[:, None, :] & real[:, :, None]).astype(np.int32)


def mask(kind):
    """A decoder_mask with one classic mistake, `kind`."""
    import tensorflow as tf

    def answer(token_ids, pad_id):
        length = tf.shape(token_ids)[1]
        ones = tf.ones((length, length), tf.bool)
        lower, upper = tf.linalg.band_part(ones, -1, 0), tf.linalg.band_part(ones, 0, -1)
        keys = (token_ids != pad_id)[:, tf.newaxis, :]
        right = lower[tf.newaxis] & keys
        lengths = tf.reduce_sum(tf.cast(token_ids != pad_id, tf.int32), axis=1)
        return {
            "inverted": lambda: ~right,
            "additive": lambda: tf.where(right, 0.0, -1e9),
            "additive_inf": lambda: tf.where(right, 0.0, float("-inf")),
            "strict": lambda: (lower & ~tf.eye(length, dtype=tf.bool))[tf.newaxis] & keys,
            "upper": lambda: upper[tf.newaxis] & keys,
            "queries": lambda: lower[tf.newaxis] & (token_ids != pad_id)[:, :, tf.newaxis],
            "causal_only": lambda: tf.repeat(lower[tf.newaxis], tf.shape(token_ids)[0], axis=0),
            "padding_only": lambda: keys & ones[tf.newaxis],
            "pad_zero": lambda: lower[tf.newaxis] & (token_ids != 0)[:, tf.newaxis, :],
            "no_batch": lambda: lower,
            "one_row": lambda: keys,
            "lengths": lambda: (
                lower[tf.newaxis]
                & (tf.range(length)[tf.newaxis, :] < lengths[:, tf.newaxis])[:, tf.newaxis, :]
            ),
            "span": lambda: (  # real from the first real token to the last: padding inside seen
                lower[tf.newaxis]
                & (tf.cumsum(tf.cast(keys, tf.int32), axis=-1) > 0)
                & (tf.cumsum(tf.cast(keys, tf.int32), axis=-1, reverse=True) > 0)
            ),
            "float": lambda: tf.cast(right, tf.float32),
            "twos": lambda: 2 * tf.cast(right, tf.int32),
            "transposed": lambda: tf.transpose(right, [0, 2, 1]),
            "heads_axis": lambda: right[:, tf.newaxis],
        }[kind]()

    return answer


@pytest.mark.parametrize(
    ("answer", "status", "fragment"),
    [
        (decoder_mask, "passed", "True where key k <= query q and key k is not padding"),
        (numpy_mask, "passed", "left-padded rows too"),
        (mask("float"), "passed", "MultiHeadAttention's attention_mask"),
        (lambda t, p: judges.reference_mask(t, p), "failed", "calls the check's own code"),
        (None, "not attempted", "not attempted yet"),
        (not_written, "not attempted", "not attempted yet"),
        (raises, "failed", "decoder_mask raised RuntimeError: oops"),
        (mask("inverted"), "failed", "the mask is inverted"),
        (mask("additive"), "failed", "it returns an additive mask (0 where attention is allowed"),
        (mask("additive_inf"), "failed", "-inf where it is blocked"),
        (mask("strict"), "failed", "the diagonal is False"),
        (mask("upper"), "failed", "attend to the keys after it (the upper triangle)"),
        (mask("queries"), "failed", "it masks the padding on the query axis"),
        (mask("causal_only"), "failed", "padded keys are not masked"),
        (mask("padding_only"), "failed", "it has no causal part"),
        (mask("pad_zero"), "failed", "it masks the keys whose token id is 0, but pad_id is"),
        (mask("no_batch"), "failed", "without the batch axis"),
        (mask("one_row"), "failed", "MultiHeadAttention would broadcast (batch, 1, T)"),
        (mask("lengths"), "failed", "padding can be anywhere in a row: test token_ids != pad_id"),
        (mask("span"), "failed", "token_ids[b, k] != pad_id"),
        (mask("twos"), "failed", "the mask holds values 0, 2"),
        (mask("transposed"), "failed", "the query and key axes are swapped"),
        (mask("heads_axis"), "failed", "reshape or squeeze it"),
        (lambda t, p: None, "failed", "the mask is None; did you forget a `return`?"),
        (lambda t, p: "mask", "failed", "should be a Tensor or array of numbers"),
    ],
)
def test_check_decoder_mask(tf, seeded, answer, status, fragment):
    assert_result(ch09.check_decoder_mask(answer), status, fragment)


@pytest.mark.parametrize("seed", range(6))
def test_mask_cases_hold_left_right_and_no_padding_and_a_real_token_zero(seed):
    (first, first_pad), (second, second_pad) = ch09.decoder_mask_cases(seed)
    real = first != first_pad
    assert real.all(axis=1).any() and (~real[:, -1]).any() and (~real[:, 0]).any()
    assert (first[real] == 0).any() and 3 <= first_pad <= 20
    assert (second[:, 0] == second_pad).any() and second_pad not in (0, first_pad)
    assert second.dtype == np.int64 and 2 <= len(second) <= 4
    assert all(row.any() for row in real)
    assert all(4 <= ids.shape[1] <= 9 and ids.shape[0] != ids.shape[1] for ids in (first, second))


# 09.2 multi_head_attention -----------------------------------------------------------------------
def multi_head_attention(x, wq, wk, wv, wo, num_heads):
    """The notebook's solution: split, attend in every head at once, merge, project."""
    import tensorflow as tf

    batch, length, d_model = tf.shape(x)[0], tf.shape(x)[1], x.shape[-1]
    depth = d_model // num_heads

    def split(t):  # (batch, T, d_model) -> (batch, heads, T, depth)
        return tf.transpose(tf.reshape(t, (batch, length, num_heads, depth)), [0, 2, 1, 3])

    q, k, v = split(x @ wq), split(x @ wk), split(x @ wv)
    scores = tf.matmul(q, k, transpose_b=True) / tf.sqrt(tf.cast(depth, x.dtype))
    heads = tf.matmul(tf.nn.softmax(scores, axis=-1), v)
    merged = tf.reshape(tf.transpose(heads, [0, 2, 1, 3]), (batch, length, d_model))
    return merged @ wo


def numpy_heads(x, wq, wk, wv, wo, num_heads):
    """A right answer in NumPy, one head at a time with einsum."""
    x, wq, wk, wv, wo = (np.asarray(a) for a in (x, wq, wk, wv, wo))
    depth = x.shape[-1] // num_heads
    outputs = []
    for h in range(num_heads):
        cols = slice(h * depth, (h + 1) * depth)
        q, k, v = x @ wq[:, cols], x @ wk[:, cols], x @ wv[:, cols]
        scores = np.einsum("btd,bsd->bts", q, k) / np.sqrt(depth)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        outputs.append((weights / weights.sum(-1, keepdims=True)) @ v)
    return np.concatenate(outputs, axis=-1) @ wo


class HeadsWithOps:
    """A right answer as a callable object, with keras.ops."""

    def __call__(self, x, wq, wk, wv, wo, num_heads):
        from keras import ops

        batch, length, d_model = x.shape
        depth = d_model // num_heads

        def split(t):
            return ops.transpose(ops.reshape(t, (batch, length, num_heads, depth)), (0, 2, 1, 3))

        q, k, v = split(ops.matmul(x, wq)), split(ops.matmul(x, wk)), split(ops.matmul(x, wv))
        scores = ops.einsum("bhtd,bhsd->bhts", q, k) / ops.sqrt(float(depth))
        heads = ops.matmul(ops.softmax(scores, axis=-1), v)
        merged = ops.reshape(ops.transpose(heads, (0, 2, 1, 3)), (batch, length, d_model))
        return ops.matmul(merged, wo)


def keras_heads(x, wq, wk, wv, wo, num_heads):
    """keras.layers.MultiHeadAttention with the four matrices as its kernels."""
    import keras

    d_model = x.shape[-1]
    depth = d_model // num_heads
    layer = keras.layers.MultiHeadAttention(num_heads, key_dim=depth, use_bias=False)
    layer(x, x)  # builds the layer
    layer._query_dense.set_weights([np.reshape(wq, (d_model, num_heads, depth))])
    layer._key_dense.set_weights([np.reshape(wk, (d_model, num_heads, depth))])
    layer._value_dense.set_weights([np.reshape(wv, (d_model, num_heads, depth))])
    layer._output_dense.set_weights([np.reshape(wo, (num_heads, depth, d_model))])
    return layer(x, x)


def heads(*, scale="depth", split="transpose", merge="transpose", axis=-1, values="wv", wo=True):
    """A multi_head_attention with one classic mistake (the options)."""
    import tensorflow as tf

    def answer(x, wq, wk, wv, wo_, num_heads):
        batch, length, d_model = x.shape
        depth = d_model // num_heads

        def split_heads(t):
            if split == "reshape":
                return tf.reshape(t, (batch, num_heads, length, depth))
            return tf.transpose(tf.reshape(t, (batch, length, num_heads, depth)), [0, 2, 1, 3])

        q, k = split_heads(x @ wq), split_heads(x @ wk)
        v = split_heads(x @ (wk if values == "wk" else wv))
        divisor = {"depth": depth, "d_model": d_model, "none": 1}[scale]
        scores = tf.matmul(q, k, transpose_b=True) / tf.sqrt(float(divisor))
        out = tf.matmul(tf.nn.softmax(scores, axis=axis), v)
        if merge == "none":
            return out
        if merge == "transpose":
            out = tf.transpose(out, [0, 2, 1, 3])
        merged = tf.reshape(out, (batch, length, d_model))
        return merged @ wo_ if wo else merged

    return answer


@pytest.mark.parametrize(
    ("answer", "status", "fragment"),
    [
        (multi_head_attention, "passed", "matches keras.layers.MultiHeadAttention"),
        (numpy_heads, "passed", "for two numbers of heads"),
        (HeadsWithOps(), "passed", "scaled by 1/sqrt(depth)"),
        (heads(), "passed", "merged back and projected by wo"),
        (keras_heads, "failed", "write the heads out"),
        (
            lambda *a: judges.reference_heads(*a),
            "failed",
            "calls the check's own code",
        ),
        (None, "not attempted", "not attempted yet"),
        (not_written, "not attempted", "not attempted yet"),
        (raises, "failed", "multi_head_attention raised RuntimeError: oops"),
        (heads(scale="d_model"), "failed", "it divides the scores by sqrt(d_model)"),
        (heads(scale="none"), "failed", "the scores are not scaled"),
        (heads(split="reshape", merge="reshape"), "failed", "mixes positions into the heads"),
        (heads(merge="reshape"), "failed", "merges the heads without transposing back"),
        (heads(axis=-2), "failed", "the softmax runs over the queries"),
        (heads(wo=False), "failed", "the merged heads are not projected"),
        (heads(values="wk"), "failed", "the values are x @ wk"),
        (heads(merge="none"), "failed", "(batch, heads, T, depth): merge the heads back"),
        (lambda x, q, k, v, o, h: heads()(x, q, k, v, o, 1), "failed", "ignoring num_heads"),
        (lambda x, q, k, v, o, h: heads()(x, q, k, v, o, 2), "failed", "but num_heads is"),
        (
            lambda x, q, k, v, o, h: tf_transpose_heads(heads(merge="none")(x, q, k, v, o, h)),
            "failed",
            "(batch, T, heads, depth): reshape it",
        ),
        (lambda *a: multi_head_attention(*a)[:, :-1], "failed", "expected"),
        (lambda *a: multi_head_attention(*a) * 1.1, "failed", "is off by a factor of 1.1"),
        (
            lambda x, q, k, v, o, h: multi_head_attention(x, k, q, v, o, h),
            "failed",
            "differs from the expected values",
        ),
        (lambda *a: multi_head_attention(*a) * np.nan, "failed", "contains NaN"),
    ],
)
def test_check_multi_head_attention(tf, seeded, answer, status, fragment):
    assert_result(ch09.check_multi_head_attention(answer), status, fragment)


def tf_transpose_heads(out):
    import tensorflow as tf

    return tf.transpose(out, [0, 2, 1, 3])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_reference_equals_keras_multi_head_attention(tf, seed):
    """09.2's answer key is keras.layers.MultiHeadAttention without biases, kernels reshaped."""
    for case in ch09.multi_head_cases(seed):
        args = (case.x, case.wq, case.wk, case.wv, case.wo, case.num_heads)
        expected = judges.reference_heads(*args)
        np.testing.assert_allclose(np.asarray(keras_heads(*args)), expected, atol=1e-5)


@pytest.mark.parametrize("seed", range(6))
def test_heads_cases_split_two_widths_into_different_numbers_of_heads(seed):
    first, second = ch09.multi_head_cases(seed)
    assert first.num_heads != second.num_heads
    for case in (first, second):
        batch, length, width = case.x.shape
        assert width in (8, 12, 16, 24) and width % case.num_heads == 0 and case.num_heads > 1
        assert 2 <= batch <= 3 and 3 <= length <= 7 and length != case.num_heads


# 09.3 positional_encoding ------------------------------------------------------------------------
def positional_encoding(positions, depth):
    """The notebook's solution: the paper's sines and cosines, interleaved."""
    import tensorflow as tf

    pairs = tf.range(depth // 2, dtype=tf.float32)
    rates = 1.0 / tf.pow(10000.0, 2.0 * pairs / depth)  # one frequency per pair of columns
    angles = tf.cast(positions, tf.float32)[:, tf.newaxis] * rates[tf.newaxis, :]
    return tf.reshape(tf.stack([tf.sin(angles), tf.cos(angles)], axis=-1), (-1, depth))


def tutorial_encoding(positions, depth):
    """A right answer in NumPy, the TensorFlow tutorial's way: all sines, then all cosines."""
    half = depth / 2
    angles = np.asarray(positions)[:, np.newaxis] / 10000 ** (np.arange(half)[np.newaxis] / half)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=-1).astype(np.float32)


def encoding(*, base=10000.0, exponent="2i", functions=("sin", "cos"), degrees=False, over=None):
    """A positional_encoding in NumPy, float32, with one classic mistake (the options)."""

    def answer(positions, depth):
        p = np.asarray(positions, np.float64)
        pairs = np.arange(depth // 2)
        power = {"2i": 2 * pairs / (over or depth), "i": pairs / depth, "int": 2 * pairs // depth}
        angles = p[:, None] / base ** power[exponent]
        if degrees:
            angles = np.radians(angles)
        first, second = (getattr(np, f)(angles) for f in functions)
        return np.stack([first, second], axis=-1).reshape(len(p), -1).astype(np.float32)

    return answer


@pytest.mark.parametrize(
    ("answer", "status", "fragment"),
    [
        (positional_encoding, "passed", "float32 sines and cosines of p / 10000^(2i/depth)"),
        (tutorial_encoding, "passed", "interleaved and concatenated both pass"),
        (encoding(), "passed", "repeated and past 1,000"),
        (
            lambda p, d: judges.reference_encoding(p, d).astype(np.float32),
            "failed",
            "calls the check's own code",
        ),
        (None, "not attempted", "not attempted yet"),
        (not_written, "not attempted", "not attempted yet"),
        (raises, "failed", "positional_encoding raised RuntimeError: oops"),
        (encoding(exponent="i"), "failed", "the exponent is i/depth"),
        (encoding(base=1000.0), "failed", "it uses 1000 as the base"),
        (encoding(functions=("cos", "sin")), "failed", "sin and cos are swapped"),
        (encoding(functions=("sin", "sin")), "failed", "every column is a sine"),
        (encoding(degrees=True), "failed", "it converts the angles from degrees"),
        (encoding(exponent="int"), "failed", "integer division rounds it down"),
        (encoding(over=128), "failed", "the exponent divides by 128, not by depth"),
        (
            lambda p, d: encoding()(np.arange(len(p)), d),
            "failed",
            "it encodes 0 to n - 1, not the positions it is given",
        ),
        (lambda p, d: encoding()(p, 64), "failed", "has 64 columns, but depth is"),
        (lambda p, d: encoding()(p, d).T, "failed", "(depth, n): one row per position"),
        (lambda p, d: tutorial_encoding(p, d).astype(np.float64), "failed", "dtype float64"),
        (lambda p, d: encoding()(p, d)[None], "failed", "reshape or squeeze it"),
        (lambda p, d: encoding()(p, d) * 2, "failed", "expected"),
        (
            lambda p, d: encoding()(p, d) + 0.01,
            "failed",
            "in the interleaved (sin, cos, sin, ...) layout",
        ),
        (
            lambda p, d: tutorial_encoding(np.minimum(p, 127), d),
            "failed",
            "in the all sines, then all cosines layout",
        ),
        (lambda p, d: encoding()(np.sort(p), d), "failed", "(position"),
        (lambda p, d: encoding()(p, d).astype(np.float16), "failed", "has dtype float16"),
    ],
)
def test_check_positional_encoding(tf, seeded, answer, status, fragment):
    assert_result(ch09.check_positional_encoding(answer), status, fragment)


def test_keras_hubs_sine_encoding_is_named_as_a_delegation(tf):
    keras_hub = pytest.importorskip("keras_hub")

    def library_sines(positions, depth):
        layer = keras_hub.layers.SinePositionEncoding()
        return layer(tf.zeros((1, int(tf.reduce_max(positions)) + 1, depth)))[0]

    result = ch09.check_positional_encoding(library_sines)
    assert_result(result, "failed", "uses keras_hub's SinePositionEncoding")


@pytest.mark.parametrize("seed", range(6))
def test_positional_cases_are_unsorted_with_a_repeat_a_large_value_and_two_depths(seed):
    (first, depth), (second, other) = ch09.positional_cases(seed)
    assert depth != other and all(d % 2 == 0 and 6 <= d <= 62 for d in (depth, other))
    for positions in (first, second):
        assert len(set(positions.tolist())) == len(positions) - 1
        assert (np.diff(positions) < 0).any() and 1000 < positions.max() <= 5000
    assert len(first) != depth and len(second) != other


def test_a_float32_encoding_is_within_the_tolerance_for_positions_up_to_5000():
    positions = np.array([0, 1, 4999, 5000])
    for depth in (6, 32, 62):
        got = positional_encoding_numpy32(positions, depth)
        assert np.abs(got - judges.reference_encoding(positions, depth)).max() < 5e-4


def positional_encoding_numpy32(positions, depth):
    """The tutorial's formula computed in float32 throughout, as a learner's tf code is."""
    p = np.asarray(positions, np.float32)[:, None]
    rates = np.exp(-np.log(np.float32(10000)) * np.arange(0, depth, 2, dtype=np.float32) / depth)
    angles = (p * rates.astype(np.float32)).astype(np.float32)
    return np.stack([np.sin(angles), np.cos(angles)], -1).reshape(len(positions), depth)


# 09.4 attention_step -----------------------------------------------------------------------------
def attention_step(x_new, cache, wq, wk, wv):
    """The notebook's solution: project, append to the cache, attend over it all."""
    import tensorflow as tf

    q, k, v = x_new @ wq, (x_new @ wk)[:, tf.newaxis], (x_new @ wv)[:, tf.newaxis]
    if cache is not None:
        k, v = tf.concat([cache[0], k], axis=1), tf.concat([cache[1], v], axis=1)
    scores = tf.einsum("bd,btd->bt", q, k) / tf.sqrt(tf.cast(tf.shape(q)[-1], q.dtype))
    return tf.einsum("bt,btd->bd", tf.nn.softmax(scores, axis=-1), v), (k, v)


def numpy_step(x_new, cache, wq, wk, wv):
    """A right answer in NumPy, the cache a list."""
    x = np.asarray(x_new)
    k, v = (x @ np.asarray(wk))[:, None], (x @ np.asarray(wv))[:, None]
    if cache is not None:
        k, v = np.concatenate([cache[0], k], axis=1), np.concatenate([cache[1], v], axis=1)
    scores = np.einsum("bd,btd->bt", x @ np.asarray(wq), k) / np.sqrt(k.shape[-1])
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return np.einsum("bt,btd->bd", weights, v), [k, v]


def step(mistake):
    """An attention_step with one classic mistake."""
    import tensorflow as tf

    def answer(x_new, cache, wq, wk, wv):
        q, k, v = x_new @ wq, (x_new @ wk)[:, tf.newaxis], (x_new @ wv)[:, tf.newaxis]
        if mistake == "left_out" and cache is not None:
            keys, values = cache
        elif cache is not None:
            keys, values = tf.concat([cache[0], k], axis=1), tf.concat([cache[1], v], axis=1)
        else:
            keys, values = k, v
        scale = {"no_scale": 1.0, "d_model": float(x_new.shape[-1])}.get(mistake, q.shape[-1])
        if mistake == "swapped_attention":
            keys, values = values, keys
        scores = tf.einsum("bd,btd->bt", q, keys) / tf.sqrt(float(scale))
        weights = tf.nn.softmax(scores, axis=0 if mistake == "batch_softmax" else -1)
        output = tf.einsum("bt,btd->bd", weights, values)
        if mistake == "left_out" and cache is not None:
            keys, values = tf.concat([cache[0], k], axis=1), tf.concat([cache[1], v], axis=1)
        if mistake == "swapped_attention":
            keys, values = values, keys
        return {
            "unchanged": lambda: (output, cache),
            "never_grows": lambda: (output, cache if cache is not None else (keys, values)),
            "swapped_cache": lambda: (output, (values, keys)),
            "projected": lambda: (output @ tf.transpose(wq), (keys, values)),
            "time_axis": lambda: (output[:, tf.newaxis], (keys, values)),
            "one_value": lambda: output,
            "cache_dict": lambda: (output, {"keys": keys, "values": values}),
        }.get(mistake, lambda: (output, (keys, values)))()

    return answer


def last_axis_cache(x_new, cache, wq, wk, wv):
    """A cache that grows along its last axis, (batch, d_k, t): the outputs are right."""
    import tensorflow as tf

    q, k, v = x_new @ wq, (x_new @ wk)[:, :, tf.newaxis], (x_new @ wv)[:, :, tf.newaxis]
    if cache is not None:
        k, v = tf.concat([cache[0], k], axis=2), tf.concat([cache[1], v], axis=2)
    scores = tf.einsum("bd,bdt->bt", q, k) / tf.sqrt(float(q.shape[-1]))
    return tf.einsum("bt,bdt->bd", tf.nn.softmax(scores), v), (k, v)


def batch_axis_cache(x_new, cache, wq, wk, wv):
    """A cache concatenated along axis 0, the batch: it crashes at step 2."""
    import tensorflow as tf

    k, v = (x_new @ wk)[:, tf.newaxis], (x_new @ wv)[:, tf.newaxis]
    if cache is not None:
        k, v = tf.concat([cache[0], k], axis=0), tf.concat([cache[1], v], axis=0)
    scores = tf.einsum("bd,btd->bt", x_new @ wq, k)
    return tf.einsum("bt,btd->bd", tf.nn.softmax(scores), v), (k, v)


def input_cache(x_new, cache, wq, wk, wv):
    """It caches the inputs and projects them all again at every step."""
    import tensorflow as tf

    xs = x_new[:, tf.newaxis] if cache is None else tf.concat([cache[0], x_new[:, None]], 1)
    output, _ = attention_step_over(x_new, xs @ wk, xs @ wv, wq)
    return output, (xs, xs)


def attention_step_over(x_new, keys, values, wq):
    import tensorflow as tf

    scores = tf.einsum("bd,btd->bt", x_new @ wq, keys) / tf.sqrt(float(keys.shape[-1]))
    return tf.einsum("bt,btd->bd", tf.nn.softmax(scores), values), (keys, values)


HISTORY = []


def global_history(x_new, cache, wq, wk, wv):
    """It keeps its own history of keys and values, and ignores the cache it is given."""
    import tensorflow as tf

    if cache is None:
        HISTORY.clear()
    HISTORY.append((x_new @ wk, x_new @ wv))
    keys = tf.stack([k for k, _ in HISTORY], axis=1)
    values = tf.stack([v for _, v in HISTORY], axis=1)
    return attention_step_over(x_new, keys, values, wq)


INPUTS = []


def recomputed(x_new, cache, wq, wk, wv):
    """It stores every x it was given and recomputes all the keys and values at each step."""
    import tensorflow as tf

    if cache is None:
        INPUTS.clear()
    INPUTS.append(x_new)
    xs = tf.stack(INPUTS, axis=1)
    return attention_step_over(x_new, xs @ wk, xs @ wv, wq)


class FirstWeights:
    """It keeps the weights of its first call and ignores those it is given later (a reviewer's)."""

    def __init__(self):
        self.weights = None

    def __call__(self, x_new, cache, wq, wk, wv):
        self.weights = self.weights or (wq, wk, wv)
        return attention_step(x_new, cache, *self.weights)


class FirstBatchSize:
    """It keeps the batch size of its first call, to shape the new key and value."""

    def __init__(self):
        self.batch = None

    def __call__(self, x_new, cache, wq, wk, wv):
        import tensorflow as tf

        self.batch = self.batch or int(x_new.shape[0])
        k = tf.reshape(x_new @ wk, (self.batch, 1, -1))
        v = tf.reshape(x_new @ wv, (self.batch, 1, -1))
        if cache is not None:
            k, v = tf.concat([cache[0], k], axis=1), tf.concat([cache[1], v], axis=1)
        return attention_step_over(x_new, k, v, wq)


def keras_step(x_new, cache, wq, wk, wv):
    """keras.ops.dot_product_attention over the cache: (batch, T, heads, depth) with one head."""
    from keras import ops

    _, (keys, values) = attention_step(x_new, cache, wq, wk, wv)
    query = (x_new @ wq)[:, None, None]
    output = ops.dot_product_attention(query, keys[:, :, None], values[:, :, None])
    return output[:, 0, 0], (keys, values)


def backend_step(x_new, cache, wq, wk, wv):
    """The TensorFlow backend's dot_product_attention, which keras.ops' calls (a reviewer's)."""
    from keras.src.backend.tensorflow.nn import dot_product_attention

    _, (keys, values) = attention_step(x_new, cache, wq, wk, wv)
    query = (x_new @ wq)[:, None, None]
    output = dot_product_attention(query, keys[:, :, None], values[:, :, None])
    return output[:, 0, 0], (keys, values)


def keras_mha_step(x_new, cache, wq, wk, wv):
    """keras.layers.MultiHeadAttention, one head, over the new input alone."""
    import keras

    layer = keras.layers.MultiHeadAttention(1, key_dim=wq.shape[-1], use_bias=False)
    return layer(x_new[:, None], x_new[:, None])[:, 0], cache


@pytest.mark.parametrize(
    ("answer", "status", "fragment"),
    [
        (attention_step, "passed", "equal to full causal attention"),
        (numpy_step, "passed", "a given cache is used as it is"),
        (step("right"), "passed", "nothing is kept between calls"),
        (keras_step, "failed", "compute softmax(q K^T / sqrt(d_k)) V yourself."),
        (keras_mha_step, "failed", "attention_step runs a library's attention"),
        (backend_step, "failed", "attention_step runs a library's attention"),
        (lambda *a: judges.reference_step(*a), "failed", "calls the check's own code"),
        (None, "not attempted", "not attempted yet"),
        (not_written, "not attempted", "not attempted yet"),
        (raises, "failed", "attention_step at step 1 raised RuntimeError: oops"),
        (step("left_out"), "failed", "the new position is left out of its own attention"),
        (step("no_scale"), "failed", "it does not scale the scores"),
        (step("d_model"), "failed", "it divides the scores by sqrt(d_model)"),
        (step("swapped_attention"), "failed", "keys and values are swapped in the attention"),
        (step("batch_softmax"), "failed", "the softmax runs over the batch (axis 0)"),
        (step("unchanged"), "failed", "the new cache at step 1 is None"),
        (step("never_grows"), "failed", "the cache did not grow"),
        (step("swapped_cache"), "failed", "is (values, keys): return (keys, values)"),
        (step("projected"), "failed", "it is projected back to d_model"),
        (step("time_axis"), "failed", "x_new has no time axis, so the output has none either"),
        (step("one_value"), "failed", "returned one value; return a pair, (output, new_cache)"),
        (step("cache_dict"), "failed", "is a dict ({'keys'"),
        (last_axis_cache, "failed", "the positions on the last axis"),
        (batch_axis_cache, "failed", "attention_step at step 2 raised"),
        (input_cache, "failed", "are the inputs x_new themselves"),
        (global_history, "failed", "keep no history of your own"),
        (recomputed, "failed", "no stored inputs to recompute from"),
        (FirstBatchSize(), "failed", "attention_step on a new batch of"),
        (FirstWeights(), "failed", "and new weights"),
        (
            lambda x, c, q, k, v: step("right")(x, None if c is None else c[::-1], q, k, v),
            "failed",
            "the output at step 2",
        ),
    ],
)
def test_check_attention_step(tf, seeded, answer, status, fragment):
    HISTORY.clear(), INPUTS.clear()
    assert_result(ch09.check_attention_step(answer), status, fragment)


def test_a_crash_at_the_first_step_says_what_an_empty_cache_means(tf, seeded):
    def cache_only(x_new, cache, wq, wk, wv):
        keys, values = cache  # None at the first step
        return attention_step_over(x_new, keys, values, wq), cache

    result = ch09.check_attention_step(cache_only)
    assert_result(result, "failed", "At the first step, cache is None: the new position then")


def test_a_delegation_is_named_without_the_hint_a_crash_gets(tf, seeded):
    result = ch09.check_attention_step(keras_step)
    assert result.message.endswith("V yourself.") and "(At the first step" not in result.message


def test_a_crash_at_step_2_shows_the_cache_that_step_1_returned(tf, seeded):
    case = ch09.attention_step_case(seeded)
    batch, depth = len(case.xs), case.wk.shape[1]
    result = ch09.check_attention_step(batch_axis_cache)
    assert_result(result, "failed", f"keys of shape ({batch}, 1, {depth})")


@pytest.mark.parametrize("seed", range(6))
def test_step_cases_plant_a_cache_and_change_the_batch(seed):
    case = ch09.attention_step_case(seed)
    batch, length, width = case.xs.shape
    depth = case.wq.shape[1]
    assert 2 <= batch <= 3 and 5 <= length <= 9 and width != depth
    keys, values = case.planted
    assert keys.shape == values.shape and keys.shape[0] == batch and 2 <= keys.shape[1] <= 6
    assert len(case.other_xs) != batch and case.planted_x.shape == (batch, width)


def test_the_steps_equal_full_causal_attention(tf):
    """The judge's step by step reference equals one causal attention over the whole sequence."""
    case = ch09.attention_step_case(3)
    xs = case.xs.astype(np.float64)
    q, k, v = xs @ case.wq, xs @ case.wk, xs @ case.wv
    scores = np.einsum("bqd,bkd->bqk", q, k) / np.sqrt(k.shape[-1])
    scores = np.where(np.tri(xs.shape[1], dtype=bool), scores, -np.inf)
    full = np.einsum("bqk,bkd->bqd", judges._softmax(scores), v)
    cache = None
    for index in range(xs.shape[1]):
        output, cache = judges.reference_step(xs[:, index], cache, case.wq, case.wk, case.wv)
        np.testing.assert_allclose(output, full[:, index], atol=1e-12)


# Every check -------------------------------------------------------------------------------------
#: A right answer to each check (all draw their inputs from the seed).
SEEDED = {
    "09.1": (ch09.check_decoder_mask, decoder_mask),
    "09.2": (ch09.check_multi_head_attention, multi_head_attention),
    "09.3": (ch09.check_positional_encoding, positional_encoding),
    "09.4": (ch09.check_attention_step, attention_step),
}
#: Answers that return what a right answer returned for seed 1, whatever they are given.
HARD_CODED = {
    "09.1": lambda table: lambda token_ids, pad_id: table.pop(0),
    "09.2": lambda table: lambda *args: table.pop(0),
    "09.3": lambda table: lambda positions, depth: table.pop(0),
}


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("exercise", sorted(SEEDED))
def test_right_answers_pass_for_every_seed(tf, monkeypatch, exercise, seed):
    monkeypatch.setenv("TFCOURSE_PROBE_SEED", str(seed))
    check, answer = SEEDED[exercise]
    assert_result(check(answer), "passed", "")


@pytest.mark.parametrize("exercise", sorted(SEEDED))
def test_inputs_differ_by_seed_and_another_seeds_observations_fail(tf, exercise):
    assert_seeded(*SEEDED[exercise])


@pytest.mark.parametrize("exercise", sorted(HARD_CODED))
def test_values_hard_coded_from_one_seed_fail_under_another(tf, monkeypatch, exercise):
    check, answer = SEEDED[exercise]
    table = [np.asarray(seen) for seen in check.probe(answer, seed=1)]
    monkeypatch.setenv("TFCOURSE_PROBE_SEED", "1")
    assert check(HARD_CODED[exercise](list(table))).passed
    monkeypatch.setenv("TFCOURSE_PROBE_SEED", "2")
    assert check(HARD_CODED[exercise](list(table))).status == "failed"


@pytest.mark.parametrize("exercise", sorted(SEEDED))
@pytest.mark.parametrize(("answer", "fragment"), MISBEHAVING)
def test_every_check_survives_a_misbehaving_answer(
    tf, monkeypatch, capsys, exercise, answer, fragment
):
    monkeypatch.setattr(_learner, "TIME_BUDGET", 0.5)
    assert_survives(SEEDED[exercise][0](answer), fragment, capsys)


@pytest.mark.parametrize("exercise", sorted(SEEDED))
def test_without_the_judges_a_check_says_the_grader_decides(tf, monkeypatch, exercise):
    """The student edition has no judges: a right answer runs and is not judged; a crash and an
    unwritten answer are still named."""
    check, answer = SEEDED[exercise]
    for name in [m for m in sys.modules if m.startswith(_split.JUDGES)]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, _split.JUDGES, None)
    result = check(answer)
    assert result.status == UNJUDGED and "grader decides" in result.message, result
    assert_result(check(raises), "failed", "raised RuntimeError: oops")
    assert_result(check(not_written), "not attempted", "not attempted yet")


FORGED = [
    None,
    [],
    "observed",
    [np.zeros((2, 2))],
    [{"output": np.zeros(3)}],
    [[{"output": np.zeros((2, 3)), "keys": "k", "values": None}]],
    [np.full((2, 4, 4), np.nan)],
    [np.zeros((0,), np.complex64)],
]


@pytest.mark.parametrize("exercise", sorted(SEEDED))
@pytest.mark.parametrize("forged", range(len(FORGED)))
def test_forged_observations_fail_and_never_blame_the_course(exercise, forged):
    check = SEEDED[exercise][0]
    bundle = {
        "check": check.name,
        "exercise": check.exercise,
        "seed": 7,
        "status": "observed",
        "message": "",
        "observed": _split.encode(FORGED[forged]),
    }
    status, message = check.judge_bundle(bundle, {7})
    assert status == "failed" and "malformed" not in message, message


def test_the_two_mask_batches_never_share_a_length():
    """A mask sized on the first call and kept (a reviewer's answer) fails on every seed."""
    for seed in range(300):
        (first, _), (second, _) = ch09.decoder_mask_cases(seed)
        assert first.shape[1] != second.shape[1], seed


def test_the_second_step_batch_has_weights_of_another_depth():
    for seed in range(100):
        case = ch09.attention_step_case(seed)
        other_depth = case.other().wq.shape[1]
        assert other_depth not in (case.wq.shape[1], case.wq.shape[0]), seed  # nor d_model
