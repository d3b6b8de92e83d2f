"""The sender: a campaign to every recipient, paced, retried, and journaled so that no run sends twice.

``send(campaign, relay, ...)`` works from a script, a notebook cell and a papermill run;
``send_async`` is the same for those who have an event loop. A send reads as stages:

1. **checks**: the options, the relay and the campaign, before anything else;
2. **plan** (:mod:`mailnb.plan`, pure): who is due now, reminders, send-time exclusions, caps;
3. **preflight**: every row to send is rendered; any problem and nothing is sent;
4. **run**: claim, pace, send, retry, record (:class:`_Run`);
5. **summary**: what happened, and what is left, said truthfully.
"""
from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import math
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from ..errors import (AuthenticationError, ConfigError, JournalError, MailnbError, PreflightError,
                     RelayError, TemplateError, TLSError, alt, arg, phrase)
from .commits import GroupCommit
from ..journal.sqlite import HOLD_BATCH, STALE_AFTER, Cap, Claim, Journal, encode_row, open_journal
from ..inbound.mailbox import pop_login
from ..compose.messages import build_message, list_id
from ..config.options import SendOptions, signature_of
from ..config.pacing import CAP_PERIOD, Pacer, Pacing, SharedPacer
from .plan import Item, Plan, Row, make_plan
from ..journal.privacy import forgotten
from .progress import Progress, Stats
from ..audience.recipients import Audience, normalize
from ..util.runner import run_sync
from ..config.settings import Direct, Graph, Pickup, Profile, Relay
from ..compose.signing import DKIMKey
from ..compose import embeds, templates
from ..util import fanout
from ..compose.templates import (CONTROL, DEFAULT_MAX_SIZE, EMPTY_CHOICES, Rendered, Template,
                        check_rendered)
from ..transports.smtp import Backup, Delivery, Envelope, open_connection
from ..transports.graph import GraphConnection
from ..compose.unsubscribe import Unsubscribe

#: rendered messages kept from the preflight for sending (beyond this, rows are rendered again)
KEEP_RENDERED = 20_000
#: the reason of a row skipped because its report selection is empty (``empty="skip"``)
EMPTY_REPORT = "empty report: "
#: looks at the plan after its end, for rows other runs left (each may wait out a lease)
MAX_PASSES = 4
RESULT_COLUMNS = ["address", "status", "reason", "code", "reply", "attempts", "message_id",
                  "sent_at", "this_run"]


