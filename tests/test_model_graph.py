"""tfcourse.model_graph: a functional model's layers and edges, drawn without graphviz."""

import shutil

import pytest

from tfcourse.model_graph import LayerNode, graphviz_available, layer_graph, plot_model_graph


@pytest.fixture
def keras(tf):
    import keras

    return keras


def two_inputs(keras):
    layers = keras.layers
    left, right = keras.Input((4,), name="left"), keras.Input((2,), name="right")
    hidden = layers.Dense(3, name="hidden")(left)
    joined = layers.Concatenate(name="join")([hidden, right])
    return keras.Model([left, right], [layers.Dense(1, name="out")(joined), hidden])


def test_layer_graph_follows_the_functional_connections(keras):
    nodes, edges = layer_graph(two_inputs(keras))
    assert sorted(node.name for node in nodes) == ["hidden", "join", "left", "out", "right"]
    assert LayerNode("join", "Concatenate", "(None, 5)") in nodes
    assert sorted(edges) == [
        ("hidden", "join"),
        ("join", "out"),
        ("left", "hidden"),
        ("right", "join"),
    ]


def test_layer_graph_chains_a_sequential_model(keras):
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, name="a"), keras.layers.Dense(2, name="b")]
    )
    nodes, edges = layer_graph(model)
    assert [(node.name, node.shape) for node in nodes] == [("a", "(None, 3)"), ("b", "(None, 2)")]
    assert edges == [("a", "b")]


def test_layer_graph_explains_that_subclassed_models_have_no_graph(keras):
    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(TypeError, match="subclassed model"):
        layer_graph(Subclassed())


def test_plot_model_graph_draws_a_box_per_layer_and_an_arrow_per_edge(keras):
    fig = plot_model_graph(two_inputs(keras))
    (ax,) = fig.axes
    boxes = [text.get_text() for text in ax.texts if text.get_text()]
    assert "left (InputLayer)\n(None, 4)" in boxes
    assert len(boxes) == 5
    assert len([text for text in ax.texts if getattr(text, "arrow_patch", None)]) == 4
    ys = {text.get_text().split(" ")[0]: text.get_position()[1] for text in ax.texts[:5]}
    assert ys["left"] > ys["hidden"] > ys["join"] > ys["out"]  # inputs on top


def test_graphviz_available_needs_the_dot_program(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert graphviz_available() is False
