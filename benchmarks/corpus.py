"""Deterministic benchmark corpus: N reports of 8–15 KB and N/5 start-up profiles.

Shape (issue 2): front matter, numbered h2/h3 sections, paragraphs mixing Chinese and English,
bullet lists, a pipe table, a fenced Python block, inline and display formulas, and a Mermaid
flowchart in one report in five.

    python benchmarks/corpus.py DIR --reports 1000
"""

from __future__ import annotations

import argparse
import random
import shutil
from pathlib import Path

ZH = ["人工智能", "商业模式", "订阅收入", "客户获取成本", "推理成本", "数据飞轮", "开放创新", "价值网络", "毛利率", "监管合规",
      "基础模型", "垂直行业", "渠道伙伴", "用户参与", "预付费", "现金流", "融资轮次", "市场规模", "竞争格局", "技术壁垒"]
EN = ["inference cost", "gross margin", "customer acquisition", "retention", "foundation model", "fine-tuning", "pricing power",
      "distribution", "unit economics", "network effects", "data moat", "enterprise sales", "churn", "payback period"]
SECTORS = ["fintech", "health", "edtech", "manufacturing", "retail", "legal", "media", "energy"]
STAGES = ["seed", "series-a", "series-b", "series-c", "growth"]
FORMULAS_INLINE = ["x^2 + y^2 = r^2", "\\alpha_t = \\frac{1}{t}", "\\sum_{i=1}^{n} w_i x_i", "p(y \\mid x)", "\\mathbb{E}[R]"]
FORMULAS_DISPLAY = [
    "\\mathrm{Attention}(Q,K,V) = \\mathrm{softmax}\\left(\\frac{QK^\\top}{\\sqrt{d_k}}\\right)V",
    "\\mathcal{L} = -\\sum_{i=1}^{N} y_i \\log \\hat{y}_i",
    "\\theta_{t+1} = \\theta_t - \\eta \\nabla_\\theta \\mathcal{L}(\\theta_t)",
    "\\mathrm{LTV} = \\frac{\\mathrm{ARPU} \\cdot m}{c}",
]


def paragraph(rng: random.Random) -> str:
    words = []
    for _ in range(rng.randint(25, 45)):
        words.append(rng.choice(ZH) if rng.random() < 0.6 else rng.choice(EN))
    text = "，".join("".join(words[i : i + 3]) for i in range(0, len(words), 3))
    return text + f"，其中 ${rng.choice(FORMULAS_INLINE)}$ 表示关键指标。"


def report(i: int, n_profiles: int, rng: random.Random) -> str:
    lines = [
        "---",
        f"title: 基准报告 {i:04d}：{rng.choice(ZH)}与{rng.choice(EN)}",
        f"date: 20{20 + i % 6}-{1 + i % 12:02d}-{1 + i % 28:02d}",
        "authors: [Benchmark Bot]",
        f"keywords: [{rng.choice(ZH)}, {rng.choice(EN)}, {rng.choice(ZH)}]",
        f"abstract: 这是第 {i} 篇基准报告的摘要，讨论{rng.choice(ZH)}与 {rng.choice(EN)}。",
        f"startups: [bench-{i % max(1, n_profiles):04d}]",
        "---",
        "",
    ]
    size_target = rng.randint(8_000, 15_000)
    sec = 0
    while len("\n".join(lines).encode()) < size_target:
        sec += 1
        lines += [f"## {sec}. {rng.choice(ZH)} {rng.choice(EN).title()}", "", paragraph(rng), ""]
        lines += [f"### {sec}.1 {rng.choice(ZH)}", "", paragraph(rng), ""]
        lines += [f"- {rng.choice(ZH)}：{rng.choice(EN)}" for _ in range(4)] + [""]
        if sec == 1:
            lines += ["| 指标 | 2023 | 2024 |", "|---|---:|---:|"]
            lines += [f"| {rng.choice(ZH)} | {rng.randint(1, 99)}% | {rng.randint(1, 99)}% |" for _ in range(4)] + [""]
            lines += ["```python", "def ltv(arpu: float, margin: float, churn: float) -> float:", "    return arpu * margin / churn", "```", ""]
        if sec == 2:
            lines += ["$$", rng.choice(FORMULAS_DISPLAY), "$$", ""]
        if sec == 3 and i % 5 == 0:
            lines += ["```mermaid", "flowchart LR", f"    A[{rng.choice(ZH)}] --> B({rng.choice(EN)})", f"    B --> C{{{rng.choice(ZH)}}}", "    C -->|是| D[结果]", "```", ""]
    return "\n".join(lines) + "\n"


def profile(i: int, rng: random.Random) -> str:
    a = rng.randint(20, 70)
    return "\n".join(
        [
            f"name: Bench {i:04d} 智能",
            "example: true",
            f"tagline: {rng.choice(ZH)}平台",
            f"founded: {2015 + i % 9}",
            f"stage: {rng.choice(STAGES)}",
            f"sectors: [{rng.choice(SECTORS)}]",
            "canvas:",
            f"  value_propositions: [{rng.choice(ZH)}]",
            f"  customer_segments: [{rng.choice(ZH)}]",
            "  revenue_streams:",
            f"    - {{name: 订阅, share: {a}}}",
            f"    - {{name: 服务, share: {100 - a}}}",
            "  cost_structure:",
            "    - {name: 算力, share: 60}",
            "    - {name: 人员, share: 40}",
            "funding:",
            f"  - {{date: 2022-0{1 + i % 9}-01, round: Seed, amount: {rng.randint(1, 50) * 1_000_000}, currency: USD}}",
            "metrics:",
            f"  - {{year: 2023, revenue: {rng.randint(1, 9) * 1_000_000}}}",
            f"  - {{year: 2024, revenue: {rng.randint(10, 30) * 1_000_000}}}",
            "",
        ]
    )


def write_corpus(root: Path, n_reports: int, seed: int = 42, search: bool = False) -> Path:
    """Write a fresh corpus project into root (replacing it)."""
    rng = random.Random(seed)
    if root.exists():
        shutil.rmtree(root)
    (root / "content/reports").mkdir(parents=True)
    (root / "content/startups").mkdir(parents=True)
    (root / "sitegen.yaml").write_text(
        "title: Benchmark corpus\nlanguage: zh\nbase_url: https://example.org/bench/\n"
        f"search:\n  enabled: {'true' if search else 'false'}\n",
        encoding="utf-8",
    )
    n_profiles = max(1, n_reports // 5)
    for i in range(n_profiles):
        (root / f"content/startups/bench-{i:04d}.yaml").write_text(profile(i, rng), encoding="utf-8")
    for i in range(n_reports):
        (root / f"content/reports/r{i:04d}.md").write_text(report(i, n_profiles, rng), encoding="utf-8")
    return root


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--reports", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    write_corpus(args.dir, args.reports, args.seed)
    print(f"wrote {args.reports} reports and {max(1, args.reports // 5)} profiles into {args.dir}")
