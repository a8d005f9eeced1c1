"""tfcourse.doctor: each check reports what it found and, for a problem, the fix."""

import importlib.util

from tfcourse import doctor


def test_supported_python_passes_and_old_python_fails_with_a_fix():
    assert doctor.check_python((3, 11, 7)).status == "ok"
    finding = doctor.check_python((3, 8, 10))
    assert finding.status == "fail"
    assert "3.8.10" in finding.detail and "environment.yml" in finding.fix


def test_other_tensorflow_series_fails_with_the_pip_command(monkeypatch):
    monkeypatch.delenv("TFCOURSE_ALLOW_UNTESTED", raising=False)
    assert doctor.check_tensorflow("2.21.0").status == "ok"
    finding = doctor.check_tensorflow("2.15.1")
    assert finding.status == "fail" and finding.fix == 'pip install "tensorflow~=2.21.0"'
    assert doctor.check_tensorflow("2.210.0").status == "fail"


def test_untested_versions_only_warn_when_the_learner_allows_them(monkeypatch):
    monkeypatch.setenv("TFCOURSE_ALLOW_UNTESTED", "1")
    assert doctor.check_tensorflow("2.23.0-dev20261026").status == "warn"
    assert doctor.check_keras("4.0.0", "4.0.0").status == "warn"
    assert doctor.check_keras("3.15.1", "2.15.0").status == "fail"  # legacy tf.keras: a setup error
    monkeypatch.setenv("TFCOURSE_ALLOW_UNTESTED", "0")
    assert doctor.check_tensorflow("2.23.0").status == "fail"


def test_a_failed_tensorflow_check_skips_the_checks_that_import_it(monkeypatch):
    monkeypatch.setattr(
        doctor, "check_tensorflow", lambda: doctor.Finding("TensorFlow", "fail", "x")
    )
    assert "Keras" not in [finding.name for finding in doctor.run_checks()]


def test_keras_2_or_legacy_tf_keras_fails(monkeypatch):
    monkeypatch.delenv("TFCOURSE_ALLOW_UNTESTED", raising=False)
    assert doctor.check_keras("3.15.1", "3.15.1").status == "ok"
    assert doctor.check_keras("2.15.0", "2.15.0").status == "fail"
    legacy = doctor.check_keras("3.15.1", "2.15.0")
    assert legacy.status == "fail" and "TF_USE_LEGACY_KERAS" in legacy.fix


def test_no_gpu_is_fine_and_a_hidden_gpu_is_explained(monkeypatch):
    assert doctor.check_devices([]).status == "ok"
    assert (
        "GPU(s) /physical_device:GPU:0" in doctor.check_devices(["/physical_device:GPU:0"]).detail
    )
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert "CUDA_VISIBLE_DEVICES='' hides GPUs" in doctor.check_devices([]).detail


def test_low_memory_is_a_warning_with_advice():
    assert doctor.check_memory(16.0).status == "ok"
    low = doctor.check_memory(1.5)
    assert low.status == "warn" and "1.5 GiB free" in low.detail and low.fix
    assert doctor.check_memory(None).status in {"ok", "warn"}


def test_a_corrupted_dataset_fails_the_doctor(data_copy):
    assert doctor.check_datasets().status == "ok"
    (data_copy / "mnist5k" / "mnist5k.npz").write_bytes(b"broken")
    finding = doctor.check_datasets()
    assert finding.status == "fail" and "mnist5k.npz is corrupted" in finding.detail


def test_finding_prints_the_fix_under_the_problem():
    text = str(doctor.Finding("Python", "fail", "3.8", "use 3.11"))
    assert text == "[FAIL] Python: 3.8\n       fix: use 3.11"


def test_run_checks_covers_every_area(monkeypatch):
    # Whatever TensorFlow is installed (a nightly, say), the report has the same areas.
    monkeypatch.setattr(
        doctor, "check_tensorflow", lambda: doctor.Finding("TensorFlow", "ok", "2.21.0")
    )
    monkeypatch.setattr(doctor, "check_keras", lambda: doctor.Finding("Keras", "ok", "3.15.0"))
    monkeypatch.setattr(
        doctor, "check_devices", lambda: doctor.Finding("Devices", "ok", "2 CPU cores")
    )
    names = [finding.name for finding in doctor.run_checks()]
    assert names == [
        "Python",
        "TensorFlow",
        "Keras",
        "Devices",
        "Machine",
        "Memory",
        "Datasets",
        "TensorBoard",
        "LiteRT",
        "LiteRT quantizer",
    ]


def test_a_missing_optional_package_is_a_warning_with_the_install_command(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorboard" else real_find_spec(name, *a),
    )
    finding = doctor.check_tensorboard()
    assert finding.status == doctor.WARN
    assert finding.detail == "tensorboard is not installed (needed from chapter 03 on)"
    assert finding.fix == 'pip install "tensorboard~=2.21.0"'
    assert doctor.check_litert().detail == "ai-edge-litert installed"
    assert doctor.check_litert_quantizer().detail == "litert-quantizer installed"
