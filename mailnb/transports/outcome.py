"""What one attempt to send a message came to, as a transport reports it."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Delivery:
    """The outcome of one attempt: ``status`` is ``sent``, ``failed`` or ``retry``."""

    status: str
    code: int | None = None
    reply: str = ""
    slow_down: bool = False      # the relay said 421: send slower from now on
    retry_after: float | None = None   # the server said when to try again (HTTP Retry-After)

    @property
    def ok(self) -> bool:
        return self.status == "sent"


@dataclass(frozen=True)
class Envelope:
    """A message a transport may start early (its MAIL, RCPT and DATA pipelined behind the
    message before it)."""

    sender: str
    recipient: str
    data: bytes
    smtputf8: bool = False


#: called by a transport just before a message's end of data is handed to the relay: whether to
#: send it after all, and a next message whose envelope may go out with it
Handover = Callable[[], Awaitable[tuple[bool, "Envelope | None"]]]
