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
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union, get_type_hints

from ..diagnostics import Diagnostic
from ..models import JobResult, Report
from ..services.cache import hash_key, write_atomic
from .codec import Corrupt, decoder, encoder

if TYPE_CHECKING:
    from ..jobs import JobStats

STATE_VERSION = 9
STATE_FILE = "build/state.json"
STATE_FORMAT = "sitegen-build-record"
PARSED_FORMAT = "sitegen-parsed-report"
_KEY = re.compile(r"[0-9a-f]{40}")

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
    corrupt: list[str] = field(default_factory=list)
    """Record files found damaged or foreign when loading (cache-relative), for one warning."""
    pending: tuple[Path, dict[str, tuple[str, str]]] | None = None
    """Parsed-report files listed by the record on disk but not read yet (see `load_parsed`)."""


def state_path(cache_root: Path) -> Path:
    return cache_root / STATE_FILE


def _blob_dir(cache_root: Path) -> Path:
    return cache_root / "build" / "parsed"


def _blob_key(fingerprint: str, rel: str, digest: str) -> str:
    # The path is part of the key: a report's slug and locations come from its path, not its bytes.
    return hash_key(fingerprint, rel, digest)[:40]


def _state_types() -> dict[str, Any]:
    """The declared type of every field of the record that is kept on disk."""
    from ..content import Rejected
    from ..jobs import JobStats
    from ..models import Draft, Profile

    hints = get_type_hints(BuildState, localns={"JobStats": JobStats})
    for transient in ("parsed", "dirty", "fresh", "corrupt", "pending"):
        del hints[transient]
    # The loose annotations, made exact so that every value is checked on load.
    hints["loaded"] = dict[str, tuple[str, Union[Profile, Draft, Rejected, None], list[Diagnostic]]]
    hints["content_stats"] = dict[str, tuple[Union[str, int], ...]]
    return hints


def _parsed_entry_type() -> Any:
    """A parsed-report file: (project-relative path, sha256 of its bytes, the report — or what a schema
    error left of it — or None, its diagnostics)."""
    from ..content import Rejected

    return tuple[str, str, Union[Report, Rejected, None], list[Diagnostic]]
_Index = dict[str, tuple[str, str]]
"""Report path → (sha256 of its bytes, key of its parsed-report file)."""


def _dump(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=True).encode("utf-8", "surrogatepass")


def _load(raw: bytes, kind: str) -> Any:
    """The payload of a record file of `kind`; Corrupt when it is not one (an old pickle, a foreign file)."""
    try:
        doc = json.loads(raw.decode("utf-8", "surrogatepass"))
    except (ValueError, RecursionError):
        raise Corrupt("not a JSON record") from None
    if type(doc) is not dict or doc.get("format") != kind:
        raise Corrupt("not a sitegen record")
    return doc


def load_state(cache_root: Path) -> BuildState:
    """The record of the last build; a missing or old file gives an empty record, a damaged one too
    (and its name is kept in `corrupt`, for the build to warn about).

    The record is JSON, checked field by field against the declared types: the cache folder may
    come with a repository, so nothing in it is unpickled or evaluated. Parsed reports live in one
    file per content hash (`build/parsed/`), so a build that parses one report writes one small file.
    """
    path = state_path(cache_root)
    try:
        raw = path.read_bytes()
    except OSError:
        return BuildState()
    enabled = gc.isenabled()
    gc.disable()  # decoding a million small objects triggers many useless full collections
    try:
        try:
            doc = _load(raw, STATE_FORMAT)
            if doc.get("version") != STATE_VERSION:
                return BuildState()  # written by another sitegen: not damaged, just not ours to read
            types_ = _state_types()
            fields = doc.get("state")
            if type(fields) is not dict or fields.keys() != types_.keys():
                raise Corrupt("unexpected fields")
            state = BuildState(**{name: decoder(tp)(fields[name]) for name, tp in types_.items()})
            index = decoder(_Index)(doc.get("index"))
        except (Corrupt, TypeError, ValueError, RecursionError):
            return BuildState(corrupt=[STATE_FILE], dirty=True)
    finally:
        if enabled:
            gc.enable()
    # Parsed reports are read when a build first asks for them: a build that changes nothing never does.
    state.pending = (_blob_dir(cache_root), index)
    state.dirty = False
    state.fresh = set()
    return state


def load_parsed(state: BuildState) -> None:
    """Read the parsed-report files the record lists (once); damaged or foreign ones go to `corrupt`."""
    if state.pending is None:
        return
    (blobs, index), state.pending = state.pending, None
    read_entry = decoder(_parsed_entry_type())
    enabled = gc.isenabled()
    gc.disable()
    try:
        for rel, (digest, key) in index.items():
            if not _KEY.fullmatch(key):
                state.corrupt.append(STATE_FILE)
                continue
            try:
                raw = (blobs / key[:2] / key).read_bytes()
            except OSError:
                continue
            try:
                entry_rel, entry_digest, report, diags = read_entry(_load(raw, PARSED_FORMAT).get("entry"))
                if (entry_rel, entry_digest) != (rel, digest):
                    raise Corrupt("a parse of another file")
            except (Corrupt, TypeError, ValueError, RecursionError):
                state.corrupt.append(f"build/parsed/{key[:2]}/{key}")
                state.dirty = True
                continue
            state.parsed[rel] = (digest, report, diags)
    finally:
        if enabled:
            gc.enable()


def parsed_count(state: BuildState) -> int:
    """How many parsed reports the record holds (without reading them)."""
    return len(state.parsed) + (len(state.pending[1]) if state.pending is not None else 0)


def save_state(cache_root: Path, state: BuildState) -> None:
    """Write the record atomically; a cache that cannot be written only costs speed."""
    if not state.dirty:
        return
    load_parsed(state)
    state.dirty = False
    blobs = _blob_dir(cache_root)
    index = {}
    written = False
    write_entry = encoder(_parsed_entry_type())
    for rel, (digest, report, diags) in state.parsed.items():
        key = _blob_key(state.fingerprint, rel, digest)
        index[rel] = (digest, key)
        path = blobs / key[:2] / key
        if rel in state.fresh or not path.exists():
            try:
                doc = {"format": PARSED_FORMAT, "version": STATE_VERSION, "entry": write_entry((rel, digest, report, diags))}
                write_atomic(path, _dump(doc))
                written = True
            except OSError:
                return
    state.fresh = set()
    fields = {name: encoder(tp)(getattr(state, name)) for name, tp in _state_types().items()}
    try:
        write_atomic(state_path(cache_root), _dump({"format": STATE_FORMAT, "version": STATE_VERSION, "state": fields, "index": index}))
    except OSError:
        return
    if written:
        _prune_blobs(blobs, {key for _digest, key in index.values()})


def _prune_blobs(blobs: Path, keep: set[str]) -> None:
    """Parses of content that no longer exists (old versions of edited reports)."""
    # A cache folder may come with a repository: never delete through a link it planted.
    if blobs.is_symlink() or blobs.parent.is_symlink():
        return
    try:
        shards = list(blobs.iterdir())
    except OSError:
        return
    for shard in shards:
        if shard.is_symlink():
            continue
        try:
            for entry in shard.iterdir():
                if entry.name not in keep:
                    entry.unlink(missing_ok=True)
        except OSError:
            continue


def adopt_state(state: BuildState, fingerprint: str, out: Path) -> None:
    """Forget what the record cannot vouch for: everything on a new fingerprint, pages on a new output."""
    if state.fingerprint != fingerprint:
        state.pending = None
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
