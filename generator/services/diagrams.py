"""Mermaid diagrams to sanitised inline SVG at build time: renderers, sanitiser, cache, worker pool.

Why inline `<svg>` rather than `<img src="x.svg">` (measured in tests/test_diagrams.py and
benchmarks/bench_diagrams.py):
- text selection and find-in-page work on inline SVG `<text>`; an `<img>` is one opaque picture;
- dark mode: an inline SVG sees the page's `data-theme` switch and our scoped CSS remaps the
  palette; an `<img>` only sees `prefers-color-scheme` and can't follow the site's own toggle;
- PDF: WeasyPrint keeps the labels as real, extractable text (CJK included) either way — measured,
  see test_pdf_keeps_diagram_labels_as_text — so the PDF does not decide it; browsers, though, never
  let an `<img>` SVG use the page's @font-face fonts;
- the price is that scripts and CSS are not isolated, so every SVG goes through `sanitize_svg`
  (an allowlist) and every CSS rule we emit is scoped to the diagram's id.

Nothing here imports a Mermaid package at module level: the HTML build imports this module
cheaply and the renderers are imported inside the worker processes.
"""

from __future__ import annotations

import contextlib
import functools
import html
import importlib
import importlib.util
import io
import json
import multiprocessing
import multiprocessing.connection
import os
import re
import signal
import textwrap
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from xml.etree import ElementTree as ET

if TYPE_CHECKING:
    from pathlib import Path

    from ..config import DiagramsConfig
    from ..diagnostics import Diagnostics
    from ..models import Job, JobResult

SANITISER_VERSION = "6"
"""Bump when prepare_source, sanitize_svg or the figure markup change: it is part of the cache key."""

MAX_SVG_CHARS = 20_000_000
WORKER_START_TIMEOUT = 60.0
FONT_STACK = (
    "'Noto Sans','Noto Sans CJK SC','Source Han Sans SC','PingFang SC','Hiragino Sans GB',"
    "'Microsoft YaHei','WenQuanYi Micro Hei','Noto Sans CJK JP',sans-serif"
)
SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"



class DiagramError(Exception):
    """A diagram that cannot be shown; the message is for the author (no location)."""

    transient = False
    """True for failures that depend on the machine (timeouts, crashes): never cached."""


class TransientDiagramError(DiagramError):
    transient = True


# --- mermaid-py import --------------------------------------------------------------------


def import_mermaid_py() -> Any:
    """Import mermaid-py without the "IPython is not installed" line it prints to stdout."""
    import sys

    if "mermaid" in sys.modules:
        return sys.modules["mermaid"]
    with contextlib.redirect_stdout(io.StringIO()):
        return importlib.import_module("mermaid")


# --- source preparation (pure) -------------------------------------------------------------

_DIRECTIVE_RE = re.compile(r"%%\{\s*(?:(\w+)\s*:|(\w+))\s*((?:(?!\}%%).)*?)\s*\}%%", re.S)
_CLICK_TYPES = {"flowchart", "graph", "flowchart-elk", "classdiagram", "classdiagram-v2", "gantt"}
_LINK_TYPES = {"sequencediagram"}
_EDGE_RE = re.compile(r"(?:[<ox]?(?:-{2,}|={2,}|-\.+-)[>ox]?|~~~)")
# Config that only changes layout may stay; anything about fonts, CSS, HTML or security goes.
_CONFIG_SECTIONS = {
    "flowchart", "sequence", "gantt", "journey", "timeline", "class", "state", "er", "pie",
    "quadrantChart", "xyChart", "requirement", "mindmap", "gitGraph", "c4", "sankey", "packet",
    "block", "radar", "kanban", "architecture", "treemap", "venn", "wardley", "eventmodeling",
    "ishikawa", "treeView",
}
_CONFIG_TOP_SCALARS = {"wrap", "layout", "look"}
_CONFIG_SILENT = {"logLevel", "startOnLoad", "deterministicIds", "deterministicIDSeed", "arrowMarkerAbsolute"}
"""Keys that only matter in a browser: dropped without a warning."""
_CONFIG_DENIED = re.compile(r"font|css|style|html|secur|maxtext|maxedge|secure|dompurify|href|url|link|theme", re.I)
_CONFIG_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,40}$")
_CONFIG_STR = re.compile(r"^[\w .,:%/()+-]{0,64}$")


@dataclass
class Prepared:
    """Mermaid source made safe to hand to a renderer, with what the author must be told."""

    source: str
    diagram_type: str = ""
    title: str = ""
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _filter_config(value: Any, path: str, warnings: list[str], top: bool) -> Any:
    """Keep layout-only config; every dropped key becomes a warning naming it."""
    if not isinstance(value, dict):
        return None
    kept: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{path}.{key}" if path else str(key)
        ok_key = isinstance(key, str) and _CONFIG_KEY.match(key) and not _CONFIG_DENIED.search(key)
        if ok_key and top and key in _CONFIG_SECTIONS and isinstance(item, dict):
            inner = _filter_config(item, name, warnings, top=False)
            if inner:
                kept[key] = inner
            continue
        if ok_key and (not top or key in _CONFIG_TOP_SCALARS) and _safe_config_scalar(item):
            kept[key] = item
            continue
        if not (top and key in _CONFIG_SILENT):
            warnings.append(f"mermaid config key '{name}' ignored")
    return kept


def _safe_config_scalar(value: Any) -> bool:
    if isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, str):
        return bool(_CONFIG_STR.match(value))
    if isinstance(value, list):
        return len(value) <= 32 and all(not isinstance(v, (list, dict)) and _safe_config_scalar(v) for v in value)
    return False


def _parse_directive_json(body: str) -> Any:
    # Mermaid itself turns ' into " before JSON.parse; do the same so both see one object.
    try:
        return json.loads(body.replace("'", '"'))
    except ValueError:
        return None


def _split_front_matter(lines: list[str]) -> tuple[int, int] | None:
    """(first, last) line indexes of a `---` front matter block at the top, or None."""
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    # Mermaid also accepts an indented block, so we must see it too or its config slips past us.
    if i >= len(lines) or lines[i].strip() != "---":
        return None
    for j in range(i + 1, len(lines)):
        if lines[j].strip() == "---":
            return i, j
    return None


