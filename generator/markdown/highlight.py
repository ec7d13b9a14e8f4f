"""Build-time code highlighting with Pygments (no client-side highlighting)."""

from __future__ import annotations

import html
import re
from functools import lru_cache

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

_LANG_RE = re.compile(r"^[a-z0-9_+#.-]{1,32}$")


@lru_cache(maxsize=64)
def _lexer(lang: str):
    try:
        return get_lexer_by_name(lang, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None


@lru_cache(maxsize=1)
def _formatter() -> HtmlFormatter:
    return HtmlFormatter(nowrap=True)


def highlight_code(code: str, lang: str) -> str:
    """A <pre> block; the language goes into a class only when it is a plain identifier."""
    lang = lang if _LANG_RE.match(lang or "") else ""
    lexer = _lexer(lang) if lang else None
    body = highlight(code, lexer, _formatter()) if lexer else html.escape(code)
    cls = f' class="language-{html.escape(lang)}"' if lang else ""
    label = f' data-lang="{html.escape(lang)}"' if lang else ""
    return f'<div class="highlight"{label}><pre><code{cls}>{body}</code></pre></div>\n'


def pygments_css() -> str:
    """Light and dark highlight styles, switched by prefers-color-scheme."""
    light = HtmlFormatter(style="friendly").get_style_defs(".highlight")
    dark = HtmlFormatter(style="monokai").get_style_defs(".highlight")
    return f"{light}\n@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"
