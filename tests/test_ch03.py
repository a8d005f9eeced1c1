"""Chapter 03's checks: each accepts a right answer and explains five or more kinds of wrong one."""

import numpy as np
import pytest
from answers import assert_result, not_written, raises

from tfcourse.exercises import ch03


@pytest.fixture
def keras(tf):
    import keras

    return keras


# 03.1 build_model --------------------------------------------------------------------------------
def two_headed(
    keras,
    *,
    question_shape=(8,),
    question_dtype="int32",
    embedding_dim=16,
    answer_units=2,
    answer_activation=None,
    digit_from="image",
    image_name="image",
    features_activation="relu",
    joint_activation="relu",
    pooling="average",
    question_first=False,
    as_dict=False,
):
    layers = keras.layers
    image = keras.Input((28, 28, 1), name=image_name)
    question = keras.Input(question_shape, dtype=question_dtype, name="question")
    features = layers.Dense(64, activation=features_activation, name="image_features")(
        layers.Flatten()(image)
    )
    pool = layers.GlobalAveragePooling1D() if pooling == "average" else layers.GlobalMaxPooling1D()
    words = pool(layers.Embedding(20, embedding_dim)(question))
    branches = [words, features] if question_first else [features, words]
    joint = layers.Dense(64, activation=joint_activation, name="joint")(
        layers.Concatenate()(branches)
    )
    answer = layers.Dense(answer_units, activation=answer_activation, name="answer")(joint)
    digit = layers.Dense(10, name="digit")(features if digit_from == "image" else joint)
    if as_dict:  # the notebook's solution passes dicts
        return keras.Model(
            {"image": image, "question": question}, {"answer": answer, "digit": digit}
        )
    return keras.Model([image, question], [answer, digit])


@pytest.mark.parametrize(
    ("make_answer", "status", "fragment"),
    [
        (lambda k: lambda: two_headed(k), "passed", "wired as specified"),
        (lambda k: None, "not attempted", "not attempted yet"),
        (lambda k: not_written, "not attempted", "not attempted yet"),
        (lambda k: raises, "failed", "raised RuntimeError"),
        (lambda k: lambda: "model", "failed", "should return a keras.Model, not str"),
        (lambda k: lambda: two_headed(k, image_name="picture"), "failed", "inputs are named"),
        (
            lambda k: lambda: two_headed(k, question_shape=(10,)),
            "failed",
            "input 'question' has shape (None, 10), expected (None, 8)",
        ),
        (
            lambda k: lambda: two_headed(k, question_dtype="float32"),
            "failed",
            "token ids are integers",
        ),
        (
            lambda k: lambda: two_headed(k, answer_units=3),
            "failed",
            "output 'answer' has shape (None, 3)",
        ),
        (
            lambda k: lambda: two_headed(k, answer_activation="softmax"),
            "failed",
            "gives probabilities (softmax)",
        ),
        (lambda k: lambda: two_headed(k, answer_activation="sigmoid"), "failed", "never negative"),
        (lambda k: lambda: two_headed(k, question_first=True), "passed", "wired as specified"),
        (lambda k: lambda: two_headed(k, as_dict=True), "passed", "wired as specified"),
        (
            lambda k: lambda: two_headed(k, features_activation=None),
            "failed",
            "image_features has no ReLU",
        ),
        (lambda k: lambda: two_headed(k, joint_activation=None), "failed", "joint has no ReLU"),
        (
            lambda k: lambda: two_headed(k, joint_activation="tanh"),
            "failed",
            "the spec's model computes other outputs",
        ),
        (lambda k: lambda: two_headed(k, pooling="max"), "failed", "pools with the maximum"),
        (
            lambda k: lambda: two_headed(k, embedding_dim=32),
            "failed",
            "parameters, expected 56,524",
        ),
        (
            lambda k: lambda: two_headed(k, digit_from="joint"),
            "failed",
            "'digit' changes when only the question changes",
        ),
    ],
)
def test_check_build_model(keras, make_answer, status, fragment):
    assert_result(ch03.check_build_model(make_answer(keras)), status, fragment)


# 03.2 LossHistory --------------------------------------------------------------------------------
def recorder_class(
    keras, *, batch_hook="on_train_batch_end", val_key="val_loss", reset="on_train_begin"
):
    """A LossHistory callback class; the options make the classic mistakes."""

    class LossHistory(keras.callbacks.Callback):
        batch_losses = []  # noqa: RUF012  (the shared-list mistake, when reset is None)
        val_losses = []  # noqa: RUF012

        def __init__(self):
            super().__init__()
            if reset == "__init__":
                self.batch_losses, self.val_losses = [], []

        def on_train_begin(self, logs=None):
            if reset == "on_train_begin":
                self.batch_losses, self.val_losses = [], []

        def record_batch(self, batch, logs=None):
            self.batch_losses.append(logs.get("loss", 0.0))

        def on_epoch_end(self, epoch, logs=None):
            if batch_hook == "on_epoch_end":
                self.batch_losses.append(logs["loss"])
            self.val_losses.append(logs[val_key])

    if batch_hook not in ("on_epoch_end", None):
        setattr(LossHistory, batch_hook, LossHistory.record_batch)
    return LossHistory


