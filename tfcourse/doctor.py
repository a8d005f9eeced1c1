"""`tfcourse doctor`: check that this machine can run the course, and say how to fix what can't.

Each check is a small function that returns a `Finding`, so a test can feed it a bad version.
Introduced in `00_welcome_and_setup`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from dataclasses import dataclass

from tfcourse._stderr import filtered_stderr
from tfcourse.machine import MachineReport, machine_report, usable_cores

OK, WARN, FAIL = "ok", "warn", "fail"
PYTHON_RANGE = ((3, 10), (3, 13))  # oldest and newest supported (major, minor)
TF_SERIES = "2.21"
MIN_MEMORY_GIB = 4.0
#: Set to 1 to run the course on TensorFlow or Keras versions it was not verified with (nightlies).
ALLOW_UNTESTED_ENV = "TFCOURSE_ALLOW_UNTESTED"


def untested_allowed() -> bool:
    """Whether `ALLOW_UNTESTED_ENV` is set to a true value (``1``, ``true`` or ``yes``)."""
    return os.environ.get(ALLOW_UNTESTED_ENV, "").strip().lower() in {"1", "true", "yes"}


def _mismatch() -> str:
    """A version mismatch fails, unless the learner allowed untested versions: then it warns."""
    return WARN if untested_allowed() else FAIL


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's report.

    Attributes:
        name: What was checked, for example ``"Python"``.
        status: ``"ok"``, ``"warn"`` (the course runs, but see the fix) or ``"fail"`` (it won't).
        detail: What was found.
        fix: How to fix it; empty when nothing needs fixing.
    """

    name: str
    status: str
    detail: str
    fix: str = ""

    def __str__(self) -> str:
        mark = {OK: "ok  ", WARN: "warn", FAIL: "FAIL"}[self.status]
        line = f"[{mark}] {self.name}: {self.detail}"
        return f"{line}\n       fix: {self.fix}" if self.fix else line


