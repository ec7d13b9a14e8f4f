"""The build: the one place that knows the order of the stages.

config → content → plan → jobs → assemble (`load_site`, shared by build, check, pdf and serve)
→ render → findings (the gate: links, leaked tokens, duplicates …) → write → PDFs → search
→ commit → record (`build`). The commands combine these stages; none of them passes a mode
flag into the build.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .config import SiteConfig, load_config
from .content import Content, check_drafts, load_content
from .diagnostics import ContentError, Diagnostics, EnvironmentProblem
from .findings import collect_content_findings, collect_link_problems, kept_pages_may_break, page_ids, previous_output
from .incremental import BuildState, IncrementalBuild, Plan, PlanStats
from .incremental.fingerprints import site_fingerprint
from .incremental.record import parsed_count
from .jobs import JobStats, collect_jobs, report_job_diagnostics, resolve_jobs
from .models import Job, JobResult
from .pages import Page, Site, assemble_site
from .templates import collect_template_problems, template_dirs, theme_dir
from .writers.html import collect_static, render_pages, sanitise_svg_files
from .writers.output import BuildLock, OutputTransaction, PreviewOutput, check_output_dir, recover

if TYPE_CHECKING:
    from .writers.pdf import PdfStats


@dataclass
class BuildOptions:
    """What the CLI (or serve, check, publish) asks of a build; None means "as configured"."""

    out: Path | None = None
    strict: bool = False
    jobs: int | None = None
    pdf: bool | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    extra_context: dict[str, Any] = field(default_factory=dict)
    """Template globals added by callers (serve injects its live-reload script)."""
    progress: Callable[[str, int, int], None] | None = None
    incremental: bool = True
    """Reuse the dependency record in the cache folder: render only pages whose inputs changed."""


@dataclass
class BuildStats:
    """What a build did, for the one-line summary."""

    pages: int = 0
    """Pages the site has."""
    rendered: int = 0
    """Pages rendered by this build (the others were kept from the previous output)."""
    pages_written: int = 0
    pages_unchanged: int = 0
    written: int = 0
    """Files written: pages, statics, PDFs, the search index."""
    unchanged: int = 0
    """Files linked unchanged from the previous output."""
    jobs: JobStats = field(default_factory=JobStats)
    incremental: PlanStats = field(default_factory=PlanStats)
    pdf: PdfStats | None = None


@dataclass
class BuildResult:
    config: SiteConfig | None
    diagnostics: Diagnostics
    out_dir: Path | None = None
    site: Site | None = None
    content: Content | None = None
    stats: BuildStats = field(default_factory=BuildStats)
    timings: dict[str, float] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    """Pages rendered by this build (all of them for `sitegen check`)."""


class Stopwatch:
    """Seconds per stage, in the order the stages ran (`sitegen build -v` prints them)."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.clock = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = now - self.clock
        self.clock = now


@dataclass
class Setup:
    """The config stage's answer: the configuration, where the output goes, and the record."""

    project: Path
    options: BuildOptions
    config: SiteConfig
    out: Path
    workers: int
    want_pdf: bool
    diagnostics: Diagnostics
    record: IncrementalBuild
    watch: Stopwatch
    scratch: Any = None
    """An untrusted build's temporary cache folder (removed when the build is done with it)."""

    @property
    def cache_root(self) -> Path:
        return self.project / self.config.cache_dir

    def fail_if_failed(self, message: str) -> None:
        if self.diagnostics.failed(self.options.strict):
            raise ContentError(message, self.diagnostics.sorted())


@dataclass
class LoadedSite:
    """The assembled site and what it was made from: where `build`, `check`, `pdf` and `serve` part ways."""

    setup: Setup
    content: Content
    plan: Plan
    jobs: list[Job]
    aliases: dict[str, str]
    """startup-diagram job key → the profile diagram job it draws."""
    results: dict[str, JobResult]
    site: Site
    stats: BuildStats

    @property
    def diagnostics(self) -> Diagnostics:
        return self.setup.diagnostics

    def result(self, files: dict[str, bytes] | None = None) -> BuildResult:
        s = self.setup
        return BuildResult(s.config, s.diagnostics, s.out, self.site, self.content, self.stats, s.watch.timings, files or {})


