"""The parent side: fonts, cache and the worker pool around the renders, and the build's PDF stage (`write_pdfs`).

Each PDF is cached by a hash of everything that goes into it; missing ones are rendered on the
pool of generator/workers.py in fresh interpreters with a wall-clock and a memory limit, and the
renders' problems become diagnostics naming the source file.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Protocol

from ... import __version__
from ...diagnostics import Diagnostics, EnvironmentProblem, Location
from ...pages import Site
from ...services.cache import Cache, hash_key
from ...services.fetcher import FetchPolicy
from ...services.fonts import FontPlan, faces_to_cut, plan_fonts, write_font_files
from .documents import PdfDoc, collect_documents
from .settings import RenderJob, RenderOutcome, allowed_roots, base_stylesheets
from .worker import run_job, warm_worker

PIPELINE_VERSION = "1"
"""Bump when the print pipeline changes output for the same input: part of every PDF cache key."""
RENDER_TARGET = "generator.writers.pdf.worker:render_pdf"
WORKER_START_TIMEOUT = 90.0


class Sink(Protocol):
    """Where finished PDFs go: the build's OutputTransaction, or the `sitegen pdf` writer."""

    def write(self, rel: str, data: bytes) -> None: ...


# --- the parent side ---------------------------------------------------------------------------


class WorkerPool:
    """PDF workers in fresh interpreters (no inherited state), memory-limited; a render over its time limit is killed."""

    def __init__(self, size: int, memory_mb: int, timeout: float, target: str = RENDER_TARGET):
        from ...workers import Pool

        self.memory_mb = memory_mb
        self.timeout = timeout
        self.target = target
        self.pool = Pool(run_job, size, timeout=timeout, memory_mb=memory_mb, start="fresh", warm=warm_worker,
                         start_timeout=WORKER_START_TIMEOUT, name="sitegen-pdf")

    def start(self, count: int | None = None) -> "WorkerPool":
        """Start workers now, so they load WeasyPrint while the parent prepares fonts."""
        self.pool.start(count)
        return self

    def run(self, jobs: list[Any]) -> dict[str, Any]:
        """job name → what its target returned, or a RenderOutcome naming why there is none."""
        limits = [getattr(job, "timeout", None) or self.timeout for job in jobs]
        outcomes = self.pool.run([(getattr(job, "target", None) or self.target, job) for job in jobs], timeouts=limits)
        results: dict[str, Any] = {}
        for job, limit, o in zip(jobs, limits, outcomes):
            if not o.started:
                self.close()
                raise EnvironmentProblem(self._start_problem(o))
            results[job.name] = o.value if o.ok else RenderOutcome(errors=[self._problem(o, limit)])
        return results

    def _problem(self, o: Any, limit: float) -> str:
        if o.status == "timeout":
            return f"PDF render exceeded {limit:g} s (pdf.timeout); the worker was stopped"
        if o.status == "memory":
            return f"PDF render exceeded the memory limit of {self.memory_mb} MB"
        if o.status == "crashed":
            return f"PDF worker stopped unexpectedly (exit code {o.exitcode})"
        return f"PDF render failed: {o.detail}"

    @staticmethod
    def _start_problem(o: Any) -> str:
        if o.status == "timeout":
            return f"PDF worker did not start within {WORKER_START_TIMEOUT:g} s"
        if o.status == "crashed":
            return f"PDF worker could not start (PDF worker stopped unexpectedly (exit code {o.exitcode}))"
        return f"PDF worker could not start: {o.detail} (is WeasyPrint installed? run scripts/setup.sh)"

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- producing PDFs ----------------------------------------------------------------------------


@dataclass
class PdfStats:
    rendered: int = 0
    cached: int = 0
    failed: int = 0
    pages: int = 0
    fonts_cut: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def _weasyprint_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("weasyprint")
    except PackageNotFoundError:
        return "?"


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"
    except OSError:
        return "unreadable"


def _cache_key(doc: PdfDoc, sheets: list[str], fonts: FontPlan, config: Any) -> str:
    """Everything a PDF's bytes depend on: HTML, CSS, fonts, images, limits and tool versions."""
    files = sorted(f"{p}:{_file_digest(p)}" for p in doc.files)
    limits = repr((sorted(config.allow_network), config.max_image_pixels))
    return hash_key("pdf", PIPELINE_VERSION, __version__, _weasyprint_version(), doc.html, *sheets, fonts.digest, limits, *files)


def _pack(outcome: RenderOutcome) -> bytes:
    meta = json.dumps({"pages": outcome.pages, "warnings": outcome.warnings}, ensure_ascii=False).encode()
    return len(meta).to_bytes(4, "big") + meta + (outcome.pdf or b"")


def _unpack(data: bytes) -> RenderOutcome | None:
    try:
        n = int.from_bytes(data[:4], "big")
        meta = json.loads(data[4 : 4 + n])
        pdf = data[4 + n :]
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    # Checked, not trusted: a wrong shape is a damaged entry, rendered again, never a crash.
    if not (pdf.startswith(b"%PDF") and isinstance(meta, dict) and type(meta.get("pages")) is int
            and isinstance(meta.get("warnings"), list) and all(isinstance(w, str) for w in meta["warnings"])):
        return None
    return RenderOutcome(pdf=pdf, pages=meta["pages"], warnings=list(meta["warnings"]), cached=True)


