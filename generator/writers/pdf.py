"""PDFs with WeasyPrint: one per report and start-up profile, and the whole site as one book.

The print HTML comes from the same Jinja environment as the site (`templates/print/`), with the
print variants of diagrams and formulas (SVG: vector in the PDF). Each PDF is rendered in a
worker process with a wall-clock and a memory limit, reads files only through `SitegenFetcher`,
and is cached by a hash of everything that goes into it. WeasyPrint's logged problems come back
as sitegen diagnostics naming the source file: a PDF never silently misses content.
"""

from __future__ import annotations

import hashlib
import html as htmllib
import json
import os
import posixpath
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol
from urllib.parse import unquote, urljoin

from markupsafe import Markup

from .. import __version__
from ..diagnostics import Diagnostics, EnvironmentProblem, Location
from ..markdown import fill_jobs
from ..markdown.urls import url_scheme
from ..models import ParsedMarkdown
from ..pages import Site
from ..services.cache import Cache, hash_key
from ..services.fetcher import FetchPolicy
from ..services.fonts import FontPlan, faces_to_cut, plan_fonts, write_font_files
from ..templates import page_context, site_environment, template_dirs, template_error, theme_dir

PIPELINE_VERSION = "1"
"""Bump when the print pipeline changes output for the same input: part of every PDF cache key."""
RENDER_TARGET = "generator.writers.pdf:render_pdf"
WORKER_START_TIMEOUT = 90.0
WRITE_OPTIONS: dict[str, Any] = {"presentational_hints": False, "pdf_tags": False, "uncompressed_pdf": False}
"""Options every render gets; presentational hints stay off (CVE-2026-49452)."""
_SVG_BLOCK = re.compile(r"<svg\b.*?</svg>", re.S | re.I)
_IMG_SRC = re.compile(r'(<img\b[^>]*?\bsrc=")([^"]*)(")', re.I)
_A_HREF = re.compile(r'<a\b([^>]*?)\bhref="([^"]*)"([^>]*)>', re.I)
_ID_ATTR = re.compile(r'(\sid=")([^"]*)(")')
_SVG_ID = re.compile(r'<svg\b[^>]*?\sid="([A-Za-z][\w-]{5,})"')
_SVG_FONT_DECL = re.compile(r"""font-family\s*:\s*(?:'[^'<>]*'|"[^"<>]*"|&[#\w]+;|[^;}"'<>&])+""")
_SVG_FONT_ATTR = re.compile(r'\bfont-family="[^"]*"')
_SVG_TEXT_NO_FONT = re.compile(r"<text\b(?![^>]*font-family)")
SVG_FONT_STACK = "'Sitegen CJK Sans','Noto Sans CJK SC',sans-serif"
"""Diagram text uses the PDF's subset font (Mermaid's own stack would embed more faces)."""
_NOISE = re.compile(r"^Ignored `(overflow-x|overflow-y|rx|ry|fill|fill-opacity|stroke[a-z-]*|marker[a-z-]*|dominant-baseline|text-anchor|alignment-baseline|paint-order|vector-effect|shape-rendering|font-display):")
"""CSS WeasyPrint does not know, written by sitegen's own diagram and math markup (drawn by its SVG code)."""


class Sink(Protocol):
    """Where finished PDFs go: the build's OutputTransaction, or the `sitegen pdf` writer."""

    def write(self, rel: str, data: bytes) -> None: ...


# --- documents ----------------------------------------------------------------------------


@dataclass
class PdfDoc:
    """One PDF to produce: its output path, the file that messages name, and its print HTML."""

    rel: str
    source: str
    html: str = ""
    title: str = ""
    images: dict[str, Location] = field(default_factory=dict)
    """Absolute file: URL of each content image → where the content asked for it."""
    files: set[Path] = field(default_factory=set)
    """Local files the HTML references (their bytes are part of the cache key)."""
    key: str = ""
    template: str = ""
    """The print template it was rendered from, as messages name it (`templates/print/report.html`)."""


