"""Numwords: the numbers 0-9,999 written out in eight languages and five scripts, by num2words.

Every language shares the same split of the numbers, so a number in the test split is never seen
in training in any language: a fair test for translation and for reading numbers back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfcourse.data import _tsv
from tfcourse.data._registry import Columns, DatasetSpec, package_version

#: Latin, Latin with diacritics, Cyrillic, Arabic (right to left) and Japanese kanji.
LANGUAGES = ("en", "fr", "de", "es", "tr", "ru", "ar", "ja")
NUMBERS = 10_000
SPLITS = {"train": 8_000, "validation": 1_000, "test": 1_000}
SEED = 2017
COLUMNS = ("number", "lang", "text")


def file_name(split: str) -> str:
    """The prepared file of one split, for example ``"train.tsv.gz"``."""
    return f"{split}.tsv.gz"


def split_numbers(*, seed: int = SEED) -> dict[str, np.ndarray]:
    """A shuffled partition of 0..9,999 into the splits, each sorted for readable files."""
    order = np.random.default_rng(seed).permutation(NUMBERS)
    bounds = np.cumsum([0, *SPLITS.values()])
    return {
        split: np.sort(order[start:stop])
        for split, start, stop in zip(SPLITS, bounds[:-1], bounds[1:], strict=True)
    }


def build(folder: Path) -> None:
    """Write one gzipped TSV per split (number, lang, text), byte for byte the same on every run."""
    from num2words import num2words

    for split, numbers in split_numbers().items():
        rows = (
            (int(number), lang, num2words(int(number), lang=lang))
            for number in numbers
            for lang in LANGUAGES
        )
        _tsv.write(folder / file_name(split), COLUMNS, rows)


def _parse(body: list[list[str]]) -> Columns:
    return {
        "number": np.array([int(row[0]) for row in body], dtype=np.int64),
        "lang": np.array([row[1] for row in body]),
        "text": np.array([row[2] for row in body]),
    }


def read(folder: Path, split: str) -> Columns:
    """Read one split: ``number`` int64, ``lang`` and ``text`` as arrays of `str`."""
    return _tsv.read(folder / file_name(split), COLUMNS, _parse, name="numwords")


SPEC = DatasetSpec(
    name="numwords",
    summary="0-9,999 written out in 8 languages (num2words), split 8,000/1,000/1,000 numbers",
    files=tuple(file_name(split) for split in SPLITS),
    splits=tuple(SPLITS),
    supervised_keys=("text", "number"),
    build=build,
    read=read,
    made_with="num2words 0.5.14",
    source=lambda: package_version("num2words"),
)
