"""Property tests: any front matter, profile YAML or Markdown ends in output or a located error."""

from __future__ import annotations

from html.parser import HTMLParser

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.content import Rejected, SourceFile, load_profile, load_report, validate_slug
from generator.markdown import parse_markdown
from generator.yamlsource import YamlProblem, parse_yaml

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
YAML_PIECES = list("abc:-[]{}&*!'\"#|>\n 12.,?%@`~\\") + ["\t", "中", "é", "<|endoftext|>", "title: ", "\n  - ", "!!python/name:os.system"]
MD_PIECES = list("ab #*_`[]()!<>|-:$\\\n\t~^=+{}%") + ["```", "$$", "\\(", "\\[", "<script>", "javascript:", "中文", "```mermaid\n", "![x](", "[^1]"]
yaml_text = st.lists(st.sampled_from(YAML_PIECES), max_size=120).map("".join)
markdown_text = st.lists(st.sampled_from(MD_PIECES), max_size=160).map("".join)


class Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.bad: list = []

    def handle_starttag(self, tag, attrs):
        if tag in {"script", "iframe", "object", "embed", "style", "link", "meta"}:
            self.bad.append(tag)
        for name, value in attrs:
            if name.startswith("on") or (name in ("href", "src") and (value or "").lower().strip().startswith("javascript")):
                self.bad.append((tag, name, value))


@SETTINGS
@given(yaml_text)
def test_any_yaml_loads_or_fails_with_a_location(text):
    try:
        parse_yaml(text)
    except YamlProblem as p:
        assert p.message
        assert p.line is None or p.line >= 1


@SETTINGS
@given(front=yaml_text, body=markdown_text)
def test_any_report_ends_in_output_or_located_errors(front, body):
    data = f"---\n{front}\n---\n{body}".encode()
    diags: list = []
    report = load_report(SourceFile("content/reports/x.md", None, data), diags, "en")  # type: ignore[arg-type]
    if report is None or isinstance(report, Rejected):
        # Rejected: the front matter failed the schema (its body is kept for the findings, never rendered).
        assert diags and all(d.location and d.location.path == "content/reports/x.md" for d in diags)
        assert all(d.level in ("error", "warning") for d in diags)
        assert report is None or any(d.level == "error" for d in diags)
    else:
        p = Elements()
        p.feed(report.body.html)
        assert p.bad == []


@SETTINGS
@given(yaml_text)
def test_any_profile_ends_in_a_profile_or_located_errors(text):
    diags: list = []
    profile = load_profile(SourceFile("content/startups/x.yaml", None, text.encode()), diags)  # type: ignore[arg-type]
    if profile is None or isinstance(profile, Rejected):
        assert diags and all(d.location and d.location.path == "content/startups/x.yaml" for d in diags)


@SETTINGS
@given(markdown_text)
def test_any_markdown_renders_safely(text):
    parsed = parse_markdown(text, "p.md")
    p = Elements()
    p.feed(parsed.html)
    assert p.bad == []
    for d in parsed.diagnostics:
        assert d.location.path == "p.md" and d.location.line >= 1


@SETTINGS
@given(st.text(max_size=60))
def test_slugs_stay_inside_the_output(raw):
    slug = validate_slug(raw)
    if slug is not None:
        assert "/" not in slug and "\\" not in slug and ".." not in slug and slug not in (".", "")
