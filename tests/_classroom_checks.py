"""Checks of a toy chapter (90) that the grading tests' kernels import: fast, no TensorFlow.

90.1's checks are one-part (the kernel's report grades them); 90.2's is two-part: its probe is
here, and its judge in `tests/_toy_judges`, a folder the grading kernels do not see.
"""

import numpy as np

from tfcourse.exercises._framework import Wrong, check
from tfcourse.exercises._split import two_part


@check("90.1", "Double")
def check_double(double):
    if double(2) != 4:
        raise Wrong(f"double(2) should be 4, got {double(2)!r}")
    return "double(2) is 4."


@check("90.1", "Double")
def check_double_negative(double):
    if double(-3) != -6:
        raise Wrong(f"double(-3) should be -6, got {double(-3)!r}")
    return "double(-3) is -6."


def add_inputs(seed):
    """The pairs 90.2 adds: (2, 3), then three drawn from `seed`."""
    drawn = np.random.default_rng(seed).integers(-1000, 1000, size=(3, 2))
    return [(2, 3), *[(int(a), int(b)) for a, b in drawn]]


@two_part("90.2", "Add", judge="_classroom_judges:add")
def check_add(add, seed):
    sums = [add(a, b) for a, b in add_inputs(seed)]
    return [s if isinstance(s, (int, float)) else repr(s) for s in sums]


def double_inputs(seed):
    """The numbers 91.1 doubles: 2 and -3, then three drawn from `seed`."""
    drawn = np.random.default_rng(seed).integers(-1000, 1000, size=3)
    return [2, -3, *[int(x) for x in drawn]]


@two_part("91.1", "Double", judge="_classroom_judges:double")
def check_double_judged(double, seed):
    doubles = [double(x) for x in double_inputs(seed)]
    return [d if isinstance(d, (int, float)) else repr(d) for d in doubles]