def prepare_source(source: str, max_chars: int = 50_000, max_edges: int = 500) -> Prepared:
    """Apply the limits, drop click/link directives and unsafe config; keep line numbers stable."""
    text = source.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    out = Prepared(source=text)
    if len(text) > max_chars:
        out.errors.append(f"mermaid diagram exceeds {max_chars} chars")
        return out
    if not text.strip():
        out.errors.append("mermaid diagram is empty")
        return out
    if "\x00" in text:
        out.errors.append("mermaid diagram contains a NUL character")
        return out
    lines = text.split("\n")
    body_start = 0
    fm = _split_front_matter(lines)
    if fm is not None:
        first, last = fm
        lines[first : last + 1] = _rewrite_front_matter(lines[first + 1 : last], out)
        body_start = last + 1
    body = _rewrite_directives("\n".join(lines[body_start:]), out)
    lines = lines[:body_start] + body.split("\n")
    out.diagram_type = _diagram_type(lines[body_start:])
    dtype = out.diagram_type.lower()
    click_seen = link_seen = False
    for n in range(body_start, len(lines)):
        if dtype in _CLICK_TYPES:
            words = ("click", "callback", "link") if dtype.startswith("classdiagram") else ("click", "callback")
            lines[n], dropped = _drop_statements(lines[n], words)
            click_seen |= dropped
        elif dtype in _LINK_TYPES:
            lines[n], dropped = _drop_statements(lines[n], ("link", "links"))
            link_seen |= dropped
    if click_seen:
        out.warnings.append("mermaid click directives are ignored")
    if link_seen:
        out.warnings.append("mermaid link directives are ignored")
    if dtype in ("flowchart", "graph", "flowchart-elk"):
        edges = sum(_count_edges(line) for line in lines[body_start:])
        if edges > max_edges:
            out.errors.append(f"mermaid diagram has {edges} edges, more than the limit of {max_edges}")
    if dtype == "gantt" and not any(re.match(r"\s*todayMarker\b", line) for line in lines[body_start:]):
        # Mermaid draws a "today" line at the time of the build: the same report would render
        # differently every day (and every few seconds). Off unless the author asks for it; appended
        # at the end so line numbers in messages stay those of the fence.
        lines.append("todayMarker off")
    out.source = "\n".join(lines)
    m = re.search(r"^\s*accTitle\s*:\s*(.+)$", out.source, re.M)
    if m:
        out.title = m[1].strip()
    return out


def _drop_statements(line: str, words: tuple[str, ...]) -> tuple[str, bool]:
    """Remove `;`-separated statements that start with one of `words` (quotes respected)."""
    if not any(w in line for w in words):
        return line, False
    parts, buf, quoted = [], [], False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        if ch == ";" and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    kept = [p for p in parts if not (p.split(None, 1)[:1] and p.split(None, 1)[0] in words)]
    if len(kept) == len(parts):
        return line, False
    return ";".join(kept), True


def _count_edges(line: str) -> int:
    """Links on one flowchart line (`A -- text --> B` is one); an estimate, good enough for a limit."""
    if line.lstrip().startswith("%%"):
        return 0
    ops = len(_EDGE_RE.findall(line))
    openers = len(re.findall(r"(?:^|\s)(?:--|==|-\.)\s+[^\s>]", line))
    return max(0, ops - openers)


def _rewrite_front_matter(yaml_lines: list[str], out: Prepared) -> list[str]:
    """Front matter keeps `title` and layout-only `config`; the block keeps its line count."""
    from ..yamlsource import YamlProblem, parse_yaml

    kept: dict[str, Any] = {}
    try:
        data = parse_yaml(textwrap.dedent("\n".join(yaml_lines))).data
    except YamlProblem as p:
        out.errors.append(f"mermaid front matter is not valid YAML: {p.message} (diagram line {(p.line or 0) + 1})")
        data = None
    if data is not None and not isinstance(data, dict):
        out.errors.append("mermaid front matter must be a mapping")
        data = None
    for key, value in (data or {}).items():
        if key == "title" and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            out.title = " ".join(str(value).split())
            kept["title"] = out.title
        elif key == "displayMode" and isinstance(value, str) and _safe_config_scalar(value):
            kept["displayMode"] = value
        elif key == "config":
            if not isinstance(value, dict):
                out.warnings.append("mermaid config key 'config' ignored")
                continue
            config = _filter_config(value, "", out.warnings, top=True)
            if config:
                kept["config"] = config
        else:
            out.warnings.append(f"mermaid front matter key '{key}' ignored")
    # JSON is YAML: one line per kept key, padded so the renderer's line numbers still match.
    new = [f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in kept.items()]
    if len(new) > len(yaml_lines):
        new = [json.dumps(kept, ensure_ascii=False)]
    return ["---", *new, *[""] * (len(yaml_lines) - len(new)), "---"]


def _rewrite_directives(body: str, out: Prepared) -> str:
    pieces: list[str] = []
    pos = 0
    unclosed = False

    def neutralise(text: str) -> str:
        nonlocal unclosed
        if "%%{" not in text:
            return text
        # An unclosed directive: Mermaid would still read config from it; make it a comment.
        unclosed = True
        return text.replace("%%{", "%% {")

    for m in _DIRECTIVE_RE.finditer(body):
        pieces.append(neutralise(body[pos : m.start()]))
        pieces.append(_rewrite_directive(m, out))
        pos = m.end()
    pieces.append(neutralise(body[pos:]))
    if unclosed:
        out.warnings.append("mermaid directive ignored: not closed with }%%")
    return "".join(pieces)


def _rewrite_directive(m: re.Match, out: Prepared) -> str:
    name = (m[1] or m[2] or "").lower()
    newlines = m[0].count("\n")
    pad = "\n" * newlines
    if name == "wrap" and not m[3]:
        return "%%{wrap}%%" + pad
    if name in ("init", "initialize"):
        data = _parse_directive_json(m[3] or "")
        if not isinstance(data, dict):
            out.warnings.append("mermaid init directive ignored: not a JSON object")
            return pad
        config = _filter_config(data, "", out.warnings, top=True)
        if config:
            return "%%{init: " + json.dumps(config, ensure_ascii=False) + "}%%" + pad
        return pad
    out.warnings.append(f"mermaid directive '{name}' ignored")
    return pad


def _diagram_type(lines: list[str]) -> str:
    for line in lines:
        s = line.strip()
        if not s or s.startswith("%%") or s == "---":
            continue
        return re.split(r"[\s;]", s, maxsplit=1)[0]
    return ""


