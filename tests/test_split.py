"""Two-part checks: the probe's data on the wire, the judge's verdict on forged data."""

from __future__ import annotations

import base64
import io
import json
import pickle
import sys

import numpy as np
import pytest

from tfcourse.exercises import _split, ch00
from tfcourse.exercises._framework import UNJUDGED
from tfcourse.exercises._split import BadObservation, decode, encode, seed_for


def wire(value):
    return decode(json.loads(json.dumps(encode(value))))


def test_plain_data_and_arrays_survive_the_round_trip():
    value = {"a": [1, 2.5, "x", None, True], "b": np.arange(6, dtype=np.int16).reshape(2, 3)}
    got = wire(value)
    assert got["a"] == [1, 2.5, "x", None, True]
    assert got["b"].dtype == np.int16 and np.array_equal(got["b"], value["b"])
    assert wire((np.float32(1.5), np.int64(3))) == [1.5, 3]


@pytest.mark.parametrize("value", [object(), np.array(["a"]), {1: 2}, {"__ndarray__": "x"}])
def test_a_probe_may_send_only_plain_data(value):
    with pytest.raises(TypeError):
        encode(value)


def _npy(array, **kwargs):
    buffer = io.BytesIO()
    np.save(buffer, array, **kwargs)
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize(
    "forged",
    [
        {"__ndarray__": _npy(np.array([object()], dtype=object), allow_pickle=True)},
        {"__ndarray__": base64.b64encode(pickle.dumps([1, 2])).decode()},
        {"__ndarray__": "not base64 !!"},
        {"__ndarray__": _npy(np.arange(3)), "extra": 1},
        {"__ndarray__": _npy(np.array(["text"]))},
    ],
)
def test_decoding_never_unpickles_and_refuses_what_encode_never_makes(forged):
    with pytest.raises(BadObservation):
        decode(forged)


def _bundle(two_part, answer, seed, **changes):
    bundle = {
        "check": two_part.name,
        "exercise": two_part.exercise,
        "seed": seed,
        "status": "observed",
        "message": "",
        "observed": encode(two_part.probe(answer, seed)),
    }
    return {**bundle, **changes}


def right_counts(dataset):
    return np.bincount([int(label) for _, label in dataset], minlength=10)


def test_the_grader_judges_a_probes_output_and_only_the_judge_can_pass_it(tf, monkeypatch):
    check, seed = ch00.check_count_labels, seed_for("secret", ch00.check_count_labels.name, 0)
    seeds = {seed}
    assert check.judge_bundle(_bundle(check, right_counts, seed), seeds)[0] == "passed"
    forged = {
        "a status no probe sends": _bundle(check, right_counts, seed, status="passed"),
        "a seed of its own": _bundle(check, right_counts, 12345),
        "another check's name": _bundle(check, right_counts, seed, check="x.check_y"),
        "nothing observed": _bundle(check, right_counts, seed, observed=None),
        "made-up numbers": _bundle(check, right_counts, seed, observed=[[1] * 10, [2] * 10]),
        "an unloadable array": _bundle(check, right_counts, seed, observed={"__ndarray__": "?"}),
    }
    for why, bundle in forged.items():
        status, message = check.judge_bundle(bundle, seeds)
        assert status == "failed", (why, message)
    wrong = _bundle(check, lambda d: right_counts(d)[:9], seed)
    monkeypatch.setenv("TFCOURSE_PROBE_SEED", str(seed))  # the same inputs, so the same message
    assert check.judge_bundle(wrong, seeds) == check_failure(check, lambda d: right_counts(d)[:9])
    another = _bundle(check, right_counts, seed_for("secret", check.name, 1))
    status, message = check.judge_bundle({**another, "seed": seed}, seeds)
    assert status == "failed", "a right answer's output for other inputs passed"


def check_failure(check, answer):
    result = check(answer)
    return (result.status, result.message)


def test_a_grader_seed_is_secret_per_run_and_per_call():
    name = ch00.check_draw.name
    assert seed_for("a", name, 0) != seed_for("b", name, 0) != seed_for("a", name, 1)
    assert 0 <= seed_for("a", name, 0) < 2**64


def test_without_the_judges_a_check_says_the_grader_decides(tf, monkeypatch):
    """The student edition has no `tfcourse.exercises.judges`: the probe runs, nothing is judged."""
    for name in [m for m in sys.modules if m.startswith(_split.JUDGES)]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, _split.JUDGES, None)  # importing it now fails
    result = ch00.check_count_labels(right_counts)
    assert result.status == UNJUDGED and "grader decides" in result.message
    assert str(result).startswith("→ Exercise 00.1")
    broken = ch00.check_count_labels(lambda dataset: 1 / 0)
    assert broken.status == "failed" and "ZeroDivisionError" in broken.message


