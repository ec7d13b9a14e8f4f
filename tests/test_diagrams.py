"""Mermaid diagrams: renderers, sanitiser (SECURITY-CASES MM-01..MM-04), cache, pool, ink backend."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from diagram_doubles import CannedRenderer, CrashingRenderer, HangingRenderer, MustNotRender
from generator.config import DiagramsConfig
from generator.diagnostics import Diagnostics, Location
from generator.models import Job
from generator.services.cache import hash_key
from generator.services.diagrams import (
    EmbeddedRenderer,
    InkRenderer,
    clean_renderer_message,
    prepare_source,
    resolve_diagrams,
    sanitize_svg,
    select_renderer,
)

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "mermaid"


def job(source: str, path: str = "content/reports/page.md", line: int = 3) -> Job:
    return Job("mermaid", source, Location(path, line), hash_key("mermaid", source))


def resolve_one(source: str, tmp_path: Path | None = None, workers: int = 0, **kw):
    renderer = kw.pop("renderer", None)
    config = DiagramsConfig(**kw)
    j = job(source)
    return resolve_diagrams([j], config, tmp_path, workers, renderer=renderer)[j.key]


class _Collect(HTMLParser):
    """Every tag and attribute of a fragment, plus the text of <style> elements."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k, v) for k, v in attrs]
        self._in_style = tag == "style"

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k, v) for k, v in attrs]

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def collect(markup: str) -> _Collect:
    c = _Collect()
    c.feed(markup)
    return c


def css_selectors(css: str) -> list[str]:
    """The selector of every style rule, descending into @media blocks."""
    out: list[str] = []
    depth, start, stack = 0, 0, []
    for i, ch in enumerate(css):
        if ch == "{":
            prelude = css[start:i].strip()
            stack.append(prelude)
            if not prelude.startswith("@"):
                out += [s.strip() for s in prelude.split(",")]
            start = i + 1
            depth += 1
        elif ch == "}":
            stack.pop()
            start = i + 1
            depth -= 1
    assert depth == 0, "unbalanced braces in emitted CSS"
    return out


def assert_safe(markup: str) -> None:
    """The sanitiser's promises: no script, no handlers, no javascript:, no foreignObject, no external refs."""
    c = collect(markup)
    lowered = [t.lower() for t in c.tags]
    for bad in ("script", "foreignobject", "image", "iframe", "object", "embed", "a", "animate", "set"):
        assert bad not in lowered, bad
    for tag, name, value in c.attrs:
        assert not name.lower().startswith("on"), (tag, name)
        v = (value or "").lower()
        assert "javascript:" not in v and "file:" not in v and "http://evil" not in v, (tag, name, value)
        if name in ("href", "xlink:href"):
            assert v.startswith("#"), (tag, name, value)


def assert_scoped(markup: str) -> None:
    """Every id belongs to its diagram's scope and every CSS rule is confined to that id."""
    c = collect(markup)
    scopes = [v for t, k, v in c.attrs if t == "svg" and k == "id" and v and v.startswith("mmd-")]
    assert scopes
    ids = [v for _t, k, v in c.attrs if k == "id"]
    assert len(ids) == len(set(ids)), "duplicate ids"
    for i in ids:
        assert any(i == s or i.startswith(s + "-") for s in scopes), i
    contexts = r'(?::root\[data-theme="dark"\] |:root:not\(\[data-theme="light"\]\) )?'
    for css in c.styles:
        for sel in css_selectors(css):
            assert any(re.match(rf"{contexts}#{s}(?:$|[ .:\[>])", sel) for s in scopes), sel
            assert not re.search(r"[~+]", re.sub(r"\[[^\]]*\]|\([^)]*\)", "", sel)), sel


# --- rendering ---------------------------------------------------------------------------


