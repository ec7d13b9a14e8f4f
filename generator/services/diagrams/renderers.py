"""Renderer backends: the embedded mermaid-render (QuickJS, in-process) and a mermaid.ink server.

Nothing here imports a Mermaid package at module level: the renderers are imported inside the workers.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from xml.etree import ElementTree as ET

from .errors import DiagramError, TransientDiagramError
from .source import _diagram_type, _split_front_matter, clean_renderer_message, import_mermaid_py

if TYPE_CHECKING:
    from ...config import DiagramsConfig


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
