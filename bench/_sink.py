"""A counting aiosmtpd sink for the benchmarks: accepts everything, optionally waits before every
reply (a relay across the internet). usage: _sink.py PORT [DELAY_SECONDS]"""
import asyncio
import signal
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


class Slow(SMTP):
    delay = 0.0

    async def push(self, status):
        if self.delay:
            await asyncio.sleep(self.delay)
        await super().push(status)


class Count:
    n = 0

    async def handle_DATA(self, server, session, envelope):
        Count.n += 1
        return "250 OK"


class Ctl(Controller):
    def factory(self):
        s = Slow(self.handler, **self.SMTP_kwargs)
        s.delay = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
        return s


ctl = Ctl(Count(), hostname="127.0.0.1", port=int(sys.argv[1]))
ctl.start()
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait(3600)
ctl.stop()
