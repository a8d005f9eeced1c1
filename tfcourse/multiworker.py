"""The worker program of `08_distributed`: multi-worker training with a custom loop and checkpoints.

Run one copy per machine (`tfcourse.distributed.Cluster` does it on this one), each with its own
`TF_CONFIG`: ``python -m tfcourse.multiworker --steps 20 --checkpoint-dir DIR``. Every worker trains
the same small classifier on its shard of MNIST-5k with `MultiWorkerMirroredStrategy`, and writes
what happens as JSON lines to ``$TFCOURSE_EVENTS`` (see `tfcourse.distributed.read_events`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
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


class _Events:
    """Writes one JSON object per line, flushed at once (a killed worker keeps what it wrote)."""

    def __init__(self, path: str | None, task: int) -> None:
        self.path, self.task = path, task

    def __call__(self, event: str, **fields: Any) -> None:
        record = {"event": event, "worker": self.task, **fields}
        print(json.dumps(record), flush=True)
        if self.path:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")


def _watch_parent() -> None:
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


def write_dir(directory: str, task_type: str | None, task_id: int | None) -> str:
    """Where a worker saves checkpoints: the chief (worker 0) to `directory`, others to a temp one.

    Every worker must call `save()` (saving takes part in collective ops), but only the chief's copy
    is kept, as TensorFlow's multi-worker tutorial prescribes.
    """
    if task_type in (None, "chief") or (task_type == "worker" and task_id == 0):
        return directory
    return os.path.join(directory, f"workertemp_{task_id}")


def resume(checkpoint: Any, manager: Any) -> int:
    """Restore the latest checkpoint, if there is one; return the step to continue from."""
    if manager.latest_checkpoint is None:
        return 0
    checkpoint.restore(manager.latest_checkpoint)
    return int(checkpoint.step.numpy())


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


def _model(keras: Any) -> Any:
    return keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(10),
        ]
    )


def _data() -> tuple[Any, Any]:
    import numpy as np

    from tfcourse import data

    train = data.load_numpy("mnist5k", "train")
    x = train["image"][:NUM_EXAMPLES].reshape(NUM_EXAMPLES, -1).astype(np.float32) / 255
    return x, train["label"][:NUM_EXAMPLES].astype(np.int64)


def _dataset_fn(tf: Any, x: Any, y: Any, start_step: int) -> Callable[[Any], Any]:
    def dataset_fn(input_context: Any) -> Any:
        batch_size = input_context.get_per_replica_batch_size(GLOBAL_BATCH_SIZE)
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).repeat()
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        return dataset.batch(batch_size, drop_remainder=True).skip(start_step)

    return dataset_fn


def _numbers_in_files(tf: Any) -> Any:
    """The numbers 0-15 in 4 text files of 4 lines (file k holds 4k to 4k + 3), read in order."""
    folder = tempfile.mkdtemp(prefix="tfcourse-shards-")
    for k in range(4):
        with open(os.path.join(folder, f"part-{k}.txt"), "w") as handle:
            handle.write("".join(f"{4 * k + i}\n" for i in range(4)))
    files = tf.data.Dataset.list_files(os.path.join(folder, "part-*.txt"), shuffle=False)
    lines = files.interleave(tf.data.TextLineDataset, cycle_length=1)
    return lines.map(lambda line: tf.strings.to_number(line, tf.int64))


def show_input(tf: Any, strategy: Any, log: _Events) -> None:
    """Log which examples this worker's first batches hold, under each way of distributing."""
    sources = {"range(16)": tf.data.Dataset.range(16), "4 files": _numbers_in_files(tf)}
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
        batches = iter(strategy.experimental_distribute_dataset(dataset))
        log(
            "input",
            how=f"experimental_distribute_dataset, {source}, auto-shard {policy}",
            examples=[_local_values(strategy, next(batches)) for _ in range(2)],
        )

    def dataset_fn(input_context: Any) -> Any:
        dataset = tf.data.Dataset.range(16)
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        return dataset.batch(input_context.get_per_replica_batch_size(4))

    batches = iter(strategy.distribute_datasets_from_function(dataset_fn))
    log(
        "input",
        how="distribute_datasets_from_function, range(16)",
        examples=[_local_values(strategy, next(batches)) for _ in range(2)],
    )


