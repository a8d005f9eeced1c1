"""The check framework: statuses, safety, recording, and comparisons that explain themselves."""

import json

import numpy as np
import pytest

from tfcourse import exercises
from tfcourse.exercises import Wrong, call, check, expect_close


@check("9.9", "demo")
def check_demo(answer):
    value = call(answer, 2)
    if value != 4:
        raise Wrong(f"expected 4, got {value}")
    return "doubles 2"


def broken(*args):
    raise NotImplementedError


@pytest.mark.parametrize(
    ("answer", "status", "message"),
    [
        (lambda x: 2 * x, "passed", "doubles 2"),
        (lambda x: x + 1, "failed", "expected 4, got 3"),
        (None, "not attempted", "not attempted yet"),
        (broken, "not attempted", "replace `raise NotImplementedError`"),
        (lambda x: 1 / 0, "failed", "your function raised ZeroDivisionError: division by zero"),
        (42, "failed", "expected a function, but got a int (42)"),
    ],
)
def test_check_turns_every_kind_of_answer_into_a_one_line_result(answer, status, message):
    result = check_demo(answer)
    assert result.status == status
    assert message in result.message
    assert result.passed == (status == "passed")
    assert "\n" not in str(result) and str(result).startswith(("✓", "✗", "…"))
    assert repr(result) == str(result)


def test_a_bug_in_a_check_is_reported_not_raised():
    @check("9.8", "buggy")
    def check_buggy(answer):
        return {}["missing"]

    result = check_buggy(lambda: None)
    assert result.status == "error"
    assert "KeyError" in result.message and "bug in the course" in result.message
    assert str(result).startswith("⚠")


def test_results_are_collected_and_optionally_written_for_graders(tmp_path, monkeypatch):
    log = tmp_path / "results.jsonl"
    monkeypatch.setenv(exercises.RESULTS_ENV, str(log))
    before = len(exercises.results())
    check_demo(lambda x: 2 * x)
    check_demo(None)
    assert [r.status for r in exercises.results()[before:]] == ["passed", "not attempted"]
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert rows == [
        {"exercise": "9.9", "title": "demo", "status": "passed", "message": "doubles 2"},
        {
            "exercise": "9.9",
            "title": "demo",
            "status": "not attempted",
            "message": rows[1]["message"],
        },
    ]


@pytest.mark.parametrize(
    ("value", "expected", "kwargs", "message"),
    [
        (
            np.zeros((3, 2)),
            np.zeros((2, 3)),
            {},
            "shape (3, 2), expected (2, 3). It has the right axes in the wrong order",
        ),
        (np.zeros(6), np.zeros((2, 3)), {}, "right number of values: reshape"),
        (
            np.zeros(3, np.float64),
            np.zeros(3),
            {"dtype": np.float32},
            "dtype float64, expected float32",
        ),
        (np.array([1.0, np.nan, 2.0]), np.ones(3), {}, "contains NaN at 1 of 3 positions"),
        (np.array([1.0, np.inf]), np.ones(2), {}, "infinite values"),
        (np.array([255.0, 510.0]), np.array([1.0, 2.0]), {}, "off by a factor of 255"),
        (np.array([-1.0, -2.0]), np.array([1.0, 2.0]), {}, "wrong sign"),
        (
            np.array([1.0, 5.0, 3.0]),
            np.array([1.0, 2.0, 3.0]),
            {},
            "at 1 of 3 positions; for example at index 1 it is 5, expected 2",
        ),
        ("hello", np.zeros(2), {}, "should be a Tensor or array of numbers, but it is a str"),
        ({"a": 1}, np.zeros(2), {}, "should be a Tensor or array of numbers"),
        (None, np.zeros(2), {}, "is None; did you forget a `return`?"),
        (np.float32(2.5), np.float64(2.0), {}, "your answer is 2.5, expected 2."),
    ],
)
def test_expect_close_names_the_specific_mistake(value, expected, kwargs, message):
    with pytest.raises(Wrong) as wrong:
        expect_close(value, expected, **kwargs)
    assert message in str(wrong.value)


def test_expect_close_accepts_tensors_and_lists_within_tolerance(tf):
    assert expect_close(tf.constant([1.0, 2.0]), [1.0, 2.0000001]).dtype == np.float32
    expect_close([[1, 2]], np.array([[1, 2]]))
