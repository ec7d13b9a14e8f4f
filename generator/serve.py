"""`sitegen serve`: a live preview built into a temp folder, served on 127.0.0.1, rebuilt on every save.

The server is our own (not SimpleHTTPRequestHandler's path logic): the request path is decoded,
split and checked segment by segment, and only regular files inside the preview root are served
(SECURITY-CASES §11). Foreign `Host`/`Origin` headers are refused (DNS rebinding). Rebuilds reuse
the loaded site kept in memory; open tabs reload through server-sent events, and a failed build
shows its errors as an overlay while the last good pages keep being served.
"""

from __future__ import annotations

import gc
import ipaddress
import json
import os
import queue
import shutil
import socket
import stat
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote, unquote

from .diagnostics import Diagnostic, SitegenError

LIVE = "/__sitegen__/"
"""Path prefix of the preview's own endpoints (never a site path: sitegen slugs cannot start with _)."""

MIME_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".xml": "application/xml; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/x-icon",
    ".pdf": "application/pdf",
    ".wasm": "application/wasm",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".csv": "text/csv; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
}
"""Fixed here rather than taken from the host's mime.types, which differs between machines."""

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


@dataclass
class ServeOptions:
    """What `sitegen serve` was asked for."""

    host: str = "127.0.0.1"
    port: int = 8000
    strict: bool = False
    jobs: int | None = None
    watch: bool = True
    step_ms: int = 30
    """Quiet time after a change before the rebuild starts (editors write files in several steps)."""


@dataclass
class BuildStatus:
    """The outcome of the latest preview build, as the overlay and the terminal show it."""

    generation: int = 0
    ok: bool = True
    diagnostics: list[Diagnostic] = field(default_factory=list)
    message: str = ""
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    """CPU time of the build itself (on a busy machine `seconds` includes waiting for a core)."""
    rendered: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "ok": self.ok,
            "message": self.message,
            "seconds": round(self.seconds, 4),
            "cpu_seconds": round(self.cpu_seconds, 4),
            "rendered": self.rendered,
            "errors": [d.format() for d in self.diagnostics if d.level == "error"],
            "warnings": [d.format() for d in self.diagnostics if d.level == "warning"],
        }


# --- request paths (pure) --------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    """Where a request path leads: a file to send, a redirect to a slash-terminated path, or nothing."""

    kind: str  # "file" | "redirect" | "missing"
    path: Path | None = None
    location: str | None = None


MISSING = Resolved("missing")


def resolve_request_path(root: Path, target: str) -> Resolved:
    """Map a raw request target onto a regular file inside root, or MISSING.

    Decoding happens once, before splitting, so `%2e%2e` and `..%2f` become `..` and are refused;
    a double-encoded `%252e` decodes to a literal `%2e` name, which does not exist. Segments that
    are `..`, hidden, or hold a backslash or NUL are refused outright; every component is checked
    with lstat, so symlinks are never followed; the final file must be regular.
    """
    if not target.startswith("/"):
        return MISSING  # absolute-form (`http://host/…`) and `*` targets are not ours to answer
    raw = target.split("#", 1)[0].split("?", 1)[0]
    try:
        decoded = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return MISSING
    segments = []
    for seg in decoded.split("/"):
        if seg in ("", "."):
            continue
        if seg == ".." or seg.startswith(".") or "\\" in seg or "\x00" in seg or ":" in seg:
            return MISSING
        segments.append(seg)
    here = root
    for i, seg in enumerate(segments):
        here = here / seg
        try:
            st = os.lstat(here)
        except (OSError, ValueError):
            return MISSING
        last = i == len(segments) - 1
        if stat.S_ISDIR(st.st_mode):
            if last and not decoded.endswith("/"):
                # Relative links inside index.html need the trailing slash; the Location is built
                # from checked segments, so it always starts with exactly one "/" (no open redirect).
                return Resolved("redirect", location="/" + "/".join(quote(s) for s in segments) + "/")
            continue
        if not last or not stat.S_ISREG(st.st_mode) or decoded.endswith("/"):
            return MISSING
        return Resolved("file", path=here) if _inside(here, root) else MISSING
    index = here / "index.html"
    try:
        st = os.lstat(index)
    except OSError:
        return MISSING
    return Resolved("file", path=index) if stat.S_ISREG(st.st_mode) and _inside(index, root) else MISSING


