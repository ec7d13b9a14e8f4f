"""Renders the assembled site's pages through Jinja into bytes, and gathers static files."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import jinja2
from markupsafe import Markup

from ..diagnostics import Diagnostic
from ..markdown import fill_jobs
from ..markdown.highlight import pygments_css
from ..models import SECTORS, ParsedMarkdown
from ..pages import Page, Site, relative_url
from ..templates import make_environment, template_error, theme_dir


def page_context(site: Site, page: Page, strings: dict, extra: dict | None = None) -> dict[str, Any]:
    """What every template sees: the page, the site, and helpers bound to this page's location."""
    lang = page.lang

    def url(target: str) -> str:
        return relative_url(page.path, target)

    def t(key: str) -> str:
        entry = strings.get(key)
        if entry is None:
            raise KeyError(f"interface string '{key}' is not defined in i18n.yaml")
        return entry.get(lang) or entry.get("en") or key

    def body(parsed: ParsedMarkdown | None) -> Markup:
        return Markup(fill_jobs(parsed.html, site.results)) if parsed else Markup("")

    def job(key: str | None) -> Markup:
        res = site.results.get(key) if key else None
        return Markup(res.html) if res else Markup("")

    def sector_name(key: str) -> str:
        names = SECTORS.get(key, (key, key))
        return names[0] if lang == "zh" else names[1]

    ctx = {
        "site": site,
        "config": site.config,
        "page": page,
        "lang": lang,
        "url": url,
        "t": t,
        "body": body,
        "job": job,
        "sector_name": sector_name,
        "canonical": (site.config.base_url + page.path.removesuffix("index.html")) if site.config.base_url else "",
        "pdf_links": site.pdf_links,
    }
    ctx.update(page.context)
    if extra:
        ctx.update(extra)
    return ctx


def render_pages(
    site: Site,
    project: Path,
    pages: list[Page] | None = None,
    extra: dict | None = None,
    on_page: Callable[[Page], None] | None = None,
) -> tuple[dict[str, bytes], list[Diagnostic], dict[str, set[str]]]:
    """Render pages to bytes; template errors are located at `templates/x.html:line`."""
    env = make_environment(project)
    strings = env.globals["strings"]
    out: dict[str, bytes] = {}
    diags: list[Diagnostic] = []
    used_templates: dict[str, set[str]] = {}
    for page in pages if pages is not None else site.pages:
        try:
            template = env.get_template(page.template)
            html = template.render(page_context(site, page, strings, extra))
        except (jinja2.TemplateError, KeyError, TypeError, AttributeError, ValueError) as exc:
            diag = template_error(exc, project)
            if diag not in diags:
                diags.append(diag)
            continue
        out[page.path] = html.encode("utf-8")
        used_templates[page.path] = _templates_of(env, page.template)
        if on_page:
            on_page(page)
    return out, diags, used_templates


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
        from jinja2 import meta

        todo.extend(t for t in meta.find_referenced_templates(env.parse(source)) if t)
    return seen


def collect_static(project: Path, assets: dict[str, Path]) -> dict[str, Path | bytes]:
    """Theme static files (overridable by the project's templates/static) and content assets."""
    files: dict[str, Path | bytes] = {}
    for base in (theme_dir() / "static", project / "templates" / "static"):
        if base.is_dir():
            for p in sorted(base.rglob("*")):
                if p.is_file() and not p.name.startswith("."):
                    files["static/" + p.relative_to(base).as_posix()] = p
    files["static/pygments.css"] = pygments_css().encode("utf-8")
    files.update(assets)
    return files
