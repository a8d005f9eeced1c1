"""tfcourse.env.setup: seeding, determinism and the device report."""

import random

import numpy as np
import pytest

import tfcourse


def test_setup_makes_python_numpy_and_tensorflow_draws_repeat(tf):
    def draws():
        return random.random(), np.random.rand(), float(tf.random.uniform([]))

    tfcourse.setup(seed=5)
    first = draws()
    tfcourse.setup(seed=5)
    assert draws() == first
    tfcourse.setup(seed=6)
    assert draws() != first


def test_setup_turns_op_determinism_on_and_off(tf):
    from tensorflow.python.framework import config as tf_config

    tfcourse.setup(seed=1, deterministic=False)
    assert not tf_config.is_op_determinism_enabled()
    report = tfcourse.setup(seed=1)
    assert tf_config.is_op_determinism_enabled()
    assert report.deterministic


def test_report_names_versions_and_devices(tf):
    report = tfcourse.setup(seed=3)
    assert report.tensorflow == tf.__version__
    assert report.keras.startswith("3.")
    assert report.cpus >= 1
    assert report.accelerator == ("GPU" if report.gpus else "CPU")
    assert "seed 3, op determinism on" in str(report)
    assert f"TensorFlow {tf.__version__}" in str(report)


@pytest.mark.parametrize("seed", ["42", 4.2, True, None])
def test_setup_rejects_a_seed_that_is_not_an_int(seed):
    with pytest.raises(TypeError, match="seed must be an int"):
        tfcourse.setup(seed=seed)


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_setup_rejects_a_seed_out_of_range(seed):
    with pytest.raises(ValueError, match="between 0 and 2\\*\\*32 - 1"):
        tfcourse.setup(seed=seed)


def test_check_versions_is_silent_on_the_verified_versions(monkeypatch, capsys):
    monkeypatch.delenv("TFCOURSE_ALLOW_UNTESTED", raising=False)
    assert tfcourse.check_versions(tensorflow="2.21.3", keras="3.15.1") is None
    assert capsys.readouterr() == ("", "")


def test_check_versions_names_found_verified_fix_and_switch(monkeypatch):
    monkeypatch.delenv("TFCOURSE_ALLOW_UNTESTED", raising=False)
    with pytest.raises(tfcourse.UntestedVersionError) as raised:
        tfcourse.check_versions(tensorflow="2.23.0-dev20261026", keras="3.16.0.dev2026")
    message = str(raised.value)
    assert isinstance(raised.value, RuntimeError)
    assert message.startswith(
        "TensorFlow 2.23.0-dev20261026, but the notebooks are verified with 2.21.x"
    )
    assert 'pip install "tensorflow~=2.21.0"' in message
    assert "TFCOURSE_ALLOW_UNTESTED=1" in message and "\n" not in message


def test_check_versions_rejects_keras_2(monkeypatch):
    monkeypatch.delenv("TFCOURSE_ALLOW_UNTESTED", raising=False)
    with pytest.raises(
        tfcourse.UntestedVersionError, match=r"Keras 2\.15\.0, but the course needs Keras 3"
    ):
        tfcourse.check_versions(tensorflow="2.21.0", keras="2.15.0")


def test_check_versions_only_warns_when_untested_versions_are_allowed(monkeypatch):
    monkeypatch.setenv("TFCOURSE_ALLOW_UNTESTED", "1")
    with pytest.warns(tfcourse.UntestedVersionWarning, match=r"TensorFlow 2\.23\.0, but"):
        assert tfcourse.check_versions(tensorflow="2.23.0", keras="3.16.0") is None
