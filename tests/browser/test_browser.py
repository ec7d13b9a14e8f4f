"""The built sample site in a real browser: Debian's chromium through Playwright, served on
127.0.0.1 under /repo/. A journey through the site, rendering checks (diagrams, formulas, mobile,
dark mode), accessibility with axe-core, keyboard reach, and screenshots in test-artifacts/."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import quote

import pytest

from browser_harness import ARTIFACTS, SAMPLE_WITH_PDF, launch, requires_chromium, sample_build, screenshot, serve, watch

pytestmark = [pytest.mark.browser, requires_chromium]

AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
HOME = "index.html"
REPORT = "reports/2025-county-hospital-ai/index.html"
"""A report with a table of contents, diagrams and formulas."""
PROFILE = "startups/jinshu-risk/index.html"
COMPARE = "compare/index.html"
SEARCH = "search/index.html?q=" + quote("信贷")
PAGE_TYPES = {
    "home": HOME,
    "report": REPORT,
    "report-en": "reports/2025-sme-credit-risk-en/index.html",
    "profile": PROFILE,
    "profile-en": "startups/stackpilot/index.html",
    "compare": COMPARE,
    "search": SEARCH,
    "report-list": "reports/index.html",
    "startup-list": "startups/index.html",
    "tags": "tags/index.html",
    "tag": "tags/unit-economics/index.html",
    "sectors": "sectors/index.html",
    "sector": "sectors/fintech/index.html",
}
"""404.html is left out: it anchors its links at base_url (GitHub Pages serves it at any depth),
so it is tested under its published address in test_404_page_under_its_published_address."""


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return sample_build(tmp_path_factory)


@pytest.fixture(scope="module")
def site(built):
    """The sample site built by the CLI and served under /repo/; yields its base URL."""
    with serve(built) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch(pw)
        yield b
        b.close()


@pytest.fixture
def open_context(browser, site):
    """open_context(**options) → (context, traffic); every context's traffic must stay clean."""
    made = []

    def make(**options):
        context = browser.new_context(**options)
        traffic = watch(context, origin_of(site))
        made.append((context, traffic))
        return context, traffic

    yield make
    for context, traffic in made:
        context.close()
        assert traffic.problems() == [], traffic.problems()


def origin_of(base: str) -> str:
    return re.match(r"^https?://[^/]+", base).group(0)


def visit(page, base: str, rel: str) -> None:
    page.goto(base + rel)
    page.wait_for_load_state("load")
    if rel.startswith("search/"):
        wait_for_results(page)


def wait_for_results(page) -> None:
    page.wait_for_function("(document.getElementById('search-status') || {}).textContent.match(/\\d|没有|No results/)")


def result_links(page) -> list[str]:
    return page.eval_on_selector_all("#search-results li h2 a", "els => els.map(a => a.getAttribute('href'))")


def test_journey_home_report_profile_search_result(open_context, site):
    context, traffic = open_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    visit(page, site, HOME)
    assert page.title().startswith("AI 创业洞察")
    screenshot(page, "home")

    page.click(".report-card a[href='reports/2025-sme-credit-risk/index.html']")
    page.wait_for_url(site + "reports/2025-sme-credit-risk/index.html")
    assert page.inner_text("h1") == "小微信贷风控中的大模型：金枢风控的单位经济与可解释性"
    page.click(".covered a[href='../../startups/jinshu-risk/index.html']")
    page.wait_for_url(site + PROFILE)
    assert page.inner_text("h1").startswith("金枢风控")

    # The header search box on any page submits to the search page.
    page.fill("#site-search", "信贷")
    page.press("#site-search", "Enter")
    page.wait_for_url(site + "search/index.html?q=" + quote("信贷"))
    wait_for_results(page)
    links = result_links(page)
    assert links[0] == "/repo/reports/2025-sme-credit-risk/index.html" and "/repo/startups/jinshu-risk/index.html" in links
    screenshot(page, "search-zh")

    page.fill("#search-q", "explainability")
    page.press("#search-q", "Enter")
    page.wait_for_function("document.querySelector('#search-results a') && document.querySelector('#search-results a').textContent.startsWith('Large models')")
    assert "q=explainability" in page.url and page.input_value("#site-search") == "explainability"
    assert result_links(page)[0] == "/repo/reports/2025-sme-credit-risk-en/index.html"
    assert page.inner_text("#search-results li:first-child .result-type") == "报告"
    screenshot(page, "search-en")

    page.click("#search-results li:first-child h2 a")
    page.wait_for_url(site + "reports/2025-sme-credit-risk-en/index.html")
    assert page.inner_text("h1").startswith("Large models in small-business credit")
    assert all(u.startswith(origin_of(site)) for u in traffic.requests)
    assert any("/repo/pagefind/pagefind.js" in u for u in traffic.requests)


