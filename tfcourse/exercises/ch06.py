"""Self-checks for the exercises of `06_xla`: the probes.

Each check is in two parts (see `tfcourse.exercises._split`): the probe here runs the learner's
answer and returns what it saw; the judge, in `tfcourse.exercises.judges.ch06`, decides.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from tfcourse.exercises._expect import to_numpy
from tfcourse.exercises._framework import NotAttempted, Wrong, _describe, _one_line
from tfcourse.exercises._learner import call, learner_code
from tfcourse.exercises._split import deferred, failed, two_part, until_failure

__all__ = [
    "FUSED_SPEEDUP_FLOOR",
    "check_bucketed",
    "check_fused_activation",
    "check_optimized_hlo",
    "check_xla_speedup",
    "count_fusions",
    "many_small_steps",
    "one_big_op",
    "slow_activation",
]

#: Exercise 06.4: how many times faster than `slow_activation` the fused rewrite must run.
FUSED_SPEEDUP_FLOOR = 1.5

_FUSION = re.compile(r"=[ \t]*[^\s=]+[ \t]+fusion\(")
#: Lines longer than this are no HLO instruction (and would make a pattern slow): skipped.
HLO_LINE_LIMIT = 20_000


def count_fusions(hlo: str) -> int:
    """The fusion instructions in an HLO module's text: each is one kernel XLA generated.

    Read line by line, in time linear in the text's length whatever it holds. Introduced in
    `06_xla`.
    """
    return sum(
        len(_FUSION.findall(line)) for line in hlo.splitlines() if len(line) <= HLO_LINE_LIMIT
    )


def _is_tf_function(fn: Any) -> bool:
    return hasattr(fn, "experimental_get_compiler_ir") and hasattr(fn, "python_function")


def _failed(observed: Any) -> bool:
    """Whether `observed`, or one of its fields, `failed`: the judge stops there."""
    fields = observed.values() if isinstance(observed, dict) else ()
    return failed(observed) or any(failed(value) for value in fields)


def _until_failure(steps: list[Callable[[], Any]]) -> list[Any]:
    """`until_failure(steps)`, with None for the steps not run: one item per step."""
    seen = until_failure(steps, stop=_failed)
    return seen + [None] * (len(steps) - len(seen))


# 06.1 -------------------------------------------------------------------------------------------
def _hlo_cases(seed: int) -> list[tuple[str, Callable[[Any], Any], Any]]:
    """Two functions and inputs, their constants and shapes drawn from `seed`: (label, fn, x)."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    a, b, c = (float(v) for v in rng.choice(np.arange(2, 10), 3, replace=False))
    rows, cols, length = (int(v) for v in rng.integers(2, 10, 3))
    return [
        (
            f"relu({a:g}x - {b:g}) + exp(-x)",
            lambda x: tf.nn.relu(x * a - b) + tf.exp(-x),
            tf.ones([rows, cols]),
        ),
        (f"{c:g} tanh(x)", lambda x: tf.tanh(x) * c, tf.ones([length])),
    ]


def _hlo_name(label: str, x: Any) -> str:
    return f"optimized_hlo({label}, x of shape ({','.join(str(n) for n in x.shape)}))"


def _platform() -> str:
    """The platform XLA compiles for by default in this process: "GPU" where there is one."""
    import tensorflow as tf

    return "GPU" if tf.config.list_logical_devices("GPU") else "CPU"


@two_part("06.1", "the optimised HLO of a jit-compiled function")
def check_optimized_hlo(
    optimized_hlo: Callable[[Callable[[Any], Any], Any], Any], seed: int
) -> dict[str, Any]:
    """Check `optimized_hlo(fn, x)`: the text XLA made of `fn` for `x` after its optimisations.

    The functions' constants and the input shapes are drawn from the seed, and the instructions
    must be those XLA makes of that very function: not of another one, nor of `fn` applied twice.
    """
    texts = _until_failure(
        [
            functools.partial(_hlo_text, optimized_hlo, fn, x, _hlo_name(label, x))
            for label, fn, x in _hlo_cases(seed)
        ]
    )
    return {"platform": _platform(), "texts": texts}


