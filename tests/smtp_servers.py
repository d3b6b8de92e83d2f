"""Real SMTP servers on 127.0.0.1 for the tests (aiosmtpd in a thread), with faults switched on by
recipient address, plus a raw socket server for faults aiosmtpd cannot make (421 at connect)."""
from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    auth_user: str | None
    tls: bool
    at: float
    helo: str | None = None


class Recorder:
    """Keeps every accepted message. Faults, by the recipient's local part:

    - ``unknown*``: 550 5.1.1 at RCPT
    - ``grey*``: 451 4.7.1 at RCPT the first ``grey_times`` times for that address, then accepted
    - ``busy*``: 421 4.3.2 at RCPT (the server closes the connection)
    - ``big*``: 552 5.3.4 at DATA
    - ``drop*``: the connection is dropped mid-DATA the first time, then accepted
    - ``slow*``: DATA answered after ``slow_seconds`` (past the client's timeout)
    - ``tempdata*``: 451 at DATA, always
    - ``stallrcpt*``: RCPT answered after ``slow_seconds`` the first time (the content never comes)
    - ``hold*``: the message is kept at once, its DATA answered after ``slow_seconds`` the first time
    - ``sticky*``: 552 at DATA, and the transaction stays open until RSET (a server that wants RSET
      after a refused message: the next MAIL is a 503 "nested MAIL", its RCPT and DATA join the
      open transaction)
    """

    def __init__(self, grey_times: int = 1, slow_seconds: float = 3.0, delay: float = 0.0, *,
                 pipelining: bool = False) -> None:
        self.pipelining = pipelining      # offer PIPELINING (aiosmtpd takes pipelined commands)
        self.messages: list[Received] = []
        self.lock = threading.Lock()
        self.tries: Counter[str] = Counter()
        self.grey_times = grey_times
        self.slow_seconds = slow_seconds
        self.delay = delay
        self.connections = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        with self.lock:
            self.connections += 1       # sessions that said EHLO (not a bare connect)
        if self.pipelining:
            return responses[:-1] + ["250-PIPELINING", responses[-1]]
        return responses

    @staticmethod
    def local(address: str) -> str:
        return address.split("@", 1)[0].lower()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = self.local(address)
        with self.lock:
            self.tries[address] += 1
            n = self.tries[address]
        if local.startswith("unknown"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if local.startswith("grey") and n <= self.grey_times:
            return "451 4.7.1 Greylisted, try again later"
        if local.startswith("busy"):
            server.transport.close()
            return "421 4.3.2 Too busy, closing connection"
        if local.startswith("stallrcpt") and n == 1:
            await asyncio.sleep(self.slow_seconds)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        rcpt = envelope.rcpt_tos[0]
        local = self.local(rcpt)
        if self.delay:
            await asyncio.sleep(self.delay)
        if local.startswith(("big", "sticky")):
            return "552 5.3.4 Message size exceeds fixed limit"
        if local.startswith("tempdata"):
            return "451 4.3.0 Temporary local problem"
        if local.startswith("drop"):
            with self.lock:
                self.tries["DATA " + rcpt] += 1
                first = self.tries["DATA " + rcpt] == 1
            if first:
                server.transport.abort()
                return "250 never seen"
        if local.startswith("slow"):
            await asyncio.sleep(self.slow_seconds)
        auth = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) \
            else None
        tls = server.transport.get_extra_info("ssl_object") is not None
        with self.lock:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          envelope.original_content, auth, tls, time.time(),
                                          session.host_name))
            self.tries["DATA " + rcpt] += 1
            first = self.tries["DATA " + rcpt] == 1
        if local.startswith("hold") and first:
            await asyncio.sleep(self.slow_seconds)
        return "250 2.0.0 Ok: queued"

    def addresses(self) -> Counter[str]:
        with self.lock:
            return Counter(r for m in self.messages for r in m.rcpt_tos)


def authenticator(users: dict[str, str]):
    def check(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = users.get(auth_data.login.decode()) == auth_data.password.decode()
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)
    return check


class _StickySMTP(SMTP):
    def _set_post_data_state(self) -> None:
        rcpts = self.envelope.rcpt_tos if self.envelope is not None else []
        if rcpts and Recorder.local(rcpts[0]).startswith("sticky"):
            return              # the refused transaction stays open: MAIL gets "503 nested MAIL"
        super()._set_post_data_state()

    def _set_rset_state(self) -> None:
        self.envelope = self._create_envelope()


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _StickySMTP(self.handler, **self.SMTP_kwargs)


@dataclass
class Server:
    host: str
    port: int
    recorder: Recorder
    controller: Controller | None = None
    extra: dict = field(default_factory=dict)

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()


def start_smtp(mode: str = "plain", *, auth: dict[str, str] | None = None,
               certs: tuple[str, str] | None = None, recorder: Recorder | None = None) -> Server:
    """mode: plain, starttls (required) or tls (implicit). ``auth``: users that may log in."""
    recorder = recorder or Recorder()
    port = free_port()
    kwargs: dict = {"hostname": "127.0.0.1", "port": port, "server_hostname": "localhost",
                    "data_size_limit": 50 * 1024 * 1024}
    tls_ctx = None
    if mode != "plain":
        assert certs is not None
        tls_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_ctx.load_cert_chain(*certs)
    if mode == "starttls":
        kwargs.update(tls_context=tls_ctx, require_starttls=True)
    elif mode == "tls":
        kwargs.update(ssl_context=tls_ctx)
    if auth:
        # aiosmtpd does not see implicit TLS as encrypted (aio-libs/aiosmtpd#281): the whole
        # connection is TLS there, so the check is off on that listener only
        kwargs.update(authenticator=authenticator(auth), auth_required=True,
                      auth_require_tls=(mode == "starttls"))
    controller = _Controller(recorder, **kwargs)
    controller.start()
    return Server("127.0.0.1", port, recorder, controller)


class RawServer:
    """A socket server that answers every connection with ``greeting`` and closes, ``times`` times
    (then hands the connection to ``then`` if given, by proxying), for faults at connect."""

    def __init__(self, greeting: bytes = b"421 4.3.2 Service not available, closing\r\n", *,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.greeting = greeting
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.host = host
        self.connections = 0
        self.running = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        deadline = time.time() + 120          # bounded: never outlives a test by much
        while self.running and time.time() < deadline:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            try:
                conn.sendall(self.greeting)
            finally:
                conn.close()

    def stop(self) -> None:
        self.running = False
        self.thread.join(2)
        self.sock.close()
