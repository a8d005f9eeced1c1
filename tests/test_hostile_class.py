"""A hostile class, graded: each route of the security review (part B) and INSTRUCTORS.md's table.

The toy chapter 91 has two two-part exercises, so every verdict is the grader's judge's. The class:
two honest students, and one student per attack. Each attacker answers wrongly (or not at all)
and then tries to get points anyway, or to harm the others. Everyone is graded in one run, two
kernels at a time, in the sandbox. The test then checks that every attacker got 0 points, that the
honest students got every point, that nothing outside changed, that no connection left a
sandbox, and that no process outlived the grading.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tfcourse.classroom import companion_paths
from tfcourse.classroom._bwrap import problem as sandbox_problem
from tfcourse.classroom._cli import grade_command
from tfcourse.notebooks import release

pytestmark = pytest.mark.skipif(
    sandbox_problem() is not None, reason=f"no sandbox here: {sandbox_problem()}"
)

RIGHT = {
    "91_1": "def double(x):\n    return 2 * x",
    "91_2": "def add(a, b):\n    return a + b",
}
WRONG = {
    "91_1": "def double(x):\n    return x + 2",
    "91_2": "def add(a, b):\n    return a - b",
}
MARKER = f"tfcourse-hostile-{uuid.uuid4().hex[:12]}"
#: What the grader's listener sends whoever connects: seen in the sandbox only if one got out.
TOKEN = f"grader-{uuid.uuid4().hex[:12]}".encode()

#: Find the grader's private copy of the checks, as a student who reads the grader's source would.
PRIVATE = "private = [v for k, v in globals().items() if k.startswith('_tfcourse_checks_')][0]\n"

ATTACKS = {
    # Replace the outcome functions of the private copy: every check "passes" in the kernel.
    "forge_outcome": PRIVATE
    + (
        "forged = lambda *args, **kwargs: ('passed', 'forged')\n"
        "private.framework._outcome = forged\n"
        "private.split._outcome = forged\n"
    ),
    # Rewrite what the check cells display: probes say "passed", and a keyed report says so too.
    "forge_display": PRIVATE
    + (
        "import IPython.display as shown\n"
        "MIME = 'application/vnd.tfcourse.probe+json'\n"
        "real = shown.display\n"
        "def display(*objs, **kwargs):\n"
        "    for obj in objs:\n"
        "        if isinstance(obj, dict) and MIME in obj:\n"
        "            obj[MIME]['status'] = 'passed'\n"
        "    return real(*objs, **kwargs)\n"
        "shown.display = display\n"
        "key = [k for k in globals() if k.startswith('_tfcourse_checks_')][0].rsplit('_', 1)[1]\n"
        "real({'application/vnd.tfcourse.grades+json': {'key': key, 'results': [\n"
        "    {'exercise': '91.1', 'status': 'passed', 'message': 'ok'},\n"
        "    {'exercise': '91.2', 'status': 'passed', 'message': 'ok'}]}}, raw=True)\n"
    ),
    # Replace the probes: report right values, for inputs of the student's own choosing.
    "forge_seed": PRIVATE
    + (
        "import _classroom_checks as toy\n"
        "from IPython.display import display\n"
        "def replay(check, values):\n"
        "    def fake(answer=None):\n"
        "        display({'application/vnd.tfcourse.probe+json': {'check': check.name,\n"
        "            'seed': 0, 'status': 'observed', 'message': '',\n"
        "            'observed': values}}, raw=True)\n"
        "    return fake\n"
        "private.ch91.check_double_judged = replay(toy.check_double_judged,\n"
        "    [2 * x for x in toy.double_inputs(0)])\n"
        "private.ch91.check_add = replay(toy.check_add, [a + b for a, b in toy.add_inputs(0)])\n"
    ),
    # Read the instructor's solutions, the judges and a neighbour's notebook.
    "read_solutions": (
        "import glob, os\n"
        "paths = @SECRETS@\n"
        "found = [p for p in paths if os.path.exists(p)]\n"
        "for place in ('/tmp', '/home', '/root', '/run', '/var/tmp', '/srv', '/mnt', '/work'):\n"
        "    found += glob.glob(place + '/**/91_toy.ipynb', recursive=True)[:3]\n"
        "found = [p for p in found if not p.startswith('/grading/')]\n"
        "raise RuntimeError(f'read {found}')\n"
    ),
    # Kill every process it can see but itself and its parent: a neighbour's kernel, if visible.
    "kill_neighbour": (
        "import os, signal\n"
        "def parent(pid):\n"
        "    return int(open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[1])\n"
        "mine, pid = {os.getpid()}, os.getpid()\n"
        "while pid > 1:  # its own ancestors: the sandbox's reaper, the grader's worker\n"
        "    pid = parent(pid)\n"
        "    mine.add(pid)\n"
        "mine |= {int(t) for p in list(mine) for t in os.listdir(f'/proc/{p}/task')}  # threads\n"
        "seen = [int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) not in mine]\n"
        "hit = 0\n"
        "for pid in range(2, 65536):\n"
        "    if pid in mine:\n"
        "        continue\n"
        "    try:\n"
        "        os.kill(pid, signal.SIGKILL)\n"
        "        hit += 1\n"
        "    except OSError:\n"
        "        pass\n"
        "raise RuntimeError(f'saw {len(seen)} others, signalled {hit} processes')\n"
    ),
    # Drive another kernel: find its connection file.
    "connection_file": (
        "import glob, os\n"
        "from ipykernel import get_connection_file\n"
        "own = os.path.realpath(get_connection_file())\n"
        "places = ['/tmp', '/grading', os.path.expanduser('~'), '/run', '/var', '/root', '/home']\n"
        "found = {os.path.realpath(p) for place in places\n"
        "         for p in glob.glob(place + '/**/kernel-*.json', recursive=True)} - {own}\n"
        "raise RuntimeError(f'found {len(found)} other connection files')\n"
    ),
    # Write outside the scratch folder by routes an audit hook does not see.
    "write_outside": (
        "import os, sqlite3, _posixsubprocess, subprocess\n"
        "target = @OUTSIDE@\n"
        "results = []\n"
        "try:\n"
        "    fd = os.open(os.path.dirname(target), os.O_RDONLY)\n"
        "    os.open(os.path.basename(target) + '.fd', os.O_WRONLY | os.O_CREAT, dir_fd=fd)\n"
        "    results.append('dir_fd wrote')\n"
        "except OSError as error:\n"
        "    results.append(type(error).__name__)\n"
        "try:\n"
        "    sqlite3.connect(target + '.db').execute('create table t (x)')\n"
        "    results.append('sqlite wrote')\n"
        "except sqlite3.Error as error:\n"
        "    results.append(type(error).__name__)\n"
        "try:  # the fence of sitecustomize refuses it; the read-only course would too\n"
        "    subprocess.run(['sh', '-c', f'echo pwned > {target}.sh'], capture_output=True)\n"
        "except PermissionError:\n"
        "    results.append('sh refused')\n"
        "raise RuntimeError(f'writes: {results}')\n"
    ),
    # Leave a child behind that outlives the grading.
    "detached_child": (
        "import subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(613)',\n"
        f"                  '{MARKER}'], start_new_session=True,\n"
        "                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "raise RuntimeError('left a child behind')\n"
    ),
    # Start as many processes as it can.
    "fork_pressure": (
        "import subprocess, sys\n"
        "bomb = '''\n"
        "import os, time\n"
        "children = []\n"
        "while True:\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(3)\n"
        "        os._exit(0)\n"
        "    children.append(pid)\n"
        "print(len(children))\n"
        "'''\n"
        "done = subprocess.run([sys.executable, '-c', bomb], capture_output=True, text=True)\n"
        "raise RuntimeError(f'forked {done.stdout.strip()} before the limit')\n"
    ),
    # Reach the grader's machine over the network.
    "network": (
        "import socket\n"
        "try:  # the grader's listener answers with its token\n"
        "    reply = socket.create_connection(('127.0.0.1', @PORT@), timeout=3).recv(64)\n"
        "    outcome = f'got {reply!r}'\n"
        "except OSError as error:\n"
        "    outcome = type(error).__name__\n"
        "raise RuntimeError(f'network: {outcome}')\n"
    ),
    # Poison the grader's cache with a full grade for itself.
    "poison_cache": (
        "import json, os\n"
        "cache = @CACHE@\n"
        "try:\n"
        "    os.makedirs(cache, exist_ok=True)\n"
        "    with open(os.path.join(cache, 'poison.json'), 'w') as handle:\n"
        "        json.dump({'points': 3}, handle)\n"
        "    outcome = 'wrote'\n"
        "except OSError as error:\n"
        "    outcome = type(error).__name__\n"
        "raise RuntimeError(f'cache: {outcome}')\n"
    ),
}


def toy_chapter() -> nbformat.NotebookNode:
    """Chapter 91: two exercises whose checks are both two-part."""
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    nb = nbformat.v4.new_notebook(
        cells=[
            md("# A toy chapter of two-part checks"),
            code("import _classroom_checks as ch91"),
            md("## Exercises"),
            md("### Exercise 91.1 ★ Double\nWrite `double(x)`."),
            code("def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"),
            code("ch91.check_double_judged(double)"),
            md("### Exercise 91.2 ★★ Add\nWrite `add(a, b)`."),
            code("def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION"),
            code("ch91.check_add(add)"),
        ]
    )
    for number, cell in enumerate(nb.cells):
        cell.id = f"toy91-{number}"
    return nb


def answered(student: nbformat.NotebookNode, answers: dict[str, str], extra: str = "") -> Any:
    nb = nbformat.reads(nbformat.writes(student), as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        slug = grade_id.partition("-")[2]
        if grade_id.startswith("answer") and slug in answers:
            cell.source = answers[slug]
    if extra:  # the attack: a cell of the student's own, after the first answer, before its check
        first = next(
            i
            for i, cell in enumerate(nb.cells)
            if cell.metadata.get("nbgrader", {}).get("grade_id", "").startswith("answer")
        )
        nb.cells.insert(first + 1, nbformat.v4.new_code_cell(extra))
    return nb


class _Listener:
    """A TCP server on the grader's loopback that counts the connections it accepts."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port, self.accepted = self.server.getsockname()[1], 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.accepted += 1
            connection.sendall(TOKEN)
            connection.close()


