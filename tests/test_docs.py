"""The documents quote one recorded run: INSTRUCTORS' run times are BENCHMARKS' table."""

import re
from pathlib import Path

from tfcourse.classroom._shard import recorded_seconds as _recorded

ROOT = Path(__file__).parents[1]


def recorded_seconds() -> dict[str, float]:
    """Each notebook's seconds in BENCHMARKS' `tfcourse run --record` table."""
    return _recorded(ROOT / "BENCHMARKS.md")


def test_instructors_run_times_are_the_recorded_ones():
    recorded = recorded_seconds()
    assert len(recorded) >= 9
    text = (ROOT / "INSTRUCTORS.md").read_text(encoding="utf-8")
    quoted = dict(re.findall(r"^### (\d\d) .*runs in (?:about )?(\d+) s$", text, re.MULTILINE))
    assert set(quoted) == set(recorded)
    for chapter, seconds in quoted.items():
        assert abs(int(seconds) - recorded[chapter]) <= 1, (chapter, seconds, recorded[chapter])
