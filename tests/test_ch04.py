"""Chapter 04's checks: each accepts a right answer and explains five or more kinds of wrong one."""

import zlib

import numpy as np
import pytest
from answers import MISBEHAVING, assert_result, assert_survives, not_written, raises, sleeps

from tfcourse import data
from tfcourse.exercises import _learner, ch04


# 04.1 pad_and_mask -------------------------------------------------------------------------------
def pad_and_mask(sequences):
    """The notebook's solution."""
    import tensorflow as tf

    ragged = tf.ragged.constant(sequences, dtype=tf.int64, ragged_rank=1)
    padded = ragged.to_tensor(default_value=0)
    return padded, tf.sequence_mask(ragged.row_lengths(), maxlen=tf.shape(padded)[1])


def numpy_pad(sequences, *, fill=0, pre=False, extra=0, dtype="int64", mask_shift=0):
    """A NumPy pad_and_mask; the options make the classic mistakes."""
    longest = max(len(row) for row in sequences) + extra
    padded = np.full((len(sequences), longest), fill, dtype=dtype)
    mask = np.zeros((len(sequences), longest), dtype=bool)
    for i, row in enumerate(sequences):
        start = longest - len(row) if pre else 0
        padded[i, start : start + len(row)] = row
        mask[i, start : start + max(len(row) + mask_shift, 0)] = True
    return padded, mask


def with_mask(make_mask):
    """pad_and_mask, with the mask replaced by make_mask(padded, mask)."""

    def answer(sequences):
        padded, mask = pad_and_mask(sequences)
        return padded, make_mask(padded, mask)

    return answer


def keras_pad_sequences(sequences, **options):
    import keras

    padded = keras.utils.pad_sequences(sequences, **options)
    return padded, padded != 0


@pytest.mark.parametrize(
    ("answer", "status", "fragment"),
    [
        (pad_and_mask, "passed", "post-pads with 0 into int64"),
        (numpy_pad, "passed", "post-pads with 0 into int64"),
        (None, "not attempted", "not attempted yet"),
        (not_written, "not attempted", "not attempted yet"),
        (raises, "failed", "pad_and_mask raised RuntimeError: oops"),
        (with_mask(lambda p, m: p != 0), "failed", "0 is a valid id here"),
        (with_mask(lambda p, m: ~m), "failed", "the mask is inverted"),
        (with_mask(lambda p, m: np.asarray(m, "int32")), "failed", "mask has dtype int32"),
        (with_mask(lambda p, m: np.asarray(m, "float32")), "failed", "expected bool"),
        (with_mask(lambda p, m: np.asarray(m).T), "failed", "the mask is transposed"),
        (lambda s: (numpy_pad(s)[0].T, numpy_pad(s)[1]), "failed", "padded is transposed"),
        (lambda s: numpy_pad(s, pre=True), "failed", "put them after it (post-padding)"),
        (lambda s: numpy_pad(s, fill=-1), "failed", "it pads with -1; pad with 0"),
        (lambda s: numpy_pad(s, dtype="int32"), "failed", "padded has dtype int32, expected int64"),
        (lambda s: numpy_pad(s, extra=1), "failed", "pad to the length of the longest sequence"),
        (lambda s: numpy_pad(s, mask_shift=-1), "failed", "mask row 0 is [True, True, False]"),
        (lambda s: numpy_pad(s, mask_shift=1), "failed", "mask row 1 is [True, True, False]"),
        (lambda s: numpy_pad(s)[0].T, "failed", "it returned one value"),
        (lambda s: numpy_pad(s)[0], "failed", "it returned one value"),
        (lambda s: numpy_pad(s)[::-1], "failed", "return (padded, mask) in that order"),
        (lambda s: tuple(x.T for x in numpy_pad(s)), "failed", "padded is transposed"),
        (lambda s: pad_and_mask(s)[0].numpy().tolist(), "failed", "a pair (padded, mask)"),
        (keras_pad_sequences, "failed", "padded has dtype int32, expected int64"),
        (
            lambda s: keras_pad_sequences(s, padding="post", dtype="int64"),
            "failed",
            "0 is a valid id here",
        ),
        (
            lambda s: keras_pad_sequences(s, dtype="int64"),
            "failed",
            "put them after it (post-padding)",
        ),
    ],
)
def test_check_pad_and_mask(tf, answer, status, fragment):
    assert_result(ch04.check_pad_and_mask(answer), status, fragment)


