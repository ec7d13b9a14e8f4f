"""Jobs: collected from the content, resolved through their services, counted and located."""

from __future__ import annotations

from generator.config import load_config
from generator.content import load_content
from generator.diagnostics import Diagnostics, Location
from generator.jobs import JobStats, collect_jobs, report_job_diagnostics, resolve_jobs
from generator.models import Job, JobResult

from conftest import BASIC_PROFILE

CONFIG = "title: T\nlanguage: en\ndiagrams: {enabled: true}\nmath: {enabled: false}\n"


def _load(make_project, body: str):
    project = make_project({
        "sitegen.yaml": CONFIG,
        "content/startups/acme.yaml": BASIC_PROFILE,
        "content/reports/r.md": f"---\ntitle: R\ndate: 2024-01-01\nstartups: [acme]\n---\n\n{body}\n",
    }, basic=False)
    config, problems = load_config(project)
    assert config is not None, problems
    content, _ = load_content(project, config)
    return project, config, content


def test_each_distinct_job_is_counted_once_and_every_use_is_located():
    a, b = Location("content/reports/a.md", 3), Location("content/reports/b.md", 7)
    jobs = [Job("mermaid", "graph TD; x", a, "k1"), Job("mermaid", "graph TD; x", b, "k1"), Job("math-inline", "x^", b, "k2")]
    results = {"k1": JobResult("<svg/>", cached=True), "k2": JobResult("", errors=["bad formula"])}
    diags = Diagnostics()
    stats = report_job_diagnostics(jobs, results, diags)
    assert stats == JobStats(rendered=1, cached=1, failed=1, diagrams_cached=1, formulas_rendered=1)
    assert [d.format() for d in diags.items] == ["content/reports/b.md:7: error[math]: bad formula"]
    assert stats.as_cached() == JobStats(cached=2, failed=1, diagrams_cached=1, formulas_cached=1)


def test_a_startup_diagram_fence_draws_the_profile_data(make_project):
    _, config, content = _load(make_project, "```startup-diagram\nstartup: acme\nkind: canvas\n```")
    diags = Diagnostics()
    jobs, profile_diagrams, aliases = collect_jobs(content, config, diags)
    assert diags.items == []
    assert len(aliases) == 1 and next(iter(aliases.values())) in {j.key for j in jobs}
    assert "canvas" in profile_diagrams["acme"]


def test_a_startup_diagram_fence_for_an_unknown_start_up_is_located(make_project):
    _, config, content = _load(make_project, "```startup-diagram\nstartup: nobody\nkind: canvas\n```")
    diags = Diagnostics()
    collect_jobs(content, config, diags)
    [d] = diags.items
    assert d.format().startswith("content/reports/r.md:") and "unknown start-up 'nobody'" in d.message


def test_formulas_are_shown_as_source_when_math_is_off(make_project, tmp_path):
    _, config, _content = _load(make_project, "text")
    job = Job("math-inline", "a<b", Location("content/reports/r.md", 1), "k")
    results = resolve_jobs([job], config, tmp_path / "cache", 1, want_print=False)
    assert results["k"].html == '<pre class="latex-source"><code>a&lt;b</code></pre>'