def _inside(path: Path, root: Path) -> bool:
    try:
        return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))
    except OSError:
        return False


def mime_type(path: Path) -> str:
    return MIME_TYPES.get(path.suffix.lower(), "application/octet-stream")


# --- Host and Origin -------------------------------------------------------------------------


def _split_host(value: str) -> tuple[str, int | None] | None:
    """`name:port` or `[v6]:port` → (name, port); None when malformed."""
    value = value.strip().lower()
    if not value:
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1 :]
    else:
        name, _, port_text = value.partition(":")
        rest = ":" + port_text if _ else ""
    if rest:
        if not rest.startswith(":") or not rest[1:].isdigit():
            return None
        return name, int(rest[1:])
    return name, None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


class HostPolicy:
    """Which `Host` values the preview answers: loopback names, the bound address, and (when
    bound to all interfaces) IP literals and this machine's name — never another DNS name, which
    is what a DNS-rebinding page would send."""

    def __init__(self, bind_host: str, port: int):
        self.port = port
        self.any = bind_host in ("0.0.0.0", "::", "")
        self.names = set(LOOPBACK_NAMES)
        if not self.any:
            self.names.add(bind_host.lower().strip("[]"))
        else:
            self.names.add(socket.gethostname().lower())

    def allows_host(self, value: str | None) -> bool:
        if value is None:
            return False
        parsed = _split_host(value)
        if parsed is None:
            return False
        name, port = parsed
        if port is not None and port != self.port:
            return False
        return name in self.names or (self.any and _is_ip(name))

    def allows_origin(self, value: str | None) -> bool:
        if value is None:
            return True  # same-origin navigations and plain clients send none
        scheme, sep, rest = value.partition("://")
        if not sep or scheme.lower() != "http" or "/" in rest:
            return False
        return self.allows_host(rest)


# --- live reload ---------------------------------------------------------------------------------

LIVE_SCRIPT = r"""(function () {
  "use strict";
  var me = document.currentScript;
  var shown = Number(me && me.getAttribute("data-generation"));
  var overlay = null;
  function hide() { if (overlay) { overlay.remove(); overlay = null; } }
  function show(status) {
    hide();
    overlay = document.createElement("div");
    overlay.id = "sitegen-error-overlay";
    overlay.setAttribute("role", "alert");
    overlay.style.cssText = "position:fixed;inset:0;z-index:2147483647;overflow:auto;background:rgba(20,20,24,.94);" +
      "color:#fafafa;font:14px/1.5 ui-monospace,Menlo,Consolas,monospace;padding:2rem;white-space:pre-wrap";
    var title = document.createElement("h2");
    title.style.cssText = "color:#ff6b6b;font:600 18px/1.4 system-ui,sans-serif;margin:0 0 1rem";
    title.textContent = "sitegen: the last build failed — showing the last good page underneath";
    var body = document.createElement("pre");
    body.style.cssText = "margin:0;white-space:pre-wrap";
    body.textContent = (status.errors || []).concat(status.warnings || []).join("\n") || status.message;
    var close = document.createElement("button");
    close.textContent = "×";
    close.setAttribute("aria-label", "close");
    close.style.cssText = "position:absolute;top:1rem;right:1rem;font-size:20px";
    close.onclick = hide;
    overlay.append(title, body, close);
    document.documentElement.append(overlay);
  }
  var source = new EventSource("/__sitegen__/events");
  source.addEventListener("status", function (e) {
    var status = JSON.parse(e.data);
    if (!status.ok) { show(status); return; }
    hide();
    if (status.generation !== shown) { location.reload(); }
  });
})();
"""


