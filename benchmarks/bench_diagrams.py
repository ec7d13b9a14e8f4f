"""Diagram benchmark: 500 diagrams of ../shared/corpora/mermaid through sitegen's path, cold and warm,
against mermaid-render called directly in one process; and what a warm diagram cache adds to a build.

    python benchmarks/bench_diagrams.py [--count 500] [--workers 2] [--reports 100]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CORPUS = REPO.parent / "shared" / "corpora" / "mermaid"

DIRECT = """
import json, sys, time
t = time.perf_counter()
c = time.process_time()
from mermaid_render.renderer import render
ok = 0
for path in json.load(sys.stdin):
    try:
        render(open(path, encoding="utf-8").read(), "neutral")
        ok += 1
    except Exception:
        pass
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": time.process_time() - c, "ok": ok}))
"""

SITEGEN = """
import json, resource, sys, time
from pathlib import Path
from generator.config import DiagramsConfig
from generator.diagnostics import Location
from generator.models import Job
from generator.services.cache import hash_key
from generator.services.diagrams import resolve_diagrams

def main():
    args = json.load(sys.stdin)
    jobs = []
    for path in args["files"]:
        src = open(path, encoding="utf-8").read()
        jobs.append(Job("mermaid", src, Location(path, 1), hash_key("mermaid", src)))
    t = time.perf_counter()
    c = time.process_time()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = resolve_diagrams(jobs, DiagramsConfig(), Path(args["cache"]) if args["cache"] else None, args["workers"])
    seconds = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - c + (after.ru_utime - kids.ru_utime) + (after.ru_stime - kids.ru_stime)
    ok = sum(1 for j in jobs if not res[j.key].errors)
    cached = sum(1 for r in res.values() if r.cached)
    print(json.dumps({"seconds": seconds, "cpu": cpu, "ok": ok, "cached": cached, "unique": len(res)}))

if __name__ == "__main__":
    main()
"""


def run(code: str, payload: object) -> dict:
    """One fresh interpreter per measurement, so nothing is warm that a real build wouldn't have warm."""
    import json

    proc = subprocess.run([sys.executable, "-c", code], input=json.dumps(payload), capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def best(fn, repeat: int) -> tuple[float, dict]:
    runs = [fn() for _ in range(repeat)]
    fastest = min(runs, key=lambda r: r["seconds"])
    return fastest["seconds"], fastest


def write_project(root: Path, files: list[Path], reports: int, diagrams: bool) -> Path:
    """A project whose reports hold all the corpus diagrams as ```mermaid fences."""
    root.mkdir(parents=True)
    (root / "sitegen.yaml").write_text(
        "title: Bench\nlanguage: en\nsearch:\n  enabled: false\n" + ("" if diagrams else "diagrams:\n  enabled: false\n"),
        encoding="utf-8",
    )
    (root / "content" / "reports").mkdir(parents=True)
    per = max(1, -(-len(files) // reports))
    for i in range(reports):
        chunk = files[i * per : (i + 1) * per]
        body = [f"---\ntitle: Report {i}\ndate: 2024-01-{1 + i % 28:02d}\n---\n\n## Section\n\nSome text.\n"]
        for f in chunk:
            body.append("\n```mermaid\n" + f.read_text(encoding="utf-8").rstrip("\n").replace("```", "'''") + "\n```\n")
        (root / "content" / "reports" / f"r{i:03d}.md").write_text("".join(body), encoding="utf-8")
    return root


def timed_build(project: Path) -> float:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "generator.cli", "-C", str(project), "build"], capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t
    if proc.returncode not in (0, 1):
        raise SystemExit(proc.stderr[-3000:])
    return wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reports", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    files = sorted(CORPUS.glob("*.mmd"))[: args.count]
    paths = [str(f) for f in files]
    print(f"corpus: {len(files)} diagrams from {CORPUS}")
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall times below are best of {args.repeat})")

    direct_s, direct = best(lambda: run(DIRECT, paths), args.repeat)
    print(f"mermaid-render directly, one process:      {direct_s:6.2f} s  cpu {direct['cpu']:5.2f} s  ({direct['ok']} rendered, {direct_s / len(files) * 1000:.1f} ms each)")

    serial_s, serial = best(lambda: run(SITEGEN, {"files": paths, "cache": None, "workers": 0}), args.repeat)
    print(f"sitegen path, in-process (workers=0):      {serial_s:6.2f} s  cpu {serial['cpu']:5.2f} s  ({serial['ok']} rendered; adds limits, config filter, sanitiser)")

    colds, warms, cpus = [], [], []
    for _ in range(args.repeat):
        cache = Path(tempfile.mkdtemp(prefix="bench-diagrams-"))
        try:
            cold = run(SITEGEN, {"files": paths, "cache": str(cache), "workers": args.workers})
            warm = run(SITEGEN, {"files": paths, "cache": str(cache), "workers": args.workers})
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        colds.append(cold["seconds"])
        cpus.append(cold["cpu"])
        warms.append(warm["seconds"])
    print(f"sitegen path, cold cache ({args.workers} workers):       {min(colds):6.2f} s  cpu {min(cpus):5.2f} s  ({cold['ok']} rendered) = {min(colds) / direct_s:.2f}x direct (target <= 1.5x)")
    print(f"sitegen path, warm cache:                  {min(warms):6.2f} s  ({warm['cached']} of {warm['unique']} from cache, 0 rendered)")

    with tempfile.TemporaryDirectory(prefix="bench-diagram-build-") as tmp:
        with_d = write_project(Path(tmp) / "with", files, args.reports, diagrams=True)
        without = write_project(Path(tmp) / "without", files, args.reports, diagrams=False)
        timed_build(with_d)  # fills the diagram cache
        timed_build(without)
        plain, cached = [], []
        for _ in range(args.repeat):
            for project, out in ((without, plain), (with_d, cached)):
                shutil.rmtree(project / "output", ignore_errors=True)
                out.append(timed_build(project))
        a, b = statistics.median(plain), statistics.median(cached)
        print(f"build of {args.reports} reports, output removed, median of {args.repeat}:")
        print(f"  diagrams disabled (source shown as code): {a:6.2f} s")
        print(f"  diagrams from a warm cache:               {b:6.2f} s  (+{(b - a) / a * 100:.1f} %, target <= 5 %)")


if __name__ == "__main__":
    main()