def test_screenshots_of_each_main_page_type(open_context, site):
    context, _ = open_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    for name, rel in (("report", REPORT), ("profile", PROFILE), ("comparison", COMPARE), ("search-results", SEARCH)):
        visit(page, site, rel)
        path = screenshot(page, name)
        assert path.stat().st_size > 10_000
    assert {p.name for p in ARTIFACTS.glob("*.png")} >= {"report.png", "profile.png", "comparison.png", "search-results.png"}


def boxes(page, selector: str) -> list[dict]:
    return page.eval_on_selector_all(selector, "els => els.map(e => { const r = e.getBoundingClientRect(); return {w: r.width, h: r.height}; })")


def test_diagrams_and_formulas_are_visible(open_context, site):
    context, _ = open_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    for rel in (REPORT, PROFILE, COMPARE):
        visit(page, site, rel)
        diagrams = boxes(page, "figure.diagram svg, .diagram-cell svg")
        assert diagrams, rel
        assert all(b["w"] > 50 and b["h"] > 30 for b in diagrams), (rel, diagrams)
        # Text inside the diagrams is drawn, not clipped to nothing.
        assert all(b["w"] > 0 for b in boxes(page, "figure.diagram svg text")), rel
    visit(page, site, REPORT)
    formulas = boxes(page, "math")
    assert len(formulas) >= 3 and all(b["w"] > 0 and b["h"] > 0 for b in formulas), formulas
    display = boxes(page, "math[display=block]")
    assert display and all(b["w"] > 40 for b in display)


def test_images_and_diagrams_have_text_alternatives(open_context, site):
    context, _ = open_context()
    page = context.new_page()
    named = 0
    for rel in (HOME, REPORT, PROFILE, COMPARE, "reports/2025-sme-credit-risk-en/index.html"):
        visit(page, site, rel)
        missing = page.evaluate(
            """() => {
                const bad = [];
                const nameOf = el => el.getAttribute('aria-label') || (el.getAttribute('aria-labelledby') || '').split(/\\s+/)
                    .map(id => (document.getElementById(id) || {}).textContent || '').join(' ').trim()
                    || (el.querySelector(':scope > title') || {}).textContent || '';
                document.querySelectorAll('img').forEach(i => { if (!i.hasAttribute('alt')) bad.push('img ' + i.src); });
                document.querySelectorAll('svg[role=img], [role=img]').forEach(s => { if (!nameOf(s).trim()) bad.push('unnamed ' + s.outerHTML.slice(0, 80)); });
                document.querySelectorAll('figure.diagram svg, .diagram-cell svg').forEach(s => {
                    if (s.getAttribute('role') !== 'img' || !nameOf(s).trim()) bad.push('diagram ' + s.outerHTML.slice(0, 80));
                });
                document.querySelectorAll('math').forEach(m => { if (!(m.getAttribute('alttext') || '').trim()) bad.push('math ' + m.outerHTML.slice(0, 80)); });
                return bad;
            }"""
        )
        assert missing == [], (rel, missing)
        named += page.locator("figure.diagram svg[role=img], .diagram-cell svg[role=img]").count()
    assert named >= 5


MOBILE_PAGES = [HOME, REPORT, PROFILE, COMPARE, SEARCH, "reports/index.html", "startups/index.html", "tags/index.html", "sectors/fintech/index.html"]


def test_mobile_viewport_has_no_horizontal_scrolling(open_context, site):
    context, _ = open_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = context.new_page()
    for rel in MOBILE_PAGES:
        visit(page, site, rel)
        sizes = page.evaluate("({scroll: document.scrollingElement.scrollWidth, inner: window.innerWidth})")
        assert sizes["inner"] == 390 and sizes["scroll"] <= sizes["inner"], (rel, sizes)
        if rel == REPORT:
            screenshot(page, "report-mobile")


LUMINANCE_JS = """(selectors) => {
    const parse = c => (c.match(/[\\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
        return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
    const bgOf = el => { for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor);
        if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3); } return [255, 255, 255]; };
    return selectors.map(sel => { const el = document.querySelector(sel); if (!el) return {sel, missing: true};
        const fg = lum(parse(getComputedStyle(el).color).slice(0, 3)); const bg = lum(bgOf(el));
        return {sel, bg, ratio: (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05)}; });
}"""