class Broadcaster:
    """Fan-out of server-sent events to every open tab."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clients: list[queue.Queue] = []

    def subscribe(self) -> queue.Queue:
        q: queue.Queue = queue.Queue()
        with self.lock:
            self.clients.append(q)
        return q

    def unsubscribe(self, q: queue.Queue) -> None:
        with self.lock:
            if q in self.clients:
                self.clients.remove(q)

    def publish(self, event: str | None, data: str) -> None:
        with self.lock:
            for q in self.clients:
                q.put((event, data))


def inject_live_script(body: bytes, generation: int) -> bytes:
    """Add the reload script before `</body>` (only in serve: built files never contain it)."""
    tag = f'<script src="{LIVE}live.js" data-generation="{generation}"></script>'.encode()
    at = body.rfind(b"</body>")
    return body[:at] + tag + body[at:] if at >= 0 else body + tag


# --- the server ------------------------------------------------------------------------------


class PreviewServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], preview: "Preview"):
        self.preview = preview
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, PreviewHandler)


class PreviewHandler(BaseHTTPRequestHandler):
    server: PreviewServer
    server_version = "sitegen-preview"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 — BaseHTTPRequestHandler's name
        if self.server.preview.verbose:
            self.server.preview.log(f"serve: {self.address_string()} {format % args}")

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_GET(self) -> None:
        self._answer(head=False)

    def _plain(self, status: int, text: str, head: bool = False) -> None:
        body = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self._common_headers()
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _common_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")

    def _answer(self, head: bool) -> None:
        preview = self.server.preview
        policy = preview.policy
        if not policy.allows_host(self.headers.get("Host")) or not policy.allows_origin(self.headers.get("Origin")):
            self._plain(HTTPStatus.FORBIDDEN, "403 forbidden: this preview only answers requests addressed to it (Host/Origin)", head)
            return
        path = self.path
        if path.startswith(LIVE):
            self._live(path[len(LIVE) :].split("?", 1)[0], head)
            return
        resolved = resolve_request_path(preview.root, path)
        if resolved.kind == "redirect":
            self.send_response(HTTPStatus.MOVED_PERMANENTLY)
            self.send_header("Location", resolved.location or "/")
            self.send_header("Content-Length", "0")
            self._common_headers()
            self.end_headers()
            return
        if resolved.kind != "file" or resolved.path is None:
            self._not_found(head)
            return
        self._file(resolved.path, HTTPStatus.OK, head)

    def _file(self, path: Path, status: int, head: bool) -> None:
        try:
            with open(path, "rb") as fh:
                body = fh.read()
        except OSError:
            self._plain(HTTPStatus.NOT_FOUND, "404 not found", head)
            return
        ctype = mime_type(path)
        if ctype.startswith("text/html"):
            body = inject_live_script(body, self.server.preview.status.generation)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self._common_headers()
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _not_found(self, head: bool) -> None:
        page = self.server.preview.root / "404.html"
        if page.is_file() and not page.is_symlink():
            self._file(page, HTTPStatus.NOT_FOUND, head)
        else:
            self._plain(HTTPStatus.NOT_FOUND, "404 not found", head)

    def _live(self, name: str, head: bool) -> None:
        preview = self.server.preview
        if name == "live.js":
            body = LIVE_SCRIPT.encode()
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", MIME_TYPES[".js"])
            self.send_header("Content-Length", str(len(body)))
            self._common_headers()
            self.end_headers()
            if not head:
                self.wfile.write(body)
        elif name == "status":
            body = json.dumps(preview.status.to_json(), ensure_ascii=False).encode()
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", MIME_TYPES[".json"])
            self.send_header("Content-Length", str(len(body)))
            self._common_headers()
            self.end_headers()
            if not head:
                self.wfile.write(body)
        elif name == "events" and not head:
            self._events()
        else:
            self._plain(HTTPStatus.NOT_FOUND, "404 not found", head)

    def _events(self) -> None:
        """Server-sent events: the current status at once, then one `status` event per build."""
        preview = self.server.preview
        q = preview.events.subscribe()
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self._common_headers()
            self.end_headers()
            self.wfile.write(b"retry: 1000\n\n")
            self.wfile.write(_sse("status", json.dumps(preview.status.to_json(), ensure_ascii=False)))
            self.wfile.flush()
            while not preview.closing.is_set():
                try:
                    event, data = q.get(timeout=10)
                except queue.Empty:
                    self.wfile.write(b": keep-alive\n\n")
                    self.wfile.flush()
                    continue
                if event is None:
                    break
                self.wfile.write(_sse(event, data))
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        finally:
            preview.events.unsubscribe(q)


def _sse(event: str, data: str) -> bytes:
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {event}\n{lines}\n".encode()


# --- the preview -----------------------------------------------------------------------------


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
        self.state = _warm_state(self.project)
        try:
            self.server = PreviewServer((self.options.host, self.options.port), self)
        except OSError as exc:
            self.close()
            from .diagnostics import EnvironmentProblem

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
            self._spawn(self._watch_root, "sitegen-watch-root")
            self._spawn(self._watch_tree, "sitegen-watch-tree")
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
        from .build import BuildOptions, build_preview

        with self._build_lock:
            started = time.perf_counter()
            cpu_started = time.thread_time()
            # No search index: Pagefind re-indexes the whole site (seconds), too slow for every keystroke.
            options = BuildOptions(out=self.root, strict=self.options.strict, jobs=self.options.jobs, pdf=False,
                                   overrides={"search.enabled": False})
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
            errors = sum(1 for d in status.diagnostics if d.level == "error")
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

    # watching

    def _watch_root(self) -> None:
        """sitegen.yaml and the appearance of content/ or templates/ (a non-recursive watch: editors
        replace files by renaming, which a watch on the file itself would lose)."""
        import watchfiles

        names = {"sitegen.yaml", "content", "templates"}
        try:
            for batch in watchfiles.watch(self.project, recursive=False, stop_event=self.closing, step=self.options.step_ms,
                                          debounce=1000, watch_filter=lambda _c, p: Path(p).name in names, raise_interrupt=False):
                paths = {Path(p).name for _c, p in batch}
                if paths & {"content", "templates"}:
                    self._restart_tree.set()
                self._changes.put(paths)
        except Exception as exc:  # noqa: BLE001 — a dead watcher only costs automatic rebuilds
            self.log(f"serve: warning: cannot watch {self.project}: {exc}")

    def _watch_tree(self) -> None:
        import watchfiles

        stop = _Either(self.closing, self._restart_tree)
        while not self.closing.is_set():
            self._restart_tree.clear()
            dirs = [d for d in (self.project / "content", self.project / "templates") if d.is_dir()]
            if not dirs:
                stop.wait(0.5)
                continue
            try:
                for batch in watchfiles.watch(*dirs, stop_event=stop, step=self.options.step_ms, debounce=1000,
                                              raise_interrupt=False):
                    self._changes.put({_relative(p, self.project) for _c, p in batch})
            except Exception as exc:  # noqa: BLE001
                self.log(f"serve: warning: cannot watch {', '.join(map(str, dirs))}: {exc}")
                stop.wait(1.0)


def _warm_state(project: Path) -> Any:
    """Start from the last CLI build's record (parsed reports, job results): the first preview is
    then nearly as quick as a rebuild. Pages are rendered anew (the record's output is output/)."""
    from .config import load_config
    from .incremental import BuildState, load_state

    config, _ = load_config(project)
    return load_state(project / config.cache_dir) if config is not None else BuildState()


class _Either:
    """An event that is set when either of two events is (watchfiles takes one stop_event)."""

    def __init__(self, a: threading.Event, b: threading.Event):
        self.a, self.b = a, b

    def is_set(self) -> bool:
        return self.a.is_set() or self.b.is_set()

    def wait(self, timeout: float) -> None:
        self.a.wait(timeout)


def _relative(path: str, project: Path) -> str:
    try:
        return Path(path).relative_to(project).as_posix()
    except ValueError:
        return path


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
