"""Judges of chapter 03's checks (probes in `tfcourse.exercises.ch03`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tfcourse.exercises._framework import Wrong
from tfcourse.exercises.ch03 import (
    MODEL_SPEC_PARAMS,
    STOPPED_AT,
    TOTAL_STEPS,
    _fit_with,
    _flat_sample,
    _model_inputs,
    _train_briefly,
    initial_weights,
    large_clip_norm,
)
from tfcourse.exercises.judges._observed import _MALFORMED, array, field, items, settled


def _malformed(what: str) -> Wrong:
    return Wrong(_MALFORMED.format(what))


def _arrays(observed: Any) -> list[np.ndarray]:
    """A list of arrays, as a probe sends weights."""
    return [array(one) for one in items(settled(observed), kind=np.ndarray)]


# 03.1 -------------------------------------------------------------------------------------------
def build_model(observed: Any, seed: int) -> str:
    """03.1: names, shapes, dtype, parameters, logits, wiring, and the spec's computation."""
    inputs = _named(field(observed, "inputs", list), "inputs")
    outputs = _named(field(observed, "outputs", list), "outputs")
    params = field(observed, "params", int)
    _expect_io(inputs, {"image": (None, 28, 28, 1), "question": (None, 8)}, "inputs")
    if "int" not in inputs["question"]["dtype"]:
        raise Wrong(
            f"input 'question' has dtype {inputs['question']['dtype']}; token ids are integers: "
            'keras.Input((8,), dtype="int32", name="question").'
        )
    _expect_io(outputs, {"answer": (None, 2), "digit": (None, 10)}, "outputs")
    expected = sum(MODEL_SPEC_PARAMS.values())
    if params != expected:
        counts = dict(_pairs(field(observed, "layer_params", list), (str, int)))
        raise Wrong(
            f"it has {params:,} parameters, expected {expected:,}. Yours, layer "
            f"by layer: {counts}; the spec's: {MODEL_SPEC_PARAMS}."
        )
    images, questions = _model_inputs()
    predicted = _predictions(field(observed, "predicted", list))
    _expect_logits(predicted)
    first, second = (_predictions(one) for one in items(field(observed, "rewired", list), 2))
    if not np.allclose(first["digit"], second["digit"]):
        raise Wrong(
            "'digit' changes when only the question changes: connect it to image_features, "
            "not to the joint layer."
        )
    if np.allclose(first["answer"], second["answer"]):
        raise Wrong("'answer' ignores the question: concatenate both branches before it.")
    layers = [_arrays(layer) for layer in items(field(observed, "weights", list), kind=list)]
    _expect_spec_outputs(layers, predicted, images, questions)
    return f"two named inputs, two logit outputs, {expected:,} parameters, wired as specified."


def _pairs(observed: Any, kinds: tuple[type, type]) -> list[list[Any]]:
    pairs = [items(pair, 2) for pair in items(observed, kind=list)]
    if not all(isinstance(a, kinds[0]) and isinstance(b, kinds[1]) for a, b in pairs):
        raise _malformed("expected pairs of a name and a value")
    return pairs


def _named(observed: list[Any], what: str) -> dict[str, dict[str, Any]]:
    """The probe's facts about each input or output, by name; names must differ."""
    facts = []
    for one in items(observed, kind=dict):
        shape = tuple(items(field(one, "shape", list), kind=(int, type(None))))
        facts.append(
            {"name": field(one, "name", str), "shape": shape, "dtype": field(one, "dtype", str)}
        )
    names = [one["name"] for one in facts]
    if len(set(names)) != len(names):
        raise Wrong(f"its {what} have the names {names}; give each a different name.")
    return {one["name"]: one for one in facts}


def _expect_io(found: dict[str, Any], expected: dict[str, tuple[Any, ...]], what: str) -> None:
    if set(found) != set(expected):
        raise Wrong(
            f"its {what} are named {sorted(found)}; expected {sorted(expected)} "
            f"(name=... on keras.Input for inputs, on the last Dense layer for outputs)."
        )
    for name, shape in expected.items():
        if found[name]["shape"] != shape:
            shape_found = found[name]["shape"]
            raise Wrong(f"{what[:-1]} {name!r} has shape {shape_found}, expected {shape}")


#: 03.1's outputs on its 6 examples: name -> shape.
_OUTPUT_SHAPES = {"answer": (6, 2), "digit": (6, 10)}


def _predictions(observed: Any) -> dict[str, np.ndarray]:
    """The model's outputs on the 6 examples, by name: exactly 'answer' and 'digit'."""
    predicted = {name: array(values) for name, values in _pairs(settled(observed), (str, object))}
    if set(predicted) != set(_OUTPUT_SHAPES):
        raise Wrong(
            f"called on images and questions, your model returned outputs named "
            f"{sorted(predicted)}; expected {sorted(_OUTPUT_SHAPES)}."
        )
    for name, shape in _OUTPUT_SHAPES.items():
        if predicted[name].shape != shape or predicted[name].dtype.kind not in "biuf":
            raise _malformed(f"output {name!r} is not {shape} numbers")
    return predicted


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
    layers: list[list[np.ndarray]],
    predicted: dict[str, np.ndarray],
    images: np.ndarray,
    questions: np.ndarray,
) -> None:
    """Your weights in the spec's model (either order of concatenation) give your outputs."""
    weights = _weights_by_role(layers)
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