class StoppedError(MailnbError):
    """The run was stopped by a signal (SIGTERM: a cron or papermill time-out) after the messages
    in flight were recorded. ``result`` is the result frame; the next run resumes."""

    def __init__(self, message: str, result: pd.DataFrame) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class Campaign:
    """What to send to whom: a name (the journal's key: the same name resumes), an audience, a
    template, and the sender's From, Reply-To and default footer.

    ``key`` names a column that identifies a recipient (default: the normalised address), so a row
    whose address changed is still the same person. ``headers`` are added to every message.
    ``email_format``: ``"both"`` (text and HTML, multipart/alternative), ``"text"`` or ``"html"``
    (one part only). ``bounce_address`` is the envelope sender (MAIL FROM, so Return-Path): where
    delivery reports go (default: the From address); ``verp=True`` makes it per message,
    ``local+<id>@domain``, so a report is matched to its recipient even when its text is not.

    ``data`` names objects every row's template can use (a DataFrame, an image, a callable that
    takes the row): personalised reports (:mod:`mailnb.embeds`). ``empty`` says what a row whose
    report selection is empty gets: ``"error"`` (the preflight stops), ``"skip"`` or ``"send"``.

    ``follow_up`` names an earlier campaign: this one is a reminder, sent only to the recipients
    that campaign reached, each threaded to their original message (In-Reply-To, References).

    Compliance by default: every message of a non-transactional audience carries a one-click
    List-Unsubscribe (``unsubscribe``, default: a ``mailto:`` to the Reply-To or From address with a
    signed token; ``{{ unsubscribe_url }}`` is the link for templates), and ``dkim`` signs every
    message.
    """

    name: str
    audience: Audience
    template: Template
    from_addr: str
    from_name: str | None = None
    reply_to: str | None = None
    footer: str | None = None
    footer_html: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    key: str | None = None
    email_format: str = "both"
    follow_up: str | None = None
    unsubscribe: Unsubscribe | None = None
    dkim: DKIMKey | None = None
    bounce_address: str | None = None
    verp: bool = False
    data: Mapping[str, Any] = field(default_factory=dict)
    empty: str = "error"

    @classmethod
    def from_profile(cls, profile: Profile, name: str, audience: Audience, template: Template, *,
                     alternate: bool | None = None, **overrides: Any) -> Campaign:
        """A campaign with From, Reply-To, footer, format, bounce address, unsubscribe links and
        DKIM from a profile's preferences (``alternate=True``, or the profile's
        ``alternate_from``: the alternate From, falling back to the main one). ``overrides`` that
        are None are ignored."""
        use_alt = profile.alternate_from if alternate is None else alternate
        from_addr, from_name = profile.sender(use_alt)
        values: dict[str, Any] = {"from_addr": from_addr, "from_name": from_name,
                                  "reply_to": profile.reply_to or None,
                                  "footer": profile.footer or None,
                                  "email_format": profile.email_format,
                                  "bounce_address": profile.bounce_address or None,
                                  "verp": profile.verp, "key": profile.key_column or None}
        if profile.unsubscribe_mailto or profile.unsubscribe_url:
            values["unsubscribe"] = Unsubscribe(mailto=profile.unsubscribe_mailto or None,
                                                url=profile.unsubscribe_url or None)
        if profile.dkim_key_file:
            values["dkim"] = DKIMKey.from_file(profile.dkim_key_file, profile.dkim_selector,
                                               profile.dkim_domain or from_addr.rpartition("@")[2])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(name, audience, template, **values)

    def unsubscribe_links(self) -> Unsubscribe:
        """The links every bulk message carries: always a ``mailto:`` (some mail programs use
        only that one), to the Reply-To or From address unless one is given, and the https
        link when there is one."""
        mailto = self.reply_to or self.from_addr
        if self.unsubscribe is None:
            return Unsubscribe(mailto=mailto)
        if self.unsubscribe.mailto:
            return self.unsubscribe
        return replace(self.unsubscribe, mailto=mailto)

    @functools.cached_property
    def links_and_secret(self) -> tuple[Unsubscribe, bytes]:
        """:meth:`unsubscribe_links` and the secret that signs their tokens, read once."""
        links = self.unsubscribe_links()
        return links, links.key()

    def envelope_from(self, message_id: str | None) -> str:
        """MAIL FROM: the bounce address (per message with VERP), else the From address."""
        base = self.bounce_address or self.from_addr
        if not self.verp or not message_id:
            return base
        local, _, domain = base.rpartition("@")
        return f"{local}+{message_id.strip('<>').partition('@')[0]}@{domain}"

    def validate(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or CONTROL.search(self.name) \
                or len(self.name) > 200:
            raise ConfigError(f"campaign name {self.name!r} must be a non-empty line of text (at "
                              "most 200 characters): it identifies the campaign in the journal")
        if not isinstance(self.audience, Audience):
            raise ConfigError("Campaign.audience must be a mailnb.Audience; build it with "
                              "mailnb.Audience(df, 'email')")
        if not isinstance(self.template, Template):
            raise ConfigError("Campaign.template must be a mailnb.Template")
        for label, value in (("from_addr", self.from_addr), ("reply_to", self.reply_to),
                             ("bounce_address", self.bounce_address)):
            if value is None and label != "from_addr":
                continue
            try:
                normalize(str(value), allow_test_domains=True)
            except Exception as err:
                raise ConfigError(f"{label} {value!r} is not a valid address: {err}") from None
        if self.email_format not in ("both", "text", "html"):
            raise ConfigError(f"email_format must be 'both', 'text' or 'html', not "
                              f"{self.email_format!r}")
        if self.key is not None and self.key not in self.audience.sendable.columns:
            raise ConfigError(f"key column {self.key!r} is not in the audience; the columns are "
                              f"{list(self.audience.sendable.columns)}")
        if self.empty not in EMPTY_CHOICES:
            raise ConfigError(f"empty must be one of {', '.join(EMPTY_CHOICES)}, not "
                              f"{self.empty!r}")
        if not isinstance(self.data, Mapping):
            raise ConfigError("data must be a dict of names to DataFrames, images or callables")
        for name in self.data:
            if not str(name).isidentifier():
                raise ConfigError(f"data name {name!r} is not usable in a template: use letters, "
                                  "digits and _ (not first a digit)")
            if name in self.audience.sendable.columns:
                raise ConfigError(f"data name {name!r} is also a column of the recipients: "
                                  "rename one, so a template says which it means")
        if self.follow_up is not None and self.follow_up == self.name:
            raise ConfigError("a follow-up needs a campaign name of its own, e.g. "
                              f"{self.name + '-reminder'!r}")

    def recipients(self) -> list[Item]:
        """One item a sendable row, its merge fields a view of the audience's columns."""
        aud = self.audience
        items: list[Item] = []
        seen: dict[str, Any] = {}
        frame = aud.sendable
        columns = {str(c): frame.iloc[:, k].tolist() for k, c in enumerate(frame.columns)}
        keys = columns[self.key] if self.key else aud.keys.tolist()
        for pos, (idx, address, akey, utf8) in enumerate(zip(
                frame.index, aud.addresses.tolist(), keys, aud.smtputf8.tolist())):
            key = akey
            if self.key:
                if akey is None or (isinstance(akey, float) and math.isnan(akey)) or \
                        str(akey) == "":
                    raise ConfigError(f"row {idx!r}, column {self.key!r}: the key is empty; every "
                                      "row needs a key when key= is set")
                key = str(akey)
                if key in seen:
                    raise ConfigError(f"row {idx!r}, column {self.key!r}: key {key!r} is also in "
                                      f"row {seen[key]!r}; keys must be unique")
                seen[key] = idx
            items.append(Item(idx, key, address, utf8, Row(columns, pos)))
        return items


class _Budget:
    """How many more new recipients this run may take (limit per run and daily cap)."""

    def __init__(self, left: float) -> None:
        self.left = left

    def take(self) -> None:
        self.left -= 1

    def give_back(self) -> None:
        self.left += 1


def _claimable(item: Item) -> tuple[str, ...]:
    """The states a run may take an item from: a new one from any unsent state, a retry only
    from the deferral it left; ``claimed`` only if this run holds it (the journal checks)."""
    return ("pending", "deferred", "unknown", "claimed") if item.attempts == 0 \
        else ("deferred", "claimed")


class _Run:
    """The run stage: workers claim, pace, send, retry and record, one per connection."""

    def __init__(self, campaign: Campaign, relay: Relay | Pickup, journal: Journal, run_id: str,
                 pacing: Pacing, opts: SendOptions, *, backup: Backup | None, stats: Stats,
                 stop: threading.Event, cap: _Budget, password: Any) -> None:
        self.campaign = campaign
        self.relay = relay
        self.journal = journal
        self.run_id = run_id
        self.pacing = pacing
        # a rate or blocks: one schedule in the journal for every worker on this relay account;
        # a journal other machines share: rows are held before they are rendered, so that no
        # worker renders (or waits for a slot for) a row another one sends
        paced = bool(pacing.rate or pacing.block_size)
        self.shared = paced or bool(getattr(journal, "shared", False))
        self.pacer = SharedPacer(pacing, lambda interval: journal.reserve_slot(
            relay.account, interval, pacing.block_size, pacing.block_pause), sleep=self.sleep) \
            if paced else Pacer(pacing, sleep=self.sleep)
        # the daily cap is checked by each claim, against what every worker sent and has in flight
        self.cap_rule = Cap(relay.account, pacing.daily_cap) if pacing.daily_cap else None
        self.retries = opts.retries
        self.backoff = opts.backoff
        self.max_backoff = opts.max_backoff
        self.wait = opts.wait
        self.backup = backup
        self.stats = stats
        self.stop = stop
        self.cap = cap
        self.limit = _Budget(pacing.limit or math.inf)
        self.password = password
        self.new: Any = None
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
        end = time.monotonic() + seconds
        while not self.stop.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.2))

    def halt(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.stop.set()

    def _end_new(self, reason: str) -> None:
        self.new = None
        if self.stop_reason is None:
            self.stop_reason = reason

    async def _wait_for_cap(self) -> None:
        """With wait=True at the daily cap: sleep until the rolling window frees a message."""
        cap = self.pacing.daily_cap or 0
        free_at = self.journal.cap_frees_at(self.relay.account, cap, time.time())
        if free_at is not None:
            _say(f"daily cap of {cap} reached; waiting until {_clock(free_at)}, when the rolling "
                 "24 hours allow the next message")
            await self.sleep(max(free_at - time.time(), 0) + 0.05)
        else:
            await self.sleep(0.2)        # only messages in flight hold the cap: they end soon
        used = self.journal.sent_since(self.relay.account, time.time() - CAP_PERIOD)
        self.cap.left = max(cap - used - self.stats.in_flight, 0)

    async def next_item(self, before_wait: Any = None) -> Item | None:
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

    async def _take_new(self, before_wait: Any) -> Item | None:
        """The next new recipient, if the limit, the daily cap and the window allow one now.
        With ``wait``, a full daily cap is waited out (only while someone is left to send)."""
        if self.ahead is None:
            self.ahead = self._next_new() or await self._another_pass(before_wait)
            if self.ahead is None:
                self.new = None
                return None
        window = self.pacing.window
        if self.limit.left <= 0:
            self._end_new("limit reached")
        elif self.cap.left <= 0 and not self.wait:
            self._end_new("daily cap reached")
        elif self.cap.left <= 0:
            if before_wait is not None:
                before_wait()
            await self._wait_for_cap()
        elif window is not None and not self.wait and not window.is_open(time.time()):
            self._end_new(f"outside the send window ({window.text}); it opens at "
                          f"{_clock(window.next_open(time.time()))}")
        else:
            item, self.ahead = self.ahead, None
            self.limit.take()
            self.cap.take()
            return item
        return None

    def _next_new(self) -> Item | None:
        """The plan's next new recipient; with a shared journal, only one this run holds."""
        if self.shared and self.holding is None:
            self.holding = self._held(self.new)
        return next(self.holding if self.shared else self.new, None)

    def _held(self, items: Iterator[Item]) -> Iterator[Item]:
        """The items of ``items`` this run holds, taken a batch at a time: one statement holds
        whichever of the next :data:`HOLD_BATCH` are free (fewer near the limit or the daily
        cap), so workers going through one plan split it without colliding row by row. The
        others went to another run meanwhile."""
        j, c = self.journal, self.campaign
        while True:
            n = max(1, int(min(HOLD_BATCH, self.limit.left, self.cap.left)))
            window = list(itertools.islice(items, n))
            if not window:
                return
            held = set(j.hold(c.name, [it.key for it in window], self.run_id,
                              _claimable(window[0])))
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

    async def _another_pass(self, before_wait: Any = None) -> Item | None:
        """At the end of the plan, the rows that came free meanwhile: held by another run that
        has died since (its held rows are pending again, its in-flight ones unknown), so the
        runs still going finish the campaign. While other runs hold rows, this one looks again
        (soon, then every second) for up to one lease and a quarter: time for a run that has just died (a
        machine gone, no word) to lose its lease. Rows a run still alive keeps longer are left
        to it."""
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
                _say(f"other runs hold rows of this campaign; looking again until "
                     f"{_clock(give_up)} in case one of them has stopped (its lease is "
                     f"{lease:g} s), to send its rows here")
            if time.time() >= give_up:
                return None
            nap = min(nap * 2, 1.0, lease / 4)       # their last messages end soon
            await self.sleep(min(nap, give_up - time.time()) + 0.01)
        return None

    def prepare(self, item: Item) -> None:
        if item.data is not None:
            return
        c = self.campaign
        item.data, item.message_id, rendered = build(c, item)
        item.envelope_from = c.envelope_from(item.message_id)
        item.rendered = rendered if self.backup else None

    async def worker(self, conn: Any) -> None:
        """Send items until there are none: render, pace, hand over, record. A row becomes
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
                if not await self._pace(item):
                    return       # stopped before it was sent: released to pending at the end
                nxt = await self._send(conn, item)
        except JournalError as err:  # the disk is full or the file went read-only
            self.journal_failed(err)
        finally:
            await conn.close()

    def _prepared(self, item: Item) -> bool:
        """Render the item's message; a failure (e.g. an attachment deleted since the
        preflight) is its outcome."""
        try:
            self.prepare(item)
            return True
        except (TemplateError, OSError) as err:
            self.commits.later(dict(campaign=self.campaign.name, key=item.key, run_id=self.run_id,
                                    status="failed", reply=str(err), attempt=False))
            self.stats.failed += 1
            self.cap.give_back()
            return False

    def _mark(self, item: Item) -> Claim:
        """The write that makes the item's row ``sending`` as its content goes out: from any
        state this run may send it from (a row another run holds is not), within the daily cap."""
        return Claim(self.campaign.name, item.key, self.run_id, _claimable(item), "sending",
                     self.cap_rule)

    async def _pace(self, item: Item) -> bool:
        """Wait for the item's send slot; False if the run stopped meanwhile."""
        await self.pacer.wait(before_sleep=self.commits.flush)
        if self.stop.is_set() and item.attempts == 0:
            self.cap.give_back()
            return False
        return True

    async def _send(self, conn: Any, item: Item) -> Item | None:
        """Hand the item to the relay and record the outcome; the next item, if its envelope
        went out with this one's end of data (pipelining)."""
        handover = _Handover(self, conn, item, self._mark(item))   # from its state before this try
        item.attempts += 1
        self.stats.in_flight += 1
        try:
            result = await conn.send(item.envelope_from, item.address, item.data,
                                     smtputf8=item.smtputf8, handover=handover)
        except (AuthenticationError, TLSError, RelayError) as err:
            self.commits.later(dict(campaign=self.campaign.name, key=item.key,
                                    run_id=self.run_id, status="pending", code=err.code,
                                    reply=str(err), attempt=False))
            self.fatal = err
            self.halt(f"stopped: {err}")
            return None
        finally:
            self.stats.in_flight -= 1
        if result is None:              # its row was not this run's to send after all
            item.attempts -= 1
            self._not_claimed(item, taken=self.cap_rule is None or self.journal.in_cap(
                self.cap_rule.account) < self.cap_rule.limit)
            return handover.next
        self.commits.later(self.handle(item, result))
        return handover.next

    def _look_ahead(self, conn: Any) -> Item | None:
        """The next item, rendered, if it is due now and its envelope can go out with the end
        of data of the message at hand (a pipelining relay, no pacing, nothing to wait for)."""
        if not getattr(conn, "pipelines", False) or self.stop.is_set() or \
                not self.pacer.due_now():
            return None
        if self.retry_heap and self.retry_heap[0][0] <= time.monotonic():
            item = heapq.heappop(self.retry_heap)[2]
        elif self.new is None or self.limit.left <= 0 or self.cap.left <= 0:
            return None
        else:
            self.ahead = self.ahead or self._next_new()
            if self.ahead is None:
                return None      # the end of the plan: next_item looks again
            item, self.ahead = self.ahead, None
            self.limit.take()
            self.cap.take()
        return item if self._prepared(item) else None

    def _not_claimed(self, item: Item, taken: bool) -> bool:
        self.cap.give_back()
        if taken:
            self.stats.skipped += 1          # another run took it meanwhile
        else:
            self.cap.left = 0                # other workers filled the daily cap
            if item.attempts == 0 and self.new is not None and self.ahead is None:
                self.ahead = item            # it stays next, for when the cap frees
        return False

    def journal_failed(self, err: JournalError) -> None:
        """Stop every worker (the group commit gave its outcomes to the journal's reserve)."""
        if self.fatal is None:
            self.fatal = err
        self.halt(f"stopped: {err}")

    def handle(self, item: Item, result: Delivery) -> dict[str, Any]:
        """Count the outcome and return what the journal must record for it."""
        c, s = self.campaign, self.stats
        account = self.relay.account
        outcome = dict(campaign=c.name, key=item.key, run_id=self.run_id, code=result.code,
                       reply=result.reply, message_id=item.message_id, account=account)
        if result.status == "sent":
            self.connect_failures = 0
            s.sent += 1
            if item.attempts > 1:
                s.retrying -= 1
            if self.backup is not None and item.rendered is not None and item.data is not None:
                self.backup.save(item.data, campaign=c.name, subject=item.rendered.subject,
                                 recipient=item.address)
            _spent(item)
            return {**outcome, "status": "sent"}
        if result.status == "failed":
            s.failed += 1
            if item.attempts > 1:
                s.retrying -= 1
            self.cap.give_back()
            _spent(item)
            return {**outcome, "status": "failed"}
        # a temporary failure
        if result.slow_down:
            self.pacer.slow_down()
        if result.retry_after:
            self.pacer.hold(result.retry_after)     # nobody sends before the server said
        if result.code is None and result.reply.startswith("cannot talk"):
            self.connect_failures += 1
        if item.attempts <= self.retries:
            if item.attempts == 1:
                s.retrying += 1
            delay = max(min(self.backoff * 2 ** (item.attempts - 1), self.max_backoff),
                        result.retry_after or 0.0)
            heapq.heappush(self.retry_heap, (time.monotonic() + delay, next(self.seq), item))
        else:
            s.deferred += 1
            if item.attempts > 1:
                s.retrying -= 1
            self.cap.give_back()
            _spent(item)
        if self.connect_failures > self.retries:
            self.halt(f"relay unavailable: {result.reply}")
        return {**outcome, "status": "deferred"}



