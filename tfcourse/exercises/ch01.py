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

#: The functions 01.1 differentiates, and where its points are drawn (multiples of 1/8 in these
#: intervals): away from where the derivative is near 0, or near what a wrong answer returns (f(x),
#: x, the derivative of another of the functions), by 10% or more.
DERIVATIVE_POINTS = {
    "x ** 3": ((-2.5, -0.75), (0.75, 2.5)),
    "sin(x) * x": ((0.75, 1.125), (2.25, 3.5)),
    "exp(-x)": ((-1.5, 1.0),),
}
#: The range (inclusive) of 01.2's number of examples; x, the true weights and bias are drawn too.
REGRESSION_SIZES = (24, 64)
#: 01.3's calls: 5 different lengths of x from this range (inclusive), so that each would retrace.
SCALE_LENGTHS = (3, 12)
#: 01.3's factors: different multiples of 0.5 in this range, never 0 or 1.
SCALE_FACTORS = (-3.0, 10.0)
#: 01.4 differentiates 2.5 * log_sum_exp(x), so grad must use upstream.
UPSTREAM = 2.5
LEARNING_RATE = 0.03  # 01.2's: not a value a learner would hard-code


def _tf_function(function: str) -> Callable[[Any], Any]:
    import tensorflow as tf

    return {
        "x ** 3": lambda x: x**3,
        "sin(x) * x": lambda x: tf.sin(x) * x,
        "exp(-x)": lambda x: tf.exp(-x),
    }[function]


def _derivative_cases(seed: int) -> list[tuple[str, float]]:
    """01.1's (function, x), one per function of `DERIVATIVE_POINTS`, x drawn from `seed`."""
    rng = np.random.default_rng(seed)
    cases = []
    for function, intervals in DERIVATIVE_POINTS.items():
        points = [
            eighths / 8
            for low, high in intervals
            for eighths in range(round(low * 8), round(high * 8) + 1)
        ]
        cases.append((function, float(rng.choice(points))))
    return cases


def _derivative_label(function: str, x: float) -> str:
    return f"{function} at {x}"


@two_part("01.1", "a derivative by tape")
def check_derivative(
    derivative: Callable[[Callable[[Any], Any], Any], Any], seed: int
) -> list[Any]:
    """Check `derivative(f, x)`: df/dx at a scalar `x`, by `tf.GradientTape`, not a difference.

    Each function's `x` is drawn from `seed` (see `_derivative_cases`).
    """
    import tensorflow as tf

    seen = []
    for function, x in _derivative_cases(seed):
        points: list[float] = []
        calls: list[int] = []
        name = f"derivative({_derivative_label(function, x)})"
        f = _recording(_tf_function(function), points, calls)
        answer = call(derivative, f, tf.constant(x, tf.float32), name=name)
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


def regression_data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """01.2's data, drawn from `seed`, and starting point: x (n, 3), y (n, 1), w0 (3, 1), b0 (1,).

    n is drawn from `REGRESSION_SIZES`; y is exactly linear in x, with true weights of size 0.5 to
    2.5 and a bias of size 0.2 to 1 (either sign), so that every gradient is well away from 0.
    """
    rng = np.random.default_rng(seed)
    n = int(rng.integers(REGRESSION_SIZES[0], REGRESSION_SIZES[1] + 1))
    x = rng.normal(size=(n, 3)).astype(np.float32)
    signs = rng.choice([-1.0, 1.0], 4)
    weights = (signs[:3] * rng.uniform(0.5, 2.5, 3)).reshape(3, 1).astype(np.float32)
    bias = np.float32(signs[3] * rng.uniform(0.2, 1.0))
    y = (x @ weights + bias).astype(np.float32)
    return x, y, np.full((3, 1), 0.1, np.float32), np.zeros((1,), np.float32)


@two_part("01.2", "a training step")
def check_train_step(train_step: Callable[..., Any], seed: int) -> dict[str, Any]:
    """Check `train_step(w, b, x, y, learning_rate)`: one SGD step on mean squared error, on data
    drawn from `seed` (see `regression_data`)."""
    import tensorflow as tf

    x, y, w0, b0 = regression_data(seed)
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


