"""PDFs: real WeasyPrint, read back with pypdf and poppler; every SECURITY-CASES §8 case (WP-01..08)."""

from __future__ import annotations

import http.server
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import zlib
from importlib.metadata import version
from pathlib import Path

import pytest
from pypdf import PdfReader
from pypdf.generic import IndirectObject, StreamObject

from conftest import REPO, tree_hash, write_files
from generator.build import BuildOptions, build
from generator.diagnostics import ContentError
from generator.services.fetcher import FetchDenied, FetchPolicy, check_content_image, resolve_allowed
from generator.services.fonts import INSTALL_HINT, find_cjk_fonts, plan_fonts
from generator.commands.pdf import PdfOptions, run_pdf_command
from generator.writers.pdf import WRITE_OPTIONS, RenderJob, WorkerPool, render_pdf

TESTS = Path(__file__).resolve().parent

ZH_CONFIG = """\
title: 测试站点
description: PDF 测试用的示例站点
base_url: https://example.org/site/
language: zh
authors: [测试编辑部]
cache_dir: {cache}
pdf:
  book: true
"""

ZH_PROFILE = """\
name: 灵犀医疗
example: true
tagline: 面向基层医院的影像辅助诊断
description: |
  灵犀医疗是一家**虚构**的示例企业，为县级医院提供影像辅助诊断服务。
stage: series-a
sectors: [health]
canvas:
  value_propositions: [报告出具时间缩短]
  customer_segments: [县级医院放射科]
  revenue_streams:
    - {name: 软件年费订阅, share: 55}
    - {name: 按例计费, share: 45}
  cost_structure:
    - {name: 算力与推理, share: 60}
    - {name: 研发人员, share: 40}
funding:
  - {date: 2021-09-01, round: 天使轮, amount: 15000000, currency: CNY, investors: [某医疗产业基金]}
  - {date: 2023-04-15, round: A 轮, amount: 80000000, currency: CNY, investors: [示例创投]}
metrics:
  - {year: 2023, revenue: 21000000, customers: 38, employees: 80}
  - {year: 2024, revenue: 52000000, customers: 95, employees: 130}
risks:
  - {category: legal, title: 注册证范围受限, likelihood: 3, impact: 4, mitigation: 分病种逐步申报}
drafts: [summary]
"""

ZH_DRAFT = """\
---
section: summary
startup: lingxi
status: draft
model: gpt2
seed: 7
created: "2025-01-02T03:04:05"
---
这是语言模型起草的摘要，尚未经过人工审核。
"""

_PARA = "县域医院的影像科普遍面临医生短缺与报告积压。本文以虚构企业灵犀医疗为例，说明多模态大模型如何进入这一市场，并讨论订阅与按例计费的组合。" * 3


def _zh_report() -> str:
    sections = []
    for i in range(1, 7):
        sections.append(f"## {i}. 第{i}章 市场分析\n\n{_PARA}\n\n### {i}.1 细分市场\n\n{_PARA}\n\n{_PARA}\n")
    body = "\n".join(sections)
    return """---
title: 基层医院影像 AI 的商业模式
date: 2025-03-18
authors: [示例分析师]
keywords: [医疗 AI, 商业模式]
abstract: 分析一家虚构企业如何在县域市场获得增长。
startups: [lingxi]
---

## 0. 引言

设医院数为 $N$，年费为 $p$，则订阅收入为 $R_s = N \\cdot p$。每例成本为

$$
C = \\frac{G \\cdot t}{3600} + c_0
$$

```mermaid
flowchart LR
    A[影像设备] --> B(院内推理服务器)
    B --> C{医生审核}
```

| 情景 | GPU 成本 | 每例成本 |
|---|---|---|
""" + "".join(f"| 情景{i} | {i * 3} | 0.{i} |\n" for i in range(1, 60)) + f"""
```python
def cost_per_case(gpu_hour: float, seconds: float) -> float:
    return gpu_hour * seconds / 3600  # {"很长的注释" * 40}
```

{body}
"""


EN_REPORT = """\
---
title: Credit risk for small firms
date: 2025-04-01
authors: [Ann Analyst]
keywords: [credit, SME]
lang: en
---

## Intro

A short English report. It links to [the other report](../zh/index.html) and [the web](https://example.com/).

## Method

Text about the method.
"""


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One cache folder for the session: font subsets and diagrams are cut once."""
    return tmp_path_factory.mktemp("sitegen-cache")


@pytest.fixture(scope="module")
def zh_site(tmp_path_factory, shared_cache):
    """A small Chinese site built with `build --pdf` once for the module's read-back tests."""
    root = tmp_path_factory.mktemp("zh-site")
    write_files(root, {
        "sitegen.yaml": ZH_CONFIG.format(cache=shared_cache),
        "content/startups/lingxi.yaml": ZH_PROFILE,
        "content/drafts/lingxi/summary.md": ZH_DRAFT,
        "content/reports/zh.md": _zh_report(),
        "content/reports/en.md": EN_REPORT,
    })
    result = build(root, BuildOptions(pdf=True))
    return root, result


