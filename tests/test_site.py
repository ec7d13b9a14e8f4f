"""End-to-end over the sample site: every page type is built, every internal link resolves."""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from conftest import REPO


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[str] = []
        self.ids: set[str] = set()
        self.lang: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang")
        if "id" in a:
            self.ids.add(a["id"])
        for key in ("href", "src"):
            if a.get(key) and not (tag == "a" and key == "href" and a.get("rel") == "noopener nofollow"):
                self.refs.append(a[key])


@pytest.fixture(scope="module")
def sample_site(tmp_path_factory) -> Path:
    """The repository's own sample site, built once into a temp folder."""
    from generator.build import BuildOptions, build

    project = tmp_path_factory.mktemp("sample") / "site"
    shutil.copytree(REPO, project, ignore=shutil.ignore_patterns(".venv", "output*", ".sitegen-cache", ".git", "tests", "benchmarks", "*.egg-info", "__pycache__", "node_modules"))
    build(project, BuildOptions())
    return project / "output"


def parse(path: Path) -> Links:
    p = Links()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def test_every_page_type_exists(sample_site):
    out = sample_site
    for rel in ["index.html", "reports/index.html", "startups/index.html", "compare/index.html", "tags/index.html",
                "sectors/index.html", "search/index.html", "404.html", "sitemap.xml", "feed.xml", "robots.txt"]:
        assert (out / rel).is_file(), rel
    reports = list((out / "reports").glob("*/index.html"))
    startups = list((out / "startups").glob("*/index.html"))
    assert len(reports) >= 4 and len(startups) >= 6
    assert list((out / "tags").glob("*/index.html")) and list((out / "sectors").glob("*/index.html"))


def test_sample_pages_show_their_features(sample_site):
    report = (sample_site / "reports/2025-county-hospital-ai/index.html").read_text()
    for needle in ['class="toc"', 'class="abstract-box"', "<svg", "<math", 'class="highlight"', 'class="prev-next"', 'rel="prev"', "lingxi-health"]:
        assert needle in report, needle
    profile = (sample_site / "startups/lingxi-health/index.html").read_text()
    for needle in ['class="bmc"', "bmc-vp", "<table>", "risk-matrix", "draft-placeholder", "<svg", "示例（虚构企业）"]:
        assert needle in profile, needle
    assert profile.count('class="diagram-cell') >= 5


def test_every_internal_link_and_anchor_resolves(sample_site):
    broken = []
    for page in sample_site.rglob("*.html"):
        parsed = parse(page)
        for ref in parsed.refs:
            parts = urlsplit(ref)
            if parts.scheme or ref.startswith("//") or ref.startswith("mailto:"):
                assert parts.scheme in ("http", "https", "mailto"), (page, ref)
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if not target.is_relative_to(sample_site.resolve()):
                broken.append((page, ref, "outside"))
                continue
            if target.is_dir():
                broken.append((page, ref, "directory link (breaks file://)"))
                continue
            if not target.is_file():
                if "pagefind" in ref or ref.startswith("pdf/") or "/pdf/" in ref:
                    continue  # search and PDFs are optional build steps
                broken.append((page, ref, "missing"))
                continue
            if parts.fragment and target.suffix == ".html":
                if unquote(parts.fragment) not in parse(target).ids:
                    broken.append((page, ref, "anchor"))
    assert broken == []


def test_no_request_to_an_external_host(sample_site):
    for page in sample_site.rglob("*.html"):
        text = page.read_text()
        for m in re.finditer(r'<(script|link|img|iframe|source|video|audio)\b([^>]*)>', text):
            attrs = m.group(2)
            if m.group(1) == "link" and ('rel="canonical"' in attrs or 'rel="alternate"' in attrs):
                continue  # metadata, never fetched by the browser
            assert not re.search(r'(?:src|href)="(?:https?:)?//', attrs), f"{page}: {m.group(0)}"


def test_page_lang_follows_the_report(sample_site):
    en = [p for p in (sample_site / "reports").glob("*/index.html") if 'lang="en"' in p.read_text()[:200]]
    zh = [p for p in (sample_site / "reports").glob("*/index.html") if 'lang="zh-CN"' in p.read_text()[:200]]
    assert en and zh


def test_sitemap_and_feed_use_base_url_and_are_xml(sample_site):
    import xml.etree.ElementTree as ET

    sitemap = ET.parse(sample_site / "sitemap.xml").getroot()
    locs = [e.text for e in sitemap.iter("{http://www.sitemaps.org/schemas/sitemap/0.9}loc")]
    assert locs and all(loc.startswith("https://example.github.io/sitegen/") for loc in locs)
    feed = ET.parse(sample_site / "feed.xml").getroot()
    assert len(feed.findall("{http://www.w3.org/2005/Atom}entry")) >= 4
    assert "Sitemap: https://example.github.io/sitegen/sitemap.xml" in (sample_site / "robots.txt").read_text()


def test_interface_strings_follow_the_site_language(cli, make_project):
    project = make_project()
    assert cli("-C", str(project), "build").exit_code == 0
    assert ">Reports<" in (project / "output/index.html").read_text()
    (project / "sitegen.yaml").write_text((project / "sitegen.yaml").read_text().replace("language: en", "language: zh"))
    assert cli("-C", str(project), "build").exit_code == 0
    assert ">报告<" in (project / "output/index.html").read_text()
