"""The course as a static web site, to read before installing: `tfcourse site build` and `serve`.

Sphinx and myst-nb build it from the committed notebooks without executing them, and fetch
nothing: the Furo theme ships its styles and scripts in its wheel, math becomes MathML at build
time, and the search index is a file of the site. Only the `tfcourse site` command uses this
package, and only `build` imports Sphinx.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from tfcourse._paths import notebooks_dir, repo_root
from tfcourse.lab import chapters
from tfcourse.site._pages import write_sources

__all__ = ["SiteWarnings", "build", "check_site", "serving"]

#: Sphinx writes this file into every folder it builds; a folder with it holds an earlier site.
_BUILD_INFO = ".buildinfo"
_CONF_DIR = Path(__file__).parent
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class SiteWarnings(Exception):
    """Sphinx warned while it built the site (a broken link, a missing image): the site is wrong."""

    def __init__(self, warnings: list[str]) -> None:
        super().__init__(
            f"{len(warnings)} warning(s) while building the site:\n" + "\n".join(warnings)
        )
        self.warnings = warnings


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"OUT_DIR {out_dir} is a file; pass a folder (it is made if missing)")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / _BUILD_INFO).is_file():
        raise ValueError(
            f"OUT_DIR {out_dir} is not empty and holds no site built before; pass a new or "
            "empty folder, so that nothing in it is overwritten"
        )


def build(
    out_dir: Path, *, notebooks: Path | None = None, readme: Path | None = None
) -> list[Path]:
    """Build the site into `out_dir` from the notebooks as committed; return its pages.

    Args:
        out_dir: A new or empty folder, or one that holds a site built before (rebuilt).
        notebooks: The folder of ``NN_*.ipynb`` notebooks (default: the course's).
        readme: The README the landing page and the glossary quote (default: the course's).

    Raises:
        ValueError: If `out_dir` is a file or a folder of other things, or there is no notebook.
        SiteWarnings: If Sphinx warned; the site is written, but has broken parts.
    """
    from sphinx.application import Sphinx

    _check_out_dir(out_dir)
    course = chapters(notebooks)
    if not course:
        raise ValueError(f"no notebooks named NN_*.ipynb in {notebooks or notebooks_dir()}")
    readme_text = (readme or repo_root() / "README.md").read_text(encoding="utf-8")
    warnings = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="tfcourse-site-") as scratch:
        sources = Path(scratch) / "sources"
        write_sources(sources, course, readme=readme_text)
        app = Sphinx(
            str(sources), str(_CONF_DIR), str(out_dir), str(Path(scratch) / "doctrees"),
            "html", status=None, warning=warnings, freshenv=True,
        )  # fmt: skip
        app.build()
    found = [_ANSI.sub("", line) for line in warnings.getvalue().splitlines() if line.strip()]
    if found:
        raise SiteWarnings(found)
    return [out_dir / "index.html", *(out_dir / f"{c.path.stem}.html" for c in course)]


def check_site(site: Path) -> Path:
    """`site`'s landing page.

    Raises:
        ValueError: If `site` holds no built site.
    """
    index = site / "index.html"
    if not index.is_file():
        raise ValueError(f"no site in {site}; build it first with `tfcourse site build {site}`")
    return index


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Print nothing per request: the terminal shows the URL and how to stop."""


@contextlib.contextmanager
def serving(site: Path, *, port: int = 8000) -> Iterator[str]:
    """Serve the built `site` on 127.0.0.1:`port` (0: any free port) and yield its URL.

    Raises:
        ValueError: If `site` holds no built site.
        OSError: If the port is taken.
    """
    check_site(site)
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
