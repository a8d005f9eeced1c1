"""Running learner code inside a check: a time budget, and failures told in plain words.

Every line of a check that runs the learner's code, directly (calling an answer) or not (iterating
a dataset it returned, `tape.gradient` through its custom gradient, reading what it wrote), runs
inside `learner_code` or through `call` or `take_all`. Whatever goes wrong there becomes `Wrong`,
never the "bug in the course" error, and never hangs the notebook.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import importlib
import inspect
import re
import signal
import sys
import threading
import time
import types
from collections.abc import Iterator, Sequence
from typing import Any

from tfcourse.exercises._framework import NotAttempted, Wrong, _describe, _one_line

#: Seconds one run of learner code may take before the check stops it. Tests lower it.
TIME_BUDGET = 30.0
#: The most elements `take_all` reads from a learner's dataset unless a check says otherwise.
ELEMENT_CAP = 10_000


class _OutOfTime(BaseException):
    """Raised into learner code when its time is up. A BaseException, so `except Exception` in the
    learner's code cannot swallow it."""


@contextlib.contextmanager
def learner_code(what: str = "your function", *, seconds: float | None = None) -> Iterator[None]:
    """Run the block as learner code: its failures become `Wrong`, and it gets a time budget.

    ``NotImplementedError`` raised by the learner's code (the unanswered template) becomes
    `NotAttempted`; one raised inside TensorFlow or Keras is a mistake like any other. `SystemExit`
    and a ``KeyboardInterrupt`` the learner raised become `Wrong`; a real interrupt (the learner
    pressing stop, a SIGINT) still stops the cell. Blocks may nest; the earliest deadline wins.

    Args:
        what: What the block runs, in the learner's words, e.g. ``"iterating your dataset"``.
        seconds: The time budget; `TIME_BUDGET` when None. Code blocked inside one TensorFlow op is
            stopped when the op returns; `take_all` bounds a dataset that blocks.

    Raises:
        Wrong: If the block raises, exits or runs out of time.
        NotAttempted: If it raises `NotImplementedError`.
    """
    budget = TIME_BUDGET if seconds is None else seconds
    stop = _UserStop()
    calls = _ForbiddenCalls()
    try:
        with _time_limit(budget), stop.watch(), calls.watch():
            yield
    except Wrong:
        calls.raise_if_any()
        raise
    except NotAttempted:
        raise
    except NotImplementedError as error:
        if _raised_by_library(error):  # e.g. TensorFlow's ".numpy() is only available eagerly"
            calls.raise_if_any()
            raise Wrong(f"{what} raised {_plain_error(error)}") from error
        raise NotAttempted from error
    except _OutOfTime:
        raise Wrong(
            f"{what} ran for more than {budget:g} s, the time limit, and was stopped: "
            "look for an endless loop, a long sleep, or a dataset that never ends."
        ) from None
    except KeyboardInterrupt as error:
        if stop.pressed:
            raise
        raise Wrong(f"{what} raised KeyboardInterrupt; return your answer instead.") from error
    except SystemExit as error:
        raise Wrong(
            f"{what} called sys.exit({error.code!r}), which would stop the notebook: "
            "return your answer instead."
        ) from error
    except BaseException as error:
        calls.raise_if_any()
        raise Wrong(f"{what} raised {_plain_error(error)}") from error
    calls.raise_if_any()


def call(fn: Any, *args: Any, name: str = "your function", **kwargs: Any) -> Any:
    """Call the learner's function as learner code (see `learner_code`) and return its result.

    Raises:
        NotAttempted: If `fn` is None or raises `NotImplementedError` (the unanswered template).
        Wrong: If it is not callable, raises anything else, exits, or runs out of time.
    """
    if fn is None:
        raise NotAttempted
    if not callable(fn):
        raise Wrong(f"expected a function, but got {_describe(fn)}. Pass the function itself.")
    with learner_code(name):
        return fn(*args, **kwargs)


