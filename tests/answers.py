"""Stand-in learner answers and an assertion shared by the chapter check tests."""


def not_written(*args, **kwargs):
    """The unanswered template: what the student release has in every answer cell."""
    raise NotImplementedError


def raises(*args, **kwargs):
    """An answer that crashes."""
    raise RuntimeError("oops")


def assert_result(result, status, fragment):
    """The check gave `status`, and its message contains `fragment`."""
    assert result.status == status, str(result)
    assert fragment in result.message, str(result)
