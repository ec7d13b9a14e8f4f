"""SVG for the PDF: ziamath in killable fresh workers, a fallback font for CJK, the print markup.

The workers import this module (the pool pickles `_draw_svg` and `_warm_ziamath` by name), so
it and the package it sits in import nothing heavy at module level: no pydantic, no ziamath
outside the worker's warm-up.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...workers import Pool
from ..cache import hash_key, write_atomic
from .mathml import Prepared, unwrap_single_mrows, wrap_display, wrap_inline

SVG_SIZE = 20.0
"""ziamath font size in px; SVG sizes are written in em relative to this, so they follow the text."""


class WorkerStartError(Exception):
    """The ziamath worker process could not start (missing package or font)."""


_SVG_TWEAKS = [
    # ziamath draws these arrows/brackets stretchy unless told (as its own tex2mml does).
    (re.compile(r"<mo>(\u2191|\u2193)</mo>"), r'<mo stretchy="false">\1</mo>'),
    (re.compile(r'<mo stretchy="false">\^</mo>'), '<mo stretchy="false">\u02c6</mo>'),
    (re.compile(r"<mo>\^</mo>"), "<mo>\u0302</mo>"),
    (re.compile(r"<mo>~</mo>"), "<mo>\u0303</mo>"),
]


_POSITIONAL = {"msub", "msup", "msubsup", "mfrac", "mroot", "munder", "mover", "munderover", "mmultiscripts"}


def _svg_mathml(root: ET.Element, display: bool) -> str:
    """The MathML string given to ziamath: same tree, fewer single-child rows, its tweaks."""
    copy = ET.fromstring(ET.tostring(root, encoding="unicode"))
    unwrap_single_mrows(copy)
    # ziamath drops <mstyle> tags textually, so an mstyle that is one positional child of a
    # script or fraction would turn into several children: keep it inside its own row.
    for parent in copy.iter():
        if parent.tag in _POSITIONAL:
            for i, child in enumerate(list(parent)):
                if child.tag == "mstyle":
                    row = ET.Element("mrow")
                    row.append(child)
                    parent[i] = row
    copy.set("display", "block" if display else "inline")
    for el in copy.iter("mtext"):
        el.attrib.pop("style", None)
    text = ET.tostring(copy, encoding="unicode")
    for pat, rep in _SVG_TWEAKS:
        text = pat.sub(rep, text)
    return text


@dataclass
class SvgTask:
    key: str
    mathml: str
    tag_mathml: str | None
    display: bool
    font: str | None = None
    """A fallback font for characters STIX Two Math lacks (CJK)."""


def find_cjk_font() -> tuple[str, int] | None:
    """A system font with CJK glyphs (path, index in a collection) for text ziamath's font lacks."""
    fc = shutil.which("fc-match")
    if fc:
        try:
            out = subprocess.run([fc, "--format=%{file}\n%{index}\n", "serif:lang=zh-cn"], capture_output=True,
                                 text=True, timeout=10).stdout.split("\n")
            if out and out[0] and Path(out[0]).exists() and "CJK" in out[0]:
                return out[0], int(out[1] or 0)
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    for path, index in (("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 2),
                        ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2)):
        if Path(path).exists():
            return path, index
    return None


_CJK_RANGES = ((0x2E80, 0x2FDF), (0x3000, 0x30FF), (0x3100, 0x31FF), (0x3200, 0x4DBF), (0x4E00, 0x9FFF),
               (0xA960, 0xA97F), (0xAC00, 0xD7FF), (0xF900, 0xFAFF), (0xFE30, 0xFE4F), (0xFF00, 0xFFEF),
               (0x20000, 0x3FFFF))


def is_cjk(c: str) -> bool:
    """Characters STIX Two Math and DejaVu lack and a CJK font has (Han, kana, Hangul, full-width)."""
    o = ord(c)
    return any(lo <= o <= hi for lo, hi in _CJK_RANGES)


