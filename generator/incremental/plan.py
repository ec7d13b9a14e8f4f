"""Incremental builds: the dependency record of the last build and what it lets the next one skip.

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
import hashlib
import os
import pickle
import sys
import zlib
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable

from ..diagnostics import Diagnostic
from ..models import Draft, JobResult, Profile, Report
from ..services.cache import hash_key, write_atomic

STATE_VERSION = 6
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
    loaded: dict[str, tuple[str, str, Any, list[Diagnostic]]] = field(default_factory=dict)
    """Profiles and drafts: path → (sha256, loader name, loaded object or None, its diagnostics)."""
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
    stats: dict[str, Any] = field(default_factory=dict)
    """Counts of the last good build (jobs, PDFs) for the summary of a build that changes nothing."""
    dirty: bool = False
    """True when the record changed and must be saved."""
    fresh: set[str] = field(default_factory=set)
    """Reports parsed by this process whose parse is not on disk yet."""


@dataclass
class PagePlan:
    """Which pages to render and which to keep from the previous output."""

    render: list[Any]
    keep: dict[str, PageRecord]
    signatures: dict[str, str]
    reasons: dict[str, str]
    """Output path → why it is rendered again (for `-v`)."""


# --- the record on disk -------------------------------------------------------------------


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


# --- fingerprints -------------------------------------------------------------------------


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


# --- parsing --------------------------------------------------------------------------------


def parse_reports_cached(
    state: BuildState,
    files: list[Any],
    parse: Callable[[list[Any]], list[tuple[Report | None, list[Diagnostic]]]],
    counts: dict[str, int],
) -> list[tuple[Report | None, list[Diagnostic]]]:
    """Reuse parsed reports whose bytes are unchanged; parse the rest (in parallel when many)."""
    digests = [hashlib.sha256(src.data).hexdigest() for src in files]
    misses = [i for i, (src, d) in enumerate(zip(files, digests)) if (state.parsed.get(src.rel) or ("",))[0] != d]
    fresh = parse([files[i] for i in misses]) if misses else []
    for i, item in zip(misses, fresh):
        state.parsed[files[i].rel] = (digests[i], item[0], item[1])
        state.fresh.add(files[i].rel)
    live = {src.rel for src in files}
    stale = [r for r in state.parsed if r not in live]
    for rel in stale:
        del state.parsed[rel]
    if misses or stale:
        state.dirty = True
    counts["parsed"] = len(misses)
    counts["reused"] = len(files) - len(misses)
    return [(state.parsed[src.rel][1], list(state.parsed[src.rel][2])) for src in files]


def reuse_loaded(state: BuildState, src: Any, loader: Callable[[Any, list[Diagnostic]], Any], diags: list[Diagnostic],
                 seen: set[str], counts: dict[str, int]) -> Any:
    """A profile or draft from the record when its bytes are unchanged, else freshly loaded."""
    digest = hashlib.sha256(src.data).hexdigest()
    seen.add(src.rel)
    rec = state.loaded.get(src.rel)
    if rec is not None and rec[0] == digest and rec[1] == loader.__name__:
        obj, found = rec[2], rec[3]
        counts["loaded_reused"] = counts.get("loaded_reused", 0) + 1
    else:
        found = []
        obj = loader(src, found)
        state.loaded[src.rel] = (digest, loader.__name__, obj, found)
        state.dirty = True
        counts["loaded"] = counts.get("loaded", 0) + 1
    diags.extend(found)
    if isinstance(obj, Profile):
        # load_content attaches drafts to profiles: hand out a copy so the record stays as loaded.
        obj = replace(obj, drafts={}, diagrams={})
    return obj


def prune_loaded(state: BuildState, seen: set[str]) -> None:
    stale = [r for r in state.loaded if r not in seen]
    for rel in stale:
        del state.loaded[rel]
    if stale:
        state.dirty = True


# --- jobs -----------------------------------------------------------------------------------


def split_jobs(state: BuildState, jobs: Iterable[Any]) -> tuple[dict[str, JobResult], list[Any]]:
    """Results the record already holds (stored marked as cached) and the jobs still to resolve, once per key."""
    known: dict[str, JobResult] = {}
    todo: dict[str, Any] = {}
    results = state.results
    for job in jobs:
        key = job.key
        if key in known or key in todo:
            continue
        res = results.get(key)
        if res is not None:
            known[key] = res
        else:
            todo[key] = job
    return known, list(todo.values())


def remember_results(state: BuildState, jobs: Iterable[Any], results: dict[str, JobResult]) -> None:
    """Keep error-free results of this build's jobs, marked as cached; drop the rest (errors may be transient)."""
    old = state.results
    keep: dict[str, JobResult] = {}
    for job in jobs:
        key = job.key
        if key in keep:
            continue
        res = results.get(key)
        if res is not None and not res.errors:
            keep[key] = old.get(key) or (res if res.cached else replace(res, cached=True))
    if keep.keys() != old.keys():
        state.dirty = True
        state.results = keep


