"""Self-checks for the exercises of `08_distributed`."""

from __future__ import annotations

import ast
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
from tfcourse.exercises._learner import call, forbid, learner_code
from tfcourse.exercises._probes import draw_except, probe_rng

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
    rng = probe_rng()
    drawn_replicas, share = int(rng.integers(3, 13)), int(rng.integers(5, 61))
    drawn_case = (share * drawn_replicas, drawn_replicas, share)  # a table of answers misses it
    for global_batch, replicas, wanted in [*_BATCH_CASES, drawn_case]:
        name = f"per_replica_batch_size({global_batch}, {replicas})"
        got = call(per_replica_batch_size, global_batch, replicas, name=name)
        _expect_batch(got, wanted, global_batch, replicas, name=name)
    drawn = int(rng.choice([3, 4, 6, 8]))
    remainder = int(rng.integers(1, drawn))
    uneven = [(10, 4), (7, 2), (drawn * int(rng.integers(5, 40)) + remainder, drawn)]
    uneven.append((remainder, drawn))  # fewer examples than replicas: some would get none
    for global_batch, replicas in uneven:
        _expect_value_error(per_replica_batch_size, global_batch, replicas)
    return (
        "global batch // replicas, as an int, and a ValueError when replicas cannot share the "
        "global batch evenly."
    )


