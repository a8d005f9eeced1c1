"""Self-checks for the exercises of `06_xla`."""

from __future__ import annotations

import collections
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from tfcourse.exercises._expect import expect_close, to_numpy
from tfcourse.exercises._framework import NotAttempted, Wrong, _describe, check
from tfcourse.exercises._learner import call, learner_code
from tfcourse.exercises._probes import probe_rng

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

_FUSION = re.compile(r"=\s*\S+\s+fusion\(")


def count_fusions(hlo: str) -> int:
    """The fusion instructions in an HLO module's text: each is one kernel XLA generated.

    Introduced in `06_xla`.
    """
    return len(_FUSION.findall(hlo))


def _is_tf_function(fn: Any) -> bool:
    return hasattr(fn, "experimental_get_compiler_ir") and hasattr(fn, "python_function")


# 06.1 -------------------------------------------------------------------------------------------
def _hlo_cases() -> list[tuple[str, Callable[[Any], Any], Any, str, str]]:
    """Two functions and inputs, their constants and shapes drawn afresh each run."""
    import tensorflow as tf

    rng = probe_rng()
    a, b, c = (float(v) for v in rng.choice(np.arange(2, 10), 3, replace=False))
    rows, cols, length = (int(v) for v in rng.integers(2, 10, 3))
    return [
        (
            f"relu({a:g}x - {b:g}) + exp(-x)",
            lambda x: tf.nn.relu(x * a - b) + tf.exp(-x),
            tf.ones([rows, cols]),
            f"f32[{rows},{cols}]",
            "exponential",
        ),
        (f"{c:g} tanh(x)", lambda x: tf.tanh(x) * c, tf.ones([length]), f"f32[{length}]", "tanh"),
    ]


@check("06.1", "the optimised HLO of a jit-compiled function")
def check_optimized_hlo(optimized_hlo: Callable[[Callable[[Any], Any], Any], Any]) -> str:
    """Check `optimized_hlo(fn, x)`: the text XLA made of `fn` for `x` after its optimisations.

    The functions' constants and the input shapes are drawn each run, and the instructions must
    be those XLA makes of that very function: not of another one, nor of `fn` applied twice.
    """
    import tensorflow as tf

    for label, fn, x, shape, op in _hlo_cases():
        name = f"optimized_hlo({label}, x of shape ({shape[4:-1]}))"
        text = call(optimized_hlo, fn, x, name=name)
        _expect_optimised_hlo(text, name=name, shape=shape, op=op)
        reference = tf.function(fn, jit_compile=True).experimental_get_compiler_ir(x)(
            stage="optimized_hlo"
        )
        _expect_same_instructions(text, reference, name=name)
    return (
        "returns XLA's optimised HLO text (stage 'optimized_hlo') for the function and input "
        "shape given, with the elementwise ops fused."
    )


_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%\S+ = \S+ ([a-z][a-z0-9-]*)\(([^)]*)\)", re.M)


def _instructions(hlo: str) -> collections.Counter[str]:
    """Each instruction's opcode, with the value of each constant: what the HLO computes."""
    found: collections.Counter[str] = collections.Counter()
    for opcode, operands in _INSTRUCTION.findall(hlo):
        found[f"constant({operands})" if opcode == "constant" else opcode] += 1
    return found


def _expect_same_instructions(text: str, reference: str, *, name: str) -> None:
    mine, wanted = _instructions(text), _instructions(reference)
    if mine == wanted:
        return
    extra, missing = sorted((mine - wanted).elements()), sorted((wanted - mine).elements())
    raise Wrong(
        f"{name} is not the HLO XLA makes of that function: it has "
        f"{', '.join(extra[:4]) or 'nothing'} more and {', '.join(missing[:4]) or 'nothing'} "
        "less. Compile the fn and x you were given, once (not a function of your own, and not "
        "fn applied twice)."
    )


def _expect_optimised_hlo(text: Any, *, name: str, shape: str, op: str) -> None:
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
    if text.lstrip().startswith("digraph"):
        raise Wrong(
            f"{name} returned a Graphviz graph (stage 'optimized_hlo_dot'); return the text of "
            "stage='optimized_hlo'."
        )
    if not text.lstrip().startswith("HloModule"):
        raise Wrong(f"{name} does not start with 'HloModule': return the HLO text itself.")
    if shape not in text:
        raise Wrong(
            f"{name} has no parameter of type {shape}: compile fn for the x you were given."
        )
    if op not in text:
        raise Wrong(f"{name} has no '{op}' instruction: compile the fn you were given.")
    if count_fusions(text) == 0:
        raise Wrong(
            f"{name} has no fusion: this is the HLO before XLA's optimisations (stage 'hlo'). "
            "Ask for stage='optimized_hlo'."
        )


