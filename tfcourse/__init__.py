"""tfcourse: the helpers that the course's notebooks import.

Importing it has no side effects and does not import TensorFlow: a notebook calls `setup()` to seed
and configure, and modules import TensorFlow only when a function needs it.
"""

from tfcourse import board, data, distributed, exercises, litert
from tfcourse.bench import Timing, compare, record_figure, speedup, time_fn, time_interleaved
from tfcourse.env import (
    DeviceReport,
    UntestedVersionError,
    UntestedVersionWarning,
    check_versions,
    setup,
)
from tfcourse.model_graph import plot_model_graph
from tfcourse.plots import compare_bars, image_grid, plot_history

__version__ = "0.1.0"

__all__ = [
    "DeviceReport",
    "Timing",
    "UntestedVersionError",
    "UntestedVersionWarning",
    "__version__",
    "board",
    "check_versions",
    "compare",
    "compare_bars",
    "data",
    "distributed",
    "exercises",
    "image_grid",
    "litert",
    "plot_history",
    "plot_model_graph",
    "record_figure",
    "setup",
    "speedup",
    "time_fn",
    "time_interleaved",
]
