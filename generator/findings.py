"""Findings: what a careful reader would catch in the rendered site, found by every build (the gate).

Broken internal links, anchors and images, leaked language-model tokens, chat-assistant sign-offs,
duplicated sections and paragraphs, empty sections. It runs after render and before write, so
`sitegen build`, `check`, `serve` and `publish` find the same things with the same codes and levels.
"""

from __future__ import annotations

import functools
import hashlib
import html
import posixpath
import re
import unicodedata
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote

from .content import Content, Rejected, media_output_path
from .diagnostics import Diagnostic, Location
from .markdown.urls import url_scheme
from .models import Draft, ParsedMarkdown, Report
from .pages import Site
from .residue import LM_TOKEN, SIGN_OFFS

MIN_PARAGRAPH = 20
"""Paragraphs shorter than this (after collapsing spaces) may repeat legitimately ("见上表。")."""

_ID_RE = re.compile(r"""\sid\s*=\s*"([^"]*)\"""")
_LINK_RE = re.compile(r"""<(a|link|img|script|source|iframe)\b[^>]*?\s(href|src)\s*=\s*"([^"]*)\"""", re.I)
_FENCE_RE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")


def collect_file_findings(rel: str, text: str, loaded: Any) -> list[Diagnostic]:
    """The findings of one content file alone (its text, what was loaded from it): valid while its bytes are unchanged."""
    found = collect_token_leaks({rel: text})
    report = loaded.report if isinstance(loaded, Rejected) else loaded
    if isinstance(report, Report) or isinstance(loaded, Draft):
        found += collect_sign_offs(rel, text)
    if isinstance(report, Report):
        found += collect_duplicates(report.path, report.body, report.source_text, report.body_line)
        found += collect_empty_sections(report)
    return found


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based line and column (in characters) of an index into text."""
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


# --- links and anchors ----------------------------------------------------------------------


def page_ids(data: bytes) -> set[str]:
    """The ids a rendered page offers as link targets."""
    return {html.unescape(m) for m in _ID_RE.findall(data.decode("utf-8", "replace"))}


def resolve_link(from_page: str, href: str) -> tuple[str | None, str] | None:
    """(target output path or None for "this page", fragment) for a site-internal link; None for others."""
    return _resolve_from(posixpath.dirname(from_page), href)


@functools.lru_cache(maxsize=1 << 16)
def _resolve_from(base: str, href: str) -> tuple[str | None, str] | None:
    # Every page of a folder shares its theme's links: resolved once per folder, not once per page.
    href = html.unescape(href).strip()
    if not href or url_scheme(href) is not None or href.startswith("//"):
        return None
    path, _, fragment = href.partition("#")
    path = unquote(path.split("?", 1)[0])
    fragment = unquote(fragment)
    if not path:
        return None, fragment
    if path.startswith("/"):
        # Site-root links break when the site is served under a sub-path (GitHub project pages).
        return "/" + path.lstrip("/"), fragment
    target = posixpath.normpath(posixpath.join(base, path))
    if path.endswith("/"):
        target = posixpath.join(target, "index.html")
    return target, fragment


def _lookup(target: str, existing: set[str]) -> str | None:
    if target in existing:
        return target
    if posixpath.join(target, "index.html") in existing:
        return posixpath.join(target, "index.html")
    return None


def _link_problem(page: str, href: str, existing: set[str], ids: Callable[[str], set[str] | None], what: str = "link") -> str | None:
    """What is wrong with a link from `page`; `ids` gives a page's ids (None: unknown, its anchors are not judged)."""
    resolved = resolve_link(page, href)
    if resolved is None:
        return None
    target, fragment = resolved
    if target is not None and target.startswith("/"):
        return f"{what} '{href}' is absolute: it breaks when the site is served under a sub-path; use a relative path"
    if target is not None and (target == ".." or target.startswith("../")):
        return f"{what} '{href}' leaves the site"
    found = page if target is None else _lookup(target, existing)
    if found is None:
        if what == "image":
            return f"missing image '{href}': no file {target} in the site (paths are relative to the page {page})"
        return f"broken link '{href}': no page or file {target} in the site"
    known_ids = ids(found) if fragment and found.endswith(".html") else None
    if known_ids is not None and fragment not in known_ids:
        return f"broken anchor '#{fragment}' in link '{href}': {found} has no such id"
    return None


def _locate(href: str, source: tuple[str, str, int] | None) -> Location | None:
    """Where a link of a rendered page was written in its Markdown source, if it was."""
    if source is None:
        return None
    rel, text, first_line = source
    for needle in dict.fromkeys((href, unquote(href), html.escape(href, quote=False))):
        at = text.find(f"]({needle}")
        if at < 0:
            at = text.find(needle)
        if at >= 0:
            return Location(rel, first_line + text.count("\n", 0, at))
    return None


def _source_image(source: str, src: str) -> str | None:
    """The output path an image written in a Markdown file is published at (None: not a content file)."""
    if url_scheme(src) is not None or src.startswith(("/", "#")):
        return None
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(source), unquote(src.split("#", 1)[0].split("?", 1)[0])))
    return media_output_path(resolved) if resolved.startswith("content/") else None


