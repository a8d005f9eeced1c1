"""The check framework: statuses, safety, recording, and comparisons that explain themselves."""

import contextlib
import json
import os
import signal
import threading
import time

import numpy as np
import pytest
from answers import exits, floods, raises, sleeps

from tfcourse import exercises
from tfcourse.exercises import (
    NotAttempted,
    Wrong,
    _learner,
    call,
    ch00,
    ch01,
    ch02,
    ch03,
    check,
    expect_close,
    learner_code,
    take_all,
)


@check("9.9", "demo")
def check_demo(answer):
    value = call(answer, 2)
    if value != 4:
        raise Wrong(f"expected 4, got {value}")
    return "doubles 2"


def broken(*args):
    raise NotImplementedError


@pytest.mark.parametrize(
    ("answer", "status", "message"),
    [
        (lambda x: 2 * x, "passed", "doubles 2"),
        (lambda x: x + 1, "failed", "expected 4, got 3"),
        (None, "not attempted", "not attempted yet"),
        (broken, "not attempted", "replace `raise NotImplementedError`"),
        (lambda x: 1 / 0, "failed", "your function raised ZeroDivisionError: division by zero"),
        (42, "failed", "expected a function, but got an int (42)"),
    ],
)
def test_check_turns_every_kind_of_answer_into_a_one_line_result(answer, status, message):
    result = check_demo(answer)
    assert result.status == status
    assert message in result.message
    assert result.passed == (status == "passed")
    assert "\n" not in str(result) and str(result).startswith(("✓", "✗", "…"))
    assert repr(result) == str(result)


def test_a_bug_in_a_check_is_reported_not_raised():
    @check("9.8", "buggy")
    def check_buggy(answer):
        return {}["missing"]

    result = check_buggy(lambda: None)
    assert result.status == "error"
    assert "KeyError" in result.message and "bug in the course" in result.message
    assert str(result).startswith("⚠")


def test_results_are_collected_and_optionally_written_for_graders(tmp_path, monkeypatch):
    log = tmp_path / "results.jsonl"
    monkeypatch.setenv(exercises.RESULTS_ENV, str(log))
    before = len(exercises.results())
    check_demo(lambda x: 2 * x)
    check_demo(None)
    assert [r.status for r in exercises.results()[before:]] == ["passed", "not attempted"]
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert rows == [
        {"exercise": "9.9", "title": "demo", "status": "passed", "message": "doubles 2"},
        {
            "exercise": "9.9",
            "title": "demo",
            "status": "not attempted",
            "message": rows[1]["message"],
        },
    ]


@pytest.mark.parametrize(
    ("value", "expected", "kwargs", "message"),
    [
        (
            np.zeros((3, 2)),
            np.zeros((2, 3)),
            {},
            "shape (3, 2), expected (2, 3). It has the right axes in the wrong order",
        ),
        (np.zeros(6), np.zeros((2, 3)), {}, "right number of values: reshape"),
        (
            np.zeros(3, np.float64),
            np.zeros(3),
            {"dtype": np.float32},
            "dtype float64, expected float32",
        ),
        (np.array([1.0, np.nan, 2.0]), np.ones(3), {}, "contains NaN at 1 of 3 positions"),
        (np.array([1.0, np.inf]), np.ones(2), {}, "infinite values"),
        (np.array([255.0, 510.0]), np.array([1.0, 2.0]), {}, "off by a factor of 255"),
        (np.array([-1.0, -2.0]), np.array([1.0, 2.0]), {}, "wrong sign"),
        (  # a factor near 1 is a small error, not a scaling: no "off by a factor of 1"
            np.array([1.0, 2.0, 3.0]) * 1.0003,
            np.array([1.0, 2.0, 3.0]),
            {"rtol": 1e-5, "atol": 1e-6},
            "differs from the expected values at 3 of 3 positions",
        ),
        (
            np.array([1.0, 5.0, 3.0]),
            np.array([1.0, 2.0, 3.0]),
            {},
            "at 1 of 3 positions; for example at index 1 it is 5, expected 2",
        ),
        ("hello", np.zeros(2), {}, "should be a Tensor or array of numbers, but it is a str"),
        ({"a": 1}, np.zeros(2), {}, "should be a Tensor or array of numbers"),
        (None, np.zeros(2), {}, "is None; did you forget a `return`?"),
        (np.float32(2.5), np.float64(2.0), {}, "your answer is 2.5, expected 2."),
    ],
)
def test_expect_close_names_the_specific_mistake(value, expected, kwargs, message):
    with pytest.raises(Wrong) as wrong:
        expect_close(value, expected, **kwargs)
    assert message in str(wrong.value)


