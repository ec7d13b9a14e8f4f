"""PDF benchmark: sitegen's PDF path against raw WeasyPrint on the same HTML, in the same run.

The raw articles in ../shared/seeds are imported (`sitegen import`) into a scratch project and
built (diagrams, formulas); the print HTML of each report is then rendered
  - raw:     WeasyPrint alone, one process, its default fetcher and system fonts (same HTML and CSS,
             minus sitegen's @font-face subset);
  - sitegen: sitegen's path (font subsets, worker processes across cores), with an empty PDF cache,
             once with the font subsets still to cut ("cold") and once with them cached ("warm");
  - rerun:   `sitegen pdf` on the sample site a second time (nothing changed: nothing rendered).
Each phase runs in its own process so peak memory (max RSS of the process and its workers) is its own.

    python benchmarks/bench_pdf.py [--dir benchmarks/corpus/pdf] [--jobs N]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SEEDS = REPO.parent / "shared" / "seeds"


def _peak_mb() -> int:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) // 1024


def _site(project: Path):
    sys.path.insert(0, str(REPO))
    from generator.build import BuildOptions, load_site

    return load_site(project, BuildOptions(pdf=True)).site


def use_fonttools_subsetting() -> None:
    """Make WeasyPrint subset fonts with fontTools, as it does where libharfbuzz-subset is missing."""
    import weasyprint.pdf.fonts

    weasyprint.pdf.fonts.harfbuzz_subset = None
    import logging

    logging.getLogger("weasyprint").addFilter(lambda r: "instead of HarfBuzz-Subset" not in r.getMessage())


def render_with_fonttools(job):
    """Worker target for the fontTools variant of the sitegen path."""
    use_fonttools_subsetting()
    from generator.writers.pdf import render_pdf

    return render_pdf(job)


def phase_raw(project: Path, fonttools: bool = False) -> dict:
    """WeasyPrint alone on sitegen's print HTML: default fetcher, fonts found by fontconfig."""
    if fonttools:
        use_fonttools_subsetting()
    from generator.diagnostics import Diagnostics
    from generator.writers.pdf import base_stylesheets, collect_documents

    site = _site(project)
    docs = [d for d in collect_documents(site, project, Diagnostics(), book=False) if d.rel.startswith("pdf/reports/")]
    sheets = base_stylesheets(site, project)
    import weasyprint

    base = (project / "content").resolve().as_uri() + "/"
    out = {"pages": 0, "sizes": {}, "seconds": 0.0}
    t = time.perf_counter()
    for d in docs:
        css = [weasyprint.CSS(string=text, base_url=url) for text, url in sheets]
        document = weasyprint.HTML(string=d.html, base_url=base).render(stylesheets=css)
        pdf = document.write_pdf()
        out["pages"] += len(document.pages)
        out["sizes"][d.rel] = len(pdf)
    out["seconds"] = time.perf_counter() - t
    out["peak_mb"] = _peak_mb()
    return out


def phase_sitegen(project: Path, jobs: int, fonttools: bool = False) -> dict:
    """sitegen's path for the same reports, PDF cache emptied first."""
    import os

    from generator.diagnostics import Diagnostics
    from generator.writers.pdf import RENDER_TARGET, PdfStats, produce_pdfs

    target = RENDER_TARGET
    if fonttools:
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
        target = "bench_pdf:render_with_fonttools"

    site = _site(project)
    shutil.rmtree(project / ".sitegen-cache" / "pdf", ignore_errors=True)
    slugs = [r.slug for r in site.reports]
    stats = PdfStats()
    diags = Diagnostics()
    t = time.perf_counter()
    files = produce_pdfs(site, project, diags, jobs, slugs, False, target=target, stats=stats)
    seconds = time.perf_counter() - t
    errors = [d.format() for d in diags.errors]
    return {
        "pages": stats.pages, "seconds": seconds, "sizes": {k: len(v) for k, v in files.items()},
        "fonts_cut": stats.fonts_cut, "stages": stats.seconds, "errors": errors, "peak_mb": _peak_mb(),
    }


