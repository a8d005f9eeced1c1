"""Exercise self-checks: one module per chapter (`ch00`, `ch01`, ...) on a shared framework.

A check takes the learner's answer and returns a `CheckResult` whose text is one line: ✓ with what
was verified, ✗ with what is wrong, or "not attempted yet". It never raises and never hangs: learner
code runs only through `call`, `learner_code` and `take_all`, with a time budget. Introduced in
`00_welcome_and_setup`.
"""

from tfcourse.exercises._expect import (
    expect_close,
    expect_dtype,
    expect_finite,
    expect_shape,
    expect_tensor,
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
    check,
    results,
)
from tfcourse.exercises._learner import call, forbid, learner_code, take_all
from tfcourse.exercises._probes import PROBE_SEED_ENV, draw_except, probe_rng

__all__ = [
    "CheckResult",
    "ERROR",
    "FAILED",
    "NOT_ATTEMPTED",
    "NotAttempted",
    "PASSED",
    "PROBE_SEED_ENV",
    "RESULTS_ENV",
    "Wrong",
    "call",
    "check",
    "draw_except",
    "expect_close",
    "expect_dtype",
    "expect_finite",
    "expect_shape",
    "expect_tensor",
    "forbid",
    "learner_code",
    "probe_rng",
    "results",
    "take_all",
    "to_numpy",
]
