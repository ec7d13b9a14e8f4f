"""`sitegen doctor`: reports this machine (real checks) and names the fix for each problem."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_sitegen

from generator.commands import doctor as doc


def test_doctor_runs_and_reports_every_part(make_project):
    project = make_project()
    res = run_sitegen("-C", str(project), "doctor")
    names = {"sitegen", "jinja2", "weasyprint", "torch", "watchfiles", "CJK font", "Pango", "diagram renderer",
             "draft model", "pagefind", "chromium", "cache"}
    for name in names:
        assert f" {name}: " in res.stdout, f"{name} missing from:\n{res.stdout}"
    report = doc.doctor(project)
    assert res.returncode == report.exit_code
    # Every problem names a fix.
    assert all(f.fix for f in report.problems)
    assert "sitegen doctor:" in res.stderr


def test_doctor_json(make_project):
    res = run_sitegen("-C", str(make_project()), "doctor", "--format", "json")
    findings = json.loads(res.stdout)
    assert {"name", "status", "detail", "fix"} <= set(findings[0])
    assert findings[0]["name"] == "sitegen" and findings[0]["status"] == "ok"


def test_versions_come_from_installed_metadata(monkeypatch):
    monkeypatch.setattr(doc, "KEY_PACKAGES", doc.KEY_PACKAGES + [("surely-not-installed-pkg", "testing")])
    found = {f.name: f for f in doc.check_versions()}
    import importlib.metadata

    assert found["jinja2"].status == "ok" and found["jinja2"].detail.startswith(importlib.metadata.version("jinja2"))
    missing = found["surely-not-installed-pkg"]
    assert missing.status == "error" and "not installed" in missing.detail
    assert missing.fix is not None and "pip install 'surely-not-installed-pkg'" in missing.fix


def test_missing_cjk_font_names_the_package_to_install():
    finding = doc.check_cjk_font(lambda cmd: "")
    assert finding.status == "error" and "fonts-noto-cjk" in (finding.fix or "")
    finding = doc.check_cjk_font(lambda cmd: "Noto Sans CJK SC,Noto Sans CJK SC Regular\n")
    assert finding.status == "ok" and "Noto Sans CJK SC" in finding.detail


def test_draft_model_from_a_local_folder_and_a_missing_one(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "tiny-gpt2"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\0" * 16)
    ok = doc.check_draft_model(str(folder), tmp_path, allow_pickle=False)
    assert ok.status == "ok" and "model.safetensors" in ok.detail
    missing = doc.check_draft_model("gpt2", tmp_path, allow_pickle=False)
    assert missing.status == "warning" and "not in the Hugging Face cache" in missing.detail
    assert missing.fix and "sitegen draft" in missing.fix
    pickle_only = tmp_path / "old-model"
    pickle_only.mkdir()
    (pickle_only / "config.json").write_text("{}")
    (pickle_only / "pytorch_model.bin").write_bytes(b"\0")
    refused = doc.check_draft_model(str(pickle_only), tmp_path, allow_pickle=False)
    assert refused.status == "warning" and "safetensors" in refused.detail


def test_cache_size_per_namespace(tmp_path):
    cache = tmp_path / ".sitegen-cache"
    (cache / "diagrams" / "ab").mkdir(parents=True)
    (cache / "diagrams" / "ab" / "x").write_bytes(b"\0" * 3000)
    (cache / "math").mkdir()
    (cache / "math" / "y").write_bytes(b"\0" * 100)
    finding = doc.check_cache(cache)
    assert finding.status == "ok" and "diagrams 2.9 KiB" in finding.detail and "math 100 B" in finding.detail
    big = doc.check_cache(cache, limit=1000)
    assert big.status == "warning" and big.fix and big.fix.startswith(f"rm -rf {cache}")
    assert doc.check_cache(tmp_path / "none").status == "info"


def test_without_a_project_the_defaults_are_checked(tmp_path):
    report = doc.doctor(tmp_path)
    config = next(f for f in report.findings if f.name == "config")
    assert config.status == "warning" and "no sitegen.yaml" in config.detail and config.fix
    assert any(f.name == "Pango" for f in report.findings)


def test_format_puts_the_fix_under_the_problem():
    text = doc.Finding("Pango", "error", "system library not found", "sudo apt-get install libpango-1.0-0").format()
    assert text.splitlines() == ["ERROR   Pango: system library not found", "        fix: sudo apt-get install libpango-1.0-0"]


def test_folder_size_counts_files(tmp_path: Path):
    (tmp_path / "a").write_bytes(b"12345")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b").write_bytes(b"123")
    assert doc.folder_size(tmp_path) == 8
