"""Self-checks for the exercises of `08_distributed`."""

from __future__ import annotations

import inspect
import json
import math
import os
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tfcourse.exercises._framework import NotAttempted, Wrong, _describe, check
from tfcourse.exercises._learner import call, learner_code

__all__ = [
    "CLUSTER_HOSTS",
    "CLUSTER_PORT",
    "check_loss_scaling",
    "check_per_replica_batch",
    "check_resume",
    "check_tf_config",
]


# 08.1 -------------------------------------------------------------------------------------------
_BATCH_CASES = ((64, 2, 32), (96, 3, 32), (8, 8, 1), (256, 1, 256), (1024, 16, 64))


@check("08.1", "the per-replica batch")
def check_per_replica_batch(per_replica_batch_size: Callable[[int, int], Any]) -> str:
    """Check `per_replica_batch_size(global_batch_size, num_replicas)`: the examples each replica
    takes in one step, as an int, and a `ValueError` when the global batch does not divide."""
    for global_batch, replicas, wanted in _BATCH_CASES:
        name = f"per_replica_batch_size({global_batch}, {replicas})"
        got = call(per_replica_batch_size, global_batch, replicas, name=name)
        _expect_batch(got, wanted, global_batch, replicas, name=name)
    try:
        with learner_code("per_replica_batch_size(10, 4)"):
            got = per_replica_batch_size(10, 4)
    except Wrong as wrong:
        if "ValueError" in str(wrong):
            return (
                "global batch // replicas, as an int, and a ValueError when replicas cannot "
                "share the global batch evenly."
            )
        raise
    raise Wrong(
        f"per_replica_batch_size(10, 4) returned {_describe(got)}: 4 replicas cannot share 10 "
        "examples evenly, and a silently smaller global batch changes the training. Raise "
        "ValueError when global_batch_size % num_replicas != 0."
    )


def _expect_batch(got: Any, wanted: int, global_batch: int, replicas: int, *, name: str) -> None:
    if isinstance(got, float) and got == wanted:
        raise Wrong(f"{name} returned {got!r}, a float: a batch size is an int. Use //.")
    if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
        raise Wrong(f"{name} should return an int, but returned {_describe(got)}")
    if got == wanted:
        return
    if got == global_batch * replicas:
        raise Wrong(
            f"{name} returned {got}, global × replicas: the global batch is what all replicas "
            "take together, so each replica takes a share of it. Divide."
        )
    if got == global_batch and replicas > 1:
        raise Wrong(
            f"{name} returned {got}, the whole global batch: each of the {replicas} replicas "
            "takes only its share of it."
        )
    if got in (wanted - 1, wanted + 1):
        raise Wrong(f"{name} returned {got}, expected {wanted}: off by one.")
    if got != wanted:
        raise Wrong(f"{name} returned {got}, expected {wanted} ({global_batch} / {replicas}).")


# 08.2 -------------------------------------------------------------------------------------------
_GLOBAL_BATCH, _STEPS, _LEARNING_RATE = 16, 4, 0.5
#: The last batch is short (10 examples, 5 per replica): the global batch size must still divide.
_SHORT = 6


def _toy_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(8)
    x = rng.normal(size=(_GLOBAL_BATCH * _STEPS - _SHORT, 12)).astype(np.float32)
    y = rng.integers(0, 5, size=len(x)).astype(np.int64)
    return x, y


def _toy_run(strategy: Any, compute_loss: Callable[..., Any]) -> tuple[list[float], list[Any]]:
    """`_STEPS` steps of SGD on a one-layer model under `strategy`: losses and final weights."""
    import keras
    import tensorflow as tf

    x, y = _toy_data()
    keras.utils.set_random_seed(8)
    with strategy.scope():
        model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(5)])
        optimizer = keras.optimizers.SGD(_LEARNING_RATE)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(_GLOBAL_BATCH)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    dataset = strategy.experimental_distribute_dataset(dataset.with_options(options))

    @tf.function
    def train_step(images: Any, labels: Any) -> Any:
        def replica_step(images: Any, labels: Any) -> Any:
            with tf.GradientTape() as tape:
                loss = compute_loss(labels, model(images, training=True), _GLOBAL_BATCH)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss

        losses = strategy.run(replica_step, args=(images, labels))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    losses = [float(train_step(*batch)) for batch in dataset]
    return losses, [w.numpy() for w in model.trainable_variables]


