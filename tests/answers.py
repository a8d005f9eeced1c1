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
