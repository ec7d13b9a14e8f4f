"""Fingerprints: what a page, a template or the whole site was made from, as hashes and file stats."""

from __future__ import annotations

import hashlib
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable

from ..models import Draft, Profile, Report
from ..services.cache import hash_key
from .record import STATE_VERSION, Stat


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Changes when sitegen's own code changes (a checkout being edited invalidates the record).

    Taken once per process: the code that runs is the code imported at start (serve runs for hours).
    """
    root = Path(__file__).resolve().parent.parent
    parts = [sys.version]
    from .. import __version__

    parts.append(__version__)
    for p in sorted(root.rglob("*.py")):
        try:
            st = p.stat()
        except OSError:
            continue
        parts.append(f"{p.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}")
    return hash_key(*parts)


def site_fingerprint(config: Any, want_pdf: bool, extra: dict[str, Any], theme: Path) -> str:
    """Everything every page depends on: code, config, PDF links, extra context, theme strings."""
    try:
        strings = (theme / "i18n.yaml").read_bytes()
    except OSError:
        strings = b""
    return hash_key(
        str(STATE_VERSION),
        code_fingerprint(),
        config.model_dump_json(),
        str(want_pdf),
        repr(sorted((k, repr(v)) for k, v in extra.items())),
        strings,
    )


def _walk_context(value: Any, paths: list[str], depth: int = 0) -> None:
    """Content files a page shows through its context (beyond `Page.sources`)."""
    if depth > 8 or value is None or isinstance(value, (str, int, float, bool)):
        return
    if isinstance(value, (Report, Draft)):
        paths.append(value.path)
    elif isinstance(value, Profile):
        paths.append(value.path)
        paths.extend(d.path for d in value.drafts.values())
    elif isinstance(value, dict):
        for v in value.values():
            _walk_context(v, paths, depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            _walk_context(v, paths, depth + 1)
    else:
        # Tags, sectors and other plain containers: look at their public fields.
        fields = getattr(value, "__dataclass_fields__", None)
        if fields:
            for name in fields:
                _walk_context(getattr(value, name, None), paths, depth + 1)


def collect_alias_deps(reports: Iterable[Report], profiles: Iterable[Profile], aliases: dict[str, str]) -> dict[str, str]:
    """Per source file, what its aliased jobs resolve to: a ```startup-diagram fence draws another
    file's data, so the page must change when that data does although its own source did not."""
    if not aliases:
        return {}
    deps: dict[str, str] = {}
    docs = [(r.path, r.body) for r in reports] + [(p.path, p.description) for p in profiles if p.description]
    for path, parsed in docs:
        targets = [aliases[j.key] for j in parsed.jobs if j.key in aliases]
        if targets:
            deps[path] = ",".join(targets)
    return deps


def page_signature(page: Any, fingerprint: str, source_hashes: dict[str, str], templates: Iterable[str],
                   template_hash: Callable[[str], str], alias_deps: dict[str, str]) -> str:
    """A hash over everything the page was made from; equal signature ⇒ equal bytes.

    Job results are functions of their keys, which are hashes of sources the page already covers;
    only aliased jobs (startup-diagram fences) add something, through `alias_deps`.
    """
    paths: list[str] = list(page.sources)
    _walk_context(page.context, paths)
    parts = [fingerprint, page.path, page.template, page.title, page.lang, page.kind]
    get = source_hashes.get
    for p in dict.fromkeys(paths):
        parts.append(f"{p}={get(p, '-')}")
        if p in alias_deps:
            parts.append(f"jobs={alias_deps[p]}")
    parts.extend(f"tpl={t}={template_hash(t)}" for t in sorted(templates))
    # One digest over NUL-separated parts (paths and names never hold NUL): cheaper than hash_key's framing.
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def make_template_hasher(dirs: list[Path]) -> Callable[[str], str]:
    """Hash of the file a template name resolves to (project templates override the theme)."""
    memo: dict[str, str] = {}

    def template_hash(name: str) -> str:
        if name not in memo:
            memo[name] = "missing"
            for d in dirs:
                p = d / name
                try:
                    memo[name] = hash_key(str(p), p.read_bytes())
                    break
                except OSError:
                    continue
        return memo[name]

    return template_hash


def file_stat(path: Path) -> Stat | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def walk_content(project: Path) -> dict[str, Any]:
    """Every file under content/ with the stat of what it points at; linked folders by their target."""
    root = project / "content"
    found: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = os.path.relpath(dirpath, project).replace(os.sep, "/")
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                found[f"{rel_dir}/{name}"] = ("link", os.readlink(full))
        for name in filenames:
            full = os.path.join(dirpath, name)
            try:
                st = os.stat(full)
                found[f"{rel_dir}/{name}"] = (st.st_ino, st.st_size, st.st_mtime_ns)
            except OSError:
                found[f"{rel_dir}/{name}"] = ("missing",)
    return found


def static_sources(project: Path) -> dict[str, tuple[str, Stat]]:
    from ..writers.html import collect_static

    out = {}
    for rel, src in collect_static(project, {}).items():
        if not isinstance(src, bytes):
            out[rel] = (str(src), file_stat(Path(src)) or (0, 0, 0))
    return out
