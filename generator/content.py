"""Finds and loads content (reports, profiles, drafts, assets): slugs, paths and cross-references."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import unquote

from pydantic import BaseModel, ValidationError

from .config import SiteConfig, validation_diagnostics
from .diagnostics import Diagnostic, Diagnostics, Location
from .markdown import parse_markdown
from .models import Draft, DraftMeta, FrontMatter, Profile, ProfileData, Report
from .paths import is_private_name
from .yamlsource import YamlDoc, load_yaml, split_front_matter

MAX_SOURCE_BYTES = 2 * 1024 * 1024
MEDIA_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".pdf", ".csv", ".xlsx"}


def media_output_path(content_rel: str) -> str:
    """Where a content file is published: content/assets/x → assets/x, other content/a/b → media/a/b."""
    rel = content_rel.removeprefix("content/")
    return rel if rel.startswith("assets/") else "media/" + rel


SLUG_RE = re.compile(r"^[\w][\w-]{0,99}$", re.UNICODE)


@dataclass
class SourceFile:
    """A content file found on disk: its project-relative path and its bytes."""

    rel: str
    abs: Path
    data: bytes


@dataclass
class Rejected:
    """A file whose fields failed the schema: its slug still counts, and a report's body is still checked."""

    path: str
    slug: str
    report: Report | None = None
    """The report as far as it could be read (fallback front matter), for the checks that need only its body."""


Known = tuple[str, Any, list[Diagnostic]]
"""(sha256 of a file's bytes, the object loaded from it or None, the findings of loading it)."""


@dataclass
class Content:
    """Everything loaded from content/: the input of the pipeline's pure middle."""

    reports: list[Report] = field(default_factory=list)
    profiles: dict[str, Profile] = field(default_factory=dict)
    drafts: list[Draft] = field(default_factory=list)
    assets: dict[str, Path] = field(default_factory=dict)
    """Output-relative path (assets/…) → source file."""
    sources: dict[str, str] = field(default_factory=dict)
    """Project-relative path → sha256 of its bytes (for incremental builds)."""
    parsed: dict[str, Known] = field(default_factory=dict)
    """Reports as parsed, by path, with their sha256 and findings: what a later build may reuse."""
    loaded: dict[str, Known] = field(default_factory=dict)
    """Profiles and drafts as loaded (before drafts are attached), the same way."""
    fresh: set[str] = field(default_factory=set)
    """Paths in `parsed` or `loaded` that this load read anew (the others came from `known`)."""
    rejected: list[Rejected] = field(default_factory=list)
    """Files that failed the schema: never rendered, but their slugs are known and their bodies checked."""


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def collect_files(project: Path, diags: list[Diagnostic]) -> list[SourceFile]:
    """Walk content/: refuse symlinks leading outside, skip hidden and secret files with a warning."""
    root = project / "content"
    if not root.is_dir():
        return []
    real_root = root.resolve()
    found: list[SourceFile] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        keep = []
        for d in sorted(dirnames):
            p = here / d
            rel = p.relative_to(project).as_posix()
            if d.startswith("."):
                if d not in (".git",):
                    diags.append(Diagnostic("warning", "hidden", "ignored hidden folder", Location(rel)))
                continue
            if p.is_symlink():
                target = p.resolve()
                if not _inside(target, real_root):
                    diags.append(Diagnostic("error", "symlink", f"symlink leads outside content/: {rel} -> {os.readlink(p)}", Location(rel)))
                    continue
                # A link inside the root is walked through its target only, to avoid loops.
                continue
            keep.append(d)
        dirnames[:] = keep
        rel_dir = here.relative_to(project).as_posix()
        for name in sorted(filenames):
            p = here / name
            rel = f"{rel_dir}/{name}"
            if is_private_name(name):
                diags.append(Diagnostic("warning", "hidden", "ignored hidden or secret file (never published)", Location(rel)))
                continue
            # One lstat per plain file (serve re-walks content/ on every save): only symlinks are resolved.
            full = os.path.join(dirpath, name)
            try:
                st: os.stat_result | None = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    if not _inside(p.resolve(), real_root):
                        diags.append(Diagnostic("error", "symlink", f"symlink leads outside content/: {rel} -> {os.readlink(p)}", Location(rel)))
                        continue
                    try:
                        st = os.stat(full)
                    except OSError:
                        st = None
                if st is None or not stat.S_ISREG(st.st_mode):
                    diags.append(Diagnostic("error", "special-file", "not a regular file", Location(rel)))
                    continue
                suffix = os.path.splitext(name)[1]
                if st.st_size > MAX_SOURCE_BYTES and suffix in (".md", ".yaml", ".yml"):
                    diags.append(Diagnostic("error", "size", "file larger than 2 MiB", Location(rel, 1)))
                    continue
                if suffix in (".md", ".yaml", ".yml", ".markdown"):
                    with open(full, "rb") as fh:
                        data = fh.read()
                else:
                    data = b""
            except OSError as exc:
                diags.append(Diagnostic("error", "io", f"cannot read: {exc.strerror}", Location(rel)))
                continue
            found.append(SourceFile(rel, p, data))
    return found


