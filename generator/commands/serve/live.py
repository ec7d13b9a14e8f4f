"""Live reload: the theme's reload script, its injection into served pages, and the event fan-out."""

from __future__ import annotations

import queue
import threading
from functools import lru_cache

from ...templates import theme_dir

LIVE = "/__sitegen__/"
"""Path prefix of the preview's own endpoints (never a site path: sitegen slugs cannot start with _)."""


@lru_cache(maxsize=1)
def live_script() -> bytes:
    """The reload script, a theme file outside static/ so that builds never copy it into output/."""
    return (theme_dir() / "serve" / "livereload.js").read_bytes()


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