def _run_phase(args: list[str]) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"phase failed: {args}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _prepare(project: Path) -> None:
    if project.exists():
        shutil.rmtree(project)
    project.mkdir(parents=True)
    (project / "sitegen.yaml").write_text("title: 基准测试\nlanguage: zh\npdf:\n  book: false\n", encoding="utf-8")
    seeds = sorted(str(p) for p in SEEDS.glob("*.txt"))
    done = subprocess.run([sys.executable, "-m", "generator.cli", "-C", str(project), "import", *seeds], capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit("sitegen import failed")
    # Warm the diagram and formula caches so every phase starts from the same built site.
    _site(project)


def _rerun(tmp: Path) -> tuple[float, str]:
    """`sitegen pdf` twice on the sample site; the second run's wall time and summary."""
    sample = tmp / "sample"
    if sample.exists():
        shutil.rmtree(sample)
    sample.mkdir(parents=True)
    shutil.copytree(REPO / "content", sample / "content")
    shutil.copy(REPO / "sitegen.yaml", sample / "sitegen.yaml")
    cmd = [sys.executable, "-m", "generator.cli", "-C", str(sample), "pdf"]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if first.returncode != 0:
        print(first.stderr[-3000:], file=sys.stderr)
        raise SystemExit("sitegen pdf on the sample site failed")
    t = time.perf_counter()
    second = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    return time.perf_counter() - t, second.stderr.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", type=Path, default=HERE / "corpus" / "pdf")
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--phase", choices=["raw", "sitegen"], help=argparse.SUPPRESS)
    ap.add_argument("--fonttools", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--skip-fonttools", action="store_true", help="Leave out the fontTools-subsetting comparison.")
    args = ap.parse_args()
    project = (args.dir / "project").resolve()
    if args.phase:
        sys.path.insert(0, str(REPO))
        import os

        if args.phase == "raw":
            result = phase_raw(project, args.fonttools)
        else:
            result = phase_sitegen(project, args.jobs or os.cpu_count() or 1, args.fonttools)
        print(json.dumps(result))
        return
    sys.path.insert(0, str(REPO))
    _prepare(project)
    jobs = ["--jobs", str(args.jobs)] if args.jobs else []
    raw = _run_phase(["--dir", str(args.dir), "--phase", "raw"])
    shutil.rmtree(project / ".sitegen-cache" / "fonts", ignore_errors=True)
    cold = _run_phase(["--dir", str(args.dir), "--phase", "sitegen", *jobs])
    warm = _run_phase(["--dir", str(args.dir), "--phase", "sitegen", *jobs])
    ft = None
    if not args.skip_fonttools:
        ft = (_run_phase(["--dir", str(args.dir), "--phase", "raw", "--fonttools"]),
              _run_phase(["--dir", str(args.dir), "--phase", "sitegen", "--fonttools", *jobs]))
    rerun, summary = _rerun(args.dir)

    def line(name: str, r: dict) -> str:
        rate = r["pages"] / r["seconds"] if r["seconds"] else 0.0
        return f"{name:<16} {r['pages']:>4} pages {r['seconds']:7.2f} s {rate:7.2f} pages/s  peak {r['peak_mb']:>5} MB"

    print(f"PDF benchmark: {len(raw['sizes'])} reports from {SEEDS} (cores: {args.jobs or 'all'})")
    print(line("raw WeasyPrint", raw))
    print(line("sitegen (cold)", cold) + f"  fonts cut: {cold['fonts_cut']} in {cold['stages'].get('fonts', 0):.2f} s")
    print(line("sitegen (warm)", warm))
    for name in ("cold", "warm"):
        r = {"cold": cold, "warm": warm}[name]
        if r["errors"]:
            print(f"  {name} errors: {r['errors'][:3]}")
    speed = (warm["pages"] / warm["seconds"]) / (raw["pages"] / raw["seconds"])
    print(f"speed-up (warm fonts): {speed:.2f}x   (cold: {(cold['pages'] / cold['seconds']) / (raw['pages'] / raw['seconds']):.2f}x)")
    print("PDF sizes (bytes)            raw      sitegen   ratio")
    for rel, size in sorted(raw["sizes"].items()):
        mine = warm["sizes"].get(rel, 0)
        print(f"  {Path(rel).name:<24} {size:>9} {mine:>10}   {mine / size:5.2f}")
    if ft is not None:
        raw_ft, mine_ft = ft
        print("WeasyPrint subsetting with fontTools (as where libharfbuzz-subset is missing):")
        print(line("raw WeasyPrint", raw_ft))
        print(line("sitegen (warm)", mine_ft))
        print(f"speed-up: {(mine_ft['pages'] / mine_ft['seconds']) / (raw_ft['pages'] / raw_ft['seconds']):.2f}x; "
              f"sizes sitegen/raw: {sum(mine_ft['sizes'].values()) / sum(raw_ft['sizes'].values()):.2f}")
    print(f"second `sitegen pdf` on the sample site: {rerun:.2f} s — {summary}")


if __name__ == "__main__":
    main()
