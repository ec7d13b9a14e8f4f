"""The preview: a temp folder, the in-memory site, the HTTP server and the watchers, rebuilt on every save."""

from __future__ import annotations

import gc
import json
import queue
import shutil
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from ...diagnostics import Diagnostics, SitegenError
from .hosts import HostPolicy
from .live import Broadcaster
from .options import BuildStatus, ServeOptions
from .server import PreviewServer
from .watch import watch_root, watch_tree


class Preview:
    """Temp folder + in-memory site + HTTP server + watcher; `start()`, then `close()` (or a `with`)."""

    def __init__(self, project: Path, options: ServeOptions | None = None, log: Callable[[str], None] | None = None,
                 verbose: bool = False):
        self.project = project.resolve()
        self.options = options or ServeOptions()
        self.log = log or (lambda line: None)
        self.verbose = verbose
        self.tempdir: Path | None = None
        self.root = Path()
        self.state: Any = None
        self.status = BuildStatus()
        self.events = Broadcaster()
        self.closing = threading.Event()
        self.policy = HostPolicy(self.options.host, self.options.port)
        self.server: PreviewServer | None = None
        self._threads: list[threading.Thread] = []
        self._changes: queue.Queue = queue.Queue()
        self._build_lock = threading.Lock()
        self._restart_tree = threading.Event()
        """Set when content/ or templates/ appear or vanish: the recursive watch starts over."""

    # lifecycle

    def start(self) -> "Preview":
        self.tempdir = Path(tempfile.mkdtemp(prefix="sitegen-serve-"))
        self.root = self.tempdir / "site"
        self.root.mkdir()
        self.state = _warm_state(self.project, self.options.untrusted)
        try:
            self.server = PreviewServer((self.options.host, self.options.port), self)
        except OSError as exc:
            self.close()
            from ...diagnostics import EnvironmentProblem

            raise EnvironmentProblem(f"cannot listen on {self.options.host}:{self.options.port}: {exc.strerror}") from None
        self.policy = HostPolicy(self.options.host, self.port)
        if self.policy.any:
            self.log(f"warning: serving on {self.options.host} makes the preview reachable from other machines on your network")
        self.rebuild(reason="start")
        # The loaded site stays for the whole session: move it out of the collector's way once, so
        # later collections (during rebuilds) do not walk a million long-lived objects each time.
        gc.collect()
        gc.freeze()
        self._spawn(self.server.serve_forever, "sitegen-http")
        self._spawn(self._build_loop, "sitegen-builder")
        if self.options.watch:
            watch = (self.project, self.options.step_ms, self.closing, self._restart_tree, self._changes, self.log)
            self._spawn(lambda: watch_root(*watch), "sitegen-watch-root")
            self._spawn(lambda: watch_tree(*watch), "sitegen-watch-tree")
        return self

    def __enter__(self) -> "Preview":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def port(self) -> int:
        return self.server.server_address[1] if self.server else self.options.port

    @property
    def url(self) -> str:
        host = self.options.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}/"

    def close(self) -> None:
        """Stop serving and watching, and remove the temp folder."""
        self.closing.set()
        self._restart_tree.set()
        self._changes.put(None)
        with self.events.lock:
            for q in self.events.clients:
                q.put((None, ""))
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        for t in self._threads:
            t.join(timeout=10)
        if self.tempdir is not None:
            shutil.rmtree(self.tempdir, ignore_errors=True)
            self.tempdir = None

    def _spawn(self, fn: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=fn, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    # building

    def rebuild(self, changed: set[str] | None = None, reason: str = "change") -> BuildStatus:
        """One preview build; on failure the previous files stay and the overlay shows the errors."""
        from ...build import BuildOptions, build_preview, untrusted_override

        with self._build_lock:
            started = time.perf_counter()
            cpu_started = time.thread_time()
            # No search index: Pagefind re-indexes the whole site (seconds), too slow for every keystroke.
            options = BuildOptions(out=self.root, strict=self.options.strict, jobs=self.options.jobs, pdf=False,
                                   overrides={"search.enabled": False, **untrusted_override(self.options.untrusted)})
            status = BuildStatus(self.status.generation)
            try:
                result = build_preview(self.project, options, self.state)
            except SitegenError as exc:
                status.ok = False
                status.diagnostics = list(exc.diagnostics)
                status.message = exc.message or "build failed"
            except Exception as exc:  # noqa: BLE001 — a bug must not stop the preview; show it and go on
                status.ok = False
                status.message = f"internal error (please report): {type(exc).__name__}: {exc}"
                self.log(traceback.format_exc())
            else:
                status.generation += 1
                status.diagnostics = result.diagnostics.sorted()
                status.rendered = result.stats.rendered
                status.timings = dict(result.timings)
            status.seconds = time.perf_counter() - started
            status.cpu_seconds = time.thread_time() - cpu_started
            previous, self.status = self.status, status
        self._report(status, previous, changed, reason)
        self.events.publish("status", json.dumps(status.to_json(), ensure_ascii=False))
        return status

    def _report(self, status: BuildStatus, previous: BuildStatus, changed: set[str] | None, reason: str) -> None:
        # Errors every time; warnings only when they differ from the last build's (no scroll of repeats).
        repeat = set(previous.diagnostics) if previous.generation else set()
        for d in status.diagnostics:
            if d.level == "error" or d not in repeat:
                self.log(d.format())
        what = ", ".join(sorted(changed)[:3]) + (" …" if changed and len(changed) > 3 else "") if changed else reason
        if status.ok:
            self.log(f"serve: rebuilt ({what}): {status.rendered} page(s) rendered in {status.seconds * 1000:.0f} ms")
        else:
            errors = len(Diagnostics(status.diagnostics).errors)
            self.log(f"serve: build failed ({what}): {status.message}; {errors} error(s) — still serving the last good pages")

    def _build_loop(self) -> None:
        while not self.closing.is_set():
            item = self._changes.get()
            if item is None:
                return
            changed = set(item)
            # Several watchers may report one save: take everything queued so far as one rebuild.
            while True:
                try:
                    more = self._changes.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    return
                changed |= set(more)
            self.rebuild(changed)


def _warm_state(project: Path, untrusted: bool = False) -> Any:
    """Start from the last CLI build's record (parsed reports, job results): the first preview is
    then nearly as quick as a rebuild. Pages are rendered anew (the record's output is output/).
    An untrusted preview starts empty: it reads nothing from the project's cache folder."""
    from ...config import load_config
    from ...incremental import BuildState, load_state

    config, _ = load_config(project, {"untrusted": True} if untrusted else None)
    if config is None or config.untrusted:
        return BuildState()
    return load_state(project / config.cache_dir)


def serve(project: Path, options: ServeOptions, log: Callable[[str], None], verbose: bool = False) -> None:
    """Run the preview until Ctrl-C; the temp folder is removed on the way out."""
    preview = Preview(project, options, log, verbose)
    preview.start()
    try:
        log(f"serve: previewing {preview.project} at {preview.url} (built in the temp folder {preview.tempdir}; "
            "output/ is not touched). Ctrl-C stops.")
        while True:
            time.sleep(3600)
    finally:
        preview.close()
