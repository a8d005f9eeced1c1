"""Decode a sequence model token by token: greedy search, beam search and an exhaustive reference.

These replace TF Addons' retired `BeamSearchDecoder`. Every search drives the model through a
*step function*, ``step_fn(tokens, state) -> (log_probs, new_state)``:

- ``tokens``: an int32 NumPy array of shape ``(rows,)``, the previous token of each row;
- ``state``: whatever the model carries between steps, any `tf.nest` structure (or ``None``) of
  NumPy arrays or `Tensor`s whose leading axis is the rows;
- ``log_probs``: shape ``(rows, vocab)``, the log-probabilities of the next token, already
  log-softmaxed (every value <= 0).

A hypothesis ends when it emits ``end_id`` (the end token counts in its length and its
log-probability counts in its score) or after ``max_length`` generated tokens (then it has no end
token). A finished hypothesis scores ``sum(log_probs) / length_penalty_factor(length, alpha)``.

Introduced in `05_seq2seq_attention`.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

#: ``step_fn(tokens, state) -> (log_probs, new_state)``, as the module docstring describes.
StepFn = Callable[[np.ndarray, Any], tuple[Any, Any]]
#: A finished hypothesis: its tokens (without start and end tokens) and its score.
Hypothesis = tuple[list[int], float]

#: The most sequences per row `exhaustive_search` agrees to score (``vocab ** max_length``).
EXHAUSTIVE_LIMIT = 200_000
# Log-probabilities computed in float16/float32 can come out a hair above 0.
_LOG_PROB_TOLERANCE = 1e-4
#: How far from 0 a row's logsumexp may be (float32 log_softmax is within about 1e-6).
_NORMALISED_TOLERANCE = 1e-3


class Decoded(NamedTuple):
    """What a search returns, one entry per input row.

    Attributes:
        tokens: The best sequence of each row, without the start token and without the end token.
        scores: Shape ``(batch,)``: the score of that sequence, the sum of its log-probabilities
            (the end token's included) divided by the length penalty.
        beams: Per row, the finished hypotheses as ``(tokens, score)`` pairs, best first:
            one for greedy search, up to ``beam_width`` for beam search, every sequence for
            exhaustive search; ``None`` in a `Decoded` built from tokens and scores only.
    """

    tokens: list[list[int]]
    scores: np.ndarray
    beams: list[list[Hypothesis]] | None = None


def length_penalty_factor(length: int, alpha: float) -> float:
    """The GNMT length penalty, ``((5 + length) / 6) ** alpha``, that divides a summed log-prob.

    With ``alpha = 0`` the factor is 1 (plain log-probabilities, which favour short sequences);
    with ``alpha > 0`` it grows with the length, so dividing a negative sum by it favours longer
    sequences. Wu et al. (2016) use ``alpha`` between 0.6 and 0.7.

    Args:
        length: The number of generated tokens, the end token included.
        alpha: The strength of the penalty.

    Returns:
        The factor; 1.0 for a length of 1 or ``alpha = 0``.

    Introduced in `05_seq2seq_attention`.
    """
    _check_int("length", length, low=0)
    _check_alpha(alpha)
    return float(((5.0 + length) / 6.0) ** alpha)


def greedy_search(
    step_fn: StepFn,
    initial_state: Any,
    *,
    batch_size: int,
    start_id: int,
    end_id: int,
    max_length: int,
) -> Decoded:
    """Decode by taking the most likely next token at every step.

    Args:
        step_fn: ``step_fn(tokens, state) -> (log_probs, new_state)``; see the module docstring.
        initial_state: The state for the first step, leading axis ``batch_size`` (or ``None``).
        batch_size: The number of input rows.
        start_id: The token fed at the first step.
        end_id: The token that ends a sequence.
        max_length: The most tokens to generate per row.

    Returns:
        A `Decoded`; the scores are plain summed log-probabilities. Ties go to the lowest token id.

    Raises:
        ValueError: For a bad argument, or when ``step_fn`` returns something other than
            log-probabilities of shape ``(batch_size, vocab)``; ``start_id`` and ``end_id`` are
            checked against ``vocab`` after the first step.

    Introduced in `05_seq2seq_attention`.
    """
    _check_search(batch_size=batch_size, start_id=start_id, end_id=end_id, max_length=max_length)
    _check_state(initial_state, batch_size)
    tokens = np.full(batch_size, start_id, dtype=np.int32)
    scores = np.zeros(batch_size)
    done = np.zeros(batch_size, dtype=bool)
    history: list[np.ndarray] = []
    state = initial_state
    for step in range(1, max_length + 1):
        log_probs, state = _call_step(step_fn, tokens, state, batch_size, step)
        _check_ids(start_id, end_id, log_probs.shape[1])
        tokens = np.where(done, end_id, log_probs.argmax(axis=1)).astype(np.int32)
        scores += np.where(done, 0.0, log_probs[np.arange(batch_size), tokens])
        history.append(tokens)
        done |= tokens == end_id
        if done.all():
            break
    rows = np.stack(history, axis=1).tolist()
    sequences = [row[: row.index(end_id)] if end_id in row else row for row in rows]
    beams = [[(seq, float(score))] for seq, score in zip(sequences, scores, strict=True)]
    return Decoded(sequences, scores, beams)


class _Beams:
    """The bookkeeping of a beam search: live hypotheses as arrays, finished ones per row."""

    def __init__(self, batch_size: int, beam_width: int, max_length: int, alpha: float) -> None:
        self.width, self.max_length, self.alpha = beam_width, max_length, alpha
        self.cum = np.full((batch_size, beam_width), -np.inf)
        self.cum[:, 0] = 0.0  # one live hypothesis per row at first, so no beam is a duplicate
        self.history = np.zeros((batch_size, beam_width, 0), dtype=np.int32)
        self.finished: list[list[Hypothesis]] = [[] for _ in range(batch_size)]
        self.best = np.full(batch_size, -np.inf)
        self.done = np.zeros(batch_size, dtype=bool)

    def finish(self, row: int, beam: int, log_prob: float, length: int) -> None:
        """Set aside ``beam``'s history as finished, with its summed log-prob and length."""
        score = float(log_prob) / length_penalty_factor(length, self.alpha)
        self.finished[row].append((self.history[row, beam].tolist(), score))
        self.best[row] = max(self.best[row], score)

    def can_stop(self, step: int) -> np.ndarray:
        """Rows where no live hypothesis can beat the best finished one, whatever comes next.

        A live sum only falls; the factor is monotonic in the length, so the best a hypothesis
        can reach is its sum divided by the factor at one of the two ends of its possible lengths.
        """
        ends = [length_penalty_factor(n, self.alpha) for n in (step + 1, self.max_length)]
        bound = np.maximum(self.cum / ends[0], self.cum / ends[1]).max(axis=1)
        return self.best >= bound

    def results(self) -> Decoded:
        """The best ``width`` finished hypotheses of each row, best first."""
        beams = [sorted(row, key=lambda h: -h[1])[: self.width] for row in self.finished]
        tokens = [row[0][0] if row else [] for row in beams]
        scores = np.array([row[0][1] if row else -np.inf for row in beams])
        return Decoded(tokens, scores, beams)


def beam_search(
    step_fn: StepFn,
    initial_state: Any,
    *,
    batch_size: int,
    start_id: int,
    end_id: int,
    max_length: int,
    beam_width: int = 4,
    length_penalty: float = 0.0,
) -> Decoded:
    """Decode by keeping the ``beam_width`` best live hypotheses of each row at every step.

    Each step extends every live hypothesis by every token and ranks the extensions of a row by
    summed log-prob. An extension by ``end_id`` that ranks among the first ``beam_width`` is set
    aside as finished; the best ``beam_width`` other extensions stay live. A row stops when no live
    hypothesis can beat its best finished one (an exact test, for any ``length_penalty``), and
    every row stops after ``max_length`` tokens, when its live hypotheses finish without an end
    token. With ``beam_width=1`` and no length penalty this is `greedy_search`. A wider beam
    usually finds a better sequence, but not always: beam search is a heuristic, and only
    `exhaustive_search` is exact.

    The state is tiled to ``batch_size * beam_width`` rows (row ``b``'s beams are rows
    ``b * beam_width`` to ``b * beam_width + beam_width - 1``) and reordered with a gather after
    every step, so that each live hypothesis carries its own state. Rows of a batch never mix.

    Args:
        step_fn: ``step_fn(tokens, state) -> (log_probs, new_state)``; see the module docstring.
        initial_state: The state for the first step, leading axis ``batch_size`` (or ``None``).
        batch_size: The number of input rows.
        start_id: The token fed at the first step.
        end_id: The token that ends a sequence.
        max_length: The most tokens to generate per row.
        beam_width: The live hypotheses kept per row.
        length_penalty: ``alpha`` of `length_penalty_factor`; 0 compares plain summed log-probs.

    Returns:
        A `Decoded` whose ``beams`` hold up to ``beam_width`` finished hypotheses per row.

    Raises:
        ValueError: As for `greedy_search`.

    Introduced in `05_seq2seq_attention`.
    """
    _check_search(batch_size=batch_size, start_id=start_id, end_id=end_id, max_length=max_length)
    _check_int("beam_width", beam_width, low=1)
    _check_alpha(length_penalty)
    _check_state(initial_state, batch_size)
    rows = batch_size * beam_width
    beams = _Beams(batch_size, beam_width, max_length, float(length_penalty))
    state = _gather_state(initial_state, np.repeat(np.arange(batch_size), beam_width))
    tokens = np.full(rows, start_id, dtype=np.int32)
    for step in range(1, max_length + 1):
        log_probs, state = _call_step(step_fn, tokens, state, rows, step)
        _check_ids(start_id, end_id, log_probs.shape[1])
        candidates = beams.cum[:, :, None] + log_probs.reshape(batch_size, beam_width, -1)
        parents, tokens = _advance(beams, candidates, end_id, step)
        if step == max_length or beams.done.all():
            break
        offsets = np.arange(batch_size)[:, None] * beam_width
        state = _gather_state(state, (offsets + parents).reshape(rows))
        tokens = tokens.reshape(rows)
    return beams.results()


def _advance(
    beams: _Beams, candidates: np.ndarray, end_id: int, step: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rank the extensions, set finished ones aside, keep the best live ones; return them."""
    batch_size, width, vocab = candidates.shape
    flat = candidates.reshape(batch_size, width * vocab)
    # At most `width` extensions end, so the first 2 * width hold `width` live ones. A stable
    # sort breaks ties by the lowest (beam, token), as argmax does in greedy search.
    order = np.argsort(-flat, axis=1, kind="stable")[:, : 2 * width]
    top = np.take_along_axis(flat, order, axis=1)
    parent, token = order // vocab, order % vocab
    is_end = token == end_id
    ranked_in = np.arange(order.shape[1]) < width
    for row, rank in zip(*np.nonzero(is_end & ranked_in & np.isfinite(top)), strict=True):
        if not beams.done[row]:
            beams.finish(row, parent[row, rank], top[row, rank], step)
    keep = np.argsort(is_end, axis=1, kind="stable")[:, :width]  # live ones first, in rank order
    alive = ~np.take_along_axis(is_end, keep, axis=1)
    beams.cum = np.where(alive, np.take_along_axis(top, keep, axis=1), -np.inf)
    parents = np.take_along_axis(parent, keep, axis=1)
    tokens = np.take_along_axis(token, keep, axis=1).astype(np.int32)
    beams.history = np.concatenate(
        [np.take_along_axis(beams.history, parents[:, :, None], axis=1), tokens[:, :, None]], axis=2
    )
    if step == beams.max_length:
        for row, beam in zip(*np.nonzero(np.isfinite(beams.cum)), strict=True):
            if not beams.done[row]:
                beams.finish(row, beam, beams.cum[row, beam], step)
    beams.done |= beams.can_stop(step)
    return parents, tokens


def exhaustive_search(
    step_fn: StepFn,
    initial_state: Any,
    *,
    batch_size: int,
    start_id: int,
    end_id: int,
    max_length: int,
    length_penalty: float = 0.0,
) -> Decoded:
    """Score every possible sequence and return the best: the exact answer beam search approximates.

    A reference for tests and exercise checks, for tiny vocabularies only: it calls ``step_fn`` on
    every unfinished prefix, up to ``(vocab - 1) ** (max_length - 1)`` rows per input row.

    Args:
        step_fn: ``step_fn(tokens, state) -> (log_probs, new_state)``; see the module docstring.
        initial_state: The state for the first step, leading axis ``batch_size`` (or ``None``).
        batch_size: The number of input rows.
        start_id: The token fed at the first step.
        end_id: The token that ends a sequence.
        max_length: The most tokens to generate per row.
        length_penalty: ``alpha`` of `length_penalty_factor`.

    Returns:
        A `Decoded` whose ``beams`` hold every sequence of each row, best first.

    Raises:
        ValueError: If ``vocab ** max_length`` exceeds `EXHAUSTIVE_LIMIT`.

    Introduced in `05_seq2seq_attention`.
    """
    _check_search(batch_size=batch_size, start_id=start_id, end_id=end_id, max_length=max_length)
    _check_alpha(length_penalty)
    _check_state(initial_state, batch_size)
    owner = np.arange(batch_size)  # the input row of each prefix
    prefixes = np.zeros((batch_size, 0), dtype=np.int32)
    sums = np.zeros(batch_size)
    tokens, state = np.full(batch_size, start_id, dtype=np.int32), initial_state
    finished: list[list[Hypothesis]] = [[] for _ in range(batch_size)]
    for step in range(1, max_length + 1):
        log_probs, state = _call_step(step_fn, tokens, state, len(owner), step)
        vocab = log_probs.shape[1]
        _check_ids(start_id, end_id, vocab)
        _check_exhaustive_size(vocab, max_length)
        factor = length_penalty_factor(step, length_penalty)
        ending = range(vocab) if step == max_length else [end_id]
        for token in ending:
            totals = (sums + log_probs[:, token]) / factor
            for row, prefix, score in zip(owner, prefixes.tolist(), totals, strict=True):
                seq = prefix if token == end_id else [*prefix, token]
                finished[row].append((seq, float(score)))
        if step == max_length:
            break
        others = np.array([t for t in range(vocab) if t != end_id], dtype=np.int32)
        parent = np.repeat(np.arange(len(owner)), len(others))
        tokens = np.tile(others, len(owner))
        owner, sums = owner[parent], sums[parent] + log_probs[parent, tokens]
        prefixes = np.concatenate([prefixes[parent], tokens[:, None]], axis=1)
        state = _gather_state(state, parent)
    beams = [sorted(row, key=lambda h: -h[1]) for row in finished]
    return Decoded([row[0][0] for row in beams], np.array([row[0][1] for row in beams]), beams)


def _check_exhaustive_size(vocab: int, max_length: int) -> None:
    if vocab**max_length > EXHAUSTIVE_LIMIT:
        raise ValueError(
            f"exhaustive_search would score up to vocab ** max_length = {vocab} ** {max_length} = "
            f"{vocab**max_length:,} sequences per row, over its limit of {EXHAUSTIVE_LIMIT:,}; "
            "it is a reference for tiny models: lower max_length, or use beam_search"
        )


def _check_int(name: str, value: Any, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an int >= {low}; got {value!r}")


def _check_alpha(alpha: Any) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not np.isfinite(alpha):
        raise ValueError(
            f"the length penalty alpha must be a finite number (0 turns it off, GNMT uses "
            f"0.6-0.7); got {alpha!r}"
        )


def _check_search(*, batch_size: int, start_id: int, end_id: int, max_length: int) -> None:
    _check_int("batch_size", batch_size, low=1)
    _check_int("max_length", max_length, low=1)
    _check_int("start_id", start_id, low=0)
    _check_int("end_id", end_id, low=0)


def _check_ids(start_id: int, end_id: int, vocab: int) -> None:
    for name, value in (("start_id", start_id), ("end_id", end_id)):
        if value >= vocab:
            raise ValueError(
                f"{name}={value} is outside the vocabulary: step_fn's log_probs have {vocab} "
                f"columns, so token ids run from 0 to {vocab - 1}"
            )


def _call_step(
    step_fn: StepFn, tokens: np.ndarray, state: Any, rows: int, step: int
) -> tuple[np.ndarray, Any]:
    """Call ``step_fn`` and check what it returns: log-probs of shape (rows, vocab), a state."""
    result = step_fn(tokens, state)
    if not isinstance(result, tuple | list) or len(result) != 2:
        raise TypeError(
            f"step_fn must return a tuple (log_probs, new_state); got {type(result).__name__}"
        )
    log_probs = np.asarray(result[0], dtype=np.float64)
    if log_probs.ndim != 2 or log_probs.shape[0] != rows:
        raise ValueError(
            f"step_fn returned log_probs of shape {log_probs.shape} at step {step}; expected "
            f"({rows}, vocab): one row of next-token log-probabilities per token it was given"
        )
    _check_log_probs(log_probs, step)
    _check_state(result[1], rows)
    return log_probs, result[1]


def _check_log_probs(log_probs: np.ndarray, step: int) -> None:
    if np.isnan(log_probs).any():
        raise ValueError(f"step_fn returned log_probs with NaN at step {step}")
    top = log_probs.max()
    if top > _LOG_PROB_TOLERANCE:
        hint = (
            "they look like probabilities (they sum to 1): return tf.math.log(probs), or better "
            "tf.nn.log_softmax(logits)"
            if log_probs.min() >= 0 and np.allclose(log_probs.sum(axis=1), 1.0, atol=1e-3)
            else "if they are logits, return tf.nn.log_softmax(logits)"
        )
        raise ValueError(
            f"step_fn must return log-probabilities (every value <= 0), but at step {step} the "
            f"largest is {top:.4g}; {hint}"
        )
    peak = log_probs.max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        totals = (peak + np.log(np.exp(log_probs - peak).sum(axis=1, keepdims=True)))[:, 0]
    off = np.flatnonzero(~(np.abs(totals) <= _NORMALISED_TOLERANCE))
    if off.size:
        row = int(off[0])
        raise ValueError(
            f"step_fn must return log-probabilities, whose exp() sums to 1 in every row, but at "
            f"step {step} row {row}'s logsumexp is {totals[row]:.4g}, not 0: scores that are "
            "only <= 0 (logits - max) rank hypotheses of different lengths wrongly; return "
            "tf.nn.log_softmax(logits)"
        )


def _state_leaves(state: Any) -> list[Any]:
    if state is None:
        return []
    import tensorflow as tf

    return [leaf for leaf in tf.nest.flatten(state) if leaf is not None]


def _check_state(state: Any, rows: int) -> None:
    for leaf in _state_leaves(state):
        shape = getattr(leaf, "shape", None)
        if shape is None or len(shape) == 0 or shape[0] != rows:
            what = f"shape {tuple(shape)}" if shape is not None else type(leaf).__name__
            raise ValueError(
                f"every array in the state needs the rows as its leading axis ({rows} rows here); "
                f"got {what}. Pass state as arrays or Tensors of shape (rows, ...), or None"
            )


def _gather_state(state: Any, indices: np.ndarray) -> Any:
    """Pick rows of every array in the state: NumPy arrays by indexing, `Tensor`s by `tf.gather`."""
    if state is None:
        return None
    import tensorflow as tf

    def gather(leaf: Any) -> Any:
        if leaf is None:
            return None
        if isinstance(leaf, np.ndarray):
            return leaf[indices]
        return tf.gather(leaf, indices)

    return tf.nest.map_structure(gather, state)
