"""`sitegen import`: turn raw analysis articles (Markdown-ish model output) into clean reports.

The heuristics are small pure functions over a list of `Line`s (text + source line number), so
each can be tested alone and every change they make can be reported with the line it came from.
`import_files` is the engine: read → remove chat tokens → split copies → clean each kept copy →
front matter → write (or diff).
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import os
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Literal


from ..diagnostics import Diagnostic, Location
from ..models import FrontMatter
from ..services.cache import write_atomic
from ..yamlsource import YamlProblem, dump_yaml, parse_yaml

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


@dataclass
class ImportedReport:
    """One report produced from a source file (the article, or its translation)."""

    slug: str
    lang: str
    meta: dict
    body: str
    target: Path
    text: str
    status: Literal["new", "written", "unchanged", "dry-run", "skipped"] = "new"


@dataclass
class FileImport:
    """Everything `import` did (or would do) with one source file."""

    source: Path
    display: str
    reports: list[ImportedReport] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    diff: str = ""

    @property
    def failed(self) -> bool:
        return any(d.level == "error" for d in self.diagnostics)


@dataclass
class ImportResult:
    """The outcome of one `import` run: one entry per source file."""

    files: list[FileImport] = field(default_factory=list)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [d for f in self.files for d in f.diagnostics]

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.level == "error"]

    @property
    def written(self) -> list[ImportedReport]:
        return [r for f in self.files for r in f.reports if r.status == "written"]


# --- character classes and shared patterns ----------------------------------------------------------

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
_FENCE_OPEN = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_HR = re.compile(r"^ {0,3}(?:-[ \t]*){3,}$|^ {0,3}(?:\*[ \t]*){3,}$|^ {0,3}(?:_[ \t]*){3,}$")
_SETEXT_H1 = re.compile(r"^ {0,3}={3,}[ \t]*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+(.*)$")
_TOKEN = re.compile(r"<[|｜]\s*([A-Za-z][\w.:/ ▁-]{0,40}?)\s*[|｜]>")
_ROLE_WORD = re.compile(r"^\s*(user|assistant|system|human|bot|model|gpt)\b[ \t]*:?", re.I)
_QUOTES = {'"': '"', "'": "'", "`": "`", "“": "”", "「": "」", "‘": "’"}

_USER_TOKENS = {"user", "system", "human", "prompter", "observation"}
_ASSISTANT_TOKENS = {"assistant", "bot", "gpt", "model", "end_of_directive", "endofdirective"}
_END_TOKENS = {"im_end", "end", "endoftext", "eot_id", "eos", "end_of_turn", "end_of_text", "end▁of▁sentence"}


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


# --- chat tokens ------------------------------------------------------------------------------


def _token_kind(name: str) -> str:
    n = name.strip().lower().replace(" ", "_")
    if n in _USER_TOKENS:
        return "user"
    if n in _ASSISTANT_TOKENS:
        return "assistant"
    if n == "im_start":
        return "start"
    if n in _END_TOKENS or n.startswith("end"):
        return "end"
    return "other"


def _quoted(line: str, start: int, end: int, in_fence: bool) -> bool:
    """A token written as content: inside quotes or an inline code span (`"<|endoftext|>"`)."""
    before = line[start - 1] if start > 0 else ""
    after = line[end] if end < len(line) else ""
    if before in _QUOTES and after == _QUOTES[before]:
        return True
    return not in_fence and line[:start].count("`") % 2 == 1


def _prompt_like(lines: list[Line]) -> bool:
    """A short turn without headings or code: a user prompt or a directive, not article text."""
    texts = [ln.text for ln in lines]
    if any(_HEADING.match(t) or _FENCE_OPEN.match(t) or _AUTHOR_LINE.match(t) for t in texts):
        return False
    return len("".join(texts).strip()) <= 600


def strip_chat_tokens(lines: list[Line]) -> tuple[list[Line], list[Change], list[Diagnostic]]:
    """Remove every `<|…|>` token; drop prompt turns; mark turn boundaries with `cut`."""
    mask = fence_mask([_TOKEN.sub("", ln.text) for ln in lines])
    out: list[list] = []  # [text, src, cut] — mutable while a line is assembled
    changes: list[Change] = []
    warnings: list[Diagnostic] = []
    seg_start = (0, 0)
    seg_role = "unknown"
    pending_cut = False
    removed: Counter[str] = Counter()
    first_line: dict[str, int] = {}

    def close_segment(drop_if_prompt: bool, next_role: str) -> None:
        nonlocal seg_start, seg_role
        li, off = seg_start
        if drop_if_prompt and li < len(out):
            seg = [Line(out[li][0][off:], out[li][1])] + [Line(t, s) for t, s, _ in out[li + 1 :]]
            text = "".join(ln.text for ln in seg).strip()
            if text and _prompt_like(seg):
                first, last = _span(ln for ln in seg if ln.text.strip())
                preview = re.sub(r"\s+", " ", text)[:40] + ("…" if len(text) > 40 else "")
                changes.append(Change("removed", f"prompt turn {preview!r}", first, last))
                out[li][0] = out[li][0][:off]
                del out[li + 1 :]
        seg_role = next_role
        seg_start = (len(out) - 1, len(out[-1][0])) if out else (0, 0)

    for ln, in_fence in zip(lines, mask):
        out.append(["", ln.src, pending_cut])
        pending_cut = False
        pos = 0
        text = ln.text
        for m in _TOKEN.finditer(text):
            if m.start() < pos:
                continue
            if _quoted(text, m.start(), m.end(), in_fence):
                warnings.append(
                    Diagnostic(
                        "warning",
                        "import-token",
                        f"kept {m[0]}: it is written as text ({'in code' if in_fence else 'quoted'}); `sitegen check` will still report it",
                        Location("", ln.src, m.start() + 1),
                    )
                )
                continue
            out[-1][0] += text[pos : m.start()]
            pos = m.end()
            removed[m[0]] += 1
            first_line.setdefault(m[0], ln.src)
            if in_fence:
                warnings.append(
                    Diagnostic("warning", "import-token", f"removed chat token {m[0]} inside a code block", Location("", ln.src, m.start() + 1))
                )
            kind = _token_kind(m[1])
            if kind == "start":
                role = _ROLE_WORD.match(text[pos:])
                kind = "unknown"
                if role:
                    kind = "user" if role[1].lower() in ("user", "system", "human") else "assistant"
                    pos += role.end()
            directive = m[1].strip().lower() in ("end_of_directive", "endofdirective")
            if kind == "user":
                close_segment(seg_role == "user", "user")
            elif kind == "assistant":
                close_segment(seg_role in ("user", "unknown") or directive, "assistant")
            elif kind == "end":
                close_segment(seg_role == "user", "unknown")
            elif kind == "unknown":
                close_segment(False, "unknown")
            rest = text[pos:]
            before = out[-1][0]
            # Mid-sentence a stray token is simply cut out; a turn token or a following block ends the line.
            if kind == "other" and before.strip() and rest.strip() and not re.match(r"\s*(#|>|```|~~~|\||[-*+] |\d+\. )", rest):
                if before[-1:].isascii() and before[-1:].isalnum() and rest[:1].isascii() and rest[:1].isalnum():
                    out[-1][0] = before + " "
                continue
            out[-1][0] = before.rstrip()
            if rest.strip():
                if out[-1][0].strip():
                    out.append(["", ln.src, True])
                else:
                    out[-1][2] = True
                pos += len(rest) - len(rest.lstrip())
            else:
                pending_cut = True
        out[-1][0] += text[pos:]
    if seg_role == "user":
        close_segment(True, "unknown")
    for tok, n in removed.items():
        changes.append(Change("removed", f"chat token {tok}" + (f" ×{n}" if n > 1 else ""), first_line[tok]))
    result = [Line(t, s, c) for t, s, c in out]
    return result, sorted(changes, key=lambda c: c.first or 0), warnings


# --- headings ------------------------------------------------------------------------------------

_NUM = re.compile(
    r"^(?:(?P<dec>\d{1,3}(?:[.．]\d{1,3})*)(?:[.．、:：]\s*|\s+)"
    r"|第\s*(?P<ord>[一二三四五六七八九十百零\d]{1,4})\s*(?P<unit>[章节部分篇])\s*[:：、.．]?\s*"
    r"|(?P<cn>[一二三四五六七八九十]{1,3})\s*[、.．]\s*"
    r"|(?:Chapter|Section|Part)\s+(?P<en>\d{1,3})\s*[:.]?\s+)"
)


@dataclass(frozen=True)
class HeadingInfo:
    """A parsed ATX heading: level, numbering, text without numbering, and a comparison key."""

    index: int
    level: int
    text: str
    number: str | None
    depth: int
    title: str
    key: str


def parse_number(text: str) -> tuple[str | None, int, str]:
    """Split leading section numbering; stacked numbers (`第一章 1.`) collapse to the most specific one."""
    found: list[tuple[str, int]] = []
    rest = text
    while True:
        m = _NUM.match(rest)
        if not m or m.end() >= len(rest):
            break
        if m["dec"]:
            parts = re.split(r"[.．]", m["dec"])
            found.append((".".join(parts), len(parts)))
        elif m["ord"]:
            found.append((f"第{m['ord']}{m['unit']}", 2 if m["unit"] == "节" else 1))
        elif m["cn"]:
            found.append((f"{m['cn']}、", 1))
        else:
            found.append((m["en"], 1))
        rest = rest[m.end() :]
    if not found:
        return None, 0, text.strip()
    decimal = [f for f in found if re.fullmatch(r"[\d.]+", f[0])]
    number, depth = max(decimal, key=lambda f: f[1]) if decimal else found[0]
    return number, depth, rest.strip()


def number_prefix(number: str | None, depth: int) -> str:
    """How a heading number is written: `1. `, `1.1 `, `一、`, `第一章 `."""
    if not number:
        return ""
    if re.fullmatch(r"[\d.]+", number):
        return f"{number}. " if depth == 1 else f"{number} "
    return number if number.endswith("、") else f"{number} "


def heading_key(title: str) -> str:
    """Comparison key: without a bracketed English gloss, lower-cased, without spaces and punctuation."""
    m = _BILINGUAL_PAREN.match(title)
    base = m["zh"] if m else title
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", base).lower())


def _clean_heading_text(text: str) -> str:
    s = (text or "").strip()
    for _ in range(2):
        m = re.fullmatch(r"(\*\*|__)(.+)\1", s)
        if m:
            s = m[2].strip()
    return s


def find_headings(lines: list[Line]) -> list[HeadingInfo]:
    """ATX headings outside code fences."""
    mask = fence_mask([ln.text for ln in lines])
    out = []
    for i, (ln, fenced) in enumerate(zip(lines, mask)):
        if fenced:
            continue
        m = _HEADING.match(ln.text)
        if not m:
            continue
        text = _clean_heading_text(m[2] or "")
        number, depth, title = parse_number(text)
        out.append(HeadingInfo(i, len(m[1]), text, number, depth, title, heading_key(title)))
    return out


_BILINGUAL_PAREN = re.compile(r"^(?P<zh>.*[\u3400-\u9fff].*?)\s*[（(]\s*(?P<en>[A-Za-z][^（）()\u3400-\u9fff]*?)\s*[）)]\s*$")
_BILINGUAL_TAIL = re.compile(
    r"^(?P<zh>.*[\u3400-\u9fff）」》])\s*(?:[/|:：–—-]\s*)?(?P<en>[A-Za-z][A-Za-z0-9 ,&'’:/\-]*[A-Za-z0-9?])\s*$"
)


def split_bilingual(title: str) -> tuple[str | None, str | None]:
    """`背景介绍（Background）` or `背景介绍 Background Introduction` → (Chinese, English)."""
    if not has_cjk(title):
        return None, title or None
    m = _BILINGUAL_PAREN.match(title)
    if m:
        return m["zh"].strip(), m["en"].strip()
    m = _BILINGUAL_TAIL.match(title)
    if m and len(m["en"].split()) >= 2:
        return m["zh"].strip(" /|:：–—-"), m["en"].strip()
    return title, None


# --- copies and language -----------------------------------------------------------------------------

_META_HEADING = re.compile(
    r"^(?:文章)?(?:标题|关键词|关键字|摘要|内容摘要|目录|作者|作者署名|文章作者|署名|引言|前言|简介|导语|"
    r"title|keywords?|abstract|summary|table of contents|contents|author|authors|introduction|preface)\s*[:：]?",
    re.I,
)
_TITLE_LABEL = re.compile(r"^(?:文章|论文|报告)?(?:标题|题目)\s*[:：]?\s*(?P<rest>.*)$|^title\s*[:：]?\s*(?P<rest2>.*)$", re.I)


def is_title_label(text: str) -> bool:
    return bool(_TITLE_LABEL.match(_strip_markup(text)))


def chapter_headings(heads: list[HeadingInfo]) -> list[HeadingInfo]:
    """The spine of an article: first-level numbered headings, else the shallowest ordinary ones."""
    numbered = [h for h in heads if h.depth == 1]
    if len(numbered) >= 2:
        return numbered
    plain = [h for h in heads if not _META_HEADING.match(h.title) and not is_title_label(h.text)]
    if not plain:
        return []
    levels = Counter(h.level for h in plain)
    top = min(levels)
    if top == 1 and levels[1] == 1 and len(levels) > 1:
        top = min(lv for lv in levels if lv > 1)
    return [h for h in plain if h.level == top]


_AUTHOR_LINE = re.compile(
    r"^[>\s#*_-]*(?:\*\*|__)?\s*(?:文章)?(?:作者署名|作者|署名|authors?|written by)\s*(?:\*\*|__)?\s*[:：]\s*(?P<value>.*?)\s*(?:\*\*|__)?\s*$",
    re.I,
)


def _copy_start(lines: list[Line], lo: int, restart: int, level: int) -> int:
    """Where a restarted copy begins: a turn boundary, a title block, or just after an author line."""
    cuts = [i for i in range(lo, restart + 1) if lines[i].cut]
    if cuts:
        return cuts[-1]
    for i in range(lo, restart):
        m = _HEADING.match(lines[i].text)
        if (m and is_title_label(m[2] or "")) or re.match(r"^\W*(?:文章)?标题\s*[:：]", lines[i].text):
            return i
    base = lo
    for i in range(lo, restart):
        if _AUTHOR_LINE.match(lines[i].text) or _HR.match(lines[i].text):
            base = i + 1
    for i in range(base, restart):
        m = _HEADING.match(lines[i].text)
        if m and len(m[1]) <= level:
            return i
    return base if base > lo else restart


def _title_marker(text: str) -> bool:
    """A line that opens a title block (`### 文章标题`, `## 文章标题：X`, `标题：X`)."""
    m = _HEADING.match(text)
    if m:
        return is_title_label(_clean_heading_text(m[2] or ""))
    return bool(re.match(r"^\W*(?:\*\*)?(?:文章)?标题(?:\*\*)?\s*[:：]", text))


def split_copies(lines: list[Line]) -> list[tuple[int, int]]:
    """Cut the article where it starts over: numbering back to the first chapter, or a new title block."""
    heads = find_headings(lines)
    spine = chapter_headings(heads)
    if not spine:
        return [(0, len(lines))]
    first = spine[0]
    # The title written as a heading before the first chapter marks a restart when it comes back.
    title_keys = {h.key for h in heads if h.index < first.index and h.number is None and h.key and not _META_HEADING.match(h.title)}
    mask = fence_mask([ln.text for ln in lines])
    events: list[tuple[int, str, HeadingInfo | None]] = [(h.index, "chapter", h) for h in spine[1:]]
    for i in range(first.index + 1, len(lines)):
        if mask[i]:
            continue
        hm = _HEADING.match(lines[i].text)
        if _title_marker(lines[i].text) or (hm and heading_key(_clean_heading_text(hm[2] or "")) in title_keys):
            events.append((i, "title", None))
    events.sort(key=lambda e: e[0])
    starts = [0]
    seen = 1
    fresh = False
    prev_index = first.index
    for index, kind, h in events:
        if kind == "title":
            if not fresh:
                cuts = [i for i in range(prev_index + 1, index + 1) if lines[i].cut]
                starts.append(max(cuts[-1] if cuts else index, starts[-1] + 1))
                fresh, seen = True, 0
            prev_index = index
            continue
        assert h is not None
        restart = seen >= 2 and (h.key == first.key or (first.number is not None and h.number == first.number))
        if restart and not fresh:
            start = _copy_start(lines, prev_index + 1, h.index, h.level)
            starts.append(max(start, starts[-1] + 1))
            seen = 1
        else:
            seen += 1
        fresh = False
        prev_index = h.index
    bounds = starts + [len(lines)]
    return [(bounds[i], bounds[i + 1]) for i in range(len(starts))]


def prose_texts(lines: list[Line]) -> list[str]:
    """Paragraph text outside code fences and headings, with inline code and formulas removed."""
    mask = fence_mask([ln.text for ln in lines])
    return [_prose(ln.text) for ln, fenced in zip(lines, mask) if not fenced and ln.text.strip() and not _HEADING.match(ln.text)]


def _prose(text: str) -> str:
    return re.sub(r"`[^`]*`|\$\$.*?\$\$|\$[^$]*\$|https?://\S+", " ", text)


def cjk_share(texts: Iterable[str]) -> float:
    """Share of Chinese characters among letters (0 for English prose, ~0.6+ for Chinese)."""
    text = "".join(texts)
    cjk = cjk_count(text)
    latin = len(_LATIN.findall(text))
    return cjk / (cjk + latin) if cjk + latin else 0.0


def detect_lang(lines: list[Line]) -> str:
    """`zh` when the prose is Chinese, else `en` (headings and code do not count)."""
    return "zh" if cjk_share(prose_texts(lines)) >= 0.2 else "en"


# --- metadata extraction -----------------------------------------------------------------------------


def _preamble_end(lines: list[Line]) -> int:
    """Index of the first chapter heading (metadata blocks live before it)."""
    spine = chapter_headings(find_headings(lines))
    return spine[0].index if spine else len(lines)


def _next_nonblank(lines: list[Line], i: int, stop: int | None = None) -> int | None:
    stop = len(lines) if stop is None else stop
    while i < stop and not lines[i].text.strip():
        i += 1
    return i if i < stop else None


def _remove(lines: list[Line], drop: set[int]) -> list[Line]:
    return [ln for i, ln in enumerate(lines) if i not in drop]


def extract_title(lines: list[Line]) -> tuple[str | None, str | None, list[Line], list[Change]]:
    """Title from a `文章标题` block, a `标题：` line or a leading heading/bold line; returns (title, English title, lines, changes)."""
    end = _preamble_end(lines)
    mask = fence_mask([ln.text for ln in lines])
    title: str | None = None
    title_en: str | None = None
    drop: set[int] = set()
    for i in range(min(end, 80)):  # a title block opens the article
        if mask[i] or not re.search(r"标题|题目|title", lines[i].text, re.I):
            continue
        text = lines[i].text
        hm = _HEADING.match(text)
        raw = _clean_heading_text(hm[2] or "") if hm else text
        lm = _TITLE_LABEL.match(_strip_markup(raw))
        if lm and (hm or re.match(r"^\W*(?:\*\*)?(?:文章|论文|报告)?(?:标题|题目|title)(?:\*\*)?\s*[:：]", text, re.I)):
            value = _strip_markup(lm["rest"] or lm["rest2"] or "")
            drop.add(i)
            j = i + 1
            if not value:
                j = _next_nonblank(lines, i + 1, end) or end
                if j < end:
                    value = _strip_markup(lines[j].text)
                    drop.add(j)
                    j += 1
            title = value or None
            # An English title on the next line, right under the Chinese one.
            k = _next_nonblank(lines, j, end)
            if title and has_cjk(title) and k is not None:
                cand = _strip_markup(lines[k].text)
                if cand and not has_cjk(cand) and len(cand) <= 150 and _LATIN.search(cand) and not _META_HEADING.match(cand):
                    if _HEADING.match(lines[k].text) or re.fullmatch(r"\s*(\*\*|__).+(\*\*|__)\s*", lines[k].text):
                        title_en = cand
                        drop.add(k)
            break
    if title is None:
        first = _next_nonblank(lines, 0, end)
        if first is not None:
            text = lines[first].text
            hm = _HEADING.match(text)
            bold = re.fullmatch(r"\s*(\*\*|__)([^*_]{2,120})\1\s*", text)
            cand = _strip_markup(_clean_heading_text(hm[2] or "")) if hm else (_strip_markup(bold[2]) if bold else "")
            if cand and not _META_HEADING.match(cand) and parse_number(cand)[0] is None:
                title = cand
                drop.add(first)
    if title is None:
        for i in range(min(end, 80)):
            hm = _HEADING.match(lines[i].text)
            if hm and len(hm[1]) == 1 and not mask[i]:
                cand = _strip_markup(_clean_heading_text(hm[2] or ""))
                if cand and not _META_HEADING.match(cand):
                    title = cand
                    drop.add(i)
                    break
    changes = []
    if title:
        first, last = _span(lines[i] for i in drop)
        changes.append(Change("extracted", f"title {title!r}", first, last))
    return title, title_en, _remove(lines, drop), changes


_KEYWORDS_LABEL = re.compile(
    r"^[>\s*_-]*(?:\*\*|__)?\s*(?:关键词|关键字|keywords?|key\s+words|tags|标签)\s*(?:\*\*|__)?\s*[:：]\s*(?:\*\*|__)?\s*(?P<rest>.*)$",
    re.I,
)
_KEYWORDS_HEADING = re.compile(r"^(?:关键词|关键字|keywords?|key\s+words)\s*[:：]?$", re.I)


def split_keywords(text: str) -> list[str]:
    """`a、b、c` / `a, b; c` / `AI 创业 商业模式` → cleaned, unique keywords."""
    text = text.strip().rstrip("。.")
    parts = re.split(r"[、,，;；|]|\s+/\s+", text)
    if len(parts) == 1 and has_cjk(text) and re.search(r"\s", text):
        parts = text.split()
    out: list[str] = []
    for p in parts:
        k = _strip_markup(p).strip(" *_`'\"“”‘’。.").strip()
        if k and k not in out and len(k) <= 60:
            out.append(k)
    return out


def extract_keywords(lines: list[Line]) -> tuple[list[str], list[Line], list[Change]]:
    """Keywords from a `关键词：…` line (any quoting) or a `## 关键词` heading with a list."""
    end = _preamble_end(lines)
    mask = fence_mask([ln.text for ln in lines])
    for i in range(len(lines)):
        if mask[i] or (i >= end and i > 60):
            continue
        text = lines[i].text
        hm = _HEADING.match(text)
        m = _KEYWORDS_LABEL.match(_clean_heading_text(hm[2] or "") if hm else text)
        if not (m or (hm and _KEYWORDS_HEADING.match(_clean_heading_text(hm[2] or "")))):
            continue
        drop = {i}
        words = split_keywords(m["rest"]) if m and m["rest"].strip() else []
        quoted = text.lstrip().startswith(">")
        j = i + 1
        # A keyword line wrapped onto the next line(s): `> 关键词：a，b，` / `> c`.
        while words and j < len(lines) and lines[j].text.strip() and not _HEADING.match(lines[j].text):
            nxt = lines[j].text
            if _ABSTRACT_LABEL.match(nxt.strip()) or _AUTHOR_LINE.match(nxt) or _DATE_LABEL.match(nxt) or _LIST_ITEM.match(nxt):
                break
            if not (quoted and nxt.lstrip().startswith(">")) and not re.search(r"[、,，;；]\s*$", lines[j - 1].text):
                break
            words += [w for w in split_keywords(re.sub(r"^\s*>\s?", "", nxt)) if w not in words]
            drop.add(j)
            j += 1
        if not words:
            j = i + 1
            while j < len(lines) and not lines[j].text.strip():
                j += 1
            while j < len(lines) and lines[j].text.strip() and not _HEADING.match(lines[j].text):
                item = _LIST_ITEM.match(lines[j].text)
                words += split_keywords(item[1] if item else re.sub(r"^>\s*", "", lines[j].text))
                drop.add(j)
                j += 1
                if not item:
                    break
        if words:
            first, last = _span(lines[k] for k in drop)
            return words, _remove(lines, drop), [Change("extracted", "keywords: " + ", ".join(words), first, last)]
    return [], lines, []


_ABSTRACT_LABEL = re.compile(
    r"^(?P<quote>>\s*)?(?:\*\*|__)?\s*(?:摘要|文章摘要|内容摘要|abstract)\s*(?:\*\*|__)?\s*[:：]\s*(?:\*\*|__)?\s*(?P<rest>.*)$",
    re.I,
)
_ABSTRACT_HEADING = re.compile(r"^(?:摘要|文章摘要|内容摘要|abstract)\s*[:：]?$", re.I)


def _paragraph(lines: list[Line], j: int, quote: bool) -> tuple[list[str], int]:
    """The paragraph starting at j (blockquote continuation when `quote`); returns texts and end index."""
    texts = []
    while j < len(lines) and lines[j].text.strip() and not _HEADING.match(lines[j].text) and not _FENCE_OPEN.match(lines[j].text):
        t = lines[j].text
        if quote:
            if not t.lstrip().startswith(">"):
                break
            t = re.sub(r"^\s*>\s?", "", t)
        texts.append(t)
        j += 1
    return texts, j


def extract_abstract(lines: list[Line]) -> tuple[str, list[Line], list[Change]]:
    """Abstract from `> 摘要：…`, `摘要：…`, or a `## 摘要` / `Abstract` section before the first chapter."""
    end = _preamble_end(lines)
    mask = fence_mask([ln.text for ln in lines])
    for i in range(end):
        if mask[i]:
            continue
        text = lines[i].text
        hm = _HEADING.match(text)
        if hm:
            htext = _clean_heading_text(hm[2] or "")
            lm = _ABSTRACT_LABEL.match(htext)
            if not (_ABSTRACT_HEADING.match(htext) or lm):
                continue
            paras: list[str] = [lm["rest"]] if lm and lm["rest"].strip() else []
            drop = {i}
            j = i + 1
            while True:
                k = _next_nonblank(lines, j, end)
                if k is None or _HEADING.match(lines[k].text) or mask[k]:
                    break
                texts, j = _paragraph(lines, k, False)
                if not texts:
                    break
                paras.append(_join_text([re.sub(r"^\s*>\s?", "", t) for t in texts]))
                drop.update(range(k, j))
            value = "\n\n".join(p for p in paras if p)
        else:
            m = _ABSTRACT_LABEL.match(text.strip())
            if not m:
                continue
            quote = bool(m["quote"])
            texts, j = _paragraph(lines, i + 1, quote)
            drop = set(range(i, j))
            value = _join_text([m["rest"].rstrip("*_ ")] + texts)
            if not value:
                k = _next_nonblank(lines, i + 1, end)
                if k is not None and not _HEADING.match(lines[k].text):
                    texts, j = _paragraph(lines, k, lines[k].text.lstrip().startswith(">"))
                    value = _join_text(texts)
                    drop.update(range(k, j))
        value = value.strip()
        if value:
            first, last = _span(lines[k] for k in drop)
            return value, _remove(lines, drop), [Change("extracted", "abstract", first, last)]
    return "", lines, []


def split_authors(value: str) -> list[str]:
    """`张三、李四` / `A & B` → names; `禅与… / Zen and …` stays one bilingual name."""
    value = _strip_markup(value).strip(" 。.")
    out = []
    for p in re.split(r"[、,，;；&]|\s+and\s+(?=[A-Z\u3400-\u9fff])", value):
        p = _strip_markup(p).strip(" 。.*_")
        if p and p not in out:
            out.append(p)
    return out


def extract_authors(lines: list[Line]) -> tuple[list[str], list[Line], list[Change]]:
    """Author lines (`作者：…`, `**作者：…**`, `### 文章作者：` + next line, `## 作者署名` + name) anywhere outside code."""
    mask = fence_mask([ln.text for ln in lines])
    authors: list[str] = []
    drop: set[int] = set()
    for i, ln in enumerate(lines):
        if mask[i] or i in drop:
            continue
        m = _AUTHOR_LINE.match(ln.text)
        hm = _HEADING.match(ln.text)
        label_only = bool(hm) and re.fullmatch(r"(?:关于)?(?:文章)?(?:作者署名|作者|署名)|about the authors?|authors?", _clean_heading_text(hm[2] or ""), re.I)
        if not m and not label_only:
            continue
        value = m["value"].strip() if m else ""
        if len(value) > 120:
            continue
        used = {i}
        if not value:
            k = _next_nonblank(lines, i + 1)
            if k is not None and not mask[k]:
                m2 = _AUTHOR_LINE.match(lines[k].text)
                cand = m2["value"] if m2 else _strip_markup(lines[k].text)
                if cand and len(cand) <= 120 and not re.search(r"[。！？!?]$", cand) and not (_HEADING.match(lines[k].text) and not m2):
                    value = cand
                    used.add(k)
        if not value:
            continue
        names = split_authors(value)
        if names:
            authors += [a for a in names if a not in authors]
            drop |= used
    if not authors:
        return [], lines, []
    first, last = _span(lines[k] for k in drop)
    return authors, _remove(lines, drop), [Change("extracted", "authors: " + ", ".join(authors), first, last)]


_DATE_LABEL = re.compile(
    r"^[>\s*_-]*(?:\*\*|__)?\s*(?:日期|发布日期|发表日期|发布时间|更新日期|写作日期|写作时间|创作日期|date|published(?: on)?|publication date)"
    r"\s*(?:\*\*|__)?\s*[:：]\s*(?P<value>.+?)\s*(?:\*\*|__)?\s*$",
    re.I,
)
_MONTHS = {m: i + 1 for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}


def parse_date(text: str) -> dt.date | None:
    """`2024-05-01`, `2024/5/1`, `2024年5月1日`, `May 1, 2024`, `1 May 2024` → a date."""
    m = re.search(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})", text)
    if m:
        y, mo, d = int(m[1]), int(m[2]), int(m[3])
    else:
        m = re.search(r"([A-Za-z]{3})[a-z]*\.?\s+(\d{1,2}),?\s+(\d{4})", text)
        n = re.search(r"(\d{1,2})\s+([A-Za-z]{3})[a-z]*\.?,?\s+(\d{4})", text)
        if m and m[1].lower() in _MONTHS:
            y, mo, d = int(m[3]), _MONTHS[m[1].lower()], int(m[2])
        elif n and n[2].lower() in _MONTHS:
            y, mo, d = int(n[3]), _MONTHS[n[2].lower()], int(n[1])
        else:
            return None
    try:
        return dt.date(y, mo, d)
    except ValueError:
        return None


def extract_date(lines: list[Line]) -> tuple[dt.date | None, list[Line], list[Change]]:
    """A labelled date line (`日期：2024-05-01`, `Date: May 1, 2024`); dates in prose are left alone."""
    mask = fence_mask([ln.text for ln in lines])
    for i, ln in enumerate(lines):
        if mask[i]:
            continue
        m = _DATE_LABEL.match(ln.text)
        if m:
            date = parse_date(m["value"])
            if date:
                return date, _remove(lines, {i}), [Change("extracted", f"date {date.isoformat()}", ln.src)]
    return None, lines, []


# --- cleaning the body ------------------------------------------------------------------------------

_TOC_HEADING = re.compile(r"^(?:文章)?目录|^(?:table of )?contents$|^toc$", re.I)
_SCAFFOLD_HEADING = re.compile(r"^(?:文章)?正文(?:内容)?(?:部分)?(?:\s*content)?$|^(?:article )?(?:body|main text)$", re.I)


def drop_toc(lines: list[Line]) -> tuple[list[Line], list[Change]]:
    """A `## 目录` heading and its list (the site builds its own), and prompt-scaffold headings like `正文`."""
    heads = find_headings(lines)
    scaffold = {h.index for h in heads if _SCAFFOLD_HEADING.match(h.title)}
    if scaffold:
        changes = [Change("removed", f"scaffold heading '{lines[i].text.lstrip('# ')}'", lines[i].src) for i in sorted(scaffold)]
        lines, more = drop_toc(_remove(lines, scaffold))
        return lines, changes + more
    for h in heads:
        if not _TOC_HEADING.match(h.title):
            continue
        drop = {h.index}
        j = h.index + 1
        while j < len(lines) and (not lines[j].text.strip() or _LIST_ITEM.match(lines[j].text) or lines[j].text.startswith("    ")):
            drop.add(j)
            j += 1
        first, last = _span(lines[k] for k in drop)
        return _remove(lines, drop), [Change("removed", "table of contents", first, last)]
    return lines, []


_PLEASANTRY = re.compile(
    r"以上(?:就是|便是|是|即为)(?:本文|全部|文章|我的|关于)|希望(?:本文|这篇文章|这篇|以上|这些|我的|对您|对你|能|可以|您|你).{0,40}(?:帮助|启发|有用|收获|参考|喜欢|满意)"
    r"|(?:感谢|谢谢)(?:您|你|大家)?的?(?:阅读|关注|耐心|支持)|(?:如|若|如果)(?:您|你)?(?:还)?有(?:任何|其他)?(?:问题|疑问|建议|需要)"
    r"|如需(?:进一步|更多)|欢迎(?:随时|在评论区|大家|您)?(?:提问|留言|交流|讨论|指正|联系|反馈)|祝(?:您|你|大家)|期待(?:与您|您的|你的)|请随时"
    r"|\b(?:if|should) you have any (?:further |other |more |additional )?(?:questions|comments|feedback|thoughts|suggestions)"
    r"|\bi hope (?:this|that|you)|\bhope (?:this|it) helps|\bthanks? (?:you )?for (?:reading|your)|\bfeel free to|\blet me know"
    r"|\bhappy (?:coding|learning|reading)|\b(?:please )?(?:don't|do not) hesitate to|\bis there anything else|\bi'd be (?:happy|glad) to"
    r"|\bgood luck\b|\benjoy(?: reading)?!",
    re.I,
)


def _sentences(text: str) -> list[str]:
    parts = re.findall(r"[^。！？!?]*[。！？!?]+[”」』)]?|[^。！？!?]+$", text)
    out = []
    for p in parts:
        out += [s for s in re.split(r"(?<=[.])\s+(?=[A-Z])", p) if s.strip()]
    return out


def drop_pleasantries(lines: list[Line]) -> tuple[list[Line], list[Change]]:
    """Closing chat lines at the end ("希望这篇文章对您有帮助", "If you have any questions…"), and trailing rules."""
    lines = list(lines)
    changes: list[Change] = []
    removed: list[Line] = []
    mask = fence_mask([ln.text for ln in lines])  # fence state depends only on earlier lines
    end = len(lines)
    while end:
        last = lines[end - 1]
        if not mask[end - 1] and (not last.text.strip() or _HR.match(last.text) or re.fullmatch(r"\s*[-=*_]{3,}\s*", last.text)):
            removed.append(last)
            end -= 1
            continue
        if mask[end - 1] or _HEADING.match(last.text) or _LIST_ITEM.match(last.text) or last.text.lstrip().startswith("|"):
            break
        start = end - 1
        while start > 0 and lines[start - 1].text.strip() and not _HEADING.match(lines[start - 1].text) and not mask[start - 1]:
            start -= 1
        para = _join_text([re.sub(r"^\s*>\s?", "", ln.text) for ln in lines[start:end]])
        sentences = _sentences(para)
        keep = len(sentences)
        while keep > 0 and _PLEASANTRY.search(sentences[keep - 1]) and len(sentences[keep - 1]) <= 200:
            keep -= 1
        if keep == len(sentences):
            break
        dropped = _join_text(sentences[keep:])
        first, lastsrc = _span(lines[start:end])
        changes.append(Change("removed", f"closing line {dropped[:50] + ('…' if len(dropped) > 50 else '')!r}", first, lastsrc))
        if keep == 0:
            end = start
        else:
            prefix = "> " if lines[start].text.lstrip().startswith(">") else ""
            lines[start] = Line(prefix + _join_text(sentences[:keep]), lines[start].src)
            end = start + 1
            break
    if any(ln.text.strip() for ln in removed) and not changes:
        first, last = _span(ln for ln in removed if ln.text.strip())
        changes.append(Change("removed", "trailing separator", first, last))
    return lines[:end], changes


def merge_bilingual_headings(lines: list[Line], lang: str) -> tuple[list[Line], list[Change]]:
    """`## 1. 背景介绍` + `#### Background Introduction` (or on one line) → one heading in the report's language."""
    heads = find_headings(lines)
    by_index = {h.index: h for h in heads}
    out = list(lines)
    drop: set[int] = set()
    changes: list[Change] = []
    merged = 0
    for h in heads:
        if h.index in drop:
            continue
        zh, en = split_bilingual(h.title)
        if lang == "zh" and en and not _BILINGUAL_PAREN.match(h.title):
            # `使用 Hugging Face Transformers` reads the same either way; only an English report needs the split.
            en = None
        k = _next_nonblank(lines, h.index + 1)
        nxt = by_index.get(k) if k is not None else None
        if zh and not en and nxt is not None and not has_cjk(nxt.title) and _LATIN.search(nxt.title):
            if nxt.number is None or nxt.number == h.number:
                en = nxt.title
                drop.update(range(h.index + 1, nxt.index + 1))
        if not zh or not en:
            continue
        title = f"{zh}（{en}）" if lang == "zh" else en
        text = "#" * h.level + " " + number_prefix(h.number, h.depth) + title
        if text != lines[h.index].text:
            out[h.index] = replace(lines[h.index], text=text)
            merged += 1
    if merged:
        changes.append(Change("changed", f"{merged} bilingual heading(s) into one {'English' if lang == 'en' else 'Chinese (English)'} heading"))
    return _remove(out, drop), changes