# 06.2 -------------------------------------------------------------------------------------------
#: Exercise 06.2: (bucket_size, input lengths) per case; the lengths include exact multiples.
BUCKET_CASES: tuple[tuple[int, tuple[int, ...]], ...] = (
    (16, (5, 16, 17, 3, 32, 40, 9, 33, 1, 47, 48, 12)),
    (8, (3, 8, 9, 20, 2, 17)),
)


class _TraceRecorder:
    """An elementwise function that notes each trace (its shape, and whether XLA compiles it) and,
    through a variable, the length of every input it really ran on."""

    def __init__(self) -> None:
        import tensorflow as tf

        self.shapes: list[tuple[int | None, ...]] = []
        self.unjitted: list[tuple[int | None, ...]] = []
        self.padded_inside: list[str] = []
        self.eager = 0
        self.ran_on = tf.Variable(-1, dtype=tf.int32, trainable=False)
        self.abs_sum = tf.Variable(0.0, dtype=tf.float32, trainable=False)

    def __call__(self, x: Any) -> Any:
        import tensorflow as tf

        if tf.executing_eagerly():
            self.eager += 1
        else:
            shape = tuple(x.shape.as_list()) if x.shape.rank is not None else (None,)
            self.shapes.append(shape)
            if not _in_xla_context():
                self.unjitted.append(shape)
            else:
                self.padded_inside += _padding_ops_before(x)
        self.ran_on.assign(tf.shape(x)[0])
        self.abs_sum.assign(tf.reduce_sum(tf.abs(tf.cast(x, tf.float32))))  # zero padding adds 0
        return tf.sin(x) * 2.0 + 1.0


#: Ops on the way from the compiled function's argument to `fn`'s input that mean padding inside
#: it: ops that lengthen a tensor, ops that read a length, and calls of another function.
_PADDING_OPS = frozenset(
    {"Pad", "PadV2", "MirrorPad", "ConcatV2", "Concat", "ScatterNd", "TensorScatterUpdate", "Fill"}
    | {"Shape", "ShapeN", "Size"}
    | {"PartitionedCall", "StatefulPartitionedCall"}
)


def _padding_ops_before(x: Any) -> list[str]:
    """The ops in the traced graph, on the way from the compiled function's inputs to `x`, that
    pad `x` (or read its length to pad it).

    XLA compiles a function once per shape of its *arguments*: if the padding happens inside it,
    each raw length is a new compilation, even though `fn` itself sees only bucket lengths.
    """
    found, seen, frontier = [], set(), [x.op]
    while frontier:
        op = frontier.pop()
        if op.name in seen or op.type == "Placeholder":
            continue
        seen.add(op.name)
        if op.type in _PADDING_OPS:
            found.append(op.type)
        frontier.extend(tensor.op for tensor in op.inputs if tensor.graph is x.graph)
    return found


def _in_xla_context() -> bool:
    """Whether the function being traced now is compiled by XLA (a jit_compile=True tf.function)."""
    from tensorflow.python.framework import ops
    from tensorflow.python.ops import control_flow_util

    return bool(control_flow_util.GraphOrParentsInXlaContext(ops.get_default_graph()))


