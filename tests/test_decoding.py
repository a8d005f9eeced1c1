"""Tests for tfcourse/decoding.py: greedy, beam and exhaustive search over a step function.

The models are tiny and hand-made, so every claim can be checked against an exhaustive search over
all sequences. Token 0 is the end token and token 1 the start token in every model here.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from tfcourse import decoding
from tfcourse.decoding import (
    beam_search,
    exhaustive_search,
    greedy_search,
    length_penalty_factor,
)

END, START = 0, 1


def log_normalize(weights: np.ndarray) -> np.ndarray:
    """Rows of positive weights -> rows of log-probabilities."""
    weights = np.asarray(weights, dtype=np.float64)
    with np.errstate(divide="ignore"):  # a weight of 0 is a log-prob of -inf, on purpose
        return np.log(weights / weights.sum(axis=-1, keepdims=True))


def markov(table: dict[int, list[float]], vocab: int) -> decoding.StepFn:
    """A stateless model whose next token depends on the previous one only (weights per token)."""
    log_probs = log_normalize([table.get(token, [1.0] * vocab) for token in range(vocab)])
    return lambda tokens, state: (log_probs[tokens], state)


def tree(table: dict[tuple[int, ...], list[float]], vocab: int) -> tuple[decoding.StepFn, dict]:
    """A model whose next token depends on the whole prefix; the state is the prefix so far."""
    default = [1.0] * vocab

    def step(tokens, state):
        history = np.concatenate([state["history"], tokens[:, None]], axis=1)
        rows = [table.get(tuple(row[1:]), default) for row in history.tolist()]
        return log_normalize(rows), {"history": history}

    return step, {"history": np.zeros((1, 0), dtype=np.int32)}


class RandomModel:
    """A random model whose next-token distribution depends on the whole prefix and a row's seed.

    The state holds the prefix (a `Tensor`) and the seed (a NumPy array), so a beam search that
    gathers the wrong state scores its tokens under the wrong prefix, which `score` catches.
    """

    def __init__(self, seed: int, *, vocab: int = 4, end_bias: float = 0.0) -> None:
        logits = np.random.default_rng(seed).normal(scale=2.0, size=(4096, vocab))
        logits[:, END] += end_bias
        self.table = log_normalize(np.exp(logits))

    def _log_probs(self, seeds: np.ndarray, history: np.ndarray) -> np.ndarray:
        index = seeds.astype(np.int64)
        for column in history.T:
            index = (index * 1_000_003 + column + 1) % 2_147_483_647
        return self.table[index % len(self.table)]

    def initial_state(self, seeds):
        import tensorflow as tf

        return {"history": tf.zeros((len(seeds), 0), tf.int32), "seed": np.asarray(seeds)}

    def step(self, tokens, state):
        import tensorflow as tf

        history = tf.concat([state["history"], tf.constant(tokens)[:, None]], axis=1)
        return self._log_probs(state["seed"], history.numpy()), {**state, "history": history}

    def cumulative(self, seed: int, tokens: list[int], *, max_length: int) -> np.ndarray:
        """The summed log-prob after each token of a hypothesis, found without any search."""
        sequence = [*tokens, END] if len(tokens) < max_length else tokens
        history = [START, *sequence]
        steps = [
            self._log_probs(np.array([seed]), np.array([history[: i + 1]]))[0, token]
            for i, token in enumerate(sequence)
        ]
        return np.cumsum(steps)

    def score(self, seed: int, tokens: list[int], *, max_length: int, alpha: float = 0.0):
        sums = self.cumulative(seed, tokens, max_length=max_length)
        return sums[-1] / length_penalty_factor(len(sums), alpha)


def search(fn, step_fn, state, *, batch_size=1, max_length=4, **options):
    return fn(
        step_fn,
        state,
        batch_size=batch_size,
        start_id=START,
        end_id=END,
        max_length=max_length,
        **options,
    )


# From the start, token 2 (0.6) lures greedy search; after it the end token has 0.34. Token 3 (0.4)
# is followed by the end token with 0.99, so [3] (0.396) beats greedy's [2] (0.204).
LURE = markov(
    {START: [0.0, 0.0, 0.6, 0.4], 2: [0.34, 0.0, 0.33, 0.33], 3: [0.99, 0.0, 0.005, 0.005]}, 4
)


def test_length_penalty_factor_is_the_gnmt_formula():
    assert length_penalty_factor(7, 0.5) == pytest.approx(math.sqrt(2.0))
    assert length_penalty_factor(13, 1.0) == pytest.approx(3.0)
    assert length_penalty_factor(1, 0.7) == 1.0  # (5 + 1) / 6 = 1
    assert all(length_penalty_factor(n, 0.0) == 1.0 for n in range(30))
    factors = [length_penalty_factor(n, 0.6) for n in range(1, 30)]
    assert all(a < b for a, b in itertools.pairwise(factors))


def test_greedy_takes_the_most_likely_token_at_each_step():
    result = search(greedy_search, LURE, None, batch_size=2)
    assert result.tokens == [[2], [2]]
    np.testing.assert_allclose(result.scores, np.log(0.6 * 0.34))


@pytest.mark.parametrize("beam_width", [2, 3, 8])
def test_beam_finds_the_sequence_greedy_misses_as_exhaustive_search_does(beam_width):
    beam = search(beam_search, LURE, None, batch_size=2, beam_width=beam_width)
    exact = search(exhaustive_search, LURE, None, batch_size=2)
    assert beam.tokens == exact.tokens == [[3], [3]]
    np.testing.assert_allclose(beam.scores, np.log(0.4 * 0.99))
    np.testing.assert_allclose(exact.scores, np.log(0.4 * 0.99))


def test_exhaustive_search_scores_every_sequence():
    exact = search(exhaustive_search, LURE, None, max_length=3)
    # 1, 3 and 9 sequences end with the end token at steps 1, 2 and 3 (a weight of 0 still makes
    # a sequence, of score -inf), and 27 sequences of 3 tokens have no end token.
    assert len(exact.beams[0]) == 1 + 3 + 9 + 27
    scores = [score for _, score in exact.beams[0]]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("seed", range(5))
def test_beam_width_one_equals_greedy(tf, seed):
    model = RandomModel(seed, vocab=3 + seed)
    state = model.initial_state(np.arange(6) + 10 * seed)
    greedy = search(greedy_search, model.step, state, batch_size=6, max_length=7)
    beam = search(beam_search, model.step, state, batch_size=6, max_length=7, beam_width=1)
    assert beam.tokens == greedy.tokens
    np.testing.assert_allclose(beam.scores, greedy.scores)


def test_beam_width_one_breaks_ties_as_greedy_does():
    tied = markov(
        {START: [0.1, 0.0, 0.45, 0.45], 2: [0.1, 0.0, 0.45, 0.45], 3: [0.1, 0.0, 0.45, 0.45]}, 4
    )
    greedy = search(greedy_search, tied, None, batch_size=2, max_length=3)
    beam = search(beam_search, tied, None, batch_size=2, max_length=3, beam_width=1)
    assert beam.tokens == greedy.tokens == [[2, 2, 2], [2, 2, 2]]  # the lowest id wins a tie


@pytest.mark.parametrize(("seed", "alpha"), [(0, 0.0), (1, 0.0), (2, 0.7), (3, 2.0), (4, -0.5)])
def test_beam_as_wide_as_the_search_space_equals_exhaustive(tf, seed, alpha):
    # 4 tokens, 4 steps: at most 3 ** 3 live prefixes, each with 4 extensions, so a beam of
    # 4 * 27 keeps every one, and the early stop is exact for any length penalty.
    model = RandomModel(seed, end_bias=-1.0)
    state = model.initial_state([seed, seed + 100, seed + 200])
    options = {"batch_size": 3, "max_length": 4, "length_penalty": alpha}
    beam = search(beam_search, model.step, state, beam_width=4 * 27, **options)
    exact = search(exhaustive_search, model.step, state, **options)
    assert beam.tokens == exact.tokens
    np.testing.assert_allclose(beam.scores, exact.scores)


@pytest.mark.parametrize("seed", range(4))
def test_beam_never_beats_exhaustive_and_every_score_is_what_the_model_gives(tf, seed):
    model = RandomModel(seed)
    seeds = [seed, seed + 7]
    state = model.initial_state(seeds)
    exact = search(exhaustive_search, model.step, state, batch_size=2, max_length=5)
    for width in (1, 2, 3, 5):
        beam = search(beam_search, model.step, state, batch_size=2, max_length=5, beam_width=width)
        assert np.all(beam.scores <= exact.scores + 1e-9)
        for row_seed, hypotheses in zip(seeds, beam.beams, strict=True):
            assert 1 <= len(hypotheses) <= width
            for tokens, score in hypotheses:
                assert score == pytest.approx(model.score(row_seed, tokens, max_length=5))


def test_sorted_beams_have_non_increasing_scores_and_the_best_comes_first(tf):
    model = RandomModel(3, vocab=5)
    state = model.initial_state([1, 2, 3])
    result = search(beam_search, model.step, state, batch_size=3, max_length=6, beam_width=5)
    for tokens, score, hypotheses in zip(result.tokens, result.scores, result.beams, strict=True):
        scores = [s for _, s in hypotheses]
        assert scores == sorted(scores, reverse=True)
        assert (tokens, score) == hypotheses[0]


def test_a_decoded_built_from_tokens_and_scores_has_no_beams():
    decoded = decoding.Decoded([[2, 3]], np.array([-0.5]))
    assert decoded.beams is None
    assert decoded.tokens == [[2, 3]]


def test_cumulative_log_prob_of_a_hypothesis_never_increases(tf):
    model = RandomModel(4, vocab=5)
    state = model.initial_state([5, 6])
    result = search(beam_search, model.step, state, batch_size=2, max_length=6, beam_width=4)
    for seed, hypotheses in zip([5, 6], result.beams, strict=True):
        for tokens, score in hypotheses:
            sums = model.cumulative(seed, tokens, max_length=6)
            assert np.all(np.diff(np.concatenate([[0.0], sums])) <= 0)
            assert sums[-1] == pytest.approx(score)


@pytest.mark.parametrize("seed", range(3))
def test_best_score_is_bounded_by_exhaustive_and_reaches_it_once_the_beam_covers_everything(
    tf, seed
):
    # What widening the beam guarantees: never more than the optimum, and the optimum itself once
    # every prefix fits (4 tokens, 4 steps: 4 * 3 ** 3 = 108 extensions at most). Between those,
    # nothing: see the next test.
    model = RandomModel(seed, end_bias=-1.0)
    state = model.initial_state([seed])
    exact = search(exhaustive_search, model.step, state).scores[0]
    scores = {
        w: search(beam_search, model.step, state, beam_width=w).scores[0] for w in range(1, 9)
    }
    scores.update(
        {w: search(beam_search, model.step, state, beam_width=w).scores[0] for w in (108, 200)}
    )
    assert all(score <= exact + 1e-12 for score in scores.values())
    assert scores[108] == pytest.approx(exact) == pytest.approx(scores[200])


def test_a_wider_beam_can_find_a_worse_sequence():
    # Beam search is a heuristic: its best score is NOT monotonic in the width in general. Here
    # width 2 keeps the two children of token 3 (0.44 * 0.5 each) over token 2's best child
    # (0.45 * 0.28), and both of token 3's children lead nowhere, while [2, 2] ends with 0.99.
    step_fn, state = tree(
        {
            (): [0.0, 0.0, 0.45, 0.44, 0.11],
            (2,): [0.24, 0.0, 0.28, 0.24, 0.24],
            (2, 2): [0.99, 0.0, 0.005, 0.005, 0.0],
            (3,): [0.0, 0.0, 0.5, 0.5, 0.0],
            (3, 2): [0.01, 0.0, 0.33, 0.33, 0.33],
            (3, 3): [0.01, 0.0, 0.33, 0.33, 0.33],
        },
        vocab=5,
    )
    scores = {
        width: search(beam_search, step_fn, state, max_length=3, beam_width=width).scores[0]
        for width in (1, 2, 3)
    }
    exact = search(exhaustive_search, step_fn, state, max_length=3)
    assert scores[1] == pytest.approx(np.log(0.45 * 0.28 * 0.99))
    assert scores[2] < scores[1]
    assert scores[3] == pytest.approx(exact.scores[0]) == pytest.approx(scores[1])


# From the start, ending at once has 0.52; [2, 3] then the end token has 0.48 * 0.995 * 0.995.
SHORT_OR_LONG = markov(
    {
        START: [0.52, 0.0, 0.48, 0.0],
        2: [0.0025, 0.0, 0.0025, 0.995],
        3: [0.995, 0.0, 0.0025, 0.0025],
    },
    4,
)


def test_alpha_zero_prefers_the_short_sequence():
    for fn, options in ((beam_search, {"beam_width": 3}), (exhaustive_search, {})):
        result = search(fn, SHORT_OR_LONG, None, max_length=5, **options)
        assert result.tokens == [[]]
        np.testing.assert_allclose(result.scores, np.log(0.52))


def test_a_positive_length_penalty_favours_the_longer_sequence():
    long_score = np.log(0.48 * 0.995 * 0.995) / length_penalty_factor(3, 1.0)
    assert long_score > np.log(0.52)  # the premise: the factor at length 3 is 8 / 6
    for fn, options in ((beam_search, {"beam_width": 3}), (exhaustive_search, {})):
        result = search(fn, SHORT_OR_LONG, None, max_length=5, length_penalty=1.0, **options)
        assert result.tokens == [[2, 3]]
        np.testing.assert_allclose(result.scores, long_score)


def test_a_sequence_cut_at_max_length_has_no_end_token_in_its_length():
    loop = markov({START: [0.1, 0.0, 0.9, 0.0], 2: [0.1, 0.0, 0.9, 0.0]}, 4)
    for fn in (greedy_search, beam_search, exhaustive_search):
        result = search(fn, loop, None, max_length=3)
        assert result.tokens == [[2, 2, 2]]
        np.testing.assert_allclose(result.scores, 3 * np.log(0.9))


@pytest.mark.parametrize("fn", [greedy_search, beam_search, exhaustive_search])
def test_batch_rows_are_decoded_independently(tf, fn):
    model = RandomModel(11, vocab=4)
    seeds = [3, 1, 4, 1, 5]
    together = search(fn, model.step, model.initial_state(seeds), batch_size=5, max_length=5)
    for row, seed in enumerate(seeds):
        alone = search(fn, model.step, model.initial_state([seed]), max_length=5)
        assert together.tokens[row] == alone.tokens[0]
        assert together.scores[row] == pytest.approx(alone.scores[0])
    assert together.tokens[1] == together.tokens[3]  # the same seed twice


def unordered(indices: np.ndarray) -> np.ndarray:
    return np.sort(indices)  # each row keeps its parents, in the wrong order


def reversed_within_rows(indices: np.ndarray) -> np.ndarray:
    return indices.reshape(3, -1)[:, ::-1].reshape(-1)


def mixed_rows(indices: np.ndarray) -> np.ndarray:
    return indices[::-1]


def not_reordered(indices: np.ndarray) -> np.ndarray:
    return np.arange(len(indices))


def score_mismatches(model: RandomModel, seeds: list[int]) -> int:
    state = model.initial_state(seeds)
    result = search(beam_search, model.step, state, batch_size=3, max_length=6, beam_width=4)
    return sum(
        not np.isclose(score, model.score(seed, tokens, max_length=6))
        for seed, hypotheses in zip(seeds, result.beams, strict=True)
        for tokens, score in hypotheses
    )


@pytest.mark.parametrize("bug", [unordered, reversed_within_rows, mixed_rows, not_reordered])
def test_the_state_follows_its_hypothesis_and_a_wrong_gather_is_caught(tf, monkeypatch, bug):
    # The model's state is the prefix so far, so a hypothesis scored under another one's state
    # gets a score that rescoring its own tokens does not reproduce.
    model = RandomModel(0, vocab=5, end_bias=-2.0)
    assert score_mismatches(model, [0, 1, 2]) == 0
    gather, calls = decoding._gather_state, []

    def buggy(state, indices):
        calls.append(indices)  # the first call tiles the state, which stays right
        return gather(state, indices if len(calls) == 1 else bug(indices))

    monkeypatch.setattr(decoding, "_gather_state", buggy)
    assert score_mismatches(model, [0, 1, 2]) > 0


def test_a_keras_gru_decoder_with_tensor_state_decodes_like_exhaustive(tf):
    import keras

    keras.utils.set_random_seed(0)
    vocab, batch_size = 5, 3
    embed, cell = keras.layers.Embedding(vocab, 8), keras.layers.GRUCell(16)
    dense = keras.layers.Dense(vocab)

    def step_fn(tokens, states):
        output, states = cell(embed(tokens), states)
        return tf.nn.log_softmax(2.0 * dense(output)), states

    initial = [tf.random.normal((batch_size, 16))]
    options = {"batch_size": batch_size, "max_length": 5}
    exact = search(exhaustive_search, step_fn, initial, **options)
    greedy = search(greedy_search, step_fn, initial, **options)
    beam1 = search(beam_search, step_fn, initial, beam_width=1, **options)
    full = search(beam_search, step_fn, initial, beam_width=vocab * 4**4, **options)
    assert beam1.tokens == greedy.tokens
    assert full.tokens == exact.tokens
    np.testing.assert_allclose(full.scores, exact.scores, rtol=1e-5)


def test_state_may_be_none_numpy_tensors_or_nested():
    def step_fn(tokens, state):
        return np.log(np.full((len(tokens), 3), 1 / 3)), state

    nested = {"a": (np.zeros((2, 3)), None), "b": [np.ones(2)]}
    for state in (None, np.zeros((2, 1)), nested):
        result = search(beam_search, step_fn, state, batch_size=2, max_length=2, beam_width=2)
        assert len(result.tokens) == 2


def bad_step(kind: str):
    def step_fn(tokens, state):
        probs = np.full((len(tokens), 4), 0.25)
        return {
            "probabilities": (probs, state),
            "logits": (probs * 8.0 - 1.0, state),
            "nan": (np.full((len(tokens), 4), np.nan), state),
            "rows": (np.log(probs[:-1]), state),
            "flat": (np.log(probs[:, 0]), state),
            "not a tuple": np.log(probs),
            "shifted logits": (np.log(probs) - np.log(probs).max(axis=1, keepdims=True), state),
            "state rows": (np.log(probs), np.zeros((len(tokens) + 1, 2))),
        }[kind]

    return step_fn


@pytest.mark.parametrize("fn", [greedy_search, beam_search, exhaustive_search])
@pytest.mark.parametrize(
    ("kind", "error", "message"),
    [
        ("probabilities", ValueError, "look like probabilities.*log_softmax"),
        ("logits", ValueError, r"log-probabilities \(every value <= 0\).*log_softmax"),
        ("nan", ValueError, "NaN"),
        ("shifted logits", ValueError, r"logsumexp is .*, not 0.*log_softmax"),
        ("rows", ValueError, r"shape \(\d+, 4\).*expected \(\d+, vocab\)"),
        ("flat", ValueError, r"expected \(\d+, vocab\)"),
        ("not a tuple", TypeError, r"tuple \(log_probs, new_state\)"),
        ("state rows", ValueError, "leading axis"),
    ],
)
def test_a_misbehaving_step_fn_gets_a_clear_error(fn, kind, error, message):
    with pytest.raises(error, match=message):
        search(fn, bad_step(kind), None, max_length=3)


def UNIFORM(tokens, state):  # any token id in, so start_id is checked against the vocabulary
    return np.log(np.full((len(tokens), 4), 0.25)), state


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"beam_width": 0}, "beam_width must be an int >= 1; got 0"),
        ({"beam_width": 2.5}, "beam_width must be an int"),
        ({"max_length": 0}, "max_length must be an int >= 1; got 0"),
        ({"batch_size": 0}, "batch_size must be an int >= 1"),
        ({"start_id": 4}, "start_id=4 is outside the vocabulary.*0 to 3"),
        ({"end_id": 9}, "end_id=9 is outside the vocabulary.*0 to 3"),
        ({"end_id": -1}, "end_id must be an int >= 0"),
        ({"length_penalty": float("nan")}, "alpha must be a finite number"),
        ({"length_penalty": "0.6"}, "alpha must be a finite number"),
    ],
)
def test_bad_arguments_get_a_clear_error(options, message):
    arguments = {"batch_size": 1, "start_id": START, "end_id": END, "max_length": 3, **options}
    with pytest.raises(ValueError, match=message):
        beam_search(UNIFORM, None, **arguments)


def test_an_initial_state_without_the_batch_axis_is_refused():
    with pytest.raises(ValueError, match=r"leading axis \(2 rows here\); got shape \(3,\)"):
        search(greedy_search, UNIFORM, np.zeros(3), batch_size=2)
    with pytest.raises(ValueError, match="leading axis"):
        search(beam_search, UNIFORM, [1.0, 2.0], batch_size=2)


def test_exhaustive_search_refuses_a_search_space_too_big():
    with pytest.raises(ValueError, match=r"4 \*\* 12 = 16,777,216 sequences.*use beam_search"):
        search(exhaustive_search, UNIFORM, None, max_length=12)


def test_length_penalty_factor_refuses_bad_arguments():
    with pytest.raises(ValueError, match="length must be an int >= 0"):
        length_penalty_factor(-1, 0.6)
    with pytest.raises(ValueError, match="alpha must be a finite number"):
        length_penalty_factor(3, float("inf"))


def test_keras_hub_beam_sampler_agrees_while_no_beam_ends(tf):
    """keras_hub's BeamSampler has no finished hypotheses: it extends every beam to the end.

    With ``stop_token_ids`` it keeps extending a beam after its stop token (and stops only when
    every beam has one), so the two searches agree only while no beam ends: this model never
    emits the end token, and both keep the same live beams at every step.
    """
    keras_hub = pytest.importorskip("keras_hub")
    vocab, hidden, batch_size, width, max_length = 6, 8, 3, 3, 5
    rng = np.random.default_rng(0)
    embed, recur, out = (
        tf.constant(rng.normal(size=shape), tf.float32)
        for shape in ((vocab, hidden), (hidden, hidden), (hidden, vocab))
    )
    never_end = tf.constant([-1e9] + [0.0] * (vocab - 1))

    def cell(tokens, h):
        h = tf.tanh(tf.gather(embed, tokens) + h @ recur)
        return 2.0 * (h @ out) + never_end, h

    def step_fn(tokens, h):
        logits, h = cell(tokens, h)
        return tf.nn.log_softmax(logits), h

    def next_fn(prompt, cache, index):
        logits, cache = cell(prompt[:, index - 1], cache)
        return logits, None, cache

    h0 = tf.constant(rng.normal(size=(batch_size, hidden)), tf.float32)
    prompt = tf.concat(
        [tf.fill((batch_size, 1), START), tf.zeros((batch_size, max_length), tf.int32)], 1
    )
    sampler = keras_hub.samplers.BeamSampler(num_beams=width, return_all_beams=True)
    hub_prompts, hub_log_probs = sampler(next_fn, prompt, cache=h0, index=1)
    ours = search(
        beam_search, step_fn, h0, batch_size=batch_size, max_length=max_length, beam_width=width
    )
    for row, hypotheses in enumerate(ours.beams):
        assert [tokens for tokens, _ in hypotheses] == hub_prompts[row, :, 1:].numpy().tolist()
        np.testing.assert_allclose([s for _, s in hypotheses], hub_log_probs[row], rtol=1e-5)


def test_a_thousand_rows_of_a_keras_gru_decode_in_seconds(tf):
    # The chapter's scale: 1,000 rows, 4 beams, 20 steps, the model called eagerly. The end token
    # is made unlikely so that rows run to max_length. It takes 0.5-2 s on a busy 2-core machine.
    import time

    import keras

    keras.utils.set_random_seed(1)
    vocab, batch_size = 40, 1000
    embed, cell = keras.layers.Embedding(vocab, 32), keras.layers.GRUCell(64)
    dense = keras.layers.Dense(
        vocab, bias_initializer=keras.initializers.Constant([-9.0] + [0.0] * (vocab - 1))
    )

    def step_fn(tokens, states):
        output, states = cell(embed(tokens), states)
        return tf.nn.log_softmax(dense(output)), states

    initial = [tf.random.normal((batch_size, 64))]
    start = time.perf_counter()
    result = beam_search(
        step_fn, initial, batch_size=batch_size, start_id=START, end_id=END, max_length=20
    )
    seconds = time.perf_counter() - start
    assert len(result.tokens) == batch_size
    assert np.mean([len(tokens) == 20 for tokens in result.tokens]) > 0.9
    assert seconds < 10.0, f"beam search took {seconds:.1f} s"
