"""`SiteConfig`: every option of `sitegen.yaml` declared once, with type, default and docstring."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .diagnostics import Diagnostic, Location
from .yamlsource import YamlDoc, load_yaml

CONFIG_FILE = "sitegen.yaml"

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


class Section(BaseModel):
    """Base for config sections: unknown keys are errors, values are validated strictly."""

    model_config = ConfigDict(extra="forbid", validate_default=True, use_attribute_docstrings=True)


class NavItem(Section):
    title: str
    """Label shown in the navigation bar."""
    url: str
    """Site-relative path (e.g. `reports/index.html`) or an http(s) URL."""

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        v = v.strip()
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", v) and not re.match(r"^https?://", v, re.I):
            raise ValueError("URL scheme not allowed (use http, https or a site-relative path)")
        if v.startswith("//"):
            raise ValueError("protocol-relative URLs are not allowed")
        return v


class ThemeConfig(Section):
    accent_color: str = "#2563eb"
    """Accent colour used by the theme (#RRGGBB)."""
    featured: list[str] = Field(default_factory=list)
    """Slugs of start-ups featured on the home page (default: the first six)."""
    home_reports: int = 10
    """How many of the latest reports the home page lists."""

    @field_validator("accent_color")
    @classmethod
    def _color(cls, v: str) -> str:
        if not _COLOR.match(v):
            raise ValueError("must match #RRGGBB")
        return v


class DiagramsConfig(Section):
    enabled: bool = True
    """Render ```mermaid fences and profile diagrams to SVG at build time."""
    renderer: Literal["embedded", "ink"] = "embedded"
    """`embedded` (mermaid-render, no browser) or `ink` (a mermaid.ink server in MERMAID_INK_SERVER)."""
    timeout: float = 20.0
    """Seconds one diagram may take before it is stopped with an error."""
    max_chars: int = 50_000
    """Longest Mermaid source accepted."""
    theme: Literal["default", "neutral", "dark", "forest"] = "neutral"
    """Mermaid theme used for the build-time SVG."""
    max_edges: int = 500
    """Most links a flowchart may have (Mermaid's own maxEdges default)."""


class MathConfig(Section):
    enabled: bool = True
    """Render `$…$`, `$$…$$`, `\\(…\\)` and `\\[…\\]` at build time."""
    timeout: float = 5.0
    """Seconds one formula may take."""
    html: Literal["mathml", "svg"] = "mathml"
    """What the HTML site uses: MathML (fast, selectable) or the same SVG as the PDF."""
    max_expansions: int = 1000
    """Macro expansion limit per formula."""
    macros: dict[str, str] = Field(default_factory=dict)
    """Macros for every formula, e.g. `"\\RR": "\\mathbb{R}"` (`#1`… for arguments)."""

    @field_validator("macros")
    @classmethod
    def _macro_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if not re.fullmatch(r"\\?[A-Za-z]+", name):
                raise ValueError(f"macro name must be letters, like \\RR: {name!r}")
        return v


class PdfConfig(Section):
    enabled: bool = False
    """Build PDFs as part of `sitegen build` (same as `--pdf`)."""
    page_size: Literal["A4", "Letter"] = "A4"
    """Paper size."""
    margin: str = "20mm"
    """Page margin (CSS length)."""
    book: bool = True
    """Also build the whole site as one book when PDFs are built."""
    timeout: float = 120.0
    """Seconds one PDF may take before its worker is killed."""
    memory_mb: int = 2048
    """Memory limit of one PDF worker."""
    max_image_pixels: int = 50_000_000
    """Largest image (pixels) a PDF may embed."""
    allow_network: list[str] = Field(default_factory=list)
    """Hosts PDF rendering may fetch from (default: none). Redirects are never followed."""
    subset_fonts: bool = True
    """Subset CJK fonts once per build to the characters used (much faster than WeasyPrint's own)."""


class DraftConfig(Section):
    model: str = "gpt2"
    """Model id or local folder for `sitegen draft`."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where generation runs."""
    seed: int = 1234
    """Random seed; same model + prompt + seed gives the same draft."""
    max_new_tokens: int = 160
    """Token budget per draft."""
    max_prompt_tokens: int = 768
    """Prompts are truncated to this many tokens."""
    max_chars: int = 3000
    """Longest draft text kept (characters); the cut falls at the end of a sentence."""
    temperature: float = 0.8
    """Sampling temperature."""
    top_p: float = 0.95
    """Nucleus sampling."""
    batch_size: int = 8
    """Drafts generated together."""
    time_limit: float = 120.0
    """Seconds one batch of drafts may take."""
    require_review: bool = False
    """Under --strict, fail on drafts not yet reviewed."""
    allow_pickle: bool = False
    """Load `pytorch_model.bin` (pickle) weights too; off: only safetensors."""
    trust_remote_code: bool = False
    """Never honoured: sitegen does not run code shipped with a model."""
    index_unreviewed: bool = False
    """Let the search index drafts that are not yet reviewed."""

    @field_validator("trust_remote_code")
    @classmethod
    def _no_remote_code(cls, v: bool) -> bool:
        if v:
            raise ValueError("trust_remote_code is not supported: sitegen never runs code from a model repository")
        return v

    @field_validator("max_new_tokens", "max_prompt_tokens", "max_chars", "batch_size")
    @classmethod
    def _at_least_one(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be at least 1")
        return v

    @field_validator("temperature", "time_limit")
    @classmethod
    def _not_negative(cls, v: float) -> float:
        if v < 0:
            raise ValueError("must not be negative")
        return v

    @field_validator("top_p")
    @classmethod
    def _probability(cls, v: float) -> float:
        if not 0 < v <= 1:
            raise ValueError("must be greater than 0 and at most 1")
        return v


class SearchConfig(Section):
    enabled: bool = True
    """Build a Pagefind index after the HTML (skipped with a warning when pagefind is missing)."""
    language: str = "auto"
    """Language the one search index is built as: auto (zh-cn when any page is Chinese, else en) or a code such as en."""

    @field_validator("language")
    @classmethod
    def _language(cls, v: str) -> str:
        if v != "auto" and not re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]{2,8})?", v):
            raise ValueError("must be 'auto' or a lower-case language code such as zh-cn or en")
        return v