def _blocks(lines: list[Line]) -> list[tuple[int, int, str]]:
    """Runs of lines: (start, end, kind) with kind fence / heading / blank / para."""
    mask = fence_mask([ln.text for ln in lines])
    out: list[tuple[int, int, str]] = []
    i = 0
    while i < len(lines):
        j = i + 1
        if mask[i]:
            kind = "fence"
            while j < len(lines) and mask[j]:
                j += 1
        elif _HEADING.match(lines[i].text):
            kind = "heading"
        elif not lines[i].text.strip():
            kind = "blank"
        else:
            kind = "para"
            while j < len(lines) and lines[j].text.strip() and not mask[j] and not _HEADING.match(lines[j].text):
                j += 1
        out.append((i, j, kind))
        i = j
    return out


def drop_foreign_paragraphs(lines: list[Line], lang: str) -> tuple[list[Line], list[Change], int]:
    """In an English report, drop Chinese prose paragraphs; returns the count of Chinese lines left (lists, tables)."""
    if lang != "en":
        return lines, [], 0
    drop: set[int] = set()
    changes: list[Change] = []
    left = 0
    for start, end, kind in _blocks(lines):
        if kind != "para":
            continue
        texts = [ln.text for ln in lines[start:end]]
        share = cjk_share(_prose(t) for t in texts)
        if share < 0.5:
            continue
        if _LIST_ITEM.match(texts[0]) or texts[0].lstrip().startswith("|"):
            left += end - start
            continue
        drop.update(range(start, end))
        first, last = _span(lines[start:end])
        changes.append(Change("removed", "Chinese paragraph from the English translation", first, last))
    return _remove(lines, drop), changes, left


