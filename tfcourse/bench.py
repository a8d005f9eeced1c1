"""Time functions fairly: warm up, repeat, and report the min, the median and ratios.

Introduced in `00_welcome_and_setup`; the speed chapters (01, 02, 06, 07) measure with it.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Timing:
    """Seconds per call of one function, over several repeats.

    Attributes:
        name: A label for tables and charts.
        seconds: The time of each repeat, in seconds per call.
    """

    name: str
    seconds: tuple[float, ...]

    @property
    def min(self) -> float:
        """The fastest repeat: the best estimate of the cost, since noise only adds time."""
        return min(self.seconds)

    @property
    def median(self) -> float:
        """The median repeat: what a typical call costs on a busy machine."""
        return statistics.median(self.seconds)

    def __str__(self) -> str:
        return (
            f"{self.name}: min {_format_seconds(self.min)}, median {_format_seconds(self.median)}"
        )


def _format_seconds(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _check_counts(warmup: int, repeat: int, number: int) -> None:
    for label, value, low in (("warmup", warmup, 0), ("repeat", repeat, 1), ("number", number, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{label} must be an int >= {low}; got {value!r}")


def time_fn(
    fn: Callable[[], Any],
    *,
    name: str | None = None,
    warmup: int = 1,
    repeat: int = 5,
    number: int = 1,
) -> Timing:
    """Time `fn()`: call it `warmup` times untimed, then `repeat` batches of `number` calls.

    Warm-up calls absorb one-off costs (tracing a `tf.function`, filling caches) that would
    otherwise land in the first measurement. If `fn` returns a `Tensor`, its value is fetched, so
    the timing includes the work and not only its launch.

    Args:
        fn: A function of no arguments. Wrap arguments in a lambda.
        name: A label; defaults to the function's name.
        warmup: Untimed calls before measuring.
        repeat: Timed batches; min and median are taken over them.
        number: Calls per batch; each batch's time is divided by it.

    Returns:
        A `Timing` with seconds per call for each batch.

    Introduced in `00_welcome_and_setup`.
    """
    if not callable(fn):
        raise TypeError(f"fn must be a function of no arguments; got {type(fn).__name__}")
    _check_counts(warmup, repeat, number)
    for _ in range(warmup):
        _block(fn())
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            _block(fn())
        seconds.append((time.perf_counter() - start) / number)
    return Timing(name or getattr(fn, "__name__", "fn"), tuple(seconds))


def time_interleaved(
    fns: dict[str, Callable[[], Any]],
    *,
    warmup: int = 1,
    repeat: int = 5,
    number: int | dict[str, int] = 1,
) -> list[Timing]:
    """Time several functions in turn, A B C A B C ..., so that they share the machine's moods.

    On a busy machine the speed drifts: another process starts, the CPU clocks down. Timing A five
    times and then B five times puts the drift into the ratio; taking turns spreads it over both.
    Compare the results with `speedup` (min times) or their medians.

    Args:
        fns: Functions of no arguments, by label; the labels name the `Timing`s.
        warmup: Untimed rounds before measuring (each function called once per round).
        repeat: Timed rounds.
        number: Calls per function per round, or a dict of them by label (a fast function needs
            more calls per sample than a slow one); each time is divided by it.

    Returns:
        One `Timing` per function, in the order of `fns`.

    Introduced in `00_welcome_and_setup`.
    """
    if not isinstance(fns, dict) or not fns or not all(map(callable, fns.values())):
        raise TypeError("fns must be a non-empty dict of functions of no arguments, by label")
    numbers = number if isinstance(number, dict) else dict.fromkeys(fns, number)
    if set(numbers) != set(fns):
        raise ValueError(f"number must give a count for each of {sorted(fns)}; got {numbers}")
    for count in numbers.values():
        _check_counts(warmup, repeat, count)
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(warmup + repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(numbers[name]):
                _block(fn())
            if round_ >= warmup:
                seconds[name].append((time.perf_counter() - start) / numbers[name])
    return [Timing(name, tuple(values)) for name, values in seconds.items()]


def _block(result: Any) -> None:
    """Wait for asynchronous work (a GPU kernel, say) by reading the result's value."""
    numpy = getattr(result, "numpy", None)
    if callable(numpy):
        numpy()


def speedup(baseline: Timing, candidate: Timing) -> float:
    """How many times faster `candidate` is than `baseline`, from their min times.

    A result of 3.0 means the candidate takes a third of the baseline's time; below 1.0, it is
    slower.

    Introduced in `00_welcome_and_setup`.
    """
    if candidate.min <= 0:
        raise ValueError(f"{candidate.name} took no measurable time; raise its `number`")
    return baseline.min / candidate.min


def paired_speedup(baseline: Timing, candidate: Timing) -> float:
    """How many times faster `candidate` is than `baseline`, round by round: the median, over the
    rounds of `time_interleaved`, of the baseline's time over the candidate's in the same round.

    A round times the two back to back, so both meet the same load. When another program starts or
    stops in the middle of a measurement, single rounds move but the median holds, where `speedup`
    can compare one function's quiet round with the other's busy ones. Use it for a speed-up that
    an assert rests on; it needs the two timed in the same rounds (`time_interleaved`).

    Introduced in `02_tf_data`.
    """
    if len(baseline.seconds) != len(candidate.seconds):
        raise ValueError(
            f"{baseline.name} has {len(baseline.seconds)} rounds and {candidate.name} "
            f"{len(candidate.seconds)}: time both with one time_interleaved call"
        )
    if min(candidate.seconds) <= 0:
        raise ValueError(f"{candidate.name} took no measurable time; raise its `number`")
    return statistics.median(
        b / c for b, c in zip(baseline.seconds, candidate.seconds, strict=True)
    )


def compare(timings: list[Timing], *, baseline: int = 0) -> str:
    """A plain-text table of timings, with each one's speed-up over `timings[baseline]`.

    Introduced in `00_welcome_and_setup`.
    """
    if not timings:
        raise ValueError("compare needs at least one Timing")
    if not 0 <= baseline < len(timings):
        raise ValueError(f"baseline must index timings (0 to {len(timings) - 1}); got {baseline}")
    width = max(len(t.name) for t in timings)
    rows = [f"{'function':<{width}}  {'min':>9}  {'median':>9}  speed-up"]
    for timing in timings:
        ratio = speedup(timings[baseline], timing)
        rows.append(
            f"{timing.name:<{width}}  {_format_seconds(timing.min):>9}  "
            f"{_format_seconds(timing.median):>9}  {ratio:7.2f}x"
        )
    return "\n".join(rows)


#: When set, `record_figure` appends each figure to this JSON-lines file; `tfcourse run` sets it.
FIGURES_ENV = "TFCOURSE_FIGURES"


def record_figure(name: str, value: float, *, unit: str = "") -> None:
    """Note a figure a notebook measured, so `tfcourse run --record` can put it in BENCHMARKS.md.

    Outside `tfcourse run` it does nothing. A notebook calls it right after asserting the figure,
    so BENCHMARKS.md always shows what the notebook measured and checked.

    Introduced in `02_tf_data`.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"value must be a number, got {type(value).__name__}")
    path = os.environ.get(FIGURES_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"name": name, "value": float(value), "unit": unit}) + "\n")
