"""Self-checks for the exercises of `03_keras_layers_and_models`: the probes.

Each check is in two parts (see `tfcourse.exercises._split`): the probe here runs the learner's
answer and returns what it saw; the judge, in `tfcourse.exercises.judges.ch03`, decides.
"""

from __future__ import annotations

import importlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tfcourse.exercises._framework import Wrong
from tfcourse.exercises._learner import call, learner_code
from tfcourse.exercises._samples import mnist_sample
from tfcourse.exercises._split import deferred, two_part

__all__ = [
    "MODEL_SPEC_PARAMS",
    "check_build_model",
    "check_clipped_classifier",
    "check_loss_history",
    "check_resume",
]

#: Exercise 03.1: the parameter count of the specified model, layer by layer.
MODEL_SPEC_PARAMS = {
    "image_features": 784 * 64 + 64,
    "embedding": 20 * 16,
    "joint": 80 * 64 + 64,
    "answer": 64 * 2 + 2,
    "digit": 64 * 10 + 10,
}
#: Exercise 03.3: the check's own run stops at STOPPED_AT; resume() trains it to TOTAL_STEPS.
STOPPED_AT, TOTAL_STEPS = 15, 30


def _flat_sample(count: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = mnist_sample(count)
    return images.reshape(count, -1).astype("float32") / 255.0, labels


# 03.1 -------------------------------------------------------------------------------------------
def _model_inputs() -> tuple[np.ndarray, np.ndarray]:
    """03.1's inputs: 6 images and 6 questions of 8 token ids."""
    images = mnist_sample(6)[0].astype("float32") / 255.0
    questions = np.random.default_rng(0).integers(0, 20, size=(6, 8))
    return images, questions


def _other_questions() -> list[np.ndarray]:
    """Two more sets of questions for 03.1's images, to see which output depends on them."""
    rng = np.random.default_rng(1)
    return [rng.integers(1, 20, size=(6, 8)) for _ in range(2)]


@two_part("03.1", "a functional model to a spec")
def check_build_model(build_model: Callable[[], Any], seed: int) -> dict[str, Any]:
    """Check `build_model()` against the two-input, two-output spec of the exercise.

    Beyond names, shapes and the parameter count, the check copies your weights into the spec's
    model and compares outputs, so a missing ReLU or another pooling is found too.
    """
    import keras

    model = call(build_model, name="build_model")
    if not isinstance(model, keras.Model):
        raise Wrong(f"build_model should return a keras.Model, not {type(model).__name__}")
    with learner_code("reading your model's inputs and outputs"):
        inputs = [_tensor_facts(t, t.name) for t in model.inputs]
        names = list(model.output_names)
        outputs = [_tensor_facts(t, n) for t, n in zip(model.outputs, names, strict=True)]
        params = int(model.count_params())
    images, questions = _model_inputs()
    return {
        "inputs": inputs,
        "outputs": outputs,
        "params": params,
        "layer_params": deferred(lambda: _layer_params(model)),
        "predicted": deferred(lambda: _predict(model, images, questions)),
        "rewired": deferred(lambda: [_predict(model, images, q) for q in _other_questions()]),
        "weights": deferred(lambda: _layer_weights(model)),
    }


def _tensor_facts(tensor: Any, name: Any) -> dict[str, Any]:
    shape = [None if d is None else int(d) for d in tensor.shape]
    return {"name": str(name), "shape": shape, "dtype": str(tensor.dtype)}


def _layer_params(model: Any) -> list[list[Any]]:
    with learner_code("counting your model's parameters"):
        return [
            [str(layer.name), int(layer.count_params())] for layer in model.layers if layer.weights
        ]


def _predict(model: Any, images: np.ndarray, questions: np.ndarray) -> list[list[Any]]:
    """The model's outputs on the inputs, as (name, values) pairs."""
    with learner_code("your model, called on images and questions"):
        outputs = model.predict({"image": images, "question": questions}, verbose=0)
        if not isinstance(outputs, dict):
            outputs = dict(zip(model.output_names, outputs, strict=True))
        return [[str(name), np.asarray(value, np.float64)] for name, value in outputs.items()]


def _layer_weights(model: Any) -> list[list[np.ndarray]]:
    """The weights of each layer that has some, in the model's order of layers."""
    with learner_code("reading your model's weights"):
        weights = [[np.asarray(w) for w in layer.get_weights()] for layer in model.layers]
        return [layer for layer in weights if layer and all(_numeric(w) for w in layer)]


def _numeric(weight: np.ndarray) -> bool:
    return weight.dtype.kind in "biufc"


def _weights_of(model: Any) -> list[np.ndarray]:
    """A model's weights as arrays of numbers (call it inside `learner_code`)."""
    weights = [np.asarray(w) for w in model.get_weights()]
    for weight in weights:
        if not _numeric(weight):
            raise Wrong(f"its model has a weight of {weight.dtype} values, not of numbers.")
    return weights


# 03.2 -------------------------------------------------------------------------------------------
def _fit_with(recorders: list[Any], epochs: int) -> None:
    """03.2's training run: the same 160 examples, model and seed each time."""
    import keras

    x, y = _flat_sample(160)
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10)])
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,  # "auto" means XLA on a GPU; the judge's run must compute like this one
    )
    model.fit(x[:128], y[:128], batch_size=32, epochs=epochs, validation_data=(x[128:], y[128:]),
              shuffle=False, verbose=0, callbacks=recorders)  # fmt: skip