def test_expect_close_accepts_tensors_and_lists_within_tolerance(tf):
    assert expect_close(tf.constant([1.0, 2.0]), [1.0, 2.0000001]).dtype == np.float32
    expect_close([[1, 2]], np.array([[1, 2]]))


# Running learner code ----------------------------------------------------------------------------
@pytest.fixture
def budget(monkeypatch):
    """A one-second time budget for learner code, so that hanging answers end the test quickly."""
    monkeypatch.setattr(_learner, "TIME_BUDGET", 1.0)


def run_as_learner(action):
    with pytest.raises(Wrong) as wrong:
        with learner_code("your function"):
            action()
    return str(wrong.value)


def raise_(error):
    raise error


@pytest.mark.parametrize(
    ("action", "fragment"),
    [
        (lambda: raise_(SystemExit(3)), "called sys.exit(3), which would stop the notebook"),
        (lambda: raise_(KeyboardInterrupt()), "raised KeyboardInterrupt"),
        (lambda: raise_(GeneratorExit()), "raised GeneratorExit"),
        (lambda: raise_(ValueError("bad\nvalue")), "raised ValueError: bad"),
        (lambda: time.sleep(100), "ran for more than 1 s, the time limit"),
        (lambda: [None for _ in iter(int, 1)], "ran for more than 1 s"),
    ],
)
@pytest.mark.timeout(60)
def test_learner_code_turns_every_failure_into_one_line_wrong(budget, action, fragment):
    message = run_as_learner(action)
    assert fragment in message and "\n" not in message


def test_learner_code_reports_the_template_as_not_attempted():
    with pytest.raises(NotAttempted):
        with learner_code():
            raise NotImplementedError


def test_a_learner_swallowing_exceptions_cannot_swallow_the_time_limit(budget):
    def stubborn():
        for _ in range(100):
            try:
                time.sleep(100)
            except Exception:
                pass

    assert "time limit" in run_as_learner(stubborn)


@pytest.mark.timeout(60)
def test_the_time_limit_works_off_the_main_thread(budget):
    messages = []

    def worker():
        try:
            with learner_code("your loop"):
                while True:
                    pass
        except Wrong as wrong:
            messages.append(str(wrong))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(30)
    assert messages and "your loop ran for more than 1 s" in messages[0]


def test_an_inner_block_keeps_the_outer_deadline(budget):
    with pytest.raises(Wrong, match="outer ran for more than 1 s"):
        with learner_code("outer"):
            with learner_code("inner", seconds=30):
                pass
            time.sleep(100)


def test_pressing_stop_still_interrupts_the_cell():
    with pytest.raises(KeyboardInterrupt):
        with learner_code():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)


def test_tensorflow_internals_stay_out_of_the_message(tf):
    message = run_as_learner(lambda: tf.constant([1, 2]) + tf.constant([1, 2, 3]))
    assert message.startswith("your function raised InvalidArgumentError: Incompatible shapes")
    assert "{{" not in message and "name:" not in message


def test_call_reports_none_as_not_attempted():
    with pytest.raises(NotAttempted):
        call(None)


# take_all ----------------------------------------------------------------------------------------
def endless(tf):
    def numbers():
        while True:
            yield 1

    return tf.data.Dataset.from_generator(numbers, output_signature=tf.TensorSpec([], tf.int32))


def stalled(tf):
    def numbers():
        time.sleep(30)
        yield 1

    return tf.data.Dataset.from_generator(numbers, output_signature=tf.TensorSpec([], tf.int32))