def collect_link_problems(site: Site, content: Content, files: dict[str, bytes], statics: set[str], already: list[Diagnostic],
                          other_ids: Callable[[str], set[str] | None] = lambda path: None) -> list[Diagnostic]:
    """Links of the pages in `files` (those written in content located at their source line) and of their theme.

    `statics`: the other files the site has; `other_ids`: the ids of a page not in `files` (None: unknown).
    """
    rejected = [r.report for r in content.rejected if r.report is not None]
    # A report whose front matter failed still counts as a page: links to it are not broken because of that.
    existing = set(files) | {p.path for p in site.pages} | {r.url for r in rejected} | statics
    known: dict[str, set[str] | None] = {r.url: None for r in rejected}

    def ids(path: str) -> set[str] | None:
        if path not in known:
            data = files.get(path)
            known[path] = page_ids(data) if data is not None else other_ids(path)
        return known[path]
    skip_prefixes = ("pagefind/",) if site.config.search.enabled else ()
    if site.pdf_links:
        skip_prefixes += ("pdf/",)
    found: list[Diagnostic] = []
    from_source: set[tuple[str, str]] = set()
    documents: list[tuple[str, ParsedMarkdown]] = [(r.url, r.body) for r in site.reports if r.url in files]
    documents += [(p.url, p.description) for p in site.profiles if p.description is not None and p.url in files]
    documents += [(r.url, r.body) for r in rejected]
    reported_images = {d.location for d in already if d.code == "image" and d.location}
    images_from_source: set[tuple[str, str]] = set()
    for page, parsed in documents:
        source = getattr(parsed, "path", "") or ""
        for src, loc in getattr(parsed, "images", None) or []:
            target = _source_image(source, src)
            if target is None:
                continue
            images_from_source.add((page, target))
            if target not in existing and loc not in reported_images:
                found.append(Diagnostic("error", "image", f"missing image '{src}': {target} is not in the site "
                                        "(images are published from content/; is the file there?)", loc))
        for href, loc in parsed.links:
            from_source.add((page, href))
            if href.startswith(skip_prefixes):
                continue
            problem = _link_problem(page, href, existing, ids)
            if problem:
                found.append(Diagnostic("error", "link", problem, loc))
    by_path = {p.path: p for p in site.pages}
    sources: dict[str, tuple[str, str, int]] = {r.url: (r.path, r.source_text, r.body_line) for r in site.reports}
    for path, data in files.items():
        if not path.endswith(".html"):
            continue
        page = by_path.get(path)
        for tag, _attr, href in _LINK_RE.findall(data.decode("utf-8", "replace")):
            href_text = html.unescape(href)
            if (path, href_text) in from_source:
                continue
            resolved = resolve_link(path, href_text)
            if resolved is None or (resolved[0] or "").startswith(skip_prefixes):
                continue
            if tag.lower() == "img" and (path, resolved[0]) in images_from_source:
                continue  # checked above, at the line that wrote it
            problem = _link_problem(path, href_text, existing, ids, "image" if tag.lower() == "img" else "link")
            if not problem:
                continue
            # Body links (same-page anchors, images) are located at their Markdown line; the rest is the theme's.
            loc = _locate(href_text, sources.get(path))
            if loc is not None:
                found.append(Diagnostic("error", "link", problem, loc))
            else:
                where = f"templates/{page.template}" if page else path
                found.append(Diagnostic("error", "link", f"{problem} (in the page {path})", Location(where)))
    return found


# --- language-model artifacts ---------------------------------------------------------------


def _code_lines(text: str) -> set[int]:
    """1-based numbers of the lines inside fenced code blocks (fences included)."""
    inside: set[int] = set()
    fence: str | None = None
    for number, line in enumerate(text.split("\n"), 1):
        m = _FENCE_RE.match(line)
        if fence is not None:
            inside.add(number)
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
        elif m:
            fence = m.group(1)
            inside.add(number)
    return inside


def _in_inline_code(line: str, col: int) -> bool:
    """True when column `col` (1-based) of a line lies inside a `code span`."""
    for m in re.finditer(r"(`+)(.+?)\1", line):
        if m.start() < col <= m.end():
            return True
    return False


def collect_token_leaks(texts: dict[str, str]) -> list[Diagnostic]:
    """Every `<|…|>` marker with line and column: an error in prose, a warning inside code.

    An article about tokenizers may quote `"<|endoftext|>"` in a code sample on purpose;
    the importer never alters code, so a token there is flagged for a human, not failed.
    """
    found = []
    for rel, text in texts.items():
        code = _code_lines(text) if LM_TOKEN.search(text) else set()
        lines = text.split("\n")
        for m in LM_TOKEN.finditer(text):
            line, col = _position(text, m.start())
            if line in code or _in_inline_code(lines[line - 1], col):
                found.append(Diagnostic("warning", "lm-token", f"language-model token '{m.group(0)}' inside code: "
                                        "keep it only if the code means it", Location(rel, line, col)))
                continue
            found.append(Diagnostic("error", "lm-token", f"leaked language-model token '{m.group(0)}': "
                                    "remove it (the text after it may be a second copy of the article)", Location(rel, line, col)))
    return found


