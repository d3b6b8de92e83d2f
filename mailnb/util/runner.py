"""Run mailnb's async core from synchronous code: a script, a notebook cell (whose event loop is
already running) or a papermill run, without the user touching the event loop.

The coroutine runs on a fresh event loop in a worker thread; the calling thread waits, calls ``tick``
every ``interval`` seconds (the progress display lives there, in the cell's own thread), and turns a
KeyboardInterrupt (Ctrl-C, or "interrupt the kernel") into ``on_interrupt()`` so the run can stop
cleanly. A second interrupt abandons the wait.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T], *, tick: Callable[[], None] | None = None,
             interval: float = 0.25, on_interrupt: Callable[[], None] | None = None) -> T:
    box: dict[str, Any] = {}
    # an Event, not Thread.join/is_alive: a KeyboardInterrupt that lands inside join() can leave
    # is_alive() False while the thread still runs (CPython gh-90882), which would return
    # before the run has recorded its messages in flight
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as err:
            box["error"] = err
        finally:
            done.set()

    thread = threading.Thread(target=target, name="mailnb-loop", daemon=True)
    thread.start()
    interrupted = False
    while True:
        try:             # every wait inside the handler: an interrupt never leaves a run behind
            while not done.wait(interval):
                if tick is not None:
                    tick()
            break
        except KeyboardInterrupt:
            if interrupted or on_interrupt is None:
                raise
            interrupted = True
            on_interrupt()
    if "error" in box:
        raise box["error"]
    if interrupted:
        raise KeyboardInterrupt("stopped after the messages in flight were recorded; the next run "
                                "resumes where this one stopped (the summary above says what is "
                                "left and what is unknown)")
    return cast(T, box["value"])