def _expect_value_error(
    per_replica_batch_size: Callable[[int, int], Any], global_batch: int, replicas: int
) -> None:
    name = f"per_replica_batch_size({global_batch}, {replicas})"
    try:
        with learner_code(name):
            got = per_replica_batch_size(global_batch, replicas)
    except Wrong as wrong:
        if isinstance(wrong.__cause__, ValueError):
            return
        raise Wrong(
            f"{str(wrong).rstrip('.')}: raise ValueError itself (not another exception whose "
            f"message names it) when {replicas} replicas cannot share {global_batch} examples."
        ) from None
    raise Wrong(
        f"{name} returned {_describe(got)}: {replicas} replicas cannot share {global_batch} "
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


def _toy_data(global_batch: int, short: int) -> tuple[np.ndarray, np.ndarray]:
    """`_STEPS - 1` full batches of `global_batch` examples, then a short one of `short`."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=(global_batch * (_STEPS - 1) + short, 12)).astype(np.float32)
    y = rng.integers(0, 5, size=len(x)).astype(np.int64)
    return x, y


def _toy_run(
    strategy: Any, compute_loss: Callable[..., Any], global_batch: int, short: int
) -> tuple[list[float], list[Any]]:
    """`_STEPS` steps of SGD on a one-layer model under `strategy`: losses and final weights."""
    import keras
    import tensorflow as tf

    x, y = _toy_data(global_batch, short)
    keras.utils.set_random_seed(8)
    with strategy.scope():
        model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(5)])
        optimizer = keras.optimizers.SGD(_LEARNING_RATE)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(global_batch)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    dataset = strategy.experimental_distribute_dataset(dataset.with_options(options))

    @tf.function
    def train_step(images: Any, labels: Any) -> Any:
        def replica_step(images: Any, labels: Any) -> Any:
            with tf.GradientTape() as tape:
                loss = compute_loss(labels, model(images, training=True), global_batch)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss

        losses = strategy.run(replica_step, args=(images, labels))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    losses = [float(train_step(*batch)) for batch in dataset]
    return losses, [w.numpy() for w in model.trainable_variables]


def _per_example(labels: Any, logits: Any) -> Any:
    import keras

    return keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)


def _divided_by_global_batch(labels: Any, logits: Any, global_batch_size: int) -> Any:
    """One convention for the short last batch: every step divides by the fixed global batch."""
    import tensorflow as tf

    per_example = _per_example(labels, logits)
    return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)


def _mean_over_present(labels: Any, logits: Any, global_batch_size: int) -> Any:
    """The other convention: the mean over the examples the batch holds (one device)."""
    import tensorflow as tf

    return tf.reduce_mean(_per_example(labels, logits))


def _replica_means(labels: Any, logits: Any, global_batch_size: int) -> Any:
    """TensorFlow's and Keras's default: each replica's mean over its own examples, divided by
    the number of replicas (`compute_average_loss` without a size; a Keras loss object). A short
    batch split unevenly (8 and 2 examples) weighs the examples of the smaller part more."""
    import tensorflow as tf

    return tf.nn.compute_average_loss(_per_example(labels, logits))


#: The check's own losses: an answer that calls them hands the exercise to the course.
_REFERENCES = (_per_example, _divided_by_global_batch, _mean_over_present, _replica_means)
_OWN_LOSS = (
    "compute_loss calls the check's own reference loss (tfcourse.exercises.ch08): compute the "
    "per-example losses and scale them yourself."
)

#: Exercise 08.2: the right treatments of a short last batch: (reference loss, run on one device?).
_CONVENTIONS = {
    "divided by the global batch size": (_divided_by_global_batch, True),
    "the mean over the examples present": (_mean_over_present, True),
    "each replica's mean over the replicas (TensorFlow's and Keras's default)": (
        _replica_means,
        False,
    ),
}


def _loss_cases(replicas: int) -> list[tuple[int, int]]:
    """(global batch, short last batch) pairs. The first is the notebook's batch with a short last
    batch of 10; the second is drawn each run. With auto-sharding off (as `_toy_run` has it),
    `tf.distribute` fills the replicas in turn (10 over 2 replicas of 8: 8 and 2; by default it
    would split evenly), so each short batch leaves every replica some examples: with none, a
    Keras loss object fails to trace."""
    rng = probe_rng()
    cases = [(_GLOBAL_BATCH, _GLOBAL_BATCH - 6)]
    # not the notebook's batch, nor half of it: a divisor of 16 would then read as "/ replicas"
    per_replica = draw_except(rng, 3, 12, {_GLOBAL_BATCH // replicas, _GLOBAL_BATCH // replicas**2})
    short = int(rng.integers(per_replica * (replicas - 1) + 1, per_replica * replicas))
    cases.append((per_replica * replicas, short))
    return cases


@check("08.2", "fix the loss scaling of a custom loop")
def check_loss_scaling(compute_loss: Callable[[Any, Any, int], Any], strategy: Any) -> str:
    """Check `compute_loss(labels, logits, global_batch_size)`, used inside `strategy.run`: with
    gradients summed over replicas, training must match one device on the same global batches,
    a short last batch included (either convention for it), for two global batch sizes."""
    if compute_loss is None:
        raise NotAttempted
    if compute_loss in _REFERENCES:
        raise Wrong(_OWN_LOSS)
    replicas = getattr(strategy, "num_replicas_in_sync", None)
    if not isinstance(replicas, int) or replicas < 2:
        raise Wrong(
            f"pass the notebook's strategy with 2 or more replicas, not {_describe(strategy)}: "
            "with one replica every scaling looks right."
        )
    _expect_scalar_loss(compute_loss, replicas)
    used = set()
    for global_batch, short in _loss_cases(replicas):
        used.add(_expect_matches_one_device(compute_loss, strategy, replicas, global_batch, short))
    convention = " or ".join(sorted(used))
    return (
        f"on {replicas} replicas, the summed loss equals one device's mean loss and the weights "
        f"match it after {_STEPS} SGD steps (within 1e-5), for two global batch sizes; on the "
        f"short last batch, {convention}."
    )


def _expect_matches_one_device(
    compute_loss: Callable[..., Any], strategy: Any, replicas: int, global_batch: int, short: int
) -> str:
    """Train with `compute_loss` under `strategy`; return the convention whose one-device run it
    matches, or raise `Wrong` that says how it differs."""
    import tensorflow as tf

    with learner_code("training with your compute_loss under the strategy", seconds=60):
        losses, weights = _toy_run(strategy, compute_loss, global_batch, short)
    if not np.isfinite(losses).all():
        raise Wrong(f"training with your compute_loss gave the losses {losses}: not finite.")
    devices = getattr(getattr(strategy, "extended", None), "worker_devices", None) or ["/cpu:0"]
    references = {}
    for name, (reference, one_device) in _CONVENTIONS.items():
        if one_device:
            with tf.device(devices[0]):  # the replicas' kind of device: never a GPU beside them
                references[name] = _toy_run(
                    tf.distribute.get_strategy(), reference, global_batch, short
                )
        else:
            references[name] = _toy_run(strategy, reference, global_batch, short)
    ref_losses, _ = references["divided by the global batch size"]
    ratio = losses[0] / ref_losses[0] if ref_losses[0] else math.nan
    if not math.isclose(ratio, 1.0, rel_tol=1e-4):
        raise Wrong(_scaling_hint(ratio, replicas, global_batch))
    for name, (ref_losses, ref_weights) in references.items():
        same_losses = all(
            math.isclose(a, b, rel_tol=1e-4) for a, b in zip(losses, ref_losses, strict=True)
        )
        gap = max(float(np.abs(a - b).max()) for a, b in zip(weights, ref_weights, strict=True))
        if same_losses and gap <= 1e-5:
            return name
    last = {name: losses[-1] / ref[0][-1] for name, ref in references.items()}
    if not any(math.isclose(r, 1.0, rel_tol=1e-4) for r in last.values()):
        raise Wrong(
            f"the full batches of {global_batch} are right, but on the last, short batch "
            f"({short} examples, {short // replicas} per replica) the summed loss is "
            f"{last['divided by the global batch size']:.4g} times one device's loss divided by "
            f"the global batch size, and {last['the mean over the examples present']:.4g} times "
            "its mean over the examples present: divide by global_batch_size (the argument), or "
            "use tf.nn.compute_average_loss(per_example) without it, not a number of your own."
        )
    raise Wrong(
        f"the losses are right, but after {_STEPS} steps the weights differ from one device's: "
        "the gradient of your loss is not the gradient of the mean over the global batch. "
        "Compute the loss from labels and logits, per example."
    )


def _expect_scalar_loss(compute_loss: Callable[..., Any], replicas: int) -> None:
    import tensorflow as tf

    x, y = _toy_data(_GLOBAL_BATCH, _GLOBAL_BATCH)
    logits = tf.constant(x[:_GLOBAL_BATCH, :5])
    name = f"compute_loss(labels, logits, {_GLOBAL_BATCH})"
    labels = tf.constant(y[:_GLOBAL_BATCH])
    with forbid([f"{__name__}.{f.__name__}" for f in _REFERENCES], _OWN_LOSS):
        loss = call(compute_loss, labels, logits, _GLOBAL_BATCH, name=name)
    if getattr(loss, "shape", None) is None or tuple(loss.shape) != ():
        raise Wrong(
            f"{name} should return one number, a scalar Tensor, but returned {_describe(loss)}: "
            "sum the per-example losses and divide by the global batch."
        )
    # On one device (one replica) every right convention gives the full batch's mean loss; a loss
    # divided by the strategy's replica count written in by hand gives 1/replicas of it.
    mean = float(tf.reduce_mean(_per_example(labels, logits)))
    if math.isclose(float(loss), mean / replicas, rel_tol=1e-4):
        raise Wrong(
            f"{name}, called on one device (one replica) with a full batch, returned 1/{replicas} "
            f"of the batch's mean loss: your loss is also divided by {replicas}, the notebook's "
            "number of replicas, written in by hand. It is right on that count only: divide by "
            "global_batch_size alone, or let tf.nn.compute_average_loss count the replicas."
        )


def _scaling_hint(ratio: float, replicas: int, global_batch: int) -> str:
    per_replica = global_batch // replicas
    seen = (
        f"with a global batch of {global_batch}, the loss summed over replicas is {ratio:.4g} "
        "times one device's mean loss"
    )
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
    divisor = global_batch / ratio if ratio > 0 else math.nan
    if (
        math.isfinite(divisor)
        and divisor > 1.5
        and math.isclose(divisor, round(divisor), rel_tol=1e-3)
    ):
        return (
            f"{seen}: you divided by {round(divisor)}, not by the global_batch_size argument. "
            "Use the argument: the check, like a real loop, passes it, and varies it."
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
    rng = probe_rng()
    drawn_hosts = [f"node-{int(n)}.lab" for n in rng.choice(np.arange(10, 99), 4, replace=False)]
    if drawn_hosts == sorted(drawn_hosts):  # an order that sorting would change
        drawn_hosts.reverse()
    cases = [(list(CLUSTER_HOSTS), CLUSTER_PORT), (drawn_hosts, int(rng.integers(3000, 9000)))]
    for hosts, port in cases:
        clusters = []
        for index in range(len(hosts)):
            name = f"make_tf_config({hosts}, {port}, {index})"
            with forbid("tfcourse.distributed.tf_config", _OWN_TF_CONFIG):
                answer = call(make_tf_config, list(hosts), port, index, name=name)
            config = _as_config(answer, name)
            _expect_cluster(config, name, hosts, port)
            _expect_task(config, name, index)
            clusters.append(config["cluster"])
        if any(cluster != clusters[0] for cluster in clusters):
            raise Wrong(
                "the cluster part differs between machines: every worker must list the same "
                "addresses in the same order; only task.index says which one it is."
            )
    return "the same cluster on every machine, 'host:port' strings, and each task's own index."


_OWN_TF_CONFIG = (
    "make_tf_config calls the course's tfcourse.distributed.tf_config: write the dict yourself "
    "(a 'cluster' with the 'worker' addresses, and this machine's 'task')."
)


def _as_config(value: Any, name: str) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise Wrong(f"{name} returned a str that is not JSON ({error.msg}).") from None
    if not isinstance(value, dict):
        raise Wrong(f"{name} should return a dict (or its JSON), not {_describe(value)}")
    try:
        return json.loads(json.dumps(value))  # what the worker reads back (a tuple: a list)
    except (TypeError, ValueError) as error:
        raise Wrong(f"{name} cannot be written as JSON for the environment: {error}") from None


def _expect_cluster(config: dict[str, Any], name: str, hosts: list[str], port: int) -> None:
    cluster = config.get("cluster")
    if not isinstance(cluster, dict):
        raise Wrong(f"{name} has no 'cluster' dict; it lists the jobs and their addresses.")
    if "workers" in cluster or "chief" in cluster:
        raise Wrong(
            f"{name}'s cluster has the jobs {sorted(cluster)}: use one job named 'worker' "
            "(singular) that lists every machine; worker 0 is the chief."
        )
    extra = sorted(set(cluster) - {"worker"})
    if extra and "worker" in cluster:
        raise Wrong(
            f"{name}'s cluster has the jobs {sorted(cluster)}: this cluster is one job, 'worker', "
            "one per machine; leave out jobs nobody runs."
        )
    workers = cluster.get("worker")
    wanted = [f"{host}:{port}" for host in hosts]
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
    if workers == [f"{host}:{CLUSTER_PORT}" for host in hosts] and port != CLUSTER_PORT:
        raise Wrong(f"{name}: the addresses use port {CLUSTER_PORT}, not the port argument.")
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
    with forbid(["tfcourse.multiworker.write_dir", "tfcourse.multiworker.resume"], _OWN_RESUME):
        _expect_write_dir(write_dir)
        _expect_resume(resume)
    source = _answer_source(write_dir=write_dir, resume=resume)
    with tempfile.TemporaryDirectory() as folder:
        crashed, resumed = _run_twice(Path(folder), source)
    return _compare_runs(crashed, resumed)


_OWN_RESUME = (
    "your answer calls the course's own tfcourse.multiworker.write_dir or resume: write the two "
    "functions yourself."
)


def _as_path_text(value: Any) -> Any:
    """A returned folder as text: a `pathlib.Path` is as good as a string."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _expect_write_dir(write_dir: Callable[..., Any]) -> None:
    rng = probe_rng()
    folder = f"/runs/run-{int(rng.integers(100, 1000))}/ckpt"  # not a name the learner can type in
    for task_type, task_id, who in [
        ("worker", 0, "worker 0 is the chief of a cluster of workers"),
        (None, None, "with no cluster (no TF_CONFIG, task_type None) the one process is the chief"),
        ("chief", 0, "a task of type 'chief' is the chief"),
    ]:
        name = f"write_dir({folder!r}, {task_type!r}, {task_id!r})"
        chief = _as_path_text(call(write_dir, folder, task_type, task_id, name=name))
        if chief != folder:
            raise Wrong(
                f"{name} returned {chief!r}: {who}, and it writes the real checkpoints, to the "
                "directory itself (the directory argument, whatever it is)."
            )
    others = [
        _as_path_text(call(write_dir, folder, "worker", i, name=f"write_dir(..., {i})"))
        for i in (1, 2)
    ]
    if folder in others:
        index = others.index(folder) + 1
        raise Wrong(
            f"write_dir({folder!r}, 'worker', {index}) returned {folder!r}, the chief's folder: "
            "two workers writing the same checkpoint files overwrite each other. Give each other "
            "worker a temp folder."
        )
    if not all(isinstance(o, str) for o in others) or others[0] == others[1]:
        raise Wrong(f"write_dir gave workers 1 and 2 {others}: each needs a folder of its own.")
    for task_type in ("evaluator", "ps"):
        name = f"write_dir({folder!r}, {task_type!r}, 0)"
        if _as_path_text(call(write_dir, folder, task_type, 0, name=name)) == folder:
            raise Wrong(
                f"{name} returned the chief's folder: task 0 of the {task_type!r} job is not the "
                "chief (only worker 0, or the 'chief' task, is)."
            )


def _expect_resume(resume: Callable[..., Any]) -> None:
    """Try `resume` on a checkpoint like the workers': a model, SGD with momentum, and the step."""
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    optimizer.build(model.trainable_variables)
    state = [v for v in optimizer.variables if len(v.shape) > 0]  # the momentum, not the counters

    def fill(step: int, weight: float, momentum: float) -> None:
        checkpoint.step.assign(step)
        for variable in model.weights:
            variable.assign(np.full(variable.shape, weight, np.float32))
        for variable in state:
            variable.assign(np.full(variable.shape, momentum, np.float32))

    checkpoint = tf.train.Checkpoint(
        model=model, optimizer=optimizer, step=tf.Variable(0, dtype=tf.int64)
    )
    with tempfile.TemporaryDirectory() as folder:
        manager = tf.train.CheckpointManager(checkpoint, folder, max_to_keep=2)
        start = call(resume, checkpoint, manager, name="resume(...) with no checkpoint yet")
        if start != 0:
            raise Wrong(f"with no checkpoint yet, resume should return 0, not {_describe(start)}")
        rng = probe_rng()
        first = draw_except(rng, 3, 8, {5})
        steps = (first, draw_except(rng, first + 3, first + 8, {10}))  # not the cluster's 5 and 10
        for step in steps:
            fill(step, step / 10, step / 100)
            manager.save()  # numbered 1 and 2: a file's number is not its step
        fill(0, -1.0, -1.0)
        name = f"resume(...) after saves at steps {steps[0]} and {steps[1]}"
        start = call(resume, checkpoint, manager, name=name)
    weight = float(np.asarray(model.weights[0])[0, 0])
    momentum = float(np.asarray(state[0]).flat[0])
    _expect_restored(start, weight, momentum, steps)


def _expect_restored(start: Any, w: float, momentum: float, steps: tuple[int, int]) -> None:
    first, latest = steps
    if w == -1.0:
        raise Wrong(
            "resume did not restore the checkpoint: the weights are still the fresh ones. Call "
            "checkpoint.restore(manager.latest_checkpoint)."
        )
    if np.isclose(w, first / 10):
        raise Wrong(f"resume restored the step-{first} checkpoint, the oldest: restore the latest.")
    if not np.isclose(momentum, latest / 100):
        raise Wrong(
            "resume restored the model but not the optimizer's momentum: restore the whole "
            "`checkpoint` (model, optimizer and step), not a checkpoint of the model alone."
        )
    if hasattr(start, "numpy"):
        start = start.numpy()
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)):
        raise Wrong(f"resume should return the step as an int, not {_describe(start)}")
    if start == 0:
        raise Wrong(
            f"resume restored the weights but returned 0: training would redo steps 1-{latest} on "
            "the restored weights. Return the saved step (checkpoint.step)."
        )
    if start != latest:
        raise Wrong(
            f"resume returned {start} after a checkpoint at step {latest}; return the step the "
            "checkpoint holds (checkpoint.step), not a number of your own."
        )


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
        if fn.__name__ == "<lambda>":
            parts[-1] = f"{role} = {_lambda_text(fn)}\n"
        elif fn.__name__ != role:
            parts.append(f"{role} = {fn.__name__}\n")
    return "\n\n".join(parts)


