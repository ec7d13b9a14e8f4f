"""The dependency record of the last build, and how it is kept on disk.

The record (kept in the cache folder by `build`, in memory by `serve`) holds:
- parsed reports by content hash, so unchanged Markdown is never parsed twice;
- resolved job results, so unchanged diagrams and formulas are not even looked up;
- for every output page: a signature over its sources (content hashes), the templates it used,
  the jobs it embeds and the site-wide fingerprint (sitegen version, config, theme strings),
  plus the digest and stat of the file it produced, so an unchanged page is hard-linked from the
  previous output instead of being rendered again;
- for every static file: the stat of its source, so unchanged assets are linked, not re-read.
"""

from __future__ import annotations

import gc
import pickle
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..diagnostics import Diagnostic
from ..models import JobResult, Report
from ..services.cache import hash_key, write_atomic

if TYPE_CHECKING:
    from ..jobs import JobStats

STATE_VERSION = 8
STATE_FILE = "build/state.pickle"

Stat = tuple[int, int, int]
"""(inode, size, mtime_ns) of a file: cheap proof that nobody touched it since we wrote it."""


@dataclass
class PageRecord:
    """What the last build knew about one output page."""

    signature: str
    templates: tuple[str, ...]
    digest: str
    stat: Stat


@dataclass
class StaticRecord:
    """A copied file: the stat of its source when copied, and of the output file."""

    source_stat: Stat
    digest: str
    stat: Stat


@dataclass
class BuildState:
    """The dependency record of one output folder (see the module docstring)."""

    fingerprint: str = ""
    out: str = ""
    parsed: dict[str, tuple[str, Report | None, list[Diagnostic]]] = field(default_factory=dict)
    """Project-relative report path → (sha256 of its bytes, parsed report or None, its diagnostics)."""
    loaded: dict[str, tuple[str, Any, list[Diagnostic]]] = field(default_factory=dict)
    """Profiles and drafts: path → (sha256, loaded object or None, its diagnostics)."""
    results: dict[str, JobResult] = field(default_factory=dict)
    """Job key → result (only results without errors, so failures are retried)."""
    diagram_sources: dict[tuple[str, str, str, str], str] = field(default_factory=dict)
    """Mermaid sources drawn from profile data, by (profile path, content hash, kind, lang)."""
    pages: dict[str, PageRecord] = field(default_factory=dict)
    statics: dict[str, StaticRecord] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    """Content files of the last good build → sha256 (for the "nothing changed" check)."""
    content_stats: dict[str, Any] = field(default_factory=dict)
    """Every entry under content/ → its stat (a changed stat is then checked against `sources`)."""
    static_sources: dict[str, tuple[str, Stat]] = field(default_factory=dict)
    """Theme and project static files → (source path, stat)."""
    templates: dict[str, str] = field(default_factory=dict)
    """Templates the last good build used → hash of the file they resolved to."""
    template_deps: dict[str, tuple[tuple[str, ...], dict[str, str]]] = field(default_factory=dict)
    """Page template → (templates it extends/includes, their hashes): saves parsing them in every process."""
    diagnostics: list[Diagnostic] = field(default_factory=list)
    """Findings of the last good build (a build that changes nothing reports them again)."""
    job_stats: JobStats | None = None
    """Job counts of the last good build, for the summary of a build that changes nothing."""
    dirty: bool = False
    """True when the record changed and must be saved."""
    fresh: set[str] = field(default_factory=set)
    """Reports parsed by this process whose parse is not on disk yet."""


def state_path(cache_root: Path) -> Path:
    return cache_root / STATE_FILE


def _blob_dir(cache_root: Path) -> Path:
    return cache_root / "build" / "parsed"


def _blob_key(fingerprint: str, rel: str, digest: str) -> str:
    # The path is part of the key: a report's slug and locations come from its path, not its bytes.
    return hash_key(fingerprint, rel, digest)[:40]


