"""Checks of a toy chapter (90) that the grading tests' kernels import: fast, no TensorFlow."""

from tfcourse.exercises._framework import Wrong, check


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


@check("90.2", "Add")
def check_add(add):
    if add(2, 3) != 5:
        raise Wrong(f"add(2, 3) should be 5, got {add(2, 3)!r}")
    return "add(2, 3) is 5."