def _recorded(recorder: Any, name: str) -> np.ndarray:
    with learner_code(f"reading self.{name} of your callback"):
        values = getattr(recorder, name, None)
        if values is None:
            raise Wrong(f"the callback has no attribute {name!r}; fill a list self.{name}.")
        try:
            return np.array([float(value) for value in values])
        except (TypeError, ValueError) as error:
            raise Wrong(f"self.{name} should be a list of numbers: {error}") from error


def _recording(recorder: Any) -> dict[str, np.ndarray]:
    return {name: _recorded(recorder, name) for name in ("batch_losses", "val_losses")}


@two_part("03.2", "a callback that records losses")
def check_loss_history(loss_history: type, seed: int) -> dict[str, Any]:
    """Check the `LossHistory` callback class in two `fit()` runs and with two instances."""
    import keras

    if not (isinstance(loss_history, type) and issubclass(loss_history, keras.callbacks.Callback)):
        raise Wrong(
            f"pass the class itself, a subclass of keras.callbacks.Callback, not {loss_history!r}"
        )
    recorder = call(loss_history, name="LossHistory()")
    call(_fit_with, [recorder], 3, name="fit() with your callback")
    first = _recording(recorder)
    return {"first": first, "later": deferred(lambda: _later_fits(loss_history, recorder))}


def _later_fits(loss_history: type, recorder: Any) -> dict[str, Any]:
    """A second instance fitted once, then the first one fitted again: what each recorded."""
    other = call(loss_history, name="LossHistory()")
    call(_fit_with, [other], 1, name="fit() with your callback")
    first_batches = len(_recorded(recorder, "batch_losses"))
    second = deferred(lambda: _recording(other))

    def refitted() -> dict[str, np.ndarray]:
        call(_fit_with, [recorder], 1, name="fit() with your callback")
        return _recording(recorder)

    return {"first_batches": first_batches, "second": second, "third": deferred(refitted)}


# 03.3 -------------------------------------------------------------------------------------------
#: Seconds the notebook's own make_run() and train() may take inside check 03.3.
_NOTEBOOK_SECONDS = 600.0


@two_part("03.3", "resume from a checkpoint")
def check_resume(
    resume: Callable[[str, int], Any],
    seed: int,
    *,
    make_run: Callable[[], Any],
    train: Callable[..., Any],
    folder: Any,
) -> Any:
    """Check `resume(directory, total_steps)` against a resume of the check's own run.

    Called as ``check_resume(resume, make_run=..., train=..., folder=...)``: `make_run()` and
    ``train(run, until, *, manager=None, every=5)`` are the notebook's. The check writes checkpoints
    at steps 5, 10 and 15 with a 10x larger learning rate, so that a resume that ignores them ends
    elsewhere.

    The runs to compare with use the notebook's `make_run` and `train`, which exist only in the
    notebook's kernel, so this probe makes them; the judge compares.
    """
    directory = Path(folder) / "check_resume"
    manager = _stopped_run(make_run, train, directory)
    restored = _finished(make_run, train, manager.latest_checkpoint)
    from_scratch = _finished(make_run, train, None)
    run = call(resume, str(directory), TOTAL_STEPS, name="resume")
    _expect_checkpoint(run)
    with learner_code("reading your run's step counter"):
        step = int(run.step)
    return {
        "step": step,
        "saved": deferred(lambda: _saved_step_in(directory)),
        "weights": deferred(lambda: _run_weights(run)),
        "restored": restored,
        "from_scratch": from_scratch,
    }


def _stopped_run(make_run: Callable[[], Any], train: Callable[..., Any], directory: Path) -> Any:
    """A run trained to step 15 with a 10x learning rate, checkpointed every 5 steps."""
    import tensorflow as tf

    shutil.rmtree(directory, ignore_errors=True)
    with learner_code("the notebook's make_run() and train()", seconds=_NOTEBOOK_SECONDS):
        stopped = make_run()
        stopped.optimizer.learning_rate = 10 * float(stopped.optimizer.learning_rate)
        manager = tf.train.CheckpointManager(stopped, str(directory), max_to_keep=None)
        train(stopped, STOPPED_AT, manager=manager, every=5)
    return manager


def _finished(
    make_run: Callable[[], Any], train: Callable[..., Any], start: str | None
) -> list[np.ndarray]:
    """The weights of a fresh run, restored from `start` (if any) and trained to TOTAL_STEPS."""
    with learner_code("the notebook's make_run() and train()", seconds=_NOTEBOOK_SECONDS):
        run = make_run()
        if start is not None:
            run.restore(start).assert_consumed()
        train(run, TOTAL_STEPS)
        return _weights_of(run.model)