def _seal(payload: bytes) -> bytes:
    """A CRC before the payload: enough to catch a truncated or damaged file, and cheap on 40 MB."""
    return f"{zlib.crc32(payload):08x}".encode() + b"\n" + payload


def _unseal(raw: bytes) -> bytes | None:
    check, _, payload = raw.partition(b"\n")
    return payload if check == f"{zlib.crc32(payload):08x}".encode() else None


def _unpickle(payload: bytes | None) -> Any:
    """The cache folder is written only by sitegen (like the other caches); anything that does not
    unpickle cleanly is treated as missing and rebuilt."""
    if payload is None:
        return None
    try:
        return pickle.loads(payload)
    except Exception:  # noqa: BLE001 — any unreadable entry means "not cached"
        return None


def load_state(cache_root: Path) -> BuildState:
    """The record of the last build; a missing, old or corrupt file gives an empty record.

    Parsed reports live in one file per content hash (`build/parsed/`), so a build that parses one
    report writes one small file, not the whole record again.
    """
    try:
        raw = state_path(cache_root).read_bytes()
    except OSError:
        return BuildState()
    enabled = gc.isenabled()
    gc.disable()  # unpickling millions of small objects triggers many useless full collections
    try:
        loaded = _unpickle(_unseal(raw))
        if not isinstance(loaded, tuple) or len(loaded) != 3 or loaded[0] != STATE_VERSION or not isinstance(loaded[1], BuildState):
            return BuildState()
        _, state, index = loaded
        blobs = _blob_dir(cache_root)
        for rel, (digest, key) in index.items():
            try:
                entry = _unpickle(_unseal((blobs / key[:2] / key).read_bytes()))
            except OSError:
                continue
            if isinstance(entry, tuple) and len(entry) == 2:
                state.parsed[rel] = (digest, entry[0], entry[1])
    finally:
        if enabled:
            gc.enable()
    state.dirty = False
    state.fresh = set()
    return state


def save_state(cache_root: Path, state: BuildState) -> None:
    """Write the record atomically; a cache that cannot be written only costs speed."""
    if not state.dirty:
        return
    state.dirty = False
    blobs = _blob_dir(cache_root)
    index = {}
    written = False
    for rel, (digest, report, diags) in state.parsed.items():
        key = _blob_key(state.fingerprint, rel, digest)
        index[rel] = (digest, key)
        path = blobs / key[:2] / key
        if rel in state.fresh or not path.exists():
            try:
                write_atomic(path, _seal(pickle.dumps((report, diags), protocol=pickle.HIGHEST_PROTOCOL)))
                written = True
            except OSError:
                return
    state.fresh = set()
    light = replace(state, parsed={}, fresh=set())
    try:
        write_atomic(state_path(cache_root), _seal(pickle.dumps((STATE_VERSION, light, index), protocol=pickle.HIGHEST_PROTOCOL)))
    except OSError:
        return
    if written:
        _prune_blobs(blobs, {key for _digest, key in index.values()})


def _prune_blobs(blobs: Path, keep: set[str]) -> None:
    """Parses of content that no longer exists (old versions of edited reports)."""
    try:
        shards = list(blobs.iterdir())
    except OSError:
        return
    for shard in shards:
        try:
            for entry in shard.iterdir():
                if entry.name not in keep:
                    entry.unlink(missing_ok=True)
        except OSError:
            continue


def adopt_state(state: BuildState, fingerprint: str, out: Path) -> None:
    """Forget what the record cannot vouch for: everything on a new fingerprint, pages on a new output."""
    if state.fingerprint != fingerprint:
        state.parsed.clear()
        state.loaded.clear()
        state.diagram_sources.clear()
        state.sources.clear()
        state.results.clear()
        state.pages.clear()
        state.statics.clear()
        state.fingerprint = fingerprint
        state.dirty = True
    if state.out != str(out):
        state.pages.clear()
        state.statics.clear()
        state.out = str(out)
        state.dirty = True
