"""A counting aiosmtpd sink for the benchmarks: accepts everything. With a delay it behaves like a
relay across the internet: each reply that ends a round trip (the client has sent nothing more yet)
waits DELAY seconds, and it offers PIPELINING as Postfix, Exchange and Gmail do, so a pipelined
batch of commands costs one round trip, not one per command. With --every, every reply waits (a
slow server rather than a distant one). With --log FILE, each message's recipient is appended to
FILE as it is taken (before the reply), so a client killed at any point can be checked against it.

usage: _sink.py PORT [DELAY_SECONDS] [--no-pipelining] [--every] [--log FILE]
"""
import asyncio
import os
import signal
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

DELAY = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
PIPELINING = "--no-pipelining" not in sys.argv
EVERY = "--every" in sys.argv
LOG = sys.argv[sys.argv.index("--log") + 1] if "--log" in sys.argv else None


class Slow(SMTP):
    async def push(self, status):
        reader = getattr(self, "_reader", None)
        pending = bool(reader is not None and getattr(reader, "_buffer", b""))
        more = status[3:4] == "-"     # a line of a multi-line reply (EHLO): the rest follows at once
        if DELAY and not more and (EVERY or not pending):
            await asyncio.sleep(DELAY)
        await super().push(status)


class Count:
    n = 0
    log = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600) if LOG else None

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if PIPELINING:
            return responses[:-1] + ["250-PIPELINING", responses[-1]]
        return responses

    async def handle_DATA(self, server, session, envelope):
        Count.n += 1
        if Count.log is not None:
            os.write(Count.log, "".join(f"{r}\n" for r in envelope.rcpt_tos).encode())
        return "250 OK"


class Ctl(Controller):
    def factory(self):
        return Slow(self.handler, **self.SMTP_kwargs)


ctl = Ctl(Count(), hostname="127.0.0.1", port=int(sys.argv[1]))
ctl.start()
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait(3600)
ctl.stop()
