"""Self-checks for the exercises of `01_eager_execution`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np

from tfcourse.exercises._expect import expect_close, to_numpy
from tfcourse.exercises._framework import Wrong, check
from tfcourse.exercises._learner import call, learner_code

__all__ = ["check_derivative", "check_log_sum_exp", "check_make_scale", "check_train_step"]


@check("01.1", "a derivative by tape")
def check_derivative(derivative: Callable[[Callable[[Any], Any], Any], Any]) -> str:
    """Check `derivative(f, x)`: df/dx at a scalar `x`, by `tf.GradientTape`, not a difference."""
    import tensorflow as tf

    cases = [
        ("x ** 3 at 2.0", lambda x: x**3, 2.0, 12.0),
        ("sin(x) * x at 1.5", lambda x: tf.sin(x) * x, 1.5, np.cos(1.5) * 1.5 + np.sin(1.5)),
        ("exp(-x) at 0.5", lambda x: tf.exp(-x), 0.5, -np.exp(-0.5)),
    ]
    for label, f, x, expected in cases:
        points: list[float] = []
        name = f"derivative({label})"
        answer = call(derivative, _recording(f, points), tf.constant(x), name=name)
        if answer is None:
            raise Wrong(
                f"{name} returned None: the tape did not watch x. x is a constant, "
                "not a Variable, so call tape.watch(x) before computing f(x)."
            )
        value = to_numpy(answer, name=name)
        elsewhere = [p for p in points if not np.isclose(p, x, rtol=1e-6)]
        if elsewhere:
            raise Wrong(
                f"{name} evaluated f at {elsewhere[0]:.6g} as well as at x = {x:g}: that is a "
                "finite difference, an approximation. Record f(x) on a tf.GradientTape and "
                "return tape.gradient(y, x)."
            )
        if value.size == 1 and np.isclose(float(value.reshape(())), float(f(tf.constant(x)))):
            raise Wrong(f"{name} returned f(x) itself; return tape.gradient(y, x).")
        expect_close(
            value.reshape(()) if value.size == 1 else value, expected, name=name, rtol=1e-4
        )
    return "matches the exact derivative of 3 functions, by tape, with constants watched."


def _recording(f: Callable[[Any], Any], points: list[float]) -> Callable[[Any], Any]:
    """`f`, noting each eager point it is evaluated at (a finite difference evaluates two)."""

    def recorded(x: Any) -> Any:
        with contextlib.suppress(Exception):  # a symbolic x, inside a tf.function, has no value
            points.extend(np.asarray(x.numpy(), np.float64).ravel().tolist())
        return f(x)

    return recorded


def _regression_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 3)).astype(np.float32)
    y = (x @ np.array([[2.0], [-1.0], [0.5]], np.float32) + 0.3).astype(np.float32)
    return x, y


_LEARNING_RATE = 0.03  # not a value a learner would hard-code


@check("01.2", "a training step")
def check_train_step(train_step: Callable[..., Any]) -> str:
    """Check `train_step(w, b, x, y, learning_rate)`: one SGD step on mean squared error."""
    import tensorflow as tf

    x, y = _regression_data()
    w0 = np.full((3, 1), 0.1, np.float32)
    b0 = np.zeros((1,), np.float32)
    w, b = tf.Variable(w0), tf.Variable(b0)
    rate = _LEARNING_RATE
    loss = call(train_step, w, b, tf.constant(x), tf.constant(y), rate, name="train_step")
    error = x @ w0 + b0 - y
    expected_loss = float(np.mean(error**2))
    grad_w = 2 * x.T @ error / len(x)
    grad_b = 2 * error.mean(axis=0)
    if np.array_equal(w.numpy(), w0) and np.array_equal(b.numpy(), b0):
        raise Wrong(
            "w and b did not change. Update them in place with w.assign_sub(...) "
            "(rebinding `w = w - ...` only changes a local name)."
        )
    if np.allclose(w.numpy(), w0 + rate * grad_w, rtol=1e-4):
        raise Wrong("w moved uphill: subtract learning_rate * gradient, don't add it.")
    expect_close(w, w0 - rate * grad_w, name="w after one step", rtol=1e-4, atol=1e-6)
    expect_close(b, b0 - rate * grad_b, name="b after one step", rtol=1e-4, atol=1e-6)
    if loss is None:
        raise Wrong("train_step returned None; return the loss computed before the update.")
    value = to_numpy(loss, name="the returned loss")
    if value.shape != ():
        raise Wrong(f"the loss should be a scalar, not shape {value.shape}; use tf.reduce_mean")
    expect_close(value, expected_loss, name="the returned loss", rtol=1e-4)
    return "one SGD step on MSE moves w and b exactly as expected, and returns the loss."


@check("01.3", "stop the retracing")
def check_make_scale(make_scale: Callable[[], Any]) -> str:
    """Check `make_scale()`: a `tf.function` computing x * factor that traces once for all calls."""
    import tensorflow as tf

    scale = call(make_scale, name="make_scale()")
    if not hasattr(scale, "experimental_get_tracing_count"):
        raise Wrong(
            f"make_scale() should return a tf.function, but returned {type(scale).__name__}. "
            "Decorate the inner function with @tf.function."
        )
    for length, factor in [(3, 2.0), (5, 0.5), (2, -1.0), (7, 3.0), (4, 10.0)]:
        x = tf.range(length, dtype=tf.float32)
        label = f"scale(x of length {length}, {factor})"
        result = call(scale, x, tf.constant(factor), name=label)
        expect_close(result, np.arange(length) * factor, name=label)
    with learner_code("counting the traces of make_scale()'s function"):
        traces = int(scale.experimental_get_tracing_count())
    if traces > 1:
        raise Wrong(
            f"scale traced {traces} times for 5 calls. A new shape retraces: give the function an "
            "input_signature with shape=[None] for x and shape=[] for factor."
        )
    return "5 calls with different lengths and factors, correct results, traced once."


_UPSTREAM = 2.5  # the check differentiates 2.5 * log_sum_exp(x), so grad must use upstream


@check("01.4", "a stable log-sum-exp with a custom gradient")
def check_log_sum_exp(log_sum_exp: Callable[[Any], Any]) -> str:
    """Check `log_sum_exp(x)`: log(sum(exp(x))) of a vector, stable, with gradient softmax(x).

    The inputs spread by up to 2,000, so subtracting anything but the maximum overflows, and the
    gradient is taken of ``2.5 * log_sum_exp(x)``, so a `grad` that ignores `upstream` is found.
    """
    cases = ([1.0, 2.0, 3.0], [1000.0, 1001.0, 999.0], [-1000.0, -1002.0], [1000.0, 0.0, -1000.0])
    for values in cases:
        array = np.asarray(values, np.float64)
        exact = array.max() + np.log(np.exp(array - array.max()).sum())
        value, gradient = _value_and_gradient(log_sum_exp, values)
        name = f"log_sum_exp({values})"
        if value.shape != ():
            raise Wrong(f"log_sum_exp should return a scalar, not shape {value.shape}")
        if not np.isfinite(value):
            raise Wrong(
                f"{name} is {value}: exp overflowed. Subtract max(x) before exp (not the mean or "
                "the minimum), then add it back."
            )
        expect_close(value, exact, name=name, rtol=1e-5)
        _expect_softmax_gradient(gradient, np.exp(array - exact), values)
    return "stable for inputs 2,000 apart, exact values, and gradients equal to upstream * softmax."


def _value_and_gradient(log_sum_exp: Callable[[Any], Any], values: list[float]) -> tuple[Any, Any]:
    """The answer's value at `values`, and the gradient of 2.5 times it, by `tf.GradientTape`."""
    import tensorflow as tf

    x = tf.constant(values, dtype=tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = call(log_sum_exp, x, name=f"log_sum_exp({values})")
    value = to_numpy(y, name=f"log_sum_exp({values})")
    if not isinstance(y, tf.Tensor):
        raise Wrong(f"log_sum_exp returned {type(y).__name__}; build a Tensor from TF ops on x.")
    with learner_code(f"tape.gradient through log_sum_exp({values})"):
        upstream = tf.constant(_UPSTREAM, dtype=y.dtype)
        return value, tape.gradient(y, x, output_gradients=upstream)


def _expect_softmax_gradient(gradient: Any, softmax: np.ndarray, values: list[float]) -> None:
    name = f"the gradient at {values}"
    if gradient is None:
        raise Wrong("the gradient is None: build the result from TensorFlow ops on x.")
    array = to_numpy(gradient, name=name)
    if array.shape == softmax.shape and not np.isfinite(array).all():
        raise Wrong(
            f"{name} contains NaN or infinity: exp overflowed in the backward pass. Compute it "
            "stably, as exp(x - value) or tf.nn.softmax(x)."
        )
    if array.shape == softmax.shape and np.allclose(array, softmax, rtol=1e-4, atol=1e-6):
        raise Wrong(
            f"{name} ignores `upstream`: for 2.5 * log_sum_exp(x) it should be 2.5 * softmax(x). "
            "Return upstream * softmax(x) from grad."
        )
    expect_close(array, _UPSTREAM * softmax, name=f"{name} (times 2.5)", rtol=1e-4, atol=1e-6)
