"""Small samples of the embedded datasets that checks test answers on, fixed or drawn."""

from __future__ import annotations

import numpy as np


def mnist_sample(
    count: int, *, drop_digit: int | None = None, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """`count` images and labels of mnist5k's validation split, none of them a `drop_digit`.

    Without `seed`, the split's first `count` such examples. With `seed`, `count` of them drawn
    from the seed, in a drawn order, with at least one example of every digit but `drop_digit`
    (so `count` must be at least 10, or 9 with a digit dropped).
    """
    from tfcourse import data

    columns = data.load_numpy("mnist5k", "validation")
    labels = columns["label"]
    keep = np.arange(len(labels))
    if drop_digit is not None:
        keep = keep[labels != drop_digit]
    if seed is None:
        keep = keep[:count]
    else:
        rng = np.random.default_rng(seed)
        digits = sorted(set(labels[keep].tolist()))
        if not len(digits) <= count <= len(keep):
            raise ValueError(f"cannot draw {count} examples with every digit of {digits}")
        one_each = np.array([rng.choice(keep[labels[keep] == digit]) for digit in digits])
        others = rng.choice(np.setdiff1d(keep, one_each), count - len(one_each), replace=False)
        keep = rng.permutation(np.concatenate([one_each, others]))
    return columns["image"][keep], columns["label"][keep]
