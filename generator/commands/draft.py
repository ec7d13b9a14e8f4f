"""`sitegen draft`: find the sections still to draft, render prompts, generate once, write drafts.

The engine is one function, `draft(project, options)`. It never imports torch itself: the
service (`services/drafts.py`) does, and only after every check that can fail cheaply (config,
content, slugs, prompt templates, model files) has passed, so a failed run changes nothing.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import jinja2

from ..config import SiteConfig, load_config
from ..diagnostics import Diagnostic, Location
from ..models import SECTORS, DraftMeta, Profile, Report
from ..services.cache import Cache, write_atomic
from ..templates import interface_strings, make_prompt_environment, template_error
from ..yamlsource import dump_yaml
from ..services.drafts import (
    DraftGenerator,
    DraftOutput,
    DraftRequest,
    GenerationSettings,
    StepReport,
    clean_text,
    derive_seed,
)

DRAFTS_DIR = "content/drafts"
SECTION_RE = re.compile(r"^[a-z0-9_]{1,40}$")
DEFAULT_PROMPT = "prompts/default.txt.j2"


@dataclass
class DraftOptions:
    """What `sitegen draft` was asked; None means "use sitegen.yaml"."""

    slugs: tuple[str, ...] = ()
    model: str | None = None
    device: str | None = None
    seed: int | None = None
    force: bool = False
    dry_run: bool = False
    progress: bool | None = None
    """Show a progress bar; None: when stderr is a terminal."""


@dataclass
class PlannedDraft:
    """One draft to generate: where it goes and the prompt that makes it."""

    slug: str
    section: str
    profile_path: str
    target: str
    """Project-relative path of the draft file."""
    reason: Literal["missing", "force"]
    prompt: str = ""
    lead: str = ""
    template: str = ""
    seed: int = 0
    lang: str = "en"

    @property
    def key(self) -> str:
        return f"{self.slug}/{self.section}"


@dataclass
class SkippedDraft:
    slug: str
    section: str
    target: str
    reason: Literal["exists", "reviewed"]


@dataclass
class DraftResult:
    """What happened: planned, written and skipped drafts, diagnostics, throughput."""

    planned: list[PlannedDraft] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    skipped: list[SkippedDraft] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    model: str = ""
    new_tokens: int = 0
    seconds: float = 0.0
    first_token_seconds: float | None = None
    """From the start of the run (model load included) to the first generated token."""

    @property
    def failed(self) -> bool:
        return any(d.level == "error" for d in self.diagnostics)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


GeneratorFactory = Callable[[SiteConfig, Path], DraftGenerator]


# --- planning -----------------------------------------------------------------------------


def collect_sections(profile: Profile, reports: list[Report], diags: list[Diagnostic]) -> list[str]:
    """Sections a profile lists under `drafts:`, then those its reports ask for with `draft_sections:`."""
    sections = list(profile.data.drafts)
    for report in reports:
        if profile.slug not in report.meta.startups:
            continue
        for i, name in enumerate(report.meta.draft_sections):
            if not SECTION_RE.match(name):
                line = getattr(report, "meta_lines", {}).get(("draft_sections", i)) or 1
                diags.append(
                    Diagnostic(
                        "error",
                        "draft-section",
                        f"draft_sections: section name not allowed: {name!r} (use a-z, 0-9 and _)",
                        Location(report.path, line),
                    )
                )
            elif name not in sections:
                sections.append(name)
    return sections


def collect_plan(
    project: Path, profiles: dict[str, Profile], reports: list[Report], options: DraftOptions
) -> tuple[list[PlannedDraft], list[SkippedDraft], list[Diagnostic]]:
    """Which drafts are missing (or forced); reviewed drafts are never replaced."""
    diags: list[Diagnostic] = []
    wanted = list(dict.fromkeys(options.slugs)) or sorted(profiles)
    for slug in wanted:
        if slug not in profiles:
            close = difflib.get_close_matches(slug, list(profiles), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            diags.append(Diagnostic("error", "draft", f"unknown start-up '{slug}'{hint}; profiles live in content/startups/"))
    planned: list[PlannedDraft] = []
    skipped: list[SkippedDraft] = []
    for slug in wanted:
        profile = profiles.get(slug)
        if profile is None:
            continue
        for section in collect_sections(profile, reports, diags):
            target = f"{DRAFTS_DIR}/{slug}/{section}.md"
            existing = profile.drafts.get(section)
            if existing is None and (project / target).exists():
                diags.append(Diagnostic("error", "draft", "existing draft could not be read; fix or delete it", Location(target, 1)))
                continue
            if existing is not None and existing.reviewed:
                skipped.append(SkippedDraft(slug, section, target, "reviewed"))
                continue
            if existing is not None and not options.force:
                skipped.append(SkippedDraft(slug, section, target, "exists"))
                continue
            reason: Literal["missing", "force"] = "force" if existing is not None else "missing"
            planned.append(PlannedDraft(slug, section, profile.path, target, reason))
    return planned, skipped, diags


# --- prompts ------------------------------------------------------------------------------


_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_MD_MARKS = re.compile(r"(\*\*|__|`+|^#{1,6}\s+|^>\s?)", re.M)
_TAG = re.compile(r"<[^>\n]{0,200}>")


def render_plain(markdown: str) -> str:
    """Markdown to the plain text a reader would see (links keep their text, images their alt)."""
    text = _MD_IMAGE.sub(r"\1", markdown)
    text = _MD_LINK.sub(r"\1", text)
    text = _TAG.sub("", text)
    text = _MD_MARKS.sub("", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def stage_label(stage: str, lang: str) -> str:
    """The theme's own name for a funding stage ("A 轮", "Series A")."""
    try:
        names = interface_strings().get(f"stage_{stage}", {})
    except FileNotFoundError:
        names = {}
    return names.get(lang) or stage.replace("-", " ")


