"""Everything that needs to see other pages: listings, tags, sectors, comparison, prev/next."""

from __future__ import annotations

import datetime as dt
import posixpath
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from .config import SiteConfig
from .content import Content
from .markdown import slugify_heading
from .models import SECTORS, JobResult, Profile, Report


@dataclass
class Page:
    """One output file rendered from a template."""

    path: str
    """Output-relative path, always a file (`reports/x/index.html`) so links work from file://."""
    template: str
    title: str
    lang: str
    kind: str
    context: dict[str, Any] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    """Project-relative content files the page shows (for incremental builds)."""
    in_sitemap: bool = True


@dataclass
class Tag:
    slug: str
    name: str
    reports: list[Report] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"tags/{self.slug}/index.html"


@dataclass
class Sector:
    key: str
    names: tuple[str, str]
    profiles: list[Profile] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"sectors/{self.key}/index.html"

    def name(self, lang: str) -> str:
        return self.names[0] if lang == "zh" else self.names[1]


@dataclass(frozen=True)
class Site:
    """The assembled site: what templates and writers see (frozen: the stages after assembly only read it)."""

    config: SiteConfig
    reports: list[Report]
    profiles: list[Profile]
    tags: list[Tag]
    sectors: list[Sector]
    pages: list[Page]
    results: dict[str, JobResult] = field(default_factory=dict)
    profile_diagrams: dict[str, dict[str, str]] = field(default_factory=dict)
    """Profile slug → diagram kind → job key."""
    pdf_links: bool = False
    """True when the build also writes PDFs, so pages link to them."""

    def profile(self, slug: str) -> Profile | None:
        return next((p for p in self.profiles if p.slug == slug), None)


def relative_url(from_path: str, to_path: str) -> str:
    """Relative link between two output files; works from file://, a sub-path or a domain root."""
    to, _, frag = to_path.partition("#")
    base = posixpath.dirname(from_path) or "."
    rel = posixpath.relpath(to or from_path, base)
    return rel + (f"#{frag}" if frag else "")


def _date_key(r: Report) -> tuple:
    return (r.meta.date or dt.date.min, r.meta.title)


def _tag_slug(name: str) -> str:
    return slugify_heading(unicodedata.normalize("NFKC", name))


def collect_tags(reports: list[Report]) -> list[Tag]:
    """Tags from keywords and tags; `Blog` and `blog` are one tag (case-folded slugs)."""
    tags: dict[str, Tag] = {}
    for r in reports:
        for name in dict.fromkeys(list(r.meta.keywords) + list(r.meta.tags)):
            slug = _tag_slug(name)
            tag = tags.setdefault(slug, Tag(slug, name))
            # Identity, not ==: dataclass equality compares whole reports (quadratic on big sites).
            if not tag.reports or tag.reports[-1] is not r:
                tag.reports.append(r)
    return sorted(tags.values(), key=lambda t: (-len(t.reports), t.slug))


def collect_sectors(profiles: list[Profile], reports: list[Report]) -> list[Sector]:
    sectors: dict[str, Sector] = {}
    by_slug = {p.slug: p for p in profiles}
    for p in profiles:
        for key in p.data.sectors:
            s = sectors.setdefault(key, Sector(key, SECTORS[key]))
            s.profiles.append(p)
    for r in reports:
        for slug in r.meta.startups:
            p = by_slug.get(slug)
            for key in p.data.sectors if p else []:
                listed = sectors[key].reports
                if not any(o is r for o in listed[-len(r.meta.startups):]):
                    listed.append(r)
    return sorted(sectors.values(), key=lambda s: s.key)


