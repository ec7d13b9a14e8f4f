"""Mermaid source checks and preparation (pure): directives, config, click/link statements, limits.

Also the quiet import of mermaid-py and the clean-up of renderer messages, which read the same source.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any


def import_mermaid_py() -> Any:
    """Import mermaid-py without the "IPython is not installed" line it prints to stdout."""
    import sys

    if "mermaid" in sys.modules:
        return sys.modules["mermaid"]
    with contextlib.redirect_stdout(io.StringIO()):
        return importlib.import_module("mermaid")


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
    from ...yamlsource import YamlProblem, parse_yaml

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