class NotACallback:
    batch_losses: tuple = ()


def unwritten_recorder(keras):
    """What the student release's class does: it raises when fit() starts."""
    return type("LossHistory", (keras.callbacks.Callback,), {"on_train_begin": not_written})


@pytest.mark.parametrize(
    ("make_answer", "status", "fragment"),
    [
        (lambda k: recorder_class(k), "passed", "afresh in each fit()"),
        (lambda k: None, "not attempted", "not attempted yet"),
        (unwritten_recorder, "not attempted", "not attempted yet"),
        (lambda k: NotACallback, "failed", "subclass of keras.callbacks.Callback"),
        (lambda k: recorder_class(k)(), "failed", "pass the class itself"),
        (lambda k: recorder_class(k, batch_hook="on_epoch_end"), "failed", "one per epoch"),
        (
            lambda k: recorder_class(k, batch_hook="on_train_batch_begin"),
            "failed",
            "append logs['loss'] in on_train_batch_end",
        ),
        (lambda k: recorder_class(k, val_key="loss"), "failed", "append logs['val_loss']"),
        (lambda k: recorder_class(k, reset="__init__"), "failed", "in on_train_begin, so each"),
        (lambda k: recorder_class(k, reset=None), "failed", "a class attribute"),
        (
            lambda k: type("Crashes", (recorder_class(k),), {"on_epoch_end": raises}),
            "failed",
            "raised RuntimeError",
        ),
        (
            lambda k: type("Broken", (recorder_class(k),), {"batch_losses": property(raises)}),
            "failed",
            "raised AttributeError",
        ),
    ],
)
def test_check_loss_history(keras, make_answer, status, fragment):
    assert_result(ch03.check_loss_history(make_answer(keras)), status, fragment)


# 03.3 resume -------------------------------------------------------------------------------------
def make_run():
    """The notebook's run: a small MLP with Dropout, Adam, a shuffled data iterator and a step."""
    import keras
    import tensorflow as tf

    images, labels = ch03._flat_sample(200)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(10),
        ]
    )
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    batches = tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(200, seed=1)
    return tf.train.Checkpoint(
        model=model,
        optimizer=optimizer,
        data=iter(batches.repeat().batch(20)),
        step=tf.Variable(0, dtype=tf.int64),
        rng=model.non_trainable_variables,
    )


def train(run, until, *, manager=None, every=5):
    import keras
    import tensorflow as tf

    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, run.model(x, training=True))
        gradients = tape.gradient(loss, run.model.trainable_variables)
        run.optimizer.apply(gradients, run.model.trainable_variables)

    while int(run.step) < until:
        train_step(*next(run.data))
        run.step.assign_add(1)
        if manager is not None and int(run.step) % every == 0:
            manager.save(checkpoint_number=run.step)


def resumer(tf, *, which="latest", more=False, save=True, partial=False):
    def resume(directory, total_steps):
        run = make_run()
        manager = tf.train.CheckpointManager(run, directory, max_to_keep=3)
        if which is not None:
            start = manager.latest_checkpoint if which == "latest" else manager.checkpoints[0]
            target = tf.train.Checkpoint(model=run.model) if partial else run
            target.restore(start).expect_partial()
        until = int(run.step) + total_steps if more else total_steps
        train(run, until, manager=manager if save else None)
        return run

    return resume


@pytest.mark.parametrize(
    ("make_answer", "status", "fragment"),
    [
        (lambda tf: resumer(tf), "passed", "match a correct resume"),
        (lambda tf: None, "not attempted", "not attempted yet"),
        (lambda tf: not_written, "not attempted", "not attempted yet"),
        (lambda tf: raises, "failed", "raised RuntimeError"),
        (lambda tf: lambda d, n: make_run().model, "failed", "not Sequential"),
        (
            lambda tf: lambda d, n: tf.train.Checkpoint(model=make_run().model),
            "failed",
            "without model and step",
        ),
        (lambda tf: resumer(tf, which=None), "failed", "trained from scratch"),
        (lambda tf: resumer(tf, more=True), "failed", "trained 30 more steps"),
        (lambda tf: resumer(tf, save=False), "failed", "save one when training ends"),
        (lambda tf: resumer(tf, partial=True), "failed", "restore the whole Checkpoint"),
    ],
)
def test_check_resume(tf, tmp_path, make_answer, status, fragment):
    result = ch03.check_resume(make_answer(tf), make_run=make_run, train=train, folder=tmp_path)
    assert_result(result, status, fragment)


def test_check_resume_starts_from_a_clean_folder(tf, tmp_path):
    (tmp_path / "check_resume").mkdir()
    (tmp_path / "check_resume" / "checkpoint").write_text("stale")
    result = ch03.check_resume(resumer(tf), make_run=make_run, train=train, folder=tmp_path)
    assert_result(result, "passed", "match a correct resume")


