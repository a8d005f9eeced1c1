"""Loaded by every Python process a grading kernel starts (through PYTHONPATH): a write fence.

When ``TFCOURSE_SANDBOX`` names a folder, an audit hook (PEP 578) refuses, with `PermissionError`:
writing, creating, renaming or deleting anything outside that folder; running programs other
than this Python (which loads this fence again); and starting Python without it (`-I`, `-E`,
`-S`, or an environment that drops the fence). It keeps a careless or mischievous submission
from harming the grader's machine; it is not a security boundary against someone who targets it
(ctypes and C extensions can go around an audit hook), so grade untrusted work in a container.
"""

import os
import sys

_ROOT = os.environ.get("TFCOURSE_SANDBOX")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_PATH_EVENTS = {
    "os.remove": 1,
    "os.rmdir": 1,
    "os.mkdir": 1,
    "os.rename": 2,
    "os.truncate": 1,
    "os.chmod": 1,
    "os.chown": 1,
    "os.link": 2,
    "os.symlink": 2,
    "os.utime": 1,
    "shutil.rmtree": 1,
    "shutil.chown": 1,
}
_ALWAYS_ALLOWED = ("/dev/null",)
_BANNED_EVENTS = ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "pty.spawn")


def _inside(path, root):
    if isinstance(path, int):
        return True  # an already open file descriptor
    path = os.fsdecode(path)
    full = os.path.realpath(os.path.join(os.getcwd(), path))
    return full in _ALWAYS_ALLOWED or full == root or full.startswith(root + os.sep)


def _python_child_ok(args, env):
    argv = [os.fsdecode(a) for a in args] if isinstance(args, (list, tuple)) else []
    if not argv or os.path.realpath(argv[0]) != os.path.realpath(sys.executable):
        return False
    if any(flag in argv[1:] for flag in ("-I", "-E", "-S")):
        return False
    if env is not None:
        fence = os.path.dirname(os.path.abspath(__file__))
        env = {os.fsdecode(k): os.fsdecode(v) for k, v in env.items()}
        if env.get("TFCOURSE_SANDBOX") != _ROOT or fence not in env.get("PYTHONPATH", ""):
            return False
    return True


def _install(root):
    busy = []

    def hook(event, args):
        if busy:
            return
        busy.append(1)
        try:
            refusal = _refusal(event, args, root)
        finally:
            busy.pop()
        if refusal:
            sys.stderr.write(f"[tfcourse grader] refused: {refusal}\n")
            raise PermissionError(f"the grader does not allow this: {refusal}")

    sys.addaudithook(hook)


def _refusal(event, args, root):
    if event == "open":
        path, mode, flags = args
        writing = any(c in mode for c in "wax+") if isinstance(mode, str) else flags & _WRITE_FLAGS
        if writing and path is not None and not _inside(path, root):
            return f"writing {os.fsdecode(path)!s} outside the submission's folder"
    elif event in _PATH_EVENTS:
        for path in args[: _PATH_EVENTS[event]]:
            if path is not None and not _inside(path, root):
                return f"{event} on {os.fsdecode(path)!s}, outside the submission's folder"
    elif event == "subprocess.Popen":
        executable, argv, _cwd, env = args
        if not _python_child_ok(argv if executable is None else [executable, *argv[1:]], env):
            return f"running {argv!r}"
    elif event.startswith(_BANNED_EVENTS):
        return f"{event} {args[0]!r}"
    return None


def _chain():
    """Run the `sitecustomize` this one hides on the path, if any (a test suite's, a distro's)."""
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.realpath(__file__))
    path = [p for p in sys.path if os.path.realpath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is not None and spec.loader is not None:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


if _ROOT:
    _install(os.path.realpath(_ROOT))
_chain()
