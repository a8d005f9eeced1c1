"""The course as a learner meets it: `tfcourse lab` and `tfcourse board` in headless Chromium.

One JupyterLab serves a fresh workspace for the whole module, and one Chromium drives it through
Playwright. Every step leaves a screenshot in ``test-artifacts/browser/`` (git ignores it). The
browser may reach this machine only: every request elsewhere is refused and recorded, and a test
fails if there was any.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from _chromium import keep_to_loopback
from playwright.sync_api import expect

from tfcourse import lab

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[1]
SHOTS = Path(os.environ.get("TFCOURSE_SCREENSHOTS", ROOT / "test-artifacts" / "browser"))
RUN_SECONDS = 240  # notebook 00 takes about 30 s on 2 idle cores; leave room for a busy machine


@dataclass
class Lab:
    """A running `tfcourse lab`: its start URL with the token, its workspace and what it printed."""

    url: str
    workspace: Path
    process: subprocess.Popen[str]
    reader: threading.Thread
    printed: list[str] = field(default_factory=list)

    def open_url(self, path: str) -> str:
        parts = urllib.parse.urlsplit(self.url)
        return urllib.parse.urlunsplit(parts._replace(path=path))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _follow(stream, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def _wait_for_token_url(
    process: subprocess.Popen[str], lines: queue.Queue[str], printed: list[str]
) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(queue.Empty):
            printed.append(lines.get(timeout=0.5))
            found = re.search(r"http://127\.0\.0\.1:\d+/\S*\?token=\w+", printed[-1])
            if found:
                return found.group(0)
    raise RuntimeError("tfcourse lab printed no URL with a token:\n" + "".join(printed[-40:]))


def _stop(process: subprocess.Popen[str], reader: threading.Thread | None = None) -> None:
    """Stop `tfcourse lab`, the JupyterLab it started and its kernels (one process group)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    with contextlib.suppress(ProcessLookupError):  # kernels that outlived the server
        os.killpg(process.pid, signal.SIGKILL)
    if reader is not None:
        reader.join(timeout=10)  # every writer is gone, so it reaches the end of the output
    process.stdout.close()


RUN_IN_THE_LAB = ("00_welcome_and_setup.ipynb", "01_eager_execution.ipynb")


def _course_status() -> tuple[str, dict[str, int]]:
    """What git says about the course's copies of the notebooks the tests run, and their times.

    Only those: other notebooks may be mid-edit by an author while the tests run.
    """
    paths = [f"notebooks/{name}" for name in RUN_IN_THE_LAB] + ["notebooks/.ipynb_checkpoints"]
    git = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return git, {name: (ROOT / "notebooks" / name).stat().st_mtime_ns for name in RUN_IN_THE_LAB}


@pytest.fixture(scope="module")
def course_status_before() -> tuple[str, dict[str, int]]:
    return _course_status()


@pytest.fixture(scope="module")
def running_lab(tmp_path_factory, course_status_before) -> Iterator[Lab]:
    """`tfcourse lab --no-browser` on a free loopback port, as a learner starts it."""
    workspace = tmp_path_factory.mktemp("learner") / "workspace"
    command = [
        sys.executable, "-m", "tfcourse.cli", "lab", "--no-browser", "--edition", "full",
        "--port", str(_free_port()), "--workspace", str(workspace),
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group, so that _stop reaches the kernels too
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_follow, args=(process.stdout, lines), daemon=True)
    reader.start()
    printed: list[str] = []
    try:
        url = _wait_for_token_url(process, lines, printed)
        yield Lab(url, workspace, process, reader, printed)
    finally:
        _stop(process, reader)


