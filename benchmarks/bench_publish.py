"""Publish speed: a synthetic output of N files pushed to a local bare repository (prints figures)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generator.commands.publish import PublishOptions, publish_site  # noqa: E402
from generator.writers.output import MANIFEST  # noqa: E402


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def write_output(out: Path, files: int, generation: int, changed_every: int) -> None:
    """files pages of ~8 KB; every changed_every-th page differs per generation."""
    hashes = {}
    for i in range(files):
        rel = f"reports/r{i:05d}/index.html" if i else "index.html"
        gen = generation if changed_every and i % changed_every == 0 else 0
        data = (f"<!doctype html><title>page {i} v{gen}</title>\n" + f"<p>text {i} </p>\n" * 400).encode()
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
        hashes[rel] = hashlib.sha256(data).hexdigest()
    (out / MANIFEST).write_text(json.dumps({"generator": "sitegen", "files": hashes}))


def timed(label: str, fn) -> object:
    start = time.perf_counter()
    result = fn()
    print(f"{label:<38} {time.perf_counter() - start:7.2f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sitegen-bench-publish-") as tmp:
        root = Path(tmp)
        os.environ.setdefault("GIT_AUTHOR_NAME", "bench")
        os.environ.setdefault("GIT_AUTHOR_EMAIL", "bench@example.com")
        os.environ.setdefault("GIT_COMMITTER_NAME", "bench")
        os.environ.setdefault("GIT_COMMITTER_EMAIL", "bench@example.com")
        git(root, "init", "-q", "--bare", "remote.git")
        proj = root / "site"
        proj.mkdir()
        git(proj, "init", "-q")
        (proj / "sitegen.yaml").write_text("title: Bench\n")
        (proj / ".gitignore").write_text("output/\n")
        git(proj, "add", ".")
        git(proj, "commit", "-q", "-m", "sources")
        git(proj, "remote", "add", "origin", str(root / "remote.git"))
        out = proj / "output"
        size = 0
        write_output(out, args.files, 0, 10)
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        print(f"output: {args.files} files, {size / 2**20:.1f} MiB")
        timed("first publish (new branch)", lambda: publish_site(proj, out, PublishOptions()))
        write_output(out, args.files, 1, 10)
        plan = timed("dry run, 10% of files changed", lambda: publish_site(proj, out, PublishOptions(dry_run=True)))
        print(f"  ({len(plan.changes)} changes listed)")
        timed("publish, 10% of files changed", lambda: publish_site(proj, out, PublishOptions()))
        timed("publish, nothing changed", lambda: publish_site(proj, out, PublishOptions()))


if __name__ == "__main__":
    main()