def section_title(section: str) -> str:
    return section.replace("_", " ").strip().capitalize()


def render_prompt(env: jinja2.Environment, profile: Profile, section: str, lang: str) -> tuple[str, str, str]:
    """(prompt, lead, template name): the prompt ends with the lead, which also opens the draft."""
    names = [f"prompts/{section}.txt.j2", DEFAULT_PROMPT]
    template = env.select_template(names)
    data = profile.data
    context: dict[str, Any] = {
        "profile": data,
        "slug": profile.slug,
        "section": section,
        "section_title": section_title(section),
        "lang": lang,
        "sectors": [SECTORS[s][0 if lang == "zh" else 1] if s in SECTORS else s for s in data.sectors],
        "stage": stage_label(data.stage, lang),
        "canvas": data.canvas,
        "description": render_plain(data.description),
    }
    try:
        module = template.make_module(context)
    except Exception:
        # make_module skips Jinja's traceback rewriting; this re-raises with template lines.
        env.handle_exception()
    body = str(module).strip("\n")
    lead = str(getattr(module, "lead", "") or "").strip()
    prompt = body.rstrip() + "\n\n" + lead if lead else body.rstrip() + "\n\n"
    return prompt, lead, template.name or names[-1]


def _template_path(name: str, env: jinja2.Environment, project: Path) -> str:
    """Project-relative path of a template for diagnostics and provenance."""
    try:
        source = env.loader.get_source(env, name)[1] if env.loader else None
    except jinja2.TemplateNotFound:
        source = None
    if source:
        try:
            return Path(source).resolve().relative_to(project.resolve()).as_posix()
        except ValueError:
            pass
    return f"theme:{name}"  # the built-in theme of the installed sitegen