@check("06.2", "stop recompiling on varying lengths")
def check_bucketed(bucketed: Callable[[Callable[[Any], Any], int], Any]) -> str:
    """Check `bucketed(fn, bucket_size)`: a function of a 1-D float32 `x` that runs a jit-compiled
    `fn` on `x` zero-padded to the next multiple of `bucket_size`, and returns `fn(x)` (length
    `len(x)`). XLA compiles once per concrete input shape, so `fn` must run only on bucket lengths,
    inside one `tf.function(..., jit_compile=True)`: traced once per bucket, or once for an unknown
    length (an `input_signature` or `reduce_retracing`), never per length."""
    import tensorflow as tf

    rng = np.random.default_rng(6)
    for bucket_size, lengths in BUCKET_CASES:
        recorder = _TraceRecorder()
        run = call(bucketed, recorder, bucket_size, name=f"bucketed(fn, {bucket_size})")
        if not callable(run):
            raise Wrong(
                f"bucketed(fn, {bucket_size}) should return a function of x, but returned "
                f"{_describe(run)}"
            )
        ran_on = []
        for length in lengths:
            x = rng.normal(size=length).astype(np.float32)
            name = f"bucketed(fn, {bucket_size}) on an input of length {length}"
            recorder.ran_on.assign(-1)
            result = call(run, tf.constant(x), name=name)
            if recorder.eager:
                raise Wrong(
                    f"fn ran eagerly in {name}, so nothing was compiled: wrap it once in "
                    "tf.function(fn, jit_compile=True)."
                )
            if recorder.unjitted:
                raise Wrong(
                    f"fn was traced in a tf.function without XLA (for shape "
                    f"{recorder.unjitted[0]}): compile it with tf.function(fn, jit_compile=True)."
                )
            if recorder.padded_inside:
                raise Wrong(
                    f"fn's input is computed inside the function that XLA compiles (by "
                    f"{', '.join(sorted(set(recorder.padded_inside)))}): padding there means XLA "
                    "compiles once per shape of that function's input, a new compilation for "
                    "every raw length. Pad x first, then call the compiled function on it."
                )
            expect_close(
                result, np.sin(x) * 2.0 + 1.0, name=f"the result of {name}", rtol=1e-5, atol=1e-5
            )
            ran_on.append(int(recorder.ran_on.numpy()))
            if ran_on[-1] > length and not np.isclose(
                float(recorder.abs_sum.numpy()), float(np.abs(x).sum()), rtol=1e-4
            ):
                raise Wrong(
                    f"in {name}, the padding is not zeros: pad with 0.0 (tf.pad's default), so "
                    "that a function like a sum over x would not change."
                )
        _expect_buckets(recorder.shapes, ran_on, bucket_size, lengths)
    return (
        "results of the right length and values, and fn compiled by XLA for bucket lengths only, "
        "traced once per bucket (or once for any length), for every input length and two bucket "
        "sizes."
    )


def _expect_buckets(
    shapes: list[tuple[int | None, ...]],
    ran_on: list[int],
    bucket_size: int,
    lengths: tuple[int, ...],
) -> None:
    for length, padded in zip(lengths, ran_on, strict=True):
        wanted = math.ceil(length / bucket_size) * bucket_size
        if padded == wanted:
            continue
        if padded % bucket_size:
            raise Wrong(
                f"fn ran on length {padded}, not a multiple of bucket_size={bucket_size}, for an "
                f"input of length {length}: XLA compiles once per length it sees. Pad each x with "
                "zeros up to the next multiple of bucket_size before calling the compiled function."
            )
        raise Wrong(
            f"fn ran on length {padded} for an input of length {length}, expected {wanted}: pad "
            "each x to the smallest multiple of bucket_size that holds it, no further."
        )
    concrete = [shape[0] if shape else 0 for shape in shapes if None not in shape]
    if len(concrete) > len(set(concrete)):
        raise Wrong(
            f"fn was traced {len(concrete)} times for {len(set(concrete))} bucket lengths: you "
            "make a new tf.function on every call. Create it once, in bucketed, outside the "
            "function you return."
        )
    if len(shapes) - len(concrete) > 1:
        raise Wrong(
            f"fn was traced {len(shapes) - len(concrete)} times for an unknown length: you make a "
            "new tf.function on every call. Create it once, in bucketed."
        )


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


#: Exercise 06.3: how far the learner's ratio may be from the check's own measurement of the same
#: thing (tf.function time over jit-compiled time, warm, interleaved), as a factor either way: wide
#: for many_small_steps, whose ratio moves with the machine's load (5.9-21x over runs here with two
#: other processes on the 2 cores), narrow for one_big_op, compute-bound and near 1.
SPEEDUP_AGREEMENT = {"a": 4.0, "b": 2.0, "own": 3.0}


def _small_op(x: Any) -> Any:
    """The check's own probe: one op on a few hundred numbers, where XLA gains about nothing."""
    import tensorflow as tf

    return tf.tanh(x) + 1.0


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


