"""Search (writers/search.py): the Pagefind index as a build step, and concrete hits in a real browser."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import stat
from pathlib import Path
from urllib.parse import quote

import pytest

from browser_harness import build_with_cli, launch, requires_chromium, sample_build, serve, watch
from conftest import BASIC_PROFILE, run_sitegen, tree_hash
from generator.build import BuildOptions, build
from generator.writers import search as search_writer
from generator.writers.search import MISSING, RECORD

UNREVIEWED = "Zanzibar unreviewed sentence from the model"
REVIEWED = "Quokka reviewed sentence kept by an editor"
HOSTILE = "<img src=x onerror=alert(1)>"


def fragments(out: Path) -> list[dict]:
    """Pagefind's per-page records: gzip, a `pagefind_dcd` signature, then JSON."""
    found = []
    for path in sorted((out / "pagefind" / "fragment").glob("*.pf_fragment")):
        raw = gzip.decompress(path.read_bytes())
        assert raw.startswith(b"pagefind_dcd")
        record = json.loads(raw[len(b"pagefind_dcd"):])
        # A segmented (Chinese) index marks word breaks with zero-width spaces; the browser drops them.
        record["content"] = record["content"].replace("\u200b", "")
        found.append(record)
    return found


def by_url(out: Path) -> dict[str, dict]:
    return {f["url"]: f for f in fragments(out)}


def draft(section: str, status: str, text: str) -> str:
    return f"---\nsection: {section}\nstartup: acme\nstatus: {status}\nmodel: gpt2\ncreated: '2024-05-01T00:00:00'\n---\n\n{text}\n"


def bundle_files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "pagefind").rglob("*")) if p.is_file()}


def test_index_holds_reports_and_profiles_with_filters(cli, make_project):
    project = make_project({
        "content/reports/second.md": "---\ntitle: Zweiter\nlang: zh\ndate: 2024-06-01\ntags: [hidden-tag]\nkeywords: [信贷]\nstartups: [acme]\n---\n\n小微企业信贷风控的单位经济。\n",
    })
    res = cli("-C", str(project), "build")
    assert res.exit_code == 0, res.stderr
    out = project / "output"
    assert (out / "pagefind" / "pagefind.js").is_file()
    entry = json.loads((out / "pagefind" / "pagefind-entry.json").read_text())
    # One index for every language (a page in Chinese makes it a Chinese index), only content pages.
    assert list(entry["languages"]) == ["zh-cn"] and entry["languages"]["zh-cn"]["page_count"] == 3
    pages = by_url(out)
    assert set(pages) == {"/reports/first/index.html", "/reports/second/index.html", "/startups/acme/index.html"}
    first = pages["/reports/first/index.html"]
    assert first["meta"]["title"] == "First report" and first["meta"]["type"] == "report"
    assert first["filters"]["type"] == ["report"] and first["filters"]["language"] == ["en"]
    assert sorted(first["filters"]["tag"]) == ["AI", "payments"]
    assert first["filters"]["sector"] == ["Fintech"]  # from the start-up it covers, in the site's language
    assert "Hello world" in first["content"]
    second = pages["/reports/second/index.html"]
    assert second["filters"]["language"] == ["zh"] and sorted(second["filters"]["tag"]) == ["hidden-tag", "信贷"]
    acme = pages["/startups/acme/index.html"]
    assert acme["filters"]["type"] == ["startup"] and acme["filters"]["sector"] == ["Fintech"] and acme["meta"]["type"] == "startup"
    # Links to other pages are not indexed text of this page (prev/next, covered start-ups).
    assert "Zweiter" not in first["content"] and "Tests everything" not in first["content"]


def test_bundle_is_in_the_manifest(cli, make_project):
    project = make_project()
    assert cli("-C", str(project), "build").exit_code == 0
    out = project / "output"
    manifest = json.loads((out / "sitegen-manifest.json").read_text())["files"]
    files = bundle_files(out)
    assert "pagefind/pagefind.js" in files and RECORD in files and len(files) > 8
    for rel, data in files.items():
        assert manifest.get(rel) == hashlib.sha256(data).hexdigest(), rel


