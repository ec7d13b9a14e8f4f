"""The engine: one copy → one report, front matter, the whole conversion of a file, and `import_files`."""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from ...diagnostics import Diagnostic, Diagnostics, Location
from ...models import FrontMatter
from ...services.cache import write_atomic
from ...yamlsource import YamlProblem, dump_yaml, parse_yaml
from .chat import strip_chat_tokens
from .cleanups import (
    _blocks, collapse_repeated_chapters, convert_setext_titles, drop_empty_sections, drop_foreign_paragraphs,
    drop_pleasantries, drop_toc, merge_bilingual_headings, normalise_headings, normalise_math, tidy_lines,
)
from .metadata import (
    derive_abstract, derive_title, extract_abstract, extract_authors, extract_date, extract_keywords, extract_title,
    make_slug,
)
from .structure import _prose, chapter_headings, cjk_share, detect_lang, find_headings, prose_texts, split_copies
from .text import _FENCE_OPEN, _LATIN, Change, Line, _span, cjk_count, has_cjk, read_source, split_lines, unclosed_fence


@dataclass
class ImportedReport:
    """One report produced from a source file (the article, or its translation)."""

    slug: str
    lang: str
    meta: dict
    body: str
    target: Path
    text: str
    status: Literal["new", "written", "unchanged", "dry-run", "skipped"] = "new"


@dataclass
class FileImport:
    """Everything `import` did (or would do) with one source file."""

    source: Path
    display: str
    reports: list[ImportedReport] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    diff: str = ""

    @property
    def failed(self) -> bool:
        return Diagnostics(self.diagnostics).failed()


@dataclass
class ImportResult:
    """The outcome of one `import` run: one entry per source file."""

    files: list[FileImport] = field(default_factory=list)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [d for f in self.files for d in f.diagnostics]

    @property
    def errors(self) -> list[Diagnostic]:
        return Diagnostics(self.diagnostics).errors

    @property
    def written(self) -> list[ImportedReport]:
        return [r for f in self.files for r in f.reports if r.status == "written"]


# --- one copy → one report ----------------------------------------------------------------------------


@dataclass
class CleanCopy:
    """A cleaned article copy: metadata found in it and the body lines."""

    lang: str
    title: str | None
    title_en: str | None
    keywords: list[str]
    abstract: str
    abstract_derived: bool
    authors: list[str]
    date: dt.date | None
    body: list[Line]
    changes: list[Change]
    warnings: list[Diagnostic]
    foreign_headings: int = 0
    foreign_lines: int = 0


def clean_copy(lines: list[Line], lang: str) -> CleanCopy:
    """Run every heuristic over one copy of the article, in order."""
    changes: list[Change] = []
    warnings: list[Diagnostic] = []
    lines = convert_setext_titles(lines)
    lines = tidy_lines(lines)
    title, title_en, lines, ch = extract_title(lines)
    changes += ch
    keywords, lines, ch = extract_keywords(lines)
    changes += ch
    abstract, lines, ch = extract_abstract(lines)
    changes += ch
    authors, lines, ch = extract_authors(lines)
    changes += ch
    date, lines, ch = extract_date(lines)
    changes += ch
    lines, ch = drop_toc(lines)
    changes += ch
    lines, ch = drop_pleasantries(lines)
    changes += ch
    lines, ch = merge_bilingual_headings(lines, lang)
    changes += ch
    lines, ch, foreign_lines = drop_foreign_paragraphs(lines, lang)
    changes += ch
    lines, ch, w = collapse_repeated_chapters(lines)
    changes += ch
    warnings += w
    lines, ch = normalise_headings(lines)
    changes += ch
    lines, ch = drop_empty_sections(lines)
    changes += ch
    lines, ch = normalise_math(lines)
    changes += ch
    lines = tidy_lines(lines)
    derived = False
    if not abstract:
        abstract = derive_abstract(lines, lang)
        derived = bool(abstract)
        if derived:
            changes.append(Change("extracted", "abstract from the introduction (kept in the body)"))
    foreign_headings = sum(1 for h in find_headings(lines) if lang == "en" and has_cjk(h.title))
    return CleanCopy(lang, title, title_en, keywords, abstract, derived, authors, date, lines, changes, warnings, foreign_headings, foreign_lines)


# --- front matter -------------------------------------------------------------------------------


