"""`sitegen check`: every planted problem is found at its line, the seeds' model artifacts are named,
nothing is written, exit 1 on errors (and on warnings with --strict)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import BASIC_PROFILE, SHARED, tree_hash

SEEDS = SHARED / "seeds"
CONFIG = "title: T\nlanguage: en\nsearch: {enabled: false}\n"
FRONT = "---\ntitle: Seed article\n---\n"
"""Wraps a raw seed article: its line N becomes line N + 3 of the report."""
OFFSET = FRONT.count("\n")

PLANTED = """---
title: Planted
startups: [acme, ghost]
---

## 1. Intro

See [missing](../nowhere/index.html), [bad anchor](#sec-nope), [good](#sec-1-intro), [other](../other/index.html#sec-missing).

![chart](../assets/missing.png)

## 2. Empty

## 3. Body

This paragraph is long enough to count as repeated text in a report.

Model output: <|im_sep|> and <|end_of_directive|> here.

This paragraph is long enough to count as repeated text in a report.

## 3. Body

```mermaid
flowchart LR
    A[start -->
```

Broken formula $\\frac{1}{$ here.

希望这篇文章对您有所帮助！如有任何问题，欢迎随时提问。
"""

DRAFT = "---\nsection: summary\nstartup: acme\nstatus: draft\nmodel: gpt2\n---\n\nA drafted summary.\n"


@pytest.fixture
def planted(make_project):
    return make_project({
        "sitegen.yaml": CONFIG + "draft: {require_review: true}\n",
        "content/startups/acme.yaml": BASIC_PROFILE + "drafts: [summary]\n",
        "content/drafts/acme/summary.md": DRAFT,
        "content/reports/other.md": "---\ntitle: Other\n---\n\n## Only\n\nText.\n",
        "content/reports/planted.md": PLANTED,
    }, basic=False)


def lines_of(output: str) -> list[str]:
    return [line for line in output.splitlines() if ": error[" in line or ": warning[" in line]


def test_every_planted_problem_is_found_at_its_line_and_exit_is_1(cli, planted):
    res = cli("-C", str(planted), "check")
    assert res.exit_code == 1
    found = lines_of(res.stdout)
    p = "content/reports/planted.md"
    expected = [
        f"{p}:3: error[reference]: startups: unknown start-up 'ghost'",
        f"{p}:8: error[link]: broken link '../nowhere/index.html': no page or file reports/nowhere/index.html in the site",
        f"{p}:8: error[link]: broken anchor '#sec-nope' in link '#sec-nope': reports/planted/index.html has no such id",
        f"{p}:8: error[link]: broken anchor '#sec-missing' in link '../other/index.html#sec-missing': reports/other/index.html has no such id",
        f"{p}:10: warning[image]: image not found: ../assets/missing.png",  # the build's finding, not repeated
        f"{p}:12: warning[empty-section]: empty section '2. Empty'",
        f"{p}:18:15: error[lm-token]: leaked language-model token '<|im_sep|>'",
        f"{p}:18:30: error[lm-token]: leaked language-model token '<|end_of_directive|>'",
        f"{p}:20: warning[duplicate-paragraph]: duplicated paragraph (also at line 16)",
        f"{p}:22: warning[duplicate-section]: duplicated section '3. Body' (also at line 14)",
        f"{p}:24: error[diagram]: ",
        f"{p}:29: error[math]: ",
        f"{p}:31:1: warning[chat-artifact]: reads like a chat assistant's sign-off ('希望这篇文章对您有所帮助')",
        "content/drafts/acme/summary.md:1: warning[draft-unreviewed]: draft 'summary' of acme is not reviewed",  # where configured
    ]
    for want in expected:
        assert any(line.startswith(want) for line in found), f"missing: {want}\n" + "\n".join(found)
    # The good links (#sec-1-intro, ../other/index.html) are not reported.
    assert not any("sec-1-intro" in line or "'../other/index.html'" in line for line in found)
    assert "error(s)" in res.stderr and "warning(s)" in res.stderr


def test_check_writes_no_output(cli, planted):
    assert cli("-C", str(planted), "check").exit_code == 1
    assert not (planted / "output").exists()
    (planted / "content/reports/planted.md").unlink()
    (planted / "content/startups/acme.yaml").write_text(BASIC_PROFILE)
    (planted / "content/drafts/acme/summary.md").unlink()
    assert cli("-C", str(planted), "build").exit_code == 0
    before = tree_hash(planted / "output")
    (planted / "content/reports/other.md").write_text("---\ntitle: Other\n---\n\nA <|endoftext|> leak.\n")
    assert cli("-C", str(planted), "check").exit_code == 1
    assert tree_hash(planted / "output") == before


def test_json_format_lists_every_finding_with_its_place(cli, planted):
    res = cli("-C", str(planted), "check", "--format", "json")
    assert res.exit_code == 1
    doc = json.loads(res.stdout)
    assert doc["errors"] == sum(1 for d in doc["diagnostics"] if d["level"] == "error") >= 8
    leak = [d for d in doc["diagnostics"] if d["code"] == "lm-token"]
    assert [(d["path"], d["line"], d["col"]) for d in leak] == [("content/reports/planted.md", 18, 15), ("content/reports/planted.md", 18, 30)]


def test_warnings_alone_pass_unless_strict(cli, make_project):
    project = make_project({
        "sitegen.yaml": CONFIG,
        "content/reports/a.md": "---\ntitle: A\n---\n\n## Filled\n\nText.\n\n## Empty\n",
    }, basic=False)
    res = cli("-C", str(project), "check")
    assert res.exit_code == 0 and "content/reports/a.md:9: warning[empty-section]: empty section 'Empty'" in res.stdout
    assert cli("-C", str(project), "check", "--strict").exit_code == 1


def test_config_errors_are_reported_with_their_place(cli, make_project):
    project = make_project({"sitegen.yaml": CONFIG + "serch: {}\n"}, basic=False)
    res = cli("-C", str(project), "check")
    assert res.exit_code == 1
    assert "sitegen.yaml:4:1: error[" in res.output and "serch" in res.output


def seed_project(make_project, name: str) -> Path:
    text = (SEEDS / name).read_text(encoding="utf-8")
    return make_project({"sitegen.yaml": "title: T\nlanguage: zh\nsearch: {enabled: false}\n",
                         "content/reports/seed.md": FRONT + text}, basic=False)


def where(name: str, needle: str, nth: int = 0) -> tuple[int, int]:
    """Line and column (1-based) of the nth occurrence of needle in a seed, as seen in the wrapped report."""
    text = (SEEDS / name).read_text(encoding="utf-8")
    at = -1
    for _ in range(nth + 1):
        at = text.index(needle, at + 1)
    line = text.count("\n", 0, at) + 1
    return line + OFFSET, at - (text.rfind("\n", 0, at) + 1) + 1


needs_seeds = pytest.mark.skipif(not SEEDS.is_dir(), reason="../shared/seeds is not beside the checkout")


@needs_seeds
def test_seed_000_leaked_chat_tokens_and_the_second_copy(cli, make_project):
    name = "000_156d29c597694fbb.txt"
    project = seed_project(make_project, name)
    res = cli("-C", str(project), "check")
    assert res.exit_code == 1
    found = lines_of(res.stdout)
    for nth in (0, 1):
        line, col = where(name, "<|user|>", nth)
        assert f"content/reports/seed.md:{line}:{col}: error[lm-token]: leaked language-model token '<|user|>'" in "\n".join(found)
    first, _ = where(name, "## 1. 背景介绍", 0)
    second, _ = where(name, "## 1. 背景介绍", 1)
    assert f"content/reports/seed.md:{second}: warning[duplicate-section]: duplicated section '1. 背景介绍' (also at line {first})" in found
    assert sum("duplicate-section" in line for line in found) >= 20  # the article was written twice


@needs_seeds
def test_seed_001_trailing_chat_lines(cli, make_project):
    name = "001_a0d8c7ffa6f46022.txt"
    project = seed_project(make_project, name)
    res = cli("-C", str(project), "check")
    line, col = where(name, "以上就是本文的完整内容")
    assert f"content/reports/seed.md:{line}:{col}: warning[chat-artifact]" in res.stdout
    assert res.exit_code == 0  # warnings only …
    assert cli("-C", str(project), "check", "--strict").exit_code == 1  # … which --strict refuses


@needs_seeds
def test_seed_003_is_clean_apart_from_what_it_really_has(cli, make_project):
    name = "003_83d0bf41e231a027.txt"
    project = seed_project(make_project, name)
    res = cli("-C", str(project), "check")
    assert res.exit_code == 0, res.stdout
    assert "lm-token" not in res.stdout


def test_resolve_link_rules():
    from generator.findings import resolve_link

    assert resolve_link("reports/a/index.html", "../b/index.html#x") == ("reports/b/index.html", "x")
    assert resolve_link("reports/a/index.html", "../b/") == ("reports/b/index.html", "")
    assert resolve_link("reports/a/index.html", "#top") == (None, "top")
    assert resolve_link("index.html", "https://example.org/") is None
    assert resolve_link("index.html", "//cdn.example/x.js") is None
    assert resolve_link("index.html", "/abs/") == ("/abs/", "")
    assert resolve_link("a/b/index.html", "%E4%B8%AD/index.html") == ("a/b/中/index.html", "")


def test_image_outside_the_published_folders_is_missing_from_the_site(cli, make_project):
    """An image that exists where the Markdown says, and is published, passes; a missing one is found once."""
    from PIL import Image

    project = make_project({
        "sitegen.yaml": CONFIG,
        "content/reports/a.md": "---\ntitle: A\n---\n\n![ok](../assets/ok.png)\n\n![gone](../assets/gone.png)\n",
    }, basic=False)
    (project / "content/assets").mkdir()
    Image.new("RGB", (2, 2)).save(project / "content/assets/ok.png")
    res = cli("-C", str(project), "check")
    found = lines_of(res.stdout)
    assert not any("ok.png" in line for line in found)
    gone = [line for line in found if "gone.png" in line]
    assert len(gone) == 1 and gone[0].startswith("content/reports/a.md:7: warning[image]")


def test_lm_tokens_in_code_are_warnings_in_prose_errors(tmp_path):
    from generator.findings import collect_token_leaks

    text = "Intro <|im_sep|> here\n\n```python\nEOS = \"<|endoftext|>\"\n```\n\nUse `<|user|>` as the role marker.\n"
    found = [d.format() for d in collect_token_leaks({"r.md": text})]
    assert found == [
        "r.md:1:7: error[lm-token]: leaked language-model token '<|im_sep|>': remove it (the text after it may be a second copy of the article)",
        "r.md:4:8: warning[lm-token]: language-model token '<|endoftext|>' inside code: keep it only if the code means it",
        "r.md:7:6: warning[lm-token]: language-model token '<|user|>' inside code: keep it only if the code means it",
    ]
