""""Send me a test first": the first messages exactly as they will go out, to one address only,
marked ``[TEST]``, and nothing journaled; and one short message that proves a relay works."""
from __future__ import annotations

import pandas as pd

from ..audience.recipients import normalize
from ..compose.messages import build_message
from ..compose.templates import DEFAULT_MAX_SIZE, Template
from ..config.profile import Profile
from ..config.targets import Target
from ..errors import ConfigError
from ..transports.base import connect, password_for
from ..transports.outcome import Delivery
from ..util.runner import run_sync
from .campaign import Campaign
from .front import resolve
from .message import build
from .preflight import preflight


async def send_test_async(campaign: Campaign, relay: Target, to: str, *,
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
    conn = connect(relay, password_for(relay))
    out = []
    try:
        for it in items:
            data, mid, rendered = build(campaign, it, subject_prefix="[TEST] ")
            d = await conn.send(campaign.envelope_from(mid), target.address, data,
                                smtputf8=target.smtputf8 or it.smtputf8)
            assert d is not None            # None only comes of a handover, and there is none
            out.append((it.row, it.address, target.address, rendered.subject, d.status, d.reply))
    finally:
        await conn.close()
    return pd.DataFrame(out, columns=["row", "recipient", "sent_to", "subject", "status",
                                      "reply"]).set_index("row")


def send_test(campaign: Campaign, relay: Target | Profile, to: str, *,
              rows: int = 1) -> pd.DataFrame:
    """Send the first ``rows`` messages of the campaign to ``to`` (your own address), marked as a
    test; see :func:`send_test_async`."""
    target = resolve(relay, {})[0]
    return run_sync(send_test_async(campaign, target, to, rows=rows))


async def send_test_message_async(relay: Target, to: str, *, from_addr: str,
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
    conn = connect(relay, password_for(relay))
    try:
        d = await conn.send(sender.address, to_addr.address, data, smtputf8=to_addr.smtputf8)
        assert d is not None                # None only comes of a handover, and there is none
        return d
    finally:
        await conn.close()


def send_test_message(relay: Target, to: str, *, from_addr: str,
                      from_name: str | None = None) -> Delivery:
    """Send one short test message to ``to`` and return its Delivery (status, code, reply)."""
    return run_sync(send_test_message_async(relay, to, from_addr=from_addr, from_name=from_name))
