"""Self-checks for the exercises of `05_seq2seq_attention`: the probes.

Each check is in two parts (see `tfcourse.exercises._split`): the probe here runs the learner's
answer and returns what it saw; the judge, in `tfcourse.exercises.judges.ch05`, decides.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from tfcourse.exercises._expect import expect_tensor, to_numpy
from tfcourse.exercises._framework import Wrong, _describe
from tfcourse.exercises._learner import call, forbid, learner_code
from tfcourse.exercises._probes import draw_except
from tfcourse.exercises._split import FAILURE, deferred, two_part

__all__ = [
    "ATTENTION_CASES",
    "BEAM_CASES",
    "GREEDY_CASES",
    "MASKED_WEIGHT_LIMIT",
    "TEACHER_CASES",
    "check_attention_weights",
    "check_beam_search",
    "check_greedy_decode",
    "check_teacher_forcing",
]

#: The judges module, which holds the expected values (absent from the student edition).
_JUDGE = "tfcourse.exercises.judges.ch05"
#: Names that moved to the judge with the answer key; where it is installed, they are read from it.
_IN_JUDGE = frozenset({"reference_attention", "_best", "_beam_row", "_greedy", "_search"})


def __getattr__(name: str) -> Any:
    """`reference_attention` and the searches, from the judge where it is installed."""
    if name not in _IN_JUDGE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        judge = importlib.import_module(_JUDGE)
    except ModuleNotFoundError:
        raise AttributeError(
            f"{__name__}.{name} is part of the answer key, which this edition of the course leaves "
            "out"
        ) from None
    return getattr(judge, name)


_T = TypeVar("_T")


def _until_wrong(cases: Sequence[_T], observe: Callable[[_T], Any]) -> list[Any]:
    """`observe(case)` for each case in turn, a later case's failure deferred to the judge.

    The first case's failure is the check's first message whatever the judge says, so it is
    raised here (and shows where the judges are left out). A later case's is `deferred`: the judge
    reaches it only once the cases before it passed. Nothing after a failure is run: those cases
    are None.
    """
    seen: list[Any] = [observe(cases[0])]
    for case in cases[1:]:
        seen.append(deferred(lambda case=case: observe(case)))
        if isinstance(seen[-1], dict) and FAILURE in seen[-1]:
            break
    return seen + [None] * (len(cases) - len(seen))


# 05.1 -------------------------------------------------------------------------------------------
#: Exercise 05.1: (tokens, start_id, end_id, as a Tensor?): each row holds token ids (all >= 3),
#: then PAD (0), with no END. Each batch has a full row (no padding) and a row of one token; the
#: second swaps the notebook's START (1) and END (2), so that hard-coded ids show.
TEACHER_CASES: tuple[tuple[np.ndarray, int, int, bool], ...] = (
    (
        np.array([[5, 7, 9, 0, 0], [3, 0, 0, 0, 0], [8, 8, 8, 8, 8], [4, 6, 0, 0, 0]], np.int32),
        1,
        2,
        True,
    ),
    (np.array([[6, 4, 0], [3, 9, 7], [5, 0, 0]], dtype=np.int64), 2, 1, False),
    (np.array([[7, 3, 4, 0, 0, 0], [9, 9, 9, 9, 9, 9], [6, 0, 0, 0, 0, 0]], np.int32), 1, 2, False),
)
_MIXED_DTYPES = re.compile(r"expected to be a (\w+) tensor but is a (\w+) tensor")


@two_part("05.1", "the teacher-forcing pair from a padded batch")
def check_teacher_forcing(
    teacher_forcing_pair: Callable[[Any, int, int], Any], seed: int
) -> list[Any]:
    """Check `teacher_forcing_pair(tokens, start_id, end_id) -> (decoder_inputs, decoder_targets)`.

    tokens is an int batch (batch, T) of ids, then PAD (0), as a `Tensor` or an array. Both
    answers are (batch, T + 1) in the dtype of tokens: the inputs START then the tokens, the
    targets the tokens with END at index length (the count of non-PAD tokens), PAD elsewhere.
    The probe returns, for each batch of `_teacher_cases(seed)`, the pair as arrays.
    """
    return _until_wrong(
        _teacher_cases(seed), lambda case: _teacher_observation(teacher_forcing_pair, *case)
    )


def _teacher_cases(seed: int) -> list[tuple[np.ndarray, int, int, bool]]:
    """05.1's batches: `TEACHER_CASES`, then one drawn from `seed`."""
    return [*TEACHER_CASES, _drawn_teacher_case(np.random.default_rng(seed))]


