"""Chapter 04's checks: each accepts a right answer and explains five or more kinds of wrong one."""

import functools
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


def tensors(answer):
    """`answer`, with each array it returns turned into a Tensor (as the exercise asks)."""
    import tensorflow as tf

    def wrapped(sequences):
        result = answer(sequences)
        if isinstance(result, tuple):
            return tuple(tf.constant(np.asarray(part)) for part in result)
        return tf.constant(np.asarray(result))

    return wrapped


def in_place(sequences):
    longest = max(len(row) for row in sequences)
    mask = [[True] * len(row) + [False] * (longest - len(row)) for row in sequences]
    for row in sequences:
        row.extend([0] * (longest - len(row)))
    return tf_(np.array(sequences, dtype=np.int64)), tf_(np.array(mask))


def at_least_one_column(sequences):
    longest = max(1, max(len(row) for row in sequences))
    padded = np.zeros((len(sequences), longest), np.int64)
    for i, row in enumerate(sequences):
        padded[i, : len(row)] = row
    return tf_(padded), tf_(
        np.arange(longest)[None, :] < np.array([len(r) for r in sequences])[:, None]
    )


def own_helpers(sequences):
    padded = ch04._post_padded(sequences, fill=0)
    return tf_(padded), tf_(ch04._length_mask([len(r) for r in sequences], padded.shape[1]))


def tf_(value):
    import tensorflow as tf

    return tf.convert_to_tensor(np.asarray(value))


def first_row_length(sequences):
    """Pads to the first sequence's length: right whenever the chapter's longest row comes first."""
    return tensors(lambda s: numpy_pad([row[: len(s[0])] for row in s], extra=0))(sequences)


def first_row_length_ragged(sequences):
    import tensorflow as tf

    ragged = tf.ragged.constant(sequences, dtype=tf.int64, ragged_rank=1)
    width = len(sequences[0])
    padded = ragged.to_tensor(default_value=0, shape=[len(sequences), width])
    return padded, tf.sequence_mask(tf.minimum(ragged.row_lengths(), width), maxlen=width)


def keras_pad_sequences(sequences, **options):
    import keras

    padded = keras.utils.pad_sequences(sequences, **options)
    return padded, padded != 0


