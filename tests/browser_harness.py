"""Real-browser test support: the sample site built by the CLI, served under a sub-path on
127.0.0.1, and Debian's chromium driven by Playwright with every request recorded."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlsplit

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]
SUB_PATH = "/repo/"
"""The site is served under a sub-path, as on GitHub Pages project sites."""
ARTIFACTS = REPO / "test-artifacts"
"""Screenshots (git-ignored)."""
TOP_LEVEL_SKIP = {".venv", "output", ".sitegen-cache", ".sitegen.lock", ".git", "tests", "benchmarks", "test-artifacts",
                  "build", "dist", "generator", "scripts"}
"""Not part of the sample project (code, output, caches, tooling); matched at the top level only. The
installed `sitegen` builds the copy, as it would any project."""


def _copy_ignore(folder: str, names: list[str]) -> set[str]:
    top = Path(folder).resolve() == REPO
    return {n for n in names if (top and (n in TOP_LEVEL_SKIP or n.startswith("output.")))
            or n in ("__pycache__", "node_modules") or n.endswith(".egg-info")}

requires_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (scripts/setup.sh installs Debian's chromium when run as root)"
)


def copy_sample_project(dest: Path) -> Path:
    """The repository's own sample site, copied so a build never touches the checkout."""
    shutil.copytree(REPO, dest, ignore=_copy_ignore)
    return dest


def build_with_cli(project: Path, out: Path, *extra: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`sitegen -C project build --out out` through the real console entry point."""
    proc = subprocess.run(
        [sys.executable, "-m", "generator.cli", "-C", str(project), "build", "--out", str(out), *extra],
        capture_output=True, text=True, timeout=timeout, cwd=project,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


SAMPLE_WITH_PDF = os.environ.get("SITEGEN_BROWSER_PDF", "1") != "0"
"""The shared sample build runs `sitegen build --pdf` (PDF links are followed too); SITEGEN_BROWSER_PDF=0
leaves WeasyPrint out for quicker runs."""


def sample_build(tmp_path_factory) -> Path:
    """The sample site as the browser and search tests see it (one build per session)."""
    return shared_sample_build(tmp_path_factory, *(("--pdf",) if SAMPLE_WITH_PDF else ()))


def shared_sample_build(tmp_path_factory, *extra: str) -> Path:
    """The sample site built once per test session, shared by every xdist worker (a file lock)."""
    import fcntl

    name = "sample-build" + "".join(a.replace("-", "_") for a in extra)
    session = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        session = session.parent  # the run's folder, above each worker's own
    root = session / name
    root.mkdir(exist_ok=True)
    out = root / "out"
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "done").exists():
            shutil.rmtree(root / "site", ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
            build_with_cli(copy_sample_project(root / "site"), out, *extra)
            (root / "done").write_text("ok\n")
    return out


class _SubPathHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the output folder at SUB_PATH only (everything else is a 404, like a real sub-path host)."""

    def log_message(self, *args) -> None:
        pass

    def translate_path(self, path: str) -> str:
        clean = unquote(urlsplit(path).path)
        if not clean.startswith(SUB_PATH):
            return "/nonexistent-outside-sub-path"
        return super().translate_path("/" + clean[len(SUB_PATH):])

    def end_headers(self) -> None:
        # Every run sees the files as built, never a cached copy from an earlier test.
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # A browser that navigates away closes its connection mid-response: not a failure of the site.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


@contextmanager
def serve(root: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 (free port); yields the site URL `http://127.0.0.1:PORT/repo/`."""
    handler = functools.partial(_SubPathHandler, directory=str(root))
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{SUB_PATH}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Traffic:
    """Everything a page did that a clean page should not: console errors, failures, other hosts."""

    origin: str
    requests: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return ([f"console: {m}" for m in self.console] + [f"page error: {m}" for m in self.page_errors]
                + [f"failed: {u}" for u in self.failed] + [f"other host: {u}" for u in self.foreign])


def launch(playwright):
    """Debian's chromium (Playwright's own browser download does not work here)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)


def watch(context, origin: str) -> Traffic:
    """Record every request of a browser context; requests to any other host are refused and listed."""
    traffic = Traffic(origin)

    def route(r) -> None:
        url = r.request.url
        traffic.requests.append(url)
        scheme = urlsplit(url).scheme
        if scheme in ("data", "blob", "about"):
            r.continue_()
        elif scheme in ("http", "https", "ws", "wss") and url.startswith(origin):
            r.continue_()
        elif scheme == "file" and origin.startswith("file:"):
            r.continue_()
        else:
            traffic.foreign.append(url)
            r.abort()

    context.route("**/*", route)

    def on_page(page) -> None:
        page.on("console", lambda m: m.type in ("error", "warning") and traffic.console.append(f"{m.type}: {m.text} ({page.url})"))
        page.on("pageerror", lambda e: traffic.page_errors.append(f"{e} ({page.url})"))
        # ERR_ABORTED: the page navigated away before a request finished (a favicon, mostly); a
        # missing file shows up as an HTTP error below, a refused host as `foreign`.
        page.on("requestfailed", lambda r: "ERR_ABORTED" not in (r.failure or "") and traffic.failed.append(f"{r.url} ({r.failure})"))
        page.on("response", lambda r: r.status >= 400 and traffic.failed.append(f"{r.url} (HTTP {r.status})"))

    context.on("page", on_page)
    return traffic


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
