"""Search benchmark: Pagefind indexing time and bundle size on the N-report corpus, reuse on an
unchanged rebuild, re-indexing after one edit, and query latency in chromium (when installed).

    python benchmarks/bench_search.py [--reports 1000] [--dir benchmarks/corpus/search]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from corpus import write_corpus  # noqa: E402


def bundle_size(out: Path) -> tuple[int, int]:
    files = [p for p in (out / "pagefind").rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def query_latency(out: Path, queries: list[str]) -> list[tuple[str, float, int]]:
    """Time from pressing Enter on the search page to the results being shown (after one warm-up)."""
    from browser_harness import CHROMIUM, launch, serve
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        return []
    figures = []
    with serve(out) as base, sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_page()
        page.goto(base + "search/index.html?q=warmup")
        page.wait_for_function("document.getElementById('search-status').textContent.match(/\\d|没有/)")
        for q in queries:
            page.fill("#search-q", q)
            page.evaluate("document.getElementById('search-status').textContent = ''")
            t = time.perf_counter()
            page.press("#search-q", "Enter")
            page.wait_for_function("document.getElementById('search-status').textContent.match(/\\d|没有/)")
            figures.append((q, time.perf_counter() - t, page.locator("#search-results li").count()))
        browser.close()
    return figures


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reports", type=int, default=1000)
    ap.add_argument("--dir", type=Path, default=HERE / "corpus" / "search")
    args = ap.parse_args()
    from generator.build import BuildOptions, build

    project = write_corpus(args.dir, args.reports, search=True)
    shutil.rmtree(project / ".sitegen-cache", ignore_errors=True)
    out = project / "output"

    first = build(project, BuildOptions())
    files, size = bundle_size(out)
    again = build(project, BuildOptions())
    report = project / "content/reports/r0000.md"
    report.write_text(report.read_text(encoding="utf-8") + "\n新增段落：边际贡献与 payback period。\n", encoding="utf-8")
    edited = build(project, BuildOptions())

    print(f"corpus: {args.reports} reports, {max(1, args.reports // 5)} profiles ({first.stats.pages} pages)")
    print(f"index, full build:        {first.timings['search']:.2f} s ({files} files, {size / 1e6:.1f} MB bundle)")
    print(f"index, unchanged rebuild: {again.timings['search']:.2f} s (bundle reused)")
    print(f"index, one report edited: {edited.timings['search']:.2f} s")
    for q, secs, hits in query_latency(out, ["推理成本", "unit economics", "毛利率 churn"]):
        print(f"query {q!r}: {secs * 1000:.0f} ms to results in chromium ({hits} shown)")


if __name__ == "__main__":
    main()