def _reader(root: Path, rel: str) -> PdfReader:
    return PdfReader(root / "output" / rel)


def _outline(reader: PdfReader) -> list[tuple[str, int, int]]:
    """(title, page number 1-based, depth) for every bookmark."""
    out: list[tuple[str, int, int]] = []

    def walk(items, depth):
        for item in items:
            if isinstance(item, list):
                walk(item, depth + 1)
            else:
                out.append((item.title.strip(), reader.get_destination_page_number(item) + 1, depth))

    walk(reader.outline, 0)
    return out


def _font_names(reader: PdfReader) -> set[str]:
    names = set()
    for page in reader.pages:
        fonts = page.get("/Resources", {}).get("/Font", {})
        for f in fonts.values():
            names.add(str(f.get_object().get("/BaseFont")))
    return names


def _all_stream_bytes(path: Path) -> bytes:
    """Every object's decompressed stream, to grep a PDF for bytes it must not contain."""
    reader = PdfReader(path)
    raw = path.read_bytes()
    chunks = [raw]
    for num in {int(m) for m in re.findall(rb"(\d+) 0 obj", raw)}:
        try:
            obj = reader.get_object(IndirectObject(num, 0, reader))
        except Exception:
            continue
        if isinstance(obj, StreamObject):
            try:
                chunks.append(obj.get_data())
            except Exception:
                pass
    return b"\n".join(chunks)


# --- the sample site ------------------------------------------------------------------------------


def test_build_pdf_writes_every_report_profile_and_book(zh_site):
    root, result = zh_site
    out = root / "output"
    for rel in ("pdf/reports/zh.pdf", "pdf/reports/en.pdf", "pdf/startups/lingxi.pdf", "pdf/book.pdf"):
        reader = PdfReader(out / rel)
        assert len(reader.pages) > 1, rel
        assert reader.outline, f"{rel} has no outline"
    # Pages link to their PDFs.
    assert 'href="../../pdf/reports/zh.pdf"' in (out / "reports/zh/index.html").read_text(encoding="utf-8")
    assert 'href="../../pdf/startups/lingxi.pdf"' in (out / "startups/lingxi/index.html").read_text(encoding="utf-8")
    assert not [d for d in result.diagnostics.items if d.code == "pdf"], [d.format() for d in result.diagnostics.items]


def test_chinese_text_is_extractable_with_an_embedded_cjk_font(zh_site):
    root, _ = zh_site
    reader = _reader(root, "pdf/reports/zh.pdf")
    text = "".join(p.extract_text() for p in reader.pages)
    assert "县域医院的影像科普遍面临医生短缺与报告积压" in text
    names = _font_names(reader)
    assert any("Sitegen-CJK-Sans" in n for n in names), names
    out = subprocess.run(["pdffonts", str(root / "output/pdf/reports/zh.pdf")], capture_output=True, text=True, check=True).stdout
    cjk = [line for line in out.splitlines() if "Sitegen-CJK-Sans" in line]
    assert cjk and all(" yes yes yes " in line for line in cjk), out  # embedded, subset, with ToUnicode


def test_diagram_and_formula_are_vector(zh_site):
    root, _ = zh_site
    reader = _reader(root, "pdf/reports/zh.pdf")
    assert all(not page.images for page in reader.pages), "a raster image in the PDF"
    text = "".join(p.extract_text() for p in reader.pages)
    assert "院内推理服务器" in text  # the diagram's label, drawn as text in vector SVG
    assert "frac" in text  # the formula's hidden TeX source travels with its vector glyphs
    xobjects = [x.get_object() for page in reader.pages for x in (page["/Resources"].get("/XObject") or {}).values()]
    assert xobjects and {x["/Subtype"] for x in xobjects} == {"/Form"}  # SVGs become form XObjects, no /Image
    paths = b"".join([x.get_data() for x in xobjects] + [page.get_contents().get_data() for page in reader.pages])
    assert paths.count(b" c\n") > 50  # Bézier curves: glyph outlines of the formula, the diagram's shapes


def test_contents_page_numbers_match_where_headings_land(zh_site):
    root, _ = zh_site
    reader = _reader(root, "pdf/reports/zh.pdf")
    toc_text = reader.pages[1].extract_text()
    entries = re.findall(r"^(.+?)\s*\.{3,}\s*(\d+)\s*$", toc_text, re.M)
    assert len(entries) >= 10, toc_text
    outline = {title: page for title, page, _ in _outline(reader)}
    for title, page in entries:
        title = title.strip()
        assert outline.get(title) == int(page), (title, page, outline.get(title))
        assert title in reader.pages[int(page) - 1].extract_text()


