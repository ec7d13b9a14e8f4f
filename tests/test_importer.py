"""`sitegen import`: raw model-written articles → clean reports (seeds, fixtures, one test per heuristic)."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.commands import importer as imp
from generator.commands.importer import Line, import_files
from generator.commands.importer.convert import _display
from generator.markdown import parse_markdown
from generator.models import FrontMatter
from generator.yamlsource import parse_yaml, split_front_matter

HERE = Path(__file__).resolve().parent
SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
FIXTURES = HERE / "fixtures" / "import"
TODAY = dt.date(2025, 1, 2)
SEED_FILES = sorted(SEEDS.glob("*.txt")) if SEEDS.is_dir() else []
needs_seeds = pytest.mark.skipif(not SEED_FILES, reason="../shared/seeds not present")

AUTHOR_RE = re.compile(r"^\W*(?:文章)?(?:作者|authors?)\s*[:：]", re.I | re.M)


def lines_of(text: str) -> list[Line]:
    return imp.split_lines(text)


def texts(lines: list[Line]) -> list[str]:
    return [ln.text for ln in lines]


def load(path: Path) -> tuple[dict, str]:
    """Front matter (loaded strictly, validated) and body of a written report."""
    split, problems = split_front_matter(path.read_text("utf-8"), str(path))
    assert not problems and split is not None and split.yaml_text is not None
    data = parse_yaml(split.yaml_text).data
    FrontMatter.model_validate(data)
    return data, split.body


def convert(text: str, tmp_path: Path, name: str = "article.txt", **kw) -> tuple[imp.ImportResult, list[Path]]:
    src = tmp_path / "in" / name
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text(text, encoding="utf-8")
    out = tmp_path / "reports"
    result = import_files([src], out, today=TODAY, **kw)
    return result, sorted(out.glob("*.md")) if out.exists() else []


def only_report(text: str, tmp_path: Path, **kw) -> tuple[dict, str, imp.ImportResult]:
    result, files = convert(text, tmp_path, **kw)
    assert len(files) == 1, [d.format() for d in result.diagnostics]
    meta, body = load(files[0])
    return meta, body, result


def fences(text: str) -> list[str]:
    """Every fenced block, verbatim."""
    mask = imp.fence_mask(text.split("\n"))
    blocks, cur = [], []
    for t, m in zip(text.split("\n"), mask):
        if m:
            cur.append(t)
        elif cur:
            blocks.append("\n".join(cur))
            cur = []
    if cur:
        blocks.append("\n".join(cur))
    return blocks


def heading_texts(body: str) -> list[str]:
    return [h.text for h in parse_markdown(body, "x.md").headings]


# --- the seeds -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def imported_seeds(tmp_path_factory):
    out = tmp_path_factory.mktemp("seeds") / "content" / "reports"
    result = import_files(SEED_FILES, out, today=TODAY)
    return result, out


@needs_seeds
def test_seeds_import_without_errors(imported_seeds):
    result, out = imported_seeds
    assert result.errors == []
    assert len(result.files) == len(SEED_FILES) == 3
    mains = [r for f in result.files for r in f.reports if "translation_of" not in r.meta]
    assert len(mains) == len(SEED_FILES)
    assert all(r.status == "written" and r.target.is_file() for r in result.written)


@needs_seeds
@pytest.mark.parametrize(
    "stem, title, keywords, abstract_start",
    [
        ("000_156d29c597694fbb", "AI大模型创业：如何构建未来可持续的商业模式？", ["AI大模型", "商业模式", "创业", "可持续性", "市场定位"], "然而，AI大模型创业并非易事"),
        ("001_a0d8c7ffa6f46022", "AI大模型创业中的核心问题", ["AI大模型", "创业", "商业模式", "可持续", "未来展望"], "本文深入探讨了AI大模型创业中的核心问题"),
        ("003_83d0bf41e231a027", "创业者探索大模型新商业模式，打造AI产品矩阵", ["大模型", "商业模式", "AI产品矩阵", "创业者", "技术创新"], "本文旨在探讨创业者如何利用大模型技术"),
    ],
)
def test_seed_title_keywords_abstract_authors(imported_seeds, stem, title, keywords, abstract_start):
    _result, out = imported_seeds
    meta, body = load(out / f"{stem}.md")
    assert meta["title"] == title
    assert meta["keywords"] == keywords
    assert meta["abstract"].startswith(abstract_start)
    assert meta["lang"] == "zh"
    assert meta["source"] == f"{stem}.txt"
    assert meta["date"] == "2025-01-02"
    assert meta["authors"] == ["禅与计算机程序设计艺术 / Zen and the Art of Computer Programming"]
    # The author line and the metadata blocks are gone from the body.
    assert not AUTHOR_RE.search(body)
    assert "禅与计算机程序设计艺术" not in body
    assert "文章标题" not in body and "关键词" not in body
    assert title not in body.split("\n", 3)[0]


@needs_seeds
def test_seed_without_a_title_gets_one_from_the_abstract_and_a_warning(imported_seeds):
    result, _out = imported_seeds
    fi = next(f for f in result.files if f.source.name.startswith("001_"))
    warn = [d for d in fi.diagnostics if d.code == "import-title"]
    assert len(warn) == 1
    assert warn[0].format() == f"{fi.display}:1: warning[import-title]: no title found; using 'AI大模型创业中的核心问题' — check it"


@needs_seeds
def test_no_chat_token_survives_and_no_heading_repeats(imported_seeds):
    _result, out = imported_seeds
    files = sorted(out.glob("*.md"))
    assert len(files) == 4
    for f in files:
        text = f.read_text("utf-8")
        assert "<|" not in text and "|>" not in text, f
        _meta, body = load(f)
        heads = heading_texts(body)
        assert heads, f
        assert len(heads) == len(set(heads)), (f, [h for h in heads if heads.count(h) > 1])
        chapters = [h for h in heads if re.match(r"\d+\. ", h)]
        assert len(chapters) >= 8


@needs_seeds
def test_seed_headings_are_normalised(imported_seeds):
    _result, out = imported_seeds
    for f in sorted(out.glob("*.md")):
        _meta, body = load(f)
        levels = [h.level for h in parse_markdown(body, "x.md").headings]
        assert min(levels) == 2, f
        assert all(b <= a + 1 for a, b in zip([1] + levels, levels)), f  # no skipped level
        for h in parse_markdown(body, "x.md").headings:
            m = re.match(r"(\d+(?:\.\d+)*)\.? ", h.text)
            if m:
                assert h.level == 1 + len(m[1].split(".")), (f, h.text, h.level)


@needs_seeds
def test_english_translation_becomes_its_own_report(imported_seeds):
    result, out = imported_seeds
    meta, body = load(out / "000_156d29c597694fbb-en.md")
    assert meta["lang"] == "en"
    assert meta["translation_of"] == "000_156d29c597694fbb"
    assert meta["abstract"].startswith("This article explores the challenges and opportunities")
    assert meta["authors"] == ["Zen and the Art of Computer Programming"]
    assert meta["keywords"] == ["AI大模型", "商业模式", "创业", "可持续性", "市场定位"]  # kept from the original, with a warning
    assert not has_cjk_paragraph(body)
    heads = heading_texts(body)
    assert "1. Background Introduction" in heads
    assert "5. Project Practice: Code Examples and Detailed Explanations" in heads
    # The Chinese article keeps only Chinese prose.
    _zh, zh_body = load(out / "000_156d29c597694fbb.md")
    assert "Background Introduction" not in zh_body
    assert "This article explores" not in zh_body
    fi = next(f for f in result.files if f.source.name.startswith("000_"))
    assert [r.slug for r in fi.reports] == ["000_156d29c597694fbb", "000_156d29c597694fbb-en"]
    warn = [d.format() for d in fi.diagnostics if d.code == "import-translation"]
    assert warn == [
        f"{fi.display}:184: warning[import-translation]: translation not separated cleanly: "
        "16 heading(s) have no English title; 1 Chinese paragraph(s) dropped — review it"
    ]


def has_cjk_paragraph(body: str) -> bool:
    for para in re.split(r"\n\s*\n", body):
        if para.startswith("#") or para.startswith("```"):
            continue
        if imp.cjk_share([para]) > 0.5:
            return True
    return False


@needs_seeds
def test_seed_fences_are_untouched_and_formulas_use_site_delimiters(imported_seeds):
    _result, out = imported_seeds
    for stem in ("000_156d29c597694fbb", "001_a0d8c7ffa6f46022", "003_83d0bf41e231a027"):
        source = (SEEDS / f"{stem}.txt").read_text("utf-8")
        body = load(out / f"{stem}.md")[1]
        got = fences(body)
        assert got, stem
        assert all(block in source for block in got), stem
    body001 = load(out / "001_a0d8c7ffa6f46022.md")[1]
    assert "```mermaid\ngraph TD\n    A[AI大模型] --> B[深度学习]" in body001
    parsed = parse_markdown(body001, "x.md")
    kinds = [j.kind for j in parsed.jobs]
    assert kinds.count("mermaid") == 1
    assert kinds.count("math-display") == 2 and kinds.count("math-inline") >= 15
    body000 = load(out / "000_156d29c597694fbb.md")[1]
    assert "\\[" not in body000
    assert "$$\n\\text{GPT} = \\text{Transformer}(\\text{Input})\n$$" in body000
    assert [j.kind for j in parse_markdown(body000, "x.md").jobs] == ["math-display"]


@needs_seeds
def test_seed_closing_chat_lines_are_dropped(imported_seeds):
    _result, out = imported_seeds
    body = load(out / "001_a0d8c7ffa6f46022.md")[1]
    assert "希望对您" not in body and "感谢您的阅读" not in body and "以上就是本文" not in body
    assert body.rstrip().endswith("金融风控等领域具有广泛应用。")
    assert "-----" not in body


@needs_seeds
def test_seed_reports_load_with_the_content_loader(imported_seeds):
    from generator.config import load_config
    from generator.content import load_content

    _result, out = imported_seeds
    project = out.parents[1]
    (project / "sitegen.yaml").write_text("title: Seeds\nbase_url: https://example.org/\nlanguage: zh\n", "utf-8")
    config, problems = load_config(project)
    assert config is not None and problems == []
    content, diags = load_content(project, config)
    assert [d.format() for d in diags if d.level == "error"] == []
    assert [d.format() for d in diags] == []
    slugs = sorted(r.slug for r in content.reports)
    assert slugs == ["000_156d29c597694fbb", "000_156d29c597694fbb-en", "001_a0d8c7ffa6f46022", "003_83d0bf41e231a027"]


@needs_seeds
def test_seed_dry_run_prints_a_diff_and_writes_nothing(cli, tmp_path):
    project = tmp_path / "site"
    project.mkdir()
    res = cli("-C", str(project), "import", "--dry-run", *map(str, SEED_FILES))
    assert res.exit_code == 0, res.output
    assert not (project / "content").exists()
    assert "+++ " in res.stdout and "--- " in res.stdout
    assert "-**作者：禅与计算机程序设计艺术 / Zen and the Art of Computer Programming** <|user|>### 引言" in res.stdout
    assert "+title: AI大模型创业：如何构建未来可持续的商业模式？" in res.stdout
    assert "[zh, dry-run]" in res.stdout and "[en, dry-run]" in res.stdout
    assert "removed chat token <|user|> ×2 (line 184)" in res.stdout


@needs_seeds
@pytest.mark.slow
def test_seeds_build_end_to_end(cli, tmp_path):
    """sitegen import → sitegen build (→ sitegen check when it exists): diagrams and formulas rendered."""
    project = tmp_path / "site"
    project.mkdir()
    (project / "sitegen.yaml").write_text("title: Seeds\nbase_url: https://example.org/\nlanguage: zh\n", "utf-8")
    res = cli("-C", str(project), "import", *map(str, SEED_FILES))
    assert res.exit_code == 0, res.output
    res = cli("-C", str(project), "build")
    assert res.exit_code == 0, res.output
    assert "error[" not in res.output
    for slug in ("000_156d29c597694fbb", "000_156d29c597694fbb-en", "001_a0d8c7ffa6f46022", "003_83d0bf41e231a027"):
        html = (project / "output" / "reports" / slug / "index.html").read_text("utf-8")
        assert "<math" in html, slug
        assert "job-missing" not in html and "&lt;|" not in html
    html001 = (project / "output" / "reports" / "001_a0d8c7ffa6f46022" / "index.html").read_text("utf-8")
    assert "<svg" in html001
    from generator.cli import main

    if "check" in main.commands:
        res = cli("-C", str(project), "check")
        assert "error[" not in res.output, res.output
        assert res.exit_code == 0, res.output


# --- fixtures written for these tests -----------------------------------------------------------------


def test_fixture_zh_article_with_chatml_turns_and_translation(tmp_path):
    out = tmp_path / "reports"
    result = import_files([FIXTURES / "zh_with_translation.txt"], out, today=TODAY)
    assert result.errors == []
    zh, zh_body = load(out / "zh_with_translation.md")
    en, en_body = load(out / "zh_with_translation-en.md")
    assert zh["title"] == "智能客服创业的机会与风险"
    assert zh["keywords"] == ["智能客服", "创业", "大语言模型", "SaaS"]
    assert zh["abstract"] == "本文分析了智能客服赛道的市场规模、技术路线和商业模式，并讨论了初创公司面临的主要风险。"
    assert zh["authors"] == ["王小明"] and en["authors"] == ["Wang Xiaoming"]
    assert en["translation_of"] == "zh_with_translation" and en["lang"] == "en"
    # Prompt turns are gone, the assistant's text stays; the quoted token inside code is content.
    assert "请写一篇" not in zh_body and "翻译成英文" not in zh_body
    assert 'EOS = "<|endoftext|>"' in zh_body
    assert "<|" not in en_body and "<|" not in zh_body.replace('"<|endoftext|>"', "")
    assert "# 作者：示例代码" in zh_body  # a comment in code is not an author line
    assert heading_texts(en_body) == ["1. Market Overview", "1.1 Market Size", "2. Technical Approach", "3. Business Model", "4. Risks"]
    assert heading_texts(zh_body) == ["1. 市场概览", "1.1 市场规模", "2. 技术路线", "3. 商业模式", "4. 风险"]
    assert "希望这篇文章" not in zh_body and "feel free" not in en_body and "I hope" not in en_body
    assert "```mermaid\ngraph TD\n    A[用户提问] --> B[意图识别]\n    B --> C[知识库检索]\n```" in zh_body
    assert "约为\\$5 billion" in zh_body and "$20\\%$" in zh_body
    summary = imp.format_summary(result)
    assert "removed prompt turn '请写一篇关于智能客服创业的分析文章，并附上英文翻译。' (line 2)" in summary
    assert "split English translation into its own report (lines 54-96)" in summary


def test_fixture_duplicate_copy_and_repeated_chapter(tmp_path):
    out = tmp_path / "reports"
    result = import_files([FIXTURES / "en_duplicated.txt"], out, today=TODAY)
    assert result.errors == []
    meta, body = load(out / "pricing-agents-by-outcome-a-field-guide.md")
    assert meta["title"] == "Pricing Agents by Outcome: A Field Guide"
    assert meta["date"] == "2024-03-03"
    assert meta["authors"] == ["Jane Doe", "John Roe"]
    assert meta["keywords"] == ["pricing", "AI agents", "outcome-based billing"]
    assert meta["lang"] == "en"
    assert heading_texts(body) == ["1. Introduction", "2. Why it works", "3. Margins", "4. Conclusion"]
    assert body.count("Buyers pay for results") == 1
    assert body.rstrip().endswith("Outcome pricing is here to stay.")
    assert "The cost is \\$0.99 per resolved ticket and $x^2$ is not money." in body
    changes = [c.format() for c in result.files[0].changes]
    assert "removed duplicate copy of the article (lines 31-51)" in changes
    assert "removed repeated chapter '2. Why it works' (lines 21-24)" in changes


def test_fixture_incomplete_first_copy_keeps_the_complete_one(tmp_path):
    out = tmp_path / "reports"
    result = import_files([FIXTURES / "zh_truncated_first.txt"], out, today=TODAY)
    meta, body = load(out / "zh_truncated_first.md")
    assert meta["title"] == "工业质检大模型的落地路径"
    assert meta["keywords"] == ["工业质检", "视觉大模型", "落地"]
    assert meta["authors"] == ["李华 / Li Hua"]
    assert "并通过主动学习减少标注成本" in body
    assert heading_texts(body) == ["1. 背景", "2. 技术方案", "3. 商业模式"]
    assert "removed incomplete first copy of the article (lines 1-11)" in [c.format() for c in result.files[0].changes]


@pytest.mark.parametrize(
    "name, slug, title, keywords, abstract, authors, headings",
    [
        (
            "zh_quoted_meta_bilingual_headings.txt",
            "zh_quoted_meta_bilingual_headings",
            "AI大模型创业：如何利用渠道优势？",
            ["AI大模型", "创业", "渠道优势", "商业模式"],
            "本文介绍了AI大模型创业中渠道的作用。我们讨论三种渠道策略。",
            ["禅与计算机程序设计艺术 / Zen and the Art of Computer Programming"],
            ["1. 背景介绍（Background）", "1.1 问题的由来", "1.2 研究现状", "2. 核心概念与联系（Core Concepts）", "3. 数学模型"],
        ),
        (
            "zh_heading_labels_chinese_ordinals.txt",
            "zh_heading_labels_chinese_ordinals",
            "大模型时代的法律科技创业",
            ["法律科技", "大模型", "合规"],
            "本文分析法律科技赛道，讨论大模型带来的机会。",
            None,
            ["一、背景", "二、机会", "（一）合同审查", "（二）法律检索", "三、风险"],
        ),
        (
            "en_labels_unnumbered_dots.txt",
            "vertical-ai-agents-for-logistics",
            "Vertical AI Agents for Logistics",
            ["logistics", "AI agents", "SaaS"],
            "This report looks at vertical AI agents in logistics.",
            None,
            ["1. Introduction", "1.1 Market size", "2. Business models", "3. Conclusion"],
        ),
        (
            "zh_then_full_english_copy.txt",
            "zh_then_full_english_copy-en",
            "Three Routes for Voice AI Start-ups",
            ["voice AI", "start-ups", "ASR"],
            "Speech recognition accuracy has improved greatly and costs keep falling, opening three routes for start-ups.",
            ["Zhao Liu"],
            ["1. Background", "2. Routes", "3. Conclusion"],
        ),
    ],
)
def test_fixture_shapes(tmp_path, name, slug, title, keywords, abstract, authors, headings):
    out = tmp_path / "reports"
    result = import_files([FIXTURES / name], out, today=TODAY)
    assert result.errors == []
    meta, body = load(out / f"{slug}.md")
    assert (meta["title"], meta["keywords"], meta["abstract"], meta.get("authors")) == (title, keywords, abstract, authors)
    assert heading_texts(body) == headings
    assert "<|" not in body and not AUTHOR_RE.search(body)
    assert not re.search(r"关键词|摘要|Keywords|Abstract|Title:|文章标题|Happy coding|感谢阅读", body)


def test_fixtures_build_and_check(cli, tmp_path):
    """Every fixture imports, builds, and passes `sitegen check` — except a token kept as text in code."""
    project = tmp_path / "site"
    project.mkdir()
    (project / "sitegen.yaml").write_text("title: Fixtures\nbase_url: https://example.org/\nlanguage: zh\n", "utf-8")
    res = cli("-C", str(project), "import", *map(str, sorted(FIXTURES.glob("*.txt"))))
    assert res.exit_code == 0, res.output
    assert len(list((project / "content" / "reports").glob("*.md"))) == 9
    res = cli("-C", str(project), "build")
    assert res.exit_code == 0 and "error[" not in res.output, res.output
    from generator.cli import main

    if "check" in main.commands:
        res = cli("-C", str(project), "check")
        errors = [line for line in res.output.splitlines() if "error[" in line]
        assert errors == [] and res.exit_code == 0, res.output
        # The importer never alters code: a token written as a string in code is flagged for a human, not failed.
        assert (
            "content/reports/zh_with_translation.md:40:8: warning[lm-token]: language-model token '<|endoftext|>' inside code"
            in res.output
        )


# --- title --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, title",
    [
        ("### 文章标题\n\n**大模型创业指南**\n\n## 1. 背景\n\n正文。\n\n## 2. 结论\n\n正文。", "大模型创业指南"),
        ("# 文章标题\n\n大模型创业指南\n\n## 1. 背景\n\n正文。", "大模型创业指南"),
        ("## 文章标题：《大模型创业指南》\n\n## 1. 背景\n\n正文。", "大模型创业指南"),
        ("标题：大模型创业指南\n\n## 1. 背景\n\n正文。", "大模型创业指南"),
        ("# 大模型创业指南\n\n## 1. 背景\n\n正文。", "大模型创业指南"),
        ("**大模型创业指南**\n\n## 1. 背景\n\n正文。", "大模型创业指南"),
        ("大模型创业指南\n=======\n\n## 1. 背景\n\n正文。", "大模型创业指南"),
        ("# Pricing AI Agents\n\n## 1. Background\n\nText.", "Pricing AI Agents"),
        ("Title: Pricing AI Agents\n\n## 1. Background\n\nText.", "Pricing AI Agents"),
    ],
)
def test_title_forms(text, title):
    got, _en, rest, changes = imp.extract_title(imp.convert_setext_titles(lines_of(text)))
    assert got == title
    assert title not in "\n".join(texts(rest))
    assert changes and changes[0].action == "extracted"


def test_title_block_with_english_subtitle():
    got, en, rest, _ = imp.extract_title(lines_of("### 文章标题\n\n**大模型创业指南**\n\n**A Guide to LLM Start-ups**\n\n## 1. 背景\n\n正文。"))
    assert (got, en) == ("大模型创业指南", "A Guide to LLM Start-ups")
    assert texts(rest)[0:3] == ["", "", ""] or "A Guide" not in "\n".join(texts(rest))


def test_numbered_first_heading_is_not_a_title():
    got, _en, rest, _ = imp.extract_title(lines_of("## 1. 背景\n\n正文。\n\n## 2. 结论\n\n正文。"))
    assert got is None and texts(rest)[0] == "## 1. 背景"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("> 摘要：本文探讨了智能客服创业的商业模式。\n\n## 1. 背景\n\n正文一。\n\n## 2. 市场\n\n正文二。", "智能客服创业的商业模式"),
        ("Abstract: This article explores pricing models for AI agents, with case studies.\n\n## 1. Background\n\nText.\n\n## 2. More\n\nText.", "Pricing models for AI agents"),
        ("关键词：智能客服、创业\n\n## 1. 背景\n\n正文一。\n\n## 2. 市场\n\n正文二。", "智能客服、创业"),
    ],
)
def test_missing_title_is_derived_with_a_warning(tmp_path, text, expected):
    meta, _body, result = only_report(text, tmp_path)
    assert meta["title"] == expected
    d = [d for d in result.diagnostics if d.code == "import-title"]
    assert len(d) == 1 and d[0].location.path.endswith("article.txt") and d[0].location.line == 1
    assert "no title found" in d[0].message


# --- keywords ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, words",
    [
        ("关键词：AI、创业、商业模式", ["AI", "创业", "商业模式"]),
        ("> 关键词：AI, 创业，商业模式。", ["AI", "创业", "商业模式"]),
        ("**关键词**：AI；创业；商业模式", ["AI", "创业", "商业模式"]),
        ("关键字: AI 创业 商业模式", ["AI", "创业", "商业模式"]),
        ("## 关键词\n\n- AI\n- 创业\n- 商业模式\n\n## 1. 背景", ["AI", "创业", "商业模式"]),
        ("## 关键词\n\nAI、创业、商业模式\n\n## 1. 背景", ["AI", "创业", "商业模式"]),
        ("Keywords: AI agents, pricing, start-ups", ["AI agents", "pricing", "start-ups"]),
        ("**Keywords:** AI agents; pricing", ["AI agents", "pricing"]),
        ("> 关键词：AI，创业，\n> 商业模式\n\n> 摘要：本文。", ["AI", "创业", "商业模式"]),
        ("关键词：AI、创业、\n商业模式", ["AI", "创业", "商业模式"]),
        ("> 关键词：AI、创业\n> 摘要：本文。", ["AI", "创业"]),
    ],
)
def test_keyword_forms(text, words):
    got, rest, changes = imp.extract_keywords(lines_of(text + "\n\n## 1. 背景\n\n正文。"))
    assert got == words
    assert not any(re.search(r"关键|keywords", t, re.I) for t in texts(rest))
    assert changes[0].what.startswith("keywords: ")


# --- abstract ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, abstract",
    [
        ("> 摘要：本文讨论市场。\n> 并给出建议。\n\n## 1. 背景\n\n正文。", "本文讨论市场。并给出建议。"),
        ("摘要：本文讨论市场。\n\n## 1. 背景\n\n正文。", "本文讨论市场。"),
        ("**摘要**：本文讨论市场。\n\n## 1. 背景\n\n正文。", "本文讨论市场。"),
        ("## 摘要\n\n本文讨论市场。\n\n第二段。\n\n## 1. 背景\n\n正文。", "本文讨论市场。\n\n第二段。"),
        ("#### Abstract\n\nThis article discusses\nthe market.\n\n## 1. Background\n\nText.", "This article discusses the market."),
        ("Abstract: A short summary.\n\n## 1. Background\n\nText.", "A short summary."),
    ],
)
def test_abstract_forms(text, abstract):
    got, rest, _ = imp.extract_abstract(lines_of(text))
    assert got == abstract
    assert [t for t in texts(rest) if t.strip()][0] in ("## 1. 背景", "## 1. Background")


def test_abstract_in_a_chapter_is_not_taken():
    text = "## 1. 背景\n\n正文。\n\n## 2. 市场\n\n摘要：这不是文章摘要。"
    got, rest, _ = imp.extract_abstract(lines_of(text))
    assert got == "" and texts(rest) == texts(lines_of(text))


def test_abstract_fallback_uses_the_lead_and_keeps_it_in_the_body(tmp_path):
    text = "# 标题示例\n\n大模型正在改变客服行业。然而创业并不容易。本文将围绕这一问题，分析三种商业模式。\n\n## 1. 背景\n\n正文。\n\n## 2. 市场\n\n正文。"
    meta, body, _ = only_report(text, tmp_path)
    assert meta["abstract"] == "然而创业并不容易。本文将围绕这一问题，分析三种商业模式。"
    assert body.lstrip().startswith("大模型正在改变客服行业。")


# --- authors and date ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tail, authors",
    [
        ("作者：王小明", ["王小明"]),
        ("**作者：王小明、李雷**", ["王小明", "李雷"]),
        ("### 文章作者：\n\n**作者：禅与计算机程序设计艺术 / Zen and the Art of Computer Programming**", ["禅与计算机程序设计艺术 / Zen and the Art of Computer Programming"]),
        ("## 作者署名\n\n王小明", ["王小明"]),
        ("#### Author: Jane Doe and John Roe", ["Jane Doe", "John Roe"]),
        ("*Authors: Jane Doe, John Roe*", ["Jane Doe", "John Roe"]),
    ],
)
def test_author_forms(tail, authors):
    text = "## 1. 背景\n\n正文。\n\n" + tail + "\n"
    got, rest, _ = imp.extract_authors(lines_of(text))
    assert got == authors
    assert [t for t in texts(rest) if t.strip()] == ["## 1. 背景", "正文。"]


def test_author_line_in_code_is_left_alone():
    text = "```python\n# 作者：示例\n```\n\n正文"
    got, rest, _ = imp.extract_authors(lines_of(text))
    assert got == [] and texts(rest) == texts(lines_of(text))


@pytest.mark.parametrize(
    "line, date",
    [
        ("日期：2024年5月1日", dt.date(2024, 5, 1)),
        ("**发布日期**：2024-05-01", dt.date(2024, 5, 1)),
        ("Date: May 1, 2024", dt.date(2024, 5, 1)),
        ("Published: 1 May 2024", dt.date(2024, 5, 1)),
    ],
)
def test_date_found_in_the_text(tmp_path, line, date):
    meta, body, _ = only_report(f"# T\n\n{line}\n\n## 1. 背景\n\n正文。\n\n## 2. 结论\n\n正文。", tmp_path)
    assert meta["date"] == date.isoformat()
    assert line not in body


def test_date_defaults_to_the_import_day_and_ignores_years_in_prose(tmp_path):
    meta, _body, _ = only_report("# T\n\n## 1. 背景\n\n2017年发表的论文（Vaswani et al., 2017-06-12）。\n\n## 2. 结论\n\n正文。", tmp_path)
    assert meta["date"] == "2025-01-02"


# --- chat tokens --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    ["<|user|>", "<|end_of_directive|>", "<|im_sep|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|assistant|>", "<|eot_id|>", "<｜end▁of▁sentence｜>", "<|foo_bar|>"],
)
def test_every_chat_token_is_removed(token):
    text = f"# 标题\n\n第一段。{token}\n\n## 1. 背景\n\n正文。{token}"
    out, changes, _ = imp.strip_chat_tokens(lines_of(text))
    joined = "\n".join(texts(out))
    assert token not in joined and "<|" not in joined
    assert "正文。" in joined and "第一段。" in joined
    assert any(c.what.startswith(f"chat token {token}") for c in changes)


def test_token_before_a_heading_starts_a_new_line_and_marks_a_cut():
    out, _, _ = imp.strip_chat_tokens(lines_of("**作者：某人** <|user|>### 引言\n正文"))
    assert [(ln.text, ln.src, ln.cut) for ln in out] == [("**作者：某人**", 1, False), ("### 引言", 1, True), ("正文", 2, False)]


def test_stray_token_mid_sentence_is_cut_out():
    out, _, _ = imp.strip_chat_tokens(lines_of("The market<|im_sep|> grows. 市场<|im_sep|>增长。"))
    assert texts(out) == ["The market grows. 市场增长。"]


def test_chatml_prompt_turns_and_role_words_are_dropped():
    text = "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\n写一篇文章<|im_end|>\n<|im_start|>assistant\n# 标题\n\n正文。<|im_end|>"
    out, changes, _ = imp.strip_chat_tokens(lines_of(text))
    assert [t for t in texts(out) if t] == ["# 标题", "正文。"]
    assert [c.what for c in changes if "prompt" in c.what] == ["prompt turn 'You are helpful.'", "prompt turn '写一篇文章'"]


def test_directive_before_end_of_directive_is_dropped():
    out, changes, _ = imp.strip_chat_tokens(lines_of("请写一篇关于AI创业的文章<|end_of_directive|>### 文章标题\n\n**AI创业**"))
    assert [t for t in texts(out) if t] == ["### 文章标题", "**AI创业**"]
    assert any(c.what == "prompt turn '请写一篇关于AI创业的文章'" for c in changes)


def test_user_turn_holding_article_text_is_kept():
    body = "\n".join(["### 引言", "", "Some English text."] + [f"## {i}. 背景{i}\n\nText {i}." for i in range(1, 4)])
    out, changes, _ = imp.strip_chat_tokens(lines_of("正文。<|user|>" + body + "<|user|>"))
    assert "### 引言" in texts(out) and "Text 3." in texts(out)
    assert not any("prompt" in c.what for c in changes)


def test_quoted_token_in_code_is_content_and_unquoted_one_in_code_warns():
    text = "```python\ntok = \"<|endoftext|>\"\nx = 1 <|im_end|>\n```\n\n正文 `<|endoftext|>` 是特殊符号。"
    out, _changes, warnings = imp.strip_chat_tokens(lines_of(text))
    assert texts(out) == ["```python", 'tok = "<|endoftext|>"', "x = 1", "```", "", "正文 `<|endoftext|>` 是特殊符号。"]
    assert [(w.code, w.location.line, w.location.col) for w in warnings] == [("import-token", 2, 8), ("import-token", 3, 7), ("import-token", 6, 5)]
    assert [w.message for w in warnings] == [
        "kept <|endoftext|>: it is written as text (in code); `sitegen check` will still report it",
        "removed chat token <|im_end|> inside a code block",
        "kept <|endoftext|>: it is written as text (quoted); `sitegen check` will still report it",
    ]


# --- copies, translations, repeated chapters ----------------------------------------------------------

ZH_ARTICLE = """### 文章标题

