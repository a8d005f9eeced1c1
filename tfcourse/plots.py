"""Pictures the notebooks show: training curves, image grids and comparison bars.

Every function returns a matplotlib `Figure` and closes it in pyplot, so the figure appears once,
as the cell's result, and a test can inspect it. Introduced in `00_welcome_and_setup`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def _finish(fig: Figure) -> Figure:
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_history(history: Any, *, metrics: Sequence[str] | None = None) -> Figure:
    """Plot training curves, one panel per metric, with validation curves dashed.

    Args:
        history: A Keras `History` (what `fit()` returns) or a dict of metric name to per-epoch
            values, as in `history.history`.
        metrics: The metrics to draw, for example ``["loss", "accuracy"]``. Defaults to every
            metric that does not start with ``val_``.

    Returns:
        A figure with one axis per metric.

    Introduced in `00_welcome_and_setup`; used from `03_keras_layers_and_models` on.
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, Mapping) or not logs:
        raise TypeError(
            "history must be what fit() returns or a non-empty dict like {'loss': [...]}; "
            f"got {type(history).__name__}"
        )
    names = list(metrics) if metrics is not None else [k for k in logs if not k.startswith("val_")]
    missing = [name for name in names if name not in logs]
    if missing or not names:
        raise ValueError(f"metrics {missing or names} not in the history; it has {sorted(logs)}")
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        epochs = np.arange(1, len(logs[name]) + 1)
        ax.plot(epochs, logs[name], marker="o", label="train")
        if f"val_{name}" in logs:
            ax.plot(epochs, logs[f"val_{name}"], marker="o", linestyle="--", label="validation")
        ax.set(title=name, xlabel="epoch")
        ax.legend()
    return _finish(fig)


def image_grid(
    images: Any,
    labels: Sequence[Any] | None = None,
    *,
    columns: int = 8,
    cmap: str = "gray",
    size: float = 1.2,
) -> Figure:
    """Show images in a grid, each titled with its label.

    Args:
        images: An array or `Tensor` of shape ``(n, height, width)`` or ``(n, height, width, 1|3)``.
        labels: Optional titles, one per image.
        columns: Images per row.
        cmap: The colour map for single-channel images.
        size: The width of each image in inches; raise it for long labels.

    Returns:
        A figure with one axis per image.

    Introduced in `00_welcome_and_setup`.
    """
    array = np.asarray(images)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (3, 4) or len(array) == 0:
        raise ValueError(
            "images must have shape (n, height, width) or (n, height, width, channels), n >= 1; "
            f"got shape {array.shape}"
        )
    if labels is not None and len(labels) != len(array):
        raise ValueError(f"got {len(array)} images but {len(labels)} labels")
    if columns < 1 or size <= 0:
        raise ValueError(f"columns must be >= 1 and size > 0; got {columns} and {size}")
    columns = min(columns, len(array))
    rows = -(-len(array) // columns)
    figsize = (size * columns, (size + 0.15) * rows)
    fig, axes = plt.subplots(rows, columns, figsize=figsize, squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index < len(array):
            ax.imshow(array[index], cmap=cmap)
            if labels is not None:
                ax.set_title(str(labels[index]), fontsize=9)
    return _finish(fig)


def compare_bars(
    values: Mapping[str, float],
    *,
    ylabel: str,
    title: str | None = None,
    annotate: str = "{:.3g}",
) -> Figure:
    """A bar chart comparing named measurements, each bar labelled with its value.

    Args:
        values: Name to value, drawn in the order given.
        ylabel: What the values are, with units (for example ``"examples / s"``).
        title: An optional title.
        annotate: A format string for the label above each bar.

    Returns:
        A figure with one axis.

    Introduced in `00_welcome_and_setup`; the speed chapters chart their measurements with it.
    """
    if not values:
        raise ValueError("values must hold at least one name: value pair")
    names = list(values)
    heights = [float(values[name]) for name in names]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(names)), 3.2))
    bars = ax.bar(names, heights, color=plt.cm.tab10(np.arange(len(names)) % 10))
    ax.bar_label(bars, labels=[annotate.format(h) for h in heights])
    ax.set(ylabel=ylabel, title=title or "")
    ax.margins(y=0.15)
    return _finish(fig)
