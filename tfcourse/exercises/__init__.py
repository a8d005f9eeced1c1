"""Exercise self-checks: one module per chapter (`ch00`, `ch01`, ...) on a shared framework.

A check takes the learner's answer and returns a `CheckResult` whose text is one line: ✓ with what
was verified, ✗ with what is wrong, or "not attempted yet". It never raises. Introduced in
`00_welcome_and_setup`.
"""

from tfcourse.exercises._expect import (
    expect_close,
    expect_dtype,
    expect_finite,
    expect_shape,
    to_numpy,
)
from tfcourse.exercises._framework import (
    ERROR,
    FAILED,
    NOT_ATTEMPTED,
    PASSED,
    RESULTS_ENV,
    CheckResult,
    NotAttempted,
    Wrong,
    call,
    check,
    results,
)

__all__ = [
    "CheckResult",
    "ERROR",
    "FAILED",
    "NOT_ATTEMPTED",
    "NotAttempted",
    "PASSED",
    "RESULTS_ENV",
    "Wrong",
    "call",
    "check",
    "expect_close",
    "expect_dtype",
    "expect_finite",
    "expect_shape",
    "results",
    "to_numpy",
]
