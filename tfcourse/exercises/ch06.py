"""Self-checks for the exercises of `06_xla`."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from tfcourse.exercises._expect import expect_close, to_numpy
from tfcourse.exercises._framework import NotAttempted, Wrong, _describe, check
from tfcourse.exercises._learner import call, learner_code

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
    import tensorflow as tf

    return [
        (
            "relu(3x - 1) + exp(-x)",
            lambda x: tf.nn.relu(x * 3.0 - 1.0) + tf.exp(-x),
            tf.ones([7, 5]),
            "f32[7,5]",
            "exponential",
        ),
        ("2 tanh(x)", lambda x: tf.tanh(x) * 2.0, tf.ones([3]), "f32[3]", "tanh"),
    ]


@check("06.1", "the optimised HLO of a jit-compiled function")
def check_optimized_hlo(optimized_hlo: Callable[[Callable[[Any], Any], Any], Any]) -> str:
    """Check `optimized_hlo(fn, x)`: the text XLA made of `fn` for `x` after its optimisations."""
    for label, fn, x, shape, op in _hlo_cases():
        name = f"optimized_hlo({label}, x of shape ({shape[4:-1]}))"
        text = call(optimized_hlo, fn, x, name=name)
        _expect_optimised_hlo(text, name=name, shape=shape, op=op)
    return (
        "returns XLA's optimised HLO text (stage 'optimized_hlo') for the function and input "
        "shape given, with the elementwise ops fused."
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
    """An elementwise function that notes the shape it was traced for, and whether eagerly."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int | None, ...]] = []
        self.eager = 0

    def __call__(self, x: Any) -> Any:
        import tensorflow as tf

        if tf.executing_eagerly():
            self.eager += 1
        else:
            self.shapes.append(tuple(x.shape.as_list()) if x.shape.rank is not None else (None,))
        return tf.sin(x) * 2.0 + 1.0


@check("06.2", "stop recompiling on varying lengths")
def check_bucketed(bucketed: Callable[[Callable[[Any], Any], int], Any]) -> str:
    """Check `bucketed(fn, bucket_size)`: a function of a 1-D float32 `x` that runs a jit-compiled
    `fn` on `x` zero-padded to the next multiple of `bucket_size`, and returns `fn(x)` (length
    `len(x)`). It must trace (and so compile) once per bucket, never per length."""
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
        for length in lengths:
            x = rng.normal(size=length).astype(np.float32)
            name = f"bucketed(fn, {bucket_size}) on an input of length {length}"
            result = call(run, tf.constant(x), name=name)
            if recorder.eager:
                raise Wrong(
                    f"fn ran eagerly in {name}, so nothing was compiled: wrap it once in "
                    "tf.function(fn, jit_compile=True)."
                )
            expect_close(
                result, np.sin(x) * 2.0 + 1.0, name=f"the result of {name}", rtol=1e-5, atol=1e-5
            )
        _expect_buckets(recorder.shapes, bucket_size, lengths)
    return (
        "results of the right length and values, and fn traced (so compiled) once per bucket, "
        "for every input length and two bucket sizes."
    )


def _expect_buckets(
    shapes: list[tuple[int | None, ...]], bucket_size: int, lengths: tuple[int, ...]
) -> None:
    wanted = sorted({math.ceil(n / bucket_size) * bucket_size for n in lengths})
    if any(None in shape for shape in shapes):
        raise Wrong(
            f"fn was traced for shape {next(s for s in shapes if None in s)}, an unknown length: "
            "the trace stays one, but XLA still compiles once per concrete length. Pad x to a "
            "multiple of bucket_size instead."
        )
    traced = [shape[0] if shape else 0 for shape in shapes]
    odd = [n for n in traced if n % bucket_size]
    if odd:
        raise Wrong(
            f"fn was traced for length {odd[0]}, not a multiple of bucket_size={bucket_size}: "
            f"{len(traced)} compiles for {len(lengths)} inputs. Pad each x with zeros up to the "
            "next multiple of bucket_size before calling the compiled function."
        )
    if len(traced) > len(set(traced)):
        raise Wrong(
            f"fn was traced {len(traced)} times for {len(set(traced))} bucket lengths: you make a "
            "new tf.function on every call. Create it once, in bucketed, outside the function "
            "you return."
        )
    if sorted(set(traced)) != wanted:
        raise Wrong(
            f"fn was traced for lengths {sorted(set(traced))}, expected {wanted} for inputs of "
            f"lengths {sorted(lengths)}: pad each x to the smallest multiple of bucket_size "
            "that holds it, no further."
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


@check("06.3", "predict, then measure, which function XLA speeds up more")
def check_xla_speedup(
    xla_speedup: Callable[[Callable[[Any], Any], Any], Any], predict_winner: Callable[[], Any]
) -> str:
    """Check `xla_speedup(fn, x)` (the `tf.function` time over the jit-compiled time, warm) on
    `many_small_steps` ("a") and `one_big_op` ("b"), and `predict_winner()`, the guess made
    before measuring."""
    import tensorflow as tf

    ratios = {}
    for label, fn, x in (
        ("a", many_small_steps, tf.random.stateless_normal([64], seed=[6, 3])),
        ("b", one_big_op, tf.random.stateless_normal([2_000_000], seed=[6, 3])),
    ):
        name = f"xla_speedup({fn.__name__}, x)"
        ratios[label] = _ratio(call(xla_speedup, fn, x, name=name), name=name)
    a, b = ratios["a"], ratios["b"]
    if a < 0.5:
        raise Wrong(
            f"xla_speedup(many_small_steps) is {a:.3g}: that looks upside down. Return the "
            "tf.function's time divided by the jit-compiled one's (above 1 when XLA wins)."
        )
    if a < 2.0 or a < 1.5 * b:
        raise Wrong(
            f"your ratios are {a:.3g} (a) and {b:.3g} (b); a should run several times faster "
            "under XLA. Warm both functions up before timing (the first call compiles), and "
            "compile only one of the two you compare."
        )
    predicted = call(predict_winner, name="predict_winner()")
    if not isinstance(predicted, str) or predicted.strip().lower() not in ("a", "b"):
        raise Wrong(f"predict_winner() should return 'a' or 'b', not {_describe(predicted)}")
    if predicted.strip().lower() != "a":
        raise Wrong(
            f"you measured a {a:.3g}x and b {b:.3g}x, but predicted 'b'. XLA removes per-op "
            "overhead (a's 1,500 small ops become one compiled loop); b is one op with nothing "
            "to fuse."
        )
    return (
        f"you measured XLA speed-ups of {a:.3g}x (many small steps) and {b:.3g}x (one big op), "
        "and predicted the winner."
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
