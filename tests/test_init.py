"""`sitegen init`: a new site that builds at once; existing files are never overwritten."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from generator import __version__
from generator.config import SiteConfig, load_config
from generator.diagnostics import EnvironmentProblem
from generator.models import FrontMatter, ProfileData
from generator.commands.init import InitOptions, collect_scaffold, write_scaffold
from generator.yamlsource import load_yaml, split_front_matter

EXPECTED = {
    "sitegen.yaml",
    "content/reports/example-report.md",
    "content/startups/example-startup.yaml",
    "templates/README.md",
    ".gitignore",
    "requirements.txt",
    ".github/workflows/pages.yml",
}


def _yaml(text: str, name: str):
    doc, diags = load_yaml(text, name)
    assert not diags, [d.format() for d in diags]
    return doc.data


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_init_writes_a_valid_site(tmp_path: Path, lang: str):
    result = write_scaffold(tmp_path / "site", InitOptions(language=lang))
    root = tmp_path / "site"
    assert set(result.created) == EXPECTED and result.skipped == []
    assert {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} == EXPECTED
    assert (root / "templates").is_dir()

    config, diags = load_config(root)
    assert diags == [] and isinstance(config, SiteConfig)
    assert config.language == lang and config.output_dir == "output"

    profile = ProfileData.model_validate(_yaml((root / "content/startups/example-startup.yaml").read_text(), "p.yaml"))
    assert profile.example and profile.sectors == ["legal", "enterprise"]

    text = (root / "content/reports/example-report.md").read_text()
    split, problems = split_front_matter(text, "example-report.md")
    assert not problems
    meta = FrontMatter.model_validate(_yaml(split.yaml_text, "example-report.md"))
    assert meta.example and meta.startups == ["example-startup"]
    assert "```mermaid\nflowchart LR" in text
    assert "$R = N \\cdot p$" in text and "$$\nm = \\frac{R - C}{R}\n$$" in text

    ignore = (root / ".gitignore").read_text().splitlines()
    assert {"output/", ".sitegen-cache/", ".sitegen.lock"} <= set(ignore)
    readme = (root / "templates/README.md").read_text()
    assert "base.html" in readme and "replaces the theme's file" in readme


def test_workflow_is_valid_yaml_naming_the_pages_actions(tmp_path: Path):
    write_scaffold(tmp_path)
    # Our YAML 1.2 loader: with PyYAML's 1.1 rules the `on:` key would turn into True.
    flow = _yaml((tmp_path / ".github/workflows/pages.yml").read_text(), "pages.yml")
    assert set(flow["on"]) == {"push", "workflow_dispatch"}
    assert flow["permissions"] == {"contents": "read"}
    build, deploy = flow["jobs"]["build"], flow["jobs"]["deploy"]
    uses = [s.get("uses", "") for s in build["steps"]]
    assert uses[0].startswith("actions/checkout@v")
    assert uses[1].startswith("actions/setup-python@v")
    assert uses[-1].startswith("actions/upload-pages-artifact@v")
    runs = [s.get("run", "") for s in build["steps"]]
    assert "pip install -r requirements.txt" in runs
    assert any(r.startswith("sitegen build") for r in runs)
    assert build["steps"][-1]["with"]["path"] == load_config(tmp_path)[0].output_dir
    assert deploy["needs"] == "build"
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert deploy["steps"][0]["uses"].startswith("actions/deploy-pages@v")
    assert deploy["steps"][0]["id"] == "deployment"


def test_requirements_pin_this_sitegen_never_the_bare_pypi_name(tmp_path: Path):
    write_scaffold(tmp_path)
    lines = [ln for ln in (tmp_path / "requirements.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    assert len(lines) == 1
    # PyPI's "sitegen" is another project: the line is pinned to this version or to a git commit.
    assert lines[0] == f"sitegen=={__version__}" or lines[0].startswith("sitegen @ git+https://")


def test_init_never_overwrites(tmp_path: Path):
    root = tmp_path / "site"
    (root / "content/reports").mkdir(parents=True)
    (root / "sitegen.yaml").write_text("title: Mine\n")
    (root / "content/reports/example-report.md").write_text("my own report\n")
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    (root / ".gitignore").symlink_to(outside)  # a planted symlink is not followed either
    result = write_scaffold(root)
    assert sorted(result.skipped) == [".gitignore", "content/reports/example-report.md", "sitegen.yaml"]
    assert (root / "sitegen.yaml").read_text() == "title: Mine\n"
    assert (root / "content/reports/example-report.md").read_text() == "my own report\n"
    assert outside.read_text() == "precious\n"
    assert "kept    sitegen.yaml (already exists; not overwritten)" in result.summary()
    again = write_scaffold(root)
    assert again.created == [] and again.summary()[-1].startswith("nothing to do")


def test_init_refuses_to_write_through_a_symlinked_folder(tmp_path: Path):
    root = tmp_path / "site"
    root.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "content").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(EnvironmentProblem) as err:
        write_scaffold(root)
    assert err.value.message == f"refusing to write into {root / 'content'}: it is a symlink"
    assert list(elsewhere.iterdir()) == []


def test_init_refuses_a_file_as_target(tmp_path: Path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(EnvironmentProblem) as err:
        write_scaffold(target)
    assert err.value.message == f"cannot create a site in {target}: it is not a folder"


def test_title_is_quoted_into_the_config(tmp_path: Path):
    files = collect_scaffold(InitOptions(language="en", title='Acme: "AI" #1'))
    doc = _yaml(files["sitegen.yaml"], "sitegen.yaml")
    assert doc["title"] == 'Acme: "AI" #1'
    with pytest.raises(EnvironmentProblem):
        write_scaffold(tmp_path, InitOptions(title="two\nlines"))


@pytest.mark.parametrize("lang,heading", [("en", "Example report"), ("zh", "示例报告")])
def test_cli_init_then_build(cli, tmp_path: Path, lang: str, heading: str):
    res = cli("-C", str(tmp_path), "init", "new", "--lang", lang, "--title", "Fresh")
    assert res.exit_code == 0, res.output
    assert "created sitegen.yaml" in res.stdout
    site = tmp_path / "new"
    res = cli("-C", str(site), "build", "--strict")
    assert res.exit_code == 0, res.output
    assert "warning[" not in res.stderr and "0 warning(s)" in res.stderr
    out = site / "output"
    assert (out / "index.html").is_file()
    report = (out / "reports/example-report/index.html").read_text()
    assert heading in report
    assert "<sitegen-job" not in report  # the diagram and formulas were rendered
    assert "<svg" in report and "<math" in report
    assert (out / "startups/example-startup/index.html").is_file()
    res = cli("-C", str(tmp_path), "init", "new")
    assert res.exit_code == 0
    assert "nothing to do" in res.stdout


def test_cli_init_default_is_the_project_folder(cli, tmp_path: Path):
    res = cli("-C", str(tmp_path), "init")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "sitegen.yaml").is_file()
    assert os.access(tmp_path / ".github/workflows/pages.yml", os.R_OK)
