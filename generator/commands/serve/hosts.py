"""Host and Origin: which requests the preview answers (DNS rebinding is refused)."""

from __future__ import annotations

import ipaddress
import socket

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


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
