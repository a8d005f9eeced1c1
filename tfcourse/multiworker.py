"""What chapter 08's worker program uses besides the lesson, and the program check 08.4 runs.

The notebook writes the worker program itself (`worker.py`): `MultiWorkerMirroredStrategy`,
`TF_CONFIG`, the distributed dataset, the step and the chief's checkpoints are the lesson. This
module holds the rest: the command line, the events log (JSON lines in ``$TFCOURSE_EVENTS``, read by
`tfcourse.distributed.read_events`), the data, the demos of what each worker's shard holds and of
Keras `fit()`, a simulated crash, and ending with the notebook that started the worker.

``python -m tfcourse.multiworker --checkpoint-dir DIR [--answer FILE]`` is the same program, run by
exercise 08.4's check with the learner's `write_dir` and `resume` from FILE.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

#: The global batch: what all workers together take in one step.
GLOBAL_BATCH_SIZE = 64
#: The images the workers train on (the first ones of MNIST-5k's training split).
NUM_EXAMPLES = 2048


def arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The worker's command line: ``--checkpoint-dir DIR`` and the options below."""
    parser = argparse.ArgumentParser(description="One worker of chapter 08's cluster.")
    parser.add_argument("--steps", type=int, default=20, help="train until this step")
    parser.add_argument("--checkpoint-dir", required=True, help="the chief's checkpoint folder")
    parser.add_argument("--checkpoint-every", type=int, default=5, help="save every N steps")
    parser.add_argument("--crash-at", type=int, default=-1, help="kill a worker at this step")
    parser.add_argument("--crash-worker", type=int, default=1, help="the worker that crashes")
    parser.add_argument("--show-input", action="store_true", help="log what each shard sees")
    parser.add_argument("--try-fit", action="store_true", help="try Keras fit() first")
    parser.add_argument("--answer", help="a Python file with write_dir and resume (08.4)")
    return parser.parse_args(argv)


class Events:
    """Writes one JSON object per line to stdout and ``$TFCOURSE_EVENTS``, flushed at once (a
    killed worker keeps what it wrote)."""

    def __init__(self, task_id: int | None) -> None:
        self.path, self.task = os.environ.get("TFCOURSE_EVENTS"), task_id

    def __call__(self, event: str, **fields: Any) -> None:
        record = {"event": event, "worker": self.task, **fields}
        print(json.dumps(record), flush=True)
        if self.path:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")


def exit_with_parent() -> None:
    """End this worker when the process that started it dies: no orphan outlives a notebook.

    The parent's id comes from the environment (`tfcourse.distributed.Cluster` sets it): a parent
    killed before this line runs has already made this process an orphan, so `os.getppid()` here
    would name the wrong one.
    """
    parent = int(os.environ.get("TFCOURSE_PARENT_PID") or os.getppid())

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


def training_data() -> tuple[Any, Any]:
    """The workers' data: MNIST-5k's first `NUM_EXAMPLES` training images, flattened to [0, 1]."""
    import numpy as np

    from tfcourse import data

    train = data.load_numpy("mnist5k", "train")
    x = train["image"][:NUM_EXAMPLES].reshape(NUM_EXAMPLES, -1).astype(np.float32) / 255
    return x, train["label"][:NUM_EXAMPLES].astype(np.int64)


def crash_if_asked(step: int, task_id: int | None, args: argparse.Namespace, log: Events) -> None:
    """With ``--crash-at STEP``, the ``--crash-worker`` kills itself at that step, as a lost machine
    would: SIGKILL, no clean-up, no goodbye."""
    if step == args.crash_at and task_id == args.crash_worker:
        log("crash", step=step)
        os.kill(os.getpid(), signal.SIGKILL)


def momentum_norm(optimizer: Any) -> float:
    """The size of an optimizer's state: the global norm of its variables other than its scalar
    counters (SGD's momentum, Adam's moments); 0 for plain SGD."""
    import numpy as np

    state = [np.asarray(v, dtype=np.float64) for v in optimizer.variables if len(v.shape) > 0]
    return float(np.sqrt(sum(np.sum(np.square(v)) for v in state)))