def _expect_checkpoint(run: Any) -> None:
    import tensorflow as tf

    if not isinstance(run, tf.train.Checkpoint):
        raise Wrong(
            f"resume should return the Checkpoint from make_run(), not {type(run).__name__}"
        )
    if not all(hasattr(run, name) for name in ("model", "step")):
        raise Wrong("it returned a Checkpoint without model and step: return make_run()'s.")


def _saved_step_in(directory: Path) -> int | None:
    """The step counter in the newest checkpoint of `directory`, or None."""
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(str(directory))
    with learner_code("reading the newest checkpoint in the folder"):
        if latest is None:
            return None
        names = {name for name, _ in tf.train.list_variables(latest)}
        key = "step/.ATTRIBUTES/VARIABLE_VALUE"
        return int(tf.train.load_variable(latest, key)) if key in names else None


def _run_weights(run: Any) -> list[np.ndarray]:
    with learner_code("comparing the weights of your run's model"):
        return _weights_of(run.model)


# 03.4 -------------------------------------------------------------------------------------------
def _train_briefly(model: Any, initial: list[np.ndarray]) -> dict[str, list[float]]:
    """03.4's training run: 2 epochs of SGD on 256 examples, from the weights `initial`."""
    import keras

    x, y = _flat_sample(256)
    model.set_weights(initial)
    model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)  # no XLA on a GPU either
    return model.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0).history


def initial_weights(shapes: list[tuple[int, ...]], seed: int) -> list[np.ndarray]:
    """03.4's starting weights for weights of `shapes`: Glorot-uniform matrices, zero vectors."""
    rng = np.random.default_rng([seed, 1])
    weights = []
    for shape in shapes:
        if len(shape) == 2:
            limit = np.sqrt(6.0 / max(shape[0] + shape[1], 1))
            weights.append(rng.uniform(-limit, limit, size=shape).astype(np.float32))
        else:
            weights.append(np.zeros(shape, np.float32))
    return weights


def large_clip_norm(seed: int) -> float:
    """03.4's second clip_norm, 200 to 400: too large for any gradient of its run to reach."""
    return float(np.round(np.random.default_rng(seed).uniform(200.0, 400.0), 1))


@two_part("03.4", "a subclassed model with its own train_step")
def check_clipped_classifier(classifier: type, seed: int) -> dict[str, Any]:
    """Train `ClippedClassifier(clip_norm=0.5)` for 2 epochs from the check's weights; then once
    more with a clip_norm too large to clip anything."""
    import keras

    model = call(classifier, clip_norm=0.5, name="ClippedClassifier(clip_norm=0.5)")
    if not isinstance(model, keras.Model):
        raise Wrong(f"ClippedClassifier should subclass keras.Model; got {type(model).__name__}")
    x, _ = _flat_sample(2)
    logits = call(model, x, name="calling your model")
    with learner_code("calling your model"):
        logits_shape = [None if d is None else int(d) for d in np.shape(logits)]
    with learner_code("reading your model's weights"):
        shapes = [tuple(int(d) for d in w.shape) for w in model.get_weights()]
    initial = initial_weights(shapes, seed)
    history = deferred(
        lambda: _history(call(_train_briefly, model, initial, name="fit() with your train_step"))
    )
    return {
        "logits_shape": logits_shape,
        "shapes": [list(shape) for shape in shapes],
        "history": history,
        "weights": deferred(lambda: _model_weights(model)),
        "unclipped": deferred(lambda: _unclipped_run(classifier, initial, x, seed)),
    }


def _history(history: Any) -> dict[str, Any]:
    """What fit() reported: the names of the metrics, and the loss and accuracy per epoch."""
    with learner_code("reading what fit() reported"):
        seen: dict[str, Any] = {"names": [str(name) for name in history]}
        for name in ("loss", "accuracy"):
            seen[name] = np.asarray(history[name], np.float64) if name in history else None
        return seen


def _model_weights(model: Any) -> list[np.ndarray]:
    with learner_code("reading your model's weights"):
        return _weights_of(model)


def _unclipped_run(
    classifier: type, initial: list[np.ndarray], x: np.ndarray, seed: int
) -> list[np.ndarray]:
    """The weights after the same run with `large_clip_norm(seed)`."""
    clip_norm = large_clip_norm(seed)
    model = call(classifier, clip_norm=clip_norm, name=f"ClippedClassifier(clip_norm={clip_norm})")
    call(model, x, name="calling your model")
    call(_train_briefly, model, initial, name="fit() with your train_step")
    return _model_weights(model)


# Names the tests reach through this module, whose code is a reference answer: in the judge.
_IN_THE_JUDGE = frozenset({"_reference_classifier", "_same_weights"})


def __getattr__(name: str) -> Any:
    if name in _IN_THE_JUDGE:
        try:
            judge = importlib.import_module("tfcourse.exercises.judges.ch03")
        except ImportError:
            raise AttributeError(f"{name} is in the judges, which are not installed") from None
        return getattr(judge, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
