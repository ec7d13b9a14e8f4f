"""Clean-ups: table of contents, closing pleasantries, foreign paragraphs, repeated chapters, headings, math."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace

from ...diagnostics import Diagnostic, Location
from ...residue import CLOSING_LINE
from .structure import _BILINGUAL_PAREN, HeadingInfo, _prose, cjk_share, find_headings, number_prefix, split_bilingual
from .text import (
    _FENCE_OPEN, _HEADING, _HR, _LATIN, _LIST_ITEM, _SETEXT_H1, Change, Line, _join_text, _next_nonblank, _remove,
    _span, fence_mask, has_cjk,
)


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
        while keep > 0 and CLOSING_LINE.search(sentences[keep - 1]) and len(sentences[keep - 1]) <= 200:
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
