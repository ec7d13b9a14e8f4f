"""The build: the one place that knows the order of the stages."""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .config import SiteConfig, load_config
from .incremental import IncrementalBuild, site_fingerprint
from .content import Content, SourceFile, load_content, load_report
from .diagnostics import ContentError, Diagnostic, Diagnostics, EnvironmentProblem, Location
from .models import Job, JobResult
from .pages import Site, assemble_site
from .services.cache import hash_key
from .templates import template_dirs, theme_dir
from .writers.html import collect_static, render_pages
from .writers.output import BuildLock, OutputTransaction, PreviewOutput, check_output_dir, recover
from .yamlsource import parse_yaml, YamlProblem


@dataclass
class BuildOptions:
    """What the CLI (or serve, check, publish) asks of a build; None means "as configured"."""

    out: Path | None = None
    strict: bool = False
    jobs: int | None = None
    pdf: bool | None = None
    write: bool = True
    """False for `sitegen check`: everything a build finds, nothing written."""
    overrides: dict[str, Any] = field(default_factory=dict)
    extra_context: dict[str, Any] = field(default_factory=dict)
    """Template globals added by callers (serve injects its live-reload script)."""
    progress: Callable[[str, int, int], None] | None = None
    incremental: bool = True
    """Reuse the dependency record in the cache folder: render only pages whose inputs changed."""
    state: Any = None
    """A dependency record kept in memory between builds (serve); None loads and saves the cache folder's."""
    in_place: bool = False
    """Replace changed files in place instead of swapping in a new tree (serve's temp preview only)."""
    pages: bool = True
    """With write=False: False stops after assembling the site (`sitegen pdf` renders no HTML pages)."""
    skip_unchanged: bool = False
    """When nothing changed since the last good build into this output, leave it as it is and say so
    (the result then holds no site; the CLI asks for this, API callers get a full result)."""


@dataclass
class BuildResult:
    config: SiteConfig | None
    diagnostics: Diagnostics
    out_dir: Path | None = None
    site: Site | None = None
    content: Content | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    """Pages rendered by this build (all of them when nothing is written)."""


def worker_count(requested: int | None) -> int:
    return max(1, requested or os.cpu_count() or 1)


def _parse_chunk(args: tuple[list[SourceFile], str]) -> list[tuple[Any, list[Diagnostic]]]:
    files, lang = args
    out = []
    for src in files:
        local: list[Diagnostic] = []
        out.append((load_report(src, local, lang), local))
    return out


def parse_reports_parallel(files: list[SourceFile], lang: str, workers: int) -> list[tuple[Any, list[Diagnostic]]]:
    """Markdown parsing is pure and CPU-bound: split it across cores (fork keeps start-up cheap)."""
    if workers <= 1 or len(files) < 40:
        return _parse_chunk((files, lang))
    chunks = [files[i::workers] for i in range(workers)]
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        parts = list(pool.map(_parse_chunk, [(c, lang) for c in chunks]))
    # Re-interleave to keep the input order.
    out: list[Any] = [None] * len(files)
    for w, part in enumerate(parts):
        for i, item in enumerate(part):
            out[w + i * workers] = item
    return out


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


def report_job_diagnostics(jobs: list[Job], results: dict[str, JobResult], diags: Diagnostics) -> dict[str, int]:
    """Service messages carry no location: each job adds its own `file:line`."""
    counts = {"rendered": 0, "cached": 0, "failed": 0, "diagrams_rendered": 0, "diagrams_cached": 0,
              "formulas_rendered": 0, "formulas_cached": 0}
    seen: set[str] = set()
    for job in jobs:
        res = results.get(job.key)
        if res is None:
            continue
        if job.key not in seen:
            seen.add(job.key)
            how = "cached" if res.cached else "rendered"
            counts[how] += 1
            counts[f"{'diagrams' if job.kind == 'mermaid' else 'formulas'}_{how}"] += 1
            if res.errors:
                counts["failed"] += 1
        for msg in res.errors:
            diags.error("diagram" if job.kind == "mermaid" else "math", msg, job.location)
        for msg in res.warnings:
            diags.warning("diagram" if job.kind == "mermaid" else "math", msg, job.location)
    return counts


def check_drafts(content: Content, config: SiteConfig, diags: Diagnostics) -> None:
    """Missing drafts show a placeholder (a warning; --strict fails); unreviewed ones may fail --strict."""
    for r in content.reports:
        if not r.published:
            continue
        for slug in r.meta.startups:
            p = content.profiles.get(slug)
            missing = [s for s in r.meta.draft_sections if p is not None and s not in p.drafts]
            if missing:
                line = r.meta_lines.get(("draft_sections",), 1)
                diags.warning("draft-missing", f"not drafted yet for {slug}: {', '.join(missing)} (run `sitegen draft {slug}`)", Location(r.path, line))
    for p in content.profiles.values():
        missing = [s for s in p.data.drafts if s not in p.drafts]
        if missing:
            line = p.lines.get("drafts", 1)
            diags.warning("draft-missing", f"not drafted yet: {', '.join(missing)} (run `sitegen draft {p.slug}`)", Location(p.path, line))
        for section, d in sorted(p.drafts.items()):
            if not d.reviewed and config.draft.require_review:
                diags.warning("draft-unreviewed", f"draft '{section}' of {p.slug} is not reviewed (set status: reviewed)", Location(d.path, 1))


