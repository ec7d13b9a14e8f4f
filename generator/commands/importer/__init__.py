"""`sitegen import`: turn raw analysis articles (Markdown-ish model output) into clean reports.

The heuristics are small pure functions over a list of `Line`s (text + source line number), so
each can be tested alone and every change they make can be reported with the line it came from.
`import_files` is the engine: read → remove chat tokens → split copies → clean each kept copy →
front matter → write (or diff). The modules follow those steps: text, chat, structure, metadata,
cleanups, convert.
"""

from .chat import strip_chat_tokens
from .cleanups import (
    collapse_repeated_chapters,
    convert_setext_titles,
    drop_empty_sections,
    drop_foreign_paragraphs,
    drop_pleasantries,
    drop_toc,
    merge_bilingual_headings,
    normalise_headings,
    normalise_math,
    tidy_lines,
)
from .convert import FileImport, ImportedReport, ImportResult, convert_article, format_summary, import_files, render_report
from .metadata import extract_abstract, extract_authors, extract_date, extract_keywords, extract_title, make_slug
from .structure import cjk_share, detect_lang, split_copies
from .text import Change, Line, fence_mask, read_source, split_lines

__all__ = [
    "Change", "FileImport", "ImportResult", "ImportedReport", "Line", "cjk_share", "collapse_repeated_chapters",
    "convert_article", "convert_setext_titles", "detect_lang", "drop_empty_sections", "drop_foreign_paragraphs",
    "drop_pleasantries", "drop_toc", "extract_abstract", "extract_authors", "extract_date", "extract_keywords",
    "extract_title", "fence_mask", "format_summary", "import_files", "make_slug", "merge_bilingual_headings",
    "normalise_headings", "normalise_math", "read_source", "render_report", "split_copies", "split_lines",
    "strip_chat_tokens", "tidy_lines",
]
