"""Loading content: schema errors, slugs, collisions, symlinks, hidden files (PS-01..05, MD-05, TP-02/03/06, YM-04)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import tree_hash


def build(cli, project: Path, *extra: str):
    return cli("-C", str(project), "build", *extra)


def report(front: str, body: str = "Body.\n") -> str:
    return f"---\n{front}---\n\n{body}"


def test_schema_errors_are_all_listed_with_locations(cli, make_project):
    project = make_project(
        {
            "content/startups/bad.yaml": "name: Bad\nstage: unicorn\nsectors: [fintech]\nfounded: soon\ncanvas:\n  revenue_streams:\n    - {name: A, share: 60}\n    - {name: B, share: 30}\nsurprise: 1\n",
            "content/reports/bad.md": report("title: T\ndate: 2024-13-45\n"),
            "content/reports/ref.md": report("title: T\ndate: 2024-01-01\nstartups: [acme, ghost]\n"),
        }
    )
    res = build(cli, project)
    assert res.exit_code == 1
    err = res.stderr
    assert "content/startups/bad.yaml:2:8: error[schema]: stage:" in err
    assert "content/startups/bad.yaml:4:10: error[schema]: founded:" in err
    assert "content/startups/bad.yaml:7:5: error[schema]: canvas.revenue_streams: shares add up to 90, not 100" in err
    assert "content/startups/bad.yaml:9:1: error[schema]: unknown key 'surprise'" in err
    assert "content/reports/bad.md:3:7: error[schema]: date: '2024-13-45' is not a date" in err
    assert "content/reports/ref.md:4: error[reference]: startups: unknown start-up 'ghost'" in err
    assert "Traceback" not in res.output


def test_yaml_error_in_front_matter_has_line_and_column(cli, make_project):
    project = make_project({"content/reports/x.md": '---\ndate: 2024-01-01\ntitle: "unterminated\n---\nbody\n'})
    res = build(cli, project)
    assert res.exit_code == 1
    assert "content/reports/x.md:3:8: error[yaml]:" in res.stderr


def test_ym04_golden_no_stays_no(cli, make_project):
    project = make_project({"content/startups/acme.yaml": "name: NO\nhq: on\ntagline: 1.10\nstage: seed\nsectors: [fintech]\n"})
    res = build(cli, project)
    assert res.exit_code == 0, res.stderr
    html = (project / "output/startups/acme/index.html").read_text()
    assert "<h1>NO" in html and "1.10" in html and "<dd>on</dd>" in html


@pytest.mark.parametrize(
    "slug",
    ["../../etc/cron.d/x", "/tmp/x", "..", "%2e%2e%2f%2e%2e%2fx", "a/../../b", "C:\\\\x", "a\\u0000b", "a/b"],
)
def test_ps01_slug_traversal_is_refused(cli, make_project, slug):
    project = make_project({"content/reports/p.md": report(f'title: T\nslug: "{slug}"\n')})
    res = build(cli, project)
    assert res.exit_code == 1
    assert "content/reports/p.md:3:" in res.stderr and ("invalid slug" in res.stderr or "slug: text contains a NUL" in res.stderr)
    assert not (project / "output").exists()


def test_ps01_empty_slug_is_an_error(cli, make_project):
    project = make_project({"content/reports/!!!.md": report("title: '!!!'\n")})
    res = build(cli, project)
    assert res.exit_code == 1 and "empty slug" in res.stderr


def test_ps02_case_collision_names_both_sources(cli, make_project):
    project = make_project(
        {"content/reports/Report.md": report("title: A\n"), "content/reports/report.md": report("title: B\n")}
    )
    res = build(cli, project)
    assert res.exit_code == 1
    assert "output path 'reports/report/index.html' produced by both content/reports/Report.md and content/reports/report.md" in res.stderr


def test_ps02_same_slug_and_index_collisions(cli, make_project):
    project = make_project(
        {
            "content/reports/one.md": report("title: A\nslug: same\n"),
            "content/reports/two.md": report("title: B\nslug: same\n"),
            "content/reports/a/index.md": report("title: C\n"),
            "content/reports/a.md": report("title: D\n"),
        }
    )
    res = build(cli, project)
    assert res.exit_code == 1
    assert "reports/same/index.html' produced by both" in res.stderr
    assert "reports/a/index.html' produced by both" in res.stderr


def test_ps02_unicode_normalisation_collision(cli, make_project):
    project = make_project(
        {"content/reports/caf\u00e9.md": report("title: A\n"), "content/reports/cafe\u0301.md": report("title: B\n")}
    )
    res = build(cli, project)
    assert res.exit_code == 1 and "produced by both" in res.stderr


def test_ps03_symlinks_outside_are_errors_inside_are_fine(cli, make_project, tmp_path):
    secret_dir = tmp_path / "home-ssh"
    secret_dir.mkdir()
    (secret_dir / "id_rsa.md").write_text("---\ntitle: secret\n---\nSECRET-KEY\n")
    project = make_project({"content/reports/b.md": report("title: B\n")})
    os.symlink(secret_dir, project / "content/notes")
    os.symlink("/etc/passwd", project / "content/reports/x.md")
    os.symlink("b.md", project / "content/reports/a.md")
    res = build(cli, project)
    assert res.exit_code == 1
    assert f"content/notes: error[symlink]: symlink leads outside content/: content/notes -> {secret_dir}" in res.stderr
    assert "content/reports/x.md: error[symlink]: symlink leads outside content/: content/reports/x.md -> /etc/passwd" in res.stderr
    os.unlink(project / "content/notes")
    os.unlink(project / "content/reports/x.md")
    res = build(cli, project)
    assert res.exit_code == 0, res.stderr
    assert (project / "output/reports/a/index.html").is_file()


def test_ps05_hidden_and_secret_files_are_not_copied(cli, make_project):
    project = make_project(
        {
            "content/.env": "TOKEN=abc",
            "content/.git/config": "[core]",
            "content/assets/id_rsa": "KEY",
            "content/assets/server.pem": "KEY",
            "content/assets/logo.png": b"\x89PNG\r\n\x1a\n",
            "content/reports/wip.md": report("title: WIP\ndraft: true\n"),
        }
    )
    res = build(cli, project)
    assert res.exit_code == 0, res.stderr
    out = project / "output"
    names = {p.name for p in out.rglob("*")}
    assert not names & {".env", ".git", "id_rsa", "server.pem", "config"}
    assert (out / "assets/logo.png").is_file()
    assert not (out / "reports/wip").exists()
    assert "content/.env: warning[hidden]: ignored hidden or secret file" in res.stderr
    assert "content/assets/id_rsa: warning[hidden]" in res.stderr


def test_md05_invalid_utf8_and_nul(cli, make_project):
    project = make_project(
        {
            "content/reports/bad.md": b"---\ntitle: ok\n---\n\nfine\nbad \xff byte\n",
            "content/reports/nul.md": b"---\ntitle: ok\n---\n\nnul \x00 here\n",
        }
    )
    res = build(cli, project)
    assert res.exit_code == 1
    assert "content/reports/bad.md:6:5: error[encoding]: invalid UTF-8 byte 0xff" in res.stderr
    assert "content/reports/nul.md:5:5: error[encoding]: NUL character in text" in res.stderr


def test_tp02_url_and_css_contexts_are_validated(cli, make_project):
    project = make_project(
        {
            "content/startups/acme.yaml": 'name: A\nstage: seed\nsectors: [fintech]\nwebsite: " JaVaScript:alert(1)"\nlogo: "../../../etc/passwd"\nbrand_color: "red;background:url(file:///etc/passwd)"\n',
            "content/reports/r.md": report('title: T\ncanonical: "javascript:alert(1)"\n'),
        }
    )
    res = build(cli, project)
    assert res.exit_code == 1
    assert "content/startups/acme.yaml:4:10: error[schema]: website: URL scheme not allowed (javascript:)" in res.stderr
    assert "content/startups/acme.yaml:5:7: error[schema]: logo: path escapes data root" in res.stderr
    assert "content/startups/acme.yaml:6:14: error[schema]: brand_color: must match #RRGGBB" in res.stderr
    assert "content/reports/r.md:3:12: error[schema]: canonical: URL scheme not allowed" in res.stderr


@pytest.mark.parametrize("layout", ["../../etc/passwd", "{{ 7*7 }}", "x{{}}", "nonexistent"])
def test_tp03_layout_names(cli, make_project, layout):
    project = make_project({"content/reports/r.md": report(f'title: T\nlayout: "{layout}"\n')})
    res = build(cli, project)
    assert res.exit_code == 1
    assert "content/reports/r.md:3:9: error[schema]: layout: unknown layout" in res.stderr
    assert "49" not in res.stderr


def test_tp06_attribute_names_from_profiles(cli, make_project):
    project = make_project(
        {"content/startups/acme.yaml": 'name: A\nstage: seed\nsectors: [fintech]\nlinks: {"onmouseover=alert(1) x": "https://x.org"}\n'}
    )
    res = build(cli, project)
    assert res.exit_code == 1
    assert "content/startups/acme.yaml:4:8: error[schema]: links: attribute name not allowed" in res.stderr


def test_unknown_sector_and_shares_messages(cli, make_project):
    project = make_project({"content/startups/acme.yaml": "name: A\nstage: seed\nsectors: [space]\n"})
    res = build(cli, project)
    assert "content/startups/acme.yaml:3:10: error[schema]: sectors: unknown sector 'space'" in res.stderr


def test_errors_leave_no_output(cli, make_project):
    project = make_project({"content/reports/r.md": report("title: [unclosed\n")})
    before = tree_hash(project / "output")
    res = build(cli, project)
    assert res.exit_code == 1 and tree_hash(project / "output") == before


PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)


def test_images_relative_to_the_markdown_file_resolve_on_the_site(cli, make_project):
    project = make_project(
        {
            "content/assets/logo.png": PNG_1PX,
            "content/reports/img/chart.png": PNG_1PX,
            "content/reports/first.md": report("title: Pics\n", "![logo](../assets/logo.png)\n\n![chart](img/chart.png)\n"),
        }
    )
    res = build(cli, project)
    assert res.exit_code == 0, res.stderr
    page = project / "output/reports/first/index.html"
    import re

    srcs = re.findall(r'<img src="([^"]+)"', page.read_text())
    assert srcs == ["../../assets/logo.png", "../../media/reports/img/chart.png"]
    assert all((page.parent / s).resolve().is_file() for s in srcs)


def test_report_draft_sections_show_placeholder_then_badged_draft(cli, make_project):
    project = make_project(
        {"content/reports/first.md": report("title: T\nstartups: [acme]\ndraft_sections: [summary]\n")}
    )
    res = build(cli, project)
    assert res.exit_code == 0
    assert "content/reports/first.md:4: warning[draft-missing]: not drafted yet for acme: summary" in res.stderr
    page = (project / "output/reports/first/index.html").read_text()
    assert 'data-draft-missing="summary"' in page
    assert build(cli, project, "--strict").exit_code == 1
    (project / "content/drafts/acme").mkdir(parents=True)
    (project / "content/drafts/acme/summary.md").write_text(
        "---\nsection: summary\nstartup: acme\nstatus: draft\nmodel: tiny-gpt2\ncreated: '2026-01-02T03:04:05Z'\n---\n\nAcme <b>drafts</b> well.\n"
    )
    res = build(cli, project)
    assert res.exit_code == 0, res.stderr
    page = (project / "output/reports/first/index.html").read_text()
    assert 'data-generated="tiny-gpt2"' in page and "Acme &lt;b&gt;drafts&lt;/b&gt; well." in page and "2026-01-02" in page


def _loaded(project: Path, **kwargs):
    from generator.config import load_config
    from generator.content import load_content

    config, _ = load_config(project)
    return load_content(project, config, **kwargs)


def test_reports_parsed_in_parallel_keep_their_order_and_findings(make_project):
    files = {f"content/reports/r{i:02d}.md": report(f"title: R{i}\ndate: 2024-01-01\n", "```\nopen fence\n" if i == 7 else "Text.\n")
             for i in range(45)}
    project = make_project(files)
    serial, serial_diags = _loaded(project, workers=1)
    parallel, parallel_diags = _loaded(project, workers=2)
    assert [r.path for r in parallel.reports] == [r.path for r in serial.reports]
    assert [r.body.html for r in parallel.reports] == [r.body.html for r in serial.reports]
    assert parallel_diags == serial_diags


def test_files_whose_bytes_are_known_are_not_loaded_again(make_project):
    project = make_project({"content/reports/second.md": report("title: Second\ndate: 2024-01-02\n")})
    first, _ = _loaded(project)
    known = {**first.loaded, **first.parsed}
    (project / "content/reports/second.md").write_text(report("title: Second, edited\ndate: 2024-01-02\n"))
    again, _ = _loaded(project, known=known)
    assert again.fresh == {"content/reports/second.md"}
    by_path = {r.path: r for r in again.reports}
    assert by_path["content/reports/first.md"] is first.parsed["content/reports/first.md"][1]
    assert by_path["content/reports/second.md"].meta.title == "Second, edited"
    # The known profile stays as it was loaded: drafts are attached to a copy.
    assert again.profiles["acme"] is not first.loaded["content/startups/acme.yaml"][1]
    assert first.loaded["content/startups/acme.yaml"][1].drafts == {}
