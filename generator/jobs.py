"""Diagrams, formulas and profile charts as jobs: collected from the content, resolved through their services."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .config import SiteConfig
from .content import Content
from .diagnostics import Diagnostics, Location
from .models import Job, JobResult
from .services.cache import hash_key
from .yamlsource import YamlProblem, parse_yaml


@dataclass
class JobStats:
    """How this build's jobs were resolved, each distinct job counted once."""

    rendered: int = 0
    cached: int = 0
    failed: int = 0
    diagrams_rendered: int = 0
    diagrams_cached: int = 0
    formulas_rendered: int = 0
    formulas_cached: int = 0

    def as_cached(self) -> JobStats:
        """The same jobs as a build that changes nothing sees them: all cached."""
        return JobStats(0, self.rendered + self.cached, self.failed, 0, self.diagrams_rendered + self.diagrams_cached,
                        0, self.formulas_rendered + self.formulas_cached)


def collect_jobs(site_content: Content, config: SiteConfig, diags: Diagnostics,
                 memo: dict[tuple[str, str, str, str], str] | None = None) -> tuple[list[Job], dict[str, dict[str, str]], dict[str, str]]:
    """Jobs from reports and profile text, plus diagrams drawn from profile data.

    `memo` keeps generated diagram sources by (profile path, content hash, kind, lang) between builds.
    """
    jobs: list[Job] = []
    for r in site_content.reports:
        if r.published:
            jobs.extend(r.body.jobs)
    for p in site_content.profiles.values():
        if p.description:
            jobs.extend(p.description.jobs)
    profile_diagrams: dict[str, dict[str, str]] = {}
    aliases: dict[str, str] = {}
    if not config.diagrams.enabled:
        return jobs, profile_diagrams, aliases
    from . import profile_diagrams as pd

    memo = memo if memo is not None else {}

    def source_of(p: Any, kind: str, lang: str) -> str:
        key = (p.path, site_content.sources.get(p.path, ""), kind, lang)
        if key not in memo:
            memo[key] = pd.diagram_source(p.data, kind, lang)
        return memo[key]

    for p in site_content.profiles.values():
        lang = p.data.lang or config.language
        kinds = {}
        for kind in pd.available_kinds(p.data):
            source = source_of(p, kind, lang)
            key = hash_key("mermaid", source)
            jobs.append(Job("mermaid", source, Location(p.path, 1), key))
            kinds[kind] = key
        profile_diagrams[p.slug] = kinds
    resolved: list[Job] = []
    for job in jobs:
        if job.kind != "startup-diagram":
            resolved.append(job)
            continue
        target = _startup_diagram(job, site_content, config, diags, source_of)
        if target is not None:
            aliases[job.key] = target.key
            resolved.append(target)
    return resolved, profile_diagrams, aliases


def _startup_diagram(job: Job, content: Content, config: SiteConfig, diags: Diagnostics,
                     source_of: Callable[[Any, str, str], str]) -> Job | None:
    """A ```startup-diagram fence names a start-up and a kind: `startup: acme` / `kind: revenue`."""
    from . import profile_diagrams as pd

    try:
        spec = parse_yaml(job.source).data
    except YamlProblem as p:
        diags.error("diagram", f"startup-diagram: {p.message}", job.location)
        return None
    if not isinstance(spec, dict) or "startup" not in spec or "kind" not in spec:
        diags.error("diagram", "startup-diagram needs 'startup: <slug>' and 'kind: <kind>'", job.location)
        return None
    profile = content.profiles.get(str(spec["startup"]))
    if profile is None:
        diags.error("reference", f"startup-diagram: unknown start-up '{spec['startup']}'", job.location)
        return None
    kind = str(spec["kind"])
    if kind not in pd.DIAGRAM_KINDS:
        diags.error("diagram", f"startup-diagram: unknown kind '{kind}' (known: {', '.join(pd.DIAGRAM_KINDS)})", job.location)
        return None
    if kind not in pd.available_kinds(profile.data):
        diags.error("diagram", f"startup-diagram: {profile.slug} has no data for '{kind}'", job.location)
        return None
    source = source_of(profile, kind, profile.data.lang or config.language)
    return Job("mermaid", source, job.location, hash_key("mermaid", source))


def resolve_jobs(jobs: list[Job], config: SiteConfig, cache_root: Path, workers: int, want_print: bool,
                 diags: Diagnostics | None = None) -> dict[str, JobResult]:
    """Each job type goes to its service (cache first, then a worker pool)."""
    results: dict[str, JobResult] = {}
    diagrams = [j for j in jobs if j.kind == "mermaid"]
    formulas = [j for j in jobs if j.kind.startswith("math")]
    if diagrams:
        if config.diagrams.enabled:
            from .services.diagrams import resolve_diagrams

            results.update(resolve_diagrams(diagrams, config.diagrams, cache_root, workers, diags=diags))
        else:
            results.update(_as_code(diagrams, "mermaid"))
    if formulas:
        if config.math.enabled:
            from .services.math import resolve_formulas

            results.update(resolve_formulas(formulas, config.math, cache_root, workers, want_print, diags))
        else:
            results.update(_as_code(formulas, "latex"))
    return results


def _as_code(jobs: list[Job], lang: str) -> dict[str, JobResult]:
    import html

    return {j.key: JobResult(f'<pre class="{lang}-source"><code>{html.escape(j.source)}</code></pre>') for j in jobs}


def report_job_diagnostics(jobs: list[Job], results: dict[str, JobResult], diags: Diagnostics) -> JobStats:
    """Service messages carry no location: each job adds its own `file:line`."""
    counts = JobStats()
    seen: set[str] = set()
    for job in jobs:
        res = results.get(job.key)
        if res is None:
            continue
        kind = "diagrams" if job.kind == "mermaid" else "formulas"
        if job.key not in seen:
            seen.add(job.key)
            how = "cached" if res.cached else "rendered"
            setattr(counts, how, getattr(counts, how) + 1)
            setattr(counts, f"{kind}_{how}", getattr(counts, f"{kind}_{how}") + 1)
            if res.errors:
                counts.failed += 1
        for msg in res.errors:
            diags.error("diagram" if job.kind == "mermaid" else "math", msg, job.location)
        for msg in res.warnings:
            diags.warning("diagram" if job.kind == "mermaid" else "math", msg, job.location)
    return counts