def _section_end(heads: list[HeadingInfo], pos: int, n: int) -> int:
    h = heads[pos]
    for other in heads[pos + 1 :]:
        if other.level <= h.level:
            return other.index
    return n


def _norm_content(lines: list[Line]) -> str:
    return re.sub(r"\s+", "", "".join(ln.text for ln in lines))


def collapse_repeated_chapters(lines: list[Line]) -> tuple[list[Line], list[Change], list[Diagnostic]]:
    """A chapter (same heading under the same parent) written twice: keep the first complete one."""
    heads = find_headings(lines)
    drop: set[int] = set()
    changes: list[Change] = []
    warnings: list[Diagnostic] = []
    seen: dict[tuple, int] = {}
    stack: list[HeadingInfo] = []
    for pos, h in enumerate(heads):
        while stack and stack[-1].level >= h.level:
            stack.pop()
        path = tuple(s.key for s in stack) + (h.key,)
        stack.append(h)
        if h.index in drop or not h.key:
            continue
        if path not in seen:
            seen[path] = pos
            continue
        first_pos = seen[path]
        f = heads[first_pos]
        f_end = _section_end(heads, first_pos, len(lines))
        h_end = _section_end(heads, pos, len(lines))
        first_body = [ln for ln in lines[f.index + 1 : f_end] if ln.text.strip()]
        later_body = [ln for ln in lines[h.index + 1 : h_end] if ln.text.strip()]
        if not first_body and later_body:
            # The first was only a heading: the repeat is the complete chapter.
            drop.update(range(f.index, f_end))
            seen[path] = pos
            a, b = _span(lines[f.index : f_end])
        else:
            drop.update(range(h.index, h_end))
            a, b = _span(lines[h.index : h_end])
            if later_body and _norm_content(later_body) != _norm_content(first_body):
                warnings.append(
                    Diagnostic(
                        "warning",
                        "import-repeat",
                        f"chapter '{h.text}' appears twice with different text; kept the first (line {lines[f.index].src})",
                        Location("", lines[h.index].src),
                    )
                )
        changes.append(Change("removed", f"repeated chapter '{h.text}'", a, b))
    return _remove(lines, drop), changes, warnings


