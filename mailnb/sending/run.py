"""The run stage: one worker a connection, each a loop of claim -> gate -> send -> record.

- **claim**: the next recipient, a retry that is due or a new one the gate admits; with a journal
  other runs share, new ones are held a batch at a time so that workers split the plan;
- **gate** (:mod:`mailnb.sending.gate`): the limit, the daily cap, the window, then the slot;
- **send**: the message is rendered and handed to the connection; its row becomes ``sending`` at
  the handover, just before its end of data goes out, so a crash strands no one whose content had
  not left;
- **record**: the outcome rides in the next group commit (:mod:`mailnb.sending.commits`); a
  temporary failure is retried with back-off, then ``deferred``.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
from collections.abc import Awaitable, Callable, Iterator

from ..config.targets import Target
from ..errors import AuthenticationError, JournalError, RelayError, TemplateError, TLSError
from ..journal.base import HOLD_BATCH, Claim, Journal, Outcome
from ..transports.base import Connection
from ..transports.outcome import Delivery, Envelope
from ..transports.pickup import Backup
from .campaign import Campaign
from .commits import GroupCommit
from .gate import Gate
from .message import build
from .plan import Item
from .progress import Stats, clock, say

#: looks at the plan after its end, for rows other runs left (each may wait out a lease)
MAX_PASSES = 4

Flush = Callable[[], None]


class Stop(threading.Event):
    """A stop request that remembers why (SIGTERM, an interrupt)."""

    reason: str | None = None

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.set()


async def sleep_unless(stop: threading.Event, seconds: float) -> None:
    """Sleep, but wake up at once when a stop is requested."""
    end = time.monotonic() + seconds
    while not stop.is_set():
        left = end - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(left, 0.2))


def sleeper(stop: threading.Event) -> Callable[[float], Awaitable[None]]:
    """A sleep for the gate's waits that a stop request cuts short."""
    return lambda seconds: sleep_unless(stop, seconds)


def claimable(item: Item) -> tuple[str, ...]:
    """The states a run may take an item from: a new one from any unsent state, a retry only
    from the deferral it left; ``claimed`` only if this run holds it (the journal checks)."""
    return ("pending", "deferred", "unknown", "claimed") if item.attempts == 0 \
        else ("deferred", "claimed")