def _hlo_text(optimized_hlo: Callable[..., Any], fn: Any, x: Any, name: str) -> str:
    """What `optimized_hlo(fn, x)` returned, if it is a str (its kind is checked here)."""
    text = call(optimized_hlo, fn, x, name=name)
    if text is None:
        raise Wrong(f"{name} returned None; did you forget a `return`?")
    if hasattr(text, "numpy") or isinstance(text, np.ndarray):
        raise Wrong(
            f"{name} returned a Tensor: you ran the function. Return its compiler IR instead: "
            "tf.function(fn, jit_compile=True).experimental_get_compiler_ir(x)(stage=...)."
        )
    if callable(text):
        raise Wrong(
            f"{name} returned a function: experimental_get_compiler_ir(x) gives one; call it "
            "with stage='optimized_hlo' and return the text."
        )
    if not isinstance(text, str):
        raise Wrong(f"{name} should return the HLO as a str, but returned {_describe(text)}")
    return str(text)


# 06.2 -------------------------------------------------------------------------------------------
#: Exercise 06.2: (bucket_size, input lengths) per case; the lengths include exact multiples.
BUCKET_CASES: tuple[tuple[int, tuple[int, ...]], ...] = (
    (16, (5, 16, 17, 3, 32, 40, 9, 33, 1, 47, 48, 12)),
    (8, (3, 8, 9, 20, 2, 17)),
)


def _bucket_inputs(seed: int) -> list[list[np.ndarray]]:
    """06.2's inputs, drawn from `seed`: one float32 vector per length of each case."""
    rng = np.random.default_rng(seed)
    return [
        [rng.normal(size=length).astype(np.float32) for length in lengths]
        for _, lengths in BUCKET_CASES
    ]


def _bucket_call_name(bucket_size: int, length: int) -> str:
    return f"bucketed(fn, {bucket_size}) on an input of length {length}"


class _TraceRecorder:
    """An elementwise function that notes each trace (its shape, whether XLA compiles it, and the
    ops between the compiled function's inputs and its own) and, through variables, the length and
    the sum of absolute values of every input it really ran on."""

    def __init__(self) -> None:
        import tensorflow as tf

        self.traces: list[dict[str, Any]] = []
        self.eager = 0
        self.ran_on = tf.Variable(-1, dtype=tf.int32, trainable=False)
        self.abs_sum = tf.Variable(0.0, dtype=tf.float32, trainable=False)

    def __call__(self, x: Any) -> Any:
        import tensorflow as tf

        if tf.executing_eagerly():
            self.eager += 1
        else:
            shape = list(x.shape.as_list()) if x.shape.rank is not None else [None]
            xla = _in_xla_context()
            self.traces.append({"shape": shape, "xla": xla, "ops": _ops_before(x) if xla else []})
        self.ran_on.assign(tf.shape(x)[0])
        self.abs_sum.assign(tf.reduce_sum(tf.abs(tf.cast(x, tf.float32))))  # zero padding adds 0
        return tf.sin(x) * 2.0 + 1.0


def _ops_before(x: Any) -> list[str]:
    """The kinds of op in the traced graph on the way from the function's inputs to `x`.

    XLA compiles a function once per shape of its *arguments*: the judge looks here for ops that
    pad `x` inside the compiled function (or read its length to pad it).
    """
    found, seen, frontier = set(), set(), [x.op]
    while frontier:
        op = frontier.pop()
        if op.name in seen or op.type == "Placeholder":
            continue
        seen.add(op.name)
        found.add(str(op.type))
        frontier.extend(tensor.op for tensor in op.inputs if tensor.graph is x.graph)
    return sorted(found)


def _in_xla_context() -> bool:
    """Whether the function being traced now is compiled by XLA (a jit_compile=True tf.function)."""
    from tensorflow.python.framework import ops
    from tensorflow.python.ops import control_flow_util

    return bool(control_flow_util.GraphOrParentsInXlaContext(ops.get_default_graph()))