@pytest.fixture(scope="module")
def page(browser, running_lab, outside_requests):
    """One browser tab on the lab, shared by the tests in their order, as one learner's session."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    keep_to_loopback(context, outside_requests)
    tab = context.new_page()
    tab.set_default_timeout(60_000)
    try:
        yield tab
    finally:
        context.close()


@contextlib.contextmanager
def step(page, name: str) -> Iterator[None]:
    """Screenshot `page` as ``NN_name.png`` when the step ends, passed or failed."""
    try:
        yield
    finally:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.wait_for_timeout(1000)  # cells scrolled into view are drawn a moment later
        page.screenshot(path=str(SHOTS / f"{name}.png"))


def _centre(element) -> None:
    """Scroll the notebook so that `element` sits in the middle of the screen."""
    for _ in range(2):  # the first scroll draws the cells around it, which moves it
        element.evaluate("e => e.scrollIntoView({block: 'center'})")
        element.page.wait_for_timeout(500)


def _notebook(name: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "notebooks" / name, as_version=4)


def _open_from_start_page(page, title: str, file_name: str):
    """Click `title` on the start page; return the notebook panel that opens."""
    page.locator(".lm-TabBar-tab", has_text=lab.START_PAGE).click()
    page.locator(".jp-RenderedMarkdown a", has_text=title).click()
    panel = page.locator(".jp-NotebookPanel:visible")
    page.locator(".lm-TabBar-tab.lm-mod-current", has_text=file_name).wait_for()
    panel.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()
    # JupyterLab marks a notebook changed for a moment while its first kernel connects.
    page.locator(".lm-TabBar-tab.lm-mod-current:not(.jp-mod-dirty)", has_text=file_name).wait_for()
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$")).wait_for()
    return panel


def _menu(page, menu: str, item: str) -> None:
    """Choose `item` from the menu bar's `menu`, as a learner clicks it."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{re.escape(menu)}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def _run_all(page, panel) -> None:
    """Clear the outputs, Run → Run All Cells, and wait until no cell is queued or running."""
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$")).wait_for()
    _menu(page, "Edit", "Clear Outputs of All Cells")
    _menu(page, "Run", "Run All Cells")
    prompts = "[...panel.querySelectorAll('.jp-InputPrompt')].map(p => p.textContent)"
    page.wait_for_function(  # a cell is running or has run (a fast error ends the run at once)
        f"panel => {prompts}.some(text => /[*0-9]/.test(text))",
        arg=panel.element_handle(),
        timeout=60_000,
    )
    page.wait_for_function(
        f"panel => !{prompts}.some(text => text.includes('*'))",
        arg=panel.element_handle(),
        timeout=RUN_SECONDS * 1000,
        polling=500,
    )


def _save(page, workspace: Path, file_name: str) -> nbformat.NotebookNode:
    """Save the current notebook with Ctrl+S and read back what the lab wrote."""
    before = (workspace / file_name).stat().st_mtime_ns
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while (workspace / file_name).stat().st_mtime_ns == before and time.monotonic() < deadline:
        time.sleep(0.2)
    return nbformat.read(workspace / file_name, as_version=4)


def _errors(nb: nbformat.NotebookNode) -> list[str]:
    return [
        f"cell {index}: {output.ename}: {output.evalue}"
        for index, cell in enumerate(nb.cells)
        for output in cell.get("outputs", [])
        if output.output_type == "error"
    ]


def _exercises(nb: nbformat.NotebookNode) -> set[str]:
    """The exercise numbers of `nb`'s headings, such as ``{"00.1", "00.2"}``."""
    return set(re.findall(r"### Exercise (\d\d\.\d)", "".join(c.source for c in nb.cells)))


def _check_lines(text: str, mark: str) -> set[str]:
    """The exercises that check lines in `text` report with `mark` (✓, ✗ or "not attempted")."""
    if mark == "not attempted":
        return set(re.findall(r"Exercise (\d\d\.\d) \([^)\n]*\): not attempted", text))
    return set(re.findall(rf"{mark} Exercise (\d\d\.\d)", text))


def _shown(nb: nbformat.NotebookNode) -> str:
    """The text of every output the committed notebook shows."""
    return "\n".join(
        output.get("text", "") + output.get("data", {}).get("text/plain", "")
        for cell in nb.cells
        for output in cell.get("outputs", [])
    )


def test_lab_opens_the_start_page_with_no_launcher_and_no_news_prompt(page, running_lab):
    with step(page, "01_start_page"):
        page.goto(running_lab.url)
        heading = page.locator(".jp-RenderedMarkdown h1")
        heading.wait_for()
        page.wait_for_timeout(3000)  # JupyterLab asks about news a moment after it starts
        assert heading.inner_text().startswith("TensorFlow course: start here")
        assert page.locator(".jp-Launcher").count() == 0
        assert "news" not in page.locator(".Toastify").all_inner_texts().__str__().lower()
    assert "/lab/tree/START_HERE.md?token=" in running_lab.url


def test_start_page_lists_each_chapter_in_order_with_its_minutes_and_a_working_link(page):
    course = lab.chapters()
    rows = page.locator(".jp-RenderedMarkdown table").first.locator("tbody tr")
    assert rows.count() == len(course)
    for row, chapter in zip(rows.all(), course, strict=True):
        cells = row.locator("td").all_inner_texts()
        assert cells[:4] == [
            chapter.number,
            chapter.title,
            f"{chapter.teaching_minutes} min",
            f"{chapter.exercise_minutes} min",
        ]
        assert chapter.teaching_minutes > 0 and chapter.exercise_minutes > 0
    for chapter in course:  # each link opens its notebook in the lab
        _open_from_start_page(page, chapter.title, chapter.path.name)
        _menu(page, "File", "Close and Shut Down Notebook…")
        page.locator(".jp-Dialog .jp-mod-accept").click()
        page.locator(".jp-Dialog").wait_for(state="detached")


