"""The gate: `sitegen build` finds what `sitegen check` finds, in the same pass, with the same code and level;
errors fail the build (--strict: warnings too) and leave the previous output byte for byte."""

from __future__ import annotations

import json

from conftest import BASIC_PROFILE, BASIC_REPORT, tree_hash

from generator.commands.check import check
from generator.diagnostics import Location
from generator.findings import collect_duplicates, collect_sign_offs, collect_token_leaks

CONFIG = "title: T\nlanguage: en\nsearch: {enabled: false}\ndiagrams: {enabled: false}\n"
GOOD = "---\ntitle: Good\nstartups: [acme]\n---\n\n## Intro\n\nText.\n"
BROKEN = "---\ntitle: Broken\n---\n\nSee [gone](../gone/index.html) and the end.\n\nA leak <|endoftext|> here.\n"
LINK = "content/reports/broken.md:5: error[link]: broken link '../gone/index.html': no page or file reports/gone/index.html in the site"
LEAK = ("content/reports/broken.md:7:8: error[lm-token]: leaked language-model token '<|endoftext|>': "
        "remove it (the text after it may be a second copy of the article)")


def _project(make_project, **files: str):
    base = {"sitegen.yaml": CONFIG, "content/startups/acme.yaml": BASIC_PROFILE, "content/reports/good.md": GOOD}
    base.update({f"content/reports/{name}.md": text for name, text in files.items()})
    return make_project(base, basic=False)


def _built_once(cli, project):
    res = cli("-C", str(project), "build")
    assert res.exit_code == 0, res.output
    return tree_hash(project / "output")


def test_strict_build_fails_on_a_broken_link_and_a_leaked_token_and_keeps_the_output(cli, make_project):
    project = _project(make_project)
    before = _built_once(cli, project)
    (project / "content/reports/broken.md").write_text(BROKEN)
    res = cli("-C", str(project), "build", "--strict")
    assert res.exit_code == 1
    assert LINK in res.output and LEAK in res.output
    assert "Traceback" not in res.output
    assert tree_hash(project / "output") == before


def test_a_build_without_strict_fails_on_errors_too(cli, make_project):
    project = _project(make_project)
    before = _built_once(cli, project)
    (project / "content/reports/broken.md").write_text(BROKEN)
    res = cli("-C", str(project), "build")
    assert res.exit_code == 1
    assert LINK in res.output and LEAK in res.output
    assert tree_hash(project / "output") == before
    # Warnings alone (an empty section) pass a plain build and fail --strict.
    (project / "content/reports/broken.md").write_text("---\ntitle: Fixed\n---\n\n## Full\n\nText.\n\n## Empty\n")
    res = cli("-C", str(project), "build")
    assert res.exit_code == 0, res.output
    assert "content/reports/broken.md:9: warning[empty-section]: empty section 'Empty'" in res.output
    after = tree_hash(project / "output")
    res = cli("-C", str(project), "build", "--strict")
    assert res.exit_code == 1 and "warning[empty-section]" in res.output
    assert tree_hash(project / "output") == after


def test_check_and_build_report_the_same_findings(cli, make_project):
    planted = (
        "---\ntitle: Planted\n---\n\n## 1. Intro\n\nSee [missing](../nowhere/index.html), [bad](#sec-nope), "
        "[other](../good/index.html#sec-missing).\n\n## 2. Empty\n\n## 3. Body\n\n"
        "This paragraph is long enough to count as repeated text in a report.\n\n"
        "This paragraph is long enough to count as repeated text in a report.\n\n## 3. Body\n\n"
        "Model output <|im_sep|> here.\n\n希望这篇文章对您有所帮助！\n"
    )
    project = _project(make_project, planted=planted)
    res = cli("-C", str(project), "check", "--format", "json")
    assert res.exit_code == 1
    from_check = [f"{d['path']}:{d['line']}{':' + str(d['col']) if d['col'] else ''}: {d['level']}[{d['code']}]: {d['message']}"
                  for d in json.loads(res.stdout)["diagnostics"]]
    assert {line.split(": ", 2)[1] for line in from_check} >= {
        "error[link]", "error[lm-token]", "warning[empty-section]", "warning[duplicate-paragraph]",
        "warning[duplicate-section]", "warning[chat-artifact]"}
    built = cli("-C", str(project), "build")
    assert built.exit_code == 1
    from_build = [line for line in built.output.splitlines() if ": error[" in line or ": warning[" in line]
    assert sorted(from_build) == sorted(from_check)
    assert not (project / "output").exists()


def test_a_front_matter_typo_does_not_hide_the_files_broken_link(cli, make_project):
    typo = "---\ntitle: Typo\ndate: someday\n---\n\nSee [gone](../gone/index.html). A <|endoftext|> and <b>raw</b>.\n"
    project = _project(make_project, typo=typo)
    for args in (("build",), ("check",)):
        res = cli("-C", str(project), *args)
        assert res.exit_code == 1
        assert "content/reports/typo.md:3:7: error[schema]: date:" in res.output
        assert ("content/reports/typo.md:6: error[link]: broken link '../gone/index.html': "
                "no page or file reports/gone/index.html in the site") in res.output, res.output
        assert "content/reports/typo.md:6:35: error[lm-token]: leaked language-model token '<|endoftext|>'" in res.output
        assert "content/reports/typo.md:6: warning[raw-html]" in res.output, res.output
    # A link to the rejected report from a good one is not broken because of the typo.
    (project / "content/reports/good.md").write_text(GOOD + "\nSee [typo](../typo/index.html).\n")
    res = cli("-C", str(project), "build")
    assert "content/reports/good.md" not in res.output


