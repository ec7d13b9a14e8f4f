"""PDFs with WeasyPrint: one per report and start-up profile, and the whole site as one book.

The print HTML comes from the same Jinja environment as the site (`templates/print/`), with the
print variants of diagrams and formulas (SVG: vector in the PDF). Each PDF is rendered in a
worker process with a wall-clock and a memory limit, reads files only through `SitegenFetcher`,
and is cached by a hash of everything that goes into it. WeasyPrint's logged problems come back
as sitegen diagnostics naming the source file: a PDF never silently misses content.

`documents` renders the print HTML, `settings` holds what every render shares (stylesheets,
allowed roots, page CSS, the job and outcome types), `worker` is the only module that imports
WeasyPrint, and `parent` runs fonts, cache and pool around the renders (`write_pdfs`).
"""

from .documents import PdfDoc, PrintTools, chapter_anchor, collect_documents
from .parent import PIPELINE_VERSION, RENDER_TARGET, WORKER_START_TIMEOUT, PdfStats, Sink, WorkerPool, produce_pdfs, write_pdfs
from .settings import WRITE_OPTIONS, RenderJob, RenderOutcome, allowed_roots, base_stylesheets, page_css, stylesheet_paths
from .worker import render_pdf, run_job

__all__ = [
    "PIPELINE_VERSION", "RENDER_TARGET", "WORKER_START_TIMEOUT", "WRITE_OPTIONS", "PdfDoc", "PdfStats", "PrintTools",
    "RenderJob", "RenderOutcome", "Sink", "WorkerPool", "allowed_roots", "base_stylesheets", "chapter_anchor",
    "collect_documents", "page_css", "produce_pdfs", "render_pdf", "run_job", "stylesheet_paths", "write_pdfs",
]
