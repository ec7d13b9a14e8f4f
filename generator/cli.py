"""The command line: the only module that imports Click. Each command parses, calls one engine, prints, exits."""

from __future__ import annotations

import gc
import os
import signal
import sys
from pathlib import Path

import click

from . import __version__
from .diagnostics import Diagnostic, SitegenError


def print_diagnostics(diags: list[Diagnostic], quiet: bool = False) -> None:
    for d in diags:
        if quiet and d.level != "error":
            continue
        click.echo(d.format(), err=True)


def fail(exc: SitegenError) -> None:
    """Print a user-facing error plainly and exit with its code (no traceback)."""
    print_diagnostics(exc.diagnostics)
    errors = sum(1 for d in exc.diagnostics if d.level == "error")
    warnings = sum(1 for d in exc.diagnostics if d.level == "warning")
    if exc.message and not exc.diagnostics:
        click.echo(f"error: {exc.message}", err=True)
    elif exc.diagnostics:
        click.echo(f"sitegen: {exc.message or 'failed'}: {errors} error(s), {warnings} warning(s)", err=True)
    sys.exit(exc.exit_code)


class Context:
    def __init__(self, project: Path, debug: bool, quiet: bool, verbose: bool):
        self.project = project
        self.debug = debug
        self.quiet = quiet
        self.verbose = verbose


pass_ctx = click.make_pass_decorator(Context)


def run(ctx: Context, fn, *args, **kwargs):
    """Call an engine; user mistakes become plain messages, Ctrl-C exits 130."""
    try:
        return fn(*args, **kwargs)
    except SitegenError as exc:
        if ctx.debug:
            raise
        fail(exc)
    except KeyboardInterrupt:
        click.echo("sitegen: interrupted", err=True)
        sys.exit(130)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="sitegen")
@click.option("-C", "project", type=click.Path(file_okay=False, path_type=Path), default=".", show_default=True,
              help="Project folder (holds sitegen.yaml).")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only print errors.")
@click.option("-v", "--verbose", is_flag=True, help="Print timings per stage.")
@click.pass_context
def main(click_ctx: click.Context, project: Path, debug: bool, quiet: bool, verbose: bool) -> None:
    """sitegen: a static site generator for analysis reports on AI start-ups.

    Turns Markdown reports and YAML start-up profiles into a static website, PDFs,
    build-time diagrams and formulas, and GPT-2 drafted sections for review.
    """
    click_ctx.obj = Context(project, debug, quiet, verbose)
    # SIGTERM behaves like Ctrl-C: temp output is removed, the old output stays.
    signal.signal(signal.SIGTERM, signal.default_int_handler)


@main.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: output_dir from sitegen.yaml).")
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=None, help="Worker processes (default: all cores).")
@click.option("--pdf/--no-pdf", default=None, help="Also build PDFs (default: pdf.enabled in sitegen.yaml).")
@click.option("--untrusted", is_flag=True, default=None,
              help="The project is a change you do not trust (a fork's pull request): sandboxed templates, no shipped caches, no network.")
@pass_ctx
def build(ctx: Context, out: Path | None, strict: bool, jobs: int | None, pdf: bool | None, untrusted: bool | None) -> None:
    """Build the site into the output folder (atomically: a failed build changes nothing)."""
    from .build import BuildOptions, build_if_changed, untrusted_override

    progress = StageProgress(ctx.quiet)
    # One build, then exit: the cyclic collector would only re-walk the loaded site again and again.
    gc.disable()
    try:
        options = BuildOptions(out=out, strict=strict, jobs=jobs, pdf=pdf, progress=progress, overrides=untrusted_override(untrusted))
        result = run(ctx, build_if_changed, ctx.project, options)
    finally:
        progress.close()
        gc.enable()
    print_diagnostics(result.diagnostics.sorted(), quiet=ctx.quiet)
    if not ctx.quiet:
        summarize(result, ctx.verbose)


