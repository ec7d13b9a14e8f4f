"""Watching the project: sitegen.yaml and the top folders without recursion, content/ and templates/ recursively."""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Callable


def watch_root(project: Path, step_ms: int, closing: threading.Event, restart_tree: threading.Event,
               changes: queue.Queue, log: Callable[[str], None]) -> None:
    """sitegen.yaml and the appearance of content/ or templates/ (a non-recursive watch: editors
    replace files by renaming, which a watch on the file itself would lose)."""
    import watchfiles

    names = {"sitegen.yaml", "content", "templates"}
    try:
        for batch in watchfiles.watch(project, recursive=False, stop_event=closing, step=step_ms,
                                      debounce=1000, watch_filter=lambda _c, p: Path(p).name in names, raise_interrupt=False):
            paths = {Path(p).name for _c, p in batch}
            if paths & {"content", "templates"}:
                restart_tree.set()
            changes.put(paths)
    except Exception as exc:  # noqa: BLE001 — a dead watcher only costs automatic rebuilds
        log(f"serve: warning: cannot watch {project}: {exc}")


def watch_tree(project: Path, step_ms: int, closing: threading.Event, restart_tree: threading.Event,
               changes: queue.Queue, log: Callable[[str], None]) -> None:
    """content/ and templates/ recursively; starts over when either appears or vanishes."""
    import watchfiles

    stop = _Either(closing, restart_tree)
    while not closing.is_set():
        restart_tree.clear()
        dirs = [d for d in (project / "content", project / "templates") if d.is_dir()]
        if not dirs:
            stop.wait(0.5)
            continue
        try:
            for batch in watchfiles.watch(*dirs, stop_event=stop, step=step_ms, debounce=1000,
                                          raise_interrupt=False):
                changes.put({_relative(p, project) for _c, p in batch})
        except Exception as exc:  # noqa: BLE001
            log(f"serve: warning: cannot watch {', '.join(map(str, dirs))}: {exc}")
            stop.wait(1.0)


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
