"""The `tfcourse` command: doctor, lab, board, run, release, grade, data, site and dev.

Run `tfcourse --help`.

Bad arguments print a message and exit with status 2, never a traceback. Introduced in
`00_welcome_and_setup`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from tfcourse._paths import notebooks_dir
from tfcourse._stress import PROFILES

if TYPE_CHECKING:
    from tfcourse.notebooks import RunResult

TIMINGS_START, TIMINGS_END = "<!-- notebook-timings:start -->", "<!-- notebook-timings:end -->"
STRESS_START, STRESS_END = "<!-- stress:start -->", "<!-- stress:end -->"


class _UsageError(Exception):
    """A bad argument found after parsing; reported like argparse's own errors (exit 2)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfcourse", description="Run and check the tfcourse TensorFlow course."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("doctor", help="check that this machine can run the course")
    _add_lab(commands)
    _add_board(commands)
    run = commands.add_parser("run", help="execute notebooks headless and time them")
    run.add_argument(
        "chapters", nargs="*", metavar="NN", help="chapter numbers, e.g. 00 03 (default: all)"
    )
    run.add_argument("--timeout", type=_positive_int, default=600, help="seconds allowed per cell")
    run.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="write the timing table into FILE (BENCHMARKS.md)",
    )
    _add_busy_cores(run, default=0)
    _add_classroom(commands)
    _add_site(commands)
    data = commands.add_parser("data", help="list, verify or rebuild the embedded datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    data_commands.add_parser("list", help="list the datasets")
    verify = data_commands.add_parser("verify", help="check the dataset files' SHA-256")
    verify.add_argument("name", nargs="?", help="one dataset (default: all)")
    prepare = data_commands.add_parser(
        "prepare", help="rebuild a dataset's files from its source package"
    )
    prepare.add_argument("name")
    prepare.add_argument(
        "--update-checksums", action="store_true", help="accept new data (maintainers)"
    )
    dev = commands.add_parser("dev", help="tools for course authors")
    dev_commands = dev.add_subparsers(dest="dev_command", required=True, metavar="ACTION")
    execute = dev_commands.add_parser(
        "execute", help="execute notebooks in place and normalise them"
    )
    execute.add_argument("notebooks", nargs="+", type=Path)
    lint = dev_commands.add_parser("lint", help="check notebooks against the chapter template")
    lint.add_argument("notebooks", nargs="+", type=Path)
    release = dev_commands.add_parser(
        "release", help="write student copies of the given notebooks (see `tfcourse release`)"
    )
    release.add_argument("notebooks", nargs="+", type=Path)
    release.add_argument("--out", type=Path, required=True, help="folder for the student copies")
    figures = dev_commands.add_parser(
        "figures", help="tabulate the figures `stress --figures` collected, per machine profile"
    )
    figures.add_argument("file", type=Path, help="the JSON-lines file of `stress --figures`")
    stress = dev_commands.add_parser(
        "stress", help="run notebooks under nbval several times while other processes load the CPU"
    )
    stress.add_argument(
        "chapters", nargs="*", metavar="NN", help="chapter numbers, e.g. 00 03 (default: all)"
    )
    stress.add_argument(
        "--repeat", type=_positive_count, default=3, help="nbval runs per notebook (default: 3)"
    )
    stress.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="write the results table into FILE (BENCHMARKS.md)",
    )
    stress.add_argument(
        "--figures",
        type=Path,
        metavar="FILE",
        help="append each run's recorded figures to FILE as JSON lines (for the assert audit)",
    )
    stress.add_argument(
        "--profile",
        choices=list(PROFILES),
        default="busy-core",
        help="the machine to stand in for: "
        + "; ".join(f"{p.name}: {p.stands_for}" for p in PROFILES.values())
        + " (default: busy-core)",
    )
    _add_busy_cores(stress, default=None, default_text="the profile's")
    return parser


