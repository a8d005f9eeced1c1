"""Exercise 06.4's timing, repeated: how fast the reference answer runs against `slow_activation`.

Runs the judge's own `_fused_speedup` (a first look on 2M values, then 16M values, warm, min over 5
interleaved rounds) on the reference rewrite, as a `tf.function` (the judge times the same ops
replayed from the learner's `GraphDef`), N times, each on inputs drawn from another seed, and
prints the ratios' minimum, median and maximum and the seconds each measurement took. This is how
BENCHMARKS.md's "Exercise 06.4's floor" was measured; run it under `taskset -c 0`, beside a
`python -c "while True: pass"`, or with `TF_ENABLE_ONEDNN_OPTS=0` to stand in for other machines.

Usage: python scripts/fused_speedup.py [N]   (default: 8)
"""

from __future__ import annotations

import sys
import time

import numpy as np
import tensorflow as tf

from tfcourse.exercises.judges import ch06 as judges


@tf.function(jit_compile=True)
def reference(x):
    """The notebook's solution to 06.4."""
    gelu = x * tf.sigmoid(1.702 * x)
    clipped = tf.clip_by_value(gelu, -3.0, 3.0)
    return tf.tanh(clipped / (1.0 + tf.abs(clipped))) * 0.5 + 0.1 * x


def main(runs: int) -> None:
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
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