def worker_count(requested: int | None) -> int:
    return max(1, requested or os.cpu_count() or 1)


# --- the stages -----------------------------------------------------------------------------------


def configure(project: Path, options: BuildOptions | None = None, state: BuildState | None = None) -> Setup:
    """Config: sitegen.yaml with the caller's overrides, the output folder, the record of the last build."""
    options = options or BuildOptions()
    project = project.resolve()
    watch = Stopwatch()
    if not (project / "sitegen.yaml").is_file():
        raise EnvironmentProblem(f"no sitegen.yaml in {project} (run `sitegen init {project}` or pass -C DIR)")
    diags = Diagnostics()
    config, problems = load_config(project, options.overrides)
    diags.extend(problems)
    if config is None:
        raise ContentError("configuration error", diags.sorted())
    scratch = None
    if config.untrusted:
        config, scratch = untrusted_config(config)
    out = Path(options.out).resolve() if options.out is not None and Path(options.out).is_absolute() else (project / (options.out or config.output_dir)).resolve()
    want_pdf = options.pdf if options.pdf is not None else config.pdf.enabled
    fingerprint = site_fingerprint(config, want_pdf, options.extra_context, theme_dir())
    record = IncrementalBuild(project / config.cache_dir, out, fingerprint, template_dirs(project), state, options.incremental, project=project)
    diags.extend(record.problems())
    watch.lap("config")
    return Setup(project, options, config, out, worker_count(options.jobs), want_pdf, diags, record, watch, scratch)


def untrusted_override(untrusted: bool | None) -> dict[str, Any]:
    """The config override of a command's `--untrusted` flag (none when not given)."""
    return {"untrusted": True} if untrusted else {}


def untrusted_config(config: SiteConfig) -> tuple[SiteConfig, tempfile.TemporaryDirectory]:
    """What an untrusted build changes: no cache the project ships (a fresh temporary folder instead,
    removed with the build), no network for PDFs, no pickled weights, no SVG shipped unsanitised
    (a fork could list its own script-carrying file under `assets.svg_as_is`). Templates are sandboxed by
    `templates.site_environment`, which reads `config.untrusted`."""
    scratch = tempfile.TemporaryDirectory(prefix="sitegen-untrusted-")
    config = config.model_copy(update={
        "cache_dir": scratch.name,
        "pdf": config.pdf.model_copy(update={"allow_network": []}),
        "draft": config.draft.model_copy(update={"allow_pickle": False}),
        "assets": config.assets.model_copy(update={"svg_as_is": []}),
    })
    return config, scratch


def load_site(project: Path | Setup, options: BuildOptions | None = None, state: BuildState | None = None) -> LoadedSite:
    """config → content → plan → jobs → assemble: everything known before a page is rendered."""
    setup = project if isinstance(project, Setup) else configure(project, options, state)
    content = load_site_content(setup)
    plan = setup.record.plan(content)
    setup.watch.lap("load+parse")
    jobs, profile_diagrams, aliases = collect_jobs(content, setup.config, setup.diagnostics, plan.diagram_sources)
    results, job_stats = resolve_site_jobs(setup, plan, jobs, aliases)
    setup.watch.lap("jobs")
    site = assemble_site(setup.config, content, results, profile_diagrams, pdf_links=setup.want_pdf)
    setup.watch.lap("assemble")
    stats = BuildStats(pages=len(site.pages), jobs=job_stats, incremental=plan.stats)
    return LoadedSite(setup, content, plan, jobs, aliases, results, site, stats)


def load_site_content(setup: Setup) -> Content:
    """Content: reports, profiles and drafts; unchanged files come from the record, the rest parse in parallel."""
    known = setup.record.known_files()
    setup.diagnostics.extend(setup.record.problems())  # parsed reports of the record found damaged
    content, problems = load_content(setup.project, setup.config, known, setup.workers)
    setup.diagnostics.extend(problems)
    setup.diagnostics.extend(collect_template_problems(setup.project))
    check_drafts(content, setup.config, setup.diagnostics)
    progress = setup.options.progress
    if progress:
        parsed = sum(1 for rel in content.parsed if rel in content.fresh)
        progress("parse", parsed, parsed)
    return content


