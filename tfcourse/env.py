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
from tfcourse.machine import usable_cores

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
        cpus: The CPU cores this process may use (its affinity: `taskset` or a container caps it).
        gpus: The names of the physical GPUs TensorFlow can see.
        tf32: Whether TensorFloat-32 matmuls and convolutions are allowed (`setup()` turns them
            off, so a GPU computes float32 as float32).
        memory_growth: Whether every visible GPU allocates its memory as needed, instead of all
            of it at start-up (`setup()` turns it on where the runtime is not yet started).
    """

    seed: int
    deterministic: bool
    python: str
    tensorflow: str
    keras: str
    cpus: int
    gpus: tuple[str, ...] = field(default_factory=tuple)
    tf32: bool = False
    memory_growth: bool = True

    @property
    def accelerator(self) -> str:
        """``"GPU"`` when TensorFlow sees one, else ``"CPU"``."""
        return "GPU" if self.gpus else "CPU"

    def __str__(self) -> str:
        gpus = ", ".join(self.gpus) if self.gpus else "none (the course runs on the CPU)"
        lines = [
            f"seed {self.seed}, op determinism {'on' if self.deterministic else 'off'}",
            f"Python {self.python}, TensorFlow {self.tensorflow}, Keras {self.keras}",
            f"CPU cores: {self.cpus}; GPUs: {gpus}",
        ]
        if self.gpus:  # a CPU-only report stays the same on every machine
            growth = "on" if self.memory_growth else "off (restart the kernel, then setup())"
            lines.append(f"TF32 {'on' if self.tf32 else 'off'}, memory growth {growth}")
        return "\n".join(lines)


def setup(seed: int = 42, *, deterministic: bool = True, quiet: bool = True) -> DeviceReport:
    """Seed every random generator, turn on op determinism, make GPUs safe and report the devices.

    On a GPU it also turns TensorFloat-32 off and memory growth on (`configure_gpus`), so that
    float32 means float32 there too. Call it once, near the top of a notebook, before building any
    model. It does not initialise the TensorFlow runtime, so you can still configure devices
    afterwards.

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
    memory_growth = configure_gpus()
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
        cpus=usable_cores(),
        gpus=tuple(device.name for device in tf.config.list_physical_devices("GPU")),
        tf32=tf.config.experimental.tensor_float_32_execution_enabled(),
        memory_growth=memory_growth,
    )


def configure_gpus() -> bool:
    """Make a GPU compute like the CPU the notebooks were verified on, and share its memory.

    Turns TensorFloat-32 off (on Ampere and newer GPUs TensorFlow otherwise rounds float32 matmul
    and convolution inputs to 10 mantissa bits) and turns memory growth on for every visible GPU
    (otherwise the first op takes all of its memory). Does nothing else on a machine without one.

    Returns:
        Whether memory growth is on for every visible GPU: False when the runtime had already
        started with it off (restart the kernel and call `setup()` first).

    Introduced in `00_welcome_and_setup`.
    """
    import tensorflow as tf

    tf.config.experimental.enable_tensor_float_32_execution(False)
    growth = True
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except (RuntimeError, ValueError):  # the runtime has started, or the GPU was split into
            # logical devices (chapter 00): then it cannot change now
            growth = growth and bool(tf.config.experimental.get_memory_growth(gpu))
    return growth


#: What every child process the course starts inherits, so that it computes as `setup()` makes the
#: notebook compute even if it never calls `setup()`: TF32 off (NVIDIA's libraries read
#: `NVIDIA_TF32_OVERRIDE`), GPU memory growth, quiet C++ logs and a fixed hash seed. Op
#: determinism (`TF_DETERMINISTIC_OPS`) follows this process's setting: see `child_env`.
CHILD_ENV = {
    "NVIDIA_TF32_OVERRIDE": "0",
    "TF_FORCE_GPU_ALLOW_GROWTH": "true",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "PYTHONHASHSEED": "0",
}


def _determinism_here() -> bool:
    """Whether op determinism is on in this process (on, when TensorFlow is not imported yet)."""
    if "tensorflow" not in sys.modules:
        return True
    from tensorflow.python.framework import config as tf_config

    return bool(tf_config.is_op_determinism_enabled())


def child_env(*, hide_gpus: bool = False, **extra: str) -> dict[str, str]:
    """The environment for a Python process that the course starts: this one's, plus `CHILD_ENV`.

    The child gets op determinism exactly when this process has it on (`setup()` turns it on;
    `setup(deterministic=False)` off), TF32 off and GPU memory growth on. It keeps every variable
    of this process, so it also runs under the same machine profile (`TF_ENABLE_ONEDNN_OPTS`,
    `ONEDNN_MAX_CPU_ISA`; the CPU affinity is inherited by every child anyway) as its parent.

    Args:
        hide_gpus: Set ``CUDA_VISIBLE_DEVICES=""`` so that the child sees no GPU (chapter 08's
            workers, which share one machine's CPU).
        **extra: More variables, which override the others, for example
            ``TF_CPP_MIN_LOG_LEVEL="0"`` to see XLA's log lines.

    Returns:
        A new dict for `subprocess.run(..., env=...)`.

    Raises:
        TypeError: If a value in `extra` is not a string.

    Introduced in `03_keras_layers_and_models`.
    """
    bad = {name: value for name, value in extra.items() if not isinstance(value, str)}
    if bad:
        raise TypeError(f'environment values must be strings, for example "0"; got {bad!r}')
    env = {**os.environ, **CHILD_ENV, "TF_DETERMINISTIC_OPS": "1" if _determinism_here() else "0"}
    if hide_gpus:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return {**env, **extra}
