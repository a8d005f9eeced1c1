"""Self-checks for the exercises of `03_keras_layers_and_models`."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tfcourse.exercises._framework import Wrong, check
from tfcourse.exercises._learner import call, learner_code
from tfcourse.exercises._probes import probe_rng
from tfcourse.exercises._samples import mnist_sample

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


def _flat_sample(count: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = mnist_sample(count)
    return images.reshape(count, -1).astype("float32") / 255.0, labels


# 03.1 -------------------------------------------------------------------------------------------
def _named(tensors: list[Any], names: list[str], what: str) -> dict[str, Any]:
    if len(set(names)) != len(names):
        raise Wrong(f"its {what} have the names {names}; give each a different name.")
    return dict(zip(names, tensors, strict=True))


def _expect_io(found: dict[str, Any], expected: dict[str, tuple[Any, ...]], what: str) -> None:
    if set(found) != set(expected):
        raise Wrong(
            f"its {what} are named {sorted(found)}; expected {sorted(expected)} "
            f"(name=... on keras.Input for inputs, on the last Dense layer for outputs)."
        )
    for name, shape in expected.items():
        if tuple(found[name].shape) != shape:
            shape_found = tuple(found[name].shape)
            raise Wrong(f"{what[:-1]} {name!r} has shape {shape_found}, expected {shape}")


@check("03.1", "a functional model to a spec")
def check_build_model(build_model: Callable[[], Any]) -> str:
    """Check `build_model()` against the two-input, two-output spec of the exercise.

    Beyond names, shapes and the parameter count, the check copies your weights into the spec's
    model and compares outputs, so a missing ReLU or another pooling is found too.
    """
    import keras

    model = call(build_model, name="build_model")
    if not isinstance(model, keras.Model):
        raise Wrong(f"build_model should return a keras.Model, not {type(model).__name__}")
    with learner_code("reading your model's inputs and outputs"):
        inputs = _named(model.inputs, [t.name for t in model.inputs], "inputs")
        outputs = _named(model.outputs, list(model.output_names), "outputs")
        params = int(model.count_params())
    _expect_io(inputs, {"image": (None, 28, 28, 1), "question": (None, 8)}, "inputs")
    if "int" not in str(inputs["question"].dtype):
        raise Wrong(
            f"input 'question' has dtype {inputs['question'].dtype}; token ids are integers: "
            'keras.Input((8,), dtype="int32", name="question").'
        )
    _expect_io(outputs, {"answer": (None, 2), "digit": (None, 10)}, "outputs")
    expected = sum(MODEL_SPEC_PARAMS.values())
    if params != expected:
        counts = {layer.name: layer.count_params() for layer in model.layers if layer.weights}
        raise Wrong(
            f"it has {params:,} parameters, expected {expected:,}. Yours, layer "
            f"by layer: {counts}; the spec's: {MODEL_SPEC_PARAMS}."
        )
    images, questions = _model_inputs()
    predicted = _predict(model, images, questions)
    _expect_logits(predicted)
    _expect_wiring(model, images)
    _expect_spec_outputs(model, predicted, images, questions)
    return f"two named inputs, two logit outputs, {expected:,} parameters, wired as specified."


def _model_inputs() -> tuple[np.ndarray, np.ndarray]:
    images = mnist_sample(6)[0].astype("float32") / 255.0
    questions = np.random.default_rng(0).integers(0, 20, size=(6, 8))
    return images, questions


def _expect_logits(outputs: dict[str, np.ndarray]) -> None:
    for name, values in outputs.items():
        if np.allclose(values.sum(axis=-1), 1.0, atol=1e-4) and values.min() >= 0:
            raise Wrong(
                f"output {name!r} gives probabilities (softmax); the spec asks for logits "
                "(no activation): the loss uses from_logits=True."
            )
        if values.min() >= 0:
            raise Wrong(
                f"output {name!r} is never negative, so it applies an activation; the spec asks "
                "for logits (no activation): the loss uses from_logits=True."
            )


def _expect_wiring(model: Any, images: np.ndarray) -> None:
    """`digit` must depend on the image only; `answer` on the image and the question."""
    rng = np.random.default_rng(1)
    first, second = (_predict(model, images, rng.integers(1, 20, size=(6, 8))) for _ in range(2))
    if not np.allclose(first["digit"], second["digit"]):
        raise Wrong(
            "'digit' changes when only the question changes: connect it to image_features, "
            "not to the joint layer."
        )
    if np.allclose(first["answer"], second["answer"]):
        raise Wrong("'answer' ignores the question: concatenate both branches before it.")


def _predict(model: Any, images: np.ndarray, questions: np.ndarray) -> dict[str, np.ndarray]:
    with learner_code("your model, called on images and questions"):
        outputs = model.predict({"image": images, "question": questions}, verbose=0)
        if not isinstance(outputs, dict):
            outputs = dict(zip(model.output_names, outputs, strict=True))
        return {name: np.asarray(value, np.float64) for name, value in outputs.items()}


#: Exercise 03.1: each layer of the spec, known by the shape of its first weight.
_SPEC_ROLES = {
    (784, 64): "image_features",
    (20, 16): "embedding",
    (80, 64): "joint",
    (64, 2): "answer",
    (64, 10): "digit",
}
_SPEC_MISTAKES = {
    'image_features has no ReLU: pass activation="relu"': {"features": None},
    'joint has no ReLU: pass activation="relu"': {"joint": None},
    "the question branch pools with the maximum; the spec's is GlobalAveragePooling1D": {
        "pooling": "max"
    },
}


def _expect_spec_outputs(
    model: Any, predicted: dict[str, np.ndarray], images: np.ndarray, questions: np.ndarray
) -> None:
    """Your weights in the spec's model (either order of concatenation) give your outputs."""
    with learner_code("reading your model's weights"):
        weights = _weights_by_role(model)
    if weights is None:
        return  # the parameter count matched; the layers are shaped in a way the roles miss
    if _matches_variant(weights, predicted, images, questions, {}):
        return
    for mistake, options in _SPEC_MISTAKES.items():
        if _matches_variant(weights, predicted, images, questions, options):
            raise Wrong(f"{mistake}.")
    raise Wrong(
        "with your weights, the spec's model computes other outputs than yours: check each "
        "layer's activation, the pooling and the wiring against the spec."
    )