def take_all(
    dataset: Any,
    *,
    name: str = "your dataset",
    limit: int = ELEMENT_CAP,
    seconds: float | None = None,
) -> list[Any]:
    """One pass over a learner's `tf.data.Dataset`, with an element cap and a time budget.

    The pass runs on a helper thread, so that even a dataset blocked inside TensorFlow cannot hang
    the notebook; a pass that hits a limit is stopped at its next element.

    Args:
        dataset: The learner's dataset.
        name: What to call it in a message.
        limit: The most elements a right answer can have; one more means it repeats.
        seconds: The time budget; `TIME_BUDGET` when None.

    Returns:
        The elements, as the dataset yields them.

    Raises:
        Wrong: If it never ends, yields more than `limit` elements, takes longer than `seconds`,
            or fails while producing an element.
    """
    import tensorflow as tf

    budget = TIME_BUDGET if seconds is None else seconds
    with learner_code(f"asking {name} for its length"):
        infinite = int(dataset.cardinality()) == int(tf.data.INFINITE_CARDINALITY)
    if infinite:
        raise Wrong(f"{name} never ends (it repeats forever): remove `repeat()`.")
    elements: list[Any] = []
    failure: list[BaseException] = []
    done = threading.Event()
    worker = threading.Thread(
        target=_drain, args=(dataset, elements, failure, limit + 1, done), daemon=True
    )
    worker.start()
    worker.join(budget)
    done.set()  # a worker still running stops at its next element
    if worker.is_alive():
        raise Wrong(
            f"{name} gave {len(elements):,} elements in {budget:g} s, the time limit, without "
            "ending: a step is too slow or waits forever, or the dataset never ends."
        )
    if failure:
        with learner_code(f"iterating {name}"):
            raise failure[0]
    if len(elements) > limit:
        raise Wrong(
            f"{name} gave more than {limit:,} elements, more than it can hold if it reads its "
            "input once: it repeats or never ends; remove `repeat()`."
        )
    return elements


def _drain(
    dataset: Any, elements: list[Any], failure: list[BaseException], most: int, done: Any
) -> None:
    try:
        for element in dataset:
            elements.append(element)
            if len(elements) >= most or done.is_set():
                return
    except BaseException as error:  # reported on the check's thread, as the learner's error
        failure.append(error)


_LIBRARIES = re.compile(r"(tensorflow|keras|tf_keras|numpy|jax|torch)(\.|$)")


def _raised_by_library(error: BaseException) -> bool:
    """Whether `error`, or an error it was raised from, came from a library's innermost frame.

    TensorFlow and Keras re-raise an error with a filtered traceback, so the whole chain is read.
    """
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        traceback = link.__traceback__
        while traceback is not None and traceback.tb_next is not None:
            traceback = traceback.tb_next
        if traceback is not None and _LIBRARIES.match(
            str(traceback.tb_frame.f_globals.get("__name__", ""))
        ):
            return True
        link = link.__cause__ or link.__context__
    return False


_INTERNALS = re.compile(r"\{\{(function_)?node [^}]*\}\}|\s*name:\s*$|\[\[.*?\]\]")


def _plain_error(error: BaseException) -> str:
    """An exception as one short line, ``"Type: message"``, without TensorFlow's graph internals."""
    lines = [_INTERNALS.sub("", line).strip() for line in str(error).splitlines()]
    lines = [line for line in lines if line]
    name = type(error).__name__
    if lines and lines[0] == "in user code:":  # tf.function: the message is the last line
        lines = [re.sub(rf"^{re.escape(name)}:\s*", "", lines[-1])]
    text = lines[0] if lines else ""
    return _one_line(f"{name}: {text}" if text else name, limit=200)


_FORBIDDEN: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar(
    "forbidden", default=()
)


@contextlib.contextmanager
def forbid(target: str | Sequence[str], message: str) -> Iterator[None]:
    """Within the block, learner code that calls `target` is `Wrong`, with `message`.

    For the course's own answer to an exercise, so that wrapping it does not pass: ``target`` is a
    dotted name, ``"tfcourse.decoding.beam_search"``, or a class, ``"keras.layers.SimpleRNNCell"``
    (any of the methods it defines), or a module, ``"tfcourse.decoding"`` (every function and
    method defined in it), or a list of them. A call counts however the learner reached it: an
    alias, a subclass, a wrapper. Only code written in the target's own file counts, so the
    methods that `collections.namedtuple` gives every class are never forbidden. A target that
    cannot be imported (an optional package) is skipped. Blocks nest.
    """
    targets = [target] if isinstance(target, str) else list(target)
    token = _FORBIDDEN.set((*_FORBIDDEN.get(), *[(name, message) for name in targets]))
    try:
        yield
    finally:
        _FORBIDDEN.reset(token)


