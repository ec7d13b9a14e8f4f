"""The plan: what the record lets one build skip, and recording what the build did.

A build reads the record once (`IncrementalBuild.plan`, after the content is loaded) and writes it
once (`IncrementalBuild.record`, after the new output is in place); in between it asks the `Plan`,
which holds plain data taken from the record.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from ..diagnostics import Diagnostic
from ..models import JobResult
from .fingerprints import collect_alias_deps, file_stat, make_template_hasher, page_signature, static_sources, walk_content
from .record import BuildState, PageRecord, Stat, StaticRecord, adopt_state, load_parsed, load_state, save_state


@dataclass
class PlanStats:
    """What the record saved this build (`sitegen build -v` prints it)."""

    parsed: int = 0
    reused: int = 0
    loaded: int = 0
    loaded_reused: int = 0
    jobs_remembered: int = 0
    pages_rendered: int = 0
    pages_kept: int = 0
    unchanged: bool = False
    """True when nothing changed since the last good build and the output was left as it was."""


@dataclass
class PagePlan:
    """Which pages to render and which to keep from the previous output."""

    render: list[Any]
    keep: dict[str, PageRecord]
    signatures: dict[str, str]
    reasons: dict[str, str]
    """Output path → why it is rendered again (for `-v`)."""



# --- jobs -----------------------------------------------------------------------------------


def split_jobs(results: dict[str, JobResult], jobs: Iterable[Any]) -> tuple[dict[str, JobResult], list[Any]]:
    """Results the record already holds (stored marked as cached) and the jobs still to resolve, once per key."""
    known: dict[str, JobResult] = {}
    todo: dict[str, Any] = {}
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


def record_inputs(state: BuildState, project: Path, content: Any, template_hash: Callable[[str], str],
                  diagnostics: list[Diagnostic], job_stats: Any) -> None:
    """What a good build read, so the next one can tell in milliseconds that nothing changed."""
    used = sorted({t for rec in state.pages.values() for t in rec.templates})
    fresh = {"sources": dict(content.sources), "content_stats": walk_content(project), "static_sources": static_sources(project),
             "templates": {t: template_hash(t) for t in used},
             "diagnostics": list(diagnostics), "job_stats": job_stats}
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
    if static_sources(project) != state.static_sources:
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


# --- the build's view ---------------------------------------------------------------------------


class Plan:
    """What this build may skip: plain data taken from the record once, asked by the later stages."""

    def __init__(self, state: BuildState, out: Path, template_hash: Callable[[str], str], enabled: bool,
                 source_hashes: dict[str, str], stats: PlanStats):
        self.out = out
        self.enabled = enabled
        self.fingerprint = state.fingerprint
        self.template_hash = template_hash
        self.source_hashes = source_hashes
        self.stats = stats
        self.results = state.results
        """Job key → error-free result of an earlier build."""
        self.diagram_sources = state.diagram_sources
        """Mermaid sources drawn from profile data (a memo that collect_jobs fills)."""
        self.previous_pages = state.pages
        self.previous_statics = state.statics
        self.previous_template_deps = state.template_deps
        self.pages: PagePlan = PagePlan([], {}, {}, {})
        self.alias_deps: dict[str, str] = {}
        self.source_stats: dict[str, Stat] = {}

    def split_jobs(self, jobs: list[Any]) -> tuple[dict[str, JobResult], list[Any]]:
        """Results this build already knows, and the jobs still to resolve."""
        known, todo = split_jobs(self.results, jobs)
        self.stats.jobs_remembered = len(known)
        return known, todo

    def pages_to_render(self, site: Any, aliases: dict[str, str]) -> list[Any]:
        """The pages to render; the others are linked from the previous output by `keep_pages`."""
        self.alias_deps = collect_alias_deps(site.reports, site.profiles, aliases)
        if not self.enabled:
            self.pages = PagePlan(list(site.pages), {}, {}, {p.path: "full build" for p in site.pages})
        else:
            state = BuildState(fingerprint=self.fingerprint, pages=self.previous_pages)
            self.pages = plan_pages(state, site.pages, self.out, self.fingerprint, self.source_hashes, self.template_hash,
                                    self.alias_deps)
        self.stats.pages_kept = len(self.pages.keep)
        self.stats.pages_rendered = len(self.pages.render)
        return self.pages.render

    def template_deps(self) -> dict[str, set[str]]:
        """What each page template includes, where none of those templates changed since it was recorded."""
        return {name: set(deps) for name, (deps, hashes) in self.previous_template_deps.items()
                if all(self.template_hash(t) == h for t, h in hashes.items())}

    def seed_template_deps(self, project: Path, config: Any) -> None:
        """Hand the renderer what each template includes, so it need not parse them all again."""
        from ..templates import site_environment

        # The environment the page renderer asks for (writers/html.py): same arguments, same cached object.
        env = site_environment(project, config)
        known = env.__dict__.setdefault("_sitegen_template_deps", {})
        for name, deps in self.template_deps().items():
            known.setdefault(name, deps)

    def keep_pages(self, tx: Any, pages: list[Any]) -> list[Any]:
        """Link kept pages into the new output; returns pages whose old file vanished (render them)."""
        lost = []
        by_path = {p.path: p for p in pages}
        for path, rec in list(self.pages.keep.items()):
            if not tx.keep(path, rec.digest):
                del self.pages.keep[path]
                lost.append(by_path[path])
        return lost

    def write_statics(self, tx: Any, statics: dict[str, Path | bytes]) -> None:
        """Static files: unchanged sources are linked from the previous output, the rest copied."""
        state = BuildState(statics=self.previous_statics)
        keep, self.source_stats = plan_statics(state, statics, self.out) if self.enabled else ({}, {})
        for rel, src in statics.items():
            if isinstance(src, bytes):
                tx.write(rel, src)
            elif rel in keep and tx.keep(rel, keep[rel].digest):
                continue
            else:
                tx.copy(rel, src)


class IncrementalBuild:
    """One build's use of the record: read once to plan, written once to record what the build did."""

    def __init__(self, cache_root: Path, out: Path, fingerprint: str, template_dirs: list[Path],
                 state: BuildState | None = None, enabled: bool = True, project: Path | None = None):
        self.project = project or cache_root.parent
        self.cache_root = cache_root
        self.out = out
        self.enabled = enabled
        # A record handed in (serve's, kept in memory) is the caller's to keep; only our own is saved.
        self.save_to_disk = enabled and state is None
        if state is None:
            state = load_state(cache_root) if enabled else BuildState()
        self.state = state
        adopt_state(state, fingerprint, out)
        self.template_hash = make_template_hasher(template_dirs)

    def problems(self) -> list[Diagnostic]:
        """One warning naming the record files found damaged or foreign; this build replaces them."""
        names, self.state.corrupt = self.state.corrupt, []
        if not names:
            return []
        shown = ", ".join(dict.fromkeys(names[:5])) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        where = self.cache_root.name or str(self.cache_root)
        return [Diagnostic("warning", "cache", f"build cache entries in {where} were damaged or not written by sitegen, "
                                              f"so they were ignored and are rebuilt: {shown}")]

    def known_files(self) -> dict[str, tuple[str, Any, list[Diagnostic]]]:
        """What the last build loaded, by path: load_content reuses what has the same bytes."""
        load_parsed(self.state)
        return {**self.state.loaded, **self.state.parsed}

    def plan(self, content: Any) -> Plan:
        """The plan stage: what the record lets this build skip."""
        stats = PlanStats()
        stats.parsed = sum(1 for rel in content.parsed if rel in content.fresh)
        stats.reused = len(content.parsed) - stats.parsed
        stats.loaded = sum(1 for rel in content.loaded if rel in content.fresh)
        stats.loaded_reused = len(content.loaded) - stats.loaded
        memo = self.state.diagram_sources
        stale = [k for k in memo if content.sources.get(k[0]) != k[1]]
        for k in stale:
            del memo[k]
        self.state.dirty = self.state.dirty or bool(stale)
        self._memo_size = len(memo)
        return Plan(self.state, self.out, self.template_hash, self.enabled, content.sources, stats)

    def _remember(self, content: Any, jobs: list[Any], results: dict[str, JobResult]) -> None:
        """What this build loaded and resolved: unchanged files and jobs are not redone next time."""
        st = self.state
        if content.parsed.keys() != st.parsed.keys() or content.loaded.keys() != st.loaded.keys() or content.fresh:
            st.dirty = True
        st.parsed = dict(content.parsed)
        st.loaded = dict(content.loaded)
        st.fresh |= {rel for rel in content.fresh if rel in content.parsed}
        remember_results(st, jobs, results)
        if len(st.diagram_sources) != getattr(self, "_memo_size", 0):
            st.dirty = True

    def keep_loaded(self, content: Any, jobs: list[Any], results: dict[str, JobResult]) -> None:
        """A failed build still records what it parsed and resolved (the next run starts warmer)."""
        self._remember(content, jobs, results)
        self.save()

    def save(self) -> None:
        """Write the record to the cache folder (serve keeps its own in memory)."""
        if self.save_to_disk and self.state.dirty:
            save_state(self.cache_root, self.state)

    def record(self, plan: Plan, site: Any, content: Any, jobs: list[Any], results: dict[str, JobResult],
               rendered: dict[str, bytes], used_templates: dict[str, set[str]], digests: dict[str, str],
               diagnostics: list[Diagnostic], job_stats: Any) -> None:
        """After the swap: record loads, jobs, pages, statics and the inputs of this good build, then save."""
        self._remember(content, jobs, results)
        if not self.enabled:
            return
        st = self.state
        record_pages(st, plan.pages, rendered, used_templates, site.pages, self.out, content.sources,
                     self.template_hash, plan.alias_deps, digests)
        record_statics(st, plan.source_stats, self.out, digests)
        by_path = {p.path: p.template for p in site.pages}
        for path, deps in used_templates.items():
            name = by_path.get(path)
            if name is None:
                continue
            entry = (tuple(sorted(deps)), {t: self.template_hash(t) for t in deps})
            if st.template_deps.get(name) != entry:
                st.template_deps[name] = entry
                st.dirty = True
        # Damaged cache entries were rebuilt by this build: a replay of it has nothing to say about them.
        findings = [d for d in diagnostics if d.code != "cache"]
        record_inputs(st, self.project, content, self.template_hash, findings, job_stats)
        self.save()

    def unchanged(self) -> bool:
        """True when the last good build into this output had exactly these inputs and its files are intact."""
        if not self.enabled or self.state.corrupt or not self.state.pages or not self.state.sources:
            return False
        if not inputs_unchanged(self.state, self.project, self.out, self.template_hash):
            return False
        self.save()  # remembers the new stats of touched files
        return True
