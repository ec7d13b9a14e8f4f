"""`sitegen init [DIR]`: a new site that builds at once; existing files are never overwritten."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .. import __version__
from ..diagnostics import EnvironmentProblem

Language = Literal["zh", "en"]


@dataclass
class InitOptions:
    """What `sitegen init` was asked for."""

    language: Language = "zh"
    title: str | None = None
    """Site title (default: a placeholder in the chosen language)."""


@dataclass
class InitResult:
    """Which files init wrote, and which it found already there and left alone."""

    root: Path
    created: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> list[str]:
        """Human-readable lines for the CLI."""
        lines = [f"created {rel}" for rel in self.created]
        lines += [f"kept    {rel} (already exists; not overwritten)" for rel in self.skipped]
        if self.created:
            lines.append(f"new site in {self.root}: run `sitegen -C {self.root} build`, then open output/index.html")
        else:
            lines.append(f"nothing to do: every file of a new site already exists in {self.root}")
        return lines


# --- what a new site holds -------------------------------------------------------------------

_TITLE = {"zh": "我的 AI 创业分析", "en": "My AI start-up analyses"}

_CONFIG = """\
# sitegen.yaml — every option, its type and default: see `sitegen --help` and the sitegen docs.
title: {title}
description: {description}
# The public address, used only for canonical links, the sitemap and the feed. Links inside the
# site are relative, so it also works under a sub-path such as https://USER.github.io/REPO/.
base_url: ""
language: {language}
authors: [{author}]

output_dir: output            # what `sitegen build` writes and `sitegen publish` pushes
cache_dir: .sitegen-cache     # diagram, formula and PDF caches; always safe to delete

diagrams:
  renderer: embedded          # Mermaid to SVG at build time, no browser needed
math:
  html: mathml

publish:                      # `sitegen publish` (a gh-pages branch); the workflow in .github/ needs none of it
  remote: origin
  branch: gh-pages
  # cname: docs.example.com   # custom domain; when unset, a CNAME already on the branch is kept
"""

_DESCRIPTION = {"zh": "人工智能初创企业商业模式分析", "en": "Business-model analyses of AI start-ups"}
_AUTHOR = {"zh": "编辑部", "en": "Editorial team"}

_REPORT = {
    "zh": """\
---
title: 示例报告：一家虚构 AI 企业的商业模式
date: 2025-01-15
authors: [编辑部]
tags: [示例, 商业模式]
abstract: 这是 sitegen init 生成的示例报告，演示 front matter、Mermaid 图、公式和企业档案的引用。可以修改或删除它。
startups: [example-startup]
example: true
---

## 概述

本报告分析虚构企业**示例智能**（见 `content/startups/example-startup.yaml`）。报告是带 YAML
front matter 的 Markdown 文件，放在 `content/reports/` 下；文件名就是网址中的 slug。

## 交付流程

```mermaid
flowchart LR
    A[客户数据] --> B(模型微调)
    B --> C{人工审核}
    C -->|通过| D[交付]
    C -->|退回| B
```

## 单位经济

设每月活跃客户为 $N$，客单价为 $p$，则月收入为 $R = N \\cdot p$。毛利率为

$$
m = \\frac{R - C}{R}
$$

其中 $C$ 为推理与交付成本。

## 收入结构

```startup-diagram
startup: example-startup
kind: revenue
```
""",
    "en": """\
---
title: "Example report: the business model of a fictional AI start-up"
date: 2025-01-15
authors: [Editorial team]
tags: [example, business model]
abstract: An example report written by sitegen init. It shows front matter, a Mermaid diagram, formulas and a link to a start-up profile. Edit it or delete it.
startups: [example-startup]
example: true
---

## Overview

This report looks at the fictional company **Example AI** (see `content/startups/example-startup.yaml`).
A report is a Markdown file with YAML front matter under `content/reports/`; its file name is its slug.

## Delivery

```mermaid
flowchart LR
    A[Customer data] --> B(Fine-tuning)
    B --> C{Human review}
    C -->|approved| D[Delivery]
    C -->|rework| B
```

## Unit economics

With $N$ active customers a month paying $p$ each, monthly revenue is $R = N \\cdot p$ and the gross margin is

$$
m = \\frac{R - C}{R}
$$

where $C$ is the cost of inference and delivery.

## Revenue mix

```startup-diagram
startup: example-startup
kind: revenue
```
""",
}

_PROFILE = {
    "zh": """\
