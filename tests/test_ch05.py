"""Chapter 05's checks: each accepts a right answer and explains five or more kinds of wrong one."""

import numpy as np
import pytest
from answers import MISBEHAVING, assert_result, assert_survives, not_written, raises

from tfcourse import decoding
from tfcourse.exercises import _learner, ch05

# 05.1 teacher_forcing_pair -----------------------------------------------------------------------
PAD = 0


def teacher_forcing_pair(tokens, start_id, end_id):
    """The notebook's solution: END at index length, the count of a row's non-PAD tokens."""
    import tensorflow as tf

    tokens = tf.convert_to_tensor(tokens)
    lengths = tf.reduce_sum(tf.cast(tokens != PAD, tf.int32), axis=1)  # END goes at index `length`
    end = end_id * tf.one_hot(lengths, tf.shape(tokens)[1] + 1, dtype=tokens.dtype)
    decoder_targets = tf.pad(tokens, [[0, 0], [0, 1]]) + end
    decoder_inputs = tf.pad(tokens, [[0, 0], [1, 0]], constant_values=start_id)
    return decoder_inputs, decoder_targets


def numpy_pair(tokens, start_id, end_id):
    tokens = np.asarray(tokens)
    targets = np.pad(tokens, [(0, 0), (0, 1)])
    targets[np.arange(len(tokens)), (tokens != PAD).sum(axis=1)] = end_id
    start = np.full((len(tokens), 1), start_id, dtype=tokens.dtype)
    return np.concatenate([start, tokens], axis=1), targets


def where_pair(tokens, start_id, end_id):
    """A right answer that writes END at the first PAD of each row padded by one column."""
    import tensorflow as tf

    tokens = tf.convert_to_tensor(tokens)
    padded = tf.pad(tokens, [[0, 0], [0, 1]])
    after_real = tf.pad(tokens, [[0, 0], [1, 0]], constant_values=1) != PAD
    targets = tf.where((padded == PAD) & after_real, tf.cast(end_id, tokens.dtype), padded)
    start = tf.fill([tf.shape(tokens)[0], 1], tf.cast(start_id, tokens.dtype))
    return tf.concat([start, tokens], axis=1), targets


def ragged_pair(tokens, start_id, end_id):
    """A right answer with ragged rows: drop the padding, add START and END, pad again."""
    import tensorflow as tf

    tokens = tf.convert_to_tensor(tokens)
    rows = tf.RaggedTensor.from_tensor(tokens, padding=PAD)
    ends = tf.fill([rows.nrows(), 1], tf.cast(end_id, tokens.dtype))
    shape = [None, tokens.shape[1] + 1]
    targets = tf.concat([rows, ends], axis=1).to_tensor(default_value=PAD, shape=shape)
    return tf.concat(
        [tf.fill([rows.nrows(), 1], tf.cast(start_id, tokens.dtype)), tokens], 1
    ), targets


def pair(kind):
    """A teacher_forcing_pair that makes one classic mistake, `kind`."""
    import tensorflow as tf

    def answer(tokens, start_id, end_id):
        t = tf.convert_to_tensor(tokens)
        inputs, targets = teacher_forcing_pair(t, start_id, end_id)
        padded, length = tf.pad(t, [[0, 0], [0, 1]]), tf.shape(t)[1]
        lengths = tf.reduce_sum(tf.cast(t != PAD, tf.int32), axis=1)
        first_pad = tf.argmax(tf.cast(t == PAD, tf.int32), axis=1, output_type=tf.int32)
        end = lambda at, depth=length + 1: end_id * tf.one_hot(at, depth, dtype=t.dtype)  # noqa: E731
        return {
            "end_after_padding": lambda: (
                inputs,
                tf.pad(t, [[0, 0], [0, 1]], constant_values=end_id),
            ),
            "end_on_last": lambda: (inputs, padded + end(lengths - 1)),
            "end_late": lambda: (inputs, padded + end(lengths + 1)),
            "end_at_first_pad": lambda: (inputs, padded + end(first_pad)),
            "end_replaces_last": lambda: (
                inputs,
                tf.where(end(lengths - 1, length) > 0, end_id, t),
            ),
            "no_room_for_end": lambda: (inputs, t + end(lengths, length)),
            "no_end": lambda: (inputs, padded),
            "end_in_padding": lambda: (inputs, tf.where(padded == PAD, end_id, padded)),
            "no_start": lambda: (padded, targets),
            "pad_first": lambda: (tf.pad(t, [[0, 0], [1, 0]]), targets),
            "shifted_left": lambda: (
                tf.pad(t, [[0, 0], [0, 1]], constant_values=start_id),
                targets,
            ),
            "inputs_with_end": lambda: (
                tf.pad(targets[:, :-1], [[0, 0], [1, 0]], constant_values=start_id),
                targets,
            ),
            "chapter_shift": lambda: (
                tf.pad(t[:, :-1], [[0, 0], [1, 0]], constant_values=start_id),
                targets,
            ),
            "inputs_padding": lambda: (tf.where(inputs == PAD, -1, inputs), targets),
            "swapped": lambda: (targets, inputs),
            "transposed": lambda: (tf.transpose(inputs), targets),
            "float": lambda: (inputs, tf.cast(targets, tf.float32)),
            "int32": lambda: (tf.cast(inputs, tf.int32), tf.cast(targets, tf.int32)),
            "one_hot_float": lambda: (inputs, padded + end_id * tf.one_hot(lengths, length + 1)),
            "one": lambda: targets,
            "three": lambda: (inputs, targets, lengths),
        }[kind]()

    return answer