def test_notebook_00_opens_with_its_solutions_collapsed(page):
    nb = _notebook("00_welcome_and_setup.ipynb")
    hidden = sum(bool(c.metadata.get("jupyter", {}).get("source_hidden")) for c in nb.cells)
    with step(page, "02_notebook_00_opened"):
        panel = _open_from_start_page(page, "Welcome and setup", "00_welcome_and_setup.ipynb")
        placeholders = panel.locator(".jp-InputPlaceholder")
        expect(placeholders).to_have_count(hidden)  # cells far below are drawn a moment later
        assert hidden >= 4
    with step(page, "03_notebook_00_solution_collapsed"):
        _centre(placeholders.first)


def test_notebook_00_runs_all_cells_from_the_browser(page, running_lab):
    name = "00_welcome_and_setup.ipynb"
    committed = _notebook(name)
    images = _shown(committed).count("<Figure size")
    panel = page.locator(".jp-NotebookPanel:visible")
    with step(page, "04_notebook_00_run_all_finished"):
        _run_all(page, panel)
        saved = _save(page, running_lab.workspace, name)
    assert _errors(saved) == []
    code = [cell for cell in saved.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))

    outputs = panel.locator(".jp-OutputArea-output")
    with step(page, "05_notebook_00_checks_passed"):
        _centre(outputs.filter(has_text="✓ Exercise").first)
        shown = "\n".join(outputs.all_text_contents())
        assert _check_lines(shown, "✓") == _exercises(committed)
        # The chapter shows one wrong answer on purpose, to teach what a ✗ line says.
        assert _check_lines(shown, "✗") == _check_lines(_shown(committed), "✗")
    pictures = panel.locator(".jp-OutputArea-output img")
    with step(page, "06_notebook_00_plot"):
        _centre(pictures.first)
        assert pictures.count() == images >= 1
        widths = pictures.evaluate_all("imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
        assert all(width > 100 for width in widths), widths


def test_student_release_of_a_chapter_runs_with_every_check_not_attempted(page, running_lab):
    name = "01_eager_execution.ipynb"
    reset = subprocess.run(
        [sys.executable, "-m", "tfcourse.cli", "lab", "--reset", "01", "--edition", "student",
         "--workspace", str(running_lab.workspace)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    assert f"kept your copy as {lab.BACKUPS}/01_eager_execution." in reset.stdout
    with step(page, "07_student_01_run_all_finished"):
        panel = _open_from_start_page(page, "Eager execution", name)
        assert panel.locator(".jp-InputPlaceholder").count() == 0  # stubs are there to edit
        _run_all(page, panel)
        saved = _save(page, running_lab.workspace, name)
        outputs = panel.locator(".jp-OutputArea-output")
        _centre(outputs.filter(has_text="not attempted").first)
        shown = "\n".join(outputs.all_text_contents())
    assert _errors(saved) == []
    assert len(_exercises(saved)) >= 4
    assert _check_lines(shown, "not attempted") == _exercises(saved)
    assert _check_lines(shown, "✓") == set()


def test_the_course_notebooks_stay_unchanged(page, running_lab, course_status_before):
    """Autosave and Run All wrote to the learner's copies only."""
    assert _course_status() == course_status_before


def test_no_page_reached_beyond_this_machine(outside_requests):
    assert outside_requests == []


def _chapter_03_logs(logdir: Path) -> None:
    """Write the runs that chapter 03 writes: fit() with the TensorBoard callback, and a loop."""
    import keras
    import numpy as np
    import tensorflow as tf

    x, y = np.random.default_rng(0).random((64, 784), "float32"), np.arange(64) % 10
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10)])
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    tensorboard = keras.callbacks.TensorBoard(log_dir=str(logdir / "fit"), histogram_freq=1)
    model.fit(x, y, validation_data=(x, y), epochs=5, verbose=0, callbacks=[tensorboard])
    writer = tf.summary.create_file_writer(str(logdir / "loop"))
    with writer.as_default():
        for step_number, loss in enumerate([2.3, 1.2, 0.8]):
            tf.summary.scalar("loss", loss, step=step_number)
    writer.close()


def test_tfcourse_board_shows_chapter_03s_scalar_runs(browser, tf, tmp_path, outside_requests):
    logdir = tmp_path / "logs"
    _chapter_03_logs(logdir)
    process = subprocess.Popen(
        [sys.executable, "-m", "tfcourse.cli", "board", str(logdir), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    keep_to_loopback(context, outside_requests)
    tab = context.new_page()
    try:
        url = re.search(r"http://\S+/", process.stdout.readline()).group(0)
        with step(tab, "08_tensorboard_scalars"):
            tab.goto(url + "#scalars&tagFilter=loss")  # the loss of every run
            for run in ("fit/train", "fit/validation", "loop"):
                tab.get_by_text(run, exact=True).first.wait_for(timeout=60_000)
            tab.get_by_text("epoch_loss").first.wait_for()
            tab.get_by_text("loss", exact=True).first.wait_for()  # the loop's own scalar
    finally:
        context.close()
        _stop(process)
    assert outside_requests == []