@dataclass
class PrintTools:
    """Per-document helpers the print templates call; they rewrite content HTML for print."""

    site: Site
    project: Path
    doc: PdfDoc
    book: bool = False
    chapters: dict[str, str] = field(default_factory=dict)
    """In the book: report output URL → chapter anchor, so links between reports stay inside the PDF."""
    svg_ids: dict[str, int] = field(default_factory=dict)

    def body(self, parsed: ParsedMarkdown | None, source: str, page_url: str, prefix: str = "") -> Markup:
        """Content HTML for print: SVG variants of jobs, images rooted at content/, links made absolute."""
        if parsed is None:
            return Markup("")
        text = fill_jobs(parsed.html, self.site.results, print_variant=True)
        for src, loc in getattr(parsed, "images", []) or []:
            url = self._image_url(source, src)
            if url:
                self.doc.images.setdefault(url, loc)
        text = _outside_svg(text, lambda part: self._rewrite(part, source, page_url, prefix), self._print_svg)
        return Markup(text)

    def job(self, key: str | None) -> Markup:
        res = self.site.results.get(key) if key else None
        if res is None:
            return Markup("")
        text = res.print_html if res.print_html is not None else res.html
        return Markup(_outside_svg(text, lambda part: part, self._print_svg))

    def _print_svg(self, block: str) -> str:
        """Inline SVG for print: text in the PDF's own fonts; a diagram shown twice gets its own id scope."""
        block = _SVG_FONT_DECL.sub("font-family:" + SVG_FONT_STACK, block)
        block = _SVG_FONT_ATTR.sub(f'font-family="{SVG_FONT_STACK}"', block)
        block = _SVG_TEXT_NO_FONT.sub(f'<text font-family="{SVG_FONT_STACK}"', block)
        m = _SVG_ID.match(block)
        if not m:
            return block
        scope = m[1]
        n = self.svg_ids.get(scope, 0)
        self.svg_ids[scope] = n + 1
        # The scope is a unique token: it names the ids, the CSS selectors and the url(#…) references.
        return block if n == 0 else block.replace(scope, f"{scope}-{n + 1}")

    def site_url(self, path: str) -> str:
        """An absolute link to a page of the published site, or "" when base_url is not configured."""
        base = self.site.config.base_url
        return urljoin(base, path.removesuffix("index.html")) if base else ""

    def _image_url(self, source: str, src: str) -> str | None:
        if url_scheme(src) is not None:
            return None
        rel = _content_relative(source, src)
        if rel is None:
            return None
        path = Path(os.path.normpath(self.project / "content" / rel))
        self.doc.files.add(path)
        return path.as_uri()  # as WeasyPrint will ask for it: joined to the base URL, symlinks not followed

    def _rewrite(self, part: str, source: str, page_url: str, prefix: str) -> str:
        def img(m: re.Match) -> str:
            src = htmllib.unescape(m[2])
            if url_scheme(src) is None:
                rel = _content_relative(source, src)
                # An escaping path was already an error in content loading; the fetcher refuses it too.
                src = rel if rel is not None else src
            return m[1] + htmllib.escape(src, quote=True) + m[3]

        def link(m: re.Match) -> str:
            href = htmllib.unescape(m[2])
            scheme = url_scheme(href)
            if href.startswith("#"):
                new = "#" + prefix + href[1:]
            elif scheme in ("http", "https", "mailto"):
                new = href
            elif scheme is None and not href.startswith("//"):
                target = posixpath.normpath(posixpath.join(posixpath.dirname(page_url), href.split("#")[0]))
                if self.book and target in self.chapters:
                    new = "#" + self.chapters[target]
                else:
                    new = self.site_url(target) if self.site.config.base_url else ""
            else:
                new = ""
            if not new:
                return f"<a{m[1]}{m[3]}>"
            return f'<a{m[1]}href="{htmllib.escape(new, quote=True)}"{m[3]}>'

        part = _IMG_SRC.sub(img, part)
        part = _A_HREF.sub(link, part)
        if prefix:
            part = _ID_ATTR.sub(lambda m: m[1] + prefix + m[2] + m[3], part)
        return part