def numpy_default_dtype(tokens, start_id, end_id):
    """np.full without a dtype makes int64 ids, whatever the dtype of tokens."""
    inputs, targets = numpy_pair(tokens, start_id, end_id)
    return np.concatenate([np.full((len(inputs), 1), start_id), inputs[:, 1:]], axis=1), targets


@pytest.mark.parametrize(
    ("answer", "status", "fragment"),
    [
        (teacher_forcing_pair, "passed", "returns (START then the tokens, the tokens with end_id"),
        (numpy_pair, "passed", "both (batch, T + 1) in the dtype of tokens"),
        (where_pair, "passed", "padding kept PAD"),
        (ragged_pair, "passed", "for full and one-token rows, Tensors and arrays"),
        (None, "not attempted", "not attempted yet"),
        (not_written, "not attempted", "not attempted yet"),
        (raises, "failed", "teacher_forcing_pair raised RuntimeError: oops"),
        (pair("end_after_padding"), "failed", "END is at the very end of each row"),
        (pair("end_on_last"), "failed", "END lands on each row's last real token"),
        (pair("end_late"), "failed", "END comes one position late"),
        (
            pair("end_at_first_pad"),
            "failed",
            "but it has no padding, so END goes in the new last column",
        ),
        (pair("end_replaces_last"), "failed", "END replaces each row's last real token"),
        (pair("no_room_for_end"), "failed", "a full row has no room for END"),
        (pair("no_end"), "failed", "the decoder targets have no END"),
        (pair("end_in_padding"), "failed", "it writes END into every padding position"),
        (pair("no_start"), "failed", "the decoder inputs have no START"),
        (pair("pad_first"), "failed", "tf.pad fills with 0 unless you pass constant_values"),
        (pair("shifted_left"), "failed", "the tokens shifted left, with START after them"),
        (pair("inputs_with_end"), "passed", "returns (START then the tokens"),  # cell 14's way
        (pair("chapter_shift"), "failed", "tokens[:, :-1] drops each row's last token"),
        (pair("inputs_padding"), "failed", "it changes the padding"),
        (pair("swapped"), "failed", "return the inputs first"),
        (pair("transposed"), "failed", "decoder_inputs has shape (6, 4), expected (4, 6)"),
        (pair("float"), "failed", "have dtype float32; keep the dtype of tokens (int32)"),
        (pair("int32"), "failed", "have dtype int32, but tokens are int64"),
        (numpy_default_dtype, "failed", "have dtype int64, but tokens are int32"),
        (pair("one_hot_float"), "failed", "it mixes dtypes (int32 and float)"),
        (pair("one"), "failed", "it returned one value, of shape (4, 6), not a pair"),
        (pair("three"), "failed", "it returned 3 values"),
        (lambda t, s, e: None, "failed", "is None; did you forget a `return`?"),
        (lambda t, s, e: teacher_forcing_pair(t, e, s), "failed", "START and END are swapped"),
        (lambda t, s, e: teacher_forcing_pair(t, 1, 2), "failed", "the notebook's constants"),
        (
            lambda t, s, e: teacher_forcing_pair(t, 1, e),
            "failed",
            "begin with 1, but start_id is 2",
        ),
        (lambda t, s, e: teacher_forcing_pair(t, s, 2), "failed", "is 2, but end_id is 1"),
    ],
)
def test_check_teacher_forcing(tf, answer, status, fragment):
    assert_result(ch05.check_teacher_forcing(answer), status, fragment)


