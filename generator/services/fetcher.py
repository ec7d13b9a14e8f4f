"""The only way WeasyPrint reads anything: an allowlisting URL fetcher, plus the checks it shares with content loading.

WeasyPrint's own fetcher reads any `file:` URL, follows redirects and silently drops images
Pillow calls bombs (SECURITY-CASES §8). `SitegenFetcher` serves only regular files inside the
allowed folders (checked after resolving symlinks) whose names the content loader would publish, `data:` URLs under a size cap and, when a
host is listed in `pdf.allow_network`, that host without following redirects. Every refusal is
recorded so the PDF writer can turn it into an error naming the source file.

The WeasyPrint subclass is created on first use (module `__getattr__`): `content.py` imports the
pure checks from here and an HTML build must not pay for importing WeasyPrint.
"""

from __future__ import annotations

import base64
import mimetypes
import os
import stat
import warnings
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import unquote, unquote_to_bytes, urlsplit
from urllib.request import url2pathname

from ..paths import private_part

MAX_FILE_BYTES = 64 * 1024 * 1024
"""Largest local file a PDF may read (fonts, images, stylesheets)."""
MAX_DATA_URL_BYTES = 2 * 1024 * 1024
"""Largest decoded `data:` URL (the Markdown stage applies the same cap to images)."""
MAX_NETWORK_BYTES = 16 * 1024 * 1024
_RASTER_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"BM", b"II*\x00", b"MM\x00*")


class FetchDenied(Exception):
    """A fetch refused by policy; the message says why, in the author's terms."""


@dataclass(frozen=True)
class FetchPolicy:
    """What a PDF render may read; plain data, so it travels to worker processes."""

    roots: tuple[str, ...]
    """Folders (resolved, absolute) whose regular files may be read."""
    allow_hosts: tuple[str, ...] = ()
    """Hosts that may be fetched over http(s); redirects are never followed."""
    max_image_pixels: int = 50_000_000
    max_file_bytes: int = MAX_FILE_BYTES
    max_data_bytes: int = MAX_DATA_URL_BYTES
    network_timeout: float = 10.0


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def image_size(data: bytes | Any) -> tuple[int, int] | None:
    """Width and height from an image's header, without decoding pixels (None: not a raster image)."""
    from PIL import Image

    stream = BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    saved = Image.MAX_IMAGE_PIXELS
    # Pillow's own bomb check raises for > 2x its limit and only warns below; we want the size.
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(stream) as im:
                return im.size
    except Exception:
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def check_pixels(size: tuple[int, int] | None, limit: int) -> str | None:
    """None when an image is small enough to embed; otherwise the reason."""
    if size is None:
        return None
    pixels = size[0] * size[1]
    if pixels > limit:
        return f"image too large ({pixels / 1e6:.0f} Mpx > limit of {limit / 1e6:g} Mpx, {size[0]}×{size[1]})"
    return None


def resolve_allowed(path: Path, roots: tuple[str, ...] | list[Path], shown: str | None = None) -> Path:
    """The real path of a regular file inside the roots (after symlinks), or FetchDenied with the reason."""
    shown = shown or str(path)
    real_roots = [Path(r) for r in roots]
    # Outside the roots as written: refused without touching the file system (no existence oracle).
    lexical = Path(os.path.normpath(path))
    if not any(_inside(lexical, r) for r in real_roots):
        raise FetchDenied(f"path outside the allowed folders: {shown}")
    _refuse_private(lexical, real_roots, shown)
    try:
        real = path.resolve(strict=True)
        st = os.stat(real)
    except FileNotFoundError:
        raise FetchDenied(f"file not found: {shown}") from None
    except (OSError, RuntimeError) as exc:
        raise FetchDenied(f"cannot resolve {shown}: {getattr(exc, 'strerror', None) or exc}") from None
    # The type is judged first: a link to /dev/zero is "not a regular file" wherever it points.
    if not stat.S_ISREG(st.st_mode):
        raise FetchDenied(f"not a regular file: {shown}")
    if not any(_inside(real, r) for r in real_roots):
        raise FetchDenied(f"{shown} resolves outside the allowed folders")
    _refuse_private(real, real_roots, shown)
    return real


