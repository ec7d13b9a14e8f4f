"""Mermaid source drawn from start-up profile data (pure: no rendering; words from the interface strings).

mermaid-py's builder classes write the flowchart, pie and mindmap; the other kinds are text.
Every label goes through `_label`, so profile text can never become Mermaid syntax.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Callable

from .models import ProfileData
from .templates import interface_strings, language_helpers

DIAGRAM_KINDS = ("revenue", "costs", "funding", "metrics", "competitors", "roadmap", "value-network", "canvas")

_STRINGS = {
    "revenue": "chart_revenue",
    "costs": "diagram_costs",
    "funding": "chart_funding",
    "metrics": "chart_metrics",
    "value-network": "diagram_value-network",
    "canvas": "chart_canvas",
    "channels": "chart_channels",
    "revenue_m": "revenue",
    "users": "chart_users",
    "customers": "chart_customers",
    "employees": "chart_employees",
    "gross_margin": "chart_gross_margin",
    "low": "chart_low",
    "high": "chart_high",
    "done": "status_done",
    "in-progress": "status_in-progress",
    "planned": "status_planned",
}
"""Interface-string key of each diagram word not named by its own key (the canvas boxes, competitors, roadmap are)."""
_CANVAS_BOXES = (
    "value_propositions", "customer_segments", "channels", "customer_relationships",
    "key_activities", "key_resources", "key_partners", "revenue_streams", "cost_structure",
)
_METRICS = ("revenue", "users", "customers", "employees", "gross_margin")
MAX_ITEMS = 12
MAX_LABEL = 80


def _t(key: str, lang: str) -> str:
    t, _ = language_helpers(interface_strings(), lang)
    return t(_STRINGS.get(key, key))


def _label(text: object, limit: int = MAX_LABEL) -> str:
    """Profile text made inert for Mermaid: one line, entity-escaped, no comment or directive starts."""
    s = " ".join(str(text).split())
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    s = s.replace("#", "#35;").replace("\\", "#92;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
    return s.replace("%%", "%#37;").replace("`", "'")


def _bare(text: object, limit: int = MAX_LABEL) -> str:
    """A label for syntaxes without quoting (timeline, gantt, mindmap): their separators neutralised."""
    # ':' splits timeline events and gantt fields; brackets are node shapes in a mindmap.
    table = str.maketrans({":": "꞉", ";": "；", "(": "（", ")": "）", "[": "［", "]": "］", "{": "｛", "}": "｝"})
    return _label(" ".join(str(text).split()).translate(table), limit).strip() or "-"


def _title(profile: ProfileData, kind: str, lang: str) -> str:
    sep = " · "
    return f"{profile.name}{sep}{_t(kind, lang)}"


def _front_matter_title(text: str) -> str:
    """mermaid-py writes `title: <text>` raw into YAML front matter; a JSON string is valid YAML."""
    # Mermaid drops anything that looks like an HTML tag from a title; keep the text visible.
    plain = " ".join(text.split())[:120].replace("<", "‹").replace(">", "›").replace("%%", "% %")
    return json.dumps(plain, ensure_ascii=False)


def _number(value: float) -> str:
    return f"{value:.6g}" if value != int(value) else str(int(value))


def _money(amount: float, currency: str) -> str:
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if amount >= limit:
            return f"{currency} {amount / limit:.3g}{suffix}"
    return f"{currency} {amount:g}"


# --- which kinds a profile can draw ---------------------------------------------------------


def _has_metrics(p: ProfileData) -> bool:
    return any(getattr(m, k) is not None for m in p.metrics for k in _METRICS)


_HAS: dict[str, Callable[[ProfileData], bool]] = {
    "revenue": lambda p: bool(p.canvas.revenue_streams),
    "costs": lambda p: bool(p.canvas.cost_structure),
    "funding": lambda p: bool(p.funding),
    "metrics": _has_metrics,
    "competitors": lambda p: p.competitors is not None,
    "roadmap": lambda p: bool(p.roadmap),
    "value-network": lambda p: bool(p.canvas.key_partners or p.canvas.customer_segments),
    "canvas": lambda p: any(getattr(p.canvas, box) for box in _CANVAS_BOXES),
}


def available_kinds(profile: ProfileData) -> list[str]:
    """The diagram kinds this profile has data for, in DIAGRAM_KINDS order."""
    return [kind for kind in DIAGRAM_KINDS if _HAS[kind](profile)]


# --- the kinds ------------------------------------------------------------------------------


def _pie(profile: ProfileData, kind: str, lang: str) -> str:
    from mermaid.piechart import PieChart

    shares = profile.canvas.revenue_streams if kind == "revenue" else profile.canvas.cost_structure
    data: dict[str, float] = {}
    for share in shares[:MAX_ITEMS]:
        name = _label(share.name)
        while name in data:  # pie keys must differ; equal names would merge silently
            name += " "
        data[name] = int(share.share) if share.share == int(share.share) else share.share
    return PieChart(_front_matter_title(_title(profile, kind, lang)), data, show_data=True).script


def _funding(profile: ProfileData, lang: str) -> str:
    lines = ["timeline", f"    title {_bare(_title(profile, 'funding', lang), 120)}"]
    for r in sorted(profile.funding, key=lambda r: r.date)[:MAX_ITEMS * 2]:
        events = [f"{_bare(r.round, 40)} {_money(r.amount, r.currency)}"]
        if r.investors:
            events.append(_bare(("、" if lang == "zh" else " / ").join(r.investors[:3]), 60))
        lines.append(f"    {r.date:%Y-%m} : " + " : ".join(events))
    return "\n".join(lines) + "\n"


def _metrics(profile: ProfileData, lang: str) -> str:
    rows = sorted(profile.metrics, key=lambda m: m.year)
    series = next(k for k in _METRICS if any(getattr(m, k) is not None for m in rows))
    rows = [m for m in rows if getattr(m, series) is not None][-MAX_ITEMS:]
    values = [float(getattr(m, series)) for m in rows]
    scale, unit = 1.0, ""
    if series != "gross_margin":
        top = max(abs(v) for v in values) if values else 0
        for limit, suffix in ((1e9, ("十亿", "B")), (1e6, ("百万", "M")), (1e3, ("千", "K"))):
            if top >= limit:
                scale, unit = limit, suffix[0] if lang == "zh" else suffix[1]
                break
    axis = _t("revenue_m" if series == "revenue" else series, lang)
    if unit:
        axis += f"（{unit}）" if lang == "zh" else f" ({unit})"
    years = ", ".join(f'"{m.year}"' for m in rows)
    data = ", ".join(_number(round(v / scale, 3)) for v in values)
    return (
        "xychart-beta\n"
        f'    title "{_label(_title(profile, "metrics", lang), 120)}"\n'
        f"    x-axis [{years}]\n"
        f'    y-axis "{_label(axis)}"\n'
        f"    bar [{data}]\n"
        f"    line [{data}]\n"
    )


def _axis_ends(text: str, lang: str) -> tuple[str, str]:
    parts = [p.strip() for p in re.split(r"\s*(?:-->|->|→|⟶|↔|<->|—|–)\s*", text) if p.strip()]
    if len(parts) == 2:
        return parts[0], parts[1]
    if lang == "zh":
        return f"{text}{_t('low', lang)}", f"{text}{_t('high', lang)}"
    return f"{_t('low', lang)} {text}", f"{_t('high', lang)} {text}"


def _competitors(profile: ProfileData, lang: str) -> str:
    comp = profile.competitors
    assert comp is not None
    x_lo, x_hi = _axis_ends(comp.axes.x, lang)
    y_lo, y_hi = _axis_ends(comp.axes.y, lang)
    lines = [
        "quadrantChart",
        f"    title {_bare(_title(profile, 'competitors', lang), 120)}",
        f'    x-axis "{_label(x_lo, 40)}" --> "{_label(x_hi, 40)}"',
        f'    y-axis "{_label(y_lo, 40)}" --> "{_label(y_hi, 40)}"',
        f'    "{_label(profile.name, 40)}": [{comp.position.x:.3f}, {comp.position.y:.3f}] radius: 9, color: #e45756',
    ]
    for item in comp.items[: MAX_ITEMS * 2]:
        lines.append(f'    "{_label(item.name, 40)}": [{item.x:.3f}, {item.y:.3f}]')
    return "\n".join(lines) + "\n"


_GANTT_WORDS = {"title", "section", "dateformat", "axisformat", "excludes", "includes", "todaymarker",
                "tickinterval", "weekday", "weekend", "click", "acctitle", "accdescr", "inclusiveenddates", "topaxis"}


def _task(text: str) -> str:
    """A gantt task name that can't be read as a gantt keyword."""
    name = _bare(text, 60)
    first = name.split(None, 1)[0].lower() if name.split() else ""
    return f"· {name}" if first in _GANTT_WORDS else name