def test_check_pad_and_mask_rejects_a_ragged_tensor(tf):
    ragged = lambda s: tf.ragged.constant(s, dtype=tf.int64)  # noqa: E731
    result = ch04.check_pad_and_mask(ragged)
    assert_result(result, "failed", "it returned a RaggedTensor")
    result = ch04.check_pad_and_mask(lambda s: (ragged(s), pad_and_mask(s)[1]))
    assert_result(result, "failed", "padded is a RaggedTensor")


# 04.2 train_name_classifier ----------------------------------------------------------------------
TEST_NAMES = data.load_numpy("names", "test")
LABEL_OF = dict(zip(TEST_NAMES["name"].tolist(), TEST_NAMES["label"].tolist(), strict=True))


def lookup_logits(names):
    """Cheating but accurate logits: the true locale of each test name scores 5."""
    return 5.0 * np.eye(10)[[LABEL_OF[name] for name in names]]


def trains(classify):
    """A train_name_classifier that returns `classify` at once."""
    return lambda train_ds, val_ds: classify


def hashed_logits(names):
    """Logits that depend on the name only, and carry no information about its locale."""
    return np.stack([np.random.default_rng(zlib.crc32(n.encode())).normal(size=10) for n in names])


def noisy_logits(names):
    return lookup_logits(names) + np.random.default_rng().normal(size=(len(names), 10))


def batch_dependent_logits(names):
    return lookup_logits(names) + 0.01 * max(len(name) for name in names)


def softmax(logits):
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def tiny_classifiers(tf):
    """Untrained character-level GRUs, with and without the mask, as classify functions."""
    import keras

    chars = keras.layers.StringLookup(mask_token="")
    chars.adapt(tf.strings.unicode_split(data.load_numpy("names", "train")["name"], "UTF-8"))

    def classifier(mask_zero):
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((None,), dtype="int64"),
                keras.layers.Embedding(chars.vocabulary_size(), 8, mask_zero=mask_zero),
                keras.layers.Bidirectional(keras.layers.GRU(8)),
                keras.layers.Dense(10),
            ]
        )
        encode = lambda names: chars(tf.strings.unicode_split(tf.constant(names), "UTF-8"))  # noqa: E731
        return lambda names: model(encode(names).to_tensor(), training=False)

    return {"masked": classifier(True), "unmasked": classifier(False)}


@pytest.mark.parametrize(
    ("answer", "status", "fragment"),
    [
        (trains(lookup_logits), "passed", "100.0% accuracy on the 636 test names"),
        (trains(lambda n: softmax(lookup_logits(n))), "passed", "100.0% accuracy"),
        (trains(lambda n: lookup_logits(n).tolist()), "passed", "100.0% accuracy"),
        (None, "not attempted", "not attempted yet"),
        (not_written, "not attempted", "not attempted yet"),
        (raises, "failed", "train_name_classifier(train_ds, val_ds) raised RuntimeError"),
        (trains(raises), "failed", "classify raised RuntimeError: oops"),
        (trains(not_written), "not attempted", "not attempted yet"),
        (lambda t, v: None, "failed", "returned None; return the function classify"),
        (trains("classify"), "failed", "should return a function, not a str"),
        (trains(lambda n: lookup_logits(n).argmax(1)), "failed", "not the predicted ids"),
        (trains(lambda n: lookup_logits(n)[:, :9]), "failed", "expected (128, 10)"),
        (trains(lambda n: lookup_logits(n).T), "failed", "transpose it"),
        (trains(lambda n: lookup_logits(n) * np.nan), "failed", "contains NaN"),
        (trains(lambda n: np.roll(lookup_logits(n), 1, axis=1)), "failed", "another order"),
        (trains(hashed_logits), "failed", "below the floor of 66%"),
        (trains(lambda n: 0.2 * lookup_logits(n) + hashed_logits(n)), "failed", "below the"),
        (trains(noisy_logits), "failed", "with training=False, so that dropout is off"),
        (trains(batch_dependent_logits), "failed", "mask it (Embedding(..., mask_zero=True))"),
    ],
)
def test_check_name_classifier(tf, answer, status, fragment):
    result = ch04.check_name_classifier(answer, train_ds=None, val_ds=None)
    assert_result(result, status, fragment)