def test_running_header_footer_and_metadata(zh_site):
    root, _ = zh_site
    reader = _reader(root, "pdf/reports/zh.pdf")
    n = len(reader.pages)
    third = reader.pages[2].extract_text()
    assert "基层医院影像 AI 的商业模式" in third  # only the running header carries the title after the cover
    assert f"第 3 页，共 {n} 页" in third
    cover = reader.pages[0].extract_text()
    for bit in ("示例分析师", "医疗 AI", "分析一家虚构企业如何在县域市场获得增长", "2025年3月18日"):
        assert bit in cover
    meta = reader.metadata
    assert meta.title == "基层医院影像 AI 的商业模式"
    assert meta.author == "示例分析师"
    assert "医疗 AI" in meta["/Keywords"]
    assert reader.trailer["/Root"]["/Lang"] == "zh-CN"


def test_table_header_repeats_and_long_code_wraps(zh_site):
    root, _ = zh_site
    reader = _reader(root, "pdf/reports/zh.pdf")
    spanning = [t for t in (p.extract_text() for p in reader.pages) if re.search(r"情景\d+", t)]
    assert len(spanning) >= 2 and all("GPU 成本" in t for t in spanning), spanning
    text = "".join(p.extract_text() for p in reader.pages)
    assert re.sub(r"\s", "", text).count("很长的注释") == 40
    assert len([line for line in text.splitlines() if "很长" in line or "注释" in line]) >= 3  # wrapped, not cut off


def test_unreviewed_draft_is_badged_in_the_profile_pdf(zh_site):
    root, _ = zh_site
    text = "".join(p.extract_text() for p in _reader(root, "pdf/startups/lingxi.pdf").pages)
    assert "这是语言模型起草的摘要" in text
    assert "由模型起草，未经审核" in text


def test_book_has_chapters_and_appendix(zh_site):
    root, _ = zh_site
    reader = _reader(root, "pdf/book.pdf")
    titles = [t for t, _, _ in _outline(reader)]
    assert "基层医院影像 AI 的商业模式" in titles and "Credit risk for small firms" in titles and "灵犀医疗" in titles
    text = "".join(p.extract_text() for p in reader.pages)
    assert "这是语言模型起草的摘要" in text and "县域医院的影像科" in text
    # A link between two reports stays inside the book.
    links = [a["/A"] for page in reader.pages for a in (x.get_object() for x in page.get("/Annots", [])) if "/A" in a]
    assert not any("zh/index.html" in str(a.get("/URI", "")) for a in links)


def test_second_pdf_run_renders_nothing(zh_site, cli):
    root, _ = zh_site
    before = {p: p.stat().st_mtime_ns for p in (root / "output/pdf").rglob("*.pdf")}
    run = run_pdf_command(root, PdfOptions())
    assert run.stats.rendered == 0 and run.stats.cached == 4
    assert run.written == [] and len(run.unchanged) == 4
    assert before == {p: p.stat().st_mtime_ns for p in (root / "output/pdf").rglob("*.pdf")}


def test_pdf_command_selects_slugs_and_out_dir(zh_site, cli, tmp_path):
    root, _ = zh_site
    res = cli("-C", str(root), "pdf", "lingxi", "--out", str(tmp_path / "pdfs"))
    assert res.exit_code == 0, res.output
    assert sorted(p.relative_to(tmp_path / "pdfs").as_posix() for p in (tmp_path / "pdfs").rglob("*.pdf")) == ["startups/lingxi.pdf"]
    assert "0 rendered, 1 cached" in res.stderr  # same fonts as the full build, so the same cache key
    res = cli("-C", str(root), "pdf", "nosuch")
    assert res.exit_code == 2 and "unknown report or start-up: nosuch" in res.stderr


def test_cli_build_pdf_subprocess_does_not_reimport_main(zh_site, tmp_path):
    """Workers are fresh interpreters: a caller's script without a __main__ guard is not re-run."""
    root, _ = zh_site
    script = tmp_path / "script.py"
    script.write_text(
        "from pathlib import Path\nfrom generator.commands.pdf import run_pdf_command, PdfOptions\n"
        f"run = run_pdf_command(Path({str(root)!r}), PdfOptions(slugs=('en',), out=Path({str(tmp_path / 'o')!r})))\n"
        "print('RUNS', run.stats.rendered + run.stats.cached)\n"
    )
    (root / "content/reports/en.md").write_text(EN_REPORT.replace("Text about the method.", "Changed text."), encoding="utf-8")
    try:
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    finally:
        (root / "content/reports/en.md").write_text(EN_REPORT, encoding="utf-8")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("RUNS") == 1 and "RUNS 1" in done.stdout
    assert "Changed text." in "".join(p.extract_text() for p in PdfReader(tmp_path / "o/reports/en.pdf").pages)


def test_same_input_same_bytes(zh_site, shared_cache, tmp_path):
    root, _ = zh_site
    shutil.rmtree(shared_cache / "pdf")
    run = run_pdf_command(root, PdfOptions(slugs=("zh",), out=tmp_path / "again"))
    assert run.stats.rendered == 1
    assert (tmp_path / "again/reports/zh.pdf").read_bytes() == (root / "output/pdf/reports/zh.pdf").read_bytes()