def render_report(meta: dict, body: str) -> str:
    """Front matter (quoted so text stays text) + body; checked by loading it back strictly."""
    yaml_text = dump_yaml(meta)
    try:
        loaded = parse_yaml(yaml_text).data
    except YamlProblem as exc:  # pragma: no cover - safe_dump output is always loadable
        raise AssertionError(f"front matter does not load back: {exc}") from exc
    plain = {k: (v.raw if hasattr(v, "raw") else v) for k, v in (loaded or {}).items()}
    if plain != meta:
        raise AssertionError(f"front matter changed in a YAML round trip: {meta!r} → {plain!r}")
    FrontMatter.model_validate(loaded)
    return f"---\n{yaml_text}---\n\n{body.rstrip()}\n"


def build_meta(title: str, date: dt.date, copy: CleanCopy, source: str, translation_of: str | None = None) -> dict:
    """Front-matter fields in a fixed order; empty ones left out."""
    meta: dict = {"title": title, "date": date.isoformat()}
    if copy.authors:
        meta["authors"] = list(copy.authors)
    if copy.keywords:
        meta["keywords"] = list(copy.keywords)
    if copy.abstract:
        meta["abstract"] = copy.abstract
    meta["lang"] = copy.lang
    meta["source"] = source
    if translation_of:
        meta["translation_of"] = translation_of
    return meta


# --- the engine -----------------------------------------------------------------------------------


def _mixed_language(lines: list[Line], lang: str) -> int:
    """Prose paragraphs in the other language (a translation interleaved paragraph by paragraph)."""
    n = 0
    total = 0
    for start, end, kind in _blocks(lines):
        if kind != "para":
            continue
        texts = [_prose(ln.text) for ln in lines[start:end]]
        letters = sum(len(_LATIN.findall(t)) + cjk_count(t) for t in texts)
        if letters < 40:
            continue
        total += 1
        share = cjk_share(texts)
        if (lang == "zh" and share < 0.1) or (lang == "en" and share > 0.5):
            n += 1
    return n if total and n >= 3 and n / total >= 0.25 else 0


def _located(diags: list[Diagnostic], display: str) -> list[Diagnostic]:
    return [
        Diagnostic(d.level, d.code, d.message, Location(display, d.location.line, d.location.col) if d.location else Location(display))
        for d in diags
    ]


