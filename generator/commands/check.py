"""`sitegen check`: everything a build would find, plus what only a careful reader would, nothing written.

The build runs with `write=False` (config and schema errors, unknown start-ups, diagrams and
formulas that fail), then the checks below read the loaded content and the rendered pages:
broken internal links and anchors, leaked language-model tokens, duplicated sections and
paragraphs, empty sections, chat-assistant sign-offs, unreviewed drafts.
"""

from __future__ import annotations

import html
import posixpath
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from ..build import BuildOptions, BuildResult, load_site, render_site, untrusted_override
from ..content import Content, collect_files, media_output_path
from ..diagnostics import ContentError, Diagnostic, Diagnostics, Location
from ..markdown.urls import url_scheme
from ..models import ParsedMarkdown, Report
from ..residue import LM_TOKEN, SIGN_OFFS

MIN_PARAGRAPH = 20
"""Paragraphs shorter than this (after collapsing spaces) may repeat legitimately ("见上表。")."""

_ID_RE = re.compile(r"""\sid\s*=\s*"([^"]*)\"""")
_LINK_RE = re.compile(r"""<(a|link|img|script|source|iframe)\b[^>]*?\s(href|src)\s*=\s*"([^"]*)\"""", re.I)
_FENCE_RE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")


@dataclass
class CheckOptions:
    strict: bool = False
    """Warnings count as errors (exit 1)."""
    untrusted: bool = False
    """Check a change you do not trust: sandboxed templates, no shipped caches (config `untrusted`)."""


@dataclass
class CheckResult:
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: int = 0
    """Content files checked."""
    pages: int = 0
    """Rendered pages whose links were checked."""
    strict: bool = False

    @property
    def errors(self) -> list[Diagnostic]:
        return Diagnostics(self.diagnostics).errors

    @property
    def warnings(self) -> list[Diagnostic]:
        return Diagnostics(self.diagnostics).warnings

    @property
    def exit_code(self) -> int:
        return 1 if Diagnostics(self.diagnostics).failed(self.strict) else 0

    def to_json(self) -> dict:
        return {
            "files": self.files,
            "pages": self.pages,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "diagnostics": [d.to_json() for d in self.diagnostics],
        }


def check(project: Path, options: CheckOptions | None = None) -> CheckResult:
    """Run the build without writing, then every content check; findings sorted by file and line."""
    options = options or CheckOptions()
    project = project.resolve()
    result = CheckResult(strict=options.strict)
    try:
        loaded = load_site(project, BuildOptions(strict=options.strict, pdf=False, overrides=untrusted_override(options.untrusted)))
    except ContentError as exc:
        # Only configuration errors stop a build that writes nothing: nothing else can be checked.
        result.diagnostics = _unique(exc.diagnostics)
        return result
    # Every finding and every page, even when the build would fail: nothing is written.
    built = loaded.result(render_site(loaded, loaded.site.pages)[0])
    found = Diagnostics(list(built.diagnostics.items))
    content = built.content or Content()
    texts = _read_texts(project)
    result.files = len(texts)
    found.extend(collect_link_problems(built, project))
    found.extend(collect_token_leaks(texts))
    found.extend(collect_sign_offs(texts, content))
    for report in content.reports:
        found.extend(collect_duplicates(report.path, report.body, report.source_text, report.body_line))
        found.extend(collect_empty_sections(report))
    found.extend(collect_unreviewed_drafts(content, texts, found.items))
    result.pages = len(built.files)
    result.diagnostics = _unique(found.items)
    return result


def _unique(diags: list[Diagnostic]) -> list[Diagnostic]:
    """The collector's order (unique; by file, line, column), with the code breaking ties at one place."""

    def place_and_code(d: Diagnostic) -> tuple[str, int, int, str]:
        loc = d.location
        return (loc.path, loc.line or 0, loc.col or 0, d.code) if loc else ("", 0, 0, d.code)

    return sorted(Diagnostics(list(diags)).sorted(), key=place_and_code)


def _read_texts(project: Path) -> dict[str, str]:
    """Text of every Markdown and YAML file under content/ (undecodable files were reported by the build)."""
    texts = {}
    for src in collect_files(project, []):
        if src.data:
            try:
                texts[src.rel] = src.data.decode("utf-8")
            except UnicodeDecodeError:
                continue
    return texts


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based line and column (in characters) of an index into text."""
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


# --- links and anchors ----------------------------------------------------------------------


def _page_ids(body: str) -> set[str]:
    return {html.unescape(m) for m in _ID_RE.findall(body)}


def resolve_link(from_page: str, href: str) -> tuple[str | None, str] | None:
    """(target output path or None for "this page", fragment) for a site-internal link; None for others."""
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
    target = posixpath.normpath(posixpath.join(posixpath.dirname(from_page), path))
    if path.endswith("/"):
        target = posixpath.join(target, "index.html")
    return target, fragment


def _lookup(target: str, existing: set[str]) -> str | None:
    if target in existing:
        return target
    if posixpath.join(target, "index.html") in existing:
        return posixpath.join(target, "index.html")
    return None


def _link_problem(page: str, href: str, existing: set[str], ids: dict[str, set[str]], what: str = "link") -> str | None:
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
    if fragment and found.endswith(".html") and fragment not in ids.get(found, set()):
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


def collect_link_problems(built: BuildResult, project: Path) -> list[Diagnostic]:
    """Links written in content (located at their source line) and links in the rendered pages."""
    site, files = built.site, built.files
    if site is None:
        return []
    from ..writers.html import collect_static

    existing = set(files)
    existing.update(collect_static(project, built.content.assets if built.content else {}))
    ids = {path: _page_ids(data.decode("utf-8", "replace")) for path, data in files.items() if path.endswith(".html")}
    skip_prefixes = ("pagefind/",) if site.config.search.enabled else ()
    if site.pdf_links:
        skip_prefixes += ("pdf/",)
    found: list[Diagnostic] = []
    from_source: set[tuple[str, str]] = set()
    documents: list[tuple[str, ParsedMarkdown]] = [(r.url, r.body) for r in site.reports]
    documents += [(p.url, p.description) for p in site.profiles if p.description is not None]
    reported_images = {d.location for d in built.diagnostics.items if d.code == "image" and d.location}
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


def collect_sign_offs(texts: dict[str, str], content: Content) -> list[Diagnostic]:
    """Chat-assistant sign-offs in reports and drafts ("希望对您有所帮助", "I hope this helps")."""
    targets = {r.path for r in content.reports} | {d.path for d in content.drafts}
    found = []
    for rel in sorted(targets):
        text = texts.get(rel, "")
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


def collect_unreviewed_drafts(content: Content, texts: dict[str, str], already: list[Diagnostic]) -> list[Diagnostic]:
    """Drafts still marked as drafts: they are published with a notice until someone reviews them."""
    reported = {d.location.path for d in already if d.code == "draft-unreviewed" and d.location}
    found = []
    for d in content.drafts:
        if d.reviewed or d.path in reported:
            continue
        text = texts.get(d.path, "")
        m = re.search(r"^status\s*:", text, re.M)
        line = _position(text, m.start())[0] if m else 1
        found.append(Diagnostic("warning", "draft-unreviewed",
                                f"draft '{d.section}' of {d.slug} is not reviewed: read it, fix it, then set status: reviewed",
                                Location(d.path, line)))
    return found