def test_in_a_graded_kernel_a_check_shows_only_its_observations(tf, monkeypatch, capsys):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    monkeypatch.setattr(_split, "_GRADING", {})
    _split.grading("base")
    check = ch00.check_count_labels
    monkeypatch.setattr(check, "calls", 0)
    result = check(right_counts)
    assert result.status == UNJUDGED and "the grader judges it" in result.message
    bundle = shown[0][_split.PROBE_MIME]
    assert bundle["seed"] == seed_for("base", check.name, 0) and bundle["status"] == "observed"
    assert "passed" not in json.dumps(bundle)
    assert check.judge_bundle(bundle, {bundle["seed"]})[0] == "passed"


def test_without_the_judges_a_failure_the_probe_deferred_is_still_shown(tf, monkeypatch):
    from tfcourse.exercises import ch01

    monkeypatch.setenv("TFCOURSE_PROBE_SEED", "5")  # the message names the drawn input
    overflow = ch01._log_sum_exp_cases(5)[1]
    monkeypatch.setitem(sys.modules, _split.JUDGES, None)
    for name in [m for m in sys.modules if m.startswith(_split.JUDGES + ".")]:
        monkeypatch.delitem(sys.modules, name)

    def log_sum_exp(x):  # right on small inputs, a string on the second case's
        return "overflow" if float(tf.reduce_max(x)) > 100 else tf.reduce_logsumexp(x)

    result = ch01.check_log_sum_exp(log_sum_exp)
    assert result.status == "failed" and f"log_sum_exp({overflow})" in result.message


def test_without_the_judges_an_unwritten_answer_the_probe_deferred_is_not_attempted(
    tf, monkeypatch
):
    """08.1's probe notes an unwritten answer for its judge (`deferred(..., unwritten=True)`);
    without the judges, the check still says "not attempted", never "ran without an error"."""
    from tfcourse.exercises import ch08

    monkeypatch.setitem(sys.modules, _split.JUDGES, None)
    for name in [m for m in sys.modules if m.startswith(_split.JUDGES + ".")]:
        monkeypatch.delitem(sys.modules, name)

    def per_replica_batch_size(global_batch_size, num_replicas):
        raise NotImplementedError

    result = ch08.check_per_replica_batch(per_replica_batch_size)
    assert result.status == "not attempted", result


def test_until_failure_stops_after_the_first_failure_or_unwritten_answer():
    def wrong():
        raise _split.Wrong("no")

    def unwritten():
        raise _split.NotAttempted

    assert _split.until_failure([lambda: 1, wrong, lambda: 3]) == [1, {_split.FAILURE: "no"}]
    assert _split.until_failure([unwritten, lambda: 2], unwritten=True) == [
        {_split.UNWRITTEN: True}
    ]
    with pytest.raises(_split.NotAttempted):
        _split.until_failure([unwritten])


def _forged_header_array():
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776,), }"
    header += " " * (118 - len(header)) + "\n"
    raw = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
    return {"__ndarray__": base64.b64encode(raw).decode()}


def test_malformed_or_hostile_probe_outputs_cost_only_their_own_grade():
    """What a kernel shows is judged one output at a time: nothing it sends can stop the grader
    (an unhashable name or seed, an array header that claims 8 TiB, nesting, 100 copies)."""
    import nbformat

    from tfcourse.classroom._assemble import GradingNotebook
    from tfcourse.classroom._grade import _judge

    check = ch00.check_count_labels
    graded = GradingNotebook(
        nbformat.v4.new_notebook(), "k", [], frozenset(), [], "base", {3: [check.name]}
    )
    seed = seed_for("base", check.name, 0)
    nested: list = []
    for _ in range(200):
        nested = [nested]
    hostile = [
        {"check": []},
        {"check": {"a": 1}, "seed": seed},
        {"check": check.name, "status": "observed", "seed": []},
        {"check": check.name, "status": ["observed"], "seed": seed},
        {"check": check.name, "status": "observed", "seed": True},
        {
            "check": check.name,
            "status": "observed",
            "seed": seed,
            "observed": _forged_header_array(),
        },
        {"check": check.name, "status": "observed", "seed": seed, "observed": nested},
        {"check": check.name, "status": "observed", "seed": seed, "observed": [[1j] * 10] * 2},
        *[{"check": check.name, "status": "observed", "seed": seed, "observed": None}] * 100,
    ]
    verdicts = _judge(graded, [{"cell": 3, "bundle": b} for b in hostile], None)[3]
    assert len(verdicts) == len(hostile)
    assert {v["status"] for v in verdicts} == {"failed"}, verdicts
    # the first two name no check here; of the rest, the first 16 are judged
    assert sum("more than 16 outputs" in v["message"] for v in verdicts) == len(hostile) - 2 - 16


def test_a_message_that_looks_like_a_formula_is_text_in_the_csv(tmp_path):
    from tfcourse.classroom import Outcome, write_results

    outcome = Outcome("mallory", "00.ipynb")
    row = {"exercise": "00.1", "title": "t", "points": 0, "max_points": 1, "status": "failed"}
    outcome.rows = [{**row, "feedback": '=HYPERLINK("http://x", "ok")'}]
    write_results(tmp_path / "r.csv", [outcome])
    assert "'=HYPERLINK" in (tmp_path / "r.csv").read_text()
