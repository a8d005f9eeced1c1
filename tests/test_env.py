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


def test_setup_turns_tf32_off_and_reports_it(tf):
    tf.config.experimental.enable_tensor_float_32_execution(True)  # TensorFlow's own default
    report = tfcourse.setup(seed=2)
    assert not tf.config.experimental.tensor_float_32_execution_enabled()
    assert report.tf32 is False and report.memory_growth is True


def test_configure_gpus_turns_memory_growth_on_for_every_gpu(tf, monkeypatch):
    gpus = ["GPU:0", "GPU:1"]
    grown = []
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: gpus)
    monkeypatch.setattr(
        tf.config.experimental, "set_memory_growth", lambda gpu, on: grown.append((gpu, on))
    )
    assert tfcourse.configure_gpus() is True
    assert grown == [("GPU:0", True), ("GPU:1", True)]


@pytest.mark.parametrize(
    "refusal",
    [
        RuntimeError("Physical devices cannot be modified after being initialized"),
        ValueError("Cannot set memory growth on device when virtual devices configured"),
    ],
    ids=["runtime started", "gpu split into logical devices"],
)
def test_configure_gpus_says_when_memory_growth_can_no_longer_be_set(tf, monkeypatch, refusal):
    def refuse(gpu, on):
        raise refusal

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"])
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", refuse)
    monkeypatch.setattr(tf.config.experimental, "get_memory_growth", lambda gpu: False)
    assert tfcourse.configure_gpus() is False
    monkeypatch.setattr(tf.config.experimental, "get_memory_growth", lambda gpu: True)
    assert tfcourse.configure_gpus() is True  # it was on already


def test_a_gpu_report_names_tf32_and_memory_growth():
    report = tfcourse.DeviceReport(
        seed=1, deterministic=True, python="3.11.7", tensorflow="2.21.0", keras="3.15.1",
        cpus=8, gpus=("/physical_device:GPU:0",), tf32=False, memory_growth=False,
    )  # fmt: skip
    assert "TF32 off, memory growth off (restart the kernel, then setup())" in str(report)
    cpu_only = tfcourse.DeviceReport(1, True, "3.11.7", "2.21.0", "3.15.1", 2)
    assert "TF32" not in str(cpu_only)  # the same on every CPU-only machine


def test_child_env_follows_this_process_determinism(tf):
    tfcourse.setup(seed=1, deterministic=False)
    assert tfcourse.child_env()["TF_DETERMINISTIC_OPS"] == "0"
    tfcourse.setup(seed=1)
    assert tfcourse.child_env()["TF_DETERMINISTIC_OPS"] == "1"


def test_child_env_carries_determinism_and_gpu_safety_and_keeps_the_profile(monkeypatch, tf):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    env = tfcourse.child_env()
    assert env["TF_DETERMINISTIC_OPS"] == "1" and env["NVIDIA_TF32_OVERRIDE"] == "0"
    assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" and env["TF_ENABLE_ONEDNN_OPTS"] == "0"
    assert "CUDA_VISIBLE_DEVICES" not in env
    hidden = tfcourse.child_env(hide_gpus=True, TF_CPP_MIN_LOG_LEVEL="0")
    assert hidden["CUDA_VISIBLE_DEVICES"] == "" and hidden["TF_CPP_MIN_LOG_LEVEL"] == "0"
    with pytest.raises(TypeError, match='environment values must be strings, for example "0"'):
        tfcourse.child_env(TF_CPP_MIN_LOG_LEVEL=0)


@pytest.mark.slow
def test_a_child_started_with_child_env_has_op_determinism_without_calling_setup():
    import subprocess
    import sys

    code = (
        "from tensorflow.python.framework import config\n"
        "import tensorflow as tf\n"
        "print(config.is_op_determinism_enabled(), len(tf.config.list_physical_devices('GPU')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=tfcourse.child_env(hide_gpus=True),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.split()[-2:] == ["True", "0"]


@pytest.mark.slow
def test_setup_leaves_the_runtime_uninitialised_so_devices_can_still_be_configured():
    import subprocess
    import sys

    code = (
        "import tfcourse\n"
        "tfcourse.setup(seed=1)\n"
        "import tensorflow as tf\n"
        "cpu = tf.config.list_physical_devices('CPU')[0]\n"
        "two = [tf.config.LogicalDeviceConfiguration()] * 2\n"
        "tf.config.set_logical_device_configuration(cpu, two)\n"
        "print(len(tf.config.list_logical_devices('CPU')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=tfcourse.child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-1500:]
    assert done.stdout.split()[-1] == "2"
