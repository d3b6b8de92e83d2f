"""``check_sender``: is the From domain set up so that receivers accept bulk mail from this relay?

Three DNS checks with dnspython, each ``pass``, ``warn`` or ``fail`` with the fix:
- SPF: one ``v=spf1`` record that covers the relay's address (ip4/ip6/a/mx/include/redirect are
  followed, at most 10 look-ups as RFC 7208 allows);
- DKIM: the public key for the selector is published and matches the private key;
- DMARC: a ``v=DMARC1`` policy at ``_dmarc.<domain>``.

``nameserver="127.0.0.1:5353"`` (or ``$MAILNB_DNS_SERVER``) points the look-ups at a resolver of your
choice, so the checks run offline against a test resolver.
"""
from __future__ import annotations

import html
import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..errors import ConfigError
from ..util.marks import COLOURS, WRAP, mark

DNS_ENV = "MAILNB_DNS_SERVER"


def resolver(nameserver: str | None = None) -> Any:
    import dns.resolver
    ns = nameserver or os.environ.get(DNS_ENV)
    if not ns:
        r = dns.resolver.Resolver()
    else:
        host, _, port = ns.rpartition(":") if ns.count(":") == 1 else (ns, "", "")
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = [host]
        r.port = int(port or 53)
    r.lifetime = 5.0
    return r


def txt(res: Any, name: str) -> list[str]:
    import dns.exception
    import dns.resolver
    try:
        answer = res.resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
        return []
    except dns.exception.Timeout:
        raise ConfigError(f"no answer from the DNS server for {name}") from None
    return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]


def addresses(res: Any, name: str) -> list[str]:
    import dns.resolver
    out = []
    for rtype in ("A", "AAAA"):
        try:
            out += [r.address for r in res.resolve(name, rtype)]
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
            pass
    return out


def _spf_covers(res: Any, domain: str, ip: str, budget: list[int]) -> str | None:
    """The SPF result for ``ip`` at ``domain``: pass, fail, softfail, neutral, or None (no
    record)."""
    import dns.resolver
    records = [t for t in txt(res, domain) if t.lower().startswith("v=spf1")]
    if not records:
        return None
    addr = ipaddress.ip_address(ip)
    redirect = None
    for term in records[0].split()[1:]:
        qual = "+"
        if term[0] in "+-~?":
            qual, term = term[0], term[1:]
        verdict = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}[qual]
        mech, _, arg = term.partition(":")
        mech = mech.lower()
        if mech.startswith("redirect="):
            redirect = term.split("=", 1)[1]
            continue
        if mech in ("ip4", "ip6"):
            try:
                if addr in ipaddress.ip_network(arg, strict=False):
                    return verdict
            except ValueError:
                continue
        elif mech in ("a", "mx", "include"):
            budget[0] -= 1
            if budget[0] < 0:
                return "permerror"
            target = arg.split("/")[0] or domain
            if mech == "include":
                if _spf_covers(res, target, ip, budget) == "pass":
                    return verdict
                continue
            hosts = [target]
            if mech == "mx":
                try:
                    hosts = [str(r.exchange).rstrip(".") for r in res.resolve(target, "MX")]
                except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                    hosts = []
            if any(ip == a for h in hosts for a in addresses(res, h)):
                return verdict
        elif mech == "all":
            return verdict
    if redirect:
        budget[0] -= 1
        return _spf_covers(res, redirect, ip, budget)
    return "neutral"


@dataclass
class SenderCheck:
    domain: str
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    def add(self, check: str, status: str, detail: str, fix: str = "") -> None:
        self.rows.append((check, status, detail, fix))

    @property
    def ok(self) -> bool:
        return all(s != "fail" for _, s, _, _ in self.rows)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["check", "status", "detail", "fix"])

    def __repr__(self) -> str:
        lines = [f"sender checks for {self.domain}:"]
        lines += [f"  {s.upper():4} {c}: {d}" + (f"\n       fix: {f}" if f else "")
                  for c, s, d, f in self.rows]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{mark(s) if s in COLOURS else html.escape(s)}</td>"
                       f"<td>{html.escape(c)}</td><td style='{WRAP}'>{html.escape(d)}</td>"
                       f"<td style='{WRAP}'>{html.escape(f)}</td></tr>" for c, s, d, f in self.rows)
        return (f"<div><b>Sender checks for {html.escape(self.domain)}</b><table><tr><th></th>"
                f"<th>check</th><th>found</th><th>fix</th></tr>{rows}</table></div>")