def test_print_templates_and_page_setup_are_overridable(make_project, shared_cache):
    root = make_project({
        "sitegen.yaml": ASCII_CONFIG.format(cache=shared_cache) + "  page_size: Letter\n  margin: 1in\n",
        "templates/print/report.html": (
            '<!DOCTYPE html><html lang="en"><head><title>{{ report.meta.title }}</title></head>'
            "<body><h1>OWN-TEMPLATE {{ report.meta.title }}</h1>{{ body(report.body, report.path, report.url) }}</body></html>"
        ),
    })
    build(root, BuildOptions(pdf=True))
    reader = PdfReader(root / "output/pdf/reports/first.pdf")
    assert "OWN-TEMPLATE First report" in reader.pages[0].extract_text()
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (612, 792)
    assert "Acme AI" in PdfReader(root / "output/pdf/startups/acme.pdf").pages[0].extract_text()  # theme template still used


def test_pdf_command_into_fresh_output_keeps_it_buildable(make_project, shared_cache):
    root = make_project({"sitegen.yaml": ASCII_CONFIG.format(cache=shared_cache)})
    run = run_pdf_command(root, PdfOptions())
    assert sorted(run.written) == ["reports/first.pdf", "startups/acme.pdf"]
    build(root)  # the output folder is recognisably sitegen's (manifest), so a build may replace it
    assert (root / "output/index.html").is_file()


def test_weasyprint_pinned_at_70_or_later():
    """GHSA-jf6q-chmf-3h3v: before 70, stylesheets= and xmp_metadata bypassed the url_fetcher."""
    major = int(version("weasyprint").split(".")[0])
    assert major >= 70
    assert re.search(r'"weasyprint>=7\d', (REPO / "pyproject.toml").read_text())


def test_html_build_does_not_import_weasyprint(make_project):
    root = make_project()
    code = (
        "import sys; from pathlib import Path; import generator.cli, generator.writers.pdf, generator.services.fonts; "
        "print('fontTools' in sys.modules); from generator.build import build, BuildOptions; "
        f"build(Path({str(root)!r}), BuildOptions()); print('weasyprint' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["False", "False"], done.stderr


# --- fonts -----------------------------------------------------------------------------------------


def test_missing_cjk_font_is_a_warning_with_the_fix(tmp_path, monkeypatch):
    plan = plan_fonts(["只有中文"], fonts={})
    assert plan.faces == [] and len(plan.warnings) == 1
    assert "no CJK font found" in plan.warnings[0] and INSTALL_HINT in plan.warnings[0]
    assert plan_fonts(["only English"], fonts={}).warnings == []
    # The real lookup, with fontconfig pointed at an empty configuration.
    conf = tmp_path / "fonts.conf"
    conf.write_text('<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig><cachedir>' + str(tmp_path) + "</cachedir></fontconfig>")
    monkeypatch.setenv("FONTCONFIG_FILE", str(conf))
    assert find_cjk_fonts() == {}


def test_cjk_fonts_found_through_fontconfig():
    fonts = find_cjk_fonts()
    assert "sans" in fonts and Path(fonts["sans"].path).is_file()


# --- SitegenFetcher unit tests (the validator bypassed) -------------------------------------------------


@pytest.fixture
def roots(tmp_path) -> tuple[Path, Path]:
    content = tmp_path / "project" / "content"
    outside = tmp_path / "outside"
    content.mkdir(parents=True)
    outside.mkdir()
    return content, outside


def _fetcher(content: Path, **kw):
    from generator.services.fetcher import SitegenFetcher

    return SitegenFetcher(FetchPolicy((str(content.resolve()),), **kw))


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_fetcher_serves_regular_files_inside_the_roots(roots):
    content, _ = roots
    (content / "a.css").write_text("p{}")
    f = _fetcher(content)
    res = f.fetch((content / "a.css").as_uri())
    assert res.read() == b"p{}" and res.content_type == "text/css"
    assert f.requested == [(content / "a.css").as_uri()] and f.denied == []


def test_fetcher_refuses_paths_outside_and_traversal(roots):
    content, outside = roots
    (outside / "secret.txt").write_text("MARKER")
    f = _fetcher(content)
    for url in ((outside / "secret.txt").as_uri(), content.as_uri() + "/../../outside/secret.txt", "file:///etc/passwd"):
        with pytest.raises(FetchDenied, match="outside the allowed folders"):
            f.fetch(url)
    with pytest.raises(FetchDenied, match="file: URL with a host"):
        f.fetch("file://evil.example/etc/passwd")
    assert len(f.denied) == 4


def test_fetcher_refuses_symlink_escape(roots):
    content, outside = roots
    (outside / "secret.txt").write_text("MARKER")
    (content / "img").mkdir()
    (content / "img/logo.png").symlink_to(outside / "secret.txt")
    with pytest.raises(FetchDenied, match="resolves outside the allowed folders"):
        _fetcher(content).fetch((content / "img/logo.png").as_uri())


@pytest.mark.timeout(20)
def test_fetcher_refuses_devices_and_fifos_without_reading(roots):
    content, _ = roots
    (content / "z.png").symlink_to("/dev/zero")
    os.mkfifo(content / "f.png")
    f = _fetcher(content)
    for name in ("z.png", "f.png"):
        with pytest.raises(FetchDenied, match="not a regular file"):
            f.fetch((content / name).as_uri())


def test_fetcher_refuses_bombs_large_data_and_other_schemes(roots):
    content, _ = roots
    (content / "bomb.png").write_bytes(_png(20000, 20000))
    f = _fetcher(content)
    with pytest.raises(FetchDenied, match=r"image too large \(400 Mpx > limit of 50 Mpx"):
        f.fetch((content / "bomb.png").as_uri())
    import base64

    with pytest.raises(FetchDenied, match=r"image too large \(400 Mpx"):
        f.fetch("data:image/png;base64," + base64.b64encode(_png(20000, 20000)).decode())
    with pytest.raises(FetchDenied, match="data: URL larger than"):
        f.fetch("data:text/plain;base64," + "A" * (4 * 1024 * 1024))
    for url, why in (("ftp://example.org/x", "disallowed URL scheme 'ftp:'"), ("http://169.254.169.254/latest/meta-data/", "network fetch disabled")):
        with pytest.raises(FetchDenied, match=re.escape(why)):
            f.fetch(url)
    small = _fetcher(content).fetch("data:image/png;base64," + base64.b64encode(_png(10, 10)).decode())
    assert small.read().startswith(b"\x89PNG")


# --- WP-03: network, SSRF and redirects against a real local server ----------------------------------


@pytest.fixture
def http_server():
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            hits.append(self.path)
            if self.path.startswith("/redirect"):
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.1:{self.server.server_address[1]}/secret")
                self.end_headers()
            elif self.path == "/ok.css":
                body = b"p { color: blue }"
                self.send_response(200)
                self.send_header("Content-Type", "text/css")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"SECRET-METADATA")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], hits
    server.shutdown()
    server.server_close()