def _spent(item: Item) -> None:
    """An item whose outcome is final keeps only who it is (key, address, row): its message,
    links and ids are in the journal, and a million-row run must not hold them all."""
    item.data = item.rendered = item.context = item.extra_headers = None
    item.message_id = item.envelope_from = None


class _Handover:
    """Called by the connection just before the item's end of data goes to the relay: the
    item's row becomes ``sending`` in this turn's group commit (if it is still this run's to
    send, and the daily cap has room), and the next item, if one is due, is rendered so that its
    envelope goes out in the same write (its row is written at its own handover). Called once a
    send: direct delivery offers no second MX host a message already handed to one."""

    def __init__(self, run: _Run, conn: Any, item: Item, mark: Claim) -> None:
        self.run, self.conn, self.item, self.mark = run, conn, item, mark
        self.next: Item | None = None

    async def __call__(self) -> tuple[bool, Envelope | None]:
        run = self.run
        self.next = run._look_ahead(self.conn)
        (marked,) = await run.commits.claim(self.mark)
        if not marked:
            return False, None
        run.taken.add(self.item.key)
        return True, None if self.next is None else Envelope(
            self.next.envelope_from or "", self.next.address, self.next.data or b"",
            self.next.smtputf8)


def build(c: Campaign, item: Item, *, subject_prefix: str = "") -> tuple[bytes, str, Any]:
    """The message for one recipient exactly as it goes out: (bytes, Message-ID, rendered)."""
    if item.context is None:         # rendered by a worker process of the preflight
        _set_links(c, item)
    rendered = item.rendered or c.template.render(
        item.values, row_id=item.row, default_footer=c.footer,
        default_footer_html=c.footer_html, context=item.context)
    if c.email_format == "text":
        rendered = replace(rendered, html=None)
    elif c.email_format == "html" and rendered.html is not None:
        rendered = replace(rendered, text=None)
    if subject_prefix:
        rendered = replace(rendered, subject=subject_prefix + rendered.subject)
    headers = dict(c.headers)
    if not any(k.lower() == "list-id" for k in headers):
        headers["List-Id"] = list_id(c.name, c.from_addr)
    if item.extra_headers:
        headers.update(item.extra_headers)
    if item.thread:
        headers["In-Reply-To"] = item.thread
        headers["References"] = item.thread
    data, message_id = build_message(
        rendered, from_addr=c.from_addr, to_addr=item.address, from_name=c.from_name,
        reply_to=c.reply_to, headers=headers, campaign=c.name, smtputf8=item.smtputf8)
    if c.dkim is not None:
        data = c.dkim.sign(data)
    return data, message_id, rendered