def test_fence_renders_inline_svg_with_text_and_chinese_label(tmp_path):
    res = resolve_one("flowchart LR\n  A[中文标签] --> B{决定}\n  B -->|是| C[Done]", tmp_path)
    assert res.errors == [] and res.warnings == []
    assert res.html.startswith('<figure class="diagram" data-diagram="flowchart"><svg ')
    root = ET.fromstring(res.html)  # well-formed: also valid as XHTML and inside WeasyPrint
    svg = root[0]
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert svg.get("role") == "img"
    title_id = svg.get("aria-labelledby")
    title = svg.find("{http://www.w3.org/2000/svg}title")
    assert title is not None and title.get("id") == title_id and title.text == "Flowchart diagram"
    texts = ["".join(t.itertext()) for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert "中文标签" in texts and "决定" in texts and "是" in texts
    assert "Noto Sans CJK SC" in svg.get("style") and "font-size:16px" in svg.get("style")
    assert_safe(res.html)
    assert_scoped(res.html)


def test_accessible_title_comes_from_acctitle_or_the_diagram_title(tmp_path):
    acc = resolve_one("flowchart LR\n  accTitle: Order flow\n  accDescr: How an order moves\n  A --> B", tmp_path)
    svg = ET.fromstring(acc.html)[0]
    ns = "{http://www.w3.org/2000/svg}"
    assert svg.find(ns + "title").text == "Order flow"
    desc_id = svg.get("aria-describedby")
    assert desc_id and svg.find(f".//{ns}desc").get("id") == desc_id
    pie = resolve_one('pie title 收入结构\n  "订阅" : 60\n  "API" : 40', tmp_path)
    assert ET.fromstring(pie.html)[0].find(ns + "title").text == "收入结构"


def test_several_diagrams_on_one_page_never_share_an_id(tmp_path):
    sources = [
        "flowchart LR\n  accTitle: One\n  accDescr: first\n  A --> B",
        "stateDiagram-v2\n  accTitle: Two\n  accDescr: second\n  [*] --> S",
        "sequenceDiagram\n  Alice->>Bob: Hi",
    ]
    jobs = [job(s) for s in sources]
    results = resolve_diagrams(jobs, DiagramsConfig(), tmp_path, 2)
    page = "".join(results[j.key].html for j in jobs)
    assert len(re.findall(r"<svg [^>]*\bid=\"mmd-", page)) == 3
    assert_scoped(page)
    assert "pele-title" not in page  # the renderer's fixed ids are renamed per diagram


def test_dark_mode_rules_follow_the_site_theme_and_stay_out_of_print(tmp_path):
    res = resolve_one("flowchart LR\n  A --> B", tmp_path)
    css = "".join(collect(res.html).styles)
    assert ':root[data-theme="dark"] #mmd-' in css
    assert "@media screen and (prefers-color-scheme:dark)" in css
    assert 'fill="#F3F3F3" i]{fill:#303640}' in css  # node surface remapped to the dark palette
    assert "@media print" not in css and "@import" not in css


def test_syntax_error_gives_one_line_message_and_an_error_box(tmp_path):
    source = "flowchart LR\n  A --> B\n  B --> <script>alert(1)</script>[\n"
    res = resolve_one(source, tmp_path)
    assert len(res.errors) == 1
    msg = res.errors[0]
    assert msg.startswith("syntax error at diagram line 3, column ")
    assert "\n" not in msg and "Traceback" not in msg
    assert 'class="diagram diagram-error"' in res.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in res.html and "<script" not in res.html
    assert "Diagram error: syntax error at diagram line 3" in res.html


def test_line_numbers_survive_removed_directives_and_front_matter():
    source = '---\ntitle: T\nconfig:\n  themeCSS: "x"\n---\n%%{init: {\n "fontFamily": "x"\n}}%%\nflowchart LR\n  A --> ]\n'
    res = resolve_one(source)
    assert res.errors and "diagram line 10," in res.errors[0]


def test_unknown_diagram_type_is_a_clean_error():
    res = resolve_one("zenuml\n  title Demo\n  A.method()")
    assert res.errors == ["unknown or unsupported mermaid diagram type 'zenuml'"]


@pytest.mark.slow
def test_corpus_renders_through_sitegens_path_and_failures_are_clean():
    files = sorted(CORPUS.glob("*.mmd"))
    assert len(files) >= 500
    jobs = [job(f.read_text(encoding="utf-8"), path=f.name, line=1) for f in files]
    results = resolve_diagrams(jobs, DiagramsConfig(), None, 2)
    ok = [j for j in jobs if not results[j.key].errors]
    rate = len(ok) / len(jobs)
    assert rate >= 0.95, f"{rate:.1%} of the corpus rendered"
    for j in jobs:
        res = results[j.key]
        if res.errors:
            assert len(res.errors) == 1 and res.errors[0].strip()
            assert "\n" not in res.errors[0] and "Traceback" not in res.errors[0]
            assert 'class="diagram diagram-error"' in res.html and "<svg" not in res.html
        else:
            assert "<svg " in res.html and 'role="img"' in res.html
            assert_safe(res.html)
    zen = [j for j in jobs if j.location.path.startswith("zenuml")]
    assert zen and all(results[j.key].errors == ["unknown or unsupported mermaid diagram type 'zenuml'"] for j in zen)


def test_sample_report_diagrams_render():
    fences = []
    for path in sorted((ROOT / "content" / "reports").glob("*.md")):
        text = path.read_text(encoding="utf-8")
        fences += [job(m[1], path=path.name) for m in re.finditer(r"^```mermaid\n(.*?)^```", text, re.S | re.M)]
    if not fences:
        pytest.skip("no sample reports in this checkout")
    results = resolve_diagrams(fences, DiagramsConfig(), None, 0)
    for j in fences:
        assert results[j.key].errors == [] and results[j.key].warnings == [], j.location
        assert "<svg " in results[j.key].html


# --- SECURITY-CASES MM-01 .. MM-04 -----------------------------------------------------------


def test_mm01_label_xss_and_click_directives(tmp_path):
    source = 'graph TD; A["<img src=x onerror=alert(1)>"] --> B; click B "javascript:alert(1)"; click A callFn'
    res = resolve_one(source, tmp_path)
    assert res.errors == []
    assert res.warnings == ["mermaid click directives are ignored"]
    assert "onerror" not in res.html and "javascript:" not in res.html and "callFn" not in res.html
    assert_safe(res.html)
    cls = prepare_source('classDiagram\n  class Shape\n  link Shape "https://evil.example" "tip"\n  callback Shape "fn"')
    assert "link Shape" not in cls.source and "callback" not in cls.source
    assert cls.warnings == ["mermaid click directives are ignored"]
    multi = resolve_one('flowchart LR\n  A --> B\n  click A href "javascript:alert(1)"\n  callback B "fn"', tmp_path)
    assert multi.warnings == ["mermaid click directives are ignored"]
    assert "javascript:" not in multi.html


MM02_INIT = (
    '%%{init: {"securityLevel":"loose","fontFamily":"x;a{b} :not(&){background:red !important} c{d}",'
    '"themeCSS":"body{display:none}"}}%%\nflowchart LR; A-->B'
)
MM02_FRONT = (
    "---\nconfig:\n  securityLevel: loose\n  fontFamily: \"x;a{b} :not(&){background:red !important} c{d}\"\n"
    '  themeCSS: "body{display:none}"\n---\nflowchart LR; A-->B'
)


@pytest.mark.parametrize("source", [MM02_INIT, MM02_FRONT], ids=["init-directive", "front-matter"])
def test_mm02_config_override_is_ignored_with_warnings(source, tmp_path):
    prepared = prepare_source(source)
    assert "securityLevel" not in prepared.source and "loose" not in prepared.source
    assert "fontFamily" not in prepared.source and "themeCSS" not in prepared.source
    res = resolve_one(source, tmp_path)
    assert res.errors == []
    assert "mermaid config key 'fontFamily' ignored" in res.warnings
    assert "mermaid config key 'securityLevel' ignored" in res.warnings
    assert "mermaid config key 'themeCSS' ignored" in res.warnings
    assert "background:red" not in res.html and "display:none" not in res.html
    assert_scoped(res.html)


def test_mm02_classdef_brace_escape_never_reaches_a_stylesheet(tmp_path):
    res = resolve_one("flowchart LR\n  A-->B\n  classDef x fill:#f00} body{display:none\n  class A x", tmp_path)
    # Either refused by the parser or rendered: in both cases no rule outside the diagram.
    assert all("display:none" not in css for css in collect(res.html).styles)
    if res.errors:
        assert "diagram-error" in res.html and "<style" not in res.html
    else:
        assert_scoped(res.html)


def test_mm02_layout_config_is_kept_unsafe_keys_are_named():
    prepared = prepare_source('%%{init: {"flowchart": {"curve": "basis", "htmlLabels": true}, "theme": "dark"}}%%\nflowchart LR\n A-->B')
    assert '%%{init: {"flowchart": {"curve": "basis"}}}%%' in prepared.source
    assert prepared.warnings == ["mermaid config key 'flowchart.htmlLabels' ignored", "mermaid config key 'theme' ignored"]
    unclosed = prepare_source('flowchart LR\n A-->B\n%%{init: {"fontFamily": "x"}')
    assert "%%{" not in unclosed.source
    assert unclosed.warnings == ["mermaid directive ignored: not closed with }%%"]


def test_mm03_oversize_diagram():
    res = resolve_one("flowchart LR\n" + "  A --> B\n" * 6000)
    assert res.errors == ["mermaid diagram exceeds 50000 chars"]
    assert "diagram-error" in res.html


def test_mm03_too_many_edges():
    source = "flowchart TD\n" + "\n".join(f"  n{i} --> n{i + 1}" for i in range(600))
    res = resolve_one(source)
    assert res.errors == ["mermaid diagram has 600 edges, more than the limit of 500"]
    labelled = "flowchart TD\n" + "\n".join(f"  n{i} -- step {i} --> n{i + 1}" for i in range(400))
    assert prepare_source(labelled).errors == []  # a labelled link counts once


def test_mm03_renderer_missing():
    res = resolve_one("flowchart LR\n A-->B", renderer=EmbeddedRenderer(module="sitegen_no_such_renderer"))
    assert res.errors == ["mermaid renderer not found: install mermaid-render (pip install mermaid-render)"]
    assert "diagram-error" in res.html


def test_mm03_renderer_that_exits_non_zero_is_reported_and_the_rest_render():
    jobs = [job("flowchart LR\n  CRASH --> B"), job("flowchart LR\n  C --> D")]
    results = resolve_diagrams(jobs, DiagramsConfig(), None, 1, renderer=CrashingRenderer())
    assert results[jobs[0].key].errors == ["mermaid renderer crashed (exit code 3)"]
    assert results[jobs[1].key].errors == [] and "<svg " in results[jobs[1].key].html


def test_mm03_hanging_render_is_stopped_at_the_configured_limit(tmp_path):
    jobs = [job("flowchart LR\n  HANG --> B"), job("flowchart LR\n  C --> D"), job("flowchart LR\n  E --> F")]
    start = time.monotonic()
    results = resolve_diagrams(jobs, DiagramsConfig(timeout=1), tmp_path, 2, renderer=HangingRenderer())
    assert time.monotonic() - start < 60  # a bound against a frozen build, not a speed check
    assert results[jobs[0].key].errors == ["mermaid render timed out after 1 s"]
    assert all(results[j.key].errors == [] for j in jobs[1:])
    # Timeouts depend on the machine: never cached, so the next build tries again.
    again = resolve_diagrams(jobs[:1], DiagramsConfig(timeout=1), tmp_path, 1, renderer=HangingRenderer())
    assert again[jobs[0].key].cached is False


HOSTILE_SVG = """<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 10 10" onload="alert(1)">
<script>alert(1)</script>
<image href="file:///etc/passwd" width="10" height="10"/>
<image xlink:href="http://evil/x.png"/>
<a href="http://evil"><text x="1" y="5">label</text></a>
<a xlink:href="javascript:alert(1)"><text>two</text></a>
<use href="http://x/#a"/>
<use href="#shape"/>
<defs><path id="shape" d="M0 0L5 5"/></defs>
<foreignObject><div xmlns="http://www.w3.org/1999/xhtml">html</div></foreignObject>
<rect fill="url(http://evil/p.svg#x)" stroke="url(#shape)" style="fill:url(file:///etc/passwd);stroke:red;behavior:url(x.htc)" onclick="x()"/>
<set attributeName="href" to="javascript:alert(1)"/>
<style>@import url(http://evil/x.css); body{display:none} .node rect{fill:#eee} #my-svg .label{color:red}</style>
</svg>"""

DTD_SVG = """<?xml version="1.0"?>
<!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<svg xmlns="http://www.w3.org/2000/svg"><text>&x;</text></svg>"""


def test_mm04_external_references_are_stripped(tmp_path):
    res = resolve_one("flowchart LR\n A-->B", tmp_path, renderer=CannedRenderer(HOSTILE_SVG))
    assert res.errors == []
    html = res.html
    assert "label" in html and "two" in html  # link text stays, the link goes
    assert "/etc/passwd" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<script" not in html and "foreignObject" not in html and "<image" not in html
    assert re.search(r'<use href="#mmd-[0-9a-f]+-shape"', html)  # internal reference kept, rescoped
    assert 'stroke="url(#mmd-' in html and "fill=\"url(" not in html
    assert "stroke:red" in html and "behavior" not in html
    assert_safe(html)
    assert_scoped(html)
    css = "".join(collect(html).styles)
    assert "@import" not in css and "display:none" not in css.replace("#mmd", "")


def test_mm04_dtd_is_an_error(tmp_path):
    res = resolve_one("flowchart LR\n A-->B", tmp_path, renderer=CannedRenderer(DTD_SVG))
    assert res.errors == ["diagram SVG contains a DTD"]
    assert "<svg" not in res.html and "diagram-error" in res.html


def test_mm04_pdf_render_never_fetches_from_a_diagram(tmp_path):
    weasyprint = pytest.importorskip("weasyprint")
    res = resolve_one("flowchart LR\n A-->B", tmp_path, renderer=CannedRenderer(HOSTILE_SVG))
    fetched: list[str] = []

    def spy(url, *args, **kwargs):
        fetched.append(url)
        raise ValueError("no fetching in this test")

    page = f"<!doctype html><html><body><p>before</p>{res.html}</body></html>"
    pdf = weasyprint.HTML(string=page, base_url=str(tmp_path), url_fetcher=spy).write_pdf()
    assert pdf.startswith(b"%PDF") and fetched == []


def test_sanitiser_css_cannot_reach_or_cover_the_page():
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" id="my-svg" style="transform:scale(50);position:fixed;fill:#333">'
        "<style>#my-svg ~ p{color:red}#my-svg+div{display:none}#my-svg{transform:scale(40);fill:red;width:9999px}"
        ".a + .b{fill:blue}#my-svg .node:hover{opacity:0.5}</style><g class=\"node\"><rect/></g></svg>"
    )
    out = sanitize_svg(svg, "mmd-abc")
    css = "".join(collect(out).styles)
    assert "color:red" not in css and "display:none" not in css and "fill:blue" not in css
    assert "#mmd-abc{fill:red}" in css and "scale(40)" not in css and "9999px" not in css
    assert "#mmd-abc .node:hover{opacity:0.5}" in css
    root_style = re.search(r'<svg [^>]*style="([^"]*)"', out)[1]
    assert "transform" not in root_style and "position" not in root_style and "fill:#333" in root_style
    assert_scoped(out)