def _add_lab(commands: Any) -> None:
    lab = commands.add_parser(
        "lab", help="open your workspace (copies of the notebooks) in JupyterLab"
    )
    lab.add_argument("--port", type=int, default=None, help="port for JupyterLab")
    lab.add_argument(
        "--no-browser",
        action="store_true",
        help="do not open a browser; open the URL with ?token= that JupyterLab prints",
    )
    lab.add_argument(
        "--edition",
        choices=("full", "student"),
        help="full: solutions collapsed; student: solutions removed (asked on first launch)",
    )
    lab.add_argument(
        "--workspace",
        type=Path,
        metavar="DIR",
        help="your copies of the notebooks (default: $TFCOURSE_WORKSPACE or workspace/)",
    )
    lab.add_argument(
        "--reset",
        metavar="NN",
        help="replace your copy of chapter NN with a fresh one (the old one moves to backups/)",
    )


def _add_board(commands: Any) -> None:
    board = commands.add_parser("board", help="open TensorBoard on a folder of logs")
    board.add_argument(
        "logdir", nargs="?", type=Path, default=Path("logs"), help="the logs (default: ./logs)"
    )
    board.add_argument("--port", type=int, default=6006, help="port (default: 6006; 0: any)")


def _add_site(commands: Any) -> None:
    site = commands.add_parser(
        "site", help="build the course as a static web site, or serve it on this machine"
    )
    actions = site.add_subparsers(dest="site_command", required=True, metavar="ACTION")
    build = actions.add_parser(
        "build", help="build the site from the committed notebooks (nothing runs or downloads)"
    )
    build.add_argument("out", type=Path, metavar="OUT_DIR", help="a new or empty folder")
    serve = actions.add_parser("serve", help="serve a built site on http://127.0.0.1:PORT/")
    serve.add_argument(
        "out", nargs="?", type=Path, default=Path("site"), metavar="OUT_DIR",
        help="the built site (default: ./site)",
    )  # fmt: skip
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0: any)")


def _add_classroom(commands: Any) -> None:
    release = commands.add_parser(
        "release",
        help="(instructors) write the student notebooks: solutions out, nbgrader metadata in",
    )
    release.add_argument("out", type=Path, metavar="OUT_DIR", help="folder for the student copies")
    release.add_argument(
        "chapters", nargs="*", metavar="NN", help="chapter numbers, e.g. 00 03 (default: all)"
    )
    release.add_argument(
        "--package",
        action="store_true",
        help="write the whole student edition into OUT_DIR, ready to install: the package "
        "without its judges or answers, the datasets, and the student notebooks",
    )
    release.add_argument(
        "--with-judges",
        action="store_true",
        help="with --package: keep the checks' judges (answer keys), so that self-checks say "
        "right or wrong; for practice, not for graded work",
    )
    grade = commands.add_parser(
        "grade",
        help="(instructors) grade submitted notebooks offline into a CSV and feedback files",
    )
    grade.add_argument("submissions", type=Path, metavar="SUBMISSIONS_DIR")
    grade.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="CSV",
        help="the results CSV (one row per exercise)",
    )
    grade.add_argument("--jobs", type=_positive_count, default=None, help="kernels at once")
    grade.add_argument(
        "--timeout", type=_positive_int, default=900, help="seconds per notebook (default: 900)"
    )
    grade.add_argument(
        "--cell-timeout", type=_positive_int, default=300, help="seconds per cell (default: 300)"
    )
    grade.add_argument(
        "--chapter", metavar="NN", help="chapter of notebooks whose name does not start with NN_"
    )
    grade.add_argument(
        "--unsafe-no-sandbox",
        action="store_true",
        help="grade without the Linux sandbox (bubblewrap): only for submissions you trust",
    )
    grade.add_argument(
        "--fresh", action="store_true", help="grade everything again, ignoring finished grades"
    )
    grade.add_argument(
        "--shard",
        metavar="K/N",
        help="grade part K of N of the students, for several machines (then: tfcourse grade-merge)",
    )
    grade.add_argument(
        "--estimate",
        action="store_true",
        help="print how long grading would take (from BENCHMARKS.md), and grade nothing",
    )
    merge = commands.add_parser(
        "grade-merge",
        help="(instructors) merge the results of `tfcourse grade --shard K/N` runs into one",
    )
    merge.add_argument("--out", type=Path, required=True, metavar="CSV", help="the merged CSV")
    merge.add_argument("parts", type=Path, nargs="+", metavar="PART_CSV", help="each part's --out")


