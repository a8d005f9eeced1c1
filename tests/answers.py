"""Stand-in learner answers and an assertion shared by the chapter check tests."""

import sys
import time


def not_written(*args, **kwargs):
    """The unanswered template: what the student release has in every answer cell."""
    raise NotImplementedError


def raises(*args, **kwargs):
    """An answer that crashes."""
    raise RuntimeError("oops")


def sleeps(*args, **kwargs):
    """An answer that never returns in any reasonable time."""
    time.sleep(1000)


def exits(*args, **kwargs):
    """An answer that tries to end the Python process."""
    sys.exit(1)


def floods(*args, **kwargs):
    """An answer that prints 10 MB, then returns nothing."""
    print("x" * 10_000_000)


def assert_result(result, status, fragment):
    """The check gave `status`, and its message contains `fragment`."""
    assert result.status == status, str(result)
    assert fragment in result.message, str(result)


#: The answers every check must survive, each with a fragment of the message it should give.
MISBEHAVING = [
    (raises, "raised RuntimeError: oops"),
    (sleeps, "the time limit"),
    (exits, "called sys.exit(1)"),
    (floods, ""),
]


def assert_survives(result, fragment, capsys):
    """A misbehaving answer failed with one line containing `fragment`, its output held back."""
    assert_result(result, "failed", fragment)
    assert "\n" not in result.message
    assert len(capsys.readouterr().out) < 10_000


#: The check seed of the tests whose expected messages name a check's drawn inputs.
SEED = 20251206


def assert_result_on(result, status, fragment, facts):
    """`assert_result`, `fragment` filled in (``str.format``) with the drawn inputs' `facts`."""
    assert_result(result, status, fragment.format(**facts))


def observed(check, answer, seed):
    """What `check`'s probe sees of `answer` under `seed`, after the grader's JSON round trip."""
    return check._observed(check.probe, answer, seed)


def same_observations(first, second):
    """Whether two probes' observations are the same data (arrays compared by value and dtype)."""
    import json

    from tfcourse.exercises._split import encode

    return json.dumps(encode(first), sort_keys=True) == json.dumps(encode(second), sort_keys=True)


def assert_seeded(check, answer, seeds=(1, 2)):
    """`check` draws its inputs from its seed: a right answer's observations differ between two
    seeds, each passes its own seed's judge, and each fails (is a replay) under the other seed."""
    from tfcourse.exercises import Wrong

    judge = check.judge()
    first, second = (observed(check, answer, seed) for seed in seeds)
    assert not same_observations(first, second), f"{check.name}: the same inputs for {seeds}"
    judge(first, seeds[0])
    judge(second, seeds[1])
    for replay, seed in ((first, seeds[1]), (second, seeds[0])):
        try:
            verdict = judge(replay, seed)
        except Wrong:
            continue
        raise AssertionError(f"{check.name}: another seed's observations passed: {verdict}")
