"""The HTTP side of the preview: our own handler, serving only checked paths, plus the live endpoints."""

from __future__ import annotations

import json
import queue
import socket
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import threading
from typing import Any, Callable, Protocol

from .hosts import HostPolicy
from .live import LIVE, Broadcaster, inject_live_script, live_script
from .options import BuildStatus
from .paths import MIME_TYPES, mime_type, resolve_request_path


class Served(Protocol):
    """What the HTTP side needs of a preview (the preview module imports this one, not the reverse)."""

    root: Path
    verbose: bool
    policy: HostPolicy
    status: BuildStatus
    events: Broadcaster
    closing: threading.Event
    log: Callable[[str], None]


IDLE_TIMEOUT = 5.0
"""Seconds a connection may sit without sending (or taking) a byte before it is closed."""
MAX_CONNECTIONS = 64
"""Connections handled at once (one thread each); more wait in the listen backlog for a free slot."""
_DROPPED = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)
"""A client that went away or went quiet: nothing to report."""


class PreviewServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], preview: Served):
        self.preview = preview
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, PreviewHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Waiting here keeps later connections in the kernel's backlog, so 200 half-open sockets
        # cost at most MAX_CONNECTIONS threads, each freed by the idle timeout.
        while not self.slots.acquire(timeout=0.2):
            if self.preview.closing.is_set():
                self.shutdown_request(request)
                return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], _DROPPED):
            return
        super().handle_error(request, client_address)


class PreviewHandler(BaseHTTPRequestHandler):
    server: PreviewServer
    server_version = "sitegen-preview"
    sys_version = ""

    def setup(self) -> None:
        self.timeout = IDLE_TIMEOUT  # read per connection, so the constant can be changed at run time
        super().setup()

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
        if len(self.headers.get_all("Host") or []) > 1:
            # Proxies and this server could each judge a different one of them.
            self._plain(HTTPStatus.BAD_REQUEST, "400 bad request: more than one Host header", head)
            return
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
            body = live_script()
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