def _refuse_private(path: Path, roots: list[Path], shown: str) -> None:
    """The loader's rule: hidden and secret-named files (`.env`, `id_rsa`, `.git/…`) are never read."""
    for root in roots:
        if _inside(path, root) and private_part(path.relative_to(root).as_posix()):
            raise FetchDenied(f"hidden or secret file refused: {shown}")


def read_regular_file(real: Path, limit: int, shown: str) -> bytes:
    """Read a file that must still be regular when opened (no FIFO can block us, no device can stream)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        raise FetchDenied(f"cannot read {shown}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FetchDenied(f"not a regular file: {shown}")
        if st.st_size > limit:
            raise FetchDenied(f"file too large: {shown} ({st.st_size} bytes > {limit})")
        with os.fdopen(fd, "rb", closefd=True) as fh:
            fd = -1
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise FetchDenied(f"file too large: {shown} (> {limit} bytes)")
        return data
    finally:
        if fd >= 0:
            os.close(fd)


@dataclass
class ImageProblem:
    level: str
    message: str


def check_content_image(project: Path, source_rel: str, src: str, max_pixels: int) -> ImageProblem | None:
    """Check a relative image of a content file before any render: inside content/, regular, not a bomb."""
    target = unquote(src.strip()).split("#")[0].split("?")[0]
    if not target:
        return None
    content = (project / "content").resolve()
    lexical = os.path.normpath(os.path.join(os.path.dirname(source_rel), target))
    if lexical.startswith("..") or not (lexical + "/").startswith("content/"):
        return ImageProblem("error", f"image path escapes content root: {src}")
    path = project / lexical
    try:
        real = resolve_allowed(path, (str(content),), shown=target)
        with open(real, "rb") as fh:
            size = image_size(fh)
    except FetchDenied as denied:
        msg = str(denied)
        if msg.startswith("file not found"):
            return ImageProblem("warning", f"image not found: {target}")
        if "resolves outside" in msg or "outside the allowed" in msg:
            return ImageProblem("error", f"{target} resolves outside content root")
        return ImageProblem("error", msg)
    except OSError as exc:
        return ImageProblem("error", f"cannot read image {target}: {exc.strerror}")
    problem = check_pixels(size, max_pixels)
    return ImageProblem("error", problem) if problem else None


def _content_type(path: str, data: bytes) -> str:
    guessed = mimetypes.guess_type(path)[0]
    if guessed:
        return guessed
    if data[:5] == b"<?xml" or b"<svg" in data[:512]:
        return "image/svg+xml"
    return "application/octet-stream"


def parse_data_url(url: str, limit: int) -> tuple[str, bytes]:
    """Media type and bytes of a `data:` URL, refusing oversized ones before decoding."""
    header, sep, payload = url[5:].partition(",")
    if not sep:
        raise FetchDenied("malformed data: URL")
    if len(payload) > limit * 4 // 3 + 8:
        raise FetchDenied(f"data: URL larger than {limit // 1024} KiB")
    parts = header.split(";")
    mime = parts[0] or "text/plain"
    try:
        data = base64.b64decode(unquote(payload), validate=False) if "base64" in parts[1:] else unquote_to_bytes(payload)
    except ValueError:
        raise FetchDenied("malformed data: URL") from None
    if len(data) > limit:
        raise FetchDenied(f"data: URL larger than {limit // 1024} KiB")
    return mime, data


class _FetcherMixin:
    """The policy; mixed into WeasyPrint's URLFetcher on first use."""

    policy: FetchPolicy

    def _setup(self, policy: FetchPolicy) -> None:
        self.policy = policy
        self.requested: list[str] = []
        self.denied: list[tuple[str, str]] = []

    def fetch(self, url: str, headers: dict | None = None):  # noqa: D401 - WeasyPrint's signature
        self.requested.append(url)
        try:
            return self._fetch(url)
        except FetchDenied as denied:
            self.denied.append((url, str(denied)))
            raise

    def _fetch(self, url: str):
        from weasyprint.urls import URLFetcherResponse

        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme == "data":
            mime, data = parse_data_url(url, self.policy.max_data_bytes)
            self._check_image(data, "data: URL")
            return URLFetcherResponse(url, data, {"Content-Type": mime})
        if scheme == "file":
            parts = urlsplit(url)
            if parts.netloc not in ("", "localhost"):
                raise FetchDenied(f"file: URL with a host is not allowed: {url[:120]}")
            path = Path(url2pathname(parts.path))
            real = resolve_allowed(path, self.policy.roots, shown=str(path))
            data = read_regular_file(real, self.policy.max_file_bytes, str(path))
            self._check_image(data, str(path))
            return URLFetcherResponse(url, data, {"Content-Type": _content_type(str(real), data)})
        if scheme in ("http", "https"):
            return self._fetch_network(url)
        raise FetchDenied(f"disallowed URL scheme '{scheme}:'" if scheme else f"not an absolute URL: {url[:120]}")

    def _fetch_network(self, url: str):
        import urllib.error
        from urllib import request

        from weasyprint.urls import URLFetcherResponse

        host = (urlsplit(url).hostname or "").lower()
        if host not in {h.lower() for h in self.policy.allow_hosts}:
            raise FetchDenied(f"network fetch disabled: {host or url[:80]} (list the host in pdf.allow_network to allow it)")
        # No redirect handler: a 3xx is an error, never a second request (CVE-2025-68616).
        opener = request.OpenerDirector()
        for handler in (request.HTTPHandler(), request.HTTPSHandler(), request.HTTPDefaultErrorHandler(), request.HTTPErrorProcessor()):
            opener.add_handler(handler)
        try:
            response = opener.open(request.Request(url, headers={"User-Agent": "sitegen-pdf"}), timeout=self.policy.network_timeout)
        except urllib.error.HTTPError as exc:
            if 300 <= exc.code < 400:
                raise FetchDenied(f"redirect not followed: {url[:120]} answered {exc.code}") from None
            raise FetchDenied(f"HTTP {exc.code} for {url[:120]}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise FetchDenied(f"cannot fetch {url[:120]}: {exc}") from None
        with response:
            data = response.read(MAX_NETWORK_BYTES + 1)
            ctype = response.headers.get_content_type()
        if len(data) > MAX_NETWORK_BYTES:
            raise FetchDenied(f"response too large: {url[:120]}")
        self._check_image(data, url[:120])
        return URLFetcherResponse(url, data, {"Content-Type": ctype})

    def _check_image(self, data: bytes, shown: str) -> None:
        if not data.startswith(_RASTER_MAGIC):
            return
        problem = check_pixels(image_size(data), self.policy.max_image_pixels)
        if problem:
            raise FetchDenied(f"{problem}: {shown}")


_CLASS: type | None = None


def _fetcher_class() -> type:
    global _CLASS
    if _CLASS is None:
        from weasyprint.urls import URLFetcher

        class SitegenFetcher(_FetcherMixin, URLFetcher):
            """WeasyPrint's URLFetcher with sitegen's allowlist; used for HTML, CSS, SVG and attachments."""

            def __init__(self, policy: FetchPolicy):
                URLFetcher.__init__(self, allow_redirects=False, allowed_protocols=("file", "data", "http", "https"))
                self._setup(policy)

            def __call__(self, url: str):
                return self.fetch(url)

        _CLASS = SitegenFetcher
    return _CLASS


def __getattr__(name: str) -> Any:
    if name == "SitegenFetcher":
        return _fetcher_class()
    raise AttributeError(name)
