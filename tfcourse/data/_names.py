"""Names: real surnames from ten locales that faker ships, for guessing a name's language.

The lists are read from faker's person providers directly (never sampled at random), so a build is
the same on every run. A surname found in two locales is dropped: no model can get it right.
"""

from __future__ import annotations

import importlib
from collections import Counter
from pathlib import Path

import numpy as np

from tfcourse.data import _tsv
from tfcourse.data._registry import Columns, DatasetSpec, package_version

#: Locale to the faker `Provider` attributes that hold its surnames. Mostly Latin script with close
#: neighbours (es/it/fr, de/nl/sv, cs/pl), so the confusions mean something.
SOURCES = {
    "cs_CZ": ("last_names",),
    "de_DE": ("last_names",),
    "en_US": ("last_names",),
    "es_ES": ("last_names",),
    "fi_FI": ("last_names",),
    "fr_FR": ("last_names",),
    "it_IT": ("last_names",),
    "nl_NL": ("last_names",),
    "pl_PL": ("unisex_last_names", "male_last_names"),
    "sv_SE": ("last_names",),
}
LOCALES = tuple(SOURCES)
CAP = 1_000  # names per locale at most; pl_PL alone has 3,834
HELD_OUT = 10  # validation and test each get 1/10 of every locale (rounded down)
SPLITS = ("train", "validation", "test")
SEED = 2017
COLUMNS = ("name", "locale")


def file_name(split: str) -> str:
    """The prepared file of one split, for example ``"train.tsv.gz"``."""
    return f"{split}.tsv.gz"


def surnames() -> dict[str, list[str]]:
    """Each locale's surnames from faker, sorted, without those that occur in another locale."""
    lists = {}
    for locale, attributes in SOURCES.items():
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        lists[locale] = sorted(
            {name for attribute in attributes for name in getattr(provider, attribute)}
        )
    counts = Counter(name for names in lists.values() for name in names)
    return {locale: [n for n in names if counts[n] == 1] for locale, names in lists.items()}


def split_rows(
    lists: dict[str, list[str]], *, seed: int = SEED
) -> dict[str, list[tuple[str, str]]]:
    """Stratified, shuffled (name, locale) rows: each locale is capped, then split 80/10/10."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[tuple[str, str]]] = {split: [] for split in SPLITS}
    for locale, names in lists.items():
        chosen = [names[i] for i in rng.permutation(len(names))[:CAP]]
        held = len(chosen) // HELD_OUT
        parts["validation"] += [(name, locale) for name in chosen[:held]]
        parts["test"] += [(name, locale) for name in chosen[held : 2 * held]]
        parts["train"] += [(name, locale) for name in chosen[2 * held :]]
    return {split: [rows[i] for i in rng.permutation(len(rows))] for split, rows in parts.items()}


def build(folder: Path) -> None:
    """Write one gzipped TSV per split (name, locale), byte for byte the same on every run."""
    for split, rows in split_rows(surnames()).items():
        _tsv.write(folder / file_name(split), COLUMNS, rows)


def _parse(body: list[list[str]]) -> Columns:
    return {
        "name": np.array([row[0] for row in body]),
        "locale": np.array([row[1] for row in body]),
        "label": np.array([LOCALES.index(row[1]) for row in body], dtype=np.int64),
    }


def read(folder: Path, split: str) -> Columns:
    """Read one split: ``name`` and ``locale`` (`str`), ``label`` (int64, the index in LOCALES)."""
    return _tsv.read(folder / file_name(split), COLUMNS, _parse, name="names")


SPEC = DatasetSpec(
    name="names",
    summary="6,388 real surnames from 10 locales (faker), to classify by language; 80/10/10",
    files=tuple(file_name(split) for split in SPLITS),
    splits=SPLITS,
    supervised_keys=("name", "label"),
    build=build,
    read=read,
    made_with="faker 40.63.0",
    source=lambda: package_version("faker"),
    classes=LOCALES,
)
