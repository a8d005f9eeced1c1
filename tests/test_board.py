"""tfcourse.board: event files read back into arrays, and a real TensorBoard server on loopback."""

import json
import socket
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest

from tfcourse import board


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    """Logs from a Keras fit() with the TensorBoard callback, and from tf.summary by hand."""
    import keras
    import tensorflow as tf

    from tfcourse import setup

    setup(seed=0)
    root = tmp_path_factory.mktemp("logs")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((8, 3), "float32"), np.zeros((8, 2), "float32")
    tensorboard = keras.callbacks.TensorBoard(str(root / "fit"), histogram_freq=1)
    model.fit(x, y, epochs=3, validation_data=(x, y), verbose=0, callbacks=[tensorboard])
    writer = tf.summary.create_file_writer(str(root / "custom"))

    @tf.function
    def double(v):
        return 2.0 * v

    tf.summary.trace_on(graph=True)
    double(tf.constant(1.0))
    with writer.as_default():
        tf.summary.trace_export("double", step=0)
        for step in range(4):
            tf.summary.scalar("squares", step * step, step=step)
            tf.summary.histogram("spread", tf.fill([50], float(step)), step=step, buckets=5)
        tf.summary.text("note", "hello", step=0)
    writer.close()
    return root


def test_contents_lists_each_run_with_the_kind_of_each_tag(logdir):
    listing = board.contents(logdir)
    assert set(listing) == {"fit/train", "fit/validation", "custom"}
    assert listing["custom"] == {
        "squares": "scalars",
        "spread": "histograms",
        "note": "text",
        "double": "graph_run_metadata_graph",
    }
    assert listing["fit/train"]["epoch_loss"] == "scalars"
    assert listing["fit/train"]["keras"] == "graph_keras_model"


def test_read_scalars_returns_steps_and_values_as_written(logdir):
    squares = board.read_scalars(logdir)["custom"]["squares"]
    np.testing.assert_array_equal(squares.steps, [0, 1, 2, 3])
    np.testing.assert_allclose(squares.values, [0, 1, 4, 9])


def test_read_scalars_matches_what_fit_returned(logdir):
    scalars = board.read_scalars(logdir)
    assert scalars["fit/validation"]["epoch_loss"].values.shape == (3,)
    np.testing.assert_array_equal(scalars["fit/train"]["epoch_loss"].steps, [0, 1, 2])


def test_read_histograms_returns_bucket_arrays(logdir):
    histograms = board.read_histograms(logdir)
    spread = histograms["custom"]["spread"]
    assert spread.values.shape == (4, 5, 3)  # steps, buckets, (left, right, count)
    np.testing.assert_allclose(spread.values[:, :, 2].sum(axis=1), 50)
    assert any(tag.endswith("kernel/histogram") for tag in histograms["fit/train"])


def test_reading_explains_a_missing_or_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        board.read_scalars(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="holds no TensorBoard event files"):
        board.contents(tmp_path)


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def scalar_tags_once_loaded(url, runs):
    """The server loads logs in the background after it starts: poll until every run is in."""
    deadline = time.monotonic() + 60
    while True:
        tags = get_json(url + "data/plugin/scalars/tags")
        if set(tags) >= runs or time.monotonic() > deadline:
            return tags
        time.sleep(0.2)


def test_a_real_tensorboard_server_lists_the_scalar_runs_and_stops(logdir):
    with board.serve(logdir) as url:
        host, port = urllib.parse.urlsplit(url).hostname, urllib.parse.urlsplit(url).port
        assert host == "127.0.0.1"
        runs = {"fit/train", "fit/validation", "custom"}
        tags = scalar_tags_once_loaded(url, runs)
        assert set(tags) == runs
        assert "epoch_loss" in tags["fit/validation"]
        query = urllib.parse.urlencode({"run": "custom", "tag": "squares"})
        points = get_json(url + "data/plugin/scalars/scalars?" + query)
        assert [(step, value) for _, step, value in points] == [(0, 0), (1, 1), (2, 4), (3, 9)]
    with pytest.raises(ConnectionRefusedError), socket.create_connection((host, port), timeout=5):
        pass


def test_serve_reports_a_tensorboard_that_fails_to_start(tmp_path):
    failing = board.serve(tmp_path, port=-1, timeout=60)
    with pytest.raises(RuntimeError, match="TensorBoard exited with code"), failing:
        pass


def test_serve_explains_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"), board.serve(tmp_path / "x"):
        pass
