"""Same input, same bytes (CA-03): two cold builds of the sample site, with PDFs, into two folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import REPO, run_sitegen


def _copy_sample(dest: Path) -> Path:
    dest.mkdir(parents=True)
    shutil.copy2(REPO / "sitegen.yaml", dest / "sitegen.yaml")
    for name in ("content", "templates"):
        shutil.copytree(REPO / name, dest / name)
    return dest


def _tree(out: Path) -> dict[str, bytes]:
    """Every file's bytes, Pagefind's bundle aside (Pagefind itself is not byte-stable)."""
    files = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if p.is_file() and not rel.startswith("pagefind/"):
            files[rel] = p.read_bytes()
    return files


def _manifest_without_pagefind(data: bytes) -> dict:
    manifest = json.loads(data)
    manifest["files"] = {k: v for k, v in manifest["files"].items() if not k.startswith("pagefind/")}
    return manifest


def test_two_cold_builds_give_the_same_bytes(tmp_path):
    trees = []
    for name in ("one", "two"):
        project = _copy_sample(tmp_path / name)
        res = run_sitegen("-C", str(project), "build", "--pdf", timeout=600)
        assert res.returncode == 0, res.stderr
        trees.append(_tree(project / "output"))
    one, two = trees
    assert sorted(one) == sorted(two)
    assert any(rel.endswith(".pdf") for rel in one), "the sample site builds PDFs"
    manifest_one = _manifest_without_pagefind(one.pop("sitegen-manifest.json"))
    manifest_two = _manifest_without_pagefind(two.pop("sitegen-manifest.json"))
    assert manifest_one == manifest_two
    differing = [rel for rel in one if one[rel] != two[rel]]
    assert differing == []


def test_subset_fonts_carry_no_build_time(tmp_path):
    """fontTools stamps head.modified with the time of saving unless told not to."""
    from fontTools.ttLib import TTFont

    from generator.services.fonts import find_cjk_fonts, subset_font

    fonts = find_cjk_fonts()
    assert fonts, "a CJK font is installed (fonts-noto-cjk)"
    font = next(iter(fonts.values()))
    first = subset_font(font, "测试 abc")
    second = subset_font(font, "测试 abc")
    assert first == second
    (tmp_path / "a.otf").write_bytes(first)
    with TTFont(font.path, fontNumber=font.index, lazy=True) as original:
        want = original["head"].modified
    assert TTFont(tmp_path / "a.otf")["head"].modified == want


def test_gantt_has_no_today_marker_unless_asked():
    from generator.services.diagrams import prepare_source

    plain = prepare_source("gantt\n  dateFormat YYYY-MM-DD\n  section A\n  task :a1, 2020-01-01, 30d")
    assert plain.source.splitlines()[-1] == "todayMarker off"
    assert plain.source.splitlines()[:4] == ["gantt", "  dateFormat YYYY-MM-DD", "  section A", "  task :a1, 2020-01-01, 30d"]
    asked = prepare_source("gantt\n  todayMarker stroke-width:5px\n  section A\n  task :a1, 2020-01-01, 30d")
    assert "todayMarker off" not in asked.source
    flow = prepare_source("flowchart LR\n  A --> B")
    assert "todayMarker" not in flow.source