def _add_busy_cores(
    parser: argparse.ArgumentParser, *, default: int | None, default_text: str | None = None
) -> None:
    parser.add_argument(
        "--busy-cores",
        type=_count,
        default=default,
        metavar="N",
        help="keep N cores busy with `while True: pass` processes meanwhile "
        f"(default: {default_text or default})",
    )


def _whole_number(text: str, *, what: str, zero_ok: bool = False) -> int:
    if not text.isdigit() or (int(text) == 0 and not zero_ok):
        bound = "(0 or more)" if zero_ok else "above 0"
        raise argparse.ArgumentTypeError(f"expected a whole number of {what} {bound}, got {text!r}")
    return int(text)


def _positive_int(text: str) -> int:
    return _whole_number(text, what="seconds")


def _positive_count(text: str) -> int:
    return _whole_number(text, what="runs")


def _count(text: str) -> int:
    cores = os.cpu_count() or 1
    number = _whole_number(text, what="cores", zero_ok=True)
    if number > cores:
        raise argparse.ArgumentTypeError(f"this machine has {cores} cores, got {number}")
    return number


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tfcourse` console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    handlers = {
        "doctor": _doctor,
        "lab": _lab,
        "board": _board,
        "run": _run,
        "release": _release,
        "grade": _grade,
        "grade-merge": _grade_merge,
        "data": _data,
        "site": _site,
        "dev": _dev,
    }
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        print("tfcourse: interrupted", file=sys.stderr)
        return 130
    except _UsageError as error:
        parser.error(str(error))  # prints usage and exits with status 2
        raise  # unreachable; keeps type checkers content


def _doctor(args: argparse.Namespace) -> int:
    from tfcourse.doctor import FAIL, run_checks

    findings = run_checks()
    for finding in findings:
        print(finding)
    failed = [f.name for f in findings if f.status == FAIL]
    print(
        "\nProblems that stop the course: " + ", ".join(failed)
        if failed
        else "\nReady for the course."
    )
    return 1 if failed else 0


def _lab(args: argparse.Namespace) -> int:
    from tfcourse import lab

    workspace = (args.workspace or lab.default_workspace()).expanduser().absolute()
    try:
        if args.reset is not None:
            print("\n".join(lab.reset_chapter(workspace, args.reset, edition=args.edition)))
            print("Run `tfcourse lab` to open it.")
            return 0
        first = lab.recorded_edition(workspace) is None
        edition = args.edition or (_ask_edition() if first else None)
        done = lab.prepare(workspace, edition=edition)
    except ValueError as error:
        raise _UsageError(str(error)) from None
    print("\n".join([*done, _lab_greeting(workspace, lab.recorded_edition(workspace))]))
    sys.stdout.flush()
    command = lab.lab_command(workspace, port=args.port, browser=not args.no_browser)
    return subprocess.call(command, env=lab.lab_environment(workspace))


def _ask_edition() -> str:
    """Ask a learner at a terminal which edition to start with; elsewhere, the full one."""
    if not sys.stdin.isatty():
        return "full"
    answer = input(
        "First launch. Which notebooks do you want?\n"
        "  [f] full: solutions collapsed, to expand after you try (self-study)\n"
        "  [s] student: solutions removed (a class whose instructor grades your work)\n"
        "Choose f or s [f]: "
    )
    return "student" if answer.strip().lower().startswith("s") else "full"


def _lab_greeting(workspace: Path, edition: str | None) -> str:
    return (
        f"Your workspace: {workspace} ({edition} edition). Your answers stay there; the course's\n"
        "notebooks/ stay untouched. JupyterLab opens its START_HERE.md page. With --no-browser,\n"
        "open the http://127.0.0.1:PORT/lab...?token=... URL that JupyterLab prints below.\n"
        "Press Ctrl-C twice to stop it."
    )


def _serve_until_stopped(serving: AbstractContextManager[str], what: str) -> NoReturn:
    """Print ``{what} at {url}`` for the URL `serving` yields, and keep it up until Ctrl-C."""
    import time

    with serving as url:
        print(f"{what} at {url}", flush=True)
        print("Press Ctrl-C to stop it.", flush=True)
        while True:
            time.sleep(3600)


def _board(args: argparse.Namespace) -> int:
    from tfcourse import board

    if not args.logdir.is_dir():
        raise _UsageError(
            f"no folder {args.logdir}; pass the folder your notebook wrote its logs to "
            "(chapter 03 prints it as `logdir`)"
        )
    try:
        _serve_until_stopped(
            board.serve(args.logdir, port=args.port), f"TensorBoard serves {args.logdir}"
        )
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _site(args: argparse.Namespace) -> int:
    from tfcourse import site

    if args.site_command == "build":
        return _site_build(args.out)
    try:
        _serve_until_stopped(
            site.serving(args.out, port=args.port), f"tfcourse site serves {args.out}"
        )
    except ValueError as error:
        raise _UsageError(str(error)) from None
    except OSError as error:
        print(
            f"error: cannot serve on port {args.port}: {error.strerror}; "
            "pass another with --port N (0: any free port)",
            file=sys.stderr,
        )
        return 1


def _site_build(out: Path) -> int:
    import time

    from tfcourse import site

    started = time.monotonic()
    try:
        pages = site.build(out)
    except ValueError as error:
        raise _UsageError(str(error)) from None
    except site.SiteWarnings as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"built {len(pages)} pages into {out} in {time.monotonic() - started:.0f} s; "
        f"open them with `tfcourse site serve {out}`"
    )
    return 0


def find_notebooks(chapters: Sequence[str], folder: Path | None = None) -> list[Path]:
    """The notebooks for chapter numbers like ``["00", "3"]``, or all of them.

    Raises:
        _UsageError: For a chapter that is not a number or has no notebook.
    """
    folder = folder or notebooks_dir()
    available = {path.name[:2]: path for path in sorted(folder.glob("[0-9][0-9]_*.ipynb"))}
    if not chapters:
        return list(available.values())
    chosen = []
    for chapter in chapters:
        if not chapter.isdigit():
            raise _UsageError(f"chapter must be a number like 00 or 3, got {chapter!r}")
        key = f"{int(chapter):02d}"
        if key not in available:
            raise _UsageError(
                f"no notebook for chapter {key}; there are {', '.join(available) or 'none'}"
            )
        chosen.append(available[key])
    return chosen


def _release(args: argparse.Namespace) -> int:
    from tfcourse.classroom import package_edition, release_chapters

    if args.with_judges and not args.package:
        raise _UsageError("--with-judges goes with --package (the whole student edition)")
    if args.package:
        try:
            notebooks = package_edition(
                find_notebooks(args.chapters), args.out, with_judges=args.with_judges
            )
        except FileExistsError as error:
            raise _UsageError(str(error)) from None
        print(
            f"wrote the student edition to {args.out}: {len(notebooks)} chapter(s); students "
            f"install it with `python -m pip install -e {args.out}`"
        )
        return 0
    for path in release_chapters(find_notebooks(args.chapters), args.out):
        print(path)
    return 0


def _grade(args: argparse.Namespace) -> int:
    from tfcourse.classroom._cli import grade_command

    if not args.submissions.is_dir():
        raise _UsageError(f"no such folder: {args.submissions}")
    chapter = args.chapter
    if chapter is not None:
        chapter = find_notebooks([chapter])[0].name[:2]
    return grade_command(
        args.submissions,
        args.out,
        sources={path.name[:2]: path for path in find_notebooks([])},
        jobs=args.jobs,
        timeout=args.timeout,
        cell_timeout=args.cell_timeout,
        chapter=chapter,
        fresh=args.fresh,
        sandbox=not args.unsafe_no_sandbox,
        part=_shard_arg(args.shard),
        estimate_only=args.estimate,
    )


def _shard_arg(text: str | None) -> tuple[int, int] | None:
    from tfcourse.classroom._shard import parse_shard

    if text is None:
        return None
    try:
        return parse_shard(text)
    except ValueError as error:
        raise _UsageError(str(error)) from None


def _grade_merge(args: argparse.Namespace) -> int:
    from tfcourse.classroom._cli import merge_command

    try:
        return merge_command(args.out, args.parts)
    except ValueError as error:
        raise _UsageError(str(error)) from None


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from tfcourse._stress import busy_cores
    from tfcourse.bench import FIGURES_ENV
    from tfcourse.notebooks import execute

    paths = find_notebooks(args.chapters)
    results, figures = [], {}
    with busy_cores(args.busy_cores), tqdm(paths, unit="notebook", file=sys.stderr) as progress:
        for path in progress:
            progress.set_description(path.stem)
            with tempfile.TemporaryDirectory() as scratch:
                log = Path(scratch) / "figures.jsonl"
                os.environ[FIGURES_ENV] = str(log)  # the kernel inherits it
                try:
                    results.append(execute(path, timeout=args.timeout))
                finally:
                    del os.environ[FIGURES_ENV]
                figures[path.name] = read_figures(log)
    table = timings_table(results) + figures_table(figures)
    print(table)
    if args.record:
        busy = f" --busy-cores {args.busy_cores}" if args.busy_cores else ""
        record_timings(
            args.record, table, command=f"tfcourse run{busy} --record {args.record.name}"
        )
        print(f"\nrecorded in {args.record}")
    return 0 if all(result.ok for result in results) else 1


def timings_table(results: Sequence[RunResult]) -> str:
    """A Markdown table of notebook, status and seconds, with the total."""
    rows = ["| notebook | status | seconds |", "|---|---|---:|"]
    for result in results:
        status = "ok" if result.ok else f"FAILED: {result.error}"
        rows.append(f"| {result.path.name} | {status} | {result.seconds:.1f} |")
    total = sum(result.seconds for result in results)
    rows.append(f"| **total** | | **{total:.1f}** |")
    return "\n".join(rows)


def read_figures(path: Path) -> list[dict[str, Any]]:
    """The figures a notebook recorded with `tfcourse.record_figure`, in order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def figures_table(figures: dict[str, list[dict[str, Any]]]) -> str:
    """A Markdown table of the figures each notebook measured and asserted; empty if none."""
    rows = [
        f"| {notebook} | {figure['name']} | {figure['value']:.3g} {figure['unit']} |"
        for notebook, found in figures.items()
        for figure in found
    ]
    if not rows:
        return ""
    header = [
        "",
        "",
        "Figures the notebooks measured and asserted:",
        "",
        "| notebook | figure | value |",
        "|---|---|---:|",
    ]
    return "\n".join(header + rows)


def record_timings(path: Path, table: str, *, command: str | None = None) -> None:
    """Replace the table between the timing markers in `path` (created if missing)."""
    command = command or f"tfcourse run --record {path.name}"
    record_table(path, table, command=command, markers=(TIMINGS_START, TIMINGS_END))


def record_table(path: Path, table: str, *, command: str, markers: tuple[str, str]) -> None:
    """Replace the block between `markers` in `path` (created if missing) with `table`.

    The block says which machine measured it and which command did.
    """
    start, end = markers
    machine = f"{os.cpu_count()} CPU cores, Python {sys.version.split()[0]}"
    block = f"{start}\nMeasured on {machine} with `{command}`:\n\n{table}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + block + "\n"
    )
    path.write_text(text)


def _data(args: argparse.Namespace) -> int:
    from tfcourse import data

    if args.data_command == "list":
        for name in data.names():
            spec = data.spec(name)
            print(f"{name:10} {spec.summary} (splits: {', '.join(spec.splits)})")
        return 0
    if args.name is not None and args.name not in data.names():
        raise _UsageError(
            f"no dataset named {args.name!r}; choose one of {', '.join(data.names())}"
        )
    if args.data_command == "verify":
        problems = data.verify(args.name)
        for name, found in problems.items():
            print(f"{name}: ok" if not found else "\n".join(f"{name}: {p}" for p in found))
        return 1 if any(problems.values()) else 0
    try:
        folder = data.prepare(args.name, update_checksums=args.update_checksums)
    except data.DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{args.name}: rebuilt in {folder}, checksums match")
    return 0


def _stress(args: argparse.Namespace) -> int:
    from tfcourse._stress import busy_cores, profile, stress_once, stress_table

    paths = find_notebooks(args.chapters)
    machine = profile(args.profile)
    busy = machine.busy if args.busy_cores is None else args.busy_cores
    runs = []
    with busy_cores(busy):
        for path in paths:
            for attempt in range(1, args.repeat + 1):
                run = stress_once(path, machine)
                runs.append(run)
                if args.figures:
                    _append_figures(args.figures, run, machine.name, attempt)
                status = "ok" if run.ok else "FAILED"
                print(f"{path.name} run {attempt}/{args.repeat}: {status} ({run.seconds:.1f} s)")
                if not run.ok:
                    print(_indent_tail(run.output), flush=True)
    table = stress_table(runs, repeat=args.repeat, busy=busy, machine=machine)
    print("\n" + table)
    if args.record:
        command = (
            f"tfcourse dev stress {' '.join(args.chapters)} --profile {machine.name} "
            f"--repeat {args.repeat} --busy-cores {busy} --record {args.record.name}"
        )
        record_table(
            args.record,
            table,
            command=" ".join(command.split()),
            markers=stress_markers(machine.name),
        )
        print(f"\nrecorded in {args.record}")
    return 0 if all(run.ok for run in runs) else 1


def _figures(args: argparse.Namespace) -> int:
    from tfcourse._stress import figures_table

    if not args.file.is_file():
        hint = "write one with `tfcourse dev stress --figures`"
        raise _UsageError(f"no such file: {args.file}; {hint}")
    rows = []
    for number, line in enumerate(args.file.read_text().splitlines(), start=1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise _UsageError(f"{args.file}, line {number}: not JSON ({error.msg})") from None
    try:
        print(figures_table(rows))
    except ValueError as error:
        raise _UsageError(f"{args.file}: {error}") from None
    return 0


def _append_figures(path: Path, run: Any, profile_name: str, attempt: int) -> None:
    """Append one stress run's figures to `path`, one JSON object per line."""
    with open(path, "a", encoding="utf-8") as handle:
        for figure in run.figures:
            row = {"profile": profile_name, "notebook": run.path.name, "run": attempt, **figure}
            handle.write(json.dumps(row) + "\n")


def stress_markers(profile_name: str) -> tuple[str, str]:
    """The markers around one profile's stress table in BENCHMARKS.md (busy-core: the old ones)."""
    if profile_name == "busy-core":
        return STRESS_START, STRESS_END
    return f"<!-- stress:{profile_name}:start -->", f"<!-- stress:{profile_name}:end -->"


def _indent_tail(text: str, lines: int = 25) -> str:
    return "\n".join("    " + line for line in text.rstrip().splitlines()[-lines:])


def _dev(args: argparse.Namespace) -> int:
    import nbformat

    if args.dev_command == "stress":
        return _stress(args)
    if args.dev_command == "figures":
        return _figures(args)

    from tfcourse import notebooks

    missing = [str(path) for path in args.notebooks if not path.is_file()]
    if missing:
        raise _UsageError(f"no such notebook: {', '.join(missing)}")
    failures = 0
    for path in args.notebooks:
        if args.dev_command == "execute":
            result = notebooks.execute(path, write=True)
            print(
                f"{path}: {'ok' if result.ok else f'FAILED: {result.error}'} "
                f"({result.seconds:.1f} s)"
            )
            failures += not result.ok
        elif args.dev_command == "lint":
            problems = notebooks.structure_problems(nbformat.read(path, as_version=4))
            print(f"{path}: ok" if not problems else "\n".join(f"{path}: {p}" for p in problems))
            failures += bool(problems)
        else:
            from tfcourse.classroom import release_chapters

            print(f"{path} -> {release_chapters([path], args.out)[0]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