def _tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _alive_with(marker: str) -> list[int]:
    from test_sandbox import _alive_with

    return _alive_with(marker)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, toy_kernel_path: str) -> Iterator[dict]:
    from test_grade import kernel_path, read_csv

    root = tmp_path_factory.mktemp("hostile")
    source = root / "source" / "91_toy.ipynb"
    source.parent.mkdir()
    nbformat.write(toy_chapter(), source)
    student = release(toy_chapter(), chapter="91")
    subs, out = root / "submissions", root / "results.csv"
    outside = root / "outside" / "written"
    outside.parent.mkdir()
    listener = _Listener()
    secrets = [
        str(source),
        str(Path(__file__).parent / "_toy_judges" / "_classroom_judges.py"),
        str(Path(__file__).parents[1] / "tfcourse" / "exercises" / "judges" / "ch00.py"),
        str(subs / "honest" / "91_toy.ipynb"),
    ]
    fill = {
        "SECRETS": secrets,
        "OUTSIDE": str(outside),
        "PORT": listener.port,
        "CACHE": str(companion_paths(out)[2]),
    }
    cases = {"honest": answered(student, RIGHT), "neighbour": answered(student, RIGHT)}
    for name, attack in ATTACKS.items():
        for placeholder, value in fill.items():
            attack = attack.replace(f"@{placeholder}@", repr(value))
        cases[name] = answered(student, WRONG, attack)
    for name, nb in cases.items():
        (subs / name).mkdir(parents=True)
        nbformat.write(nb, subs / name / "91_toy.ipynb")
    before = _tree(root / "source") | {f"subs/{k}": v for k, v in _tree(subs).items()}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", kernel_path(toy_kernel_path))
        status = grade_command(
            subs, out, sources={"91": source}, jobs=2, timeout=60, cell_timeout=30, fresh=True,
            sandbox=True,
        )  # fmt: skip
    listener.server.close()
    after = _tree(root / "source") | {f"subs/{k}": v for k, v in _tree(subs).items()}
    summary_path, _, cache = companion_paths(out)
    yield {
        "status": status,
        "summary": {r["student"]: r for r in read_csv(summary_path)},
        "rows": read_csv(out),
        "unchanged": before == after,
        "outside": sorted(p.name for p in outside.parent.iterdir()),
        "accepted": listener.accepted,
        "cache": cache,
        "students": list(cases),
    }


