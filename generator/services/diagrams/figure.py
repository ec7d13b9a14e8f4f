"""The trusted markup around a diagram, and the visible error box in its place."""

from __future__ import annotations

import html
import re


def render_figure(svg: str, kind: str = "") -> str:
    """The trusted wrapper the build puts where the fence was."""
    data = f' data-diagram="{html.escape(kind)}"' if re.fullmatch(r"[\w-]{1,40}", kind or "") else ""
    return f'<figure class="diagram"{data}>{svg}</figure>'


def render_error_box(source: str, messages: list[str]) -> str:
    """A visible error in place of the diagram: the messages and the escaped source."""
    text = "; ".join(messages) or "diagram could not be rendered"
    return (
        '<figure class="diagram diagram-error" role="note" '
        'style="border:2px solid #c62828;border-radius:4px;padding:.5em 1em;margin:1em 0">'
        f'<figcaption style="color:#c62828;font-weight:bold">Diagram error: {html.escape(text)}</figcaption>'
        f'<pre class="diagram-source" style="white-space:pre-wrap;overflow:auto"><code>{html.escape(source)}</code></pre>'
        "</figure>"
    )
