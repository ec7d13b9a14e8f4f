"""Incremental builds and live preview on the N-report corpus (issue 8 targets), printed as figures.

    python benchmarks/bench_incremental.py [--reports 1000] [--dir benchmarks/corpus/incremental] [--rounds 3]

Measured:
- `sitegen build` (a fresh process each time, as a user runs it) after no change, after one
  report's body edited, after one report's title edited (every listing changes), after one profile
  edited; wall time and the CPU time of the process (on a shared machine wall time includes waiting
  for a core; CPU time is what the build itself costs);
- `sitegen serve`: from writing the file to the rebuilt-pages event on the live-reload channel
  (watcher latency included), and the rebuild alone as the server reports it.

The main figures are taken with the search index off (Pagefind re-indexes the whole site, which
hugo/mkdocs/pelican do not do either); one extra line shows an edit with search on.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from corpus import write_corpus  # noqa: E402

TARGETS = {
    "serve: edit → rebuilt (one report)": 0.150,
    "build after one report edited": 0.5,
    "build after no change": 1.0,
    "build after one profile edited": 1.0,
}


def cli_build(project: Path) -> tuple[float, float, str]:
    """One `sitegen build` in a fresh process: (wall seconds, CPU seconds, stderr)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "generator.cli", "-C", str(project), "-v", "build"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit("build failed")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stderr


def set_search(config: Path, enabled: bool) -> None:
    """Turn the Pagefind index on or off in the corpus config."""
    import yaml

    data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    data["search"] = {**(data.get("search") or {}), "enabled": enabled}
    config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def summary_line(stderr: str) -> str:
    return next((line for line in stderr.splitlines() if line.startswith("sitegen: built")), "").replace("sitegen: ", "")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def measure(label: str, project: Path, rounds: int, change) -> dict:
    walls, cpus, last = [], [], ""
    for i in range(rounds):
        change(i)
        wall, cpu, err = cli_build(project)
        walls.append(wall)
        cpus.append(cpu)
        last = summary_line(err)
    row = {"label": label, "wall": statistics.median(walls), "best": min(walls), "cpu": statistics.median(cpus), "detail": last}
    target = TARGETS.get(label)
    verdict = "" if target is None else (" ✓" if row["wall"] <= target else f"  (target {target:.2f} s)")
    print(f"{label:<42} wall {row['wall']:6.2f} s (best {row['best']:.2f})  cpu {row['cpu']:5.2f} s{verdict}")
    print(f"{'':<42} {last}")
    return row


class StatusStream:
    """Reads the preview's server-sent events; `wait(gen)` returns the first status newer than gen."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(f"GET /__sitegen__/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        self.cond = threading.Condition()
        self.latest: dict = {"generation": -1}
        self.arrived = 0.0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buf = b""
        while chunk := self.sock.recv(65536):
            buf += chunk
            while b"\n\n" in buf:
                block, buf = buf.split(b"\n\n", 1)
                for line in block.decode().splitlines():
                    if line.startswith("data: {"):
                        with self.cond:
                            self.latest = json.loads(line[6:])
                            self.arrived = time.perf_counter()
                            self.cond.notify_all()

    def wait(self, generation: int, timeout: float = 120) -> tuple[dict, float]:
        with self.cond:
            self.cond.wait_for(lambda: self.latest.get("generation", -1) > generation or not self.latest.get("ok", True), timeout)
            return self.latest, self.arrived


def bench_serve(project: Path, rounds: int) -> dict:
    from generator.commands.serve import Preview, ServeOptions

    preview = Preview(project, ServeOptions(port=0, step_ms=20))
    t = time.perf_counter()
    preview.start()
    started = time.perf_counter() - t
    stream = StatusStream(preview.port)
    status, _ = stream.wait(-1)
    target = project / "content/reports/r0500.md"
    latencies, rebuilds, cpus = [], [], []
    try:
        for i in range(rounds + 1):
            gen = status["generation"]
            time.sleep(0.3)  # let the watcher settle between edits
            written = time.perf_counter()
            edit(target, "## 1.", f"Serve edit {i}.\n\n## 1.")
            status, arrived = stream.wait(gen)
            if not status.get("ok"):
                raise SystemExit(f"preview build failed: {status}")
            if i == 0:
                continue  # the first edit also warms the watcher
            latencies.append(arrived - written)
            rebuilds.append(status["seconds"])
            cpus.append(status["cpu_seconds"])
    finally:
        preview.close()
    row = {"label": "serve: edit → rebuilt (one report)", "wall": statistics.median(latencies), "best": min(latencies),
           "rebuild": statistics.median(rebuilds), "cpu": statistics.median(cpus), "start": started,
           "pages": status.get("rendered")}
    ok = " ✓" if row["wall"] <= TARGETS[row["label"]] else f"  (target {TARGETS[row['label']] * 1000:.0f} ms)"
    print(f"{'serve: first preview (temp folder, warm caches)':<42} {started:6.2f} s")
    print(f"{row['label']:<42} {row['wall'] * 1000:6.0f} ms (best {row['best'] * 1000:.0f}), "
          f"rebuild alone {row['rebuild'] * 1000:.0f} ms (cpu {row['cpu'] * 1000:.0f} ms), {row['pages']} page(s) rendered{ok}")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reports", type=int, default=1000)
    ap.add_argument("--dir", type=Path, default=HERE / "corpus" / "incremental")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    project = write_corpus(args.dir, args.reports)
    config = project / "sitegen.yaml"
    set_search(config, False)
    print(f"corpus: {args.reports} reports, {max(1, args.reports // 5)} profiles in {project}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} core(s)")

    wall, cpu, err = cli_build(project)
    print(f"{'first build (cold caches)':<42} wall {wall:6.2f} s  cpu {cpu:5.2f} s")
    report = project / "content/reports/r0500.md"
    profile = project / "content/startups/bench-0100.yaml"
    measure("build after no change", project, args.rounds, lambda i: None)
    measure("build after one report edited", project, args.rounds,
            lambda i: edit(report, "## 1.", f"An added sentence, round {i}.\n\n## 1."))
    measure("build after one report's title edited", project, args.rounds,
            lambda i: edit(report, "title: 基准报告 0500", f"title: 基准报告 0500 v{i}"))
    measure("build after one profile edited", project, args.rounds,
            lambda i: edit(profile, "tagline: ", f"tagline: v{i} "))
    bench_serve(project, args.rounds)

    set_search(config, True)
    cli_build(project)  # index once
    measure("with search on: one report edited", project, 1, lambda i: edit(report, "## 1.", "Search round.\n\n## 1."))
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    shutil.rmtree(project / "output.tmp", ignore_errors=True)


if __name__ == "__main__":
    main()