**边缘推理创业**

> 关键词：边缘计算、推理、芯片

## 1. 背景介绍

边缘推理让模型在设备上运行，降低延迟和带宽成本。

## 2. 市场分析

### 2.1 客户

制造业和零售业是早期客户。

## 3. 商业模式

硬件加订阅是常见组合。

作者：陈晨
"""


def test_exact_second_copy_after_a_token_is_removed(tmp_path):
    meta, body, result = only_report(ZH_ARTICLE + "<|endoftext|>" + ZH_ARTICLE, tmp_path)
    assert body.count("边缘推理让模型") == 1
    assert heading_texts(body) == ["1. 背景介绍", "2. 市场分析", "2.1 客户", "3. 商业模式"]
    assert meta["authors"] == ["陈晨"]
    assert any(c.what == "duplicate copy of the article" for c in result.files[0].changes)


def test_second_copy_without_any_token_is_found_by_its_title_block(tmp_path):
    _meta, body, _ = only_report(ZH_ARTICLE + "\n" + ZH_ARTICLE, tmp_path)
    assert body.count("边缘推理让模型") == 1 and "文章标题" not in body and "边缘推理创业" not in body


def test_second_copy_restarting_at_chapter_one_is_found(tmp_path):
    second = ZH_ARTICLE.split("## 1.", 1)[1]
    _meta, body, _ = only_report(ZH_ARTICLE + "\n## 1." + second, tmp_path)
    assert heading_texts(body) == ["1. 背景介绍", "2. 市场分析", "2.1 客户", "3. 商业模式"]


def test_dropped_copy_with_extra_chapters_is_flagged(tmp_path):
    second = "## 1. 背景介绍\n\n背景。\n\n## 2. 市场分析\n\n市场。\n\n## 9. 附录\n\n新内容。\n"
    _meta, _body, result = only_report(ZH_ARTICLE + "<|endoftext|>" + second, tmp_path)
    w = [d for d in result.diagnostics if d.code == "import-copy"]
    assert len(w) == 1 and "9. 附录" in w[0].message and w[0].location.line == 22


EN_UNDER_ZH = """<|user|>## 1. 背景介绍

