"""The worker side: one PDF rendered with WeasyPrint in a worker of generator/workers.py's pool.

WeasyPrint is imported here only, inside the functions a worker runs, so that `sitegen --help`
and the HTML build never load it. Logged problems come back in the `RenderOutcome`.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable

from .settings import WRITE_OPTIONS, RenderJob, RenderOutcome

_NOISE = re.compile(r"^Ignored `(overflow-x|overflow-y|rx|ry|fill|fill-opacity|stroke[a-z-]*|marker[a-z-]*|dominant-baseline|text-anchor|alignment-baseline|paint-order|vector-effect|shape-rendering|font-display):")
"""CSS WeasyPrint does not know, written by sitegen's own diagram and math markup (drawn by its SVG code)."""


def render_pdf(job: RenderJob) -> RenderOutcome:
    """Render one document with WeasyPrint through SitegenFetcher; logged problems are collected."""
    import logging

    from weasyprint import CSS, HTML
    from weasyprint.text.fonts import FontConfiguration

    from ...services.fetcher import SitegenFetcher

    started = time.perf_counter()
    out = RenderOutcome()
    fetcher = SitegenFetcher(job.policy)
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("weasyprint")
    handler = Collect(logging.WARNING)
    logger.addHandler(handler)
    saved = (logger.level, logger.propagate)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        fonts = FontConfiguration()
        sheets = [CSS(string=text, base_url=base, url_fetcher=fetcher, font_config=fonts) for text, base in job.stylesheets]
        document = HTML(string=job.html, base_url=job.base_url, url_fetcher=fetcher).render(
            font_config=fonts, stylesheets=sheets, **WRITE_OPTIONS
        )
        out.pages = len(document.pages)
        out.pdf = document.write_pdf(**WRITE_OPTIONS)
    except RecursionError:
        out.errors.append("PDF render failed: recursion too deep (a CSS @import loop or deeply nested content)")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
    for record in records:
        msg = _log_message(record)
        if "FetchDenied" in msg:
            continue  # reported from fetcher.denied, with the reason
        if record.levelno < logging.ERROR and _NOISE.match(msg):
            continue
        (out.errors if record.levelno >= logging.ERROR or "RecursionError" in msg else out.warnings).append(msg)
    out.requested = list(fetcher.requested)
    out.denied = list(fetcher.denied)
    out.seconds = time.perf_counter() - started
    if out.errors or out.denied:
        out.pdf = None  # never a PDF with missing content
    return out


def _log_message(record) -> str:
    """One line of WeasyPrint's log, with the exception's type when the message leaves it out."""
    try:
        msg = record.getMessage()
    except Exception:  # a broken format string in a third-party log call
        msg = str(record.msg)
    exc = record.exc_info[1] if record.exc_info else None
    if exc is not None and type(exc).__name__ not in msg:
        msg += f" ({type(exc).__name__})"
    return " ".join(msg.split())[:500]


def _resolve_target(target: str) -> Callable[[RenderJob], RenderOutcome]:
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def warm_worker() -> None:
    """Load WeasyPrint when the worker starts, not on its first PDF."""
    import weasyprint  # noqa: F401 - paid once per worker, not per PDF


def run_job(item: tuple[str, Any]) -> Any:
    """In a worker: one job through its own target (a font cut) or the pool's (a PDF render)."""
    target, job = item
    return _resolve_target(target)(job)