@pytest.mark.parametrize(
    ("answer", "status", "fragment"),
    [
        (pad_and_mask, "passed", "post-pads with 0 into int64"),
        (tensors(numpy_pad), "passed", "post-pads with 0 into int64"),
        (in_place, "failed", "changed the lists it was given"),
        (at_least_one_column, "failed", "for [[], []], padded has shape (2, 1), expected (2, 0)"),
        (own_helpers, "failed", "calls the check's own code"),
        (numpy_pad, "failed", "padded is a ndarray"),
        (None, "not attempted", "not attempted yet"),
        (not_written, "not attempted", "not attempted yet"),
        (raises, "failed", "pad_and_mask raised RuntimeError: oops"),
        (with_mask(lambda p, m: tf_(p != 0)), "failed", "0 is a valid id here"),
        (with_mask(lambda p, m: tf_(~m)), "failed", "the mask is inverted"),
        (with_mask(lambda p, m: tf_(np.asarray(m, "int32"))), "failed", "mask has dtype int32"),
        (with_mask(lambda p, m: tf_(np.asarray(m, "float32"))), "failed", "expected bool"),
        (with_mask(lambda p, m: tf_(np.asarray(m).T)), "failed", "the mask is transposed"),
        (tensors(lambda s: (numpy_pad(s)[0].T, numpy_pad(s)[1])), "failed", "padded is transposed"),
        (tensors(lambda s: numpy_pad(s, pre=True)), "failed", "put them after it (post-padding)"),
        (tensors(lambda s: numpy_pad(s, fill=-1)), "failed", "it pads with -1; pad with 0"),
        (
            tensors(lambda s: numpy_pad(s, dtype="int32")),
            "failed",
            "padded has dtype int32, expected int64",
        ),
        (
            tensors(lambda s: numpy_pad(s, extra=1)),
            "failed",
            "pad to the length of the longest sequence",
        ),
        (
            tensors(lambda s: numpy_pad(s, mask_shift=-1)),
            "failed",
            "mask row 0 is [True, True, False]",
        ),
        (
            tensors(lambda s: numpy_pad(s, mask_shift=1)),
            "failed",
            "mask row 1 is [True, True, False]",
        ),
        (tensors(lambda s: numpy_pad(s)[0].T), "failed", "it returned one value"),
        (tensors(lambda s: numpy_pad(s)[0]), "failed", "it returned one value"),
        (tensors(lambda s: numpy_pad(s)[::-1]), "failed", "return (padded, mask) in that order"),
        (tensors(lambda s: tuple(x.T for x in numpy_pad(s))), "failed", "padded is transposed"),
        (lambda s: pad_and_mask(s)[0].numpy().tolist(), "failed", "a pair (padded, mask)"),
        (tensors(keras_pad_sequences), "failed", "padded has dtype int32, expected int64"),
        (lambda s: (pad_and_mask(s)[0], pad_and_mask(s)[1].numpy()), "failed", "mask is a ndarray"),
        (
            lambda s: (pad_and_mask(s)[0].numpy().tolist(), pad_and_mask(s)[1]),
            "failed",
            "plain Python",
        ),
        (first_row_length, "failed", "pad to the length of the longest sequence"),
        (first_row_length_ragged, "failed", "pad to the length of the longest sequence"),
        (
            tensors(lambda s: keras_pad_sequences(s, padding="post", dtype="int64")),
            "failed",
            "0 is a valid id here",
        ),
        (
            tensors(lambda s: keras_pad_sequences(s, dtype="int64")),
            "failed",
            "put them after it (post-padding)",
        ),
    ],
)
def test_check_pad_and_mask(tf, answer, status, fragment):
    assert_result(ch04.check_pad_and_mask(answer), status, fragment)


@pytest.mark.parametrize("seed", range(25))
def test_right_answers_pass_every_drawn_probe(tf, monkeypatch, seed):
    monkeypatch.setenv("TFCOURSE_PROBE_SEED", str(seed))
    assert ch04.check_pad_and_mask(pad_and_mask).passed
    assert ch04.check_sample(sample).passed
    if seed < 8:  # a Keras layer per run: fewer
        assert ch04.check_rnn_cell(cell_class()).passed
        assert ch04.check_rnn_cell(cell_class(state="tensor")).passed


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


def relearns(classify):
    """A train_name_classifier that learns the label ids from train_ds, as a model would: it reads
    which id each training name has, and moves `classify`'s columns to those ids."""

    def train(train_ds, val_ds):
        given = np.concatenate([label.numpy() for _, label in train_ds])
        relabel = np.zeros(10, dtype=np.int64)
        relabel[data.load_numpy("names", "train")["label"]] = given
        return lambda names: np.asarray(classify(names))[:, np.argsort(relabel)]

    return train


@functools.cache
def names_datasets():
    """The names splits as (ids, label) batches in file order, the ids a stand-in."""
    import tensorflow as tf

    def dataset(split):
        labels = data.load_numpy("names", split)["label"]
        ids = np.ones((len(labels), 3), dtype=np.int64)
        return tf.data.Dataset.from_tensor_slices((ids, labels)).batch(64)

    return {"train_ds": dataset("train"), "val_ds": dataset("validation")}


@pytest.fixture
def names_ds(tf):
    return names_datasets()


def hashed_logits(names):
    """Logits that depend on the name only, and carry no information about its locale."""
    return np.stack([np.random.default_rng(zlib.crc32(n.encode())).normal(size=10) for n in names])


def noisy_logits(names):
    return lookup_logits(names) + np.random.default_rng().normal(size=(len(names), 10))