def _content_relative(source: str, src: str) -> str | None:
    """A content file's relative image path, relative to content/ (None when it escapes)."""
    path = unquote(src.strip()).split("#")[0].split("?")[0]
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(source), path))
    if not joined.startswith("content/"):
        return None
    return joined[len("content/") :]


def _outside_svg(text: str, fn: Callable[[str], str], svg_fn: Callable[[str], str] = lambda s: s) -> str:
    """Apply fn to the HTML between inline SVGs: diagram ids and their scoped CSS must not change."""
    out, pos = [], 0
    for m in _SVG_BLOCK.finditer(text):
        out.append(fn(text[pos : m.start()]))
        out.append(svg_fn(m[0]))
        pos = m.end()
    out.append(fn(text[pos:]))
    return "".join(out)


def chapter_anchor(slug: str) -> str:
    return f"ch-{hashlib.sha1(slug.encode()).hexdigest()[:10]}"


def collect_documents(site: Site, project: Path, diags: Diagnostics, book: bool = True) -> list[PdfDoc]:
    """Render the print HTML of every report (unless `pdf: false`), every profile, and the book."""

    env = site_environment(project, site.config)
    strings = env.globals["strings"]
    docs: list[PdfDoc] = []
    for r in site.reports:
        if not r.meta.pdf:
            continue
        covered = [p for p in (site.profile(s) for s in r.meta.startups) if p]
        doc = PdfDoc(f"pdf/reports/{r.slug}.pdf", r.path, title=r.meta.title)
        _render_doc(env, site, project, doc, "print/report.html", r.lang, {"report": r, "startups": covered}, strings, diags)
        docs.append(doc)
    for p in site.profiles:
        covering = [r for r in site.reports if p.slug in r.meta.startups]
        doc = PdfDoc(f"pdf/startups/{p.slug}.pdf", p.path, title=p.data.name)
        _render_doc(env, site, project, doc, "print/startup.html", p.data.lang or site.config.language, {"profile": p, "reports": covering}, strings, diags)
        docs.append(doc)
    if book:
        doc = PdfDoc("pdf/book.pdf", "sitegen.yaml", title=site.config.title)
        reports = [r for r in site.reports if r.meta.pdf]
        chapters = {r.url: chapter_anchor(r.slug) for r in reports}
        chapters.update({p.url: chapter_anchor("startup:" + p.slug) for p in site.profiles})
        covering = {p.slug: [r for r in reports if p.slug in r.meta.startups] for p in site.profiles}
        extra = {"reports": reports, "chapters": chapters, "covering": covering}
        _render_doc(env, site, project, doc, "print/book.html", site.config.language, extra, strings, diags, chapters)
        docs.append(doc)
    return [d for d in docs if d.html]


def _template_path(filename: str | None, name: str, project: Path) -> str:
    """A print template as messages name it: inside the project, else the theme's `templates/…`."""
    try:
        return Path(filename or "").relative_to(project).as_posix()
    except ValueError:
        return "templates/" + name


def _render_doc(env, site: Site, project: Path, doc: PdfDoc, template: str, lang: str, extra: dict, strings: dict, diags: Diagnostics, chapters: dict | None = None) -> None:
    import jinja2

    tools = PrintTools(site, project, doc, book=chapters is not None, chapters=chapters or {})
    helpers = {
        "body": tools.body,
        "job": tools.job,
        "site_url": tools.site_url,
        "chapter_anchor": chapter_anchor,
        "url": tools.site_url,
        "pdf_links": False,
    }
    ctx = page_context(site, lang, strings, helpers, extra)
    try:
        loaded = env.get_template(template)
        doc.template = _template_path(loaded.filename, template, project)
        doc.html = loaded.render(ctx)
    except (jinja2.TemplateError, KeyError, TypeError, AttributeError, ValueError) as exc:
        diags.add(template_error(exc, project))


