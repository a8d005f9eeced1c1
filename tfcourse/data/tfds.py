"""TFDS builders for the embedded datasets, so `tfds.load(name, try_gcs=False)` works offline.

Importing this module registers ``mnist5k``, ``names``, ``numwords`` and ``prose`` with TensorFlow
Datasets. Each builder
reads the same checksummed files as `tfcourse.data.load`, so both routes give the same examples.
Introduced in `02_tf_data`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import tensorflow_datasets as tfds

from tfcourse import data
from tfcourse.data import _mnist5k, _names, _numwords, _prose

__all__ = ["Mnist5k", "Names", "Numwords", "Prose"]


class _EmbeddedBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Builds a TFDS dataset from one of the course's embedded datasets."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "First release, from the course's checksummed files."
    }
    NAME_IN_COURSE = ""

    def _features(self) -> tfds.features.FeaturesDict:
        raise NotImplementedError

    def _info(self) -> tfds.core.DatasetInfo:
        spec = data.spec(self.NAME_IN_COURSE)
        # An explicit DatasetInfo(builder=self): the metadata-from-config route fails for builders
        # that do not live in a dataset folder of their own.
        return tfds.core.DatasetInfo(
            builder=self,
            description=spec.summary,
            features=self._features(),
            supervised_keys=spec.supervised_keys,
            homepage="https://www.tensorflow.org/datasets",
        )

    def _split_generators(self, dl_manager: Any) -> dict[str, Iterator[tuple[str, dict[str, Any]]]]:
        del dl_manager  # nothing is downloaded
        return {
            split: self._generate_examples(data.load_numpy(self.NAME_IN_COURSE, split))
            for split in data.spec(self.NAME_IN_COURSE).splits
        }

    def _generate_examples(
        self, columns: dict[str, np.ndarray]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        count = len(next(iter(columns.values())))
        for index in range(count):
            yield str(index), {key: values[index] for key, values in columns.items()}


class Mnist5k(_EmbeddedBuilder):
    """MNIST-5k: 5,000 real MNIST digits, stratified into train/validation/test."""

    NAME_IN_COURSE = _mnist5k.SPEC.name

    def _features(self) -> tfds.features.FeaturesDict:
        return tfds.features.FeaturesDict(
            {
                "image": tfds.features.Image(shape=(28, 28, 1)),
                "label": tfds.features.ClassLabel(num_classes=10),
            }
        )


class Numwords(_EmbeddedBuilder):
    """Numwords: the numbers 0-9,999 written out in eight languages."""

    NAME_IN_COURSE = _numwords.SPEC.name

    def _features(self) -> tfds.features.FeaturesDict:
        return tfds.features.FeaturesDict(
            {
                "number": np.int64,
                "lang": tfds.features.ClassLabel(names=list(_numwords.LANGUAGES)),
                "text": tfds.features.Text(),
            }
        )


class Names(_EmbeddedBuilder):
    """Names: real surnames from ten locales, labelled with their locale."""

    NAME_IN_COURSE = _names.SPEC.name

    def _features(self) -> tfds.features.FeaturesDict:
        return tfds.features.FeaturesDict(
            {
                "name": tfds.features.Text(),
                "locale": tfds.features.Text(),
                "label": tfds.features.ClassLabel(names=list(_names.LOCALES)),
            }
        )


class Prose(_EmbeddedBuilder):
    """Prose: Python's help topics, one English document per topic."""

    NAME_IN_COURSE = _prose.SPEC.name

    def _features(self) -> tfds.features.FeaturesDict:
        return tfds.features.FeaturesDict(
            {"topic": tfds.features.Text(), "text": tfds.features.Text()}
        )
