"""Math benchmark: the whole formula corpus (../shared/corpora/math) rendered cold and warm.

Prints, for the site's MathML path and the PDF's SVG path (ziamath in worker processes): total
time, median and p90 per formula, cold (empty cache) and warm (second run: cache only). Ends with
what this means for a 1000-report build with formulas on every page.

    python benchmarks/bench_math.py [--workers 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import yaml  # noqa: E402

from generator.config import MathConfig  # noqa: E402
from generator.diagnostics import Location  # noqa: E402
from generator.models import Job  # noqa: E402
from generator.services import math as math_service  # noqa: E402

CORPUS = HERE.parent.parent / "shared" / "corpora" / "math" / "formulas.yaml"


def load_jobs() -> list[tuple[MathConfig, list[Job]]]:
    """Corpus entries as jobs, grouped by the macros they need."""
    entries = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))
    groups: dict[tuple, list[Job]] = {}
    for e in entries:
        key = tuple(sorted((e.get("macros") or {}).items()))
        kind = "math-display" if e["display"] else "math-inline"
        groups.setdefault(key, []).append(Job(kind, e["tex"], Location("corpus", 1), e["id"]))
    return [(MathConfig(macros=dict(k)), jobs) for k, jobs in groups.items()]


def run(groups, cache: Path | None, workers: int, want_print: bool) -> tuple[float, list[float], list[float], int, int]:
    """One pass over the corpus: wall time, per-formula MathML and SVG seconds, errors, formulas drawn."""
    wall = 0.0
    mathml: list[float] = []
    svg: list[float] = []
    errors = drawn = 0
    for config, jobs in groups:
        t = time.perf_counter()
        res = math_service.resolve_formulas(jobs, config, cache, workers, want_print)
        wall += time.perf_counter() - t
        st = math_service.last_stats
        mathml += st.mathml_seconds
        svg += st.svg_seconds
        drawn += st.rendered_mathml
        errors += sum(1 for r in res.values() if r.errors)
    return wall, mathml, svg, errors, drawn


def ms(values: list[float], q: float = 0.5) -> str:
    if not values:
        return "    -"
    s = sorted(values)
    return f"{s[min(len(s) - 1, int(q * len(s)))] * 1000:7.2f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="cold MathML-only passes (median is reported)")
    args = ap.parse_args()
    groups = load_jobs()
    n = sum(len(j) for _, j in groups)
    print(f"corpus: {n} formulas ({CORPUS})")

    from latex2mathml.converter import convert

    bare = []
    for _, jobs in groups:
        for j in jobs:
            t = time.perf_counter()
            try:
                convert(j.source)
            except Exception:
                pass
            bare.append(time.perf_counter() - t)
    print(f"latex2mathml alone            median {ms(bare)} ms   p90 {ms(bare, 0.9)} ms")

    walls, medians = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            wall, mathml, _svg, errors, _ = run(groups, Path(tmp), args.workers, want_print=False)
        walls.append(wall)
        medians.append(statistics.median(mathml))
    print(f"HTML (MathML) cold            total {statistics.median(walls):6.2f} s   median {statistics.median(medians) * 1000:7.2f} ms/formula"
          f"   p90 {ms(mathml, 0.9)} ms   errors {errors}")

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        wall, mathml, svg, errors, _ = run(groups, cache, args.workers, want_print=True)
        print(f"HTML + PDF (SVG) cold         total {wall:6.2f} s   SVG median {ms(svg)} ms/formula   p90 {ms(svg, 0.9)} ms"
              f"   max {max(svg) * 1000:7.1f} ms   workers {args.workers}   errors {errors}")
        wall2, _m, _s, errors2, drawn2 = run(groups, cache, args.workers, want_print=True)
        print(f"HTML + PDF warm (cache)       total {wall2:6.2f} s   median {wall2 / n * 1000:7.3f} ms/formula"
              f"   formulas re-rendered {drawn2}   errors {errors2}")

    med_mathml = statistics.median(medians)
    med_svg = statistics.median(svg)
    for per_page in (5, 10):
        k = 1000 * per_page
        print(f"1000 reports x {per_page:2d} distinct formulas: MathML ≈ {k * med_mathml:5.1f} s serial;"
              f" SVG ≈ {k * med_svg / args.workers:6.1f} s on {args.workers} workers (budget for the whole build: 4 s)")


if __name__ == "__main__":
    main()
