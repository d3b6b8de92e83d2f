"""A capture SMTP server on loopback: every message it accepts becomes an ``.eml`` file in a folder.

The embedded default relay for trying mailnb out (``mailnb sink``, ``make demo``): nothing leaves the
machine. Built on aiosmtpd, the maintained asyncio SMTP server.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from .transports.pickup import safe_name, unique_path, write_atomic
from .util.files import private_dir


class _Capture:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        header = (f"X-Mailnb-Sink-From: {envelope.mail_from}\r\n"
                  f"X-Mailnb-Sink-To: {', '.join(envelope.rcpt_tos)}\r\n").encode()
        with self.lock:
            self.count += 1
            n = self.count
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{n:06d}-{safe_name(envelope.rcpt_tos[0])}.eml"
        write_atomic(unique_path(self.folder / name), header + envelope.original_content)
        return "250 2.0.0 captured"


class Sink:
    """``with Sink("captured/") as sink: ... sink.port``: a capture server on 127.0.0.1."""

    def __init__(self, folder: str | Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.folder = Path(folder)
        self.host = host
        self.port = port
        self.handler = _Capture(self.folder)
        self.controller: Controller | None = None

    @property
    def count(self) -> int:
        return self.handler.count

    def start(self) -> Sink:
        private_dir(self.folder)
        if not self.port:
            import socket
            with socket.socket() as s:
                s.bind((self.host, 0))
                self.port = s.getsockname()[1]
        self.controller = Controller(self.handler, hostname=self.host, port=self.port,
                                     server_hostname="localhost", enable_SMTPUTF8=True)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