def test_pdf_keeps_diagram_labels_as_text(tmp_path):
    weasyprint = pytest.importorskip("weasyprint")
    pypdf = pytest.importorskip("pypdf")
    import io

    res = resolve_one("flowchart LR\n  A[客户下单] --> B[Risk check]", tmp_path)
    pdf = weasyprint.HTML(string=f"<html><body>{res.html}</body></html>").write_pdf()
    text = pypdf.PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert "客户下单" in text and "Risk check" in text


def test_sanitiser_rescopes_renderer_stylesheets():
    svg = '<svg xmlns="http://www.w3.org/2000/svg" id="my-svg"><style>#my-svg{font-size:16px}#my-svg .node rect{fill:#eee;stroke:url(http://e/x)}:root{--x:1}@media print{#my-svg{display:none}}</style><g class="node"><rect/></g></svg>'
    out = sanitize_svg(svg, "mmd-abc")
    css = "".join(collect(out).styles)
    assert "#mmd-abc{font-size:16px}" in css
    assert "#mmd-abc .node rect{fill:#eee}" in css
    assert "#mmd-abc :root{" not in css  # custom properties are not in the allowlist, so the rule is empty
    assert "display:none" not in css
    assert_scoped(out)


# --- cache -----------------------------------------------------------------------------------