def clean_renderer_message(message: str) -> str:
    """One line from a renderer's multi-line message: drop the source excerpt and the caret."""
    lines = [ln.rstrip() for ln in str(message).splitlines()]
    keep: list[str] = []
    for i, line in enumerate(lines):
        if re.fullmatch(r"-*\^", line.strip()):
            if keep and i > 0 and keep[-1] == lines[i - 1].strip():
                keep.pop()
            continue
        if line.strip():
            keep.append(line.strip())
    text = " ".join(keep)
    m = re.match(r"^(\w[\w-]*) at (\d+):(\d+): (.*)$", text, re.S)
    if m and m[2] != "0":
        text = f"{m[1]} error at diagram line {m[2]}, column {m[3]}: {m[4]}"
    elif m:
        text = m[4]
    return text[:500]


# --- renderers ----------------------------------------------------------------------------


class Renderer(Protocol):
    """What resolve_diagrams needs from a backend; instances must be picklable (they go to workers)."""

    name: str

    def version(self) -> str: ...

    def check(self) -> str | None:
        """An author-facing message when the renderer cannot run here, else None."""

    def warm(self) -> None:
        """Load what a worker needs before its first diagram (kept out of the time limit)."""

    def render(self, source: str, theme: str, timeout: float) -> str:
        """Raw SVG text; raises DiagramError."""


