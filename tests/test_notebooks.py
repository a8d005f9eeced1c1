"""The notebook toolchain: structure lint, normalisation, release and headless execution."""

import copy
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from tfcourse.notebooks import (
    execute,
    normalise,
    release,
    strip_solutions,
    strip_tf_noise,
    structure_problems,
)

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_the_course_has_notebooks():
    assert [path.name for path in NOTEBOOKS][:1] == ["00_welcome_and_setup.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_notebook_follows_the_chapter_template(path):
    assert structure_problems(nbformat.read(path, as_version=4)) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_notebook_is_committed_normalised(path):
    nb = nbformat.read(path, as_version=4)
    assert normalise(copy.deepcopy(nb)) == nb, "run `tfcourse dev execute` on it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_notebook_marks_no_cell_skipped(path):
    nb = nbformat.read(path, as_version=4)
    assert not [
        c
        for c in nb.cells
        if "NBVAL_SKIP" in c.source or "nbval-skip" in c.metadata.get("tags", [])
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_notebook_keeps_test_markup_out_of_the_learners_code(path):
    nb = nbformat.read(path, as_version=4)
    assert not [c.source for c in nb.cells if "NBVAL" in c.source.upper()]

    def ignored(notebook):
        return sum("nbval-ignore-output" in c.metadata.get("tags", []) for c in notebook.cells)

    assert ignored(nb) > 0 and ignored(release(nb)) == ignored(nb)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_release_has_stubs_and_no_solutions(path):
    nb = nbformat.read(path, as_version=4)
    student = release(nb)
    sources = "".join(cell.source for cell in student.cells)
    assert "### BEGIN SOLUTION" not in sources
    assert sources.count("raise NotImplementedError") >= sources.count("# YOUR CODE HERE") >= 4
    assert "### BEGIN SOLUTION" in "".join(cell.source for cell in nb.cells)  # original untouched


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_python_child_a_notebook_starts_gets_the_notebooks_setup(path):
    """A child process that runs TensorFlow computes like the notebook only through child_env."""
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        starts_python = cell.cell_type == "code" and "sys.executable" in cell.source
        starts_process = any(call in cell.source for call in ("subprocess.run(", "Popen("))
        if starts_python and starts_process and "hidden = subprocess.run" not in cell.source:
            assert "tfcourse.child_env(" in cell.source, f"{path.name} cell {index}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_notebook_hides_gpus_only_where_it_says_why(path):
    nb = nbformat.read(path, as_version=4)
    hides = [c for c in nb.cells if 'set_visible_devices([], "GPU")' in c.source]
    prose = " ".join(" ".join(c.source.split()) for c in nb.cells if c.cell_type == "markdown")
    assert not hides or "hides any GPU" in prose or "hides it" in prose, path.name


def good_notebook():
    cells = [
        new_markdown_cell("# A title\n\nA subtitle."),
        new_markdown_cell(
            "## Overview\n\n**What you will learn**\n\n**Prerequisites:** none\n\n10 min"
        ),
        new_markdown_cell("## Setup"),
        new_code_cell("import tfcourse\ntfcourse.setup(seed=1)"),
        new_markdown_cell("## Summary\n\n- a"),
        new_markdown_cell("## Exercises"),
    ]
    for number in range(1, 5):
        solution = new_code_cell(
            "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"
        )
        solution.metadata["jupyter"] = {"source_hidden": True}
        cells += [
            new_markdown_cell(f"### Exercise 00.{number} ★★ Do a thing"),
            solution,
            new_code_cell("ch00.check_thing(f)"),
        ]
    cells.append(
        new_markdown_cell("## Questionnaire\n\n" + "".join(f"{i}. Why?\n" for i in range(1, 6)))
    )
    count = 0
    for cell in cells:
        if cell.cell_type == "code":
            count += 1
            cell.execution_count = count
    return new_notebook(cells=cells)


def test_a_notebook_that_follows_the_template_passes():
    assert structure_problems(good_notebook()) == []


def _drop_section(nb, title):
    nb.cells = [c for c in nb.cells if not c.source.startswith(f"## {title}")]
    return nb


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda nb: nb.cells.pop(0), "not a markdown H1 title"),
        (lambda nb: _drop_section(nb, "Summary"), "no '## Summary' section"),
        (lambda nb: _drop_section(nb, "Overview"), "no '## Overview' section"),
        (
            lambda nb: setattr(nb.cells[1], "source", "## Overview\n\nWhat you will learn"),
            "prerequisites",
        ),
        (
            lambda nb: setattr(nb.cells[3], "source", "import tfcourse"),
            "never calls tfcourse.setup",
        ),
        (lambda nb: [nb.cells.pop(-2) for _ in range(3)], "3 graded exercises"),
        (
            lambda nb: nb.cells[7].metadata.pop("jupyter"),
            "exercise 00.1's solution cell is not collapsed",
        ),
        (lambda nb: setattr(nb.cells[8], "source", "print(f())"), "exercise 00.1 has no check_"),
        (
            lambda nb: setattr(nb.cells[7], "source", "def f():\n    return 1"),
            "exercise 00.1 has no solution cell",
        ),
        (
            lambda nb: setattr(nb.cells[-1], "source", "## Questionnaire\n\n1. Why?"),
            "1 questions; at least 5",
        ),
        (lambda nb: setattr(nb.cells[3], "execution_count", None), "never executed"),
        (lambda nb: setattr(nb.cells[7], "execution_count", 9), "not 1, 2, 3"),
    ],
)
def test_structure_problems_names_what_is_missing(damage, problem):
    nb = good_notebook()
    damage(nb)
    assert any(problem in found for found in structure_problems(nb)), structure_problems(nb)


