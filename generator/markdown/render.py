"""Markdown rendering with markdown-it-py: safe preset, plugins, and hooks that hand out jobs."""

from __future__ import annotations

import html
import re
import unicodedata
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.admon import admon_plugin
from mdit_py_plugins.deflist import deflist_plugin
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.footnote import footnote_plugin
from mdit_py_plugins.tasklists import tasklists_plugin
from mdit_py_plugins.texmath import texmath_plugin

from ..diagnostics import Diagnostic, Location
from ..models import Heading, Job, ParsedMarkdown
from ..services.cache import hash_key
from . import urls
from .highlight import highlight_code

JOB_TAG = "sitegen-job"
_JOB_RE = re.compile(r'<sitegen-job data-key="([0-9a-f]{64})"></sitegen-job>')
MAX_MARKDOWN_BYTES = 2 * 1024 * 1024
_LABEL_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DIAGRAM_FENCES = {"mermaid": "mermaid", "startup-diagram": "startup-diagram"}


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # js-default escapes raw HTML; we turn html on only to *see* it and escape it with a warning.
    md = MarkdownIt("js-default", {"html": True, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.use(footnote_plugin).use(tasklists_plugin).use(deflist_plugin).use(admon_plugin)
    md.use(dollarmath_plugin, allow_labels=True, allow_space=True, allow_digits=False, double_inline=True)
    md.use(texmath_plugin, delimiters="brackets")
    md.validateLink = lambda url: True  # checked per token below, so the user gets a warning with a line
    md.add_render_rule("html_block", _render_raw_html)
    md.add_render_rule("html_inline", _render_raw_html)
    md.add_render_rule("fence", _render_fence)
    md.add_render_rule("code_block", _render_code_block)
    md.add_render_rule("math_inline", _render_math)
    md.add_render_rule("math_inline_double", _render_math)
    md.add_render_rule("math_block", _render_math)
    md.add_render_rule("math_block_label", _render_math)
    md.add_render_rule("math_single", _render_math)
    md.add_render_rule("heading_open", _render_heading_open)
    return md


def _placeholder(env: dict, kind: str, source: str, line: int | None) -> str:
    key = hash_key(kind, source)
    env["jobs"].append(Job(kind, source, Location(env["path"], line), key))  # type: ignore[arg-type]
    return f'<{JOB_TAG} data-key="{key}"></{JOB_TAG}>'


def _line(token: Token, env: dict) -> int | None:
    line = token.meta.get("line") if token.meta else None
    if line is None and token.map:
        line = token.map[0] + 1
    return (line + env["line_offset"]) if line is not None else None


_TASK_CHECKBOXES = {
    '<input class="task-list-item-checkbox" checked="checked" disabled="disabled" type="checkbox">',
    '<input class="task-list-item-checkbox" disabled="disabled" type="checkbox">',
}


def _render_raw_html(self, tokens, idx, options, env):
    token = tokens[idx]
    if token.meta.get("trusted"):
        return token.content
    text = html.escape(token.content)
    return f"<p>{text}</p>\n" if token.type == "html_block" else text


def _render_fence(self, tokens, idx, options, env):
    token = tokens[idx]
    info = token.info.strip().split()[0].lower() if token.info.strip() else ""
    kind = DIAGRAM_FENCES.get(info)
    if kind:
        return _placeholder(env, kind, token.content, _line(token, env) ) + "\n"
    return highlight_code(token.content, info)


def _render_code_block(self, tokens, idx, options, env):
    return highlight_code(tokens[idx].content, "")


def _render_math(self, tokens, idx, options, env):
    token = tokens[idx]
    display = token.type in ("math_block", "math_block_label", "math_inline_double")
    source = token.content.strip()
    line = _line(token, env)
    if token.type == "math_block_label":
        label = token.info.strip()
        if not _LABEL_RE.match(label):
            env["diagnostics"].append(
                Diagnostic("warning", "math-label", "equation label not allowed (use A-Z, a-z, 0-9, _ and -)", Location(env["path"], line))
            )
        elif "\\tag" not in source:
            source = f"{source} \\tag{{{label}}}"
    out = _placeholder(env, "math-display" if display else "math-inline", source, line)
    return out + "\n" if token.type.startswith("math_block") else out


def _render_heading_open(self, tokens, idx, options, env):
    token = tokens[idx]
    anchor = token.attrGet("id")
    return f'<{token.tag} id="{html.escape(str(anchor))}">' if anchor else f"<{token.tag}>"


def slugify_heading(text: str) -> str:
    """Readable, stable anchors; Chinese stays Chinese (`1. 引言` → `1-引言`)."""
    text = unicodedata.normalize("NFKC", text).strip().lower()
    text = re.sub(r"[^\w\s-]", "", text)
    text = re.sub(r"[\s_]+", "-", text).strip("-")
    return text or "section"


def _plain_text(inline: Token) -> str:
    parts = []
    for child in inline.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type.startswith("math"):
            parts.append(child.content)
    return "".join(parts).strip()


def _walk(tokens: list[Token], env: dict) -> list[Heading]:
    """One pass over the tokens: line numbers for inline tokens, anchors, link and image policy."""
    headings: list[Heading] = []
    used: dict[str, int] = {}
    path = env["path"]
    diags: list[Diagnostic] = env["diagnostics"]
    last_line = 1
    for i, token in enumerate(tokens):
        if token.map:
            last_line = token.map[0] + 1
        elif token.type.startswith("math_block"):
            token.meta["line"] = last_line
        if token.type == "html_block":
            diags.append(Diagnostic("warning", "raw-html", "raw HTML is disabled; it is shown as text", Location(path, last_line + env["line_offset"])))
        if token.type == "heading_open" and i + 1 < len(tokens):
            text = _plain_text(tokens[i + 1])
            base = "sec-" + slugify_heading(text)
            n = used.get(base, 0)
            used[base] = n + 1
            anchor = base if n == 0 else f"{base}-{n + 1}"
            token.attrSet("id", anchor)
            headings.append(Heading(int(token.tag[1]), text, anchor, last_line + env["line_offset"]))
        if token.type != "inline" or not token.children:
            continue
        line = last_line + env["line_offset"]
        first = token.children[0]
        if (
            first.type == "html_inline"
            and first.content in _TASK_CHECKBOXES
            and i >= 2
            and "task-list-item" in str(tokens[i - 2].attrGet("class") or "")
        ):
            first.meta["trusted"] = True  # the tasklists plugin's own checkbox, not content
        for child in token.children:
            child.meta["line"] = last_line
            if child.type == "html_inline" and not child.meta.get("trusted"):
                diags.append(Diagnostic("warning", "raw-html", "raw HTML is disabled; it is shown as text", Location(path, line)))
            elif child.type == "link_open":
                href = str(child.attrGet("href") or "")
                problem = urls.check_link(href)
                if problem:
                    diags.append(Diagnostic("warning", "link", f"{problem}; link removed", Location(path, line)))
                    child.attrs.pop("href", None)
                    child.tag = "span"
                elif urls.is_internal(href):
                    env["links"].append((href, Location(path, line)))
            elif child.type == "link_close" and child.tag == "a":
                # Pair with an opener we turned into a span.
                pass
            elif child.type == "image":
                src = str(child.attrGet("src") or "")
                problem = urls.check_image(src)
                if problem:
                    diags.append(Diagnostic("error", "image", f"{problem}: {src[:80]}", Location(path, line)))
                    child.type = "text"
                    child.content = f"[{child.content or 'image'}]"
                    child.attrs = {}
                elif urls.url_scheme(src) is None:
                    env["images"].append((src, Location(path, line)))
    _fix_link_closers(tokens)
    return headings


def _fix_link_closers(tokens: list[Token]) -> None:
    for token in tokens:
        if token.type != "inline" or not token.children:
            continue
        stack: list[Token] = []
        for child in token.children:
            if child.type == "link_open":
                stack.append(child)
            elif child.type == "link_close" and stack:
                opener = stack.pop()
                child.tag = opener.tag


def parse_markdown(text: str, path: str, line_offset: int = 0) -> ParsedMarkdown:
    """Render Markdown to HTML; diagrams and formulas become placeholders plus jobs."""
    diags: list[Diagnostic] = []
    if len(text.encode("utf-8", "surrogatepass")) > MAX_MARKDOWN_BYTES:
        diags.append(Diagnostic("error", "size", "Markdown file larger than 2 MiB", Location(path, 1)))
        return ParsedMarkdown("", [], [], diags)
    env: dict = {"path": path, "line_offset": line_offset, "jobs": [], "diagnostics": diags, "links": [], "images": []}
    md = _parser()
    tokens = md.parse(text, env)
    headings = _walk(tokens, env)
    body = md.renderer.render(tokens, md.options, env)
    parsed = ParsedMarkdown(body, headings, env["jobs"], diags, env["links"], path=path)
    parsed.images = env["images"]  # type: ignore[attr-defined]
    return parsed


def fill_jobs(body: str, results: dict, print_variant: bool = False) -> str:
    """Replace job placeholders with the services' markup (the PDF may use a print variant)."""

    def sub(m: re.Match) -> str:
        res = results.get(m[1])
        if res is None:
            return '<span class="job-missing">[not rendered]</span>'
        if print_variant and res.print_html is not None:
            return res.print_html
        return res.html

    return _JOB_RE.sub(sub, body)
