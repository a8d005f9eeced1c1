"""Self-checks for the exercises of `08_distributed`: the probes.

Each check is in two parts (see `tfcourse.exercises._split`): the probe here runs the learner's
answer and returns what it saw; the judge, in `tfcourse.exercises.judges.ch08`, decides. Checks
08.2 and 08.4 take two arguments; their probes get them as one pair.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tfcourse.exercises._framework import NotAttempted, Wrong, _describe
from tfcourse.exercises._learner import call, forbid, learner_code
from tfcourse.exercises._probes import draw_except, probe_rng
from tfcourse.exercises._split import (
    JUDGES,
    UNWRITTEN,
    decode,
    deferred,
    encode,
    two_part,
    until_failure,
)

__all__ = [
    "CLUSTER_HOSTS",
    "CLUSTER_PORT",
    "check_loss_scaling",
    "check_per_replica_batch",
    "check_resume",
    "check_tf_config",
]


def _repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # a learner's class with a broken __repr__
        return object.__repr__(value)


def _plain(value: Any) -> dict[str, Any]:
    """A value the learner's code returned, as plain data: its description (`_describe`), its
    value if it is an int (not a bool), its number if it is another real scalar, and its repr if
    it is a float."""
    seen: dict[str, Any] = {"described": _describe(value)}
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        seen["int"] = int(value)
    elif isinstance(value, (float, bool, np.floating, np.bool_)):
        seen["number"] = float(value)
        if isinstance(value, float):
            seen["float"] = _repr(value)
    return seen


# 08.1 -------------------------------------------------------------------------------------------
#: 08.1's fixed calls: (global batch, replicas).
_BATCH_CASES = ((64, 2), (96, 3), (8, 8), (256, 1), (1024, 16))


def batch_calls(seed: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """08.1's calls, (global batch, replicas): those whose replicas share the global batch evenly
    (the fixed ones, then one drawn from `seed`, which a table of answers misses), and those whose
    replicas cannot (the last has fewer examples than replicas: some would get none)."""
    rng = np.random.default_rng(seed)
    drawn_replicas, share = int(rng.integers(3, 13)), int(rng.integers(5, 61))
    if (share * drawn_replicas, drawn_replicas) in _BATCH_CASES:
        share += 1  # one of the fixed cases (96 over 3): a table of them would pass
    even = [*_BATCH_CASES, (share * drawn_replicas, drawn_replicas)]
    drawn = int(rng.choice([3, 4, 6, 8]))
    remainder = int(rng.integers(1, drawn))
    uneven = [(10, 4), (7, 2), (drawn * int(rng.integers(5, 40)) + remainder, drawn)]
    uneven.append((remainder, drawn))
    return even, uneven


@two_part("08.1", "the per-replica batch")
def check_per_replica_batch(
    per_replica_batch_size: Callable[[int, int], Any], seed: int
) -> dict[str, list[dict[str, Any]]]:
    """Check `per_replica_batch_size(global_batch_size, num_replicas)`: the examples each replica
    takes in one step, as an int, and a `ValueError` when the global batch does not divide."""
    even, uneven = batch_calls(seed)
    seen: dict[str, list[dict[str, Any]]] = {"even": [], "uneven": []}
    for group, calls in (("even", even), ("uneven", uneven)):
        for global_batch, replicas in calls:
            name = f"per_replica_batch_size({global_batch}, {replicas})"
            outcome = _outcome_of(per_replica_batch_size, global_batch, replicas, name=name)
            seen[group].append(outcome)
            raised = "raised" in outcome and (group == "even" or not outcome["value_error"])
            if raised or UNWRITTEN in outcome:
                return seen  # the judge stops there: more calls could only cost time
    return seen


def _outcome_of(fn: Callable[..., Any], *args: Any, name: str) -> dict[str, Any]:
    """What one call did: what it returned (`_plain`), or the failure `call` reports and whether
    the learner's code raised a ValueError itself."""
    try:
        return {"returned": _plain(call(fn, *args, name=name))}
    except Wrong as wrong:
        return {"raised": str(wrong), "value_error": isinstance(wrong.__cause__, ValueError)}
    except NotAttempted:
        return {UNWRITTEN: True}


