"""Describe the machine a figure was measured on: CPU, cores, ISA features and kernel libraries.

A speed-up measured on one CPU can be a slow-down on another: it depends on the instruction set
(AVX2, AVX-512, VNNI, AMX on x86; NEON, dot product, SVE on arm64), on the kernel library that runs
the op (oneDNN or TensorFlow's own Eigen kernels; XNNPACK or LiteRT's built-in ones) and on the
cores a process may use. Chapters print `machine_report()` next to such figures, and
`tfcourse doctor` reports it. Introduced in `00_welcome_and_setup`.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field

#: ISA features that change which kernels TensorFlow, oneDNN and XNNPACK pick, in the order shown,
#: with the /proc/cpuinfo flag that names each one.
X86_FEATURES = {
    "AVX2": "avx2",
    "FMA": "fma",
    "AVX-512": "avx512f",
    "AVX-512 VNNI": "avx512_vnni",
    "AVX-VNNI": "avx_vnni",
    "AVX-512 BF16": "avx512_bf16",
    "AMX": "amx_tile",
}
ARM_FEATURES = {
    "NEON": "asimd",
    "dot product": "asimddp",
    "FP16": "asimdhp",
    "int8 matmul": "i8mm",
    "BF16": "bf16",
    "SVE": "sve",
}
#: Caps oneDNN's instruction set, for example to ``AVX2`` on an AVX-512 machine (oneDNN's own knob).
ONEDNN_ISA_ENV = "ONEDNN_MAX_CPU_ISA"


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields from /proc/cpuinfo (Linux); empty elsewhere."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.strip():
                    if fields:
                        break
                    continue
                key, _, value = line.partition(":")
                fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        return {}
    return fields


def _sysctl(name: str) -> str:
    """One macOS sysctl value, or ``""`` where there is none."""
    try:
        done = subprocess.run(
            ["sysctl", "-n", name], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def cpu_features(flags: set[str], machine: str) -> tuple[str, ...]:
    """The ISA features in `flags` (lower-case /proc/cpuinfo flags) that matter for the kernels."""
    table = ARM_FEATURES if machine.lower() in {"aarch64", "arm64"} else X86_FEATURES
    return tuple(name for name, flag in table.items() if flag in flags)


def onednn_enabled(machine: str | None = None, environ: dict[str, str] | None = None) -> bool:
    """Whether TensorFlow uses oneDNN's kernels.

    With TensorFlow already imported, TensorFlow's own answer (which also knows its arm64 rules).
    Otherwise from `TF_ENABLE_ONEDNN_OPTS`, or the default: on for Linux x86-64. Setting
    ``TF_ENABLE_ONEDNN_OPTS=0`` before TensorFlow is imported gives its own Eigen kernels instead.
    """
    if machine is None and environ is None and "tensorflow" in sys.modules:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    environ = dict(os.environ) if environ is None else environ
    machine = (machine or platform.machine()).lower()
    setting = environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower()
    if setting in {"0", "false", "no", "off"}:
        return False
    if setting in {"1", "true", "yes", "on"}:
        return True
    return machine in {"x86_64", "amd64"} and platform.system() == "Linux"


def usable_cores() -> int:
    """The cores this process may run on (its affinity), which `taskset` or a container can cap."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


@dataclass(frozen=True)
class MachineReport:
    """What a speed figure depends on.

    Attributes:
        cpu: The CPU model, for example ``"Intel(R) Xeon(R) Processor"``.
        architecture: ``"x86_64"``, ``"aarch64"`` or ``"arm64"``.
        cores: The cores this process may use.
        features: The ISA features present, from `X86_FEATURES` or `ARM_FEATURES`.
        onednn: Whether TensorFlow runs oneDNN's kernels.
        onednn_isa_cap: ``ONEDNN_MAX_CPU_ISA`` when set, else ``""``.
        xnnpack: Whether the LiteRT interpreter is installed; it applies XNNPACK by default.
        features_known: Whether the CPU's features could be read at all (not on Windows).
    """

    cpu: str
    architecture: str
    cores: int
    features: tuple[str, ...] = field(default_factory=tuple)
    onednn: bool = False
    onednn_isa_cap: str = ""
    xnnpack: bool = False
    features_known: bool = True

    def __str__(self) -> str:
        features = ", ".join(self.features) or (
            "none of AVX2, AVX-512, NEON and the others"
            if self.features_known
            else "not known on this system"
        )
        cap = f" (capped at {self.onednn_isa_cap})" if self.onednn_isa_cap else ""
        onednn = f"oneDNN {'on' if self.onednn else 'off'}{cap}"
        litert = "LiteRT: XNNPACK by default" if self.xnnpack else "LiteRT: not installed"
        return "\n".join(
            [
                f"CPU: {self.cpu} ({self.architecture}), {self.cores} usable core(s)",
                f"ISA features: {features}",
                f"kernels: TensorFlow with {onednn}; {litert}",
            ]
        )


def machine_report() -> MachineReport:
    """Describe this machine's CPU, cores, ISA features and kernel libraries. Imports nothing heavy.

    Returns:
        A `MachineReport`; print it next to any figure that depends on the hardware.

    Introduced in `00_welcome_and_setup`.
    """
    import importlib.util

    machine = platform.machine() or "unknown"
    info = _cpuinfo()
    cpu = info.get("model name") or _sysctl("machdep.cpu.brand_string") or platform.processor()
    flags = set((info.get("flags") or info.get("features") or "").lower().split())
    if not flags and platform.system() == "Darwin" and machine == "arm64":
        flags = {"asimd", "asimddp", "asimdhp"}  # every Apple Silicon core has these
    return MachineReport(
        cpu=cpu or "unknown CPU",
        architecture=machine,
        cores=usable_cores(),
        features=cpu_features(flags, machine),
        onednn=onednn_enabled(),
        onednn_isa_cap=os.environ.get(ONEDNN_ISA_ENV, ""),
        xnnpack=importlib.util.find_spec("ai_edge_litert") is not None,
        features_known=bool(flags),
    )
