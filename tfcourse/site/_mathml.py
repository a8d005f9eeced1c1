"""A Sphinx math renderer that turns LaTeX into MathML when the site is built.

Browsers draw MathML themselves, so a page needs no MathJax and fetches nothing to show an
equation. Used by `tfcourse.site`'s Sphinx configuration (``html_math_renderer = "mathml"``).
"""

from __future__ import annotations

import html
from typing import Any

from docutils import nodes
from latex2mathml.converter import convert
from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)


def to_mathml(latex: str, *, node: nodes.Element, display: str) -> str:
    """`latex` as a ``<math>`` element; on LaTeX it cannot read, a warning and the source."""
    try:
        return convert(latex, display=display)
    except Exception as error:  # latex2mathml raises its own errors, and others, on bad input
        logger.warning("cannot render math %r as MathML: %s", latex, error, location=node)
        return f"<code>{html.escape(latex)}</code>"


def _visit_inline(translator: Any, node: nodes.Element) -> None:
    translator.body.append(to_mathml(node.astext(), node=node, display="inline"))
    raise nodes.SkipNode


def _visit_block(translator: Any, node: nodes.Element) -> None:
    mathml = to_mathml(node.astext(), node=node, display="block")
    translator.body.append(f'<div class="math notranslate">{mathml}</div>\n')
    raise nodes.SkipNode


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the ``mathml`` renderer with Sphinx."""
    app.add_html_math_renderer("mathml", (_visit_inline, None), (_visit_block, None))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
