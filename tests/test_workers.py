"""The one process pool: limits, crashes, start-up failures, order, and the serial twin — on real processes."""

from __future__ import annotations

import faulthandler
import os
import signal
import time
from pathlib import Path

import pytest

from generator.workers import Outcome, Pool, RemoteTraceback, SerialPool, WorkerError, fork_map, map_chunks, open_pool

METHODS = ["fork", "fresh"]
WARMED: list[int] = []


# Targets live at module level so a fresh interpreter can import them (it sees the parent's sys.path).

def echo(task):
    """Sleeps a little (later tasks less) so finishing order differs from input order."""
    n, delay = task
    time.sleep(delay)
    return n * n


def misbehave(task):
    """One task, one kind of trouble; anything else is squared."""
    kind, arg = task
    if kind == "hang":
        Path(arg).write_text(str(os.getpid()))
        time.sleep(3600)
    if kind == "exit":
        os._exit(arg)
    if kind == "segfault":
        faulthandler.disable()  # inherited from pytest: its dump would only be noise here
        os.kill(os.getpid(), signal.SIGSEGV)
    if kind == "raise":
        raise ValueError(f"bad input {arg}")
    if kind == "greedy":
        return len(bytearray(arg * 1024 * 1024))
    if kind == "unpicklable":
        return lambda: None
    return arg * arg


def warm_record():
    WARMED.append(os.getpid())


def warmed_by(_task):
    return list(WARMED)


def warm_raises():
    raise RuntimeError("no engine here")


def warm_exits():
    os._exit(5)


def warm_hangs():
    time.sleep(3600)


def warm_counting(path: str = ""):
    """Appends a line to the file named by $SITEGEN_TEST_WARM_LOG, then fails."""
    with open(os.environ["SITEGEN_TEST_WARM_LOG"], "a") as f:
        f.write("x\n")
    raise RuntimeError("still broken")


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("method", METHODS)
def test_outcomes_come_back_in_input_order(method):
    tasks = [(n, 0.2 - n * 0.02) for n in range(8)]
    with Pool(echo, 3, start=method, prefetch=2) as pool:
        outcomes = pool.run(tasks)
    assert [o.value for o in outcomes] == [n * n for n in range(8)]
    assert all(o.ok and o.started for o in outcomes)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", METHODS)
def test_task_over_its_time_limit_is_killed_and_reported(tmp_path, method):
    pidfile = tmp_path / "pid"
    tasks = [("square", 2), ("hang", str(pidfile)), ("square", 3), ("square", 4)]
    start = time.monotonic()
    with Pool(misbehave, 2, start=method, timeout=1.0) as pool:
        outcomes = pool.run(tasks)
    assert time.monotonic() - start < 30  # a bound against a frozen pool, not a speed check
    assert outcomes[1] == Outcome("timeout", detail="timed out after 1 s", limit=1.0)
    assert [outcomes[i].value for i in (0, 2, 3)] == [4, 9, 16]
    assert gone(int(pidfile.read_text()))


@pytest.mark.timeout(120)
def test_per_task_time_limits_override_the_pool_limit(tmp_path):
    tasks = [("hang", str(tmp_path / "a")), ("hang", str(tmp_path / "b"))]
    with Pool(misbehave, 2, start="fork", timeout=60.0) as pool:
        outcomes = pool.run(tasks, timeouts=[0.5, 1.5])
    assert [(o.status, o.limit) for o in outcomes] == [("timeout", 0.5), ("timeout", 1.5)]


@pytest.mark.parametrize("method", METHODS)
def test_crashed_worker_is_reported_and_the_rest_run(method):
    tasks = [("exit", 3), ("square", 5), ("segfault", None), ("square", 6)]
    with Pool(misbehave, 1, start=method, prefetch=2) as pool:
        outcomes = pool.run(tasks)
    assert outcomes[0] == Outcome("crashed", detail="worker exited with code 3", exitcode=3)
    assert outcomes[2] == Outcome("crashed", detail=f"worker exited with code {-signal.SIGSEGV}", exitcode=-signal.SIGSEGV)
    # the task queued behind a crash went back and ran on a new worker
    assert (outcomes[1].value, outcomes[3].value) == (25, 36)


@pytest.mark.timeout(120)
def test_memory_limit_is_reported_and_the_worker_replaced():
    tasks = [("greedy", 2048), ("square", 7), ("greedy", 10)]
    with Pool(misbehave, 1, start="fresh", memory_mb=400, prefetch=2) as pool:
        outcomes = pool.run(tasks)
    assert outcomes[0] == Outcome("memory", detail="over the memory limit of 400 MB", limit=400)
    assert outcomes[1].value == 49
    assert outcomes[2].value == 10 * 1024 * 1024  # under the limit


@pytest.mark.parametrize("method", METHODS)
def test_target_exception_is_an_error_outcome_and_unwrap_reraises_it(method):
    with Pool(misbehave, 1, start=method) as pool:
        bad, good = pool.run([("raise", 1), ("square", 8)])
    assert (bad.status, bad.detail, bad.started) == ("error", "ValueError: bad input 1", True)
    assert good.value == 64
    with pytest.raises(ValueError, match="bad input 1") as info:
        bad.unwrap()
    assert isinstance(info.value.__cause__, RemoteTraceback) and "misbehave" in str(info.value.__cause__)


