"""Atomic output and output-dir safety (SECURITY-CASES BA-01..04, PS-04)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_sitegen, tree_hash


# The build with a pause in its write stage, so a test can kill it there: the first file written
# into the new output waits. It always writes (the "nothing changed" shortcut is off).
PAUSED_BUILD = """
import sys, time
from generator.incremental import IncrementalBuild
from generator.writers.output import OutputTransaction

pause = float(sys.argv[1])
write = OutputTransaction.write

def paused_write(self, rel, data):
    if not getattr(self, "paused", False):
        self.paused = True
        time.sleep(pause)
    return write(self, rel, data)

OutputTransaction.write = paused_write
IncrementalBuild.unchanged = lambda self: False
from generator.cli import main
main(sys.argv[2:], prog_name="sitegen")
"""


def paused_build(project: Path, seconds: float, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", PAUSED_BUILD, str(seconds), "-C", str(project), "build"], **kwargs)


def many_reports(n: int) -> dict[str, str]:
    return {f"content/reports/p{i:02d}.md": f"---\ntitle: Page {i}\ndate: 2024-01-{1 + i % 28:02d}\n---\n\n## Section\n\nText {i}.\n" for i in range(n)}


def test_ba01_failure_keeps_the_previous_site(cli, make_project):
    project = make_project(many_reports(40))
    assert cli("-C", str(project), "build").exit_code == 0
    before = tree_hash(project / "output")
    (project / "content/reports/p37.md").write_text("---\ntitle: [unclosed\n---\nbody\n")
    res = cli("-C", str(project), "build")
    assert res.exit_code == 1
    assert "content/reports/p37.md:2:8: error[yaml]:" in res.stderr
    assert tree_hash(project / "output") == before
    assert not list(project.glob("output.tmp-*")) and not list(project.glob("output.old-*"))


def test_ba02_sigkill_mid_build_keeps_output_and_next_run_recovers(make_project):
    project = make_project(many_reports(5))
    assert run_sitegen("-C", str(project), "build").returncode == 0
    before = tree_hash(project / "output")
    (project / "content/reports/p01.md").write_text("---\ntitle: Changed\n---\n\nNew text.\n")
    proc = paused_build(project, 30)
    deadline = time.time() + 60
    while not list(project.glob("output.tmp-*")) and time.time() < deadline:
        time.sleep(0.1)
    assert list(project.glob("output.tmp-*")), "build never reached the write stage"
    proc.kill()
    proc.wait()
    assert tree_hash(project / "output") == before
    res = run_sitegen("-C", str(project), "build")
    assert res.returncode == 0, res.stderr
    assert not list(project.glob("output.tmp-*"))
    assert "Changed" in (project / "output/reports/p01/index.html").read_text()


def test_ba02_sigint_exits_130_and_cleans_up(make_project):
    project = make_project(many_reports(3))
    assert run_sitegen("-C", str(project), "build").returncode == 0
    before = tree_hash(project / "output")
    proc = paused_build(project, 30, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not list(project.glob("output.tmp-*")) and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "Traceback" not in err and "interrupted" in err
    assert tree_hash(project / "output") == before
    assert not list(project.glob("output.tmp-*"))


def test_ba02_concurrent_build_is_refused(make_project):
    project = make_project(many_reports(2))
    proc = paused_build(project, 20)
    try:
        deadline = time.time() + 60
        while not list(project.glob("output.tmp-*")) and time.time() < deadline:
            time.sleep(0.1)
        res = run_sitegen("-C", str(project), "build")
        assert res.returncode == 2
        assert "another build holds .sitegen.lock" in res.stderr
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_ba03_permission_error_is_clean(make_project):  # pragma: no cover - CI runs as root
    project = make_project()
    os.chmod(project, 0o555)
    try:
        res = run_sitegen("-C", str(project), "build")
        assert res.returncode == 2 and "cannot" in res.stderr and "Traceback" not in res.stderr
    finally:
        os.chmod(project, 0o755)


def test_ba03_write_failure_keeps_previous_output(make_project, tmp_path):
    """A file where the temp folder must go makes the write fail (works as root too)."""
    project = make_project()
    assert run_sitegen("-C", str(project), "build").returncode == 0
    before = tree_hash(project / "output")
    # Occupy the temp folder's parent path with a read-only filesystem stand-in: a file named like the output's parent.
    out_parent = tmp_path / "blocked"
    out_parent.write_text("not a folder")
    res = run_sitegen("-C", str(project), "build", "--out", str(out_parent / "site"))
    assert res.returncode == 2
    assert "cannot write" in res.stderr and "Traceback" not in res.stderr
    assert tree_hash(project / "output") == before


def test_ba04_strict_fails_on_warnings_and_keeps_output(cli, make_project):
    project = make_project()
    assert cli("-C", str(project), "build").exit_code == 0
    before = tree_hash(project / "output")
    (project / "content/reports/first.md").write_text("---\ntitle: X\n---\n\n[a](javascript:alert(1))\n\n<b>raw</b>\n")
    res = cli("-C", str(project), "build", "--strict")
    assert res.exit_code == 1
    assert "content/reports/first.md:5: warning[link]: disallowed URL scheme 'javascript:'; link removed" in res.stderr
    assert "content/reports/first.md:7: warning[raw-html]" in res.stderr
    assert tree_hash(project / "output") == before
    assert cli("-C", str(project), "build").exit_code == 0


@pytest.mark.parametrize("out", [".", "content", "content/site", "/", "~", "templates"])
def test_ps04_dangerous_output_dirs_are_refused(cli, make_project, out):
    project = make_project({"templates/README.md": "mine"})
    target = str(Path(out).expanduser()) if out.startswith("~") else out
    res = cli("-C", str(project), "build", "--out", target)
    assert res.exit_code == 2
    assert "refusing to use output dir" in res.stderr
    assert (project / "content/reports/first.md").is_file() and (project / "templates/README.md").is_file()


def test_ps04_foreign_files_and_git_in_output_are_refused(cli, make_project, tmp_path):
    project = make_project()
    foreign = tmp_path / "important"
    foreign.mkdir()
    (foreign / "thesis.docx").write_text("years of work")
    res = cli("-C", str(project), "build", "--out", str(foreign))
    assert res.exit_code == 2 and "holds files not written by sitegen" in res.stderr
    assert (foreign / "thesis.docx").read_text() == "years of work"
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    res = cli("-C", str(project), "build", "--out", str(repo))
    assert res.exit_code == 2 and "holds a .git folder" in res.stderr


def test_same_input_same_bytes_and_unchanged_files_not_rewritten(cli, make_project):
    project = make_project()
    assert cli("-C", str(project), "build").exit_code == 0
    first = tree_hash(project / "output")
    index = project / "output/index.html"
    ino = index.stat().st_ino
    assert cli("-C", str(project), "build").exit_code == 0
    assert tree_hash(project / "output") == first
    assert index.stat().st_ino == ino  # hard-linked from the previous build, not rewritten


def test_exit_code_2_for_missing_project(cli, tmp_path):
    res = cli("-C", str(tmp_path / "nope"), "build")
    assert res.exit_code in (1, 2) and "sitegen.yaml" in res.stderr and "Traceback" not in res.output


def test_the_build_runs_its_stages_in_order(make_project, monkeypatch):
    """build.py is the one place that knows the order: config → … → commit → record."""
    import generator.build as b
    from generator.incremental.plan import IncrementalBuild
    from generator.writers.output import OutputTransaction

    project = make_project()
    ran: list[str] = []

    def spy(owner, attr: str, stage: str, call_through: bool = True) -> None:
        real = getattr(owner, attr)

        def recorded(*args, **kwargs):
            ran.append(stage)
            return real(*args, **kwargs) if call_through else None

        monkeypatch.setattr(owner, attr, recorded)

    spy(b, "configure", "config")
    spy(b, "load_site_content", "content")
    spy(IncrementalBuild, "plan", "plan")
    spy(b, "resolve_site_jobs", "jobs")
    spy(b, "assemble_site", "assemble")
    spy(b, "render_site", "render")
    spy(b, "check_site", "findings")
    spy(b, "write_site", "write")
    spy(b, "write_site_pdfs", "pdf", call_through=False)
    spy(b, "write_site_search", "search", call_through=False)
    spy(OutputTransaction, "commit", "commit")
    spy(b, "record_build", "record")
    result = b.build(project, b.BuildOptions(pdf=True, overrides={"search.enabled": True}))
    assert ran == ["config", "content", "plan", "jobs", "assemble", "render", "findings", "write", "pdf", "search", "commit", "record"]
    assert list(result.timings) == ["config", "load+parse", "jobs", "assemble", "render", "findings", "write"]
    assert (project / "output/index.html").is_file()


def test_a_build_that_changes_nothing_runs_no_stage_after_config(make_project, monkeypatch):
    import generator.build as b

    project = make_project()
    b.build(project)
    monkeypatch.setattr(b, "load_site", lambda *a, **k: pytest.fail("nothing changed, yet the site was loaded"))
    result = b.build_if_changed(project)
    assert result.stats.incremental.unchanged and result.stats.rendered == 0
    assert result.stats.pages_unchanged == result.stats.pages > 0


# --- PS-06: SVG files copied from the project ------------------------------------------------

HOSTILE_FILE_SVG = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd" [
  <!ENTITY ext SYSTEM "file:///etc/passwd">
]>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 120 60" onload="alert(document.domain)">
  <script>alert(1)</script>
  <defs><linearGradient id="sky"><stop offset="0" stop-color="#36c"/><stop offset="1" stop-color="#fff"/></linearGradient>
  <symbol id="dot"><circle cx="5" cy="5" r="4"/></symbol></defs>
  <rect id="panel" width="120" height="60" fill="url(#sky)"/>
  <foreignObject width="50" height="20"><div xmlns="http://www.w3.org/1999/xhtml">html</div></foreignObject>
  <use href="https://evil.example/sprite.svg#x"/>
  <use xlink:href="#dot" x="10" y="10"/>
  <text x="10" y="40">Revenue 收入</text>
</svg>
""".encode()
PLAIN_FILE_SVG = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><circle cx="5" cy="5" r="4" fill="#36c"/></svg>\n'