@two_part("06.2", "stop recompiling on varying lengths")
def check_bucketed(bucketed: Callable[[Callable[[Any], Any], int], Any], seed: int) -> list[Any]:
    """Check `bucketed(fn, bucket_size)`: a function of a 1-D float32 `x` that runs a jit-compiled
    `fn` on `x` zero-padded to the next multiple of `bucket_size`, and returns `fn(x)` (length
    `len(x)`). XLA compiles once per concrete input shape, so `fn` must run only on bucket lengths,
    inside one `tf.function(..., jit_compile=True)`: traced once per bucket, or once for an unknown
    length (an `input_signature` or `reduce_retracing`), never per length."""
    inputs = _bucket_inputs(seed)
    return _until_failure(
        [
            functools.partial(_bucket_case, bucketed, size, xs)
            for (size, _), xs in zip(BUCKET_CASES, inputs, strict=True)
        ]
    )


def _bucket_case(bucketed: Callable[..., Any], bucket_size: int, xs: list[np.ndarray]) -> Any:
    """What `bucketed(fn, bucket_size)` did with each input: its results and fn's traces."""
    import tensorflow as tf

    recorder = _TraceRecorder()
    run = call(bucketed, recorder, bucket_size, name=f"bucketed(fn, {bucket_size})")
    if not callable(run):
        raise Wrong(
            f"bucketed(fn, {bucket_size}) should return a function of x, but returned "
            f"{_describe(run)}"
        )

    def one_call(x: np.ndarray) -> dict[str, Any]:
        name = _bucket_call_name(bucket_size, len(x))
        recorder.ran_on.assign(-1)
        result = call(run, tf.constant(x), name=name)
        return {
            "eager": recorder.eager,
            "traces": len(recorder.traces),
            "result": deferred(lambda: to_numpy(result, name=f"the result of {name}")),
            "ran_on": int(recorder.ran_on.numpy()),
            "abs_sum": float(recorder.abs_sum.numpy()),
        }

    calls = _until_failure([functools.partial(one_call, x) for x in xs])
    return {"calls": calls, "traces": recorder.traces}


# 06.3 -------------------------------------------------------------------------------------------
def many_small_steps(x: Any) -> Any:
    """500 steps of three small ops each, in a `tf.while_loop`: overhead-bound.

    Introduced in `06_xla`.
    """
    import tensorflow as tf

    for _ in tf.range(500):
        x = tf.tanh(x) * 0.9 + 0.1
    return x


def one_big_op(x: Any) -> Any:
    """One elementwise op over a large tensor: nothing to fuse. Introduced in `06_xla`."""
    import tensorflow as tf

    return tf.tanh(x)


def _small_op(x: Any) -> Any:
    """The check's own probe: one op on a few hundred numbers, where XLA gains about nothing."""
    import tensorflow as tf

    return tf.tanh(x) + 1.0


def _speedup_cases(seed: int) -> list[tuple[str, Callable[[Any], Any], list[int], list[int]]]:
    """06.3's functions and inputs, drawn from `seed`: (label, fn, shape, stateless seed)."""
    rng = np.random.default_rng(seed)
    pair = [int(v) for v in rng.integers(0, 2**31 - 1, 2)]
    size = int(rng.integers(200, 900))  # small, like a: a ratio keyed on size fails
    return [
        ("a", many_small_steps, [64], pair),
        ("b", one_big_op, [2_000_000], pair),
        ("own", _small_op, [size], pair),
    ]


