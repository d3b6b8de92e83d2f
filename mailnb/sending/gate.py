"""The gate: the one place that answers "may this message go now, and if not, when?".

A run asks it twice for each new recipient: :meth:`Gate.verdict` before taking one (the run's
limit, the daily cap, the send window) and :meth:`Gate.turn` for its slot (the rate, the blocks, a
server's hold); and tells it each reply (:meth:`Gate.observe`: a 421 slows the pace, a Retry-After
holds it). The daily cap is also checked by the journal at each handover (:attr:`Gate.cap_rule`),
against what every worker sharing the journal sent and has in flight.

The pacers hand out the slots: :class:`Pacer` in this process, :class:`SharedPacer` from one
schedule in the journal, so several workers at ``600/h`` send 600 an hour in all.
"""
from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ..config.pacing import CAP_PERIOD, Pacing
from ..journal.base import Cap, Coordination
from ..transports.outcome import Delivery
from .plan import Item
from .progress import clock, say

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Verdict:
    """The gate's answer for the next new recipient: ``go``; or ``stop`` with the reason no new
    recipient may go in this run (the limit, the daily cap, the window closed); or neither, when
    waiting helps (``wait=True`` at the daily cap): :meth:`Gate.wait_for_cap`, then ask again."""

    go: bool
    stop: str | None = None


GO = Verdict(True)
WAIT = Verdict(False)


class GateProtocol(Protocol):
    """What the run needs of a gate (a per-destination gate implements the same)."""

    cap_rule: Cap | None

    def verdict(self, item: Item) -> Verdict: ...
    def take(self, item: Item) -> None: ...
    def give_back(self, item: Item) -> None: ...
    def due_now(self) -> bool: ...
    async def turn(self, item: Item, before_sleep: Callable[[], None] | None = None) -> None: ...
    def observe(self, item: Item, result: Delivery) -> None: ...


class Budget:
    """How many more new recipients may go (the run's limit, or the daily cap's room)."""

    def __init__(self, left: float) -> None:
        self.left = left

    def take(self) -> None:
        self.left -= 1

    def give_back(self) -> None:
        self.left += 1


class Gate:
    """The run's limit, the daily cap (rolling 24 hours, per relay account, across runs and
    workers), the send window and the pace, for one run. ``cap_left`` is the cap's room when the
    run was planned; ``wait``: at the daily cap or outside the window, wait instead of stopping."""

    def __init__(self, pacing: Pacing, journal: Coordination, account: str, *, cap_left: float,
                 wait: bool, sleep: Sleep) -> None:
        self.pacing, self.journal, self.account, self.wait = pacing, journal, account, wait
        self.sleep = sleep
        # a rate or blocks: one schedule in the journal for every worker on this relay account
        self.shared_schedule = bool(pacing.rate or pacing.block_size)
        self.pacer: Pacer = SharedPacer(pacing, lambda interval: journal.reserve_slot(
            account, interval, pacing.block_size, pacing.block_pause), sleep=sleep) \
            if self.shared_schedule else Pacer(pacing, sleep=sleep)
        self.cap_rule = Cap(account, pacing.daily_cap) if pacing.daily_cap else None
        self.cap = Budget(cap_left)
        self.limit = Budget(pacing.limit or math.inf)

    # -- may a new recipient go? -------------------------------------------------------------------
    def verdict(self, item: Item) -> Verdict:
        window = self.pacing.window
        if self.limit.left <= 0:
            return Verdict(False, "limit reached")
        if self.cap.left <= 0:
            return WAIT if self.wait else Verdict(False, "daily cap reached")
        if window is not None and not self.wait and not window.is_open(time.time()):
            return Verdict(False, f"outside the send window ({window.text}); it opens at "
                                  f"{clock(window.next_open(time.time()))}")
        return GO

    def take(self, item: Item) -> None:
        """The recipient goes: one less for the limit and the daily cap."""
        self.limit.take()
        self.cap.take()

    def give_back(self, item: Item) -> None:
        """A recipient taken did not go (failed to render, refused, deferred for good): its room
        in the daily cap is free again (the run's limit counts attempts)."""
        self.cap.give_back()

    def has_room(self) -> bool:
        return self.limit.left > 0 and self.cap.left > 0

    def room(self, most: int) -> int:
        """How many new recipients to hold at once: at most ``most``, fewer near the limit or
        the daily cap, at least one."""
        return max(1, int(min(most, self.limit.left, self.cap.left)))

    def cap_filled(self) -> None:
        """Other workers filled the daily cap meanwhile (the journal refused a handover)."""
        self.cap.left = 0

    def cap_has_room(self) -> bool:
        """Whether the journal's count of the daily cap, over every worker, has room now."""
        rule = self.cap_rule
        return rule is None or self.journal.in_cap(rule.account) < rule.limit

    async def wait_for_cap(self, in_flight: int) -> None:
        """With ``wait`` at the daily cap: sleep until the rolling window frees a message."""
        cap = self.pacing.daily_cap or 0
        free_at = self.journal.cap_frees_at(self.account, cap, time.time())
        if free_at is not None:
            say(f"daily cap of {cap} reached; waiting until {clock(free_at)}, when the rolling "
                "24 hours allow the next message")
            await self.sleep(max(free_at - time.time(), 0) + 0.05)
        else:
            await self.sleep(0.2)        # only messages in flight hold the cap: they end soon
        used = self.journal.sent_since(self.account, time.time() - CAP_PERIOD)
        self.cap.left = max(cap - used - in_flight, 0)

    # -- when may it go? ---------------------------------------------------------------------------
    def due_now(self) -> bool:
        """Whether a message may go at once, with no wait for a slot."""
        return self.pacer.due_now()

    async def turn(self, item: Item, before_sleep: Callable[[], None] | None = None) -> None:
        """Wait for the item's slot; ``before_sleep`` runs first when there is a wait."""
        await self.pacer.wait(before_sleep=before_sleep)

    def observe(self, item: Item, result: Delivery) -> None:
        """A server's reply: a 421 slows the pace; a Retry-After holds every slot until then."""
        if result.slow_down:
            self.pacer.slow_down()
        if result.retry_after:
            self.pacer.hold(result.retry_after)


