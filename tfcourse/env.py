"""Set up a notebook: version guard, seeds, op determinism, quiet logging, and a device report.

Introduced in `00_welcome_and_setup`. Nothing here runs on import; a notebook calls `setup()`.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass, field

from tfcourse import doctor
from tfcourse._stderr import filtered_stderr

#: Environment variables that quieten TensorFlow's C++ logging. They only work when they are set
#: before TensorFlow is first imported, which is why `setup()` imports TensorFlow itself.
#: Level 3 also hides the "E" lines TensorFlow logs at run time about what is no error of yours
#: (oneDNN's "supports DT_BOOL only on platforms with AVX-512" when a mask is used, say); real
#: errors still reach you as Python exceptions.
QUIET_TF_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3"}


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow and Keras, and look for GPUs, without their C++ start-up log lines.

    Looking for GPUs initialises CUDA, which logs "failed call to cuInit" on a machine without one.
    """
    for name, value in QUIET_TF_ENV.items():
        os.environ.setdefault(name, value)
    with filtered_stderr():
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")


class UntestedVersionError(RuntimeError):
    """TensorFlow or Keras is not the version the notebooks were verified with."""


class UntestedVersionWarning(UserWarning):
    """Like `UntestedVersionError`, when the learner chose to go on with untested versions."""


def check_versions(*, tensorflow: str | None = None, keras: str | None = None) -> None:
    """Check that TensorFlow is the 2.21 series and Keras is 3.x, the versions the course verified.

    Prints nothing when they are, so a notebook's output is the same on every patch release.

    Args:
        tensorflow: The TensorFlow version to check; None imports TensorFlow and checks its own.
        keras: The Keras version to check; None imports Keras and checks its own (and what
            `tf.keras` resolves to).

    Raises:
        UntestedVersionError: A `RuntimeError` naming the version found, the version verified and
            the fix. With the environment variable `TFCOURSE_ALLOW_UNTESTED=1` set, it warns with
            an `UntestedVersionWarning` instead and returns.

    Introduced in `00_welcome_and_setup`.
    """
    if tensorflow is None or keras is None:
        _import_tensorflow_quietly()
    findings = [doctor.check_tensorflow(tensorflow), doctor.check_keras(keras, keras)]
    problems = [finding for finding in findings if finding.status != doctor.OK]
    if not problems:
        return
    found = "; ".join(f"{finding.name} {finding.detail}" for finding in problems)
    fixes = " and ".join(f"`{finding.fix}`" for finding in problems)
    message = (
        f"{found}. Fix: {fixes}, then restart the kernel. To go on with these untested versions "
        f"anyway (outputs may differ, cells may fail), set the environment variable "
        f"{doctor.ALLOW_UNTESTED_ENV}=1 before starting Jupyter."
    )
    if doctor.untested_allowed():
        warnings.warn(message, UntestedVersionWarning, stacklevel=2)
        return
    raise UntestedVersionError(message)


@dataclass(frozen=True)
class DeviceReport:
    """What `setup()` found: versions, devices and the settings it applied.

    Attributes:
        seed: The seed given to Python, NumPy and TensorFlow.
        deterministic: Whether TensorFlow's op determinism is on.
        python: The Python version, for example ``"3.11.7"``.
        tensorflow: The TensorFlow version.
        keras: The Keras version that ``tf.keras`` resolves to.
        cpus: The number of CPU cores the operating system reports.
        gpus: The names of the physical GPUs TensorFlow can see.
    """

    seed: int
    deterministic: bool
    python: str
    tensorflow: str
    keras: str
    cpus: int
    gpus: tuple[str, ...] = field(default_factory=tuple)

    @property
    def accelerator(self) -> str:
        """``"GPU"`` when TensorFlow sees one, else ``"CPU"``."""
        return "GPU" if self.gpus else "CPU"

    def __str__(self) -> str:
        gpus = ", ".join(self.gpus) if self.gpus else "none (the course runs on the CPU)"
        return "\n".join(
            [
                f"seed {self.seed}, op determinism {'on' if self.deterministic else 'off'}",
                f"Python {self.python}, TensorFlow {self.tensorflow}, Keras {self.keras}",
                f"CPU cores: {self.cpus}; GPUs: {gpus}",
            ]
        )


def setup(seed: int = 42, *, deterministic: bool = True, quiet: bool = True) -> DeviceReport:
    """Seed every random generator, turn on op determinism and report the devices.

    Call it once, near the top of a notebook, before building any model. It does not initialise the
    TensorFlow runtime, so you can still configure devices afterwards.

    With `quiet=True` (the default) it sets `TF_CPP_MIN_LOG_LEVEL=3` and holds back what
    TensorFlow's C++ code writes to stderr while it imports TensorFlow and looks for GPUs: the
    "All log messages before absl::InitializeLog()" line, the oneDNN and CPU-instruction notices
    and, on a machine without a GPU, "failed call to cuInit". Any other stderr line is shown. What
    remains: log lines that TensorFlow's C++ code writes later, for example when XLA compiles a
    function, still appear under the cell that triggers them.

    Args:
        seed: Seed for Python's `random`, NumPy and TensorFlow (through
            `keras.utils.set_random_seed`).
        deterministic: Turn on `tf.config.experimental.enable_op_determinism()`, so that the same
            program on the same machine gives bit-identical results.
        quiet: Hide TensorFlow's informational and start-up log lines (see above).

    Returns:
        A `DeviceReport`. Print it to see the versions and devices.

    Raises:
        TypeError: If `seed` is not an int.
        ValueError: If `seed` is negative or too large for TensorFlow.

    Introduced in `00_welcome_and_setup`.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, for example setup(seed=42); got {seed!r}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be between 0 and 2**32 - 1; got {seed}")
    if quiet:
        _import_tensorflow_quietly()
    import keras
    import tensorflow as tf

    if quiet:
        import absl.logging

        tf.get_logger().setLevel("ERROR")
        absl.logging.set_verbosity(absl.logging.ERROR)  # TensorFlow Datasets logs through absl
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    else:
        # TensorFlow has no public switch to turn determinism back off once a notebook turned it on.
        from tensorflow.python.framework import config as tf_config

        tf_config.disable_op_determinism()
    return DeviceReport(
        seed=seed,
        deterministic=deterministic,
        python=".".join(str(part) for part in sys.version_info[:3]),
        tensorflow=tf.__version__,
        keras=keras.__version__,
        cpus=os.cpu_count() or 1,
        gpus=tuple(device.name for device in tf.config.list_physical_devices("GPU")),
    )
