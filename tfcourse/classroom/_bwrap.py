"""The Linux sandbox each graded notebook runs in: bubblewrap namespaces and resource limits.

`tfcourse grade` starts each submission's worker (and so its kernel, and every process the kernel
starts) inside `bwrap` with:

- no network: its own network namespace, with only a loopback of its own;
- its own PID namespace: it sees and can signal only its own processes, and all of them die with it;
- its own IPC and UTS namespaces; as an unprivileged user, in a user namespace of its own (when
  the grader runs as root, its program runs as a user id of its own, with no capabilities);
- read-only: the operating system's files, the Python installation, the virtual environment, the
  `tfcourse` package and the datasets. Not the course's `notebooks/` (the solutions), not the
  judges of the two-part checks (`tfcourse.exercises.judges`, shown as an empty folder), not the
  submissions folder, not the grader's cache, not any other scratch folder or home;
- a private scratch folder, ``/tmp`` and ``/dev/shm``, in memory and size-limited, gone at its end;
- limits per process on memory (address space), file size, open files and CPU time, and a limit on
  the number of processes of its user namespace (a fork bomb stops there).

A machine without `bwrap` or user namespaces (macOS, Windows, some containers) cannot build it:
`problem()` says why and how to get one, and the grader refuses unless the instructor passes
``--unsafe-no-sandbox``.
"""

from __future__ import annotations

import itertools
import os
import resource
import shutil
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: Where the scratch folder is inside the sandbox.
SCRATCH = "/grading"
#: When the grader runs as root, each sandbox runs as a user id of its own from here on: above any
#: system or human account, with no capabilities. Its own id gives each sandbox its own process
#: count (RLIMIT_NPROC counts per user), however many run at once.
FIRST_UID = 100_000
_UIDS = itertools.count()
_UIDS_LOCK = threading.Lock()


def _sandbox_uid() -> int:
    with _UIDS_LOCK:
        return FIRST_UID + next(_UIDS) % 100_000


_HOW = (
    "Grade on Linux with bubblewrap: `sudo apt-get install bubblewrap` on Debian or Ubuntu (user "
    "namespaces must be allowed: `sysctl kernel.unprivileged_userns_clone=1` where the kernel has "
    "that switch). On macOS or Windows, grade in a Linux VM, in WSL2, or in a Linux container run "
    "with `--security-opt seccomp=unconfined` (Docker) so that bubblewrap can make namespaces."
)


@dataclass(frozen=True)
class Box:
    """What one sandbox may use.

    Attributes:
        memory: Bytes of address space per process (TensorFlow reserves more than it touches).
        processes: Processes and threads in the sandbox's user namespace, in all.
        file_size: Bytes of the largest file a process may write.
        cpu_seconds: CPU seconds per process.
        scratch_size: Bytes of the in-memory scratch folder, and again of ``/tmp``.
        open_files: File descriptors per process.
    """

    memory: int = 8 * 2**30
    processes: int = 1024
    file_size: int = 2**30
    cpu_seconds: int = 3600
    scratch_size: int = 2**30
    open_files: int = 4096


