"""Schemas of the content (front matter, start-up profiles) and the plain objects stages pass on."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from .diagnostics import Diagnostic, Location

# --- field types -------------------------------------------------------------------------


def _text(v: Any) -> Any:
    """Text fields keep what was written: `1.10` stays "1.10", `01234` stays "01234"."""
    if isinstance(v, bool):
        raise ValueError(f"expected text, got boolean {str(v).lower()} — quote it")
    raw = getattr(v, "raw", None)
    if raw is not None:
        return raw
    if isinstance(v, (int, float)):
        raise ValueError(f"expected text, got number {v} — quote it")
    if isinstance(v, str) and "\x00" in v:
        raise ValueError("text contains a NUL character")
    return v


Text = Annotated[str, BeforeValidator(_text)]


def _date(v: Any) -> Any:
    """ISO dates only (YYYY-MM-DD, or YYYY-MM for the first of the month)."""
    if isinstance(v, dt.date):
        return v
    if isinstance(v, str):
        s = v.strip()
        m = re.fullmatch(r"(\d{4})-(\d{2})(?:-(\d{2}))?", s)
        if m:
            try:
                return dt.date(int(m[1]), int(m[2]), int(m[3] or 1))
            except ValueError:
                pass
        raise ValueError(f"'{v}' is not a date (use YYYY-MM-DD)")
    raise ValueError("expected a date (YYYY-MM-DD)")


Date = Annotated[dt.date, BeforeValidator(_date)]


def _url(v: Any) -> Any:
    """Absolute http(s) URLs only: javascript:, data:, file: and friends never reach a page."""
    v = _text(v)
    if not isinstance(v, str):
        raise ValueError("expected a URL")
    s = v.strip()
    if any(ord(c) < 32 for c in s) or " " in s:
        raise ValueError("URL contains spaces or control characters")
    if not re.match(r"^https?://[^/\s?#]+", s, re.I):
        scheme = re.match(r"^\s*([A-Za-z][A-Za-z0-9+.-]*):", v)
        if scheme:
            raise ValueError(f"URL scheme not allowed ({scheme[1].lower()}:); use http or https")
        raise ValueError("must be an absolute http(s) URL")
    return s


Url = Annotated[str, BeforeValidator(_url)]


def _rel_asset(v: Any) -> Any:
    v = _text(v)
    s = str(v).strip().replace("\\", "/")
    if not s or s.startswith("/") or re.match(r"^[A-Za-z]:", s) or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", s):
        raise ValueError("must be a path relative to content/assets")
    if any(part in ("..", "") for part in s.split("/")):
        raise ValueError("path escapes data root")
    return s


AssetPath = Annotated[str, BeforeValidator(_rel_asset)]


def _currency(v: Any) -> Any:
    v = _text(v)
    if not isinstance(v, str) or not re.fullmatch(r"[A-Z]{3}", v.strip()):
        raise ValueError("must be a three-letter currency code such as USD or CNY")
    return v.strip()


Currency = Annotated[str, BeforeValidator(_currency)]

LAYOUTS = ("report",)


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --- reports --------------------------------------------------------------------------------


class FrontMatter(Schema):
    """Front matter of a report."""

    title: Text
    date: Date | None = None
    updated: Date | None = None
    authors: list[Text] = Field(default_factory=list)
    keywords: list[Text] = Field(default_factory=list)
    tags: list[Text] = Field(default_factory=list)
    abstract: Text = ""
    lang: Literal["zh", "en"] | None = None
    startups: list[Text] = Field(default_factory=list)
    slug: Text | None = None
    draft: bool = False
    pdf: bool = True
    layout: Text = "report"
    """The page template; `report` is the only one, so any other name is an error rather than ignored."""
    draft_sections: list[Text] = Field(default_factory=list)
    source: Text | None = None
    translation_of: Text | None = None
    canonical: Url | None = None
    example: bool = False

    @field_validator("authors", "keywords", "tags", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [p.strip() for p in re.split(r"[,，、;；]", v) if p.strip()]
        return v

    @field_validator("layout")
    @classmethod
    def _layout(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9_-]+", v) or v not in LAYOUTS:
            raise ValueError(f"unknown layout (allowed: {', '.join(LAYOUTS)})")
        return v


# --- start-up profiles ----------------------------------------------------------------------

STAGES = ("idea", "pre-seed", "seed", "series-a", "series-b", "series-c", "series-d", "growth", "public", "acquired")

SECTORS: dict[str, tuple[str, str]] = {
    "fintech": ("金融科技", "Fintech"),
    "health": ("医疗健康", "Health"),
    "edtech": ("教育科技", "Education"),
    "manufacturing": ("制造业与供应链", "Manufacturing & supply chain"),
    "retail": ("零售与电商", "Retail & e-commerce"),
    "legal": ("法律科技", "Legal tech"),
    "media": ("媒体与内容", "Media & content"),
    "mobility": ("出行与物流", "Mobility & logistics"),
    "energy": ("能源与气候", "Energy & climate"),
    "agriculture": ("农业科技", "Agriculture"),
    "developer-tools": ("开发者工具", "Developer tools"),
    "enterprise": ("企业服务", "Enterprise software"),
    "security": ("安全", "Security"),
    "biotech": ("生物科技", "Biotech"),
}
SECTOR_ALIASES = {zh: key for key, (zh, _en) in SECTORS.items()} | {
    en.lower(): key for key, (_zh, en) in SECTORS.items()
}

RISK_CATEGORIES = ("technical", "legal", "data-privacy", "market", "operational", "financial")


class Share(Schema):
    name: Text
    share: float = Field(ge=0, le=100)
    """Per cent of the total."""
    note: Text = ""


class Canvas(Schema):
    """The business model canvas (Osterwalder's nine boxes)."""

    key_partners: list[Text] = Field(default_factory=list)
    key_activities: list[Text] = Field(default_factory=list)
    key_resources: list[Text] = Field(default_factory=list)
    value_propositions: list[Text] = Field(default_factory=list)
    customer_relationships: list[Text] = Field(default_factory=list)
    channels: list[Text] = Field(default_factory=list)
    customer_segments: list[Text] = Field(default_factory=list)
    cost_structure: list[Share] = Field(default_factory=list)
    revenue_streams: list[Share] = Field(default_factory=list)

    @field_validator("revenue_streams", "cost_structure")
    @classmethod
    def _sum_100(cls, v: list[Share]) -> list[Share]:
        if v:
            total = sum(s.share for s in v)
            if abs(total - 100) > 0.5:
                raise ValueError(f"shares add up to {total:g}, not 100")
        return v


class Strategy(Schema):
    name: Text
    description: Text = ""


class FundingRound(Schema):
    date: Date
    round: Text
    amount: float = Field(ge=0)
    """Amount in whole currency units."""
    currency: Currency = "USD"
    investors: list[Text] = Field(default_factory=list)


class MetricYear(Schema):
    year: int = Field(ge=1900, le=2200)
    revenue: float | None = Field(default=None, ge=0)
    """In the profile's `currency`."""
    users: float | None = Field(default=None, ge=0)
    customers: float | None = Field(default=None, ge=0)
    employees: float | None = Field(default=None, ge=0)
    gross_margin: float | None = Field(default=None, ge=-100, le=100)
    """Per cent."""


class Position(Schema):
    x: float = Field(ge=0, le=1)
    y: float = Field(ge=0, le=1)


class Competitor(Schema):
    name: Text
    x: float = Field(ge=0, le=1)
    y: float = Field(ge=0, le=1)
    note: Text = ""


class Axes(Schema):
    x: Text
    y: Text


class Competition(Schema):
    axes: Axes
    position: Position
    """Where the start-up itself stands on the two axes (0..1)."""
    items: list[Competitor] = Field(default_factory=list)


class Risk(Schema):
    category: Literal[RISK_CATEGORIES]  # type: ignore[valid-type]
    title: Text
    likelihood: int = Field(ge=1, le=5)
    impact: int = Field(ge=1, le=5)
    mitigation: Text = ""


class Milestone(Schema):
    date: Date
    end: Date | None = None
    title: Text
    status: Literal["done", "in-progress", "planned"] = "planned"

    @model_validator(mode="after")
    def _order(self) -> "Milestone":
        if self.end is not None and self.end < self.date:
            raise ValueError("end is before date")
        return self


class ProfileData(Schema):
    """A start-up profile (content/startups/<slug>.yaml)."""

    name: Text
    tagline: Text = ""
    description: Text = ""
    """Markdown."""
    example: bool = False
    """Marks a fictional company used as sample content."""
    lang: Literal["zh", "en"] | None = None
    founded: int | None = Field(default=None, ge=1900, le=2200)
    hq: Text = ""
    stage: Literal[STAGES]  # type: ignore[valid-type]
    sectors: list[Text] = Field(min_length=1)
    website: Url | None = None
    logo: AssetPath | None = None
    brand_color: Text | None = None
    links: dict[str, Url] = Field(default_factory=dict)
    base_models: list[Text] = Field(default_factory=list)
    canvas: Canvas = Field(default_factory=Canvas)
    strategies: list[Strategy] = Field(default_factory=list)
    funding: list[FundingRound] = Field(default_factory=list)
    currency: Currency = "USD"
    """Currency of revenue figures in `metrics`."""
    metrics: list[MetricYear] = Field(default_factory=list)
    competitors: Competition | None = None
    risks: list[Risk] = Field(default_factory=list)
    esg: list[Text] = Field(default_factory=list)
    roadmap: list[Milestone] = Field(default_factory=list)
    drafts: list[Text] = Field(default_factory=list)
    """Sections drafted by the language model (e.g. summary, market_outlook, risk_commentary)."""

    @field_validator("sectors")
    @classmethod
    def _sectors(cls, v: list[str]) -> list[str]:
        out = []
        for s in v:
            low = s.strip().lower()
            key = low if low in SECTORS else SECTOR_ALIASES.get(low, SECTOR_ALIASES.get(s))
            if key is None:
                raise ValueError(f"unknown sector '{s}' (known: {', '.join(SECTORS)})")
            if key not in out:
                out.append(key)
        return out

    @field_validator("metrics")
    @classmethod
    def _years(cls, v: list[MetricYear]) -> list[MetricYear]:
        years = [m.year for m in v]
        dupes = sorted({y for y in years if years.count(y) > 1})
        if dupes:
            raise ValueError(f"year {dupes[0]} appears more than once")
        return sorted(v, key=lambda m: m.year)

    @field_validator("brand_color")
    @classmethod
    def _color(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"#[0-9a-fA-F]{6}", v):
            raise ValueError("must match #RRGGBB")
        return v

    @field_validator("links")
    @classmethod
    def _link_names(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not re.fullmatch(r"[a-z0-9_-]{1,40}", key):
                raise ValueError(f"attribute name not allowed: {key!r} (use a-z, 0-9, _ and -)")
        return v

    @field_validator("drafts")
    @classmethod
    def _draft_names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not re.fullmatch(r"[a-z0-9_]{1,40}", name):
                raise ValueError(f"draft section name not allowed: {name!r} (use a-z, 0-9 and _)")
        return v

    @model_validator(mode="before")
    @classmethod
    def _stage_lower(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("stage"), str):
            data = dict(data)
            data["stage"] = data["stage"].strip().lower().replace(" ", "-")
        return data

    @property
    def total_funding(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for r in self.funding:
            totals[r.currency] = totals.get(r.currency, 0.0) + r.amount
        return totals


_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
_SHOWN_REVISION = re.compile(r"[0-9A-Za-z][\w.-]{0,63}")


def public_model_name(model: str) -> str:
    """A model as readers may see it: a hub id as given, a local folder by its own name, never the path to it."""
    text = model.strip().replace("\\", "/").rstrip("/")
    if text.startswith(("/", "~", ".")) or text.count("/") > 1 or _WINDOWS_DRIVE.match(text):
        text = text.rsplit("/", 1)[-1]
    return "" if text in (".", "..", "~") else text


class DraftMeta(Schema):
    """Front matter of a stored draft (content/drafts/<slug>/<section>.md)."""

    section: Text
    startup: Text
    status: Literal["draft", "reviewed"] = "draft"
    model: Text
    weights_sha256: Text = ""
    revision: Text = ""
    prompt_sha256: Text = ""
    prompt_template: Text = ""
    seed: int = 0
    generation: dict[str, Any] = Field(default_factory=dict)
    created: Text = ""
    reviewed_by: Text = ""
    lang: Literal["zh", "en"] | None = None

    @property
    def public_model(self) -> str:
        """The model's name for public pages (drafts written before names were recorded may hold a path)."""
        return public_model_name(self.model) or "local model"

    @property
    def provenance(self) -> str:
        """Name and revision for public pages: `gpt2@607a30d783dd` (hub), `gpt2-x@sha256:1a2b3c4d5e6f` (a folder)."""
        revision = self.revision.strip()
        if re.fullmatch(r"[0-9a-f]{40}", revision):
            return f"{self.public_model}@{revision[:12]}"
        if revision not in ("", "local") and _SHOWN_REVISION.fullmatch(revision):
            return f"{self.public_model}@{revision}"
        if re.fullmatch(r"[0-9a-f]{64}", self.weights_sha256.strip()):
            return f"{self.public_model}@sha256:{self.weights_sha256.strip()[:12]}"
        return self.public_model


# --- objects passed between stages ----------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """An expensive render handed out by the Markdown stage: a diagram or a formula."""

    kind: Literal["mermaid", "math-inline", "math-display", "startup-diagram"]
    source: str
    location: Location
    key: str


@dataclass
class JobResult:
    """What a service returns for one job; `html` is trusted markup produced by sitegen."""

    html: str
    print_html: str | None = None
    """Variant for the PDF (e.g. SVG math where the site uses MathML)."""
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cached: bool = False


@dataclass
class Heading:
    level: int
    text: str
    anchor: str
    line: int | None = None


@dataclass
class ParsedMarkdown:
    """The Markdown stage's output: HTML with job placeholders, headings, jobs, diagnostics."""

    html: str
    headings: list[Heading]
    jobs: list[Job]
    diagnostics: list[Diagnostic]
    links: list[tuple[str, Location]] = field(default_factory=list)
    """Internal links and images, for the link checker."""
    path: str = ""
    """Project-relative source file; relative image paths are resolved against it."""


@dataclass
class Report:
    path: str  # relative to the project, e.g. content/reports/x.md
    slug: str
    meta: FrontMatter
    body: ParsedMarkdown
    lang: str
    source_text: str = ""
    body_line: int = 1
    meta_lines: dict[tuple, int] = field(default_factory=dict)
    """Line of each front-matter value, by key path."""

    @property
    def url(self) -> str:
        return f"reports/{self.slug}/index.html"

    @property
    def published(self) -> bool:
        return not self.meta.draft


@dataclass
class Draft:
    path: str
    slug: str
    section: str
    meta: DraftMeta
    text: str

    @property
    def reviewed(self) -> bool:
        return self.meta.status == "reviewed"


@dataclass
class Profile:
    path: str
    slug: str
    data: ProfileData
    description: ParsedMarkdown | None = None
    drafts: dict[str, Draft] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    """Line of each top-level key in the profile file."""

    @property
    def url(self) -> str:
        return f"startups/{self.slug}/index.html"
