"""Chapter 08's checks: each accepts a right answer and explains five or more kinds of wrong one."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from answers import MISBEHAVING, assert_result, assert_survives, not_written, raises

from tfcourse import distributed, multiworker
from tfcourse.exercises import _learner, ch08
from tfcourse.exercises._framework import Wrong


# 08.1 per_replica_batch_size ---------------------------------------------------------------------
def per_replica(global_batch_size, num_replicas):
    if global_batch_size % num_replicas:
        raise ValueError("the replicas cannot share the global batch evenly")
    return global_batch_size // num_replicas


def asserts_instead(global_batch_size, num_replicas):
    """An AssertionError whose message says ValueError: the wrong type."""
    assert global_batch_size % num_replicas == 0, "ValueError: replicas cannot share the batch"
    return global_batch_size // num_replicas


def only_mod_four(global_batch_size, num_replicas):
    """Raises only for the uneven case that the chapter shows (10 over 4)."""
    if global_batch_size % 4 == 2 and num_replicas == 4:
        raise ValueError("uneven")
    return global_batch_size // num_replicas


@pytest.mark.parametrize("seed", ["1", "2", "3", "4"])
def test_check_per_replica_batch_passes_for_any_drawn_case(monkeypatch, seed):
    monkeypatch.setenv("TFCOURSE_PROBE_SEED", seed)
    assert ch08.check_per_replica_batch(per_replica).passed


_TABLE = {(64, 2): 32, (96, 3): 32, (8, 8): 1, (256, 1): 256, (1024, 16): 64}


def table_of_the_checks_cases(global_batch, replicas):
    """Right on the check's fixed cases only: a drawn case is not in the table."""
    if global_batch % replicas:
        raise ValueError("uneven")
    return _TABLE[(global_batch, replicas)]


def only_when_larger(global_batch, replicas):
    """Raises only when the global batch is the larger: 3 examples on 4 replicas give 0 each."""
    if global_batch > replicas and global_batch % replicas:
        raise ValueError("uneven")
    return global_batch // replicas


def test_batch_calls_draws_a_case_outside_the_fixed_ones():
    for seed in [*range(200), 450, 988, 1592]:  # 450, 988, 1592 drew 96 over 3 before the fix
        even, _ = ch08.batch_calls(seed)
        assert even[-1] not in even[:-1], seed


