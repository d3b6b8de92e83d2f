"""Unsubscribe requests coming back: by mail to the ``mailto:`` link (the token in the subject),
or as a CSV export of a web form's hits. Both honour the profile's exclusion policy: an unsubscribe
is global, or for the campaign it came from."""
from __future__ import annotations

import email
import re
from pathlib import Path

import pandas as pd

from ..compose.unsubscribe import TokenError, load_secret, verify_token
from ..config.targets import Mailbox
from ..errors import ConfigError
from ..journal.base import Journal, Lists
from .mailbox import Session

_TOKEN_RE = re.compile(r"\b([A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,})\b")


Result = tuple[str | None, str | None, str]        # address, campaign, what happened


def _record(journal: Lists, address: str, campaign: str | None, policy: str, source: str) -> bool:
    return journal.unsubscribe(address, None if policy == "global" else campaign, source)


def from_hits(hits: pd.DataFrame | str | Path, journal: Lists, *, secret: bytes | None = None,
              policy: str = "global") -> pd.DataFrame:
    """Record the unsubscribes of a web form's hits (a CSV or DataFrame with a ``token`` column).
    Forged or malformed tokens are reported and ignored. Returns one row per hit with ``address``,
    ``campaign`` and ``result``."""
    df = hits if isinstance(hits, pd.DataFrame) else pd.read_csv(hits, dtype=str)
    if "token" not in df.columns:
        raise ConfigError("the hits need a 'token' column (the t= value of each request)")
    key = secret or load_secret()
    rows: list[Result] = []
    for token in df["token"].fillna(""):
        try:
            address, campaign = verify_token(key, token)
        except TokenError as err:
            rows.append((None, None, f"rejected: {err}"))
            continue
        new = _record(journal, address, campaign, policy, "web")
        rows.append((address, campaign, "unsubscribed" if new else "already unsubscribed"))
    return pd.DataFrame(rows, columns=["address", "campaign", "result"])


def process_unsubscribe_mailbox(mailbox: Mailbox, journal: Journal, *, secret: bytes | None = None,
                                policy: str = "global") -> pd.DataFrame:
    """Read unsubscribe requests sent to the ``mailto:`` address (token in the subject), record
    them, and mark each message processed after that."""
    key = secret or load_secret()
    rows: list[Result] = []
    with Session(mailbox) as session:
        for item in session.fetch(seen=journal.bounce_sources()):
            msg = email.message_from_bytes(item.raw)
            text = f"{msg.get('Subject', '')} {msg.get('To', '')}"
            found = _TOKEN_RE.findall(text.replace("unsubscribe:", " "))
            result: Result = (None, None, "no token")
            for token in found:
                try:
                    address, campaign = verify_token(key, token)
                except TokenError as err:
                    result = (None, None, f"rejected: {err}")
                    continue
                new = _record(journal, address, campaign, policy, "mail")
                result = (address, campaign, "unsubscribed" if new else "already unsubscribed")
                break
            journal.record_bounces(item.source_id, [])     # remember the message as processed
            session.mark_processed(item)
            rows.append(result)
    return pd.DataFrame(rows, columns=["address", "campaign", "result"])