def collect_sign_offs(rel: str, text: str) -> list[Diagnostic]:
    """Chat-assistant sign-offs in a report or draft ("希望对您有所帮助", "I hope this helps")."""
    found = []
    lines_seen: set[int] = set()
    for m in SIGN_OFFS.finditer(text):
        line, col = _position(text, m.start())
        if line in lines_seen:
            continue  # one finding per line is enough to find it
        lines_seen.add(line)
        found.append(Diagnostic("warning", "chat-artifact", f"reads like a chat assistant's sign-off ('{m.group(0)}'), "
                                "not part of the report: remove it", Location(rel, line, col)))
    return found


# --- structure ----------------------------------------------------------------------------------


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().casefold()


def _paragraphs(source: str) -> list[tuple[int, str]]:
    """(0-based line, text) of each prose block: blank-line separated, outside fences, not headings."""
    blocks: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    fence: str | None = None
    for i, line in enumerate(source.split("\n")):
        m = _FENCE_RE.match(line)
        if fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
            continue
        if m:
            fence = m.group(1)
            if current:
                blocks.append((start, "\n".join(current)))
                current = []
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            if current:
                blocks.append((start, "\n".join(current)))
                current = []
            continue
        if not current:
            start = i
        current.append(line)
    if current:
        blocks.append((start, "\n".join(current)))
    return blocks


def collect_duplicates(path: str, parsed: ParsedMarkdown, source: str, body_line: int) -> list[Diagnostic]:
    """A heading or a paragraph that occurs twice: usually a model that wrote the article again."""
    found = []
    first_heading: dict[tuple[int, str], int | None] = {}
    for h in parsed.headings:
        key = (h.level, _normalise(h.text))
        if not key[1]:
            continue
        if key in first_heading:
            found.append(Diagnostic("warning", "duplicate-section",
                                    f"duplicated section '{h.text}' (also at line {first_heading[key]})", Location(path, h.line)))
        else:
            first_heading[key] = h.line
    first_para: dict[str, int] = {}
    for index, text in _paragraphs(source):
        key = _normalise(text)
        if len(key) < MIN_PARAGRAPH:
            continue
        line = body_line + index
        if key in first_para:
            found.append(Diagnostic("warning", "duplicate-paragraph",
                                    f"duplicated paragraph (also at line {first_para[key]}): '{text.strip()[:40]}…'", Location(path, line)))
        else:
            first_para[key] = line
    return found


def collect_empty_sections(report: Report) -> list[Diagnostic]:
    """A heading with neither text nor subsections before the next heading of its level or higher."""
    headings = [h for h in report.body.headings if h.line is not None]
    lines = report.source_text.split("\n")
    found = []
    for i, h in enumerate(headings):
        nxt = headings[i + 1] if i + 1 < len(headings) else None
        if nxt is not None and nxt.level > h.level:
            continue  # it has subsections
        start = h.line - report.body_line + 1  # type: ignore[operator]
        end = (nxt.line - report.body_line) if nxt is not None else len(lines)  # type: ignore[operator]
        if not any(line.strip() for line in lines[start:end]):
            found.append(Diagnostic("warning", "empty-section", f"empty section '{h.text}'", Location(report.path, h.line)))
    return found


def collect_content_findings(project: Path, content: Content) -> list[Diagnostic]:
    """Each content file's own findings: computed for files read anew (and kept in their record entry), reused for the rest."""
    found: list[Diagnostic] = []
    entries = {**content.loaded, **content.parsed}
    for rel, digest in content.sources.items():
        entry = entries.get(rel)
        if entry is not None and rel not in content.fresh:
            continue  # its findings came with the entry
        try:
            data = (project / rel).read_bytes()
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # reported by the load
        if hashlib.sha256(data).hexdigest() != digest:
            continue  # changed since it was loaded: the next build reads it again
        mine = collect_file_findings(rel, text, entry[1] if entry else None)
        if entry is not None:
            entry[2].extend(mine)
        found += mine
    return found


def previous_output(out: Path) -> Callable[[str], bytes | None]:
    """The bytes of a file of the previous output (before this build writes), read at most once."""
    memo: dict[str, bytes | None] = {}

    def read(rel: str) -> bytes | None:
        if rel not in memo:
            try:
                memo[rel] = (out / rel).read_bytes()
            except OSError:
                memo[rel] = None
        return memo[rel]

    return read


def kept_pages_may_break(before: set[str], now: set[str], files: dict[str, bytes], old: Callable[[str], bytes | None]) -> bool:
    """True when a kept page's links may have broken: a page or file of the last good build is gone, or a page lost an id."""
    if not before <= now:
        return True
    for path, data in files.items():
        previous = old(path)
        if previous is not None and path.endswith(".html") and not page_ids(previous) <= page_ids(data):
            return True
    return False