def convert_article(text: str, display: str, stem: str, today: dt.date) -> tuple[list[tuple[CleanCopy, str, str]], list[Change], list[Diagnostic]]:
    """Raw article text → cleaned copies to write as (copy, title, role) with role `main` or `translation`."""
    changes: list[Change] = []
    diags = Diagnostics()
    lines = split_lines(text)
    lines, ch, w = strip_chat_tokens(lines)
    changes += ch
    diags.extend(w)
    open_at = unclosed_fence([ln.text for ln in lines])
    if open_at is not None:
        diags.add(Diagnostic("warning", "import-fence", "code fence never closed; closed it at the end", Location("", lines[open_at].src)))
        fence = _FENCE_OPEN.match(lines[open_at].text)
        end = len(lines)
        while end > open_at + 1 and not lines[end - 1].text.strip():
            end -= 1
        lines = lines[:end] + [Line(fence["indent"] + fence["fence"], lines[end - 1].src)] + lines[end:]
        changes.append(Change("changed", "closed an unclosed code fence", lines[open_at].src))
    bounds = split_copies(lines)
    copies = [lines[a:b] for a, b in bounds]
    langs = [detect_lang(c) for c in copies]
    spines = [chapter_headings(find_headings(c)) for c in copies]
    scores = [len({h.key for h in sp}) for sp in spines]
    substantial = [i for i, c in enumerate(copies) if scores[i] > 0 or len("".join(prose_texts(c))) > 200] or [0]
    main_lang = langs[substantial[0]]
    groups: dict[str, list[int]] = {}
    for i in substantial:
        groups.setdefault(langs[i], []).append(i)

    def pick(indices: list[int]) -> int:
        best = max(scores[i] for i in indices)
        return next(i for i in indices if scores[i] == best)

    main = pick(groups[main_lang])
    trans_lang = next((lg for lg in groups if lg != main_lang), None)
    trans = pick(groups[trans_lang]) if trans_lang else None
    kept_keys = {k: {h.key for h in spines[k]} for k in (main, trans) if k is not None}
    for i, c in enumerate(copies):
        if i in (main, trans):
            continue
        a, b = _span(c)
        if not any(ln.text.strip() for ln in c):
            continue
        what = "duplicate copy of the article" if langs[i] == main_lang else "second translation"
        if i < main and langs[i] == main_lang:
            what = "incomplete first copy of the article"
        changes.append(Change("removed", what, a, b))
        kept = kept_keys[main if langs[i] == main_lang else (trans if trans is not None else main)]
        extra = [h.text for h in spines[i] if h.key not in kept]
        if extra:
            diags.add(
                Diagnostic(
                    "warning",
                    "import-copy",
                    f"removed {what} has chapter(s) missing from the kept copy: {', '.join(extra[:5])} — check it",
                    Location("", a),
                )
            )

    main_copy = clean_copy(copies[main], main_lang)
    changes += main_copy.changes
    diags.extend(main_copy.warnings)
    # Metadata missing from the kept copy may sit in a dropped copy of the same language.
    # Only the first few: a degenerate file can hold thousands of "copies".
    others = [clean_copy(copies[i], main_lang) for i in groups[main_lang][:4] if i != main] if (
        not main_copy.title or not main_copy.keywords or not main_copy.authors or main_copy.abstract_derived
    ) else []
    for o in others:
        for attr in ("title", "title_en", "date"):
            if getattr(main_copy, attr) is None and getattr(o, attr) is not None:
                setattr(main_copy, attr, getattr(o, attr))
                changes.append(Change("extracted", f"{attr.replace('_', ' ')} from a removed copy"))
        for attr in ("keywords", "authors"):
            if not getattr(main_copy, attr) and getattr(o, attr):
                setattr(main_copy, attr, getattr(o, attr))
                changes.append(Change("extracted", f"{attr} from a removed copy"))
        if main_copy.abstract_derived and o.abstract and not o.abstract_derived:
            main_copy.abstract, main_copy.abstract_derived = o.abstract, False
    title = main_copy.title
    if not title:
        title = derive_title(main_copy.abstract, main_copy.keywords, main_lang) or stem
        diags.add(Diagnostic("warning", "import-title", f"no title found; using {title!r} — check it", Location("", 1)))
        changes.append(Change("extracted", f"title {title!r} derived from the {'abstract' if main_copy.abstract else 'file name'}"))
    if not main_copy.keywords:
        diags.add(Diagnostic("warning", "import-keywords", "no keywords found", Location("", 1)))
    mixed = _mixed_language(main_copy.body, main_lang)
    if mixed:
        diags.add(
            Diagnostic(
                "warning",
                "import-translation",
                f"{mixed} paragraphs are in {'English' if main_lang == 'zh' else 'Chinese'}: the translation is interleaved and was not separated",
                Location("", 1),
            )
        )
    result = [(main_copy, title, "main")]

    if trans is not None:
        tcopy = clean_copy(copies[trans], trans_lang)
        a, b = _span(copies[trans])
        changes.append(Change("split", f"{'English' if trans_lang == 'en' else 'Chinese'} translation into its own report", a, b))
        changes += [replace(c, what=f"[{trans_lang}] {c.what}") for c in tcopy.changes]
        diags.extend(tcopy.warnings)
        ttitle = tcopy.title if tcopy.title and has_cjk(tcopy.title) == (trans_lang == "zh") else None
        if ttitle is None and trans_lang == "en":
            ttitle = tcopy.title_en or main_copy.title_en
        if ttitle is None:
            ttitle = derive_title(tcopy.abstract, tcopy.keywords, trans_lang) if not tcopy.abstract_derived else None
            ttitle = ttitle or title
            diags.add(
                Diagnostic("warning", "import-title", f"the translation has no title of its own; using {ttitle!r} — check it", Location("", a))
            )
        if tcopy.date is None:
            tcopy.date = main_copy.date
        if not tcopy.keywords and main_copy.keywords:
            # Shared keywords keep the two versions findable together; the analyst is told to translate them.
            tcopy.keywords = list(main_copy.keywords)
            changes.append(Change("extracted", "keywords of the translation from the original (none of its own)"))
            diags.add(
                Diagnostic("warning", "import-keywords", "the translation has no keywords of its own; kept the original's — translate them", Location("", a))
            )
        if not tcopy.authors:
            tcopy.authors = [
                (re.split(r"\s*/\s*", n)[-1] if trans_lang == "en" and "/" in n else n) for n in main_copy.authors
            ]
        else:
            tcopy.authors = [(re.split(r"\s*/\s*", n)[-1] if trans_lang == "en" and "/" in n and has_cjk(n) else n) for n in tcopy.authors]
        problems = []
        if tcopy.foreign_headings:
            problems.append(f"{tcopy.foreign_headings} heading(s) have no English title")
        if tcopy.foreign_lines:
            problems.append(f"{tcopy.foreign_lines} list/table line(s) are still in Chinese")
        dropped = sum(1 for c in tcopy.changes if c.what.startswith("Chinese paragraph"))
        if dropped:
            problems.append(f"{dropped} Chinese paragraph(s) dropped")
        if problems:
            diags.add(
                Diagnostic(
                    "warning",
                    "import-translation",
                    "translation not separated cleanly: " + "; ".join(problems) + " — review it",
                    Location("", a),
                )
            )
        result.append((tcopy, ttitle, "translation"))
    return result, changes, _located(diags.items, display)