def _render_all(
    todo: list[PdfDoc], site: Site, project: Path, temp: Path, sheets: list[tuple[str, str]], fonts: FontPlan,
    workers: int, target: str, diags: Diagnostics, stats: PdfStats, cache: Cache,
) -> dict[str, RenderOutcome]:
    """Cut missing font subsets, then render, both on the worker pool; good results go to the cache."""
    config = site.config.pdf
    cache_root = project / site.config.cache_dir
    cuts = faces_to_cut(fonts, cache_root)
    with WorkerPool(min(workers, max(len(todo), len(cuts))), config.memory_mb, config.timeout, target) as pool:
        pool.start()  # workers load WeasyPrint while we wait for fonts
        clock = time.perf_counter()
        done = pool.run(cuts) if cuts else {}
        fresh = {k: v for k, v in done.items() if isinstance(v, bytes)}
        problems = [f"cannot subset a CJK font: {'; '.join(v.errors)}" for v in done.values() if isinstance(v, RenderOutcome)]
        font_cache = Cache(cache_root, "fonts")
        problems += write_font_files(fonts, font_cache, temp / "fonts", fresh)
        for msg in problems:
            diags.warning("pdf-font", msg, None)
        diags.extend(font_cache.problems())
        stats.fonts_cut = len(fresh)
        stats.seconds["fonts"] = time.perf_counter() - clock
        font_css = fonts.css(temp / "fonts")
        styles = ([(font_css, (temp / "fonts").resolve().as_uri() + "/")] if font_css else []) + sheets
        policy = FetchPolicy(allowed_roots(project, temp), tuple(config.allow_network), config.max_image_pixels)
        base_url = (project / "content").resolve().as_uri() + "/"
        clock = time.perf_counter()
        outcomes = pool.run([RenderJob(d.rel, d.html, base_url, styles, policy) for d in todo])
        stats.seconds["render"] = time.perf_counter() - clock
    for d in todo:
        o = outcomes.get(d.rel)
        # A face that could not be cut changes the fonts its key stands for: such PDFs are not kept.
        if o is not None and o.pdf is not None and not o.errors and not o.denied and not problems:
            cache.put(d.key, _pack(o))
    return outcomes


def produce_pdfs(
    site: Site,
    project: Path,
    diags: Diagnostics,
    workers: int,
    slugs: Iterable[str] | None = None,
    book: bool = False,
    target: str = RENDER_TARGET,
    stats: PdfStats | None = None,
) -> dict[str, bytes]:
    """Print HTML → fonts → cache → parallel renders; returns output path → PDF bytes for the good ones."""
    stats = stats if stats is not None else PdfStats()
    config = site.config.pdf
    clock = time.perf_counter()
    # Every document is laid out for the font subset's character set, so that a selection
    # (`sitegen pdf SLUG`) gets the same fonts, hence the same cache keys, as a full build.
    every = collect_documents(site, project, diags)
    wanted = set(slugs) if slugs is not None else None
    docs = [d for d in every if (d.rel == "pdf/book.pdf" and book) or (d.rel != "pdf/book.pdf" and (wanted is None or Path(d.rel).stem in wanted))]
    stats.seconds["html"] = time.perf_counter() - clock
    if not docs:
        return {}
    cache_root = project / site.config.cache_dir
    cache = Cache(cache_root, "pdf")
    sheets = base_stylesheets(site, project)
    # Stylesheets hold text too (the page footer's words): their characters go into the subset.
    fonts = plan_fonts([d.html for d in every] + [text for text, _ in sheets], subset=config.subset_fonts)
    for w in fonts.warnings:
        diags.warning("pdf-font", w, None)
    outcomes: dict[str, RenderOutcome] = {}
    todo: list[PdfDoc] = []
    for doc in docs:
        doc.key = _cache_key(doc, [text for text, _ in sheets], fonts, config)
        hit = cache.get(doc.key)
        outcome = _unpack(hit) if hit is not None else None
        if outcome is not None:
            outcomes[doc.rel] = outcome
        else:
            if hit is not None:
                cache.corrupt.append(doc.key)
            todo.append(doc)
    diags.extend(cache.problems())  # damaged entries are rendered again below; the build names them
    if todo:
        with tempfile.TemporaryDirectory(prefix="sitegen-pdf-") as tmp:
            outcomes.update(_render_all(todo, site, project, Path(tmp), sheets, fonts, workers, target, diags, stats, cache))
    written: dict[str, bytes] = {}
    for doc in docs:
        o = outcomes.get(doc.rel) or RenderOutcome(errors=["PDF was not rendered"])
        _report(doc, o, diags)
        if o.cached:
            stats.cached += 1
        else:
            stats.rendered += 1
        if o.pdf is not None and not o.errors and not o.denied:
            written[doc.rel] = o.pdf
            stats.pages += o.pages
        else:
            stats.failed += 1
    return written


def _report(doc: PdfDoc, o: RenderOutcome, diags: Diagnostics) -> None:
    """Render problems become diagnostics at the source file (the content line for refused images)."""
    where = Location(doc.source)
    for url, reason in o.denied:
        loc = doc.images.get(url) or doc.images.get(url.split("#")[0])
        if loc is None and doc.template:
            # Not an image the content asked for: the print template (or its stylesheet) did.
            reason += f" (asked for by {doc.template} or its stylesheet)"
        diags.error("pdf", f"PDF fetch refused: {reason}", loc or where)
    for msg in o.errors:
        diags.error("pdf", f"{doc.rel}: {msg}", where)
    for msg in o.warnings:
        diags.warning("pdf", f"{doc.rel}: WeasyPrint: {msg}", where)


def write_pdfs(site: Site, project: Path, tx: Sink, diags: Diagnostics, workers: int, strict: bool) -> PdfStats:
    """The build's PDF stage: every report (unless `pdf: false`), every profile, and the book if configured."""
    stats = PdfStats()
    files = produce_pdfs(site, project, diags, workers, None, site.config.pdf.book, stats=stats)
    if diags.failed(strict):
        return stats  # the build raises and its transaction leaves the old output in place
    for rel, data in sorted(files.items()):
        tx.write(rel, data)
    return stats