def test_network_is_off_by_default_no_request_is_made(roots, http_server):
    content, _ = roots
    port, hits = http_server
    with pytest.raises(FetchDenied, match="network fetch disabled: 127.0.0.1"):
        _fetcher(content).fetch(f"http://127.0.0.1:{port}/secret")
    assert hits == []


def test_allowed_host_redirect_is_never_followed(roots, http_server):
    content, _ = roots
    port, hits = http_server
    f = _fetcher(content, allow_hosts=("127.0.0.1",))
    assert f.fetch(f"http://127.0.0.1:{port}/ok.css").read() == b"p { color: blue }"
    with pytest.raises(FetchDenied, match="redirect not followed"):
        f.fetch(f"http://127.0.0.1:{port}/redirect")
    assert hits == ["/ok.css", "/redirect"]  # the redirect target was never requested


def test_render_with_redirecting_image_fails_and_server_sees_no_follow(roots, http_server):
    content, _ = roots
    port, hits = http_server
    policy = FetchPolicy((str(content.resolve()),), allow_hosts=("127.0.0.1",))
    out = render_pdf(RenderJob("x", f'<p>a</p><img src="http://127.0.0.1:{port}/redirect">', content.as_uri() + "/", [], policy))
    assert out.pdf is None and any("redirect not followed" in why for _, why in out.denied)
    assert hits == ["/redirect"]


def test_markdown_image_schemes_are_errors_at_the_line(make_project, shared_cache):
    root = make_project({"content/reports/page.md": "---\ntitle: P\n---\n\n![a](file:///etc/passwd)\n\n![b](http://169.254.169.254/latest/meta-data/)\n"})
    with pytest.raises(ContentError) as err:
        build(root, BuildOptions(pdf=True))
    msgs = [d.format() for d in err.value.diagnostics if d.level == "error"]
    assert any(m.startswith("content/reports/page.md:5") and "disallowed URL scheme 'file:'" in m for m in msgs), msgs
    assert any(m.startswith("content/reports/page.md:7") and "network fetch disabled" in m for m in msgs), msgs


# --- WP-01, WP-02, WP-04, WP-05, WP-06 through a build ----------------------------------------------------


ASCII_CONFIG = "title: T\nlanguage: en\ncache_dir: {cache}\npdf:\n  subset_fonts: false\n  book: false\n"


