"""The SMTP transport: aiosmtplib connects, negotiates TLS and logs in; then one reused connection
a worker pipelines its commands (RFC 2920) and sends BDAT chunks where offered (RFC 3030).

Every failure is sorted here into what the sender does with it: ``sent``, ``failed`` (permanent,
5xx), ``retry`` (temporary: 4xx, a dropped connection, a timeout) or a :class:`RelayError` that stops
the whole run (authentication or TLS failure, the relay refusing the sender). Errors from aiosmtplib
are wrapped where they enter, with host and port and never a password.
"""
from __future__ import annotations

import asyncio
import re
from typing import Any

from ..config.secrets import Secret
from ..config.targets import Relay
from ..errors import AuthenticationError, RelayError, TLSError, arg
from ..inbound.mailbox import pop_login
from .base import Transport, register
from .outcome import Delivery, Envelope, Handover
from .smtp_login import SMTPLogin


class _Replies(asyncio.Protocol):
    """The hot path of an SMTP session after aiosmtplib has connected, negotiated TLS and logged
    in: it takes over the transport, so commands can be pipelined (RFC 2920) and several replies
    read from one packet, which aiosmtplib's protocol does not do."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.buffer = bytearray()
        self.replies: list[tuple[int, str]] = []
        self.waiter: asyncio.Future[None] | None = None
        self.lost: BaseException | None = None
        self.can_write = asyncio.Event()
        self.can_write.set()
        transport.set_protocol(self)

    def data_received(self, data: bytes) -> None:
        self.buffer.extend(data)
        while True:
            end = self.buffer.find(b"\n")
            if end < 0:
                break
            # a reply is complete at a line "ddd text" (not "ddd-text")
            start, complete = 0, None
            while True:
                nl = self.buffer.find(b"\n", start)
                if nl < 0:
                    break
                line = self.buffer[start:nl]
                if len(line) >= 4 and line[3:4] == b" " or len(line.rstrip(b"\r")) == 3:
                    complete = nl + 1
                    break
                start = nl + 1
            if complete is None:
                break
            block = bytes(self.buffer[:complete]).decode("utf-8", "replace")
            del self.buffer[:complete]
            lines = [ln.rstrip("\r") for ln in block.split("\n") if ln.strip()]
            try:
                code = int(lines[-1][:3])
            except (ValueError, IndexError):
                code = 500
            self.replies.append((code, "\n".join(ln[4:] for ln in lines)))
        if self.replies and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or ConnectionResetError("the server closed the connection")
        self.can_write.set()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    async def write(self, data: bytes) -> None:
        if self.lost is not None or self.transport.is_closing():
            raise ConnectionResetError("connection lost")
        self.transport.write(data)
        if not self.can_write.is_set():
            await self.can_write.wait()

    async def read(self, timeout: float) -> tuple[int, str]:
        if not self.replies:
            async with asyncio.timeout(timeout):
                while not self.replies:
                    if self.lost is not None:
                        raise ConnectionResetError(f"connection lost: {self.lost}")
                    self.waiter = asyncio.get_running_loop().create_future()
                    await self.waiter
        return self.replies.pop(0)

    def close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


_DOT = re.compile(rb"(?m)^\.")
#: the replies that let a transaction go on (RFC 5321 4.3.2)
_ACCEPTED = {"MAIL": (250,), "RCPT": (250, 251), "DATA": (354,)}
_ENVELOPE = ("MAIL", "RCPT", "DATA")


def _commands(sender: str, recipient: str, params: str) -> dict[str, bytes]:
    """A message's envelope commands by step (RFC 5321 4.1.1)."""
    return {"MAIL": f"MAIL FROM:<{sender}>{params}\r\n".encode(),
            "RCPT": f"RCPT TO:<{recipient}>\r\n".encode(), "DATA": b"DATA\r\n"}


