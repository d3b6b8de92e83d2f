"""The fronts of a send: :func:`send` (synchronous: a script, a notebook cell, a papermill run) and
:func:`send_async` (for those with an event loop). Both take the same options
(:class:`~mailnb.config.options.SendOptions`) and run the same stages
(:func:`mailnb.sending.stages.run_campaign`)."""
from __future__ import annotations

import signal
import threading
from dataclasses import replace
from typing import Any

import pandas as pd

from ..config.options import SendOptions, signature_of
from ..config.profile import Profile
from ..config.targets import Target
from ..errors import MailnbError
from ..util.runner import run_sync
from .campaign import Campaign
from .progress import Progress, Stats
from .run import Stop
from .stages import run_campaign


class StoppedError(MailnbError):
    """The run was stopped by a signal (SIGTERM: a cron or papermill time-out) after the messages
    in flight were recorded. ``result`` is the result frame; the next run resumes."""

    def __init__(self, message: str, result: pd.DataFrame) -> None:
        super().__init__(message)
        self.result = result


def resolve(relay: Target | Profile, options: dict[str, Any]) -> tuple[Target, SendOptions]:
    """A profile stands for its transport, and its pacing and journal are the defaults."""
    if isinstance(relay, Profile):
        return relay.transport_target(), SendOptions.resolve(relay, options)
    return relay, SendOptions.from_kwargs(options)


async def send_async(campaign: Campaign, relay: Target | Profile, /,
                     **options: Any) -> pd.DataFrame:
    """The async core of :func:`send`; same parameters, same result."""
    target, opts = resolve(relay, options)
    return await run_campaign(campaign, target, opts)


def send(campaign: Campaign, relay: Target | Profile, /, **options: Any) -> pd.DataFrame:
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
    target, opts = resolve(relay, options)
    stop = opts.stop if isinstance(opts.stop, Stop) else Stop()
    if opts.stop is not None and not isinstance(opts.stop, Stop):
        outer = opts.stop
        def relay_stop() -> None:
            if outer.wait():
                stop.request("stopped by the caller")
        threading.Thread(target=relay_stop, daemon=True).start()
    opts = replace(opts, stop=stop)
    stats = Stats()
    shown = Shown(stats, opts.progress)
    try:
        with on_sigterm(lambda: stop.request("SIGTERM")):
            result = run_sync(run_campaign(campaign, target, replace(opts, progress=None), stats),
                              tick=shown.tick, on_interrupt=lambda: stop.request("interrupted"))
    finally:
        shown.tick(final=True)
    if stop.reason == "SIGTERM":
        raise StoppedError("stopped by SIGTERM after recording the messages in flight; run again "
                           "to continue", result)
    return result


send.__signature__ = signature_of(send)          # type: ignore[attr-defined]
send_async.__signature__ = signature_of(send_async)  # type: ignore[attr-defined]


class Shown:
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


class on_sigterm:
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


__all__ = ["StoppedError", "resolve", "send", "send_async"]