def test_teacher_forcing_solution_keeps_the_dtype_of_tokens(tf):
    tokens = np.array([[3, 4, 0]], dtype=np.int32)
    assert [x.dtype for x in teacher_forcing_pair(tokens, 1, 2)] == [tf.int32, tf.int32]
    pair64 = teacher_forcing_pair(tf.constant(tokens, tf.int64), 1, 2)
    assert [x.dtype for x in pair64] == [tf.int64, tf.int64]
    assert pair64[1].numpy().tolist() == [[3, 4, 2, 0]]


def test_teacher_cases_hold_full_and_one_token_rows_in_every_form():
    cases = ch05.TEACHER_CASES
    for tokens, *_ in cases:
        lengths = (tokens != PAD).sum(axis=1)
        assert tokens.shape[1] in lengths  # a full row: END in the new last column
        assert 1 in lengths
        assert np.all(tokens[tokens != PAD] >= 3)
        assert all(np.all(row[:n] != PAD) for row, n in zip(tokens, lengths, strict=True))
    assert {(start, end) for _, start, end, _ in cases} == {(1, 2), (2, 1)}
    assert {as_tensor for *_, as_tensor in cases} == {True, False}
    assert {tokens.dtype for tokens, *_ in cases} == {np.dtype(np.int32), np.dtype(np.int64)}


# 05.2 attention_weights --------------------------------------------------------------------------
def attention_weights(query, keys, mask):
    """The notebook's solution: Luong's dot product, padded keys at -1e9, softmax over the keys."""
    import tensorflow as tf

    scores = tf.matmul(query, keys, transpose_b=True)  # (batch, queries, keys)
    scores = tf.where(mask[:, tf.newaxis, :], scores, -1e9)
    return tf.nn.softmax(scores, axis=-1)


def keras_attention(query, keys, mask):
    import keras

    layer = keras.layers.Attention()
    return layer([query, keys], mask=[None, mask], return_attention_scores=True)[1]


def attention(*, axis=-1, mask="where", fill=-1e9, scale=False, scores="q.k"):
    """An attention_weights; the options make the classic mistakes."""
    import tensorflow as tf

    def answer(query, keys, m):
        s = {
            "q.k": lambda: tf.matmul(query, keys, transpose_b=True),
            "untransposed": lambda: tf.matmul(query, keys),
            "q.q": lambda: tf.matmul(query, query, transpose_b=True),
            "k.q": lambda: tf.matmul(keys, query, transpose_b=True),
        }[scores]()
        if scale:
            s /= tf.sqrt(tf.cast(tf.shape(query)[-1], s.dtype))
        real = m[:, tf.newaxis, :]
        numbers = tf.cast(real, s.dtype)
        s = {
            "where": lambda: tf.where(real, s, fill),
            "inverted": lambda: tf.where(real, fill, s),
            "multiply": lambda: s * numbers,
            "times_inf": lambda: s * numbers + (1.0 - numbers) * float("-inf"),
            "add": lambda: s + (1.0 - numbers) * fill,
            "none": lambda: s,
            "after": lambda: s,
        }[mask]()
        weights = tf.nn.softmax(s, axis=axis)
        return weights * numbers if mask == "after" else weights

    return answer


