"""The diagram service: cache first, then the pool; one JobResult per diagram job."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .figure import render_error_box, render_figure
from .pool import Task, run_tasks
from .renderers import Renderer, select_renderer
from .source import Prepared, prepare_source

if TYPE_CHECKING:
    from pathlib import Path

    from ...config import DiagramsConfig
    from ...diagnostics import Diagnostics
    from ...models import Job, JobResult

SANITISER_VERSION = "6"
"""Bump when prepare_source, sanitize_svg or the figure markup change: it is part of the cache key."""


def diagram_cache_key(source: str, renderer: Renderer, version: str, theme: str) -> str:
    """Content address of one diagram: source + renderer + its version + theme + sanitiser."""
    from ..cache import hash_key

    return hash_key("mermaid", source, renderer.name, version, theme, SANITISER_VERSION)


def resolve_diagrams(
    jobs: list[Job],
    config: DiagramsConfig,
    cache_root: Path | None,
    workers: int,
    *,
    renderer: Renderer | None = None,
    diags: Diagnostics | None = None,
) -> dict[str, JobResult]:
    """Cache first, then a pool of renderers; one JobResult per job key (messages carry no location)."""
    from ...models import JobResult
    from ..cache import Cache

    renderer = renderer or select_renderer(config)
    version = renderer.version()
    missing = renderer.check()
    max_edges = config.max_edges
    cache = Cache(cache_root, "diagrams")
    results: dict[str, JobResult] = {}
    todo: list[tuple[Job, Prepared, str, Task]] = []
    for job in jobs:
        if job.key in results:
            continue
        if job.kind != "mermaid":
            results[job.key] = JobResult(render_error_box(job.source, [f"not a diagram job: {job.kind}"]), errors=[f"not a diagram job: {job.kind}"])
            continue
        prepared = prepare_source(job.source, config.max_chars, max_edges)
        if prepared.errors:
            results[job.key] = JobResult(render_error_box(job.source, prepared.errors), errors=prepared.errors, warnings=prepared.warnings)
            continue
        key = diagram_cache_key(job.source, renderer, version, config.theme)
        hit = cache.get_markup(key)
        if hit is not None:
            results[job.key] = JobResult(hit["html"], errors=hit["errors"], warnings=hit["warnings"], cached=True)
            continue
        if missing:
            results[job.key] = JobResult(render_error_box(job.source, [missing]), errors=[missing], warnings=prepared.warnings)
            continue
        scope = "mmd-" + key[:12]
        task = Task(prepared.source, config.theme, scope, prepared.title, prepared.diagram_type, float(config.timeout))
        todo.append((job, prepared, key, task))
        results[job.key] = None  # type: ignore[assignment]  # placeholder keeps duplicates out of todo
    if diags is not None:
        diags.extend(cache.problems())  # damaged entries are rebuilt below; the build names them
    outcomes = run_tasks(renderer, [t for *_, t in todo], min(workers, len(todo)) if workers > 0 else 0)
    for (job, prepared, key, task), outcome in zip(todo, outcomes):
        if outcome.svg is not None:
            payload = {"html": render_figure(outcome.svg, task.kind), "errors": [], "warnings": prepared.warnings}
        else:
            error = outcome.error or "diagram could not be rendered"
            payload = {"html": render_error_box(job.source, [error]), "errors": [error], "warnings": prepared.warnings}
        if not outcome.transient:
            cache.put_text(key, json.dumps(payload, ensure_ascii=False))
        results[job.key] = JobResult(payload["html"], errors=list(payload["errors"]), warnings=list(payload["warnings"]))
    return results

