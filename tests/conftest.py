"""Shared fixtures: tiny projects built from a dict of files, the CLI, output tree hashes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import settings

# CI runs the property tests on a fixed sequence of examples, so a landing never depends on luck;
# local runs keep exploring new examples (and save any failure to .hypothesis/).
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

BASIC_CONFIG = """\
title: Test Site
description: A test site
base_url: https://example.org/repo/
language: en
"""

BASIC_PROFILE = """\
name: Acme AI
example: true
tagline: Tests everything
founded: 2020
hq: Berlin
stage: seed
sectors: [fintech]
canvas:
  value_propositions: [Speed]
  customer_segments: [Banks]
  revenue_streams:
    - {name: Subscriptions, share: 70}
    - {name: Services, share: 30}
  cost_structure:
    - {name: Compute, share: 100}
funding:
  - {date: 2021-01-05, round: Seed, amount: 2000000, currency: USD, investors: [Example Ventures]}
"""

BASIC_REPORT = """\
---
title: First report
date: 2024-05-01
authors: [Ann Analyst]
keywords: [payments, AI]
abstract: A short abstract.
startups: [acme]
---

## 1. Intro

Hello **world**.

## 2. Details

Some text with a [link](../../index.html).
"""


def write_files(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(textwrap.dedent(data) if data.startswith("\n") else data, encoding="utf-8")
    return root


@pytest.fixture
def make_project(tmp_path):
    """make_project({path: text}) → a project folder; sitegen.yaml and one profile/report by default."""

    def make(files: dict[str, str | bytes] | None = None, *, basic: bool = True, name: str = "site") -> Path:
        root = tmp_path / name
        root.mkdir(exist_ok=True)
        base: dict[str, str | bytes] = {}
        if basic:
            base = {
                "sitegen.yaml": BASIC_CONFIG,
                "content/startups/acme.yaml": BASIC_PROFILE,
                "content/reports/first.md": BASIC_REPORT,
            }
        base.update(files or {})
        return write_files(root, base)

    return make


class CliResult:
    def __init__(self, exit_code: int, stdout: str, stderr: str):
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr
        self.output = stdout + stderr


@pytest.fixture
def cli():
    """Run `sitegen ARGS` in-process (Click's runner); returns exit code, stdout and stderr."""
    from generator.cli import main

    def run(*args: str, input: str | None = None) -> CliResult:
        runner = CliRunner()
        res = runner.invoke(main, list(args), input=input, catch_exceptions=False)
        return CliResult(res.exit_code, res.stdout, res.stderr)

    return run


def run_sitegen(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real console entry point in a subprocess."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "generator.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def tree_hash(root: Path) -> str:
    """Hash of every path, mode and byte under root (for "previous output untouched" checks)."""
    h = hashlib.sha256()
    if not root.exists():
        return "missing"
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        h.update(rel.encode())
        if p.is_symlink():
            h.update(b"L" + os.readlink(p).encode())
        elif p.is_file():
            h.update(b"F" + p.read_bytes())
        else:
            h.update(b"D")
    return h.hexdigest()
