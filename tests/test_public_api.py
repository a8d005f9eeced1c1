"""The package's public face: complete, sorted, and free of import side effects."""

import subprocess
import sys
import types

import pytest

import tfcourse
import tfcourse.data
import tfcourse.exercises
import tfcourse.notebooks


@pytest.mark.parametrize(
    "module", [tfcourse, tfcourse.data, tfcourse.exercises, tfcourse.notebooks]
)
def test_all_is_sorted_and_lists_every_public_name(module):
    defined_here = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and str(getattr(value, "__module__", "tfcourse")).startswith("tfcourse")
    }
    internal = {"TYPE_CHECKING", "annotations", "Columns"}
    assert module.__all__ == sorted(module.__all__)
    assert defined_here - internal <= set(module.__all__)
    assert all(hasattr(module, name) for name in module.__all__)


def test_importing_tfcourse_does_not_import_tensorflow_or_seed():
    code = (
        "import sys, random; random.seed(1); a = random.random(); random.seed(1); import tfcourse; "
        "print('tensorflow' in sys.modules, random.random() == a)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_package_ships_type_information():
    from importlib.resources import files

    assert files("tfcourse").joinpath("py.typed").is_file()