def _teacher_observation(
    teacher_forcing_pair: Callable[[Any, int, int], Any],
    tokens: np.ndarray,
    start_id: int,
    end_id: int,
    as_tensor: bool,
) -> dict[str, np.ndarray]:
    import tensorflow as tf

    given = tf.constant(tokens) if as_tensor else tokens.copy()
    try:
        with forbid(_CHECK_HELPERS, _REFERENCE_USED):
            result = call(
                teacher_forcing_pair, given, start_id, end_id, name="teacher_forcing_pair"
            )
    except Wrong as wrong:
        raise Wrong(_dtype_hint(str(wrong))) from wrong
    inputs, targets = _pair_arrays(result)
    return {"inputs": inputs, "targets": targets}


def _drawn_teacher_case(rng: np.random.Generator) -> tuple[np.ndarray, int, int, bool]:
    """A batch drawn afresh: 2-5 rows of up to 3-8 ids (>= 3), one full, one short, any order."""
    batch, width = int(rng.integers(2, 6)), int(rng.integers(3, 9))
    lengths = rng.integers(1, width + 1, batch)
    full, short = rng.choice(batch, 2, replace=False)
    lengths[full], lengths[short] = width, int(rng.integers(1, width))
    tokens = np.zeros((batch, width), dtype=rng.choice([np.int32, np.int64]))
    for row, length in enumerate(lengths):
        tokens[row, :length] = rng.integers(3, 40, length)
    start_id, end_id = (1, 2) if rng.random() < 0.5 else (2, 1)
    return tokens, start_id, end_id, bool(rng.random() < 0.5)


def _dtype_hint(message: str) -> str:
    mixed = _MIXED_DTYPES.search(message)
    if not mixed:
        return message
    return (
        f"it mixes dtypes ({mixed[1]} and {mixed[2]}): make every piece in the dtype of "
        "tokens (tf.one_hot(..., dtype=tokens.dtype), tf.cast(..., tokens.dtype)). " + message
    )


def _pair_arrays(result: Any) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(result, (tuple, list)):
        with learner_code("converting the output of teacher_forcing_pair"):
            array = to_numpy(result, name="the result of teacher_forcing_pair")
        raise Wrong(
            f"it returned one value, of shape {array.shape}, not a pair; return both: "
            "`return decoder_inputs, decoder_targets`."
        )
    if len(result) != 2:
        raise Wrong(
            f"it returned {len(result)} values; return two: (decoder_inputs, decoder_targets)."
        )
    with learner_code("converting the output of teacher_forcing_pair"):
        inputs = to_numpy(result[0], name="the decoder inputs (the first value returned)")
        targets = to_numpy(result[1], name="the decoder targets (the second value returned)")
    return inputs, targets