def _reference_loss(labels: Any, logits: Any, global_batch_size: int) -> Any:
    import keras
    import tensorflow as tf

    per_example = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)


@check("08.2", "fix the loss scaling of a custom loop")
def check_loss_scaling(compute_loss: Callable[[Any, Any, int], Any], strategy: Any) -> str:
    """Check `compute_loss(labels, logits, global_batch_size)`, used inside `strategy.run`: with
    gradients summed over replicas, training must match one device on the same global batch."""
    import tensorflow as tf

    if compute_loss is None:
        raise NotAttempted
    replicas = getattr(strategy, "num_replicas_in_sync", None)
    if not isinstance(replicas, int) or replicas < 2:
        raise Wrong(
            f"pass the notebook's strategy with 2 or more replicas, not {_describe(strategy)}: "
            "with one replica every scaling looks right."
        )
    _expect_scalar_loss(compute_loss)
    with learner_code("training with your compute_loss under the strategy", seconds=60):
        losses, weights = _toy_run(strategy, compute_loss)
    devices = getattr(getattr(strategy, "extended", None), "worker_devices", None) or ["/cpu:0"]
    with tf.device(devices[0]):  # the replicas' kind of device: never a GPU beside CPU replicas
        ref_losses, ref_weights = _toy_run(tf.distribute.get_strategy(), _reference_loss)
    ratio = losses[0] / ref_losses[0] if ref_losses[0] else math.nan
    if not np.isfinite(losses).all():
        raise Wrong(f"training with your compute_loss gave the losses {losses}: not finite.")
    if not math.isclose(ratio, 1.0, rel_tol=1e-4):
        raise Wrong(_scaling_hint(ratio, replicas))
    last = losses[-1] / ref_losses[-1] if ref_losses[-1] else math.nan
    if not math.isclose(last, 1.0, rel_tol=1e-4):
        short = _GLOBAL_BATCH - _SHORT
        raise Wrong(
            f"the full batches are right, but on the last, short batch ({short} examples, "
            f"{short // replicas} per replica) the summed loss is {last:.4g} times one device's: "
            "you divided by something other than the global_batch_size argument (the examples "
            "present, the replicas, or a number of your own). Divide by global_batch_size: "
            "tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)."
        )
    gap = max(float(np.abs(a - b).max()) for a, b in zip(weights, ref_weights, strict=True))
    if gap > 1e-5:
        raise Wrong(
            f"the first loss is right, but after {_STEPS} steps the weights differ from one "
            f"device's by up to {gap:.3g}: the gradient of your loss is not the gradient of the "
            "mean over the global batch. Compute the loss from labels and logits, per example."
        )
    return (
        f"on {replicas} replicas, the summed loss equals one device's mean loss and the weights "
        f"match it after {_STEPS} SGD steps (within 1e-5)."
    )


def _expect_scalar_loss(compute_loss: Callable[..., Any]) -> None:
    import tensorflow as tf

    x, y = _toy_data()
    logits = tf.constant(x[:_GLOBAL_BATCH, :5])
    name = f"compute_loss(labels, logits, {_GLOBAL_BATCH})"
    loss = call(compute_loss, tf.constant(y[:_GLOBAL_BATCH]), logits, _GLOBAL_BATCH, name=name)
    if getattr(loss, "shape", None) is None or tuple(loss.shape) != ():
        raise Wrong(
            f"{name} should return one number, a scalar Tensor, but returned {_describe(loss)}: "
            "sum the per-example losses and divide by the global batch."
        )