class PublishConfig(Section):
    remote: str = "origin"
    """Git remote to push to."""
    branch: str = "gh-pages"
    """Branch that holds the published site."""
    cname: str | None = None
    """Custom domain written to CNAME; an existing CNAME on the branch is kept when unset."""
    keep_cname: bool = True
    """When cname is unset, keep a CNAME already on the branch; false removes it (gives up the custom domain)."""
    message: str = "Publish site from {sha}"
    """Commit message; {sha} is the source commit."""

    @field_validator("cname")
    @classmethod
    def _cname(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[A-Za-z0-9.-]+$", v):
            raise ValueError("must be a bare domain name such as docs.example.com")
        return v


class AssetsConfig(Section):
    svg_as_is: list[str] = Field(default_factory=list)
    """SVG files published exactly as written, as project paths or patterns (`content/assets/chart.svg`,
    `templates/static/icons/*.svg`). Every other SVG the site copies from `content/` or `templates/static/`
    goes through the diagram allowlist: scripts, event handlers, `<foreignObject>`, links, references
    outside the file, processing instructions and DTDs are removed (a warning names the file and what went),
    because an SVG opened at its URL runs its scripts on the site's origin. A file with nothing to remove
    is published unchanged. List a file here only if you trust it."""

    @field_validator("svg_as_is")
    @classmethod
    def _paths(cls, v: list[str]) -> list[str]:
        for item in v:
            if item.startswith("/") or ".." in item.split("/") or "\\" in item:
                raise ValueError(f"{item!r}: give a path inside the project such as content/assets/logo.svg")
        return v


class SiteConfig(Section):
    """The whole of sitegen.yaml."""

    title: str
    """Site title."""
    description: str = ""
    """One-line description, used in the feed and meta tags."""
    base_url: str = ""
    """Public URL of the site (https://user.github.io/repo/); used only for canonical URLs, sitemap and feed."""
    language: Literal["zh", "en"] = "zh"
    """Interface language."""
    authors: list[str] = Field(default_factory=list)
    """Default report authors."""
    nav: list[NavItem] = Field(default_factory=list)
    """Extra navigation links."""
    output_dir: str = "output"
    """Where the site is written (relative to the project)."""
    cache_dir: str = ".sitegen-cache"
    """Diagram, math, PDF and build-state caches; always safe to delete."""
    timestamps: bool = False
    """Put the build time in the feed; off keeps builds byte-identical."""
    untrusted: bool = False
    """Build a change you do not trust (a pull request from a fork): templates run in Jinja's sandbox,
    caches start empty in a temporary folder, PDFs fetch nothing from the network (same as `--untrusted`)."""
    theme: ThemeConfig = Field(default_factory=ThemeConfig)
    diagrams: DiagramsConfig = Field(default_factory=DiagramsConfig)
    math: MathConfig = Field(default_factory=MathConfig)
    pdf: PdfConfig = Field(default_factory=PdfConfig)
    draft: DraftConfig = Field(default_factory=DraftConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    assets: AssetsConfig = Field(default_factory=AssetsConfig)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str) -> str:
        v = v.strip()
        if v and not re.match(r"^https?://[^/\s]+(/[^\s]*)?$", v):
            raise ValueError("must be an http(s) URL such as https://user.github.io/repo/")
        if v and not v.endswith("/"):
            v += "/"
        return v


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names allowed at a location inside the config model (for "did you mean")."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        ann = field.annotation
        args = getattr(ann, "__args__", None)
        if args:
            ann = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), ann)
        current = ann
    return list(getattr(current, "model_fields", {}).keys())