def test_a_profile_schema_error_is_one_error_in_the_profile_only(cli, make_project):
    project = _project(make_project, second=GOOD.replace("Good", "Second"))
    (project / "content/startups/acme.yaml").write_text(BASIC_PROFILE.replace("stage: seed", "stage: seeed"))
    res = cli("-C", str(project), "build")
    assert res.exit_code == 1
    errors = [line for line in res.output.splitlines() if ": error[" in line]
    assert len(errors) == 1, errors
    assert errors[0].startswith("content/startups/acme.yaml:6:8: error[schema]: stage:"), errors
    assert "unknown start-up" not in res.output


def test_findings_functions_name_file_line_and_column():
    leaks = collect_token_leaks({"content/reports/a.md": "x\n```\n<|endoftext|>\n```\nok <|im_end|>\n"})
    assert [(d.level, d.location) for d in leaks] == [
        ("warning", Location("content/reports/a.md", 3, 1)), ("error", Location("content/reports/a.md", 5, 4))]
    assert [d.format() for d in collect_sign_offs("content/reports/a.md", "Text.\n\nI hope this helps!\n")] == [
        "content/reports/a.md:3:1: warning[chat-artifact]: reads like a chat assistant's sign-off ('I hope this helps'), "
        "not part of the report: remove it"]
    report_text = "Long enough paragraph to be counted as a duplicate.\n\nLong enough paragraph to be counted as a duplicate.\n"
    from generator.markdown import parse_markdown

    dups = collect_duplicates("content/reports/a.md", parse_markdown(report_text, "content/reports/a.md"), report_text, 5)
    assert [d.format() for d in dups] == [
        "content/reports/a.md:7: warning[duplicate-paragraph]: duplicated paragraph (also at line 5): "
        "'Long enough paragraph to be counted as a…'"]


def test_check_result_equals_a_build_on_the_basic_project(make_project):
    project = make_project({"sitegen.yaml": CONFIG, "content/startups/acme.yaml": BASIC_PROFILE,
                            "content/reports/first.md": BASIC_REPORT}, basic=False)
    assert check(project).diagnostics == []


# --- incremental builds: findings of unchanged inputs are reused, never lost --------------------------


A_LINKS_B = "---\ntitle: A\ndate: 2024-01-01\n---\n\nSee [b](../b/index.html#sec-deep).\n"
B = "---\ntitle: B\ndate: 2024-06-01\n---\n\n## Deep\n\nText.\n"
FAR = "---\ntitle: Far {n}\ndate: 2024-0{n}-01\n---\n\nText.\n"


def test_a_kept_page_is_checked_again_when_its_target_loses_the_anchor_or_vanishes(cli, make_project):
    """A's page is kept (B is not its neighbour): the gate must look at it again all the same."""
    project = _project(make_project, a=A_LINKS_B, b=B, **{f"far{n}": FAR.format(n=n) for n in (2, 3, 4)})
    before = _built_once(cli, project)
    (project / "content/reports/b.md").write_text(B.replace("## Deep", "## Shallow"))
    res = cli("-C", str(project), "build")
    assert res.exit_code == 1
    assert ("content/reports/a.md:6: error[link]: broken anchor '#sec-deep' in link '../b/index.html#sec-deep': "
            "reports/b/index.html has no such id") in res.output, res.output
    assert tree_hash(project / "output") == before
    (project / "content/reports/b.md").unlink()
    res = cli("-C", str(project), "build")
    assert res.exit_code == 1
    assert ("content/reports/a.md:6: error[link]: broken link '../b/index.html#sec-deep': "
            "no page or file reports/b/index.html in the site") in res.output, res.output
    assert tree_hash(project / "output") == before


def test_an_unchanged_files_findings_survive_incremental_builds(cli, make_project):
    project = _project(make_project, empty="---\ntitle: E\n---\n\n## Full\n\nText.\n\n## Empty\n")
    warning = "content/reports/empty.md:9: warning[empty-section]: empty section 'Empty'"
    assert warning in cli("-C", str(project), "build").output
    assert warning in cli("-C", str(project), "build").output  # nothing changed
    (project / "content/reports/good.md").write_text(GOOD + "\nMore.\n")
    res = cli("-C", str(project), "build")
    assert res.exit_code == 0 and warning in res.output  # another file edited
    assert warning in cli("-C", str(project), "check").output
    # A leak in an unchanged file fails every build until it is fixed.
    (project / "content/reports/good.md").write_text(GOOD + "\nA <|endoftext|> leak.\n")
    leak = "content/reports/good.md:10:3: error[lm-token]: leaked language-model token '<|endoftext|>'"
    for _ in range(2):
        res = cli("-C", str(project), "build")
        assert res.exit_code == 1 and leak in res.output, res.output
