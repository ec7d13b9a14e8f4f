"""Templates: autoescape everywhere, StrictUndefined, overrides (SECURITY-CASES TP-01, TP-05)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

from conftest import tree_hash

from generator.templates import theme_dir

EVIL_TITLE = "<script>alert(1)</script>"
EVIL_ABSTRACT = "<img src=x onerror=alert(1)>"
EVIL_NAME = "Acme</title><script>x</script>"


class Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.scripts: list[dict] = []
        self.handlers: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts.append(attrs)
        for name in attrs:
            if name.startswith("on"):
                self.handlers.append((tag, name))


def test_tp01_hostile_values_are_escaped_in_every_output(cli, make_project):
    project = make_project(
        {
            "content/reports/first.md": f'---\ntitle: "{EVIL_TITLE}"\nabstract: "{EVIL_ABSTRACT}"\nkeywords: ["{EVIL_TITLE}"]\nauthors: ["{EVIL_NAME}"]\nstartups: [acme]\ndate: 2024-01-01\n---\n\nBody\n',
            "content/startups/acme.yaml": f'name: "{EVIL_NAME}"\ntagline: "{EVIL_ABSTRACT}"\nstage: seed\nsectors: [fintech]\n',
        }
    )
    res = cli("-C", str(project), "build")
    assert res.exit_code == 0, res.stderr
    out = project / "output"
    checked = 0
    for path in out.rglob("*"):
        if path.suffix not in (".html", ".xml", ".txt"):
            continue
        text = path.read_text()
        assert EVIL_TITLE not in text and EVIL_ABSTRACT not in text and "</title><script>" not in text, path
        if path.suffix == ".html":
            c = Collect()
            c.feed(text)
            assert not c.handlers, (path, c.handlers)
            assert all(s.get("src", "").endswith(("static/site.js", "static/search.js")) for s in c.scripts), (path, c.scripts)
        checked += 1
    assert checked >= 10
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in (out / "reports/first/index.html").read_text()


def test_tp01_no_safe_filter_on_non_markup_in_the_theme():
    """`|safe` is never used: sitegen's own HTML reaches templates as Markup from body()/job()."""
    offenders = []
    for path in theme_dir().rglob("*"):
        if path.is_file() and path.suffix in (".html", ".xml", ".txt", ".j2"):
            text = path.read_text()
            if re.search(r"\|\s*safe\b", text) or "autoescape false" in text:
                offenders.append(str(path))
    assert offenders == []


def test_tp05_undefined_variable_in_an_override_is_a_located_error(cli, make_project):
    project = make_project()
    assert cli("-C", str(project), "build").exit_code == 0
    before = tree_hash(project / "output")
    theme = theme_dir()
    text = (theme / "report.html").read_text().replace("{{ report.meta.title }}</h1>", "{{ report.meta.titel }}</h1>")
    (project / "templates").mkdir()
    (project / "templates/report.html").write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "titel" in row)
    res = cli("-C", str(project), "build")
    assert res.exit_code == 1
    assert f"templates/report.html:{line}: error[template]:" in res.stderr and "titel" in res.stderr
    assert tree_hash(project / "output") == before


def test_project_templates_override_the_theme_file_by_file(cli, make_project):
    project = make_project({"templates/404.html": '{% extends "base.html" %}{% block content %}<p>custom 404 page</p>{% endblock %}\n'})
    assert cli("-C", str(project), "build").exit_code == 0
    assert "custom 404 page" in (project / "output/404.html").read_text()
    assert "<h1>First report</h1>" in (project / "output/reports/first/index.html").read_text()


def test_template_syntax_error_is_located(cli, make_project):
    project = make_project({"templates/404.html": "line one\n{% if %}\n"})
    res = cli("-C", str(project), "build")
    assert res.exit_code == 1 and "templates/404.html:2: error[template]:" in res.stderr


_ = Path


def test_one_page_context_for_screen_and_print_layers_the_writers_helpers_over_it():
    from types import SimpleNamespace

    from generator.templates import interface_strings, page_context

    site = SimpleNamespace(config="the config")
    ctx = page_context(site, "zh", interface_strings(), {"url": "own", "lang": "helper"}, None, {"url": "extra"})
    assert ctx["site"] is site and ctx["config"] == "the config"
    assert ctx["t"]("key_partners") == "关键合作伙伴" and ctx["html_lang"] == "zh-CN"
    assert ctx["sector_names"](["fintech"]) == [ctx["sector_name"]("fintech")]
    assert ctx["lang"] == "helper" and ctx["url"] == "extra"  # later layers win, as the writers rely on


def test_site_and_print_share_one_environment_with_the_bytecode_cache(tmp_path, monkeypatch):
    from generator.templates import site_environment

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    config = SimpleNamespace(untrusted=False)
    env = site_environment(tmp_path, config)
    assert env is site_environment(tmp_path, config)
    assert env.get_template("print/report.html") and env.get_template("report.html")
    # Compiled code lives in the user's cache, never in the project's cache folder.
    assert env.bytecode_cache is not None and (tmp_path / "user-cache" / "sitegen" / "jinja").is_dir()
    assert not (tmp_path / ".sitegen-cache").exists()
    key = tmp_path / "user-cache" / "sitegen" / "bytecode.key"
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_bytes()) == 32


def test_untrusted_builds_render_in_the_immutable_sandbox(tmp_path):
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from generator.templates import site_environment

    env = site_environment(tmp_path, SimpleNamespace(untrusted=True))
    assert isinstance(env, ImmutableSandboxedEnvironment) and env.bytecode_cache is None
    assert not isinstance(site_environment(tmp_path, SimpleNamespace(untrusted=False)), ImmutableSandboxedEnvironment)


def test_prompt_environment_renders_plain_text(tmp_path):
    from generator.templates import make_prompt_environment

    env = make_prompt_environment(tmp_path)
    assert env.from_string("{{ '<b>' }} {{ 1500000|number('en') }}").render() == "<b> 1.5M"
    assert env.get_template("prompts/default.txt.j2")
