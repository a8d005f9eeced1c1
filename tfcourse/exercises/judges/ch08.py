"""Judges of chapter 08's checks (probes in `tfcourse.exercises.ch08`)."""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import numpy as np

from tfcourse.exercises._framework import Wrong
from tfcourse.exercises.ch08 import (
    _GLOBAL_BATCH,
    _LEARNING_RATE,
    _STEPS,
    CLUSTER_PORT,
    WRITE_DIR_CALLS,
    _loss_cases,
    _one_device_batch,
    _toy_data,
    _toy_model,
    batch_calls,
    resume_steps,
    tf_config_calls,
    write_dir_folder,
    write_dir_name,
)
from tfcourse.exercises.judges._observed import _MALFORMED, array, field, items, nth, settled


def _plain(observed: Any) -> tuple[str, int | None, float | None, str | None]:
    """A value the learner's code returned (`ch08._plain`): its description, its value if an int,
    its number if another real scalar, and its repr if a float."""
    described = field(observed, "described", str)
    as_int, number, as_float = (observed.get(key) for key in ("int", "number", "float"))
    if (
        (as_int is not None and (isinstance(as_int, bool) or not isinstance(as_int, int)))
        or (number is not None and (isinstance(number, bool) or not isinstance(number, float)))
        or (as_float is not None and not isinstance(as_float, str))
    ):
        raise Wrong(_MALFORMED.format("a returned value of the wrong type"))
    return described, as_int, number, as_float