# 05.2 -------------------------------------------------------------------------------------------
def _attention_case(
    seed: int, batch: int, queries: int, keys: int, depth: int, mask: list[list[int]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    query = (0.7 * rng.normal(size=(batch, queries, depth))).astype(np.float32)
    key = (0.7 * rng.normal(size=(batch, keys, depth))).astype(np.float32)
    return query, key, np.array(mask, dtype=bool)


#: Exercise 05.2: (query, keys, mask) triples. The first has as many features as keys (so that a
#: product with untransposed keys has the right shape) and a row where only the first key is
#: real; the second a mask with a hole. No row is all padding.
ATTENTION_CASES: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...] = (
    _attention_case(0, 3, 4, 5, 5, [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]]),
    _attention_case(1, 2, 3, 6, 8, [[1, 1, 1, 1, 0, 0], [1, 0, 1, 1, 0, 1]]),
)
#: Exercise 05.2: the most weight a padded key may get: none at all, as the exercise says.
MASKED_WEIGHT_LIMIT = 0.0
_ATTENTION_DELEGATED = (
    "attention_weights runs a library's attention (keras.layers.Attention, MultiHeadAttention "
    "or keras.ops.dot_product_attention): compute the scores (query @ keys^T), mask them and "
    "take the softmax yourself."
)


#: Library attention a learner could hand 05.2 to, instead of computing it.
_LIBRARY_ATTENTION = (
    "keras.layers.Attention",
    "keras.layers.MultiHeadAttention",
    "keras.ops.dot_product_attention",
)
#: Ready-made decoding loops (keras_hub is optional: skipped where it is not installed).
_LIBRARY_SAMPLERS = ("keras_hub.samplers.Sampler", "keras_hub.samplers.BeamSampler")
#: The check's own computations, which an answer must not call: every function of the judge (where
#: it is installed; `reference_attention` and the searches are read from it).
_CHECK_HELPERS = (_JUDGE,)
_REFERENCE_USED = (
    "your answer calls the check's own code (tfcourse.exercises.ch05): write the computation "
    "yourself, with TensorFlow ops."
)


def _drawn_attention_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sizes and a mask drawn afresh: every row keeps at least one real key, somewhere."""
    batch, keys = int(rng.integers(2, 5)), int(rng.integers(3, 8))
    queries = draw_except(rng, 2, 6, {keys, batch})  # unequal sizes tell transposed axes apart
    depth = draw_except(rng, 2, 9, {keys, queries})
    mask = rng.random((batch, keys)) < 0.6
    mask[np.arange(batch), rng.integers(0, keys, batch)] = True
    query = (0.7 * rng.normal(size=(batch, queries, depth))).astype(np.float32)
    key = (0.7 * rng.normal(size=(batch, keys, depth))).astype(np.float32)
    return query, key, mask


@two_part("05.2", "masked dot-product attention weights")
def check_attention_weights(
    attention_weights: Callable[[Any, Any, Any], Any], seed: int
) -> list[Any]:
    """Check `attention_weights(query, keys, mask)`: softmax(q·k) over the keys, padded keys masked.

    query is (batch, queries, depth), keys (batch, keys, depth), mask (batch, keys) bool, True
    at real keys; the weights are (batch, queries, keys), and padded keys get at most
    `MASKED_WEIGHT_LIMIT`. The probe returns the weights for each case of
    `_attention_cases(seed)`.
    """
    return _until_wrong(
        _attention_cases(seed), lambda case: _attention_observation(attention_weights, *case)
    )


def _attention_cases(seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """05.2's (query, keys, mask) triples: `ATTENTION_CASES`, then one drawn from `seed`."""
    return [*ATTENTION_CASES, _drawn_attention_case(np.random.default_rng(seed))]


def _attention_observation(
    attention_weights: Callable[[Any, Any, Any], Any],
    query: np.ndarray,
    keys: np.ndarray,
    mask: np.ndarray,
) -> np.ndarray:
    import tensorflow as tf

    with (
        forbid(_LIBRARY_ATTENTION, _ATTENTION_DELEGATED),
        forbid(_CHECK_HELPERS, _REFERENCE_USED),
    ):
        result = call(
            attention_weights,
            tf.constant(query),
            tf.constant(keys),
            tf.constant(mask),
            name="attention_weights",
        )
    if isinstance(result, (tuple, list)) and len(result) == 2:
        raise Wrong(
            "it returned a pair; return only the weights (keras.layers.Attention gives "
            "(outputs, scores) with return_attention_scores=True)."
        )
    expect_tensor(result, name="the attention weights")
    with learner_code("converting the output of attention_weights"):
        return to_numpy(result, name="the attention weights")