def render_prompts(project: Path, planned: list[PlannedDraft], profiles: dict[str, Profile], config: SiteConfig, seed: int) -> list[Diagnostic]:
    """Fill in prompt, lead, template and seed of each planned draft; template errors are collected."""
    env = make_prompt_environment(project)
    diags: list[Diagnostic] = []
    for item in planned:
        profile = profiles[item.slug]
        item.lang = profile.data.lang or config.language
        try:
            item.prompt, item.lead, name = render_prompt(env, profile, item.section, item.lang)
        except Exception as exc:  # noqa: BLE001 — any failure inside a prompt template is the template's error
            d = template_error(exc, project)
            diags.append(Diagnostic("error", "draft-prompt", f"{item.key}: {d.message}", d.location))
            continue
        item.template = _template_path(name, env, project)
        if not item.prompt.strip():
            diags.append(Diagnostic("error", "draft-prompt", f"{item.key}: the prompt template rendered no text", Location(item.template)))
        item.seed = derive_seed(seed, item.slug, item.section)
    return diags


# --- writing ------------------------------------------------------------------------------


def created_now() -> str:
    """UTC time of writing; SOURCE_DATE_EPOCH pins it for byte-identical reruns."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    when = dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc) if epoch.isdigit() else dt.datetime.now(dt.timezone.utc)
    return when.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_draft_file(meta: DraftMeta, text: str) -> str:
    """Front matter (DraftMeta) + the draft text; the text is stored as plain text."""
    data = meta.model_dump(mode="json", exclude_none=True)
    front = dump_yaml(data)
    return f"---\n{front}---\n\n{text.strip()}\n"


def write_draft(project: Path, target: str, meta: DraftMeta, text: str) -> Path:
    """Write one draft atomically (never half a file); unchanged bytes are not rewritten."""
    path = project / target
    data = render_draft_file(meta, text).encode("utf-8")
    try:
        if path.read_bytes() == data:
            return path
    except OSError:
        pass
    write_atomic(path, data)
    return path


def build_meta(item: PlannedDraft, output: DraftOutput, generator: DraftGenerator, config: SiteConfig, seed: int, versions: dict[str, str]) -> DraftMeta:
    """Full provenance: model, weights, revision, prompt, seed and every generation parameter."""
    info = generator.info
    generation: dict[str, Any] = {
        "max_new_tokens": config.draft.max_new_tokens,
        "temperature": config.draft.temperature,
        "top_p": config.draft.top_p,
        "do_sample": config.draft.temperature > 0,
        "draft_seed": item.seed,
        "max_prompt_tokens": config.draft.max_prompt_tokens,
        "prompt_tokens": output.prompt_tokens,
        "prompt_truncated": output.prompt_truncated,
        "new_tokens": output.new_tokens,
        "stopped": output.stopped,
        "batch_size": config.draft.batch_size,
        "device": generator.device,
        "dtype": generator.dtype,
        **versions,
    }
    return DraftMeta(
        section=item.section,
        startup=item.slug,
        status="draft",
        model=info.name,
        weights_sha256=info.weights_sha256,
        revision=info.revision,
        prompt_sha256=hashlib.sha256(item.prompt.encode("utf-8")).hexdigest(),
        prompt_template=item.template,
        seed=seed,
        generation=generation,
        created=created_now(),
        lang=item.lang if item.lang in ("zh", "en") else None,
    )


# --- the engine ---------------------------------------------------------------------------


def load_generator_from_config(config: SiteConfig, project: Path) -> DraftGenerator:
    """Resolve the configured model (folder, cache, download) and load it once."""
    from ..services.drafts import load_generator, resolve_model

    cache = Cache(project / config.cache_dir, "drafts")
    info = resolve_model(config.draft.model, project, allow_pickle=config.draft.allow_pickle, cache=cache)
    return load_generator(info, settings_from(config), allow_pickle=config.draft.allow_pickle)


def settings_from(config: SiteConfig) -> GenerationSettings:
    d = config.draft
    return GenerationSettings(d.temperature, d.top_p, d.max_prompt_tokens, d.batch_size, d.time_limit, d.device)


def draft(project: Path, options: DraftOptions, make_generator: GeneratorFactory | None = None) -> DraftResult:
    """Generate the missing drafts: plan → prompts → one model load → batches → atomic writes."""
    from ..content import load_content

    started = time.monotonic()
    result = DraftResult()
    overrides = {"draft.model": options.model, "draft.device": options.device, "draft.seed": options.seed}
    config, diags = load_config(project, overrides)
    result.diagnostics.extend(diags)
    if config is None:
        return result
    result.model = config.draft.model
    content, diags = load_content(project, config)
    result.diagnostics.extend(diags)
    if result.failed:
        return result
    planned, skipped, diags = collect_plan(project, content.profiles, content.reports, options)
    result.skipped = skipped
    result.diagnostics.extend(diags)
    seed = config.draft.seed
    result.diagnostics.extend(render_prompts(project, planned, content.profiles, config, seed))
    result.planned = planned
    if result.failed or options.dry_run or not planned:
        return result

    generator = (make_generator or load_generator_from_config)(config, project)
    result.model = generator.info.model
    versions = _versions(generator)
    by_key = {item.key: item for item in planned}
    requests = [DraftRequest(item.key, item.prompt, item.seed, config.draft.max_new_tokens) for item in planned]
    special = tuple(getattr(generator, "special_tokens", ()))

    def first_token(report: StepReport) -> None:
        if result.first_token_seconds is None and report.tokens:
            result.first_token_seconds = time.monotonic() - started

    def write(output: DraftOutput) -> None:
        """Each finished draft is written as soon as its batch ends: an interrupt keeps earlier batches."""
        item = by_key[output.key]
        if output.stopped == "time_limit":
            result.diagnostics.append(
                Diagnostic(
                    "error",
                    "draft-timeout",
                    f"{item.key}: drafting '{item.section}' for '{item.slug}' exceeded draft.time_limit "
                    f"({config.draft.time_limit:g} s per batch) after {output.new_tokens} tokens; nothing written",
                    Location(item.profile_path, 1),
                )
            )
            return
        text = clean_text(
            item.lead + output.text if item.lead else output.text,
            prompt=item.prompt,
            special_tokens=special,
            max_chars=config.draft.max_chars,
        )
        if not text:
            result.diagnostics.append(
                Diagnostic("warning", "draft-empty", f"{item.key}: the model produced no usable text; nothing written", Location(item.profile_path, 1))
            )
            return
        write_draft(project, item.target, build_meta(item, output, generator, config, seed, versions), text)
        result.written.append(item.target)

    gen_started = time.monotonic()
    with _progress(options.progress, requests) as on_step:

        def step(report: StepReport) -> None:
            first_token(report)
            result.new_tokens += report.tokens
            on_step(report)

        generator.generate(requests, step, write)
    result.seconds = time.monotonic() - gen_started
    return result


def _versions(generator: DraftGenerator) -> dict[str, str]:
    versions = getattr(generator, "versions", None)
    if versions is not None:
        return dict(versions)
    from ..services.drafts import record_versions

    return record_versions()


class _progress:
    """A rich progress bar with tokens/s on stderr when it is a terminal; otherwise silent."""

    def __init__(self, enabled: bool | None, requests: list[DraftRequest]):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.total = sum(r.max_new_tokens for r in requests)
        self.progress: Any = None
        self.started = 0.0
        self.tokens = 0

    def __enter__(self) -> Callable[[StepReport], None]:
        if not self.enabled:
            return lambda report: None
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("drafting"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} tokens"),
            TextColumn("{task.fields[rate]} tok/s"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task("drafting", total=self.total, rate="–")
        self.started = time.monotonic()

        def on_step(report: StepReport) -> None:
            self.tokens += report.tokens
            rate = self.tokens / max(time.monotonic() - self.started, 1e-9)
            self.progress.update(self.task, advance=report.tokens, rate=f"{rate:.1f}")

        return on_step

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()