class Pacer:
    """Hands out start times: the k-th message never starts before the schedule says, and the
    schedule is shared by every connection. When the sender falls behind, the schedule moves with
    it (no burst to catch up). Outside the send window, the next slot is when it opens."""

    def __init__(self, pacing: Pacing, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Sleep = asyncio.sleep, wall: Callable[[], float] = time.time) -> None:
        self.interval = 1 / pacing.rate if pacing.rate else 0.0
        self.block_size = pacing.block_size
        self.block_pause = pacing.block_pause
        self.window = pacing.window
        self.clock = clock
        self.wall = wall
        self.sleep = sleep
        self.count = 0
        self.next_slot: float | None = None

    def slow_down(self, factor: float = 2.0, floor: float = 0.5) -> None:
        """After a 421 (the relay is overloaded): send at most half as fast from now on."""
        self.interval = max(self.interval * factor, floor)

    def hold(self, seconds: float) -> None:
        """No slot before ``seconds`` from now (a server's Retry-After)."""
        until = self.clock() + seconds
        self.next_slot = until if self.next_slot is None else max(self.next_slot, until)

    def reserve(self) -> float:
        """Take the next slot and return its time (no waiting)."""
        now = self.clock()
        if self.next_slot is None:
            self.next_slot = now
        if self.count and self.block_size and self.count % self.block_size == 0:
            # the pause is a real break even when the sender has fallen behind the schedule
            self.next_slot = max(self.next_slot, now) + self.block_pause
        slot = max(self.next_slot, now)
        if self.window is not None:
            offset = self.wall() - now
            slot = self.window.next_open(slot + offset) - offset
        self.next_slot = slot + self.interval
        self.count += 1
        return slot

    def due_now(self) -> bool:
        """Whether the next slot is now: no rate, no blocks, no hold, the window open."""
        return not self.interval and not self.block_size and \
            (self.next_slot is None or self.next_slot <= self.clock()) and \
            (self.window is None or self.window.is_open(self.wall()))

    async def wait(self, before_sleep: Callable[[], None] | None = None) -> None:
        slot = self.reserve()
        delay = slot - self.clock()
        if delay > 0:
            if before_sleep is not None:
                before_sleep()
            await self.sleep(delay)


class SharedPacer(Pacer):
    """A :class:`Pacer` whose schedule is kept in the journal, so every run and worker sending
    through one relay account takes its slots from one schedule: four workers at ``600/h`` send
    600 an hour in all. ``reserve_slot(interval)`` returns the next slot's wall-clock time (see
    :meth:`mailnb.journal.base.Coordination.reserve_slot`); a Retry-After hold and the send window
    still apply here."""

    def __init__(self, pacing: Pacing, reserve_slot: Callable[[float], float], *,
                 sleep: Sleep = asyncio.sleep, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        super().__init__(pacing, sleep=sleep, clock=clock, wall=wall)
        self.reserve_slot = reserve_slot

    def reserve(self) -> float:
        offset = self.wall() - self.clock()
        slot = self.reserve_slot(self.interval) - offset
        if self.next_slot is not None:          # a hold (Retry-After) of this worker
            slot = max(slot, self.next_slot)
        if self.window is not None:
            slot = self.window.next_open(slot + offset) - offset
        self.count += 1
        return slot


__all__ = ["GO", "Budget", "Gate", "GateProtocol", "Pacer", "SharedPacer", "Verdict"]