def _weights_by_role(model: Any) -> dict[str, list[np.ndarray]] | None:
    roles: dict[str, list[np.ndarray]] = {}
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            role = _SPEC_ROLES.get(tuple(weights[0].shape))
            if role is None or role in roles:
                return None
            roles[role] = weights
    return roles if len(roles) == len(_SPEC_ROLES) else None


def _matches_variant(
    weights: dict[str, list[np.ndarray]],
    predicted: dict[str, np.ndarray],
    images: np.ndarray,
    questions: np.ndarray,
    options: dict[str, Any],
) -> bool:
    for question_first in (False, True):
        reference = _spec_model(question_first=question_first, **options)
        for role, values in weights.items():
            reference.get_layer(role).set_weights(values)
        expected = reference.predict({"image": images, "question": questions}, verbose=0)
        if all(np.allclose(predicted[k], expected[k], rtol=1e-4, atol=1e-5) for k in expected):
            return True
    return False


def _spec_model(
    *, features: str | None = "relu", joint: str | None = "relu", pooling: str = "average",
    question_first: bool = False,
) -> Any:  # fmt: skip
    """The exercise's model, or a variant of it with one of the usual mistakes."""
    import keras

    layers = keras.layers
    image = keras.Input((28, 28, 1), name="image")
    question = keras.Input((8,), dtype="int32", name="question")
    image_features = layers.Dense(64, activation=features, name="image_features")
    seen = image_features(layers.Flatten()(image))
    pool = layers.GlobalAveragePooling1D() if pooling == "average" else layers.GlobalMaxPooling1D()
    words = pool(layers.Embedding(20, 16, name="embedding")(question))
    branches = [words, seen] if question_first else [seen, words]
    mixed = layers.Dense(64, activation=joint, name="joint")(layers.Concatenate()(branches))
    return keras.Model(
        {"image": image, "question": question},
        {
            "answer": layers.Dense(2, name="answer")(mixed),
            "digit": layers.Dense(10, name="digit")(seen),
        },
    )


# 03.2 -------------------------------------------------------------------------------------------
def _reference_recorder() -> Any:
    import keras

    class Reference(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            self.batch_losses: list[float] = []
            self.val_losses: list[float] = []

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.batch_losses.append(float(logs["loss"]))

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.val_losses.append(float(logs["val_loss"]))

    return Reference()


def _recorded(recorder: Any, name: str) -> np.ndarray:
    with learner_code(f"reading self.{name} of your callback"):
        values = getattr(recorder, name, None)
        if values is None:
            raise Wrong(f"the callback has no attribute {name!r}; fill a list self.{name}.")
        try:
            return np.array([float(value) for value in values])
        except (TypeError, ValueError) as error:
            raise Wrong(f"self.{name} should be a list of numbers: {error}") from error


def _fit_with(recorders: list[Any], epochs: int) -> None:
    import keras

    x, y = _flat_sample(160)
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10)])
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,  # "auto" means XLA on a GPU; the reference must compute like the answer
    )
    model.fit(x[:128], y[:128], batch_size=32, epochs=epochs, validation_data=(x[128:], y[128:]),
              shuffle=False, verbose=0, callbacks=recorders)  # fmt: skip


