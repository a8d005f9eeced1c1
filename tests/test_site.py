"""The course site: `tfcourse site build` and `tfcourse site serve`, read in headless Chromium.

The module builds the site once, with the command a learner types, and serves it the same way.
The browser may reach this machine only: every request elsewhere is refused and recorded, and a
test fails if there was any. Screenshots at a laptop's and a phone's size land in
``test-artifacts/site/`` (git ignores it).
"""

from __future__ import annotations

import html.parser
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import nbformat
import pytest
from _chromium import keep_to_loopback
from _cli import tfcourse
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tfcourse import lab
from tfcourse.site import _pages

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[1]
SHOTS = Path(os.environ.get("TFCOURSE_SITE_SCREENSHOTS", ROOT / "test-artifacts" / "site"))
README = (ROOT / "README.md").read_text(encoding="utf-8")
COURSE = lab.chapters()
SIZES = {"laptop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
SEARCHED = ("05", "length penalty")  # a chapter and a term in its text only (not its title)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`tfcourse site build` of the course as committed, and what it printed."""
    out = tmp_path_factory.mktemp("site") / "site"
    return out, tfcourse("site", "build", str(out))


@pytest.fixture(scope="module")
def site(built) -> Path:
    out, result = built
    assert result.returncode == 0, result.stderr
    return out


# --- what the build writes -------------------------------------------------------------------


def test_the_site_builds_with_no_warning(built):
    out, result = built
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert f"built {len(COURSE) + 1} pages into {out}" in result.stdout
    for page in ["index", "glossary", "search", *(c.path.stem for c in COURSE)]:
        assert (out / f"{page}.html").is_file(), page


class _Assets(html.parser.HTMLParser):
    """The URLs a page loads by itself: scripts, styles, icons, images and frames."""

    LOADS: ClassVar[dict[str, str]] = {
        "script": "src",
        "img": "src",
        "iframe": "src",
        "source": "src",
        "link": "href",
    }

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs).get(self.LOADS.get(tag, ""))
        if found and not (tag == "link" and dict(attrs).get("rel") in ("next", "prev", "index")):
            self.urls.append(found)