def problems(hostile: dict, student: str) -> str:
    return hostile["summary"][student]["problems"]


def test_the_honest_students_get_every_point(hostile):
    for student in ("honest", "neighbour"):
        assert hostile["summary"][student]["points"] == "3", problems(hostile, student)


@pytest.mark.parametrize("attacker", list(ATTACKS))
def test_every_attacker_gets_no_point(hostile, attacker):
    summary = hostile["summary"][attacker]
    assert summary["points"] == "0", summary
    rows = [r for r in hostile["rows"] if r["student"] == attacker]
    assert len(rows) == 2 and all(r["status"] != "passed" for r in rows), rows


def test_forged_probe_outputs_are_judged_and_fail(hostile):
    def feedback(student, exercise):
        rows = hostile["rows"]
        return next(r for r in rows if r["student"] == student and r["exercise"] == exercise)

    # The outcome function replaced: the probe never ran, so there was nothing to judge.
    assert "not what its probe sends" in feedback("forge_outcome", "91.1")["feedback"]
    assert "status that no probe sends" in feedback("forge_display", "91.2")["feedback"]
    assert "inputs that the grader did not choose" in feedback("forge_seed", "91.2")["feedback"]


def test_solutions_judges_and_other_submissions_cannot_be_read(hostile):
    assert "RuntimeError: read []" in problems(hostile, "read_solutions")