def check_python(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> Finding:
    """Python must be within `PYTHON_RANGE`, the versions TensorFlow 2.21 ships wheels for."""
    text = ".".join(map(str, version))
    (low, high) = PYTHON_RANGE
    if low <= tuple(version[:2]) <= high:
        return Finding("Python", OK, text)
    return Finding(
        "Python",
        FAIL,
        f"{text}, but TensorFlow {TF_SERIES} supports {low[0]}.{low[1]} to {high[0]}.{high[1]}",
        "create the course environment with Python 3.11: `conda env create -f environment.yml`",
    )


def check_tensorflow(version: str | None = None) -> Finding:
    """TensorFlow must import and be the 2.21 series the notebooks were verified with.

    Another series fails, or warns when `ALLOW_UNTESTED_ENV` is set.
    """
    if version is None:
        try:
            import tensorflow as tf
        except ImportError as error:
            return Finding(
                "TensorFlow", FAIL, f"cannot import it ({error})", 'pip install -e ".[test]"'
            )
        version = tf.__version__
    if version == TF_SERIES or version.startswith(TF_SERIES + "."):
        return Finding("TensorFlow", OK, version)
    return Finding(
        "TensorFlow",
        _mismatch(),
        f"{version}, but the notebooks are verified with {TF_SERIES}.x",
        f'pip install "tensorflow~={TF_SERIES}.0"',
    )


def check_keras(version: str | None = None, tf_keras_version: str | None = None) -> Finding:
    """Keras 3 must be installed and be what `tf.keras` resolves to (not the legacy tf-keras).

    Another major version fails, or warns when `ALLOW_UNTESTED_ENV` is set.
    """
    if version is None or tf_keras_version is None:
        try:
            import keras
            import tensorflow as tf
        except ImportError as error:
            return Finding("Keras", FAIL, f"cannot import it ({error})", 'pip install -e ".[test]"')
        version, tf_keras_version = keras.__version__, tf.keras.__version__
    if not version.startswith("3."):
        return Finding(
            "Keras",
            _mismatch(),
            f"{version}, but the course needs Keras 3",
            'pip install "keras>=3.10,<4"',
        )
    if not tf_keras_version.startswith("3."):
        return Finding(
            "Keras",
            FAIL,
            f"tf.keras is Keras {tf_keras_version} (legacy Keras 2), not Keras {version}",
            "unset TF_USE_LEGACY_KERAS, or pip uninstall tf-keras",
        )
    return Finding("Keras", OK, f"{version} (tf.keras is Keras 3)")


def check_devices(gpus: list[str] | None = None) -> Finding:
    """List the GPUs. None is fine: every notebook runs on the CPU."""
    if gpus is None:
        import tensorflow as tf

        gpus = [device.name for device in tf.config.list_physical_devices("GPU")]
    cores = usable_cores()
    if gpus:
        return Finding("Devices", OK, f"{cores} CPU cores and GPU(s) {', '.join(gpus)}")
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    note = f"; CUDA_VISIBLE_DEVICES={hidden!r} hides GPUs" if hidden is not None else ""
    return Finding(
        "Devices", OK, f"{cores} CPU cores, no GPU (fine: the course runs on the CPU){note}"
    )


def check_machine(report: MachineReport | None = None) -> Finding:
    """Name the CPU, its ISA features and the kernel libraries: what speed figures depend on."""
    report = machine_report() if report is None else report
    features = ", ".join(report.features) or (
        "no AVX2, AVX-512 or NEON" if report.features_known else "ISA features not known here"
    )
    onednn = "oneDNN on" if report.onednn else "oneDNN off"
    cap = f" (capped at {report.onednn_isa_cap})" if report.onednn_isa_cap else ""
    detail = f"{report.cpu} ({report.architecture}); {features}; {onednn}{cap}"
    return Finding("Machine", OK, detail)


def available_memory_gib() -> float | None:
    """Memory available to new programs, in GiB, from /proc/meminfo; None where that is absent."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        return None
    return None


def check_memory(available_gib: float | None = None) -> Finding:
    """Warn below `MIN_MEMORY_GIB` of free memory: training may then be killed."""
    available_gib = available_memory_gib() if available_gib is None else available_gib
    if available_gib is None:
        return Finding("Memory", WARN, "could not read the free memory", "make sure 4 GiB are free")
    if available_gib < MIN_MEMORY_GIB:
        return Finding(
            "Memory",
            WARN,
            f"{available_gib:.1f} GiB free; the course wants {MIN_MEMORY_GIB:.0f} GiB",
            "close other programs, or run one notebook at a time",
        )
    return Finding("Memory", OK, f"{available_gib:.1f} GiB free")


def check_datasets() -> Finding:
    """Every embedded dataset's files must match their checksums."""
    from tfcourse import data

    problems = [problem for found in data.verify().values() for problem in found]
    if problems:
        return Finding(
            "Datasets", FAIL, problems[0], "see the message; `tfcourse data verify` lists all"
        )
    return Finding("Datasets", OK, f"{', '.join(data.names())} verified (SHA-256)")


def _optional_package(name: str, module: str, requirement: str, chapter: str) -> Finding:
    distribution = re.split(r"[~<>=]", requirement)[0]
    if importlib.util.find_spec(module) is None:
        message = f"{distribution} is not installed (needed from chapter {chapter} on)"
        return Finding(name, WARN, message, f'pip install "{requirement}"')
    return Finding(name, OK, f"{distribution} installed")


def check_tensorboard() -> Finding:
    """TensorBoard is only needed from chapter 03 on, so its absence is a warning."""
    return _optional_package("TensorBoard", "tensorboard", "tensorboard~=2.21.0", "03")


def check_litert() -> Finding:
    """The LiteRT interpreter is only needed from chapter 07 on, so its absence is a warning."""
    return _optional_package("LiteRT", "ai_edge_litert", "ai-edge-litert>=2,<3", "07")


def check_litert_quantizer() -> Finding:
    """litert-quantizer is only needed in chapter 07, so its absence is a warning."""
    return _optional_package(
        "LiteRT quantizer", "litert_quantizer", "litert-quantizer~=0.11.0", "07"
    )


def run_checks() -> list[Finding]:
    """Every check, in the order the report shows them.

    TensorFlow's C++ start-up log lines (see `tfcourse.setup`) are held back while they run.
    """
    findings = [check_python()]
    with filtered_stderr():
        findings.append(check_tensorflow())
        if findings[-1].status != FAIL:
            findings += [check_keras(), check_devices(), check_machine()]
    return [
        *findings,
        check_memory(),
        check_datasets(),
        check_tensorboard(),
        check_litert(),
        check_litert_quantizer(),
    ]
