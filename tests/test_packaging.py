"""pyproject.toml and environment.yml install the same thing."""

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def environment():
    """The two parts of environment.yml that matter: conda's python pin and the pip lines."""
    text = (ROOT / "environment.yml").read_text()
    python = re.search(r"^\s*-\s*python\s*=\s*([\d.]+)\s*$", text, re.M)
    pip_lines = re.findall(r"^\s{6,}-\s*(.+?)\s*$", text, re.M)
    return (python.group(1) if python else None), pip_lines


def test_conda_python_is_inside_requires_python():
    python, _ = environment()
    assert python == "3.11"
    assert PYPROJECT["project"]["requires-python"] == ">=3.10,<3.14"


def test_conda_pip_section_installs_this_project_with_existing_extras_only():
    _, pip_lines = environment()
    assert len(pip_lines) == 1, "list dependencies in pyproject.toml, not in environment.yml"
    match = re.fullmatch(r"-e \"?\.(?:\[([\w,]+)\])?\"?", pip_lines[0])
    assert match, pip_lines
    extras = set(filter(None, (match.group(1) or "").split(",")))
    assert extras <= set(PYPROJECT["project"]["optional-dependencies"])
    assert "test" in extras


def test_pyproject_pins_the_stack_the_course_is_verified_with():
    deps = " ".join(PYPROJECT["project"]["dependencies"])
    for requirement in (
        "tensorflow~=2.21.0",
        "keras>=3",
        "tensorboard~=2.21.0",
        "tensorflow-datasets",
        "importlib_resources",
        "matplotlib",
        "jupyterlab",
        "ai-edge-litert",
        "mlxtend",
        "num2words",
    ):
        assert requirement in deps
    assert any(d.startswith("nbval") for d in PYPROJECT["project"]["optional-dependencies"]["test"])
    assert PYPROJECT["project"]["scripts"]["tfcourse"] == "tfcourse.cli:main"


def test_the_test_extra_installs_the_site_extra():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert set(extras["site"]) <= set(extras["test"])
