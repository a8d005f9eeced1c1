"""Set up a notebook: seeds, op determinism, quiet logging, and a report of the devices.

Introduced in `00_welcome_and_setup`. Nothing here runs on import; a notebook calls `setup()`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

#: Environment variables that quieten TensorFlow's C++ logging. They only work when they are set
#: before TensorFlow is first imported, which is why `setup()` imports TensorFlow itself.
QUIET_TF_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}


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

    Args:
        seed: Seed for Python's `random`, NumPy and TensorFlow (through
            `keras.utils.set_random_seed`).
        deterministic: Turn on `tf.config.experimental.enable_op_determinism()`, so that the same
            program on the same machine gives bit-identical results.
        quiet: Hide TensorFlow's informational log lines.

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
        for name, value in QUIET_TF_ENV.items():
            os.environ.setdefault(name, value)
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
