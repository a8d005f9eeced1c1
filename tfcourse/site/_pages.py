"""The site's Sphinx sources: the landing page, the glossary and a copy of each notebook.

The landing page and the glossary are made from the README (its introduction, its Start command,
its chapter table and its glossary), so the site says what the README says. Each notebook copy
gains the command that runs it and folds its solutions; the course's own notebooks stay untouched.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from tfcourse.lab import Chapter

SOLUTION_MARKER = "### BEGIN SOLUTION"
#: The cell tag and labels that fold a solution cell's code behind a control (myst-nb's own).
SOLUTION_TAG = "hide-input"
SHOW_SOLUTION, HIDE_SOLUTION = "Show solution", "Hide solution"
_README_CHAPTER = re.compile(r"^\| (\d\d) \| \[[^\]]+\]\([^)]+\): (.+?) \| \w+ \|$", re.MULTILINE)


def readme_section(readme: str, heading: str) -> str:
    """The text of the README's ``## heading`` section, without the heading.

    Raises:
        ValueError: If the README has no such section.
    """
    found = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    if not found:
        raise ValueError(f"the README has no '## {heading}' section")
    return found.group(1).strip()


def landing_page(course: list[Chapter], readme: str) -> str:
    """The site's index page: what the course is, who it is for, its chapters, how to start."""
    introduction = readme.split("\n## ", 1)[0].split("\n", 1)[1].strip()
    start = re.search(r"```bash\n.*?```", readme_section(readme, "Start"), re.S)
    if not start:
        raise ValueError("the README's Start section has no ```bash block to quote")
    hours = sum(c.teaching_minutes + c.exercise_minutes for c in course) / 60
    return _LANDING.format(
        introduction=introduction,
        hours=hours,
        rows="\n".join(_chapter_row(chapter, readme) for chapter in course),
        start=start.group(0),
        toctree="\n".join([*(chapter.path.stem for chapter in course), "glossary"]),
    )


def _chapter_row(chapter: Chapter, readme: str) -> str:
    described = dict(_README_CHAPTER.findall(readme))
    about = described.get(chapter.number, chapter.subtitle)
    return (
        f"| {chapter.number} | [{chapter.title}]({chapter.path.name}) | "
        f"{chapter.teaching_minutes} min | {chapter.exercise_minutes} min | {about} |"
    )


def glossary_page(readme: str) -> str:
    """The README's glossary as a page of its own."""
    return f"# Glossary\n\n{readme_section(readme, 'Glossary')}\n"


def chapter_notebook(chapter: Chapter) -> nbformat.NotebookNode:
    """A copy of `chapter`'s notebook as the site shows it.

    Below the title, a note names the commands that run the chapter; each solution cell is
    folded behind a "Show solution" control, with its outputs left in view.
    """
    nb = nbformat.read(chapter.path, as_version=4)
    note = nbformat.v4.new_markdown_cell(
        _RUN_NOTE.format(number=chapter.number, name=chapter.path.name)
    )
    nb.cells.insert(1, note)
    for cell in nb.cells:
        if cell.cell_type == "code" and SOLUTION_MARKER in cell.source:
            tags = cell.metadata.setdefault("tags", [])
            tags.append(SOLUTION_TAG)
            cell.metadata["mystnb"] = {
                "code_prompt_show": SHOW_SOLUTION,
                "code_prompt_hide": HIDE_SOLUTION,
            }
    return nb


def write_sources(folder: Path, course: list[Chapter], *, readme: str) -> None:
    """Write the landing page, the glossary and the notebook copies into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.md").write_text(landing_page(course, readme), encoding="utf-8")
    (folder / "glossary.md").write_text(glossary_page(readme), encoding="utf-8")
    for chapter in course:
        nbformat.write(chapter_notebook(chapter), folder / chapter.path.name)


_RUN_NOTE = """\
:::{{admonition}} Run this chapter on your machine
:class: tip

Install the course ([Install and start](index.md#install-and-start)), then, in its folder:

```bash
tfcourse lab      # open your copy, {name}, in JupyterLab from its start page
tfcourse run {number}   # or run the whole chapter without a browser, and see how long it took
```
:::
"""

_LANDING = """\
# tfcourse

{introduction}

This site shows every chapter as its notebook was last verified: the code, and the outputs,
tables and plots that your own run prints. Reading it needs no install.

## Who it is for

- **Self-learners on a laptop**, with no GPU and sometimes no network: each exercise checks
  itself and says what is wrong, and its solution stays folded until you open it.
- **Classes**: an instructor releases the notebooks without solutions and grades what students
  submit, offline (`tfcourse release`, `tfcourse grade`).
- **Workshops**: one chapter, run live in 45-90 minutes on the machines in the room.

## The chapters

Work through them in order; each builds on the ones before. The whole course takes about
{hours:.0f} hours.

| # | chapter | teaching | exercises | what it covers |
|---|---|---|---|---|
{rows}

## Install and start

You need Python 3.10 to 3.13 and about 3 GB of disk. From the course's folder:

{start}

The course's README says more: conda, Windows, machines without a screen, and `tfcourse doctor`,
which checks a machine before a class. The [glossary](glossary.md) explains the terms the
chapters use.

```{{toctree}}
:hidden:
:maxdepth: 1

{toctree}
```
"""