def _parsed(path: Path):
    import xml.etree.ElementTree as ET

    return ET.fromstring(path.read_bytes())


def _assert_sanitised_svg(path: Path) -> None:
    data = path.read_bytes()
    root = _parsed(path)  # still well-formed SVG
    tags = {el.tag.split("}")[-1] for el in root.iter()}
    assert "script" not in tags and "foreignObject" not in tags and "div" not in tags
    assert not any(name.startswith("on") for el in root.iter() for name in el.attrib)
    hrefs = [v for el in root.iter() for k, v in el.attrib.items() if k.split("}")[-1] == "href"]
    assert hrefs == ["#dot"]  # the internal reference stays, under its own name
    assert b"<!DOCTYPE" not in data and b"ENTITY" not in data and b"evil.example" not in data
    # still the same drawing: viewBox, shapes, gradient, text
    assert root.get("viewBox") == "0 0 120 60" and root.tag == "{http://www.w3.org/2000/svg}svg"
    assert {"rect", "linearGradient", "stop", "symbol", "circle", "use", "text"} <= tags
    assert root.find(".//{http://www.w3.org/2000/svg}rect").get("fill") == "url(#sky)"
    assert "Revenue 收入" in "".join(root.itertext())


def test_ps06_active_svg_asset_is_sanitised_with_a_warning(make_project):
    project = make_project({"content/assets/x.svg": HOSTILE_FILE_SVG, "content/assets/plain.svg": PLAIN_FILE_SVG})
    res = run_sitegen("-C", str(project), "build")
    assert res.returncode == 0, res.stderr
    warning = next(line for line in res.stderr.splitlines() if "warning[svg]" in line)
    assert warning == (
        "content/assets/x.svg: warning[svg]: removed from the published copy: <foreignObject>, <script>, "
        "<use> without a reference inside the file, DTD, href=\"https://evil.example/sprite.svg#x\" on <use>, "
        "onload on <svg> (list the file under assets.svg_as_is in sitegen.yaml to publish it unchanged)"
    )
    assert res.stderr.count("warning[svg]") == 1  # the plain file has nothing to say
    _assert_sanitised_svg(project / "output/assets/x.svg")
    # a plain SVG is published as written, and the same bytes on every build
    assert (project / "output/assets/plain.svg").read_bytes() == PLAIN_FILE_SVG
    first = (project / "output/assets/x.svg").read_bytes()
    (project / "content/reports/first.md").write_text((project / "content/reports/first.md").read_text() + "\nMore.\n")
    again = run_sitegen("-C", str(project), "build")
    assert again.returncode == 0, again.stderr
    assert (project / "output/assets/x.svg").read_bytes() == first
    assert (project / "output/assets/plain.svg").read_bytes() == PLAIN_FILE_SVG