def demos(strategy: Any, log: Events, args: argparse.Namespace) -> None:
    """``--show-input``: log what this worker's shards hold; ``--try-fit``: try Keras `fit()`."""
    import keras
    import tensorflow as tf

    if args.show_input:
        show_input(tf, strategy, log)
    if args.try_fit:
        try_fit(keras, strategy, log)


def _numbers_in_files(tf: Any, folder: str) -> Any:
    """The numbers 0-15 in 4 text files of 4 lines (file k holds 4k to 4k + 3), read in order."""
    for k in range(4):
        with open(os.path.join(folder, f"part-{k}.txt"), "w") as handle:
            handle.write("".join(f"{4 * k + i}\n" for i in range(4)))
    files = tf.data.Dataset.list_files(os.path.join(folder, "part-*.txt"), shuffle=False)
    lines = files.interleave(tf.data.TextLineDataset, cycle_length=1)
    return lines.map(lambda line: tf.strings.to_number(line, tf.int64))


def show_input(tf: Any, strategy: Any, log: Events) -> None:
    """Log which examples this worker's batches hold (all four of them), under each way of
    distributing."""
    with tempfile.TemporaryDirectory(prefix="tfcourse-shards-") as folder:
        sources = {"range(16)": tf.data.Dataset.range(16), "4 files": _numbers_in_files(tf, folder)}
        for source, policy in [
            ("range(16)", "DATA"),
            ("range(16)", "OFF"),
            ("4 files", "FILE"),
            ("4 files", "AUTO"),
            ("range(16)", "AUTO"),
        ]:
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = getattr(
                tf.data.experimental.AutoShardPolicy, policy
            )
            dataset = sources[source].batch(4).with_options(options)
            batches = strategy.experimental_distribute_dataset(dataset)
            log(
                "input",
                how=f"experimental_distribute_dataset, {source}, auto-shard {policy}",
                examples=[_local_values(strategy, batch) for batch in batches],
            )

    def dataset_fn(input_context: Any) -> Any:
        dataset = tf.data.Dataset.range(16)
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        return dataset.batch(input_context.get_per_replica_batch_size(4))

    batches = strategy.distribute_datasets_from_function(dataset_fn)
    log(
        "input",
        how="distribute_datasets_from_function, range(16)",
        examples=[_local_values(strategy, batch) for batch in batches],
    )


def _local_values(strategy: Any, value: Any) -> list[int]:
    return [int(v) for part in strategy.experimental_local_results(value) for v in part.numpy()]


def try_fit(keras: Any, strategy: Any, log: Events) -> None:
    """Try Keras `fit()` under this strategy and log how it ends (keras-team/keras#20585)."""
    x, y = training_data()
    keras.utils.set_random_seed(0)  # op determinism wants seeded initialisers
    with strategy.scope():
        model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10)])
        model.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    try:
        model.fit(x, y, batch_size=GLOBAL_BATCH_SIZE, epochs=1, steps_per_epoch=2, verbose=0)
    except Exception as error:
        lines = str(error).strip().splitlines() or [""]
        message = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1].strip()}"
        log("fit", ok=False, error=f"{type(error).__name__}: {message[:400]}")
    else:
        log("fit", ok=True)


# The program of check 08.4 -----------------------------------------------------------------------
def write_dir(directory: str, task_type: str | None, task_id: int | None) -> str:
    """Where a worker saves checkpoints: the chief to `directory`, others to a folder of their own.

    The chief is worker 0, a task of type "chief", or the one process when there is no cluster.
    This is exercise 08.4's answer: the student edition of the course (`tfcourse release
    --package`) leaves it out.
    """
    ### BEGIN SOLUTION
    if task_type in (None, "chief") or (task_type == "worker" and task_id == 0):
        return directory
    return os.path.join(directory, f"workertemp_{task_id}")
    ### END SOLUTION


