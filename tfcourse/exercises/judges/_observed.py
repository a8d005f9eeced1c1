"""Reading a probe's observations in a judge: anything not shaped as the probe sends fails."""

from __future__ import annotations

from typing import Any

import numpy as np

from tfcourse.exercises._framework import NotAttempted, Wrong
from tfcourse.exercises._split import FAILURE, UNWRITTEN

_MALFORMED = "the check's observations are not what its probe sends ({}): re-run the check cell"


def items(
    observed: Any, count: int | None = None, *, kind: type | tuple[type, ...] = object
) -> list[Any]:
    """`observed` as a list of `count` items of `kind` (any length when `count` is None)."""
    if not isinstance(observed, list) or (count is not None and len(observed) != count):
        raise Wrong(_MALFORMED.format(f"expected a list of {count} items"))
    if not all(isinstance(item, kind) for item in observed):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        names = " or ".join(k.__name__ for k in kinds)
        raise Wrong(_MALFORMED.format(f"expected items of type {names}"))
    return observed


def nth(seen: list[Any], index: int) -> Any:
    """The observation of the `index`-th call (`settled`): a probe that runs its calls through
    `until_failure` stops only after a failure, so a shorter list is malformed."""
    if index >= len(seen):
        raise Wrong(_MALFORMED.format("fewer observations than calls"))
    return settled(seen[index])


def array(observed: Any) -> np.ndarray:
    """`observed` as the NumPy array it must be (a deferred failure is raised)."""
    observed = settled(observed)
    if not isinstance(observed, np.ndarray):
        raise Wrong(_MALFORMED.format("expected an array"))
    return observed


def field(observed: Any, key: str, kind: type | tuple[type, ...] = object) -> Any:
    """``observed[key]``, which must be there and of `kind` (a deferred failure is raised)."""
    if not isinstance(observed, dict) or key not in observed:
        raise Wrong(_MALFORMED.format(f"no {key!r}"))
    value = settled(observed[key])
    if not isinstance(value, kind):
        raise Wrong(_MALFORMED.format(f"{key!r} of the wrong type"))
    return value


def settled(observed: Any) -> Any:
    """`observed`, or what its probe deferred (`_split.deferred`) raised now: the `Wrong`, or
    `NotAttempted` for an answer not written yet."""
    if isinstance(observed, dict) and UNWRITTEN in observed:
        raise NotAttempted
    if isinstance(observed, dict) and FAILURE in observed:
        raise Wrong(str(observed[FAILURE]))
    return observed
