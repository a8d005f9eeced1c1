"""Chapter 06's checks: each accepts a right answer and explains five or more kinds of wrong one."""

import math

import numpy as np
import pytest
from answers import MISBEHAVING, assert_result, assert_survives, not_written, raises

from tfcourse.exercises import _learner, ch06
from tfcourse.exercises._framework import Wrong


# 06.1 optimized_hlo ------------------------------------------------------------------------------
def hlo(stage="optimized_hlo", *, jit=True, shape=None):
    import tensorflow as tf

    def answer(fn, x):
        x = tf.ones(shape) if shape else x
        return tf.function(fn, jit_compile=jit).experimental_get_compiler_ir(x)(stage=stage)

    return answer


def test_count_fusions_counts_fusion_instructions_only():
    text = "%f = f32[3]{0} fusion(%a), kind=kLoop\n%fused_computation (p)\n%g = f32[] fusion()"
    assert ch06.count_fusions(text) == 2
    assert ch06.count_fusions("HloModule m\n%a = f32[] add(%b, %c)") == 0


@pytest.mark.parametrize(
    ("answer", "status", "fragment"),
    [
        (hlo(), "passed", "optimised HLO text"),
        (hlo(jit=None), "failed", "only be returned for functions marked with 'jit_compile=True'"),
        (lambda fn, x: hlo()(fn, x).encode().decode(), "passed", "with the elementwise ops fused"),
        (None, "not attempted", "not attempted yet"),
        (not_written, "not attempted", "not attempted yet"),
        (raises, "failed", "raised RuntimeError: oops"),
        (hlo("hlo"), "failed", "has no fusion: this is the HLO before XLA's optimisations"),
        (hlo("optimized_hlo_dot"), "failed", "returned a Graphviz graph"),
        (hlo(shape=[1, 1]), "failed", "has no parameter of type f32["),
        (
            lambda fn, x: hlo()(
                lambda y: (
                    __import__("tensorflow").nn.relu(y * 3.0 - 1.0)
                    + __import__("tensorflow").exp(-y)
                ),
                x,
            ),
            "failed",
            "is not the HLO XLA makes of that function",
        ),
        (lambda fn, x: hlo()(lambda y: fn(fn(y)), x), "failed", "not fn applied twice"),
        (lambda fn, x: hlo()(lambda y: fn(y) + 0.0 * y, x), "failed", "is not the HLO XLA makes"),
        (
            lambda fn, x: hlo()(fn, __import__("tensorflow").TensorSpec(x.shape, x.dtype)),
            "passed",
            "optimised HLO text",
        ),
        (lambda fn, x: fn(x), "failed", "returned a Tensor: you ran the function"),
        (lambda fn, x: None, "failed", "returned None"),
        (
            lambda fn, x: (
                __import__("tensorflow")
                .function(fn, jit_compile=True)
                .experimental_get_compiler_ir(x)
            ),
            "failed",
            "returned a function",
        ),
        (lambda fn, x: hlo()(fn, x).encode(), "failed", "should return the HLO as a str"),
        (lambda fn, x: hlo()(fn, x).split("\n", 1)[1], "failed", "does not start with 'HloModule'"),
        (
            lambda fn, x: hlo()(lambda y: y * 3.0 + 1.0, x),
            "failed",
            "has no 'exponential' instruction",
        ),
    ],
)
def test_check_optimized_hlo(tf, answer, status, fragment):
    assert_result(ch06.check_optimized_hlo(answer), status, fragment)


# 06.2 bucketed ------------------------------------------------------------------------------------
def bucketed(
    fn, bucket_size, *, pad_to=None, slice_back=True, signature=False, jit=True, fill=0.0, **options
):
    """The notebook's solution, with switches for the classic mistakes."""
    import tensorflow as tf

    spec = [tf.TensorSpec([None], tf.float32)] if signature else None
    compiled = tf.function(fn, jit_compile=jit, input_signature=spec, **options)

    def run(x):
        length = int(x.shape[0])
        padded = pad_to(length) if pad_to else math.ceil(length / bucket_size) * bucket_size
        result = compiled(tf.pad(x, [[0, padded - length]], constant_values=fill))
        return result[:length] if slice_back else result

    return run


