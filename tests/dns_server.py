"""A tiny authoritative DNS server on 127.0.0.1 (UDP) for the tests, built on dnspython: it answers
from a dict of records, so SPF, DKIM and DMARC checks and DKIM verification run offline."""
from __future__ import annotations

import socket
import threading
import time

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class DNSServer:
    def __init__(self, records: dict[tuple[str, str], list[str]]) -> None:
        self.records = {(n.lower().rstrip("."), t.upper()): v for (n, t), v in records.items()}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def set(self, name: str, rtype: str, values: list[str]) -> None:
        self.records[(name.lower().rstrip("."), rtype.upper())] = values

    def _serve(self) -> None:
        deadline = time.time() + 300
        while self.running and time.time() < deadline:
            try:
                data, peer = self.sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            try:
                q = dns.message.from_wire(data)
            except Exception:
                continue
            r = dns.message.make_response(q)
            r.flags |= dns.flags.AA
            question = q.question[0]
            name = question.name.to_text().rstrip(".").lower()
            rtype = dns.rdatatype.to_text(question.rdtype)
            values = self.records.get((name, rtype))
            if values:
                texts = []
                for v in values:
                    if rtype == "TXT":   # split into 255-byte strings as DNS requires
                        texts.append(" ".join(f'"{v[i:i + 255]}"' for i in range(0, len(v), 255)))
                    else:
                        texts.append(v)
                r.answer.append(dns.rrset.from_text_list(question.name, 60, "IN", rtype, texts))
            elif not any(n == name for n, _ in self.records):
                r.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(r.to_wire(), peer)

    def txt_lookup(self, name: bytes, timeout: int = 5) -> bytes | None:
        """A ``dnsfunc`` for dkimpy: the TXT record, asked of this server over UDP."""
        import dns.resolver
        res = dns.resolver.Resolver(configure=False)
        res.nameservers = ["127.0.0.1"]
        res.port = self.port
        try:
            answer = res.resolve(name.decode().rstrip("."), "TXT")
        except Exception:
            return None
        return b"".join(b"".join(r.strings) for r in answer)

    def stop(self) -> None:
        self.running = False
        self.thread.join(2)
        self.sock.close()
