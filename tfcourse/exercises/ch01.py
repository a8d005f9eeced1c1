"""Self-checks for the exercises of `01_eager_execution`: the probes.

Each check is in two parts (see `tfcourse.exercises._split`): the probe here runs the learner's
answer and returns what it saw; the judge, in `tfcourse.exercises.judges.ch01`, decides.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np

from tfcourse.exercises._expect import to_numpy
from tfcourse.exercises._framework import Wrong
from tfcourse.exercises._learner import call, learner_code
from tfcourse.exercises._split import deferred, two_part

__all__ = ["check_derivative", "check_log_sum_exp", "check_make_scale", "check_train_step"]

#: The functions 01.1 differentiates: (label, x).
DERIVATIVE_CASES = (("x ** 3 at 2.0", 2.0), ("sin(x) * x at 1.5", 1.5), ("exp(-x) at 0.5", 0.5))
#: 01.3's calls: (length of x, factor).
SCALE_CASES = ((3, 2.0), (5, 0.5), (2, -1.0), (7, 3.0), (4, 10.0))
#: 01.4's inputs: they spread by up to 2,000, so subtracting anything but the maximum overflows.
LOG_SUM_EXP_CASES = (
    [1.0, 2.0, 3.0],
    [1000.0, 1001.0, 999.0],
    [-1000.0, -1002.0],
    [1000.0, 0.0, -1000.0],
)
#: 01.4 differentiates 2.5 * log_sum_exp(x), so grad must use upstream.
UPSTREAM = 2.5
LEARNING_RATE = 0.03  # 01.2's: not a value a learner would hard-code


def _tf_function(label: str) -> Callable[[Any], Any]:
    import tensorflow as tf

    return {
        "x ** 3 at 2.0": lambda x: x**3,
        "sin(x) * x at 1.5": lambda x: tf.sin(x) * x,
        "exp(-x) at 0.5": lambda x: tf.exp(-x),
    }[label]


@two_part("01.1", "a derivative by tape")
def check_derivative(
    derivative: Callable[[Callable[[Any], Any], Any], Any], seed: int
) -> list[Any]:
    """Check `derivative(f, x)`: df/dx at a scalar `x`, by `tf.GradientTape`, not a difference."""
    import tensorflow as tf

    seen = []
    for label, x in DERIVATIVE_CASES:
        points: list[float] = []
        calls: list[int] = []
        name = f"derivative({label})"
        answer = call(
            derivative, _recording(_tf_function(label), points, calls), tf.constant(x), name=name
        )
        if answer is None:
            raise Wrong(
                f"{name} returned None: the tape did not watch x. x is a constant, "
                "not a Variable, so call tape.watch(x) before computing f(x)."
            )
        seen.append({"value": to_numpy(answer, name=name), "points": points, "calls": len(calls)})
    return seen


def _recording(
    f: Callable[[Any], Any], points: list[float], calls: list[int]
) -> Callable[[Any], Any]:
    """`f`, noting each call, and each eager point it is evaluated at (a finite difference
    evaluates two; inside a `tf.function` its points have no value, but its calls count)."""

    def recorded(x: Any) -> Any:
        calls.append(1)
        with contextlib.suppress(Exception):  # a symbolic x, inside a tf.function, has no value
            points.extend(np.asarray(x.numpy(), np.float64).ravel().tolist())
        return f(x)

    return recorded


def regression_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """01.2's data and starting point: x (32, 3), y (32, 1), w0 (3, 1), b0 (1,)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 3)).astype(np.float32)
    y = (x @ np.array([[2.0], [-1.0], [0.5]], np.float32) + 0.3).astype(np.float32)
    return x, y, np.full((3, 1), 0.1, np.float32), np.zeros((1,), np.float32)


@two_part("01.2", "a training step")
def check_train_step(train_step: Callable[..., Any], seed: int) -> dict[str, Any]:
    """Check `train_step(w, b, x, y, learning_rate)`: one SGD step on mean squared error."""
    import tensorflow as tf

    x, y, w0, b0 = regression_data()
    w, b = tf.Variable(w0), tf.Variable(b0)
    args = (w, b, tf.constant(x), tf.constant(y), LEARNING_RATE)
    loss = call(train_step, *args, name="train_step")
    return {
        "w": w.numpy(),
        "b": b.numpy(),
        "loss": None
        if loss is None
        else deferred(lambda: to_numpy(loss, name="the returned loss")),
    }


@two_part("01.3", "stop the retracing")
def check_make_scale(make_scale: Callable[[], Any], seed: int) -> dict[str, Any]:
    """Check `make_scale()`: a `tf.function` computing x * factor that traces once for all calls."""
    import tensorflow as tf

    scale = call(make_scale, name="make_scale()")
    if not isinstance(scale, tf.types.experimental.GenericFunction):
        raise Wrong(
            f"make_scale() should return a tf.function, but returned {type(scale).__name__}. "
            "Decorate the inner function with @tf.function."
        )
    results = []
    for length, factor in SCALE_CASES:
        x = tf.range(length, dtype=tf.float32)
        label = f"scale(x of length {length}, {factor})"
        results.append(to_numpy(call(scale, x, tf.constant(factor), name=label), name=label))
    with learner_code("counting the traces of make_scale()'s function"):
        traces = int(scale.experimental_get_tracing_count())
    return {"results": results, "traces": traces}


@two_part("01.4", "a stable log-sum-exp with a custom gradient")
def check_log_sum_exp(log_sum_exp: Callable[[Any], Any], seed: int) -> list[Any]:
    """Check `log_sum_exp(x)`: log(sum(exp(x))) of a vector, stable, with gradient softmax(x).

    The inputs spread by up to 2,000, so subtracting anything but the maximum overflows, and the
    gradient is taken of ``2.5 * log_sum_exp(x)``, so a `grad` that ignores `upstream` is found.
    """
    return [
        deferred(lambda v=values: _value_and_gradient(log_sum_exp, v))
        for values in LOG_SUM_EXP_CASES
    ]


def _value_and_gradient(log_sum_exp: Callable[[Any], Any], values: list[float]) -> dict[str, Any]:
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
        upstream = tf.constant(UPSTREAM, dtype=y.dtype)
        gradient = tape.gradient(y, x, output_gradients=upstream)
    name = f"the gradient at {values}"
    return {
        "value": value,
        "gradient": None if gradient is None else deferred(lambda: to_numpy(gradient, name=name)),
    }