def _weights_by_role(layers: list[list[np.ndarray]]) -> dict[str, list[np.ndarray]] | None:
    """Each layer's weights by its role in the spec; None if the layers do not map one to one."""
    shapes = {layer.name: [tuple(w.shape) for w in layer.weights] for layer in _spec_model().layers}
    roles: dict[str, list[np.ndarray]] = {}
    for weights in layers:
        if not weights:
            return None
        role = _SPEC_ROLES.get(tuple(weights[0].shape))
        if role is None or role in roles or [w.shape for w in weights] != shapes[role]:
            return None
        if any(w.dtype.kind not in "biuf" for w in weights):
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


def _reference_losses() -> tuple[np.ndarray, np.ndarray]:
    """What Keras reports in the probe's training run of 3 epochs, run here: (batch, validation)
    losses. A run of 1 epoch reports the first 4 and the first 1 of them: it computes the same."""
    reference = _reference_recorder()
    _fit_with([reference], 3)
    return np.array(reference.batch_losses), np.array(reference.val_losses)


def _losses(recording: Any, name: str) -> np.ndarray:
    values = array(field(settled(recording), name))
    if values.dtype.kind not in "biuf":
        raise _malformed(f"{name} of the wrong type")
    return values.astype(np.float64).ravel()


def _expect_recording(
    recording: Any, reference: tuple[np.ndarray, np.ndarray], epochs: int
) -> None:
    batches, vals = _losses(recording, "batch_losses"), _losses(recording, "val_losses")
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
    expected_batches, expected_vals = reference[0][: 4 * epochs], reference[1][:epochs]
    if not np.allclose(batches, expected_batches, rtol=1e-5):
        raise Wrong(
            f"batch_losses is {np.round(batches[:4], 4).tolist()}..., but Keras reported "
            f"{np.round(expected_batches[:4], 4).tolist()}...: append logs['loss'] in "
            "on_train_batch_end."
        )
    if not np.allclose(vals, expected_vals, rtol=1e-5):
        raise Wrong(
            f"val_losses is {np.round(vals, 4).tolist()}, but the validation losses were "
            f"{np.round(expected_vals, 4).tolist()}: append logs['val_loss'] in "
            "on_epoch_end."
        )


def loss_history(observed: Any, seed: int) -> str:
    """03.2: each fit() records Keras' batch losses and validation losses, afresh."""
    reference = _reference_losses()
    _expect_recording(field(observed, "first"), reference, 3)
    later = field(observed, "later", dict)
    if field(later, "first_batches", int) != 12:
        raise Wrong(
            "a second LossHistory() changed the first one's list: they share one list, a "
            "class attribute. Create the lists on the instance, in on_train_begin."
        )
    _expect_recording(field(later, "second"), reference, 1)
    _expect_recording(field(later, "third"), reference, 1)
    return "records every batch's loss and every epoch's validation loss, afresh in each fit()."


# 03.3 -------------------------------------------------------------------------------------------
def resume(observed: Any, seed: int) -> str:
    """03.3: step 30, a checkpoint at step 30, and the weights of a resume from step 15."""
    step = field(observed, "step", int)
    if step == STOPPED_AT + TOTAL_STEPS:
        raise Wrong("it trained 30 more steps after step 15; train until run.step reaches 30.")
    if step != TOTAL_STEPS:
        raise Wrong(f"its step counter ends at {step}; train until run.step reaches 30.")
    saved = field(observed, "saved", (int, type(None)))
    if saved != TOTAL_STEPS:
        raise Wrong(
            "the newest checkpoint in the folder is not at step 30: save one when training ends "
            "(manager.save(checkpoint_number=run.step)), or a later crash loses the work."
        )
    weights = _arrays(field(observed, "weights", list))
    restored = _arrays(field(observed, "restored", list))
    from_scratch = _arrays(field(observed, "from_scratch", list))
    if not restored or len(from_scratch) != len(restored):
        raise _malformed("no weights from the check's own runs")
    if _max_difference(weights, restored) == 0.0:
        return "restored step 15 and trained to step 30: the weights match a correct resume."
    if _max_difference(weights, from_scratch) == 0.0:
        raise Wrong("it trained from scratch: restore the newest checkpoint before training.")
    raise Wrong(
        f"its weights differ from a correct resume by up to "
        f"{_max_difference(weights, restored):.2g}; restore the whole Checkpoint from make_run() "
        "(model, optimizer, data and random state)."
    )


def _max_difference(weights: list[np.ndarray], other: list[np.ndarray]) -> float:
    if not _same_shapes(weights, other):
        raise Wrong("its model's weights have other shapes: return make_run()'s Checkpoint.")
    return max(
        float(np.max(np.abs(_numbers(a) - _numbers(b)), initial=0.0))
        for a, b in zip(weights, other, strict=True)
    )