@pytest.mark.parametrize(
    ("make_dataset", "fragment"),
    [
        (lambda tf: tf.data.Dataset.range(3).repeat(), "never ends (it repeats forever)"),
        (endless, "gave more than 10 elements"),
        (stalled, "gave 0 elements in 1 s, the time limit"),
        (lambda tf: tf.data.Dataset.range(3), None),
        (
            lambda tf: tf.data.Dataset.range(3).map(
                lambda i: tf.py_function(lambda v: 1 / 0, [i], tf.float32)
            ),
            "iterating your dataset raised",
        ),
    ],
)
@pytest.mark.timeout(60)
def test_take_all_caps_and_times_a_learners_dataset(tf, budget, make_dataset, fragment):
    if fragment is None:  # a dataset that works gives its elements
        assert len(take_all(make_dataset(tf), limit=10)) == 3
        return
    with pytest.raises(Wrong) as wrong:
        take_all(make_dataset(tf), limit=10)
    assert fragment in str(wrong.value) and "\n" not in str(wrong.value)


# Messages and output -----------------------------------------------------------------------------
def test_messages_are_one_line_and_short():
    @check("9.7", "long")
    def check_long(answer):
        raise Wrong("first line\nsecond line " + "x" * 1000)

    result = check_long(lambda: None)
    assert "\n" not in str(result) and len(result.message) <= 400
    assert result.message.startswith("first line second line")


def test_what_learner_code_prints_is_echoed_cut_short(capsys):
    @check("9.6", "printing")
    def check_printing(answer):
        call(answer)
        return "done"

    assert check_printing(floods).passed
    out = capsys.readouterr().out
    assert len(out) < 2_000 and "9,999,001 more characters not shown" in out
    check_printing(lambda: print("a short note"))
    assert capsys.readouterr().out == "a short note\n"


def test_a_broken_repr_does_not_break_the_message():
    class Broken:
        def __repr__(self):
            raise RuntimeError

    assert "expected a function, but got a Broken (<" in check_demo(Broken()).message


# Every check, fed hostile answers ----------------------------------------------------------------
def fake_shards(tmp_path):
    return [str(tmp_path / "unused.tfrecord")]


def numbers_baseline(tf):
    return lambda paths: tf.data.Dataset.range(8).map(lambda i: (i, i)).batch(4)


def tiny_run():
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(2)])
    optimizer = keras.optimizers.SGD(0.01)
    optimizer.build(model.trainable_variables)
    return tf.train.Checkpoint(model=model, optimizer=optimizer, step=tf.Variable(0, tf.int64))


def tiny_train(run, until, *, manager=None, every=5):
    while int(run.step) < until:
        run.step.assign_add(1)
        if manager is not None and int(run.step) % every == 0:
            manager.save(checkpoint_number=run.step)


def as_callback(action):
    import keras

    return type("LossHistory", (keras.callbacks.Callback,), {"on_train_begin": action})


CHECKS = {
    "00.1": lambda a, tf, path: ch00.check_count_labels(a),
    "00.2": lambda a, tf, path: ch00.check_matmul_on(a),
    "00.3": lambda a, tf, path: ch00.check_draw(a),
    "00.4": lambda a, tf, path: ch00.check_gpu_memory_plan(a),
    "00.5": lambda a, tf, path: ch00.check_mean_images(a),
    "01.1": lambda a, tf, path: ch01.check_derivative(a),
    "01.2": lambda a, tf, path: ch01.check_train_step(a),
    "01.3": lambda a, tf, path: ch01.check_make_scale(a),
    "01.4": lambda a, tf, path: ch01.check_log_sum_exp(a),
    "02.1": lambda a, tf, path: ch02.check_make_pipeline(a),
    "02.2": lambda a, tf, path: ch02.check_example_round_trip(a, a, folder=str(path)),
    "02.3": lambda a, tf, path: ch02.check_bucket_batches(a),
    "02.4": lambda a, tf, path: ch02.check_fast_pipeline(
        a, baseline=numbers_baseline(tf), files=fake_shards(path)
    ),
    "03.1": lambda a, tf, path: ch03.check_build_model(a),
    "03.2": lambda a, tf, path: ch03.check_loss_history(as_callback(a)),
    "03.3": lambda a, tf, path: ch03.check_resume(
        a, make_run=tiny_run, train=tiny_train, folder=str(path)
    ),
    "03.4": lambda a, tf, path: ch03.check_clipped_classifier(a),
}
HOSTILE = {"raises": raises, "sleeps": sleeps, "exits": exits, "floods": floods}
FRAGMENTS = {"raises": "raised RuntimeError: oops", "sleeps": "the time limit", "exits": "sys.exit"}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
@pytest.mark.parametrize("exercise", sorted(CHECKS))
@pytest.mark.timeout(120)
def test_no_check_hangs_floods_or_blames_the_course(tf, budget, tmp_path, capsys, exercise, kind):
    answer = HOSTILE[kind]
    if exercise == "03.2":  # a callback's method gets the callback and the logs
        answer = lambda self, logs=None, act=answer: act()  # noqa: E731
    result = CHECKS[exercise](answer, tf, tmp_path)
    assert result.status in ("failed", "not attempted"), str(result)
    assert FRAGMENTS.get(kind, "") in result.message and "\n" not in str(result)
    assert len(capsys.readouterr().out) < 2_000


