"""tfcourse.machine: what a speed figure depends on, read from this machine."""

import os

import pytest

import tfcourse
from tfcourse import machine


def test_report_names_cpu_cores_features_and_kernel_libraries():
    report = tfcourse.machine_report()
    assert report.cpu and report.architecture
    assert report.cores == len(os.sched_getaffinity(0))
    text = str(report)
    assert f"{report.cores} usable core(s)" in text and "oneDNN" in text and "LiteRT" in text


@pytest.mark.parametrize(
    ("flags", "arch", "expected"),
    [
        ("fma avx2 sse4_2", "x86_64", ("AVX2", "FMA")),
        ("avx2 fma avx512f avx512_vnni amx_tile", "x86_64", ("AVX2", "FMA", "AVX-512",
                                                              "AVX-512 VNNI", "AMX")),
        ("fp asimd asimddp i8mm sve", "aarch64", ("NEON", "dot product", "int8 matmul", "SVE")),
        ("sse sse2", "x86_64", ()),
    ],
)  # fmt: skip
def test_cpu_features_reads_the_flags_of_each_architecture(flags, arch, expected):
    assert machine.cpu_features(set(flags.split()), arch) == expected


def test_this_machines_features_match_proc_cpuinfo():
    flags = set(machine._cpuinfo().get("flags", "").split())
    report = tfcourse.machine_report()
    if "avx2" in flags:
        assert "AVX2" in report.features
    if "avx512f" not in flags:
        assert "AVX-512" not in report.features


@pytest.mark.parametrize(
    ("value", "arch", "expected"),
    [("0", "x86_64", False), ("1", "aarch64", True), ("", "x86_64", True), ("", "aarch64", False)],
)
def test_onednn_follows_the_variable_then_the_platform_default(value, arch, expected, monkeypatch):
    monkeypatch.setattr(machine.platform, "system", lambda: "Linux")
    assert machine.onednn_enabled(arch, {"TF_ENABLE_ONEDNN_OPTS": value}) is expected


def test_onednn_isa_cap_is_reported(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    report = tfcourse.machine_report()
    assert report.onednn_isa_cap == "AVX2" and "(capped at AVX2)" in str(report)


def test_tensorflow_agrees_with_the_report_on_onednn(tf):
    assert tfcourse.machine_report().onednn is machine.onednn_enabled(
        None, {"TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "")}
    )


def test_cpuinfo_is_read_from_the_first_processor(tmp_path, monkeypatch):
    fake = tmp_path / "cpuinfo"
    fake.write_text(
        "processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu avx2 fma avx512f\n\n"
        "processor\t: 1\nmodel name\t: Other\nflags\t\t: fpu\n"
    )
    real_open = open
    monkeypatch.setattr(
        "builtins.open",
        lambda path, *a, **k: real_open(fake if path == "/proc/cpuinfo" else path, *a, **k),
    )
    monkeypatch.setattr(machine.platform, "machine", lambda: "x86_64")
    report = tfcourse.machine_report()
    assert report.cpu == "Test CPU 9000"
    assert report.features == ("AVX2", "FMA", "AVX-512")


def test_a_machine_without_proc_cpuinfo_is_reported_plainly(monkeypatch):
    monkeypatch.setattr(machine, "_cpuinfo", dict)
    monkeypatch.setattr(machine, "_sysctl", lambda name: "")
    monkeypatch.setattr(machine.platform, "machine", lambda: "AMD64")
    monkeypatch.setattr(machine.platform, "processor", lambda: "")
    monkeypatch.setattr(machine.platform, "system", lambda: "Windows")
    report = tfcourse.machine_report()
    assert report.cpu == "unknown CPU" and report.features == ()
    assert "ISA features: not known on this system" in str(report)


def test_doctor_names_the_cpu_its_features_and_onednn():
    from tfcourse import doctor

    report = machine.MachineReport("Test CPU", "x86_64", 4, ("AVX2", "AMX"), True, "AVX2", True)
    finding = doctor.check_machine(report)
    assert finding.name == "Machine" and finding.status == doctor.OK
    assert finding.detail == "Test CPU (x86_64); AVX2, AMX; oneDNN on (capped at AVX2)"