def _code_objects(target: str) -> list[Any]:
    try:
        value: Any = importlib.import_module(target)
    except ImportError:
        module_name, _, attribute = target.rpartition(".")
        try:
            value = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError):
            return []  # an optional package this machine lacks: nothing to call
    if isinstance(value, types.ModuleType):  # every function and method the module defines
        defined = [v for v in vars(value).values() if getattr(v, "__module__", None) == target]
        functions = [f for v in defined for f in (vars(v).values() if isinstance(v, type) else [v])]
        home = getattr(value, "__file__", None)
    elif isinstance(value, type):
        functions = list(vars(value).values())
        home = getattr(sys.modules.get(value.__module__), "__file__", None)
    else:
        functions = [value]
        home = None
    codes = []
    for function in functions:
        function = getattr(function, "__func__", function)  # classmethod, staticmethod
        code = getattr(inspect.unwrap(function), "__code__", None) if callable(function) else None
        if code is not None and (home is None or code.co_filename == home):
            codes.append(code)
    return codes


class _ForbiddenCalls:
    """Watches learner code for calls into the functions `forbid` named (a profile hook)."""

    def __init__(self) -> None:
        self.messages: dict[Any, str] = {}
        for target, message in _FORBIDDEN.get():
            for code in _code_objects(target):
                self.messages.setdefault(code, message)
        self.found: str | None = None

    @contextlib.contextmanager
    def watch(self) -> Iterator[None]:
        if not self.messages:
            yield
            return
        previous = sys.getprofile()
        messages = self.messages

        def hook(frame: Any, event: str, arg: Any) -> None:
            if event == "call" and self.found is None and frame.f_code in messages:
                self.found = messages[frame.f_code]
            if previous is not None:
                previous(frame, event, arg)

        sys.setprofile(hook)
        try:
            yield
        finally:
            sys.setprofile(previous)

    def raise_if_any(self) -> None:
        if self.found is not None:
            raise Wrong(self.found)


class _UserStop:
    """Tells a learner's ``raise KeyboardInterrupt`` from the learner pressing stop (SIGINT)."""

    def __init__(self) -> None:
        self.pressed = False

    @contextlib.contextmanager
    def watch(self) -> Iterator[None]:
        if not _on_main_thread():
            yield
            return

        def pressed(signum: int, frame: Any) -> None:
            self.pressed = True
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGINT, pressed)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _time_limit(seconds: float) -> contextlib.AbstractContextManager[None]:
    """Raise `_OutOfTime` into this thread after `seconds`.

    On the main thread (where Jupyter runs cells) a SIGALRM timer interrupts even a `time.sleep`;
    elsewhere a timer thread raises into this one between two Python bytecodes.
    """
    if _on_main_thread() and hasattr(signal, "setitimer"):
        return _alarm(seconds)
    return _async_raise_after(seconds)


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    armed = True

    def ring(signum: int, frame: Any) -> None:
        nonlocal armed
        if armed:
            armed = False
            raise _OutOfTime

    previous = signal.signal(signal.SIGALRM, ring)
    start = time.monotonic()
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    if 0 < outer < seconds:  # an enclosing block (or a test runner's timeout) ends sooner
        signal.setitimer(signal.ITIMER_REAL, outer)
    try:
        yield
    finally:
        armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - start), 1e-3))


@contextlib.contextmanager
def _async_raise_after(seconds: float) -> Iterator[None]:
    target = ctypes.c_ulong(threading.get_ident())
    lock = threading.Lock()
    armed, fired, delivered = True, False, False

    def ring() -> None:
        nonlocal fired
        with lock:
            if armed:
                fired = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(target, ctypes.py_object(_OutOfTime))

    timer = threading.Timer(seconds, ring)
    timer.daemon = True
    timer.start()
    try:
        yield
    except _OutOfTime:
        delivered = True
        raise
    finally:
        with lock:
            armed = False
        timer.cancel()
        # Drop an exception set but not yet delivered. Only then: on CPython 3.11, clearing when
        # nothing is pending leaves the interpreter's "async exception" flag set, and every
        # thread then takes the slow path of the eval loop at every instruction, for good.
        if fired and not delivered:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(target, None)
