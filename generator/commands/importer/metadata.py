"""Metadata: title, keywords, abstract, authors and date taken out of the text; fallbacks when they are missing."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata

from .cleanups import _blocks, _sentences
from .structure import (
    _AUTHOR_LINE, _META_HEADING, _TITLE_LABEL, _clean_heading_text, chapter_headings, find_headings, parse_number,
)
from .text import (
    _FENCE_OPEN, _HEADING, _LATIN, _LIST_ITEM, Change, Line, _join_text, _next_nonblank, _remove, _span, _strip_markup,
    fence_mask, has_cjk,
)


def _preamble_end(lines: list[Line]) -> int:
    """Index of the first chapter heading (metadata blocks live before it)."""
    spine = chapter_headings(find_headings(lines))
    return spine[0].index if spine else len(lines)


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
