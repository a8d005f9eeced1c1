"""tfcourse: the helpers that the course's notebooks import.

Importing it has no side effects and does not import TensorFlow: a notebook calls `setup()` to seed
and configure, and modules import TensorFlow only when a function needs it.
"""

from tfcourse import board, data, distributed, exercises, litert
from tfcourse._stderr import filtered_stderr
from tfcourse.bench import (
    Timing,
    compare,
    paired_speedup,
    record_figure,
    speedup,
    time_fn,
    time_interleaved,
)
from tfcourse.env import (
    DeviceReport,
    UntestedVersionError,
    UntestedVersionWarning,
    check_versions,
    child_env,
    configure_gpus,
    setup,
)
from tfcourse.machine import MachineReport, machine_report
from tfcourse.model_graph import plot_model_graph
from tfcourse.plots import compare_bars, image_grid, plot_history

__version__ = "0.1.0"

__all__ = [
    "DeviceReport",
    "MachineReport",
    "Timing",
    "UntestedVersionError",
    "UntestedVersionWarning",
    "__version__",
    "board",
    "check_versions",
    "child_env",
    "compare",
    "compare_bars",
    "configure_gpus",
    "data",
    "distributed",
    "exercises",
    "filtered_stderr",
    "image_grid",
    "litert",
    "machine_report",
    "paired_speedup",
    "plot_history",
    "plot_model_graph",
    "record_figure",
    "setup",
    "speedup",
    "time_fn",
    "time_interleaved",
]