# 示例企业档案（虚构）。字段说明见 sitegen 文档；一个 YAML 文件描述一家企业，文件名即 slug。
name: 示例智能 (Example AI)
example: true
tagline: 面向中小企业的合同审阅助手
description: |
  示例智能是一家**虚构**企业，由 `sitegen init` 生成，用来演示企业档案的写法。
founded: 2023
hq: 上海
stage: seed
sectors: [legal, enterprise]
website: https://example.com
canvas:
  value_propositions: [合同审阅时间缩短一半, 风险条款自动标注]
  customer_segments: [中小企业法务, 律师事务所]
  channels: [线上自助注册, 合作律所]
  key_resources: [标注合同语料, 法律专家团队]
  revenue_streams:
    - {name: 订阅, share: 70}
    - {name: 按份计费, share: 30}
  cost_structure:
    - {name: 算力, share: 40}
    - {name: 研发, share: 45}
    - {name: 销售, share: 15}
funding:
  - {date: 2024-05-10, round: 种子轮, amount: 5000000, currency: CNY, investors: [示例天使基金]}
metrics:
  - {year: 2024, revenue: 1200000, customers: 40, employees: 12}
risks:
  - {category: legal, title: 法律意见的责任边界, likelihood: 3, impact: 4, mitigation: 明确仅作辅助审阅}
  - {category: data-privacy, title: 客户合同保密, likelihood: 2, impact: 5, mitigation: 私有化部署选项}
roadmap:
  - {date: 2025-03, title: 英文合同支持, status: planned}
""",
    "en": """\
# An example start-up profile (fictional). One YAML file per company; the file name is its slug.
name: Example AI
example: true
tagline: A contract-review assistant for small businesses
description: |
  Example AI is a **fictional** company written by `sitegen init` to show how a profile looks.
lang: en
founded: 2023
hq: Shanghai
stage: seed
sectors: [legal, enterprise]
website: https://example.com
canvas:
  value_propositions: [Contract review in half the time, Risky clauses flagged automatically]
  customer_segments: [In-house legal teams of small businesses, Law firms]
  channels: [Self-service sign-up, Partner law firms]
  key_resources: [Annotated contract corpus, Legal experts]
  revenue_streams:
    - {name: Subscriptions, share: 70}
    - {name: Pay per document, share: 30}
  cost_structure:
    - {name: Compute, share: 40}
    - {name: R&D, share: 45}
    - {name: Sales, share: 15}
funding:
  - {date: 2024-05-10, round: Seed, amount: 700000, currency: USD, investors: [Example Angels]}
metrics:
  - {year: 2024, revenue: 170000, customers: 40, employees: 12}
risks:
  - {category: legal, title: Liability for legal advice, likelihood: 3, impact: 4, mitigation: Positioned as review support only}
  - {category: data-privacy, title: Confidential customer contracts, likelihood: 2, impact: 5, mitigation: On-premises option}
roadmap:
  - {date: 2025-03, title: Chinese-language contracts, status: planned}
""",
}

_TEMPLATES_README = """\
# Overriding the theme

sitegen ships a built-in theme. A file placed here replaces the theme's file **of the same
name**, one file at a time; everything you do not copy keeps coming from the theme, so
updates to sitegen still reach the pages you have not changed.

- Page templates: `base.html` (the frame of every page), `home.html`, `report.html`,
  `startup.html`, `report_list.html`, `startups.html`, `tag.html`, `tags.html`,
  `sector.html`, `sectors.html`, `compare.html`, `search.html`, `404.html`, plus the
  shared macros in `_macros.html`.
- Static files: `static/style.css`, `static/site.js` (copied to `output/static/`).
- Interface strings: `i18n.yaml`.