# --- settings shared by every render ------------------------------------------------------------


def stylesheet_paths(project: Path) -> list[Path]:
    """print.css from the project's templates/print/ if it has one, else the theme's."""
    for base in template_dirs(project):
        p = base / "print" / "print.css"
        if p.is_file():
            return [p]
    return []


def allowed_roots(project: Path, temp: Path) -> tuple[str, ...]:
    """content/, the templates' static and print folders (project and theme), and this run's temp dir."""
    roots = [project / "content", temp]
    for base in (project / "templates", theme_dir()):
        roots += [base / "static", base / "print"]
    return tuple(dict.fromkeys(str(p.resolve()) for p in roots if p.exists()))


def _code_css() -> str:
    """Pygments' light style only: WeasyPrint knows no prefers-color-scheme, and paper is light."""
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(style="friendly").get_style_defs(".highlight")


def page_css(site: Site) -> str:
    """Page size and margins come from config; everything else is in print.css."""
    pdf = site.config.pdf
    margin = pdf.margin if re.fullmatch(r"[0-9.]+(mm|cm|in|pt|px)( [0-9.]+(mm|cm|in|pt|px)){0,3}", pdf.margin) else "20mm"
    return f"@page {{ size: {pdf.page_size}; margin: {margin}; }}\n"


@dataclass
class RenderJob:
    """Everything one worker needs: plain data only (workers may be spawned)."""

    name: str
    html: str
    base_url: str
    stylesheets: list[tuple[str, str]]
    """(CSS text, base URL) in cascade order."""
    policy: FetchPolicy


@dataclass
class RenderOutcome:
    pdf: bytes | None = None
    pages: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    denied: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    cached: bool = False


# --- the worker side ---------------------------------------------------------------------------


def render_pdf(job: RenderJob) -> RenderOutcome:
    """Render one document with WeasyPrint through SitegenFetcher; logged problems are collected."""
    import logging

    from weasyprint import CSS, HTML
    from weasyprint.text.fonts import FontConfiguration

    from ..services.fetcher import SitegenFetcher

    started = time.perf_counter()
    out = RenderOutcome()
    fetcher = SitegenFetcher(job.policy)
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("weasyprint")
    handler = Collect(logging.WARNING)
    logger.addHandler(handler)
    saved = (logger.level, logger.propagate)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        fonts = FontConfiguration()
        sheets = [CSS(string=text, base_url=base, url_fetcher=fetcher, font_config=fonts) for text, base in job.stylesheets]
        document = HTML(string=job.html, base_url=job.base_url, url_fetcher=fetcher).render(
            font_config=fonts, stylesheets=sheets, **WRITE_OPTIONS
        )
        out.pages = len(document.pages)
        out.pdf = document.write_pdf(**WRITE_OPTIONS)
    except RecursionError:
        out.errors.append("PDF render failed: recursion too deep (a CSS @import loop or deeply nested content)")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
    for record in records:
        msg = _log_message(record)
        if "FetchDenied" in msg:
            continue  # reported from fetcher.denied, with the reason
        if record.levelno < logging.ERROR and _NOISE.match(msg):
            continue
        (out.errors if record.levelno >= logging.ERROR or "RecursionError" in msg else out.warnings).append(msg)
    out.requested = list(fetcher.requested)
    out.denied = list(fetcher.denied)
    out.seconds = time.perf_counter() - started
    if out.errors or out.denied:
        out.pdf = None  # never a PDF with missing content
    return out