# 05.3 and 05.4: a tiny model to decode ----------------------------------------------------------
_VOCAB, _PAD, _BASE = 6, 0, 7  # token ids 0-5; prefixes are coded in base 7 (token + 1)
_OFF = -9.0  # the logit of PAD and START, which a decoder should never choose


@dataclass(frozen=True)
class _Row:
    """One input row of a tiny model: its next-token distributions for every prefix.

    Attributes:
        seed: Seeds the pseudo-random logits of every prefix.
        end_bias: END's extra logit, plus `end_slope` for each token fed so far.
        end_slope: How fast END grows more likely.
        spread: The standard deviation of the random logits.
        table: Explicit probabilities (END, then the three other tokens) for some generated
            prefixes, which override the random ones.
    """

    seed: int
    end_bias: float = -1.5
    end_slope: float = 0.8
    spread: float = 1.0
    table: tuple[tuple[tuple[int, ...], tuple[float, float, float, float]], ...] = ()


@dataclass(frozen=True)
class _Case:
    """A batch to decode: its rows, ids, length limit, beam width and state layout."""

    rows: tuple[_Row, ...]
    max_length: int
    start_id: int = 1
    end_id: int = 2
    beam_width: int = 2
    layout: str = "dict"  # "dict": {"row", "prefix"}; "nested": (prefix, [row, hidden])

    @property
    def others(self) -> tuple[int, ...]:
        """END, then the three tokens a decoder may choose besides it."""
        rest = [t for t in range(_VOCAB) if t not in (_PAD, self.start_id, self.end_id)]
        return (self.end_id, *rest)


@dataclass
class _Call:
    tokens: np.ndarray
    codes: np.ndarray