def resolve_site_jobs(setup: Setup, plan: Plan, jobs: list[Job], aliases: dict[str, str]) -> tuple[dict[str, JobResult], JobStats]:
    """Jobs: results the plan knows, the rest through their services; every finding at its `file:line`."""
    results, todo = plan.split_jobs(jobs)
    results.update(resolve_jobs(todo, setup.config, setup.cache_root, setup.workers, setup.want_pdf, setup.diagnostics))
    for alias, target in aliases.items():
        if target in results:
            results[alias] = results[target]
    return results, report_job_diagnostics(jobs, results, setup.diagnostics)


def render_site(loaded: LoadedSite, pages: list[Page]) -> tuple[dict[str, bytes], dict[str, set[str]]]:
    """Render: pages to bytes, and the templates each one used."""
    setup = loaded.setup
    progress = setup.options.progress
    done = iter(range(1, len(pages) + 1))
    on_page = (lambda page: progress("render", next(done), len(pages))) if progress else None
    files, problems, used_templates = render_pages(loaded.site, setup.project, pages, extra=setup.options.extra_context,
                                                   on_page=on_page, workers=setup.workers)
    setup.diagnostics.extend(problems)
    loaded.stats.rendered = len(files)
    setup.watch.lap("render")
    return files, used_templates


def collect_site_statics(loaded: LoadedSite) -> dict[str, Path | bytes]:
    """Statics: the theme's and the project's files, project SVGs through the allowlist (before the gate)."""
    project = loaded.setup.project
    statics, problems = sanitise_svg_files(project, collect_static(project, loaded.content.assets), loaded.site.config.assets.svg_as_is)
    loaded.diagnostics.extend(problems)
    return statics


def check_site(loaded: LoadedSite, files: dict[str, bytes], statics: set[str]) -> None:
    """Findings: links, anchors, images, leaked tokens, duplicates; what an unchanged input had is reused.

    A file's own findings ride with its entry in the record (recomputed when its bytes change).
    Links are checked on the pages rendered now; a kept page, unchanged, only needs checking again
    when a page or file it may link to vanished or a re-rendered page lost an anchor.
    """
    setup, content, site = loaded.setup, loaded.content, loaded.site
    found = collect_content_findings(setup.project, content)
    old = previous_output(setup.out)
    pages = dict(files)
    kept = [p.path for p in site.pages if p.path not in files]
    before = set(loaded.plan.previous_pages) | set(loaded.plan.previous_statics)
    if kept and kept_pages_may_break(before, {p.path for p in site.pages} | statics, files, old):
        for path in kept:
            data = old(path)
            if data is not None:
                pages[path] = data

    def other_ids(path: str) -> set[str] | None:
        data = old(path)
        return page_ids(data) if data is not None else None

    found += collect_link_problems(site, content, pages, statics, setup.diagnostics.items, other_ids)
    setup.diagnostics.extend(found)
    setup.watch.lap("findings")


def write_site(loaded: LoadedSite, files: dict[str, bytes], used_templates: dict[str, set[str]],
               statics: dict[str, Path | bytes], tx: Any) -> None:
    """Write: kept pages linked from the previous output, rendered ones written, statics copied."""
    lost = loaded.plan.keep_pages(tx, loaded.site.pages)
    if lost:
        # A kept page's old file vanished since planning: render it after all.
        more, problems, more_templates = render_pages(loaded.site, loaded.setup.project, lost, extra=loaded.setup.options.extra_context)
        loaded.diagnostics.extend(problems)
        if problems:
            raise ContentError("build failed", loaded.diagnostics.sorted())
        files.update(more)
        used_templates.update(more_templates)
    for rel, data in files.items():
        tx.write(rel, data)
    loaded.plan.write_statics(tx, statics)
    loaded.setup.watch.lap("write")


def write_site_pdfs(loaded: LoadedSite, tx: Any) -> None:
    """PDFs: every report and profile (and the book) into the same transaction."""
    from .writers.pdf import write_pdfs

    setup = loaded.setup
    loaded.stats.pdf = write_pdfs(loaded.site, setup.project, tx, setup.diagnostics, setup.workers, strict=setup.options.strict)
    setup.watch.lap("pdf")
    setup.fail_if_failed("PDF build failed")


