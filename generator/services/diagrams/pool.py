"""The pool side: diagram tasks rendered and sanitised on generator.workers' killable processes."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from ...workers import Pool, SerialPool
from .errors import DiagramError
from .renderers import Renderer
from .sanitiser import sanitize_svg
from .source import clean_renderer_message

WORKER_START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Task:
    """One diagram for a worker: plain, picklable values only."""

    source: str
    theme: str
    scope: str
    title: str
    kind: str
    timeout: float


@dataclass
class Outcome:
    svg: str | None = None
    error: str | None = None
    transient: bool = False


def render_task(renderer: Renderer, task: Task) -> Outcome:
    """Render and sanitise one diagram; every failure becomes a message."""
    try:
        raw = renderer.render(task.source, task.theme, task.timeout)
        return Outcome(svg=sanitize_svg(raw, task.scope, task.title, task.theme, task.kind))
    except DiagramError as exc:
        return Outcome(error=str(exc), transient=exc.transient)
    except Exception as exc:  # a renderer bug must not take the whole build down
        return Outcome(error=f"mermaid renderer failed: {type(exc).__name__}: {clean_renderer_message(str(exc))}", transient=True)


PREFETCH = 2
"""Tasks in flight per worker: the next one waits in the pipe, so a worker never idles on a round trip."""
TASKS_PER_WORKER = 64
"""Below this many diagrams per worker, another worker costs more to start than it saves."""


def run_tasks(renderer: Renderer, tasks: list[Task], workers: int) -> list[Outcome]:
    """Render tasks on up to `workers` processes (0: in this process), killing any that overruns its limit."""
    if not tasks:
        return []
    target = functools.partial(render_task, renderer)
    if workers <= 0:
        pool: Pool | SerialPool = SerialPool(target)  # no warm-up: the first render loads the renderer
    else:
        # Forked when that is safe, warmed once here first: every worker then starts with the
        # renderer and its JavaScript engine loaded (copy-on-write) instead of paying for them again.
        size = max(1, min(workers, len(tasks) // TASKS_PER_WORKER))
        pool = Pool(target, size, start="auto", warm=renderer.warm, warm_parent=True, prefetch=PREFETCH,
                    start_timeout=WORKER_START_TIMEOUT, start_attempts=3, name="sitegen-diagram")
    with pool:
        outcomes = pool.run(tasks, timeouts=[t.timeout for t in tasks])
    return [_diagram_outcome(o, t) for o, t in zip(outcomes, tasks)]


def _diagram_outcome(o: Any, task: Task) -> Outcome:
    """A pool outcome as the author reads it; worker trouble depends on the machine, so it is transient."""
    if o.ok:
        return o.value
    if not o.started:
        return Outcome(error=f"mermaid renderer could not start: {o.detail}", transient=True)
    if o.status == "timeout":
        return Outcome(error=f"mermaid render timed out after {task.timeout:g} s", transient=True)
    if o.status == "crashed":
        return Outcome(error=f"mermaid renderer crashed (exit code {o.exitcode})", transient=True)
    return Outcome(error=f"mermaid renderer failed: {o.detail}", transient=True)