def _roadmap(profile: ProfileData, lang: str) -> str:
    lines = [
        "gantt",
        f"    title {_bare(_title(profile, 'roadmap', lang), 120)}",
        "    dateFormat YYYY-MM-DD",
        "    axisFormat %Y-%m",
    ]
    items = sorted(profile.roadmap, key=lambda m: m.date)[: MAX_ITEMS * 3]
    for status in ("done", "in-progress", "planned"):
        group = [(i, m) for i, m in enumerate(items) if m.status == status]
        if not group:
            continue
        lines.append(f"    section {_t(status, lang)}")
        tag = {"done": "done, ", "in-progress": "active, ", "planned": ""}[status]
        for i, m in group:
            if m.end is None:
                lines.append(f"    {_task(m.title)} :milestone, {tag}m{i}, {m.date:%Y-%m-%d}, 0d")
            else:
                end = m.end if m.end > m.date else m.date + dt.timedelta(days=1)
                lines.append(f"    {_task(m.title)} :{tag}m{i}, {m.date:%Y-%m-%d}, {end:%Y-%m-%d}")
    return "\n".join(lines) + "\n"


def _value_network(profile: ProfileData, lang: str) -> str:
    from mermaid.flowchart import FlowChart, Link, Node

    c = profile.canvas
    me = Node("startup", _label(profile.name), shape="circle")
    partners = [Node(f"p{i}", _label(name)) for i, name in enumerate(c.key_partners[:MAX_ITEMS])]
    segments = [Node(f"c{i}", _label(name)) for i, name in enumerate(c.customer_segments[:MAX_ITEMS])]
    nodes: list[Node] = [*partners, me]
    links: list[Link] = [Link(p, me) for p in partners]
    if c.channels:
        channels = Node(
            "channels",
            _label(_t("channels", lang)),
            sub_nodes=[Node(f"ch{i}", _label(name)) for i, name in enumerate(c.channels[:MAX_ITEMS])],
            direction="TB",
        )
        nodes.append(channels)
        links.append(Link(me, channels))
        links += [Link(channels, s) for s in segments]
    else:
        links += [Link(me, s) for s in segments]
    nodes += segments
    return FlowChart(_front_matter_title(_title(profile, "value-network", lang)), nodes, links, orientation="LR").script