def describe_validation_error(err: dict, model: type[BaseModel] | None = None) -> str:
    """Turn one pydantic error into our wording: `field: message`."""
    loc = err.get("loc", ())
    field = ".".join(str(p) for p in loc) or "(document)"
    kind = err.get("type", "")
    value = err.get("input")
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else "?"
        msg = f"unknown key '{name}'"
        if model is not None:
            close = difflib.get_close_matches(name, _fields_at(model, loc), n=1)
            if close:
                msg += f" (did you mean '{close[0]}'?)"
        return msg
    if kind == "missing":
        return f"{field}: required field is missing"
    if kind == "string_type":
        if isinstance(value, bool):
            return f"{field}: expected text, got boolean {str(value).lower()} — quote it"
        if isinstance(value, (int, float)):
            return f"{field}: expected text, got number {value} — quote it"
        return f"{field}: expected text"
    msg = err.get("msg", "invalid value")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return f"{field}: {msg}"


def validation_diagnostics(exc: ValidationError, doc: YamlDoc, path: str, model: type[BaseModel]) -> list[Diagnostic]:
    """One located diagnostic per pydantic error."""
    out = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        location = doc.location(path, loc)
        if err.get("type") == "extra_forbidden" and loc in doc.key_marks:
            line, col = doc.key_marks[loc]
            location = Location(path, line + doc.line_offset, col)
        out.append(Diagnostic("error", "schema", describe_validation_error(err, model), location))
    return out


def load_config(project: Path, overrides: dict[str, Any] | None = None) -> tuple[SiteConfig | None, list[Diagnostic]]:
    """Read and validate sitegen.yaml; CLI overrides (dotted keys) win over the file."""
    path = project / CONFIG_FILE
    rel = CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [Diagnostic("error", "config", f"no {CONFIG_FILE} in {project} (run `sitegen init` or pass -C DIR)")]
    except UnicodeDecodeError as exc:
        return None, [Diagnostic("error", "encoding", f"not valid UTF-8: {exc.reason}", Location(rel, 1))]
    doc, diags = load_yaml(text, rel)
    if doc is None:
        return None, diags
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        return None, [Diagnostic("error", "schema", "sitegen.yaml must be a mapping of keys", Location(rel, 1, 1))]
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        target = data
        *parents, last = dotted.split(".")
        for p in parents:
            target = target.setdefault(p, {})
        target[last] = value
    try:
        return SiteConfig.model_validate(data), []
    except ValidationError as exc:
        return None, validation_diagnostics(exc, doc, rel, SiteConfig)
