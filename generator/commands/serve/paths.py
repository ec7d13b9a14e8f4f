"""Request paths (pure): a raw request target onto a regular file inside the preview root, or nothing."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from ...paths import is_private_name

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
    with lstat, so symlinks are never followed; the final file must be regular and not secret-named (`id_rsa`).
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
        if not last or not stat.S_ISREG(st.st_mode) or decoded.endswith("/") or is_private_name(seg):
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