def drop_empty_sections(lines: list[Line]) -> tuple[list[Line], list[Change]]:
    """Headings left with nothing under them (no text, no sub-headings)."""
    heads = find_headings(lines)
    drop: set[int] = set()
    for pos, h in enumerate(heads):
        nxt = heads[pos + 1] if pos + 1 < len(heads) else None
        end = nxt.index if nxt else len(lines)
        if any(ln.text.strip() for ln in lines[h.index + 1 : end]):
            continue
        if nxt is not None and nxt.level > h.level:
            continue
        drop.add(h.index)
    by_index = {h.index: h for h in heads}
    changes = [Change("removed", f"empty heading '{by_index[i].text}'", lines[i].src) for i in sorted(drop)]
    return _remove(lines, drop), changes


def normalise_headings(lines: list[Line]) -> tuple[list[Line], list[Change]]:
    """Levels follow the numbering, the body starts at `##`, no level is skipped, one number per heading."""
    heads = find_headings(lines)
    if not heads:
        return lines, []
    top = [h.level for h in heads if h.depth == 1]
    base = Counter(top).most_common(1)[0][0] if top else None
    levels = []
    for h in heads:
        levels.append(base + h.depth - 1 if (base is not None and h.depth and h.number and re.fullmatch(r"[\d.]+", h.number)) else h.level)
    shift = min(levels) - 2
    fixed: list[int] = []
    for lv in levels:
        lv = max(2, min(6, lv - shift))
        prev = fixed[-1] if fixed else 1
        fixed.append(min(lv, prev + 1))
    out = list(lines)
    changed = 0
    for h, lv in zip(heads, fixed):
        text = "#" * lv + " " + number_prefix(h.number, h.depth) + h.title
        if text != lines[h.index].text:
            out[h.index] = replace(lines[h.index], text=text)
            changed += 1
    return out, [Change("changed", f"{changed} heading(s) normalised (levels, numbering)")] if changed else []


