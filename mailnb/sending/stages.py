"""A send as stages, in a row (:func:`run_campaign`):

1. **checks** (:func:`check`): the options, the target and the campaign, before anything else;
2. **plan** (:func:`plan_send` reads the journal, :mod:`mailnb.sending.plan` decides, pure): who is
   due now, reminders, send-time exclusions, caps;
3. **preflight** (:mod:`mailnb.sending.preflight`, once): every row to send is rendered; any
   problem and nothing is sent. A preflight the caller already ran is reused;
4. **run** (:func:`run_stage`, :mod:`mailnb.sending.run`): claim, gate, send, record;
5. **summary** (:mod:`mailnb.sending.result`): what happened, and what is left, said truthfully.
"""
from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pandas as pd

from ..compose.templates import DEFAULT_MAX_SIZE
from ..config.options import SendOptions
from ..config.pacing import CAP_PERIOD, Pacing
from ..config.targets import Target
from ..errors import AuthenticationError, ConfigError, JournalError, RelayError, TLSError, arg
from ..journal.base import STALE_AFTER, Journal, encode_row
from ..journal.open import open_journal
from ..journal.privacy import forgotten
from ..transports.base import Connection, connect, of, password_for
from ..transports.pickup import Backup
from .campaign import Campaign
from .gate import Gate
from .plan import Plan, make_plan
from .preflight import EMPTY_REPORT, Preflighted, preflight
from .progress import Progress, Stats, clock, say
from .result import dry_run_frame, finish
from .run import Run, Stop, sleeper


# -- stage 1: the checks ---------------------------------------------------------------------------
def check(campaign: Campaign, target: Target, opts: SendOptions) -> Pacing:
    """Every setting that can be checked before the journal is opened; the pacing."""
    transport = of(target)
    pacing = opts.check()
    target.validate()
    campaign.validate()
    if not transport.envelope_sender and (campaign.bounce_address or campaign.verp):
        raise ConfigError(f"bounce_address and verp set the SMTP envelope sender, which "
                          f"{transport.title} does not take (it sends from the mailbox): send "
                          "over SMTP, or leave them out")
    if opts.backup:
        Backup(opts.backup).check()
    return pacing


# -- stage 2: the plan -----------------------------------------------------------------------------
def plan_send(campaign: Campaign, journal: Journal, pacing: Pacing, account: str, *,
              resend_unknown: bool = False) -> Plan:
    """Read what the plan needs from the journal and make it (:func:`mailnb.sending.plan.make_plan`)."""
    threads = None
    if campaign.follow_up:
        earlier = journal.history(campaign.follow_up)
        earlier = earlier[earlier["status"] == "sent"]
        if earlier.empty:
            raise ConfigError(f"campaign {campaign.follow_up!r} has no sent messages in the "
                              f"journal {journal.location}; nothing to follow up")
        threads = dict(zip(earlier["key"], earlier["message_id"], strict=True))
    aud = campaign.audience
    sent = journal.sent_since(account, time.time() - CAP_PERIOD) if pacing.daily_cap else 0
    plan = make_plan(campaign.recipients(), journal.states(campaign.name), campaign=campaign.name,
                     pacing=pacing, sent_last_24h=sent, resend_unknown=resend_unknown,
                     threads=threads, suppressions=journal.suppressions(),
                     unsubscribes=None if aud.transactional else journal.unsubscribes(),
                     policy=aud.exclusion_policy, forgotten=forgotten(journal))
    if plan.unreached:
        say(f"{len(plan.unreached)} recipient(s) never got {campaign.follow_up!r}: no reminder "
            "for them")
    return plan


def _announce(campaign: Campaign, target: Target, j: Journal, plan: Plan, pacing: Pacing,
              eta: float, dry_run: bool) -> None:
    what = (f"campaign {campaign.name!r}: {plan.describe()}; {target.describe()}; "
            f"{pacing.describe()}; journal {j.location}")
    if pacing.daily_cap:
        what += f"; daily cap {pacing.daily_cap} ({int(plan.cap_left)} left in the last 24 h)"
    if eta > 1:
        what += f"; about {eta:.0f}s, done around {clock(time.time() + eta)}"
    say(("DRY RUN, nothing is sent. " if dry_run else "") + what)


# -- the stages in a row ---------------------------------------------------------------------------
async def run_campaign(campaign: Campaign, target: Target, opts: SendOptions,
                       stats: Stats | None = None) -> pd.DataFrame:
    """Every stage of a send, in order; the result frame (a dry run's plan with ``dry_run``)."""
    pacing = check(campaign, target, opts)
    j = open_journal(opts.journal, new=opts.new_journal, create=not opts.dry_run)
    try:
        if opts.reset and not opts.dry_run:
            j.reset(campaign.name, ("sent", "failed", "deferred", "skipped", "unknown"))
        plan = plan_send(campaign, j, pacing, target.account, resend_unknown=opts.resend_unknown)
        done = opts.preflight if isinstance(opts.preflight, Preflighted) else None
        plan.drop(preflight(campaign, plan.todo, opts.max_size or DEFAULT_MAX_SIZE, done=done))
        # the schedule's end, once (offsets() makes a list a message)
        eta = pacing.offsets(len(plan.due))[-1] if plan.due else 0.0
        _announce(campaign, target, j, plan, pacing, eta, opts.dry_run)
        if opts.dry_run:
            return dry_run_frame(campaign, j, plan, pacing)
        stop = opts.stop if opts.stop is not None else Stop()
        return await run_stage(campaign, target, j, plan, pacing, opts, stats or Stats(), stop,
                               eta=eta)
    finally:
        if j is not opts.journal:
            j.close()


