"""The one killable process pool: per-task time and memory limits, crashes reported, a serial twin.

Every expensive, parallel thing in sitegen (diagrams, formulas, PDFs, the parallel parse and
render) runs through `Pool`. A task's fate comes back as an `Outcome` in input order — a value,
or why there is none (the target raised, ran over its time limit, ran out of memory, its worker
crashed, or no worker could start) — and the caller turns that into its own diagnostic.

Two ways to start a worker:
- "fork": the worker inherits the parent's memory, so a warmed-up engine (the diagram renderer's
  JavaScript context) or a big assembled site costs nothing to hand over; only tasks and results
  are pickled. Never fork a process that has loaded a model or started threads ("auto" checks).
- "fresh": a new interpreter (`python -c`, not multiprocessing's spawn, which re-runs the caller's
  main script) joined by a socket pair; the target, the warm-up and every task are pickled.

pebble was weighed and not wrapped: its pool forks workers from a manager thread while two other
threads run (the fork-with-threads hazard "auto" exists to avoid), it retries a worker whose
initializer fails forever instead of reporting it, and it knows no fresh-interpreter start.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

_PICKLE_ERRORS = (pickle.PicklingError, TypeError, AttributeError)


class WorkerError(Exception):
    """A task that no worker finished: crash, time or memory limit, or no worker could start."""


class RemoteTraceback(Exception):
    """The worker's traceback, chained under an exception re-raised in the parent."""

    def __str__(self) -> str:
        return self.args[0] if self.args else ""


@dataclass(frozen=True)
class Outcome:
    """What became of one task: its value, or why there is none."""

    status: str
    """ok, error (the target raised), timeout, memory or crashed."""
    value: Any = None
    detail: str = ""
    """For humans: "TypeError: ...", "worker exited with code -11", "no answer within 60 s"."""
    started: bool = True
    """False when the worker never got ready: the environment failed, not this task."""
    exitcode: int | None = None
    limit: float | None = None
    """The time (s) or memory (MB) limit that was exceeded."""
    exception: BaseException | None = field(default=None, compare=False)
    traceback: str = field(default="", compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def unwrap(self) -> Any:
        """The value, or the target's own exception (with the worker's traceback) / a WorkerError."""
        if self.ok:
            return self.value
        if self.exception is not None:
            raise self.exception from (RemoteTraceback(self.traceback) if self.traceback else None)
        raise WorkerError(self.detail)


def _error(exc: BaseException) -> Outcome:
    return Outcome("error", detail=f"{type(exc).__name__}: {exc}", exception=exc, traceback=traceback.format_exc())


def _limit_memory(memory_mb: int) -> None:
    """Cap the worker's address space, so a runaway render gets MemoryError instead of the machine's swap."""
    import resource

    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        try:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ValueError, OSError):
            pass


# --- the worker side ---------------------------------------------------------------------------


def _serve(conn: Any, target: Callable[[Any], Any], warm: Callable[[], Any] | None, memory_mb: int) -> None:
    """A worker: limit itself, warm up, then run tasks until told to stop or the parent goes away."""
    # Ctrl-C reaches the whole process group: the parent decides, the workers just stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _limit_memory(memory_mb)
    try:
        if warm is not None:
            warm()
    except BaseException as exc:
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        index, task = msg
        try:
            value = target(task)
        except MemoryError:
            try:
                conn.send((index, "memory", None))
            except (OSError, MemoryError):
                pass
            return  # a worker that ran out of memory is not reused
        except Exception as exc:
            _send_error(conn, index, exc)
            continue
        try:
            conn.send((index, "ok", value))
        except _PICKLE_ERRORS as exc:
            _send_error(conn, index, exc)


def _send_error(conn: Any, index: int, exc: BaseException) -> None:
    detail, tb = f"{type(exc).__name__}: {exc}", traceback.format_exc()
    try:
        pickle.dumps(exc)
    except Exception:
        exc = None  # type: ignore[assignment]  # the detail and traceback still go back
    conn.send((index, "error", (detail, exc, tb)))