REPEATED = {
    "02.1": lambda tf: (
        lambda x, y: (
            tf.data.Dataset.from_tensor_slices((x, y))
            .map(lambda a, b: (tf.cast(a, tf.float32) / 255.0, b))
            .batch(32, drop_remainder=True)
            .repeat()
        )
    ),
    "02.3": lambda tf: lambda ds: ds.padded_batch(32).repeat(),
    "02.4": lambda tf: lambda paths: numbers_baseline(tf)(paths).repeat(),
}


@pytest.mark.parametrize("exercise", sorted(REPEATED))
@pytest.mark.timeout(120)
def test_a_repeated_dataset_gets_a_cross_that_says_so(tf, budget, tmp_path, exercise):
    result = CHECKS[exercise](REPEATED[exercise](tf), tf, tmp_path)
    assert result.status == "failed" and "remove `repeat()`" in result.message, str(result)


def test_a_library_warning_inside_a_check_is_shown_but_never_the_learners_mistake():
    import warnings

    from tfcourse.exercises._framework import check

    @check("99.9", "a check whose library warns")
    def verify(answer):
        warnings.warn_explicit(
            "Layer 'gru' does not support masking", UserWarning, "layer.py", 1, "keras.src.layer"
        )
        return "fine"

    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("error")  # as pytest's filterwarnings = error does
        result = verify(lambda: None)
    assert result.passed, result
    assert [str(w.message) for w in shown] == ["Layer 'gru' does not support masking"]


def test_a_warning_from_elsewhere_inside_a_check_still_follows_the_filters():
    import warnings

    from tfcourse.exercises._framework import check

    @check("99.9", "a check whose own code warns")
    def verify(answer):
        warnings.warn_explicit("careful", UserWarning, "x.py", 1, "learner_module")
        return "fine"

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = verify(lambda: None)
    assert result.status == "error" and "UserWarning: careful" in result.message


# Delegation to the course's own answer, and probes a learner cannot predict ----------------------
def _course_answer(x):
    return 2 * x


class _CourseLayer:
    def call(self, x):
        return 2 * x


def _forbidden_check(answer):
    target = f"{__name__}._course_answer"

    @check("9.8", "delegation demo")
    def verify(fn):
        with exercises.forbid(target, "you called the course's own answer: write it yourself"):
            value = call(fn, 3)
        if value != 6:
            raise Wrong(f"expected 6, got {value}")
        return "doubles 3"

    return verify(answer)


@pytest.mark.parametrize(
    "answer",
    [
        lambda x: _course_answer(x),  # a wrapper
        lambda x: (lambda alias: alias(x))(_course_answer),  # an alias
        lambda x: _course_answer(x) + 1,  # a wrong wrapper: the delegation is what it is told
        lambda x: sum(_course_answer(x) for _ in range(1)),
    ],
)
def test_a_call_into_the_course_answer_is_named_however_it_is_made(answer):
    result = _forbidden_check(answer)
    assert result.status == "failed"
    assert result.message == "you called the course's own answer: write it yourself"


def test_an_own_answer_passes_and_the_hook_is_removed_afterwards():
    before = __import__("sys").getprofile()
    assert _forbidden_check(lambda x: x + x).passed
    assert __import__("sys").getprofile() is before
    assert _course_answer(2) == 4  # outside a check, the course's function is untouched


