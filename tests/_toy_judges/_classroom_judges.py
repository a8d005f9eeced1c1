"""The judge of the toy chapter's 90.2, outside the folder the grading kernels see."""

from _classroom_checks import add_inputs, double_inputs

from tfcourse.exercises._framework import Wrong


def add(observed, seed):
    pairs = add_inputs(seed)
    if not isinstance(observed, list) or len(observed) != len(pairs):
        raise Wrong("the check's observations are not what its probe sends")
    for (a, b), got in zip(pairs, observed, strict=True):
        if got != a + b:
            raise Wrong(f"add({a}, {b}) should be {a + b}, got {got}")
    return f"add(a, b) is a + b for {len(pairs)} pairs, three of them drawn by the grader."


def double(observed, seed):
    numbers = double_inputs(seed)
    if not isinstance(observed, list) or len(observed) != len(numbers):
        raise Wrong("the check's observations are not what its probe sends")
    for x, got in zip(numbers, observed, strict=True):
        if got != 2 * x:
            raise Wrong(f"double({x}) should be {2 * x}, got {got}")
    return f"double(x) is 2 * x for {len(numbers)} numbers, three of them drawn by the grader."