def test_dark_mode_is_readable(open_context, site):
    context, _ = open_context(color_scheme="dark", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    checks = {
        REPORT: ["main p", "main h1", ".prose a, .report a", ".meta", ".toc a", ".site-nav a", "th", "td"],
        PROFILE: ["main h1", ".lead", ".bmc-box h3", ".bmc-box li", "td", ".site-footer p"],
        SEARCH: ["#search-status", ".search-result h2 a", ".excerpt", ".excerpt mark", ".search-filter label", ".result-type"],
    }
    for rel, selectors in checks.items():
        visit(page, site, rel)
        assert page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
        results = page.evaluate(LUMINANCE_JS, selectors)
        assert not [r for r in results if r.get("missing")], results
        body = page.evaluate(LUMINANCE_JS, ["body"])[0]
        assert body["bg"] < 0.05, "dark mode keeps a light page background"
        assert body["ratio"] >= 7, body
        weak = [r for r in results if r["ratio"] < 4.5]
        assert weak == [], (rel, weak)
    screenshot(page, "search-dark")
    visit(page, site, REPORT)
    screenshot(page, "report-dark")


def run_axe(page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async () => { const r = await axe.run(document, {resultTypes: ['violations']});"
        " return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))})); }"
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_or_critical_violations(open_context, site, scheme):
    assert AXE.is_file(), f"{AXE} is missing: run scripts/setup.sh (npm install in tests/browser)"
    context, _ = open_context(color_scheme=scheme, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    found = {}
    for name, rel in PAGE_TYPES.items():
        visit(page, site, rel)
        serious = run_axe(page)
        if serious:
            found[name] = serious
    assert found == {}, json.dumps(found, ensure_ascii=False, indent=1)


def tab_until(page, predicate_js: str, limit: int = 80) -> list[str]:
    """Press Tab until document.activeElement matches; returns what received focus on the way."""
    seen = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        seen.append(page.evaluate("(() => { const a = document.activeElement; return a.id || a.getAttribute('href') || a.tagName; })()"))
        if page.evaluate(predicate_js):
            return seen
    raise AssertionError(f"never reached by Tab: {predicate_js}; focus went {seen}")


def test_keyboard_reaches_search_and_table_of_contents(open_context, site):
    context, _ = open_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    visit(page, site, REPORT)
    first = tab_until(page, "document.activeElement.classList.contains('skip-link')", limit=1)
    assert first == ["#main"]
    assert page.evaluate("getComputedStyle(document.activeElement).left") != "-999px"  # the skip link shows when focused
    tab_until(page, "document.activeElement.id === 'site-search'", limit=12)
    page.keyboard.type("信贷")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/search/index\.html\?q="))
    wait_for_results(page)

    visit(page, site, REPORT)
    tab_until(page, "!!document.activeElement.closest('.toc')")
    target = page.evaluate("document.activeElement.getAttribute('href')")
    page.keyboard.press("Enter")
    assert page.evaluate("decodeURIComponent(location.hash)") == target
    # Skip link: Enter moves focus to the main content.
    visit(page, site, PROFILE)
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"

    # On the search page, the filters are reachable and usable from the keyboard.
    visit(page, site, SEARCH)
    tab_until(page, "document.activeElement.name === 'type'")
    before = len(result_links(page))
    page.keyboard.press("Space")
    page.wait_for_function(f"document.querySelectorAll('#search-results li').length !== {before}")
    assert "type=" in page.url


def test_404_page_under_its_published_address(browser, built):
    """The published host (base_url) is simulated by routing its URLs to the built files."""
    import yaml

    out = built
    base_url = yaml.safe_load((out.parent / "site" / "sitegen.yaml").read_text(encoding="utf-8"))["base_url"]
    context = browser.new_context(color_scheme="dark")
    traffic = watch(context, origin_of(base_url))

    def published(route) -> None:
        rel = route.request.url[len(base_url):].split("?")[0].split("#")[0]
        path = out / (rel or "index.html")
        if rel and path.is_file():
            route.fulfill(path=str(path))
        else:  # what GitHub Pages does for a missing URL
            route.fulfill(status=404, path=str(out / "404.html"), headers={"Content-Type": "text/html; charset=utf-8"})

    context.route(base_url + "**", published)
    page = context.new_page()
    response = page.goto(base_url + "no/such/deep/page.html")
    assert response.status == 404
    page.wait_for_load_state("load")
    assert page.inner_text("h1") == "页面不存在"
    assert page.evaluate("getComputedStyle(document.querySelector('.site-header')).borderBottomStyle") == "solid"  # CSS loaded
    page.click("main a")
    page.wait_for_url(base_url + "index.html")
    page.go_back()
    assert AXE.is_file(), f"{AXE} is missing: run scripts/setup.sh (npm install in tests/browser)"
    assert run_axe(page) == []
    # The page itself answered 404 (expected); nothing else failed and no other host was asked.
    assert [f for f in traffic.failed if "no/such/deep" not in f] == []
    assert traffic.foreign == [] and traffic.page_errors == []
    assert [c for c in traffic.console if "no/such/deep" not in c and "404" not in c] == []
    context.close()


def test_pdf_links_resolve_when_pdfs_are_built(open_context, site, built):
    context, _ = open_context()
    page = context.new_page()
    links = []
    for rel in (REPORT, PROFILE):
        visit(page, site, rel)
        links += page.eval_on_selector_all("a.pdf-link", "els => els.map(a => a.href)")
    if not SAMPLE_WITH_PDF:
        # Without --pdf no page links to a PDF that does not exist.
        assert links == [] and not (built / "pdf").exists()
        return
    assert len(links) == 2
    for url in links:
        response = page.request.get(url)
        assert response.status == 200 and response.headers["content-type"] == "application/pdf", url
        assert response.body().startswith(b"%PDF-")