def _scaling_hint(ratio: float, replicas: int) -> str:
    per_replica = _GLOBAL_BATCH // replicas
    seen = f"the loss summed over replicas is {ratio:.4g} times one device's mean loss"
    if math.isclose(ratio, replicas, rel_tol=1e-3):
        return (
            f"{seen}: each replica averaged over its own {per_replica} examples, and the "
            f"all-reduce then summed {replicas} such means, so every gradient is {replicas}x too "
            "big. Divide the per-example losses by the global batch: "
            "tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)."
        )
    if math.isclose(ratio, per_replica * replicas, rel_tol=1e-3):
        return f"{seen}: you summed the per-example losses. Divide by the global batch size."
    if math.isclose(ratio, per_replica, rel_tol=1e-3):
        return (
            f"{seen}: you summed each replica's losses without dividing. Divide by the global "
            "batch size."
        )
    if math.isclose(ratio, 1 / replicas, rel_tol=1e-3):
        return (
            f"{seen}: you also divided by the number of replicas. The global batch already "
            "counts every replica's examples; divide by it once."
        )
    divisor = _GLOBAL_BATCH / ratio if ratio > 0 else math.nan
    if (
        math.isfinite(divisor)
        and divisor > 1.5
        and math.isclose(divisor, round(divisor), rel_tol=1e-3)
    ):
        return (
            f"{seen}: you divided by {round(divisor)}, not by the global_batch_size argument "
            f"({_GLOBAL_BATCH} here). Use the argument: the check, like a real loop, passes it."
        )
    return (
        f"{seen}, and should be 1: compute each example's loss from labels and logits (from "
        "logits, sparse labels) and divide their sum by the global batch size."
    )


# 08.3 -------------------------------------------------------------------------------------------
#: Exercise 08.3: the machines of the cluster, and the port each worker listens on.
CLUSTER_HOSTS = ("10.1.0.11", "10.1.0.12", "10.1.0.13")
CLUSTER_PORT = 2222


@check("08.3", "write the TF_CONFIG of a cluster")
def check_tf_config(make_tf_config: Callable[[list[str], int, int], Any]) -> str:
    """Check `make_tf_config(hosts, port, index)`: the `TF_CONFIG` (a dict or its JSON) of worker
    `index` of a cluster of one worker per host, all on `port`, worker 0 the chief."""
    hosts = list(CLUSTER_HOSTS)
    clusters = []
    for index in range(len(hosts)):
        name = f"make_tf_config({hosts}, {CLUSTER_PORT}, {index})"
        config = _as_config(call(make_tf_config, list(hosts), CLUSTER_PORT, index, name=name), name)
        _expect_cluster(config, name, hosts)
        _expect_task(config, name, index)
        clusters.append(config["cluster"])
    if any(cluster != clusters[0] for cluster in clusters):
        raise Wrong(
            "the cluster part differs between machines: every worker must list the same "
            "addresses in the same order; only task.index says which one it is."
        )
    return "the same cluster on every machine, 'host:port' strings, and each task's own index."


def _as_config(value: Any, name: str) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise Wrong(f"{name} returned a str that is not JSON ({error.msg}).") from None
    if not isinstance(value, dict):
        raise Wrong(f"{name} should return a dict (or its JSON), not {_describe(value)}")
    try:
        json.dumps(value)
    except (TypeError, ValueError) as error:
        raise Wrong(f"{name} cannot be written as JSON for the environment: {error}") from None
    return value


def _expect_cluster(config: dict[str, Any], name: str, hosts: list[str]) -> None:
    cluster = config.get("cluster")
    if not isinstance(cluster, dict):
        raise Wrong(f"{name} has no 'cluster' dict; it lists the jobs and their addresses.")
    if "workers" in cluster or "chief" in cluster:
        raise Wrong(
            f"{name}'s cluster has the jobs {sorted(cluster)}: use one job named 'worker' "
            "(singular) that lists every machine; worker 0 is the chief."
        )
    workers = cluster.get("worker")
    wanted = [f"{host}:{CLUSTER_PORT}" for host in hosts]
    if not isinstance(workers, list):
        raise Wrong(f"{name}: cluster['worker'] should be a list of 'host:port' strings.")
    if any(not isinstance(w, str) for w in workers):
        raise Wrong(
            f"{name}: cluster['worker'] holds {workers}; each address is one string "
            f"'host:port', like '{wanted[0]}'."
        )
    if workers == list(hosts):
        raise Wrong(f"{name}: the addresses have no port; write 'host:port'.")
    if sorted(workers) == sorted(wanted) and workers != wanted:
        raise Wrong(f"{name}: list the workers in the order given, {wanted}, on every machine.")
    if workers != wanted:
        raise Wrong(f"{name}: cluster['worker'] is {workers}, expected {wanted}.")