# 08.1 -------------------------------------------------------------------------------------------
def per_replica_batch(observed: Any, seed: int) -> str:
    """08.1: global batch // replicas, an int, for the even calls; a ValueError for the others."""
    even, uneven = batch_calls(seed)
    seen_even = items(field(observed, "even", list), kind=dict)
    seen_uneven = items(field(observed, "uneven", list), kind=dict)
    for index, (global_batch, replicas) in enumerate(even):
        name = f"per_replica_batch_size({global_batch}, {replicas})"
        outcome = nth(seen_even, index)
        if "raised" in outcome:
            raise Wrong(field(outcome, "raised", str))
        got = _plain(field(outcome, "returned", dict))
        _expect_batch(got, global_batch // replicas, global_batch, replicas, name=name)
    for index, (global_batch, replicas) in enumerate(uneven):
        _expect_value_error(nth(seen_uneven, index), global_batch, replicas)
    return (
        "global batch // replicas, as an int, and a ValueError when replicas cannot share the "
        "global batch evenly."
    )


def _expect_value_error(outcome: dict[str, Any], global_batch: int, replicas: int) -> None:
    name = f"per_replica_batch_size({global_batch}, {replicas})"
    if "raised" in outcome:
        if field(outcome, "value_error", bool):
            return
        raise Wrong(
            f"{field(outcome, 'raised', str).rstrip('.')}: raise ValueError itself (not another "
            f"exception whose message names it) when {replicas} replicas cannot share "
            f"{global_batch} examples."
        )
    described = _plain(field(outcome, "returned", dict))[0]
    raise Wrong(
        f"{name} returned {described}: {replicas} replicas cannot share {global_batch} "
        "examples evenly, and a silently smaller global batch changes the training. Raise "
        "ValueError when global_batch_size % num_replicas != 0."
    )


def _expect_batch(
    returned: tuple[str, int | None, float | None, str | None],
    wanted: int,
    global_batch: int,
    replicas: int,
    *,
    name: str,
) -> None:
    described, got, number, as_float = returned
    if as_float is not None and number == wanted:
        raise Wrong(f"{name} returned {as_float}, a float: a batch size is an int. Use //.")
    if got is None:
        raise Wrong(f"{name} should return an int, but returned {described}")
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
    raise Wrong(f"{name} returned {got}, expected {wanted} ({global_batch} / {replicas}).")


# 08.2 -------------------------------------------------------------------------------------------
#: The right treatments of a short last batch, each as the weight of every example in the loss.
_DIVIDED = "divided by the global batch size"
_PRESENT = "the mean over the examples present"
_REPLICA_MEANS = "each replica's mean over the replicas (TensorFlow's and Keras's default)"
_CONVENTIONS = (_DIVIDED, _PRESENT, _REPLICA_MEANS)
#: The most replicas a judge believes (a strategy of the notebook has 2).
_MOST_REPLICAS = 64


def loss_scaling(observed: Any, seed: int) -> str:
    """08.2: on the strategy's replicas, the summed loss and the weights after `_STEPS` SGD steps
    match one device's, for two global batch sizes, with either convention for the short batch."""
    replicas = field(observed, "replicas", int)
    if isinstance(replicas, bool) or not 2 <= replicas <= _MOST_REPLICAS:
        raise Wrong(_MALFORMED.format("'replicas' out of range"))
    _expect_scalar_loss(field(observed, "one_device", dict), replicas)
    runs = items(field(observed, "runs", list))
    used = set()
    for index, (global_batch, short) in enumerate(_loss_cases(replicas, seed)):
        used.add(_expect_matches_one_device(nth(runs, index), replicas, global_batch, short))
    convention = " or ".join(sorted(used))
    return (
        f"on {replicas} replicas, the summed loss equals one device's mean loss and the weights "
        f"match it after {_STEPS} SGD steps (within 1e-5), for two global batch sizes; on the "
        f"short last batch, {convention}."
    )


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _expect_scalar_loss(one: dict[str, Any], replicas: int) -> None:
    name = f"compute_loss(labels, logits, {_GLOBAL_BATCH})"
    shape = field(one, "shape", (list, type(None)))
    if shape is None or shape != []:
        raise Wrong(
            f"{name} should return one number, a scalar Tensor, but returned "
            f"{field(one, 'described', str)}: sum the per-example losses and divide by the "
            "global batch."
        )
    value = settled(field(one, "value"))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Wrong(_MALFORMED.format("the loss is not a number"))
    # On one device (one replica) every right convention gives the full batch's mean loss; a loss
    # divided by the strategy's replica count written in by hand gives 1/replicas of it.
    labels, logits = _one_device_batch()
    log_probs = _log_softmax(logits.astype(np.float64))
    mean = float(-log_probs[np.arange(len(labels)), labels].mean())
    if math.isclose(value, mean / replicas, rel_tol=1e-4):
        raise Wrong(
            f"{name}, called on one device (one replica) with a full batch, returned 1/{replicas} "
            f"of the batch's mean loss: your loss is also divided by {replicas}, the notebook's "
            "number of replicas, written in by hand. It is right on that count only: divide by "
            "global_batch_size alone, or let tf.nn.compute_average_loss count the replicas."
        )


def _expect_matches_one_device(run: Any, replicas: int, global_batch: int, short: int) -> str:
    """The convention whose one-device training the answer's run matches; else `Wrong` that says
    how it differs."""
    values = array(field(run, "losses"))
    if values.shape != (_STEPS,) or values.dtype.kind not in "iuf":
        raise Wrong(_MALFORMED.format(f"expected {_STEPS} losses"))
    losses = [float(value) for value in values]
    weights = [array(w) for w in items(field(run, "weights", list), 2)]
    if [w.shape for w in weights] != [(12, 5), (5,)] or any(w.dtype.kind == "c" for w in weights):
        raise Wrong(_MALFORMED.format("expected a kernel (12, 5) and a bias (5,)"))
    if not np.isfinite(losses).all():
        raise Wrong(f"training with your compute_loss gave the losses {losses}: not finite.")
    references = {
        name: _reference_run(name, replicas, global_batch, short) for name in _CONVENTIONS
    }
    ref_losses, _ = references[_DIVIDED]
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
            f"{last[_DIVIDED]:.4g} times one device's loss divided by the global batch size, and "
            f"{last[_PRESENT]:.4g} times its mean over the examples present: divide by "
            "global_batch_size (the argument), or use tf.nn.compute_average_loss(per_example) "
            "without it, not a number of your own."
        )
    raise Wrong(
        f"the losses are right, but after {_STEPS} steps the weights differ from one device's: "
        "the gradient of your loss is not the gradient of the mean over the global batch. "
        "Compute the loss from labels and logits, per example."
    )


@functools.cache
def _initial_weights() -> tuple[np.ndarray, ...]:
    """The toy model's kernel and bias before training (`ch08._toy_model`), in float64."""
    return tuple(np.asarray(w.numpy(), np.float64) for w in _toy_model().trainable_variables)


