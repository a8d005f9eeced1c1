"""Comparisons that explain themselves: each raises `Wrong` with the specific mistake it found."""

from __future__ import annotations

from typing import Any

import numpy as np

from tfcourse.exercises._framework import Wrong, _describe


def to_numpy(value: Any, *, name: str = "your answer") -> np.ndarray:
    """Convert a `Tensor`, NumPy array or nested list to an array, or explain why it can't be."""
    if value is None:
        raise Wrong(f"{name} is None; did you forget a `return`?")
    numpy = getattr(value, "numpy", None)
    try:
        array = np.asarray(numpy() if callable(numpy) else value)
    except Exception as error:
        raise Wrong(f"{name} should be a Tensor or array, but it is {_describe(value)}") from error
    if array.dtype.kind not in "biufc":  # bool, int, unsigned, float, complex
        raise Wrong(f"{name} should be a Tensor or array of numbers, but it is {_describe(value)}")
    return array


def expect_tensor(value: Any, *, name: str = "your answer") -> None:
    """Require a TensorFlow Tensor where the exercise asks for one (not NumPy, not a list)."""
    import tensorflow as tf

    if isinstance(value, (tf.Tensor, tf.Variable)):
        return
    if value is None:
        raise Wrong(f"{name} is None; did you forget a `return`?")
    if isinstance(value, tf.RaggedTensor):
        raise Wrong(
            f"{name} is a RaggedTensor; the exercise asks for a dense Tensor (.to_tensor())."
        )
    if isinstance(value, (np.ndarray, np.generic, list, tuple, int, float, bool)):
        made = "NumPy" if isinstance(value, (np.ndarray, np.generic)) else "plain Python"
        why = f"; {made} values cannot"
    else:
        why = ""
    raise Wrong(
        f"{name} is {_describe(value)}: the exercise asks for a Tensor. Compute it with "
        f"TensorFlow ops, so that it also runs inside tf.function{why}."
    )


def expect_shape(array: np.ndarray, shape: tuple[int, ...], *, name: str = "your answer") -> None:
    """Check the shape, with a hint for a transposed or an extra/missing axis of size 1."""
    if array.shape == tuple(shape):
        return
    hint = ""
    if array.size == int(np.prod(shape)):
        if sorted(array.shape) == sorted(shape):
            hint = " It has the right axes in the wrong order: transpose it."
        else:
            hint = " It has the right number of values: reshape or squeeze it."
    raise Wrong(f"{name} has shape {array.shape}, expected {tuple(shape)}.{hint}")


def expect_dtype(array: np.ndarray, dtype: Any, *, name: str = "your answer") -> None:
    """Check the dtype, naming both."""
    expected = np.dtype(dtype)
    if array.dtype != expected:
        raise Wrong(f"{name} has dtype {array.dtype}, expected {expected.name}. Cast it.")


def expect_finite(array: np.ndarray, *, name: str = "your answer") -> None:
    """Reject NaN and infinity, saying how many there are."""
    if np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.complexfloating):
        bad = ~np.isfinite(array)
        if bad.any():
            kind = "NaN" if np.isnan(array).any() else "infinite values"
            raise Wrong(
                f"{name} contains {kind} at {int(bad.sum())} of {array.size} positions; "
                "look for a division by zero or a log of zero."
            )


def expect_close(
    value: Any,
    expected: Any,
    *,
    name: str = "your answer",
    dtype: Any = None,
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> np.ndarray:
    """Check shape, optionally dtype, finiteness, then values, explaining the first problem found.

    Returns:
        The answer as a NumPy array.
    """
    array = to_numpy(value, name=name)
    target = np.asarray(expected)
    expect_shape(array, target.shape, name=name)
    if dtype is not None:
        expect_dtype(array, dtype, name=name)
    expect_finite(array, name=name)
    actual = array.astype(np.float64)
    wanted = target.astype(np.float64)
    if np.allclose(actual, wanted, rtol=rtol, atol=atol):
        return array
    raise Wrong(_explain_mismatch(actual, wanted, name=name, rtol=rtol, atol=atol))


def _explain_mismatch(
    actual: np.ndarray, wanted: np.ndarray, *, name: str, rtol: float, atol: float
) -> str:
    if wanted.ndim == 0:
        return f"{name} is {float(actual):.6g}, expected {float(wanted):.6g}."
    nonzero = np.abs(wanted) > atol
    if nonzero.sum() >= 2 and (np.abs(actual) > atol).any():
        ratios = actual[nonzero] / wanted[nonzero]
        factor = float(np.median(ratios))
        # A factor near 1 is no scaling mistake, only values a little off (a constant, a
        # precision): the general message below says where they differ.
        scaled = abs(factor - 1.0) > 0.01
        if scaled and np.allclose(actual, factor * wanted, rtol=rtol * 10, atol=atol * 10):
            if np.isclose(factor, -1.0):
                return f"{name} has the right size but the wrong sign everywhere."
            return f"{name} is off by a factor of {factor:.4g} everywhere; check your scaling."
    wrong = ~np.isclose(actual, wanted, rtol=rtol, atol=atol)
    first = tuple(int(i) for i in np.argwhere(wrong)[0])
    where = first if len(first) != 1 else first[0]
    return (
        f"{name} differs from the expected values at {int(wrong.sum())} of {wrong.size} "
        f"positions; for example at index {where} it is {actual[first]:.6g}, "
        f"expected {wanted[first]:.6g}."
    )