class _RunRecorder:
    """`fn`, noting how it was traced (eagerly, in a tf.function, under XLA) and how many times each
    compiled version ran (a variable per version, incremented inside it)."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        import tensorflow as tf

        self.fn, self.__name__ = fn, fn.__name__
        self.eager = 0
        self.traced_shapes: set[tuple[int | None, ...]] = set()
        self.runs = {
            kind: tf.Variable(0, dtype=tf.int64, trainable=False) for kind in ("graph", "xla")
        }

    def __call__(self, x: Any) -> Any:
        import tensorflow as tf

        if tf.executing_eagerly():
            self.eager += 1
        else:
            self.traced_shapes.add(tuple(x.shape.as_list()) if x.shape.rank is not None else ())
            self.runs["xla" if _in_xla_context() else "graph"].assign_add(1)
        return self.fn(x)

    def count(self, kind: str) -> int:
        return int(self.runs[kind].numpy())


@two_part("06.3", "predict, then measure, which function XLA speeds up more")
def check_xla_speedup(xla_speedup: Any, predict_winner: Any = None, *, seed: int) -> dict[str, Any]:
    """Check `xla_speedup(fn, x)` (the `tf.function` time over the jit-compiled time, warm) on
    `many_small_steps` ("a"), `one_big_op` ("b") and a small function of the check's own: it must
    run `fn` in a `tf.function` and under XLA, each more than once, never eagerly, and its ratio
    must agree with the check's own interleaved measurement, within a tolerance; then
    `predict_winner()`, the guess made before measuring.

    Called as ``check_xla_speedup(xla_speedup, predict_winner)``.
    """
    import tensorflow as tf

    steps: list[Callable[[], Any]] = [
        functools.partial(_measured, xla_speedup, fn, tf.random.stateless_normal(shape, seed=pair))
        for _, fn, shape, pair in _speedup_cases(seed)
    ]
    seen = _until_failure([*steps, lambda: _prediction(predict_winner)])
    return {"ratios": seen[:-1], "predicted": seen[-1]}


def _measured(xla_speedup: Callable[..., Any], fn: Callable[[Any], Any], x: Any) -> Any:
    """`xla_speedup(fn, x)`, how it ran fn, and the check's own timings of the same comparison."""
    import tensorflow as tf

    from tfcourse.bench import time_interleaved

    name = f"xla_speedup({fn.__name__}, x)"
    recorder = _RunRecorder(fn)
    value = call(xla_speedup, recorder, x, name=name)
    if hasattr(value, "seconds") and hasattr(value, "min"):
        raise Wrong(f"{name} returned a Timing; return the ratio, e.g. tfcourse.speedup(...).")
    ratio = to_numpy(value, name=name)
    observed = {
        "ratio": ratio,
        "eager": recorder.eager,
        "graph": recorder.count("graph"),
        "xla": recorder.count("xla"),
        "traced_shapes": sorted([list(shape) for shape in recorder.traced_shapes], key=str),
    }
    # The check's own measurement, on this machine, now: a speed-up is only comparable with one
    # measured on the same hardware under the same load, so this timing stays in the kernel.
    graph, xla = tf.function(fn, jit_compile=False), tf.function(fn, jit_compile=True)
    timings = time_interleaved(
        {"graph": lambda: graph(x), "xla": lambda: xla(x)}, warmup=2, repeat=9, number=3
    )
    observed["own"] = {timing.name: list(timing.seconds) for timing in timings}
    return observed


def _prediction(predict_winner: Callable[[], Any]) -> str | None:
    """What `predict_winner()` returned, if a str; None if it is not written yet."""
    try:
        predicted = call(predict_winner, name="predict_winner()")
    except NotAttempted:
        return None
    if not isinstance(predicted, str):
        raise Wrong(f"predict_winner() should return 'a' or 'b', not {_describe(predicted)}")
    return str(predicted)


# 06.4 -------------------------------------------------------------------------------------------
def slow_activation(x: Any) -> Any:
    """A custom activation written as a chain: a quick GELU, clipped in NumPy, then squashed.

    `tf.numpy_function` leaves TensorFlow's graph, so XLA cannot compile it, and every op is its
    own pass over memory. Introduced in `06_xla`.
    """
    import tensorflow as tf

    gelu = x * tf.sigmoid(1.702 * x)
    clipped = tf.numpy_function(
        lambda a: np.clip(a, -3.0, 3.0).astype(np.float32), [gelu], tf.float32, stateful=False
    )
    squashed = clipped / (1.0 + tf.abs(clipped))
    return tf.tanh(squashed) * 0.5 + 0.1 * x


