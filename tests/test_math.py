"""Build-time math: MathML for the site, SVG for the PDF, limits, escaping, cache (issue 4, MD-06)."""

from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from generator.config import MathConfig
from generator.diagnostics import Diagnostics, Location
from generator.models import Job
from generator.services import math as M
from generator.services.math import resolve_formulas

SHARED = Path(__file__).resolve().parents[2] / "shared"
CORPUS = SHARED / "corpora" / "math" / "formulas.yaml"


def jobs_of(*items: tuple[str, str]) -> list[Job]:
    """Jobs from (kind, source) pairs; keys are their index."""
    return [Job(kind, src, Location("page.md", i + 1), str(i)) for i, (kind, src) in enumerate(items)]


def inline(src: str) -> tuple[str, str]:
    return ("math-inline", src)


def display(src: str) -> tuple[str, str]:
    return ("math-display", src)


class Elements(HTMLParser):
    """Every start tag with its attributes, as an HTML parser (a browser) sees them."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def names(self) -> set[str]:
        return {t for t, _ in self.tags}

    def attr_names(self) -> set[str]:
        return {a for _, attrs in self.tags for a in attrs}


def assert_no_injection(markup: str) -> None:
    """No element or event handler from the input made it into the markup."""
    parsed = Elements(markup)
    assert not parsed.names() & {"img", "script", "iframe", "object", "embed", "a", "style", "link", "meta"}
    assert not [a for a in parsed.attr_names() if a.startswith("on")]
    assert not [v for _, attrs in parsed.tags for k, v in attrs.items() if k in ("href", "src", "xlink:href")]


def drawn(markup: str) -> str:
    """The markup without the places that keep the TeX source (annotation, alttext, data-tex, title)."""
    markup = re.sub(r"<annotation.*?</annotation>|<title>.*?</title>|<text [^>]*>.*?</text>", "", markup, flags=re.S)
    return re.sub(r'(alttext|data-tex|aria-label)="[^"]*"', "", markup)


def svg_depth(print_html: str) -> float:
    m = re.search(r'vertical-align:(-?[0-9.]+)em', print_html)
    assert m, print_html[:300]
    return float(m.group(1))


# --- the corpus --------------------------------------------------------------------------------


def _corpus() -> list[dict]:
    return yaml.safe_load(CORPUS.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def corpus_results(tmp_path_factory) -> dict[str, tuple[dict, object]]:
    """Every corpus formula through both paths (entries with macros use the mapping they give)."""
    out: dict[str, tuple[dict, object]] = {}
    groups: dict[tuple, list[dict]] = {}
    for e in _corpus():
        groups.setdefault(tuple(sorted((e.get("macros") or {}).items())), []).append(e)
    cache = tmp_path_factory.mktemp("mathcache")
    for macros, entries in groups.items():
        config = MathConfig(macros=dict(macros))
        jobs = [Job("math-display" if e["display"] else "math-inline", e["tex"], Location("c.md", 1), e["id"]) for e in entries]
        res = resolve_formulas(jobs, config, cache, 2, True)
        out.update({e["id"]: (e, res[e["id"]]) for e in entries})
    return out


@pytest.mark.slow
def test_corpus_renders_at_least_97_percent_in_html_and_pdf(corpus_results):
    total = len(corpus_results)
    assert total == 277
    html_ok = [i for i, (_, r) in corpus_results.items() if not r.errors and "math-error" not in r.html]
    pdf_ok = [i for i, (_, r) in corpus_results.items() if not r.errors and r.print_html and "<svg" in r.print_html]
    assert len(html_ok) / total >= 0.97, sorted(set(corpus_results) - set(html_ok))
    assert len(pdf_ok) / total >= 0.97, sorted(set(corpus_results) - set(pdf_ok))


@pytest.mark.slow
def test_every_seed_formula_renders(corpus_results):
    seeds = {i: r for i, (e, r) in corpus_results.items() if i.startswith("seed-")}
    assert len(seeds) == 31
    for ident, r in seeds.items():
        assert r.errors == [], ident
        assert r.warnings == [], ident
        assert "<math" in r.html and "<svg" in r.print_html, ident


@pytest.mark.slow
def test_known_latex2mathml_invalid_xml_cases_render_cleanly(corpus_results):
    # aligned, alignedat, rcases and an array with | columns: latex2mathml writes broken XML for these.
    for ident in ("ss-004", "ss-005", "ss-006", "sup-030"):
        _entry, r = corpus_results[ident]
        assert r.errors == [], ident
        assert "<mtable" in r.html, ident
        assert ">&<" not in r.html and "<mi>&amp;</mi>" not in r.html, ident


def test_corpus_macros_entry_uses_its_mapping():
    entry = next(e for e in _corpus() if "macros" in e["tags"])
    res = resolve_formulas(jobs_of(inline(entry["tex"])), MathConfig(macros=entry["macros"]), None, 1, False)
    assert res["0"].errors == [] and res["0"].warnings == []
    assert "<msup>" in res["0"].html and "startExp" not in drawn(res["0"].html)


# --- inline and display ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def printed(tmp_path_factory) -> dict:
    """A handful of formulas through both paths at once (one worker start-up for all)."""
    items = jobs_of(
        inline("x^2 + y_i"),  # 0
        display("E = mc^2 \\tag{3}"),  # 1
        inline("\\text{中文}"),  # 2
        inline("\\text{注意力}"),  # 3
        display("\\begin{aligned} a &= b + c \\\\ d &= e \\end{aligned}"),  # 4
        inline("x"),  # 5
        inline("y"),  # 6
        display("\\text{损失函数 } L = -\\sum_i y_i \\log p_i"),  # 7
    )
    return resolve_formulas(items, MathConfig(), tmp_path_factory.mktemp("c"), 2, True)


def test_inline_formula_is_inline_mathml_with_tex_annotation(printed):
    r = printed["0"]
    assert r.errors == [] and r.warnings == []
    assert r.html.startswith('<span class="math math-inline"')
    assert 'display="inline"' in r.html
    assert '<annotation encoding="application/x-tex">x^2 + y_i</annotation>' in r.html
    assert 'alttext="x^2 + y_i"' in r.html
    assert "<msup><mi>x</mi><mn>2</mn></msup>" in r.html


def test_display_formula_is_centred_block_with_its_tag(printed):
    r = printed["1"]
    assert r.errors == []
    assert 'class="math math-display math-tagged"' in r.html
    assert 'display="block"' in r.html
    tag = re.search(r'<span class="math-tag"[^>]*>(.*?)</span></span>$', r.html).group(1)
    assert ">3<" in tag and "(" in tag and ")" in tag
    assert "tag" not in drawn(r.html.split("math-tag")[0])
    # the print variant keeps the same layout with SVG for the formula and for the number
    assert r.print_html.count("<svg") == 2 and "math-tag" in r.print_html


def test_inline_print_svg_has_baseline_shift_from_renderer_depth(printed):
    plain, descender = printed["5"], printed["6"]
    for r in (plain, descender, printed["0"]):
        assert 'role="img"' in r.print_html
        assert "vertical-align:" in r.print_html
        assert re.search(r'width="[0-9.]+em" height="[0-9.]+em"', r.print_html)
    # depth comes from the glyph boxes: y descends below the baseline, x does not
    assert svg_depth(descender.print_html) < svg_depth(plain.print_html) < 0


def test_aligned_renders_as_table_in_both_paths(printed):
    r = printed["4"]
    assert r.errors == []
    assert r.html.count("<mtr>") == 2
    assert 'columnalign="right"' in r.html and 'columnalign="left"' in r.html
    assert "<svg" in r.print_html


def test_chinese_in_text_renders_in_mathml_and_svg(printed):
    zh, zh2 = printed["2"], printed["3"]
    for r in (zh, zh2, printed["7"]):
        assert r.errors == [] and r.warnings == []
    assert "<mtext>中文</mtext>" in zh.html
    assert "损失函数" in printed["7"].html
    # real glyphs from the CJK fallback, not STIX's empty box for both
    paths = [re.findall(r'<path d="([^"]+)"', r.print_html) for r in (zh, zh2)]
    assert paths[0] and paths[1] and paths[0] != paths[1]
    assert len(paths[0][0]) > 200


def test_print_svg_keeps_source_as_accessible_copyable_text(printed):
    r = printed["0"]
    assert 'aria-label="x^2 + y_i"' in r.print_html
    assert "<title>x^2 + y_i</title>" in r.print_html
    assert re.search(r'<text [^>]*fill-opacity="0"[^>]*>x\^2 \+ y_i</text>', r.print_html)


def test_cjk_in_svg_and_copy_text_in_a_real_pdf(printed, tmp_path):
    from weasyprint import HTML

    body = f"<p>前 {printed['2'].print_html} 后 {printed['0'].print_html}</p>{printed['1'].print_html}"
    HTML(string=f"<html><meta charset=utf-8><body>{body}</body></html>").write_pdf(tmp_path / "m.pdf")
    # poppler reads the PDF as a viewer copies from it
    text = subprocess.run(["pdftotext", str(tmp_path / "m.pdf"), "-"], capture_output=True, text=True, check=True).stdout
    assert "\\text{中文}" in text and "x^2 + y_i" in text and "E = mc^2" in text


# --- failures, limits, warnings -----------------------------------------------------------------


def test_broken_formula_gives_error_without_location_and_an_escaped_error_box():
    res = resolve_formulas(jobs_of(inline("\\frac{a}{<b>")), MathConfig(), None, 1, False)
    r = res["0"]
    assert r.errors == ["unbalanced braces: missing }"]
    assert "page.md" not in r.errors[0]
    assert 'class="math math-error"' in r.html
    assert "\\frac{a}{&lt;b&gt;" in r.html
    assert_no_injection(r.html)


def test_latex2mathml_errors_are_reworded():
    res = resolve_formulas(jobs_of(inline("x^"), inline("\\begin{matrix} a"), inline("a & b"), inline("\\binom1")),
                           MathConfig(), None, 1, False)
    assert res["0"].errors == ["^ or _ without an argument"]
    assert res["3"].errors == ["missing argument of a fraction (\\frac, \\binom, \\over)"]
    assert res["1"].errors == ["\\begin{matrix} without matching \\end{matrix}"]
    assert res["2"].errors == ["misplaced alignment character & (use an environment such as aligned)"]


def test_unknown_command_is_a_warning_and_shown_in_red():
    res = resolve_formulas(jobs_of(inline("\\foo x + \\bar{y}")), MathConfig(), None, 1, False)
    r = res["0"]
    assert r.errors == []
    assert r.warnings == ["unknown command \\foo"]
    assert 'mathcolor="#b91c1c">\\foo</mi>' in r.html


def test_macro_bomb_stops_at_expansion_limit():
    res = resolve_formulas(
        jobs_of(display("\\def\\a{\\a\\a}\\a"), inline("\\newcommand{\\b}{x\\b}\\b"), inline("\\def\\c#1{#1#1}\\c{\\c{\\c{\\c{\\c{\\c{\\c{\\c{\\c{\\c{\\c{\\c{\\c{\\c{\\c{\\c{\\c{x}}}}}}}}}}}}}}}}}")),
        MathConfig(max_expansions=1000), None, 1, True,
    )
    for key in ("0", "1", "2"):
        assert res[key].errors == ["math expansion limit"], key
        assert "math-error" in res[key].html and "math-error" in res[key].print_html


def test_macros_from_config_and_from_the_formula_expand():
    config = MathConfig(macros={"\\RR": "\\mathbb{R}", "\\norm": "\\lVert #1 \\rVert"})
    res = resolve_formulas(jobs_of(inline("x \\in \\RR, \\norm{v}"), inline("\\newcommand{\\E}[1]{\\mathbb{E}[#1]} \\E{X}")), config, None, 1, False)
    assert res["0"].errors == [] and "ℝ" in res["0"].html and "RR" not in drawn(res["0"].html)
    assert res["1"].errors == [] and "𝔼" in res["1"].html


def test_time_limit_kills_the_worker_and_the_batch_goes_on(tmp_path):
    slow = "".join("a^{b " for _ in range(13)) + "c" + "}" * 13  # ziamath is exponential in nested rows
    items = jobs_of(inline(slow), inline("z^2"), inline("w_1"))
    res = resolve_formulas(items, MathConfig(timeout=1.0), tmp_path, 1, True)
    assert res["0"].errors == ["math render timed out after 1 s"]
    assert "math-error" in res["0"].print_html
    assert "<math" in res["0"].html  # the site's MathML is not affected
    assert res["1"].errors == [] and "<svg" in res["1"].print_html
    assert res["2"].errors == [] and "<svg" in res["2"].print_html


def test_svg_failure_with_html_svg_falls_back_to_mathml(tmp_path):
    slow = "".join("a^{b " for _ in range(13)) + "c" + "}" * 13
    res = resolve_formulas(jobs_of(inline(slow), inline("q")), MathConfig(timeout=1.0, html="svg"), tmp_path, 1, False)
    assert res["0"].errors == []
    assert res["0"].warnings == ["math render timed out after 1 s; the site shows MathML instead"]
    assert "<math" in res["0"].html
    assert "<svg" in res["1"].html and res["1"].print_html is None


def test_tag_in_inline_math_is_ignored_with_warning_and_two_tags_are_an_error():
    res = resolve_formulas(jobs_of(inline("x \\tag{1}"), display("x \\tag{1} \\tag{2}")), MathConfig(), None, 1, False)
    assert res["0"].warnings == ["\\tag is ignored in inline math"] and "math-tag" not in res["0"].html
    assert res["1"].errors == ["more than one \\tag in a formula"]


# --- escaping (SECURITY-CASES MD-06) ------------------------------------------------------------


HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "\\unicode{<img src=x onerror=1>}",
    "\\text{<img src=x onerror=alert(1)>}",
    "\\href{javascript:alert(1)}{x}",
    '\\textcolor{red" onmouseover="alert(1)}{x}',
    "\\htmlStyle{background:url(x)}{x} \\htmlId{a\" onclick=\"1}{y}",
    "\\verb|</math><script>alert(1)</script>|",
    "\\operatorname{<b onmouseover=1>}",
    "\\tag{<img src=x onerror=1>} x",
]


@pytest.fixture(scope="module")
def hostile() -> dict:
    """Each hostile source as inline and as display math, through both paths in one batch."""
    items = [job for src in HOSTILE for job in (inline(src), display(src))]
    return resolve_formulas(jobs_of(*items), MathConfig(), None, 2, True)


@pytest.mark.parametrize("index", range(len(HOSTILE)))
def test_md06_math_source_never_becomes_markup(hostile, index):
    source = HOSTILE[index]
    for r in (hostile[str(2 * index)], hostile[str(2 * index + 1)]):
        assert_no_injection(r.html)
        assert_no_injection(r.print_html)
        if "<" in source:
            assert "&lt;" in r.html and "&lt;" in r.print_html


def test_md06_unicode_with_markup_is_an_error_and_valid_unicode_works():
    res = resolve_formulas(jobs_of(inline("\\unicode{<img src=x onerror=1>}"), inline("\\unicode{x41}\\unicode{66}")), MathConfig(), None, 1, False)
    assert res["0"].errors == ["\\unicode needs a character code such as x41 or 65"]
    assert "&lt;img src=x onerror=1&gt;" in res["0"].html
    assert res["1"].errors == [] and "<mi>A</mi><mi>B</mi>" in res["1"].html


def test_md06_html_extensions_are_warned_and_never_emitted():
    res = resolve_formulas(jobs_of(inline("\\href{https://e.org}{x} + \\includegraphics{https://e.org/a.png}")), MathConfig(), None, 1, False)
    assert res["0"].warnings == [
        "\\href is not supported in math: the link to https://e.org is not rendered",
        "\\includegraphics is not supported in math: the image is left out",
    ]
    assert "e.org" not in drawn(res["0"].html)


# --- cache ----------------------------------------------------------------------------------------


def test_second_run_renders_nothing_and_corrupt_entries_are_rebuilt(tmp_path):
    items = jobs_of(inline("a^2"), display("\\int_0^1 f"), inline("a^2"), inline("\\frac{"))
    first = resolve_formulas(items, MathConfig(), tmp_path, 1, True)
    assert M.last_stats.unique == 3 and M.last_stats.rendered_mathml == 3 and M.last_stats.rendered_svg == 2
    assert not any(r.cached for r in first.values())
    second = resolve_formulas(items, MathConfig(), tmp_path, 1, True)
    assert M.last_stats.rendered_mathml == 0 and M.last_stats.rendered_svg == 0
    assert all(r.cached for r in second.values())
    assert {k: (r.html, r.print_html, r.errors) for k, r in second.items()} == {k: (r.html, r.print_html, r.errors) for k, r in first.items()}
    # damage every cached entry: each is detected, rebuilt and the results are unchanged
    entries = [p for p in (tmp_path / "math").rglob("*") if p.is_file() and len(p.name) == 64]
    assert entries
    for p in entries:
        p.write_bytes(p.read_bytes()[:-7] + b"garbage")
    diags = Diagnostics()
    third = resolve_formulas(items, MathConfig(), tmp_path, 1, True, diags)
    assert M.last_stats.rendered_mathml == 3
    assert sorted(d.format() for d in diags.items) == sorted(
        f"warning[cache]: math cache entry {p.name} was corrupt; rebuilt" for p in entries
    )
    assert {k: (r.html, r.print_html) for k, r in third.items()} == {k: (r.html, r.print_html) for k, r in first.items()}


def test_print_variant_only_when_asked():
    res = resolve_formulas(jobs_of(inline("x")), MathConfig(), None, 1, False)
    assert res["0"].print_html is None and "<math" in res["0"].html


# --- end to end: a tiny project built through the CLI -------------------------------------------

MATH_REPORT = """\
---
title: Formulas
date: 2024-05-01
---