class Run:
    """The workers of one run, and what they share: the plan's cursor, the retry queue, the gate
    and the group commit."""

    def __init__(self, campaign: Campaign, target: Target, journal: Journal, run_id: str,
                 gate: Gate, *, retries: int, backoff: float, max_backoff: float,
                 backup: Backup | None, stats: Stats, stop: threading.Event) -> None:
        self.campaign, self.target, self.journal, self.run_id = campaign, target, journal, run_id
        self.gate = gate
        # a shared schedule or journal: rows are held before they are rendered, so that no
        # worker renders (or waits for a slot for) a row another one sends
        self.shared = gate.shared_schedule or journal.shared
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self.backup, self.stats, self.stop = backup, stats, stop
        self.new: Iterator[Item] | None = None
        self.holding: Iterator[Item] | None = None   # self.new, held batch by batch (shared)
        self.ahead: Item | None = None      # the next new recipient, looked at but not taken
        self.todo: list[Item] = []          # the plan's recipients, for a second look
        self.taken: set[str] = set()        # the keys this run claimed
        self.passed_over: set[str] = set()  # the keys another run held when this one looked
        self.passes = 0
        self.retry_heap: list[tuple[float, int, Item]] = []
        self.seq = itertools.count()
        self.connect_failures = 0
        self.stop_reason: str | None = None
        self.fatal: BaseException | None = None
        self.commits = GroupCommit(journal)

    async def sleep(self, seconds: float) -> None:
        """Sleep, but wake up at once when a stop is requested."""
        await sleep_unless(self.stop, seconds)

    def halt(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.stop.set()

    def _end_new(self, reason: str) -> None:
        self.new = None
        if self.stop_reason is None:
            self.stop_reason = reason

    # -- claim -------------------------------------------------------------------------------------
    async def next_item(self, before_wait: Flush | None = None) -> Item | None:
        while not self.stop.is_set():
            now = time.monotonic()
            if self.retry_heap and self.retry_heap[0][0] <= now:
                return heapq.heappop(self.retry_heap)[2]
            if self.new is not None:
                item = await self._take_new(before_wait)
                if item is not None:
                    return item
                if self.new is not None:
                    continue             # waited for the daily cap: look again
            if not self.retry_heap:
                return None
            if before_wait is not None:
                before_wait()
            await self.sleep(min(self.retry_heap[0][0] - now, 1.0))
        return None

    async def _take_new(self, before_wait: Flush | None) -> Item | None:
        """The next new recipient, if the gate lets one go now. With ``wait``, a full daily cap
        is waited out (only while someone is left to send)."""
        if self.ahead is None:
            self.ahead = self._next_new() or await self._another_pass(before_wait)
            if self.ahead is None:
                self.new = None
                return None
        verdict = self.gate.verdict(self.ahead)
        if verdict.go:
            item, self.ahead = self.ahead, None
            self.gate.take(item)
            return item
        if verdict.stop is not None:
            self._end_new(verdict.stop)
        else:
            if before_wait is not None:
                before_wait()
            await self.gate.wait_for_cap(self.stats.in_flight)
        return None

    def _next_new(self) -> Item | None:
        """The plan's next new recipient; with a shared journal, only one this run holds."""
        if self.new is None:
            return None
        if self.shared and self.holding is None:
            self.holding = self._held(self.new)
        return next(self.holding if self.shared and self.holding is not None else self.new, None)

    def _held(self, items: Iterator[Item]) -> Iterator[Item]:
        """The items of ``items`` this run holds, taken a batch at a time: one statement holds
        whichever of the next :data:`HOLD_BATCH` are free (fewer near the limit or the daily
        cap), so workers going through one plan split it without colliding row by row. The
        others went to another run meanwhile."""
        j, c = self.journal, self.campaign
        while True:
            window = list(itertools.islice(items, self.gate.room(HOLD_BATCH)))
            if not window:
                return
            held = set(j.hold(c.name, [it.key for it in window], self.run_id,
                              claimable(window[0])))
            for it in window:
                if it.key in held:
                    self.taken.add(it.key)
                    if it.key in self.passed_over:      # free again after all (a dead run's)
                        self.passed_over.discard(it.key)
                        self.stats.skipped -= 1
                    yield it
                elif it.key not in self.passed_over:
                    self.passed_over.add(it.key)
                    self.stats.skipped += 1

    async def _another_pass(self, before_wait: Flush | None = None) -> Item | None:
        """At the end of the plan, the rows that came free meanwhile: held by another run that
        has died since (its held rows are pending again, its in-flight ones unknown), so the
        runs still going finish the campaign. While other runs hold rows, this one looks again
        (soon, then every second) for up to one lease and a quarter: time for a run that has
        just died (a machine gone, no word) to lose its lease. Rows a run still alive keeps
        longer are left to it."""
        j, c, give_up, looked, nap = self.journal, self.campaign, None, 0.0, 0.05
        if before_wait is not None:
            before_wait()                 # this run's last outcome: others wait for it
        while self.passes < MAX_PASSES and self.todo and not self.stop.is_set():
            j.recover(c.name, self.run_id)
            free = j.states(c.name, only=("pending", "claimed"))
            self.new = iter([it for it in self.todo if it.key in free and
                             it.key not in self.taken])
            self.holding = None
            item = self._next_new()
            if item is not None:
                self.passes += 1
                return item
            lease = j.others_hold(c.name, self.run_id) if self.shared else None
            if lease is None:
                return None
            if give_up is None:
                looked, give_up = time.time(), time.time() + lease * 1.25
            elif looked and time.time() - looked > 1.5:   # not just their last messages
                looked = 0.0
                say(f"other runs hold rows of this campaign; looking again until "
                    f"{clock(give_up)} in case one of them has stopped (its lease is "
                    f"{lease:g} s), to send its rows here")
            if time.time() >= give_up:
                return None
            nap = min(nap * 2, 1.0, lease / 4)       # their last messages end soon
            await self.sleep(min(nap, give_up - time.time()) + 0.01)
        return None

    # -- the loop of each worker -------------------------------------------------------------------
    async def worker(self, conn: Connection) -> None:
        """Send items until there are none: render, gate, hand over, record. A row becomes
        ``sending`` only at the handover, in the group commit just before the message's end of
        data goes to the relay, so a crash strands no one whose content had not left (their rows
        stay pending, or claimed by a shared journal's batch: pending again after the crash)."""
        nxt: Item | None = None
        try:
            while True:
                item, nxt = nxt or await self.next_item(before_wait=self.commits.flush), None
                if item is None:
                    return
                if not self._prepared(item):
                    continue
                if not await self._turn(item):
                    return       # stopped before it was sent: released to pending at the end
                nxt = await self._send(conn, item)
        except JournalError as err:  # the disk is full or the file went read-only
            self.journal_failed(err)
        finally:
            await conn.close()

    def prepare(self, item: Item) -> None:
        if item.data is not None:
            return
        c = self.campaign
        item.data, item.message_id, rendered = build(c, item)
        item.envelope_from = c.envelope_from(item.message_id)
        item.rendered = rendered if self.backup else None

    def _prepared(self, item: Item) -> bool:
        """Render the item's message; a failure (e.g. an attachment deleted since the
        preflight) is its outcome."""
        try:
            self.prepare(item)
            return True
        except (TemplateError, OSError) as err:
            self.commits.later(Outcome(self.campaign.name, item.key, self.run_id, "failed",
                                       reply=str(err), attempt=False))
            self.stats.failed += 1
            self.gate.give_back(item)
            return False

    def _mark(self, item: Item) -> Claim:
        """The write that makes the item's row ``sending`` as its content goes out: from any
        state this run may send it from (a row another run holds is not), within the daily cap."""
        return Claim(self.campaign.name, item.key, self.run_id, claimable(item), "sending",
                     self.gate.cap_rule)

    async def _turn(self, item: Item) -> bool:
        """Wait for the item's slot; False if the run stopped meanwhile."""
        await self.gate.turn(item, before_sleep=self.commits.flush)
        if self.stop.is_set() and item.attempts == 0:
            self.gate.give_back(item)
            return False
        return True

    async def _send(self, conn: Connection, item: Item) -> Item | None:
        """Hand the item to the relay and record the outcome; the next item, if its envelope
        went out with this one's end of data (pipelining)."""
        handover = Handover(self, conn, item, self._mark(item))   # from its state before this try
        item.attempts += 1
        self.stats.in_flight += 1
        try:
            result = await conn.send(item.envelope_from or "", item.address, item.data or b"",
                                     smtputf8=item.smtputf8, handover=handover)
        except (AuthenticationError, TLSError, RelayError) as err:
            self.commits.later(Outcome(self.campaign.name, item.key, self.run_id, "pending",
                                       code=err.code, reply=str(err), attempt=False))
            self.fatal = err
            self.halt(f"stopped: {err}")
            return None
        finally:
            self.stats.in_flight -= 1
        if result is None:              # its row was not this run's to send after all
            item.attempts -= 1
            self._not_claimed(item, taken=self.gate.cap_has_room())
            return handover.next
        self.commits.later(self.handle(item, result))
        return handover.next

    def look_ahead(self, conn: Connection) -> Item | None:
        """The next item, rendered, if it is due now and its envelope can go out with the end
        of data of the message at hand (a pipelining relay, no pacing, nothing to wait for)."""
        if not conn.pipelines or self.stop.is_set() or not self.gate.due_now():
            return None
        if self.retry_heap and self.retry_heap[0][0] <= time.monotonic():
            item = heapq.heappop(self.retry_heap)[2]
        elif self.new is None or not self.gate.has_room():
            return None
        else:
            self.ahead = self.ahead or self._next_new()
            if self.ahead is None:
                return None      # the end of the plan: next_item looks again
            item, self.ahead = self.ahead, None
            self.gate.take(item)
        return item if self._prepared(item) else None

    def _not_claimed(self, item: Item, taken: bool) -> None:
        self.gate.give_back(item)
        if taken:
            self.stats.skipped += 1          # another run took it meanwhile
        else:
            self.gate.cap_filled()           # other workers filled the daily cap
            if item.attempts == 0 and self.new is not None and self.ahead is None:
                self.ahead = item            # it stays next, for when the cap frees

    def journal_failed(self, err: JournalError) -> None:
        """Stop every worker (the group commit gave its outcomes to the journal's reserve)."""
        if self.fatal is None:
            self.fatal = err
        self.halt(f"stopped: {err}")

    # -- record ------------------------------------------------------------------------------------
    def handle(self, item: Item, result: Delivery) -> Outcome:
        """Count the outcome and return what the journal must record for it."""
        message_id = item.message_id

        def outcome(status: str) -> Outcome:
            return Outcome(self.campaign.name, item.key, self.run_id, status, code=result.code,
                           reply=result.reply, message_id=message_id,
                           account=self.target.account)
        if result.status == "sent":
            self.connect_failures = 0
            self._final(item, "sent")
            if self.backup is not None and item.rendered is not None and item.data is not None:
                self.backup.save(item.data, campaign=self.campaign.name,
                                 subject=item.rendered.subject, recipient=item.address)
            spent(item)
            return outcome("sent")
        if result.status == "failed":
            self._final(item, "failed")
            return outcome("failed")
        self.gate.observe(item, result)             # a temporary failure
        if result.code is None and result.reply.startswith("cannot talk"):
            self.connect_failures += 1
        if item.attempts <= self.retries:
            if item.attempts == 1:
                self.stats.retrying += 1
            delay = max(min(self.backoff * 2 ** (item.attempts - 1), self.max_backoff),
                        result.retry_after or 0.0)
            heapq.heappush(self.retry_heap, (time.monotonic() + delay, next(self.seq), item))
        else:
            self._final(item, "deferred")
        if self.connect_failures > self.retries:
            self.halt(f"relay unavailable: {result.reply}")
        return outcome("deferred")

    def _final(self, item: Item, status: str) -> None:
        """Count an item's final outcome of this run (its retries end), and free what it held."""
        s = self.stats
        setattr(s, status, getattr(s, status) + 1)
        if item.attempts > 1:
            s.retrying -= 1
        if status != "sent":
            self.gate.give_back(item)
            spent(item)


def spent(item: Item) -> None:
    """An item whose outcome is final keeps only who it is (key, address, row): its message,
    links and ids are in the journal, and a million-row run must not hold them all."""
    item.data = item.rendered = item.context = item.extra_headers = None
    item.message_id = item.envelope_from = None


class Handover:
    """Called by the connection just before the item's end of data goes to the relay: the
    item's row becomes ``sending`` in this turn's group commit (if it is still this run's to
    send, and the daily cap has room), and the next item, if one is due, is rendered so that its
    envelope goes out in the same write (its row is written at its own handover). Called once a
    send: direct delivery offers no second MX host a message already handed to one."""

    def __init__(self, run: Run, conn: Connection, item: Item, mark: Claim) -> None:
        self.run, self.conn, self.item, self.mark = run, conn, item, mark
        self.next: Item | None = None

    async def __call__(self) -> tuple[bool, Envelope | None]:
        run = self.run
        self.next = run.look_ahead(self.conn)
        (marked,) = await run.commits.claim(self.mark)
        if not marked:
            return False, None
        run.taken.add(self.item.key)
        return True, None if self.next is None else Envelope(
            self.next.envelope_from or "", self.next.address, self.next.data or b"",
            self.next.smtputf8)


__all__ = ["Handover", "Run", "Stop", "claimable", "sleeper", "spent"]
