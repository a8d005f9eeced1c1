"""Answers to exercise 08.2, checked in a child process with 2 logical CPUs (tests/test_ch08.py).

Run as a script, it prints each answer's status and message as JSON, one line each.
"""

import json
import sys


def right(labels, logits, global_batch_size):
    per_example = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)


def per_example(labels, logits):
    return keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)


ANSWERS = {
    "right": right,
    "by hand": lambda y, z, n: tf.reduce_sum(per_example(y, z)) / n,
    "none": None,
    "not written": lambda y, z, n: (_ for _ in ()).throw(NotImplementedError),
    "raises": lambda y, z, n: (_ for _ in ()).throw(RuntimeError("oops")),
    "mean per replica": lambda y, z, n: tf.reduce_mean(per_example(y, z)),
    "sum": lambda y, z, n: tf.reduce_sum(per_example(y, z)),
    "divided twice": lambda y, z, n: tf.reduce_sum(per_example(y, z)) / n / 2,
    "wrong axis": lambda y, z, n: (
        tf.reduce_sum(tf.nn.log_softmax(z, axis=0) * -tf.one_hot(y, 5)) / n
    ),
    "per example": lambda y, z, n: per_example(y, z) / n,
    "mean halved": lambda y, z, n: tf.reduce_mean(per_example(y, z)) / 2,
    "the check's reference": lambda y, z, n: ch08._divided_by_global_batch(y, z, n),
    "tuple of losses halved": lambda y, z, n: (
        tf.reduce_sum(per_example(y, z)) / (2 * tf.cast(tf.size(y), tf.float32))
    ),
    "mean over replicas": lambda y, z, n: (
        tf.reduce_mean(per_example(y, z)) / tf.distribute.get_strategy().num_replicas_in_sync
    ),
    "the notebook's batch": lambda y, z, n: tf.reduce_sum(per_example(y, z)) / 64,
    "the chapter's 16": lambda y, z, n: tf.reduce_sum(per_example(y, z)) / 16,
    "keras loss object": lambda y, z, n: keras.losses.SparseCategoricalCrossentropy(
        from_logits=True
    )(y, z),
    "average without a size": lambda y, z, n: tf.nn.compute_average_loss(per_example(y, z)),
    "present examples by hand": lambda y, z, n: (
        tf.reduce_sum(per_example(y, z))
        / tf.cast(
            tf.shape(y)[0] * tf.distribute.get_replica_context().num_replicas_in_sync, tf.float32
        )
    ),
    "labels as logits": lambda y, z, n: tf.nn.compute_average_loss(
        keras.losses.sparse_categorical_crossentropy(y, z), global_batch_size=n
    ),
}


if __name__ == "__main__":
    import tfcourse

    tfcourse.setup(seed=0)
    import keras
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tfcourse.exercises import ch08

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    for name in sys.argv[1:]:
        result = ch08.check_loss_scaling(ANSWERS[name], strategy)
        print(json.dumps({"name": name, "status": result.status, "message": result.message}))
    one = ch08.check_loss_scaling(right, tf.distribute.get_strategy())
    print(json.dumps({"name": "one replica", "status": one.status, "message": one.message}))