def _expect_task(config: dict[str, Any], name: str, index: int) -> None:
    task = config.get("task")
    if not isinstance(task, dict):
        raise Wrong(f"{name} has no 'task' dict: without it a worker does not know which it is.")
    if task.get("type") != "worker":
        raise Wrong(f"{name}: task['type'] is {task.get('type')!r}; it should be 'worker'.")
    got = task.get("index")
    if isinstance(got, str):
        raise Wrong(f"{name}: task['index'] is the string {got!r}; write the int {index}.")
    if isinstance(got, bool) or not isinstance(got, int):
        raise Wrong(
            f"{name}: task['index'] is {got!r}, a {type(got).__name__}; write the int {index}."
        )
    if got == index + 1:
        raise Wrong(f"{name}: task['index'] is {got}; indexes start at 0 (0 is the chief).")
    if got != index:
        raise Wrong(f"{name}: task['index'] is {got!r}, expected {index}.")


# 08.4 -------------------------------------------------------------------------------------------
@check("08.4", "resume multi-worker training after a worker is killed")
def check_resume(write_dir: Callable[..., Any], resume: Callable[..., Any]) -> str:
    """Check `write_dir(directory, task_type, task_id)` and `resume(checkpoint, manager)`, first
    here, then in a real 2-worker cluster whose worker 1 is killed at step 12 and restarted."""
    if write_dir is None or resume is None:
        raise NotAttempted
    _expect_write_dir(write_dir)
    _expect_resume(resume)
    source = _answer_source(write_dir=write_dir, resume=resume)
    with tempfile.TemporaryDirectory() as folder:
        crashed, resumed = _run_twice(Path(folder), source)
    return _compare_runs(crashed, resumed)


