"""Renders the assembled site's pages through Jinja into bytes, and gathers static files."""

from __future__ import annotations

import fnmatch
import multiprocessing
import posixpath
import re
from pathlib import Path
from urllib.parse import quote, unquote
from typing import Any, Callable

import jinja2
from jinja2 import meta
from markupsafe import Markup

from ..diagnostics import Diagnostic, Location
from ..content import media_output_path
from ..markdown import fill_jobs, urls
from ..markdown.highlight import pygments_css
from ..models import ParsedMarkdown
from ..pages import Page, Site, relative_url
from ..paths import collect_tree
from ..templates import page_context, site_environment, template_error, theme_dir


_IMG_SRC = re.compile(r'(<img src=")([^"]*)(")')


def rewrite_media(html: str, source: str, page_path: str) -> str:
    """Image paths are written relative to the Markdown file; point them at the published copy."""
    if not source or "<img" not in html:
        return html

    def sub(m: re.Match) -> str:
        src = m.group(2)
        if urls.url_scheme(src) is not None or src.startswith(("/", "#")):
            return m.group(0)
        path, sep, rest = src.partition("#")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(source), unquote(path)))
        if not resolved.startswith("content/"):
            return m.group(0)
        target = quote(media_output_path(resolved))
        return m.group(1) + relative_url(page_path, target) + sep + rest + m.group(3)

    return _IMG_SRC.sub(sub, html)


def screen_helpers(site: Site, page: Page) -> dict[str, Any]:
    """The site templates' helpers, bound to this page's location (the rest is `templates.page_context`)."""

    def url(target: str) -> str:
        return relative_url(page.path, target)

    def body(parsed: ParsedMarkdown | None) -> Markup:
        if not parsed:
            return Markup("")
        return Markup(rewrite_media(fill_jobs(parsed.html, site.results), parsed.path, page.path))

    def job(key: str | None) -> Markup:
        res = site.results.get(key) if key else None
        return Markup(res.html) if res else Markup("")

    return {
        "page": page,
        "url": url,
        "body": body,
        "job": job,
        "canonical": (site.config.base_url + page.path.removesuffix("index.html")) if site.config.base_url else "",
        "pdf_links": site.pdf_links,
    }


def render_pages(
    site: Site,
    project: Path,
    pages: list[Page] | None = None,
    extra: dict | None = None,
    on_page: Callable[[Page], None] | None = None,
    workers: int = 1,
) -> tuple[dict[str, bytes], list[Diagnostic], dict[str, set[str]]]:
    """Render pages to bytes; template errors are located at `templates/x.html:line`."""
    todo = list(pages if pages is not None else site.pages)
    if workers > 1 and len(todo) >= 200 and "fork" in multiprocessing.get_all_start_methods():
        return _render_parallel(site, project, todo, extra, on_page, workers)
    return _render_serial(site, project, todo, extra, on_page)


def _render_serial(site, project, pages, extra, on_page):
    env = site_environment(project, site.config)
    strings = env.globals["strings"]
    out: dict[str, bytes] = {}
    diags: list[Diagnostic] = []
    used_templates: dict[str, set[str]] = {}
    # Kept on the (reused) environment: what each template includes only changes with the templates.
    deps: dict[str, set[str]] = env.__dict__.setdefault("_sitegen_template_deps", {})
    for page in pages:
        try:
            template = env.get_template(page.template)
            html = template.render(page_context(site, page.lang, strings, screen_helpers(site, page), page.context, extra))
        except (jinja2.TemplateError, KeyError, TypeError, AttributeError, ValueError) as exc:
            diag = template_error(exc, project)
            if diag not in diags:
                diags.append(diag)
            continue
        out[page.path] = html.encode("utf-8")
        if page.template not in deps:
            deps[page.template] = _templates_of(env, page.template)
        used_templates[page.path] = deps[page.template]
        if on_page:
            on_page(page)
    return out, diags, used_templates


def _render_parallel(site, project, pages, extra, on_page, workers):
    """Jinja is CPU-bound: forked workers inherit the assembled site, so nothing big is pickled in."""
    from ..workers import fork_map

    parts = fork_map(lambda i: _render_serial(site, project, pages[i::workers], extra, None), range(workers), workers)
    out: dict[str, bytes] = {}
    diags: list[Diagnostic] = []
    used: dict[str, set[str]] = {}
    for files, problems, templates in parts:
        out.update(files)
        diags.extend(d for d in problems if d not in diags)
        used.update(templates)
    ordered = {p.path: out[p.path] for p in pages if p.path in out}
    if on_page:
        for p in pages:
            if p.path in ordered:
                on_page(p)
    return ordered, diags, used


def _templates_of(env: jinja2.Environment, name: str) -> set[str]:
    """The template and everything it extends, includes or imports (for incremental builds)."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        try:
            source = env.loader.get_source(env, n)[0]  # type: ignore[union-attr]
        except jinja2.TemplateNotFound:
            continue
        todo.extend(t for t in meta.find_referenced_templates(env.parse(source)) if t)
    return seen


def collect_static(project: Path, assets: dict[str, Path]) -> dict[str, Path | bytes]:
    """Theme static files (overridable by the project's templates/static) and content assets."""
    files: dict[str, Path | bytes] = {}
    # The content rules (links out of the project, hidden and secret names) are reported when the
    # site loads (`templates.collect_template_problems`); here such files are simply never copied.
    for root, base in ((theme_dir(), theme_dir() / "static"), (project, project / "templates" / "static")):
        for p in collect_tree(base, root):
            files["static/" + p.relative_to(base).as_posix()] = p
    files["static/pygments.css"] = pygments_css().encode("utf-8")
    files.update(assets)
    return files


# --- SVG files from the project ---------------------------------------------------------------


def sanitise_svg_files(project: Path, statics: dict[str, Path | bytes], as_is: list[str]) -> tuple[dict[str, Path | bytes], list[Diagnostic]]:
    """The project's SVG files (content and templates/static) held to the diagram allowlist.

    An SVG opened at its URL is a document on the site's origin: its scripts run there. A file with
    nothing to remove is published unchanged; one that cannot be read as SVG is not published.
    The built-in theme's files are ours and are copied as they are, as are the files in `as_is`.
    """
    out = dict(statics)
    problems: list[Diagnostic] = []
    for target, src in statics.items():
        if isinstance(src, bytes) or src.suffix.lower() != ".svg":
            continue
        try:
            rel = src.relative_to(project).as_posix()
        except ValueError:
            continue
        if any(fnmatch.fnmatchcase(rel, pattern) for pattern in as_is):
            continue
        from ..services.diagrams import sanitize_svg_file

        data = src.read_bytes()
        clean, removed, where = sanitize_svg_file(data)
        if clean is None:
            del out[target]
            problems.append(Diagnostic("warning", "svg", f"not published: {removed[0]}", Location(rel, *(where or ()))))
        elif clean is not data:
            out[target] = clean
            problems.append(Diagnostic("warning", "svg", f"removed from the published copy: {', '.join(removed)} "
                                       "(list the file under assets.svg_as_is in sitegen.yaml to publish it unchanged)", Location(rel)))
    return out, problems