_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_CURRENCY = re.compile(r"(?<![\\$])\$(?=\d[\d,.]*(?:\s|[kKmMbB万亿千]|million|billion|$|[^\w$^_{}\\]))")


def _outside_code(text: str, fn) -> str:
    """Apply fn to the parts of a paragraph that are not inline code."""
    out, pos = [], 0
    for m in _CODE_SPAN.finditer(text):
        out.append(fn(text[pos : m.start()]))
        out.append(m[0])
        pos = m.end()
    out.append(fn(text[pos:]))
    return "".join(out)


def _escape_currency(text: str) -> str:
    """`$5 million and $x$`: a `$` before an amount is money, unless what follows up to the next `$` is a formula."""

    def fix(seg: str) -> str:
        res, i = [], 0
        for m in _CURRENCY.finditer(seg):
            close = seg.find("$", m.end())
            between = seg[m.end() : close] if close != -1 else seg[m.end() :]
            if close != -1 and not has_cjk(between) and not re.search(r"(?<!\\)\b[A-Za-z]{3,}\b", between):
                continue
            res.append(seg[i : m.start()] + "\\$")
            i = m.end()
        res.append(seg[i:])
        return "".join(res)

    return fix(text)


def normalise_math(lines: list[Line]) -> tuple[list[Line], list[Change]]:
    """`\\[…\\]` → `$$…$$` (a block on its own lines when it stands alone); money `$` escaped; fences untouched."""
    out: list[Line] = []
    converted = escaped = 0
    for start, end, kind in _blocks(lines):
        block = lines[start:end]
        if kind != "para":
            out += block
            continue
        text = "\n".join(ln.text for ln in block)
        standalone = re.fullmatch(r"(?P<indent>[ \t]*)\\\[(?P<body>.+?)\\\][ \t]*", text, re.S)
        if standalone:
            indent = standalone["indent"]
            body = standalone["body"].strip("\n")
            inner = [indent + t.strip() if t.strip() else "" for t in body.split("\n")] if "\n" in body else [indent + body.strip()]
            new = [indent + "$$"] + inner + [indent + "$$"]
            out += [Line(t, block[0].src) for t in new]
            converted += 1
            continue

        def conv(seg: str) -> str:
            nonlocal converted, escaped
            seg2, n = re.subn(r"\\\[(.+?)\\\]", lambda m: "$$" + m[1] + "$$", seg, flags=re.S)
            converted += n
            seg3 = _escape_currency(seg2)
            escaped += seg3.count("\\$") - seg2.count("\\$")
            return seg3

        new_text = _outside_code(text, conv)
        if new_text == text:
            out += block
        else:
            new_lines = new_text.split("\n")
            out += [Line(t, block[min(k, len(block) - 1)].src, block[min(k, len(block) - 1)].cut) for k, t in enumerate(new_lines)]
    # A `$$` display block glued to a paragraph renders inline; give it blank lines around.
    final: list[Line] = []
    mask = fence_mask([ln.text for ln in out])
    i = 0
    while i < len(out):
        ln = out[i]
        if not mask[i] and ln.text.strip() == "$$" and not ln.text.startswith((" ", "\t")):
            j = i + 1
            while j < len(out) and out[j].text.strip() != "$$" and not mask[j]:
                j += 1
            if j < len(out) and out[j].text.strip() == "$$":
                if final and final[-1].text.strip():
                    final.append(Line("", ln.src))
                final += out[i : j + 1]
                if j + 1 < len(out) and out[j + 1].text.strip():
                    final.append(Line("", out[j].src))
                i = j + 1
                continue
        final.append(ln)
        i += 1
    changes = []
    if converted:
        changes.append(Change("changed", f"{converted} formula(s) from \\[…\\] to $$…$$"))
    if escaped:
        changes.append(Change("changed", f"{escaped} currency dollar sign(s) escaped"))
    return final, changes


