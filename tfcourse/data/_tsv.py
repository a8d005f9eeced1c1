"""Gzipped, tab-separated files with a header row: how the text datasets are stored."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from tfcourse.data._registry import Columns, DatasetError


def write(path: Path, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write the header and the rows, byte for byte the same on every run (gzip without a time)."""
    text = io.StringIO()
    writer = csv.writer(text, delimiter="\t", lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    with gzip.GzipFile(path, "wb", mtime=0) as handle:
        handle.write(text.getvalue().encode("utf-8"))


def read(
    path: Path, columns: Sequence[str], parse: Callable[[list[list[str]]], Columns], *, name: str
) -> Columns:
    """Read the rows under the expected header and `parse` them into columns.

    Raises:
        DatasetError: If the file is missing, damaged, has another header or rows that `parse`
            rejects; the message names the file and the `tfcourse data prepare` command.
    """
    try:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle, delimiter="\t"))
        if not rows or tuple(rows[0]) != tuple(columns):
            raise ValueError(f"the header is not {tuple(columns)}")
        return parse(rows[1:])
    except (OSError, EOFError, ValueError, IndexError, UnicodeDecodeError) as error:
        raise DatasetError(
            f"{path} could not be read ({error}). Rebuild it with `tfcourse data prepare {name}`."
        ) from error