def problem() -> str | None:
    """Why no sandbox can be made here, with what to do instead; None when one can."""
    if not sys.platform.startswith("linux"):
        return f"the grader's sandbox needs Linux, and this is {sys.platform}. {_HOW}"
    if shutil.which("bwrap") is None:
        return f"the grader's sandbox needs bubblewrap (`bwrap`), which is not installed. {_HOW}"
    try:
        probe = subprocess.run(
            command(["/bin/true"], Box()), capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bubblewrap could not start a sandbox ({error}). {_HOW}"
    if probe.returncode != 0:
        reason = " ".join(probe.stderr.split())[:200]
        return f"bubblewrap could not start a sandbox ({reason}). {_HOW}"
    return None


def _read_only() -> list[Path]:
    """The folders a kernel reads: the system, Python, the virtual environment, the course."""
    from tfcourse import _paths
    from tfcourse.data._registry import datasets_dir

    package = Path(__file__).resolve().parents[1]
    folders = {Path(sys.base_prefix), Path(sys.prefix), package, datasets_dir()}
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        folders.add(Path(sysconfig.get_paths()[name]))
    # Folders on the path that hold installed packages (an editable install's finder, user sites),
    # and the instructor's own modules on PYTHONPATH.
    folders.update(Path(p) for p in sys.path if p and Path(p).is_dir() and "site-packages" in p)
    python_path = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    folders.update(Path(p) for p in python_path if p and Path(p).is_dir())
    notebooks = _paths.notebooks_dir().resolve()
    real = {f.resolve() for f in folders if f.exists()}
    return sorted(f for f in real if not _contains(f, notebooks))


def hidden() -> list[Path]:
    """The course's folders that hold expected answers, shown empty in the sandbox: the judges."""
    judges = Path(__file__).resolve().parents[1] / "exercises" / "judges"
    return [judges] if judges.is_dir() else []


def _contains(folder: Path, inner: Path) -> bool:
    """Whether binding `folder` would show `inner` too."""
    return inner == folder or folder in inner.parents


def _system() -> list[str]:
    """Bind the operating system read-only, keeping its merged-/usr symlinks as links."""
    args = ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    return args


def command(
    argv: Sequence[str],
    box: Box,
    *,
    env: dict[str, str] | None = None,
    read_only: Sequence[Path] = (),
) -> list[str]:
    """The command that runs `argv` in a sandbox: ``bwrap ... -- argv``.

    Args:
        argv: The program and its arguments, run with the scratch folder as its folder.
        box: The sizes of the scratch folder and ``/tmp``.
        env: Its whole environment (nothing else of the grader's is passed).
        read_only: More folders to show it, read-only, at the same paths.
    """
    # As root, no user namespace: its program then runs as a user id of its own (see FIRST_UID).
    unshare = (
        ["--unshare-all"]
        if os.geteuid()
        else [
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-uts",
            "--unshare-cgroup-try",
        ]
    )
    args = ["bwrap", *unshare, "--die-with-parent", "--new-session", *_system()]
    args += ["--proc", "/proc", "--dev", "/dev"]
    # The in-memory folders first, so that a course or a venv under /tmp is bound on top of them.
    in_memory = ("/tmp", SCRATCH, "/dev/shm")  # /dev/shm: semaphores (multiprocessing)
    for folder in in_memory:
        args += ["--perms", "1777", "--size", str(box.scratch_size), "--tmpfs", folder]
    folders = [
        f for f in [*_read_only(), *map(Path, read_only)] if f.parts[1] not in ("usr", "etc")
    ]
    # The folders bwrap makes on the way to a bind are root's alone (0700): open them to all.
    parents = {p for f in folders for p in f.parents if p != Path("/")}
    for parent in sorted(parents - {Path(folder) for folder in in_memory}):
        args += ["--perms", "0755", "--dir", str(parent)]
    for folder in folders:
        args += ["--ro-bind", str(folder), str(folder)]
    for folder in hidden():  # an empty, read-only folder in its place
        args += ["--perms", "0555", "--size", "4096", "--tmpfs", str(folder)]
    args += ["--chdir", SCRATCH, "--clearenv", "--setenv", "USER", "student"]
    args += ["--setenv", "LOGNAME", "student"]  # a user id with no account: say who it is
    for name, value in (env or {}).items():
        args += ["--setenv", name, value]
    if os.geteuid() == 0:
        # Root is never held to RLIMIT_NPROC, and root in the sandbox could undo its mounts: the
        # program runs as a user id of its own, with no capabilities.
        uid = _sandbox_uid()
        drop = f"--reuid={uid} --regid={uid} --clear-groups --inh-caps=-all --bounding-set=-all"
        argv = ["setpriv", *drop.split(), "--", *argv]
    return [*args, "--", *argv]


def limit(box: Box) -> None:
    """Set this process's resource limits to `box`'s (a `preexec_fn` for the sandbox's Popen).

    The limits pass to every process started inside. The process count is counted in the
    sandbox's own user namespace, so it neither counts the grader's processes nor lets the
    sandbox's escape it.
    """
    for name, value in [
        (resource.RLIMIT_AS, box.memory),
        (resource.RLIMIT_FSIZE, box.file_size),
        (resource.RLIMIT_CPU, box.cpu_seconds),
        (resource.RLIMIT_NOFILE, box.open_files),
        (resource.RLIMIT_NPROC, box.processes),
        (resource.RLIMIT_CORE, 0),
    ]:
        resource.setrlimit(name, (value, value))