def test_wp01_raw_html_attachment_never_reaches_html_or_pdf(make_project, shared_cache, tmp_path):
    marker = "SITEGEN-SECRET-7c1f0a"
    root = make_project({
        "sitegen.yaml": ASCII_CONFIG.format(cache=shared_cache),
        "content/reports/leak.md": (
            "---\ntitle: Leak\n---\n\n"
            '<link rel="attachment" href="../../secret.txt">\n\n'
            'Text <a rel="attachment" href="file:///etc/hostname">x</a> more.\n'
        ),
    })
    (root / "secret.txt").write_text(marker)
    result = build(root, BuildOptions(pdf=True))
    warns = [d.format() for d in result.diagnostics.warnings]
    assert any(w.startswith("content/reports/leak.md:5") and "raw HTML is disabled" in w for w in warns), warns
    assert any(w.startswith("content/reports/leak.md:7") and "raw HTML is disabled" in w for w in warns), warns
    html = (root / "output/reports/leak/index.html").read_text(encoding="utf-8")
    assert "&lt;link rel=&#34;attachment&#34;" in html or "&lt;link rel=&quot;attachment&quot;" in html
    pdf = root / "output/pdf/reports/leak.pdf"
    data = _all_stream_bytes(pdf)
    assert marker.encode() not in data and b"/EmbeddedFiles" not in data and b"/FileAttachment" not in data
    assert marker not in html
    assert "attachment" in "".join(p.extract_text() for p in PdfReader(pdf).pages)  # shown as text, not dropped


def _page_error(root: Path, text: str) -> list[str]:
    (root / "content/reports/page.md").write_text("---\ntitle: P\n---\n\n" + text, encoding="utf-8")
    with pytest.raises(ContentError) as err:
        build(root, BuildOptions(pdf=True))
    return [d.format() for d in err.value.diagnostics if d.level == "error"]


def test_wp02_path_traversal_is_an_error_at_the_line(make_project, shared_cache):
    root = make_project({"sitegen.yaml": ASCII_CONFIG.format(cache=shared_cache)})
    build(root)
    before = tree_hash(root / "output")
    msgs = _page_error(root, "![logo](../../../../etc/passwd)\n\n![x](/etc/passwd)\n")
    assert "content/reports/page.md:5: error[image]: image path escapes content root: ../../../../etc/passwd" in msgs
    assert any(m.startswith("content/reports/page.md:7: error[image]: image path escapes content root") for m in msgs), msgs
    assert tree_hash(root / "output") == before


def test_wp02_html_build_checks_images_too(make_project):
    root = make_project({"content/reports/page.md": "---\ntitle: P\n---\n\n![logo](../../../../etc/passwd)\n"})
    with pytest.raises(ContentError) as err:
        build(root)
    assert "content/reports/page.md:5: error[image]: image path escapes content root: ../../../../etc/passwd" in [d.format() for d in err.value.diagnostics]


def test_wp04_symlink_escape_is_an_error(make_project, shared_cache, tmp_path):
    root = make_project({"sitegen.yaml": ASCII_CONFIG.format(cache=shared_cache)})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("MARKER")
    (root / "content/reports/img").mkdir(parents=True)
    (root / "content/reports/img/logo.png").symlink_to(outside / "secret.txt")
    msgs = _page_error(root, "Intro.\n\n![l](img/logo.png)\n")
    assert "content/reports/page.md:7: error[image]: img/logo.png resolves outside content root" in msgs, msgs


@pytest.mark.timeout(60)
def test_wp05_device_and_fifo_are_errors(make_project, shared_cache):
    root = make_project({"sitegen.yaml": ASCII_CONFIG.format(cache=shared_cache)})
    (root / "content/reports/img").mkdir(parents=True)
    (root / "content/reports/img/z.png").symlink_to("/dev/zero")
    os.mkfifo(root / "content/reports/img/f.png")
    msgs = _page_error(root, "![z](img/z.png)\n\n![f](img/f.png)\n")
    assert "content/reports/page.md:5: error[image]: not a regular file: img/z.png" in msgs, msgs
    assert "content/reports/page.md:7: error[image]: not a regular file: img/f.png" in msgs, msgs


def test_wp06_decompression_bomb_is_an_error_never_a_missing_image(make_project, shared_cache, roots):
    root = make_project({"sitegen.yaml": ASCII_CONFIG.format(cache=shared_cache), "content/reports/bomb.png": _png(20000, 20000)})
    assert len((root / "content/reports/bomb.png").read_bytes()) < 100
    msgs = _page_error(root, "![b](bomb.png)\n")
    assert any(m.startswith("content/reports/page.md:5: error[image]: image too large (400 Mpx > limit of 50 Mpx") for m in msgs), msgs
    # The fetcher catches it too when the validator is bypassed; the render fails instead of dropping it.
    content, _ = roots
    (content / "bomb.png").write_bytes(_png(20000, 20000))
    out = render_pdf(RenderJob("x", '<p>x</p><img src="bomb.png">', content.as_uri() + "/", [], FetchPolicy((str(content.resolve()),))))
    assert out.pdf is None and any("image too large (400 Mpx" in why for _, why in out.denied)