# -- stage 2: the plan -----------------------------------------------------------------------------
def plan_send(campaign: Campaign, journal: Journal, pacing: Pacing, account: str, *,
              resend_unknown: bool = False) -> Plan:
    """Read what the plan needs from the journal and make it (:func:`mailnb.plan.make_plan`)."""
    threads = None
    if campaign.follow_up:
        earlier = journal.history(campaign.follow_up)
        earlier = earlier[earlier["status"] == "sent"]
        if earlier.empty:
            raise ConfigError(f"campaign {campaign.follow_up!r} has no sent messages in the "
                              f"journal {journal.location}; nothing to follow up")
        threads = dict(zip(earlier["key"], earlier["message_id"]))
    aud = campaign.audience
    sent = journal.sent_since(account, time.time() - CAP_PERIOD) if pacing.daily_cap else 0
    plan = make_plan(campaign.recipients(), journal.states(campaign.name), campaign=campaign.name,
                     pacing=pacing, sent_last_24h=sent, resend_unknown=resend_unknown,
                     threads=threads, suppressions=journal.suppressions(),
                     unsubscribes=None if aud.transactional else journal.unsubscribes(),
                     policy=aud.exclusion_policy, forgotten=forgotten(journal))
    if plan.unreached:
        _say(f"{len(plan.unreached)} recipient(s) never got {campaign.follow_up!r}: no reminder "
             "for them")
    return plan


# -- stage 3: the preflight ------------------------------------------------------------------------
def preflight(campaign: Campaign, items: list[Item], max_size: int) -> list[tuple[Item, str]]:
    """Render every row to send (kept for sending, up to KEEP_RENDERED); any problem raises
    PreflightError with all of them, and nothing is sent. Returns the rows to skip (an empty
    report with ``empty="skip"``) and why. The rows are rendered on every core
    (:mod:`mailnb.fanout`), but for a campaign with report ``data``, whose charts are drawn in
    worker processes of their own."""
    problems: list[tuple[Any, str, str, str]] = []
    skip: list[tuple[Item, str]] = []
    if _template_checked(campaign, items, problems):
        if campaign.data:
            _render_reports(campaign, items, max_size, problems, skip)
        else:
            problems.extend(templates.once_each(_render_fanned(campaign, items, max_size, skip)))
    if campaign.email_format == "html":
        problems.append((None, "email_format", "email_format='html' sends one HTML part without a "
                         "plain-text alternative: spam filters score such mail worse", "warning"))
    _raise_problems(problems)
    if skip:
        _say(f"{len(skip)} recipient(s) skipped: their report's selection is empty")
    return skip


