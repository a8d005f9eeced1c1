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