class SMTPConnection(SMTPLogin):
    """One SMTP session, opened on demand and reopened after a drop."""

    def __init__(self, relay: Relay, password: Secret | None) -> None:
        self.relay = relay
        self.password = password
        self.smtp: _Replies | None = None
        self.extensions: set[str] = set()
        self.steps: list[tuple[str, bool, str]] = []
        self.secrets: list[Secret] = []        # access tokens: scrubbed from every message
        self.ready: tuple[str, str] | None = None  # a message the relay waits for (354 given)
        # a pipelined envelope's refusal, for its send: (sender, recipient), step, code, text
        self.refused: tuple[tuple[str, str], str, int, str] | None = None
        self.awaiting: tuple[str, str] | None = None   # a pipelined envelope, its replies unread

    def take_over(self, transport: Any) -> None:
        self.smtp = _Replies(transport)

    @property
    def is_open(self) -> bool:
        return self.smtp is not None and self.smtp.lost is None and \
            not self.smtp.transport.is_closing()

    async def close(self) -> None:
        pipe, self.smtp = self.smtp, None
        mid = self.ready or self.awaiting
        self.ready = self.refused = self.awaiting = None
        if pipe is None:
            return
        try:
            if pipe.lost is None and mid is None:     # mid-DATA a QUIT would be content
                await pipe.write(b"QUIT\r\n")
                await pipe.read(min(self.relay.timeout, 5))
        except Exception:
            pass
        finally:
            pipe.close()

    def _drop(self) -> None:
        if self.smtp is not None:
            self.smtp.close()
        self.smtp = None
        self.ready = self.refused = self.awaiting = None

    @property
    def pipelines(self) -> bool:
        """Whether the next message's envelope can go out with this one's end of data."""
        return self.is_open and "pipelining" in self.extensions

    @property
    def steps_before_content(self) -> tuple[str, ...]:
        """The commands before a message's content: with CHUNKING (RFC 3030) the content goes
        as ``BDAT <size> LAST`` with no DATA and no 354 to wait for, else MAIL, RCPT, DATA."""
        return _ENVELOPE[:2] if "chunking" in self.extensions else _ENVELOPE

    async def send(self, sender: str, recipient: str, data: bytes, *, smtputf8: bool = False,
                   handover: Handover | None = None) -> Delivery | None:
        """Send one message to one recipient. Opens the connection if needed. Raises RelayError
        only for what must stop the run; everything else is a Delivery, or None when
        ``handover`` said not to send it after all.

        With PIPELINING (RFC 2920) MAIL, RCPT and DATA go in one write, and once the relay has
        taken a connection's first message, the next one's MAIL, RCPT and DATA go in the same
        write as this one's end of data (RFC 2920 3.1 lets message content open a group): one
        round trip a message. A relay that offers CHUNKING gets the content as one ``BDAT n
        LAST`` chunk (RFC 3030): exact bytes, no dot-stuffing, and no DATA round trip."""
        if self.awaiting is not None:
            await self._pipelined()
        refused, self.refused = self.refused, None
        if refused is not None and refused[0] == (sender, recipient):
            assert self.smtp is not None          # a refusal was read on this connection
            return await self._refused(self.smtp, refused[1], refused[2], refused[3], sender)
        if self.ready != (sender, recipient):
            started = await self._start(sender, recipient, data, smtputf8)
            if started is not None:
                return started
        self.ready = None
        pipe = self.smtp
        assert pipe is not None
        go, then = await handover() if handover is not None else (True, None)
        if not go:
            self._drop()             # mid-DATA: only closing the connection abandons it
            return None
        group = self._then(then) if then is not None and self.pipelines else b""
        try:
            await pipe.write(self._content(data) + group)
            code, text = await pipe.read(self.relay.timeout)
        except (TimeoutError, OSError, ConnectionError) as err:
            return self._lost(err)
        if group and self.is_open:        # their replies are read by the next send
            self.awaiting = (then.sender, then.recipient)   # type: ignore[union-attr]
        elif code not in (250, 421) and self.is_open:
            await self._reset(pipe)      # as smtplib does: some relays want it after a refusal
        return self._reply(code, text) if code != 250 else \
            Delivery("sent", code, f"{code} {text}")

    def _content(self, data: bytes) -> bytes:
        """The message as it goes on the wire after the envelope: one last BDAT chunk of the
        exact bytes, or the dot-stuffed (RFC 5321 4.5.2) data and the ending dot."""
        body = data if data.endswith(b"\r\n") else data + b"\r\n"
        if "chunking" in self.extensions:
            return b"BDAT %d LAST\r\n" % len(body) + body
        if body.startswith(b".") or b"\n." in body:     # skipped when no line starts with a dot
            body = _DOT.sub(b"..", body)
        return body + b".\r\n"

    async def _start(self, sender: str, recipient: str, data: bytes,
                     smtputf8: bool) -> Delivery | None:
        """MAIL, RCPT and DATA, on a connection opened if need be; None once the relay waits for
        the content (354), else what became of the message."""
        if self.ready is not None or not self.is_open:
            self._drop()            # a transaction begun for another message is abandoned
            try:
                await self.open()
            except (AuthenticationError, TLSError):
                raise
            except RelayError as err:
                return Delivery("retry", err.code, str(err), slow_down=err.code == 421)
        pipe = self.smtp
        assert pipe is not None
        params = self._params(sender, recipient, data, smtputf8)
        if isinstance(params, Delivery):
            return params
        try:
            replies = await self._envelope(pipe, _commands(sender, recipient, params),
                                           self.relay.timeout)
        except (TimeoutError, OSError, ConnectionError) as err:
            return self._lost(err)
        for step, (code, text) in zip(self.steps_before_content, replies):
            if code not in _ACCEPTED[step]:
                return await self._refused(pipe, step, code, text, sender)
        return None

    def _then(self, then: Envelope) -> bytes:
        """The next message's MAIL, RCPT and DATA, to go with this one's end of data; nothing
        when it cannot be sent at all (its own send says why)."""
        params = self._params(then.sender, then.recipient, then.data, then.smtputf8)
        if isinstance(params, Delivery):
            return b""
        commands = _commands(then.sender, then.recipient, params)
        return b"".join(commands[step] for step in self.steps_before_content)

    async def _pipelined(self) -> None:
        """Read the replies to the envelope that went out with the last end of data: that
        message is ready (354, or with CHUNKING MAIL and RCPT taken), or refused (its send
        handles the refusal), or the connection is dropped (its send opens a new one). Read only
        now, so the last message's outcome was recorded without waiting for them.

        A 503 to that MAIL is the relay still counting the last transaction as open (some want
        a RSET after a refused message): its RCPT and DATA may have joined that transaction, so
        only a new connection is clean. It is not a refusal of this message."""
        then, self.awaiting = self.awaiting, None
        pipe = self.smtp
        steps = self.steps_before_content
        assert pipe is not None and then is not None
        try:
            replies = [await pipe.read(self.relay.timeout) for _ in steps]
        except (TimeoutError, OSError, ConnectionError):
            replies = []
        if not replies or replies[0][0] == 503:
            self._drop()
            return
        for step, (code, text) in zip(steps, replies):
            if code not in _ACCEPTED[step]:
                self.refused = (then, step, code, text)
                return
        self.ready = then

    def _lost(self, err: BaseException) -> Delivery:
        self._drop()
        what = "no reply in time" if isinstance(err, asyncio.TimeoutError) else str(err)
        return Delivery("retry", None, f"connection to {self.where} lost: {what}")

    def _params(self, sender: str, recipient: str, data: bytes,
                smtputf8: bool) -> str | Delivery:
        """The MAIL FROM parameters, or a failed Delivery for what cannot be sent at all."""
        for addr in (sender, recipient):
            if any(c in addr for c in "<>\r\n\x00") or " " in addr:
                return Delivery("failed", None, f"refusing to send to or from {addr!r}")
        params = ""
        if smtputf8:
            if "smtputf8" not in self.extensions:
                return Delivery("failed", None, f"{recipient} needs SMTPUTF8, which {self.where} "
                                "does not offer")
            params = " SMTPUTF8"
        if not data.isascii() and "8bitmime" in self.extensions:
            params += " BODY=8BITMIME"
        return params

    async def _envelope(self, pipe: _Replies, commands: dict[str, bytes],
                        timeout: float) -> list[tuple[int, str]]:
        """MAIL, RCPT and DATA (no DATA with CHUNKING): in one write with PIPELINING (two round
        trips a message instead of four), else one by one, stopping at the first refusal."""
        steps = self.steps_before_content
        if "pipelining" in self.extensions:
            await pipe.write(b"".join(commands[step] for step in steps))
            return [await pipe.read(timeout) for _ in steps]
        replies: list[tuple[int, str]] = []
        for step in steps:
            await pipe.write(commands[step])
            replies.append(await pipe.read(timeout))
            if replies[-1][0] not in _ACCEPTED[step]:
                break
        return replies

    async def _refused(self, pipe: _Replies, step: str, code: int, text: str,
                       sender: str) -> Delivery:
        """A command of the envelope was refused: reset the transaction; a refused sender stops
        the run (every message would be refused alike)."""
        if code != 421:
            await self._reset(pipe)
        if step == "MAIL" and (code == 530 or "authentication required" in text.lower()):
            self._drop()            # RFC 4954 6: the relay wants a login first
            raise AuthenticationError(
                f"{self.where} wants a login before it takes mail ({code} {text}): give the "
                f"username ({arg('username', 'you@example.org')}) and the "
                "password in $MAILNB_SMTP_PASSWORD or the keyring", host=self.relay.host,
                port=self.relay.port, code=code)
        if step == "MAIL" and code >= 500 and code not in (552, 554):
            self._drop()
            raise RelayError(f"{self.where} refuses the sender {sender}: {code} {text}. "
                             f"Use a sender (From or bounce address) the relay accepts for this "
                             f"account.", host=self.relay.host, port=self.relay.port, code=code)
        return self._reply(code, text)

    async def _reset(self, pipe: _Replies) -> None:
        """RSET: the relay forgets a refused transaction; a relay that does not answer is
        dropped (the next send opens a new connection)."""
        try:
            await pipe.write(b"RSET\r\n")
            await pipe.read(self.relay.timeout)
        except (TimeoutError, OSError, ConnectionError):
            self._drop()

    def _reply(self, code: int, message: str) -> Delivery:
        if code in (421, 221):
            self._drop()             # 421 means the server is closing the connection
            return Delivery("retry", code, f"{code} {message}", slow_down=True)
        if 400 <= code < 500:
            return Delivery("retry", code, f"{code} {message}")
        return Delivery("failed", code, f"{code} {message}")


async def _pop_before_smtp(relay: Relay) -> None:
    """Older relays that want a POP3 login first (``pop_before_smtp``)."""
    if relay.pop_before_smtp is not None:
        await asyncio.to_thread(pop_login, relay.pop_before_smtp)


register(Transport("smtp", Relay, connect=SMTPConnection, password=Relay.resolve_password,
                   before_send=_pop_before_smtp))