def test_second_run_renders_zero_and_a_corrupt_entry_is_rebuilt(tmp_path):
    sources = ["flowchart LR\n A --> B", "sequenceDiagram\n  A->>B: hi", "flowchart LR\n  A --> ]"]
    jobs = [job(s) for s in sources]
    first = resolve_diagrams(jobs, DiagramsConfig(), tmp_path, 2)
    assert [first[j.key].cached for j in jobs] == [False, False, False]
    assert first[jobs[2].key].errors  # a syntax error is cached too: it is a property of the source

    second = resolve_diagrams(jobs, DiagramsConfig(), tmp_path, 0, renderer=MustNotRender())
    assert [second[j.key].cached for j in jobs] == [True, True, True]
    for j in jobs:
        assert second[j.key].html == first[j.key].html
        assert second[j.key].errors == first[j.key].errors

    entries = sorted((tmp_path / "diagrams").rglob("*"))
    files = [p for p in entries if p.is_file()]
    assert len(files) == 3
    victim = files[0]
    victim.write_bytes(victim.read_bytes()[:-20])
    diags = Diagnostics()
    third = resolve_diagrams(jobs, DiagramsConfig(), tmp_path, 1, diags=diags)
    assert sorted(third[j.key].cached for j in jobs) == [False, True, True]
    assert [d.format() for d in diags.items] == [f"warning[cache]: diagrams cache entry {victim.name} was corrupt; rebuilt"]
    fourth = resolve_diagrams(jobs, DiagramsConfig(), tmp_path, 0, renderer=MustNotRender())
    assert all(fourth[j.key].cached for j in jobs)


