"""Group commit: the journal writes of every connection of a run, committed together.

Each connection's outcomes (``sent``, ``failed``, ...) and claims are gathered for two turns of the
event loop and written in one transaction (:meth:`mailnb.journal.Journal.apply`), the way a
database commits the log records of several clients with one write. Nothing waits longer for it:
the group is committed as soon as the connections that woke up together have added to it, so what a
crash may lose is what it could lose before, the outcomes of the messages answered in that turn.

Claims are awaited (a message is not handed to the relay before its row says ``sending``);
outcomes are not waited for, but they are committed in the same turn too: held back for the next
claim, an outcome whose next claim is a round trip away keeps its row ``sending`` that long, and a
crash meanwhile leaves it ``unknown`` (bench/crash.py measured 3.1 unknown a kill that way, 1.3
without).
"""
from __future__ import annotations

import asyncio
from typing import Any

from ..errors import JournalError
from ..journal.base import Claim, Journal, Outcome


class GroupCommit:
    """The writes of one run, committed every second turn of the event loop."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.writes: list[Outcome | Claim] = []
        self.waiters: list[tuple[int, int, asyncio.Future[list[bool]]]] = []
        self.scheduled = False
        self.failed: JournalError | None = None
        self.lost = 0             # outcomes a failed journal could not take, not even its reserve
        self.commits = 0
        self.written = 0

    def later(self, outcome: Outcome) -> None:
        """An outcome, written with the next group (not waited for)."""
        if self.failed is not None:
            self._rescue(outcome)
            return
        self.writes.append(outcome)
        self._schedule()

    async def claim(self, *claims: Claim) -> list[bool]:
        """Claims, committed with this turn's group; whether each took effect. Raises the
        journal's error if the group could not be written."""
        if self.failed is not None:
            raise self.failed
        future = asyncio.get_running_loop().create_future()
        self.waiters.append((len(self.writes), len(claims), future))
        self.writes.extend(claims)
        self._schedule()
        done: list[bool] = await future
        return done

    def _schedule(self) -> None:
        if not self.scheduled:
            self.scheduled = True
            # after the next turn, not this one: a reply read in this turn wakes its worker
            # task in the next, and that worker's write joins the group (half the commits of
            # one turn at 4 connections, bench/throughput.py)
            loop = asyncio.get_running_loop()
            loop.call_soon(loop.call_soon, self._commit)

    def _commit(self) -> None:
        try:
            self.flush()
        except JournalError:
            pass                   # every waiter has it; later outcomes go to the reserve

    def flush(self) -> None:
        """Commit what has been gathered now (before a wait, and at the end of the run).
        Raises the journal's error, after handing each outcome to the journal's reserve."""
        self.scheduled = False
        writes, waiters = self.writes, self.waiters
        self.writes, self.waiters = [], []
        if writes:
            try:
                done = self.journal.apply(writes)
            except JournalError as err:
                self._failed(err, writes, waiters)
                raise
            self.commits += 1
            self.written += len(writes)
            for start, n, future in waiters:
                if not future.done():
                    future.set_result(done[start:start + n])
        elif self.failed is not None:
            raise self.failed

    def _failed(self, err: JournalError, writes: list[Any], waiters: list[Any]) -> None:
        self.failed = err
        for w in writes:
            if isinstance(w, Outcome):
                self._rescue(w)
        for _, _, future in waiters:
            if not future.done():
                future.set_exception(err)

    def _rescue(self, outcome: Outcome) -> None:
        try:
            self.journal.rescue(outcome)
        except JournalError:      # it stays 'sending': the next run marks it unknown
            self.lost += 1
