"""The machinery behind every exercise check: results, the `check` decorator, one-line messages."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

#: When set, every check appends its result as a JSON line to this file (for graders).
RESULTS_ENV = "TFCOURSE_RESULTS"

PASSED, FAILED, NOT_ATTEMPTED, ERROR = "passed", "failed", "not attempted", "error"
#: A two-part check whose judge is not in this process: the student edition, or a graded kernel.
UNJUDGED = "not judged here"
_SYMBOLS = {PASSED: "✓", FAILED: "✗", NOT_ATTEMPTED: "…", ERROR: "⚠", UNJUDGED: "→"}
#: The longest message a result shows, and the most characters of printed output a check echoes.
MESSAGE_LIMIT, OUTPUT_LIMIT = 400, 1_000
_NOT_ATTEMPTED_HELP = (
    "not attempted yet: replace `raise NotImplementedError` with your answer, run that cell, "
    "then run this check again."
)


class Wrong(Exception):
    """Raised inside a check: the learner's answer is wrong, and the message says how."""


class NotAttempted(Exception):
    """Raised inside a check: the learner has not written an answer yet."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check. Its text is the one line a notebook shows.

    Attributes:
        exercise: The exercise number, for example ``"00.3"``.
        title: The exercise's short title.
        status: ``"passed"``, ``"failed"``, ``"not attempted"``, ``"error"`` when the check
            itself broke (a bug in the course, never the learner's fault), or ``"not judged
            here"`` when a two-part check's answer ran but its judge is elsewhere (the student
            edition, or a kernel being graded).
        message: What was verified, or what is wrong and how to fix it.
    """

    exercise: str
    title: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        """Whether the answer passed."""
        return self.status == PASSED

    def __str__(self) -> str:
        return f"{_SYMBOLS[self.status]} Exercise {self.exercise} ({self.title}): {self.message}"

    __repr__ = __str__

    def to_dict(self) -> dict[str, Any]:
        """The result as a plain dict, for a grader's CSV or JSON."""
        return asdict(self)


_RESULTS: list[CheckResult] = []


def results() -> list[CheckResult]:
    """Every result that checks have returned in this Python session, oldest first."""
    return list(_RESULTS)


def _record(result: CheckResult) -> None:
    _RESULTS.append(result)
    path = os.environ.get(RESULTS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")


CheckFn = Callable[..., CheckResult]


def check(exercise: str, title: str) -> Callable[[Callable[..., str]], CheckFn]:
    """Turn a function that verifies an answer into a learner-safe check.

    The decorated function takes the learner's answer, raises `Wrong` with an explanation when it
    is wrong, and returns a sentence saying what it verified; it runs learner code only through
    `call`, `learner_code` or `take_all`. The wrapper turns that into a one-line `CheckResult` and
    never lets an exception escape, except a real ``KeyboardInterrupt``: ``None`` or an answer that
    raises `NotImplementedError` is "not attempted yet", and anything unexpected becomes an
    ``error`` result that asks the learner to report it. What the code prints during the check is
    captured, and echoed afterwards cut to `OUTPUT_LIMIT` characters per stream.
    """

    def decorate(verify: Callable[..., str]) -> CheckFn:
        @functools.wraps(verify)
        def run(answer: Any = None, *args: Any, **kwargs: Any) -> CheckResult:
            with _captured_output(), _library_warnings_shown():
                status, message = _outcome(verify, answer, *args, **kwargs)
            result = CheckResult(exercise, title, status, _one_line(message))
            _record(result)
            return result

        return run

    return decorate


#: Modules whose warnings are about the library, never the learner's mistake (for example Keras
#: 3.16's "does not support masking"): shown, but never raised, whatever filter is in force.
LIBRARY_WARNING_MODULES = r"(keras|tensorflow|tf_keras|absl|google\.protobuf|ai_edge_litert)(\.|$)"


@contextlib.contextmanager
def _library_warnings_shown() -> Iterator[None]:
    """Within a check, show the libraries' warnings but never turn them into errors."""
    with warnings.catch_warnings():
        warnings.filterwarnings("default", module=LIBRARY_WARNING_MODULES)
        yield


def _outcome(verify: Callable[..., str], answer: Any, *args: Any, **kwargs: Any) -> tuple[str, str]:
    try:
        if answer is None:
            raise NotAttempted
        return PASSED, verify(answer, *args, **kwargs)
    except (NotAttempted, NotImplementedError):
        return NOT_ATTEMPTED, _NOT_ATTEMPTED_HELP
    except Wrong as wrong:
        return FAILED, str(wrong)
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # the check itself broke; keep the learner's notebook alive
        cause = _one_line(str(error), limit=200)
        return ERROR, (
            f"the check could not run ({type(error).__name__}: {cause}). "
            "This is a bug in the course; please report it with this message."
        )


def _one_line(text: str, *, limit: int = MESSAGE_LIMIT) -> str:
    """`text` on one line, with runs of whitespace collapsed, cut to `limit` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Excerpt(io.TextIOBase):
    """A text stream that keeps the first `OUTPUT_LIMIT` characters written to it and counts all."""

    def __init__(self) -> None:
        self.kept, self.size = io.StringIO(), 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        room = OUTPUT_LIMIT - self.kept.tell()
        if room > 0:
            self.kept.write(text[:room])
        self.size += len(text)
        return len(text)

    def echo(self, stream: Any) -> None:
        """Write what was kept to `stream`, saying how much more was left out."""
        if self.size:
            stream.write(self.kept.getvalue())
            if self.size > OUTPUT_LIMIT:
                stream.write(f"\n[... {self.size - OUTPUT_LIMIT:,} more characters not shown]\n")


@contextlib.contextmanager
def _captured_output() -> Iterator[None]:
    out, err = _Excerpt(), _Excerpt()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield
    finally:
        out.echo(sys.stdout)
        err.echo(sys.stderr)


def _describe(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # a learner's class with a broken __repr__
        text = object.__repr__(value)
    if len(text) > 60:
        text = text[:57] + "..."
    kind = type(value).__name__
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    return f"{article} {kind} ({text})"