def tidy_lines(lines: list[Line]) -> list[Line]:
    """Blank lines collapsed, a blank before headings and rules (no accidental setext headings), edges trimmed."""
    mask = fence_mask([ln.text for ln in lines])
    out: list[Line] = []
    for i, (ln, fenced) in enumerate(zip(lines, mask)):
        if fenced:
            if out and out[-1].text.strip() and _FENCE_OPEN.match(ln.text) and (i == 0 or not mask[i - 1]) and _HEADING.match(out[-1].text):
                out.append(Line("", ln.src))
            out.append(ln)
            continue
        text = ln.text.rstrip()
        text = re.sub(r"^( {0,3}#{2,6})(?=[\u3400-\u9fff\d])", r"\1 ", text)
        if not text:
            if out and not out[-1].text:
                continue
            out.append(Line("", ln.src, ln.cut))
            continue
        is_block = bool(_HEADING.match(text) or _HR.match(text))
        if out and out[-1].text and (is_block or _HEADING.match(out[-1].text)) and not (i > 0 and mask[i - 1]):
            out.append(Line("", ln.src))
        elif out and out[-1].text and i > 0 and mask[i - 1] and is_block:
            out.append(Line("", ln.src))
        out.append(ln if ln.text == text else Line(text, ln.src, ln.cut))
    while out and not out[0].text:
        out.pop(0)
    while out and not out[-1].text:
        out.pop()
    return out


def convert_setext_titles(lines: list[Line]) -> list[Line]:
    """`Title\\n=====` → `# Title` so the title finder sees it (underline `---` stays a rule)."""
    mask = fence_mask([ln.text for ln in lines])
    out: list[Line] = []
    for i, ln in enumerate(lines):
        if not mask[i] and _SETEXT_H1.match(ln.text) and out and out[-1].text.strip() and not _HEADING.match(out[-1].text):
            out[-1] = replace(out[-1], text="# " + out[-1].text.strip())
            continue
        out.append(ln)
    return out


# --- fallbacks ----------------------------------------------------------------------------------

_TOPIC_ZH = re.compile(r"本文(?:将|主要|旨在)?(?:深入|系统|详细|全面)?(?:地)?(?:探讨|分析|介绍|讨论|研究|阐述|剖析|探索)(?:了)?(?P<topic>[^，。；！？,;]{4,40})")
_TOPIC_EN = re.compile(
    r"\b(?:this|the) (?:article|paper|report|post|essay) (?:\w+ly )?(?:explores|discusses|examines|analyzes|analyses|investigates|describes|presents|introduces|reviews)\s+(?P<topic>[^,.;:]{8,120})",
    re.I,
)


def derive_title(abstract: str, keywords: list[str], lang: str) -> str | None:
    """A title when the article has none: the topic the abstract names ("本文探讨了X"), else the keywords."""
    m = (_TOPIC_ZH if lang == "zh" else _TOPIC_EN).search(abstract or "")
    if m:
        topic = m["topic"].strip()
        topic = re.sub(r"^(?:如何|了)", lambda x: x[0] if x[0] == "如何" else "", topic)
        return topic[:1].upper() + topic[1:] if lang == "en" else topic
    if keywords:
        return ("、" if lang == "zh" else ", ").join(keywords[:4])
    return None


def derive_abstract(lines: list[Line], lang: str) -> str:
    """An abstract when none is labelled: the "本文…" / "This article…" sentences of the lead, else its first sentences."""
    paras = []
    for start, end, kind in _blocks(lines):
        if kind == "para":
            texts = [ln.text for ln in lines[start:end]]
            if _LIST_ITEM.match(texts[0]) or texts[0].lstrip().startswith(("|", "!", "$$")):
                continue
            paras.append(_join_text([re.sub(r"^\s*>\s?", "", t) for t in texts]))
        if len(paras) >= 4:
            break
    marker = re.compile(r"本文|本篇|this (?:article|paper|report|post)", re.I)
    for p in paras:
        sents = _sentences(p)
        for i, s in enumerate(sents):
            if marker.search(s):
                # "本文将围绕这一主题…" points back: take the sentence it refers to as well.
                if i > 0 and re.search(r"这一|上述|此(?:问题|主题)|these|this (?:topic|question)", s, re.I):
                    i -= 1
                return "".join(sents[i:]).strip()[:400]
    if paras:
        sents = _sentences(paras[0])
        out = ""
        for s in sents:
            if out and len(out) + len(s) > 240:
                break
            out += s
        return out.strip()[:400]
    return ""