def _as_path_text(value: Any) -> Any:
    """A returned folder as text: a `pathlib.Path` is as good as a string."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _expect_write_dir(write_dir: Callable[..., Any]) -> None:
    chief = call(write_dir, "ckpt", "worker", 0, name="write_dir('ckpt', 'worker', 0)")
    chief = _as_path_text(chief)
    if chief != "ckpt":
        raise Wrong(
            f"write_dir('ckpt', 'worker', 0) returned {chief!r}: worker 0 is the chief, and it "
            "writes the real checkpoints, to the directory itself."
        )
    others = [
        _as_path_text(call(write_dir, "ckpt", "worker", i, name=f"write_dir(..., {i})"))
        for i in (1, 2)
    ]
    if "ckpt" in others:
        index = others.index("ckpt") + 1
        raise Wrong(
            f"write_dir('ckpt', 'worker', {index}) returned 'ckpt', the chief's folder: two "
            "workers writing the same checkpoint files overwrite each other. Give each other "
            "worker a temp folder."
        )
    if not all(isinstance(o, str) for o in others) or others[0] == others[1]:
        raise Wrong(f"write_dir gave workers 1 and 2 {others}: each needs a folder of its own.")


def _expect_resume(resume: Callable[..., Any]) -> None:
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as folder:
        checkpoint = tf.train.Checkpoint(step=tf.Variable(0, dtype=tf.int64), w=tf.Variable(0.0))
        manager = tf.train.CheckpointManager(checkpoint, folder, max_to_keep=2)
        start = call(resume, checkpoint, manager, name="resume(...) with no checkpoint yet")
        if start != 0:
            raise Wrong(f"with no checkpoint yet, resume should return 0, not {_describe(start)}")
        for step in (5, 10):
            checkpoint.step.assign(step)
            checkpoint.w.assign(step / 10)
            manager.save(checkpoint_number=step)
        checkpoint.step.assign(0)
        checkpoint.w.assign(-1.0)
        start = call(resume, checkpoint, manager, name="resume(...) after saves at steps 5 and 10")
    _expect_restored(start, float(checkpoint.w.numpy()))


def _expect_restored(start: Any, w: float) -> None:
    if w == -1.0:
        raise Wrong(
            "resume did not restore the checkpoint: the weights are still the fresh ones. Call "
            "checkpoint.restore(manager.latest_checkpoint)."
        )
    if w == 0.5:
        raise Wrong("resume restored the step-5 checkpoint, the oldest: restore the latest.")
    if hasattr(start, "numpy"):
        start = start.numpy()
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)):
        raise Wrong(f"resume should return the step as an int, not {_describe(start)}")
    if start == 0:
        raise Wrong(
            "resume restored the weights but returned 0: training would redo steps 1-10 on "
            "the restored weights. Return the saved step (checkpoint.step)."
        )
    if start != 10:
        raise Wrong(f"resume returned {start} after a checkpoint at step 10; return 10.")


#: What a worker imports before the learner's functions: the names those functions may use.
_ANSWER_IMPORTS = (
    "import os\nimport tempfile\nfrom pathlib import Path\n\nimport numpy as np\n"
    "import tensorflow as tf\n"
)


def _answer_source(**functions: Callable[..., Any]) -> str:
    """A module for the workers: the imports, each function's source, and the names the worker
    program looks up (`write_dir = my_write_dir` when the learner named it otherwise)."""
    parts = [_ANSWER_IMPORTS]
    for role, fn in functions.items():
        try:
            parts.append(textwrap.dedent(inspect.getsource(fn)))
        except (OSError, TypeError):
            raise Wrong(
                f"the workers cannot read the source of {_describe(fn)}: define write_dir and "
                "resume with `def` in a notebook cell."
            ) from None
        if fn.__name__ != role:
            parts.append(f"{role} = {fn.__name__}\n")
    return "\n\n".join(parts)


def _run_twice(folder: Path, source: str) -> tuple[list[list[dict[str, Any]]], ...]:
    from tfcourse import distributed

    answer = folder / "answer.py"
    answer.write_text(source, encoding="utf-8")
    args = ["--checkpoint-dir", folder / "ckpt", "--steps", 16, "--answer", answer]
    runs = []
    for crash in (["--crash-at", 12], []):
        command = distributed.python_module("tfcourse.multiworker", *args, *crash)
        with learner_code("the 2-worker cluster running your functions", seconds=150):
            with distributed.Cluster(command, folder=folder / f"run{len(runs)}", timeout=120) as c:
                codes = c.wait()
                events = c.events()
        _expect_codes(codes, crashed=bool(crash), logs=c.logs())
        runs.append(events)
    return tuple(runs)


def _expect_codes(codes: list[int], *, crashed: bool, logs: list[str]) -> None:
    if crashed and codes[1] != -9:
        tail = " | ".join(logs[1].strip().splitlines()[-3:]) if len(logs) > 1 else ""
        raise Wrong(
            f"worker 1 should have been killed at step 12, but exited with {codes[1]} first. "
            f"Its last lines: {tail[-600:]} (the workers run your functions with only os, "
            "tempfile, Path, np and tf imported: use no other name from the notebook)."
        )
    if not crashed and codes != [0, 0]:
        last = [log.strip().splitlines()[-1] if log.strip() else "" for log in logs]
        raise Wrong(f"after the restart the workers exited with {codes}; their last lines: {last}")


def _compare_runs(crashed: list[list[dict[str, Any]]], resumed: list[list[dict[str, Any]]]) -> str:
    start = next((e["step"] for e in resumed[0] if e["event"] in ("resumed", "started")), None)
    if start != 10:
        raise Wrong(
            f"after the restart, training went on from step {start}, not 10, the last "
            "checkpoint before the crash at step 12."
        )
    before = {e["step"]: e["loss"] for e in crashed[0] if e["event"] == "step"}
    after = {e["step"]: e["loss"] for e in resumed[0] if e["event"] == "step"}
    shared = sorted(set(before) & set(after))
    gap = max((abs(before[s] - after[s]) for s in shared), default=math.inf)
    if gap > 1e-6:
        raise Wrong(
            f"steps {shared} gave other losses after the restart (up to {gap:.3g} apart): "
            "the restored state is not the saved one."
        )
    return (
        f"killed at step 12, the cluster resumed at step 10 and repeated steps {shared} with the "
        f"same losses (largest difference {gap:.1g}), then finished step 16."
    )