@pytest.mark.parametrize(
    ("answer", "status", "fragment"),
    [
        (per_replica, "passed", "global batch // replicas"),
        (None, "not attempted", "not attempted yet"),
        (not_written, "not attempted", "not attempted yet"),
        (raises, "failed", "raised RuntimeError: oops"),
        (lambda g, r: g / r, "failed", "a float: a batch size is an int"),
        (lambda g, r: g * r, "failed", "global × replicas"),
        (lambda g, r: g, "failed", "the whole global batch"),
        (lambda g, r: g // r + 1, "failed", "off by one"),
        (lambda g, r: 1, "failed", "expected 32"),
        (lambda g, r: str(g // r), "failed", "should return an int"),
        (lambda g, r: g // r, "failed", "cannot share 10 examples evenly"),
        (
            lambda g, r: g // r if g % r == 0 else (_ for _ in ()).throw(TypeError("no")),
            "failed",
            "raised TypeError: no",
        ),
        (asserts_instead, "failed", "raise ValueError itself"),
        (
            lambda g, r: (
                g // r if g % r == 0 else (_ for _ in ()).throw(RuntimeError("ValueError"))
            ),
            "failed",
            "raise ValueError itself",
        ),
        (only_mod_four, "failed", "cannot share 7 examples evenly"),
        (only_when_larger, "failed", "examples evenly"),
        (table_of_the_checks_cases, "failed", "raised KeyError"),
        (lambda g, r: per_replica(g, r) if (g, r) != (7, 2) else 3, "failed", "(7, 2) returned"),
        (
            lambda g, r: (10 // 4) if (g, r) == (10, 4) else per_replica(g, r),
            "failed",
            "cannot share 10 examples",
        ),
    ],
)
def test_check_per_replica_batch(answer, status, fragment):
    assert_result(ch08.check_per_replica_batch(answer), status, fragment)


# 08.2 compute_loss: run in a child process that has two logical CPUs -----------------------------
LOSS_CASES = [
    ("right", "passed", "divided by the global batch size"),
    ("by hand", "passed", "the summed loss equals one device's mean loss"),
    # the default convention for the short last batch: each replica's mean, over the replicas
    ("keras loss object", "passed", "each replica's mean over the replicas"),
    ("average without a size", "passed", "each replica's mean over the replicas"),
    ("present examples by hand", "passed", "each replica's mean over the replicas"),
    ("mean over replicas", "passed", "each replica's mean over the replicas"),
    # a constant 2 for the replicas: right on the notebook's 2 replicas only
    ("mean halved", "failed", "also divided by 2, the notebook's number of replicas"),
    ("the check's reference", "failed", "calls the check's own reference loss"),
    ("tuple of losses halved", "failed", "also divided by 2, the notebook's number of replicas"),
    ("none", "not attempted", "not attempted yet"),
    ("not written", "not attempted", "not attempted yet"),
    ("raises", "failed", "raised RuntimeError: oops"),
    ("mean per replica", "failed", "2 times one device's mean loss: each replica averaged"),
    ("sum", "failed", "16 times one device's mean loss: you summed the per-example losses"),
    ("divided twice", "failed", "also divided by 2, the notebook's number of replicas"),
    ("wrong axis", "failed", "should be 1: compute each example's loss"),
    ("the notebook's batch", "failed", "you divided by 64, not by the global_batch_size"),
    ("the chapter's 16", "failed", "you divided by 16, not by the global_batch_size argument"),
    ("labels as logits", "failed", "should be 1"),
    ("per example", "failed", "should return one number, a scalar Tensor"),
    ("one replica", "failed", "with one replica every scaling looks right"),
]


@pytest.fixture(scope="module")
def loss_results():
    script = Path(__file__).with_name("_ch08_loss_answers.py")
    names = [name for name, _, _ in LOSS_CASES if name != "one replica"]
    done = subprocess.run(
        [sys.executable, str(script), *names], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {line["name"]: line for line in lines}


@pytest.mark.slow
@pytest.mark.parametrize(("name", "status", "fragment"), LOSS_CASES)
def test_check_loss_scaling(loss_results, name, status, fragment):
    result = loss_results[name]
    assert result["status"] == status, result
    assert fragment in result["message"], result


# 08.3 make_tf_config ------------------------------------------------------------------------------
def tf_config(hosts, port, index, *, as_json=False, **changes):
    config = {
        "cluster": {"worker": [f"{host}:{port}" for host in hosts]},
        "task": {"type": "worker", "index": index},
    }
    for key, value in changes.items():
        part, _, field = key.partition("__")
        if value is None:
            config[part].pop(field) if field else config.pop(part)
        elif field:
            config[part][field] = value
        else:
            config[part] = value
    return json.dumps(config) if as_json else config


@pytest.mark.parametrize(
    ("answer", "status", "fragment"),
    [
        (tf_config, "passed", "each task's own index"),
        (lambda h, p, i: tf_config(h, p, i, as_json=True), "passed", "the same cluster"),
        (
            lambda h, p, i: tf_config(h, p, i, cluster={"worker": tuple(f"{x}:{p}" for x in h)}),
            "passed",
            "the same cluster",
        ),
        (
            lambda h, p, i: distributed.tf_config([f"{x}:{p}" for x in h], i),
            "failed",
            "calls the course's tfcourse.distributed.tf_config",
        ),
        (None, "not attempted", "not attempted yet"),
        (not_written, "not attempted", "not attempted yet"),
        (raises, "failed", "raised RuntimeError: oops"),
        (lambda h, p, i: tf_config(h, p, i, task=None), "failed", "has no 'task' dict"),
        (lambda h, p, i: tf_config(h, p, i, task__index=i + 1), "failed", "indexes start at 0"),
        (lambda h, p, i: tf_config(h, p, i, task__index=str(i)), "failed", "write the int"),
        (lambda h, p, i: tf_config(h, p, i, task__type="chief"), "failed", "should be 'worker'"),
        (
            lambda h, p, i: tf_config(h, p, i, cluster={"worker": [[x, p] for x in h]}),
            "failed",
            "each address is one string 'host:port'",
        ),
        (lambda h, p, i: tf_config(h, p, i, cluster={"worker": h}), "failed", "have no port"),
        (
            lambda h, p, i: tf_config(h, p, i, cluster={"workers": [f"{x}:{p}" for x in h]}),
            "failed",
            "one job named 'worker' (singular)",
        ),
        (
            lambda h, p, i: tf_config([h[i], *h[:i], *h[i + 1 :]], p, 0),
            "failed",
            "in the order given",
        ),
        (lambda h, p, i: tf_config(h, p + 1, i), "failed", "expected ['10.1.0.11:2222'"),
        (lambda h, p, i: tf_config(h, 2222, i), "failed", "use port 2222, not the port argument"),
        (lambda h, p, i: tf_config(sorted(h), p, i), "failed", "in the order given"),
        (
            lambda h, p, i: tf_config(list(ch08.CLUSTER_HOSTS), p, i),
            "failed",
            "cluster['worker'] is ['10.1.0.11",
        ),
        (
            lambda h, p, i: tf_config(
                h, p, i, cluster={"worker": [f"{x}:{p}" for x in h], "ps": []}
            ),
            "failed",
            "leave out jobs nobody runs",
        ),
        (lambda h, p, i: tf_config(h, p, i, task__index=float(i)), "failed", "a float; write"),
        (lambda h, p, i: tf_config(h, p, i, task__index=True), "failed", "a bool; write the int"),
        (lambda h, p, i: "cluster: worker", "failed", "not JSON"),
        (lambda h, p, i: [h, p, i], "failed", "should return a dict (or its JSON)"),
        (
            lambda h, p, i: tf_config(h, p, i, task__index={1}),
            "failed",
            "cannot be written as JSON",
        ),
    ],
)
def test_check_tf_config(answer, status, fragment):
    assert_result(ch08.check_tf_config(answer), status, fragment)


def test_the_tf_config_answer_is_what_tfcourse_distributed_writes():
    hosts = list(ch08.CLUSTER_HOSTS)
    from tfcourse.distributed import tf_config as reference

    addresses = [f"{host}:{ch08.CLUSTER_PORT}" for host in hosts]
    assert tf_config(hosts, ch08.CLUSTER_PORT, 2) == reference(addresses, 2)


# 08.4 write_dir and resume ------------------------------------------------------------------------
def write_dir(directory, task_type, task_id):
    if task_type is None or task_type == "chief" or (task_type == "worker" and task_id == 0):
        return directory
    return os.path.join(directory, f"workertemp_{task_id}")


def worker_zero_only(directory, task_type, task_id):
    """The notebook's first solution: wrong without a cluster (task_type None) and for a chief."""
    if task_type == "worker" and task_id == 0:
        return directory
    return os.path.join(directory, f"workertemp_{task_id}")


def returns_ten(checkpoint, manager):
    """Restores, then returns the step that the chapter's cluster happens to resume at."""
    if manager.latest_checkpoint is None:
        return 0
    checkpoint.restore(manager.latest_checkpoint)
    return 10


def resume(checkpoint, manager):
    if manager.latest_checkpoint is None:
        return 0
    checkpoint.restore(manager.latest_checkpoint)
    return int(checkpoint.step.numpy())


def strict_resume(checkpoint, manager):
    """Right, and strict: every value in the checkpoint must find its variable. It returns the
    step variable itself, which the worker program reads at once."""
    if manager.latest_checkpoint is None:
        return 0
    checkpoint.restore(manager.latest_checkpoint).assert_consumed()
    return checkpoint.step


def int_of_the_variable(checkpoint, manager):
    """Right on a plain tf.Variable; in the cluster the step is a MirroredVariable."""
    if manager.latest_checkpoint is None:
        return 0
    checkpoint.restore(manager.latest_checkpoint)
    return int(checkpoint.step)


def only_the_chief_restores(checkpoint, manager):
    """Worker 1 starts again from step 0 while the chief resumes."""
    import tensorflow as tf

    if manager.latest_checkpoint is None:
        return 0
    checkpoint.restore(manager.latest_checkpoint)
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    return int(checkpoint.step.numpy()) if resolver.task_id in (0, None) else 0


def the_literal_folder(directory, task_type, task_id):
    """Ignores its directory argument: right only for a folder named 'ckpt'."""
    if task_type in (None, "chief") or (task_type == "worker" and task_id == 0):
        return "ckpt"
    return os.path.join("ckpt", f"workertemp_{task_id}")


def model_only(checkpoint, manager):
    """Restores the model's weights and the step, but not the optimizer's momentum."""
    import tensorflow as tf

    if manager.latest_checkpoint is None:
        return 0
    step = tf.train.load_variable(manager.latest_checkpoint, "step/.ATTRIBUTES/VARIABLE_VALUE")
    tf.train.Checkpoint(model=checkpoint.model).restore(manager.latest_checkpoint).expect_partial()
    return int(step)


def file_number(checkpoint, manager):
    """Restores, and returns the number in the checkpoint's file name, not the step it holds."""
    if manager.latest_checkpoint is None:
        return 0
    checkpoint.restore(manager.latest_checkpoint)
    return int(manager.latest_checkpoint.rsplit("-", 1)[1])


def task_zero_is_chief(directory, task_type, task_id):
    """Any task 0 is the chief: an evaluator or a parameter server would overwrite its files."""
    return directory if not task_id else os.path.join(directory, f"tmp{task_id}")


def from_zero(checkpoint, manager):
    return 0


def restores_returns_zero(checkpoint, manager):
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint)
    return 0


def off_by_one(checkpoint, manager):
    return resume(checkpoint, manager) + 1 if manager.latest_checkpoint else 0


def oldest(checkpoint, manager):
    if not manager.checkpoints:
        return 0
    checkpoint.restore(manager.checkpoints[0])
    return int(checkpoint.step.numpy())


def step_only(checkpoint, manager):
    return int(manager.latest_checkpoint.rsplit("-", 1)[1]) if manager.latest_checkpoint else 0


def crashes_when_empty(checkpoint, manager):
    checkpoint.restore(manager.latest_checkpoint)
    return int(manager.latest_checkpoint.rsplit("-", 1)[1])


def chief_is_one(directory, task_type, task_id):
    return directory if task_id == 1 else os.path.join(directory, f"tmp_{task_id}")


def everyone_in_one(directory, task_type, task_id):
    return directory


def second_in_chief_dir(directory, task_type, task_id):
    return os.path.join(directory, "tmp") if task_id == 1 else directory


def as_path(directory, task_type, task_id):
    """Right, with pathlib (the workers import Path for the learner's functions)."""
    if task_type in (None, "chief") or (task_type == "worker" and task_id == 0):
        return Path(directory)
    return Path(directory) / f"workertemp_{task_id}"


def uses_a_notebook_name(directory, task_type, task_id):
    """Right here, but `shutil` is a name the workers do not import for the learner."""
    if task_type in (None, "chief") or (task_type == "worker" and task_id == 0):
        return directory
    return shutil.os.path.join(directory, f"tmp_{task_id}")


def one_temp_dir(directory, task_type, task_id):
    return directory if task_id in (0, None) else os.path.join(tempfile.gettempdir(), "ckpt")


@pytest.mark.slow
def test_check_resume_passes_the_right_answer_in_a_real_cluster(tf):
    from test_distributed import worker_pids

    before = set(worker_pids())
    result = ch08.check_resume(write_dir, resume)
    assert_result(result, "passed", "resumed at step 10 and repeated steps [11, 12]")
    assert set(worker_pids()) - before == set()  # no worker of the check's clusters outlives it


@pytest.mark.slow
def test_check_resume_takes_paths_and_explains_a_worker_that_fails(tf):
    assert_result(ch08.check_resume(as_path, strict_resume), "passed", "resumed at step 10")
    assert_result(
        ch08.check_resume(uses_a_notebook_name, resume),
        "failed",
        "NameError: name 'shutil' is not defined",
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        (int_of_the_variable, "Return int(checkpoint.step.numpy())"),
        (only_the_chief_restores, "worker 0 at step 10, worker 1 at step 0"),
    ],
)
def test_check_resume_names_a_mistake_only_the_cluster_shows(tf, answer, fragment):
    assert_result(ch08.check_resume(write_dir, answer), "failed", fragment)


@pytest.mark.parametrize(
    ("answers", "status", "fragment"),
    [
        ((None, resume), "not attempted", "not attempted yet"),
        ((second_in_chief_dir, resume), "failed", "'worker', 2) returned '/runs/run-"),
        ((write_dir, not_written), "not attempted", "not attempted yet"),
        ((write_dir, raises), "failed", "raised RuntimeError: oops"),
        ((write_dir, from_zero), "failed", "did not restore the checkpoint"),
        ((write_dir, restores_returns_zero), "failed", "restored the weights but returned 0"),
        ((write_dir, off_by_one), "failed", "not a number of your own"),
        ((write_dir, oldest), "failed", "checkpoint, the oldest"),
        ((write_dir, returns_ten), "failed", "not a number of your own"),
        ((worker_zero_only, resume), "failed", "task_type None) the one process is the chief"),
        ((write_dir, step_only), "failed", "did not restore the checkpoint"),
        ((write_dir, crashes_when_empty), "failed", "with no checkpoint yet"),
        ((chief_is_one, resume), "failed", "worker 0 is the chief"),
        ((everyone_in_one, resume), "failed", "overwrite each other"),
        ((one_temp_dir, resume), "failed", "each needs a folder of its own"),
        ((write_dir, lambda c, m: 0), "failed", "did not restore"),
        ((write_dir, model_only), "failed", "not the optimizer's momentum"),
        ((write_dir, file_number), "failed", "not a number of your own"),
        ((the_literal_folder, resume), "failed", "(the directory argument, whatever it is)"),
        ((task_zero_is_chief, resume), "failed", "is not the chief"),
        ((multiworker.write_dir, resume), "failed", "the course's own tfcourse.multiworker"),
        ((write_dir, multiworker.resume), "failed", "the course's own tfcourse.multiworker"),
        ((write_dir, lambda c, m: multiworker.resume(c, m)), "failed", "the course's own"),
    ],
)
def test_check_resume_explains_mistakes_before_starting_a_cluster(tf, answers, status, fragment):
    assert_result(ch08.check_resume(*answers), status, fragment)


# Every check -------------------------------------------------------------------------------------
CHECKS = {
    "08.1": ch08.check_per_replica_batch,
    "08.3": ch08.check_tf_config,
    "08.4": lambda answer: ch08.check_resume(write_dir, answer),
}


@pytest.mark.parametrize("exercise", sorted(CHECKS))
@pytest.mark.parametrize(("answer", "fragment"), MISBEHAVING)
def test_every_check_survives_a_misbehaving_answer(
    tf, monkeypatch, capsys, exercise, answer, fragment
):
    monkeypatch.setattr(_learner, "TIME_BUDGET", 0.5)
    assert_survives(CHECKS[exercise](answer), fragment, capsys)


def test_a_lambda_answer_becomes_a_module_the_workers_can_import():
    write = lambda d, t, i: d if t in (None, "chief") or i == 0 else f"{d}_{i}"  # noqa: E731
    source = ch08._answer_source(write_dir=write, resume=resume)
    namespace = {}
    exec(compile(source, "answer.py", "exec"), namespace)
    assert namespace["write_dir"]("ckpt", "worker", 1) == "ckpt_1"
    assert namespace["write_dir"]("ckpt", None, None) == "ckpt"


def test_two_lambdas_on_one_line_get_a_clear_message():
    pair = (lambda d, t, i: d, lambda d, t, i: d)
    with pytest.raises(Wrong, match="define it with `def`"):
        ch08._answer_source(write_dir=pair[0], resume=resume)


@pytest.mark.parametrize("replicas", [2, 3, 4])
def test_the_drawn_loss_case_is_never_the_notebooks_batch_or_half_of_it(monkeypatch, replicas):
    for seed in range(40):
        monkeypatch.setenv("TFCOURSE_PROBE_SEED", str(seed))
        (_, _), (global_batch, short) = ch08._loss_cases(replicas)
        assert global_batch // replicas not in (16 // replicas, 16 // replicas**2)
        assert global_batch // replicas * (replicas - 1) < short < global_batch


def test_resume_is_probed_at_steps_other_than_the_clusters(tf, monkeypatch):
    for seed in range(30):
        monkeypatch.setenv("TFCOURSE_PROBE_SEED", str(seed))
        assert_result(ch08.check_resume(write_dir, returns_ten), "failed", "a number of your own")