def test_check_name_classifier_explains_a_model_returned_for_a_function(tf):
    import keras

    model = keras.Sequential([keras.Input((None,), dtype="int64"), keras.layers.Embedding(9, 10)])
    result = ch04.check_name_classifier(trains(model), train_ds=None, val_ds=None)
    assert_result(result, "failed", "returned a Keras model, which takes ids; return a function")


def test_check_name_classifier_finds_a_missing_mask(tiny_classifiers):
    result = ch04.check_name_classifier(
        trains(tiny_classifiers["unmasked"]), train_ds=None, val_ds=None
    )
    assert_result(result, "failed", "the padding changes the answer")


def test_check_name_classifier_finds_an_untrained_masked_model(tiny_classifiers):
    result = ch04.check_name_classifier(
        trains(tiny_classifiers["masked"]), train_ds=None, val_ds=None
    )
    assert_result(result, "failed", "did the model train?")


def test_check_name_classifier_stops_training_at_its_time_limit(tf, monkeypatch):
    monkeypatch.setattr(ch04, "TRAINING_SECONDS", 0.5)
    result = ch04.check_name_classifier(sleeps, train_ds=None, val_ds=None)
    assert_result(result, "failed", "train for fewer epochs or a smaller model")


# 04.3 sample -------------------------------------------------------------------------------------
def sample(logits, temperature, k, seed):
    """The notebook's solution."""
    import tensorflow as tf

    logits = tf.convert_to_tensor(logits, tf.float32)
    if temperature == 0:
        return tf.argmax(logits, axis=-1)
    if k is not None:
        kth_largest = tf.math.top_k(logits, k=k).values[:, -1:]
        logits = tf.where(logits < kth_largest, -np.inf, logits)
    return tf.random.stateless_categorical(logits / temperature, 1, seed=seed, dtype=tf.int64)[:, 0]


def sampler(
    *, scale=None, use_k=True, k_shift=0, smallest=False, fill=-np.inf, zero=True, draw=None
):
    """A sample function; the options make the classic mistakes.

    Args:
        scale: How the logits meet the temperature, ``(logits, t) -> scaled``.
        use_k: Whether to keep only the k largest logits.
        k_shift: Added to k.
        smallest: Keep the k smallest logits.
        fill: What the dropped logits become.
        zero: Whether a temperature of 0 returns the argmax.
        draw: How to draw, ``(scaled_logits, seed) -> ids``.
    """
    import tensorflow as tf

    def answer(logits, temperature, k, seed):
        logits = tf.convert_to_tensor(logits, tf.float32)
        if zero and temperature == 0:
            return tf.argmax(logits, axis=-1)
        if use_k and k is not None:
            signed = -logits if smallest else logits
            kth = tf.math.top_k(signed, k=k + k_shift).values[:, -1:]
            logits = tf.where(signed < kth, fill, logits)
        scaled = scale(logits, temperature) if scale else logits / temperature
        if draw is not None:
            return draw(scaled, seed)
        return tf.random.stateless_categorical(scaled, 1, seed=seed, dtype=tf.int64)[:, 0]

    return answer


def stateful(scaled, seed):
    import tensorflow as tf

    return tf.random.categorical(scaled, 1, dtype=tf.int64)[:, 0]


def fixed_seed(scaled, seed):
    import tensorflow as tf

    return tf.random.stateless_categorical(scaled, 1, seed=[0, 0], dtype=tf.int64)[:, 0]


def from_probabilities(scaled, seed):
    import tensorflow as tf

    probabilities = tf.nn.softmax(scaled)
    return tf.random.stateless_categorical(probabilities, 1, seed=seed, dtype=tf.int64)[:, 0]


def exp_overflows(scaled, seed):
    """Softmax by hand, without subtracting the maximum: exp() overflows at a small temperature."""
    import tensorflow as tf

    exp = tf.exp(scaled)
    probabilities = exp / tf.reduce_sum(exp, axis=-1, keepdims=True)
    return tf.random.stateless_categorical(tf.math.log(probabilities), 1, seed=seed)[:, 0]