def test_unreviewed_drafts_are_not_indexed_unless_configured(cli, make_project):
    profile = BASIC_PROFILE + "drafts: [summary, market_outlook]\n"
    files = {
        "content/startups/acme.yaml": profile,
        "content/drafts/acme/summary.md": draft("summary", "draft", UNREVIEWED),
        "content/drafts/acme/market_outlook.md": draft("market_outlook", "reviewed", REVIEWED),
    }
    project = make_project(files)
    assert cli("-C", str(project), "build").exit_code == 0
    text = by_url(project / "output")["/startups/acme/index.html"]["content"]
    assert REVIEWED in text and "Zanzibar" not in text
    # The page still shows the draft (marked as such); only the index leaves it out.
    assert UNREVIEWED in (project / "output/startups/acme/index.html").read_text()

    opted = make_project(files | {"sitegen.yaml": "title: T\nlanguage: en\ndraft:\n  index_unreviewed: true\n"}, name="opted")
    assert cli("-C", str(opted), "build").exit_code == 0
    assert UNREVIEWED in by_url(opted / "output")["/startups/acme/index.html"]["content"]


def test_unchanged_site_keeps_the_bundle_byte_for_byte(cli, make_project, monkeypatch):
    project = make_project()
    out = project / "output"
    assert cli("-C", str(project), "build").exit_code == 0
    before = bundle_files(out)
    inode = (out / "pagefind/pagefind-entry.json").stat().st_ino

    def must_not_run(*args):
        raise AssertionError("pagefind ran although no page changed")

    with monkeypatch.context() as m:
        m.setattr(search_writer, "pagefind_command", must_not_run)
        result = build(project, BuildOptions())  # a full build (the CLI may skip an unchanged project)
    assert "search" in result.timings and result.stats.pages >= 10
    assert bundle_files(out) == before
    assert (out / "pagefind/pagefind-entry.json").stat().st_ino == inode  # linked, not rewritten

    report = project / "content/reports/first.md"
    report.write_text(report.read_text() + "\nA brand new word: marmoset.\n")
    assert cli("-C", str(project), "build").exit_code == 0
    assert "marmoset" in by_url(out)["/reports/first/index.html"]["content"]
    assert set(bundle_files(out)) != set(before)
    assert not [p for p in out.parent.iterdir() if ".tmp-" in p.name]


def test_tampered_bundle_is_rebuilt_not_kept(cli, make_project):
    project = make_project()
    out = project / "output"
    assert cli("-C", str(project), "build").exit_code == 0
    entry = out / "pagefind/pagefind-entry.json"
    os.unlink(entry)  # break the hard link before editing, as an editor would
    entry.write_bytes(b"{}")
    build(project, BuildOptions())  # the API always builds (the CLI may skip an unchanged project)
    index = json.loads(entry.read_text())["languages"]["en"]
    assert (out / f"pagefind/pagefind.{index['hash']}.pf_meta").is_file() and len(fragments(out)) == 2


def test_planted_link_in_the_old_bundle_is_never_copied(cli, make_project, tmp_path):
    project = make_project()
    out = project / "output"
    assert cli("-C", str(project), "build").exit_code == 0
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY")
    record = json.loads((out / RECORD).read_text())
    victim = sorted(record["files"])[0]
    (out / victim).unlink()
    (out / victim).symlink_to(secret)
    record["files"][victim] = hashlib.sha256(secret.read_bytes()).hexdigest()
    (out / RECORD).write_text(json.dumps(record))
    build(project, BuildOptions())
    assert not any(p.is_symlink() for p in out.rglob("*"))
    assert not [p for p in out.rglob("*") if p.is_file() and b"PRIVATE KEY" in p.read_bytes()]


def test_search_disabled_builds_no_index(cli, make_project):
    project = make_project({"sitegen.yaml": "title: T\nlanguage: en\nsearch:\n  enabled: false\n"})
    res = cli("-C", str(project), "build")
    assert res.exit_code == 0 and "[search]" not in res.stderr
    out = project / "output"
    assert not (out / "pagefind").exists()
    page = (out / "search/index.html").read_text()
    assert 'data-enabled="false"' in page and "The search index has not been built." in page


def test_english_only_site_gets_an_english_index(cli, make_project):
    project = make_project()
    assert cli("-C", str(project), "build").exit_code == 0
    assert list(json.loads((project / "output/pagefind/pagefind-entry.json").read_text())["languages"]) == ["en"]


def test_index_language_is_validated_with_location(cli, make_project):
    project = make_project({"sitegen.yaml": "title: T\nsearch:\n  language: Chinese!\n"})
    res = cli("-C", str(project), "build")
    assert res.exit_code == 1
    assert "sitegen.yaml:3:13: error" in res.stderr and "search.language" in res.stderr
    assert "must be 'auto' or a lower-case language code" in res.stderr


