"""Incremental builds: the dependency record re-renders exactly the pages whose inputs changed.

"Touched" means the output file got a new inode (rewritten); kept files are hard-linked from the
previous output, so their inode and mtime stay. Every incremental result is also compared byte for
byte with a clean build of the same input, so "every listing that shows the edit is up to date" is
checked by construction.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import BASIC_PROFILE, tree_hash

from generator.build import BuildOptions, build
from generator.incremental.record import load_state, state_path

CONFIG = "title: Test Site\nlanguage: en\nbase_url: https://example.org/repo/\nsearch: {enabled: false}\ndiagrams: {enabled: false}\n"

PROFILE_B = BASIC_PROFILE.replace("Acme AI", "Beta Labs").replace("[fintech]", "[health]")


def report(title: str, date: str, startups: str = "[acme]", keywords: str = "[payments]", body: str = "Text.") -> str:
    return f"---\ntitle: {title}\ndate: {date}\nkeywords: {keywords}\nstartups: {startups}\n---\n\n## 1. Intro\n\n{body}\n"


FILES = {
    "sitegen.yaml": CONFIG,
    "content/startups/acme.yaml": BASIC_PROFILE,
    "content/startups/beta.yaml": PROFILE_B,
    "content/reports/r1.md": report("Oldest", "2024-01-01"),
    "content/reports/r2.md": report("Second", "2024-02-01"),
    "content/reports/r3.md": report("Third", "2024-03-01", startups="[beta]", keywords="[health]"),
    "content/reports/r4.md": report("Newest", "2024-04-01", startups="[beta]", keywords="[health]"),
}


@pytest.fixture
def project(make_project):
    return make_project(FILES, basic=False)


def inodes(out: Path) -> dict[str, int]:
    return {p.relative_to(out).as_posix(): p.stat().st_ino for p in out.rglob("*") if p.is_file()}


def touched(before: dict[str, int], after: dict[str, int]) -> set[str]:
    """Files rewritten (new inode) or new; the manifest is always rewritten and left out."""
    return {rel for rel, ino in after.items() if before.get(rel) != ino and rel != "sitegen-manifest.json"}


def assert_same_as_clean_build(project: Path, tmp_path: Path) -> None:
    """The incremental output equals, byte for byte, a from-scratch build of the same input."""
    clean = tmp_path / "clean-copy"
    shutil.rmtree(clean, ignore_errors=True)
    shutil.copytree(project, clean, ignore=shutil.ignore_patterns("output", ".sitegen-cache", ".sitegen.lock"))
    build(clean, BuildOptions(incremental=False))
    assert tree_hash(project / "output") == tree_hash(clean / "output")


def test_no_change_rewrites_nothing_and_renders_nothing(project):
    build(project)
    before = inodes(project / "output")
    result = build(project)
    assert result.stats.incremental.pages_rendered == 0
    assert result.stats.incremental.parsed == 0
    assert result.stats.pages_written == 0
    assert touched(before, inodes(project / "output")) == set()


def test_editing_one_report_rerenders_it_and_the_listings_that_show_it_only(project, tmp_path):
    build(project)
    before = inodes(project / "output")
    r1 = project / "content/reports/r1.md"
    r1.write_text(report("Oldest, retitled", "2024-01-01", body="New text."))
    result = build(project)
    changed = touched(before, inodes(project / "output"))
    assert result.stats.incremental.parsed == 1  # only the edited report is parsed again
    # r1 is the oldest: its page, its one neighbour (r2), and the listings that show r1.
    assert set(result.files) == {  # the build's log of rendered pages
        "reports/r1/index.html",
        "reports/r2/index.html",  # links to r1 as "older"
        "index.html",
        "reports/index.html",
        "tags/index.html",
        "tags/payments/index.html",
        "startups/acme/index.html",  # lists the reports covering acme
        "sectors/fintech/index.html",
        "sectors/index.html",  # counts reports per sector
        "feed.xml",
        "sitemap.xml",
    }
    # Rendered pages whose bytes did not change keep their file (tags/index only counts reports).
    assert {"reports/r1/index.html", "reports/r2/index.html", "index.html", "reports/index.html",
            "tags/payments/index.html", "startups/acme/index.html", "feed.xml"} <= changed <= set(result.files)
    for untouched in ("reports/r3/index.html", "reports/r4/index.html", "startups/beta/index.html", "tags/health/index.html"):
        assert untouched not in changed
    assert "Oldest, retitled" in (project / "output/reports/index.html").read_text()
    assert_same_as_clean_build(project, tmp_path)


def test_editing_a_profile_rerenders_its_page_and_the_reports_covering_it(project, tmp_path):
    build(project)
    before = inodes(project / "output")
    (project / "content/startups/beta.yaml").write_text(PROFILE_B.replace("Tests everything", "Now with a new tagline"))
    result = build(project)
    changed = touched(before, inodes(project / "output"))
    assert result.stats.incremental.parsed == 0
    assert "startups/beta/index.html" in changed
    assert {"reports/r3/index.html", "reports/r4/index.html"} <= changed  # they show beta
    assert not {"reports/r1/index.html", "reports/r2/index.html", "startups/acme/index.html"} & changed
    assert_same_as_clean_build(project, tmp_path)


def test_editing_a_template_rerenders_only_the_pages_that_use_it(project, tmp_path):
    build(project)
    before = inodes(project / "output")
    from generator.templates import theme_dir

    tag = (theme_dir() / "tag.html").read_text(encoding="utf-8")
    (project / "templates").mkdir()
    (project / "templates/tag.html").write_text(tag.replace("<h1>", '<h1 class="own-tag">'), encoding="utf-8")
    build(project)
    changed = touched(before, inodes(project / "output"))
    assert changed == {"tags/payments/index.html", "tags/health/index.html"}
    assert 'class="own-tag"' in (project / "output/tags/health/index.html").read_text()
    assert_same_as_clean_build(project, tmp_path)


def test_editing_the_base_template_rerenders_every_page_that_extends_it(project):
    build(project)
    from generator.templates import theme_dir

    (project / "templates").mkdir()
    base = (theme_dir() / "base.html").read_text(encoding="utf-8")
    (project / "templates/base.html").write_text(base.replace("<main", "<main data-own-base"), encoding="utf-8")
    result = build(project)
    html_pages = [p for p in result.site.pages if "data-own-base" in (project / "output" / p.path).read_text()]
    assert result.stats.incremental.pages_rendered >= len(html_pages) > 10


def test_a_removed_report_loses_its_output_and_listings_drop_it(project, tmp_path):
    build(project)
    (project / "content/reports/r2.md").unlink()
    build(project)
    assert not (project / "output/reports/r2").exists()
    assert "Second" not in (project / "output/reports/index.html").read_text()
    assert_same_as_clean_build(project, tmp_path)


def test_a_new_report_appears_in_every_listing(project, tmp_path):
    build(project)
    (project / "content/reports/r5.md").write_text(report("Brand new", "2024-05-01", keywords="[payments, fresh]"))
    result = build(project)
    assert result.stats.incremental.parsed == 1
    assert (project / "output/tags/fresh/index.html").is_file()
    assert "Brand new" in (project / "output/index.html").read_text()
    assert_same_as_clean_build(project, tmp_path)


def test_config_change_rerenders_everything(project):
    build(project)
    (project / "sitegen.yaml").write_text(CONFIG.replace("Test Site", "Renamed Site"))
    result = build(project)
    assert result.stats.incremental.pages_kept == 0
    assert result.stats.incremental.pages_rendered == len(result.site.pages)


def test_an_output_file_edited_by_hand_is_rendered_again(project):
    build(project)
    page = project / "output/reports/r3/index.html"
    good = page.read_bytes()
    page.write_bytes(b"tampered")
    result = build(project)
    assert result.stats.incremental.pages_rendered == 1
    assert page.read_bytes() == good


def test_a_corrupt_record_is_ignored_and_rebuilt(project, tmp_path):
    build(project)
    path = state_path(project / ".sitegen-cache")
    path.write_bytes(path.read_bytes()[:100])
    result = build(project)
    assert result.stats.incremental.parsed == 4  # started from scratch
    assert load_state(project / ".sitegen-cache").pages  # and wrote a good record again
    assert_same_as_clean_build(project, tmp_path)


def test_failed_incremental_build_keeps_output_and_the_next_one_catches_up(cli, project, tmp_path):
    assert cli("-C", str(project), "build").exit_code == 0
    before = tree_hash(project / "output")
    (project / "content/reports/r2.md").write_text("---\ntitle: [unclosed\n---\nbody\n")
    res = cli("-C", str(project), "build")
    assert res.exit_code == 1 and "content/reports/r2.md:2:8: error[yaml]" in res.stderr
    assert tree_hash(project / "output") == before
    (project / "content/reports/r2.md").write_text(report("Second, fixed", "2024-02-01"))
    assert cli("-C", str(project), "build").exit_code == 0
    assert "Second, fixed" in (project / "output/reports/r2/index.html").read_text()
    assert_same_as_clean_build(project, tmp_path)


def test_startup_diagram_fence_follows_the_profile_it_draws(make_project, tmp_path):
    """A ```startup-diagram fence draws another file's data: editing that profile re-renders the report."""
    config = CONFIG.replace("diagrams: {enabled: false}\n", "")
    fence = "```startup-diagram\nstartup: beta\nkind: revenue\n```"
    project = make_project({**FILES, "sitegen.yaml": config,
                            "content/reports/r1.md": report("Oldest", "2024-01-01", body=fence)}, basic=False)
    build(project)
    before = inodes(project / "output")
    (project / "content/startups/beta.yaml").write_text(PROFILE_B.replace("share: 70", "share: 55").replace("share: 30", "share: 45"))
    build(project)
    changed = touched(before, inodes(project / "output"))
    assert "reports/r1/index.html" in changed  # r1 covers acme only, but its fence draws beta
    assert "reports/r2/index.html" not in changed
    assert "55" in (project / "output/reports/r1/index.html").read_text()


def test_summary_reports_written_and_unchanged_pages(cli, project):
    assert cli("-C", str(project), "build").exit_code == 0
    (project / "content/reports/r4.md").write_text(report("Newest, edited", "2024-04-01", startups="[beta]", keywords="[health]"))
    res = cli("-C", str(project), "-v", "build")
    assert res.exit_code == 0
    summary = [line for line in res.stderr.splitlines() if line.startswith("sitegen: built")][0]
    pages = len(list((project / "output").rglob("*.html"))) + 3  # + feed.xml, sitemap.xml, robots.txt
    assert f"built {pages} pages" in summary
    written = int(summary.split("(")[1].split(" written")[0])
    assert 0 < written < pages
    assert "time: config" in res.stderr and "incremental: 1 report(s) parsed, 3 reused" in res.stderr


def test_cli_build_with_nothing_changed_leaves_the_output_alone_and_repeats_warnings(cli, make_project):
    project = make_project({**FILES, "content/startups/acme.yaml": BASIC_PROFILE + "drafts: [summary]\n"}, basic=False)
    first = cli("-C", str(project), "build")
    assert first.exit_code == 0 and "warning[draft-missing]" in first.stderr
    before = inodes(project / "output")
    (project / "content/reports/r1.md").touch()  # a new mtime, the same bytes
    again = cli("-C", str(project), "-v", "build")
    assert again.exit_code == 0
    assert "nothing changed since the last build" in again.stderr
    assert "content/startups/acme.yaml:" in again.stderr and "warning[draft-missing]" in again.stderr  # still reported
    assert inodes(project / "output") == before  # not even the manifest was rewritten
    strict = cli("-C", str(project), "build", "--strict")
    assert strict.exit_code == 1 and "warning[draft-missing]" in strict.stderr
    assert inodes(project / "output") == before


def test_cli_build_repairs_a_deleted_output_file_even_when_sources_are_unchanged(cli, project):
    assert cli("-C", str(project), "build").exit_code == 0
    page = project / "output/reports/r2/index.html"
    good = page.read_bytes()
    page.unlink()
    res = cli("-C", str(project), "-v", "build")
    assert res.exit_code == 0 and "nothing changed" not in res.stderr
    assert page.read_bytes() == good


def test_reports_with_identical_bytes_keep_their_own_paths_across_builds(project, tmp_path):
    same = report("Twin", "2024-06-01")
    (project / "content/reports/twin-a.md").write_text(same)
    (project / "content/reports/twin-b.md").write_text(same)
    build(project)
    (project / "content/reports/r1.md").write_text(report("Oldest again", "2024-01-01"))
    build(project)  # parses r1 only; the twins come from the record, each with its own path and slug
    assert (project / "output/reports/twin-a/index.html").is_file() and (project / "output/reports/twin-b/index.html").is_file()
    assert_same_as_clean_build(project, tmp_path)


def test_cli_build_notices_a_changed_theme_static_file(cli, project):
    from generator.templates import theme_dir

    assert cli("-C", str(project), "build").exit_code == 0
    (project / "templates/static").mkdir(parents=True)
    css = (theme_dir() / "static/style.css").read_text(encoding="utf-8")
    (project / "templates/static/style.css").write_text(css + "\n/* own */\n", encoding="utf-8")
    res = cli("-C", str(project), "-v", "build")
    assert res.exit_code == 0 and "nothing changed" not in res.stderr
    assert (project / "output/static/style.css").read_text(encoding="utf-8").endswith("/* own */\n")


def test_cli_build_notices_a_new_asset(cli, project):
    assert cli("-C", str(project), "build").exit_code == 0
    (project / "content/assets").mkdir()
    (project / "content/assets/data.csv").write_text("a,b\n1,2\n")
    res = cli("-C", str(project), "-v", "build")
    assert res.exit_code == 0 and "nothing changed" not in res.stderr
    assert (project / "output/assets/data.csv").read_text() == "a,b\n1,2\n"


def test_recorded_template_dependencies_reach_the_renderer(project, tmp_path, monkeypatch):
    """A new process (a fresh Jinja environment) takes what each template includes from the record,
    instead of parsing every template again; an edited report still renders byte for byte right."""
    import generator.templates as templates
    import generator.writers.html as html

    build(project)
    monkeypatch.setattr(templates, "_ENVIRONMENTS", {})  # as in the next `sitegen build` process
    parsed: list[str] = []
    real = html._templates_of
    monkeypatch.setattr(html, "_templates_of", lambda env, name: parsed.append(name) or real(env, name))
    (project / "content/reports/r2.md").write_text(report("Second, edited", "2024-02-01"))
    result = build(project)
    assert result.stats.rendered > 0
    assert parsed == []
    assert_same_as_clean_build(project, tmp_path)


def test_a_changed_template_is_parsed_again(project, tmp_path, monkeypatch):
    import generator.templates as templates
    import generator.writers.html as html
    from generator.templates import theme_dir

    build(project)
    monkeypatch.setattr(templates, "_ENVIRONMENTS", {})
    (project / "templates").mkdir(exist_ok=True)
    shutil.copy(theme_dir() / "report.html", project / "templates" / "report.html")  # same text, a new file: a new hash
    parsed: list[str] = []
    real = html._templates_of
    monkeypatch.setattr(html, "_templates_of", lambda env, name: parsed.append(name) or real(env, name))
    build(project)
    assert "report.html" in parsed
    assert_same_as_clean_build(project, tmp_path)