def _fresh_main(fd: int) -> None:
    """Entry point of a fresh worker interpreter: the parent's sys.path first, then the spec."""
    from multiprocessing.connection import Connection

    conn = Connection(fd)
    try:
        # Targets may live outside the package (a project's or a test's module): look where the parent looks.
        sys.path.extend(p for p in conn.recv() if p not in sys.path)
        target, warm, memory_mb = conn.recv()
    except Exception as exc:
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    _serve(conn, target, warm, memory_mb)


# --- the parent side ---------------------------------------------------------------------------


def fork_is_safe() -> bool:
    """fork only from one thread with no model or WeasyPrint loaded: forking threads can deadlock."""
    import threading

    heavy = any(name in sys.modules for name in ("torch", "transformers", "weasyprint"))
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1 and not heavy


class _Worker:
    """One worker process and our end of its connection."""

    def __init__(self, method: str, target: Callable, warm: Callable | None, memory_mb: int, quiet: bool, name: str):
        self.method = method
        self.ready = False
        self.queue: deque[int] = deque()
        """Task indexes sent to this worker, oldest (the running one) first."""
        self.deadline: float | None = None
        if method == "fork":
            ctx = multiprocessing.get_context("fork")
            self.conn, child = ctx.Pipe()
            # Arguments of a forked Process are inherited, not pickled: the target may close over anything.
            self.proc: Any = ctx.Process(target=_serve, args=(child, target, warm, memory_mb), daemon=True, name=name)
            self.proc.start()
            child.close()
        else:
            import subprocess

            self.conn, child = multiprocessing.Pipe()
            package_root = str(Path(__file__).resolve().parents[1])
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
            code = "import sys; from generator.workers import _fresh_main; _fresh_main(int(sys.argv[1]))"
            out = subprocess.DEVNULL if quiet else None
            self.proc = subprocess.Popen(
                [sys.executable, "-c", code, str(child.fileno())], pass_fds=[child.fileno()], env=env,
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, close_fds=True,
            )
            child.close()
            try:
                self.conn.send(list(sys.path))
                self.conn.send((target, warm, memory_mb))
            except OSError:
                pass  # it died at once: the run sees it exit and reports that
            except BaseException:
                self.proc.kill()
                self.proc.wait()
                self.conn.close()
                raise
        self.started = time.monotonic()

    @property
    def exitcode(self) -> int | None:
        return self.proc.exitcode if self.method == "fork" else self.proc.poll()

    def join(self, timeout: float) -> None:
        if self.method == "fork":
            self.proc.join(timeout)
        else:
            import subprocess

            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass

    def stop(self) -> None:
        """Kill the worker if it still runs, reap it, close our end."""
        if self.exitcode is None:
            self.proc.kill()
        self.join(5)
        self.conn.close()


