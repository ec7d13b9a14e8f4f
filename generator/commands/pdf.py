"""`sitegen pdf`: load the site, render the PDFs asked for, write them all or nothing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..build import BuildOptions, load_site, untrusted_override
from ..diagnostics import ContentError, Diagnostics, EnvironmentProblem, Location
from ..services.cache import write_atomic
from ..writers.output import MANIFEST, BuildLock, read_manifest
from ..writers.pdf import PdfStats, produce_pdfs


@dataclass
class PdfOptions:
    slugs: tuple[str, ...] = ()
    all: bool = False
    book: bool | None = None
    out: Path | None = None
    strict: bool = False
    jobs: int | None = None
    untrusted: bool = False


@dataclass
class PdfRun:
    diagnostics: Diagnostics
    out_dir: Path
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    stats: PdfStats = field(default_factory=PdfStats)


def run_pdf_command(project: Path, options: PdfOptions) -> PdfRun:
    """`sitegen pdf`: load the site (no HTML pages), render the PDFs asked for, write them all or nothing."""
    project = project.resolve()
    loaded = load_site(project, BuildOptions(strict=options.strict, jobs=options.jobs, pdf=True,
                                              overrides=untrusted_override(options.untrusted)))
    loaded.setup.fail_if_failed("build failed")
    site, config, diags = loaded.site, loaded.setup.config, loaded.diagnostics
    site_out = (project / config.output_dir).resolve()
    out = (Path(options.out) if options.out and Path(options.out).is_absolute() else project / (options.out or Path(config.output_dir) / "pdf")).resolve()
    _check_pdf_out(project, out)
    known = {r.slug for r in site.reports} | {p.slug for p in site.profiles}
    unknown = [s for s in options.slugs if s not in known]
    if unknown:
        raise EnvironmentProblem(f"unknown report or start-up: {', '.join(unknown)} (see content/reports and content/startups)")
    for r in site.reports:
        if r.slug in options.slugs and not r.meta.pdf:
            diags.warning("pdf", "front matter says pdf: false; no PDF written", Location(r.path, r.meta_lines.get(("pdf",), 1)))
    slugs: set[str] | None
    if not options.slugs and not options.all and not options.book:
        slugs, book = None, config.pdf.book  # no selection: everything the build would write
    else:
        slugs = None if options.all else set(options.slugs)
        book = bool(options.book)
    run = PdfRun(diags, out)
    files = produce_pdfs(site, project, diags, loaded.setup.workers, slugs, book, stats=run.stats)
    if diags.failed(options.strict):
        raise ContentError("PDF build failed", diags.sorted())
    with BuildLock(project):
        manifest = None
        if out == site_out / "pdf":
            # PDFs in the site's output are part of it: listed in its manifest (publish checks it),
            # and a first `sitegen pdf` makes the folder recognisably sitegen's for later builds.
            manifest = read_manifest(site_out) or {"generator": "sitegen", "files": {}}
        for rel, data in sorted(files.items()):
            name = rel.removeprefix("pdf/")
            dest = out / name
            try:
                if dest.is_file() and not dest.is_symlink() and dest.read_bytes() == data:
                    run.unchanged.append(name)
                else:
                    write_atomic(dest, data)
                    run.written.append(name)
            except OSError as exc:
                raise EnvironmentProblem(f"cannot write {dest}: {exc.strerror}") from None
            if manifest is not None:
                manifest.setdefault("files", {})[rel] = hashlib.sha256(data).hexdigest()
        if manifest is not None and run.written:
            manifest["files"] = dict(sorted(manifest["files"].items()))
            write_atomic(site_out / MANIFEST, (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))
    return run


def _check_pdf_out(project: Path, out: Path) -> None:
    """PDFs are only ever added or replaced, but never inside the sources or at a top-level folder."""
    home = Path.home().resolve()
    if out in (Path("/"), home, project) or out in project.parents:
        raise EnvironmentProblem(f"refusing to write PDFs into {out}: it is the project, / or ~")
    for protected in ("content", "templates", "generator", ".git"):
        if out == (project / protected).resolve() or (project / protected).resolve() in out.parents:
            raise EnvironmentProblem(f"refusing to write PDFs into {out}: it lies inside {protected}/")
    if out.exists() and not out.is_dir():
        raise EnvironmentProblem(f"refusing to write PDFs into {out}: it is not a folder")

