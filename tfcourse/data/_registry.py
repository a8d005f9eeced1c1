"""The embedded datasets: where their files live, and checking the files against their checksums."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfcourse._paths import repo_root

Columns = dict[str, np.ndarray]

#: Overrides where the prepared dataset files are looked for.
DATA_DIR_ENV = "TFCOURSE_DATA_DIR"
CHECKSUM_FILE = "SHA256SUMS"


class DatasetError(RuntimeError):
    """A dataset file is missing, corrupted or unreadable. The message says how to fix it."""


@dataclass(frozen=True)
class DatasetSpec:
    """How one embedded dataset is prepared and read.

    Attributes:
        name: The name `load()` takes, for example ``"mnist5k"``.
        summary: One line for listings.
        files: The prepared files, relative to the dataset's folder.
        splits: The split names, in order.
        supervised_keys: The (input, target) features that ``as_supervised=True`` returns, or None
            for a dataset without a target (the text of a language model).
        build: Writes the prepared files into a folder, from data an installed package ships.
        read: Reads one split from a folder into NumPy columns, one array per feature.
        made_with: The source the committed files were built from, for example ``"faker 40.63.0"``.
        source: What this environment would build them from now, in the same words as `made_with`.
        classes: The class names of the ``label`` feature, in label order; empty if there is none.
    """

    name: str
    summary: str
    files: tuple[str, ...]
    splits: tuple[str, ...]
    supervised_keys: tuple[str, str] | None
    build: Callable[[Path], None]
    read: Callable[[Path, str], Columns]
    made_with: str
    source: Callable[[], str]
    classes: tuple[str, ...] = ()


def package_version(distribution: str) -> str:
    """A source package and its installed version, for example ``"faker 40.63.0"``."""
    try:
        return f"{distribution} {importlib.metadata.version(distribution)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{distribution} (not installed)"


def python_version() -> str:
    """This interpreter's version, for example ``"Python 3.11.7"``."""
    return f"Python {platform.python_version()}"


def datasets_dir() -> Path:
    """The folder with one sub-folder per dataset: `$TFCOURSE_DATA_DIR`, else `datasets/`."""
    override = os.environ.get(DATA_DIR_ENV)
    return Path(override) if override else repo_root() / "datasets"


def sha256(path: Path) -> str:
    """The SHA-256 of a file, as lowercase hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def recorded_checksums(folder: Path) -> dict[str, str]:
    """File name to SHA-256, read from the folder's `SHA256SUMS` (the format `sha256sum` writes)."""
    path = folder / CHECKSUM_FILE
    if not path.is_file():
        raise DatasetError(
            f"{path} is missing, so the dataset cannot be verified. "
            f"Restore it with `git checkout -- {folder}`."
        )
    sums = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) != 64:
            raise DatasetError(f"{path} line {number} is not '<sha256>  <file>': {line!r}")
        sums[parts[1].lstrip("*")] = parts[0]
    return sums


def write_checksums(folder: Path, files: tuple[str, ...]) -> None:
    """Record the SHA-256 of `files` in the folder's `SHA256SUMS`."""
    lines = [f"{sha256(folder / name)}  {name}\n" for name in files]
    (folder / CHECKSUM_FILE).write_text("".join(lines))


def verify(spec: DatasetSpec, folder: Path | None = None) -> list[str]:
    """Check a dataset's prepared files against `SHA256SUMS`.

    Returns:
        One message per problem, each naming the file and the command that fixes it; empty if the
        files are intact.
    """
    folder = folder or datasets_dir() / spec.name
    fix = (
        f"Restore it with `git checkout -- {folder}` "
        f"or rebuild it with `tfcourse data prepare {spec.name}`."
    )
    try:
        expected = recorded_checksums(folder)
    except DatasetError as error:
        return [str(error)]
    problems = []
    for name in spec.files:
        path = folder / name
        if not path.is_file():
            problems.append(f"{path} is missing. {fix}")
        elif name not in expected:
            problems.append(f"{path} has no checksum in {folder / CHECKSUM_FILE}. {fix}")
        elif (actual := sha256(path)) != expected[name]:
            problems.append(
                f"{path} is corrupted: its SHA-256 is {actual[:12]}…, expected "
                f"{expected[name][:12]}…. {fix}"
            )
    return problems