def make_slug(title: str, stem: str, text: str = "") -> str:
    """ASCII slug from an English title; a Chinese title falls back to the file stem, sanitised."""
    if not has_cjk(title):
        ascii_ = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
        words = re.findall(r"[a-z0-9]+", ascii_)
        slug = ""
        for w in words:
            if len(slug) + len(w) + 1 > 60:
                break
            slug = f"{slug}-{w}" if slug else w
        if len(slug.replace("-", "")) >= 3:
            return slug
    s = unicodedata.normalize("NFKC", stem).lower()
    s = re.sub(r"[^a-z0-9_-]+", "-", s)
    s = re.sub(r"-{2,}", "-", s).strip("-_")[:80].strip("-_")
    return s or "report-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


# --- one copy → one report ----------------------------------------------------------------------------


@dataclass
class CleanCopy:
    """A cleaned article copy: metadata found in it and the body lines."""

    lang: str
    title: str | None
    title_en: str | None
    keywords: list[str]
    abstract: str
    abstract_derived: bool
    authors: list[str]
    date: dt.date | None
    body: list[Line]
    changes: list[Change]
    warnings: list[Diagnostic]
    foreign_headings: int = 0
    foreign_lines: int = 0


def clean_copy(lines: list[Line], lang: str) -> CleanCopy:
    """Run every heuristic over one copy of the article, in order."""
    changes: list[Change] = []
    warnings: list[Diagnostic] = []
    lines = convert_setext_titles(lines)
    lines = tidy_lines(lines)
    title, title_en, lines, ch = extract_title(lines)
    changes += ch
    keywords, lines, ch = extract_keywords(lines)
    changes += ch
    abstract, lines, ch = extract_abstract(lines)
    changes += ch
    authors, lines, ch = extract_authors(lines)
    changes += ch
    date, lines, ch = extract_date(lines)
    changes += ch
    lines, ch = drop_toc(lines)
    changes += ch
    lines, ch = drop_pleasantries(lines)
    changes += ch
    lines, ch = merge_bilingual_headings(lines, lang)
    changes += ch
    lines, ch, foreign_lines = drop_foreign_paragraphs(lines, lang)
    changes += ch
    lines, ch, w = collapse_repeated_chapters(lines)
    changes += ch
    warnings += w
    lines, ch = normalise_headings(lines)
    changes += ch
    lines, ch = drop_empty_sections(lines)
    changes += ch
    lines, ch = normalise_math(lines)
    changes += ch
    lines = tidy_lines(lines)
    derived = False
    if not abstract:
        abstract = derive_abstract(lines, lang)
        derived = bool(abstract)
        if derived:
            changes.append(Change("extracted", "abstract from the introduction (kept in the body)"))
    foreign_headings = sum(1 for h in find_headings(lines) if lang == "en" and has_cjk(h.title))
    return CleanCopy(lang, title, title_en, keywords, abstract, derived, authors, date, lines, changes, warnings, foreign_headings, foreign_lines)


# --- front matter -------------------------------------------------------------------------------


def render_report(meta: dict, body: str) -> str:
    """Front matter (quoted so text stays text) + body; checked by loading it back strictly."""
    yaml_text = dump_yaml(meta)
    try:
        loaded = parse_yaml(yaml_text).data
    except YamlProblem as exc:  # pragma: no cover - safe_dump output is always loadable
        raise AssertionError(f"front matter does not load back: {exc}") from exc
    plain = {k: (v.raw if hasattr(v, "raw") else v) for k, v in (loaded or {}).items()}
    if plain != meta:
        raise AssertionError(f"front matter changed in a YAML round trip: {meta!r} → {plain!r}")
    FrontMatter.model_validate(loaded)
    return f"---\n{yaml_text}---\n\n{body.rstrip()}\n"


def build_meta(title: str, date: dt.date, copy: CleanCopy, source: str, translation_of: str | None = None) -> dict:
    """Front-matter fields in a fixed order; empty ones left out."""
    meta: dict = {"title": title, "date": date.isoformat()}
    if copy.authors:
        meta["authors"] = list(copy.authors)
    if copy.keywords:
        meta["keywords"] = list(copy.keywords)
    if copy.abstract:
        meta["abstract"] = copy.abstract
    meta["lang"] = copy.lang
    meta["source"] = source
    if translation_of:
        meta["translation_of"] = translation_of
    return meta


# --- the engine -----------------------------------------------------------------------------------


def _mixed_language(lines: list[Line], lang: str) -> int:
    """Prose paragraphs in the other language (a translation interleaved paragraph by paragraph)."""
    n = 0
    total = 0
    for start, end, kind in _blocks(lines):
        if kind != "para":
            continue
        texts = [_prose(ln.text) for ln in lines[start:end]]
        letters = sum(len(_LATIN.findall(t)) + cjk_count(t) for t in texts)
        if letters < 40:
            continue
        total += 1
        share = cjk_share(texts)
        if (lang == "zh" and share < 0.1) or (lang == "en" and share > 0.5):
            n += 1
    return n if total and n >= 3 and n / total >= 0.25 else 0


def _located(diags: list[Diagnostic], display: str) -> list[Diagnostic]:
    return [
        Diagnostic(d.level, d.code, d.message, Location(display, d.location.line, d.location.col) if d.location else Location(display))
        for d in diags
    ]