def numpy_sample(logits, temperature, k, seed):
    """A right answer in NumPy, seeded by `seed`."""
    logits = np.asarray(logits, np.float64)
    if temperature == 0:
        return logits.argmax(axis=1)
    if k is not None:
        kth = np.sort(logits, axis=1)[:, -k][:, None]
        logits = np.where(logits < kth, -np.inf, logits)
    probabilities = np.exp((logits - logits.max(axis=1, keepdims=True)) / temperature)
    cumulative = np.cumsum(probabilities / probabilities.sum(axis=1, keepdims=True), axis=1)
    uniform = np.random.default_rng(seed).random((len(logits), 1))
    return np.minimum((uniform > cumulative).sum(axis=1), logits.shape[1] - 1).astype(np.int64)


@pytest.mark.parametrize(
    ("answer", "status", "fragment"),
    [
        (sample, "passed", "draws from softmax(top-k(logits) / temperature) per row"),
        (sampler(), "passed", "draws from softmax"),
        (numpy_sample, "passed", "draws from softmax"),
        (None, "not attempted", "not attempted yet"),
        (not_written, "not attempted", "not attempted yet"),
        (raises, "failed", "sample raised RuntimeError: oops"),
        (sampler(scale=lambda x, t: x * t), "failed", "multiplies the logits by the temperature"),
        (sampler(scale=lambda x, t: x), "failed", "with temperature 2 and k=None, it ignores the"),
        (
            sampler(scale=lambda x, t: x if t < 0.1 else x / (t + 0.2)),
            "failed",
            "are flatter than softmax(top-k(logits) / temperature)",
        ),
        (sampler(draw=exp_overflows), "failed", "with temperature 0.01 and k=None, it drew id 6"),
        (
            sampler(k_shift=1),
            "failed",
            "with k=3 it drew from the 4 largest logits; keep exactly 3",
        ),
        (sampler(use_k=False), "failed", "with k=3 it ignores k: keep only the 3 largest"),
        (sampler(k_shift=-1), "failed", "it keeps only the 2 largest logits"),
        (sampler(smallest=True), "failed", "with k=3 it kept the 3 smallest logits"),
        (sampler(fill=0.0), "failed", "set the other logits to -inf (not 0)"),
        (sampler(zero=False), "failed", "dividing by 0 gives inf and NaN"),
        (sampler(draw=stateful), "failed", "two calls with the same seed drew different ids"),
        (sampler(draw=fixed_seed), "failed", "calls with different seeds drew the same ids"),
        (sampler(draw=from_probabilities), "failed", "passes probabilities where logits"),
        (sampler(draw=lambda x, s: sample(x, 1.0, None, s)[:, None]), "failed", "squeeze it"),
        (sampler(draw=lambda x, s: tf_cast(sample(x, 1.0, None, s))), "failed", "dtype int32"),
        (sampler(draw=lambda x, s: np.asarray(x).argmax(1)), "failed", "always draws the most"),
        (
            sampler(draw=lambda x, s: np.asarray(x).argmin(1)),
            "failed",
            "always draws the least likely",
        ),
    ],
)
def test_check_sample(tf, answer, status, fragment):
    assert_result(ch04.check_sample(answer), status, fragment)


def tf_cast(ids):
    import tensorflow as tf

    return tf.cast(ids, tf.int32)


@pytest.mark.parametrize("seed", [[0, 1], [7, 3], [123, 456], [2**20, 5]])
def test_check_sample_passes_the_right_answer_for_other_seeds(tf, monkeypatch, seed):
    monkeypatch.setattr(ch04, "_SEED", seed)
    assert ch04.check_sample(sample).passed