def batch_dependent_logits(names):
    return lookup_logits(names) + 0.01 * max(len(name) for name in names)


def by_length(names):
    """Right logits, but for the names sorted by length: the rows come back in the wrong order."""
    return lookup_logits(sorted(names, key=len))


def softmax(logits, axis=1):
    exp = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return exp / exp.sum(axis=axis, keepdims=True)


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
        (relearns(lookup_logits), "passed", "100.0% accuracy on the 636 test names"),
        (relearns(lambda n: softmax(lookup_logits(n))), "passed", "100.0% accuracy"),
        (trains(lookup_logits), "failed", "with the notebook's label ids"),  # trained before
        (relearns(by_length), "failed", "put the rows back in the original order"),
        (relearns(lambda n: tf_(lookup_logits(n))), "passed", "100.0% accuracy"),
        (trains(lambda n: softmax(lookup_logits(n), axis=0)), "failed", "a softmax over axis 0"),
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
        (relearns(lambda n: np.roll(lookup_logits(n), 1, axis=1)), "failed", "another order"),
        (trains(hashed_logits), "failed", "below the floor of 66%"),
        (relearns(lambda n: 0.2 * lookup_logits(n) + hashed_logits(n)), "failed", "below the"),
        (trains(lambda n: 0.2 * lookup_logits(n) + hashed_logits(n)), "failed", "own labels: it"),
        (trains(noisy_logits), "failed", "with training=False, so that dropout is off"),
        (trains(batch_dependent_logits), "failed", "mask it (Embedding(..., mask_zero=True))"),
    ],
)
def test_check_name_classifier(names_ds, answer, status, fragment):
    result = ch04.check_name_classifier(answer, **names_ds)
    assert_result(result, status, fragment)


def weak_lookup(names):
    """Logits of a weak model of the notebook's own labels: about 55% of the names right."""
    return np.stack(
        [
            lookup_logits([n])[0] if zlib.crc32(n.encode()) % 10 < 5 else hashed_logits([n])[0]
            for n in names
        ]
    )


def test_check_name_classifier_tells_a_model_of_the_notebooks_labels(names_ds, monkeypatch):
    monkeypatch.setenv("TFCOURSE_PROBE_SEED", "3")
    result = ch04.check_name_classifier(trains(weak_lookup), **names_ds)
    assert_result(result, "failed", "with the notebook's own labels: it learned from")


def test_check_name_classifier_explains_a_model_returned_for_a_function(tf):
    import keras

    model = keras.Sequential([keras.Input((None,), dtype="int64"), keras.layers.Embedding(9, 10)])
    result = ch04.check_name_classifier(trains(model), **names_datasets())
    assert_result(result, "failed", "returned a Keras model, which takes ids; return a function")


def test_check_name_classifier_finds_a_missing_mask(tiny_classifiers):
    result = ch04.check_name_classifier(trains(tiny_classifiers["unmasked"]), **names_datasets())
    assert_result(result, "failed", "the padding changes the answer")


def test_check_name_classifier_finds_an_untrained_masked_model(tiny_classifiers):
    result = ch04.check_name_classifier(trains(tiny_classifiers["masked"]), **names_datasets())
    assert_result(result, "failed", "did the model train?")


def test_check_name_classifier_stops_training_at_its_time_limit(tf, monkeypatch):
    monkeypatch.setattr(ch04, "TRAINING_SECONDS", 0.5)
    result = ch04.check_name_classifier(sleeps, **names_datasets())
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


def batch_threshold(which):
    """Top-k with one threshold for the whole batch (the smallest k-th value, or row 0's)."""
    import tensorflow as tf

    def answer(logits, temperature, k, seed):
        logits = tf.convert_to_tensor(logits, tf.float32)
        if temperature == 0:
            return tf.argmax(logits, axis=-1)
        if k is not None:
            kth = tf.math.top_k(logits, k=k).values[:, -1]
            threshold = tf.reduce_min(kth) if which == "min" else kth[0]
            logits = tf.where(logits < threshold, -np.inf, logits)
        return tf.random.stateless_categorical(logits / temperature, 1, seed=seed, dtype=tf.int64)[
            :, 0
        ]

    return answer