def test_a_class_is_forbidden_through_any_method_it_defines():
    @check("9.7", "class demo")
    def verify(make):
        with exercises.forbid(f"{__name__}._CourseLayer", "you used the course's layer"):
            return f"got {call(make, 2)}"

    class Sub(_CourseLayer):
        pass

    assert verify(lambda x: Sub().call(x)).message == "you used the course's layer"
    assert verify(lambda x: 2 * x).passed


def test_the_check_itself_may_call_the_course_answer_outside_learner_code():
    @check("9.6", "reference demo")
    def verify(fn):
        with exercises.forbid(f"{__name__}._course_answer", "no"):
            expected = _course_answer(5)  # the check's own reference: not learner code
            value = call(fn, 5)
        if value != expected:
            raise Wrong("wrong")
        return "ok"

    assert verify(lambda x: x * 2).passed


def test_probes_differ_between_runs_and_repeat_with_the_seed(monkeypatch):
    monkeypatch.delenv(exercises.PROBE_SEED_ENV, raising=False)
    draws = {tuple(exercises.probe_rng().integers(0, 1 << 30, 4)) for _ in range(5)}
    assert len(draws) == 5
    monkeypatch.setenv(exercises.PROBE_SEED_ENV, "17")
    assert list(exercises.probe_rng().integers(0, 100, 5)) == list(
        exercises.probe_rng().integers(0, 100, 5)
    )
    monkeypatch.setenv(exercises.PROBE_SEED_ENV, "seventeen")
    with pytest.raises(ValueError, match="non-negative integer"):
        exercises.probe_rng()


def test_draw_except_never_returns_the_chapters_values():
    rng = np.random.default_rng(0)
    assert {exercises.draw_except(rng, 2, 6, {3, 4}) for _ in range(200)} == {2, 5, 6}
    with pytest.raises(ValueError, match="no integer"):
        exercises.draw_except(rng, 3, 4, {3, 4})


def test_expect_tensor_names_what_it_got(tf):
    exercises.expect_tensor(tf.constant([1]))
    with pytest.raises(Wrong, match=r"a ndarray .* asks for a Tensor.*NumPy values cannot"):
        exercises.expect_tensor(np.array([1]), name="padded")
    with pytest.raises(Wrong, match="plain Python"):
        exercises.expect_tensor([[1, 2]])
    with pytest.raises(Wrong, match="RaggedTensor"):
        exercises.expect_tensor(tf.ragged.constant([[1], [2, 3]]))


def test_a_libraries_not_implemented_error_is_a_mistake_not_the_template(tf):
    @tf.function
    def numpy_inside_a_graph(x):
        return np.asarray(x)  # TensorFlow raises NotImplementedError: a symbolic tensor

    message = run_as_learner(lambda: numpy_inside_a_graph(tf.constant([1.0])))
    assert message.startswith("your function raised NotImplementedError: Cannot convert a symbolic")
    with pytest.raises(NotAttempted):  # the learner's own, as in the template
        with learner_code():
            raise NotImplementedError("Write your answer here, then run the check below.")


@pytest.mark.timeout(60)
def test_a_time_limit_off_the_main_thread_leaves_the_interpreter_fast(budget):
    """Clearing an async exception that was never set left CPython 3.11's eval loop on its slow
    path for good; a profile hook (forbid's) then made a one-line answer run for minutes."""

    def worker():
        with contextlib.suppress(Wrong), learner_code("your loop"):
            time.sleep(0.01)  # ends before its time limit: nothing to deliver

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(30)
    start = time.monotonic()
    assert _forbidden_check(lambda x: x + x).passed
    sum(range(200_000))
    assert time.monotonic() - start < 5


def test_every_target_a_check_forbids_exists():
    """A renamed helper would silently stop being forbidden: each target must resolve to code."""
    from tfcourse.exercises import ch04, ch05, ch09

    targets = [
        *ch04._CHECK_HELPERS,
        *ch05._CHECK_HELPERS,
        *ch05._LIBRARY_ATTENTION,
        *ch09._CHECK_HELPERS,
        *(t for t in ch09.LIBRARY_ATTENTION if not t.startswith("keras_hub.")),  # optional
        "keras.layers.SimpleRNNCell",
        "tfcourse.decoding",
        "tfcourse.litert.quantize",
        "tfcourse.litert.dequantize",
    ]
    for target in targets:
        assert _learner._code_objects(target), target