def test_no_page_loads_a_script_style_font_or_image_from_outside_the_site(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= len(COURSE) + 3
    remote = re.compile(r"^(https?:)?//", re.IGNORECASE)
    for page in pages:
        parser = _Assets()
        parser.feed(page.read_text(encoding="utf-8"))
        assert parser.urls, page
        assert [url for url in parser.urls if remote.match(url)] == [], page
    styles = "\n".join(p.read_text(encoding="utf-8") for p in site.rglob("*.css"))
    assert re.findall(r"url\(\s*['\"]?(?:https?:)?//[^)]*\)|@import[^;]*//", styles) == []
    assert not list(site.rglob("*mathjax*")), "math is MathML; no page needs MathJax"


def test_chapter_05_math_is_mathml_written_at_build_time(site):
    page = (site / "05_seq2seq_attention.html").read_text(encoding="utf-8")
    assert page.count("<math ") >= 20
    assert "<msqrt>" in page  # 1/sqrt(d), the Transformer's scaling
    assert "$" not in re.sub(r"<pre>.*?</pre>", "", page, flags=re.S).replace("$$", "")


def test_a_missing_image_or_a_broken_link_fails_the_build_with_its_name(tmp_path):
    course = tmp_path / "course"
    (course / "notebooks").mkdir(parents=True)
    (course / "README.md").write_text(README, encoding="utf-8")
    nb = new_notebook(
        cells=[
            new_markdown_cell("# Broken\nA chapter with a broken link and a missing image."),
            new_markdown_cell("Takes about 5 minutes of teaching and 5 minutes of exercises."),
            new_markdown_cell("See [the next one](01_nowhere.ipynb) and ![a plot](missing.png)."),
            new_code_cell("1 + 1"),
        ]
    )
    nbformat.write(nb, course / "notebooks" / "00_broken.ipynb")
    result = tfcourse("site", "build", str(tmp_path / "out"), TFCOURSE_ROOT=str(course))
    assert result.returncode == 1
    assert "warning(s) while building the site" in result.stderr
    assert "01_nowhere.ipynb" in result.stderr
    assert "missing.png" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_second_build_into_the_same_folder_replaces_the_site(site, tmp_path):
    again = tfcourse("site", "build", str(site))
    assert again.returncode == 0, again.stderr
    assert (site / "index.html").is_file()


# --- the pages' sources ----------------------------------------------------------------------


def test_landing_page_lists_every_chapter_with_its_minutes_and_the_readmes_summary():
    page = _pages.landing_page(COURSE, README)
    assert "pip install -e . && tfcourse lab" in page  # the README's Start command
    for chapter in COURSE:
        row = next(line for line in page.splitlines() if line.startswith(f"| {chapter.number} |"))
        assert f"[{chapter.title}]({chapter.path.name})" in row
        assert f"| {chapter.teaching_minutes} min | {chapter.exercise_minutes} min |" in row
    assert "| 05 |" in page and "greedy vs beam search" in page


def test_a_chapter_the_readme_does_not_list_yet_appears_with_its_subtitle(tmp_path):
    for chapter in COURSE[:2]:
        shutil.copy(chapter.path, tmp_path)
    new = new_notebook(
        cells=[
            new_markdown_cell("# Diffusion models\nNoise is all the chapter needs."),
            new_markdown_cell("Takes about 50 minutes of teaching and 40 minutes of exercises."),
        ]
    )
    nbformat.write(new, tmp_path / "98_diffusion.ipynb")  # a number the README will not list
    assert "| 98 |" not in README
    page = _pages.landing_page(lab.chapters(tmp_path), README)
    row = "| 98 | [Diffusion models](98_diffusion.ipynb) | 50 min | 40 min | Noise is all"
    assert row in page
    assert "98_diffusion\nglossary" in page  # in the table of contents, before the glossary


def test_glossary_page_is_the_readmes_glossary():
    page = _pages.glossary_page(README)
    assert page.startswith("# Glossary\n\n| term | meaning here |")
    assert "| XLA | Accelerated Linear Algebra" in page
    with pytest.raises(ValueError, match="the README has no '## Glossary' section"):
        _pages.glossary_page("# tfcourse\n\n## Start\n")


def test_chapter_copy_folds_each_solution_and_names_the_command_that_runs_it():
    chapter = next(c for c in COURSE if c.number == "05")
    original = nbformat.read(chapter.path, as_version=4)
    copy = _pages.chapter_notebook(chapter)
    assert "tfcourse run 05" in copy.cells[1].source
    assert "05_seq2seq_attention.ipynb" in copy.cells[1].source
    folded = [c for c in copy.cells if _pages.SOLUTION_TAG in c.metadata.get("tags", [])]
    solutions = [c for c in original.cells if _pages.SOLUTION_MARKER in c.source]
    assert [c.source for c in folded] == [c.source for c in solutions]
    assert len(folded) >= 4
    assert folded[0].metadata["mystnb"]["code_prompt_show"] == "Show solution"
    assert nbformat.read(chapter.path, as_version=4) == original  # the course's copy is untouched


# --- in the browser --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(site) -> Iterator[str]:
    """`tfcourse site serve` on a free port; its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tfcourse.cli", "site", "serve", str(site), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = process.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert found, f"tfcourse site serve printed no URL: {line!r}"
        yield found.group(0)
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stdout.close()


class Tab:
    """A browser tab of one viewport size, and the console errors its pages logged."""

    def __init__(self, browser, size: str, outside: list[str]) -> None:
        self.size = size
        self.context = browser.new_context(viewport=SIZES[size])
        keep_to_loopback(self.context, outside)
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def screenshot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.wait_for_timeout(300)  # a solution unfolds with a short animation
        self.page.screenshot(path=str(SHOTS / f"{self.size}_{name}.png"))


@pytest.fixture(scope="module", params=list(SIZES))
def tab(request, browser, outside_requests) -> Iterator[Tab]:
    opened = Tab(browser, request.param, outside_requests)
    try:
        yield opened
    finally:
        opened.context.close()


def _images(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


@pytest.mark.browser
def test_landing_page_shows_the_chapters_and_how_to_start_and_links_the_glossary(tab, served):
    tab.page.goto(served)
    assert tab.page.locator("h1").first.inner_text().startswith("tfcourse")
    rows = tab.page.locator("table").first.locator("tbody tr")
    assert rows.count() == len(COURSE)
    assert tab.page.get_by_text("tfcourse lab", exact=False).count() >= 1
    tab.screenshot("00_landing")
    tab.page.get_by_role("link", name="glossary", exact=True).click()  # in the text
    tab.page.wait_for_url(re.compile(r"/glossary\.html"))
    assert tab.page.locator("table tbody tr").count() >= 20
    assert tab.errors == []


@pytest.mark.browser
def test_every_chapter_page_loads_draws_its_plots_and_links_its_neighbours(tab, served):
    names = ["index", *(c.path.stem for c in COURSE), "glossary"]
    for previous, chapter, following in zip(names[:-2], COURSE, names[2:], strict=True):
        tab.page.goto(f"{served}{chapter.path.stem}.html")
        images = tab.page.locator("div.cell_output img")
        widths = images.evaluate_all("imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
        assert len(widths) == _images(nbformat.read(chapter.path, as_version=4)), chapter.number
        assert all(width > 0 for width in widths), (chapter.number, widths)
        assert tab.page.get_by_text(f"tfcourse run {chapter.number}").count() == 1
        assert tab.page.locator("a.prev-page").get_attribute("href") == f"{previous}.html"
        assert tab.page.locator("a.next-page").get_attribute("href") == f"{following}.html"
        if chapter.number == SEARCHED[0]:
            images.last.scroll_into_view_if_needed()  # one of chapter 05's plots
            tab.screenshot(f"{chapter.number}_plot")
        overflow = tab.page.evaluate("document.documentElement.scrollWidth - innerWidth")
        assert overflow <= 0, f"chapter {chapter.number} scrolls sideways by {overflow} px"
    assert tab.errors == []


@pytest.mark.browser
def test_math_is_drawn(tab, served):
    tab.page.goto(f"{served}05_seq2seq_attention.html")
    widths = tab.page.locator("math").evaluate_all(
        "maths => maths.map(m => m.getBoundingClientRect().width)"
    )
    assert len(widths) >= 20 and all(width > 0 for width in widths)


@pytest.mark.browser
def test_a_solution_is_hidden_until_its_control_is_clicked(tab, served):
    tab.page.goto(f"{served}05_seq2seq_attention.html")
    solution = tab.page.locator("details.hide.above-input").first
    code = solution.locator("div.cell_input")
    solution.scroll_into_view_if_needed()
    assert not code.is_visible()
    assert solution.locator("summary").inner_text().strip() == "Show solution"
    tab.screenshot("05_solution_folded")
    solution.locator("summary").click()
    assert code.is_visible()
    assert "### BEGIN SOLUTION" in code.inner_text()
    assert solution.locator("summary").inner_text().strip() == "Hide solution"
    tab.screenshot("05_solution_shown")
    assert tab.errors == []


@pytest.mark.browser
def test_search_finds_a_chapter_05_term_and_links_to_its_page(tab, served):
    number, term = SEARCHED
    tab.page.goto(f"{served}search.html?q={term.replace(' ', '+')}")
    chapter = next(c for c in COURSE if c.number == number)
    hit = tab.page.locator(f"#search-results a[href^='{chapter.path.stem}.html']").first
    hit.wait_for()
    tab.screenshot("search")
    hit.click()
    tab.page.wait_for_url(re.compile(rf"/{chapter.path.stem}\.html"))
    assert tab.page.locator("h1").first.inner_text().startswith(chapter.title)
    assert tab.errors == []


@pytest.mark.browser
def test_no_page_reached_beyond_this_machine(outside_requests):
    assert outside_requests == []


def test_the_build_took_under_a_minute(built):
    """The site adds little to the suite: a fresh build of every chapter, printed in seconds."""
    _, result = built
    seconds = int(re.search(r"in (\d+) s;", result.stdout).group(1))
    assert seconds < 60, result.stdout