def _expect_recording(recorder: Any, reference: Any, epochs: int) -> None:
    batches, vals = _recorded(recorder, "batch_losses"), _recorded(recorder, "val_losses")
    if len(batches) == epochs:
        raise Wrong(
            f"batch_losses has {epochs} entries, one per epoch; record in on_train_batch_end."
        )
    if len(batches) != 4 * epochs or len(vals) != epochs:
        raise Wrong(
            f"after {epochs} epochs of 4 batches, batch_losses has {len(batches)} entries and "
            f"val_losses {len(vals)}; expected {4 * epochs} and {epochs}. Start empty lists "
            "in on_train_begin, so each fit() records afresh."
        )
    expected_batches = np.array(reference.batch_losses)
    if not np.allclose(batches, expected_batches, rtol=1e-5):
        raise Wrong(
            f"batch_losses is {np.round(batches[:4], 4).tolist()}..., but Keras reported "
            f"{np.round(expected_batches[:4], 4).tolist()}...: append logs['loss'] in "
            "on_train_batch_end."
        )
    if not np.allclose(vals, reference.val_losses, rtol=1e-5):
        raise Wrong(
            f"val_losses is {np.round(vals, 4).tolist()}, but the validation losses were "
            f"{np.round(reference.val_losses, 4).tolist()}: append logs['val_loss'] in "
            "on_epoch_end."
        )


@check("03.2", "a callback that records losses")
def check_loss_history(loss_history: type) -> str:
    """Check the `LossHistory` callback class in two `fit()` runs and with two instances."""
    import keras

    if not (isinstance(loss_history, type) and issubclass(loss_history, keras.callbacks.Callback)):
        raise Wrong(
            f"pass the class itself, a subclass of keras.callbacks.Callback, not {loss_history!r}"
        )
    recorder, reference = call(loss_history, name="LossHistory()"), _reference_recorder()
    call(_fit_with, [recorder, reference], 3, name="fit() with your callback")
    _expect_recording(recorder, reference, 3)
    other, reference = call(loss_history, name="LossHistory()"), _reference_recorder()
    call(_fit_with, [other, reference], 1, name="fit() with your callback")
    if len(_recorded(recorder, "batch_losses")) != 12:
        raise Wrong(
            "a second LossHistory() changed the first one's list: they share one list, a "
            "class attribute. Create the lists on the instance, in on_train_begin."
        )
    _expect_recording(other, reference, 1)
    call(_fit_with, [recorder, reference], 1, name="fit() with your callback")
    _expect_recording(recorder, reference, 1)
    return "records every batch's loss and every epoch's validation loss, afresh in each fit()."


# 03.3 -------------------------------------------------------------------------------------------
#: Seconds the notebook's own make_run() and train() may take inside check 03.3.
_NOTEBOOK_SECONDS = 600.0


def _finished(make_run: Callable[[], Any], train: Callable[..., Any], start: str | None) -> Any:
    with learner_code("the notebook's make_run() and train()", seconds=_NOTEBOOK_SECONDS):
        run = make_run()
        if start is not None:
            run.restore(start).assert_consumed()
        train(run, 30)
    return run


def _max_difference(run: Any, other: Any) -> float:
    with learner_code("comparing the weights of your run's model"):
        pairs = list(zip(run.model.get_weights(), other.model.get_weights(), strict=True))
        if any(a.shape != b.shape for a, b in pairs):
            raise Wrong("its model's weights have other shapes: return make_run()'s Checkpoint.")
        return max(float(np.abs(a - b).max()) for a, b in pairs)