# 08.2 -------------------------------------------------------------------------------------------
_GLOBAL_BATCH, _STEPS, _LEARNING_RATE = 16, 4, 0.5


def _toy_data(global_batch: int, short: int) -> tuple[np.ndarray, np.ndarray]:
    """`_STEPS - 1` full batches of `global_batch` examples, then a short one of `short`."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=(global_batch * (_STEPS - 1) + short, 12)).astype(np.float32)
    y = rng.integers(0, 5, size=len(x)).astype(np.int64)
    return x, y


def _one_device_batch() -> tuple[np.ndarray, np.ndarray]:
    """The labels and logits of 08.2's first call of compute_loss, on one device."""
    x, y = _toy_data(_GLOBAL_BATCH, _GLOBAL_BATCH)
    return y[:_GLOBAL_BATCH], x[:_GLOBAL_BATCH, :5]


def _toy_model() -> Any:
    """The one-layer model 08.2 trains, with its initial weights (the same on every call)."""
    import keras

    keras.utils.set_random_seed(8)
    return keras.Sequential([keras.Input((12,)), keras.layers.Dense(5)])


def _toy_run(
    strategy: Any, compute_loss: Callable[..., Any], global_batch: int, short: int
) -> tuple[list[float], list[Any]]:
    """`_STEPS` steps of SGD on a one-layer model under `strategy`: losses and final weights."""
    import keras
    import tensorflow as tf

    x, y = _toy_data(global_batch, short)
    with strategy.scope():
        model = _toy_model()
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


_OWN_LOSS = (
    "compute_loss calls the check's own reference loss (tfcourse.exercises.ch08): compute the "
    "per-example losses and scale them yourself."
)


def _per_example(*args: Any, **kwargs: Any) -> Any:
    """Where the check's reference losses were: calling one now fails, as wrapping it always did
    (the references are in the judge, which the student edition leaves out)."""
    raise Wrong(_OWN_LOSS)


_divided_by_global_batch = _mean_over_present = _replica_means = _per_example

#: The names an answer must not call: those above, and the judge's module (where installed).
_REFERENCES = (_per_example,)
_FORBIDDEN_LOSSES = [f"{__name__}._per_example", f"{JUDGES}.{__name__.rsplit('.', 1)[-1]}"]