def _scale_cases(seed: int) -> list[tuple[int, float]]:
    """01.3's 5 calls, drawn from `seed`: (length of x, factor), every length and factor different.

    Lengths of 3 or more give x = range(length) two non-zero values, so a wrong factor is named.
    """
    rng = np.random.default_rng(seed)
    lengths = rng.choice(np.arange(SCALE_LENGTHS[0], SCALE_LENGTHS[1] + 1), 5, replace=False)
    halves = np.arange(round(SCALE_FACTORS[0] * 2), round(SCALE_FACTORS[1] * 2) + 1)
    factors = rng.choice(halves[(halves != 0) & (halves != 2)], 5, replace=False) / 2
    return [(int(n), float(f)) for n, f in zip(lengths, factors, strict=True)]


@two_part("01.3", "stop the retracing")
def check_make_scale(make_scale: Callable[[], Any], seed: int) -> dict[str, Any]:
    """Check `make_scale()`: a `tf.function` computing x * factor that traces once for all calls.

    The calls' lengths and factors are drawn from `seed` (see `_scale_cases`).
    """
    import tensorflow as tf

    scale = call(make_scale, name="make_scale()")
    if not isinstance(scale, tf.types.experimental.GenericFunction):
        raise Wrong(
            f"make_scale() should return a tf.function, but returned {type(scale).__name__}. "
            "Decorate the inner function with @tf.function."
        )
    results = []
    for length, factor in _scale_cases(seed):
        x = tf.range(length, dtype=tf.float32)
        label = f"scale(x of length {length}, {factor})"
        results.append(to_numpy(call(scale, x, tf.constant(factor), name=label), name=label))
    with learner_code("counting the traces of make_scale()'s function"):
        traces = int(scale.experimental_get_tracing_count())
    return {"results": results, "traces": traces}


@two_part("01.4", "a stable log-sum-exp with a custom gradient")
def check_log_sum_exp(log_sum_exp: Callable[[Any], Any], seed: int) -> list[Any]:
    """Check `log_sum_exp(x)`: log(sum(exp(x))) of a vector, stable, with gradient softmax(x).

    The inputs, drawn from `seed` (see `_log_sum_exp_cases`), spread by up to 2,000, so
    subtracting anything but the maximum overflows, and the gradient is taken of
    ``2.5 * log_sum_exp(x)``, so a `grad` that ignores `upstream` is found.
    """
    return [
        deferred(lambda v=values: _value_and_gradient(log_sum_exp, v))
        for values in _log_sum_exp_cases(seed)
    ]


def _log_sum_exp_cases(seed: int) -> list[list[float]]:
    """01.4's 4 inputs, drawn from `seed`, all multiples of 0.5 (exact in float32).

    An ordinary vector of 2-5 values in [-4, 4]; 2-4 values within 3 of a centre in [900, 1100],
    where exp overflows; the same near [-1100, -900], where it underflows to 0; and, in a drawn
    order, c + 1000, c + m and c - 1000 (c in [-100, 100], m in [-50, 50]): 2,000 apart, so that
    subtracting the mean or the minimum instead of the maximum overflows.
    """
    rng = np.random.default_rng(seed)

    def halves(low: float, high: float, count: int) -> list[float]:
        return [float(v) / 2 for v in rng.integers(round(low * 2), round(high * 2) + 1, count)]

    def near(centre: float) -> list[float]:
        return [centre + v for v in halves(-3, 3, int(rng.integers(2, 5)))]

    ordinary = halves(-4, 4, int(rng.integers(2, 6)))
    high, low = near(int(rng.integers(900, 1101))), near(-int(rng.integers(900, 1101)))
    centre, middle = halves(-100, 100, 1)[0], halves(-50, 50, 1)[0]
    spread = [centre + 1000, centre + middle, centre - 1000]
    return [ordinary, high, low, [spread[i] for i in rng.permutation(3)]]


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