@dataclass
class _Model:
    """A tiny decoder whose state carries its row id and every token fed so far.

    Its log-probs depend on the row and on the tokens fed since the start, read from the state,
    so a decoder that feeds the wrong token, forgets the state, does not reorder it with its beams
    or mixes rows sees other log-probs; every call is recorded, for the judge to explain what went
    wrong.
    """

    case: _Case
    calls: list[_Call] = field(default_factory=list)
    evaluated: set[tuple[int, tuple[int, ...]]] = field(default_factory=set)

    def log_probs(self, row: int, fed: tuple[int, ...]) -> np.ndarray:
        """The float32 log-probs of the next token after `fed` (which starts with START)."""
        return _log_probs(self.case, row, fed)

    def initial_state(self) -> Any:
        """The state a decoder starts from: row ids, empty prefixes (and a hidden array)."""
        size = len(self.case.rows)
        return self._pack(np.arange(size, dtype=np.int32), np.zeros(size, np.int64), None)

    def _pack(self, rows: np.ndarray, codes: np.ndarray, hidden: np.ndarray | None) -> Any:
        import tensorflow as tf

        if self.case.layout == "dict":
            return {"row": tf.constant(rows), "prefix": tf.constant(codes)}
        hidden = np.zeros((len(rows), 2), np.float32) if hidden is None else hidden + 1.0
        return (tf.constant(codes), [tf.constant(rows), tf.constant(hidden)])

    def _structure(self) -> Any:
        return {"row": 0, "prefix": 0} if self.case.layout == "dict" else (0, [0, 0])

    def _unpack(self, state: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        import tensorflow as tf

        try:
            tf.nest.assert_same_structure(state, self._structure())
        except (TypeError, ValueError):
            raise Wrong(
                f"step_fn got a state of another structure, {_describe(state)}: pass "
                "initial_state first, then the new_state that step_fn returned."
            ) from None
        leaves = [np.asarray(leaf) for leaf in tf.nest.flatten(state)]
        if any(leaf.ndim == 0 for leaf in leaves):
            raise Wrong("the state passed to step_fn holds a scalar; keep the rows as its axis 0.")
        if len({len(leaf) for leaf in leaves}) != 1:
            raise Wrong("the arrays of the state passed to step_fn have different numbers of rows.")
        if self.case.layout == "dict":
            return leaves[1].astype(np.int64), leaves[0].astype(np.int64), None
        return leaves[1].astype(np.int64), leaves[0].astype(np.int64), leaves[2]

    def step_fn(self, tokens: Any, state: Any) -> tuple[Any, Any]:
        """``step_fn(tokens, state) -> (log_probs, new_state)``, recorded."""
        import tensorflow as tf

        rows, codes, hidden = self._unpack(state)
        ids = self._tokens(tokens, len(rows))
        if rows.min() < 0 or rows.max() >= len(self.case.rows) or codes.min() < 0:
            raise Wrong("the state passed to step_fn holds values step_fn never returned.")
        if codes.max() >= _BASE ** (self.case.max_length + 2):
            raise Wrong(
                f"step_fn read more than {self.case.max_length + 2} tokens into one state; stop "
                f"decoding after max_length ({self.case.max_length}) tokens."
            )
        self.calls.append(_Call(ids, codes.copy()))
        codes = codes * _BASE + ids + 1
        log_probs = []
        for row, code in zip(rows.tolist(), codes.tolist(), strict=True):
            fed = _decode_prefix(code)
            self.evaluated.add((row, fed))
            log_probs.append(self.log_probs(row, fed))
        return tf.constant(np.stack(log_probs)), self._pack(rows.astype(np.int32), codes, hidden)

    def _tokens(self, tokens: Any, count: int) -> np.ndarray:
        ids = np.asarray(tokens.numpy() if hasattr(tokens, "numpy") else tokens)
        if ids.dtype.kind not in "iu":
            raise Wrong(
                f"step_fn got tokens of dtype {ids.dtype}: pass integer ids (tf.argmax returns "
                "them; cast with tf.cast(tokens, tf.int32))."
            )
        if ids.shape == (count, 1):
            raise Wrong(
                f"step_fn takes tokens of shape (rows,), but got {ids.shape}: drop the last axis "
                "(tokens[:, 0])."
            )
        if ids.ndim != 1:
            raise Wrong(f"step_fn takes tokens of shape ({count},), one per row; got {ids.shape}.")
        if len(ids) != count:
            raise Wrong(_token_count_mistake(len(ids), count))
        if ids.min() < 0 or ids.max() >= _VOCAB:
            bad = int(ids[(ids < 0) | (ids >= _VOCAB)][0])
            raise Wrong(f"step_fn got token id {bad}, outside the vocabulary (0-{_VOCAB - 1}).")
        return ids.astype(np.int64)


def _token_count_mistake(got: int, count: int) -> str:
    if got == _VOCAB:
        return (
            f"step_fn got {got} tokens for {count} rows, as many as the vocabulary: that is an "
            "argmax over the batch axis (0); take it over the vocabulary, "
            "tf.argmax(log_probs, axis=-1)."
        )
    if got == 1:
        return (
            f"step_fn got 1 token for {count} rows: feed one token per row of the batch, "
            "e.g. tf.fill([batch_size], start_id)."
        )
    return (
        f"step_fn got {got} tokens, but the state passed with them has {count} rows: pass one "
        "token per row, with the state that belongs to it."
    )


@functools.lru_cache(maxsize=100_000)
def _log_probs(case: _Case, row: int, fed: tuple[int, ...]) -> np.ndarray:
    spec = case.rows[row]
    table = dict(spec.table)
    generated = fed[1:] if fed[:1] == (case.start_id,) else None
    if generated in table:
        logits = np.log(np.asarray(table[generated], dtype=np.float64))
    else:
        rng = np.random.default_rng([spec.seed, *fed])
        logits = spec.spread * rng.normal(size=4)
        logits[0] += spec.end_bias + spec.end_slope * len(fed)
    full = np.full(_VOCAB, _OFF)
    full[list(case.others)] = logits
    top = full.max()
    log_probs = (full - top - np.log(np.exp(full - top).sum())).astype(np.float32)
    log_probs.flags.writeable = False
    return log_probs


def _decode_prefix(code: int) -> tuple[int, ...]:
    fed: list[int] = []
    while code:
        code, digit = divmod(code, _BASE)
        fed.append(digit - 1)
    return tuple(reversed(fed))


def _run_decoder(
    decode: Any, case: _Case, name: str, *extra: int
) -> tuple[_Model, list[list[int]]]:
    model = _Model(case)
    args = (model.step_fn, model.initial_state(), case.start_id, case.end_id, case.max_length)
    delegated = (
        f"{name} calls a ready-made decoder (tfcourse.decoding, which the chapter used, or "
        "keras_hub's samplers): write the decoding loop yourself."
    )
    with (
        forbid(["tfcourse.decoding", *_LIBRARY_SAMPLERS], delegated),
        forbid(_CHECK_HELPERS, _REFERENCE_USED),
    ):
        result = call(decode, *args, *extra, name=name)
    with learner_code(f"reading what {name} returned"):
        return model, _sequences(result, len(case.rows), name)


def _sequences(result: Any, batch: int, name: str) -> list[list[int]]:
    if result is None:
        raise Wrong(f"{name} returned None; return a list with one list of token ids per row.")
    if hasattr(result, "to_list"):  # a RaggedTensor
        result = result.to_list()
    if hasattr(result, "numpy") or isinstance(result, np.ndarray):
        raise Wrong(
            f"{name} returned {_describe(result)}; return a Python list of token-id lists, one "
            "per row, each cut at its END (rows end at different lengths)."
        )
    if not isinstance(result, (list, tuple)):
        raise Wrong(f"{name} should return a list of token-id lists, not {_describe(result)}")
    if batch > 1 and result and all(np.ndim(row) == 0 for row in result):
        raise Wrong(
            f"{name} returned one flat list of {len(result)} ids; return one list per row of the "
            f"batch ({batch} rows)."
        )
    if len(result) != batch:
        hint = ": decode every row of the batch, not only the first" if len(result) == 1 else ""
        count = f"{len(result)} sequence" + ("" if len(result) == 1 else "s")
        raise Wrong(f"{name} returned {count} for a batch of {batch} rows{hint}.")
    try:
        return [[int(token) for token in np.asarray(row).reshape(-1).tolist()] for row in result]
    except (TypeError, ValueError):
        raise Wrong(f"{name} should return lists of int token ids; got {result!r:.80}") from None


# 05.3 -------------------------------------------------------------------------------------------
#: Exercise 05.3: the batches to decode greedily. In each, some rows end early and one never ends
#: (it stops at max_length); the second uses other START and END ids and a nested state.
GREEDY_CASES: tuple[_Case, ...] = (
    _Case(
        rows=(_Row(11), _Row(12, end_bias=-8.0, end_slope=0.0), _Row(13, end_bias=0.5)),
        max_length=6,
    ),
    _Case(
        rows=(_Row(21, end_bias=-8.0, end_slope=0.0), _Row(22)),
        max_length=5,
        start_id=5,
        end_id=3,
        layout="nested",
    ),
)


@two_part("05.3", "greedy decoding")
def check_greedy_decode(greedy_decode: Callable[..., Any], seed: int) -> list[Any]:
    """Check `greedy_decode(step_fn, initial_state, start_id, end_id, max_length)`.

    ``step_fn(tokens, state) -> (log_probs, new_state)`` takes int ids of shape (batch,) and a
    `tf.nest` state whose arrays have the batch as axis 0, and returns log-probs of shape
    (batch, vocab). The answer returns one list of ids per row, without START or END, cut at
    the first END or after max_length tokens. The probe runs it on the tiny models of
    `GREEDY_CASES`, whose log-probs depend on every token fed so far, carried in the state, and
    returns what it decoded and what it fed to step_fn (`_decoded`).
    """
    return _until_wrong(GREEDY_CASES, lambda case: _decoded(greedy_decode, case, "greedy_decode"))


def _decoded(decode: Any, case: _Case, name: str, *extra: int) -> dict[str, Any]:
    """What `decode` returned for `case`, and every call it made to step_fn: the tokens and the
    prefix codes passed in, and each (row, prefix fed) that step_fn evaluated, as [row, *prefix].
    """
    model, sequences = _run_decoder(decode, case, name, *extra)
    return {
        "sequences": sequences,
        "calls": [{"tokens": c.tokens.tolist(), "codes": c.codes.tolist()} for c in model.calls],
        "evaluated": [[row, *fed] for row, fed in sorted(model.evaluated)],
    }


# 05.4 -------------------------------------------------------------------------------------------
#: Exercise 05.4: the batches to beam-search, each row's best sequence found by trying them all.
#: The rows with a table are made to catch particular mistakes (the judge's notes say how).
BEAM_CASES: tuple[_Case, ...] = (
    _Case(
        rows=(
            _Row(
                31,
                table=(
                    ((), (0.03, 0.92, 0.03, 0.02)),
                    ((3,), (0.3, 0.02, 0.66, 0.02)),
                    ((3, 4), (0.04, 0.48, 0.465, 0.015)),
                ),
            ),
            _Row(820),
            _Row(991, end_bias=-2.0),
            _Row(
                34,
                table=(
                    ((), (0.05, 0.5, 0.4, 0.05)),
                    ((3,), (0.3, 0.4, 0.2, 0.1)),
                    ((4,), (0.02, 0.95, 0.02, 0.01)),
                    ((4, 3), (0.9, 0.04, 0.03, 0.03)),
                    ((3, 3), (0.05, 0.5, 0.4, 0.05)),
                ),
            ),
            _Row(
                57,
                table=(
                    ((), (0.25, 0.7, 0.03, 0.02)),
                    ((3,), (0.01, 0.95, 0.02, 0.02)),
                    ((3, 3), (0.01, 0.95, 0.02, 0.02)),
                    ((3, 3, 3), (0.01, 0.95, 0.02, 0.02)),
                    ((3, 3, 3, 3), (0.01, 0.95, 0.02, 0.02)),
                ),
            ),
        ),
        max_length=5,
        beam_width=2,
    ),
    _Case(
        rows=(
            _Row(41),
            _Row(43, table=(((), (0.01, 0.97, 0.01, 0.01)), ((2,), (0.97, 0.01, 0.01, 0.01)))),
            _Row(42, end_bias=-1.0),
        ),
        max_length=5,
        start_id=4,
        end_id=1,
        beam_width=3,
        layout="nested",
    ),
)


@two_part("05.4", "beam search")
def check_beam_search(beam_decode: Callable[..., Any], seed: int) -> list[Any]:
    """Check `beam_decode(step_fn, initial_state, start_id, end_id, max_length, beam_width)`.

    The conventions are 05.3's; a sequence scores the sum of its log-probs, END's included (no
    length penalty). The probe runs the answer on the tiny models of `BEAM_CASES`, with each
    case's beam width, then on the first with ``beam_width=1``, and returns what it decoded and
    what it fed to step_fn (`_decoded`).
    """
    runs = [*((case, case.beam_width) for case in BEAM_CASES), (BEAM_CASES[0], 1)]
    return _until_wrong(runs, lambda run: _decoded(beam_decode, run[0], "beam_decode", run[1]))
