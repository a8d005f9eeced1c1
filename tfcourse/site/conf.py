"""Sphinx configuration of the course site (`tfcourse site build` passes this folder as confdir).

Everything the pages load is in the built folder: Furo ships its styles and scripts in its wheel,
math becomes MathML at build time (`tfcourse.site._mathml`), and no notebook is executed.
"""

project = "tfcourse"
author = "the tfcourse authors"
copyright = "the tfcourse authors"
# githubpages writes .nojekyll, so that GitHub Pages serves the _static/ and _images/ folders.
extensions = ["myst_nb", "sphinx.ext.githubpages", "tfcourse.site._mathml"]

root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
suppress_warnings: list[str] = []

# The notebooks are committed with the outputs nbval verified; show those, never run them.
nb_execution_mode = "off"
nb_ipywidgets_js: dict[str, dict[str, str]] = {}  # its default loads require.js from a CDN
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = "tfcourse"
html_math_renderer = "mathml"
html_static_path = ["static"]
html_css_files = ["tfcourse.css"]
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None
