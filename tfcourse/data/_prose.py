"""Prose: the 79 help topics of Python's own documentation (`pydoc_data.topics`), real English.

A character-level language model reads it. Whole topics go to one split, so validation text is
never a shifted copy of training text. Typographic punctuation becomes ASCII, so the text is
printable ASCII and newlines (94 characters, all of them in the training split); nothing else
changes.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from tfcourse.data._registry import Columns, DatasetError, DatasetSpec, python_version

SPLITS = ("train", "validation", "test")
HELD_OUT = 0.05  # of the characters, at most, for validation and for test
SEED = 2017
COLUMNS = ("topic", "text")
#: The non-ASCII characters of Python 3.11.7's topics (quotes, dashes, an ellipsis, "ß", "°").
ASCII = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2026": "...", "\u2014": "--"}
    | {"\u2013": "-", "\u00df": "ss", "\u00b0": "deg"}
)


def file_name(split: str) -> str:
    """The prepared file of one split, for example ``"train.jsonl.gz"``."""
    return f"{split}.jsonl.gz"


def clean(text: str) -> str:
    """Map the few non-ASCII characters to ASCII; any other one becomes ``"?"``."""
    text = text.translate(ASCII)
    return "".join(c if c.isascii() else "?" for c in text)


def topics() -> dict[str, str]:
    """Topic name to cleaned text, from this Python's `pydoc_data.topics`."""
    from pydoc_data.topics import topics as source

    return {name: clean(source[name]) for name in sorted(source)}


def split_topics(texts: dict[str, str], *, seed: int = SEED) -> dict[str, list[str]]:
    """Whole topics per split, each split's list sorted.

    In a shuffled order, a topic goes to test, else to validation, while that split stays within
    `HELD_OUT` of all the characters; the rest is training text.
    """
    budget = HELD_OUT * sum(len(text) for text in texts.values())
    names = sorted(texts)
    chosen: dict[str, list[str]] = {split: [] for split in SPLITS}
    size = dict.fromkeys(SPLITS, 0)
    for index in np.random.default_rng(seed).permutation(len(names)):
        name = names[index]
        split = next(
            (s for s in ("test", "validation") if size[s] + len(texts[name]) <= budget), "train"
        )
        chosen[split].append(name)
        size[split] += len(texts[name])
    return {split: sorted(found) for split, found in chosen.items()}


def build(folder: Path) -> None:
    """Write one gzipped JSON-lines file per split, ``{"topic": ..., "text": ...}`` per topic."""
    texts = topics()
    for split, names in split_topics(texts).items():
        lines = [json.dumps({"topic": name, "text": texts[name]}) + "\n" for name in names]
        with gzip.GzipFile(folder / file_name(split), "wb", mtime=0) as handle:
            handle.write("".join(lines).encode("utf-8"))


def read(folder: Path, split: str) -> Columns:
    """Read one split: ``topic`` and ``text``, arrays of `str` (dtype object), one row per topic."""
    path = folder / file_name(split)
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle]
        rows = [(record["topic"], record["text"]) for record in records]
    except (OSError, EOFError, ValueError, KeyError, TypeError) as error:
        raise DatasetError(
            f"{path} could not be read ({error!r}). Rebuild it with `tfcourse data prepare prose`."
        ) from error
    return {
        column: np.array([row[i] for row in rows], dtype=object) for i, column in enumerate(COLUMNS)
    }


SPEC = DatasetSpec(
    name="prose",
    summary="Python's help topics (pydoc_data.topics), 465k characters of English; whole topics "
    "split ~90/5/5",
    files=tuple(file_name(split) for split in SPLITS),
    splits=SPLITS,
    supervised_keys=None,
    build=build,
    read=read,
    made_with="Python 3.11.7",
    source=python_version,
)
