"""Rows on every core: a task over consecutive ranges of row positions, run in worker processes.

The preflight renders every row of an audience before the first message leaves; one core renders
~30,000 rows a second, so a million rows took most of a minute on one core while the others idled.
:func:`ranges` splits the rows into ranges and calls ``task(start, stop)`` for each in forked
worker processes: a forked worker inherits the task, the template and the rows, so nothing but a
range goes in and nothing but each range's (small) result comes back. Results arrive in range
order, so whatever is merged from them reads as if one process had gone through the rows in turn.

One process does it all when there are few rows (starting workers costs more than it saves), one
core, or a system where forking a process with threads is unsafe (macOS's system libraries): the
same task, the same results. Pure apart from the processes: nothing here reads or writes files.
"""
from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

#: below this many rows, one process: forking and collecting would cost more than it saves
MIN_ROWS = 4_000
#: workers to use (None: one per core this process may run on); 1 turns fan-out off
WORKERS: int | None = None

_TASK: list[Callable[[int, int], Any]] = []     # read by forked workers


def cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                       # not Linux
        return os.cpu_count() or 1


def plan_ranges(n: int, workers: int) -> list[tuple[int, int]]:
    """Consecutive ranges covering ``range(n)``: several per worker, so a slow range (long rows,
    big attachments to stat) does not leave the other workers idle at the end."""
    size = max(500, min(20_000, -(-n // (workers * 8)))) if workers > 1 else max(n, 1)
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def ranges(task: Callable[[int, int], Any], n: int, *, workers: int | None = None,
           min_rows: int | None = None) -> Iterator[Any]:
    """``task(start, stop)`` for consecutive ranges covering ``range(n)``, each result yielded in
    range order: in forked worker processes, one a core, when there are ``min_rows`` (default
    :data:`MIN_ROWS`) or more and several cores (Linux), else in this process. ``task`` must not
    rely on changing this process's objects: in a worker such changes stay in the worker."""
    workers = workers or WORKERS or cores()
    min_rows = MIN_ROWS if min_rows is None else min_rows
    if workers < 2 or n < min_rows or not sys.platform.startswith("linux"):
        for start, stop in plan_ranges(n, 1 if n < min_rows else workers):
            yield task(start, stop)
        return
    import gc
    import multiprocessing
    _TASK[:] = [task]
    gc.freeze()        # a worker's collector leaves the inherited objects alone (and their pages)
    # a fresh worker for each range: a page a worker reads is copied (reference counts are
    # written), so a long-lived worker would end up holding a copy of every row it was given;
    # one that ends with its range gives its copies back
    pool = multiprocessing.get_context("fork").Pool(workers, initializer=_quiet,
                                                    maxtasksperchild=1)
    try:
        yield from pool.imap(_run, plan_ranges(n, workers))
        pool.close()
    finally:          # also when the caller stops early: the ranges not started are dropped
        pool.terminate()
        pool.join()
        gc.unfreeze()
        _TASK.clear()


def _quiet() -> None:
    """Ctrl-C in a terminal reaches the whole process group: this process decides, not workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run(span: tuple[int, int]) -> Any:
    return _TASK[0](*span)


__all__ = ["MIN_ROWS", "WORKERS", "cores", "plan_ranges", "ranges"]
