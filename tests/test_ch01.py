"""Chapter 01's checks: each accepts a right answer and explains five or more kinds of wrong one."""

import numpy as np
import pytest
from answers import assert_result, not_written, raises

from tfcourse.exercises import ch01


# 01.1 derivative ---------------------------------------------------------------------------------
def derivative(f, x):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        y = f(x)
    return tape.gradient(y, x)


def unwatched(f, x):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        y = f(x)
    return tape.gradient(y, x)


@pytest.mark.parametrize(
    ("answer", "status", "fragment"),
    [
        (derivative, "passed", "exact derivative of 3 functions"),
        (None, "not attempted", "not attempted yet"),
        (not_written, "not attempted", "not attempted yet"),
        (raises, "failed", "raised RuntimeError: oops"),
        (unwatched, "failed", "call tape.watch(x)"),
        (lambda f, x: f(x), "failed", "returned f(x) itself"),
        (lambda f, x: -derivative(f, x), "failed", "is -12, expected 12"),
        (lambda f, x: 2 * derivative(f, x), "failed", "is 24, expected 12"),
        (lambda f, x: "slope", "failed", "should be a Tensor or array of numbers"),
    ],
)
def test_check_derivative(tf, answer, status, fragment):
    assert_result(ch01.check_derivative(answer), status, fragment)


# 01.2 train_step ---------------------------------------------------------------------------------
def train_step(w, b, x, y, learning_rate, *, sign=1.0, loss_after=False):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((x @ w + b - y) ** 2)
    grad_w, grad_b = tape.gradient(loss, [w, b])
    w.assign_sub(sign * learning_rate * grad_w)
    b.assign_sub(sign * learning_rate * grad_b)
    return tf.reduce_mean((x @ w + b - y) ** 2) if loss_after else loss


def rebinds(w, b, x, y, learning_rate):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((x @ w + b - y) ** 2)
    grad_w, grad_b = tape.gradient(loss, [w, b])
    w = w - learning_rate * grad_w  # rebinds a local name; the Variable is unchanged
    b = b - learning_rate * grad_b
    return loss


@pytest.mark.parametrize(
    ("answer", "status", "fragment"),
    [
        (train_step, "passed", "moves w and b exactly as expected"),
        (None, "not attempted", "not attempted yet"),
        (not_written, "not attempted", "not attempted yet"),
        (raises, "failed", "raised RuntimeError"),
        (rebinds, "failed", "w and b did not change"),
        (lambda *a: train_step(*a, sign=-1.0), "failed", "w moved uphill"),
        (lambda w, b, x, y, lr: train_step(w, b, x, y, lr * 2), "failed", "w after one step"),
        (lambda *a: train_step(*a, loss_after=True), "failed", "the returned loss"),
        (lambda *a: [train_step(*a)] * 2, "failed", "should be a scalar"),
        (lambda *a: train_step(*a) and None, "failed", "returned None"),
    ],
)
def test_check_train_step(tf, answer, status, fragment):
    assert_result(ch01.check_train_step(answer), status, fragment)


# 01.3 make_scale ---------------------------------------------------------------------------------
def make_scale_with(tf, **options):
    def make():
        return tf.function(lambda v, factor: v * factor, **options)

    return make


@pytest.mark.parametrize(
    ("make_answer", "status", "fragment"),
    [
        (
            lambda tf: make_scale_with(
                tf,
                input_signature=[tf.TensorSpec([None], tf.float32), tf.TensorSpec([], tf.float32)],
            ),
            "passed",
            "traced once",
        ),
        (lambda tf: None, "not attempted", "not attempted yet"),
        (lambda tf: not_written, "not attempted", "not attempted yet"),
        (lambda tf: raises, "failed", "raised RuntimeError"),
        (lambda tf: make_scale_with(tf), "failed", "traced 5 times"),
        (lambda tf: lambda: lambda v, factor: v * factor, "failed", "should return a tf.function"),
        (lambda tf: lambda: tf.function(lambda v, factor: v + factor), "failed", "differs from"),
        (lambda tf: lambda: 3.0, "failed", "returned float"),
    ],
)
def test_check_make_scale(tf, make_answer, status, fragment):
    assert_result(ch01.check_make_scale(make_answer(tf)), status, fragment)


# 01.4 log_sum_exp --------------------------------------------------------------------------------
def stable(x):
    import tensorflow as tf

    peak = tf.reduce_max(x)
    return peak + tf.math.log(tf.reduce_sum(tf.exp(x - peak)))


def wrong_gradient(tf):
    @tf.custom_gradient
    def log_sum_exp(x):
        def grad(upstream):
            return upstream * tf.ones_like(x)

        return stable(x), grad

    return log_sum_exp


@pytest.mark.parametrize(
    ("make_answer", "status", "fragment"),
    [
        (lambda tf: stable, "passed", "gradients equal to softmax"),
        (lambda tf: tf.reduce_logsumexp, "passed", "stable for inputs of ±1000"),
        (lambda tf: None, "not attempted", "not attempted yet"),
        (lambda tf: not_written, "not attempted", "not attempted yet"),
        (lambda tf: raises, "failed", "raised RuntimeError"),
        (lambda tf: lambda x: tf.math.log(tf.reduce_sum(tf.exp(x))), "failed", "exp overflowed"),
        (lambda tf: lambda x: tf.exp(x), "failed", "should return a scalar"),
        (lambda tf: lambda x: stable(x) + 1.0, "failed", "is 4.40761, expected 3.40761"),
        (wrong_gradient, "failed", "the gradient at [1.0, 2.0, 3.0]"),
        (lambda tf: lambda x: tf.constant(np.log(np.exp(x.numpy()).sum())), "failed", "is None"),
    ],
)
def test_check_log_sum_exp(tf, make_answer, status, fragment):
    assert_result(ch01.check_log_sum_exp(make_answer(tf)), status, fragment)
