"""The course's embedded datasets, loaded offline as `tf.data.Dataset`s or NumPy arrays.

Each dataset is prepared once from data that an installed package ships, committed under
`datasets/<name>/` with its SHA-256, and checked on every load, so nothing loads silently wrong.
Introduced in `00_welcome_and_setup`.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from tfcourse.data import _mnist5k, _names, _numwords, _prose, _registry
from tfcourse.data._registry import Columns, DatasetError, DatasetSpec, datasets_dir

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "DatasetError",
    "DatasetSpec",
    "datasets_dir",
    "load",
    "load_numpy",
    "names",
    "prepare",
    "spec",
    "verify",
]

_SPECS = {s.name: s for s in (_mnist5k.SPEC, _names.SPEC, _numwords.SPEC, _prose.SPEC)}


def names() -> list[str]:
    """The names of the embedded datasets, sorted."""
    return sorted(_SPECS)


def spec(name: str) -> DatasetSpec:
    """The `DatasetSpec` of a dataset, with its splits and features.

    Raises:
        ValueError: If there is no dataset of that name.
    """
    if name not in _SPECS:
        raise ValueError(f"no dataset named {name!r}; choose one of {names()}")
    return _SPECS[name]


def verify(name: str | None = None) -> dict[str, list[str]]:
    """Check dataset files against their recorded SHA-256.

    Args:
        name: One dataset, or None for all of them.

    Returns:
        Dataset name to a list of problems; an empty list means the files are intact.
    """
    chosen = [spec(name)] if name is not None else [_SPECS[n] for n in names()]
    return {s.name: _registry.verify(s) for s in chosen}


def load_numpy(name: str, split: str = "train") -> Columns:
    """Load one split as NumPy arrays, one per feature, after checking the files' checksums.

    Args:
        name: A dataset name from `names()`, for example ``"mnist5k"``.
        split: One of the dataset's splits, usually ``"train"``, ``"validation"`` or ``"test"``.

    Returns:
        Feature name to array, for example ``{"image": (4000, 28, 28, 1) uint8, "label": (4000,)}``.

    Raises:
        ValueError: For an unknown dataset or split.
        DatasetError: If a file is missing or corrupted; the message names the file and the fix.

    Introduced in `00_welcome_and_setup`.
    """
    chosen = spec(name)
    if split not in chosen.splits:
        raise ValueError(f"{name} has no split {split!r}; choose one of {list(chosen.splits)}")
    problems = _registry.verify(chosen)
    if problems:
        raise DatasetError("\n".join(problems))
    return chosen.read(datasets_dir() / name, split)


def load(name: str, split: str = "train", *, as_supervised: bool = False) -> tf.data.Dataset:
    """Load one split as a `tf.data.Dataset`, after checking the files' checksums.

    Args:
        name: A dataset name from `names()`, for example ``"mnist5k"``.
        split: One of the dataset's splits.
        as_supervised: Yield ``(input, target)`` tuples, as ``tfds.load`` does, instead of dicts;
            not for a dataset without a target, such as ``"prose"``.

    Returns:
        A dataset of dicts of features (``{"image": ..., "label": ...}``), or of tuples.

    Raises:
        ValueError: For an unknown dataset or split, or `as_supervised` without a target.
        DatasetError: If a file is missing or corrupted; the message names the file and the fix.

    Introduced in `00_welcome_and_setup`.
    """
    import tensorflow as tf

    keys = spec(name).supervised_keys
    if as_supervised and keys is None:
        raise ValueError(
            f"{name} has no (input, target) pair, so as_supervised=True does not apply; "
            "load it without it and make the targets yourself"
        )
    columns = load_numpy(name, split)
    dataset = tf.data.Dataset.from_tensor_slices(columns)
    if as_supervised and keys is not None:
        inputs, targets = keys
        dataset = dataset.map(lambda example: (example[inputs], example[targets]))
    return dataset


def prepare(name: str, *, update_checksums: bool = False) -> Path:
    """Rebuild a dataset's files from the package that ships its source data.

    The files are built in a temporary folder and must match the recorded checksums before they
    replace the ones in `datasets/<name>/`. A mismatch means the source package now produces
    different data; `update_checksums=True` accepts the new files (a maintainer's decision).

    Returns:
        The dataset's folder.

    Raises:
        DatasetError: If the source package is missing, or the rebuilt files do not match the
            recorded checksums; the message names the source the files were made with.
    """
    chosen = spec(name)
    folder = datasets_dir() / name
    with tempfile.TemporaryDirectory() as scratch:
        built = Path(scratch)
        try:
            chosen.build(built)
        except ImportError as error:
            raise DatasetError(
                f"{name} is built from {chosen.made_with}, but {error.name or 'it'} is not "
                f"installed ({error}). Install the versions pinned in pyproject.toml."
            ) from error
        if not update_checksums:
            _check_rebuilt(chosen, built, folder)
        folder.mkdir(parents=True, exist_ok=True)
        for file in chosen.files:
            shutil.copyfile(built / file, folder / file)
    if update_checksums:
        _registry.write_checksums(folder, chosen.files)
    return folder


def _check_rebuilt(chosen: DatasetSpec, built: Path, folder: Path) -> None:
    """Raise a `DatasetError` if a rebuilt file differs from its recorded checksum."""
    expected = _registry.recorded_checksums(folder)
    for file in chosen.files:
        if (actual := _registry.sha256(built / file)) == expected.get(file):
            continue
        source = chosen.source()
        why = (
            f"the files were made with {chosen.made_with}, but this is {source}, which produces "
            f"different data. Rebuild with {chosen.made_with}"
            if source != chosen.made_with
            else f"the installed source ({source}) produces different data. Install the versions "
            "pinned in pyproject.toml"
        )
        raise DatasetError(
            f"rebuilt {file} has SHA-256 {actual[:12]}…, but {folder / 'SHA256SUMS'} records "
            f"{expected.get(file, 'nothing')[:12]}…: {why}, or accept the new data with "
            "--update-checksums."
        )