@check("03.3", "resume from a checkpoint")
def check_resume(
    resume: Callable[[str, int], Any],
    *,
    make_run: Callable[[], Any],
    train: Callable[..., Any],
    folder: str,
) -> str:
    """Check `resume(directory, total_steps)` against a correct resume of the check's own run.

    `make_run()` and `train(run, until, *, manager=None, every=5)` are the notebook's. The check
    writes checkpoints at steps 5, 10 and 15 with a 10x larger learning rate, so that a resume
    that ignores them ends elsewhere.
    """
    directory = Path(folder) / "check_resume"
    manager = _stopped_run(make_run, train, directory)
    expected = _finished(make_run, train, manager.latest_checkpoint)
    from_scratch = _finished(make_run, train, None)
    run = call(resume, str(directory), 30, name="resume")
    _expect_run(run, directory)
    if _max_difference(run, expected) == 0.0:
        return "restored step 15 and trained to step 30: the weights match a correct resume."
    if _max_difference(run, from_scratch) == 0.0:
        raise Wrong("it trained from scratch: restore the newest checkpoint before training.")
    raise Wrong(
        f"its weights differ from a correct resume by up to {_max_difference(run, expected):.2g}; "
        "restore the whole Checkpoint from make_run() (model, optimizer, data and random state)."
    )


def _stopped_run(make_run: Callable[[], Any], train: Callable[..., Any], directory: Path) -> Any:
    """A run trained to step 15 with a 10x learning rate, checkpointed every 5 steps."""
    import tensorflow as tf

    shutil.rmtree(directory, ignore_errors=True)
    with learner_code("the notebook's make_run() and train()", seconds=_NOTEBOOK_SECONDS):
        stopped = make_run()
        stopped.optimizer.learning_rate = 10 * float(stopped.optimizer.learning_rate)
        manager = tf.train.CheckpointManager(stopped, str(directory), max_to_keep=None)
        train(stopped, 15, manager=manager, every=5)
    return manager


def _expect_run(run: Any, directory: Path) -> None:
    import tensorflow as tf

    if not isinstance(run, tf.train.Checkpoint):
        raise Wrong(
            f"resume should return the Checkpoint from make_run(), not {type(run).__name__}"
        )
    if not all(hasattr(run, name) for name in ("model", "step")):
        raise Wrong("it returned a Checkpoint without model and step: return make_run()'s.")
    with learner_code("reading your run's step counter"):
        step = int(run.step)
    if step == 45:
        raise Wrong("it trained 30 more steps after step 15; train until run.step reaches 30.")
    if step != 30:
        raise Wrong(f"its step counter ends at {step}; train until run.step reaches 30.")
    latest = tf.train.latest_checkpoint(str(directory))
    with learner_code("reading the newest checkpoint in the folder"):
        saved = None if latest is None else _saved_step(latest)
    if saved != 30:
        raise Wrong(
            "the newest checkpoint in the folder is not at step 30: save one when training ends "
            "(manager.save(checkpoint_number=run.step)), or a later crash loses the work."
        )


def _saved_step(path: str) -> int | None:
    import tensorflow as tf

    names = {name for name, _ in tf.train.list_variables(path)}
    key = "step/.ATTRIBUTES/VARIABLE_VALUE"
    return int(tf.train.load_variable(path, key)) if key in names else None


# 03.4 -------------------------------------------------------------------------------------------
def _reference_classifier(mode: str, clip_norm: float = 0.5) -> Any:
    """A correct `ClippedClassifier`, or one that clips ``"none"`` or ``"per_tensor"``."""
    import keras
    import tensorflow as tf

    class Reference(keras.Model):
        def __init__(self, clip_norm: float) -> None:
            super().__init__()
            self.hidden = keras.layers.Dense(64, activation="relu")
            self.logits = keras.layers.Dense(10)
            self.clip_norm = clip_norm
            self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            self.loss_tracker = keras.metrics.Mean(name="loss")
            self.accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

        def call(self, x: Any) -> Any:
            return self.logits(self.hidden(x))

        @property
        def metrics(self) -> list[Any]:
            return [self.loss_tracker, self.accuracy]

        def train_step(self, data: Any) -> dict[str, Any]:
            x, y = data
            with tf.GradientTape() as tape:
                logits = self(x, training=True)
                loss = self.loss_fn(y, logits)
            gradients = tape.gradient(loss, self.trainable_variables)
            if mode == "global":
                gradients, _ = tf.clip_by_global_norm(gradients, self.clip_norm)
            elif mode == "per_tensor":
                gradients = [tf.clip_by_norm(g, self.clip_norm) for g in gradients]
            self.optimizer.apply(gradients, self.trainable_variables)
            self.loss_tracker.update_state(loss)
            self.accuracy.update_state(y, logits)
            return {"loss": self.loss_tracker.result(), "accuracy": self.accuracy.result()}

    return Reference(clip_norm)