def test_good_image_is_embedded(make_project, shared_cache):
    from PIL import Image

    root = make_project({"sitegen.yaml": ASCII_CONFIG.format(cache=shared_cache)})
    (root / "content/assets").mkdir(parents=True)
    Image.new("RGB", (40, 30), (200, 0, 0)).save(root / "content/assets/red.png")
    (root / "content/reports/page.md").write_text("---\ntitle: P\n---\n\n## A\n\n![red](../assets/red.png)\n", encoding="utf-8")
    build(root, BuildOptions(pdf=True))
    reader = PdfReader(root / "output/pdf/reports/page.pdf")
    assert len({img.data for p in reader.pages for img in p.images}) == 1  # resources are shared between pages


# --- WP-07: CSS loop and the render budget ------------------------------------------------------------


def test_wp07_css_import_loop_is_an_error(make_project, shared_cache):
    root = make_project({
        "sitegen.yaml": ASCII_CONFIG.format(cache=shared_cache),
        "templates/print/print.css": '@import "self.css";\np { color: black }\n',
        "templates/print/self.css": '@import "self.css";\n',
    })
    before = tree_hash(root / "output")
    with pytest.raises(ContentError) as err:
        build(root, BuildOptions(pdf=True))
    msgs = [d.format() for d in err.value.diagnostics if d.level == "error"]
    assert any(m.startswith("content/reports/first.md: error[pdf]") and "RecursionError" in m for m in msgs), msgs
    assert tree_hash(root / "output") == before