# 03.4 ClippedClassifier --------------------------------------------------------------------------
def classifier_class(
    keras, tf, *, clip="global", apply=True, metrics=("loss", "accuracy"), width=64, scale=1.0
):
    """A ClippedClassifier; the options make the classic mistakes."""

    class ClippedClassifier(keras.Model):
        def __init__(self, num_classes=10, clip_norm=1.0):
            super().__init__()
            self.hidden = keras.layers.Dense(width, activation="relu")
            self.logits = keras.layers.Dense(num_classes)
            self.clip_norm = clip_norm
            self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            self.loss_tracker = keras.metrics.Mean(name="loss")
            self.accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

        def call(self, x):
            return self.logits(self.hidden(x))

        @property
        def metrics(self):
            return [self.loss_tracker, self.accuracy] if metrics != "unreset" else []

        def train_step(self, data):
            x, y = data
            with tf.GradientTape() as tape:
                logits = self(x, training=True)
                loss = self.loss_fn(y, logits)
                scaled = scale * loss
            gradients = tape.gradient(scaled, self.trainable_variables)
            if clip == "global":
                gradients, _ = tf.clip_by_global_norm(gradients, self.clip_norm)
            elif clip == "per_tensor":
                gradients = [tf.clip_by_norm(g, self.clip_norm) for g in gradients]
            elif clip == "fixed":
                gradients, _ = tf.clip_by_global_norm(gradients, 1.0)
            elif clip == "chapter":  # the chapter's 0.5, whatever clip_norm is
                gradients, _ = tf.clip_by_global_norm(gradients, 0.5)
            elif clip == "value":
                gradients = [
                    tf.clip_by_value(g, -self.clip_norm, self.clip_norm) for g in gradients
                ]
            if apply:
                self.optimizer.apply(gradients, self.trainable_variables)
            self.loss_tracker.update_state(loss)
            self.accuracy.update_state(y, logits)
            results = {"loss": self.loss_tracker.result(), "accuracy": self.accuracy.result()}
            return {k: v for k, v in results.items() if metrics == "unreset" or k in metrics}

    return ClippedClassifier


def unwritten_classifier(keras, tf):
    class ClippedClassifier(classifier_class(keras, tf)):
        def train_step(self, data):
            raise NotImplementedError

    return ClippedClassifier


@pytest.mark.parametrize(
    ("make_answer", "status", "fragment"),
    [
        (lambda k, tf: classifier_class(k, tf), "passed", "trains exactly like"),
        (lambda k, tf: None, "not attempted", "not attempted yet"),
        (unwritten_classifier, "not attempted", "not attempted yet"),
        (lambda k, tf: raises, "failed", "raised RuntimeError"),
        (lambda k, tf: dict, "failed", "should subclass keras.Model"),
        (
            lambda k, tf: classifier_class(k, tf, width=32),
            "failed",
            "expected Dense(64) then Dense(10)",
        ),
        (lambda k, tf: classifier_class(k, tf, clip=None), "failed", "were not clipped"),
        (
            lambda k, tf: classifier_class(k, tf, clip="per_tensor"),
            "failed",
            "clipped on its own",
        ),
        (lambda k, tf: classifier_class(k, tf, apply=False), "failed", "did not change"),
        (lambda k, tf: classifier_class(k, tf, clip="fixed"), "failed", "differ from a correct"),
        (lambda k, tf: classifier_class(k, tf, clip="value"), "failed", "were not clipped"),
        (lambda k, tf: classifier_class(k, tf, scale=3.0), "failed", "not of a scaled loss"),
        (lambda k, tf: classifier_class(k, tf, clip="chapter"), "failed", "too large to clip"),
        (
            lambda k, tf: classifier_class(k, tf, metrics=("loss",)),
            "failed",
            "return 'loss' and 'accuracy'",
        ),
        (
            lambda k, tf: classifier_class(k, tf, metrics="unreset"),
            "failed",
            "the weights are right",
        ),
    ],
)
def test_check_clipped_classifier(keras, tf, make_answer, status, fragment):
    assert_result(ch03.check_clipped_classifier(make_answer(keras, tf)), status, fragment)


def test_the_large_clip_norm_clips_nothing(keras):
    """The check's second run relies on it: with clip_norm 200, clipping is plain SGD."""
    initial = ch03._reference_classifier("global")
    initial(np.zeros((1, 784), "float32"))
    weights = initial.get_weights()
    large, none = ch03._reference_classifier("global", 200.0), ch03._reference_classifier("none")
    for model in (large, none):
        model(np.zeros((1, 784), "float32"))
        ch03._train_briefly(model, weights)
    assert ch03._same_weights(large, none)


def test_model_spec_params_add_up_to_the_spec_total():
    assert sum(ch03.MODEL_SPEC_PARAMS.values()) == 56_524
    assert np.isclose(ch03.MODEL_SPEC_PARAMS["joint"], (64 + 16) * 64 + 64)
