"""Small, fixed samples of the embedded datasets that checks test answers on."""

from __future__ import annotations

import numpy as np


def mnist_sample(count: int, *, drop_digit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` images and labels of mnist5k's validation split, minus `drop_digit`."""
    from tfcourse import data

    columns = data.load_numpy("mnist5k", "validation")
    keep = np.arange(len(columns["label"]))
    if drop_digit is not None:
        keep = keep[columns["label"] != drop_digit]
    return columns["image"][keep[:count]], columns["label"][keep[:count]]