@pytest.mark.timeout(120)
def test_wp07_worker_over_time_is_killed(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    pidfile = tmp_path / "pid"
    policy = FetchPolicy((str(tmp_path),))
    with WorkerPool(1, 2048, 1.5, target="pdf_doubles:sleepy_render") as pool:
        results = pool.run([RenderJob("doc", str(pidfile), tmp_path.as_uri() + "/", [], policy)])
    assert results["doc"].pdf is None
    assert results["doc"].errors == ["PDF render exceeded 1.5 s (pdf.timeout); the worker was stopped"]
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.timeout(120)
def test_worker_memory_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    with WorkerPool(1, 500, 60, target="pdf_doubles:greedy_render") as pool:
        results = pool.run([RenderJob("doc", "", tmp_path.as_uri() + "/", [], FetchPolicy((str(tmp_path),)))])
    assert results["doc"].errors == ["PDF render exceeded the memory limit of 500 MB"]


def test_wp07_build_over_time_limit_keeps_previous_output(make_project, shared_cache):
    root = make_project({"sitegen.yaml": ASCII_CONFIG.format(cache=shared_cache)})
    build(root, BuildOptions(pdf=True))
    assert (root / "output/pdf/reports/first.pdf").is_file()
    before = tree_hash(root / "output")
    (root / "sitegen.yaml").write_text(ASCII_CONFIG.format(cache=shared_cache) + "  timeout: 0.001\n")
    (root / "content/reports/first.md").write_text((root / "content/reports/first.md").read_text() + "\nNew paragraph.\n")
    with pytest.raises(ContentError) as err:
        build(root, BuildOptions(pdf=True))
    msgs = [d.format() for d in err.value.diagnostics]
    assert "content/reports/first.md: error[pdf]: pdf/reports/first.pdf: PDF render exceeded 0.001 s (pdf.timeout); the worker was stopped" in msgs
    assert tree_hash(root / "output") == before


# --- WP-08: theme stylesheets go through the fetcher --------------------------------------------------------


WP08_CSS = '@import url("http://example.invalid/x.css");\nbody { background: url("../../../secret.png") }\n'


def test_wp08_theme_stylesheet_fetches_use_sitegen_fetcher(tmp_path):
    content = tmp_path / "content"
    theme = tmp_path / "templates" / "print"
    content.mkdir()
    theme.mkdir(parents=True)
    (tmp_path.parent / "secret.png").write_bytes(_png(2, 2))
    policy = FetchPolicy((str(content.resolve()), str(theme.resolve())))
    out = render_pdf(RenderJob("x", "<p>x</p>", content.as_uri() + "/", [(WP08_CSS, theme.as_uri() + "/")], policy))
    assert "http://example.invalid/x.css" in out.requested
    assert any(u.endswith("/secret.png") for u in out.requested)
    assert {u.split("/")[-1] for u, _ in out.denied} == {"x.css", "secret.png"}
    assert out.pdf is None


def test_wp08_build_with_hostile_print_css_fails_and_keeps_output(make_project, shared_cache):
    root = make_project({"sitegen.yaml": ASCII_CONFIG.format(cache=shared_cache)})
    build(root)
    before = tree_hash(root / "output")
    write_files(root, {"templates/print/print.css": WP08_CSS})
    with pytest.raises(ContentError) as err:
        build(root, BuildOptions(pdf=True))
    msgs = [d.format() for d in err.value.diagnostics if d.level == "error"]
    assert any("PDF fetch refused: network fetch disabled: example.invalid" in m for m in msgs), msgs
    assert any("PDF fetch refused: path outside the allowed folders" in m and "secret.png" in m for m in msgs), msgs
    assert tree_hash(root / "output") == before


def test_presentational_hints_stay_off(tmp_path):
    assert WRITE_OPTIONS["presentational_hints"] is False
    out = render_pdf(RenderJob("x", '<body bgcolor="#ff0000"><p>hint</p></body>', tmp_path.as_uri() + "/", [], FetchPolicy((str(tmp_path),))))
    (tmp_path / "x.pdf").write_bytes(out.pdf)
    subprocess.run(["pdftoppm", "-r", "10", "-png", "-f", "1", "-l", "1", str(tmp_path / "x.pdf"), str(tmp_path / "pg")], check=True)
    from PIL import Image

    png = next(tmp_path.glob("pg*.png"))
    assert Image.open(png).convert("RGB").getpixel((2, 2)) == (255, 255, 255)


def test_weasyprint_warnings_become_sitegen_warnings_and_strict_errors(make_project, shared_cache):
    root = make_project({
        "sitegen.yaml": ASCII_CONFIG.format(cache=shared_cache),
        "templates/print/print.css": "p { colour: red; }\n",
    })
    result = build(root, BuildOptions(pdf=True))
    warns = [d.format() for d in result.diagnostics.warnings if d.code == "pdf"]
    assert any(w.startswith("content/reports/first.md: warning[pdf]: pdf/reports/first.pdf: WeasyPrint: Ignored `colour: red`") for w in warns), warns
    before = tree_hash(root / "output")
    with pytest.raises(ContentError):
        build(root, BuildOptions(pdf=True, strict=True))
    assert tree_hash(root / "output") == before


def test_content_image_check_unit(tmp_path):
    project = tmp_path
    (project / "content/reports").mkdir(parents=True)
    (project / "content/reports/ok.png").write_bytes(_png(4, 4))
    assert check_content_image(project, "content/reports/x.md", "ok.png", 1000) is None
    missing = check_content_image(project, "content/reports/x.md", "nope.png", 1000)
    assert missing.level == "warning" and missing.message == "image not found: nope.png"
    big = check_content_image(project, "content/reports/x.md", "ok.png", 10)
    assert big.level == "error" and big.message.startswith("image too large (0 Mpx > limit")



# --- WP-09: secrets through print templates ----------------------------------------------------------------


def test_wp09_print_template_cannot_embed_hidden_or_secret_files(make_project, shared_cache):
    root = make_project({"sitegen.yaml": ASCII_CONFIG.format(cache=shared_cache)})
    build(root)
    before = tree_hash(root / "output")
    theme = REPO / "templates" / "print"
    report_html = (theme / "report.html").read_text(encoding="utf-8").replace(
        '<body class="print-report">', '<body class="print-report">\n<link rel="attachment" href=".env"><img src="id_rsa">', 1)
    assert '<link rel="attachment" href=".env">' in report_html
    write_files(root, {
        "content/.env": "TOKEN=SITEGEN-SECRET-ENV\n",
        "content/id_rsa": "SITEGEN-SECRET-KEY\n",
        "templates/print/report.html": report_html,
        "templates/print/print.css": (theme / "print.css").read_text(encoding="utf-8") + "\nbody { background: url(.git/config) }\n",
        "templates/print/.git/config": "[remote] SITEGEN-SECRET-GIT\n",
    })
    with pytest.raises(ContentError) as err:
        build(root, BuildOptions(pdf=True))
    msgs = [d.format() for d in err.value.diagnostics if d.level == "error"]
    real = root.resolve()
    for path in (real / "content/.env", real / "content/id_rsa", real / "templates/print/.git/config"):
        assert (f"content/reports/first.md: error[pdf]: PDF fetch refused: hidden or secret file refused: {path}"
                " (asked for by templates/print/report.html or its stylesheet)") in msgs, msgs
    assert tree_hash(root / "output") == before
    assert not any(b"SITEGEN-SECRET" in p.read_bytes() for p in (root / "output").rglob("*") if p.is_file())


def test_wp09_fetcher_refuses_hidden_and_secret_names_inside_allowed_roots(tmp_path):
    content = tmp_path / "content"
    (content / "sub").mkdir(parents=True)
    (content / ".env").write_text("TOKEN=1")
    (content / "sub/id_ed25519").write_text("KEY")
    (content / "logo.txt").symlink_to(content / ".env")  # a public name for a hidden file
    (content / "ok.txt").write_text("fine")
    roots = (str(content.resolve()),)
    for rel in (".env", "sub/id_ed25519", "logo.txt"):
        with pytest.raises(FetchDenied) as denied:
            resolve_allowed(content / rel, roots, shown=rel)
        assert str(denied.value) == f"hidden or secret file refused: {rel}"
    assert resolve_allowed(content / "ok.txt", roots) == (content / "ok.txt").resolve()
