"""Normalise a notebook so that re-running it changes nothing but real outputs."""

from __future__ import annotations

import nbformat

from tfcourse._stderr import strip_tf_noise

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"name": "python", "pygments_lexer": "ipython3"}
#: Cell metadata worth keeping: nbval/nbgrader tags and JupyterLab's collapsed state.
KEPT_CELL_METADATA = ("tags", "jupyter", "collapsed")


def normalise(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Give a notebook stable metadata, drop timestamps and TF log noise, keep outputs.

    Changes `nb` in place and returns it. Introduced in `00_welcome_and_setup`.
    """
    nb.metadata = nbformat.from_dict({"kernelspec": KERNELSPEC, "language_info": LANGUAGE_INFO})
    nb.nbformat, nb.nbformat_minor = 4, 5
    for index, cell in enumerate(nb.cells):
        cell.metadata = nbformat.from_dict(
            {k: v for k, v in cell.metadata.items() if k in KEPT_CELL_METADATA}
        )
        cell.setdefault("id", f"cell-{index:03d}")
        if cell.cell_type == "code":
            cell.outputs = [out for out in map(_clean_output, cell.outputs) if out is not None]
    return nb


def _clean_output(output: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
    output.pop("transient", None)
    if output.output_type == "stream" and output.name == "stderr":
        output.text = strip_tf_noise(output.text)
        if not output.text:
            return None
    return output