@check("06.3", "predict, then measure, which function XLA speeds up more")
def check_xla_speedup(
    xla_speedup: Callable[[Callable[[Any], Any], Any], Any], predict_winner: Callable[[], Any]
) -> str:
    """Check `xla_speedup(fn, x)` (the `tf.function` time over the jit-compiled time, warm) on
    `many_small_steps` ("a"), `one_big_op` ("b") and a small function of the check's own: it must
    run `fn` in a `tf.function` and under XLA, each more than once, never eagerly, and its ratio
    must agree with the check's own interleaved measurement within `SPEEDUP_AGREEMENT`; then
    `predict_winner()`, the guess made before measuring."""
    import tensorflow as tf

    seed = [int(v) for v in probe_rng().integers(0, 2**31 - 1, 2)]
    size = int(probe_rng().integers(200, 900))  # small, like a: a ratio keyed on size fails
    probes = (
        ("a", many_small_steps, tf.random.stateless_normal([64], seed=seed)),
        ("b", one_big_op, tf.random.stateless_normal([2_000_000], seed=seed)),
        ("own", _small_op, tf.random.stateless_normal([size], seed=seed)),
    )
    ratios = {}
    for label, fn, x in probes:
        name = f"xla_speedup({fn.__name__}, x)"
        recorder = _RunRecorder(fn)
        ratios[label] = _ratio(call(xla_speedup, recorder, x, name=name), name=name)
        _expect_both_ran(recorder, name)
        if tuple(x.shape.as_list()) not in recorder.traced_shapes:
            shapes = sorted(str(list(shape)) for shape in recorder.traced_shapes)
            raise Wrong(
                f"{name} timed fn on inputs of shape {', '.join(shapes)}, not on the x it was "
                f"given (shape {x.shape.as_list()}): time fn on the x argument."
            )
        mine, theirs = ratios[label], _own_speedup(fn, x)
        if label == "a" and 0.5 / theirs < mine < 0.5 and theirs > 2:
            raise Wrong(
                f"{name} is {mine:.3g}: that looks upside down. Return the tf.function's time "
                "divided by the jit-compiled one's (above 1 when XLA wins)."
            )
        factor = SPEEDUP_AGREEMENT[label]
        if not 1 / factor <= mine / theirs <= factor:
            raise Wrong(_speedup_mistake(fn.__name__, mine, theirs, factor))
    a, b = ratios["a"], ratios["b"]
    predicted = call(predict_winner, name="predict_winner()")
    if not isinstance(predicted, str) or predicted.strip().lower() not in ("a", "b"):
        raise Wrong(f"predict_winner() should return 'a' or 'b', not {_describe(predicted)}")
    winner = "a" if a > b else "b"
    if predicted.strip().lower() != winner:
        raise Wrong(
            f"you predicted '{predicted.strip().lower()}', but your measurements give "
            f"'{winner}' the larger speed-up ({a:.3g}x and {b:.3g}x): look again at what each "
            "function does, and where XLA's gain comes from."
        )
    return (
        f"you measured XLA speed-ups of {a:.3g}x (many small steps) and {b:.3g}x (one big op), "
        "as the check measured them too, and predicted the winner."
    )


def _expect_both_ran(recorder: _RunRecorder, name: str) -> None:
    if recorder.eager:
        raise Wrong(
            f"{name} ran fn eagerly: compare the tf.function (jit_compile=False) with the "
            "jit-compiled one; eager execution is another baseline, with its own overhead."
        )
    graph, xla = recorder.count("graph"), recorder.count("xla")
    if not graph and not xla:
        raise Wrong(
            f"{name} never ran the fn it was given (the check passes its own wrapper of it): "
            "time tf.function(fn) and tf.function(fn, jit_compile=True) for the fn argument."
        )
    if not xla:
        raise Wrong(f"{name} never ran fn under XLA: time tf.function(fn, jit_compile=True) too.")
    if not graph:
        raise Wrong(
            f"{name} ran fn only under XLA: the baseline is the same tf.function without XLA "
            "(jit_compile=False)."
        )
    if min(graph, xla) < 2:
        raise Wrong(
            f"{name} ran fn {graph} time(s) as a tf.function and {xla} under XLA: call each at "
            "least once before timing (the first call traces and compiles), then time it."
        )


def _own_speedup(fn: Callable[[Any], Any], x: Any) -> float:
    """The check's own measurement: a tf.function and its jit-compiled twin, warm, in turns."""
    import tensorflow as tf

    from tfcourse.bench import speedup, time_interleaved

    graph, xla = tf.function(fn, jit_compile=False), tf.function(fn, jit_compile=True)
    timings = time_interleaved(
        {"graph": lambda: graph(x), "xla": lambda: xla(x)}, warmup=2, repeat=9, number=3
    )
    return speedup(timings[0], timings[1])


