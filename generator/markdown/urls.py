"""URL policy for links and images written in content (SECURITY-CASES MD-02, WP-02, WP-03)."""

from __future__ import annotations

import re
from urllib.parse import unquote

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*$", re.I)
MAX_DATA_URL = 2 * 1024 * 1024


def _normalised(url: str) -> str:
    # Browsers drop control characters and whitespace inside schemes ("java\tscript:").
    return re.sub(r"[\x00-\x20\x7f]+", "", unquote(url.strip()))


def url_scheme(url: str) -> str | None:
    m = _SCHEME.match(_normalised(url))
    return m[1].lower() if m else None


def check_link(url: str) -> str | None:
    """None when a link URL may appear in a page; otherwise why not."""
    scheme = url_scheme(url)
    if scheme is None:
        if url.strip().startswith("//"):
            return "protocol-relative links are not allowed"
        return None
    if scheme in ("http", "https", "mailto"):
        return None
    return f"disallowed URL scheme '{scheme}:'"


def check_image(url: str) -> str | None:
    """None when an image source is allowed: relative inside the content, or a small data: image."""
    scheme = url_scheme(url)
    if scheme == "data":
        if len(url) > MAX_DATA_URL:
            return "data: image larger than 2 MiB"
        return None if _DATA_IMAGE.match(url.strip()) else "only data:image/png, jpeg, gif or webp is allowed"
    if scheme in ("http", "https"):
        return "network fetch disabled: images must be files inside content/"
    if scheme is not None:
        return f"disallowed URL scheme '{scheme}:'"
    path = unquote(url.strip()).split("#")[0].split("?")[0]
    if path.startswith("/") or path.startswith("\\") or re.match(r"^[A-Za-z]:", path):
        return "image path escapes content root (absolute paths are not allowed)"
    return None


def is_internal(url: str) -> bool:
    """A relative link to another file of the site (checked by the link checker)."""
    return url_scheme(url) is None and not url.startswith("//") and not url.startswith("#")