def per_call(fn, bucket_size):
    import tensorflow as tf

    def run(x):
        padded = math.ceil(int(x.shape[0]) / bucket_size) * bucket_size
        return tf.function(fn, jit_compile=True)(tf.pad(x, [[0, padded - int(x.shape[0])]]))[
            : x.shape[0]
        ]

    return run


def unpadded(fn, bucket_size):
    import tensorflow as tf

    return tf.function(fn, jit_compile=True)


def eager(fn, bucket_size):
    return lambda x: fn(x)


def padded_inside(fn, bucket_size, *, concat=False, scatter=False, nested=False):
    """Pads inside the compiled function: fn sees bucket lengths, XLA compiles per raw length."""
    import tensorflow as tf

    @tf.function(jit_compile=True, input_signature=[tf.TensorSpec([None], tf.float32)])
    def compiled(x):
        length = tf.shape(x)[0]
        padded = (length + bucket_size - 1) // bucket_size * bucket_size
        if concat:
            x = tf.concat([x, tf.zeros([padded - length])], axis=0)
        elif scatter:
            x = tf.scatter_nd(tf.range(length)[:, None], x, [padded])
        elif nested:
            x = pad_to_bucket(x)
        else:
            x = tf.pad(x, [[0, padded - length]])
        return fn(x)[:length]

    @tf.function
    def pad_to_bucket(x):
        length = tf.shape(x)[0]
        return tf.pad(x, [[0, (length + bucket_size - 1) // bucket_size * bucket_size - length]])

    return compiled


def wrapped_jit(fn, bucket_size):
    """Right: the compiled function wraps fn (reshape included); the padding is outside it."""
    import tensorflow as tf

    compiled = tf.function(lambda v: fn(tf.reshape(v, [-1])), jit_compile=True)

    def run(x):
        padded = math.ceil(int(x.shape[0]) / bucket_size) * bucket_size
        return compiled(tf.pad(x, [[0, padded - int(x.shape[0])]]))[: x.shape[0]]

    return run


@pytest.mark.parametrize(
    ("answer", "status", "fragment"),
    [
        (bucketed, "passed", "traced once per bucket"),
        (lambda fn, b: bucketed(fn, b, jit=False), "failed", "a tf.function without XLA"),
        (lambda fn, b: bucketed(fn, b, signature=True), "passed", "or once for any length"),
        (lambda fn, b: bucketed(fn, b, reduce_retracing=True), "passed", "bucket lengths only"),
        (lambda fn, b: bucketed(fn, b, fill=1.0), "failed", "the padding is not zeros"),
        (padded_inside, "failed", "(by Pad, Shape): padding there means XLA"),
        (lambda fn, b: padded_inside(fn, b, concat=True), "failed", "(by ConcatV2, Fill, Shape)"),
        (lambda fn, b: padded_inside(fn, b, scatter=True), "failed", "ScatterNd"),
        (lambda fn, b: padded_inside(fn, b, nested=True), "failed", "PartitionedCall"),
        (wrapped_jit, "passed", "bucket lengths only"),
        (
            lambda fn, b: bucketed(fn, b, signature=True, pad_to=lambda n: n),
            "failed",
            "fn ran on length 5, not a multiple of bucket_size=16",
        ),
        (None, "not attempted", "not attempted yet"),
        (not_written, "not attempted", "not attempted yet"),
        (raises, "failed", "raised RuntimeError: oops"),
        (unpadded, "failed", "fn ran on length 5, not a multiple of bucket_size=16"),
        (eager, "failed", "fn ran eagerly"),
        (per_call, "failed", "you make a new tf.function on every call"),
        (
            lambda fn, b: bucketed(fn, b, slice_back=False),
            "failed",
            "has shape (16,), expected (5,)",
        ),
        (lambda fn, b: bucketed(fn, b, pad_to=lambda n: 48), "failed", "fn ran on length 48"),
        (
            lambda fn, b: bucketed(fn, b, pad_to=lambda n: (n // b + 1) * b),
            "failed",
            "fn ran on length 32 for an input of length 16, expected 16",
        ),
        (lambda fn, b: bucketed(fn, 16), "failed", "fn ran on length 16 for an input of length 3"),
        (lambda fn, b: 3, "failed", "should return a function of x"),
        (
            lambda fn, b: lambda x: bucketed(fn, b)(x) + 1.0,
            "failed",
            "the result of bucketed(fn, 16) on an input of length 5",
        ),
    ],
)
def test_check_bucketed(tf, answer, status, fragment):
    assert_result(ch06.check_bucketed(answer), status, fragment)


# 06.3 xla_speedup --------------------------------------------------------------------------------
def xla_speedup(fn, x, *, inverted=False, cold=False, both=False, eager=False, ms=False):
    import tensorflow as tf

    import tfcourse

    graph = (lambda v: fn(v)) if eager else tf.function(fn, jit_compile=both)
    compiled = tf.function(fn, jit_compile=True)
    timings = tfcourse.time_interleaved(
        {"graph": lambda: graph(x), "xla": lambda: compiled(x)},
        warmup=0 if cold else 1,
        repeat=1 if cold else 5,
        number=1 if cold else 3,
    )
    if ms:  # a difference in milliseconds instead of a ratio
        return 1e3 * (timings[0].min - timings[1].min)
    ratio = tfcourse.speedup(*timings)
    return 1 / ratio if inverted else ratio


def by_size(fn, x):
    """Hard-coded ratios that fit the exercise's two functions by the size of x."""
    return 8.0 if int(x.shape[0]) < 10_000 else 1.0


def by_size_after_running(fn, x):
    """Runs both versions twice (so the check sees them run), then returns a constant by size."""
    import tensorflow as tf

    graph, compiled = tf.function(fn), tf.function(fn, jit_compile=True)
    for _ in range(2):
        graph(x), compiled(x)
    return 8.0 if int(x.shape[0]) < 1000 else 1.0


@pytest.mark.parametrize(
    ("answer", "predict", "status", "fragment"),
    [
        (xla_speedup, lambda: "a", "passed", "predicted the winner"),
        (xla_speedup, lambda: " A ", "passed", "many small steps"),
        (None, lambda: "a", "not attempted", "not attempted yet"),
        (not_written, lambda: "a", "not attempted", "not attempted yet"),
        (xla_speedup, not_written, "not attempted", "not attempted yet"),
        (raises, lambda: "a", "failed", "raised RuntimeError: oops"),
        (xla_speedup, lambda: "b", "failed", "you predicted 'b', but your measurements give 'a'"),
        (lambda f, x: xla_speedup(f, x, eager=True), lambda: "a", "failed", "ran fn eagerly"),
        (
            lambda f, x: xla_speedup(f, x, cold=True),
            lambda: "a",
            "failed",
            "before timing",
        ),
        (lambda f, x: xla_speedup(f, x, ms=True), lambda: "a", "failed", "ratio"),
        (by_size, lambda: "a", "failed", "never ran the fn it was given"),
        (
            lambda f, x: xla_speedup(f, __import__("tensorflow").random.normal([1000])),
            lambda: "a",
            "failed",
            "not on the x it was given",
        ),
        (
            lambda f, x: xla_speedup(ch06.many_small_steps, x),
            lambda: "a",
            "failed",
            "never ran the fn it was given",
        ),
        (by_size_after_running, lambda: "a", "failed", "xla_speedup(_small_op, x) returned 8"),
        (xla_speedup, lambda: "many", "failed", "should return 'a' or 'b'"),
        (lambda f, x: xla_speedup(f, x, inverted=True), lambda: "a", "failed", "upside down"),
        (lambda f, x: xla_speedup(f, x, both=True), lambda: "a", "failed", "only under XLA"),
        (lambda f, x: 1.0, lambda: "a", "failed", "never ran the fn it was given"),
        (lambda f, x: (xla_speedup(f, x), 8.0)[1], lambda: "a", "failed", "returned 8"),
        (lambda f, x: float("nan"), lambda: "a", "failed", "positive and finite"),
        (lambda f, x: [2.0, 3.0], lambda: "a", "failed", "one number, a ratio"),
        (
            lambda f, x: __import__("tfcourse").Timing("xla", (1.0,)),
            lambda: "a",
            "failed",
            "returned a Timing",
        ),
        (lambda f, x: "fast", lambda: "a", "failed", "should be a Tensor or array of numbers"),
    ],
)
def test_check_xla_speedup(tf, answer, predict, status, fragment):
    assert_result(ch06.check_xla_speedup(answer, predict), status, fragment)


# 06.4 fast_activation ----------------------------------------------------------------------------
def fused(tf, *, jit=True, low=-3.0, shift=0.1):
    @tf.function(jit_compile=jit)
    def fast_activation(x):
        clipped = tf.clip_by_value(x * tf.sigmoid(1.702 * x), low, 3.0)
        return tf.tanh(clipped / (1.0 + tf.abs(clipped))) * 0.5 + shift * x

    return fast_activation


def in_float64(tf):
    @tf.function(jit_compile=True)
    def fast_activation(x):
        x = tf.cast(x, tf.float64)
        clipped = tf.clip_by_value(x * tf.sigmoid(1.702 * x), -3.0, 3.0)
        return tf.tanh(clipped / (1.0 + tf.abs(clipped))) * 0.5 + 0.1 * x

    return fast_activation


def with_reduction(tf):
    @tf.function(jit_compile=True)
    def fast_activation(x):
        clipped = tf.clip_by_value(x * tf.sigmoid(1.702 * x), -3.0, 3.0)
        out = tf.tanh(clipped / (1.0 + tf.abs(clipped))) * 0.5 + 0.1 * x
        return out + 0.0 * tf.reduce_mean(out)  # a reduction: more fusions

    return fast_activation


def with_a_loop(tf):
    @tf.function(jit_compile=True)
    def fast_activation(x):
        out = tf.zeros_like(x)
        for _ in tf.range(2):  # a loop on a tensor: a tf.while_loop
            out = fused(tf).python_function(x)
        return out

    return fast_activation


def with_an_if(tf):
    @tf.function(jit_compile=True)
    def fast_activation(x):
        if tf.reduce_max(x) > 100.0:  # an `if` on a tensor: a tf.cond
            return fused(tf).python_function(tf.clip_by_value(x, -100.0, 100.0))
        return fused(tf).python_function(x)

    return fast_activation


def with_a_fixed_signature(tf):
    signature = [tf.TensorSpec([1001], tf.float32)]
    return tf.function(fused(tf).python_function, jit_compile=True, input_signature=signature)


@pytest.mark.parametrize(
    ("make_answer", "status", "fragment"),
    [
        (fused, "passed", "compiles to 1 fusion"),
        (in_float64, "failed", "returns float64, not float32"),
        (lambda tf: None, "not attempted", "not attempted yet"),
        (lambda tf: tf.function(not_written, jit_compile=True), "not attempted", "not attempted"),
        (lambda tf: not_written, "failed", "should be a tf.function"),
        (lambda tf: fused(tf).python_function, "failed", "should be a tf.function"),
        (lambda tf: fused(tf, jit=None), "failed", "without XLA: pass jit_compile=True"),
        (
            lambda tf: tf.function(ch06.slow_activation, jit_compile=True),
            "failed",
            "no XLA kernel (tf.numpy_function and tf.py_function are 'PyFunc')",
        ),
        (with_a_loop, "failed", "uses StatelessWhile: a Python loop or `if` on a tensor"),
        (with_an_if, "failed", "uses StatelessIf: a Python loop or `if` on a tensor"),
        (with_a_fixed_signature, "failed", "input_signature fixes the input's shape or dtype"),
        (lambda tf: fused(tf, low=-0.1), "failed", "fast_activation(x) differs"),
        (lambda tf: fused(tf, shift=0.0), "failed", "fast_activation(x) differs"),
        (with_reduction, "failed", "uses the op Mean, which the check does not run"),
        (
            lambda tf: tf.function(lambda x: [x], jit_compile=True),
            "failed",
            "fast_activation(x) has shape (1, 1001)",
        ),
    ],
)
def test_check_fused_activation(tf, make_answer, status, fragment):
    assert_result(ch06.check_fused_activation(make_answer(tf)), status, fragment)


def test_check_fused_activation_fails_an_answer_below_the_floor(tf, monkeypatch):
    monkeypatch.setattr(ch06, "FUSED_SPEEDUP_FLOOR", 1_000.0)
    result = ch06.check_fused_activation(fused(tf))
    assert_result(result, "failed", "the goal is 1000.0x")


def observed_06_4(answer):
    """What 06.4's probe reports for `answer` (as the grader receives it, before judging)."""
    from tfcourse.exercises._split import decode, encode

    return decode(encode(ch06.check_fused_activation.probe(answer, seed=1)))


def judge_06_4(observed):
    from tfcourse.exercises.judges import ch06 as judges

    try:
        return "passed", judges.fused_activation(observed, 1)
    except Wrong as wrong:
        return "failed", str(wrong)


def test_06_4_sends_a_graph_and_no_timing_of_its_own(tf):
    observed = observed_06_4(fused(tf))
    assert set(observed) == {"dtype", "value", "graph"}
    assert observed["graph"]["graph_def"].dtype == np.uint8
    assert judge_06_4(observed)[0] == "passed"


def test_06_4_judge_runs_the_graph_it_was_sent_not_the_kernels_values(tf):
    """The kernel's values are right, its graph is not: the judge's own run of the graph decides."""
    forged = observed_06_4(fused(tf))
    forged["graph"] = observed_06_4(fused(tf, low=-0.1))["graph"]
    status, message = judge_06_4(forged)
    assert status == "failed" and "fast_activation's graph, run by the check" in message


def test_06_4_a_captured_tensor_is_folded_into_the_graph(tf):
    """A constant made outside the function is a captured input; the probe folds it in."""
    slope = tf.constant(1.702)

    @tf.function(jit_compile=True)
    def fast_activation(x):
        clipped = tf.clip_by_value(x * tf.sigmoid(slope * x), -3.0, 3.0)
        return tf.tanh(clipped / (1.0 + tf.abs(clipped))) * 0.5 + 0.1 * x

    assert_result(ch06.check_fused_activation(fast_activation), "passed", "compiles to 1 fusion")


def test_06_4_judge_never_runs_a_graph_that_writes_a_file(tf, tmp_path):
    target = tmp_path / "written"

    @tf.function(jit_compile=True)
    def writes(x):
        tf.io.write_file(str(target), "pwned")
        return x

    observed = observed_06_4(fused(tf))
    observed["graph"] = ch06._exported(writes)
    status, message = judge_06_4(observed)
    assert status == "failed", message
    assert "uses the op WriteFile" in message or "constant of type object" in message, message
    assert not target.exists()


def test_06_4_judge_checks_a_constants_shape_before_it_loads_it(tf):
    """One value with a shape of 10^12 would be broadcast to 4 TB if loaded first."""
    observed = observed_06_4(fused(tf))
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(observed["graph"]["graph_def"].tobytes())
    const = next(node for node in graph_def.node if node.op == "Const")
    const.attr["value"].tensor.tensor_shape.dim.add().size = 10**12
    observed["graph"]["graph_def"] = np.frombuffer(graph_def.SerializeToString(), np.uint8)
    status, message = judge_06_4(observed)
    assert status == "failed" and "holds a constant of shape [1000000000000]" in message


@pytest.mark.parametrize(
    ("graph", "fragment"),
    [
        ({"graph_def": np.arange(40, dtype=np.uint8), "output": "Identity:0"}, "does not parse"),
        ({"graph_def": np.zeros(100_000, np.uint8), "output": "Identity:0"}, "64,000 bytes"),
        ({"graph_def": np.zeros(4, np.float32), "output": "Identity:0"}, "64,000 bytes"),
        ({"graph_def": np.zeros(0, np.uint8), "output": "Identity:0"}, "exactly one float32 input"),
        ({"output": "Identity:0"}, "no 'graph_def'"),
    ],
)
def test_06_4_judge_fails_a_malformed_graph(tf, graph, fragment):
    observed = observed_06_4(fused(tf))
    observed["graph"] = graph
    status, message = judge_06_4(observed)
    assert status == "failed" and fragment in message


def graph_of(tf, body):
    """06.4's observations for a right answer, with the graph of `body` (a tf.function) instead."""
    observed = observed_06_4(fused(tf))
    observed["graph"] = ch06._exported(tf.function(body, jit_compile=True))
    return observed


def test_06_4_judge_refuses_a_graph_that_would_fill_the_graders_memory(tf):
    """An outer sum of x's reshapes, times zero, added to the right values: its tensors would
    hold len(x)**3 numbers in the grader's process, which runs no sandbox."""

    def outer(x):
        right = fused(tf).python_function(x)
        cube = tf.reshape(x, [-1, 1, 1]) + tf.reshape(x, [1, -1, 1]) + tf.reshape(x, [1, 1, -1])
        return right + 0.0 * tf.reduce_sum(cube, axis=[1, 2])

    observed = graph_of(tf, outer)
    status, message = judge_06_4(observed)
    assert status == "failed" and "holds a constant of shape [3]" in message, message
    graph_def = tf.compat.v1.GraphDef()  # without the shape constants' check, the op's is next
    graph_def.ParseFromString(observed["graph"]["graph_def"].tobytes())
    for node in graph_def.node:
        if node.op == "Const" and len(node.attr["value"].tensor.tensor_shape.dim):
            node.attr["value"].tensor.tensor_shape.ClearField("dim")
            node.attr["value"].tensor.ClearField("tensor_content")
            node.attr["value"].tensor.int_val[:] = [1]
    observed["graph"]["graph_def"] = np.frombuffer(graph_def.SerializeToString(), np.uint8)
    status, message = judge_06_4(observed)
    assert status == "failed" and "uses the op Reshape" in message, message


def test_06_4_judge_refuses_constants_that_are_not_scalars(tf):
    def table(x):
        return fused(tf).python_function(x) + 0.0 * tf.reduce_sum(tf.ones([8, 8]))

    status, message = judge_06_4(graph_of(tf, table))
    assert status == "failed" and "holds a constant of shape [8, 8]" in message


def test_06_4_judge_stops_a_slow_graph_at_the_first_look(tf, monkeypatch):
    """A graph more than twice as slow as slow_activation is failed after a first look on 2M
    values (3 timed calls), never timed on 16M."""
    from tfcourse.exercises.judges import ch06 as judges

    def slow(x):
        y = fused(tf).python_function(x)
        noise = x
        for _ in range(40):
            noise = tf.atan(noise)
        return y + 0.0 * noise

    calls = []
    real = judges.time_interleaved
    monkeypatch.setattr(
        judges, "time_interleaved", lambda fns, **kw: calls.append(kw) or real(fns, **kw)
    )
    status, message = judge_06_4(graph_of(tf, slow))
    assert status == "failed" and "as fast as slow_activation on 2M values, a first" in message
    assert calls == [{"warmup": 1, "repeat": 1, "number": 3}]


def test_06_4_judge_checks_values_far_outside_the_kernels_points(tf):
    """Clipping x to [-6, 6] first, or a sigmoid written as e / (1 + e), is right on the 1,001
    points the kernel reports and wrong beyond them."""

    @tf.function(jit_compile=True)
    def clips_first(x):
        return fused(tf).python_function(tf.clip_by_value(x, -6.0, 6.0))

    @tf.function(jit_compile=True)
    def overflows(x):
        e = tf.exp(1.702 * x)
        clipped = tf.clip_by_value(x * e / (1.0 + e), -3.0, 3.0)
        return tf.tanh(clipped / (1.0 + tf.abs(clipped))) * 0.5 + 0.1 * x

    for answer in (clips_first, overflows):
        result = ch06.check_fused_activation(answer)
        assert_result(result, "failed", "fast_activation's graph, run by the check on 2,040,007")


def test_06_4_judge_refuses_an_op_that_lists_one_input_many_times(tf):
    """tf.add_n of x 19,000 times is one op that costs 19,000 passes over x."""

    def many(x):
        return fused(tf).python_function(x) + 0.0 * tf.add_n([x] * 19_000)

    status, message = judge_06_4(graph_of(tf, many))
    assert status == "failed" and ("uses the op AddN" in message or "inputs" in message), message


def test_06_4_judge_checks_a_dense_grid_out_to_200(tf):
    """A graph right on the drawn values but wrong for 20 < x < 50 fails."""

    def banded(x):
        band = tf.logical_and(x > 20.0, x < 50.0)
        return tf.where(band, 0.0, fused(tf).python_function(x))

    status, message = judge_06_4(graph_of(tf, banded))
    assert status == "failed" and "run by the check on 2,040,007 values" in message, message


def test_slow_activation_is_what_the_notebook_describes(tf):
    x = tf.constant([-10.0, 0.0, 10.0])
    gelu = x.numpy() / (1 + np.exp(-1.702 * x.numpy()))
    clipped = np.clip(gelu, -3, 3)
    expected = np.tanh(clipped / (1 + np.abs(clipped))) * 0.5 + 0.1 * x.numpy()
    np.testing.assert_allclose(ch06.slow_activation(x), expected, rtol=1e-5, atol=1e-6)


# Every check -------------------------------------------------------------------------------------
CHECKS = {
    "06.1": ch06.check_optimized_hlo,
    "06.2": ch06.check_bucketed,
    "06.3": lambda answer: ch06.check_xla_speedup(answer, lambda: "a"),
}


@pytest.mark.parametrize("exercise", sorted(CHECKS))
@pytest.mark.parametrize(("answer", "fragment"), MISBEHAVING)
def test_every_check_survives_a_misbehaving_answer(
    tf, monkeypatch, capsys, exercise, answer, fragment
):
    monkeypatch.setattr(_learner, "TIME_BUDGET", 0.5)
    assert_survives(CHECKS[exercise](answer), fragment, capsys)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("x = x\n    raise RuntimeError('oops')", "raised RuntimeError: oops"),
        ("x = x\n    time.sleep(1000)", "the time limit"),
        ("x = x\n    sys.exit(1)", "called sys.exit(1)"),
        ("print('x' * 10_000_000)", "fast_activation(x) differs"),
    ],
)
def test_check_fused_activation_survives_a_misbehaving_function(
    tf, monkeypatch, capsys, body, fragment
):
    """06.4 takes a tf.function, not a plain one: the misbehaviour happens while it runs."""
    import sys
    import time

    monkeypatch.setattr(_learner, "TIME_BUDGET", 0.5)
    namespace = {"tf": tf, "time": time, "sys": sys}
    exec(f"def fast_activation(x):\n    {body}\n    return x", namespace)
    answer = tf.function(namespace["fast_activation"], jit_compile=True)
    result = ch06.check_fused_activation(answer)
    assert_result(result, "failed", fragment)
    assert "\n" not in result.message
    assert len(capsys.readouterr().out) < 10_000