@pytest.mark.parametrize(
    ("answer", "status", "fragment"),
    [
        (attention_weights, "passed", "softmax over the keys of the unscaled dot products"),
        (keras_attention, "failed", "runs a library's attention"),
        (attention(fill=float("-inf")), "passed", "exactly no weight on padded keys"),
        (attention(mask="add", fill=-1e4), "passed", "exactly no weight"),
        (lambda q, k, m: ch05.reference_attention(q, k, m), "failed", "calls the check's own code"),
        (lambda q, k, m: keras_attention(q, k, m), "failed", "runs a library's attention"),
        (attention(fill=-30.0), "failed", "padded keys get weights up to"),
        (
            lambda q, k, m: (attention_weights(q, k, m), q),
            "failed",
            "it returned a pair; return only the weights",
        ),
        (None, "not attempted", "not attempted yet"),
        (not_written, "not attempted", "not attempted yet"),
        (raises, "failed", "attention_weights raised RuntimeError: oops"),
        (attention(axis=1), "failed", "sum to 1 over the queries (axis 1)"),
        (attention(axis=0), "failed", "sum to 1 over the batch (axis 0)"),
        (attention(axis=1, fill=float("-inf")), "failed", "over the queries (axis 1)"),
        (attention(mask="none"), "failed", "it ignores the mask"),
        (attention(mask="inverted"), "failed", "the mask is inverted"),
        (attention(mask="after"), "failed", "zeroes the padded keys' weights after the softmax"),
        (attention(mask="multiply"), "failed", "it multiplies the scores by the mask"),
        (attention(mask="times_inf"), "failed", "0 * -inf is NaN"),
        (attention(fill=-10.0), "failed", "padded keys get weights up to"),
        (attention(scale=True), "failed", "it divides the scores by sqrt(d) = sqrt(5)"),
        (attention(scores="untransposed"), "failed", "without transposing them"),
        (attention(scores="q.q", mask="none"), "failed", "scores the queries against themselves"),
        (attention(scores="k.q", mask="none"), "failed", "(batch, keys, queries)"),
        (lambda q, k, m: attention_weights(q, k, m) * 0.9, "failed", "sum to 0.9, not 1"),
        (
            lambda q, k, m: attention_weights(q, k, m)[:, :-1],
            "failed",
            "(3, 3, 5), expected (3, 4, 5)",
        ),
        (lambda q, k, m: attention_weights(q, 1.1 * k, m), "failed", "the weight of key 0"),
    ],
)
def test_check_attention_weights(tf, answer, status, fragment):
    assert_result(ch05.check_attention_weights(answer), status, fragment)


@pytest.mark.parametrize("seed", range(25))
def test_right_answers_pass_every_drawn_probe(tf, monkeypatch, seed):
    monkeypatch.setenv("TFCOURSE_PROBE_SEED", str(seed))
    assert ch05.check_teacher_forcing(teacher_forcing_pair).passed
    assert ch05.check_teacher_forcing(pair("inputs_with_end")).passed
    assert ch05.check_attention_weights(attention_weights).passed
    assert ch05.check_attention_weights(attention(fill=float("-inf"))).passed


@pytest.mark.parametrize("case", range(len(ch05.ATTENTION_CASES)))
def test_reference_attention_agrees_with_keras_attention(tf, case):
    query, keys, mask = ch05.ATTENTION_CASES[case]
    weights = np.asarray(keras_attention(query, keys, mask))
    np.testing.assert_allclose(weights, ch05.reference_attention(query, keys, mask), atol=1e-6)
    assert weights[np.broadcast_to(~mask[:, None, :], weights.shape)].max() == 0.0


# 05.3 greedy_decode ------------------------------------------------------------------------------
def greedy_decode(step_fn, initial_state, start_id, end_id, max_length):
    """The notebook's solution: feed back each argmax, then cut each row at its first END."""
    import tensorflow as tf

    batch_size = tf.shape(tf.nest.flatten(initial_state)[0])[0]
    tokens, state, steps = tf.fill([batch_size], start_id), initial_state, []
    for _ in range(max_length):
        log_probs, state = step_fn(tokens, state)
        tokens = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
        steps.append(tokens)
    rows = tf.stack(steps, axis=1).numpy().tolist()
    return [row[: row.index(end_id)] if end_id in row else row for row in rows]


def greedy_row_by_row(step_fn, initial_state, start_id, end_id, max_length):
    """A right answer that decodes one row at a time, stopping it at its END."""
    import tensorflow as tf

    rows = []
    for row in range(len(tf.nest.flatten(initial_state)[0])):
        state = tf.nest.map_structure(lambda s: s[row : row + 1], initial_state)  # noqa: B023
        tokens = [start_id]
        for _ in range(max_length):
            log_probs, state = step_fn(tf.constant(tokens[-1:]), state)
            tokens.append(int(tf.argmax(log_probs[0])))
            if tokens[-1] == end_id:
                break
        rows.append([t for t in tokens[1:] if t != end_id])
    return rows


def course_search(search, *, beams=False):
    """An answer that hands the work to tfcourse.decoding: the check names the delegation."""
    import tensorflow as tf

    def answer(step_fn, initial_state, start_id, end_id, max_length, *beam_width):
        found = search(
            step_fn,
            initial_state,
            batch_size=len(tf.nest.flatten(initial_state)[0]),
            start_id=start_id,
            end_id=end_id,
            max_length=max_length,
            **({"beam_width": beam_width[0]} if beams else {}),
        )
        return found.tokens

    return answer


