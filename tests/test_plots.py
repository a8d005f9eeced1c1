"""tfcourse.plots: figures with the right panels, lines, images and labels."""

from typing import ClassVar

import numpy as np
import pytest

from tfcourse.plots import compare_bars, image_grid, plot_history


def test_plot_history_draws_one_panel_per_metric_with_dashed_validation():
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8]}
    fig = plot_history(history)
    loss, accuracy = fig.axes
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    assert [line.get_linestyle() for line in loss.lines] == ["-", "--"]
    assert list(loss.lines[1].get_ydata()) == [1.1, 0.7]
    assert len(accuracy.lines) == 1


def test_plot_history_accepts_a_keras_history_object():
    class History:
        history: ClassVar[dict[str, list[float]]] = {"loss": [3.0, 2.0, 1.0]}

    (ax,) = plot_history(History()).axes
    assert list(ax.lines[0].get_xdata()) == [1, 2, 3]


@pytest.mark.parametrize(
    ("history", "kwargs", "error"),
    [
        ({}, {}, TypeError),
        ([1, 2], {}, TypeError),
        ({"loss": [1]}, {"metrics": ["acc"]}, ValueError),
    ],
)
def test_plot_history_explains_bad_input(history, kwargs, error):
    with pytest.raises(error):
        plot_history(history, **kwargs)


def test_image_grid_size_sets_the_width_of_each_image():
    fig = image_grid(np.zeros((3, 4, 4)), columns=3, size=2.0)
    assert tuple(fig.get_size_inches()) == (6.0, 2.15)


def test_image_grid_shows_each_image_with_its_label():
    images = np.arange(5 * 4 * 4 * 1, dtype=np.uint8).reshape(5, 4, 4, 1)
    fig = image_grid(images, [3, 1, 4, 1, 5], columns=3)
    assert len(fig.axes) == 6  # 2 rows of 3; the last panel stays empty
    assert [ax.get_title() for ax in fig.axes[:5]] == ["3", "1", "4", "1", "5"]
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), images[0, ..., 0])
    assert not fig.axes[5].images


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (np.zeros((4, 4)), None, "shape"),
        (np.zeros((0, 4, 4)), None, "n >= 1"),
        (np.zeros((2, 4, 4)), [1], "2 images but 1 labels"),
    ],
)
def test_image_grid_explains_bad_input(images, labels, message):
    with pytest.raises(ValueError, match=message):
        image_grid(images, labels)


def test_compare_bars_draws_labelled_bars_in_order():
    fig = compare_bars({"naive": 100.0, "tuned": 400.0}, ylabel="examples / s", title="throughput")
    (ax,) = fig.axes
    assert [bar.get_height() for bar in ax.patches] == [100.0, 400.0]
    assert [label.get_text() for label in ax.get_xticklabels()] == ["naive", "tuned"]
    assert [text.get_text() for text in ax.texts] == ["100", "400"]
    assert ax.get_ylabel() == "examples / s"


def test_compare_bars_needs_values():
    with pytest.raises(ValueError, match="at least one"):
        compare_bars({}, ylabel="s")


@pytest.mark.parametrize("options", [{"columns": 0}, {"size": 0.0}])
def test_image_grid_explains_bad_layout_options(options):
    with pytest.raises(ValueError, match="columns must be >= 1 and size > 0"):
        image_grid(np.zeros((2, 4, 4)), **options)