def test_no_other_process_can_be_signalled_and_the_neighbours_are_unharmed(hostile):
    assert "saw 0 others, signalled 0 processes" in problems(hostile, "kill_neighbour")
    assert hostile["summary"]["neighbour"]["points"] == "3"


def test_no_other_kernels_connection_file_is_visible(hostile):
    assert "found 0 other connection files" in problems(hostile, "connection_file")


def test_nothing_outside_the_scratch_folder_changes(hostile):
    tried = problems(hostile, "write_outside")
    assert "writes: [" in tried and "wrote" not in tried, tried
    assert hostile["outside"] == []
    assert hostile["unchanged"]


def test_no_process_outlives_the_grading(hostile):
    assert "left a child behind" in problems(hostile, "detached_child")
    assert _alive_with(MARKER) == []


def test_a_fork_bomb_stops_at_the_sandboxs_process_limit(hostile):
    forked = int(problems(hostile, "fork_pressure").split("forked ")[1].split()[0])
    assert 0 < forked < 1024


def test_no_connection_leaves_the_sandbox(hostile):
    # Connecting to the port number can succeed inside the sandbox, where its own kernel may
    # listen on the same number (its loopback is its own): only the grader's token would show a
    # way out. CI saw such a connection once.
    assert "network: " in problems(hostile, "network")
    assert TOKEN.decode() not in problems(hostile, "network")
    assert hostile["accepted"] == 0


def test_the_cache_cannot_be_poisoned(hostile):
    assert "cache: " in problems(hostile, "poison_cache")
    assert not (hostile["cache"] / "poison.json").exists()
    entries = [json.loads(p.read_text()) for p in hostile["cache"].glob("*.json")]
    # one entry per different notebook ("honest" and "neighbour" are the same bytes), each the
    # grader's own: rows of exercises, and only the honest one with points
    assert len(entries) == len(hostile["students"]) - 1
    assert all(set(e) == {"rows", "problems", "seconds", "window"} for e in entries)
    assert sorted(sum(r["points"] for r in e["rows"]) for e in entries)[-2:] == [0, 3]