def test_cache_key_covers_theme_and_renderer(tmp_path):
    src = "flowchart LR\n A --> B"
    resolve_one(src, tmp_path)
    other_theme = resolve_one(src, tmp_path, theme="forest")
    assert other_theme.cached is False
    assert resolve_one(src, tmp_path, theme="forest").cached is True
    assert resolve_one(src, tmp_path, renderer=CannedRenderer(HOSTILE_SVG)).cached is False


def test_no_cache_root_means_no_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = resolve_one("flowchart LR\n A --> B", None)
    assert res.errors == [] and list(tmp_path.iterdir()) == []


# --- ink backend against a local mermaid.ink stand-in -----------------------------------------

INK_SVG = """<svg xmlns="http://www.w3.org/2000/svg" id="my-svg" width="100" height="40" viewBox="0 0 100 40" aria-roledescription="flowchart-v2">
<style>#my-svg{font-family:"trebuchet ms";fill:#333}#my-svg .node rect{fill:#ECECFF;stroke:#9370DB}@import url(http://evil/x.css);body{display:none}</style>
<g class="node"><rect width="40" height="20"/><text x="5" y="15">Ink 标签</text></g>
<foreignObject width="10" height="10"><div xmlns="http://www.w3.org/1999/xhtml">html label</div></foreignObject>
</svg>"""