# --- pages ----------------------------------------------------------------------------------


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


def plan_pages(state: BuildState, pages: list[Any], out: Path, fingerprint: str, source_hashes: dict[str, str],
               template_hash: Callable[[str], str], alias_deps: dict[str, str]) -> PagePlan:
    """Pages whose signature and previous output file are unchanged are kept; the rest are rendered."""
    plan = PagePlan([], {}, {}, {})
    for page in pages:
        rec = state.pages.get(page.path)
        templates = rec.templates if rec else (page.template,)
        sig = page_signature(page, fingerprint, source_hashes, templates, template_hash, alias_deps)
        plan.signatures[page.path] = sig
        if rec is None:
            plan.reasons[page.path] = "new page"
        elif rec.signature != sig:
            plan.reasons[page.path] = "sources or templates changed"
        elif file_stat(out / page.path) != rec.stat:
            plan.reasons[page.path] = "output file missing or modified"
        else:
            plan.keep[page.path] = rec
            continue
        plan.render.append(page)
    return plan


def record_pages(state: BuildState, plan: PagePlan, rendered: dict[str, bytes], used_templates: dict[str, set[str]],
                 pages: list[Any], out: Path, source_hashes: dict[str, str], template_hash: Callable[[str], str],
                 alias_deps: dict[str, str], digests: dict[str, str]) -> None:
    """After the swap: remember each page's signature (over the templates it really used) and file."""
    fresh: dict[str, PageRecord] = {}
    by_path = {p.path: p for p in pages}
    # Kept files were linked (or left) in place: same inode, size and mtime as recorded.
    fresh.update(plan.keep)
    for path in rendered:
        templates = tuple(sorted(used_templates.get(path) or {by_path[path].template}))
        sig = page_signature(by_path[path], state.fingerprint, source_hashes, templates, template_hash, alias_deps)
        st = file_stat(out / path)
        if st is None or path not in digests:
            continue
        fresh[path] = PageRecord(sig, templates, digests[path], st)
    if fresh != state.pages:
        state.pages = fresh
        state.dirty = True


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


def _static_sources(project: Path) -> dict[str, tuple[str, Stat]]:
    from ..writers.html import collect_static

    out = {}
    for rel, src in collect_static(project, {}).items():
        if not isinstance(src, bytes):
            out[rel] = (str(src), file_stat(Path(src)) or (0, 0, 0))
    return out


def record_inputs(state: BuildState, project: Path, content: Any, template_hash: Callable[[str], str],
                  diagnostics: list[Diagnostic], stats: dict[str, Any]) -> None:
    """What a good build read, so the next one can tell in milliseconds that nothing changed."""
    used = sorted({t for rec in state.pages.values() for t in rec.templates})
    fresh = {"sources": dict(content.sources), "content_stats": walk_content(project), "static_sources": _static_sources(project),
             "templates": {t: template_hash(t) for t in used},
             "diagnostics": list(diagnostics), "stats": {"jobs": dict(stats.get("jobs", {}))}}
    for name, value in fresh.items():
        if getattr(state, name) != value:
            setattr(state, name, value)
            state.dirty = True


def inputs_unchanged(state: BuildState, project: Path, out: Path, template_hash: Callable[[str], str]) -> bool:
    """Same content (by stat, else by bytes), same statics and templates, every output file as written.

    Like git's index: a file whose stat is unchanged is taken as unchanged; one whose stat changed
    (touched, copied back) is read and compared by hash, and its new stat remembered.
    """
    from ..writers.output import read_manifest

    now = walk_content(project)
    if now.keys() != state.content_stats.keys():
        return False
    touched = {}
    for rel, st in now.items():
        if st == state.content_stats[rel]:
            continue
        digest = state.sources.get(rel)
        if digest is None:
            return False
        try:
            with open(project / rel, "rb") as fh:
                if hashlib.sha256(fh.read()).hexdigest() != digest:
                    return False
        except OSError:
            return False
        touched[rel] = st
    if _static_sources(project) != state.static_sources:
        return False
    if any(template_hash(name) != digest for name, digest in state.templates.items()):
        return False
    for path, rec in state.pages.items():
        if file_stat(out / path) != rec.stat:
            return False
    for rel, srec in state.statics.items():
        if file_stat(out / rel) != srec.stat:
            return False
    manifest = read_manifest(out)
    if manifest is None:
        return False
    # Files written by later stages (PDFs, the search index): present, as the manifest says.
    if not all(os.path.lexists(out / rel) for rel in manifest.get("files", {}) if rel not in state.pages and rel not in state.statics):
        return False
    if touched:
        state.content_stats.update(touched)
        state.dirty = True
    return True


