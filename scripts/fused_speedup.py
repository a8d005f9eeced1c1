"""Exercise 06.4's timing, repeated: how fast the reference answer runs against `slow_activation`.

Runs the judge's own `_fused_speedup` (a first look on 2M values, then 16M values, warm, min over 5
interleaved rounds) on the reference rewrite, as a `tf.function` (the judge times the same ops
replayed from the learner's `GraphDef`), N times, each on inputs drawn from another seed, and
prints the ratios' minimum, median and maximum and the seconds each measurement took. This is how
BENCHMARKS.md's "Exercise 06.4's floor" was measured; run it under `taskset -c 0`, beside a
`python -c "while True: pass"`, or with `TF_ENABLE_ONEDNN_OPTS=0` to stand in for other machines.

With K, the answer also computes K `atan`s of x and adds them times 0.0: right values, one fusion,
and slow, the kind of graph the first look is there to stop; the seconds show what it costs the
grader.

Usage: python scripts/fused_speedup.py [N [K]]   (defaults: 8, 0)
"""

from __future__ import annotations

import sys
import time

import numpy as np
import tensorflow as tf

from tfcourse.exercises.judges import ch06 as judges


def answer(extra_atans: int):
    """The notebook's solution to 06.4, with `extra_atans` wasted `atan`s."""

    @tf.function(jit_compile=True)
    def fast_activation(x):
        gelu = x * tf.sigmoid(1.702 * x)
        clipped = tf.clip_by_value(gelu, -3.0, 3.0)
        y = tf.tanh(clipped / (1.0 + tf.abs(clipped))) * 0.5 + 0.1 * x
        if not extra_atans:
            return y
        waste = x
        for _ in range(extra_atans):
            waste = tf.atan(waste)
        return y + 0.0 * waste

    return fast_activation


def main(runs: int, extra_atans: int) -> None:
    reference = answer(extra_atans)
    ratios, seconds, first_looks = [], [], 0
    for seed in range(runs):
        big = tf.random.stateless_normal([2_000_000], seed=[seed, 1]) * 3.0
        timed = tf.random.stateless_normal([judges.TIMED_VALUES], seed=[seed, 2]) * 3.0
        start = time.perf_counter()
        ratio, on = judges._fused_speedup(reference, big, timed)
        seconds.append(time.perf_counter() - start)
        ratios.append(ratio)
        first_looks += on.startswith("2M")
    print(
        f"{runs} runs: {np.min(ratios):.2f}x min, {np.median(ratios):.2f}x median, "
        f"{np.max(ratios):.2f}x max (floor {judges.ch06.FUSED_SPEEDUP_FLOOR}x); "
        f"{first_looks} stopped at the first look; {np.median(seconds):.2f} s median, "
        f"{np.max(seconds):.2f} s max per measurement"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8, int(sys.argv[2]) if len(sys.argv) > 2 else 0)