def _same_shapes(arrays: list[np.ndarray], others: list[np.ndarray]) -> bool:
    if len(arrays) != len(others):
        return False
    return all(a.shape == b.shape for a, b in zip(arrays, others, strict=True))


def _numbers(values: np.ndarray) -> np.ndarray:
    return values.astype(np.result_type(values, np.float32), copy=False)


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


#: 03.4's weights: Dense(64) then Dense(10) on 784 pixels.
_SHAPES = [(784, 64), (64,), (64, 10), (10,)]


def _trained_reference(mode: str, initial: list[np.ndarray], clip_norm: float = 0.5) -> Any:
    """A reference classifier trained by the probe's run from `initial`: (model, history)."""
    reference = _reference_classifier(mode, clip_norm)
    reference(_flat_sample(2)[0])
    return reference, _train_briefly(reference, initial)


def _same_weights(mine: Any, other: Any) -> bool:
    """Whether two models, or lists of weights, hold the same weights within float32's noise."""
    mine, other = (w if isinstance(w, list) else w.get_weights() for w in (mine, other))
    if not _same_shapes(mine, other):
        return False
    pairs = zip(mine, other, strict=True)
    return all(np.allclose(_numbers(a), b, rtol=1e-5, atol=1e-6) for a, b in pairs)


def clipped_classifier(observed: Any, seed: int) -> str:
    """03.4: trains like a correct clipped train_step, with clip_norm 0.5 and a large one."""
    logits_shape = items(field(observed, "logits_shape", list), kind=(int, type(None)))
    if tuple(logits_shape) != (2, 10):
        raise Wrong("called on 2 images, it should return logits of shape (2, 10).")
    shapes = [tuple(items(s, kind=int)) for s in items(field(observed, "shapes", list), kind=list)]
    if shapes != _SHAPES:
        raise Wrong(f"its weights have shapes {shapes}; expected Dense(64) then Dense(10).")
    initial = initial_weights(_SHAPES, seed)
    seen = field(observed, "history", dict)
    names = items(field(seen, "names", list), kind=str)
    reference, expected = _trained_reference("global", initial)
    if set(names) != {"loss", "accuracy"}:
        raise Wrong(f"train_step returned {sorted(names)}; return 'loss' and 'accuracy'.")
    weights = _arrays(field(observed, "weights", list))
    if not _same_weights(weights, reference):
        raise Wrong(_weights_diagnosis(weights, initial))
    history = {name: _per_epoch(array(field(seen, name))) for name in ("loss", "accuracy")}
    right = [np.asarray(expected["loss"]), np.asarray(expected["accuracy"])]
    if not _same_shapes(list(history.values()), right) or not np.allclose(
        [history["loss"], history["accuracy"]], right, rtol=1e-4
    ):
        raise Wrong(
            f"the weights are right, but it reported loss {np.round(history['loss'], 4)} and "
            f"accuracy {np.round(history['accuracy'], 4)} per epoch, expected "
            f"{np.round(expected['loss'], 4)} and {np.round(expected['accuracy'], 4)}. Update "
            "both metrics every step; the metrics property lets fit() reset them each epoch."
        )
    _expect_unclipped_alike(field(observed, "unclipped", list), initial, seed)
    return (
        "trains exactly like a correct clipped train_step, with clip_norm 0.5 and with one too "
        "large to clip, and reports loss and accuracy."
    )


def _per_epoch(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind not in "biuf":
        raise _malformed("a loss or accuracy of the wrong type")
    return values.astype(np.float64)


def _expect_unclipped_alike(observed: Any, initial: list[np.ndarray], seed: int) -> None:
    """With a clip_norm no gradient reaches, every step is plain SGD: a loss scaled by a constant,
    or a clip_norm ignored for a constant, shows, where clipping every step would hide it."""
    weights = _arrays(observed)
    clip_norm = large_clip_norm(seed)
    reference, _ = _trained_reference("global", initial, clip_norm)
    if not _same_weights(weights, reference):
        raise Wrong(
            f"with clip_norm={clip_norm:g}, too large to clip any gradient here, its weights "
            "differ from a correct train_step's: clip to self.clip_norm (the argument, not a "
            "constant), and take the gradients of the loss itself, not of a scaled loss."
        )


def _weights_diagnosis(weights: list[np.ndarray], initial: list[np.ndarray]) -> str:
    if len(weights) == len(initial) and all(
        np.array_equal(a, b) for a, b in zip(weights, initial, strict=True)
    ):
        return "the weights did not change: apply the gradients with self.optimizer.apply."
    for mode, text in (
        ("none", "the gradients were not clipped: use tf.clip_by_global_norm"),
        ("per_tensor", "each gradient was clipped on its own (tf.clip_by_norm); clip them "
                       "together with tf.clip_by_global_norm"),
    ):  # fmt: skip
        other, _ = _trained_reference(mode, initial)
        if _same_weights(weights, other):
            return f"{text}."
    return (
        "after 2 epochs its weights differ from a correct train_step: compute the mean "
        "cross-entropy of the logits, clip by global norm to self.clip_norm, then apply."
    )