def _loss_cases(replicas: int, seed: int | None = None) -> list[tuple[int, int]]:
    """(global batch, short last batch) pairs. The first is the notebook's batch with a short last
    batch of 10; the second is drawn from `seed` (from `probe_rng` when None). With auto-sharding
    off (as `_toy_run` has it), `tf.distribute` fills the replicas in turn (10 over 2 replicas of
    8: 8 and 2; by default it would split evenly), so each short batch leaves every replica some
    examples: with none, a Keras loss object fails to trace."""
    rng = probe_rng() if seed is None else np.random.default_rng(seed)
    cases = [(_GLOBAL_BATCH, _GLOBAL_BATCH - 6)]
    # not the notebook's batch, nor half of it: a divisor of 16 would then read as "/ replicas"
    per_replica = draw_except(rng, 3, 12, {_GLOBAL_BATCH // replicas, _GLOBAL_BATCH // replicas**2})
    short = int(rng.integers(per_replica * (replicas - 1) + 1, per_replica * replicas))
    cases.append((per_replica * replicas, short))
    return cases


@two_part("08.2", "fix the loss scaling of a custom loop")
def check_loss_scaling(compute_loss: Any, strategy: Any = None, *, seed: int) -> dict[str, Any]:
    """Check `compute_loss(labels, logits, global_batch_size)`, used inside `strategy.run`, as
    ``check_loss_scaling(compute_loss, strategy)``: with gradients summed over replicas, training
    must match one device on the same global batches, a short last batch included (either
    convention for it), for two global batch sizes.

    Observes the loss of one call on one device, and for each of `_loss_cases`, the losses and the
    final weights of `_toy_run` with the answer under `strategy`.
    """
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
    one_device = _loss_on_one_device(compute_loss)
    runs = until_failure(
        [
            lambda case=case: _run_under(strategy, compute_loss, *case)
            for case in _loss_cases(replicas, seed)
        ],
        unwritten=True,
    )
    return {"replicas": replicas, "one_device": one_device, "runs": runs}


def _loss_on_one_device(compute_loss: Callable[..., Any]) -> dict[str, Any]:
    """What compute_loss returns for one full batch on one device: its description, its shape
    (None without one) and, for a scalar, its value."""
    import tensorflow as tf

    labels, logits = _one_device_batch()
    name = f"compute_loss(labels, logits, {_GLOBAL_BATCH})"
    with forbid(_FORBIDDEN_LOSSES, _OWN_LOSS):
        loss = call(
            compute_loss, tf.constant(labels), tf.constant(logits), _GLOBAL_BATCH, name=name
        )
    with learner_code(f"reading the shape of what {name} returned"):
        shape = getattr(loss, "shape", None)
        dims = None if shape is None else [None if d is None else int(d) for d in tuple(shape)]
    seen: dict[str, Any] = {"described": _describe(loss), "shape": dims, "value": None}
    if dims == []:
        seen["value"] = deferred(lambda: _number(loss, name), unwritten=True)
    return seen


def _number(value: Any, name: str) -> float:
    with learner_code(f"reading what {name} returned as a number"):
        return float(value)


def _run_under(
    strategy: Any, compute_loss: Callable[..., Any], global_batch: int, short: int
) -> dict[str, Any]:
    with learner_code("training with your compute_loss under the strategy", seconds=60):
        losses, weights = _toy_run(strategy, compute_loss, global_batch, short)
    return {
        "losses": np.asarray(losses, np.float64),
        "weights": [np.asarray(w) for w in weights],
    }


# 08.3 -------------------------------------------------------------------------------------------
#: Exercise 08.3: the machines of the cluster, and the port each worker listens on.
CLUSTER_HOSTS = ("10.1.0.11", "10.1.0.12", "10.1.0.13")
CLUSTER_PORT = 2222


def tf_config_cases(seed: int) -> list[tuple[list[str], int]]:
    """08.3's clusters, (hosts, port): the notebook's, then one drawn from `seed`, its hosts in an
    order that sorting would change."""
    rng = np.random.default_rng(seed)
    drawn_hosts = [f"node-{int(n)}.lab" for n in rng.choice(np.arange(10, 99), 4, replace=False)]
    if drawn_hosts == sorted(drawn_hosts):
        drawn_hosts.reverse()
    return [(list(CLUSTER_HOSTS), CLUSTER_PORT), (drawn_hosts, int(rng.integers(3000, 9000)))]


@two_part("08.3", "write the TF_CONFIG of a cluster")
def check_tf_config(make_tf_config: Callable[[list[str], int, int], Any], seed: int) -> list[Any]:
    """Check `make_tf_config(hosts, port, index)`: the `TF_CONFIG` (a dict or its JSON) of worker
    `index` of a cluster of one worker per host, all on `port`, worker 0 the chief.

    Observes, for each of `tf_config_calls`, the config as the JSON text a worker reads back.
    """
    return until_failure(
        [
            lambda call_=call_: _tf_config_of(make_tf_config, *call_)
            for call_ in tf_config_calls(seed)
        ],
        unwritten=True,
    )


def tf_config_calls(seed: int) -> list[tuple[list[str], int, int]]:
    """08.3's calls, (hosts, port, index): every index of each of `tf_config_cases`."""
    return [
        (hosts, port, index) for hosts, port in tf_config_cases(seed) for index in range(len(hosts))
    ]


_OWN_TF_CONFIG = (
    "make_tf_config calls the course's tfcourse.distributed.tf_config: write the dict yourself "
    "(a 'cluster' with the 'worker' addresses, and this machine's 'task')."
)


def _tf_config_of(
    make_tf_config: Callable[[list[str], int, int], Any], hosts: list[str], port: int, index: int
) -> str:
    name = f"make_tf_config({hosts}, {port}, {index})"
    with forbid("tfcourse.distributed.tf_config", _OWN_TF_CONFIG):
        answer = call(make_tf_config, list(hosts), port, index, name=name)
    return _as_config_json(answer, name)


def _as_config_json(value: Any, name: str) -> str:
    """The answer as the JSON text a worker reads from `TF_CONFIG`; `Wrong` if it cannot be."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise Wrong(f"{name} returned a str that is not JSON ({error.msg}).") from None
    if not isinstance(value, dict):
        raise Wrong(f"{name} should return a dict (or its JSON), not {_describe(value)}")
    try:
        return json.dumps(value)  # what the worker reads back (a tuple: a list)
    except (TypeError, ValueError) as error:
        raise Wrong(f"{name} cannot be written as JSON for the environment: {error}") from None


# 08.4 -------------------------------------------------------------------------------------------
#: 08.4's calls of write_dir: (task_type, task_id), after the directory.
WRITE_DIR_CALLS = (
    ("worker", 0),
    (None, None),
    ("chief", 0),
    ("worker", 1),
    ("worker", 2),
    ("evaluator", 0),
    ("ps", 0),
)


def write_dir_folder(seed: int) -> str:
    """The directory 08.4 passes write_dir: not a name the learner can type in."""
    return f"/runs/run-{int(np.random.default_rng(seed).integers(100, 1000))}/ckpt"


def write_dir_name(folder: str, task_type: str | None, task_id: int | None) -> str:
    """How messages name one call of write_dir."""
    if task_type == "worker" and task_id in (1, 2):
        return f"write_dir(..., {task_id})"
    return f"write_dir({folder!r}, {task_type!r}, {task_id!r})"


def resume_steps(seed: int) -> tuple[int, int]:
    """The steps of 08.4's two saved checkpoints, drawn from `seed`: not the cluster's 5 and 10."""
    rng = np.random.default_rng(seed)
    first = draw_except(rng, 3, 8, {5})
    return first, draw_except(rng, first + 3, first + 8, {10})


@two_part("08.4", "resume multi-worker training after a worker is killed")
def check_resume(write_dir: Any, resume: Any = None, *, seed: int) -> dict[str, Any]:
    """Check `write_dir(directory, task_type, task_id)` and `resume(checkpoint, manager)`, as
    ``check_resume(write_dir, resume)``: first here, then in a real 2-worker cluster whose worker 1
    is killed at step 12 and restarted.

    Observes what write_dir returned for `WRITE_DIR_CALLS`; what resume returned with no
    checkpoint, and after two saves, with the weights and the momentum it restored; and the exit
    codes, events and log ends of the cluster's two runs. Where the course's judge is installed
    and already fails the answer on the rest, the cluster does not run (see `_wrong_already`).
    """
    if write_dir is None or resume is None:
        raise NotAttempted
    folder = write_dir_folder(seed)
    with forbid(["tfcourse.multiworker.write_dir", "tfcourse.multiworker.resume"], _OWN_RESUME):
        seen: dict[str, Any] = {
            "write_dir": until_failure(
                [
                    lambda args=args: _folder_of(write_dir, folder, *args)
                    for args in WRITE_DIR_CALLS
                ],
                unwritten=True,
            ),
            "resume": deferred(lambda: _observe_resume(resume, resume_steps(seed)), unwritten=True),
        }
    if _wrong_already(seen, seed):
        seen["cluster"] = None
    else:
        seen["cluster"] = deferred(lambda: _observe_cluster(write_dir, resume), unwritten=True)
    return seen


_OWN_RESUME = (
    "your answer calls the course's own tfcourse.multiworker.write_dir or resume: write the two "
    "functions yourself."
)


def _folder_of(
    write_dir: Callable[..., Any], folder: str, task_type: str | None, task_id: int | None
) -> Any:
    """What write_dir returned, as a str (a `pathlib.Path` is as good), or ``{"repr": ...}``."""
    name = write_dir_name(folder, task_type, task_id)
    value = call(write_dir, folder, task_type, task_id, name=name)
    text = os.fspath(value) if isinstance(value, os.PathLike) else value
    return str(text) if isinstance(text, str) else {"repr": _repr(text)}


def _observe_resume(resume: Callable[..., Any], steps: tuple[int, int]) -> dict[str, Any]:
    """Try `resume` on a checkpoint like the workers': a model, SGD with momentum, and the step.

    First with no checkpoint; then after saves at `steps` (weights step / 10, momentum
    step / 100) and a reset of everything to -1.
    """
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
        name = "resume(...) with no checkpoint yet"
        start = call(resume, checkpoint, manager, name=name)
        seen = {"empty": {**_plain(_value_of(start, name)), "described": _describe(start)}}

        def after_saves() -> dict[str, Any]:
            for step in steps:
                fill(step, step / 10, step / 100)
                manager.save()  # numbered 1 and 2: a file's number is not its step
            fill(0, -1.0, -1.0)
            name = f"resume(...) after saves at steps {steps[0]} and {steps[1]}"
            start = call(resume, checkpoint, manager, name=name)
            return {
                "weight": float(np.asarray(model.weights[0])[0, 0]),
                "momentum": float(np.asarray(state[0]).flat[0]),
                "start": deferred(lambda: _plain(_value_of(start, name)), unwritten=True),
            }

        seen["saved"] = deferred(after_saves, unwritten=True)
    return seen


def _value_of(value: Any, name: str) -> Any:
    """A returned Tensor or Variable as its NumPy value; anything else as it is."""
    if hasattr(value, "numpy"):
        with learner_code(f"reading the value of what {name} returned"):
            return value.numpy()
    return value


def _wrong_already(seen: dict[str, Any], seed: int) -> bool:
    """Whether the course's judge, where this installation has it, fails the answer on `seen`.

    The cluster takes a minute or more, and the judge looks at it only when write_dir and resume
    pass the quick tests first; with the judge at hand (the full course, a practice edition) a
    wrong answer is told at once. Without it (the student edition, a graded kernel) the cluster
    always runs: skipping it could only leave the judge less to see, never pass an answer.
    """
    if check_resume.judge() is None:
        return False
    judges = importlib.import_module(check_resume.judge_name.partition(":")[0])
    try:
        judges.resume_before_cluster(decode(json.loads(json.dumps(encode(seen)))), seed)
    except (Wrong, NotAttempted):
        return True
    return False


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


#: The cluster's runs (`tfcourse.multiworker`): 16 steps; in the first, worker 1 dies at step 12.
CLUSTER_STEPS, CRASH_AT = 16, 12
#: The most characters of each worker's log that a probe keeps (its end).
LOG_TAIL = 100_000


def _observe_cluster(write_dir: Callable[..., Any], resume: Callable[..., Any]) -> list[Any]:
    """Run the 2-worker cluster with the learner's functions twice: killed at step `CRASH_AT`,
    then restarted. Each run's exit codes, each worker's events and the end of its log."""
    source = _answer_source(write_dir=write_dir, resume=resume)
    with tempfile.TemporaryDirectory() as folder:
        return until_failure(
            [
                lambda crash=crash: _run_cluster(Path(folder), source, crash)
                for crash in (["--crash-at", CRASH_AT], [])
            ],
            unwritten=True,
        )


def _run_cluster(folder: Path, source: str, crash: list[Any]) -> dict[str, Any]:
    from tfcourse import distributed

    answer = folder / "answer.py"
    answer.write_text(source, encoding="utf-8")
    args = ["--checkpoint-dir", folder / "ckpt", "--steps", CLUSTER_STEPS, "--answer", answer]
    command = distributed.python_module("tfcourse.multiworker", *args, *crash)
    run = folder / f"run{0 if crash else 1}"
    with learner_code("the 2-worker cluster running your functions", seconds=150):
        with distributed.Cluster(command, folder=run, timeout=120) as cluster:
            codes = cluster.wait()
            events = cluster.events()
    return {
        "codes": [int(code) for code in codes],
        "events": [[_event(e) for e in worker] for worker in events],
        "logs": [log[-LOG_TAIL:] for log in cluster.logs()],
    }


def _event(event: dict[str, Any]) -> dict[str, Any]:
    """The fields of a worker's event that the judge reads, where they have the type it reads."""
    kinds = {"event": str, "step": (int, float), "loss": (int, float)}
    return {key: event[key] for key, kind in kinds.items() if isinstance(event.get(key), kind)}