def _log_message(record) -> str:
    """One line of WeasyPrint's log, with the exception's type when the message leaves it out."""
    try:
        msg = record.getMessage()
    except Exception:  # a broken format string in a third-party log call
        msg = str(record.msg)
    exc = record.exc_info[1] if record.exc_info else None
    if exc is not None and type(exc).__name__ not in msg:
        msg += f" ({type(exc).__name__})"
    return " ".join(msg.split())[:500]


def _resolve_target(target: str) -> Callable[[RenderJob], RenderOutcome]:
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _preload() -> None:
    import weasyprint  # noqa: F401 - paid once per worker, not per PDF


def run_job(item: tuple[str, Any]) -> Any:
    """In a worker: one job through its own target (a font cut) or the pool's (a PDF render)."""
    target, job = item
    return _resolve_target(target)(job)


# --- the parent side ---------------------------------------------------------------------------


class WorkerPool:
    """PDF workers in fresh interpreters (no inherited state), memory-limited; a render over its time limit is killed."""

    def __init__(self, size: int, memory_mb: int, timeout: float, target: str = RENDER_TARGET):
        from ..workers import Pool

        self.memory_mb = memory_mb
        self.timeout = timeout
        self.target = target
        self.pool = Pool(run_job, size, timeout=timeout, memory_mb=memory_mb, start="fresh", warm=_preload,
                         start_timeout=WORKER_START_TIMEOUT, name="sitegen-pdf")

    def start(self, count: int | None = None) -> "WorkerPool":
        """Start workers now, so they load WeasyPrint while the parent prepares fonts."""
        self.pool.start(count)
        return self

    def run(self, jobs: list[Any]) -> dict[str, Any]:
        """job name → what its target returned, or a RenderOutcome naming why there is none."""
        limits = [getattr(job, "timeout", None) or self.timeout for job in jobs]
        outcomes = self.pool.run([(getattr(job, "target", None) or self.target, job) for job in jobs], timeouts=limits)
        results: dict[str, Any] = {}
        for job, limit, o in zip(jobs, limits, outcomes):
            if not o.started:
                self.close()
                raise EnvironmentProblem(self._start_problem(o))
            results[job.name] = o.value if o.ok else RenderOutcome(errors=[self._problem(o, limit)])
        return results

    def _problem(self, o: Any, limit: float) -> str:
        if o.status == "timeout":
            return f"PDF render exceeded {limit:g} s (pdf.timeout); the worker was stopped"
        if o.status == "memory":
            return f"PDF render exceeded the memory limit of {self.memory_mb} MB"
        if o.status == "crashed":
            return f"PDF worker stopped unexpectedly (exit code {o.exitcode})"
        return f"PDF render failed: {o.detail}"

    @staticmethod
    def _start_problem(o: Any) -> str:
        if o.status == "timeout":
            return f"PDF worker did not start within {WORKER_START_TIMEOUT:g} s"
        if o.status == "crashed":
            return f"PDF worker could not start (PDF worker stopped unexpectedly (exit code {o.exitcode}))"
        return f"PDF worker could not start: {o.detail} (is WeasyPrint installed? run scripts/setup.sh)"

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- producing PDFs ----------------------------------------------------------------------------


@dataclass
class PdfStats:
    rendered: int = 0
    cached: int = 0
    failed: int = 0
    pages: int = 0
    fonts_cut: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def _weasyprint_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("weasyprint")
    except PackageNotFoundError:
        return "?"


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"
    except OSError:
        return "unreadable"


def _cache_key(doc: PdfDoc, sheets: list[str], fonts: FontPlan, config: Any) -> str:
    """Everything a PDF's bytes depend on: HTML, CSS, fonts, images, limits and tool versions."""
    files = sorted(f"{p}:{_file_digest(p)}" for p in doc.files)
    limits = repr((sorted(config.allow_network), config.max_image_pixels))
    return hash_key("pdf", PIPELINE_VERSION, __version__, _weasyprint_version(), doc.html, *sheets, fonts.digest, limits, *files)