def _hide_pagefind(tmp_path: Path, fake_binary: str | None = None) -> dict[str, str]:
    """An environment where the pip-installed Pagefind cannot be imported (and optionally a fake one on PATH)."""
    shadow = tmp_path / "shadow"
    for module in ("pagefind_bin_extended", "pagefind_bin"):
        (shadow / module).mkdir(parents=True)
        (shadow / module / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    if fake_binary is not None:
        fake = bindir / "pagefind_extended"
        fake.write_text(fake_binary)
        fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return {"PYTHONPATH": str(shadow), "PATH": f"{bindir}:/usr/bin:/bin"}


def test_missing_pagefind_is_a_warning_not_a_crash(make_project, tmp_path):
    project = make_project()
    res = run_sitegen("-C", str(project), "build", env=_hide_pagefind(tmp_path))
    assert res.returncode == 0, res.stderr
    assert f"warning[search]: {MISSING}" in res.stderr
    assert "search skipped: pagefind not installed (pip install 'pagefind[extended]')" in res.stderr
    assert "Traceback" not in res.stderr
    out = project / "output"
    assert (out / "reports/first/index.html").is_file() and not (out / "pagefind").exists()


def test_failing_pagefind_keeps_the_previous_output(cli, make_project, tmp_path):
    project = make_project()
    assert cli("-C", str(project), "build").exit_code == 0
    before = tree_hash(project / "output")
    (project / "content/reports/first.md").write_text((project / "content/reports/first.md").read_text() + "\nchanged\n")
    env = _hide_pagefind(tmp_path, "#!/bin/sh\necho 'Error: the index exploded' >&2\nexit 3\n")
    res = run_sitegen("-C", str(project), "build", env=env)
    assert res.returncode == 2, res.stderr
    assert "pagefind failed (exit 3); the previous output is kept: Error: the index exploded" in res.stderr
    assert "Traceback" not in res.stderr
    assert tree_hash(project / "output") == before


def test_caller_pagefind_variables_do_not_change_the_index(make_project, tmp_path):
    project = make_project()
    res = run_sitegen("-C", str(project), "build", env={"PAGEFIND_OUTPUT_SUBDIR": "elsewhere", "PAGEFIND_GLOB": "nothing/*.html"})
    assert res.returncode == 0, res.stderr
    assert len(fragments(project / "output")) == 2 and not (project / "output/elsewhere").exists()


# --- concrete hits in a real browser ---------------------------------------------------------


@pytest.fixture(scope="module")
def sample_output(tmp_path_factory) -> Path:
    return sample_build(tmp_path_factory)


def test_sample_index_covers_every_report_and_profile(sample_output):
    urls = set(by_url(sample_output))
    reports = {f"/reports/{p.parent.name}/index.html" for p in (sample_output / "reports").glob("*/index.html")}
    startups = {f"/startups/{p.parent.name}/index.html" for p in (sample_output / "startups").glob("*/index.html")}
    assert reports and startups and urls == reports | startups


def _search(page, base: str, query: str) -> list[dict]:
    page.goto(f"{base}search/index.html?{query}")
    page.wait_for_function("document.getElementById('search-status').textContent.match(/\\d|没有|No results/)")
    return page.eval_on_selector_all(
        "#search-results li",
        "els => els.map(li => ({href: li.querySelector('a').getAttribute('href'), title: li.querySelector('h2').textContent,"
        " type: li.querySelector('.result-type').textContent, excerpt: li.querySelector('.excerpt').innerHTML}))",
    )


@pytest.mark.browser
@requires_chromium
def test_chinese_and_english_queries_find_the_right_pages(sample_output):
    from playwright.sync_api import sync_playwright

    with serve(sample_output) as base, sync_playwright() as pw:
        browser = launch(pw)
        context = browser.new_context()
        traffic = watch(context, base.split("/repo/")[0])
        page = context.new_page()

        hits = _search(page, base, "q=" + quote("信贷"))
        assert hits[0]["href"] == "/repo/reports/2025-sme-credit-risk/index.html"
        assert hits[0]["title"] == "小微信贷风控中的大模型：金枢风控的单位经济与可解释性" and hits[0]["type"] == "报告"
        assert "<mark>信贷</mark>" in hits[0]["excerpt"]
        assert "/repo/startups/jinshu-risk/index.html" in [h["href"] for h in hits]

        hits = _search(page, base, "q=explainability")
        assert hits[0]["href"] == "/repo/reports/2025-sme-credit-risk-en/index.html"
        assert hits[0]["title"].startswith("Large models in small-business credit") and hits[0]["type"] == "报告"
        assert "<mark>explainability" in hits[0]["excerpt"]

        # Filters: start-ups only, in English only.
        hits = _search(page, base, "type=startup&language=en")
        assert sorted(h["href"] for h in hits) == ["/repo/startups/forgeline-ai/index.html", "/repo/startups/stackpilot/index.html"]
        assert {h["type"] for h in hits} == {"初创企业"}
        assert page.is_checked("#search-filters input[name=type][value=startup]")

        # A query with no hits says so.
        assert _search(page, base, "q=zebra") == []
        assert page.inner_text("#search-status") == "没有找到相关结果。"

        # The result link opens the page it names.
        _search(page, base, "q=" + quote("信贷"))
        page.click("#search-results li:first-child h2 a")
        page.wait_for_load_state()
        assert page.url == base + "reports/2025-sme-credit-risk/index.html"
        assert traffic.problems() == []
        browser.close()


@pytest.mark.browser
@requires_chromium
def test_hostile_page_text_shows_as_text_in_results(make_project, tmp_path):
    from playwright.sync_api import sync_playwright

    project = make_project({"content/reports/first.md": f"---\ntitle: Hostile\n---\n\nMarmoset `{HOSTILE}` and &lt;b&gt;bold&lt;/b&gt; text.\n"})
    build_with_cli(project, tmp_path / "out")
    with serve(tmp_path / "out") as base, sync_playwright() as pw:
        browser = launch(pw)
        context = browser.new_context()
        traffic = watch(context, base.split("/repo/")[0])
        page = context.new_page()
        page.add_init_script("window.__alerts = 0; window.alert = () => { window.__alerts += 1; };")
        hits = _search(page, base, "q=marmoset")
        assert len(hits) == 1
        excerpt = page.locator("#search-results .excerpt").first
        assert HOSTILE in excerpt.inner_text()
        assert page.eval_on_selector_all("#search-results img, #search-results b", "els => els.length") == 0
        assert page.evaluate("window.__alerts") == 0
        assert traffic.problems() == []
        browser.close()


@pytest.mark.browser
@requires_chromium
def test_search_page_from_file_url_explains_and_logs_nothing(sample_output):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw)
        context = browser.new_context()
        traffic = watch(context, "file://")
        page = context.new_page()
        page.goto((sample_output / "search/index.html").as_uri() + "?q=" + quote("信贷"))
        page.wait_for_function("document.getElementById('search-status').textContent.length > 0")
        assert "HTTP" in page.inner_text("#search-status")
        assert page.input_value("#search-q") == "信贷"
        assert any(u.endswith("/static/search.js") for u in traffic.requests)
        assert not [u for u in traffic.requests if "pagefind" in u]  # no import that would only fail
        assert traffic.problems() == []
        browser.close()


@pytest.mark.browser
@requires_chromium
def test_results_come_a_page_at_a_time(make_project, tmp_path):
    from playwright.sync_api import sync_playwright

    reports = {f"content/reports/r{i:02d}.md": f"---\ntitle: Report {i:02d}\n---\n\nEvery report mentions the capybara {i}.\n" for i in range(25)}
    project = make_project(reports)
    build_with_cli(project, tmp_path / "out")
    with serve(tmp_path / "out") as base, sync_playwright() as pw:
        browser = launch(pw)
        context = browser.new_context()
        traffic = watch(context, base.split("/repo/")[0])
        page = context.new_page()
        assert len(_search(page, base, "q=capybara")) == 20
        assert page.inner_text("#search-status") == "25 result(s) · 20 shown"
        page.focus("#search-more")
        page.keyboard.press("Enter")
        page.wait_for_function("document.querySelectorAll('#search-results li').length === 25")
        assert page.is_hidden("#search-more") and page.inner_text("#search-status") == "25 result(s)"
        # Focus moves to the first new result, so keyboard users carry on where the list grew.
        assert page.evaluate("document.activeElement === document.querySelectorAll('#search-results li')[20].querySelector('a')")
        assert traffic.problems() == []
        browser.close()