def _template_checked(campaign: Campaign, items: list[Item],
                      problems: list[tuple[Any, str, str, str]]) -> bool:
    """The template compiles and knows every field it uses; else every row would fail alike:
    each problem is said once, and False."""
    try:
        campaign.template.compile()
        columns = [str(c) for c in campaign.audience.sendable.columns]
        unknown = campaign.template.field_problems(
            columns, items[0].values if items else None,
            {**campaign.data, "unsubscribe_url": "https://x.invalid/"})
    except TemplateError as err:
        problems.append((None, err.field or "", str(err), "error"))
        return False
    problems.extend(unknown)
    return not unknown


def _render_fanned(campaign: Campaign, items: list[Item], max_size: int,
                   skip: list[tuple[Item, str]]) -> Iterator[list[tuple[Any, str, str, str]]]:
    """Each range of rows rendered and checked in a worker process; its problems are yielded,
    its rendered messages (up to KEEP_RENDERED) kept on the items, its empty reports skipped."""
    def task(start: int, stop: int) -> tuple[list[Any], list[tuple[int, str]],
                                             list[tuple[int, Rendered]]]:
        found: list[tuple[Any, str, str, str]] = []
        advised: set[tuple[str, str]] = set()
        skipped, kept = [], []
        for pos in range(start, stop):
            it = items[pos]
            r = _render_one(campaign, it, found)
            if r is None:
                continue
            checked = check_rendered(r, it.row, max_size, advised, campaign.empty)
            found.extend(checked)
            if any(p[3] == "skip" for p in checked):
                skipped.append((pos, EMPTY_REPORT + ", ".join(r.empty)))
            elif pos < KEEP_RENDERED:
                kept.append((pos, r))
        return found, skipped, kept

    for found, skipped, kept in fanout.ranges(task, len(items)):
        skip.extend((items[pos], why) for pos, why in skipped)
        for pos, r in kept:
            items[pos].rendered = r
        yield found


def _render_reports(campaign: Campaign, items: list[Item], max_size: int,
                    problems: list[tuple[Any, str, str, str]],
                    skip: list[tuple[Item, str]]) -> None:
    """The rows of a campaign with report data, in this process: its keyed charts are left as
    placeholders, drawn in worker processes once, then put into the kept messages."""
    advised: set[tuple[str, str]] = set()
    kept = items[:KEEP_RENDERED]
    with embeds.drawing_later() as later:       # keyed charts: drawn below, in worker processes
        rendered = [_render_one(campaign, it, problems) for it in kept]
    later.draw()
    for it, r in zip(kept, rendered):
        if r is not None:
            _check_one(campaign, it, later.patch(r), max_size, advised, problems, skip, keep=True)
    for it in items[KEEP_RENDERED:]:            # beyond: checked, rendered again when sent
        r = _render_one(campaign, it, problems)
        if r is not None:
            _check_one(campaign, it, r, max_size, advised, problems, skip, keep=False)


def _links(campaign: Campaign, address: str) -> tuple[dict[str, Any], dict[str, str] | None]:
    """A recipient's template context (``{{ unsubscribe_url }}`` and the campaign's data) and
    List-Unsubscribe headers (None for a transactional audience)."""
    links, secret = campaign.links_and_secret
    url, hdrs = links.links(address, campaign.name, secret)
    return ({**campaign.data, "unsubscribe_url": url},
            None if campaign.audience.transactional else hdrs)


def _set_links(campaign: Campaign, it: Item) -> None:
    it.context, it.extra_headers = _links(campaign, it.address)


def _render_one(campaign: Campaign, it: Item, problems: list[tuple[Any, str, str, str]]
                ) -> Rendered | None:
    """The item's message parts with its own unsubscribe link (not kept on the item: the link
    and headers are made again when it is sent, :func:`build`)."""
    context, _ = _links(campaign, it.address)
    try:
        return campaign.template.render(it.values, row_id=it.row, context=context,
                                        default_footer=campaign.footer,
                                        default_footer_html=campaign.footer_html)
    except TemplateError as err:
        problems.append((it.row, err.field or "", str(err), "error"))
        return None


def _check_one(campaign: Campaign, it: Item, r: Rendered, max_size: int,
               advised: set[tuple[str, str]], problems: list[tuple[Any, str, str, str]],
               skip: list[tuple[Item, str]], *, keep: bool) -> None:
    found = check_rendered(r, it.row, max_size, advised, campaign.empty)
    problems.extend(found)
    if any(p[3] == "skip" for p in found):
        skip.append((it, EMPTY_REPORT + ", ".join(r.empty)))
    elif keep:
        it.rendered = r


def _raise_problems(problems: list[tuple[Any, str, str, str]]) -> None:
    for _, _, advice, _ in (p for p in problems if p[3] == "warning"):
        _say(f"warning: {advice}")
    errors = [p for p in problems if p[3] == "error"]
    if errors:
        frame = pd.DataFrame(errors, columns=["row", "field", "error", "severity"])
        shown = "\n".join(f"  {e}" for e in frame["error"].head(10))
        more = f"\n  ... and {len(frame) - 10} more" if len(frame) > 10 else ""
        raise PreflightError(f"the preflight found {len(frame)} problem(s); nothing was sent. "
                             "Fix them and run again ("
                             f"{alt('err.problems has them all', 'all of them below')}):"
                             f"\n{shown}{more}",
                             frame)


# -- stage 4: the run ------------------------------------------------------------------------------
async def _open_first(conn: Any, run: _Run, opts: SendOptions) -> None:
    """The first connection is opened before anything is claimed: an authentication or TLS
    failure stops here with nothing sent; a temporary refusal is retried."""
    for attempt in range(opts.retries + 1):
        try:
            await conn.open()
            return
        except (AuthenticationError, TLSError):
            raise
        except RelayError as err:
            if attempt == opts.retries:
                raise RelayError(f"{err}. Nothing was sent; try again later.",
                                 host=err.host, port=err.port, code=err.code) from None
            await run.sleep(min(opts.backoff * 2 ** attempt, opts.max_backoff))


async def _beat(run: _Run) -> None:
    """Renew the run's lease every quarter of it, also while it waits (a slow rate, a full
    daily cap), so that other runs sharing the journal never take a live run for a dead one."""
    every = max(getattr(run.journal, "lease", STALE_AFTER) / 4, 0.5)
    while True:
        await asyncio.sleep(every)
        try:
            run.journal.heartbeat(run.run_id)
        except JournalError:
            pass                 # the workers meet the same error and stop the run


async def _work(run: _Run, conns: list[Any], plan: Plan, opts: SendOptions,
                progress: Progress | None) -> None:
    if plan.due or (opts.wait and plan.later):
        await _open_first(conns[0], run, opts)
    run.new = iter(plan.todo)      # the limit and the daily cap stop it (failures give back)
    run.todo = plan.todo
    tickers = [asyncio.create_task(_beat(run))]
    if progress is not None:
        async def tick() -> None:
            while True:
                await asyncio.sleep(0.5)
                progress.refresh()
        tickers.append(asyncio.create_task(tick()))
    try:
        await asyncio.gather(*(run.worker(c) for c in conns))
    finally:
        for t in tickers:
            t.cancel()
        try:
            run.commits.flush()
        except JournalError as err:
            run.journal_failed(err)
    if isinstance(run.fatal, JournalError):
        n = run.commits.lost
        lost = (f"; the outcome of {n} message(s) could not be written: they count as "
                "'unknown' and are not resent" if n else ", each outcome recorded")
        raise JournalError(f"{run.fatal} This run sent {run.stats.sent} message(s){lost}.",
                           disk_full=run.fatal.disk_full) from None
    if run.fatal is not None:
        raise run.fatal