def _local_values(strategy: Any, value: Any) -> list[int]:
    return [int(v) for part in strategy.experimental_local_results(value) for v in part.numpy()]


def try_fit(tf: Any, keras: Any, strategy: Any, log: _Events) -> None:
    """Try Keras `fit()` under this strategy and log how it ends (keras-team/keras#20585)."""
    x, y = _data()
    with strategy.scope():
        model = _model(keras)
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


def train(tf: Any, keras: Any, strategy: Any, args: argparse.Namespace, log: _Events) -> float:
    """The custom loop: `strategy.run`, `compute_average_loss`, `strategy.reduce`, checkpoints."""
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    chosen_write_dir, chosen_resume = _load_answer(args.answer)
    keras.utils.set_random_seed(8)  # the same start whatever ran before (--try-fit builds a model)
    with strategy.scope():
        model = _model(keras)
        optimizer = keras.optimizers.SGD(args.learning_rate)
        checkpoint = tf.train.Checkpoint(
            model=model, optimizer=optimizer, step=tf.Variable(0, dtype=tf.int64)
        )
    directory = os.fspath(chosen_write_dir(args.checkpoint_dir, task_type, task_id))
    manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=2)
    # Every worker restores from the chief's directory: that is where the real checkpoints are.
    chief = tf.train.CheckpointManager(checkpoint, args.checkpoint_dir, max_to_keep=2)
    start = int(chosen_resume(checkpoint, chief))
    log("resumed" if start else "started", step=start)
    x, y = _data()
    dataset = strategy.distribute_datasets_from_function(_dataset_fn(tf, x, y, start))

    @tf.function
    def step_fn(batch: Any) -> Any:
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

        losses = strategy.run(replica_step, args=batch)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    loss = float("nan")
    for step, batch in zip(range(start, args.steps), dataset, strict=False):
        if step == args.crash_at and task_id == args.crash_worker:
            log("crash", step=step)
            os.kill(os.getpid(), signal.SIGKILL)  # a lost machine: no clean-up, no goodbye
        loss = float(step_fn(batch))
        checkpoint.step.assign(step + 1)
        log("step", step=step + 1, loss=loss)
        if (step + 1) % args.checkpoint_every == 0:
            manager.save(checkpoint_number=step + 1)
            log("saved", step=step + 1)
            if directory != args.checkpoint_dir:
                shutil.rmtree(directory, ignore_errors=True)
    log("done", step=args.steps, loss=loss)
    return loss


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tfcourse.multiworker", description=__doc__)
    parser.add_argument("--steps", type=int, default=20, help="train until this step")
    parser.add_argument("--checkpoint-dir", required=True, help="the chief's checkpoint folder")
    parser.add_argument("--checkpoint-every", type=int, default=5, help="save every N steps")
    parser.add_argument("--learning-rate", type=float, default=0.5)
    parser.add_argument("--crash-at", type=int, default=-1, help="kill a worker at this step")
    parser.add_argument("--crash-worker", type=int, default=1, help="the worker that crashes")
    parser.add_argument("--timeout", type=float, default=30, help="seconds an all-reduce may wait")
    parser.add_argument("--show-input", action="store_true", help="log what each shard sees")
    parser.add_argument("--try-fit", action="store_true", help="try Keras fit() first")
    parser.add_argument("--answer", help="a Python file with write_dir and resume (08.4)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one worker; its `TF_CONFIG` says which."""
    args = _parser().parse_args(argv)
    _watch_parent()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(8)
    tf.config.experimental.enable_op_determinism()
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=args.timeout)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    log = _Events(os.environ.get("TFCOURSE_EVENTS"), strategy.cluster_resolver.task_id)
    log("ready", replicas=strategy.num_replicas_in_sync)
    if args.show_input:
        show_input(tf, strategy, log)
    if args.try_fit:
        try_fit(tf, keras, strategy, log)
    train(tf, keras, strategy, args, log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
