"""Strict YAML: SECURITY-CASES YM-01..YM-05 at the loader level."""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from generator.yamlsource import YamlProblem, load_yaml, parse_yaml, split_front_matter


def problem(text: str) -> YamlProblem:
    with pytest.raises(YamlProblem) as info:
        parse_yaml(text)
    return info.value


@pytest.mark.parametrize(
    "text",
    [
        'x: !!python/object/apply:os.system ["touch /tmp/pwned-sitegen"]',
        "x: !!python/name:os.system",
        "x: !!python/object/new:os.system [echo]",
        "x: !custom thing",
    ],
)
def test_ym01_code_execution_tags_are_refused(text):
    p = problem(text)
    assert (p.line, p.col) == (1, 4)
    assert "unsupported YAML tag" in p.message
    assert not Path("/tmp/pwned-sitegen").exists()


def test_ym02_alias_bomb_is_refused_fast_and_small():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    bomb = "\n".join(lines)
    p = problem(bomb)
    assert p.line == 1 and "aliases are not allowed" in p.message


def test_ym02_deep_nesting_in_a_subprocess_with_limits():
    code = textwrap.dedent(
        """
        import resource, sys, time
        resource.setrlimit(resource.RLIMIT_AS, (400 * 1024 * 1024, 400 * 1024 * 1024))
        from generator.yamlsource import parse_yaml, YamlProblem
        t = time.perf_counter()
        try:
            parse_yaml("x: " + "[" * 5000 + "]" * 5000)
        except YamlProblem as p:
            print(p.line, p.message, round(time.perf_counter() - t, 3))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    line, rest = out.stdout.split(" ", 1)
    assert line == "1" and "nesting deeper than 64" in rest
    assert "Traceback" not in out.stderr


def test_ym03_duplicate_keys_name_both_lines():
    p = problem("name: Acme\nname: Evil\n")
    assert p.line == 2
    assert "duplicate key 'name' (first defined at line 1)" in p.message


def test_ym03_duplicate_keys_in_front_matter_count_from_the_file(tmp_path):
    doc, diags = load_yaml("title: a\ntitle: b\n", "r.md", line_offset=1)
    assert doc is None
    assert diags[0].format() == "r.md:3:1: error[yaml-duplicate-key]: duplicate key 'title' (first defined at line 2)"


def test_ym04_implicit_typing_keeps_text():
    data = parse_yaml("country: NO\nactive: on\nfounded: 2024-01-05\nmeeting: 10:00\nversion: 1.10\nratio: .5\nzip: 01234\n").data
    assert data["country"] == "NO"
    assert data["active"] == "on"
    assert data["founded"] == "2024-01-05"
    assert data["meeting"] == "10:00"
    assert data["ratio"] == 0.5
    assert data["version"] == 1.1 and data["version"].raw == "1.10"
    assert data["zip"].raw == "01234"


def test_booleans_are_only_true_and_false():
    data = parse_yaml("a: true\nb: False\nc: yes\nd: off\n").data
    assert data == {"a": True, "b": False, "c": "yes", "d": "off"}


def test_ym05_unterminated_quote_points_at_the_quote():
    doc, diags = load_yaml('a: 1\ntitle: "unterminated\n', "posts/x.md", line_offset=1)
    assert doc is None
    assert str(diags[0].location) == "posts/x.md:3:8"


def test_ym05_front_matter_not_closed():
    split, diags = split_front_matter("---\ntitle: x\n\nbody\n", "posts/x.md")
    assert split is None
    assert diags[0].format() == "posts/x.md:1: error[front-matter]: front matter not closed (missing '---')"


def test_ym05_bom_and_crlf_parse():
    split, diags = split_front_matter("\ufeff---\r\ntitle: Hi\r\n---\r\nbody\r\n", "x.md")
    assert not diags
    assert parse_yaml(split.yaml_text).data == {"title": "Hi"}
    assert split.body.strip() == "body" and split.body_line == 4


def test_merge_keys_refused():
    p = problem("a: {x: 1}\nb:\n  <<: {y: 2}\n")
    assert "merge keys" in p.message


def test_oversized_yaml_refused():
    p = problem("a: '" + "x" * (2 * 1024 * 1024 + 10) + "'")
    assert "larger than" in p.message


_ = resource


def test_dump_yaml_round_trips_text_that_looks_like_numbers():
    from generator.yamlsource import dump_yaml

    for value in ["0\x850", "a\u2028b", "x\x01y", "0E0", "1.10", "NO", "on", "~", "null", "01234", "10:00", "2024-01-05", "yes", ".5", "-.inf", "x: y", "#c", "中文"]:
        loaded = parse_yaml(dump_yaml({"title": value})).data["title"]
        assert isinstance(loaded, str) and loaded == value, value