_FONT_MAGIC = (b"\x00\x01\x00\x00", b"OTTO", b"true")


def build_fallback_font(chars: set[str], cache_dir: Path | None) -> tuple[str | None, set[str]]:
    """A small TrueType font with the given characters from the system CJK font.

    ziafont reads neither font collections nor CID-keyed CFF (what Noto CJK ships), so the glyphs
    are copied as quadratic outlines into a plain TrueType font. Returns (path, chars found).
    """
    found = find_cjk_font()
    if not chars or found is None:
        return None, set()
    path, index = found
    key = hash_key("cjk-fallback-1", path, str(index), str(os.path.getsize(path)), "".join(sorted(chars)))
    base = cache_dir if cache_dir is not None else Path(os.environ.get("TMPDIR", "/tmp")) / "sitegen-math-fonts"
    target = base / "fonts" / f"{key[:32]}.ttf"
    meta = target.with_suffix(".json")
    if target.exists() and meta.exists():
        try:
            found_chars = json.loads(meta.read_text("utf-8"))
        except (ValueError, OSError, RecursionError):
            found_chars = None
        if isinstance(found_chars, list) and all(isinstance(c, str) for c in found_chars) and target.read_bytes()[:4] in _FONT_MAGIC:
            return str(target), set(found_chars)
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.cu2quPen import Cu2QuPen
    from fontTools.pens.ttGlyphPen import TTGlyphPen
    from fontTools.ttLib import TTCollection, TTFont

    src = TTCollection(path, lazy=True).fonts[index] if path.lower().endswith((".ttc", ".otc")) else TTFont(path, lazy=True)
    cmap = src.getBestCmap()
    glyphset = src.getGlyphSet()
    upm = src["head"].unitsPerEm
    hmtx = src["hmtx"]
    order = [".notdef"]
    glyphs: dict[str, Any] = {}
    metrics: dict[str, tuple[int, int]] = {}
    mapping: dict[int, str] = {}
    pen = TTGlyphPen(None)
    glyphs[".notdef"] = pen.glyph()
    metrics[".notdef"] = (upm // 2, 0)
    have: set[str] = set()
    for ch in sorted(chars):
        gname = cmap.get(ord(ch))
        if gname is None:
            continue
        name = f"u{ord(ch):04X}"
        pen = TTGlyphPen(None)
        glyphset[gname].draw(Cu2QuPen(pen, max_err=1.0, reverse_direction=True))
        glyphs[name] = pen.glyph()
        adv, _lsb = hmtx[gname]
        metrics[name] = (adv, 0)
        order.append(name)
        mapping[ord(ch)] = name
        have.add(ch)
    fb = FontBuilder(upm, isTTF=True)
    fb.setupGlyphOrder(order)
    fb.setupCharacterMap(mapping)
    fb.setupGlyf(glyphs)
    for name, g in glyphs.items():
        g.recalcBounds(fb.font["glyf"])
        metrics[name] = (metrics[name][0], getattr(g, "xMin", 0) or 0)
    fb.setupHorizontalMetrics(metrics)
    asc = src["hhea"].ascent
    desc = src["hhea"].descent
    fb.setupHorizontalHeader(ascent=asc, descent=desc)
    fb.setupNameTable({"familyName": "SitegenMathCJK", "styleName": "Regular"})
    fb.setupOS2(sTypoAscender=asc, sTypoDescender=desc, usWinAscent=asc, usWinDescent=-desc)
    fb.setupPost()
    buf = io.BytesIO()
    fb.save(buf)
    write_atomic(target, buf.getvalue())
    write_atomic(meta, json.dumps(sorted(have)).encode("utf-8"))
    return str(target), have


_zia: dict[str, Any] = {}
"""A worker's ziamath, its fonts and the fallback chain of the formula being drawn (see _warm_ziamath)."""


def _warm_ziamath() -> None:
    """In a worker: load ziamath once, with fallback fonts for the glyphs STIX Two Math lacks."""
    import types

    import ziafont
    import ziamath
    from ziamath import zmath

    ziafont.config.svg2 = False  # plain paths: no <symbol> ids that clash between inline SVGs
    ziafont.config.precision = 2
    font = zmath.loadedfonts["default"]
    state: dict[str, Any] = {"chain": [], "missing": set()}
    plain_findglyph = font.findglyph

    def findglyph(self: Any, char: str, variant: Any) -> Any:
        """STIX Two Math first; glyphs it lacks (CJK in \\text, rare letters) from the fallbacks."""
        glyph = plain_findglyph(char, variant)
        if glyph.index == 0 and not char.isspace():
            for fb in state["chain"]:
                if fb.glyphindex(char):
                    return fb.glyph(char)
            state["missing"].add(char)
        return glyph

    font.findglyph = types.MethodType(findglyph, font)
    zmath.loadedfonts["sitegen"] = font
    # ziafont's bundled DejaVu Sans: Latin, Greek, Cyrillic, symbols
    _zia.update(ziafont=ziafont, ziamath=ziamath, state=state, fallbacks={}, dejavu=ziafont.Font())


def _draw_svg(task: SvgTask) -> dict:
    """In a worker: one formula (and its tag) to SVG with ziamath; ziamath's own exceptions pass through."""
    ziafont, state, fallbacks = _zia["ziafont"], _zia["state"], _zia["fallbacks"]
    path = task.font or ""
    if path not in fallbacks:
        fallbacks[path] = ([ziafont.Font(path)] if path else []) + [_zia["dejavu"]]
    state["chain"] = fallbacks[path]
    state["missing"] = set()
    started = time.perf_counter()
    result = {"svg": _render_svg(_zia["ziamath"], task.mathml, task.display)}
    if task.tag_mathml:
        result["tag"] = _render_svg(_zia["ziamath"], task.tag_mathml, False)
    result["missing"] = sorted(state["missing"])
    result["seconds"] = time.perf_counter() - started
    return result


def _render_svg(ziamath: Any, mathml: str, display: bool) -> dict:
    """One MathML string → SVG text plus its size and baseline (in em); plainer MathML if it fails."""
    try:
        m = ziamath.Math(mathml, size=SVG_SIZE, font="sitegen", margin=1.0)
    except Exception:
        m = ziamath.Math(_plain_mathml(mathml), size=SVG_SIZE, font="sitegen", margin=1.0)
    svg = m.svgxml()
    bbox = m.node.bbox
    width = bbox.xmax - bbox.xmin + 2 * m.margin
    height = bbox.ymax - bbox.ymin + 2 * m.margin
    depth = -bbox.ymin + m.margin
    return {"svg": ET.tostring(svg, encoding="unicode"), "width": width / SVG_SIZE,
            "height": height / SVG_SIZE, "depth": depth / SVG_SIZE}


def _plain_mathml(mathml: str) -> str:
    """The fallback for ziamath: style and padding wrappers become plain rows."""
    root = ET.fromstring(mathml)
    for el in root.iter():
        if el.tag in ("mstyle", "mpadded", "mphantom", "menclose"):
            el.tag = "mrow"
            el.attrib.clear()
    return ET.tostring(root, encoding="unicode")


class SvgPool:
    """ziamath workers; a formula over its time limit gets its worker killed and replaced.

    Workers are fresh interpreters, not forks of the build, and start at once so their import
    time overlaps the MathML work.
    """

    STARTUP_TIMEOUT = 120.0

    def __init__(self, workers: int, timeout: float):
        self.timeout = timeout
        # quiet: ziamath and fontTools print warnings that mean nothing to an author.
        self.pool = Pool(_draw_svg, max(1, workers), timeout=timeout, start="fresh", warm=_warm_ziamath,
                         start_timeout=self.STARTUP_TIMEOUT, quiet=True, name="sitegen-math").start()

    def run(self, tasks: list[SvgTask]) -> dict[str, tuple[str, Any]]:
        """Render all tasks; returns key → ("ok", result) | ("error"/"timeout", message)."""
        results: dict[str, tuple[str, Any]] = {}
        for task, o in zip(tasks, self.pool.run(tasks)):
            if not o.started:
                raise WorkerStartError("math worker stopped" if o.status == "crashed" else o.detail)
            if o.ok:
                results[task.key] = ("ok", o.value)
            elif o.status == "timeout":
                results[task.key] = ("timeout", f"math render timed out after {self.timeout:g} s")
            else:
                results[task.key] = ("error", "math worker stopped" if o.status == "crashed" else o.detail)
        return results

    def close(self) -> None:
        self.pool.close()


def _svg_element(r: dict, source: str, display: bool) -> str:
    """Inline SVG markup: sized in em, shifted by the renderer's depth so the baseline lines up."""
    root = ET.fromstring(r["svg"])
    for el in root.iter():
        el.tag = el.tag.split("}", 1)[-1]
        if el.get("fill") in ("black", "#000", "#000000"):
            el.set("fill", "currentColor")
    for t in list(root):
        if t.tag == "title":
            root.remove(t)
    root.attrib.pop("xmlns:xlink", None)
    root.set("xmlns", "http://www.w3.org/2000/svg")
    root.set("width", f"{r['width']:.3f}em")
    root.set("height", f"{r['height']:.3f}em")
    root.set("role", "img")
    root.set("aria-label", source)
    root.set("class", "math-svg")
    root.set("style", f"vertical-align:{-r['depth']:.3f}em" + (";max-width:100%" if display else ""))
    root.set("data-depth", f"{r['depth']:.3f}")
    title = ET.Element("title")
    title.text = source
    root.insert(0, title)
    # Invisible text over the drawing keeps the TeX source selectable and copyable in the PDF.
    vb = [float(x) for x in root.get("viewBox", "0 0 1 1").split()]
    txt = ET.SubElement(root, "text", {"x": f"{vb[0]:.2f}", "y": "0", "fill-opacity": "0", "style": "white-space:pre",
                                       "font-size": f"{max(1.0, min(SVG_SIZE, vb[2] / max(1, len(source)) * 1.8)):.2f}",
                                       "class": "math-source"})
    txt.text = source
    return ET.tostring(root, encoding="unicode", short_empty_elements=True)


def render_svg_html(p: Prepared, r: dict) -> str:
    """Print (PDF) markup for a formula from the worker's SVG."""
    inner = _svg_element(r["svg"], p.source, p.display)
    if not p.display:
        return wrap_inline(inner, p.source, "math-print")
    tag_html = _svg_element(r["tag"], p.tag_text or "", False) if r.get("tag") else None
    return wrap_display(inner, p.source, tag_html, "math-print")


def render_svgs(pool: SvgPool, items: list[Prepared], cache_root: Path | None) -> dict:
    """SVG for each prepared formula via the worker pool; CJK text gets a fallback font."""
    if not items:
        return {}
    chars: set[str] = set()
    for p in items:
        for root in (p.mathml, p.tag_mathml):
            if root is not None:
                for t in root.itertext():
                    chars.update(c for c in t if is_cjk(c))
    font_path, _ = build_fallback_font(chars, (cache_root / "math") if cache_root is not None else None)
    tasks = [SvgTask(str(i), _svg_mathml(p.mathml, p.display),
                     _svg_mathml(p.tag_mathml, False) if p.tag_mathml is not None else None, p.display, font_path)
             for i, p in enumerate(items)]
    raw = pool.run(tasks)
    return {(p.source, p.display): raw.get(str(i), ("error", "not rendered")) for i, p in enumerate(items)}