def assemble_site(config: SiteConfig, content: Content, results: dict[str, JobResult] | None = None,
                  profile_diagrams: dict[str, dict[str, str]] | None = None, pdf_links: bool = False) -> Site:
    """Listings, tags, sectors, prev/next and the list of pages to render, with the resolved jobs."""
    reports = sorted((r for r in content.reports if r.published), key=_date_key, reverse=True)
    profiles = sorted(content.profiles.values(), key=lambda p: p.data.name.casefold())
    tags = collect_tags(reports)
    sectors = collect_sectors(profiles, reports)
    lang = config.language
    site = Site(config, reports, profiles, tags, sectors, [], dict(results or {}), dict(profile_diagrams or {}), pdf_links)
    pages = site.pages
    covering: dict[str, list[Report]] = {p.slug: [] for p in profiles}
    for r in reports:
        for slug in r.meta.startups:
            covering.setdefault(slug, []).append(r)
    all_sources = [r.path for r in reports]
    profile_sources = [p.path for p in profiles]
    # Lookups by slug keep assembly linear: 1000 reports must not mean a million comparisons.
    profile_by_slug = {p.slug: p for p in profiles}
    position = {id(r): i for i, r in enumerate(reports)}
    by_slug: dict[str, list[Report]] = {}
    translated: dict[str, list[Report]] = {}
    for o in reports:
        by_slug.setdefault(o.slug, []).append(o)
        if o.meta.translation_of:
            translated.setdefault(o.meta.translation_of, []).append(o)

    pages.append(Page("index.html", "home.html", config.title, lang, "home", {}, all_sources + profile_sources))
    pages.append(Page("reports/index.html", "report_list.html", "reports", lang, "report-list", {}, all_sources))
    for i, r in enumerate(reports):
        newer = reports[i - 1] if i > 0 else None
        older = reports[i + 1] if i + 1 < len(reports) else None
        covered = [profile_by_slug[s] for s in r.meta.startups if s in profile_by_slug]
        linked = translated.get(r.slug, []) + (by_slug.get(r.meta.translation_of, []) if r.meta.translation_of else [])
        translations = sorted({id(o): o for o in linked}.values(), key=lambda o: position[id(o)])
        pages.append(
            Page(
                r.url,
                "report.html",
                r.meta.title,
                r.lang,
                "report",
                {"report": r, "newer": newer, "older": older, "startups": covered, "translations": translations},
                [r.path] + [p.path for p in covered] + [o.path for o in (newer, older) if o],
            )
        )
    pages.append(Page("startups/index.html", "startups.html", "startups", lang, "startup-list", {}, profile_sources))
    for p in profiles:
        drafts = [d.path for d in p.drafts.values()]
        pages.append(
            Page(
                p.url,
                "startup.html",
                p.data.name,
                p.data.lang or lang,
                "startup",
                {"profile": p, "reports": covering.get(p.slug, [])},
                [p.path] + drafts + [r.path for r in covering.get(p.slug, [])],
            )
        )
    pages.append(Page("compare/index.html", "compare.html", "compare", lang, "compare", {}, profile_sources))
    pages.append(Page("tags/index.html", "tags.html", "tags", lang, "tag-list", {}, all_sources))
    for t in tags:
        pages.append(Page(t.url, "tag.html", t.name, lang, "tag", {"tag": t}, [r.path for r in t.reports]))
    # The sector list counts reports too: a report that starts or stops covering a start-up changes it.
    pages.append(Page("sectors/index.html", "sectors.html", "sectors", lang, "sector-list", {}, profile_sources + all_sources))
    for s in sectors:
        pages.append(Page(s.url, "sector.html", s.name(lang), lang, "sector", {"sector": s}, [p.path for p in s.profiles] + [r.path for r in s.reports]))
    pages.append(Page("search/index.html", "search.html", "search", lang, "search", {}, [], in_sitemap=False))
    pages.append(Page("404.html", "404.html", "404", lang, "404", {}, [], in_sitemap=False))
    pages.append(Page("sitemap.xml", "sitemap.xml", "sitemap", lang, "sitemap", {}, all_sources + profile_sources, in_sitemap=False))
    pages.append(Page("feed.xml", "feed.xml", "feed", lang, "feed", {}, all_sources, in_sitemap=False))
    pages.append(Page("robots.txt", "robots.txt", "robots", lang, "robots", {}, [], in_sitemap=False))
    return site
