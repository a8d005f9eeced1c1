"""tfcourse.bench: warm-up, repeats, min/median and ratios."""

import pytest

from tfcourse.bench import Timing, compare, paired_speedup, speedup, time_fn, time_interleaved


def test_time_fn_warms_up_then_times_repeat_batches_of_number_calls():
    calls = []
    timing = time_fn(lambda: calls.append(1), name="append", warmup=2, repeat=4, number=3)
    assert len(calls) == 2 + 4 * 3
    assert timing.name == "append"
    assert len(timing.seconds) == 4
    assert all(s >= 0 for s in timing.seconds)


def test_time_fn_reads_a_tensor_like_result_so_the_work_is_included():
    fetched = []

    class Lazy:
        def numpy(self):
            fetched.append(1)

    time_fn(Lazy, warmup=1, repeat=2)
    assert len(fetched) == 3


def test_timing_min_and_median():
    timing = Timing("f", (0.5, 0.1, 0.3, 0.2))
    assert timing.min == 0.1
    assert timing.median == pytest.approx(0.25)
    assert str(timing) == "f: min 100 ms, median 250 ms"


def test_speedup_is_baseline_min_over_candidate_min():
    assert speedup(Timing("slow", (3.0, 4.0)), Timing("fast", (1.0, 2.0))) == 3.0
    assert speedup(Timing("fast", (1.0,)), Timing("slow", (4.0,))) == 0.25


def test_paired_speedup_holds_when_load_starts_mid_measurement():
    """Round 1 is quiet for the baseline only; then both run twice as slow. The min times compare
    the quiet round with busy ones (0.75x); the rounds' median gives the true 1.5x."""
    baseline = Timing("padded", (1.5, 3.0, 3.0, 3.0, 3.0))
    candidate = Timing("bucketed", (2.0, 2.0, 2.0, 2.0, 2.0))
    assert speedup(baseline, candidate) == pytest.approx(0.75)
    assert paired_speedup(baseline, candidate) == pytest.approx(1.5)
    assert paired_speedup(Timing("a", (4.0, 2.0, 9.0)), Timing("b", (1.0, 2.0, 3.0))) == 3.0


def test_paired_speedup_needs_the_same_rounds():
    with pytest.raises(ValueError, match="one time_interleaved call"):
        paired_speedup(Timing("a", (1.0, 2.0)), Timing("b", (1.0,)))
    with pytest.raises(ValueError, match="no measurable time"):
        paired_speedup(Timing("a", (1.0,)), Timing("b", (0.0,)))


def test_speedup_refuses_a_candidate_too_fast_to_measure():
    with pytest.raises(ValueError, match="no measurable time"):
        speedup(Timing("a", (1.0,)), Timing("b", (0.0,)))


def test_compare_tabulates_each_timing_against_the_baseline():
    table = compare([Timing("naive", (2e-3,)), Timing("tuned", (5e-4,))])
    lines = table.splitlines()
    assert lines[0].split() == ["function", "min", "median", "speed-up"]
    assert lines[1].endswith("1.00x") and lines[2].endswith("4.00x")
    assert "500 µs" in lines[2]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"repeat": 0}, "repeat must be an int >= 1"),
        ({"number": 1.5}, "number"),
        ({"warmup": -1}, "warmup"),
    ],
)
def test_time_fn_rejects_bad_counts(kwargs, message):
    with pytest.raises(ValueError, match=message):
        time_fn(lambda: None, **kwargs)


def test_time_fn_rejects_something_that_is_not_callable():
    with pytest.raises(TypeError, match="function of no arguments"):
        time_fn(42)


def test_compare_rejects_empty_input_and_bad_baseline():
    with pytest.raises(ValueError, match="at least one"):
        compare([])
    with pytest.raises(ValueError, match="baseline must index"):
        compare([Timing("a", (1.0,))], baseline=1)


def test_record_figure_writes_a_json_line_only_when_asked(tmp_path, monkeypatch):
    from tfcourse.bench import FIGURES_ENV, record_figure

    monkeypatch.delenv(FIGURES_ENV, raising=False)
    record_figure("ratio", 3.5, unit="x")
    log = tmp_path / "figures.jsonl"
    assert not log.exists()
    monkeypatch.setenv(FIGURES_ENV, str(log))
    record_figure("ratio", 3.5, unit="x")
    record_figure("stall", 0.04)
    assert log.read_text().splitlines() == [
        '{"name": "ratio", "value": 3.5, "unit": "x"}',
        '{"name": "stall", "value": 0.04, "unit": ""}',
    ]


def test_record_figure_refuses_a_value_that_is_not_a_number():
    from tfcourse.bench import record_figure

    with pytest.raises(TypeError, match="must be a number, got str"):
        record_figure("ratio", "3.5")


def test_time_interleaved_takes_turns_after_warming_up():
    calls = []
    timings = time_interleaved(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, warmup=1, repeat=3
    )
    assert calls == ["a", "b"] * 4
    assert [t.name for t in timings] == ["a", "b"]
    assert all(len(t.seconds) == 3 for t in timings)


@pytest.mark.parametrize("fns", [{}, {"a": 42}, [lambda: 1]])
def test_time_interleaved_rejects_what_is_not_a_dict_of_functions(fns):
    with pytest.raises(TypeError, match="dict of functions"):
        time_interleaved(fns)


def test_time_interleaved_takes_a_call_count_per_function():
    calls = []
    timings = time_interleaved(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
        warmup=0,
        repeat=2,
        number={"a": 1, "b": 3},
    )
    assert calls == ["a", "b", "b", "b"] * 2
    assert [len(t.seconds) for t in timings] == [2, 2]
    with pytest.raises(ValueError, match="a count for each"):
        time_interleaved({"a": lambda: None}, number={"b": 2})