def first_seed_only(scaled, seed):
    import tensorflow as tf

    return tf.random.stateless_categorical(scaled, 1, seed=[seed[0], 0], dtype=tf.int64)[:, 0]


def second_seed_only(scaled, seed):
    import tensorflow as tf

    return tf.random.stateless_categorical(scaled, 1, seed=[7, seed[1]], dtype=tf.int64)[:, 0]


def summed_seed(scaled, seed):
    import tensorflow as tf

    total = tf.cast(seed[0], tf.int64) + tf.cast(seed[1], tf.int64)
    return tf.random.stateless_categorical(scaled, 1, seed=tf.stack([total, 0]), dtype=tf.int64)[
        :, 0
    ]


def squeezed(scaled, seed):
    import tensorflow as tf

    return tf.squeeze(tf.random.stateless_categorical(scaled, 1, seed=seed, dtype=tf.int64))


def eager_only(scaled, seed):
    import tensorflow as tf

    seed = [int(part) for part in np.asarray(seed).tolist()]  # works only on eager values
    return tf.random.stateless_categorical(scaled, 1, seed=seed, dtype=tf.int64)[:, 0]


def reseeded(scaled, seed):
    """Repeatable by resetting the global seed: not stateless."""
    import tensorflow as tf

    tf.random.set_seed(int(seed[0]))
    return tf.random.categorical(scaled, 1, seed=int(seed[1]), dtype=tf.int64)[:, 0]


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
        (numpy_sample, "failed", "the output of sample is a ndarray"),
        (sampler(draw=first_seed_only), "failed", "differ only in seed[1], drew the same ids"),
        (sampler(draw=second_seed_only), "failed", "differ only in seed[0], drew the same ids"),
        (sampler(draw=summed_seed), "failed", "whose parts have the same sum"),
        (sampler(draw=squeezed), "failed", "for 1 rows has shape ()"),
        (sampler(draw=eager_only), "failed", "inside tf.function (as the chapter's generator"),
        (sampler(draw=reseeded), "failed", "inside tf.function"),
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
        (batch_threshold("min"), "failed", "k="),
        (batch_threshold("row0"), "failed", "k="),
        (sampler(fill=0.0), "failed", "set the other logits to -inf (not 0)"),
        (sampler(zero=False), "failed", "dividing by 0 gives inf and NaN"),
        (sampler(draw=stateful), "failed", "two calls with the same seed drew different ids"),
        (sampler(draw=fixed_seed), "failed", "drew the same ids: pass the whole seed"),
        (sampler(draw=from_probabilities), "failed", "passes probabilities where logits"),
        (sampler(draw=lambda x, s: sample(x, 1.0, None, s)[:, None]), "failed", "squeeze it"),
        (sampler(draw=lambda x, s: tf_cast(sample(x, 1.0, None, s))), "failed", "dtype int32"),
        (
            sampler(draw=lambda x, s: tf_(np.asarray(x).argmax(1))),
            "failed",
            "always draws the most",
        ),
        (
            sampler(draw=lambda x, s: tf_(np.asarray(x).argmin(1))),
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


def exactly_k(*, highest_ids=False):
    """A right answer keeping exactly k ids when the k-th logit is tied (lowest or highest ids)."""
    import tensorflow as tf

    def answer(logits, temperature, k, seed):
        logits = tf.convert_to_tensor(logits, tf.float32)
        if temperature == 0:
            return tf.argmax(logits, axis=-1)
        if k is not None:
            flipped = logits[:, ::-1] if highest_ids else logits
            _, kept = tf.math.top_k(flipped, k=k)
            if highest_ids:
                kept = logits.shape[1] - 1 - kept
            mask = tf.reduce_any(tf.one_hot(kept, logits.shape[1]) > 0, axis=1)
            logits = tf.where(mask, logits, -np.inf)
        scaled = logits / temperature
        return tf.random.stateless_categorical(scaled, 1, seed=seed, dtype=tf.int64)[:, 0]

    return answer


def seeded_random_tie_break(logits, temperature, k, seed):
    """Right: exactly k ids, ties broken by seeded noise, so a tied id is kept at random per row."""
    import tensorflow as tf

    logits = tf.convert_to_tensor(logits, tf.float32)
    if temperature == 0 or k is None:
        return sample(logits, temperature, k, seed)
    noise = tf.random.stateless_uniform(tf.shape(logits), seed=[seed[1], seed[0]]) * 1e-4
    _, kept = tf.math.top_k(logits + noise, k=k)
    mask = tf.reduce_any(tf.one_hot(kept, logits.shape[1]) > 0, axis=1)
    masked = tf.where(mask, logits, -np.inf) / temperature
    return tf.random.stateless_categorical(masked, 1, seed=seed, dtype=tf.int64)[:, 0]


def unseeded_tie_break(logits, temperature, k, seed):
    """Wrong: ties broken by unseeded noise, so the same seed draws other ids."""
    import tensorflow as tf

    logits = tf.convert_to_tensor(logits, tf.float32)
    if temperature == 0 or k is None:
        return sample(logits, temperature, k, seed)
    _, kept = tf.math.top_k(logits + tf.random.uniform(tf.shape(logits)) * 1e-4, k=k)
    mask = tf.reduce_any(tf.one_hot(kept, logits.shape[1]) > 0, axis=1)
    masked = tf.where(mask, logits, -np.inf) / temperature
    return tf.random.stateless_categorical(masked, 1, seed=seed, dtype=tf.int64)[:, 0]


@pytest.mark.parametrize(
    "answer", [sample, exactly_k(), exactly_k(highest_ids=True), seeded_random_tie_break]
)
def test_check_sample_accepts_either_convention_for_ties(tf, answer):
    assert ch04.check_sample(answer).passed


def test_check_sample_rejects_an_unseeded_tie_break(tf):
    assert_result(ch04.check_sample(unseeded_tie_break), "failed", "break ties without unseeded")


def test_check_sample_rejects_a_wrong_choice_at_a_tie(tf, monkeypatch):
    """Drawing as if the tied ids were not tied (a sampler that weighs them by position) fails."""
    import tensorflow as tf

    def answer(logits, temperature, k, seed):
        logits = tf.convert_to_tensor(logits, tf.float32)
        if temperature != 0 and k is not None:
            logits = logits + tf.range(logits.shape[1], dtype=tf.float32) * 0.2 * tf.cast(
                tf.reduce_any(tf.equal(logits, 1.7), axis=1, keepdims=True), tf.float32
            )
        return sample(logits, temperature, k, seed)

    assert_result(ch04.check_sample(answer), "failed", "is tied")


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
    stop_input_gradient=False,
    initializer=None,
    eager_only=False,
    fixed_sizes=None,
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
                self.state_size = [units] if state == "list_size" else units

        def build(self, input_shape):
            if stub == "build":
                raise NotImplementedError
            if weights_in == "build":
                self.make_weights(input_shape[-1])

        def make_weights(self, features):
            units = self.units
            if fixed_sizes == "features":  # the chapter's 3 input features, hard-coded
                features = 3
            if fixed_sizes == "units":  # the chapter's 4 units in the recurrent kernel
                units = 4
            shape = (features, self.units)
            shapes = {
                "kernel": shape if kernel_shape == "features_units" else shape[::-1],
                "recurrent_kernel": (units, units),
                "bias": (self.units,),
            }
            for name in order:
                weight = self.add_weight(
                    shape=shapes[name],
                    name=name,
                    trainable=trainable,
                    **({"initializer": initializer} if initializer else {}),
                )
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
            if stop_input_gradient:
                inputs = tf.stop_gradient(inputs)
            if eager_only:
                inputs = tf.convert_to_tensor(inputs.numpy())
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
        ({}, "passed", "its outputs (masked and inside tf.function too) and gradients"),
        ({"state": "tensor"}, "passed", "match SimpleRNN's"),
        ({"stub": "build"}, "not attempted", "not attempted yet"),
        ({"stub": "call"}, "not attempted", "not attempted yet"),
        ({"activation": "linear"}, "failed", "it applies no activation"),
        ({"activation": "relu"}, "failed", "it applies ReLU"),
        ({"bias": False}, "failed", "it leaves out the bias"),
        ({"feedback": False}, "failed", "it ignores the previous state"),
        ({"recurrent_transposed": True}, "failed", "transposed recurrent_kernel"),
        ({"state_size": False}, "failed", "the cell has no state_size"),
        ({"kernel_shape": "units_features"}, "failed", "(transposed: input features × units)"),
        ({"fixed_sizes": "features"}, "failed", "not from the chapter's example"),
        ({"fixed_sizes": "units"}, "failed", "not from the chapter's example"),
        ({"eager_only": True}, "failed", "inside tf.function (as fit() runs it) raised"),
        ({"initializer": "zeros"}, "failed", "every unit would compute the same thing"),
        ({"initializer": "ones"}, "failed", "starts with every value 1"),
        ({"state": "list_size"}, "passed", "match SimpleRNN's"),
        ({"stop_input_gradient": True}, "failed", "the gradient with respect to the inputs"),
        ({"order": ("bias", "kernel", "recurrent_kernel")}, "failed", "in that order"),
        ({"order": ("kernel", "recurrent_kernel")}, "failed", "the cell has 2 weights"),
        ({"weights_in": "call"}, "failed", "no weights after build()"),
        ({"backend": "numpy"}, "failed", "inside tf.function (as fit() runs it) raised"),
        ({"trainable": False}, "failed", "keep the weights trainable"),
        ({"stop_gradient": True}, "failed", "the gradient with respect to kernel does not"),
        ({"keeps_state": True}, "failed", "states[0] @ recurrent_kernel"),
    ],
)
def test_check_rnn_cell(tf, options, status, fragment):
    assert_result(ch04.check_rnn_cell(cell_class(**options)), status, fragment)


