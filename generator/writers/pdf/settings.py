"""Settings shared by every PDF render: stylesheets, the roots the fetcher may read, page CSS, job and outcome types.

Both sides use these: the parent builds `RenderJob`s from them, a worker returns a `RenderOutcome`.
Plain data only, so that a job pickles into a fresh interpreter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...pages import Site
from ...services.fetcher import FetchPolicy
from ...templates import template_dirs, theme_dir

WRITE_OPTIONS: dict[str, Any] = {"presentational_hints": False, "pdf_tags": False, "uncompressed_pdf": False}
"""Options every render gets; presentational hints stay off (CVE-2026-49452)."""


def stylesheet_paths(project: Path) -> list[Path]:
    """print.css from the project's templates/print/ if it has one, else the theme's."""
    for base in template_dirs(project):
        p = base / "print" / "print.css"
        if p.is_file():
            return [p]
    return []


def allowed_roots(project: Path, temp: Path) -> tuple[str, ...]:
    """content/, the templates' static and print folders (project and theme), and this run's temp dir."""
    roots = [project / "content", temp]
    for base in (project / "templates", theme_dir()):
        roots += [base / "static", base / "print"]
    return tuple(dict.fromkeys(str(p.resolve()) for p in roots if p.exists()))


def _code_css() -> str:
    """Pygments' light style only: WeasyPrint knows no prefers-color-scheme, and paper is light."""
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(style="friendly").get_style_defs(".highlight")


def page_css(site: Site) -> str:
    """Page size and margins come from config; everything else is in print.css."""
    pdf = site.config.pdf
    margin = pdf.margin if re.fullmatch(r"[0-9.]+(mm|cm|in|pt|px)( [0-9.]+(mm|cm|in|pt|px)){0,3}", pdf.margin) else "20mm"
    return f"@page {{ size: {pdf.page_size}; margin: {margin}; }}\n"


def base_stylesheets(site: Site, project: Path) -> list[tuple[str, str]]:
    """(CSS text, base URL) in cascade order: page setup from config, print.css, code colours."""
    sheets: list[tuple[str, str]] = [(page_css(site), theme_dir().resolve().as_uri() + "/print/")]
    for p in stylesheet_paths(project):
        sheets.append((p.read_text(encoding="utf-8"), p.parent.resolve().as_uri() + "/"))
    sheets.append((_code_css(), theme_dir().resolve().as_uri() + "/static/"))
    return sheets


@dataclass
class RenderJob:
    """Everything one worker needs: plain data only (workers may be spawned)."""

    name: str
    html: str
    base_url: str
    stylesheets: list[tuple[str, str]]
    """(CSS text, base URL) in cascade order."""
    policy: FetchPolicy


@dataclass
class RenderOutcome:
    pdf: bytes | None = None
    pages: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    denied: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    cached: bool = False