# 04.4 MinimalRNNCell -----------------------------------------------------------------------------
def cell_class(
    *,
    activation="tanh",
    bias=True,
    feedback=True,
    state="list",
    state_size=True,
    order=("kernel", "recurrent_kernel", "bias"),
    kernel_shape="features_units",
    weights_in="build",
    backend="tf",
    recurrent_transposed=False,
    stop_gradient=False,
    keeps_state=False,
    trainable=True,
    stub=None,
):
    """A MinimalRNNCell; the options make the classic mistakes."""
    import keras
    import tensorflow as tf

    class MinimalRNNCell(keras.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            if state_size:
                self.state_size = units

        def build(self, input_shape):
            if stub == "build":
                raise NotImplementedError
            if weights_in == "build":
                self.make_weights(input_shape[-1])

        def make_weights(self, features):
            shape = (features, self.units)
            shapes = {
                "kernel": shape if kernel_shape == "features_units" else shape[::-1],
                "recurrent_kernel": (self.units, self.units),
                "bias": (self.units,),
            }
            for name in order:
                weight = self.add_weight(shape=shapes[name], name=name, trainable=trainable)
                setattr(self, name, weight)

        def call(self, inputs, states):
            if stub == "call":
                raise NotImplementedError
            if weights_in == "call":
                self.make_weights(inputs.shape[-1])
            h_prev = states[0] if feedback else tf.zeros_like(states[0])
            if keeps_state:  # the state of the last call, kept in an attribute
                h_prev = getattr(self, "last", h_prev)
            if stop_gradient:
                h_prev = tf.stop_gradient(h_prev)
            if backend == "numpy":
                return self.numpy_step(inputs, h_prev)
            recurrent = tf.transpose(self.recurrent_kernel) if recurrent_transposed else None
            z = inputs @ self.kernel + h_prev @ (
                self.recurrent_kernel if recurrent is None else recurrent
            )
            z = z + self.bias if bias else z
            h = {"tanh": tf.tanh, "relu": tf.nn.relu, "linear": tf.identity}[activation](z)
            self.last = h
            return (h, h) if state == "tensor" else (h, [h])

        def numpy_step(self, inputs, h_prev):
            z = np.asarray(inputs) @ np.asarray(self.kernel) + np.asarray(h_prev) @ np.asarray(
                self.recurrent_kernel
            )
            h = np.tanh(z + np.asarray(self.bias))
            return (tf.constant(h), [tf.constant(h)]) if backend == "numpy" else (h, [h])

    return MinimalRNNCell


@pytest.mark.parametrize(
    ("options", "status", "fragment"),
    [
        ({}, "passed", "its outputs (masked too) and gradients match SimpleRNN's"),
        ({"state": "tensor"}, "passed", "match SimpleRNN's"),
        ({"stub": "build"}, "not attempted", "not attempted yet"),
        ({"stub": "call"}, "not attempted", "not attempted yet"),
        ({"activation": "linear"}, "failed", "it applies no activation"),
        ({"activation": "relu"}, "failed", "it applies ReLU"),
        ({"bias": False}, "failed", "it leaves out the bias"),
        ({"feedback": False}, "failed", "it ignores the previous state"),
        ({"recurrent_transposed": True}, "failed", "transposed recurrent_kernel"),
        ({"state_size": False}, "failed", "the cell has no state_size"),
        ({"kernel_shape": "units_features"}, "failed", "kernel has shape (4, 3), expected (3, 4)"),
        ({"order": ("bias", "kernel", "recurrent_kernel")}, "failed", "in that order"),
        ({"order": ("kernel", "recurrent_kernel")}, "failed", "the cell has 2 weights"),
        ({"weights_in": "call"}, "failed", "no weights after build()"),
        ({"backend": "numpy"}, "failed", "the gradient with respect to kernel is None"),
        ({"trainable": False}, "failed", "keep the weight trainable"),
        ({"stop_gradient": True}, "failed", "the gradient with respect to kernel does not"),
        ({"keeps_state": True}, "failed", "states[0] @ recurrent_kernel"),
    ],
)
def test_check_rnn_cell(tf, options, status, fragment):
    assert_result(ch04.check_rnn_cell(cell_class(**options)), status, fragment)


def test_check_rnn_cell_wants_the_class_not_an_instance(tf):
    result = ch04.check_rnn_cell(cell_class()(4))
    assert_result(result, "failed", "pass the class itself")


def test_check_rnn_cell_rejects_a_function_for_a_layer(tf):
    result = ch04.check_rnn_cell(lambda units: "cell")
    assert_result(result, "failed", "should be a keras Layer, not a str")


# Every check -------------------------------------------------------------------------------------
CHECKS = {
    "04.1": ch04.check_pad_and_mask,
    "04.2": lambda answer: ch04.check_name_classifier(answer, train_ds=None, val_ds=None),
    "04.3": ch04.check_sample,
    "04.4": ch04.check_rnn_cell,
}


@pytest.mark.parametrize("exercise", sorted(CHECKS))
@pytest.mark.parametrize(("answer", "fragment"), MISBEHAVING)
def test_every_check_survives_a_misbehaving_answer(
    tf, monkeypatch, capsys, exercise, answer, fragment
):
    monkeypatch.setattr(_learner, "TIME_BUDGET", 0.5)
    monkeypatch.setattr(ch04, "TRAINING_SECONDS", 0.5)
    assert_survives(CHECKS[exercise](answer), fragment, capsys)
