"""Formulas rendered at build time: MathML for the site, SVG (ziamath) for the PDF.

Why MathML for the HTML: latex2mathml converts a formula in ~0.3 ms in-process, ziamath needs
5–15 ms per formula plus worker processes; a 1000-report build with formulas on every page must
finish cold in 4 s on 2 cores, which only the MathML path allows (see benchmarks/bench_math.py).
Browsers draw MathML Core natively (selectable, scales with the text, read by screen readers).
WeasyPrint has no MathML, so PDFs get SVG, rendered from the *same* cleaned MathML, only when
PDFs are built, in killable worker processes (ziamath is pure Python and can take exponential
time on deeply nested scripts).

Pipeline per formula: tokenize the TeX → expand macros (with a limit) → rewrite what
latex2mathml gets wrong (text runs, primes, aligned/alignedat/rcases, array rules, \\tag,
KaTeX extensions) → latex2mathml → parse and validate the XML → keep only whitelisted MathML
elements/attributes → serialize. Math is never handed to a TeX engine.

The stages live in `tokens`, `macros`, `rewrite`, `mathml` (the site) and `svg` (the PDF);
here is the service the build calls: `resolve_formulas`, its cache and its stats.
"""

from __future__ import annotations

import json
import math as _math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...diagnostics import Diagnostics, EnvironmentProblem
from ..cache import Cache, hash_key
from .macros import MAX_TOKENS_FACTOR, Macro, expand_macros, parse_macros
from .mathml import (
    ERROR_COLOR,
    MATHML_NS,
    Prepared,
    convert_mathml,
    error_markup,
    prepare_formula,
    render_mathml_html,
    wrap_display,
    wrap_inline,
)
from .rewrite import MAX_CHARS, TEXT_VARIANTS, Rewriter, Rewritten, rewrite_formula, split_top_lines
from .svg import (
    SVG_SIZE,
    SvgPool,
    SvgTask,
    WorkerStartError,
    build_fallback_font,
    find_cjk_font,
    is_cjk,
    render_svg_html,
    render_svgs,
)
from .tokens import BGROUP, EGROUP, MAX_DEPTH, SPACE, MathError, Reader, Tok, check_balance, serialize, tokenize

if TYPE_CHECKING:  # the SVG workers import this package: keep pydantic out of their start-up
    from ...config import MathConfig
    from ...models import Job, JobResult

__all__ = [
    "BGROUP", "EGROUP", "ERROR_COLOR", "MATHML_NS", "MAX_CHARS", "MAX_DEPTH", "MAX_TOKENS_FACTOR", "PIPELINE_VERSION",
    "SPACE", "SVG_SIZE", "TEXT_VARIANTS", "Macro", "MathError", "Prepared", "Reader", "RenderStats", "Rewriter",
    "Rewritten", "SvgPool", "SvgTask", "Tok", "WorkerStartError", "build_fallback_font", "check_balance",
    "convert_mathml", "error_markup", "expand_macros", "find_cjk_font", "is_cjk", "last_stats", "parse_macros",
    "prepare_formula", "render_mathml_html", "render_svg_html", "resolve_formulas", "rewrite_formula", "serialize",
    "split_top_lines", "tokenize", "wrap_display", "wrap_inline",
]

PIPELINE_VERSION = "math-4"
"""Bump when the markup or the rewriting changes, so cached entries are rebuilt."""