def plan_statics(state: BuildState, statics: dict[str, Path | bytes], out: Path) -> tuple[dict[str, StaticRecord], dict[str, Stat]]:
    """Static files whose source and previous output are untouched are linked without reading them."""
    keep: dict[str, StaticRecord] = {}
    source_stats: dict[str, Stat] = {}
    for rel, src in statics.items():
        if isinstance(src, bytes):
            continue
        st = file_stat(src)
        if st is None:
            continue
        source_stats[rel] = st
        rec = state.statics.get(rel)
        if rec is not None and rec.source_stat == st and file_stat(out / rel) == rec.stat:
            keep[rel] = rec
    return keep, source_stats


def record_statics(state: BuildState, source_stats: dict[str, Stat], out: Path, digests: dict[str, str]) -> None:
    fresh = {}
    for rel, sst in source_stats.items():
        st = file_stat(out / rel)
        if st is not None and rel in digests:
            fresh[rel] = StaticRecord(sst, digests[rel], st)
    if fresh != state.statics:
        state.statics = fresh
        state.dirty = True


# --- the build's view ---------------------------------------------------------------------------


class IncrementalBuild:
    """One build's use of the record: load it, answer "what must be redone", record what was done."""

    def __init__(self, cache_root: Path, out: Path, fingerprint: str, template_dirs: list[Path],
                 state: BuildState | None = None, enabled: bool = True, save: bool = True, project: Path | None = None):
        self.project = project or cache_root.parent
        self.cache_root = cache_root
        self.out = out
        self.enabled = enabled
        self.save = save and enabled and state is None
        if state is None:
            state = load_state(cache_root) if enabled else BuildState()
        self.state = state
        adopt_state(state, fingerprint, out)
        self.template_hash = make_template_hasher(template_dirs)
        self.counts: dict[str, int] = {}
        self.plan: PagePlan | None = None
        self.source_stats: dict[str, Stat] = {}
        self.seen: set[str] = set()

    def parser(self, parse: Callable[[list[Any]], list[tuple[Report | None, list[Diagnostic]]]]):
        """Wrap the report parser so unchanged files come from the record."""

        def parse_cached(files: list[Any]) -> list[tuple[Report | None, list[Diagnostic]]]:
            # load_content parses reports after loading profiles and drafts: prune those now.
            prune_loaded(self.state, self.seen)
            return parse_reports_cached(self.state, files, parse, self.counts)

        return parse_cached

    def reuse(self, src: Any, loader: Callable[[Any, list[Diagnostic]], Any], diags: list[Diagnostic]) -> Any:
        """For load_content: profiles and drafts from the record when unchanged."""
        return reuse_loaded(self.state, src, loader, diags, self.seen, self.counts)

    def diagram_sources(self, source_hashes: dict[str, str]) -> dict[tuple[str, str, str, str], str]:
        """The memo of profile diagram sources, without entries for files that changed or left."""
        memo = self.state.diagram_sources
        stale = [k for k in memo if source_hashes.get(k[0]) != k[1]]
        for k in stale:
            del memo[k]
        size = len(memo)
        self.state.dirty = self.state.dirty or bool(stale)
        self._memo_size = size
        return memo

    def split_jobs(self, jobs: list[Any]) -> tuple[dict[str, JobResult], list[Any]]:
        known, todo = split_jobs(self.state, jobs)
        self.counts["jobs_remembered"] = len(known)
        return known, todo

    def remember_results(self, jobs: list[Any], results: dict[str, JobResult]) -> None:
        remember_results(self.state, jobs, results)
        if len(self.state.diagram_sources) != getattr(self, "_memo_size", 0):
            self.state.dirty = True

    def plan_pages(self, site: Any, source_hashes: dict[str, str], aliases: dict[str, str], render_all: bool = False) -> list[Any]:
        """The pages to render; the others are linked from the previous output by `keep_pages`."""
        pages = site.pages
        self.source_hashes = source_hashes
        self.alias_deps = collect_alias_deps(site.reports, site.profiles, aliases)
        if render_all or not self.enabled:
            self.plan = PagePlan(list(pages), {}, {}, {p.path: "full build" for p in pages})
        else:
            self.plan = plan_pages(self.state, pages, self.out, self.state.fingerprint, source_hashes, self.template_hash,
                                   self.alias_deps)
        self.pages = pages
        self.counts["pages_kept"] = len(self.plan.keep)
        self.counts["pages_rendered"] = len(self.plan.render)
        return self.plan.render

    def seed_template_deps(self, project: Path) -> None:
        """Tell the renderer what each template includes, where none of those templates changed."""
        from ..templates import make_environment

        env = make_environment(project)
        known = env.__dict__.setdefault("_sitegen_template_deps", {})
        for name, (deps, hashes) in self.state.template_deps.items():
            if name not in known and all(self.template_hash(t) == h for t, h in hashes.items()):
                known[name] = set(deps)

    def _record_template_deps(self, used_templates: dict[str, set[str]]) -> None:
        by_path = {p.path: p.template for p in self.pages}
        for path, deps in used_templates.items():
            name = by_path.get(path)
            if name is None:
                continue
            entry = (tuple(sorted(deps)), {t: self.template_hash(t) for t in deps})
            if self.state.template_deps.get(name) != entry:
                self.state.template_deps[name] = entry
                self.state.dirty = True

    def keep_pages(self, tx: Any) -> list[Any]:
        """Link kept pages into the new output; returns pages whose old file vanished (render them)."""
        assert self.plan is not None
        lost = []
        by_path = {p.path: p for p in self.pages}
        for path, rec in list(self.plan.keep.items()):
            if not tx.keep(path, rec.digest):
                del self.plan.keep[path]
                lost.append(by_path[path])
        return lost

    def write_statics(self, tx: Any, statics: dict[str, Path | bytes]) -> None:
        """Static files: unchanged sources are linked from the previous output, the rest copied."""
        keep, self.source_stats = plan_statics(self.state, statics, self.out) if self.enabled else ({}, {})
        for rel, src in statics.items():
            if isinstance(src, bytes):
                tx.write(rel, src)
            elif rel in keep and tx.keep(rel, keep[rel].digest):
                continue
            else:
                tx.copy(rel, src)

    def finish(self, rendered: dict[str, bytes], used_templates: dict[str, set[str]], digests: dict[str, str],
               content: Any = None, diagnostics: list[Diagnostic] | None = None, stats: dict[str, Any] | None = None) -> None:
        """After the swap: record pages, statics and the inputs of this good build, then save the record."""
        if not self.enabled or self.plan is None:
            return
        record_pages(self.state, self.plan, rendered, used_templates, self.pages, self.out, self.source_hashes,
                     self.template_hash, self.alias_deps, digests)
        record_statics(self.state, self.source_stats, self.out, digests)
        self._record_template_deps(used_templates)
        if content is not None:
            record_inputs(self.state, self.project, content, self.template_hash, diagnostics or [], stats or {})
        if self.save:
            save_state(self.cache_root, self.state)

    def unchanged(self, project: Path) -> bool:
        """True when the last good build into this output had exactly these inputs and its files are intact."""
        if not self.enabled or not self.state.pages or not self.state.sources:
            return False
        if not inputs_unchanged(self.state, project, self.out, self.template_hash):
            return False
        if self.save:
            save_state(self.cache_root, self.state)  # remembers the new stats of touched files
        return True

    def replay(self, result: Any) -> None:
        """Fill a build result from the record: what the last good build found and counted."""
        st = self.state
        result.diagnostics.extend(st.diagnostics)
        jobs = dict(st.stats.get("jobs", {}))
        for kind in ("", "diagrams_", "formulas_"):
            jobs[f"{kind}cached"] = jobs.get(f"{kind}cached", 0) + jobs.get(f"{kind}rendered", 0)
            jobs[f"{kind}rendered"] = 0
        pages = len(st.pages)
        result.stats.update({
            "jobs": jobs, "pages": pages, "rendered": 0, "pages_written": 0, "pages_unchanged": pages,
            "written": 0, "unchanged": pages + len(st.statics),
        })
        self.counts.update({"unchanged": 1, "parsed": 0, "reused": len(st.parsed), "pages_kept": pages, "pages_rendered": 0})

    def save_parsed(self) -> None:
        """Keep what was parsed even when the build failed (the next run starts warmer)."""
        if self.save and self.state.dirty:
            save_state(self.cache_root, self.state)