def resume(checkpoint: Any, manager: Any) -> int:
    """Restore the latest checkpoint, if there is one; return the step to continue from.

    Exercise 08.4's answer too, left out of the student edition.
    """
    ### BEGIN SOLUTION
    if manager.latest_checkpoint is None:
        return 0
    checkpoint.restore(manager.latest_checkpoint)
    return int(checkpoint.step.numpy())
    ### END SOLUTION


def _load_answer(path: str | None) -> tuple[Callable[..., str], Callable[..., int]]:
    """`write_dir` and `resume` from a learner's file, or the ones above (exercise 08.4)."""
    if not path:
        return write_dir, resume
    spec = importlib.util.spec_from_file_location("learner_answer", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing = [
        name for name in ("write_dir", "resume") if not callable(getattr(module, name, None))
    ]
    if missing:
        raise SystemExit(f"{path} defines no {' and no '.join(missing)}: nothing to run")
    return module.write_dir, module.resume


def train(strategy: Any, args: argparse.Namespace, log: Events) -> float:
    """The notebook's worker loop, with `write_dir` and `resume` from ``--answer``."""
    import keras
    import tensorflow as tf

    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    chosen_write_dir, chosen_resume = _load_answer(args.answer)
    keras.utils.set_random_seed(8)  # the same start whatever ran before (--try-fit builds a model)
    with strategy.scope():
        model = keras.Sequential(
            [keras.Input((784,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)]
        )
        optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
        optimizer.build(model.trainable_variables)  # its momentum exists before a restore
        checkpoint = tf.train.Checkpoint(
            model=model, optimizer=optimizer, step=tf.Variable(0, dtype=tf.int64)
        )
    directory = os.fspath(chosen_write_dir(args.checkpoint_dir, task_type, task_id))
    manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=2)
    # Every worker restores from the chief's directory: that is where the real checkpoints are.
    chief = tf.train.CheckpointManager(checkpoint, args.checkpoint_dir, max_to_keep=2)
    start = chosen_resume(checkpoint, chief)
    start = int(start.numpy() if hasattr(start, "numpy") else start)  # a step Variable: its value
    log("resumed" if start else "started", step=start, momentum=momentum_norm(optimizer))
    x, y = training_data()

    def dataset_fn(input_context: Any) -> Any:
        batch_size = input_context.get_per_replica_batch_size(GLOBAL_BATCH_SIZE)
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).repeat()
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        return dataset.batch(batch_size, drop_remainder=True).skip(start)

    @tf.function
    def train_step(images: Any, labels: Any) -> Any:
        def replica_step(images: Any, labels: Any) -> Any:
            with tf.GradientTape() as tape:
                logits = model(images, training=True)
                per_example = keras.losses.sparse_categorical_crossentropy(
                    labels, logits, from_logits=True
                )
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=GLOBAL_BATCH_SIZE)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss

        losses = strategy.run(replica_step, args=(images, labels))
        return strategy.reduce("SUM", losses, axis=None)

    dataset = strategy.distribute_datasets_from_function(dataset_fn)
    loss = float("nan")
    for step, (images, labels) in zip(range(start, args.steps), dataset, strict=False):
        crash_if_asked(step, task_id, args, log)
        loss = float(train_step(images, labels))
        checkpoint.step.assign(step + 1)
        log("step", step=step + 1, loss=loss)
        if (step + 1) % args.checkpoint_every == 0:
            manager.save(checkpoint_number=step + 1)
            log("saved", step=step + 1, momentum=momentum_norm(optimizer))
            if directory != args.checkpoint_dir:
                tf.io.gfile.rmtree(directory)
    log("done", step=args.steps, loss=loss)
    return loss


def main(argv: Sequence[str] | None = None) -> int:
    """Run one worker; its `TF_CONFIG` says which."""
    args = arguments(argv)
    exit_with_parent()
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    log = Events(strategy.cluster_resolver.task_id)
    log("ready", replicas=strategy.num_replicas_in_sync)
    demos(strategy, log, args)
    train(strategy, args, log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