#### Background

Edge inference runs models on devices and cuts latency and bandwidth costs.

## 2. 市场分析

#### Market Analysis

### 2.1 客户

#### Customers

Manufacturers and retailers are early customers.

## 3. 商业模式

#### Business Model

Hardware plus subscription is a common mix.

Author: Chen Chen
"""


def test_english_translation_under_chinese_headings_is_split(tmp_path):
    result, files = convert(ZH_ARTICLE + EN_UNDER_ZH, tmp_path, name="edge.txt")
    assert [f.name for f in files] == ["edge-en.md", "edge.md"]
    zh, zh_body = load(files[1])
    en, en_body = load(files[0])
    assert zh["lang"] == "zh" and en["lang"] == "en" and en["translation_of"] == "edge"
    assert en["title"] == "边缘推理创业"  # no English title in the text: kept, with a warning
    assert en["authors"] == ["Chen Chen"] and zh["authors"] == ["陈晨"]
    assert heading_texts(en_body) == ["1. Background", "2. Market Analysis", "2.1 Customers", "3. Business Model"]
    assert "Edge inference" not in zh_body and "边缘推理让模型" not in en_body
    assert [d.code for d in result.diagnostics] == ["import-title", "import-keywords"]
    assert en["keywords"] == zh["keywords"] == ["边缘计算", "推理", "芯片"]


def test_interleaved_translation_is_kept_and_flagged(tmp_path):
    paras = []
    for i in range(4):
        paras.append(f"## {i + 1}. 第{i + 1}章\n\n这是第{i + 1}章的中文内容，讨论市场和商业模式的细节问题。\n\nThis is the English version of chapter {i + 1}, about markets and business models.")
    _meta, body, result = only_report("# 标题\n\n" + "\n\n".join(paras), tmp_path)
    assert "This is the English version of chapter 3" in body
    w = [d for d in result.diagnostics if d.code == "import-translation"]
    assert len(w) == 1 and "4 paragraphs are in English" in w[0].message and "not separated" in w[0].message


def test_repeated_chapter_is_collapsed_and_difference_warned():
    text = "## 1. 背景\n\n甲。\n\n## 2. 方法\n\n乙。\n\n### 2.1 细节\n\n丙。\n\n## 2. 方法\n\n乙，但不同。\n\n## 3. 结论\n\n丁。"
    out, changes, warnings = imp.collapse_repeated_chapters(lines_of(text))
    assert [t for t in texts(out) if t.startswith("#")] == ["## 1. 背景", "## 2. 方法", "### 2.1 细节", "## 3. 结论"]
    assert "乙，但不同。" not in texts(out)
    assert [c.format() for c in changes] == ["removed repeated chapter '2. 方法' (lines 13-16)"]
    assert warnings[0].code == "import-repeat" and warnings[0].location.line == 13
    assert "kept the first (line 5)" in warnings[0].message


def test_repeated_chapter_keeps_the_complete_one_when_the_first_is_empty():
    text = "## 1. 背景\n\n## 2. 方法\n\n乙。\n\n## 1. 背景\n\n甲。"
    out, _changes, warnings = imp.collapse_repeated_chapters(lines_of(text))
    assert [t for t in texts(out) if t] == ["## 2. 方法", "乙。", "## 1. 背景", "甲。"]
    assert warnings == []


def test_headings_sharing_a_chinese_prefix_are_not_repeats():
    text = "## 3. 实践\n\n### 3.1 使用 Hugging Face\n\n甲。\n\n### 3.2 使用 PyTorch Lightning\n\n乙。"
    out, changes, _ = imp.collapse_repeated_chapters(lines_of(text))
    assert texts(out) == texts(lines_of(text)) and changes == []


def test_scaffold_and_toc_headings_are_removed():
    text = "## 目录\n\n- 1. 背景\n- 2. 结论\n\n## 文章正文内容部分 Content\n\n## 1. 背景\n\n正文。"
    out, changes = imp.drop_toc(lines_of(text))
    assert [t for t in texts(out) if t] == ["## 1. 背景", "正文。"]
    assert [c.what for c in changes] == ["scaffold heading '文章正文内容部分 Content'", "table of contents"]


def test_author_line_after_a_token_is_not_a_prompt(tmp_path):
    meta, body, _ = only_report(ZH_ARTICLE.replace("作者：陈晨\n", "") + "<|endoftext|>作者：陈晨<|end_of_directive|>", tmp_path)
    assert meta["authors"] == ["陈晨"] and "陈晨" not in body


def test_same_subheading_under_different_chapters_is_not_a_repeat():
    text = "## 1. 甲\n\n### 优点\n\n好。\n\n## 2. 乙\n\n### 优点\n\n也好。"
    out, changes, _ = imp.collapse_repeated_chapters(lines_of(text))
    assert texts(out) == texts(lines_of(text)) and changes == []


# --- pleasantries ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ending",
    [
        "希望这篇文章对您有帮助！",
        "以上就是本文的全部内容。感谢您的阅读！",
        "如果您有任何问题，欢迎在评论区留言。",
        "If you have any questions, feel free to ask.",
        "I hope this helps! Let me know if you need anything else.",
        "Thank you for reading.\n\n---",
    ],
)
def test_closing_chat_lines_are_dropped(ending):
    text = "## 1. 结论\n\n市场会继续增长。\n\n" + ending + "\n"
    out, changes = imp.drop_pleasantries(lines_of(text))
    assert [t for t in texts(out) if t] == ["## 1. 结论", "市场会继续增长。"]
    assert changes and changes[0].action == "removed"


def test_closing_sentence_is_cut_from_the_last_paragraph_only():
    text = "希望对您有帮助的内容在开头也不删。\n\n## 1. 结论\n\n市场会继续增长。希望本文对您有所启发。"
    out, _ = imp.drop_pleasantries(lines_of(text))
    assert texts(out) == ["希望对您有帮助的内容在开头也不删。", "", "## 1. 结论", "", "市场会继续增长。"]


def test_content_ending_is_kept():
    text = "## 1. 参考资料\n\n- 希望之星报告\n- If you have any questions list"
    out, changes = imp.drop_pleasantries(lines_of(text))
    assert texts(out) == texts(lines_of(text)) and changes == []


# --- headings ----------------------------------------------------------------------------------------


def test_skipped_levels_and_top_level_are_fixed():
    text = "# 1. 背景\n\n#### 1.1 细节\n\n##### 补充\n\n# 2. 结论"
    out, _ = imp.normalise_headings(lines_of(text))
    assert [t for t in texts(out) if t] == ["## 1. 背景", "### 1.1 细节", "#### 补充", "## 2. 结论"]


def test_heading_level_follows_the_numbering():
    text = "## 4. 公式\n\n### 5. 项目实践\n\n### 5.1 环境\n\n## 6. 应用"
    out, changes = imp.normalise_headings(lines_of(text))
    assert [t for t in texts(out) if t] == ["## 4. 公式", "## 5. 项目实践", "### 5.1 环境", "## 6. 应用"]
    assert changes[0].what == "1 heading(s) normalised (levels, numbering)"


@pytest.mark.parametrize(
    "heading, expected",
    [
        ("## 第一章 1. 背景", "## 1. 背景"),
        ("## 1. 1. 背景", "## 1. 背景"),
        ("## 一、背景", "## 一、背景"),
        ("## **2.1 细节**", "### 2.1 细节"),
        ("## 1、背景", "## 1. 背景"),
        ("## Chapter 3: Results", "## 3. Results"),
        ("## 2023年回顾", "## 2023年回顾"),
        ("## 5G时代", "## 5G时代"),
    ],
)
def test_one_level_of_numbering(heading, expected):
    out, _ = imp.normalise_headings(lines_of("## 1. 开始\n\n" + heading + "\n\n正文"))
    assert texts(out)[2] == expected


@pytest.mark.parametrize(
    "lang, heading, expected",
    [
        ("zh", "## 1. 背景介绍 Background Introduction", "## 1. 背景介绍 Background Introduction"),
        ("en", "## 1. 背景介绍 Background Introduction", "## 1. Background Introduction"),
        ("zh", "## 1. 背景介绍（Background）", "## 1. 背景介绍（Background）"),
        ("en", "## 1. 背景介绍 (Background)", "## 1. Background"),
        ("en", "## 1. 背景介绍\n\n#### Background Introduction", "## 1. Background Introduction"),
        ("zh", "## 1. 背景介绍\n\n#### Background Introduction", "## 1. 背景介绍（Background Introduction）"),
        ("zh", "## 2.3 生成式AI与强化学习", "## 2.3 生成式AI与强化学习"),
        ("zh", "## 3.2 使用 Hugging Face Transformers", "## 3.2 使用 Hugging Face Transformers"),
        ("en", "## 3.2 模型训练 Model Training", "## 3.2 Model Training"),
    ],
)
def test_bilingual_headings(lang, heading, expected):
    out, _ = imp.merge_bilingual_headings(lines_of(heading + "\n\n正文 text"), lang)
    assert texts(out)[0] == expected
    assert len([t for t in texts(out) if t.startswith("#")]) == 1


def test_numbered_child_under_a_chinese_heading_is_not_a_translation():
    out, _ = imp.merge_bilingual_headings(lines_of("## 1. 背景\n\n### 1.1 Overview\n\n正文"), "zh")
    assert texts(out)[0:3] == ["## 1. 背景", "", "### 1.1 Overview"]


# --- fences and formulas -------------------------------------------------------------------------------

TRAPS = """```mermaid
graph TD
    A["作者：某人"] --> B["\\[x\\]"]
## 1. 不是标题
希望这篇文章对您有帮助！
$5 and $10
```"""


def test_fences_are_never_altered(tmp_path):
    text = "# 标题\n\n## 1. 背景\n\n正文。\n\n" + TRAPS + "\n\n## 2. 结论\n\n~~~python\n# 3. comment\n\\[ a \\]\n~~~\n\n希望本文对您有帮助。"
    _meta, body, _ = only_report(text, tmp_path)
    assert TRAPS in body
    assert "~~~python\n# 3. comment\n\\[ a \\]\n~~~" in body
    assert heading_texts(body) == ["1. 背景", "2. 结论"]


def test_unclosed_fence_is_closed_with_a_warning(tmp_path):
    _meta, body, result = only_report("# 标题\n\n## 1. 代码\n\n```python\nprint(1)\n", tmp_path)
    assert body.rstrip().endswith("```python\nprint(1)\n```")
    w = [d.format() for d in result.diagnostics if d.code == "import-fence"]
    assert w == [f"{result.files[0].display}:5: warning[import-fence]: code fence never closed; closed it at the end"]


@pytest.mark.parametrize(
    "src, expected",
    [
        ("前文：\n\n\\[ E = mc^2 \\]\n\n后文", "前文：\n\n$$\nE = mc^2\n$$\n\n后文"),
        ("前文：\n\\[\nE = mc^2\n\\]\n后文", "前文：\n\n$$\nE = mc^2\n$$\n\n后文"),
        ("行内 \\[x^2\\] 公式和 \\(y\\) 与 $z$", "行内 $$x^2$$ 公式和 \\(y\\) 与 $z$"),
        ("前文：\n$$\nx\n$$\n后文", "前文：\n\n$$\nx\n$$\n\n后文"),
        ("价格为$5，利润$x^2$", "价格为\\$5，利润$x^2$"),
        ("raised $10 million and $25M", "raised \\$10 million and \\$25M"),
        ("sum $1 + 2 = 3$ holds", "sum $1 + 2 = 3$ holds"),
        ("power $10^{3}$ units", "power $10^{3}$ units"),
        ("code `\\[x\\] $5` stays", "code `\\[x\\] $5` stays"),
    ],
)
def test_formula_delimiters(src, expected):
    out, _ = imp.normalise_math(lines_of(src))
    assert "\n".join(texts(imp.tidy_lines(out))) == expected


def test_normalised_formulas_render_as_math():
    out, _ = imp.normalise_math(lines_of("前文：\n\\[\nE = mc^2\n\\]\n后文，行内 \\[x^2\\] 与 $y$，价格$5，好。"))
    parsed = parse_markdown("\n".join(texts(imp.tidy_lines(out))), "x.md")
    assert sorted(j.kind for j in parsed.jobs) == ["math-display", "math-display", "math-inline"]
    assert "$5" in parsed.html


# --- front matter YAML ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["NO", "on", "2024-01-05", "10:00", "1.10", ".5", "null", "a: b # c", "'quoted' \"both\"", "- dash", "@at", "%pct", "!tag"])
def test_front_matter_text_stays_text(value):
    meta = {"title": value, "date": "2025-01-02", "keywords": [value, "x"], "abstract": value, "lang": "zh", "source": "a.txt"}
    text = imp.render_report(meta, "正文")
    split, _ = split_front_matter(text, "x.md")
    data = parse_yaml(split.yaml_text).data
    assert data["title"] == value and data["keywords"][0] == value and data["abstract"] == value
    assert FrontMatter.model_validate(data).title == value


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=40))
def test_front_matter_round_trips_any_title(value):
    if not value.strip():
        return
    text = imp.render_report({"title": value.strip(), "date": "2025-01-02", "lang": "en", "source": "a.txt"}, "Body")
    split, _ = split_front_matter(text, "x.md")
    assert parse_yaml(split.yaml_text).data["title"] == value.strip()


# --- slugs and targets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "title, stem, slug",
    [
        ("Pricing AI Agents: A Guide", "x", "pricing-ai-agents-a-guide"),
        ("Café Économie", "x", "cafe-economie"),
        ("大模型创业指南", "000_abc", "000_abc"),
        ("AI大模型创业", "My Article (v2)", "my-article-v2"),
        ("大模型", "../../etc/passwd", "etc-passwd"),
        ("大模型", "文章", None),
    ],
)
def test_slugs(title, stem, slug):
    got = imp.make_slug(title, stem, "text")
    assert re.fullmatch(r"[a-z0-9][a-z0-9_-]*", got)
    if slug is not None:
        assert got == slug
    else:
        assert got.startswith("report-")


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=30), st.text(max_size=30))
def test_slug_is_always_a_safe_file_name(title, stem):
    slug = imp.make_slug(title, stem, "x")
    assert re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,79}", slug)
    assert ".." not in slug and "/" not in slug


def test_slug_from_hostile_file_name_stays_inside_the_target(tmp_path):
    result, files = convert("# 标题\n\n## 1. 甲\n\n正文。", tmp_path, name="..%2f..%2fevil.txt")
    assert result.errors == []
    assert [f.name for f in files] == ["2f-2fevil.md"]
    assert files[0].parent == tmp_path / "reports"


# --- engine: existing files, errors, dry run --------------------------------------------------------------


def test_existing_report_is_not_overwritten_without_force(tmp_path):
    result, files = convert("# Alpha Report\n\n## 1. One\n\nText.", tmp_path)
    target = files[0]
    target.write_text("---\ntitle: Mine\n---\n\nHand edited.\n", "utf-8")
    result = import_files([tmp_path / "in" / "article.txt"], tmp_path / "reports", today=TODAY)
    assert [d.format() for d in result.errors] == [
        f"{result.files[0].display}:1: error[import-exists]: {_display(target)} already exists; use --force to overwrite it"
    ]
    assert target.read_text("utf-8") == "---\ntitle: Mine\n---\n\nHand edited.\n"
    result = import_files([tmp_path / "in" / "article.txt"], tmp_path / "reports", today=TODAY, force=True)
    assert result.errors == [] and "title: Alpha Report" in target.read_text("utf-8")
    assert oct(target.stat().st_mode & 0o777) == "0o644"


def test_identical_reimport_is_unchanged_and_deterministic(tmp_path):
    _result, files = convert(ZH_ARTICLE, tmp_path)
    before = files[0].read_bytes()
    mtime = files[0].stat().st_mtime_ns
    result = import_files([tmp_path / "in" / "article.txt"], tmp_path / "reports", today=TODAY)
    assert result.errors == [] and [r.status for r in result.files[0].reports] == ["unchanged"]
    assert files[0].read_bytes() == before and files[0].stat().st_mtime_ns == mtime


def test_force_writes_through_no_symlink(tmp_path):
    outside = tmp_path / "outside.md"
    outside.write_text("precious", "utf-8")
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "alpha-report.md").symlink_to(outside)
    src = tmp_path / "a.txt"
    src.write_text("# Alpha Report\n\n## 1. One\n\nText.", "utf-8")
    result = import_files([src], reports, today=TODAY)
    assert [d.code for d in result.errors] == ["import-exists"]
    result = import_files([src], reports, today=TODAY, force=True)
    assert result.errors == []
    assert outside.read_text("utf-8") == "precious"
    assert not (reports / "alpha-report.md").is_symlink()


def test_bad_files_are_errors_naming_the_file_and_others_still_import(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("# Good Report\n\n## 1. One\n\nText.", "utf-8")
    binary = tmp_path / "pic.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    gbk = tmp_path / "gbk.txt"
    gbk.write_bytes("# 标题\n\n正文".encode("gbk"))
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n", "utf-8")
    missing = tmp_path / "missing.txt"
    result = import_files([binary, gbk, good, empty, missing], tmp_path / "reports", today=TODAY)
    errors = {Path(d.location.path).name: d for d in result.errors}
    assert set(errors) == {"pic.txt", "gbk.txt", "empty.txt", "missing.txt"}
    assert (errors["pic.txt"].location.line, errors["pic.txt"].location.col) == (3, 1)
    assert errors["pic.txt"].message == "binary file (NUL byte); expected UTF-8 text"
    assert (errors["gbk.txt"].location.line, errors["gbk.txt"].location.col) == (1, 3)
    assert errors["gbk.txt"].message == "not UTF-8 text (invalid byte 0xb1); save the file as UTF-8"
    assert errors["empty.txt"].message == "file is empty"
    assert errors["missing.txt"].message == "not readable file".replace("not ", "not a ")
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["good-report.md"]


def test_bom_and_crlf_are_accepted(tmp_path):
    meta, body, _ = only_report("\ufeff# Alpha Report\r\n\r\nKeywords: a, b\r\n\r\n## 1. One\r\n\r\nText.\r\n", tmp_path)
    assert meta["title"] == "Alpha Report" and meta["keywords"] == ["a", "b"] and "\r" not in body


def test_two_sources_with_one_slug_is_an_error(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    for p in (a, b):
        p.write_text("# Same Title\n\n## 1. One\n\nText.", "utf-8")
    result = import_files([a, b], tmp_path / "reports", today=TODAY)
    assert len(result.errors) == 1
    assert result.errors[0].location.path.endswith("b.txt")
    assert "would also be written from" in result.errors[0].message and result.errors[0].message.endswith("rename one source file")
    assert [p.name for p in (tmp_path / "reports").iterdir()] == ["same-title.md"]


def test_dry_run_writes_nothing(tmp_path):
    result, files = convert(ZH_ARTICLE + "<|endoftext|>" + ZH_ARTICLE, tmp_path, dry_run=True)
    assert files == [] and not (tmp_path / "reports").exists()
    fi = result.files[0]
    assert [r.status for r in fi.reports] == ["dry-run"]
    assert fi.diff.startswith(f"--- {fi.display}\n+++ ")
    assert "-<|endoftext|>### 文章标题" in fi.diff
    assert "+authors:\n+- 陈晨\n" in fi.diff


def test_cli_import_into_and_exit_codes(cli, tmp_path):
    project = tmp_path / "site"
    project.mkdir()
    src = tmp_path / "a.txt"
    src.write_text(ZH_ARTICLE, "utf-8")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00\x00")
    res = cli("-C", str(project), "import", "--into", "content/imported", str(src), str(bad))
    assert res.exit_code == 1
    assert "bad.txt:1:3: error[import-read]: binary file (NUL byte); expected UTF-8 text" in res.stderr
    assert (project / "content" / "imported" / "a.md").is_file()
    assert "a.txt → " in res.stdout and "[zh, written]" in res.stdout
    res = cli("-C", str(project), "import", "--into", "content/imported", str(src))
    assert res.exit_code == 0 and "[zh, unchanged]" in res.stdout
    (project / "content" / "imported" / "a.md").write_text("changed", "utf-8")
    res = cli("-C", str(project), "import", "--into", "content/imported", str(src))
    assert res.exit_code == 1 and "error[import-exists]" in res.stderr and "use --force" in res.stderr
    res = cli("-C", str(project), "import", "--into", "content/imported", "--force", str(src))
    assert res.exit_code == 0 and (project / "content" / "imported" / "a.md").read_text("utf-8").startswith("---\ntitle: 边缘推理创业\n")


def test_english_article_end_to_end(tmp_path):
    text = (FIXTURES / "en_duplicated.txt").read_text("utf-8")
    meta, body, _ = only_report(text, tmp_path)
    assert parse_markdown(body, "x.md").diagnostics == []
    assert os.path.basename(meta["source"]) == "article.txt"
