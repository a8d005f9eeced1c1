"""Checks in two parts: a *probe* that runs the learner's answer, and a *judge* that decides.

A probe takes the learner's answer and a seed, builds its inputs from the seed, calls the answer
(through `call`, `learner_code` or `take_all`) and returns what it observed as plain data: numbers,
strings, NumPy arrays, and lists and dicts of them. It holds no expected value. A judge takes the
observations and the same seed, computes the expected values itself, and returns a sentence saying
what it verified, or raises `Wrong`. Judges live in `tfcourse.exercises.judges`, which the
student edition of the course leaves out and the grader's sandbox hides.

In a notebook, ``check_x(answer)`` runs both in one process, with the observations sent through the
same encoding the grader uses. When grading, the kernel runs only the probe and shows its
observations as a `PROBE_MIME` output; the grader decodes them (never unpickling anything) and runs
the judge in its own process, with a seed of its own choosing. Code in the learner's kernel can
change what the probe reports, but not the verdict: to pass, it has to report the right values for
the grader's inputs, which means computing them.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib
import io
import json
import os
import secrets
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from tfcourse.exercises._framework import (
    ERROR,
    FAILED,
    NOT_ATTEMPTED,
    PASSED,
    UNJUDGED,
    CheckResult,
    NotAttempted,
    Wrong,
    _captured_output,
    _library_warnings_shown,
    _one_line,
    _outcome,
    _record,
)
from tfcourse.exercises._probes import PROBE_SEED_ENV

#: The MIME type of a probe's observations in a graded notebook's outputs.
PROBE_MIME = "application/vnd.tfcourse.probe+json"
#: The package that holds the judges (absent from the student edition).
JUDGES = "tfcourse.exercises.judges"
#: The largest observation a grader decodes, in characters of JSON.
MAX_OBSERVATION = 8_000_000
#: How many calls of one check a graded notebook may make (each gets its own seed).
MAX_CALLS = 16

_NO_JUDGE = (
    "your answer ran on the check's inputs without an error. This edition of the course has no "
    "answer key, so your instructor's grader decides whether it is right."
)
_GRADING: dict[str, str] = {}


class BadObservation(ValueError):
    """Observations that no probe of this course sends (forged, or from another version)."""


def encode(value: Any) -> Any:
    """`value` as JSON-ready data: arrays become ``{"__ndarray__": base64 .npy}``.

    Raises:
        TypeError: For anything but None, bools, numbers, strings, NumPy arrays and scalars, and
            lists, tuples and str-keyed dicts of them (a bug in a probe).
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, np.generic):
        return encode(np.asarray(value)) if value.dtype.kind not in "biuf" else value.item()
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufc":
            raise TypeError(f"a probe may only send numeric arrays, not dtype {value.dtype}")
        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        return {"__ndarray__": base64.b64encode(buffer.getvalue()).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return [encode(item) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        if "__ndarray__" in value:
            raise TypeError("a probe's dict may not use the key '__ndarray__'")
        return {key: encode(item) for key, item in value.items()}
    raise TypeError(f"a probe may only send plain data, not {type(value).__name__}")


#: How deep a probe's data may nest (lists and dicts): far more than any probe needs.
MAX_DEPTH = 32


def decode(value: Any, *, depth: int = 0) -> Any:
    """The data `encode` made, from parsed JSON; arrays are loaded without pickle.

    An array is loaded only when its header's shape and dtype account exactly for the bytes that
    follow, so a forged header cannot make the grader allocate more than was sent.

    Raises:
        BadObservation: If `value` holds anything `encode` never makes, nests deeper than
            `MAX_DEPTH`, or holds an array whose header does not match its data.
    """
    if depth > MAX_DEPTH:
        raise BadObservation(f"data nested more than {MAX_DEPTH} deep")
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if isinstance(value, list):
        return [decode(item, depth=depth + 1) for item in value]
    if isinstance(value, dict):
        if set(value) == {"__ndarray__"}:
            return _array(value["__ndarray__"])
        if "__ndarray__" in value:
            raise BadObservation("an array with extra keys")
        return {str(key): decode(item, depth=depth + 1) for key, item in value.items()}
    raise BadObservation(f"a value of type {type(value).__name__}")


def _array(text: Any) -> np.ndarray:
    """An array from base64 `.npy` bytes: numbers only, native order, header true to the data."""
    try:
        raw = base64.b64decode(str(text), validate=True)
        stream = io.BytesIO(raw)
        version = np.lib.format.read_magic(stream)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"unknown .npy version {version}")
        read_header = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
        shape, _fortran, dtype = read_header(stream)
        if dtype.kind not in "biufc" or dtype.hasobject or dtype.byteorder not in "=|<":
            raise BadObservation("an array of something other than numbers")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if count < 0 or count * dtype.itemsize != len(raw) - stream.tell():
            raise BadObservation("an array whose header does not match its data")
        stream.seek(0)
        array = np.load(stream, allow_pickle=False)
    except BadObservation:
        raise
    except (ValueError, TypeError, OSError, EOFError, MemoryError, OverflowError) as error:
        raise BadObservation(f"an array that does not load ({type(error).__name__})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biufc":
        raise BadObservation("an array of something other than numbers")
    return array


#: The key under which a probe records a failure for its judge to raise in its turn.
FAILURE = "__wrong__"
#: The key under which a probe records an answer not written yet, for its judge to raise
#: `NotAttempted` in its turn.
UNWRITTEN = "__not_attempted__"


def deferred(observe: Callable[[], Any], *, unwritten: bool = False) -> Any:
    """`observe()`, or ``{FAILURE: message}`` when it raises `Wrong`: the judge raises it when
    it reaches that observation, so a check reports the same first mistake as in one piece.

    With `unwritten`, a `NotAttempted` (a second answer not written yet) is deferred too, as
    ``{UNWRITTEN: True}``; otherwise it ends the probe at once.
    """
    try:
        return observe()
    except Wrong as wrong:
        return {FAILURE: str(wrong)}
    except NotAttempted:
        if not unwritten:
            raise
        return {UNWRITTEN: True}


def failed(observation: Any) -> bool:
    """Whether a `deferred` observation holds a failure or an unwritten answer: its judge stops
    there, so the probe need run nothing more."""
    return isinstance(observation, dict) and (FAILURE in observation or UNWRITTEN in observation)


def until_failure(
    steps: Iterable[Callable[[], Any]],
    *,
    unwritten: bool = False,
    stop: Callable[[Any], bool] = failed,
) -> list[Any]:
    """Each step's observations (`deferred`), in order, up to and including the first that
    `stop` says failed: the judge stops there, so later steps could only cost the learner time."""
    seen: list[Any] = []
    for step in steps:
        seen.append(deferred(step, unwritten=unwritten))
        if stop(seen[-1]):
            break
    return seen


def _first_deferred(observed: Any) -> dict[str, Any] | None:
    """The first observation `deferred` recorded a failure or an unwritten answer in, depth
    first."""
    if isinstance(observed, dict):
        if failed(observed):
            return observed
        items: Any = observed.values()
    elif isinstance(observed, list):
        items = observed
    else:
        return None
    for item in items:
        if (found := _first_deferred(item)) is not None:
            return found
    return None


def seed_for(base: str, check: str, call: int) -> int:
    """The seed of the `call`-th call of `check` in a graded run whose secret is `base`."""
    digest = hashlib.sha256(f"{base}\0{check}\0{call}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def grading(base: str) -> None:
    """Switch this copy of the checks to grading: probes only, seeds from `base` (kernel side)."""
    _GRADING.clear()
    _GRADING["base"] = base


def _fresh_seed() -> int:
    text = os.environ.get(PROBE_SEED_ENV, "").strip()
    if not text:
        return secrets.randbits(63)
    if not text.isdigit():
        raise ValueError(f"{PROBE_SEED_ENV} must be a non-negative integer, got {text!r}; unset it")
    return int(text)


class TwoPartCheck:
    """A check made of a probe (here) and a judge (in `JUDGES`), called like any check.

    Attributes:
        exercise: The exercise number, for example ``"00.1"``.
        title: The exercise's short title.
        probe: ``probe(answer, seed) -> observations``.
        judge_name: ``"module:function"`` of the judge, ``judge(observations, seed) -> str``.
        name: ``"<module>.<check name>"``, how graded notebooks and the grader name the check.
    """

    def __init__(
        self, exercise: str, title: str, probe: Callable[..., Any], judge_name: str
    ) -> None:
        self.exercise, self.title, self.probe, self.judge_name = exercise, title, probe, judge_name
        self.name = f"{probe.__module__}.{probe.__name__}"
        self.calls = 0
        functools.update_wrapper(self, probe)

    def __call__(self, answer: Any = None, *args: Any, **kwargs: Any) -> CheckResult:
        """Check `answer`: probe and judge in this process (or only the probe, when grading).

        Arguments after the answer (a second answer, the notebook's model or data) go to the probe:
        ``probe(answer, *args, seed=seed, **kwargs)``.
        """

        def run(answer: Any, seed: int) -> Any:
            return self.probe(answer, *args, seed=seed, **kwargs)

        if _GRADING:
            return self._observe_for_grader(answer, run)
        judge = self.judge()
        seed = _fresh_seed()
        with _captured_output(), _library_warnings_shown():
            if judge is None:
                status, message = _outcome(lambda a: self._probe_only(run, a, seed), answer)
                status = UNJUDGED if status == PASSED else status
            else:
                verify = lambda a: judge(self._observed(run, a, seed), seed)  # noqa: E731
                status, message = _outcome(verify, answer)
        result = CheckResult(self.exercise, self.title, status, _one_line(message))
        _record(result)
        return result

    def judge(self) -> Callable[[Any, int], str] | None:
        """The judge function, or None where the judges are not installed."""
        module, _, function = self.judge_name.partition(":")
        try:
            return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]
        except ModuleNotFoundError as error:
            if error.name and (module == error.name or module.startswith(error.name + ".")):
                return None  # the judges are not installed (or, in a sandbox, hidden)
            raise

    def _probe_only(self, probe: Callable[..., Any], answer: Any, seed: int) -> str:
        """The probe alone: a failure it deferred to the judge is raised here instead."""
        first = _first_deferred(self._observed(probe, answer, seed))
        if first is not None and UNWRITTEN in first:
            raise NotAttempted
        if first is not None:
            raise Wrong(str(first[FAILURE]))
        return _NO_JUDGE

    def _observed(self, probe: Callable[..., Any], answer: Any, seed: int) -> Any:
        """The probe's observations, after the round trip through JSON that grading makes."""
        observed = probe(answer, seed=seed)
        return decode(json.loads(json.dumps(encode(observed))))

    def _observe_for_grader(self, answer: Any, run: Callable[..., Any]) -> CheckResult:
        from IPython.display import display

        seed = seed_for(_GRADING["base"], self.name, self.calls)
        self.calls += 1
        observed: list[Any] = []

        def probe(answer: Any) -> str:
            observed.append(encode(run(answer, seed=seed)))
            return "observed"

        with _captured_output(), _library_warnings_shown():
            status, message = _outcome(probe, answer)
        bundle = {
            "check": self.name,
            "exercise": self.exercise,
            "seed": seed,
            "status": "observed" if status == PASSED else status,
            "message": _one_line(message),
            "observed": observed[0] if observed else None,
        }
        display({PROBE_MIME: bundle}, raw=True)
        shown = UNJUDGED if status == PASSED else status
        text = "observed; the grader judges it" if status == PASSED else message
        return CheckResult(self.exercise, self.title, shown, _one_line(text))

    def judge_bundle(self, bundle: Any, seeds: set[int]) -> tuple[str, str]:
        """The grader's verdict on one probe output from a graded kernel: (status, message).

        `seeds` are those the grader handed this check. Anything malformed, or observed with a
        seed the grader did not hand out, fails; only the judge's own comparison can pass.
        """
        if not isinstance(bundle, dict) or bundle.get("check") != self.name:
            return FAILED, "the check's output is not one this check makes"
        status, message = bundle.get("status"), _one_line(str(bundle.get("message", "")))
        if not isinstance(status, str):
            return FAILED, "the check's output has a status that no probe sends"
        if status in (FAILED, NOT_ATTEMPTED, ERROR):
            return status, message
        if status != "observed":
            return FAILED, "the check's output has a status that no probe sends"
        seed = bundle.get("seed")
        if type(seed) is not int or seed not in seeds:
            return FAILED, "the check ran on inputs that the grader did not choose"
        judge = self.judge()
        if judge is None:
            return ERROR, f"the grader has no judge for {self.name}: install the full course"
        try:
            observed = decode(bundle.get("observed"))
        except (BadObservation, RecursionError) as error:
            return FAILED, f"the check's observations were malformed: {error}"
        status, message = _outcome(lambda _: judge(observed, seed), True)
        if status == ERROR:  # forged data a judge did not expect: not the course's bug to report
            return FAILED, f"the check's observations were malformed ({message[:200]})"
        return status, message


def two_part(
    exercise: str, title: str, *, judge: str | None = None
) -> Callable[[Callable[..., Any]], TwoPartCheck]:
    """Make a probe function a `TwoPartCheck`; its judge is ``judges.<chapter>.<judge>``.

    `judge` defaults to the probe's name without ``check_``; ``"module:function"`` names a judge
    elsewhere (a toy chapter's, in the tests).
    """

    def decorate(probe: Callable[..., Any]) -> TwoPartCheck:
        chapter = probe.__module__.rsplit(".", 1)[-1]
        function = judge or probe.__name__.removeprefix("check_")
        where = function if ":" in function else f"{JUDGES}.{chapter}:{function}"
        return TwoPartCheck(exercise, title, probe, where)

    return decorate


__all__ = [
    "JUDGES",
    "PROBE_MIME",
    "UNJUDGED",
    "BadObservation",
    "TwoPartCheck",
    "FAILURE",
    "decode",
    "deferred",
    "encode",
    "grading",
    "seed_for",
    "two_part",
]