To change one, copy it from the theme (`python -c "import generator.templates as t; print(t.theme_dir())"`
prints where it is) into this folder and edit the copy. Templates are Jinja with autoescaping
and strict undefined variables: a misspelt variable is a build error naming `templates/FILE:LINE`.
Keep links relative (use the theme's `url` helpers) so the site also works under a sub-path.
"""

_GITIGNORE = """\
# sitegen
output/
output.tmp-*/
output.old-*/
.sitegen-cache/
.sitegen.lock
# Python
__pycache__/
.venv/
"""

_REQUIREMENTS_HEAD = """\
# What the Pages workflow installs. Pin sitegen so every deploy builds with the same version.
"""

_REQUIREMENTS_PYPI_NOTE = """\
# NOTE: the PyPI project named "sitegen" is an unrelated tool. If this version is not on your
# package index, point the line at your copy of sitegen instead, for example:
#   sitegen @ git+https://github.com/OWNER/sitegen@v{version}
"""

_WORKFLOW = """\
# Builds the site with sitegen and deploys it with GitHub's official Pages actions.
# One-time set-up: Settings → Pages → Build and deployment → Source: "GitHub Actions".
name: Deploy site to GitHub Pages

on:
  push:
    branches: [main]
  workflow_dispatch:

# The build job runs third-party code (pip packages): it gets read-only access.
permissions:
  contents: read

# One deployment at a time; a newer push waits instead of cancelling a deploy half-way.
concurrency:
  group: pages
  cancel-in-progress: false

jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
          cache: pip
          cache-dependency-path: requirements.txt
      - name: Install sitegen
        run: pip install -r requirements.txt
      - name: Build
        run: sitegen build --strict
      - uses: actions/upload-pages-artifact@v3
        with:
          path: output

  deploy:
    needs: build
    runs-on: ubuntu-latest
    # Only this job may publish to Pages and request the OIDC token the deployment needs.
    permissions:
      pages: write
      id-token: write
    environment:
      name: github-pages
      url: ${{ steps.deployment.outputs.page_url }}
    steps:
      - name: Deploy to GitHub Pages
        id: deployment
        uses: actions/deploy-pages@v4
"""


def _install_line() -> tuple[str, bool]:
    """The requirement that installs this very sitegen; True when it is the bare PyPI name."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        raw = distribution("sitegen").read_text("direct_url.json")
    except PackageNotFoundError:
        raw = None
    if raw:
        try:
            info = json.loads(raw)
        except ValueError:
            info = {}
        vcs = info.get("vcs_info") or {}
        url = info.get("url", "")
        if vcs.get("vcs") == "git" and url.startswith("https://") and vcs.get("commit_id"):
            return f"sitegen @ git+{url}@{vcs['commit_id']}", False
    return f"sitegen=={__version__}", True


def collect_scaffold(options: InitOptions) -> dict[str, str]:
    """Every file of a new site: relative path → text."""
    lang = options.language
    title = options.title or _TITLE[lang]
    install, on_pypi_name = _install_line()
    requirements = _REQUIREMENTS_HEAD
    if on_pypi_name:
        requirements += _REQUIREMENTS_PYPI_NOTE.format(version=__version__)
    requirements += install + "\n"
    return {
        "sitegen.yaml": _CONFIG.format(
            title=json.dumps(title, ensure_ascii=False),
            description=json.dumps(_DESCRIPTION[lang], ensure_ascii=False),
            language=lang,
            author=json.dumps(_AUTHOR[lang], ensure_ascii=False),
        ),
        "content/reports/example-report.md": _REPORT[lang],
        "content/startups/example-startup.yaml": _PROFILE[lang],
        "templates/README.md": _TEMPLATES_README,
        ".gitignore": _GITIGNORE,
        "requirements.txt": requirements,
        ".github/workflows/pages.yml": _WORKFLOW,
    }


def _check_no_symlinks(root: Path, rel: str) -> None:
    """Refuse to write through a symlinked folder: init writes inside DIR and nowhere else."""
    current = root
    for part in Path(rel).parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise EnvironmentProblem(f"refusing to write into {current}: it is a symlink")


def write_scaffold(target: Path, options: InitOptions | None = None) -> InitResult:
    """Create a new site in target; files that already exist are left exactly as they are."""
    options = options or InitOptions()
    if target.exists() and not target.is_dir():
        raise EnvironmentProblem(f"cannot create a site in {target}: it is not a folder")
    if options.title is not None and (not options.title.strip() or any(ord(c) < 32 for c in options.title)):
        raise EnvironmentProblem("--title must be one line of text")
    files = collect_scaffold(options)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot create {target}: {exc.strerror}") from None
    result = InitResult(root=target)
    for rel, text in files.items():
        _check_no_symlinks(target, rel)
        path = target / rel
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EnvironmentProblem(f"cannot create {path.parent}: {exc.strerror or exc}") from None
        try:
            # O_EXCL: never overwrite, never follow a symlink planted where the file goes.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            result.skipped.append(rel)
            continue
        except OSError as exc:
            raise EnvironmentProblem(f"cannot write {path}: {exc.strerror}") from None
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        result.created.append(rel)
    return result