class _InkStub(BaseHTTPRequestHandler):
    requests: list[str] = []
    delay = 0.0
    status = 200

    def do_GET(self):  # noqa: N802 (http.server API)
        type(self).requests.append(self.path)
        time.sleep(type(self).delay)
        body = INK_SVG.encode() if type(self).status == 200 else b"Syntax error in text"
        self.send_response(type(self).status)
        self.send_header("Content-Type", "image/svg+xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def ink_server():
    _InkStub.requests = []
    _InkStub.delay = 0.0
    _InkStub.status = 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), _InkStub)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _decoded(path: str) -> str:
    encoded = path.split("/svg/", 1)[1].split("?", 1)[0]
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")


def test_ink_backend_renders_through_the_configured_server(ink_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MERMAID_INK_SERVER", ink_server)
    config = DiagramsConfig(renderer="ink")
    renderer = select_renderer(config)
    assert isinstance(renderer, InkRenderer) and renderer.server == ink_server
    src = '%%{init: {"securityLevel": "loose"}}%%\nflowchart LR\n  A[Ink 标签] --> B'
    j = job(src)
    res = resolve_diagrams([j], config, tmp_path, 1)[j.key]
    assert res.errors == [] and res.warnings == ["mermaid config key 'securityLevel' ignored"]
    assert "Ink 标签" in res.html and "foreignObject" not in res.html and "html label" not in res.html
    css = "".join(collect(res.html).styles)
    assert re.search(r"#mmd-[0-9a-f]+ \.node rect\{fill:#ECECFF;stroke:#9370DB\}", css)
    assert "@import" not in css and "evil" not in css
    assert_scoped(res.html)
    assert len(_InkStub.requests) == 1 and _InkStub.requests[0].startswith("/svg/")
    sent = _decoded(_InkStub.requests[0])
    assert '"securityLevel": "strict"' in sent and '"htmlLabels": false' in sent and "loose" not in sent
    assert "A[Ink 标签] --> B" in sent
    again = resolve_diagrams([j], config, tmp_path, 1)[j.key]
    assert again.cached and len(_InkStub.requests) == 1


def test_ink_backend_reports_http_errors(ink_server, monkeypatch):
    _InkStub.status = 400
    res = resolve_one("flowchart LR\n A --> B", renderer=InkRenderer(ink_server), workers=0)
    assert len(res.errors) == 1
    assert res.errors[0].startswith("Mermaid API Error [400]: Bad Request - Invalid diagram syntax or parameters")
    assert "Syntax error in text" in res.errors[0]


def test_ink_backend_unreachable_server_is_a_clear_error():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = f"http://127.0.0.1:{port}"
    res = resolve_one("flowchart LR\n A --> B", renderer=InkRenderer(server), workers=0)
    assert res.errors == [f"mermaid.ink server {server} could not be reached: [Errno 111] Connection refused"]


def test_ink_backend_times_out(ink_server):
    _InkStub.delay = 3.0
    res = resolve_one("flowchart LR\n A --> B", renderer=InkRenderer(ink_server), workers=0, timeout=1)
    assert len(res.errors) == 1 and res.errors[0].startswith("mermaid render timed out after 1 s")


def test_ink_backend_needs_a_server(monkeypatch):
    monkeypatch.delenv("MERMAID_INK_SERVER", raising=False)
    res = resolve_one("flowchart LR\n A --> B", renderer=select_renderer(DiagramsConfig(renderer="ink")))
    assert res.errors == ["mermaid renderer 'ink' needs MERMAID_INK_SERVER (the URL of a mermaid.ink server)"]


# --- import hygiene ---------------------------------------------------------------------------


def test_module_import_is_cheap_and_mermaid_py_stays_quiet():
    code = (
        "import sys\n"
        "import generator.services.diagrams as d\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('mermaid', 'mermaid_render', 'quickjs', 'requests'))\n"
        "print(repr(heavy), file=sys.stderr)\n"
        "d.import_mermaid_py()\n"
        "import generator.profile_diagrams\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "[]"
    assert proc.stdout == ""  # mermaid-py's "IPython is not installed" line is swallowed


def test_help_does_not_load_the_css_parser():
    code = (
        "import sys\n"
        "from generator.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(repr(sorted(m for m in sys.modules if m.split('.')[0] in ('tinycss2', 'weasyprint'))), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout and proc.stderr.strip() == "[]"


def test_clean_renderer_message_drops_excerpt_and_caret():
    raw = "syntax at 3:7: Parse error on line 3:\nsize [width, height]\n------^\nExpecting token of type 'INT' but found `width`."
    assert clean_renderer_message(raw) == "syntax error at diagram line 3, column 7: Parse error on line 3: Expecting token of type 'INT' but found `width`."
    assert clean_renderer_message("limit at 0:0: too long") == "too long"


def test_json_payload_is_what_the_cache_holds(tmp_path):
    resolve_one("flowchart LR\n A --> B", tmp_path)
    (entry,) = [p for p in (tmp_path / "diagrams").rglob("*") if p.is_file()]
    payload = json.loads(entry.read_bytes().split(b"\n", 1)[1])
    assert set(payload) == {"html", "errors", "warnings"} and payload["html"].startswith("<figure")


# --- end to end: the real CLI on a tiny project ------------------------------------------------

E2E_REPORT = """\
---
title: Diagram report
date: 2024-05-01
startups: [acme]
---

## Flow

```mermaid
flowchart LR
  A[客户下单] --> B{风控审核}
  B -->|通过| C[放款]
```

## Revenue

```startup-diagram
startup: acme
kind: revenue
```
"""

BROKEN_REPORT = """\
---
title: Broken diagram
date: 2024-05-02
---

Intro.

```mermaid
flowchart LR
  A --> ]
```
"""


def test_e2e_fences_become_svg_in_the_built_page(make_project):
    from conftest import run_sitegen

    project = make_project({"content/reports/diagrams.md": E2E_REPORT})
    proc = run_sitegen("-C", str(project), "build")
    assert proc.returncode == 0, proc.stderr
    assert "IPython" not in proc.stdout + proc.stderr
    page = (project / "output" / "reports" / "diagrams" / "index.html").read_text(encoding="utf-8")
    assert "sitegen-job" not in page
    figures = re.findall(r'<figure class="diagram"[^>]*>.*?</figure>', page, re.S)
    assert len(figures) == 2
    flow, pie = figures
    assert "<svg " in flow and re.search(r"<text[^>]*>客户下单</text>", flow) and "风控审核" in flow
    assert 'data-diagram="pie"' in pie and "Subscriptions" in pie and "Acme AI · Revenue streams" in pie
    assert_safe(flow + pie)
    assert_scoped(flow + pie)
    profile_page = (project / "output" / "startups" / "acme" / "index.html").read_text(encoding="utf-8")
    assert profile_page.count('<figure class="diagram"') >= 3  # revenue, costs, funding, …


def test_e2e_second_build_renders_no_diagram(make_project):
    from generator.build import BuildOptions, build

    project = make_project({"content/reports/diagrams.md": E2E_REPORT})
    first = build(project, BuildOptions())
    assert first.stats.jobs.rendered >= 2
    second = build(project, BuildOptions())
    assert second.stats.jobs.rendered == 0
    assert list((project / ".sitegen-cache" / "diagrams").rglob("*"))


def test_e2e_broken_diagram_names_the_fence_and_keeps_the_previous_site(make_project):
    from conftest import run_sitegen, tree_hash

    project = make_project()
    assert run_sitegen("-C", str(project), "build").returncode == 0
    before = tree_hash(project / "output")
    (project / "content/reports/broken.md").write_text(BROKEN_REPORT, encoding="utf-8")
    proc = run_sitegen("-C", str(project), "build")
    assert proc.returncode == 1
    assert "content/reports/broken.md:8: error[diagram]: syntax error at diagram line 2, column" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert tree_hash(project / "output") == before


def test_e2e_click_directive_is_a_located_warning(make_project):
    from conftest import run_sitegen

    report = BROKEN_REPORT.replace("  A --> ]", '  A --> B\n  click A "javascript:alert(1)"')
    project = make_project({"content/reports/click.md": report})
    proc = run_sitegen("-C", str(project), "build")
    assert proc.returncode == 0, proc.stderr
    assert "content/reports/click.md:8: warning[diagram]: mermaid click directives are ignored" in proc.stderr
    strict = run_sitegen("-C", str(project), "build", "--strict")
    assert strict.returncode == 1


# --- standalone SVG files (PS-06; the build side is in test_build.py) -------------------------


def test_svg_file_keeps_ids_and_css_but_not_what_loads_or_runs():
    from generator.services.diagrams import sanitize_svg_file

    svg = (
        b'<?xml version="1.0"?>\n<?xml-stylesheet type="text/xsl" href="https://evil.example/x.xsl"?>\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" viewBox="0 0 10 10">'
        b"<style>@import url(https://evil.example/x.css); .a{fill:red}</style>"
        b'<style>#icon + .b{fill:#00f;behavior:url(x.htc)}</style>'
        b'<g id="icon" class="a"><a href="javascript:alert(1)"><circle r="4" style="fill:#fff;cursor:url(https://evil.example/c)"/></a></g>'
        b"</svg>"
    )
    out, removed, where = sanitize_svg_file(svg)
    assert where is None
    assert removed == ["<a>", "CSS @import", "CSS property behavior", "CSS value of cursor", "processing instruction"]
    assert out == (
        b'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" viewBox="0 0 10 10">'
        b"<style>#icon + .b{fill:#00f}</style>"
        b'<g id="icon" class="a"><circle r="4" style="fill:#fff"/></g></svg>\n'
    )
    plain = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 4 4"><!-- ours --><circle r="1"/></svg>'
    assert sanitize_svg_file(plain) == (plain, [], None)  # nothing to remove: the very bytes