def _lambda_text(fn: Callable[..., Any]) -> str:
    """The text of a lambda, cut out of the line that defines it."""
    line = textwrap.dedent(inspect.getsource(fn)).strip()
    try:
        tree = ast.parse(line)
    except SyntaxError:
        tree = None
    lambdas = [node for node in ast.walk(tree) if isinstance(node, ast.Lambda)] if tree else []
    if len(lambdas) != 1:
        raise Wrong(
            f"the workers cannot read the source of {_describe(fn)} on its own: define it with "
            "`def`, or alone on its line (`write_dir = lambda directory, task_type, task_id: ...`)."
        )
    return f"({ast.get_source_segment(line, lambdas[0])})"


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
        if not crash:
            _starts(events)  # workers that went on from different steps fail each other
        _expect_codes(codes, crashed=bool(crash), logs=c.logs())
        runs.append(events)
    return tuple(runs)


def _expect_codes(codes: list[int], *, crashed: bool, logs: list[str]) -> None:
    if any("MirroredVariable" in log and "TypeError" in log for log in logs):
        raise Wrong(
            "in the cluster your resume failed on checkpoint.step, which is a MirroredVariable "
            "there (one copy per replica), not a plain tf.Variable as in the check's first test: "
            "int() cannot read it. Return int(checkpoint.step.numpy())."
        )
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


def _starts(resumed: list[list[dict[str, Any]]]) -> list[Any]:
    """The step each worker went on from after the restart; `Wrong` if they differ."""
    starts = [
        next((e["step"] for e in events if e["event"] in ("resumed", "started")), None)
        for events in resumed
    ]
    if len(set(starts)) > 1:
        listed = ", ".join(f"worker {i} at step {s}" for i, s in enumerate(starts))
        raise Wrong(
            f"after the restart the workers went on from different steps ({listed}): every "
            "worker must restore the chief's latest checkpoint and return its step, or the "
            "all-reduce pairs up different steps."
        )
    return starts


def _compare_runs(crashed: list[list[dict[str, Any]]], resumed: list[list[dict[str, Any]]]) -> str:
    start = _starts(resumed)[0]
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