# -- stage 4: the run ------------------------------------------------------------------------------
async def run_stage(campaign: Campaign, target: Target, j: Journal, plan: Plan, pacing: Pacing,
                    opts: SendOptions, stats: Stats, stop: threading.Event, *,
                    eta: float) -> pd.DataFrame:
    """Claim, gate, send and record until nobody is left; ``eta``: seconds the schedule takes."""
    run_id, recovered = _start(campaign, target, j, plan, pacing)
    password = password_for(target)
    before_send = of(target).before_send
    if before_send is not None and plan.due:
        await before_send(target)
    stats.total, stats.started = len(plan.due), time.time()
    stats.eta = time.time() + eta if eta else None
    progress = Progress(stats, opts.progress) if opts.progress else None
    gate = Gate(pacing, j, target.account, cap_left=plan.cap_left, wait=opts.wait,
                sleep=sleeper(stop))
    run = Run(campaign, target, j, run_id, gate, retries=opts.retries, backoff=opts.backoff,
              max_backoff=opts.max_backoff, backup=Backup(opts.backup) if opts.backup else None,
              stats=stats, stop=stop)
    conns = [connect(target, password) for _ in range(pacing.concurrency)]
    try:
        await _work(run, conns, plan, opts, progress)
    finally:
        for c in conns:
            await c.close()
        summary = _summarise(run, stop, recovered)
        _close_run(j, campaign, run, summary, opts.requeue_errors)
        if progress is not None:
            progress.refresh(final=True)
    return finish(campaign, j, plan, run_id, summary, pacing)


def _start(campaign: Campaign, target: Target, j: Journal, plan: Plan,
           pacing: Pacing) -> tuple[str, int]:
    """From here on the journal is written: the run, the recipients, the send-time skips."""
    run_id = j.start_run(campaign.name, account=target.account,
                         meta={"pacing": pacing.describe(), "relay": target.describe()})
    recovered = j.recover(campaign.name, run_id)
    j.add_recipients(campaign.name, ((it.key, it.address, encode_row(it.row))
                                     for it in plan.items))
    for it, note in plan.skipped:
        j.record(campaign.name, it.key, run_id, "skipped", reply=note, attempt=False)
    excluded = sum(not note.startswith(EMPTY_REPORT) for _, note in plan.skipped)
    if excluded:
        say(f"{excluded} recipient(s) suppressed or unsubscribed since the audience was "
            "built: skipped")
    if recovered:
        say(f"{recovered} message(s) were in flight when an earlier run stopped; they are marked "
            f"'unknown' and not resent ({arg('resend_unknown')} resends them)")
    return run_id, recovered


async def _open_first(conn: Connection, run: Run, opts: SendOptions) -> None:
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


async def _beat(run: Run) -> None:
    """Renew the run's lease every quarter of it, also while it waits (a slow rate, a full
    daily cap), so that other runs sharing the journal never take a live run for a dead one."""
    every = max((run.journal.lease or STALE_AFTER) / 4, 0.5)
    while True:
        await asyncio.sleep(every)
        try:
            run.journal.heartbeat(run.run_id)
        except JournalError:
            pass                 # the workers meet the same error and stop the run


async def _tick(progress: Progress) -> None:
    while True:
        await asyncio.sleep(0.5)
        progress.refresh()


async def _work(run: Run, conns: list[Connection], plan: Plan, opts: SendOptions,
                progress: Progress | None) -> None:
    if plan.due or (opts.wait and plan.later):
        await _open_first(conns[0], run, opts)
    run.new = iter(plan.todo)      # the limit and the daily cap stop it (failures give back)
    run.todo = plan.todo
    tickers = [asyncio.create_task(_beat(run))]
    if progress is not None:
        tickers.append(asyncio.create_task(_tick(progress)))
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


def _close_run(j: Journal, campaign: Campaign, run: Run, summary: dict[str, Any],
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
def _summarise(run: Run, stop: threading.Event, recovered: int) -> dict[str, Any]:
    s = run.stats
    reason = run.stop_reason or (stop.reason if isinstance(stop, Stop) and stop.reason else
                                 ("interrupted" if stop.is_set() else None))
    s.deferred += len(run.retry_heap)
    if run.retry_heap:
        reason = (reason + "; " if reason else "") + f"{len(run.retry_heap)} deferred mid-retry"
    s.retrying = 0
    s.state = "done" if reason is None else reason.split(":")[0]
    return {"campaign": run.campaign.name, "account": run.target.account, "sent": s.sent,
            "failed": s.failed, "deferred": s.deferred, "skipped": s.skipped,
            "unknown_recovered": recovered, "stopped": reason}


__all__ = ["check", "plan_send", "run_campaign", "run_stage"]
