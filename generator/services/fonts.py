"""CJK fonts for PDFs: found with fontconfig, subset once per build to the characters the site uses.

WeasyPrint subsets every font again for every PDF; a full Noto Sans CJK face holds 65,000 glyphs
in 16 MB, and where WeasyPrint falls back to fontTools that per-PDF subsetting is most of the
render time. We subset each face once (fontTools) to the site's characters, cache the result by
font + character-set hash, and hand WeasyPrint the small file through `@font-face`, so it embeds
and re-subsets a few hundred kilobytes instead. One family for all text also means fewer faces
embedded per PDF (no DejaVu + CJK SC + CJK JP fallbacks).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .cache import Cache, hash_key

SUBSET_VERSION = "2"
"""Bump when the subsetting options change: it is part of the cache key (2: no save-time stamp)."""
INSTALL_HINT = "apt-get install fonts-noto-cjk"
SANS = "Sitegen CJK Sans"
MONO = "Sitegen CJK Mono"
BASE_CHARS = "".join(chr(c) for c in range(0x20, 0x7F)) + "\u00a0\u00b7\u00d7\u2013\u2014\u2018\u2019\u201c\u201d\u2026\u2022\u3001\u3002\u300a\u300b\u3010\u3011\u300c\u300d\uff08\uff09\uff0c\uff1a\uff1b\uff01\uff1f\u2192\u2190"
"""Always in the subset: ASCII, the punctuation templates and page furniture use."""


@dataclass(frozen=True)
class SystemFont:
    """One face of an installed font file (a .ttc holds several)."""

    path: str
    index: int
    family: str
    bold: bool = False


@dataclass(frozen=True)
class Face:
    """An @font-face rule to be: CSS family and weight, served from a subset of `source`."""

    family: str
    weight: int
    source: SystemFont
    key: str
    """Cache key of the subset: source file identity + character set + options."""

    @property
    def file_name(self) -> str:
        return f"{self.key[:24]}.otf"


@dataclass
class FontPlan:
    """What the print stylesheet needs: faces to declare, and a digest for PDF cache keys."""

    faces: list[Face] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    has_cjk_text: bool = False
    charset: str = BASE_CHARS
    """The characters every face is cut down to."""

    @property
    def digest(self) -> str:
        return hash_key("fonts", *(f"{f.family}:{f.weight}:{f.key}" for f in self.faces))

    def css(self, folder: Path) -> str:
        """@font-face rules pointing at the subset files in `folder` (a file: URL the fetcher allows)."""
        rules = []
        for f in self.faces:
            url = (folder / f.file_name).resolve().as_uri()
            rules.append(f'@font-face {{ font-family: "{f.family}"; font-weight: {f.weight}; font-style: normal; src: url("{url}"); }}')
        return "\n".join(rules)


def is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return 0x3400 <= cp <= 0x9FFF or 0xF900 <= cp <= 0xFAFF or 0x20000 <= cp <= 0x3134F or 0x3040 <= cp <= 0x30FF or 0xAC00 <= cp <= 0xD7AF


def collect_charset(texts: Iterable[str]) -> str:
    """The sorted characters of all texts plus the base set (controls and markup-only marks dropped)."""
    chars: set[str] = set(BASE_CHARS)
    for text in texts:
        chars.update(text)
    keep = (c for c in chars if unicodedata.category(c) not in ("Cc", "Cs", "Co", "Cn") or c in "\t\n")
    return "".join(sorted(keep))


_FORMAT = "%{file}\t%{index}\t%{family[0]}\t%{weight}\t%{lang}\n"


def _fc_match(patterns: list[str]) -> list[str]:
    """fontconfig's answers for several patterns; the fc-match processes run side by side."""
    exe = shutil.which("fc-match")
    if exe is None:
        return ["" for _ in patterns]
    procs = []
    for pattern in patterns:
        try:
            procs.append(subprocess.Popen([exe, "-f", _FORMAT, pattern], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
        except OSError:
            procs.append(None)
    out = []
    for proc in procs:
        try:
            text = proc.communicate(timeout=20)[0] if proc is not None else ""
            out.append(text if proc is not None and proc.returncode == 0 else "")
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            out.append("")
    return out


def _parse_match(out: str) -> SystemFont | None:
    """A matched face, if it really covers Chinese (fontconfig falls back to any font otherwise)."""
    line = out.splitlines()[0] if out.strip() else ""
    parts = line.split("\t")
    if len(parts) < 5 or not parts[0]:
        return None
    langs = parts[4].split("|")
    if not any(lang.startswith("zh") for lang in langs):
        return None
    try:
        index, weight = int(parts[1] or 0), int(float(parts[3] or 80))
    except ValueError:
        index, weight = 0, 80
    return SystemFont(parts[0], index, parts[2], bold=weight >= 180)


def find_cjk_fonts() -> dict[str, SystemFont]:
    """Installed CJK faces by role (`sans`, `sans-bold`, `mono`); empty when none is installed."""
    answers = _fc_match(["sans-serif:lang=zh-cn", "sans-serif:lang=zh-cn:weight=bold", "monospace:lang=zh-cn"])
    sans, bold, mono = (_parse_match(a) for a in answers)
    found: dict[str, SystemFont] = {}
    if sans is None:
        return found
    found["sans"] = sans
    if bold is not None and bold.bold and (bold.path, bold.index) != (sans.path, sans.index):
        found["sans-bold"] = bold
    if mono is not None and (mono.path, mono.index) != (sans.path, sans.index):
        found["mono"] = mono
    return found


def _identity(font: SystemFont) -> str:
    try:
        st = os.stat(font.path)
        return f"{font.path}:{font.index}:{st.st_size}:{int(st.st_mtime)}"
    except OSError:
        return f"{font.path}:{font.index}"


def plan_fonts(texts: Iterable[str], subset: bool = True, fonts: dict[str, SystemFont] | None = None) -> FontPlan:
    """Decide which subset faces the PDFs get; no font work happens here (cheap, for cache keys)."""
    charset = collect_charset(texts)
    plan = FontPlan(has_cjk_text=any(is_cjk(c) for c in charset), charset=charset)
    found = find_cjk_fonts() if fonts is None else fonts
    if not found:
        if plan.has_cjk_text:
            plan.warnings.append(
                f"no CJK font found: Chinese text in PDFs would be missing or drawn as boxes; install one ({INSTALL_HINT})"
            )
        return plan
    if not subset:
        return plan
    roles = [("sans", SANS, 400), ("sans-bold", SANS, 700), ("mono", MONO, 400)]
    for role, family, weight in roles:
        font = found.get(role)
        if font is None:
            continue
        key = hash_key("font-subset", SUBSET_VERSION, _fonttools_version(), _identity(font), charset)
        plan.faces.append(Face(family, weight, font, key))
    return plan


def _fonttools_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fonttools")
    except PackageNotFoundError:
        return "?"


def subset_font(font: SystemFont, charset: str) -> bytes:
    """One face cut down to the characters given (fontTools); layout tables kept for kerning only."""
    from io import BytesIO

    from fontTools import subset
    from fontTools.ttLib import TTFont

    options = subset.Options()
    options.hinting = False
    options.layout_features = ["kern", "liga", "ccmp", "locl"]
    options.notdef_outline = True
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    options.ignore_missing_unicodes = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[ord(c) for c in charset])
    # recalcTimestamp=False: saving would stamp head.modified with the current time, so two cold
    # builds of the same site would embed different font bytes in every PDF (not reproducible).
    with TTFont(font.path, fontNumber=font.index, lazy=True, recalcTimestamp=False) as tt:
        subsetter.subset(tt)
        out = BytesIO()
        tt.save(out)
    return out.getvalue()


@dataclass
class FaceJob:
    """Cutting one face, as a job for a worker process (fontTools is pure Python: one core per face)."""

    name: str
    font: SystemFont
    charset: str
    target: str = "generator.services.fonts:cut_face"
    timeout: float = 600.0
    """Cutting a face is not a page render: pdf.timeout does not apply."""


def cut_face(job: FaceJob) -> bytes:
    return subset_font(job.font, job.charset)


def faces_to_cut(plan: FontPlan, cache_root: Path | None) -> list[FaceJob]:
    """Faces whose subset is not in the cache yet."""
    cache = Cache(cache_root, "fonts")
    if cache.dir is None:
        return [FaceJob(f.key, f.source, plan.charset) for f in plan.faces]
    return [FaceJob(f.key, f.source, plan.charset) for f in plan.faces if not (cache.dir / f.key[:2] / f.key).is_file()]


FONT_MAGIC = (b"\x00\x01\x00\x00", b"OTTO", b"true", b"ttcf")
"""How a TrueType or OpenType file begins: anything else in the font cache is not a font we cut."""


def write_font_files(plan: FontPlan, cache: Cache | Path | None, folder: Path, cut: dict[str, bytes] | None = None) -> list[str]:
    """Put each subset face into `folder`: freshly cut ones (cached now), else from the cache, else cut here.

    Returns problems; a face that cannot be cut is left out and the PDF falls back to system fonts.
    Damaged cache entries are listed in `cache.corrupt` (pass a Cache to report them).
    """
    cache = cache if isinstance(cache, Cache) else Cache(cache, "fonts")
    problems: list[str] = []
    folder.mkdir(parents=True, exist_ok=True)
    for face in list(plan.faces):
        data = (cut or {}).get(face.key)
        if data is not None:
            cache.put(face.key, data)
        else:
            data = cache.get(face.key)
            if data is not None and data[:4] not in FONT_MAGIC:
                cache.corrupt.append(face.key)
                data = None
        if data is None:
            try:
                data = subset_font(face.source, plan.charset)
            except Exception as exc:  # a broken font file must not stop the PDFs
                problems.append(f"cannot subset {face.source.path}: {type(exc).__name__}: {exc}; using the full font")
                plan.faces.remove(face)
                continue
            cache.put(face.key, data)
        (folder / face.file_name).write_bytes(data)
    return problems