def test_normalise_fixes_metadata_and_drops_timestamps_and_tf_noise():
    cell = new_code_cell("print(1)", execution_count=1)
    cell.metadata = {"execution": {"iopub.execute_input": "2026-01-01"}, "tags": ["x"]}
    cell.outputs = [
        new_output(
            "stream",
            name="stderr",
            text="I0000 00:00:1.2 3 cudart_stub.cc:31] no cuda\nreal warning\n",
        ),
        new_output(
            "stream",
            name="stderr",
            text="WARNING: All log messages before absl::InitializeLog() is called\n",
        ),
        new_output("stream", name="stdout", text="1\n"),
    ]
    nb = new_notebook(
        cells=[cell],
        metadata={"language_info": {"name": "python", "version": "3.11.7"}, "widgets": {}},
    )
    normalise(nb)
    assert nb.metadata.kernelspec.name == "python3"
    assert "version" not in nb.metadata.language_info and "widgets" not in nb.metadata
    assert nb.cells[0].metadata == {"tags": ["x"]}
    assert [o.text for o in nb.cells[0].outputs] == ["real warning\n", "1\n"]
    assert normalise(copy.deepcopy(nb)) == nb


def test_strip_tf_noise_keeps_lines_that_are_not_tensorflow_logging():
    text = "W0000 00:00:17 123 x.cc:1] noise\nUserWarning: mind this\n"
    assert strip_tf_noise(text) == "UserWarning: mind this\n"


def test_strip_tf_noise_drops_litert_runtime_start_up_lines_only():
    text = (
        "INFO: [environment.cc:36] Creating LiteRT environment with options\n"
        "WARNING: [npu_registry.cc:34] NPU accelerator could not be loaded and registered.\n"
        "\u2514 Could not load shared library /x/libLiteRtCompilerPlugin_IntelOpenvino.so: no.\n"
        "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
        "WARNING: the model has no signature\n"
    )
    assert strip_tf_noise(text) == (
        "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
        "WARNING: the model has no signature\n"
    )


def test_strip_solutions_keeps_the_indentation_and_the_code_around():
    source = (
        "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\n"
    )
    assert strip_solutions(source) == (
        "def f(x):\n    y = 1\n    # YOUR CODE HERE\n"
        '    raise NotImplementedError("Write your answer here, then run the check below.")\n'
    )


def test_strip_solutions_refuses_unbalanced_markers():
    with pytest.raises(ValueError, match="unbalanced"):
        strip_solutions("### BEGIN SOLUTION\nsecret = 1\n")


def test_release_clears_the_outputs_of_solutions_and_checks():
    nb = good_notebook()
    nb.cells[8].outputs = [
        new_output("execute_result", data={"text/plain": "✓ right"}, execution_count=2)
    ]
    student = release(nb)
    assert student.cells[8].outputs == [] and student.cells[8].execution_count is None
    assert "source_hidden" not in student.cells[7].metadata.get("jupyter", {})
    assert nb.cells[8].outputs  # the original keeps its outputs


@pytest.mark.slow
def test_execute_reports_success_and_the_first_error(tmp_path):
    ok = tmp_path / "ok.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("print(6 * 7)")]), ok)
    result = execute(ok, write=True)
    assert result.ok and result.seconds > 0
    written = nbformat.read(ok, as_version=4)
    assert written.cells[0].outputs[0].text == "42\n"
    assert written.cells[0].execution_count == 1

    bad = tmp_path / "bad.ipynb"
    nbformat.write(
        new_notebook(cells=[new_code_cell("1 / 0"), new_code_cell("print('never')")]), bad
    )
    before = bad.read_text()
    result = execute(bad, write=True)
    assert not result.ok
    assert result.error == "ZeroDivisionError: division by zero"
    assert bad.read_text() == before  # a failed run never overwrites the notebook
