"""Judges of chapter 01's checks (probes in `tfcourse.exercises.ch01`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tfcourse.exercises._expect import expect_close
from tfcourse.exercises._framework import Wrong
from tfcourse.exercises.ch01 import (
    LEARNING_RATE,
    UPSTREAM,
    _derivative_cases,
    _derivative_label,
    _log_sum_exp_cases,
    _scale_cases,
    regression_data,
)
from tfcourse.exercises.judges._observed import _MALFORMED, array, field, items, settled

#: f and df/dx of each of 01.1's functions, in NumPy.
_EXACT = {
    "x ** 3": (lambda x: x**3, lambda x: 3 * x**2),
    "sin(x) * x": (lambda x: np.sin(x) * x, lambda x: np.cos(x) * x + np.sin(x)),
    "exp(-x)": (lambda x: np.exp(-x), lambda x: -np.exp(-x)),
}


def derivative(observed: Any, seed: int) -> str:
    """01.1: the exact derivative, from f evaluated at x only."""
    cases = _derivative_cases(seed)
    for one, (function, x) in zip(items(observed, len(cases)), cases, strict=True):
        f, df = _EXACT[function]
        name = f"derivative({_derivative_label(function, x)})"
        value = array(field(one, "value"))
        points = [float(p) for p in items(field(one, "points", list), kind=(int, float))]
        elsewhere = [p for p in points if not np.isclose(p, x, rtol=1e-6)]
        calls = field(one, "calls", int)
        if calls > 1 and not elsewhere:
            raise Wrong(
                f"{name} called f {calls} times: a finite difference evaluates it twice, an "
                "approximation, even inside a tf.function. Record f(x) once on a "
                "tf.GradientTape and return tape.gradient(y, x)."
            )
        if elsewhere:
            raise Wrong(
                f"{name} evaluated f at {elsewhere[0]:.6g} as well as at x = {x:g}: that is a "
                "finite difference, an approximation. Record f(x) on a tf.GradientTape and "
                "return tape.gradient(y, x)."
            )
        fx = float(np.float32(f(np.float32(x))))
        if value.size == 1 and np.isclose(float(value.reshape(())), fx):
            raise Wrong(f"{name} returned f(x) itself; return tape.gradient(y, x).")
        expect_close(value.reshape(()) if value.size == 1 else value, df(x), name=name, rtol=1e-4)
    return "matches the exact derivative of 3 functions, by tape, with constants watched."


def train_step(observed: Any, seed: int) -> str:
    """01.2: w and b after one SGD step on MSE, and the loss before it."""
    x, y, w0, b0 = regression_data(seed)
    w, b = array(field(observed, "w")), array(field(observed, "b"))
    rate = LEARNING_RATE
    error = x @ w0 + b0 - y
    expected_loss = float(np.mean(error**2))
    grad_w = 2 * x.T @ error / len(x)
    grad_b = 2 * error.mean(axis=0)
    if np.array_equal(w, w0) and np.array_equal(b, b0):
        raise Wrong(
            "w and b did not change. Update them in place with w.assign_sub(...) "
            "(rebinding `w = w - ...` only changes a local name)."
        )
    if w.shape == w0.shape and np.allclose(w, w0 + rate * grad_w, rtol=1e-4):
        raise Wrong("w moved uphill: subtract learning_rate * gradient, don't add it.")
    expect_close(w, w0 - rate * grad_w, name="w after one step", rtol=1e-4, atol=1e-6)
    expect_close(b, b0 - rate * grad_b, name="b after one step", rtol=1e-4, atol=1e-6)
    if field(observed, "loss") is None:
        raise Wrong("train_step returned None; return the loss computed before the update.")
    value = array(field(observed, "loss"))
    if value.shape != ():
        raise Wrong(f"the loss should be a scalar, not shape {value.shape}; use tf.reduce_mean")
    expect_close(value, expected_loss, name="the returned loss", rtol=1e-4)
    return "one SGD step on MSE moves w and b exactly as expected, and returns the loss."


def make_scale(observed: Any, seed: int) -> str:
    """01.3: x * factor for 5 calls of different lengths, traced once."""
    cases = _scale_cases(seed)
    results = items(field(observed, "results", list), len(cases))
    for result, (length, factor) in zip(results, cases, strict=True):
        label = f"scale(x of length {length}, {factor})"
        expect_close(array(result), np.arange(length) * factor, name=label)
    traces = field(observed, "traces", int)
    if isinstance(traces, bool) or traces < 1:
        raise Wrong(_MALFORMED.format("a trace count below 1 after 5 calls"))
    if traces > 1:
        raise Wrong(
            f"scale traced {traces} times for 5 calls. A new shape retraces: give the function an "
            "input_signature with shape=[None] for x and shape=[] for factor."
        )
    return "5 calls with different lengths and factors, correct results, traced once."


def log_sum_exp(observed: Any, seed: int) -> str:
    """01.4: exact, stable values, and gradients equal to upstream * softmax."""
    cases = _log_sum_exp_cases(seed)
    for one, values in zip(items(observed, len(cases)), cases, strict=True):
        one = settled(one)
        array_in = np.asarray(values, np.float64)
        exact = array_in.max() + np.log(np.exp(array_in - array_in.max()).sum())
        value = array(field(one, "value"))
        name = f"log_sum_exp({values})"
        if value.shape != ():
            raise Wrong(f"log_sum_exp should return a scalar, not shape {value.shape}")
        if not np.isfinite(value):
            raise Wrong(
                f"{name} is {value}: exp overflowed. Subtract max(x) before exp (not the mean or "
                "the minimum), then add it back."
            )
        expect_close(value, exact, name=name, rtol=1e-5)
        _expect_softmax_gradient(field(one, "gradient"), np.exp(array_in - exact), values)
    return "stable for inputs 2,000 apart, exact values, and gradients equal to upstream * softmax."


def _expect_softmax_gradient(gradient: Any, softmax: np.ndarray, values: list[float]) -> None:
    name = f"the gradient at {values}"
    if gradient is None:
        raise Wrong("the gradient is None: build the result from TensorFlow ops on x.")
    gradient = array(gradient)
    if gradient.shape == softmax.shape and not np.isfinite(gradient).all():
        raise Wrong(
            f"{name} contains NaN or infinity: exp overflowed in the backward pass. Compute it "
            "stably, as exp(x - value) or tf.nn.softmax(x)."
        )
    if gradient.shape == softmax.shape and np.allclose(gradient, softmax, rtol=1e-4, atol=1e-6):
        raise Wrong(
            f"{name} ignores `upstream`: for 2.5 * log_sum_exp(x) it should be 2.5 * softmax(x). "
            "Return upstream * softmax(x) from grad."
        )
    expect_close(gradient, UPSTREAM * softmax, name=f"{name} (times 2.5)", rtol=1e-4, atol=1e-6)
