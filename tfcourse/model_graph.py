"""A picture of a Keras model's layer graph, drawn with matplotlib when graphviz is missing.

`keras.utils.plot_model` draws the real picture, but it needs the `pydot` package and the graphviz
``dot`` program, which a plain ``pip install`` does not bring. `plot_model_graph` draws the same
boxes (layer name, type and output shape) and arrows from the model's config. Introduced in
`03_keras_layers_and_models`.
"""

from __future__ import annotations

import importlib.util
import itertools
import shutil
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


@dataclass(frozen=True)
class LayerNode:
    """One box of the picture: a layer's name, class and output shape."""

    name: str
    kind: str
    shape: str


def graphviz_available() -> bool:
    """Whether `keras.utils.plot_model` can draw here: `pydot` imports and ``dot`` is on PATH."""
    return importlib.util.find_spec("pydot") is not None and shutil.which("dot") is not None


def _histories(value: Any) -> list[str]:
    """The names of the layers whose outputs a config's ``inbound_nodes`` entry refers to."""
    if isinstance(value, dict):
        if "keras_history" in value.get("config", {}):
            return [value["config"]["keras_history"][0]]
        return [name for item in value.values() for name in _histories(item)]
    if isinstance(value, list | tuple):
        return [name for item in value for name in _histories(item)]
    return []


def _shape(layer: Any) -> str:
    try:
        return str(tuple(layer.output.shape))
    except (AttributeError, ValueError):  # a layer used twice has no single output
        return "?"


def layer_graph(model: Any) -> tuple[list[LayerNode], list[tuple[str, str]]]:
    """The layers of a functional or `Sequential` model and the edges between them.

    Returns:
        The layers in the model's order, and ``(from, to)`` pairs of layer names.

    Raises:
        TypeError: For a subclassed model, whose layers are connected by Python code in `call`
            that no config records.
    """
    config = model.get_config() if hasattr(model, "get_config") else None
    if not isinstance(config, dict) or "layers" not in config:
        raise TypeError(
            "only functional and Sequential models have a layer graph to draw; "
            f"{type(model).__name__} connects its layers in Python code (a subclassed model)."
        )
    layers = list(model.layers)
    if not any(layer_config.get("inbound_nodes") for layer_config in config["layers"]):
        names = [layer.name for layer in layers]  # Sequential: a chain
        edges = list(itertools.pairwise(names))
    else:
        edges = [
            (source, layer_config["config"]["name"])
            for layer_config in config["layers"]
            for source in dict.fromkeys(_histories(layer_config.get("inbound_nodes", [])))
        ]
    nodes = [LayerNode(layer.name, type(layer).__name__, _shape(layer)) for layer in layers]
    return nodes, edges


def _levels(nodes: list[LayerNode], edges: list[tuple[str, str]]) -> list[list[LayerNode]]:
    """Rows of the picture: each layer one row below its lowest input; outputs on the last row."""
    depth = {node.name: 0 for node in nodes}
    for _ in nodes:  # longest path from an input; the graph has no cycles
        for source, target in edges:
            depth[target] = max(depth[target], depth[source] + 1)
    sources = {source for source, _ in edges}
    last = max(depth.values())
    rows: list[list[LayerNode]] = [[] for _ in range(last + 1)]
    for node in nodes:
        rows[last if edges and node.name not in sources else depth[node.name]].append(node)
    return rows


def plot_model_graph(model: Any) -> Figure:
    """Draw a functional or `Sequential` model as `keras.utils.plot_model` would, with shapes.

    Each box shows a layer's name, class and output shape (``None`` is the batch axis); arrows
    follow the data from the inputs at the top to the outputs at the bottom.
    """
    nodes, edges = layer_graph(model)
    rows = _levels(nodes, edges)
    width = max(len(row) for row in rows)
    fig, ax = plt.subplots(figsize=(3.0 * width + 0.8, 0.9 * len(rows) + 0.4))
    x: dict[str, float] = {}
    boxes = {}
    for level, row in enumerate(rows):
        parents = {n.name: [x[s] for s, t in edges if t == n.name and s in x] for n in row}
        row = sorted(row, key=lambda n: sum(parents[n.name]) / max(len(parents[n.name]), 1))
        for index, node in enumerate(row):
            x[node.name] = index - (len(row) - 1) / 2
            boxes[node.name] = ax.text(
                x[node.name], -level, f"{node.name} ({node.kind})\n{node.shape}",
                ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "round", "facecolor": "#e8f0fe", "edgecolor": "#4a6fa5"},
            )  # fmt: skip
    for source, target in edges:
        ax.annotate("", xy=boxes[target].get_position(), xytext=boxes[source].get_position(),
                    arrowprops={"arrowstyle": "->", "patchA": boxes[source].get_bbox_patch(),
                                "patchB": boxes[target].get_bbox_patch()})  # fmt: skip
    ax.set(xlim=(-width / 2, width / 2), ylim=(-len(rows) + 0.5, 0.5))
    ax.axis("off")
    fig.tight_layout()
    plt.close(fig)
    return fig