def decode_source(src: SourceFile, diags: list[Diagnostic]) -> str | None:
    """UTF-8 text or a located error (invalid bytes, NUL characters)."""
    try:
        text = src.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = src.data[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        diags.append(Diagnostic("error", "encoding", f"invalid UTF-8 byte 0x{src.data[exc.start]:02x}", Location(src.rel, line, col)))
        return None
    if "\x00" in text:
        idx = text.index("\x00")
        line = text.count("\n", 0, idx) + 1
        col = idx - (text.rfind("\n", 0, idx) + 1) + 1
        diags.append(Diagnostic("error", "encoding", "NUL character in text", Location(src.rel, line, col)))
        return None
    return text


def validate_slug(raw: str) -> str | None:
    """Percent-decode first, then validate, so `%2e%2e%2f` cannot slip through (Jekyll #1944)."""
    s = unicodedata.normalize("NFC", unquote(str(raw))).strip()
    if not SLUG_RE.match(s) or ".." in s:
        return None
    return s


def slug_from_name(stem: str) -> str:
    s = unicodedata.normalize("NFC", stem).strip().lower()
    s = re.sub(r"[^\w-]+", "-", s).strip("-_")
    return s


def _validate(model: type[BaseModel], data: Any, doc: YamlDoc, rel: str, diags: list[Diagnostic]):
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        diags.extend(validation_diagnostics(exc, doc, rel, model))
        return None


def _load_front_matter(src: SourceFile, diags: list[Diagnostic], model: type[BaseModel], missing: str):
    """Decode, split and validate a Markdown file's front matter: (meta or None if it failed the schema, doc, split) or None."""
    text = decode_source(src, diags)
    if text is None:
        return None
    split, problems = split_front_matter(text, src.rel)
    diags.extend(problems)
    if split is None:
        return None
    if split.yaml_text is None:
        diags.append(Diagnostic("error", "front-matter", missing, Location(src.rel, 1)))
        return None
    doc, problems = load_yaml(split.yaml_text, src.rel, line_offset=split.yaml_line - 1)
    diags.extend(problems)
    if doc is None:
        return None
    if doc.data is not None and not isinstance(doc.data, dict):
        diags.append(Diagnostic("error", "front-matter", "front matter must be a mapping of keys", Location(src.rel, 2, 1)))
        return None
    return _validate(model, doc.data, doc, src.rel, diags), doc, split


def load_report(src: SourceFile, diags: list[Diagnostic], default_lang: str) -> Report | Rejected | None:
    loaded = _load_front_matter(src, diags, FrontMatter, "report has no front matter (it needs at least a title)")
    if loaded is None:
        return None
    meta, doc, split = loaded
    stem = Path(src.rel).stem
    if meta is None:
        return _rejected_report(src, doc, split, default_lang, diags)
    if meta.slug is not None:
        slug = validate_slug(meta.slug)
        if slug is None:
            diags.append(Diagnostic("error", "slug", f"invalid slug {meta.slug!r}: slug resolves outside output directory or has characters other than letters, digits, - and _", doc.location(src.rel, ("slug",))))
            return None
    else:
        slug = slug_from_name(stem if stem != "index" else Path(src.rel).parent.name)
        if not slug:
            diags.append(Diagnostic("error", "slug", "empty slug: the file name has no letters or digits; set slug: in front matter", Location(src.rel, 1)))
            return None
    body = parse_markdown(split.body, src.rel, line_offset=split.body_line - 1)
    diags.extend(body.diagnostics)
    report = Report(src.rel, slug, meta, body, meta.lang or default_lang, source_text=split.body, body_line=split.body_line)
    report.meta_lines = {k: line + doc.line_offset for k, (line, _col) in doc.marks.items() if k}
    return report


def _rejected_report(src: SourceFile, doc: YamlDoc, split: Any, default_lang: str, diags: list[Diagnostic]) -> Rejected:
    """A report whose front matter failed: its body is parsed anyway, so its other problems show in the same pass."""
    stem = Path(src.rel).stem
    raw = doc.data.get("slug") if isinstance(doc.data, dict) else None
    slug = (validate_slug(raw) if isinstance(raw, str) else None) or slug_from_name(stem if stem != "index" else Path(src.rel).parent.name) or "-"
    body = parse_markdown(split.body, src.rel, line_offset=split.body_line - 1)
    diags.extend(body.diagnostics)
    # Never rendered, so its diagrams and formulas are not drawn; its links and prose pass the findings stage.
    report = Report(src.rel, slug, FrontMatter.model_construct(title=stem), body, default_lang, source_text=split.body, body_line=split.body_line)
    return Rejected(src.rel, slug, report)


def load_profile(src: SourceFile, diags: list[Diagnostic]) -> Profile | Rejected | None:
    text = decode_source(src, diags)
    if text is None:
        return None
    if text.startswith("\ufeff"):
        text = text[1:]
    doc, problems = load_yaml(text.replace("\r\n", "\n"), src.rel)
    diags.extend(problems)
    if doc is None:
        return None
    if not isinstance(doc.data, dict):
        diags.append(Diagnostic("error", "schema", "a profile must be a mapping of keys", Location(src.rel, 1, 1)))
        return None
    data = _validate(ProfileData, doc.data, doc, src.rel, diags)
    slug = slug_from_name(Path(src.rel).stem)
    if not slug or validate_slug(slug) is None:
        diags.append(Diagnostic("error", "slug", "invalid profile file name (use letters, digits, - and _)", Location(src.rel)))
        return None
    if data is None:
        # Reports naming this start-up are not wrong: the one error is the profile's own.
        return Rejected(src.rel, slug)
    profile = Profile(src.rel, slug, data)
    profile.lines = {k[0]: line for k, (line, _col) in doc.key_marks.items() if len(k) == 1}
    if data.description:
        line = doc.location(src.rel, ("description",)).line or 1
        profile.description = parse_markdown(data.description, src.rel, line_offset=line)
        diags.extend(profile.description.diagnostics)
    return profile


def load_draft(src: SourceFile, diags: list[Diagnostic]) -> Draft | None:
    loaded = _load_front_matter(src, diags, DraftMeta, "draft has no front matter")
    if loaded is None:
        return None
    meta, _doc, split = loaded
    if meta is None:
        return None
    parts = Path(src.rel).parts  # content/drafts/<slug>/<section>.md
    slug, section = parts[-2], Path(parts[-1]).stem
    return Draft(src.rel, slug, section, meta, split.body.strip())


def _parse_chunk(args: tuple[list[SourceFile], str]) -> list[tuple[Report | None, list[Diagnostic]]]:
    files, lang = args
    out = []
    for src in files:
        local: list[Diagnostic] = []
        out.append((load_report(src, local, lang), local))
    return out


def parse_reports_parallel(files: list[SourceFile], lang: str, workers: int) -> list[tuple[Report | None, list[Diagnostic]]]:
    """Markdown parsing is pure and CPU-bound: split it across cores (fork keeps start-up cheap)."""
    if workers <= 1 or len(files) < 40:
        return _parse_chunk((files, lang))
    from .workers import map_chunks

    return map_chunks(lambda chunk: _parse_chunk((chunk, lang)), files, workers)


def load_content(project: Path, config: SiteConfig, known: Mapping[str, Known] | None = None,
                 workers: int = 1) -> tuple[Content, list[Diagnostic]]:
    """Load every content file and check cross-references; all problems are collected.

    `known` holds what an earlier build loaded (by path); a file with the same bytes is taken from
    it instead of being loaded again. Reports still to parse are parsed on `workers` cores.
    """
    diags: list[Diagnostic] = []
    known = known or {}
    content = Content()
    files = collect_files(project, diags)

    def load(src: SourceFile, loader: Callable[[SourceFile, list[Diagnostic]], Any]) -> Any:
        digest = hashlib.sha256(src.data).hexdigest()
        entry = known.get(src.rel)
        if entry is None or entry[0] != digest:
            found: list[Diagnostic] = []
            entry = (digest, loader(src, found), found)
            content.fresh.add(src.rel)
        content.loaded[src.rel] = entry
        diags.extend(entry[2])
        # Drafts are attached to profiles below: the loaded profile stays as loaded, for reuse.
        return replace(entry[1], drafts={}) if isinstance(entry[1], Profile) else entry[1]

    report_files: list[SourceFile] = []
    for src in files:
        parts = Path(src.rel).parts
        area = parts[1] if len(parts) > 2 else ""
        if src.data:
            content.sources[src.rel] = hashlib.sha256(src.data).hexdigest()
        if area == "reports" and src.abs.suffix in (".md", ".markdown"):
            report_files.append(src)
        elif area == "startups" and src.abs.suffix in (".yaml", ".yml"):
            p = load(src, load_profile)
            if isinstance(p, Rejected):
                content.rejected.append(p)
            elif p is not None:
                if p.slug in content.profiles:
                    diags.append(Diagnostic("error", "duplicate", f"start-up '{p.slug}' is defined twice: {content.profiles[p.slug].path} and {p.path}", Location(p.path)))
                else:
                    content.profiles[p.slug] = p
        elif area == "drafts" and src.abs.suffix == ".md" and len(parts) == 4:
            d = load(src, load_draft)
            if d is not None:
                content.drafts.append(d)
        elif area == "assets":
            content.assets["assets/" + "/".join(parts[2:])] = src.abs
        elif area in ("reports", "startups") and src.abs.suffix.lower() in MEDIA_SUFFIXES:
            # Images beside the reports are published under media/, where rewritten links find them.
            content.assets[media_output_path(src.rel)] = src.abs
        elif area in ("reports", "startups", "drafts"):
            diags.append(Diagnostic("warning", "ignored", f"ignored file (expected {'.md' if area != 'startups' else '.yaml'})", Location(src.rel)))
    _load_reports(content, report_files, known, config.language, workers)
    for rel in content.parsed:
        _digest, report, local = content.parsed[rel]
        diags.extend(local)
        if isinstance(report, Rejected):
            content.rejected.append(report)
        elif report is not None:
            content.reports.append(report)
    _check_collisions(content, diags)
    _check_references(content, diags)
    _check_images(project, content, config, diags)
    for d in content.drafts:
        p = content.profiles.get(d.slug)
        if p is None:
            diags.append(Diagnostic("warning", "draft", f"draft for unknown start-up '{d.slug}'", Location(d.path, 1)))
        else:
            p.drafts[d.section] = d
    content.reports.sort(key=lambda r: r.path)
    return content, diags


def _load_reports(content: Content, files: list[SourceFile], known: Mapping[str, Known], lang: str, workers: int) -> None:
    """Reports whose bytes `known` already holds are reused; the rest are parsed (in parallel when many)."""
    digests = [hashlib.sha256(src.data).hexdigest() for src in files]
    misses = [i for i, (src, d) in enumerate(zip(files, digests)) if (known.get(src.rel) or ("",))[0] != d]
    fresh = dict(zip(misses, parse_reports_parallel([files[i] for i in misses], lang, workers))) if misses else {}
    for i, src in enumerate(files):
        if i in fresh:
            report, local = fresh[i]
            content.parsed[src.rel] = (digests[i], report, local)
            content.fresh.add(src.rel)
        else:
            content.parsed[src.rel] = known[src.rel]


def check_drafts(content: Content, config: SiteConfig, diags: Diagnostics) -> None:
    """Missing drafts show a placeholder (a warning; --strict fails); unreviewed ones may fail --strict."""
    for r in content.reports:
        if not r.published:
            continue
        for slug in r.meta.startups:
            p = content.profiles.get(slug)
            missing = [s for s in r.meta.draft_sections if p is not None and s not in p.drafts]
            if missing:
                line = r.meta_lines.get(("draft_sections",), 1)
                diags.warning("draft-missing", f"not drafted yet for {slug}: {', '.join(missing)} (run `sitegen draft {slug}`)", Location(r.path, line))
    for p in content.profiles.values():
        missing = [s for s in p.data.drafts if s not in p.drafts]
        if missing:
            line = p.lines.get("drafts", 1)
            diags.warning("draft-missing", f"not drafted yet: {', '.join(missing)} (run `sitegen draft {p.slug}`)", Location(p.path, line))
        for section, d in sorted(p.drafts.items()):
            if not d.reviewed and config.draft.require_review:
                diags.warning("draft-unreviewed", f"draft '{section}' of {p.slug} is not reviewed (set status: reviewed)", Location(d.path, 1))


def _check_collisions(content: Content, diags: list[Diagnostic]) -> None:
    """Two sources never write one output file: keys compared case-folded and NFC-normalised."""
    seen: dict[str, str] = {}
    for r in content.reports:
        if r.meta.draft:
            continue
        key = unicodedata.normalize("NFC", r.url).casefold()
        if key in seen:
            diags.append(Diagnostic("error", "collision", f"output path '{r.url}' produced by both {seen[key]} and {r.path}", Location(r.path, 1)))
        else:
            seen[key] = r.path
    for p in content.profiles.values():
        key = unicodedata.normalize("NFC", p.url).casefold()
        if key in seen:
            diags.append(Diagnostic("error", "collision", f"output path '{p.url}' produced by both {seen[key]} and {p.path}", Location(p.path, 1)))
        else:
            seen[key] = p.path


def _check_images(project: Path, content: Content, config: SiteConfig, diags: list[Diagnostic]) -> None:
    """Relative images must be regular files inside content/ and small enough to embed (SECURITY WP-02..06)."""
    from .services.fetcher import check_content_image

    parsed = [r.body for r in content.reports] + [p.description for p in content.profiles.values() if p.description]
    for doc in parsed:
        for src, loc in getattr(doc, "images", None) or []:
            problem = check_content_image(project, loc.path, src, config.pdf.max_image_pixels)
            if problem is not None:
                diags.append(Diagnostic(problem.level, "image", problem.message, loc))  # type: ignore[arg-type]


def _check_references(content: Content, diags: list[Diagnostic]) -> None:
    rejected = {r.slug for r in content.rejected if r.report is None}
    for r in content.reports:
        for i, slug in enumerate(r.meta.startups):
            if slug not in content.profiles and slug not in rejected:
                diags.append(Diagnostic("error", "reference", f"startups: unknown start-up '{slug}'", _meta_location(r, "startups", i)))
        if r.meta.translation_of and not any(o.slug == r.meta.translation_of for o in content.reports):
            diags.append(Diagnostic("warning", "reference", f"translation_of: unknown report '{r.meta.translation_of}'", _meta_location(r, "translation_of")))


def _meta_location(report: Report, key: str, index: int | None = None) -> Location:
    """Where a front-matter value was written (falls back to the key, then the file)."""
    path = (key,) if index is None else (key, index)
    line = report.meta_lines.get(path) or report.meta_lines.get((key,)) or 1
    return Location(report.path, line)
