"""Probe inputs that a learner cannot predict: drawn afresh on every run of a check.

A check that probes with the chapter's own example values passes an answer that hard-codes them (3
features, the longest row first). Checks draw sizes, orders and values from `probe_rng` instead,
and avoid the values the chapter printed with `draw_except`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Collection

import numpy as np

#: Set to an integer to make every check's probes repeatable (for a test or a bug report).
PROBE_SEED_ENV = "TFCOURSE_PROBE_SEED"


def probe_rng() -> np.random.Generator:
    """A random generator for one run of a check: a fresh seed each time, or `PROBE_SEED_ENV`'s."""
    seed = os.environ.get(PROBE_SEED_ENV, "").strip()
    if not seed:
        return np.random.default_rng(secrets.randbits(64))
    if not seed.isdigit():
        raise ValueError(f"{PROBE_SEED_ENV} must be a non-negative integer, got {seed!r}; unset it")
    return np.random.default_rng(int(seed))


def draw_except(rng: np.random.Generator, low: int, high: int, avoid: Collection[int]) -> int:
    """An integer in [low, high] that is none of `avoid` (the chapter's own example values)."""
    choices = [value for value in range(low, high + 1) if value not in set(avoid)]
    if not choices:
        raise ValueError(f"no integer in [{low}, {high}] outside {sorted(avoid)}")
    return int(rng.choice(choices))