def _canvas(profile: ProfileData, lang: str) -> str:
    from mermaid.mindmap import Level, LevelShape, Mindmap

    levels = []
    for box in _CANVAS_BOXES:
        items = getattr(profile.canvas, box)
        if not items:
            continue
        names = [f"{s.name} {_number(s.share)}%" if hasattr(s, "share") else s for s in items[:MAX_ITEMS]]
        levels.append(Level(_bare(_t(box, lang), 40), [Level(_bare(n, 60)) for n in names]))
    # Mindmap uses its title as the root node too: the bare name, quoted, is both.
    root = '"' + _label(profile.name, 60) + '"'
    script = Mindmap(root, levels, shape=LevelShape.CIRCLE).script
    # Its front matter repeats the root's escaped text; the heading should be the diagram's title.
    head, sep, body = script.partition("\n---\n")
    return f"---\ntitle: {_front_matter_title(_title(profile, 'canvas', lang))}\n---\n{body}" if sep else script


def diagram_source(profile: ProfileData, kind: str, lang: str) -> str:
    """Mermaid source of one diagram kind for a profile (lang: 'zh' or 'en')."""
    if kind not in DIAGRAM_KINDS:
        raise ValueError(f"unknown diagram kind {kind!r} (known: {', '.join(DIAGRAM_KINDS)})")
    if not _HAS[kind](profile):
        raise ValueError(f"{profile.name} has no data for a {kind} diagram")
    lang = "zh" if lang == "zh" else "en"
    from .services.diagrams import import_mermaid_py

    import_mermaid_py()  # mermaid-py's builders print to stdout on first import; keep sitegen quiet
    if kind in ("revenue", "costs"):
        return _pie(profile, kind, lang)
    return {
        "funding": _funding,
        "metrics": _metrics,
        "competitors": _competitors,
        "roadmap": _roadmap,
        "value-network": _value_network,
        "canvas": _canvas,
    }[kind](profile, lang)