def _pack(outcome: RenderOutcome) -> bytes:
    meta = json.dumps({"pages": outcome.pages, "warnings": outcome.warnings}, ensure_ascii=False).encode()
    return len(meta).to_bytes(4, "big") + meta + (outcome.pdf or b"")


def _unpack(data: bytes) -> RenderOutcome | None:
    try:
        n = int.from_bytes(data[:4], "big")
        meta = json.loads(data[4 : 4 + n])
        pdf = data[4 + n :]
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    # Checked, not trusted: a wrong shape is a damaged entry, rendered again, never a crash.
    if not (pdf.startswith(b"%PDF") and isinstance(meta, dict) and type(meta.get("pages")) is int
            and isinstance(meta.get("warnings"), list) and all(isinstance(w, str) for w in meta["warnings"])):
        return None
    return RenderOutcome(pdf=pdf, pages=meta["pages"], warnings=list(meta["warnings"]), cached=True)


def base_stylesheets(site: Site, project: Path) -> list[tuple[str, str]]:
    """(CSS text, base URL) in cascade order: page setup from config, print.css, code colours."""
    sheets: list[tuple[str, str]] = [(page_css(site), theme_dir().resolve().as_uri() + "/print/")]
    for p in stylesheet_paths(project):
        sheets.append((p.read_text(encoding="utf-8"), p.parent.resolve().as_uri() + "/"))
    sheets.append((_code_css(), theme_dir().resolve().as_uri() + "/static/"))
    return sheets


def _render_all(
    todo: list[PdfDoc], site: Site, project: Path, temp: Path, sheets: list[tuple[str, str]], fonts: FontPlan,
    workers: int, target: str, diags: Diagnostics, stats: PdfStats, cache: Cache,
) -> dict[str, RenderOutcome]:
    """Cut missing font subsets, then render, both on the worker pool; good results go to the cache."""
    config = site.config.pdf
    cache_root = project / site.config.cache_dir
    cuts = faces_to_cut(fonts, cache_root)
    with WorkerPool(min(workers, max(len(todo), len(cuts))), config.memory_mb, config.timeout, target) as pool:
        pool.start()  # workers load WeasyPrint while we wait for fonts
        clock = time.perf_counter()
        done = pool.run(cuts) if cuts else {}
        fresh = {k: v for k, v in done.items() if isinstance(v, bytes)}
        problems = [f"cannot subset a CJK font: {'; '.join(v.errors)}" for v in done.values() if isinstance(v, RenderOutcome)]
        font_cache = Cache(cache_root, "fonts")
        problems += write_font_files(fonts, font_cache, temp / "fonts", fresh)
        for msg in problems:
            diags.warning("pdf-font", msg, None)
        diags.extend(font_cache.problems())
        stats.fonts_cut = len(fresh)
        stats.seconds["fonts"] = time.perf_counter() - clock
        font_css = fonts.css(temp / "fonts")
        styles = ([(font_css, (temp / "fonts").resolve().as_uri() + "/")] if font_css else []) + sheets
        policy = FetchPolicy(allowed_roots(project, temp), tuple(config.allow_network), config.max_image_pixels)
        base_url = (project / "content").resolve().as_uri() + "/"
        clock = time.perf_counter()
        outcomes = pool.run([RenderJob(d.rel, d.html, base_url, styles, policy) for d in todo])
        stats.seconds["render"] = time.perf_counter() - clock
    for d in todo:
        o = outcomes.get(d.rel)
        # A face that could not be cut changes the fonts its key stands for: such PDFs are not kept.
        if o is not None and o.pdf is not None and not o.errors and not o.denied and not problems:
            cache.put(d.key, _pack(o))
    return outcomes


