"""The machinery behind every exercise check: results, the `check` decorator, and safe calls."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

#: When set, every check appends its result as a JSON line to this file (for graders).
RESULTS_ENV = "TFCOURSE_RESULTS"

PASSED, FAILED, NOT_ATTEMPTED, ERROR = "passed", "failed", "not attempted", "error"
_SYMBOLS = {PASSED: "✓", FAILED: "✗", NOT_ATTEMPTED: "…", ERROR: "⚠"}
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
        status: ``"passed"``, ``"failed"``, ``"not attempted"``, or ``"error"`` when the check
            itself broke (a bug in the course, never the learner's fault).
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
    is wrong, and returns a sentence saying what it verified. The wrapper turns that into a
    `CheckResult` and never lets an exception escape: ``None`` or an answer that raises
    `NotImplementedError` is "not attempted yet", and anything unexpected becomes an ``error``
    result that asks the learner to report it.
    """

    def decorate(verify: Callable[..., str]) -> CheckFn:
        @functools.wraps(verify)
        def run(answer: Any = None, *args: Any, **kwargs: Any) -> CheckResult:
            try:
                if answer is None:
                    raise NotAttempted
                result = CheckResult(exercise, title, PASSED, verify(answer, *args, **kwargs))
            except (NotAttempted, NotImplementedError):
                result = CheckResult(exercise, title, NOT_ATTEMPTED, _NOT_ATTEMPTED_HELP)
            except Wrong as wrong:
                result = CheckResult(exercise, title, FAILED, str(wrong))
            except Exception as error:  # the check itself broke; keep the learner's notebook alive
                message = (
                    f"the check could not run ({type(error).__name__}: {error}). "
                    "This is a bug in the course; please report it with this message."
                )
                result = CheckResult(exercise, title, ERROR, message)
            _record(result)
            return result

        return run

    return decorate


def call(fn: Any, *args: Any, name: str = "your function", **kwargs: Any) -> Any:
    """Call the learner's function, turning its failures into explanations.

    Raises:
        NotAttempted: If it raises `NotImplementedError` (the unanswered template).
        Wrong: If it is not callable or raises anything else.
    """
    if not callable(fn):
        raise Wrong(f"expected a function, but got {_describe(fn)}. Pass the function itself.")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as error:
        raise NotAttempted from error
    except Exception as error:
        raise Wrong(f"{name} raised {type(error).__name__}: {error}") from error


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"a {type(value).__name__} ({text})"