def _start(campaign: Campaign, relay: Relay | Pickup, j: Journal, plan: Plan,
           pacing: Pacing) -> tuple[str, int]:
    """From here on the journal is written: the run, the recipients, the send-time skips."""
    run_id = j.start_run(campaign.name, account=relay.account,
                         meta={"pacing": pacing.describe(), "relay": relay.describe()})
    recovered = j.recover(campaign.name, run_id)
    j.add_recipients(campaign.name, ((it.key, it.address, encode_row(it.row))
                                     for it in plan.items))
    for it, note in plan.skipped:
        j.record(campaign.name, it.key, run_id, "skipped", reply=note, attempt=False)
    excluded = sum(not note.startswith(EMPTY_REPORT) for _, note in plan.skipped)
    if excluded:
        _say(f"{excluded} recipient(s) suppressed or unsubscribed since the audience was "
             "built: skipped")
    if recovered:
        _say(f"{recovered} message(s) were in flight when an earlier run stopped; they are marked "
             f"'unknown' and not resent ({arg('resend_unknown')} resends them)")
    return run_id, recovered


async def _run(campaign: Campaign, relay: Relay | Pickup, j: Journal, plan: Plan, pacing: Pacing,
               opts: SendOptions, stats: Stats, stop: threading.Event) -> pd.DataFrame:
    run_id, recovered = _start(campaign, relay, j, plan, pacing)
    password = relay.resolve_password() if isinstance(relay, Relay) else None
    if isinstance(relay, Relay) and relay.pop_before_smtp is not None and plan.due:
        await asyncio.to_thread(pop_login, relay.pop_before_smtp)
    eta = pacing.offsets(len(plan.due))[-1] if plan.due else 0.0
    stats.total, stats.started = len(plan.due), time.time()
    stats.eta = time.time() + eta if eta else None
    progress = Progress(stats, opts.progress) if opts.progress else None
    run = _Run(campaign, relay, j, run_id, pacing, opts, stats=stats, stop=stop,
               backup=Backup(opts.backup) if opts.backup else None,
               cap=_Budget(plan.cap_left), password=password)
    conns = [connect(relay, password) for _ in range(pacing.concurrency)]
    try:
        await _work(run, conns, plan, opts, progress)
    finally:
        for c in conns:
            await c.close()
        summary = _summary(run, stop, recovered)
        _close_run(j, campaign, run, summary, opts.requeue_errors)
        if progress is not None:
            progress.refresh(final=True)
    return _finish(campaign, j, plan, run_id, summary, pacing)


def _close_run(j: Journal, campaign: Campaign, run: _Run, summary: dict[str, Any],
               requeue: bool) -> None:
    """Return the rows this run holds to pending and record its end. After the journal failed
    (a full disk) this may fail too: the next run does the same for a run that has ended."""
    try:
        if requeue:
            j.reset(campaign.name, ("failed", "deferred"))
        j.release(campaign.name, run.run_id)
        j.end_run(run.run_id, summary)
    except JournalError:
        if not isinstance(run.fatal, JournalError):
            raise


# -- stage 5: the summary --------------------------------------------------------------------------
def _summary(run: _Run, stop: threading.Event, recovered: int) -> dict[str, Any]:
    s = run.stats
    reason = run.stop_reason or (stop.reason if isinstance(stop, _Stop) and stop.reason else
                                 ("interrupted" if stop.is_set() else None))
    s.deferred += len(run.retry_heap)
    if run.retry_heap:
        reason = (reason + "; " if reason else "") + f"{len(run.retry_heap)} deferred mid-retry"
    s.retrying = 0
    s.state = "done" if reason is None else reason.split(":")[0]
    return {"campaign": run.campaign.name, "account": run.relay.account, "sent": s.sent, "failed": s.failed,
            "deferred": s.deferred, "skipped": s.skipped, "unknown_recovered": recovered,
            "stopped": reason}


def _finish(campaign: Campaign, j: Journal, plan: Plan, run_id: str, summary: dict[str, Any],
            pacing: Pacing) -> pd.DataFrame:
    out = result_frame(campaign, j, run_id, plan)
    status = out["status"]
    left = int(status.isin(["pending", "deferred"]).sum())
    unknown = int((status == "unknown").sum())
    summary.update(left=left, unknown=unknown, complete=left == 0 and unknown == 0)
    out.attrs["summary"] = summary
    line = (f"{campaign.name!r}: {summary['sent']} sent, {summary['failed']} failed, "
            f"{summary['deferred']} deferred this run")
    if summary["stopped"]:
        line += f" (stopped: {summary['stopped']})"
    line += (f"; {int((status == 'sent').sum())} of {len(plan.items)} sent in all, "
             f"{int((status == 'excluded').sum())} excluded")
    if summary["complete"]:
        line += "; complete: everyone is accounted for"
    else:
        line += f"; NOT complete: {left} left" + ("; run again to continue" if left else "")
    _say(line + f". Journal: {j.location}")
    if left and summary["stopped"] == "daily cap reached" and pacing.daily_cap:
        free = j.cap_frees_at(summary.get("account", ""), pacing.daily_cap, time.time())
        _say(f"the daily cap of {pacing.daily_cap} is reached; {left} remain. The cap next allows "
             f"a message at {_clock(free) if free else 'once the rolling 24 hours pass'}; run "
             f"again then, or pass {arg('wait')} to keep going")
    if unknown:
        _say(f"{unknown} recipient(s) are 'unknown': in flight when a run stopped, so the relay "
             f"may or may not have them. List them with "
             + alt(f"mailnb.history({campaign.name!r}, status='unknown')",
                   f"mailnb history {campaign.name} --status unknown")
             + f"; resend them with {arg('resend_unknown')} if a duplicate is acceptable")
    return out