def _replica_split(examples: int, replicas: int, global_batch: int) -> list[int]:
    """How `tf.distribute` (auto-sharding off) splits a batch of `examples` between the replicas:
    it cuts the global batch into per-replica batches that differ by at most one, and fills them
    in turn, so a short batch leaves the last replicas fewer examples, or none."""
    sizes = [global_batch // replicas + (i < global_batch % replicas) for i in range(replicas)]
    split = []
    for size in sizes:
        split.append(min(size, examples - sum(split)))
    return split


def _example_weights(convention: str, examples: int, replicas: int, global_batch: int) -> Any:
    """Each example's weight in the summed loss of one step, under `convention`."""
    if convention == _DIVIDED:
        return np.full(examples, 1 / global_batch)
    if convention == _PRESENT:
        return np.full(examples, 1 / examples)
    split = _replica_split(examples, replicas, global_batch)
    return np.concatenate([np.full(size, 1 / (size * replicas)) for size in split if size])


@functools.lru_cache(maxsize=64)
def _reference_run(
    convention: str, replicas: int, global_batch: int, short: int
) -> tuple[list[float], list[np.ndarray]]:
    """`ch08._toy_run`'s training with a right loss of `convention`, in NumPy: with gradients
    summed over replicas, one step is one step of SGD on the sum of the examples' weighted losses.
    Returns the losses (summed over replicas) and the final kernel and bias."""
    x, y = _toy_data(global_batch, short)
    kernel, bias = _initial_weights()
    losses = []
    for start in range(0, len(x), global_batch):
        inputs = x[start : start + global_batch].astype(np.float64)
        labels = y[start : start + global_batch]
        log_probs = _log_softmax(inputs @ kernel + bias)
        scale = _example_weights(convention, len(labels), replicas, global_batch)
        losses.append(float(scale @ -log_probs[np.arange(len(labels)), labels]))
        grad = np.exp(log_probs)
        grad[np.arange(len(labels)), labels] -= 1.0
        grad *= scale[:, None]
        kernel = kernel - _LEARNING_RATE * inputs.T @ grad
        bias = bias - _LEARNING_RATE * grad.sum(axis=0)
    return losses, [kernel, bias]


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
def tf_config(observed: Any, seed: int) -> str:
    """08.3: every machine's TF_CONFIG has the same cluster, 'host:port' strings in the order
    given, and its own task."""
    seen = items(observed)
    clusters: list[Any] = []
    for position, (hosts, port, index) in enumerate(tf_config_calls(seed)):
        name = f"make_tf_config({hosts}, {port}, {index})"
        config = _config(nth(seen, position))
        _expect_cluster(config, name, hosts, port)
        _expect_task(config, name, index)
        clusters = [*clusters, config["cluster"]] if index else [config["cluster"]]
        if index == len(hosts) - 1 and any(cluster != clusters[0] for cluster in clusters):
            raise Wrong(
                "the cluster part differs between machines: every worker must list the same "
                "addresses in the same order; only task.index says which one it is."
            )
    return "the same cluster on every machine, 'host:port' strings, and each task's own index."


def _config(text: Any) -> dict[str, Any]:
    """A config as the JSON text the probe sent."""
    try:
        config = json.loads(text) if isinstance(text, str) else None
    except (ValueError, RecursionError):
        config = None
    if not isinstance(config, dict):
        raise Wrong(_MALFORMED.format("a config that is not a JSON object"))
    return config


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
#: write_dir's calls (`WRITE_DIR_CALLS`): those of a chief, of two other workers, of other jobs.
_CHIEFS, _OTHERS, _NOT_CHIEFS = WRITE_DIR_CALLS[:3], WRITE_DIR_CALLS[3:5], WRITE_DIR_CALLS[5:]
#: Why each of `_CHIEFS` is the chief.
_WHO = {
    ("worker", 0): "worker 0 is the chief of a cluster of workers",
    (None, None): "with no cluster (no TF_CONFIG, task_type None) the one process is the chief",
    ("chief", 0): "a task of type 'chief' is the chief",
}
#: The exit status of the worker the first run kills, and the step the restart goes on from.
_KILLED, _RESUMED_AT = -9, 10


def resume(observed: Any, seed: int) -> str:
    """08.4: write_dir and resume pass the quick tests, and in the cluster, killed at step 12 and
    restarted, training goes on from the last checkpoint with the same losses."""
    resume_before_cluster(observed, seed)
    cluster = settled(field(observed, "cluster"))
    if cluster is None:
        raise Wrong(_MALFORMED.format("no run of the cluster"))
    runs = items(cluster)
    crashed = _run(nth(runs, 0))
    _expect_codes(crashed, crashed=True)
    resumed = _run(nth(runs, 1))
    _starts(resumed["events"])  # workers that went on from different steps fail each other
    _expect_codes(resumed, crashed=False)
    return _compare_runs(crashed["events"], resumed["events"])


def resume_before_cluster(observed: Any, seed: int) -> None:
    """08.4's quick tests, of write_dir and of resume, that come before the cluster; `Wrong` at
    the first mistake. The probe asks them too, where this module is installed, so that a
    wrong answer does not wait for the cluster."""
    folder = write_dir_folder(seed)
    seen = items(field(observed, "write_dir", list))
    for position, (task_type, task_id) in enumerate(_CHIEFS):
        chief, who = _folder_at(seen, position), _WHO[task_type, task_id]
        if chief != folder:
            raise Wrong(
                f"{write_dir_name(folder, task_type, task_id)} returned {_shown(chief)}: {who}, "
                "and it writes the real checkpoints, to the directory itself (the directory "
                "argument, whatever it is)."
            )
    others = [_folder_at(seen, len(_CHIEFS) + i) for i in range(len(_OTHERS))]
    if folder in others:
        index = others.index(folder) + 1
        raise Wrong(
            f"write_dir({folder!r}, 'worker', {index}) returned {folder!r}, the chief's folder: "
            "two workers writing the same checkpoint files overwrite each other. Give each other "
            "worker a temp folder."
        )
    if not all(isinstance(o, str) for o in others) or others[0] == others[1]:
        listed = ", ".join(_shown(o) for o in others)
        raise Wrong(f"write_dir gave workers 1 and 2 [{listed}]: each needs a folder of its own.")
    for position, (task_type, task_id) in enumerate(_NOT_CHIEFS, len(_CHIEFS) + len(_OTHERS)):
        if _folder_at(seen, position) == folder:
            raise Wrong(
                f"{write_dir_name(folder, task_type, task_id)} returned the chief's folder: task "
                f"0 of the {task_type!r} job is not the chief (only worker 0, or the 'chief' "
                "task, is)."
            )
    _expect_resume(field(observed, "resume"), resume_steps(seed))


def _folder_at(seen: list[Any], position: int) -> Any:
    """What the `position`-th call of write_dir returned: a str, or ``{"repr": ...}``."""
    returned = nth(seen, position)
    _shown(returned)
    return returned


def _shown(returned: Any) -> str:
    """What write_dir returned, as Python shows it: a str, or the repr the probe sent."""
    if isinstance(returned, str):
        return repr(returned)
    return str(field(returned, "repr", str))


def _expect_resume(observed: Any, steps: tuple[int, int]) -> None:
    seen = settled(observed)
    described, as_int, number, _ = _plain(field(seen, "empty", dict))
    if not (as_int == 0 if as_int is not None else number == 0.0):
        raise Wrong(f"with no checkpoint yet, resume should return 0, not {described}")
    saved = settled(field(seen, "saved"))
    weight, momentum = (field(saved, key, (int, float)) for key in ("weight", "momentum"))
    _expect_restored(field(saved, "start"), weight, momentum, steps)


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
    described, step, _, _ = _plain(settled(start))
    if step is None:
        raise Wrong(f"resume should return the step as an int, not {described}")
    if step == 0:
        raise Wrong(
            f"resume restored the weights but returned 0: training would redo steps 1-{latest} on "
            "the restored weights. Return the saved step (checkpoint.step)."
        )
    if step != latest:
        raise Wrong(
            f"resume returned {step} after a checkpoint at step {latest}; return the step the "
            "checkpoint holds (checkpoint.step), not a number of your own."
        )


def _run(observed: Any) -> dict[str, Any]:
    """One run of the cluster: its exit codes, each worker's events and the end of its log."""
    codes = items(field(observed, "codes", list), 2, kind=int)
    logs = items(field(observed, "logs", list), 2, kind=str)
    events = [
        [_event(e) for e in items(worker, kind=dict)]
        for worker in items(field(observed, "events", list), 2)
    ]
    return {"codes": codes, "logs": logs, "events": events}


def _event(event: dict[str, Any]) -> dict[str, Any]:
    kinds = {"event": str, "step": (int, float), "loss": (int, float)}
    if any(key not in kinds or not isinstance(event[key], kinds[key]) for key in event):
        raise Wrong(_MALFORMED.format("an event with other fields"))
    if event.get("event") == "step" and not {"step", "loss"} <= set(event):
        raise Wrong(_MALFORMED.format("a step without its loss"))
    return event


def _expect_codes(run: dict[str, Any], *, crashed: bool) -> None:
    codes, logs = run["codes"], run["logs"]
    if any("MirroredVariable" in log and "TypeError" in log for log in logs):
        raise Wrong(
            "in the cluster your resume failed on checkpoint.step, which is a MirroredVariable "
            "there (one copy per replica), not a plain tf.Variable as in the check's first test: "
            "int() cannot read it. Return int(checkpoint.step.numpy())."
        )
    if crashed and codes[1] != _KILLED:
        tail = " | ".join(logs[1].strip().splitlines()[-3:])
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
        next((e.get("step") for e in events if e.get("event") in ("resumed", "started")), None)
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
    if start != _RESUMED_AT:
        raise Wrong(
            f"after the restart, training went on from step {start}, not 10, the last "
            "checkpoint before the crash at step 12."
        )
    before = {e["step"]: e["loss"] for e in crashed[0] if e.get("event") == "step"}
    after = {e["step"]: e["loss"] for e in resumed[0] if e.get("event") == "step"}
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