def greedy(*, feed="argmax", carry=True, steps=0, cut=True, keep_start=False, keep_end=False):
    """A greedy_decode; the options make the classic mistakes."""
    import tensorflow as tf

    def answer(step_fn, initial_state, start_id, end_id, max_length):
        batch_size = tf.shape(tf.nest.flatten(initial_state)[0])[0]
        tokens, state, history = tf.fill([batch_size], start_id), initial_state, []
        for step in range(max_length + steps):
            log_probs, state = step_fn(tokens, state if carry else initial_state)
            if feed == "batch":
                best = tf.argmax(log_probs, axis=0, output_type=tf.int32)
            elif feed == "sample":
                seed = [step, 7]
                best = tf.random.stateless_categorical(log_probs, 1, seed=seed, dtype=tf.int32)[
                    :, 0
                ]
            else:
                best = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
            history.append(best)
            tokens = tf.fill([batch_size], start_id) if feed == "start" else best
        rows = tf.stack(history, axis=1).numpy().tolist()
        if cut:
            rows = [r[: r.index(end_id) + keep_end] if end_id in r else r for r in rows]
        return [[start_id] * keep_start + r for r in rows]

    return answer


@pytest.mark.parametrize(
    ("answer", "status", "fragment"),
    [
        (greedy_decode, "passed", "matches tfcourse.decoding.greedy_search"),
        (greedy(), "passed", "feeds back each argmax, carries the state"),
        (greedy_row_by_row, "passed", "matches tfcourse.decoding.greedy_search"),
        (
            course_search(decoding.greedy_search),
            "failed",
            "calls a ready-made decoder",
        ),
        (None, "not attempted", "not attempted yet"),
        (not_written, "not attempted", "not attempted yet"),
        (raises, "failed", "greedy_decode raised RuntimeError: oops"),
        (greedy(feed="start"), "failed", "it feeds start_id at every step"),
        (greedy(carry=False), "failed", "it passes initial_state at every step"),
        (greedy(keep_start=True), "failed", "row 0 begins with start_id (1)"),
        (greedy(keep_end=True), "failed", "row 0 ends with end_id (2); leave END out"),
        (greedy(cut=False), "failed", "row 0 goes on after END"),
        (greedy(steps=1), "failed", "row 1 has 7 tokens, one more than max_length (6)"),
        (greedy(steps=-1), "failed", "row 1 stops one token short of max_length (6)"),
        (greedy(feed="batch"), "failed", "that is an argmax over the batch axis (0)"),
        (greedy(feed="sample"), "failed", "not a sample"),
        (lambda *a: greedy_decode(*a)[:1], "failed", "returned 1 sequence for a batch of 3 rows"),
        (lambda *a: [t for r in greedy_decode(*a) for t in r], "failed", "one flat list"),
        (lambda *a: [r[1:] for r in greedy_decode(*a)], "failed", "lacks its first generated"),
        (lambda *a: np.array(greedy_decode(*a), dtype=object), "failed", "return a Python list"),
        (lambda *a: greedy_decode(*a[:2], 1, *a[3:]), "failed", "feed start_id (5) to every row"),
        (lambda *a: None, "failed", "greedy_decode returned None"),
    ],
)
def test_check_greedy_decode(tf, answer, status, fragment):
    assert_result(ch05.check_greedy_decode(answer), status, fragment)


def test_check_greedy_decode_catches_a_start_id_used_for_the_first_row_only(tf):
    def one_start(step_fn, initial_state, start_id, end_id, max_length):
        return greedy_decode(
            lambda tokens, state: step_fn(tokens[:1], state), initial_state, start_id, end_id, 1
        )

    assert_result(ch05.check_greedy_decode(one_start), "failed", "step_fn got 1 token for 3 rows")


# 05.4 beam_decode --------------------------------------------------------------------------------
def gather_rows(state, rows):
    """Pick `rows` of every Tensor in a `tf.nest` structure (the notebook's solution uses it)."""
    import tensorflow as tf

    return tf.nest.map_structure(lambda s: tf.gather(s, rows), state)