def _display(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def import_files(
    paths: list[Path],
    into: Path,
    dry_run: bool = False,
    force: bool = False,
    today: dt.date | None = None,
) -> ImportResult:
    """Import raw articles into `into` (one report each, plus a translation report when found)."""
    today = today or dt.date.today()
    result = ImportResult()
    planned: dict[str, str] = {}
    into_display = _display(into)
    if into.exists() and not into.is_dir():
        fi = FileImport(into, into_display)
        fi.diagnostics.append(Diagnostic("error", "import-into", "target folder is a file", Location(into_display)))
        result.files.append(fi)
        return result
    for path in paths:
        display = _display(path)
        fi = FileImport(path, display)
        result.files.append(fi)
        text, problems = read_source(path, display)
        fi.diagnostics += problems
        if text is None:
            continue
        if not text.strip():
            fi.diagnostics.append(Diagnostic("error", "import-read", "file is empty", Location(display, 1)))
            continue
        stem = path.stem
        converted, changes, diags = convert_article(text, display, stem, today)
        fi.changes += changes
        fi.diagnostics += diags
        main_slug = ""
        for copy, title, role in converted:
            if role == "main":
                slug = main_slug = make_slug(title, stem, text)
                translation_of = None
            else:
                slug = f"{main_slug}-{copy.lang}"
                translation_of = main_slug
            meta = build_meta(title, copy.date or today, copy, path.name, translation_of)
            body = "\n".join(ln.text for ln in copy.body)
            target = into / f"{slug}.md"
            fi.reports.append(ImportedReport(slug, copy.lang, meta, body, target, render_report(meta, body)))
        # A source is imported whole or not at all: check every target first.
        for rep in fi.reports:
            key = rep.slug.casefold()
            tdisplay = _display(rep.target)
            if key in planned:
                fi.diagnostics.append(
                    Diagnostic("error", "import-exists", f"{tdisplay} would also be written from {planned[key]}; rename one source file", Location(display, 1))
                )
            elif rep.target.exists() or rep.target.is_symlink():
                same = rep.target.is_file() and not rep.target.is_symlink() and rep.target.read_bytes() == rep.text.encode("utf-8")
                if same:
                    rep.status = "unchanged"
                elif not force:
                    fi.diagnostics.append(
                        Diagnostic("error", "import-exists", f"{tdisplay} already exists; use --force to overwrite it", Location(display, 1))
                    )
        for rep in fi.reports:
            planned.setdefault(rep.slug.casefold(), display)
        fi.diff = "".join(_diff(text, display, rep) for rep in fi.reports)
        if fi.failed:
            for rep in fi.reports:
                rep.status = "skipped"
            continue
        for rep in fi.reports:
            if rep.status == "unchanged":
                continue
            if dry_run:
                rep.status = "dry-run"
                continue
            write_atomic(rep.target, rep.text.encode("utf-8"))
            os.chmod(rep.target, 0o644)  # mkstemp creates 0600; a report is an ordinary content file
            rep.status = "written"
    return result


def _diff(source_text: str, display: str, rep: ImportedReport) -> str:
    """The main report against its source (what the import changed); an existing target against the new text."""
    tdisplay = _display(rep.target)
    if rep.target.is_file():
        old, from_name = rep.target.read_text("utf-8", errors="replace"), tdisplay
    elif rep.meta.get("translation_of"):
        old, from_name = "", "/dev/null"
    else:
        old, from_name = source_text, display
    return "".join(
        difflib.unified_diff(old.splitlines(keepends=True), rep.text.splitlines(keepends=True), from_name, tdisplay)
    )


def format_summary(result: ImportResult, diff: bool = False) -> str:
    """Human-readable per-file summary (and the diffs for --dry-run)."""
    out = []
    for fi in result.files:
        if not fi.reports:
            continue
        for rep in fi.reports:
            out.append(f"{fi.display} → {_display(rep.target)} [{rep.lang}, {rep.status}]")
        for c in fi.changes:
            out.append(f"  {c.format()}")
        if diff and fi.diff:
            out.append(fi.diff.rstrip("\n"))
    return "\n".join(out) + ("\n" if out else "")
