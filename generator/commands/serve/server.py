"""The HTTP side of the preview: our own handler, serving only checked paths, plus the live endpoints."""

from __future__ import annotations

import json
import queue
import socket
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


class PreviewServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], preview: Served):
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