def _train_briefly(model: Any, initial: list[np.ndarray]) -> dict[str, list[float]]:
    import keras

    x, y = _flat_sample(256)
    model.set_weights(initial)
    model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)  # no XLA on a GPU either
    return model.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0).history


def _same_weights(model: Any, other: Any) -> bool:
    pairs = zip(model.get_weights(), other.get_weights(), strict=True)
    return all(np.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in pairs)


@check("03.4", "a subclassed model with its own train_step")
def check_clipped_classifier(classifier: type) -> str:
    """Train `ClippedClassifier(clip_norm=0.5)` for 2 epochs beside a correct one, and compare."""
    import keras

    model = call(classifier, clip_norm=0.5, name="ClippedClassifier(clip_norm=0.5)")
    if not isinstance(model, keras.Model):
        raise Wrong(f"ClippedClassifier should subclass keras.Model; got {type(model).__name__}")
    x, _ = _flat_sample(2)
    reference = _reference_classifier("global")
    reference(x)
    if np.shape(call(model, x, name="calling your model")) != (2, 10):
        raise Wrong("called on 2 images, it should return logits of shape (2, 10).")
    with learner_code("reading your model's weights"):
        shapes = [w.shape for w in model.get_weights()]
    initial = reference.get_weights()
    if shapes != [w.shape for w in initial]:
        raise Wrong(f"its weights have shapes {shapes}; expected Dense(64) then Dense(10).")
    history = call(_train_briefly, model, initial, name="fit() with your train_step")
    expected = _train_briefly(reference, initial)
    if set(history) != {"loss", "accuracy"}:
        raise Wrong(f"train_step returned {sorted(history)}; return 'loss' and 'accuracy'.")
    with learner_code("reading your model's weights"):
        if not _same_weights(model, reference):
            raise Wrong(_weights_diagnosis(model, initial))
    if not np.allclose([history["loss"], history["accuracy"]],
                       [expected["loss"], expected["accuracy"]], rtol=1e-4):  # fmt: skip
        raise Wrong(
            f"the weights are right, but it reported loss {np.round(history['loss'], 4)} and "
            f"accuracy {np.round(history['accuracy'], 4)} per epoch, expected "
            f"{np.round(expected['loss'], 4)} and {np.round(expected['accuracy'], 4)}. Update "
            "both metrics every step; the metrics property lets fit() reset them each epoch."
        )
    _expect_unclipped_alike(classifier, initial, x)
    return (
        "trains exactly like a correct clipped train_step, with clip_norm 0.5 and with one too "
        "large to clip, and reports loss and accuracy."
    )


def _expect_unclipped_alike(classifier: type, initial: list[np.ndarray], x: np.ndarray) -> None:
    """With a clip_norm no gradient reaches, every step is plain SGD: a loss scaled by a constant,
    or a clip_norm ignored for a constant, shows, where clipping every step would hide it."""
    clip_norm = float(np.round(probe_rng().uniform(200.0, 400.0), 1))
    model = call(classifier, clip_norm=clip_norm, name=f"ClippedClassifier(clip_norm={clip_norm})")
    reference = _reference_classifier("global", clip_norm=clip_norm)
    reference(x)
    call(model, x, name="calling your model")
    call(_train_briefly, model, initial, name="fit() with your train_step")
    _train_briefly(reference, initial)
    with learner_code("reading your model's weights"):
        if not _same_weights(model, reference):
            raise Wrong(
                f"with clip_norm={clip_norm:g}, too large to clip any gradient here, its weights "
                "differ from a correct train_step's: clip to self.clip_norm (the argument, not a "
                "constant), and take the gradients of the loss itself, not of a scaled loss."
            )


def _weights_diagnosis(model: Any, initial: list[np.ndarray]) -> str:
    if all(np.array_equal(a, b) for a, b in zip(model.get_weights(), initial, strict=True)):
        return "the weights did not change: apply the gradients with self.optimizer.apply."
    for mode, text in (
        ("none", "the gradients were not clipped: use tf.clip_by_global_norm"),
        ("per_tensor", "each gradient was clipped on its own (tf.clip_by_norm); clip them "
                       "together with tf.clip_by_global_norm"),
    ):  # fmt: skip
        other = _reference_classifier(mode)
        other(np.zeros((1, 784), "float32"))
        _train_briefly(other, initial)
        if _same_weights(model, other):
            return f"{text}."
    return (
        "after 2 epochs its weights differ from a correct train_step: compute the mean "
        "cross-entropy of the logits, clip by global norm to self.clip_norm, then apply."
    )