def result_frame(campaign: Campaign, journal: Journal, run_id: str | None,
                 plan: Plan | None = None) -> pd.DataFrame:
    """One row per row of the audience's input, in its order and with its index: the journal's
    outcome for those sent to, ``excluded`` with the reason for the others (the audience's
    exclusions, and for a reminder those the earlier campaign never reached)."""
    aud = campaign.audience
    items = plan.items if plan is not None else campaign.recipients()
    sent = _outcome_frame(journal, campaign.name, items, run_id)
    ex = aud.excluded
    parts = [sent]
    if len(ex):
        parts.append(pd.DataFrame({"address": ex["address"], "status": "excluded",
                                   "reason": ex["reason"], "reply": ex["detail"], "attempts": 0,
                                   "this_run": False}, index=ex.index))
    if plan is not None and plan.forgotten:
        parts.append(pd.DataFrame({"address": [it.address for it in plan.forgotten],
                                   "status": "excluded", "attempts": 0, "this_run": False,
                                   "reason": "forgotten"},
                                  index=[it.row for it in plan.forgotten]))
    if plan is not None and plan.unreached:
        parts.append(pd.DataFrame({"address": [it.address for it in plan.unreached],
                                   "status": "excluded", "attempts": 0, "this_run": False,
                                   "reason": f"never got {campaign.follow_up!r}"},
                                  index=[it.row for it in plan.unreached]))
    if len(parts) == 1 and sent.index.equals(aud.data.index):
        out = sent          # already in order and typed: no copy of a million-row frame
    else:
        out = pd.concat(parts) if len(parts) > 1 else sent
        if not out.index.equals(aud.data.index):
            out = out.reindex([i for i in aud.data.index if i in out.index])
        out = out[RESULT_COLUMNS]
        out["code"] = out["code"].astype("Int64")
        out["attempts"] = out["attempts"].fillna(0).astype(int)
        out["this_run"] = out["this_run"].fillna(False).astype(bool)
        out["sent_at"] = pd.to_datetime(out["sent_at"], utc=True)
    out.index.name = aud.data.index.name
    return out


def _outcome_frame(journal: Journal, campaign: str, items: list[Item],
                   run_id: str | None) -> pd.DataFrame:
    """The journal's outcome of each item, in the items' order, column by column (no frame of
    the whole journal: a million recipients' result costs its columns, and repeated texts such
    as the status are one string each)."""
    n = len(items)
    where = pd.Index([it.key for it in items])      # a hash table of the keys, not a dict
    status = np.full(n, "pending", dtype=object)
    reply, message_id = np.full(n, None, dtype=object), np.full(n, None, dtype=object)
    code, sent_at = np.full(n, np.nan), np.full(n, np.nan)
    attempts, this_run = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    shared: dict[Any, Any] = {}
    rows = iter(journal.outcomes(campaign))
    # small chunks: a row's tuple and strings are freed before the next chunk is read (50,000 at a
    # time held +110 MB at 100,000 rows, 5,000 +60 MB, in the same time)
    while chunk := list(itertools.islice(rows, 5_000)):
        keys, *cols = zip(*chunk)
        at = where.get_indexer(keys)
        mine = at >= 0                      # rows of this campaign the audience no longer has
        at = at[mine]
        st, att, cd, rep, mid, when, rid = (np.array(c, dtype=object)[mine] for c in cols)
        status[at] = [shared.setdefault(v, v) for v in st]
        attempts[at] = [v or 0 for v in att]
        code[at] = [np.nan if v is None else v for v in cd]
        reply[at] = [shared.setdefault(v, v) for v in rep]
        message_id[at] = mid
        sent_at[at] = [np.nan if v is None else v for v in when]
        if run_id is not None:
            this_run[at] = rid == run_id
    return pd.DataFrame({
        "address": [it.address for it in items], "status": status,
        "reason": np.where(status == "skipped", reply, None), "code": pd.array(
            code, dtype="Float64").astype("Int64"), "reply": reply, "attempts": attempts,
        "message_id": message_id, "sent_at": pd.to_datetime(sent_at, unit="s", utc=True),
        "this_run": this_run}, index=pd.Index([it.row for it in items]))


Target = Relay | Pickup | Graph | Direct


def connect(target: Target, password: Any) -> Any:
    """A connection of the transport the target names (opened on its first message)."""
    if isinstance(target, Graph):
        return GraphConnection(target)
    if isinstance(target, Direct):
        from ..transports.direct import DirectConnection
        return DirectConnection(target)
    return open_connection(target, password)


def _clock(t: float) -> str:
    return f"{datetime.fromtimestamp(t):%Y-%m-%d %H:%M:%S}"


def _say(text: str) -> None:
    print(f"mailnb: {phrase(text)}", flush=True)


# -- the fronts ------------------------------------------------------------------------------------
class _Stop(threading.Event):
    """A stop request that remembers why (SIGTERM, an interrupt)."""

    reason: str | None = None

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.set()


def _resolve(relay: Target | Profile, options: dict[str, Any]) -> tuple[Target, SendOptions]:
    """A profile stands for its transport, and its pacing and journal are the defaults."""
    if isinstance(relay, Profile):
        return relay.transport_target(), SendOptions.resolve(relay, options)
    return relay, SendOptions.from_kwargs(options)


async def _send(campaign: Campaign, relay: Relay | Pickup, opts: SendOptions,
                stats: Stats | None = None) -> pd.DataFrame:
    # -- stage 1: checks, before anything is read or written
    if not isinstance(relay, (Relay, Pickup, Graph, Direct)):
        raise ConfigError("relay must be a mailnb.Relay (SMTP), Graph, Direct or Pickup (.eml "
                          "files)")
    pacing = opts.check()
    relay.validate()
    campaign.validate()
    if isinstance(relay, Graph) and (campaign.bounce_address or campaign.verp):
        raise ConfigError("bounce_address and verp set the SMTP envelope sender, which Microsoft "
                          "Graph does not take (it sends from the mailbox): send over SMTP, or "
                          "leave them out")
    if opts.backup:
        Backup(opts.backup).check()
    j = open_journal(opts.journal, new=opts.new_journal, create=not opts.dry_run)
    try:
        if opts.reset and not opts.dry_run:
            j.reset(campaign.name, ("sent", "failed", "deferred", "skipped", "unknown"))
        plan = plan_send(campaign, j, pacing, relay.account, resend_unknown=opts.resend_unknown)
        skip = preflight(campaign, plan.todo, opts.max_size or DEFAULT_MAX_SIZE)
        if skip:
            gone = {it.key for it, _ in skip}
            plan.due = [it for it in plan.due if it.key not in gone]
            plan.later = [it for it in plan.later if it.key not in gone]
            plan.skipped.extend(skip)
        eta = pacing.offsets(len(plan.due))[-1] if plan.due else 0.0
        what = (f"campaign {campaign.name!r}: {plan.describe()}; {relay.describe()}; "
                f"{pacing.describe()}; journal {j.location}")
        if pacing.daily_cap:
            what += f"; daily cap {pacing.daily_cap} ({int(plan.cap_left)} left in the last 24 h)"
        if eta > 1:
            what += f"; about {eta:.0f}s, done around {_clock(time.time() + eta)}"
        if opts.dry_run:
            _say("DRY RUN, nothing is sent. " + what)
            return _dry_run_frame(campaign, j, plan, pacing)
        _say(what)
        stop = opts.stop or _Stop()
        return await _run(campaign, relay, j, plan, pacing, opts, stats or Stats(), stop)
    finally:
        if j is not opts.journal:
            j.close()