def beam_decode(step_fn, initial_state, start_id, end_id, max_length, beam_width):
    """The notebook's solution: each row's k best extensions; those that end are set aside."""
    import tensorflow as tf

    k = beam_width
    batch_size = int(tf.shape(tf.nest.flatten(initial_state)[0])[0])
    state = tf.nest.map_structure(lambda s: tf.repeat(s, k, axis=0), initial_state)
    scores = np.tile([0.0] + [-np.inf] * (k - 1), batch_size)  # one live beam per row at first
    tokens, sequences = np.full(batch_size * k, start_id), [[] for _ in range(batch_size * k)]
    finished = [[] for _ in range(batch_size)]  # (score, tokens) pairs, per row
    for _ in range(max_length):
        log_probs, state = step_fn(tokens, state)
        total = scores[:, None] + np.asarray(log_probs)  # (batch_size * k, vocab_size)
        vocab_size = total.shape[1]
        total = total.reshape(batch_size, k * vocab_size)  # each row's candidates side by side
        best = np.argsort(-total, axis=1, kind="stable")[:, :k]
        scores = np.take_along_axis(total, best, axis=1).ravel()
        beams = (best // vocab_size + k * np.arange(batch_size)[:, None]).ravel()
        tokens = (best % vocab_size).ravel()
        sequences = [sequences[b] + [t] for b, t in zip(beams, tokens.tolist(), strict=True)]
        state = gather_rows(state, beams)  # each beam takes its parent's state
        for beam in np.flatnonzero((tokens == end_id) & np.isfinite(scores)):
            finished[beam // k].append((scores[beam], sequences[beam][:-1]))
            scores[beam] = -np.inf  # a finished hypothesis grows no further
        if np.isneginf(scores).all():
            break
    for beam in np.flatnonzero(np.isfinite(scores)):  # still live after max_length tokens
        finished[beam // k].append((scores[beam], sequences[beam]))
    return [max(row, key=lambda h: h[0])[1] for row in finished]


def beam_row_by_row(step_fn, initial_state, start_id, end_id, max_length, beam_width):
    """A right answer in plain Python: one row, and one hypothesis per step_fn call, at a time."""
    import tensorflow as tf

    results = []
    for row in range(len(tf.nest.flatten(initial_state)[0])):
        first = tf.nest.map_structure(lambda s: s[row : row + 1], initial_state)  # noqa: B023
        live, finished = [(0.0, [start_id], first)], []
        for _ in range(max_length):
            candidates = []
            for score, tokens, state in live:
                log_probs, new_state = step_fn(tf.constant(tokens[-1:]), state)
                for token, log_prob in enumerate(np.asarray(log_probs)[0].tolist()):
                    candidates.append((score + log_prob, [*tokens, token], new_state))
            candidates.sort(key=lambda c: -c[0])
            top = candidates[:beam_width]
            finished += [c for c in top if c[1][-1] == end_id]
            live = [c for c in top if c[1][-1] != end_id]
            if not live:
                break
        score, tokens, _ = max(finished + live, key=lambda c: c[0])
        results.append([t for t in tokens[1:] if t != end_id])
    return results


def exhaustive_unless_greedy(step_fn, initial_state, start_id, end_id, max_length, beam_width):
    """Greedy at width 1 (as the check compares), every sequence otherwise: not a beam search."""
    import tensorflow as tf

    if beam_width == 1:
        return greedy_decode(step_fn, initial_state, start_id, end_id, max_length)
    results = []
    for row in range(len(tf.nest.flatten(initial_state)[0])):
        first = tf.nest.map_structure(lambda s: s[row : row + 1], initial_state)  # noqa: B023
        live, finished = [(0.0, [start_id], first)], []
        for _ in range(max_length):
            grown = []
            for score, tokens, state in live:
                log_probs, new_state = step_fn(tf.constant(tokens[-1:]), state)
                for token, log_prob in enumerate(np.asarray(log_probs)[0].tolist()):
                    if np.isfinite(log_prob) and log_prob > -50:
                        grown.append((score + log_prob, [*tokens, token], new_state))
            finished += [c for c in grown if c[1][-1] == end_id]
            live = [c for c in grown if c[1][-1] != end_id][:200]
        score, tokens, _ = max(finished + live, key=lambda c: c[0])
        results.append([t for t in tokens[1:] if t != end_id])
    return results


def beam_row_by_row_wide(step_fn, initial_state, start_id, end_id, max_length, beam_width):
    """Each hypothesis keeps its beam_width best extensions, and nothing is cut back."""
    import tensorflow as tf

    results = []
    for row in range(len(tf.nest.flatten(initial_state)[0])):
        first = tf.nest.map_structure(lambda s: s[row : row + 1], initial_state)  # noqa: B023
        live, finished = [(0.0, [start_id], first)], []
        for _ in range(max_length):
            grown = []
            for score, tokens, state in live:
                log_probs, new_state = step_fn(tf.constant(tokens[-1:]), state)
                ranked = np.argsort(-np.asarray(log_probs)[0])[:beam_width]
                grown += [
                    (score + float(np.asarray(log_probs)[0][t]), [*tokens, int(t)], new_state)
                    for t in ranked
                ]
            finished += [c for c in grown if c[1][-1] == end_id]
            live = [c for c in grown if c[1][-1] != end_id]
        score, tokens, _ = max(finished + live, key=lambda c: c[0])
        results.append([t for t in tokens[1:] if t != end_id])
    return results


def beam(mistake=""):
    """The solution, vectorised in NumPy, with one classic mistake."""
    import tensorflow as tf

    def answer(step_fn, initial_state, start_id, end_id, max_length, beam_width):
        k = 1 if mistake == "greedy" else beam_width
        batch_size = int(tf.shape(tf.nest.flatten(initial_state)[0])[0])
        groups, per = (1, batch_size * k) if mistake == "mix_rows" else (batch_size, k)
        keep = mistake in ("pushed_out", "after_end")  # finished ones stay in the beam
        state = tf.nest.map_structure(lambda s: tf.repeat(s, k, axis=0), initial_state)
        scores = np.tile([0.0] + [-np.inf] * (k - 1), batch_size)
        tokens, sequences = np.full(batch_size * k, start_id), [[] for _ in range(batch_size * k)]
        finished = [[] for _ in range(batch_size)]
        for _ in range(max_length - (mistake == "one_short")):
            log_probs, new_state = step_fn(tokens, state)
            log_probs = np.asarray(log_probs, np.float64)
            vocab_size = log_probs.shape[1]
            if mistake == "pushed_out":  # a finished beam's only extension: END, for free
                done = np.array([end_id in s for s in sequences])
                log_probs[done] = np.where(np.arange(vocab_size) == end_id, 0.0, -np.inf)
            if mistake == "last_step":  # only the new token counts (dead beams stay dead)
                total = np.where(np.isfinite(scores), 0.0, -np.inf)[:, None] + log_probs
            elif mistake == "probabilities":
                total = scores[:, None] + np.exp(log_probs)
            else:
                total = scores[:, None] + log_probs
            total = total.reshape(groups, -1)
            best = np.argsort(-total, axis=1, kind="stable")[:, :per]
            if mistake == "no_prune":  # every parent keeps its k best: k * k live, then k^3...
                return beam_row_by_row_wide(step_fn, initial_state, start_id, end_id, max_length, k)
            scores = np.take_along_axis(total, best, axis=1).ravel()
            beams = (best // vocab_size + per * np.arange(groups)[:, None]).ravel()
            tokens = (best % vocab_size).ravel()
            sequences = [sequences[b] + [t] for b, t in zip(beams, tokens.tolist(), strict=True)]
            if mistake != "no_reorder":
                new_state = gather_rows(new_state, beams)
            state = new_state
            if keep:
                continue
            for b in np.flatnonzero((tokens == end_id) & np.isfinite(scores)):
                finished[b // k].append((scores[b], sequences[b][:-1]))
                scores[b] = -np.inf
            if np.isneginf(scores).all() or (mistake == "stop_early" and any(finished)):
                break
        for b in np.flatnonzero(np.isfinite(scores)):
            if mistake == "finished_first" and finished[b // k]:
                continue  # live hypotheses count only where none finished
            cut = sequences[b].index(end_id) if end_id in sequences[b] else None
            finished[b // k].append((scores[b], sequences[b][:cut]))
        pick = min if mistake == "worst" else max
        return [pick(row, key=lambda h: h[0])[1] for row in finished]

    return answer


@pytest.mark.parametrize(
    ("answer", "status", "fragment"),
    [
        (beam_decode, "passed", "finds each row's best sequence"),
        (beam(), "passed", "equals greedy search with beam_width=1"),
        (beam_row_by_row, "passed", "finds each row's best sequence"),
        (
            course_search(decoding.beam_search, beams=True),
            "failed",
            "beam_decode calls a ready-made decoder",
        ),
        (course_search(decoding.exhaustive_search), "failed", "calls a ready-made decoder"),
        (None, "not attempted", "not attempted yet"),
        (not_written, "not attempted", "not attempted yet"),
        (raises, "failed", "beam_decode raised RuntimeError: oops"),
        (beam("greedy"), "failed", "that is greedy search's result"),
        (beam("finished_first"), "failed", "returns the best finished hypothesis whenever"),
        (beam("one_short"), "failed", "it runs max_length - 1 steps"),
        (beam("stop_early"), "failed", "stop only when every hypothesis of every row has"),
        (exhaustive_unless_greedy, "failed", "keep only the beam_width best hypotheses"),
        (beam("no_prune"), "failed", "keep only the beam_width best hypotheses"),
        (beam("last_step"), "failed", "it ranks beams by the last token's log-prob"),
        (beam("probabilities"), "failed", "it adds up probabilities"),
        (beam("pushed_out"), "failed", "it keeps finished hypotheses in the beam"),
        (beam("after_end"), "failed", "it goes on extending hypotheses after END"),
        (beam("worst"), "failed", "it returns the worst beam"),
        (beam("no_reorder"), "failed", "reorder the state with the beams chosen"),
        (beam("mix_rows"), "failed", "with the state of another row of the batch"),
        (lambda *a: greedy_decode(*a[:5]), "failed", "that is greedy search's result"),
        (lambda *a: [[*r, a[3]] for r in beam_decode(*a)], "failed", "leave END out"),
        (lambda *a: beam_decode(*a)[:1], "failed", "decode every row of the batch"),
    ],
)
def test_check_beam_search(tf, answer, status, fragment):
    assert_result(ch05.check_beam_search(answer), status, fragment)


def test_check_beam_search_wants_greedy_search_with_one_beam(tf):
    def wide_when_narrow(*args):
        return beam_decode(*args[:5], max(args[5], 2))

    result = ch05.check_beam_search(wide_when_narrow)
    assert_result(result, "failed", "with beam_width=1, row 0 is")


# The decoding cases ------------------------------------------------------------------------------
search = ch05._search  # a tfcourse.decoding search over a case's model


@pytest.mark.parametrize("case", ch05.GREEDY_CASES)
def test_greedy_cases_end_rows_early_and_at_max_length(tf, case):
    lengths = [len(tokens) for tokens in search(case, decoding.greedy_search).tokens]
    assert case.max_length in lengths
    assert min(lengths) < case.max_length - 1
    # END comes well before the limit or not at all, so an off-by-one limit changes the result
    assert all(n == case.max_length or n < case.max_length - 1 for n in lengths)


@pytest.mark.parametrize("case", ch05.BEAM_CASES)
def test_beam_cases_are_solved_by_the_course_beam_search(tf, case):
    best = search(case, decoding.exhaustive_search)
    found = search(case, decoding.beam_search, beam_width=case.beam_width)
    assert found.tokens == best.tokens
    model = ch05._Model(case)
    assert [ch05._beam_row(model, row) for row in range(len(case.rows))] == best.tokens
    runner_up = [beams[1][1] for beams in best.beams]
    assert np.all(best.scores - runner_up > 1e-3)  # no ties


def test_greedy_search_misses_the_best_sequence_in_the_first_beam_case(tf):
    case = ch05.BEAM_CASES[0]
    greedy_found = search(case, decoding.greedy_search)
    best = search(case, decoding.exhaustive_search)
    assert greedy_found.tokens != best.tokens
    assert np.all(greedy_found.scores <= best.scores + 1e-9)


# Every check -------------------------------------------------------------------------------------
CHECKS = {
    "05.1": ch05.check_teacher_forcing,
    "05.2": ch05.check_attention_weights,
    "05.3": ch05.check_greedy_decode,
    "05.4": ch05.check_beam_search,
}


@pytest.mark.parametrize("exercise", sorted(CHECKS))
@pytest.mark.parametrize(("answer", "fragment"), MISBEHAVING)
def test_every_check_survives_a_misbehaving_answer(
    tf, monkeypatch, capsys, exercise, answer, fragment
):
    monkeypatch.setattr(_learner, "TIME_BUDGET", 0.5)
    assert_survives(CHECKS[exercise](answer), fragment, capsys)


@pytest.mark.parametrize("case", range(len(ch05.BEAM_CASES)))
def test_the_course_beam_search_finds_every_optimum_the_check_demands(tf, case):
    """The check and tfcourse.decoding agree: the library's beam search passes each case."""
    case = ch05.BEAM_CASES[case]
    found = ch05._search(case, decoding.beam_search, beam_width=case.beam_width)
    assert [list(t) for t in found.tokens] == [tokens for tokens, _ in ch05._best(case)]
