"""Core build benchmark: full build, no-change rebuild and peak RSS on the N-report corpus; `sitegen --help`.

    python benchmarks/bench_build.py [--reports 1000] [--dir benchmarks/corpus/build]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from corpus import write_corpus  # noqa: E402


def timed(cmd: list[str], cwd: Path | None = None) -> tuple[float, int, str]:
    """Wall time, peak RSS (MB, of the child and its workers) and stderr of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if out.returncode != 0:
        print(out.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"command failed: {' '.join(cmd)}")
    return wall, max(peak, before) // 1024, out.stderr


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reports", type=int, default=1000)
    ap.add_argument("--dir", type=Path, default=HERE / "corpus" / "build")
    ap.add_argument("--search", action="store_true", help="also build the Pagefind index")
    args = ap.parse_args()
    sitegen = [sys.executable, "-m", "generator.cli"]
    project = write_corpus(args.dir, args.reports, search=args.search)
    shutil.rmtree(project / ".sitegen-cache", ignore_errors=True)

    helps = [timed(sitegen + ["--help"])[0] for _ in range(5)]
    cold, rss, err = timed(sitegen + ["-C", str(project), "-v", "build"])
    warm, rss2, _ = timed(sitegen + ["-C", str(project), "build"])
    shutil.rmtree(project / "output")
    cached, _, _ = timed(sitegen + ["-C", str(project), "build"])
    print(f"corpus: {args.reports} reports, {max(1, args.reports // 5)} profiles, search {'on' if args.search else 'off'}")
    print(f"sitegen --help: {min(helps) * 1000:.0f} ms (best of 5)")
    print(f"full build (cold caches): {cold:.2f} s, peak RSS {rss} MB")
    print(f"no-change rebuild:        {warm:.2f} s")
    print(f"full build, warm caches:  {cached:.2f} s")
    print("stage timings of the cold build:")
    print("\n".join(line for line in err.splitlines() if line.startswith("  ")))


if __name__ == "__main__":
    main()
