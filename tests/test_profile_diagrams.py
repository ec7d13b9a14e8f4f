"""Diagrams drawn from start-up profile data: kinds, Mermaid source, escaping, real rendering."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from test_diagrams import assert_safe

from generator import profile_diagrams as pd
from generator.config import DiagramsConfig
from generator.diagnostics import Location
from generator.models import Job, ProfileData
from generator.services.cache import hash_key
from generator.services.diagrams import prepare_source, resolve_diagrams
from generator.yamlsource import parse_yaml

ROOT = Path(__file__).resolve().parents[1]

FULL = """
name: 深言科技
stage: series-a
sectors: [fintech]
canvas:
  key_partners: [阿里云, 高校实验室]
  key_activities: [模型训练]
  key_resources: [金融语料库]
  value_propositions: [合规审查提速 10 倍]
  customer_relationships: [专属客户成功经理]
  channels: [直销, API 平台]
  customer_segments: [城商行, 保险公司]
  revenue_streams:
    - {name: 订阅, share: 60}
    - {name: "API 调用 (按量)", share: 40}
  cost_structure:
    - {name: 算力, share: 55}
    - {name: 人力, share: 45}
funding:
  - {date: 2022-06-15, round: A 轮, amount: 15000000, currency: USD, investors: [红杉中国, 高瓴]}
  - {date: 2021-03-01, round: 种子轮, amount: 2000000, currency: USD}
metrics:
  - {year: 2022, revenue: 2500000, customers: 12}
  - {year: 2023, revenue: 9800000, customers: 40}
competitors:
  axes: {x: 通用 → 专业, y: 价格}
  position: {x: 0.8, y: 0.35}
  items:
    - {name: 大厂通用模型, x: 0.2, y: 0.7}
roadmap:
  - {date: 2023-01-01, end: 2023-06-30, title: v1 发布, status: done}
  - {date: 2024-03-01, end: 2024-09-30, title: 多语种, status: in-progress}
  - {date: 2025-01-01, title: 海外市场, status: planned}