Inline dollars $x^2$ and parens \\(y_1\\) here.

$$
E = mc^2
$$

\\[\\frac{a}{b}\\]

```latex
$not math$ \\frac{1}{2}
```

Chinese $\\text{中文}$ and `$code$`.
"""


def report_html(project: Path, slug: str) -> str:
    return (project / "output" / "reports" / slug / "index.html").read_text(encoding="utf-8")


def test_e2e_each_delimiter_renders_and_code_stays_code(cli, make_project):
    project = make_project({"content/reports/m.md": MATH_REPORT})
    res = cli("-C", str(project), "build")
    assert res.exit_code == 0, res.output
    page = report_html(project, "m")
    maths = re.findall(r'<math [^>]*display="(inline|block)"[^>]*alttext="([^"]*)"', page)
    assert maths == [("inline", "x^2"), ("inline", "y_1"), ("block", "E = mc^2"), ("block", "\\frac{a}{b}"), ("inline", "\\text{中文}")]
    assert "not math" in page and "language-latex" in page
    code = re.search(r'<code class="language-latex">(.*?)</code>', page, re.S).group(1)
    assert "<math" not in code and "sitegen-job" not in code
    assert "<code>$code$</code>" in page
    assert "sitegen-job" not in page


def test_e2e_broken_formula_reports_file_and_line(cli, make_project):
    text = "---\ntitle: Broken\n---\n\nFine $a$ here.\n\nBroken $\\frac{a}{$ here.\n\n$$\n\\def\\a{\\a\\a}\\a\n$$\n"
    project = make_project({"content/reports/bad.md": text})
    res = cli("-C", str(project), "build")
    assert res.exit_code == 1
    assert "content/reports/bad.md:7: error[math]: unbalanced braces: missing }" in res.stderr
    assert "content/reports/bad.md:9: error[math]: math expansion limit" in res.stderr


def test_e2e_unknown_command_warns_with_location_and_fails_strict(cli, make_project):
    project = make_project({"content/reports/w.md": "---\ntitle: W\n---\n\nSee $\\foo x$.\n"})
    res = cli("-C", str(project), "build")
    assert res.exit_code == 0
    assert "content/reports/w.md:5: warning[math]: unknown command \\foo" in res.stderr
    assert cli("-C", str(project), "build", "--strict").exit_code == 1


def test_e2e_md06_hostile_math_is_escaped_in_the_page(cli, make_project):
    project = make_project({"content/reports/x.md": "---\ntitle: X\n---\n\nA $<img src=x onerror=alert(1)>$ b.\n"})
    res = cli("-C", str(project), "build")
    assert res.exit_code == 0, res.output
    page = report_html(project, "x")
    article = page[page.index('class="prose"'):page.index('<nav class="prev-next"')]
    assert_no_injection(article)
    assert 'alttext="&lt;img src=x onerror=alert(1)&gt;"' in article
    (project / "content/reports/x.md").write_text("---\ntitle: X\n---\n\nC $\\unicode{<img src=x onerror=1>}$ d.\n")
    res = cli("-C", str(project), "build")
    assert res.exit_code == 1
    assert "content/reports/x.md:5: error[math]: \\unicode needs a character code such as x41 or 65" in res.stderr


def test_e2e_second_build_renders_no_formula(cli, make_project):
    project = make_project({"content/reports/m.md": MATH_REPORT})
    assert cli("-C", str(project), "build").exit_code == 0
    (project / "content/reports/first.md").write_text(
        (project / "content/reports/first.md").read_text(encoding="utf-8") + "\nNew $z$ text.\n", encoding="utf-8")
    res = cli("-C", str(project), "build")
    assert res.exit_code == 0
    # only the new formula is rendered; the others come from the cache
    assert re.search(r"formulas 1 rendered", res.stderr), res.stderr
    res = cli("-C", str(project), "build")
    assert not re.search(r"formulas [1-9]\d* rendered", res.stderr), res.stderr


def test_svg_renderer_that_cannot_start_is_an_environment_problem(monkeypatch):
    from generator.diagnostics import EnvironmentProblem

    monkeypatch.setattr("sys.executable", "/bin/false")  # the worker process exits at once
    with pytest.raises(EnvironmentProblem) as info:
        resolve_formulas(jobs_of(inline("x")), MathConfig(), None, 1, True)
    assert info.value.exit_code == 2
    assert str(info.value) == "math: the SVG renderer (ziamath) could not start: math worker stopped"


def test_svg_worker_start_up_loads_neither_pydantic_nor_ziamath_before_its_warm_up():
    """A fresh worker imports what the pool pickles by module path; config schemas stay out of it."""
    import pickle
    import sys

    from generator.services.math import svg

    spec = pickle.dumps((svg._draw_svg, svg._warm_ziamath, 0))
    code = ("import pickle, sys; target, warm, _ = pickle.loads(sys.stdin.buffer.read()); "
            "print(target.__module__, warm.__module__); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'pydantic', 'yaml', 'jinja2', 'ziamath'}))")
    out = subprocess.run([sys.executable, "-c", code], input=spec, capture_output=True, check=True).stdout.decode()
    assert out.split("\n")[:2] == ["generator.services.math.svg generator.services.math.svg", "[]"]