def produce_pdfs(
    site: Site,
    project: Path,
    diags: Diagnostics,
    workers: int,
    slugs: Iterable[str] | None = None,
    book: bool = False,
    target: str = RENDER_TARGET,
    stats: PdfStats | None = None,
) -> dict[str, bytes]:
    """Print HTML → fonts → cache → parallel renders; returns output path → PDF bytes for the good ones."""
    stats = stats if stats is not None else PdfStats()
    config = site.config.pdf
    clock = time.perf_counter()
    # Every document is laid out for the font subset's character set, so that a selection
    # (`sitegen pdf SLUG`) gets the same fonts, hence the same cache keys, as a full build.
    every = collect_documents(site, project, diags)
    wanted = set(slugs) if slugs is not None else None
    docs = [d for d in every if (d.rel == "pdf/book.pdf" and book) or (d.rel != "pdf/book.pdf" and (wanted is None or Path(d.rel).stem in wanted))]
    stats.seconds["html"] = time.perf_counter() - clock
    if not docs:
        return {}
    cache_root = project / site.config.cache_dir
    cache = Cache(cache_root, "pdf")
    sheets = base_stylesheets(site, project)
    # Stylesheets hold text too (the page footer's words): their characters go into the subset.
    fonts = plan_fonts([d.html for d in every] + [text for text, _ in sheets], subset=config.subset_fonts)
    for w in fonts.warnings:
        diags.warning("pdf-font", w, None)
    outcomes: dict[str, RenderOutcome] = {}
    todo: list[PdfDoc] = []
    for doc in docs:
        doc.key = _cache_key(doc, [text for text, _ in sheets], fonts, config)
        hit = cache.get(doc.key)
        outcome = _unpack(hit) if hit is not None else None
        if outcome is not None:
            outcomes[doc.rel] = outcome
        else:
            if hit is not None:
                cache.corrupt.append(doc.key)
            todo.append(doc)
    diags.extend(cache.problems())  # damaged entries are rendered again below; the build names them
    if todo:
        with tempfile.TemporaryDirectory(prefix="sitegen-pdf-") as tmp:
            outcomes.update(_render_all(todo, site, project, Path(tmp), sheets, fonts, workers, target, diags, stats, cache))
    written: dict[str, bytes] = {}
    for doc in docs:
        o = outcomes.get(doc.rel) or RenderOutcome(errors=["PDF was not rendered"])
        _report(doc, o, diags)
        if o.cached:
            stats.cached += 1
        else:
            stats.rendered += 1
        if o.pdf is not None and not o.errors and not o.denied:
            written[doc.rel] = o.pdf
            stats.pages += o.pages
        else:
            stats.failed += 1
    return written


def _report(doc: PdfDoc, o: RenderOutcome, diags: Diagnostics) -> None:
    """Render problems become diagnostics at the source file (the content line for refused images)."""
    where = Location(doc.source)
    for url, reason in o.denied:
        loc = doc.images.get(url) or doc.images.get(url.split("#")[0])
        if loc is None and doc.template:
            # Not an image the content asked for: the print template (or its stylesheet) did.
            reason += f" (asked for by {doc.template} or its stylesheet)"
        diags.error("pdf", f"PDF fetch refused: {reason}", loc or where)
    for msg in o.errors:
        diags.error("pdf", f"{doc.rel}: {msg}", where)
    for msg in o.warnings:
        diags.warning("pdf", f"{doc.rel}: WeasyPrint: {msg}", where)


def write_pdfs(site: Site, project: Path, tx: Sink, diags: Diagnostics, workers: int, strict: bool) -> PdfStats:
    """The build's PDF stage: every report (unless `pdf: false`), every profile, and the book if configured."""
    stats = PdfStats()
    files = produce_pdfs(site, project, diags, workers, None, site.config.pdf.book, stats=stats)
    if diags.failed(strict):
        return stats  # the build raises and its transaction leaves the old output in place
    for rel, data in sorted(files.items()):
        tx.write(rel, data)
    return stats