def test_ps06_strict_build_fails_on_an_active_svg_and_keeps_the_previous_output(make_project):
    project = make_project({"content/assets/plain.svg": PLAIN_FILE_SVG})
    assert run_sitegen("-C", str(project), "build").returncode == 0
    before = tree_hash(project / "output")
    (project / "content/assets/x.svg").write_bytes(HOSTILE_FILE_SVG)
    res = run_sitegen("-C", str(project), "build", "--strict")
    assert res.returncode == 1
    assert "content/assets/x.svg: warning[svg]: removed from the published copy: <foreignObject>, <script>" in res.stderr
    assert "Traceback" not in res.stderr
    assert tree_hash(project / "output") == before


def test_ps06_svg_as_is_ships_the_file_unchanged(make_project):
    from conftest import BASIC_CONFIG

    config = BASIC_CONFIG + "assets:\n  svg_as_is: [content/assets/x.svg]\n"
    project = make_project({"sitegen.yaml": config, "content/assets/x.svg": HOSTILE_FILE_SVG})
    res = run_sitegen("-C", str(project), "build")
    assert res.returncode == 0, res.stderr
    assert "warning[svg]" not in res.stderr
    assert (project / "output/assets/x.svg").read_bytes() == HOSTILE_FILE_SVG


def test_ps06_svg_beside_a_report_and_in_templates_static_is_sanitised(make_project):
    project = make_project({"content/reports/chart.svg": HOSTILE_FILE_SVG, "templates/static/logo.svg": HOSTILE_FILE_SVG})
    res = run_sitegen("-C", str(project), "build")
    assert res.returncode == 0, res.stderr
    assert "content/reports/chart.svg: warning[svg]: removed from the published copy: <foreignObject>" in res.stderr
    assert "templates/static/logo.svg: warning[svg]: removed from the published copy: <foreignObject>" in res.stderr
    _assert_sanitised_svg(project / "output/media/reports/chart.svg")
    _assert_sanitised_svg(project / "output/static/logo.svg")


def test_ps06_an_svg_that_does_not_parse_is_not_published(make_project):
    project = make_project({"content/assets/broken.svg": b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</svg>"})
    res = run_sitegen("-C", str(project), "build")
    assert res.returncode == 0, res.stderr
    assert "content/assets/broken.svg:1:59: warning[svg]: not published: the file could not be parsed (mismatched tag)" in res.stderr
    assert not (project / "output/assets/broken.svg").exists()
