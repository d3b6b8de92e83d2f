"""One-click unsubscribe (RFC 2369, RFC 8058) and turning unsubscribe requests back into a list.

Every non-transactional message carries ``List-Unsubscribe`` (a ``mailto:`` address and/or an https
URL) and, with an https URL, ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``. Each link holds a
token: the address and campaign, signed with HMAC-SHA256 under a secret only the sender has, so a
token cannot be forged or guessed for another address. ``{{ unsubscribe_url }}`` is available in
templates.

``process_unsubscribe_mailbox`` reads the requests that arrive by mail (the ``mailto:`` link puts
the token in the subject); ``from_hits`` reads a CSV export of a web form's hits. Both honour the
profile's exclusion policy: an unsubscribe is global, or for the campaign it came from.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import ConfigError, MailnbError
from .files import private_dir
from .mailbox import Session
from .settings import config_dir

SECRET_ENV = "MAILNB_UNSUBSCRIBE_SECRET"
_TOKEN_RE = re.compile(r"\b([A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,})\b")


class TokenError(MailnbError, ValueError):
    """An unsubscribe token is malformed or its signature does not match."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_secret(folder: str | Path | None = None) -> bytes:
    """The signing secret: ``$MAILNB_UNSUBSCRIBE_SECRET``, else ``unsubscribe.key`` in the config
    folder (created with 32 random bytes, mode 0600, on first use). Keep it: tokens signed with a
    lost secret can no longer be checked."""
    if os.environ.get(SECRET_ENV):
        return os.environ[SECRET_ENV].encode()
    path = Path(folder or config_dir()) / "unsubscribe.key"
    if not path.exists():
        private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return path.read_text().strip().encode()


def make_token(secret: bytes, address: str, campaign: str) -> str:
    """``payload.signature``: the payload names the address and campaign, the signature is
    HMAC-SHA256 over it (128 bits kept)."""
    payload = _b64(f"{address.casefold()}\n{campaign}".encode())
    sig = hmac.new(secret, payload.encode(), hashlib.sha256).digest()[:16]
    return f"{payload}.{_b64(sig)}"


def verify_token(secret: bytes, token: str) -> tuple[str, str]:
    """``(address, campaign)`` of a genuine token; TokenError for anything else."""
    try:
        payload, sig = token.strip().split(".")
        want = hmac.new(secret, payload.encode(), hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(_unb64(sig), want):
            raise TokenError("the unsubscribe token's signature does not match")
        address, campaign = _unb64(payload).decode("utf-8").split("\n", 1)
    except TokenError:
        raise
    except Exception:
        raise TokenError(f"{token[:40]!r} is not an unsubscribe token") from None
    return address, campaign


@dataclass(frozen=True)
class Unsubscribe:
    """How recipients unsubscribe: a ``mailto`` address and/or an https ``url`` with ``{token}``
    (e.g. ``https://example.org/unsubscribe?t={token}``)."""

    mailto: str | None = None
    url: str | None = None
    secret: bytes | None = None

    def __post_init__(self) -> None:
        if not self.mailto and not self.url:
            raise ConfigError("an unsubscribe needs a mailto address or an https URL")
        if self.url and (not self.url.startswith("https://") or "{token}" not in self.url):
            raise ConfigError(f"the unsubscribe URL {self.url!r} must be https:// and contain "
                              "{token}, e.g. https://example.org/unsubscribe?t={token}")
        if self.mailto and ("@" not in self.mailto or any(c in self.mailto for c in "<>, ")):
            raise ConfigError(f"the unsubscribe address {self.mailto!r} is not an address")

    def key(self) -> bytes:
        return self.secret or load_secret()

    def links(self, address: str, campaign: str,
              secret: bytes | None = None) -> tuple[str, dict[str, str]]:
        """(the URL for ``{{ unsubscribe_url }}``, the headers) for one recipient."""
        token = make_token(secret or self.key(), address, campaign)
        uris, url = [], None
        if self.mailto:
            # the token is base64url plus a dot: nothing in it needs quoting but the colon
            mailto = f"mailto:{self.mailto}?subject=unsubscribe%3A{token}"
            uris.append(f"<{mailto}>")
            url = mailto
        if self.url:
            url = self.url.replace("{token}", token)
            uris.append(f"<{url}>")
        headers = {"List-Unsubscribe": ", ".join(uris)}
        if self.url:
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        return url or "", headers


def _record(journal: Any, address: str, campaign: str | None, policy: str, source: str) -> bool:
    return journal.unsubscribe(address, None if policy == "global" else campaign, source)


def from_hits(hits: pd.DataFrame | str | Path, journal: Any, *, secret: bytes | None = None,
              policy: str = "global") -> pd.DataFrame:
    """Record the unsubscribes of a web form's hits (a CSV or DataFrame with a ``token`` column).
    Forged or malformed tokens are reported and ignored. Returns one row per hit with ``address``,
    ``campaign`` and ``result``."""
    df = hits if isinstance(hits, pd.DataFrame) else pd.read_csv(hits, dtype=str)
    if "token" not in df.columns:
        raise ConfigError("the hits need a 'token' column (the t= value of each request)")
    key = secret or load_secret()
    rows = []
    for token in df["token"].fillna(""):
        try:
            address, campaign = verify_token(key, token)
        except TokenError as err:
            rows.append((None, None, f"rejected: {err}"))
            continue
        new = _record(journal, address, campaign, policy, "web")
        rows.append((address, campaign, "unsubscribed" if new else "already unsubscribed"))
    return pd.DataFrame(rows, columns=["address", "campaign", "result"])


def process_unsubscribe_mailbox(mailbox: Any, journal: Any, *, secret: bytes | None = None,
                                policy: str = "global") -> pd.DataFrame:
    """Read unsubscribe requests sent to the ``mailto:`` address (token in the subject), record
    them, and mark each message processed after that."""
    key = secret or load_secret()
    rows = []
    with Session(mailbox) as session:
        for item in session.fetch(seen=journal.bounce_sources()):
            import email
            msg = email.message_from_bytes(item.raw)
            text = f"{msg.get('Subject', '')} {msg.get('To', '')}"
            found = _TOKEN_RE.findall(text.replace("unsubscribe:", " "))
            result = (None, None, "no token")
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
