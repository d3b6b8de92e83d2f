"""Direct delivery: each recipient's domain's mail exchangers, without a relay.

The MX records in preference order (RFC 5321 5.1), the domain's own address records when it has no
MX (the implicit MX), and nothing at all for a null MX (RFC 7505: the domain accepts no mail, so the
message fails at once). One reused connection per destination host, STARTTLS when the host offers
it (opportunistic, RFC 7435), the next MX when a host cannot be reached or answers 421, and at most
``per_destination`` connections to one domain at a time. Look-ups go to ``$MAILNB_DNS_SERVER`` when
it is set (as ``check-sender``'s do); ``$MAILNB_DIRECT_PORT`` replaces port 25 for tests.
"""
from __future__ import annotations

import asyncio
import os
import weakref
from typing import Any

from ..config.targets import Direct, Relay
from .base import Transport, register
from .dnscheck import resolver
from .outcome import Delivery, Handover
from .smtp import SMTPConnection

PORT_ENV = "MAILNB_DIRECT_PORT"
#: per event loop (a run), per destination domain: the connections allowed at once
_LIMITS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Direct, str],
                                                                   asyncio.Semaphore]] = \
    weakref.WeakKeyDictionary()


def mail_hosts(domain: str, nameserver: str | None = None) -> list[str] | str:
    """The hosts to try for ``domain``, best first, or why there are none (a sentence)."""
    import dns.exception
    import dns.resolver
    res = resolver(nameserver)
    try:
        answer = res.resolve(domain, "MX")
        records = sorted((r.preference, r.exchange.to_text().rstrip(".")) for r in answer)
        if len(records) == 1 and records[0][1] in ("", "."):
            return f"{domain} accepts no mail (null MX, RFC 7505)"
        return [host for _, host in records if host not in ("", ".")]
    except dns.resolver.NXDOMAIN:
        return f"{domain} does not exist (no such domain in DNS)"
    except dns.resolver.NoAnswer:
        pass                                   # no MX: the domain's own address is the MX
    except dns.exception.DNSException as err:
        return f"temporary: DNS look-up of {domain} failed: {type(err).__name__}"
    for rtype in ("A", "AAAA"):
        try:
            res.resolve(domain, rtype)
            return [domain]
        except dns.exception.DNSException:
            continue
    return f"{domain} has neither MX nor address records: it accepts no mail"


def _address(host: str, nameserver: str | None) -> str:
    """The host's IPv4 address from the same resolver (the MX name itself when not found)."""
    import dns.exception
    try:
        return str(resolver(nameserver).resolve(host, "A")[0].to_text())
    except dns.exception.DNSException:
        return host


class DirectConnection:
    """Delivers each message to its recipient's domain, one SMTP connection per MX host."""

    pipelines = False

    def __init__(self, direct: Direct) -> None:
        self.direct = direct
        self.conns: dict[str, SMTPConnection] = {}
        self.hosts: dict[str, list[str] | str] = {}
        self.steps: list[tuple[str, bool, str]] = []
        self.port = int(os.environ.get(PORT_ENV) or 25)

    async def open(self) -> None:
        """Nothing to open before the first message: each destination is connected when due."""

    async def close(self) -> None:
        for conn in self.conns.values():
            await conn.close()
        self.conns.clear()

    def _limit(self, domain: str) -> asyncio.Semaphore:
        limits = _LIMITS.setdefault(asyncio.get_running_loop(), {})
        key = (self.direct, domain)
        if key not in limits:
            limits[key] = asyncio.Semaphore(self.direct.per_destination)
        return limits[key]

    def _conn(self, host: str) -> SMTPConnection:
        if host not in self.conns:
            ip = _address(host, self.direct.nameserver)
            self.conns[host] = SMTPConnection(Relay(
                ip, self.port, security="none", helo=self.direct.helo, opportunistic=True,
                timeout=self.direct.timeout), None)
        return self.conns[host]

    async def send(self, sender: str, recipient: str, data: bytes, *, smtputf8: bool = False,
                   handover: Handover | None = None) -> Delivery | None:
        domain = recipient.rpartition("@")[2].lower()
        if domain not in self.hosts:
            self.hosts[domain] = await asyncio.to_thread(mail_hosts, domain,
                                                         self.direct.nameserver)
        hosts = self.hosts[domain]
        if isinstance(hosts, str):
            if hosts.startswith("temporary"):
                self.hosts.pop(domain)
                return Delivery("retry", None, hosts)
            return Delivery("failed", None, hosts)
        async with self._limit(domain):
            return await self._deliver(hosts, sender, recipient, data, smtputf8, handover)

    async def _deliver(self, hosts: list[str], sender: str, recipient: str, data: bytes,
                       smtputf8: bool, handover: Handover | None) -> Delivery | None:
        """The first MX that takes the message's transaction; the next one when a host cannot
        be reached or turns the connection away (421) before the message's content was handed
        to it (after that the host may have it: no second host gets it)."""
        last: Delivery | None = None
        handed = False

        async def once() -> tuple[bool, Any]:
            nonlocal handed
            handed = True
            return await handover() if handover is not None else (True, None)

        for host in hosts:
            result = await self._conn(host).send(sender, recipient, data, smtputf8=smtputf8,
                                                 handover=once)
            if result is None or handed:
                return result
            unreachable = result.status == "retry" and (result.code in (None, 421))
            if not unreachable:
                return result
            last = Delivery(result.status, result.code, f"{host}: {result.reply}",
                            slow_down=False)
        assert last is not None
        return last


__all__ = ["DirectConnection", "mail_hosts"]


register(Transport("direct", Direct, connect=lambda direct, password: DirectConnection(direct)))
