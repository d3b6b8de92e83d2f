"""One-click unsubscribe links (RFC 2369, RFC 8058): the tokens and the headers.

Every non-transactional message carries ``List-Unsubscribe`` (a ``mailto:`` address and/or an https
URL) and, with an https URL, ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``. Each link holds a
token: the address and campaign, signed with HMAC-SHA256 under a secret only the sender has, so a
token cannot be forged or guessed for another address. ``{{ unsubscribe_url }}`` is available in
templates.

The requests that come back (by mail, or a web form's hits) are read by
:mod:`mailnb.inbound.unsubscribes`.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from ..config.profile import config_dir
from ..errors import ConfigError, MailnbError
from ..util.files import private_dir

SECRET_ENV = "MAILNB_UNSUBSCRIBE_SECRET"


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