def simple_rnn_wrapper():
    import keras

    class MinimalRNNCell(keras.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.inner = keras.layers.SimpleRNNCell(units)
            self.state_size = units

        def build(self, input_shape):
            self.inner.build(input_shape)
            self.kernel, self.recurrent_kernel, self.bias = self.inner.weights

        def call(self, inputs, states):
            return self.inner(inputs, states)

    return MinimalRNNCell


def simple_rnn_subclass():
    import keras

    class MinimalRNNCell(keras.layers.SimpleRNNCell):
        pass

    return MinimalRNNCell


@pytest.mark.parametrize(
    "make",
    [lambda: __import__("keras").layers.SimpleRNNCell, simple_rnn_wrapper, simple_rnn_subclass],
)
def test_check_rnn_cell_names_keras_own_cell_however_it_is_reused(tf, make):
    assert_result(ch04.check_rnn_cell(make()), "failed", "runs Keras's own SimpleRNNCell")


def test_check_rnn_cell_wants_the_class_not_an_instance(tf):
    result = ch04.check_rnn_cell(cell_class()(4))
    assert_result(result, "failed", "pass the class itself")


def test_check_rnn_cell_rejects_a_function_for_a_layer(tf):
    result = ch04.check_rnn_cell(lambda units: "cell")
    assert_result(result, "failed", "should be a keras Layer, not a str")


# Every check -------------------------------------------------------------------------------------
CHECKS = {
    "04.1": ch04.check_pad_and_mask,
    "04.2": lambda answer: ch04.check_name_classifier(answer, **names_datasets()),
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
