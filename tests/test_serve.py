"""`sitegen serve` over real HTTP on a free port (SECURITY-CASES §11: SV-01, SV-02, SV-03).

Requests that must not be normalised by a client go through a raw socket. Live reload is checked
by reading the server-sent event stream the injected script listens to.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import BASIC_PROFILE, BASIC_REPORT, tree_hash

from generator.commands.serve import HostPolicy, Preview, ServeOptions, resolve_request_path

CONFIG = "title: Test Site\nlanguage: en\nsearch: {enabled: false}\ndiagrams: {enabled: false}\n"
WAIT = 120.0
"""Generous: the machine running the tests may be busy; nothing here asserts speed."""


@pytest.fixture
def site(make_project):
    return make_project({
        "sitegen.yaml": CONFIG,
        "content/startups/acme.yaml": BASIC_PROFILE,
        "content/reports/first.md": BASIC_REPORT,
        "content/assets/chart.svg": '<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>',
        "content/assets/deck.pdf": b"%PDF-1.4\n%%EOF\n",
        "content/assets/data.json": '{"a": 1}',
        "content/assets/feed.xml": "<x/>",
        "content/assets/mod.wasm": b"\x00asm\x01\x00\x00\x00",
    }, basic=False)


@pytest.fixture
def preview(site):
    logs: list[str] = []
    p = Preview(site, ServeOptions(port=0, step_ms=20), log=logs.append)
    p.start()
    p.logs = logs  # type: ignore[attr-defined]
    yield p
    p.close()


def raw(port: int, target: str, host: str | None = "default", headers: str = "", method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """One request exactly as written (no client-side path normalisation); (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        host_line = "" if host is None else f"Host: {f'127.0.0.1:{port}' if host == 'default' else host}\r\n"
        s.sendall(f"{method} {target} HTTP/1.1\r\n{host_line}{headers}Connection: close\r\n\r\n".encode("latin-1"))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return status, fields, body


class Events:
    """The server-sent event stream of the preview, read in a thread into a queue of (event, data)."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.sock.sendall(f"GET /__sitegen__/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        self.events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buf = b""
        try:
            while chunk := self.sock.recv(65536):
                buf += chunk
                while b"\n\n" in buf:
                    block, buf = buf.split(b"\n\n", 1)
                    text = block.decode("utf-8")
                    if "\r\n\r\n" in text:  # the HTTP response head arrives first
                        text = text.split("\r\n\r\n", 1)[1]
                    name = re.search(r"^event: (.*)$", text, re.M)
                    data = "\n".join(m for m in re.findall(r"^data: (.*)$", text, re.M))
                    if name:
                        self.events.put((name.group(1), json.loads(data)))
        except OSError:
            pass

    def next_status(self, predicate, timeout: float = WAIT) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "no matching status event arrived"
            try:
                name, data = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if name == "status" and predicate(data):
                return data

    def close(self) -> None:
        self.sock.close()


# --- SV-01: traversal, encoded variants, symlinks, open redirects --------------------------------------


@pytest.mark.parametrize("target", [
    "/../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/..%2f..%2fetc/passwd",
    "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "/%252e%252e/%252e%252e/etc/passwd",  # double-encoded
    "/..%252f..%252fetc/passwd",
    "/..\\..\\etc\\passwd",
    "/%5c..%5c..%5cetc%5cpasswd",
    "/etc/passwd",  # absolute path: looked up inside the preview only
    "/%2Fetc%2Fpasswd",
    "/reports/../../../etc/passwd",
    "/static/%00.css",
    "/.sitegen-manifest",
    "http://127.0.0.1/../../etc/passwd",  # absolute-form target
])
def test_sv01_traversal_is_404(preview, target):
    status, headers, body = raw(preview.port, target)
    assert status == 404
    assert b"root:" not in body
    assert "location" not in headers


@pytest.mark.parametrize("target", ["//evil.com/", "//evil.com", "//evil.com/%2e%2e", "/%2F%2Fevil.com/", "///evil.com/", "/\\evil.com/"])
def test_sv01_double_slash_never_redirects_to_another_host(preview, target):
    status, headers, _ = raw(preview.port, target)
    location = headers.get("location", "")
    assert status == 404
    assert "evil" not in location and not location.startswith("//")


def test_sv01_folder_redirect_stays_on_this_host(preview):
    status, headers, _ = raw(preview.port, "//reports")
    assert (status, headers["location"]) == (301, "/reports/")
    status, headers, _ = raw(preview.port, "/reports?x=//evil.com")
    assert (status, headers["location"]) == (301, "/reports/")


def test_sv01_symlinks_are_never_followed(preview, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret\n")
    (preview.root / "leak.txt").symlink_to(secret)
    (preview.root / "leakdir").symlink_to(tmp_path, target_is_directory=True)
    (preview.root / "alias.html").symlink_to(preview.root / "index.html")  # even inside the root
    for target in ("/leak.txt", "/leakdir/secret.txt", "/alias.html"):
        status, _, body = raw(preview.port, target)
        assert status == 404 and b"top secret" not in body


def test_resolve_request_path_only_returns_regular_files_inside_root(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "index.html").write_text("x")
    (root / "f.txt").write_text("y")
    assert resolve_request_path(root, "/a/").path == root / "a" / "index.html"
    assert resolve_request_path(root, "/f.txt?q=1#frag").path == root / "f.txt"
    assert resolve_request_path(root, "/a").location == "/a/"
    for bad in ("/../root/f.txt", "/%2e%2e/root/f.txt", "/a/%2e%2e/f.txt", "/f.txt/", "/nope", "/%ff", "/a/../f.txt"):
        assert resolve_request_path(root, bad).kind == "missing", bad


# --- serving ---------------------------------------------------------------------------------


def test_pages_are_served_with_the_live_script_and_correct_mime_types(preview):
    status, headers, body = raw(preview.port, "/reports/first/index.html")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert b"First report" in body and b'<script src="/__sitegen__/live.js"' in body
    assert headers["cache-control"] == "no-store" and headers["x-content-type-options"] == "nosniff"
    expected = {
        "/assets/chart.svg": "image/svg+xml",
        "/assets/deck.pdf": "application/pdf",
        "/assets/data.json": "application/json",
        "/assets/feed.xml": "application/xml; charset=utf-8",
        "/assets/mod.wasm": "application/wasm",
        "/sitemap.xml": "application/xml; charset=utf-8",
        "/static/style.css": "text/css; charset=utf-8",
        "/__sitegen__/live.js": "text/javascript; charset=utf-8",
    }
    for target, mime in expected.items():
        status, headers, body = raw(preview.port, target)
        assert (status, headers["content-type"]) == (200, mime), target
        assert b"__sitegen__/live.js" not in body  # only HTML gets the script
    status, headers, body = raw(preview.port, "/reports/", method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0


def test_the_live_script_is_the_theme_file_and_never_part_of_the_site(preview):
    from generator.templates import theme_dir

    status, _headers, body = raw(preview.port, "/__sitegen__/live.js")
    assert status == 200 and body == (theme_dir() / "serve" / "livereload.js").read_bytes()
    assert b'EventSource("/__sitegen__/events")' in body
    assert not [p for p in preview.root.rglob("*.js") if p.name == "livereload.js"]


def test_preview_never_touches_output_and_builds_in_a_temp_folder(site, cli):
    assert cli("-C", str(site), "build").exit_code == 0
    before = tree_hash(site / "output")
    with Preview(site, ServeOptions(port=0, watch=False)) as p:
        root = p.tempdir
        assert root is not None and not root.is_relative_to(site)
        assert (p.root / "reports/first/index.html").is_file()
        (site / "content/reports/first.md").write_text(BASIC_REPORT.replace("Hello", "Changed"))
        assert p.rebuild().ok
    assert tree_hash(site / "output") == before
    assert not root.exists()


# --- SV-02: binding, Host and Origin ---------------------------------------------------------------


def test_sv02_binds_loopback_only_by_default(preview):
    assert preview.server.server_address[0] == "127.0.0.1"


@pytest.mark.parametrize("host,headers", [
    ("evil.example:{port}", ""),
    ("evil.example", ""),
    ("127.0.0.1.evil.example:{port}", ""),
    ("127.0.0.1:1", ""),  # another port
    (None, ""),  # no Host at all
    ("127.0.0.1:{port}", "Origin: http://evil.example\r\n"),
    ("127.0.0.1:{port}", "Origin: http://evil.example:{port}\r\n"),
    ("127.0.0.1:{port}", "Origin: null\r\n"),
])
def test_sv02_foreign_host_or_origin_is_refused(preview, host, headers):
    port = preview.port
    status, _, body = raw(port, "/", host=host.format(port=port) if host else None, headers=headers.format(port=port))
    assert status == 403 and b"Test Site" not in body


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}"])
def test_sv02_own_host_names_are_answered(preview, host):
    port = preview.port
    status, _, _ = raw(port, "/", host=host.format(port=port), headers=f"Origin: http://{host.format(port=port)}\r\n")
    assert status == 200


def test_sv02_all_interfaces_allow_ip_literals_but_no_other_names():
    policy = HostPolicy("0.0.0.0", 8000)
    assert policy.allows_host("192.168.1.20:8000") and policy.allows_host("[::1]:8000")
    assert not policy.allows_host("evil.example:8000") and not policy.allows_host("192.168.1.20:9999")


def run_serve_cli(project: Path, *args: str) -> tuple[subprocess.Popen, list[str]]:
    """`sitegen serve` in a subprocess; returns the process and its stderr lines (read in a thread)."""
    proc = subprocess.Popen([sys.executable, "-m", "generator.cli", "-C", str(project), "serve", "--port", "0", *args],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines: list[str] = []

    def read() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + WAIT
    while not any("previewing" in line for line in lines):
        assert proc.poll() is None, "\n".join(lines)
        assert time.monotonic() < deadline, "serve did not start"
        time.sleep(0.1)
    return proc, lines


def test_sv02_cli_on_all_interfaces_warns_and_ctrl_c_removes_the_temp_folder(site):
    proc, lines = run_serve_cli(site, "--host", "0.0.0.0")
    try:
        assert any("warning" in line and "0.0.0.0" in line and "other machines" in line for line in lines)
        started = next(line for line in lines if "previewing" in line)
        temp = Path(re.search(r"temp folder (\S+?)[;)]", started).group(1))
        port = int(re.search(r":(\d+)/", started).group(1))
        assert temp.is_dir()
        assert raw(port, "/")[0] == 200
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    assert code == 130
    assert not temp.exists()


def test_sv02_cli_default_binds_loopback(site):
    proc, lines = run_serve_cli(site)
    try:
        started = next(line for line in lines if "previewing" in line)
        assert "http://127.0.0.1:" in started and not any("warning" in line for line in lines)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


# --- live reload and the error overlay (SV-03) ---------------------------------------------------------


def test_live_reload_event_after_an_edit(preview, site):
    events = Events(preview.port)
    try:
        first = events.next_status(lambda s: True)
        assert first["ok"] and first["generation"] >= 1
        (site / "content/reports/first.md").write_text(BASIC_REPORT.replace("Hello", "Edited live"))
        after = events.next_status(lambda s: s["generation"] > first["generation"])
        assert after["ok"] and after["rendered"] >= 1
        assert b"Edited live" in raw(preview.port, "/reports/first/index.html")[2]
    finally:
        events.close()


def test_config_saved_by_rename_is_noticed(preview, site):
    """Editors save by writing a new file and renaming it over the old one; the watch must survive that."""
    for title in ("Renamed Once", "Renamed Twice"):
        tmp = site / "sitegen.yaml.tmp"
        tmp.write_text(CONFIG.replace("Test Site", title))
        os.replace(tmp, site / "sitegen.yaml")
        deadline = time.monotonic() + WAIT
        while title.encode() not in raw(preview.port, "/")[2]:
            assert time.monotonic() < deadline, f"no rebuild after the config was renamed into place ({title})"
            time.sleep(0.1)


def test_sv03_bad_yaml_shows_the_overlay_keeps_the_last_good_page_and_output(site, cli):
    assert cli("-C", str(site), "build").exit_code == 0
    output_before = tree_hash(site / "output")
    logs: list[str] = []
    with Preview(site, ServeOptions(port=0, step_ms=20), log=logs.append) as p:
        good = raw(p.port, "/reports/first/index.html")[2]
        events = Events(p.port)
        try:
            events.next_status(lambda s: s["ok"])
            page = site / "content/reports/first.md"
            page.write_text(BASIC_REPORT.replace("title: First report", "title: [unclosed"))
            failed = events.next_status(lambda s: not s["ok"])
            assert any(e.startswith("content/reports/first.md:3:5: error[yaml]") for e in failed["errors"]), failed["errors"]
            status = json.loads(raw(p.port, "/__sitegen__/status")[2])
            assert status["errors"] == failed["errors"]
            # The last good page is still served, unchanged (its live script is the same too).
            assert raw(p.port, "/reports/first/index.html")[:3:2] == (200, good)
            assert any("content/reports/first.md:3:5: error[yaml]" in line for line in logs)
            assert any("still serving the last good pages" in line for line in logs)
            page.write_text(BASIC_REPORT.replace("Hello", "Fixed"))
            fixed = events.next_status(lambda s: s["ok"])
            assert fixed["errors"] == []
            assert b"Fixed" in raw(p.port, "/reports/first/index.html")[2]
        finally:
            events.close()
        temp = p.tempdir
    assert tree_hash(site / "output") == output_before
    assert temp is not None and not temp.exists()


def test_the_gates_findings_show_in_the_overlay(site):
    """A broken link and a leaked token are build errors now: the overlay names them, the last good page stays."""
    with Preview(site, ServeOptions(port=0, step_ms=20), log=lambda line: None) as p:
        good = raw(p.port, "/reports/first/index.html")[2]
        events = Events(p.port)
        try:
            events.next_status(lambda s: s["ok"])
            (site / "content/reports/first.md").write_text(BASIC_REPORT + "\nSee [gone](../gone/index.html). A <|endoftext|> leak.\n")
            failed = events.next_status(lambda s: not s["ok"])
            assert "content/reports/first.md:18: error[link]: broken link '../gone/index.html': no page or file reports/gone/index.html in the site" in failed["errors"], failed["errors"]
            assert ("content/reports/first.md:18:35: error[lm-token]: leaked language-model token '<|endoftext|>': "
                    "remove it (the text after it may be a second copy of the article)") in failed["errors"], failed["errors"]
            assert raw(p.port, "/reports/first/index.html")[:3:2] == (200, good)
        finally:
            events.close()


def test_live_script_reloads_on_a_new_generation_and_draws_the_overlay_safely(preview):
    script = raw(preview.port, "/__sitegen__/live.js")[2].decode()
    assert 'new EventSource("/__sitegen__/events")' in script
    assert "location.reload()" in script and "sitegen-error-overlay" in script
    assert "innerHTML" not in script  # error text is content-controlled: textContent only


@pytest.mark.browser
def test_browser_shows_the_overlay_and_reloads_when_fixed(site):
    pytest.importorskip("playwright")
    from browser_harness import CHROMIUM, launch
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed")
    with Preview(site, ServeOptions(port=0, step_ms=20)) as p, sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page()
            page.goto(p.url + "reports/first/index.html")
            page.wait_for_function("() => document.querySelector('h1') !== null")
            (site / "content/reports/first.md").write_text(BASIC_REPORT.replace("title: First report", "title: [unclosed"))
            overlay = page.wait_for_selector("#sitegen-error-overlay", timeout=WAIT * 1000)
            assert "content/reports/first.md:3:5: error[yaml]" in overlay.inner_text()
            assert "First report" in page.inner_text("h1")  # the last good page is still underneath
            (site / "content/reports/first.md").write_text(BASIC_REPORT.replace("First report", "Fixed report"))
            page.wait_for_function("() => document.querySelector('h1') && document.querySelector('h1').textContent.includes('Fixed report')",
                                   timeout=WAIT * 1000)
            assert page.query_selector("#sitegen-error-overlay") is None
        finally:
            browser.close()


# --- TP-07: secrets and links under templates/ are never served ---------------------------------------


def test_tp07_secrets_and_links_under_templates_are_not_served(site):
    (site / "templates/static").mkdir(parents=True)
    (site / "templates/static/own.css").write_text("body{}")
    (site / "templates/static/id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (site / "templates/static/.env").write_text("TOKEN=hunter2\n")
    p = Preview(site, ServeOptions(port=0, watch=False), log=lambda line: None)
    p.start()
    try:
        assert p.status.ok, p.status.to_json()
        assert "templates/static/id_rsa: warning[hidden]: ignored hidden or secret file (never published)" in p.status.to_json()["warnings"]
        assert raw(p.port, "/static/own.css")[0] == 200
        for target in ("/static/id_rsa", "/static/.env", "/static/%2eenv"):
            status, _, body = raw(p.port, target)
            assert status == 404 and b"PRIVATE KEY" not in body and b"hunter2" not in body
        os.symlink("/etc/passwd", site / "templates/static/leak.txt")
        status = p.rebuild(reason="test")
        assert not status.ok
        assert ("templates/static/leak.txt: error[symlink]: symlink leads outside the project: templates/static/leak.txt -> /etc/passwd"
                in status.to_json()["errors"])
        code, _, body = raw(p.port, "/static/leak.txt")
        assert code == 404 and b"root:" not in body
    finally:
        p.close()


# --- SV-04: connection exhaustion and disconnects --------------------------------------------------------


def test_sv04_half_open_connections_time_out_and_threads_stay_bounded(preview, monkeypatch):
    from generator.commands.serve import server

    assert 0 < server.IDLE_TIMEOUT <= 10
    monkeypatch.setattr(server, "IDLE_TIMEOUT", 1.0)  # the constant, shortened for the test
    baseline = threading.active_count()
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], threading.active_count())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    sockets = [socket.create_connection(("127.0.0.1", preview.port), timeout=60) for _ in range(200)]
    try:
        for s in sockets:  # each one sent nothing: the server closes it (EOF), it does not wait forever
            assert s.recv(1) == b""
        assert raw(preview.port, "/")[0] == 200
    finally:
        done.set()
        sampler.join()
        for s in sockets:
            s.close()
    assert peak[0] - baseline <= server.MAX_CONNECTIONS + 1  # +1: the sampler itself
    assert server.MAX_CONNECTIONS < 200


@pytest.mark.parametrize("first, second", [("default", "evil.example"), ("evil.example", "default")])
def test_sv04_two_host_headers_are_a_bad_request(preview, first, second):
    own = f"127.0.0.1:{preview.port}"
    hosts = "".join(f"Host: {own if h == 'default' else h}\r\n" for h in (first, second))
    status, _, body = raw(preview.port, "/", host=None, headers=hosts)
    assert status == 400
    assert body == b"400 bad request: more than one Host header\n"


def _threads(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        return int(next(line for line in fh if line.startswith("Threads:")).split()[1])


def test_sv04_clients_that_disconnect_leave_no_traceback(make_project):
    project = make_project({"sitegen.yaml": CONFIG, "content/assets/big.pdf": b"%PDF-1.4\n" + os.urandom(8 << 20)}, basic=False)
    proc, lines = run_serve_cli(project)
    try:
        port = int(re.search(r":(\d+)/", next(line for line in lines if "previewing" in line)).group(1))
        assert raw(port, "/assets/big.pdf")[0] == 200
        idle = _threads(proc.pid)
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
            s.sendall(f"GET /assets/big.pdf HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            assert s.recv(16)  # the answer has started
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # close with RST
            s.close()
        s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        s.sendall(b"GET / HTTP/1.1\r\n")  # half a request, then gone
        s.close()
        deadline = time.monotonic() + WAIT
        while _threads(proc.pid) > idle:  # every handler has finished (and said whatever it would say)
            assert time.monotonic() < deadline, "handler threads did not finish"
            time.sleep(0.05)
        assert raw(port, "/")[0] == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    text = "\n".join(lines)
    assert "Traceback" not in text and "BrokenPipeError" not in text and "ConnectionResetError" not in text, text
