"""The sender: a campaign to every recipient, paced, retried, and journaled so that no run sends twice.

``send(campaign, relay, ...)`` works from a script, a notebook cell and a papermill run;
``send_async`` is the same for those who have an event loop. Before the first message leaves, every
row to send is rendered (the preflight), the relay settings are checked and the first connection is
opened and authenticated: a problem there sends nothing.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import (AuthenticationError, ConfigError, PreflightError, RelayError, TemplateError,
                     TLSError)
from .journal import Journal, encode_row, open_journal
from .messages import build_message
from .pacing import Pacer, Pacing
from .progress import Progress, Stats
from .recipients import Audience, normalize
from .runner import run_sync
from .settings import Pickup, Profile, Relay
from .signing import DKIMKey
from .unsubscribes import Unsubscribe
from .templates import _CONTROL, DEFAULT_MAX_SIZE, Rendered, Template, check_rendered
from .transports import Backup, Delivery, open_connection

#: rendered messages kept from the preflight for sending (beyond this, rows are rendered again)
KEEP_RENDERED = 50_000
RESULT_COLUMNS = ["address", "status", "code", "reply", "attempts", "message_id", "sent_at",
                  "this_run"]


@dataclass
class Campaign:
    """What to send to whom: a name (the journal's key: the same name resumes), an audience, a
    template, and the sender's From, Reply-To and default footer.

    ``key`` names a column that identifies a recipient (default: the normalised address), so a row
    whose address changed is still the same person. ``headers`` are added to every message.

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

    @classmethod
    def from_profile(cls, profile: Profile, name: str, audience: Audience, template: Template, *,
                     alternate: bool = False, **overrides: Any) -> Campaign:
        """A campaign with From, Reply-To, footer and format from a profile's preferences
        (``alternate=True``: the profile's alternate From, falling back to the main one)."""
        from_addr, from_name = profile.sender(alternate)
        values: dict[str, Any] = {"from_addr": from_addr, "from_name": from_name,
                                  "reply_to": profile.reply_to or None,
                                  "footer": profile.footer or None,
                                  "email_format": profile.email_format}
        if profile.unsubscribe_mailto or profile.unsubscribe_url:
            values["unsubscribe"] = Unsubscribe(mailto=profile.unsubscribe_mailto or None,
                                                url=profile.unsubscribe_url or None)
        if profile.dkim_key_file:
            values["dkim"] = DKIMKey.from_file(profile.dkim_key_file, profile.dkim_selector,
                                               profile.dkim_domain or
                                               profile.sender()[0].rpartition("@")[2])
        values.update(overrides)
        return cls(name, audience, template, **values)

    def unsubscribe_links(self) -> Unsubscribe:
        return self.unsubscribe or Unsubscribe(mailto=self.reply_to or self.from_addr)

    def validate(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or _CONTROL.search(self.name) \
                or len(self.name) > 200:
            raise ConfigError(f"campaign name {self.name!r} must be a non-empty line of text (at "
                              "most 200 characters): it identifies the campaign in the journal")
        if not isinstance(self.audience, Audience):
            raise ConfigError("Campaign.audience must be a mailnb.Audience; build it with "
                              "mailnb.Audience(df, 'email')")
        if not isinstance(self.template, Template):
            raise ConfigError("Campaign.template must be a mailnb.Template")
        for label, value in (("from_addr", self.from_addr), ("reply_to", self.reply_to)):
            if value is None and label == "reply_to":
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

    def recipients(self) -> list[Item]:
        aud = self.audience
        items: list[Item] = []
        seen: dict[str, Any] = {}
        columns = [str(c) for c in aud.sendable.columns]
        key_pos = columns.index(self.key) if self.key else None
        for (idx, *vals), address, akey, utf8 in zip(
                aud.sendable.itertuples(index=True, name=None), aud.addresses, aud.keys,
                aud.smtputf8):
            key = akey
            if key_pos is not None:
                raw = vals[key_pos]
                if raw is None or (isinstance(raw, float) and math.isnan(raw)) or str(raw) == "":
                    raise ConfigError(f"row {idx!r}, column {self.key!r}: the key is empty; every "
                                      "row needs a key when key= is set")
                key = str(raw)
            if key in seen:
                raise ConfigError(f"row {idx!r}, column {self.key!r}: key {key!r} is also in row "
                                  f"{seen[key]!r}; keys must be unique")
            seen[key] = idx
            items.append(Item(idx, key, address, bool(utf8), dict(zip(columns, vals))))
        return items


@dataclass
class Item:
    row: Any
    key: str
    address: str
    smtputf8: bool
    values: dict[str, Any]
    rendered: Rendered | None = None
    data: bytes | None = None
    message_id: str | None = None
    attempts: int = 0
    thread: str | None = None       # the Message-ID this message follows up
    context: dict[str, Any] | None = None        # unsubscribe_url
    extra_headers: dict[str, str] | None = None  # List-Unsubscribe


@dataclass
class _Budget:
    """How many more new recipients this run may take (limit per run and daily cap)."""

    left: float

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True

    def give_back(self) -> None:
        self.left += 1


class _Run:
    def __init__(self, campaign: Campaign, relay: Relay | Pickup, journal: Journal, run_id: str,
                 pacing: Pacing, *, retries: int, backoff: float, max_backoff: float,
                 backup: Backup | None, stats: Stats, stop: threading.Event, cap: _Budget,
                 limit: _Budget, password: Any) -> None:
        self.campaign = campaign
        self.relay = relay
        self.journal = journal
        self.run_id = run_id
        self.pacing = pacing
        self.pacer = Pacer(pacing, sleep=self.sleep)
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.backup = backup
        self.stats = stats
        self.stop = stop
        self.cap = cap
        self.limit = limit
        self.password = password
        self.new: Any = None
        self.retry_heap: list[tuple[float, int, Item]] = []
        self.seq = itertools.count()
        self.connect_failures = 0
        self.stop_reason: str | None = None
        self.fatal: BaseException | None = None

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

    async def next_item(self, before_wait: Any = None) -> Item | None:
        while not self.stop.is_set():
            now = time.monotonic()
            if self.retry_heap and self.retry_heap[0][0] <= now:
                return heapq.heappop(self.retry_heap)[2]
            if self.new is not None:
                if self.limit.left <= 0:
                    self.new = None
                    if self.stop_reason is None:
                        self.stop_reason = "limit reached"
                elif self.cap.left <= 0:
                    self.new = None
                    if self.stop_reason is None:
                        self.stop_reason = "daily cap reached"
                else:
                    item = next(self.new, None)
                    if item is not None:
                        self.limit.take()
                        self.cap.take()
                        return item
                    self.new = None
            if not self.retry_heap:
                return None
            if before_wait is not None:
                before_wait()
            await self.sleep(min(self.retry_heap[0][0] - now, 1.0))
        return None

    def prepare(self, item: Item) -> None:
        if item.data is not None:
            return
        c = self.campaign
        rendered = item.rendered or c.template.render(
            item.values, row_id=item.row, default_footer=c.footer,
            default_footer_html=c.footer_html, context=item.context)
        if c.email_format == "text" and rendered.html is not None:
            rendered.html = None
        headers = dict(c.headers)
        if item.extra_headers:
            headers.update(item.extra_headers)
        if item.thread:
            headers["In-Reply-To"] = item.thread
            headers["References"] = item.thread
        item.data, item.message_id = build_message(
            rendered, from_addr=c.from_addr, to_addr=item.address, from_name=c.from_name,
            reply_to=c.reply_to, headers=headers, campaign=c.name, smtputf8=item.smtputf8)
        if c.dkim is not None:
            item.data = c.dkim.sign(item.data)
        item.rendered = rendered if self.backup else None

    async def worker(self, conn: Any) -> None:
        """Send items until there are none. A message's outcome is committed together with the
        next claim (one transaction a message); it is flushed on its own before any wait, so a
        crash can only lose the outcome of a message that has just been answered."""
        j, c = self.journal, self.campaign
        pending: dict[str, Any] | None = None

        def flush() -> None:
            nonlocal pending
            if pending:
                j.record(**pending)
                pending = None

        try:
            while True:
                item = await self.next_item(before_wait=flush)
                if item is None:
                    return
                try:
                    self.prepare(item)
                except (TemplateError, OSError) as err:   # e.g. an attachment deleted since
                    flush()
                    j.record(c.name, item.key, self.run_id, "failed", reply=str(err),
                             attempt=False)
                    self.stats.failed += 1
                    self.cap.give_back()
                    continue
                await self.pacer.wait(before_sleep=flush)
                if self.stop.is_set() and item.attempts == 0:
                    return       # not claimed yet: it stays pending for the next run
                claimable = ("pending", "deferred", "unknown") if item.attempts == 0 \
                    else ("deferred",)
                claimed = j.claim_after(c.name, item.key, self.run_id, claimable, pending)
                pending = None
                if not claimed:
                    self.stats.skipped += 1      # another run took it meanwhile
                    self.cap.give_back()
                    continue
                item.attempts += 1
                try:
                    result = await conn.send(c.from_addr, item.address, item.data,
                                             smtputf8=item.smtputf8)
                except (AuthenticationError, TLSError, RelayError) as err:
                    j.record(c.name, item.key, self.run_id, "pending", code=err.code,
                             reply=str(err), attempt=False)
                    self.fatal = err
                    self.halt(f"stopped: {err}")
                    return
                pending = self.handle(item, result)
                if result.status == "retry":
                    flush()          # a retry waits: its state must be on disk first
        finally:
            flush()
            await conn.close()

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
            item.data = item.rendered = None
            return {**outcome, "status": "sent"}
        if result.status == "failed":
            s.failed += 1
            if item.attempts > 1:
                s.retrying -= 1
            self.cap.give_back()
            item.data = item.rendered = None
            return {**outcome, "status": "failed"}
        # a temporary failure
        if result.slow_down:
            self.pacer.slow_down()
        if result.code is None and result.reply.startswith("cannot talk"):
            self.connect_failures += 1
        if item.attempts <= self.retries:
            if item.attempts == 1:
                s.retrying += 1
            delay = min(self.backoff * 2 ** (item.attempts - 1), self.max_backoff)
            heapq.heappush(self.retry_heap, (time.monotonic() + delay, next(self.seq), item))
        else:
            s.deferred += 1
            if item.attempts > 1:
                s.retrying -= 1
            self.cap.give_back()
            item.data = item.rendered = None
        if self.connect_failures > self.retries:
            self.halt(f"relay unavailable: {result.reply}")
        return {**outcome, "status": "deferred"}


def _frame_from_journal(campaign: Campaign, items: list[Item], journal: Journal,
                        run_id: str | None) -> pd.DataFrame:
    """One row per recipient of this run's audience, in its order and with its index."""
    hist = journal.history(campaign.name)
    keys = pd.Series([it.key for it in items])
    hist = hist.drop_duplicates("key").set_index("key")
    found = hist.reindex(keys)
    out = pd.DataFrame({
        "address": [it.address for it in items],
        "status": found["status"].fillna("pending").to_numpy(),
        "code": found["code"].astype("Int64").to_numpy(),
        "reply": found["reply"].to_numpy(),
        "attempts": found["attempts"].fillna(0).astype(int).to_numpy(),
        "message_id": found["message_id"].to_numpy(),
        "sent_at": pd.to_datetime(found["sent_at"], utc=True).to_numpy(),
        "this_run": (found["run_id"] == run_id).to_numpy() if run_id is not None
        else [False] * len(items),
    }, index=pd.Index([it.row for it in items], name=campaign.audience.sendable.index.name))
    out["sent_at"] = pd.to_datetime(out["sent_at"], utc=True)
    return out


def _eta_seconds(pacing: Pacing, n: int) -> float:
    """How long the pacing alone makes ``n`` messages take (the relay's speed comes on top; the
    progress display estimates that from the messages already sent)."""
    return pacing.offsets(n)[-1] if n > 0 else 0.0


def _say(text: str) -> None:
    print(f"mailnb: {text}", flush=True)


def _resolve(relay: Relay | Pickup | Profile,
             options: dict[str, Any]) -> tuple[Relay | Pickup, dict[str, Any]]:
    """A profile stands for its relay, and its pacing and journal are the defaults."""
    if isinstance(relay, Profile):
        return relay.relay(), {**relay.pacing_options(), **options}
    return relay, options


async def send_async(campaign: Campaign, relay: Relay | Pickup | Profile,
                     **options: Any) -> pd.DataFrame:
    """The async core of :func:`send`; same parameters, same result."""
    relay, options = _resolve(relay, options)
    return await _send(campaign, relay, **options)


async def _send(campaign: Campaign, relay: Relay | Pickup, *,
                     journal: Journal | str | Path | None = None, dry_run: bool = False,
                     limit: int | None = None, rate: str | None = None,
                     daily_cap: int | None = None, block: int | tuple | None = None,
                     block_pause: str | float | None = None, concurrency: int = 1,
                     retries: int = 3, backoff: float = 2.0, max_backoff: float = 300.0,
                     reset: bool = False, requeue_errors: bool = False,
                     resend_unknown: bool = False, backup: str | None = None,
                     progress: str | bool | None = "auto", max_size: int = DEFAULT_MAX_SIZE,
                     stop: threading.Event | None = None, _stats: Stats | None = None,
                     _progress: Progress | None = None) -> pd.DataFrame:
    if not isinstance(relay, (Relay, Pickup)):
        raise ConfigError("relay must be a mailnb.Relay (SMTP) or mailnb.Pickup (write .eml files)")
    if not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"retries must be a whole number >= 0, not {retries!r}")
    pacing = Pacing.build(rate=rate, block=block, block_pause=block_pause, daily_cap=daily_cap,
                          limit=limit, concurrency=concurrency)
    relay.validate()
    campaign.validate()
    keeper = Backup(backup) if backup else None
    if keeper is not None:
        keeper.check()
    items = campaign.recipients()
    j = open_journal(journal)
    stop = stop or threading.Event()
    account = relay.account

    states = j.states(campaign.name)
    if not dry_run and reset:
        j.reset(campaign.name, ("sent", "failed", "deferred", "skipped", "unknown"))
        states = j.states(campaign.name)
    claimable = {"pending", "deferred"} | ({"unknown"} if resend_unknown else set())
    if campaign.follow_up:
        if campaign.follow_up == campaign.name:
            raise ConfigError("a follow-up needs a campaign name of its own, e.g. "
                              f"{campaign.name + '-reminder'!r}")
        earlier = j.history(campaign.follow_up)
        earlier = earlier[earlier["status"] == "sent"]
        if earlier.empty:
            raise ConfigError(f"campaign {campaign.follow_up!r} has no sent messages in the "
                              f"journal {getattr(j, 'path', j)}; nothing to follow up")
        threads = dict(zip(earlier["key"], earlier["message_id"]))
        unreached = [it for it in items if it.key not in threads]
        items = [it for it in items if it.key in threads]
        for it in items:
            it.thread = threads[it.key]
        if unreached:
            _say(f"{len(unreached)} recipient(s) never got {campaign.follow_up!r}: no reminder "
                 "for them")
    todo = [it for it in items if states.get(it.key, "pending") in claimable]
    done_before = len(items) - len(todo)
    # the suppression list is read at send time too: an address that bounced since the audience
    # was built is skipped
    suppressed: list[tuple[Item, str]] = []
    sup = j.suppressions()
    unsub = j.unsubscribes() if not campaign.audience.transactional else None
    if len(sup) or (unsub is not None and len(unsub)):
        keep = []
        policy = campaign.audience.exclusion_policy
        for it in todo:
            k = it.address.casefold()
            note = sup.match(k)
            if note is not None:
                suppressed.append((it, f"suppressed: {note}"))
            elif unsub is not None and \
                    (u := unsub.match(k, campaign.name, policy=policy)) is not None:
                suppressed.append((it, f"unsubscribed: {u}"))
            else:
                keep.append(it)
        todo = keep

    # -- the preflight: render every row to send; any problem and nothing is sent ----------------
    transactional = campaign.audience.transactional
    links = campaign.unsubscribe_links()
    secret = links.key()
    for it in todo:
        url, hdrs = links.links(it.address, campaign.name, secret)
        it.context = {"unsubscribe_url": url}
        it.extra_headers = None if transactional else hdrs
    problems: list[tuple[Any, str, str, str]] = []
    advised: set[tuple[str, str]] = set()
    try:
        campaign.template.compile()
    except TemplateError as err:
        problems.append((None, err.field or "", str(err), "error"))
    else:
        for n, it in enumerate(todo):
            try:
                r = campaign.template.render(it.values, row_id=it.row,
                                             default_footer=campaign.footer,
                                             default_footer_html=campaign.footer_html,
                                             context=it.context)
            except TemplateError as err:
                problems.append((it.row, err.field or "", str(err), "error"))
                continue
            problems.extend(check_rendered(r, it.row, max_size, advised))
            if n < KEEP_RENDERED:
                it.rendered = r
    for _, _, advice, _ in (p for p in problems if p[3] == "warning"):
        _say(f"warning: {advice}")
    problems = [p for p in problems if p[3] == "error"]
    if problems:
        frame = pd.DataFrame(problems, columns=["row", "field", "error", "severity"])
        shown = "\n".join(f"  {e}" for e in frame["error"].head(10))
        more = f"\n  ... and {len(frame) - 10} more" if len(frame) > 10 else ""
        raise PreflightError(f"the preflight found {len(frame)} problem(s); nothing was sent. "
                             f"Fix them and run again (err.problems has them all):\n{shown}{more}",
                             frame)

    cap_left: float = math.inf
    if daily_cap:
        used = j.sent_since(account, time.time() - 86400)
        cap_left = max(daily_cap - used, 0)
    n_now = int(min(len(todo), limit or math.inf, cap_left))
    eta = _eta_seconds(pacing, n_now)
    what = (f"campaign {campaign.name!r}: {n_now} to send now, {len(todo) - n_now} left for later "
            f"runs, {done_before} done before; {relay.describe()}; {pacing.describe()}")
    if daily_cap:
        what += f"; daily cap {daily_cap} ({int(cap_left)} left in the last 24 h)"

    if dry_run:
        _say("DRY RUN, nothing is sent. " + what +
             (f"; would take about {eta:.0f}s" if eta else ""))
        offsets = pacing.offsets(n_now)
        now = pd.Timestamp.now(tz="UTC")
        out = _frame_from_journal(campaign, items, j, None)
        planned = {it.key: now + pd.Timedelta(seconds=offsets[i]) for i, it in
                   enumerate(todo[:n_now])}
        out["planned_at"] = [planned.get(it.key, pd.NaT) for it in items]
        out["status"] = ["would send" if it.key in planned else
                         ("later run" if states.get(it.key, "pending") in claimable else s)
                         for it, s in zip(items, out["status"])]
        out["planned_at"] = pd.to_datetime(out["planned_at"], utc=True)
        out.attrs["summary"] = {"campaign": campaign.name, "dry_run": True, "would_send": n_now}
        return out

    # -- from here on the journal is written ----------------------------------------------------
    run_id = j.start_run(campaign.name, account=account,
                         meta={"pacing": pacing.describe(), "relay": relay.describe()})
    recovered = j.recover(campaign.name, run_id)
    j.add_recipients(campaign.name, ((it.key, it.address, encode_row(it.row)) for it in items))
    for it, note in suppressed:
        j.record(campaign.name, it.key, run_id, "skipped", reply=note, attempt=False)
    if suppressed:
        _say(f"{len(suppressed)} recipient(s) suppressed or unsubscribed since the audience was "
             "built: skipped")
    if recovered:
        _say(f"{recovered} message(s) were in flight when an earlier run stopped; they are marked "
             f"'unknown' and not resent (pass resend_unknown=True to resend them)")

    password = relay.resolve_password() if isinstance(relay, Relay) else None
    if isinstance(relay, Relay) and relay.pop_before_smtp is not None and n_now:
        from .mailbox import pop_login
        await asyncio.to_thread(pop_login, relay.pop_before_smtp)   # "POP before SMTP"
    stats = _stats or Stats()
    stats.total = n_now
    stats.started = time.time()
    stats.eta = time.time() + eta if eta else None
    if progress and _progress is None:
        _progress = Progress(stats, progress)
    _say(what + (f"; about {eta:.0f}s, done around "
                 f"{datetime.fromtimestamp(time.time() + eta):%H:%M}" if eta > 1 else ""))

    run = _Run(campaign, relay, j, run_id, pacing, retries=retries, backoff=backoff,
               max_backoff=max_backoff, backup=keeper, stats=stats, stop=stop,
               cap=_Budget(cap_left), limit=_Budget(limit or math.inf), password=password)
    conns = [open_connection(relay, password) for _ in range(concurrency)]
    summary: dict[str, Any] = {}
    try:
        if n_now:
            # the first connection is opened before anything is claimed: an authentication or TLS
            # failure stops here, with nothing sent; a temporary refusal is retried
            for attempt in range(retries + 1):
                try:
                    await conns[0].open()
                    break
                except (AuthenticationError, TLSError):
                    raise
                except RelayError as err:
                    if attempt == retries:
                        raise RelayError(f"{err}. Nothing was sent; try again later.",
                                         host=err.host, port=err.port, code=err.code) from None
                    await run.sleep(min(backoff * 2 ** attempt, max_backoff))
        run.new = iter(todo)
        ticker = None
        if _progress is not None:
            async def tick() -> None:
                while True:
                    await asyncio.sleep(0.5)
                    _progress.refresh()
            ticker = asyncio.create_task(tick())
        try:
            await asyncio.gather(*(run.worker(c) for c in conns))
        finally:
            if ticker is not None:
                ticker.cancel()
        if run.fatal is not None:
            raise run.fatal
    finally:
        for c in conns:
            await c.close()
        if requeue_errors:
            j.reset(campaign.name, ("failed", "deferred"))
        reason = run.stop_reason or ("interrupted" if stop.is_set() else "complete")
        if run.retry_heap:
            reason += f"; {len(run.retry_heap)} deferred mid-retry"
        stats.state = "done" if reason == "complete" else reason.split(":")[0]
        summary = {"campaign": campaign.name, "sent": stats.sent, "failed": stats.failed,
                   "deferred": stats.deferred + len(run.retry_heap), "skipped": stats.skipped,
                   "unknown_recovered": recovered, "stopped": reason}
        j.end_run(run_id, summary)
        stats.retrying = 0
        stats.deferred += len(run.retry_heap)
        if _progress is not None:
            _progress.refresh(final=True)

    out = _frame_from_journal(campaign, items, j, run_id)
    left = int(out["status"].isin(["pending", "deferred"]).sum())
    summary["left"] = left
    out.attrs["summary"] = summary
    _say(f"{campaign.name!r}: {stats.sent} sent, {stats.failed} failed, {summary['deferred']} "
         f"deferred this run ({reason}); {int((out['status'] == 'sent').sum())} of {len(items)} "
         f"sent in all, {left} left" + ("; run again to continue" if left else ""))
    return out


def send(campaign: Campaign, relay: Relay | Pickup | Profile, **options: Any) -> pd.DataFrame:
    """Send a campaign and return one row per sendable recipient (the audience's index):
    ``address``, ``status``, ``code``, ``reply``, ``attempts``, ``message_id``, ``sent_at`` and
    ``this_run``.

    Options (keyword only): ``journal`` (path or Journal), ``dry_run``, ``limit`` (per run),
    ``rate`` (``"600/h"``), ``daily_cap``, ``block`` (``(50, "2min")``), ``concurrency``,
    ``retries`` and ``backoff`` (temporary failures), ``reset`` (all recipients to unsent first),
    ``requeue_errors`` (failed/deferred to unsent after), ``resend_unknown``, ``backup`` (a path
    pattern for a copy of each sent message), ``progress`` (``"auto"``, ``"text"``, None).

    ``relay`` may be a :class:`~mailnb.settings.Profile`: its relay, pacing and journal are used,
    and options given here override them.

    Works in a script, a notebook cell and under papermill; interrupting stops after the messages
    in flight, and the next run resumes.
    """
    relay, options = _resolve(relay, options)
    stop = threading.Event()
    stats = Stats()
    prog_mode = options.pop("progress", "auto")
    holder: dict[str, Progress] = {}

    def tick() -> None:
        if stats.total and "p" not in holder and prog_mode:
            holder["p"] = Progress(stats, prog_mode)
        if "p" in holder:
            holder["p"].refresh()

    try:
        return run_sync(_send(campaign, relay, stop=stop, _stats=stats, progress=None,
                                   **options),
                        tick=tick, on_interrupt=stop.set)
    finally:
        if "p" in holder:
            holder["p"].refresh(final=True)
        elif stats.total and prog_mode:
            Progress(stats, prog_mode).refresh(final=True)


__all__ = ["Campaign", "send", "send_async"]


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