def _versions() -> tuple[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("latex2mathml", "ziamath"):
        try:
            out.append(version(pkg))
        except PackageNotFoundError:
            out.append("missing")
    return out[0], out[1]


def _entry(entry: dict) -> str:
    return json.dumps({k: entry[k] for k in ("html", "errors", "warnings")}, ensure_ascii=False)


@dataclass
class RenderStats:
    """What the last resolve_formulas call did (for the benchmark and tests)."""

    unique: int = 0
    rendered_mathml: int = 0
    rendered_svg: int = 0
    cache_hits: int = 0
    mathml_seconds: list[float] = field(default_factory=list)
    """Per formula: rewrite, latex2mathml, sanitize and markup."""
    svg_seconds: list[float] = field(default_factory=list)
    """Per formula: ziamath time inside its worker."""
    svg_failed_start: str = ""


last_stats = RenderStats()


def resolve_formulas(jobs: list[Job], config: MathConfig, cache_root: Path | None, workers: int,
                     want_print: bool, diags: Diagnostics | None = None) -> dict[str, JobResult]:
    """Render every math job (cache first); returns job key → result with site and print markup."""
    from ...models import JobResult

    global last_stats
    stats = RenderStats()
    last_stats = stats
    l2m_version, zia_version = _versions()
    cache = Cache(cache_root, "math")
    macros_spec = dict(getattr(config, "macros", {}) or {})
    macros_id = json.dumps(macros_spec, sort_keys=True)
    limit = config.max_expansions
    use_svg_html = config.html == "svg"
    try:
        macros = parse_macros(macros_spec)
        macro_error = None
    except MathError as exc:
        macros, macro_error = {}, f"math.macros: {exc}"

    # Dedupe: the same formula (source + display) renders once however often it appears.
    unique: dict[tuple[str, bool], list[Job]] = {}
    for job in jobs:
        if job.kind in ("math-inline", "math-display"):
            unique.setdefault((job.source, job.kind == "math-display"), []).append(job)
    stats.unique = len(unique)

    svg_id = hash_key("svg", zia_version, str(config.timeout), str(SVG_SIZE))
    html_keys: dict[tuple[str, bool], str] = {}
    print_keys: dict[tuple[str, bool], str] = {}
    site: dict[tuple[str, bool], dict] = {}
    prints: dict[tuple[str, bool], dict] = {}
    for ident in unique:
        source, display = ident
        base = (PIPELINE_VERSION, l2m_version, macros_id, str(limit), "display" if display else "inline", source)
        html_keys[ident] = hash_key("html", config.html, svg_id if use_svg_html else "", *base)
        print_keys[ident] = hash_key("print", svg_id, *base)
        if (hit := cache.get_markup(html_keys[ident])) is not None:
            site[ident] = hit
        if want_print and (phit := cache.get_markup(print_keys[ident])) is not None:
            prints[ident] = phit

    need_svg = [i for i in unique if (want_print and i not in prints) or (use_svg_html and i not in site)]
    n_workers = min(workers, _math.ceil(len(need_svg) / 20))
    # With many formulas to draw, start the workers now so their start-up overlaps the MathML work.
    pool = SvgPool(n_workers, config.timeout) if len(need_svg) >= 20 else None
    try:
        prepared: dict[tuple[str, bool], Prepared] = {}
        for ident in [i for i in unique if i not in site or i in need_svg]:
            started = time.perf_counter()
            p = prepared[ident] = prepare_formula(ident[0], ident[1], macros, limit)
            if macro_error:
                p.errors.insert(0, macro_error)
            stats.rendered_mathml += 1
            if ident not in site and not use_svg_html:
                site[ident] = {"html": render_mathml_html(p), "errors": list(p.errors), "warnings": list(p.warnings)}
                stats.mathml_seconds.append(time.perf_counter() - started)
                cache.put_text(html_keys[ident], _entry(site[ident]))
        drawable = [prepared[i] for i in need_svg if not prepared[i].errors]
        if drawable and pool is None:
            pool = SvgPool(n_workers, config.timeout)
        if need_svg:
            try:
                svg_results = render_svgs(pool, drawable, cache_root) if pool is not None else {}
            except WorkerStartError as exc:
                stats.svg_failed_start = str(exc)
                svg_results = {}
            stats.rendered_svg = len(svg_results)
            stats.svg_seconds = [r[1]["seconds"] for r in svg_results.values() if r[0] == "ok"]
            for ident in need_svg:
                _store_svg(ident, prepared[ident], svg_results.get(ident), want_print, use_svg_html,
                           site, prints, cache, html_keys, print_keys)
    finally:
        if pool is not None:
            pool.close()
    if stats.svg_failed_start:
        raise EnvironmentProblem(f"math: the SVG renderer (ziamath) could not start: {stats.svg_failed_start}")

    stats.cache_hits = sum(1 for i in unique if i not in prepared)
    results: dict[str, JobResult] = {}
    for ident, group in unique.items():
        s = site[ident]
        pr = prints.get(ident) if want_print else None
        errors = list(dict.fromkeys(s["errors"] + (pr["errors"] if pr else [])))
        warnings = list(dict.fromkeys(s["warnings"] + (pr["warnings"] if pr else [])))
        for key in dict.fromkeys(job.key for job in group):  # the Markdown stage keys jobs by content
            results[key] = JobResult(html=s["html"], print_html=pr["html"] if pr else None, errors=list(errors),
                                     warnings=list(warnings), cached=ident not in prepared)
    if diags is not None:
        diags.extend(cache.problems())  # damaged entries were rebuilt above; the build names them
    return results


def _store_svg(ident: tuple[str, bool], p: Prepared, outcome: tuple[str, Any] | None, want_print: bool,
               use_svg_html: bool, site: dict, prints: dict, cache: Cache, html_keys: dict, print_keys: dict) -> None:
    """Turn one worker outcome into print (and, with html: svg, site) entries, and cache them."""
    status, payload = outcome or ("error", "not rendered")
    warnings = list(p.warnings)
    if p.errors:
        entry = {"html": render_mathml_html(p), "errors": list(p.errors), "warnings": warnings}
    elif status == "ok":
        missing = "".join(payload.get("missing") or [])
        if missing:
            warnings.append(f"no glyph for '{missing}' in the math fonts: drawn as a box in the PDF "
                            "(install fonts-noto-cjk for Chinese)")
        entry = {"html": render_svg_html(p, payload), "errors": [], "warnings": warnings}
    else:
        message = payload if status == "timeout" else f"cannot draw formula as SVG ({payload})"
        entry = {"html": error_markup(p.source, message, p.display), "errors": [message], "warnings": warnings}
    # A timeout depends on how busy the machine was, not only on the formula: never cache it.
    cacheable = status != "timeout"
    if want_print and ident not in prints:
        prints[ident] = entry
        if cacheable:
            cache.put_text(print_keys[ident], _entry(entry))
    if use_svg_html and ident not in site:
        if entry["errors"] and not p.errors:
            # The browser can still draw MathML when the SVG renderer gives up.
            site[ident] = {"html": render_mathml_html(p), "errors": [],
                           "warnings": warnings + [f"{entry['errors'][0]}; the site shows MathML instead"]}
        else:
            site[ident] = entry
        if cacheable:
            cache.put_text(html_keys[ident], _entry(site[ident]))
