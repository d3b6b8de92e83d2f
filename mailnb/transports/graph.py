"""Microsoft Graph's sendMail as a transport: the EWS successor for Microsoft 365.

Each message is the same MIME mailnb sends over SMTP, posted base64-encoded with ``Content-Type:
text/plain`` to ``/users/{id}/sendMail`` with an OAuth2 token (Mail.Send), as Microsoft documents
(https://learn.microsoft.com/graph/api/user-sendmail#example-4-send-a-new-message-using-mime-format).
Throttling (429, 503, 504) is retried after ``Retry-After`` and slows the pace
(https://learn.microsoft.com/graph/throttling); a 401 refreshes the token once.
"""
from __future__ import annotations

import asyncio
import base64
from typing import Any
from urllib.parse import quote

from ..config.oauth import access_token
from ..config.secrets import Secret
from ..config.targets import Graph
from ..errors import AuthenticationError, RelayError
from .base import Transport, register
from .outcome import Delivery, Handover

#: what Graph's answers mean for a message (https://learn.microsoft.com/graph/errors)
RETRY = {429, 500, 502, 503, 504}


class GraphConnection:
    """One HTTP session to Microsoft Graph (requests, in a thread)."""

    pipelines = False

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.session: Any = None
        self.token: Secret | None = None
        self.steps: list[tuple[str, bool, str]] = []

    @property
    def where(self) -> str:
        return self.graph.url

    async def open(self) -> None:
        import requests  # loaded only by those who send through Graph
        if self.session is None:
            self.session = requests.Session()
        self.token = await asyncio.to_thread(access_token, self.graph.oauth)
        self.steps.append(("sign-in", True, f"token for {self.graph.user}"))

    async def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def _post(self, data: bytes) -> Any:
        assert self.token is not None
        url = f"{self.graph.url.rstrip('/')}/users/{quote(self.graph.user, safe='@')}/sendMail"
        return self.session.post(url, data=base64.b64encode(data), timeout=self.graph.timeout,
                                 headers={"Authorization": f"Bearer {self.token.reveal()}",
                                          "Content-Type": "text/plain"})

    async def send(self, sender: str, recipient: str, data: bytes, *, smtputf8: bool = False,
                   handover: Handover | None = None) -> Delivery | None:
        """Post one message. The recipient is the message's To header (Graph reads the MIME)."""
        if self.session is None or self.token is None:
            await self.open()
        if handover is not None and not (await handover())[0]:
            return None
        for attempt in (1, 2):
            try:
                resp = await asyncio.to_thread(self._post, data)
            except OSError as err:
                return Delivery("retry", None, f"Graph at {self.where}: {err}")
            except Exception as err:          # requests' own errors (timeouts, connection)
                return Delivery("retry", None, f"Graph at {self.where}: {type(err).__name__}")
            if resp.status_code != 401 or attempt == 2:
                break
            self.token = await asyncio.to_thread(access_token, self.graph.oauth, True)
        return self._outcome(resp)

    def _outcome(self, resp: Any) -> Delivery:
        code = resp.status_code
        if code == 202:
            return Delivery("sent", code, "202 Accepted by Microsoft Graph")
        text = _error_text(resp)
        if code in RETRY:
            wait = _retry_after(resp.headers.get("Retry-After"))
            return Delivery("retry", code, f"{code} {text}" + (f" (Retry-After {wait:g}s)"
                                                               if wait else ""),
                            slow_down=code in (429, 503), retry_after=wait)
        if code in (401, 403):
            raise AuthenticationError(
                f"Microsoft Graph refused to send as {self.graph.user}: {code} {text}. The app "
                "registration needs the delegated Mail.Send permission (with admin consent), "
                "and the account must be allowed to send from that mailbox.",
                host=self.graph.host, code=code)
        if code == 404:
            raise RelayError(f"Microsoft Graph has no mailbox {self.graph.user}: {code} {text}",
                             host=self.graph.host, code=code)
        return Delivery("failed", code, f"{code} {text}")


def _error_text(resp: Any) -> str:
    try:
        error = resp.json().get("error", {})
        return f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
    except ValueError:
        return (resp.text or "").strip()[:200]


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (Graph sends a number of seconds)."""
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None


register(Transport("graph", Graph, connect=lambda graph, password: GraphConnection(graph),
                   envelope_sender=False, title="Microsoft Graph"))
