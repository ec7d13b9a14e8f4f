"""The Markdown stage: safe preset, plugins, anchors, jobs (SECURITY-CASES MD-01..05, TP-04)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from html.parser import HTMLParser

import pytest

from generator.markdown import fill_jobs, parse_markdown, slugify_heading
from generator.models import JobResult

DANGEROUS_TAGS = {"script", "iframe", "object", "embed", "link", "meta", "style", "base", "form"}


class Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict]]:
    p = Elements()
    p.feed(html)
    return p.tags


def assert_safe(html: str) -> None:
    for tag, attrs in elements(html):
        assert tag not in DANGEROUS_TAGS, (tag, html)
        for name, value in attrs.items():
            assert not name.startswith("on"), (name, html)
            if name in ("href", "src") and value:
                low = value.replace(" ", "").lower()
                assert not low.startswith(("javascript:", "vbscript:", "data:text")), (value, html)


@pytest.mark.parametrize(
    "text",
    ["<script>alert(1)</script>", "hi <img src=x onerror=alert(1)>", "<iframe src=//evil></iframe>",
     '<link rel="attachment" href="../../secret.txt">', "<style>body{display:none}</style>"],
)
def test_md01_raw_html_is_escaped_with_a_warning(text):
    parsed = parse_markdown(text + "\n", "page.md")
    assert_safe(parsed.html)
    assert "&lt;" in parsed.html
    assert any(d.code == "raw-html" and str(d.location) == "page.md:1" for d in parsed.diagnostics)
    assert all("raw HTML is disabled" in d.message for d in parsed.diagnostics)


@pytest.mark.parametrize(
    "link",
    ["[x](javascript:alert(1))", "[x](JaVaScRiPt:alert(1))", "[x](vbscript:msgbox)", "[x](data:text/html;base64,PHNjcmlwdD4=)",
     "[x](java%0ascript:alert(1))", "<javascript:alert(1)>", "[x][r]\n\n[r]: javascript:alert(1)", "[x](  javascript:alert(1))"],
)
def test_md02_dangerous_links_never_reach_the_output(link):
    parsed = parse_markdown(link + "\n", "page.md")
    assert_safe(parsed.html)
    assert "javascript:" not in parsed.html.lower().replace("&#58;", ":") or "href" not in parsed.html
    assert not any(attrs.get("href", "").lower().startswith(("javascript", "vbscript", "data")) for _, attrs in elements(parsed.html))


def test_md02_warns_with_line():
    parsed = parse_markdown("ok\n\n[x](javascript:alert(1))\n", "page.md", line_offset=4)
    d = [d for d in parsed.diagnostics if d.code == "link"][0]
    assert str(d.location) == "page.md:7" and "disallowed URL scheme 'javascript:'" in d.message


@pytest.mark.parametrize("img", ["![x](javascript:alert(1))", "![x](/etc/passwd)", "![x](file:///etc/passwd)", "![x](http://169.254.169.254/x)", "![x](data:image/svg+xml;base64,PHN2Zz4=)"])
def test_md02_bad_images_are_errors(img):
    parsed = parse_markdown(img + "\n", "page.md")
    assert not any(tag == "img" for tag, _ in elements(parsed.html))
    assert any(d.level == "error" and d.code == "image" and d.location.line == 1 for d in parsed.diagnostics)


def test_allowed_links_and_images():
    parsed = parse_markdown("[a](https://x.org) [b](mailto:a@b.c) [c](../r/index.html#x) ![i](img/a.png) ![d](data:image/png;base64,iVBORw0KGgo=)\n", "p.md")
    hrefs = [a.get("href") for t, a in elements(parsed.html) if t == "a"]
    srcs = [a.get("src") for t, a in elements(parsed.html) if t == "img"]
    assert hrefs == ["https://x.org", "mailto:a@b.c", "../r/index.html#x"]
    assert srcs == ["img/a.png", "data:image/png;base64,iVBORw0KGgo="]
    assert not parsed.diagnostics
    assert [h for h, _ in parsed.links] == ["../r/index.html#x"]


@pytest.mark.parametrize("info", ['mermaid" onload="alert(1)', 'python"><script>alert(1)</script>', "<img src=x onerror=1>"])
def test_md03_fence_info_string_cannot_break_out(info):
    parsed = parse_markdown(f"```{info}\ncode\n```\n", "p.md")
    assert_safe(parsed.html)
    assert "<script" not in parsed.html


def test_md03_mermaid_fence_becomes_a_job_with_fence_line():
    parsed = parse_markdown("text\n\n```mermaid\ngraph TD; A-->B\n```\n", "p.md", line_offset=3)
    assert [(j.kind, j.source, str(j.location)) for j in parsed.jobs] == [("mermaid", "graph TD; A-->B\n", "p.md:6")]
    html = fill_jobs(parsed.html, {parsed.jobs[0].key: JobResult("<figure>ok</figure>")})
    assert "<figure>ok</figure>" in html and "sitegen-job" not in html


def test_math_in_every_delimiter_and_not_in_code():
    text = "a $x^2$ b \\(y\\) c\n\n$$\nz\n$$\n\n\\[w\\]\n\n```latex\n$not math$\n```\n\n`$code$`\n"
    parsed = parse_markdown(text, "p.md")
    kinds = [(j.kind, j.source) for j in parsed.jobs]
    assert kinds == [("math-inline", "x^2"), ("math-inline", "y"), ("math-display", "z"), ("math-display", "w")]
    assert "not math" in parsed.html and "language-latex" in parsed.html and "<code>$code$</code>" in parsed.html


def test_equation_labels_restricted():
    parsed = parse_markdown('$$\nx\n$$ (a"><img src=x onerror=alert(1)>)\n', "page.md")
    assert_safe(parsed.html)
    assert "<img" not in parsed.html
    ok = parse_markdown("$$\nx\n$$ (eq-1)\n", "page.md")
    assert ok.jobs[0].source == "x \\tag{eq-1}" and not ok.diagnostics


def test_tp04_content_is_never_a_template():
    text = "{{ config }} {% include '/etc/passwd' %} {{ ''.__class__.__mro__ }}\n"
    parsed = parse_markdown(text, "p.md")
    assert "{{ config }}" in parsed.html and "{% include '/etc/passwd' %}" in parsed.html


def test_plugins_tables_footnotes_tasks_deflist_admonitions_strike():
    text = textwrap.dedent(
        """\
        | a | b |
        |---|---|
        | 1 | 2 |

        ~~old~~ text[^n]

        - [x] done
        - [ ] todo

        Term
        : Definition

        !!! note "Heads up"
            Inside.

        [^n]: The note.
        """
    )
    html = parse_markdown(text, "p.md").html
    for needle in ("<table>", "<s>old</s>", 'class="footnote-ref"', 'type="checkbox"', "<dl>", "<dt>Term</dt>", 'class="admonition note"', "Inside."):
        assert needle in html, needle


def test_task_list_checkbox_is_kept_but_content_inputs_are_not():
    html = parse_markdown('- [x] done <input onfocus=alert(1)>\n', "p.md").html
    assert html.count("<input") == 1 and "&lt;input onfocus" in html
    tags = elements(html)
    assert [a.get("type") for t, a in tags if t == "input"] == ["checkbox"]


def test_code_is_highlighted_at_build_time():
    html = parse_markdown("```python\ndef f(): return 1\n```\n", "p.md").html
    assert '<span class="k">def</span>' in html and 'class="language-python"' in html


def test_heading_anchors_are_readable_unique_and_prefixed():
    parsed = parse_markdown("## 1. 引言\n\n## 1. 引言\n\n### Market & Size\n", "p.md")
    assert [h.anchor for h in parsed.headings] == ["sec-1-引言", "sec-1-引言-2", "sec-market-size"]
    assert 'id="sec-1-引言"' in parsed.html
    assert slugify_heading("!!!") == "section"


def test_md04_oversize_file_is_an_error():
    parsed = parse_markdown("a" * (2 * 1024 * 1024 + 1), "big.md")
    assert parsed.diagnostics[0].format() == "big.md:1: error[size]: Markdown file larger than 2 MiB"


PATHOLOGICAL = [
    "*" * 20000,
    "[" * 20000,
    "a@b.com " * 8000,
    "> " * 5000 + "x",
    "- " * 5000 + "x",
    "|a" * 3000 + "|\n" + "|-" * 3000 + "|\n" + "|x" * 3000 + "|\n",
    "[a]: <" + "x" * 20000,
    "\n".join("[l%d]: /u%d" % (i, i) for i in range(5000)),
    "`" * 10000 + "a",
    "$" * 10000,
    "\\[" * 5000,
    "a\n" * 30000,
]


def test_md04_pathological_inputs_finish_in_a_subprocess_with_limits(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(
            """
            import resource, sys, json, time
            resource.setrlimit(resource.RLIMIT_AS, (1024 * 1024 * 1024, 1024 * 1024 * 1024))
            from generator.markdown import parse_markdown
            cases = json.loads(sys.stdin.read())
            for i, text in enumerate(cases):
                t = time.perf_counter()
                parse_markdown(text, f"case{i}.md")
                print(i, round(time.perf_counter() - t, 3))
            """
        )
    )
    import json

    out = subprocess.run([sys.executable, str(script)], input=json.dumps(PATHOLOGICAL), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(out.stdout.splitlines()) == len(PATHOLOGICAL)