def _speedup_mistake(name: str, mine: float, theirs: float, factor: float) -> str:
    if mine > factor * theirs:
        hint = (
            "Compare the tf.function (jit_compile=False) with the jit-compiled one, both warm: "
            "a first call that traces or compiles inflates the ratio."
        )
    else:
        hint = (
            "Time the tf.function and the jit-compiled call on the x you were given, warm, and "
            "return tf.function time / XLA time (a ratio, not a difference)."
        )
    return (
        f"xla_speedup({name}, x) returned {mine:.3g}, but the check measured {theirs:.3g}x for "
        f"the same comparison on this machine just now (allowed: within {factor:g}x of it). "
        f"{hint}"
    )


def _ratio(value: Any, *, name: str) -> float:
    if hasattr(value, "seconds") and hasattr(value, "min"):
        raise Wrong(f"{name} returned a Timing; return the ratio, e.g. tfcourse.speedup(...).")
    array = to_numpy(value, name=name)
    if array.size != 1:
        raise Wrong(f"{name} should return one number, a ratio, not shape {array.shape}")
    ratio = float(array.reshape(()))
    if not math.isfinite(ratio) or ratio <= 0:
        raise Wrong(f"{name} is {ratio}: a ratio of two times must be positive and finite.")
    return ratio


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


@check("06.4", "fuse a slow custom op chain")
def check_fused_activation(fast_activation: Any) -> str:
    """Check `fast_activation`: a `tf.function(jit_compile=True)` equal to `slow_activation` that
    XLA compiles into one fusion and that runs `FUSED_SPEEDUP_FLOOR` times faster, timed here."""
    import tensorflow as tf

    import tfcourse

    if fast_activation is None:
        raise NotAttempted
    if not _is_tf_function(fast_activation):
        raise Wrong(
            f"fast_activation should be a tf.function, but it is {_describe(fast_activation)}: "
            "decorate it with @tf.function(jit_compile=True)."
        )
    if getattr(fast_activation, "_jit_compile", None) is not True:
        raise Wrong("fast_activation is a tf.function without XLA: pass jit_compile=True.")
    small = tf.linspace(-6.0, 6.0, 1001)
    result = _run_fused(fast_activation, small)
    dtype = getattr(result, "dtype", None)
    if dtype is not None and getattr(dtype, "name", str(dtype)) != "float32":
        raise Wrong(
            f"fast_activation(x) returns {getattr(dtype, 'name', dtype)}, not float32: compute "
            "in x's dtype, as slow_activation does (a wider type moves more bytes per element)."
        )
    expect_close(result, slow_activation(small), name="fast_activation(x)", rtol=1e-4, atol=1e-5)
    big = tf.random.stateless_normal([2_000_000], seed=[6, 4]) * 3.0
    with learner_code("compiling fast_activation"):
        hlo = fast_activation.experimental_get_compiler_ir(big)(stage="optimized_hlo")
    fusions = count_fusions(hlo)
    if fusions != 1:
        raise Wrong(
            f"XLA made {fusions} fusions of fast_activation, not 1: keep it to elementwise ops "
            "on x (no reductions, no reshapes) so that one kernel computes it all."
        )
    slow = tf.function(slow_activation)
    with learner_code("timing fast_activation against slow_activation", seconds=60):
        slow_t, fast_t = tfcourse.time_interleaved(
            {"slow": lambda: slow(big), "fast": lambda: fast_activation(big)},
            warmup=1,
            repeat=5,
            number=3,
        )
    factor = tfcourse.speedup(slow_t, fast_t)
    if factor < FUSED_SPEEDUP_FLOOR:
        raise Wrong(
            f"fast_activation ran {factor:.2f}x as fast as slow_activation on 2M values; the goal "
            f"is {FUSED_SPEEDUP_FLOOR}x. Compute it all with TensorFlow ops in one jit-compiled "
            "function."
        )
    return (
        f"equals slow_activation, compiles to 1 fusion, and ran {factor:.1f}x as fast on 2M "
        "values (min over 5 interleaved rounds)."
    )


def _run_fused(fast_activation: Any, x: Any) -> Any:
    try:
        return call(fast_activation, x, name="fast_activation(x)")
    except Wrong as wrong:
        if "PyFunc" in str(wrong) or "unsupported operations" in str(wrong):
            raise Wrong(
                "XLA cannot compile fast_activation: it still calls an op with no XLA kernel "
                "(tf.numpy_function is 'PyFunc'). Clip with tf.clip_by_value instead."
            ) from wrong
        raise