def test_result_that_cannot_be_pickled_is_an_error():
    with Pool(misbehave, 1, start="fork") as pool:
        (o,) = pool.run([("unpicklable", None)])
    assert o.status == "error" and "pickle" in o.detail.lower()


@pytest.mark.parametrize("method", METHODS)
def test_warm_up_that_raises_is_a_start_failure_for_every_task(method):
    with Pool(misbehave, 2, start=method, warm=warm_raises) as pool:
        outcomes = pool.run([("square", 1), ("square", 2), ("square", 3)])
    assert outcomes == [Outcome("error", detail="RuntimeError: no engine here", started=False)] * 3
    assert pool.start_failure == outcomes[0]


@pytest.mark.parametrize("method", METHODS)
def test_worker_that_exits_while_starting_is_a_start_failure(method):
    with Pool(misbehave, 1, start=method, warm=warm_exits) as pool:
        (o,) = pool.run([("square", 1)])
    assert o == Outcome("crashed", detail="worker exited with code 5", started=False, exitcode=5)


@pytest.mark.timeout(60)
def test_worker_silent_at_start_is_a_start_failure():
    with Pool(misbehave, 1, start="fork", warm=warm_hangs, start_timeout=1.0) as pool:
        (o,) = pool.run([("square", 1)])
    assert o == Outcome("timeout", detail="no answer within 1 s", started=False)


def test_interpreter_that_cannot_start_is_a_start_failure(monkeypatch):
    monkeypatch.setattr("sys.executable", "/bin/false")
    with Pool(misbehave, 1, start="fresh") as pool:
        (o,) = pool.run([("square", 1)])
    assert (o.status, o.started, o.exitcode) == ("crashed", False, 1)


def test_start_attempts_bound_the_retries(tmp_path, monkeypatch):
    log = tmp_path / "warm.log"
    monkeypatch.setenv("SITEGEN_TEST_WARM_LOG", str(log))
    with Pool(misbehave, 1, start="fork", warm=warm_counting, start_attempts=3) as pool:
        outcomes = pool.run([("square", n) for n in range(4)])
    assert log.read_text().count("x") == 3
    assert all(o.detail == "RuntimeError: still broken" and not o.started for o in outcomes)


def test_forked_workers_inherit_the_parents_warm_up():
    WARMED.clear()
    with Pool(warmed_by, 1, start="fork", warm=warm_record, warm_parent=True) as pool:
        (o,) = pool.run([None])
    parent = os.getpid()
    assert WARMED == [parent]  # warmed once here ...
    assert o.value[0] == parent and len(o.value) == 2 and o.value[1] != parent  # ... inherited, then the worker's own (cheap) call
    WARMED.clear()


@pytest.mark.timeout(120)
def test_serial_twin_gives_the_same_outcomes():
    tasks = [("square", 3), ("raise", 2), ("square", 4)]
    with Pool(misbehave, 2, start="fresh") as pool:
        real = pool.run(tasks)
    with SerialPool(misbehave) as twin:
        serial = twin.run(tasks)
    assert real == serial
    assert [o.status for o in serial] == ["ok", "error", "ok"]
    failed = SerialPool(misbehave, warm=warm_raises).run(tasks)
    assert failed == Pool(misbehave, 1, start="fork", warm=warm_raises).run(tasks)


def test_open_pool_is_serial_for_zero_workers():
    assert isinstance(open_pool(misbehave, 0), SerialPool)
    pool = open_pool(misbehave, 1, timeout=5.0)
    assert isinstance(pool, Pool)
    pool.close()


def test_empty_run_starts_nothing():
    pool = Pool(misbehave, 2)
    assert pool.run([]) == [] and pool.workers == []


def test_start_early_then_run_twice_on_the_same_workers():
    with Pool(warmed_by, 2, start="fork").start() as pool:
        pids = {w.proc.pid for w in pool.workers}
        assert len(pids) == 2
        pool.run([None, None])
        pool.run([None])
        assert {w.proc.pid for w in pool.workers} == pids
    assert pool.workers == []


def test_fork_map_keeps_order_and_reraises():
    big = {"inherited": list(range(100_000))}  # closed over, not pickled
    assert fork_map(lambda i: (i, len(big["inherited"]), os.getpid()), range(4), 2)[2][:2] == (2, 100_000)
    pids = {r[2] for r in fork_map(lambda i: (i, 0, os.getpid()), range(4), 2)}
    assert os.getpid() not in pids
    with pytest.raises(KeyError):
        fork_map(lambda i: {}[i], [1, 2], 2)


def test_fork_map_crash_raises_worker_error():
    with pytest.raises(WorkerError, match="worker exited with code 4"):
        fork_map(lambda i: os._exit(4) if i else i, [0, 1], 2)


def test_map_chunks_interleaves_back_into_input_order():
    items = list(range(101))
    out = map_chunks(lambda chunk: [x * 2 for x in chunk], items, 3)
    assert out == [x * 2 for x in items]
    pids = {pid for _, pid in map_chunks(lambda chunk: [(x, os.getpid()) for x in chunk], items, 3)}
    assert pids and os.getpid() not in pids
    assert map_chunks(lambda chunk: [(x, os.getpid()) for x in chunk], items, 1)[0] == (0, os.getpid())
