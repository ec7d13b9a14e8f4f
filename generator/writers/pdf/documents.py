"""Print documents: the print HTML of every report, profile and the book, through the site's Jinja environment.

`PrintTools` rewrites content HTML for paper (SVG variants of jobs, images rooted at content/, links
made absolute or kept inside the book); `collect_documents` renders `templates/print/` with the
shared page context of templates.py. Pure: no WeasyPrint here.
"""

from __future__ import annotations

import hashlib
import html as htmllib
import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urljoin

from markupsafe import Markup

from ...diagnostics import Diagnostics, Location
from ...markdown import fill_jobs
from ...markdown.urls import url_scheme
from ...models import ParsedMarkdown
from ...pages import Site
from ...templates import page_context, site_environment, template_error, template_path

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
        doc.template = template_path(loaded.filename or template, project)
        doc.html = loaded.render(ctx)
    except (jinja2.TemplateError, KeyError, TypeError, AttributeError, ValueError) as exc:
        diags.add(template_error(exc, project))
