"""Structure: headings and their numbers, bilingual titles, repeated copies of the article, its language."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

from .text import _HEADING, _HR, _LATIN, Line, _strip_markup, cjk_count, fence_mask, has_cjk


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