def check_sender(profile: Any = None, *, from_addr: str | None = None,
                 relay_host: str | None = None, dkim: Any = None,
                 nameserver: str | None = None) -> SenderCheck:
    """Check SPF, DKIM and DMARC of the From domain for this relay (a profile, or the pieces)."""
    if profile is not None:
        from_addr = from_addr or profile.from_addr
        relay_host = relay_host or profile.host
        if dkim is None and profile is not None and profile.dkim_key_file:
            from ..compose.signing import DKIMKey
            dkim = DKIMKey.from_file(profile.dkim_key_file, profile.dkim_selector,
                                     profile.dkim_domain or from_addr.rpartition("@")[2])
    if not from_addr or "@" not in from_addr:
        raise ConfigError("check_sender needs a From address (profile.from_addr)")
    domain = from_addr.rpartition("@")[2].lower()
    res = resolver(nameserver)
    report = SenderCheck(domain)

    # SPF
    spf = [t for t in txt(res, domain) if t.lower().startswith("v=spf1")]
    if not spf:
        report.add("SPF", "fail", f"no v=spf1 record at {domain}",
                   f"publish a TXT record at {domain}: \"v=spf1 include:<your provider> -all\"")
    elif len(spf) > 1:
        report.add("SPF", "fail", f"{len(spf)} SPF records at {domain} (receivers treat that as "
                   "an error)", "merge them into one v=spf1 record")
    elif relay_host:
        try:
            ips = [str(ipaddress.ip_address(relay_host))]
        except ValueError:
            ips = addresses(res, relay_host)
        if not ips:
            report.add("SPF", "warn", f"{spf[0]!r}; the relay {relay_host} has no address to "
                       "check against", "check the relay's host name")
        else:
            verdict = _spf_covers(res, domain, ips[0], [10])
            if verdict == "pass":
                report.add("SPF", "pass", f"{spf[0]!r} covers the relay {relay_host} ({ips[0]})")
            else:
                report.add("SPF", "fail" if verdict in ("fail", "permerror") else "warn",
                           f"{spf[0]!r} gives {verdict} for the relay {relay_host} ({ips[0]})",
                           f"add ip4:{ips[0]} (or your provider's include:) before the all")
    else:
        report.add("SPF", "pass", repr(spf[0]))

    # DKIM
    if dkim is None:
        report.add("DKIM", "warn", "no DKIM key configured: messages go out unsigned",
                   "make a key with mailnb.compose.signing.generate_key(selector, domain, path) and set "
                   "dkim_selector, dkim_domain, dkim_key_file in the profile")
    else:
        name, value = dkim.public_record()
        published = [t for t in txt(res, name) if "p=" in t]
        want = value.split("p=", 1)[1].replace(" ", "")
        if not published:
            report.add("DKIM", "fail", f"no key published at {name}",
                       f"publish a TXT record at {name}: \"{value}\"")
        elif any(p.split("p=", 1)[1].split(";")[0].replace(" ", "") == want for p in published):
            report.add("DKIM", "pass", f"the key at {name} matches the private key")
        else:
            report.add("DKIM", "fail", f"the key at {name} does not match the private key",
                       f"replace the TXT record at {name} with \"{value}\"")

    # DMARC
    dmarc = [t for t in txt(res, f"_dmarc.{domain}") if t.upper().startswith("V=DMARC1")]
    if not dmarc:
        report.add("DMARC", "fail", f"no DMARC policy at _dmarc.{domain}",
                   f"publish a TXT record at _dmarc.{domain}: \"v=DMARC1; p=none; "
                   f"rua=mailto:dmarc@{domain}\" and tighten p= once reports look clean")
    else:
        policy = dict(kv.strip().split("=", 1) for kv in dmarc[0].split(";") if "=" in kv)
        p = policy.get("p", "").lower()
        if p in ("quarantine", "reject"):
            report.add("DMARC", "pass", dmarc[0])
        else:
            report.add("DMARC", "warn", f"{dmarc[0]} (p={p or 'missing'}: monitoring only)",
                       "move to p=quarantine once your reports show only your own mail")
    return report