class Pool:
    """Worker processes that run `target(task)`; a task over its limits, or a crash, costs one worker."""

    # start: "fork", "fresh" or "auto" (fork when fork_is_safe(), else fresh). warm runs in each
    # worker before its first task, outside the time limit; with warm_parent and fork it runs in
    # the parent first, so every worker inherits it warm. prefetch tasks wait in each worker's pipe
    # so a worker never idles on a round trip (a task's time limit starts when it does). After
    # start_attempts workers failed to start, the tasks left get that failure (started=False).
    def __init__(
        self,
        target: Callable[[Any], Any],
        workers: int,
        *,
        timeout: float | None = None,
        memory_mb: int = 0,
        start: str = "fork",
        warm: Callable[[], Any] | None = None,
        warm_parent: bool = False,
        prefetch: int = 1,
        start_timeout: float = 60.0,
        start_attempts: int = 1,
        quiet: bool = False,
        name: str = "sitegen-worker",
    ):
        if start not in ("fork", "fresh", "auto"):
            raise ValueError(f"unknown start method {start!r}")
        self.target = target
        self.size = max(1, workers)
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.method = ("fork" if fork_is_safe() else "fresh") if start == "auto" else start
        self.warm = warm
        self.prefetch = max(1, prefetch)
        self.start_timeout = start_timeout
        self.start_attempts = max(1, start_attempts)
        self.quiet = quiet
        self.name = name
        self.workers: list[_Worker] = []
        self.start_failure: Outcome | None = None
        self._failures = 0
        if warm is not None and warm_parent and self.method == "fork":
            try:
                warm()
            except Exception:
                pass  # the workers will warm again and report the failure

    def start(self, count: int | None = None) -> "Pool":
        """Start workers now (up to `count`), so they warm up while the caller prepares the tasks."""
        want = min(self.size, count if count is not None else self.size)
        while len(self.workers) < want and self._failures < self.start_attempts:
            try:
                self.workers.append(_Worker(self.method, self.target, self.warm, self.memory_mb, self.quiet, self.name))
            except (OSError, *_PICKLE_ERRORS) as exc:
                self._start_failed(f"{type(exc).__name__}: {exc}", "error")
        return self

    def _start_failed(self, detail: str, status: str, exitcode: int | None = None) -> None:
        self._failures += 1
        self.start_failure = Outcome(status, detail=detail, started=False, exitcode=exitcode)

    def run(self, tasks: Iterable[Any], timeouts: Sequence[float | None] | None = None) -> list[Outcome]:
        """One Outcome per task, in input order; `timeouts` overrides the pool's limit per task."""
        tasks = list(tasks)
        if not tasks:
            return []
        limits = list(timeouts) if timeouts is not None else [self.timeout] * len(tasks)
        results: list[Outcome | None] = [None] * len(tasks)
        pending = deque(range(len(tasks)))
        want = min(self.size, len(tasks))

        def retire(w: _Worker, head: Outcome | None) -> None:
            """Stop a worker; its running task gets `head`, the ones queued behind it go back to pending."""
            if w.queue:
                first = w.queue.popleft()
                if head is not None:
                    results[first] = head
                else:
                    pending.appendleft(first)
            while w.queue:
                pending.appendleft(w.queue.pop())
            w.stop()
            self.workers.remove(w)

        while pending or any(w.queue for w in self.workers):
            if self._failures >= self.start_attempts:
                while pending:
                    results[pending.popleft()] = self.start_failure
            if pending:
                self.start(want)
            now = time.monotonic()
            for w in list(self.workers):
                while w.ready and pending and len(w.queue) < self.prefetch:
                    index = pending.popleft()
                    try:
                        w.conn.send((index, tasks[index]))
                    except _PICKLE_ERRORS as exc:
                        results[index] = Outcome("error", detail=f"task cannot be sent to a worker: {type(exc).__name__}: {exc}")
                        continue
                    except OSError:
                        pending.appendleft(index)
                        w.join(1)
                        retire(w, None)  # it died idle; a new one takes its tasks
                        break
                    if not w.queue:
                        w.deadline = now + limits[index] if limits[index] is not None else None
                    w.queue.append(index)
            if not self.workers:
                continue
            limits_now = [w.deadline for w in self.workers if w.queue and w.deadline is not None]
            limits_now += [w.started + self.start_timeout for w in self.workers if not w.ready]
            wait = max(0.0, min(limits_now) - now) if limits_now else None
            readable = multiprocessing.connection.wait([w.conn for w in self.workers], wait)
            now = time.monotonic()
            for w in list(self.workers):
                if w.conn in readable:
                    try:
                        msg = w.conn.recv()
                    except (EOFError, OSError):
                        w.join(1)
                        code = w.exitcode
                        if not w.ready:
                            self._start_failed(f"worker exited with code {code}", "crashed", code)
                        crash = Outcome("crashed", detail=f"worker exited with code {code}", exitcode=code)
                        retire(w, crash if w.queue else None)
                        continue
                    if msg[0] == "ready":
                        w.ready = True
                    elif msg[0] == "failed":
                        self._start_failed(str(msg[1]), "error")
                        retire(w, None)
                    else:
                        index, status, payload = msg
                        if w.queue and w.queue[0] == index:
                            w.queue.popleft()
                        if status == "ok":
                            results[index] = Outcome("ok", payload)
                        elif status == "error":
                            detail, exc, tb = payload
                            results[index] = Outcome("error", detail=detail, exception=exc, traceback=tb)
                        else:
                            results[index] = Outcome("memory", detail=f"over the memory limit of {self.memory_mb} MB",
                                                     limit=self.memory_mb)
                            retire(w, None)  # it exits after MemoryError: what it had queued goes back
                            continue
                        # The next queued task starts now: its own time limit starts now too.
                        nxt = w.queue[0] if w.queue else None
                        w.deadline = now + limits[nxt] if nxt is not None and limits[nxt] is not None else None
                elif w.queue and w.deadline is not None and now >= w.deadline:
                    limit = limits[w.queue[0]]
                    retire(w, Outcome("timeout", detail=f"timed out after {limit:g} s", limit=limit))
                elif not w.ready and now >= w.started + self.start_timeout:
                    self._start_failed(f"no answer within {self.start_timeout:g} s", "timeout")
                    retire(w, None)
        return [r if r is not None else Outcome("crashed", detail="no result") for r in results]

    def close(self) -> None:
        """Ask every worker to finish, and kill the ones that don't."""
        for w in self.workers:
            try:
                w.conn.send(None)
            except (OSError, ValueError):
                pass
        for w in self.workers:
            w.join(2)
            w.stop()
        self.workers = []

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class SerialPool:
    """Pool's twin in this process: same interface and outcomes, but no time or memory limit can be enforced."""

    def __init__(self, target: Callable[[Any], Any], workers: int = 0, *, warm: Callable[[], Any] | None = None, **_limits: Any):
        self.target = target
        self.warm = warm
        self.start_failure: Outcome | None = None
        self._warmed = False

    def start(self, count: int | None = None) -> "SerialPool":
        if not self._warmed:
            self._warmed = True
            try:
                if self.warm is not None:
                    self.warm()
            except Exception as exc:
                self.start_failure = Outcome("error", detail=f"{type(exc).__name__}: {exc}", started=False)
        return self

    def run(self, tasks: Iterable[Any], timeouts: Sequence[float | None] | None = None) -> list[Outcome]:
        tasks = list(tasks)
        if not tasks:
            return []
        self.start()
        if self.start_failure is not None:
            return [self.start_failure] * len(tasks)
        out = []
        for task in tasks:
            try:
                out.append(Outcome("ok", self.target(task)))
            except MemoryError:
                out.append(Outcome("memory", detail="out of memory"))
            except Exception as exc:
                out.append(_error(exc))
        return out

    def close(self) -> None:
        pass

    def __enter__(self) -> "SerialPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_pool(target: Callable[[Any], Any], workers: int, **options: Any) -> Pool | SerialPool:
    """A Pool of `workers` processes, or its serial twin for workers <= 0."""
    return SerialPool(target, workers, **options) if workers <= 0 else Pool(target, workers, **options)


# --- maps over forked workers ------------------------------------------------------------------


def fork_map(fn: Callable[[Any], Any], tasks: Iterable[Any], workers: int) -> list[Any]:
    """fn over tasks in forked workers (fn may close over anything: it is inherited); results in order."""
    # No limits: for pure CPU-bound stages. A worker's exception is re-raised here, as
    # concurrent.futures does; serial with workers <= 1 or where fork does not exist.
    tasks = list(tasks)
    if workers <= 1 or len(tasks) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [fn(t) for t in tasks]
    with Pool(fn, min(workers, len(tasks)), start="fork") as pool:
        return [o.unwrap() for o in pool.run(tasks)]


def map_chunks(fn: Callable[[list], list], items: Sequence[Any], workers: int) -> list[Any]:
    """fn (a list → a list as long) over `workers` interleaved slices of items in forked workers; results in input order."""
    items = list(items)
    n = min(workers, len(items))
    if n <= 1:
        return list(fn(items))
    parts = fork_map(lambda i: list(fn(items[i::n])), range(n), n)
    out: list[Any] = [None] * len(items)
    for i, part in enumerate(parts):
        out[i::n] = part
    return out