def _dry_run_frame(campaign: Campaign, j: Journal, plan: Plan, pacing: Pacing) -> pd.DataFrame:
    out = result_frame(campaign, j, None, plan)
    table = plan.table(pacing, pd.Timestamp.now(tz="UTC"))
    planned = table["status"].reindex(out.index)
    out["status"] = planned.where(planned.notna() & (out["status"] != "excluded"),
                                  out["status"]).astype(object)
    out["planned_at"] = table["planned_at"].reindex(out.index)
    out.attrs["summary"] = {"campaign": campaign.name, "dry_run": True,
                            "would_send": len(plan.due), "later": len(plan.later)}
    return out


async def send_async(campaign: Campaign, relay: Relay | Pickup | Profile, /,
                     **options: Any) -> pd.DataFrame:
    """The async core of :func:`send`; same parameters, same result."""
    target, opts = _resolve(relay, options)
    return await _send(campaign, target, opts)


def send(campaign: Campaign, relay: Relay | Pickup | Profile, /, **options: Any) -> pd.DataFrame:
    """Send a campaign and return one row per row of the audience's input (same index):
    ``address``, ``status`` (``sent``, ``failed``, ``deferred``, ``unknown``, ``skipped``,
    ``excluded`` ...), ``reason``, ``code``, ``reply``, ``attempts``, ``message_id``, ``sent_at``
    and ``this_run``. The options are :class:`mailnb.options.SendOptions`; an unknown one is an
    error naming the closest valid one.

    ``relay`` may be a :class:`~mailnb.settings.Profile`: its relay, pacing and journal are used,
    and options given here override them.

    Works in a script, a notebook cell and under papermill. Interrupting (Ctrl-C, "interrupt the
    kernel") or SIGTERM (a cron or papermill time-out) stops after the messages in flight, records
    them, and the next run resumes; SIGTERM raises :class:`StoppedError` with the result.
    """
    target, opts = _resolve(relay, options)
    stop = opts.stop if isinstance(opts.stop, _Stop) else _Stop()
    if opts.stop is not None and not isinstance(opts.stop, _Stop):
        outer = opts.stop
        threading.Thread(target=lambda: outer.wait() and stop.request("stopped by the caller"),
                         daemon=True).start()
    opts = replace(opts, stop=stop)
    stats = Stats()
    shown = _Shown(stats, opts.progress)
    try:
        with _on_sigterm(lambda: stop.request("SIGTERM")):
            result = run_sync(_send(campaign, target, replace(opts, progress=None), stats),
                              tick=shown.tick, on_interrupt=lambda: stop.request("interrupted"))
    finally:
        shown.tick(final=True)
    if stop.reason == "SIGTERM":
        raise StoppedError("stopped by SIGTERM after recording the messages in flight; run again "
                           "to continue", result)
    return result


send.__signature__ = signature_of(send)          # type: ignore[attr-defined]
send_async.__signature__ = signature_of(send_async)  # type: ignore[attr-defined]


class _Shown:
    """The progress display of the synchronous front, refreshed from the caller's thread (the
    cell's own, so it updates in place in a notebook)."""

    def __init__(self, stats: Stats, mode: Any) -> None:
        self.stats, self.mode = stats, mode
        self.progress: Progress | None = None

    def tick(self, final: bool = False) -> None:
        if self.stats.total and self.progress is None and self.mode:
            self.progress = Progress(self.stats, self.mode)
        if self.progress is not None:
            self.progress.refresh(final=final)


class _on_sigterm:
    """Within the block, SIGTERM calls ``handler`` (main thread only; elsewhere a no-op)."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.previous: Any = None

    def __enter__(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, lambda *_: self.handler())

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


# -- "send me a test first" ------------------------------------------------------------------------
async def send_test_async(campaign: Campaign, relay: Relay | Pickup, to: str, *,
                          rows: int = 1) -> pd.DataFrame:
    """The first ``rows`` messages exactly as they will go out (same headers, DKIM, unsubscribe
    link), subject marked ``[TEST]``, delivered to ``to`` only. Nothing is journaled."""
    relay.validate()
    campaign.validate()
    try:
        target = normalize(to or "", allow_test_domains=True)
    except Exception as err:
        raise ConfigError(f"test address {to!r}: {err}") from None
    items = campaign.recipients()[:max(int(rows), 1)]
    preflight(campaign, items, DEFAULT_MAX_SIZE)
    password = relay.resolve_password() if isinstance(relay, Relay) else None
    conn = connect(relay, password)
    out = []
    try:
        for it in items:
            data, mid, rendered = build(campaign, it, subject_prefix="[TEST] ")
            d = await conn.send(campaign.envelope_from(mid), target.address, data,
                                smtputf8=target.smtputf8 or it.smtputf8)
            out.append((it.row, it.address, target.address, rendered.subject, d.status, d.reply))
    finally:
        await conn.close()
    return pd.DataFrame(out, columns=["row", "recipient", "sent_to", "subject", "status",
                                      "reply"]).set_index("row")


def send_test(campaign: Campaign, relay: Relay | Pickup | Profile, to: str, *,
              rows: int = 1) -> pd.DataFrame:
    """Send the first ``rows`` messages of the campaign to ``to`` (your own address), marked as a
    test; see :func:`send_test_async`."""
    target = _resolve(relay, {})[0]
    return run_sync(send_test_async(campaign, target, to, rows=rows))


async def send_test_message_async(relay: Relay | Pickup, to: str, *, from_addr: str,
                                  from_name: str | None = None) -> Delivery:
    relay.validate()
    try:
        to_addr = normalize(to or "", allow_test_domains=True)
        sender = normalize(from_addr or "", allow_test_domains=True)
    except Exception as err:
        raise ConfigError(f"test message: {err}") from None
    rendered = Template("mailnb test message",
                        text=f"This is a test message from mailnb through {relay.describe()}.\n"
                        "If you can read it, the relay settings work.").render({})
    data, _ = build_message(rendered, from_addr=sender.address, from_name=from_name,
                            to_addr=to_addr.address, smtputf8=to_addr.smtputf8)
    password = relay.resolve_password() if isinstance(relay, Relay) else None
    conn = open_connection(relay, password)
    try:
        return await conn.send(sender.address, to_addr.address, data, smtputf8=to_addr.smtputf8)
    finally:
        await conn.close()


def send_test_message(relay: Relay | Pickup, to: str, *, from_addr: str,
                      from_name: str | None = None) -> Delivery:
    """Send one short test message to ``to`` and return its Delivery (status, code, reply)."""
    return run_sync(send_test_message_async(relay, to, from_addr=from_addr, from_name=from_name))


__all__ = ["Campaign", "StoppedError", "plan_send", "preflight", "result_frame", "send",
           "send_async", "send_test", "send_test_message"]