class StageProgress:
    """Progress of long stages: rich bars on a terminal, plain lines otherwise (CI logs), none with -q."""

    LONG = 50
    """Stages with fewer items finish too fast to be worth a bar."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.tty = sys.stderr.isatty() and os.environ.get("TERM") != "dumb" and not os.environ.get("CI")
        self.bar = None
        self.tasks: dict[str, int] = {}
        self.printed: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.quiet or total < self.LONG:
            return
        if self.tty:
            if self.bar is None:
                from rich.console import Console
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

                self.bar = Progress(TextColumn("sitegen: {task.description:<8}"), BarColumn(), MofNCompleteColumn(),
                                    TimeElapsedColumn(), console=Console(stderr=True), transient=True)
                self.bar.start()
            if stage not in self.tasks:
                self.tasks[stage] = self.bar.add_task(stage, total=total)
            self.bar.update(self.tasks[stage], completed=done, total=total)
            return
        # Plain lines: a quarter at a time, so a CI log shows movement without a line per page.
        quarter = 4 * done // total
        if quarter > self.printed.get(stage, 0) or (done == total and self.printed.get(stage) != 4):
            self.printed[stage] = quarter
            click.echo(f"sitegen: {stage} {done}/{total}", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def summarize(result, verbose: bool) -> None:
    """One line of what the build did, one line of where the time went (-v: a table and more)."""
    s = result.stats
    jobs = s.jobs
    inc = s.incremental
    warn = len(result.diagnostics.warnings)
    parts = [
        f"{s.pages_written} written, {s.pages_unchanged} unchanged",
        f"diagrams {jobs.diagrams_rendered} rendered/{jobs.diagrams_cached} cached",
        f"formulas {jobs.formulas_rendered} rendered/{jobs.formulas_cached} cached",
    ]
    pdf = s.pdf
    if pdf is not None:
        parts.append(f"PDFs {pdf.rendered} rendered/{pdf.cached} cached" + (f", {pdf.failed} failed" if pdf.failed else ""))
    parts.append(f"{warn} warning(s)")
    total = sum(result.timings.values())
    click.echo(f"sitegen: built {s.pages} pages into {result.out_dir} ({'; '.join(parts)}) in {total:.2f}s", err=True)
    click.echo("  time: " + " · ".join(f"{stage} {secs:.2f}s" for stage, secs in result.timings.items()), err=True)
    if verbose:
        for stage, secs in result.timings.items():
            click.echo(f"  {stage:<12} {secs:7.3f}s", err=True)
        if inc.unchanged:
            click.echo("  incremental: nothing changed since the last build; the output was left as it is", err=True)
            return
        click.echo(
            f"  incremental: {inc.parsed} report(s) parsed, {inc.reused} reused; "
            f"{inc.loaded} profile/draft file(s) loaded, {inc.loaded_reused} reused; "
            f"{inc.pages_rendered} page(s) rendered, {inc.pages_kept} kept; "
            f"{s.written} file(s) written, {s.unchanged} linked",
            err=True,
        )


@main.command("draft")
@click.argument("slugs", nargs=-1)
@click.option("--model", default=None, help="Model id (e.g. gpt2) or a folder saved with save_pretrained (default: draft.model).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="Where generation runs (default: draft.device).")
@click.option("--seed", type=int, default=None, help="Random seed; same model + prompt + seed gives the same draft (default: draft.seed).")
@click.option("--force", is_flag=True, help="Regenerate existing drafts; reviewed drafts are never replaced.")
@click.option("--dry-run", is_flag=True, help="List what would be drafted; load no model, write nothing.")
@pass_ctx
def draft_command(ctx: Context, slugs: tuple[str, ...], model: str | None, device: str | None, seed: int | None, force: bool, dry_run: bool) -> None:
    """Draft the missing profile sections with GPT-2 into content/drafts/ (for review)."""
    from .commands.draft import DraftOptions, draft as run_draft

    result = run(ctx, run_draft, ctx.project, DraftOptions(slugs, model, device, seed, force, dry_run))
    print_diagnostics(result.diagnostics, quiet=ctx.quiet)
    for item in result.planned if dry_run else []:
        click.echo(f"would draft {item.key} -> {item.target} ({item.reason}; prompt {item.template})")
    for path in result.written:
        click.echo(f"drafted {path}")
    if not ctx.quiet and result.failed:
        errors = sum(1 for d in result.diagnostics if d.level == "error")
        click.echo(f"sitegen: draft stopped: {errors} error(s); {len(result.written)} draft(s) written", err=True)
    elif not ctx.quiet:
        kept = sum(1 for s in result.skipped if s.reason == "reviewed")
        rate = f", {result.new_tokens / result.seconds:.1f} tokens/s" if result.seconds > 0 else ""
        verb = "would draft" if dry_run else "drafted"
        count = len(result.planned) if dry_run else len(result.written)
        click.echo(f"sitegen: {verb} {count} section(s) with {result.model}; {len(result.skipped)} already drafted ({kept} reviewed, kept){rate}", err=True)
    sys.exit(result.exit_code)


@main.command("publish")
@click.option("--remote", default=None, help="Git remote to push to (default: publish.remote, origin).")
@click.option("--branch", default=None, help="Branch that holds the published site (default: publish.branch, gh-pages).")
@click.option("-m", "--message", default=None, help="Commit message; {sha} is the source commit (default: publish.message).")
@click.option("--cname", default=None, help="Custom domain for CNAME (default: publish.cname, else the CNAME already on the branch).")
@click.option("--dry-run", is_flag=True, help="Build, then list files that would be added, changed or removed; push nothing.")
@click.option("--force", is_flag=True, help="Replace the branch by one new commit; lists the commits that are lost.")
@click.option("--strict", is_flag=True, help="Treat build warnings as errors (then nothing is published).")
@click.option("--pdf/--no-pdf", default=None, help="Also build PDFs (default: pdf.enabled in sitegen.yaml).")
@pass_ctx
def publish_command(ctx: Context, remote: str | None, branch: str | None, message: str | None, cname: str | None,
                    dry_run: bool, force: bool, strict: bool, pdf: bool | None) -> None:
    """Build, then push the site as ONE new commit on top of the remote gh-pages branch."""
    from .build import BuildOptions
    from .commands.publish import PublishOptions, publish_project

    options = PublishOptions(remote=remote, branch=branch, message=message, cname=cname, dry_run=dry_run, force=force)
    built, result = run(ctx, publish_project, ctx.project, options, BuildOptions(strict=strict, pdf=pdf))
    print_diagnostics(built.diagnostics.sorted(), quiet=ctx.quiet)
    if not ctx.quiet:
        summarize(built, ctx.verbose)
    for line in result.summary():
        click.echo(line)


@main.command("init")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--lang", "language", type=click.Choice(["zh", "en"]), default="zh", show_default=True,
              help="Language of the site and its example content.")
@click.option("--title", default=None, help="Site title (default: a placeholder).")
@pass_ctx
def init_command(ctx: Context, directory: Path | None, language: str, title: str | None) -> None:
    """Create a new site in DIR (default: -C or .); existing files are never overwritten."""
    from .commands.init import InitOptions, write_scaffold

    target = ctx.project / directory if directory is not None else ctx.project
    result = run(ctx, write_scaffold, target, InitOptions(language=language, title=title))
    for line in result.summary():
        click.echo(line)


@main.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--into", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the reports, relative to the project (default: content/reports).")
@click.option("--dry-run", is_flag=True, help="Print the summary and a diff of every report; write nothing.")
@click.option("--force", is_flag=True, help="Overwrite reports that already exist.")
@pass_ctx
def import_command(ctx: Context, files: tuple[Path, ...], into: Path | None, dry_run: bool, force: bool) -> None:
    """Turn raw analysis articles (FILE…) into reports with front matter."""
    from .commands.importer import format_summary, import_files

    target = ctx.project / (into if into is not None else Path("content") / "reports")
    result = run(ctx, import_files, list(files), target, dry_run=dry_run, force=force)
    print_diagnostics(result.diagnostics, quiet=ctx.quiet)
    if dry_run or not ctx.quiet:
        click.echo(format_summary(result, diff=dry_run), nl=False)
    sys.exit(1 if result.errors else 0)


@main.command("pdf")
@click.argument("slugs", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every report and start-up profile.")
@click.option("--book", is_flag=True, default=None, help="The whole site as one book (pdf/book.pdf).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the PDFs (default: the pdf/ folder of the output directory).")
@click.option("--strict", is_flag=True, help="Treat warnings as errors (then no PDF is written).")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=None, help="PDFs rendered at once (default: all cores).")
@click.option("--untrusted", is_flag=True, default=None,
              help="The project is a change you do not trust (a fork's pull request): sandboxed templates, no shipped caches, no network.")
@pass_ctx
def pdf_command(ctx: Context, slugs: tuple[str, ...], all_: bool, book: bool | None, out: Path | None, strict: bool, jobs: int | None,
                untrusted: bool | None) -> None:
    """Write PDFs of reports and start-ups (SLUG…), or --all, and/or the --book; no selection: all, as configured."""
    from .commands.pdf import PdfOptions, run_pdf_command

    result = run(ctx, run_pdf_command, ctx.project, PdfOptions(slugs, all_, book, out, strict, jobs, bool(untrusted)))
    print_diagnostics(result.diagnostics.sorted(), quiet=ctx.quiet)
    if not ctx.quiet:
        s = result.stats
        click.echo(
            f"sitegen: {len(result.written)} PDF(s) written, {len(result.unchanged)} unchanged in {result.out_dir} "
            f"({s.rendered} rendered, {s.cached} cached, {s.pages} pages)",
            err=True,
        )


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 makes the preview reachable from your network.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port (0: any free port).")
@click.option("--strict", is_flag=True, help="Treat warnings as errors (the overlay shows them).")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=None, help="Worker processes for the first build.")
@click.option("--untrusted", is_flag=True, default=None,
              help="The project is a change you do not trust (a fork's pull request): sandboxed templates, no shipped caches, no network.")
@pass_ctx
def serve_command(ctx: Context, host: str, port: int, strict: bool, jobs: int | None, untrusted: bool | None) -> None:
    """Preview the site with live reload; builds into a temp folder (output/ is never touched)."""
    from .commands.serve import ServeOptions, serve

    def log(line: str) -> None:
        if not ctx.quiet or "error" in line:
            click.echo(line, err=True)

    run(ctx, serve, ctx.project, ServeOptions(host=host, port=port, strict=strict, jobs=jobs, untrusted=bool(untrusted)), log, ctx.verbose)


@main.command("check")
@click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 1).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: one line per finding, file:line:col: level[code]: message; json: one document.")
@click.option("--untrusted", is_flag=True, default=None,
              help="The project is a change you do not trust (a fork's pull request): sandboxed templates, no shipped caches, no network.")
@pass_ctx
def check_command(ctx: Context, strict: bool, fmt: str, untrusted: bool | None) -> None:
    """Find what is broken without writing anything: links, anchors, images, references, LM tokens, duplicates."""
    import json

    from .commands.check import CheckOptions, check

    result = run(ctx, check, ctx.project, CheckOptions(strict=strict, untrusted=bool(untrusted)))
    if fmt == "json":
        click.echo(json.dumps(result.to_json(), ensure_ascii=False, indent=1))
    else:
        for d in result.diagnostics:
            if not (ctx.quiet and d.level != "error"):
                click.echo(d.format())
        if not ctx.quiet:
            click.echo(f"sitegen: checked {result.files} file(s) and {result.pages} page(s): "
                       f"{len(result.errors)} error(s), {len(result.warnings)} warning(s)", err=True)
    sys.exit(result.exit_code)


@main.command("doctor")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@pass_ctx
def doctor_command(ctx: Context, fmt: str) -> None:
    """Versions, fonts, Pango, diagram renderer, draft model, pagefind, chromium, cache size — and fixes."""
    import json

    from .commands.doctor import doctor

    report = run(ctx, doctor, ctx.project)
    if fmt == "json":
        click.echo(json.dumps([f.to_json() for f in report.findings], ensure_ascii=False, indent=1))
    else:
        for f in report.findings:
            if not (ctx.quiet and f.status in ("ok", "info")):
                click.echo(f.format())
        if not ctx.quiet:
            n = len(report.problems)
            click.echo(f"sitegen doctor: {'no problems found' if n == 0 else f'{n} problem(s) found'}", err=True)
    sys.exit(report.exit_code)


if __name__ == "__main__":  # pragma: no cover
    main()

