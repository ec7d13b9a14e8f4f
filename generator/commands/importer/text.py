"""Text: lines and changes, character classes, fences, line helpers, reading a source file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

from ...diagnostics import Diagnostic, Location


MAX_SOURCE_BYTES = 2 * 1024 * 1024

# --- plain objects ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One line of the article and the 1-based source line it came from."""

    text: str
    src: int
    cut: bool = False
    """A chat token was removed right before this line (a turn boundary)."""


@dataclass(frozen=True)
class Change:
    """One entry of the per-file summary: what was extracted, removed or changed, and where."""

    action: Literal["extracted", "removed", "changed", "split"]
    what: str
    first: int | None = None
    last: int | None = None

    def format(self) -> str:
        where = ""
        if self.first is not None:
            where = f" (line {self.first})" if self.last in (None, self.first) else f" (lines {self.first}-{self.last})"
        return f"{self.action} {self.what}{where}"


# --- character classes and shared patterns ----------------------------------------------------------

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
_FENCE_OPEN = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_HR = re.compile(r"^ {0,3}(?:-[ \t]*){3,}$|^ {0,3}(?:\*[ \t]*){3,}$|^ {0,3}(?:_[ \t]*){3,}$")
_SETEXT_H1 = re.compile(r"^ {0,3}={3,}[ \t]*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+(.*)$")


def cjk_count(text: str) -> int:
    """Number of Chinese characters."""
    return len(_CJK.findall(text))


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


def fence_mask(texts: list[str]) -> list[bool]:
    """For each line, whether it belongs to a fenced code block (fence lines included)."""
    mask: list[bool] = []
    open_fence: tuple[str, int] | None = None
    for text in texts:
        if open_fence is None:
            m = _FENCE_OPEN.match(text)
            if m and not (m["fence"][0] == "`" and "`" in m["info"]):
                open_fence = (m["fence"][0], len(m["fence"]))
                mask.append(True)
                continue
            mask.append(False)
        else:
            mask.append(True)
            s = text.strip()
            ch, n = open_fence
            if s and set(s) == {ch} and len(s) >= n:
                open_fence = None
    return mask


def unclosed_fence(texts: list[str]) -> int | None:
    """Index of a fence opener that is never closed, if any."""
    open_at: int | None = None
    open_fence: tuple[str, int] | None = None
    for i, text in enumerate(texts):
        if open_fence is None:
            m = _FENCE_OPEN.match(text)
            if m and not (m["fence"][0] == "`" and "`" in m["info"]):
                open_fence, open_at = (m["fence"][0], len(m["fence"])), i
        else:
            s = text.strip()
            if s and set(s) == {open_fence[0]} and len(s) >= open_fence[1]:
                open_fence, open_at = None, None
    return open_at


def _span(lines: Iterable[Line]) -> tuple[int | None, int | None]:
    srcs = [ln.src for ln in lines]
    return (min(srcs), max(srcs)) if srcs else (None, None)


def _strip_markup(text: str) -> str:
    """Text of a title-like line without Markdown emphasis, heading marks and wrapping quotes."""
    s = text.strip()
    s = re.sub(r"^#{1,6}\s*", "", s)
    s = re.sub(r"^>\s*", "", s)
    for _ in range(3):
        m = re.fullmatch(r"(\*\*|__|\*|_|`)(.+)\1", s)
        if m:
            s = m[2].strip()
    pairs = {"《": "》", "“": "”", '"': '"', "「": "」", "『": "』", "'": "'"}
    if len(s) >= 2 and s[0] in pairs and s[-1] == pairs[s[0]] and s.count(s[0]) == 1:
        s = s[1:-1].strip()
    return re.sub(r"\s+", " ", s).strip()


def _join_text(parts: list[str]) -> str:
    """Join wrapped lines of one paragraph: no space between Chinese characters."""
    out: list[str] = []
    for p in (p.strip() for p in parts):
        if not p:
            continue
        if out and not (has_cjk(out[-1][-1]) or has_cjk(p[0]) or out[-1][-1] in "，。；：、！？（）"):
            out.append(" ")
        out.append(p)
    return "".join(out)


# --- reading -----------------------------------------------------------------------------------


def read_source(path: Path, display: str) -> tuple[str | None, list[Diagnostic]]:
    """UTF-8 text of a source file, or an error naming the file (missing, binary, bad encoding)."""
    try:
        if not path.is_file():
            return None, [Diagnostic("error", "import-read", "not a readable file", Location(display))]
        if path.stat().st_size > MAX_SOURCE_BYTES:
            return None, [Diagnostic("error", "import-read", "file larger than 2 MiB", Location(display, 1))]
        data = path.read_bytes()
    except OSError as exc:
        return None, [Diagnostic("error", "import-read", f"cannot read: {exc.strerror}", Location(display))]
    if b"\x00" in data[:8192] or b"\x00" in data:
        idx = data.index(b"\x00")
        line = data.count(b"\n", 0, idx) + 1
        col = idx - (data.rfind(b"\n", 0, idx) + 1) + 1
        return None, [Diagnostic("error", "import-read", "binary file (NUL byte); expected UTF-8 text", Location(display, line, col))]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        return None, [
            Diagnostic(
                "error",
                "import-read",
                f"not UTF-8 text (invalid byte 0x{data[exc.start]:02x}); save the file as UTF-8",
                Location(display, line, col),
            )
        ]
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n").replace("\r", "\n"), []


def split_lines(text: str) -> list[Line]:
    """Lines with their source numbers, verbatim (whitespace is tidied later, outside code only)."""
    return [Line(t, i + 1) for i, t in enumerate(text.split("\n"))]


# --- line helpers ---------------------------------------------------------------------------------


def _next_nonblank(lines: list[Line], i: int, stop: int | None = None) -> int | None:
    stop = len(lines) if stop is None else stop
    while i < stop and not lines[i].text.strip():
        i += 1
    return i if i < stop else None


def _remove(lines: list[Line], drop: set[int]) -> list[Line]:
    return [ln for i, ln in enumerate(lines) if i not in drop]