def write_site_search(loaded: LoadedSite, tx: Any) -> None:
    """Search: the index over the pages just written."""
    from .writers.search import write_search_index

    write_search_index(loaded.site, tx, loaded.diagnostics)
    loaded.setup.watch.lap("search")
    loaded.setup.fail_if_failed("search index failed")


def record_build(loaded: LoadedSite, files: dict[str, bytes], used_templates: dict[str, set[str]], tx: Any) -> None:
    """Record: what this good build read and wrote, for the next one; the summary's file counts."""
    loaded.setup.record.record(loaded.plan, loaded.site, loaded.content, loaded.jobs, loaded.results, files, used_templates,
                               tx.hashes, loaded.diagnostics.items, loaded.stats.jobs)
    stats = loaded.stats
    stats.written = tx.written
    stats.unchanged = tx.linked
    stats.pages_written = sum(1 for p in loaded.site.pages if p.path in tx.changed)
    stats.pages_unchanged = len(loaded.site.pages) - stats.pages_written


# --- the commands' builds ------------------------------------------------------------------------


def build(project: Path, options: BuildOptions | None = None) -> BuildResult:
    """Every stage, into the output folder, atomically: a failed build changes nothing."""
    setup = configure(project, options)
    with _output_lock(setup):
        return build_into(setup, OutputTransaction(setup.out, trash=setup.cache_root / "trash"))


def build_if_changed(project: Path, options: BuildOptions | None = None) -> BuildResult:
    """`sitegen build`: when nothing changed since the last good build into this output, leave it and say so."""
    setup = configure(project, options)
    with _output_lock(setup):
        if setup.record.unchanged():
            return replay_build(setup)
        return build_into(setup, OutputTransaction(setup.out, trash=setup.cache_root / "trash"))


def build_preview(project: Path, options: BuildOptions, state: BuildState) -> BuildResult:
    """`sitegen serve`: every stage into the preview folder `options.out`, changed files replaced in place."""
    setup = configure(project, options, state)
    with _output_lock(setup):
        return build_into(setup, PreviewOutput(setup.out))


def build_into(setup: Setup, output: Any) -> BuildResult:
    """load_site → render → findings → write → PDFs → search → commit → record."""
    loaded = load_site(setup)
    loaded.plan.seed_template_deps(setup.project, setup.config)
    files, used_templates = render_site(loaded, loaded.plan.pages_to_render(loaded.site, loaded.aliases))
    statics = collect_site_statics(loaded)
    check_site(loaded, files, set(statics))  # links to the files as published (an unreadable SVG is not)
    if setup.diagnostics.failed(setup.options.strict):
        setup.record.keep_loaded(loaded.content, loaded.jobs, loaded.results)
        setup.fail_if_failed("build failed")
    with output as tx:
        write_site(loaded, files, used_templates, statics, tx)
        if setup.want_pdf:
            write_site_pdfs(loaded, tx)
        if setup.config.search.enabled:
            write_site_search(loaded, tx)
        tx.commit()
    record_build(loaded, files, used_templates, tx)
    return loaded.result(files)


def replay_build(setup: Setup) -> BuildResult:
    """A build that changes nothing: what the last good build found and counted, from the record."""
    state = setup.record.state
    setup.diagnostics.extend(state.diagnostics)
    pages = len(state.pages)
    stats = BuildStats(pages=pages, pages_unchanged=pages, unchanged=pages + len(state.statics),
                       jobs=state.job_stats.as_cached() if state.job_stats else JobStats(),
                       incremental=PlanStats(reused=parsed_count(state), pages_kept=pages, unchanged=True))
    setup.watch.lap("check")
    setup.fail_if_failed("build failed")
    return BuildResult(setup.config, setup.diagnostics, setup.out, stats=stats, timings=setup.watch.timings)


class _output_lock:
    """One build at a time per project; an interrupted swap of the output is finished first."""

    def __init__(self, setup: Setup):
        check_output_dir(setup.project, setup.out)
        self.setup = setup
        self.lock = BuildLock(setup.project)

    def __enter__(self) -> None:
        self.lock.__enter__()
        try:
            recover(self.setup.out)
        except BaseException:
            self.lock.__exit__(None, None, None)
            raise

    def __exit__(self, *exc: Any) -> None:
        self.lock.__exit__(*exc)
