"""Rows on every core: a task over consecutive ranges of row positions, run in worker processes.

The preflight renders every row of an audience before the first message leaves; one core renders
~30,000 rows a second, so a million rows took most of a minute on one core while the others idled.
:func:`ranges` splits the rows into ranges and calls ``task(start, stop)`` for each, in this
process and in forked worker processes at the same time. A forked worker inherits the task, the
template and the rows, so nothing but a range goes in and nothing but each range's (small) result
comes back. Results arrive in range order, so whatever is merged from them reads as if one
process had gone through the rows in turn.

One process does it all when there are few rows (starting workers costs more than it saves), one
core, or a system where forking a process with threads is unsafe (macOS's system libraries): the
same task, the same results. Pure apart from the processes: nothing here reads or writes files.
"""
from __future__ import annotations

import os
import pickle
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

#: below this many rows, one process: forking and collecting would cost more than it saves
MIN_ROWS = 4_000
#: workers to use (None: one per core this process may run on); 1 turns fan-out off
WORKERS: int | None = None


def cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                       # not Linux
        return os.cpu_count() or 1


def plan_ranges(n: int, workers: int) -> list[tuple[int, int]]:
    """Consecutive ranges covering ``range(n)``: several per worker, so a slow range (long rows,
    big attachments to stat) does not leave the other workers idle at the end."""
    size = max(2_000, min(20_000, -(-n // (workers * 4)))) if workers > 1 else max(n, 1)
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def ranges(task: Callable[[int, int], Any], n: int, *, workers: int | None = None,
           min_rows: int | None = None) -> Iterator[Any]:
    """``task(start, stop)`` for consecutive ranges covering ``range(n)``, each result yielded in
    range order: this process and forked workers (one a core in all) take them in turn when
    there are ``min_rows`` (default :data:`MIN_ROWS`) or more and several cores (Linux), else
    this process does them all. ``task`` must not rely on changing this process's objects: in a
    worker such changes stay in the worker."""
    workers = workers or WORKERS or cores()
    min_rows = MIN_ROWS if min_rows is None else min_rows
    if workers < 2 or n < min_rows or not sys.platform.startswith("linux"):
        for start, stop in plan_ranges(n, 1 if n < min_rows else workers):
            yield task(start, stop)
        return
    import gc
    gc.freeze()        # a worker's collector leaves the inherited objects alone (and their pages)
    try:
        yield from _shared(task, plan_ranges(n, workers), workers)
    finally:
        gc.unfreeze()


def _shared(task: Callable[[int, int], Any], spans: list[tuple[int, int]],
            workers: int) -> Iterator[Any]:
    """Of each ``workers`` ranges in a row, this process does the first and a forked worker
    each of the others, at the same time. A fresh worker for each range: a page a worker reads
    is copied (reference counts are written), so a long-lived worker would end up holding a
    copy of every row it was given; one that ends with its range gives them back.
    (``multiprocessing.Pool(maxtasksperchild=1)`` does the same, but its ``terminate`` can hang
    on a worker it starts meanwhile.)"""
    running: dict[int, tuple[int, int]] = {}
    try:
        for i, span in enumerate(spans):
            if i % workers:
                yield _collect(*running.pop(i))
                continue
            for j in range(i + 1, min(i + workers, len(spans))):
                running[j] = _start(task, spans[j])
            yield task(*span)
    finally:          # also when the caller stops early: the workers still running are ended
        for pid, fd in running.values():
            os.kill(pid, signal.SIGKILL)
            os.close(fd)
            os.waitpid(pid, 0)


def _start(task: Callable[[int, int], Any], span: tuple[int, int]) -> tuple[int, int]:
    """Fork a worker for one range; (its pid, the pipe its pickled result comes through)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write)
        return pid, read
    code = 0
    try:            # the worker: nothing of the parent's runs here but the task (no atexit, no
        os.close(read)      # flush of the parent's buffers: os._exit)
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C reaches the process group
        try:
            out = pickle.dumps((True, task(*span)), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as err:
            out = _pickled_error(err)
        with os.fdopen(write, "wb") as pipe:
            pipe.write(out)
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _collect(pid: int, fd: int) -> Any:
    with os.fdopen(fd, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        raise RuntimeError(f"a worker process ended without a result (wait status {status}); "
                           "is the machine out of memory?")
    ok, value = pickle.loads(data)
    if not ok:
        raise value
    return value


def _pickled_error(err: BaseException) -> bytes:
    try:
        return pickle.dumps((False, err), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return pickle.dumps((False, RuntimeError(f"{type(err).__name__}: {err}")))


__all__ = ["MIN_ROWS", "WORKERS", "cores", "plan_ranges", "ranges"]
