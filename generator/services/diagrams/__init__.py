"""Mermaid diagrams to sanitised inline SVG at build time: renderers, sanitiser, cache, worker pool.

Why inline `<svg>` rather than `<img src="x.svg">` (measured in tests/test_diagrams.py and
benchmarks/bench_diagrams.py):
- text selection and find-in-page work on inline SVG `<text>`; an `<img>` is one opaque picture;
- dark mode: an inline SVG sees the page's `data-theme` switch and our scoped CSS remaps the
  palette; an `<img>` only sees `prefers-color-scheme` and can't follow the site's own toggle;
- PDF: WeasyPrint keeps the labels as real, extractable text (CJK included) either way — measured,
  see test_pdf_keeps_diagram_labels_as_text — so the PDF does not decide it; browsers, though, never
  let an `<img>` SVG use the page's @font-face fonts;
- the price is that scripts and CSS are not isolated, so every SVG goes through `sanitize_svg`
  (an allowlist) and every CSS rule we emit is scoped to the diagram's id.

Nothing here imports a Mermaid package at module level: the HTML build imports this module
cheaply and the renderers are imported inside the worker processes.

The package, in the order a diagram goes through it:
- `source`: checks and preparation of the Mermaid source (pure);
- `renderers`: the embedded mermaid-render and a mermaid.ink server;
- `sanitiser`: the SVG allowlist, id and CSS scoping (CSS parsed with tinycss2), the dark palette;
  also used on the SVG files a site copies (`sanitize_svg_file`, called by writers/html.py);
- `figure`: the markup around a diagram, or the error box in its place;
- `pool`: tasks on generator.workers' killable processes;
- `service`: `resolve_diagrams` and the cache.
"""

from .errors import DiagramError, TransientDiagramError
from .figure import render_error_box, render_figure
from .pool import PREFETCH, TASKS_PER_WORKER, WORKER_START_TIMEOUT, Outcome, Task, render_task, run_tasks
from .renderers import EmbeddedRenderer, InkRenderer, Renderer, select_renderer
from .sanitiser import FONT_STACK, MAX_SVG_CHARS, SVG_NS, XLINK_NS, XML_NS, sanitize_svg, sanitize_svg_file
from .service import SANITISER_VERSION, diagram_cache_key, resolve_diagrams
from .source import Prepared, clean_renderer_message, import_mermaid_py, prepare_source

__all__ = [
    "FONT_STACK", "MAX_SVG_CHARS", "PREFETCH", "SANITISER_VERSION", "SVG_NS", "TASKS_PER_WORKER",
    "WORKER_START_TIMEOUT", "XLINK_NS", "XML_NS", "DiagramError", "EmbeddedRenderer", "InkRenderer",
    "Outcome", "Prepared", "Renderer", "Task", "TransientDiagramError", "clean_renderer_message",
    "diagram_cache_key", "import_mermaid_py", "prepare_source", "render_error_box", "render_figure",
    "render_task", "resolve_diagrams", "run_tasks", "sanitize_svg", "sanitize_svg_file", "select_renderer",
]