def _activation_points() -> Any:
    """06.4's points in the kernel: 1,001 from -6 to 6 (the judge draws its own to time on)."""
    import tensorflow as tf

    return tf.linspace(-6.0, 6.0, 1001)


@two_part("06.4", "fuse a slow custom op chain")
def check_fused_activation(fast_activation: Any, seed: int) -> dict[str, Any]:
    """Check `fast_activation`: a `tf.function(jit_compile=True)` equal to `slow_activation` that
    XLA compiles into one fusion and that runs `FUSED_SPEEDUP_FLOOR` times faster.

    Observes its dtype and values on 1,001 points, and its graph (`_exported`): the judge runs,
    compiles and times that graph in its own process, so no timing comes from the learner's kernel.
    """
    if fast_activation is None:
        raise NotAttempted
    if not _is_tf_function(fast_activation):
        raise Wrong(
            f"fast_activation should be a tf.function, but it is {_describe(fast_activation)}: "
            "decorate it with @tf.function(jit_compile=True)."
        )
    if getattr(fast_activation, "_jit_compile", None) is not True:
        raise Wrong("fast_activation is a tf.function without XLA: pass jit_compile=True.")
    small = _activation_points()
    result = _run_fused(fast_activation, small)
    dtype = getattr(result, "dtype", None)
    observed: dict[str, Any] = {
        "dtype": None if dtype is None else str(getattr(dtype, "name", dtype)),
        "value": deferred(lambda: to_numpy(result, name="fast_activation(x)")),
        "graph": None,
    }
    if not _failed(observed):
        observed["graph"] = deferred(lambda: _exported(fast_activation))
    return observed


def _exported(fast_activation: Any) -> dict[str, Any]:
    """fast_activation's graph for a float32 vector of any length, with the tensors it captures
    folded in as constants: a serialized `GraphDef` (bytes as uint8) and its output's name."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    try:
        with learner_code("tracing fast_activation for a float32 vector of any length"):
            concrete = fast_activation.get_concrete_function(tf.TensorSpec([None], tf.float32))
    except Wrong as wrong:
        if "Can not cast TensorSpec" in f"{wrong} {wrong.__cause__ or ''}":
            raise Wrong(
                "fast_activation's input_signature fixes the input's shape or dtype, and the check "
                "runs it on float32 vectors of any length: drop the signature, or give it "
                "tf.TensorSpec([None], tf.float32)."
            ) from wrong
        raise
    try:
        frozen = convert_variables_to_constants_v2(concrete)
    except (ValueError, TypeError, tf.errors.OpError) as error:
        cause = _one_line(str(error), limit=200)
        raise Wrong(f"fast_activation's graph could not be exported: {cause}") from None
    if len(frozen.outputs) != 1:
        raise Wrong(f"fast_activation returns {len(frozen.outputs)} tensors: return one.")
    serialized = frozen.graph.as_graph_def().SerializeToString()
    return {
        "graph_def": np.frombuffer(serialized, np.uint8).copy(),
        "output": frozen.outputs[0].name,
    }


def _run_fused(fast_activation: Any, x: Any) -> Any:
    try:
        return call(fast_activation, x, name="fast_activation(x)")
    except Wrong as wrong:
        # The whole of TensorFlow's error: the message is cut before the op's name.
        text = f"{wrong} {wrong.__cause__ or ''}"
        if "PyFunc" in text:
            raise Wrong(
                "XLA cannot compile fast_activation: it still calls an op with no XLA kernel "
                "(tf.numpy_function and tf.py_function are 'PyFunc'). Clip with "
                "tf.clip_by_value instead."
            ) from wrong
        if "unsupported operations" in text:
            found = re.search(r"unsupported operations[^:]*:\s*(.{0,120})", text)
            raise Wrong(
                "XLA cannot compile fast_activation: it calls an op with no XLA kernel "
                f"({found.group(1).strip() if found else 'see the error above'}). Keep to "
                "tf.math ops on x."
            ) from wrong
        raise