def build(project: Path, options: BuildOptions | None = None) -> BuildResult:
    """load_config → load_content → collect jobs → resolve jobs → assemble → render → write → PDFs → search."""
    options = options or BuildOptions()
    project = project.resolve()
    diags = Diagnostics()
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = now - clock
        clock = now

    if not (project / "sitegen.yaml").is_file():
        raise EnvironmentProblem(f"no sitegen.yaml in {project} (run `sitegen init {project}` or pass -C DIR)")
    config, problems = load_config(project, options.overrides)
    diags.extend(problems)
    if config is None:
        raise ContentError("configuration error", diags.sorted())
    out = (project / (options.out or config.output_dir)).resolve() if options.out is None or not Path(options.out).is_absolute() else Path(options.out).resolve()
    cache_root = project / config.cache_dir
    want_pdf = options.pdf if options.pdf is not None else config.pdf.enabled
    workers = worker_count(options.jobs)
    result = BuildResult(config, diags, out)
    if options.write:
        check_output_dir(project, out)
    lock = BuildLock(project) if options.write else None
    if lock:
        lock.__enter__()
    try:
        if options.write:
            recover(out)
        inc = IncrementalBuild(cache_root, out, site_fingerprint(config, want_pdf, options.extra_context, theme_dir()),
                               template_dirs(project), options.state, options.incremental, save=options.write, project=project)
        result.stats["incremental"] = inc.counts
        progress = options.progress or (lambda stage, done, total: None)
        lap("config")
        # A test that asks to pause mid-write (SITEGEN_TEST_PAUSE) needs a build that writes.
        if options.skip_unchanged and options.write and not os.environ.get("SITEGEN_TEST_PAUSE") and inc.unchanged(project):
            inc.replay(result)
            lap("check")
            if diags.failed(options.strict):
                raise ContentError("build failed", diags.sorted())
            return result
        parse = inc.parser(lambda files: parse_reports_parallel(files, config.language, workers))
        content, problems = load_content(project, config, parse, inc.reuse)
        progress("parse", inc.counts.get("parsed", 0), inc.counts.get("parsed", 0))
        diags.extend(problems)
        check_drafts(content, config, diags)
        result.content = content
        lap("load+parse")

        jobs, profile_diagrams, aliases = collect_jobs(content, config, diags, inc.diagram_sources(content.sources))
        results, todo = inc.split_jobs(jobs)
        results.update(resolve_jobs(todo, config, cache_root, workers, want_pdf, diags))
        inc.remember_results(jobs, results)
        for alias, target in aliases.items():
            if target in results:
                results[alias] = results[target]
        result.stats["jobs"] = report_job_diagnostics(jobs, results, diags)
        lap("jobs")

        site = assemble_site(config, content)
        site.results = results
        site.profile_diagrams = profile_diagrams
        site.pdf_links = want_pdf
        result.site = site
        lap("assemble")
        if not options.write and not options.pages:
            if diags.failed(options.strict):
                raise ContentError("build failed", diags.sorted())
            return result

        todo_pages = inc.plan_pages(site, content.sources, aliases, render_all=not options.write)
        inc.seed_template_deps(project)
        done = iter(range(1, len(todo_pages) + 1))
        files, problems, used_templates = render_pages(
            site, project, todo_pages, extra=options.extra_context, on_page=lambda page: progress("render", next(done), len(todo_pages)),
            workers=workers,
        )
        diags.extend(problems)
        result.stats["pages"] = len(site.pages)
        result.stats["rendered"] = len(files)
        result.stats["templates"] = used_templates
        result.files = files
        lap("render")

        if not options.write:
            # `sitegen check` wants every finding and the rendered pages, even when the build would fail.
            return result
        if diags.failed(options.strict):
            inc.save_parsed()
            raise ContentError("build failed", diags.sorted())

        with (PreviewOutput(out) if options.in_place else OutputTransaction(out, trash=cache_root / "trash")) as tx:
            _pause_for_tests()
            lost = inc.keep_pages(tx)
            if lost:
                # A kept page's old file vanished since planning: render it after all.
                more, problems, more_templates = render_pages(site, project, lost, extra=options.extra_context)
                diags.extend(problems)
                if problems:
                    raise ContentError("build failed", diags.sorted())
                files.update(more)
                used_templates.update(more_templates)
            for rel, data in files.items():
                tx.write(rel, data)
            inc.write_statics(tx, collect_static(project, content.assets))
            lap("write")
            if want_pdf:
                from .writers.pdf import write_pdfs

                result.stats["pdf"] = write_pdfs(site, project, tx, diags, workers, strict=options.strict)
                lap("pdf")
                if diags.failed(options.strict):
                    raise ContentError("PDF build failed", diags.sorted())
            if config.search.enabled:
                from .writers.search import write_search_index

                write_search_index(site, tx, diags)
                lap("search")
                if diags.failed(options.strict):
                    raise ContentError("search index failed", diags.sorted())
            tx.commit()
        inc.finish(files, used_templates, tx.hashes, content, diags.items, result.stats)
        result.stats["written"] = tx.written
        result.stats["unchanged"] = tx.linked
        result.stats["pages_written"] = sum(1 for p in site.pages if p.path in tx.changed)
        result.stats["pages_unchanged"] = len(site.pages) - result.stats["pages_written"]
        return result
    finally:
        result.timings = timings
        if lock:
            lock.__exit__(None, None, None)


def _pause_for_tests() -> None:
    """SITEGEN_TEST_PAUSE lets the atomicity tests kill a build mid-write (no effect otherwise)."""
    pause = os.environ.get("SITEGEN_TEST_PAUSE")
    if pause:
        time.sleep(float(pause))