"""

HEADERS = {
    "revenue": "pie",
    "costs": "pie",
    "funding": "timeline",
    "metrics": "xychart-beta",
    "competitors": "quadrantChart",
    "roadmap": "gantt",
    "value-network": "flowchart",
    "canvas": "mindmap",
}


def profile(text: str = FULL, **changes) -> ProfileData:
    data = parse_yaml(text).data
    data.update(changes)
    return ProfileData.model_validate(data)


def header(source: str) -> str:
    """The diagram keyword: the first line after any front matter."""
    lines = [ln.strip() for ln in source.split("\n")]
    if lines[0] == "---":
        lines = lines[lines.index("---", 1) + 1 :]
    return next(ln for ln in lines if ln).split()[0]


def render(sources: list[str]) -> list:
    jobs = [Job("mermaid", s, Location("content/startups/x.yaml", 1), hash_key("mermaid", s)) for s in sources]
    results = resolve_diagrams(jobs, DiagramsConfig(), None, 0)
    return [results[j.key] for j in jobs]


def test_kinds_listed_once_in_order():
    assert pd.DIAGRAM_KINDS == ("revenue", "costs", "funding", "metrics", "competitors", "roadmap", "value-network", "canvas")


def test_available_kinds_follow_the_data():
    assert pd.available_kinds(profile()) == list(pd.DIAGRAM_KINDS)
    bare = profile("name: Bare\nstage: seed\nsectors: [fintech]\n")
    assert pd.available_kinds(bare) == []
    some = profile("name: Some\nstage: seed\nsectors: [fintech]\ncanvas:\n  customer_segments: [Banks]\n")
    assert pd.available_kinds(some) == ["value-network", "canvas"]
    only_margin = profile("name: M\nstage: seed\nsectors: [fintech]\nmetrics:\n  - {year: 2024, gross_margin: 41}\n")
    assert pd.available_kinds(only_margin) == ["metrics"]


@pytest.mark.parametrize("kind", pd.DIAGRAM_KINDS)
def test_each_kind_has_its_mermaid_type(kind):
    source = pd.diagram_source(profile(), kind, "zh")
    assert header(source) == HEADERS[kind]
    assert prepare_source(source).warnings == []  # nothing generated is dropped as unsafe


def test_builders_from_mermaid_py_write_pie_flowchart_and_mindmap():
    p = profile()
    assert "pie showData" in pd.diagram_source(p, "revenue", "zh")
    flow = pd.diagram_source(p, "value-network", "zh")
    assert '\tp0["阿里云"]' in flow and "\tp0 --> startup" in flow  # mermaid-py's FlowChart layout
    assert 'subgraph channels ["渠道"]' in flow and "\tchannels --> c1" in flow
    assert "mindmap\n\t((" in pd.diagram_source(p, "canvas", "zh")


def test_canvas_boxes_are_named_as_on_the_profile_page():
    from generator.templates import interface_strings

    strings = interface_strings()
    zh = pd.diagram_source(profile(), "canvas", "zh")
    assert strings["key_partners"]["zh"] == "关键合作伙伴"
    assert "\t\t关键合作伙伴\n" in zh and "关键伙伴\n" not in zh  # the theme's word, not a second table's
    en = pd.diagram_source(profile(), "canvas", "en")
    for box in ("key_partners", "key_activities", "value_propositions", "customer_segments"):
        assert f"\t\t{strings[box]['en']}\n" in en


def test_value_network_without_channels_links_segments_directly():
    p = profile()
    p.canvas.channels = []
    flow = pd.diagram_source(p, "value-network", "en")
    assert "subgraph" not in flow and "\tstartup --> c0" in flow and "\tstartup --> c1" in flow


def test_every_kind_renders_with_its_chinese_labels():
    p = profile()
    kinds = pd.available_kinds(p)
    results = render([pd.diagram_source(p, k, "zh") for k in kinds])
    expect = {
        "revenue": "订阅",
        "costs": "算力",
        "funding": "种子轮 USD 2M",
        "metrics": "收入（百万）",
        "competitors": "大厂通用模型",
        "roadmap": "海外市场",
        "value-network": "城商行",
        "canvas": "价值主张",
    }
    for kind, res in zip(kinds, results):
        assert res.errors == [] and res.warnings == [], kind
        assert "<svg " in res.html and "<text" in res.html
        assert expect[kind] in res.html, kind
        assert f"深言科技 · {pd._t(kind, 'zh')}" in res.html, kind  # the title names the start-up


def test_english_labels():
    p = profile()
    source = pd.diagram_source(p, "roadmap", "en")
    assert "section Done" in source and "section In progress" in source and "section Planned" in source
    assert "title 深言科技 · Roadmap" in source
    assert '"Low 价格" --> "High 价格"' in pd.diagram_source(p, "competitors", "en")


def test_funding_is_chronological_and_metrics_are_scaled():
    p = profile()
    funding = pd.diagram_source(p, "funding", "zh")
    assert funding.index("2021-03 : 种子轮") < funding.index("2022-06 : A 轮 USD 15M : 红杉中国、高瓴")
    metrics = pd.diagram_source(p, "metrics", "en")
    assert 'x-axis ["2022", "2023"]' in metrics and "bar [2.5, 9.8]" in metrics and "Revenue (M)" in metrics


def test_competitor_axes_split_on_arrows_and_the_startup_stands_out():
    source = pd.diagram_source(profile(), "competitors", "zh")
    assert 'x-axis "通用" --> "专业"' in source
    assert 'y-axis "价格低" --> "价格高"' in source
    assert '"深言科技": [0.800, 0.350] radius: 9' in source


def test_roadmap_marks_status_and_milestones():
    source = pd.diagram_source(profile(), "roadmap", "zh")
    assert "v1 发布 :done, m0, 2023-01-01, 2023-06-30" in source
    assert "多语种 :active, m1, 2024-03-01, 2024-09-30" in source
    assert "海外市场 :milestone, m2, 2025-01-01, 0d" in source


HOSTILE = 'Evil"] --> X; click X "javascript:alert(1)"; %%{init: {"fontFamily":"x"}}%% <img src=x onerror=alert(1)>'


@pytest.mark.parametrize("kind", pd.DIAGRAM_KINDS)
def test_profile_text_cannot_become_mermaid_syntax(kind):
    p = profile()
    p.name = HOSTILE
    p.canvas.key_partners = [HOSTILE + "\nclick p0 call evil()"]
    p.canvas.revenue_streams[0].name = HOSTILE
    p.funding[0].round = "A: B : C"
    p.roadmap[0].title = "title : section x"
    p.competitors.items[0].name = HOSTILE  # type: ignore[union-attr]
    source = pd.diagram_source(p, kind, "en")
    prepared = prepare_source(source)
    assert prepared.warnings == [] and prepared.errors == []
    assert "%%{" not in source and "<img" not in source and "\nclick" not in source
    (res,) = render([source])
    assert res.errors == [], res.errors
    assert_safe(res.html)  # the hostile strings survive only as escaped <text> content
    assert "<img" not in res.html
    if kind in ("value-network", "canvas", "competitors", "revenue"):
        assert "Evil" in res.html  # shown as text, not dropped


def test_unknown_kind_or_missing_data_is_refused():
    with pytest.raises(ValueError, match="unknown diagram kind 'radar'"):
        pd.diagram_source(profile(), "radar", "zh")
    with pytest.raises(ValueError, match="no data for a funding diagram"):
        pd.diagram_source(profile("name: Bare\nstage: seed\nsectors: [fintech]\n"), "funding", "zh")


def test_sample_profiles_have_at_least_five_kinds():
    samples = sorted((ROOT / "content" / "startups").glob("*.yaml"))
    if not samples:
        pytest.skip("no sample profiles in this checkout")
    for path in samples:
        p = ProfileData.model_validate(parse_yaml(path.read_text(encoding="utf-8")).data)
        kinds = pd.available_kinds(p)
        assert len(kinds) >= 5, (path.name, kinds)
        results = render([pd.diagram_source(p, k, p.lang or "zh") for k in kinds])
        for kind, res in zip(kinds, results):
            assert res.errors == [] and res.warnings == [], (path.name, kind, res.errors, res.warnings)
            assert re.search(r"<text[^>]*>", res.html)