def convert_article(text: str, display: str, stem: str, today: dt.date) -> tuple[list[tuple[CleanCopy, str, str]], list[Change], list[Diagnostic]]:
    """Raw article text → cleaned copies to write as (copy, title, role) with role `main` or `translation`."""
    changes: list[Change] = []
    diags: list[Diagnostic] = []
    lines = split_lines(text)
    lines, ch, w = strip_chat_tokens(lines)
    changes += ch
    diags += w
    open_at = unclosed_fence([ln.text for ln in lines])
    if open_at is not None:
        diags.append(Diagnostic("warning", "import-fence", "code fence never closed; closed it at the end", Location("", lines[open_at].src)))
        fence = _FENCE_OPEN.match(lines[open_at].text)
        end = len(lines)
        while end > open_at + 1 and not lines[end - 1].text.strip():
            end -= 1
        lines = lines[:end] + [Line(fence["indent"] + fence["fence"], lines[end - 1].src)] + lines[end:]
        changes.append(Change("changed", "closed an unclosed code fence", lines[open_at].src))
    bounds = split_copies(lines)
    copies = [lines[a:b] for a, b in bounds]
    langs = [detect_lang(c) for c in copies]
    spines = [chapter_headings(find_headings(c)) for c in copies]
    scores = [len({h.key for h in sp}) for sp in spines]
    substantial = [i for i, c in enumerate(copies) if scores[i] > 0 or len("".join(prose_texts(c))) > 200] or [0]
    main_lang = langs[substantial[0]]
    groups: dict[str, list[int]] = {}
    for i in substantial:
        groups.setdefault(langs[i], []).append(i)

    def pick(indices: list[int]) -> int:
        best = max(scores[i] for i in indices)
        return next(i for i in indices if scores[i] == best)

    main = pick(groups[main_lang])
    trans_lang = next((lg for lg in groups if lg != main_lang), None)
    trans = pick(groups[trans_lang]) if trans_lang else None
    kept_keys = {k: {h.key for h in spines[k]} for k in (main, trans) if k is not None}
    for i, c in enumerate(copies):
        if i in (main, trans):
            continue
        a, b = _span(c)
        if not any(ln.text.strip() for ln in c):
            continue
        what = "duplicate copy of the article" if langs[i] == main_lang else "second translation"
        if i < main and langs[i] == main_lang:
            what = "incomplete first copy of the article"
        changes.append(Change("removed", what, a, b))
        kept = kept_keys[main if langs[i] == main_lang else (trans if trans is not None else main)]
        extra = [h.text for h in spines[i] if h.key not in kept]
        if extra:
            diags.append(
                Diagnostic(
                    "warning",
                    "import-copy",
                    f"removed {what} has chapter(s) missing from the kept copy: {', '.join(extra[:5])} — check it",
                    Location("", a),
                )
            )

    main_copy = clean_copy(copies[main], main_lang)
    changes += main_copy.changes
    diags += main_copy.warnings
    # Metadata missing from the kept copy may sit in a dropped copy of the same language.
    # Only the first few: a degenerate file can hold thousands of "copies".
    others = [clean_copy(copies[i], main_lang) for i in groups[main_lang][:4] if i != main] if (
        not main_copy.title or not main_copy.keywords or not main_copy.authors or main_copy.abstract_derived
    ) else []
    for o in others:
        for attr in ("title", "title_en", "date"):
            if getattr(main_copy, attr) is None and getattr(o, attr) is not None:
                setattr(main_copy, attr, getattr(o, attr))
                changes.append(Change("extracted", f"{attr.replace('_', ' ')} from a removed copy"))
        for attr in ("keywords", "authors"):
            if not getattr(main_copy, attr) and getattr(o, attr):
                setattr(main_copy, attr, getattr(o, attr))
                changes.append(Change("extracted", f"{attr} from a removed copy"))
        if main_copy.abstract_derived and o.abstract and not o.abstract_derived:
            main_copy.abstract, main_copy.abstract_derived = o.abstract, False
    title = main_copy.title
    if not title:
        title = derive_title(main_copy.abstract, main_copy.keywords, main_lang) or stem
        diags.append(Diagnostic("warning", "import-title", f"no title found; using {title!r} — check it", Location("", 1)))
        changes.append(Change("extracted", f"title {title!r} derived from the {'abstract' if main_copy.abstract else 'file name'}"))
    if not main_copy.keywords:
        diags.append(Diagnostic("warning", "import-keywords", "no keywords found", Location("", 1)))
    mixed = _mixed_language(main_copy.body, main_lang)
    if mixed:
        diags.append(
            Diagnostic(
                "warning",
                "import-translation",
                f"{mixed} paragraphs are in {'English' if main_lang == 'zh' else 'Chinese'}: the translation is interleaved and was not separated",
                Location("", 1),
            )
        )
    result = [(main_copy, title, "main")]

    if trans is not None:
        tcopy = clean_copy(copies[trans], trans_lang)
        a, b = _span(copies[trans])
        changes.append(Change("split", f"{'English' if trans_lang == 'en' else 'Chinese'} translation into its own report", a, b))
        changes += [replace(c, what=f"[{trans_lang}] {c.what}") for c in tcopy.changes]
        diags += tcopy.warnings
        ttitle = tcopy.title if tcopy.title and has_cjk(tcopy.title) == (trans_lang == "zh") else None
        if ttitle is None and trans_lang == "en":
            ttitle = tcopy.title_en or main_copy.title_en
        if ttitle is None:
            ttitle = derive_title(tcopy.abstract, tcopy.keywords, trans_lang) if not tcopy.abstract_derived else None
            ttitle = ttitle or title
            diags.append(
                Diagnostic("warning", "import-title", f"the translation has no title of its own; using {ttitle!r} — check it", Location("", a))
            )
        if tcopy.date is None:
            tcopy.date = main_copy.date
        if not tcopy.keywords and main_copy.keywords:
            # Shared keywords keep the two versions findable together; the analyst is told to translate them.
            tcopy.keywords = list(main_copy.keywords)
            changes.append(Change("extracted", "keywords of the translation from the original (none of its own)"))
            diags.append(
                Diagnostic("warning", "import-keywords", "the translation has no keywords of its own; kept the original's — translate them", Location("", a))
            )
        if not tcopy.authors:
            tcopy.authors = [
                (re.split(r"\s*/\s*", n)[-1] if trans_lang == "en" and "/" in n else n) for n in main_copy.authors
            ]
        else:
            tcopy.authors = [(re.split(r"\s*/\s*", n)[-1] if trans_lang == "en" and "/" in n and has_cjk(n) else n) for n in tcopy.authors]
        problems = []
        if tcopy.foreign_headings:
            problems.append(f"{tcopy.foreign_headings} heading(s) have no English title")
        if tcopy.foreign_lines:
            problems.append(f"{tcopy.foreign_lines} list/table line(s) are still in Chinese")
        dropped = sum(1 for c in tcopy.changes if c.what.startswith("Chinese paragraph"))
        if dropped:
            problems.append(f"{dropped} Chinese paragraph(s) dropped")
        if problems:
            diags.append(
                Diagnostic(
                    "warning",
                    "import-translation",
                    "translation not separated cleanly: " + "; ".join(problems) + " — review it",
                    Location("", a),
                )
            )
        result.append((tcopy, ttitle, "translation"))
    return result, changes, _located(diags, display)


def _display(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def import_files(
    paths: list[Path],
    into: Path,
    dry_run: bool = False,
    force: bool = False,
    today: dt.date | None = None,
) -> ImportResult:
    """Import raw articles into `into` (one report each, plus a translation report when found)."""
    today = today or dt.date.today()
    result = ImportResult()
    planned: dict[str, str] = {}
    into_display = _display(into)
    if into.exists() and not into.is_dir():
        fi = FileImport(into, into_display)
        fi.diagnostics.append(Diagnostic("error", "import-into", "target folder is a file", Location(into_display)))
        result.files.append(fi)
        return result
    for path in paths:
        display = _display(path)
        fi = FileImport(path, display)
        result.files.append(fi)
        text, problems = read_source(path, display)
        fi.diagnostics += problems
        if text is None:
            continue
        if not text.strip():
            fi.diagnostics.append(Diagnostic("error", "import-read", "file is empty", Location(display, 1)))
            continue
        stem = path.stem
        converted, changes, diags = convert_article(text, display, stem, today)
        fi.changes += changes
        fi.diagnostics += diags
        main_slug = ""
        for copy, title, role in converted:
            if role == "main":
                slug = main_slug = make_slug(title, stem, text)
                translation_of = None
            else:
                slug = f"{main_slug}-{copy.lang}"
                translation_of = main_slug
            meta = build_meta(title, copy.date or today, copy, path.name, translation_of)
            body = "\n".join(ln.text for ln in copy.body)
            target = into / f"{slug}.md"
            fi.reports.append(ImportedReport(slug, copy.lang, meta, body, target, render_report(meta, body)))
        # A source is imported whole or not at all: check every target first.
        for rep in fi.reports:
            key = rep.slug.casefold()
            tdisplay = _display(rep.target)
            if key in planned:
                fi.diagnostics.append(
                    Diagnostic("error", "import-exists", f"{tdisplay} would also be written from {planned[key]}; rename one source file", Location(display, 1))
                )
            elif rep.target.exists() or rep.target.is_symlink():
                same = rep.target.is_file() and not rep.target.is_symlink() and rep.target.read_bytes() == rep.text.encode("utf-8")
                if same:
                    rep.status = "unchanged"
                elif not force:
                    fi.diagnostics.append(
                        Diagnostic("error", "import-exists", f"{tdisplay} already exists; use --force to overwrite it", Location(display, 1))
                    )
        for rep in fi.reports:
            planned.setdefault(rep.slug.casefold(), display)
        fi.diff = "".join(_diff(text, display, rep) for rep in fi.reports)
        if fi.failed:
            for rep in fi.reports:
                rep.status = "skipped"
            continue
        for rep in fi.reports:
            if rep.status == "unchanged":
                continue
            if dry_run:
                rep.status = "dry-run"
                continue
            write_atomic(rep.target, rep.text.encode("utf-8"))
            os.chmod(rep.target, 0o644)  # mkstemp creates 0600; a report is an ordinary content file
            rep.status = "written"
    return result


def _diff(source_text: str, display: str, rep: ImportedReport) -> str:
    """The main report against its source (what the import changed); an existing target against the new text."""
    tdisplay = _display(rep.target)
    if rep.target.is_file():
        old, from_name = rep.target.read_text("utf-8", errors="replace"), tdisplay
    elif rep.meta.get("translation_of"):
        old, from_name = "", "/dev/null"
    else:
        old, from_name = source_text, display
    return "".join(
        difflib.unified_diff(old.splitlines(keepends=True), rep.text.splitlines(keepends=True), from_name, tdisplay)
    )


def format_summary(result: ImportResult, diff: bool = False) -> str:
    """Human-readable per-file summary (and the diffs for --dry-run)."""
    out = []
    for fi in result.files:
        if not fi.reports:
            continue
        for rep in fi.reports:
            out.append(f"{fi.display} → {_display(rep.target)} [{rep.lang}, {rep.status}]")
        for c in fi.changes:
            out.append(f"  {c.format()}")
        if diff and fi.diff:
            out.append(fi.diff.rstrip("\n"))
    return "\n".join(out) + ("\n" if out else "")