@dataclass(frozen=True)
class EmbeddedRenderer:
    """mermaid-render: Pele in an embedded QuickJS, in-process, no browser, no network."""

    module: str = "mermaid_render"
    name: str = "embedded"

    def version(self) -> str:
        import importlib.metadata

        try:
            return "mermaid-render " + importlib.metadata.version(self.module.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            return "missing"

    def check(self) -> str | None:
        if importlib.util.find_spec(self.module) is None:
            return "mermaid renderer not found: install mermaid-render (pip install mermaid-render)"
        return None

    def warm(self) -> None:
        self._context(60.0)

    def _context(self, timeout: float) -> Any:
        renderer = importlib.import_module(self.module + ".renderer")
        ctx = renderer._context()
        # mermaid-render fixes QuickJS's limit at 10 s; ours is the configured one.
        ctx.set_time_limit(max(1, int(timeout + 0.999)))
        return renderer

    def render(self, source: str, theme: str, timeout: float) -> str:
        renderer = self._context(timeout)
        try:
            reply = renderer.render(source, theme)
        except renderer.RenderError as exc:
            msg = str(exc)
            if "interrupted" in msg.lower():
                raise TransientDiagramError(f"mermaid render timed out after {timeout:g} s") from None
            if "No diagram type detected" in msg:
                lines = source.split("\n")
                fm = _split_front_matter(lines)
                kind = _diagram_type(lines[fm[1] + 1 :] if fm else lines)
                raise DiagramError(f"unknown or unsupported mermaid diagram type '{kind[:40]}'") from None
            raise DiagramError(clean_renderer_message(_source_lines(msg, source))) from None
        except (ValueError, KeyError, TypeError, ET.ParseError) as exc:
            raise DiagramError(f"mermaid renderer failed: {clean_renderer_message(str(exc))}") from None
        return reply["result"]["svg"]


_PELE_DIRECTIVE = re.compile(r"%%\{\s*(?:(\w+)\s*:|(\w+))\s*(?:(\w+)|((?:(?!\}%%).|\r?\n)*))?\s*(?:\}%%)?", re.I)
_PELE_COMMENT = re.compile(r"^\s*%%(?!\{)[^\n]+\n?", re.M)


def _pele_line_map(source: str) -> list[int]:
    """Source line (1-based) of each line Pele counts: it drops front matter, comments, leading blanks."""
    lines = source.split("\n")
    fm = _split_front_matter(lines)
    first = fm[1] + 1 if fm else 0
    text = "\n".join(lines[first:])
    index = list(range(len(text)))
    for pattern in (_PELE_DIRECTIVE, _PELE_COMMENT):
        current = "".join(text[i] for i in index)
        drop = set()
        for m in pattern.finditer(current):
            drop.update(range(m.start(), m.end()))
        index = [i for n, i in enumerate(index) if n not in drop]
    while index and text[index[0]].isspace():
        index.pop(0)
    starts = [0] + [n + 1 for n, i in enumerate(index) if text[i] == "\n"]
    return [first + text.count("\n", 0, index[p]) + 1 if p < len(index) else first + 1 for p in starts]


def _source_lines(message: str, source: str) -> str:
    """Pele's messages count lines after dropping front matter and comments; name the fence's lines."""
    try:
        line_map = _pele_line_map(source)
    except (ValueError, IndexError):
        return message

    def fix(m: re.Match) -> str:
        n = int(m[2])
        return f"{m[1]}{line_map[n - 1] if 0 < n <= len(line_map) else n}"

    message = re.sub(r"^(\w[\w-]* at )(\d+)(?=:\d+:)", fix, message)
    return re.sub(r"(\bon line )(\d+)", fix, message)


@dataclass(frozen=True)
class InkRenderer:
    """mermaid-py's Mermaid class against a mermaid.ink server (MERMAID_INK_SERVER)."""

    server: str
    name: str = "ink"
    max_bytes: int = 10_000_000

    def version(self) -> str:
        import importlib.metadata

        try:
            ver = importlib.metadata.version("mermaid-py")
        except importlib.metadata.PackageNotFoundError:
            ver = "missing"
        return f"mermaid-py {ver} via {self.server}"

    def check(self) -> str | None:
        if importlib.util.find_spec("mermaid") is None or importlib.util.find_spec("requests") is None:
            return "mermaid renderer not found: install mermaid-py (pip install mermaid-py)"
        if not self.server:
            return "mermaid renderer 'ink' needs MERMAID_INK_SERVER (the URL of a mermaid.ink server)"
        if not re.match(r"^https?://[^/\s]+", self.server):
            return f"MERMAID_INK_SERVER must be an http(s) URL, not {self.server!r}"
        return None

    def warm(self) -> None:
        import_mermaid_py()

    def render(self, source: str, theme: str, timeout: float) -> str:
        import requests

        mermaid = import_mermaid_py()
        server = self.server.rstrip("/")
        max_bytes = self.max_bytes
        result: dict[str, str] = {}

        class _Ink(mermaid.Mermaid):
            # mermaid-py fetches SVG and PNG with no timeout and follows redirects; we need one
            # bounded SVG request to the configured server only.
            def _make_request_to_mermaid(self) -> None:
                url = f"{server}/svg/{self._diagram}"
                try:
                    with requests.get(url, timeout=timeout, allow_redirects=False, stream=True) as resp:
                        body = resp.raw.read(max_bytes + 1, decode_content=True)
                        if not resp.ok:
                            raise mermaid.MermaidError(resp.status_code, body.decode("utf-8", "replace"), url)
                except requests.Timeout:
                    raise TransientDiagramError(f"mermaid render timed out after {timeout:g} s (ink server {server})") from None
                except requests.ConnectionError as exc:
                    found = re.search(r"\[Errno [^\]]+\][^'\")]*|Connection refused|Name or service not known", str(exc))
                    reason = found[0].strip() if found else "connection failed"
                    raise TransientDiagramError(f"mermaid.ink server {server} could not be reached: {reason}") from None
                if len(body) > max_bytes:
                    raise DiagramError(f"mermaid.ink answer larger than {max_bytes} bytes")
                result["svg"] = body.decode("utf-8", "replace")

        try:
            _Ink(_with_ink_config(source, theme))
        except mermaid.MermaidError as exc:
            first = str(exc).split("\n", 1)[0]
            detail = clean_renderer_message(getattr(exc, "response_text", ""))[:300]
            retry = exc.status_code >= 500
            err = TransientDiagramError if retry else DiagramError
            raise err(f"{first}{': ' + detail if detail else ''}") from None
        svg = result.get("svg", "")
        if "<svg" not in svg:
            raise DiagramError("mermaid.ink server did not answer with SVG")
        return svg


def _with_ink_config(source: str, theme: str) -> str:
    """Mermaid proper: strict security, SVG `<text>` labels (no foreignObject), the site's theme."""
    directive = "%%{init: " + json.dumps(
        {"theme": theme, "securityLevel": "strict", "htmlLabels": False, "flowchart": {"htmlLabels": False}}
    ) + "}%%"
    lines = source.split("\n")
    fm = _split_front_matter(lines)
    at = fm[1] + 1 if fm else 0
    return "\n".join(lines[:at] + [directive] + lines[at:])


def select_renderer(config: DiagramsConfig) -> Renderer:
    """The backend named in sitegen.yaml."""
    if config.renderer == "ink":
        return InkRenderer(os.environ.get("MERMAID_INK_SERVER", "").strip())
    return EmbeddedRenderer()


# --- sanitiser ----------------------------------------------------------------------------

_ELEMENTS = {
    "svg", "g", "path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "text", "tspan",
    "textPath", "title", "desc", "defs", "marker", "linearGradient", "radialGradient", "stop",
    "clipPath", "mask", "pattern", "symbol", "use", "style",
}
_UNWRAP = {"a", "switch"}
_TEXT_ELEMENTS = {"text", "tspan", "textPath", "title", "desc", "style"}
_ATTRS = {
    "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "rx", "ry", "fx", "fy", "width", "height", "d",
    "points", "transform", "viewBox", "preserveAspectRatio", "fill", "fill-opacity", "fill-rule",
    "stroke", "stroke-width", "stroke-dasharray", "stroke-dashoffset", "stroke-linecap",
    "stroke-linejoin", "stroke-miterlimit", "stroke-opacity", "opacity", "font-size", "font-family",
    "font-weight", "font-style", "font-variant", "text-anchor", "dominant-baseline",
    "alignment-baseline", "baseline-shift", "letter-spacing", "word-spacing", "text-decoration",
    "dx", "dy", "rotate", "textLength", "lengthAdjust", "class", "style", "role", "space", "offset",
    "stop-color", "stop-opacity", "gradientUnits", "gradientTransform", "spreadMethod",
    "markerWidth", "markerHeight", "markerUnits", "refX", "refY", "orient", "patternUnits",
    "patternContentUnits", "patternTransform", "clipPathUnits", "maskUnits", "maskContentUnits",
    "clip-path", "clip-rule", "mask", "marker-start", "marker-mid", "marker-end", "visibility",
    "display", "pathLength", "vector-effect", "paint-order", "shape-rendering", "text-rendering",
    "writing-mode", "color", "overflow", "id", "href", "aria-label", "aria-roledescription",
    "aria-hidden", "aria-labelledby", "aria-describedby", "startOffset", "method", "spacing", "side",
}
_URL_ATTRS = {"fill", "stroke", "clip-path", "mask", "marker-start", "marker-mid", "marker-end"}
_CSS_PROPS = {
    "fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-dasharray",
    "stroke-dashoffset", "stroke-linecap", "stroke-linejoin", "stroke-miterlimit", "stroke-opacity",
    "opacity", "font", "font-size", "font-family", "font-weight", "font-style", "font-variant",
    "text-anchor", "dominant-baseline", "alignment-baseline", "baseline-shift", "letter-spacing",
    "word-spacing", "text-decoration", "text-transform", "direction", "rx", "ry", "color",
    "visibility", "display", "transform", "transform-origin", "transform-box", "paint-order",
    "white-space", "line-height", "stop-color", "stop-opacity", "clip-path", "mask", "marker-start",
    "marker-mid", "marker-end", "marker", "vector-effect", "shape-rendering", "text-rendering",
    "writing-mode", "cursor", "pointer-events",
}
_BAD_VALUE = re.compile(r"(?i)(?:javascript|vbscript|data|file|https?|ftp)\s*:|expression\s*\(|@import|\\|/\*|<|>|[{}]|-moz-binding|behavior\s*:")
_URL_REF = re.compile(r"url\(\s*(['\"]?)(.*?)\1\s*\)", re.I)
_ID_RE = re.compile(r"^[A-Za-z_][\w.:-]{0,127}$")
_CLASS_RE = re.compile(r"^[A-Za-z_][\w-]{0,63}$")
_CLASS_LIST = re.compile(r"[A-Za-z_][\w-]{0,63}(?: [A-Za-z_][\w-]{0,63})*\Z")
_SELECTOR_RE = re.compile(r"^[\w\s#.,:>+~*()\[\]=\"'^$|-]+$")


def _local(name: str) -> tuple[str, str]:
    if name.startswith("{"):
        ns, _, local = name[1:].partition("}")
        return ns, local
    return "", name


class _Scope:
    """Renames every id to `<scope>-<id>` and rewrites references; unknown references are dropped."""

    def __init__(self, scope: str, ids: set[str], root_id: str | None):
        self.scope = scope
        self.ids = ids
        self.root_id = root_id

    def ref(self, ident: str) -> str | None:
        if self.root_id is not None and ident == self.root_id:
            return self.scope
        if ident in self.ids:
            return f"{self.scope}-{ident}"
        return None

    def url_value(self, value: str) -> str | None:
        """A value whose url(...) references all point inside this diagram, rewritten; else None."""

        def sub(m: re.Match) -> str:
            target = m[2].strip()
            if not target.startswith("#"):
                raise ValueError
            new = self.ref(target[1:])
            if new is None:
                raise ValueError
            return f"url(#{new})"

        try:
            return _URL_REF.sub(sub, value)
        except ValueError:
            return None


def _css_value(prop: str, value: str, scope: _Scope) -> str | None:
    value = value.strip()
    if not value or len(value) > 300:
        return None
    if "url(" in value.lower():
        rewritten = scope.url_value(value)
        if rewritten is None:
            return None
        value = rewritten
        if _BAD_VALUE.search(_URL_REF.sub("", value)):
            return None
        return value
    if _BAD_VALUE.search(value):
        return None
    return value


def _css_declarations(text: str, scope: _Scope, drop: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    if "url(" not in text.lower():
        return list(_plain_declarations(text, drop))  # no reference to rescope: the same for every diagram
    return _declarations(text, scope, drop)


@functools.lru_cache(maxsize=4096)
def _plain_declarations(text: str, drop: frozenset[str]) -> tuple[tuple[str, str], ...]:
    return tuple(_declarations(text, _Scope("", set(), None), drop))


def _declarations(text: str, scope: _Scope, drop: frozenset[str]) -> list[tuple[str, str]]:
    out = []
    for decl in text.split(";"):
        if ":" not in decl:
            continue
        prop, _, value = decl.partition(":")
        prop = prop.strip().lower()
        if prop not in _CSS_PROPS or prop in drop:
            continue
        important = ""
        if re.search(r"!\s*important\s*$", value, re.I):
            value = re.sub(r"!\s*important\s*$", "", value, flags=re.I)
            important = "!important"
        clean = _css_value(prop, value, scope)
        if clean is not None:
            out.append((prop, clean + important))
    return out


def _scoped_stylesheet(css: str, scope: _Scope) -> str:
    """Rules from a renderer's <style>, each selector confined to this diagram; at-rules dropped."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    rules: list[str] = []
    depth = 0
    start = 0
    selector = ""
    i = 0
    while i < len(css):
        ch = css[i]
        if ch in "\"'":
            end = css.find(ch, i + 1)
            i = len(css) if end < 0 else end + 1
            continue
        if ch == "{":
            if depth == 0:
                selector = css[start:i].strip()
                start = i + 1
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                body = css[start:i]
                start = i + 1
                if not selector.startswith("@"):
                    rule = _scoped_rule(selector, body, scope)
                    if rule:
                        rules.append(rule)
            elif depth < 0:
                depth = 0
                start = i + 1
        i += 1
    return "".join(rules)


def _scoped_rule(selector: str, body: str, scope: _Scope) -> str | None:
    if "{" in body or not _SELECTOR_RE.match(selector):
        return None
    decls = _css_declarations(body, scope)
    root_decls = [(p, v) for p, v in decls if p in _ROOT_PROPS]
    selectors = []
    for sel in selector.split(","):
        sel = " ".join(sel.split())
        # Sibling combinators reach out of the diagram (`#d ~ p`); nothing we render needs them.
        if not sel or re.search(r"[~+]", re.sub(r"\[[^\]]*\]|\([^)]*\)", "", sel)):
            continue
        sel = re.sub(r"#([\w-]+)", lambda m: "#" + (scope.ref(m[1]) or f"{scope.scope}-{m[1]}"), sel)
        if not sel.startswith(f"#{scope.scope}") or re.match(rf"#{re.escape(scope.scope)}[\w-]", sel):
            sel = f"#{scope.scope} {sel}"
        selectors.append(sel)
    # A rule on the diagram itself may not move or resize it over the page.
    own = [s for s in selectors if re.fullmatch(rf"#{re.escape(scope.scope)}(?:[.:\[][^ >]*)?", s)]
    inner = [s for s in selectors if s not in own]
    rules = []
    for group, body_decls in ((own, root_decls), (inner, decls)):
        if group and body_decls:
            rules.append(",".join(group) + "{" + ";".join(f"{p}:{v}" for p, v in body_decls) + "}")
    return "".join(rules) or None


_ROOT_PROPS = {
    "fill", "stroke", "color", "font-size", "font-weight", "font-style", "font-variant", "letter-spacing",
    "word-spacing", "text-transform", "direction", "text-anchor", "dominant-baseline", "line-height",
    "stroke-width", "stroke-linecap", "stroke-linejoin",
}
"""What the root <svg> may be styled with: type and paint, never position, size or visibility."""


def _attr_value(name: str, value: str, scope: _Scope) -> str | None:
    value = value.strip() if name not in ("d", "points") else value
    if name == "id":
        return scope.ref(value) if _ID_RE.match(value) else None
    if name == "href":
        if value.startswith("#") and scope.ref(value[1:]) is not None:
            return "#" + scope.ref(value[1:])  # type: ignore[operator]
        return None
    if name in ("aria-labelledby", "aria-describedby"):
        refs = [scope.ref(v) for v in value.split()]
        kept = [r for r in refs if r]
        return " ".join(kept) or None
    if name == "class":
        if _CLASS_LIST.match(value):
            return value
        kept = [c for c in value.split() if _CLASS_RE.match(c)]
        return " ".join(kept) or None
    if name == "style":
        decls = _css_declarations(value, scope)
        return ";".join(f"{p}:{v}" for p, v in decls) or None
    if "url(" in value.lower():
        if name not in _URL_ATTRS:
            return None
        return scope.url_value(value)
    if _BAD_VALUE.search(value) and name not in ("d", "points", "transform", "viewBox"):
        return None
    if name in ("d", "points", "transform", "viewBox") and re.search(r"[<>\"'&{}\\]|:", value):
        return None
    return value


_PLAIN_VALUE = re.compile(r"[\w .,%+#-]*\Z")
"""Values made only of these characters need no check and no escaping (the common case)."""
_SCOPED_ATTRS = {"id", "href", "aria-labelledby", "aria-describedby", "class", "style"}
_TAGS = {f"{{{SVG_NS}}}{t}": t for t in _ELEMENTS | _UNWRAP} | {t: t for t in _ELEMENTS | _UNWRAP}
_DATA_ATTR = re.compile(r"data-[a-z0-9-]{1,40}\Z")


def _text(s: str) -> str:
    return html.escape(s, quote=False) if ("&" in s or "<" in s or ">" in s) else s


def _serialise(el: ET.Element, scope: _Scope, out: list[str], stats: dict[str, int]) -> None:
    tag = _TAGS.get(el.tag) if isinstance(el.tag, str) else None
    if tag is None:
        stats["dropped"] += 1
        return
    if tag in _UNWRAP:
        if el.text and el.text.strip():
            out.append(_text(el.text))
        for child in el:
            _serialise(child, scope, out, stats)
            if child.tail:
                out.append(_text(child.tail))
        return
    if tag == "style":
        css = _scoped_stylesheet("".join(el.itertext()), scope)
        if css:
            out.append(f"<style>{css}</style>")
        return
    parts = [f"<{tag}"]
    has_href = False
    for name, raw_value in el.attrib.items():
        if name[0] == "{":
            ans, name = _local(name)
            if ans == XML_NS and name == "space":
                if raw_value in ("preserve", "default"):
                    parts.append(f' xml:space="{raw_value}"')
                continue
            if not (ans == XLINK_NS and name == "href"):
                continue
        if name not in _ATTRS and not _DATA_ATTR.match(name):
            stats["attrs"] += 1
            continue
        if name not in _SCOPED_ATTRS and _PLAIN_VALUE.match(raw_value):
            parts.append(f' {name}="{raw_value}"')
            continue
        value = _attr_value(name, raw_value, scope)
        if value is None:
            stats["attrs"] += 1
            continue
        has_href = has_href or name == "href"
        parts.append(f' {name}="{html.escape(value, quote=True)}"')
    if tag == "use" and not has_href:
        stats["dropped"] += 1
        return
    out.append("".join(parts))
    text = el.text if tag in _TEXT_ELEMENTS else None
    if not len(el) and not text:
        out.append("/>")
        return
    out.append(">")
    if text:
        out.append(_text(text))
    is_text = tag in _TEXT_ELEMENTS
    for child in el:
        _serialise(child, scope, out, stats)
        if is_text and child.tail:
            out.append(_text(child.tail))
    out.append(f"</{tag}>")


def _dark_css(scope: str, theme: str) -> str:
    """Remap the light palette to the dark one for the site's dark mode (screens only, never print)."""
    return _dark_css_template(theme).replace("\x00", scope)


@functools.lru_cache(maxsize=8)
def _dark_css_template(theme: str) -> str:
    scope = "\x00"
    if theme not in _PALETTES or theme == "dark":
        return ""
    light, dark = _PALETTES[theme], _PALETTES["dark"]
    rules: list[tuple[str, str]] = [("", f"color:{dark['fg']}"), (f'[fill="{light["fg"]}" i]', f"fill:{dark['fg']}")]
    done: set[tuple[str, str]] = set()
    for key in ("surface", "surface-alt", "border", "line", "fg", "muted", "accent", "bg"):
        for prop in ("fill", "stroke"):
            if (prop, light[key]) in done:
                continue
            done.add((prop, light[key]))
            # White text on coloured boxes is already readable: only shapes take the dark background.
            subject = ":not(text):not(tspan)" if key == "bg" else ""
            rules.append((f" {subject}[{prop}=\"{light[key]}\" i]", f"{prop}:{dark[key]}"))

    def sheet(prefix: str) -> str:
        return "".join(f"{prefix}#{scope}{sel}{{{decl}}}" for sel, decl in rules)

    return (
        sheet(':root[data-theme="dark"] ')
        + "@media screen and (prefers-color-scheme:dark){"
        + sheet(':root:not([data-theme="light"]) ')
        + "}"
    )


# Pele's palettes (mermaid_render.renderer.THEMES), copied so the HTML build never imports it.
_PALETTES = {
    "default": {"bg": "#FFFFFF", "fg": "#333333", "muted": "#666666", "line": "#333333", "surface": "#ECECFF",
                "surface-alt": "#FFFFDE", "border": "#9370DB", "accent": "#9370DB"},
    "dark": {"bg": "#1F2020", "fg": "#EEEEEE", "muted": "#BBBBBB", "line": "#CCCCCC", "surface": "#303640",
             "surface-alt": "#252A32", "border": "#8A9BB5", "accent": "#8AAEED"},
    "neutral": {"bg": "#FFFFFF", "fg": "#222222", "muted": "#666666", "line": "#444444", "surface": "#F3F3F3",
                "surface-alt": "#E6E6E6", "border": "#888888", "accent": "#555555"},
    "forest": {"bg": "#FFFFFF", "fg": "#153C20", "muted": "#53765A", "line": "#32583B", "surface": "#DDEED8",
               "surface-alt": "#EFF6E8", "border": "#528C50", "accent": "#528C50"},
}


def _default_title(root: ET.Element, fallback: str) -> str:
    for el in root.iter():
        cls = el.get("class", "")
        if "pele-title" in cls.split() or "titleText" in cls.split() or "chartTitleText" in cls.split():
            text = " ".join("".join(el.itertext()).split())
            if text:
                return text
    kind = root.get("aria-roledescription", "").split("-")[0].strip() or fallback
    kind = re.sub(r"([a-z])([A-Z])", r"\1 \2", kind)
    return f"{kind[:1].upper()}{kind[1:]} diagram" if kind else "Diagram"


def sanitize_svg(svg: str, scope: str, title: str = "", theme: str = "neutral", kind: str = "") -> str:
    """An allowlisted copy of a renderer's SVG: ids scoped, CSS scoped, role=img and a <title>."""
    if not isinstance(svg, str):
        raise DiagramError("diagram renderer returned no SVG")
    if len(svg) > MAX_SVG_CHARS:
        raise DiagramError(f"diagram SVG larger than {MAX_SVG_CHARS} characters")
    if re.search(r"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST)", svg, re.I):
        raise DiagramError("diagram SVG contains a DTD")
    svg = re.sub(r"^\s*<\?xml[^>]*\?>", "", svg)
    try:
        root = ET.fromstring(svg, parser=ET.XMLParser())
    except ET.ParseError as exc:
        raise DiagramError(f"diagram SVG could not be parsed: {exc}") from None
    if _local(root.tag) != (SVG_NS, "svg") and _local(root.tag) != ("", "svg"):
        raise DiagramError("diagram renderer did not return an <svg> element")
    ids = {el.get("id") for el in root.iter() if el.get("id") and _ID_RE.match(el.get("id", ""))}
    root_id = root.get("id")
    ids.discard(root_id)
    sc = _Scope(scope, ids, root_id)  # type: ignore[arg-type]

    own_title = ""
    desc_id = None
    for child in list(root):
        ns, tag = _local(child.tag)
        if tag == "title" and not own_title:
            own_title = " ".join("".join(child.itertext()).split())
            root.remove(child)
        elif tag == "desc" and child.get("id"):
            desc_id = sc.ref(child.get("id", ""))
    title = own_title or title or _default_title(root, kind)

    attrs = [f'xmlns="{SVG_NS}"', f'id="{scope}"', 'class="diagram-svg"']
    for name in ("viewBox", "width", "height", "preserveAspectRatio", "fill", "stroke"):
        value = root.get(name)
        if value is not None:
            clean = _attr_value(name, value, sc)
            if clean is not None:
                attrs.append(f'{name}="{html.escape(clean)}"')
    attrs.append('role="img"')
    attrs.append(f'aria-labelledby="{scope}-title"')
    if desc_id:
        attrs.append(f'aria-describedby="{desc_id}"')
    role_desc = root.get("aria-roledescription")
    if role_desc and re.fullmatch(r"[\w -]{1,40}", role_desc):
        attrs.append(f'aria-roledescription="{html.escape(role_desc)}"')
    # The root style keeps only what draws; the font stack is ours (CJK included).
    decls = [(p, v) for p, v in _css_declarations(root.get("style", ""), sc) if p in _ROOT_PROPS and p != "color"]
    colour = re.search(r"(?:^|;)\s*color\s*:\s*(#[0-9A-Fa-f]{3,8})", root.get("style", ""))
    if colour:
        attrs.append(f'color="{colour[1]}"')
    size = re.match(r"\s*([\d.]+px)\b", next((v for p, v in _css_declarations(root.get("style", ""), sc) if p == "font"), ""))
    # Pele measured its labels at this size and weight: the page must not restyle them.
    decls = [(p, v) for p, v in decls if p not in ("font-size", "font-weight", "font-style")]
    decls += [("font-size", size[1] if size else "16px"), ("font-weight", "400"), ("font-style", "normal")]
    style = ";".join(f"{p}:{v}" for p, v in decls)
    style += f";font-family:{FONT_STACK}"
    attrs.append(f'style="{html.escape(style)}"')

    out = [f"<svg {' '.join(attrs)}>", f'<title id="{scope}-title">{html.escape(title, quote=False)}</title>']
    css = f"#{scope}{{max-width:100%;height:auto}}" + _dark_css(scope, theme)
    out.append(f"<style>{css}</style>")
    stats = {"dropped": 0, "attrs": 0}
    for child in root:  # stray text directly inside <svg> is never drawn, so it is not carried over
        _serialise(child, sc, out, stats)
    out.append("</svg>")
    return "".join(out)


# --- figure markup ------------------------------------------------------------------------


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


# --- worker pool --------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One diagram for a worker: plain, picklable values only."""

    source: str
    theme: str
    scope: str
    title: str
    kind: str
    timeout: float


@dataclass
class Outcome:
    svg: str | None = None
    error: str | None = None
    transient: bool = False


def render_task(renderer: Renderer, task: Task) -> Outcome:
    """Render and sanitise one diagram; every failure becomes a message."""
    try:
        raw = renderer.render(task.source, task.theme, task.timeout)
        return Outcome(svg=sanitize_svg(raw, task.scope, task.title, task.theme, task.kind))
    except DiagramError as exc:
        return Outcome(error=str(exc), transient=exc.transient)
    except Exception as exc:  # a renderer bug must not take the whole build down
        return Outcome(error=f"mermaid renderer failed: {type(exc).__name__}: {clean_renderer_message(str(exc))}", transient=True)


def _worker_main(conn: Any, renderer: Renderer) -> None:
    # Ctrl-C reaches the whole process group: the parent decides, the workers just stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        renderer.warm()
    except Exception as exc:
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        index, task = msg
        conn.send(("done", (index, render_task(renderer, task))))


@dataclass
class _Slot:
    proc: Any
    conn: Any
    started: float
    ready: bool = False
    queue: deque = field(default_factory=deque)
    """Task indexes sent to this worker, oldest (the running one) first."""
    deadline: float = 0.0


PREFETCH = 2
"""Tasks in flight per worker: the next one waits in the pipe, so a worker never idles on a round trip."""
TASKS_PER_WORKER = 64
"""Below this many diagrams per worker, another worker costs more to start than it saves."""


def _pool_context() -> Any:
    """fork when it is safe (one thread, no model loaded): workers start in a fraction of spawn's time."""
    import sys
    import threading

    heavy = any(name in sys.modules for name in ("torch", "transformers", "weasyprint"))
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1 and not heavy:
        return multiprocessing.get_context("fork")
    # spawn otherwise: forking a process with threads can deadlock, and a loaded model must never be copied.
    return multiprocessing.get_context("spawn")


def run_tasks(renderer: Renderer, tasks: list[Task], workers: int) -> list[Outcome]:
    """Render tasks on up to `workers` processes (0: in this process), killing any that overruns its limit."""
    if not tasks:
        return []
    if workers <= 0:
        return [render_task(renderer, t) for t in tasks]
    ctx = _pool_context()
    if ctx.get_start_method() == "fork":
        # Warm once here and every forked worker starts with the renderer loaded (copy-on-write),
        # instead of each paying for the imports and the JavaScript engine again.
        try:
            renderer.warm()
        except Exception:
            pass  # the workers will warm again and report the failure as an error
    results: list[Outcome | None] = [None] * len(tasks)
    pending = deque(range(len(tasks)))
    size = max(1, min(workers, len(tasks) // TASKS_PER_WORKER))
    slots: list[_Slot | None] = [None] * size
    start_failures = 0
    start_error = ""

    def start() -> _Slot:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker_main, args=(child, renderer), daemon=True, name="sitegen-diagram")
        proc.start()
        child.close()
        return _Slot(proc, parent, time.monotonic())

    def stop(slot: _Slot) -> None:
        if slot.proc.is_alive():
            slot.proc.kill()
        slot.proc.join(5)
        slot.conn.close()

    def retire(i: int, slot: _Slot, head: Outcome | None) -> None:
        """Stop a worker; its running task gets `head`, the ones queued behind it go back to pending."""
        if slot.queue:
            first = slot.queue.popleft()
            if head is not None:
                results[first] = head
            else:
                pending.appendleft(first)
        while slot.queue:
            pending.appendleft(slot.queue.pop())
        stop(slot)
        slots[i] = None

    def busy() -> bool:
        return any(s is not None and s.queue for s in slots)

    try:
        while pending or busy():
            if start_failures >= 3:
                while pending:
                    results[pending.popleft()] = Outcome(error=f"mermaid renderer could not start: {start_error}", transient=True)
                if not busy():
                    break
            now = time.monotonic()
            for i, s in enumerate(slots):
                if s is None and pending and start_failures < 3:
                    slots[i] = s = start()
                while s is not None and s.ready and pending and len(s.queue) < PREFETCH:
                    index = pending.popleft()
                    if not s.queue:
                        s.deadline = now + tasks[index].timeout
                    s.queue.append(index)
                    s.conn.send((index, tasks[index]))
            live = [s for s in slots if s is not None]
            if not live:
                continue
            limits = [s.deadline if s.queue else s.started + WORKER_START_TIMEOUT for s in live if s.queue or not s.ready]
            wait = max(0.0, min(limits) - now) if limits else None
            readable = multiprocessing.connection.wait([s.conn for s in live], wait)
            now = time.monotonic()
            for i, s in enumerate(slots):
                if s is None:
                    continue
                if s.conn in readable:
                    try:
                        tag, payload = s.conn.recv()
                    except (EOFError, OSError):
                        s.proc.join(1)
                        if not s.ready:
                            start_failures += 1
                            start_error = f"worker exited with code {s.proc.exitcode}"
                        crash = Outcome(error=f"mermaid renderer crashed (exit code {s.proc.exitcode})", transient=True)
                        retire(i, s, crash if s.queue else None)
                        continue
                    if tag == "ready":
                        s.ready = True
                    elif tag == "failed":
                        start_failures += 1
                        start_error = str(payload)
                        retire(i, s, None)
                    else:
                        index, outcome = payload
                        results[index] = outcome
                        if s.queue and s.queue[0] == index:
                            s.queue.popleft()
                        # The next queued task starts now: its own time limit starts now too.
                        s.deadline = now + tasks[s.queue[0]].timeout if s.queue else 0.0
                elif s.queue and now >= s.deadline:
                    timed_out = Outcome(error=f"mermaid render timed out after {tasks[s.queue[0]].timeout:g} s", transient=True)
                    retire(i, s, timed_out)
                elif not s.ready and now >= s.started + WORKER_START_TIMEOUT:
                    start_failures += 1
                    start_error = f"no answer within {WORKER_START_TIMEOUT:g} s"
                    retire(i, s, None)
    finally:
        for s in slots:
            if s is not None:
                try:
                    s.conn.send(None)
                except (OSError, ValueError):
                    pass
        for s in slots:
            if s is not None:
                s.proc.join(2)
                stop(s)
    return [r if r is not None else Outcome(error="mermaid renderer gave no result", transient=True) for r in results]


# --- the service --------------------------------------------------------------------------


def diagram_cache_key(source: str, renderer: Renderer, version: str, theme: str) -> str:
    """Content address of one diagram: source + renderer + its version + theme + sanitiser."""
    from .cache import hash_key

    return hash_key("mermaid", source, renderer.name, version, theme, SANITISER_VERSION)


def resolve_diagrams(
    jobs: list[Job],
    config: DiagramsConfig,
    cache_root: Path | None,
    workers: int,
    *,
    renderer: Renderer | None = None,
    diags: Diagnostics | None = None,
) -> dict[str, JobResult]:
    """Cache first, then a pool of renderers; one JobResult per job key (messages carry no location)."""
    from ..models import JobResult
    from .cache import Cache

    renderer = renderer or select_renderer(config)
    version = renderer.version()
    missing = renderer.check()
    max_edges = config.max_edges
    cache = Cache(cache_root, "diagrams")
    results: dict[str, JobResult] = {}
    todo: list[tuple[Job, Prepared, str, Task]] = []
    for job in jobs:
        if job.key in results:
            continue
        if job.kind != "mermaid":
            results[job.key] = JobResult(render_error_box(job.source, [f"not a diagram job: {job.kind}"]), errors=[f"not a diagram job: {job.kind}"])
            continue
        prepared = prepare_source(job.source, config.max_chars, max_edges)
        if prepared.errors:
            results[job.key] = JobResult(render_error_box(job.source, prepared.errors), errors=prepared.errors, warnings=prepared.warnings)
            continue
        key = diagram_cache_key(job.source, renderer, version, config.theme)
        hit = _cache_load(cache, key)
        if hit is not None:
            results[job.key] = JobResult(hit["html"], errors=hit["errors"], warnings=hit["warnings"], cached=True)
            continue
        if missing:
            results[job.key] = JobResult(render_error_box(job.source, [missing]), errors=[missing], warnings=prepared.warnings)
            continue
        scope = "mmd-" + key[:12]
        task = Task(prepared.source, config.theme, scope, prepared.title, prepared.diagram_type, float(config.timeout))
        todo.append((job, prepared, key, task))
        results[job.key] = None  # type: ignore[assignment]  # placeholder keeps duplicates out of todo
    if diags is not None:
        diags.extend(cache.problems())  # damaged entries are rebuilt below; the build names them
    outcomes = run_tasks(renderer, [t for *_, t in todo], min(workers, len(todo)) if workers > 0 else 0)
    for (job, prepared, key, task), outcome in zip(todo, outcomes):
        if outcome.svg is not None:
            payload = {"html": render_figure(outcome.svg, task.kind), "errors": [], "warnings": prepared.warnings}
        else:
            error = outcome.error or "diagram could not be rendered"
            payload = {"html": render_error_box(job.source, [error]), "errors": [error], "warnings": prepared.warnings}
        if not outcome.transient:
            cache.put_text(key, json.dumps(payload, ensure_ascii=False))
        results[job.key] = JobResult(payload["html"], errors=list(payload["errors"]), warnings=list(payload["warnings"]))
    return results


def _cache_load(cache: Any, key: str) -> dict | None:
    text = cache.get_text(key)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        cache.corrupt.append(key)
        return None
    # Checked, not trusted: a wrong shape is a damaged entry, rebuilt, never a crash.
    if not (isinstance(data, dict) and isinstance(data.get("html"), str)
            and all(isinstance(data.get(k, []), list) and all(isinstance(m, str) for m in data.get(k, [])) for k in ("errors", "warnings"))):
        cache.corrupt.append(key)
        return None
    return {"html": data["html"], "errors": list(data.get("errors", [])), "warnings": list(data.get("warnings", []))}
