"""DKIM signing of every outgoing message (dkimpy), and a helper that makes a key pair and tells
what to publish in DNS.

The signature covers From, To, Subject, Date, Message-ID, Reply-To, the MIME headers and the
List-Id and the List-Unsubscribe pair (RFC 8058 asks for both to be signed).
"""
from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

SIGNED = [b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"mime-version",
          b"content-type", b"list-id", b"list-unsubscribe", b"list-unsubscribe-post", b"in-reply-to",
          b"references", b"x-mailnb-campaign"]


@dataclass(frozen=True)
class DKIMKey:
    """A private key, its selector and the signing domain (``d=``)."""

    selector: str
    domain: str
    private_key: bytes = field(repr=False)

    @classmethod
    def from_file(cls, path: str | Path, selector: str, domain: str) -> DKIMKey:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"DKIM key file {str(p)!r} does not exist; make one with "
                              "mailnb.compose.signing.generate_key(selector, domain, path)")
        return cls(selector, domain.lower().rstrip("."), p.read_bytes())

    def sign(self, message: bytes) -> bytes:
        """The message with a DKIM-Signature header in front."""
        import dkim
        present = {line.split(b":", 1)[0].strip().lower()
                   for line in message.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
                   if line and not line[:1].isspace()}
        try:
            header = dkim.sign(message, self.selector.encode(), self.domain.encode(),
                               self.private_key,
                               include_headers=[h for h in SIGNED if h in present])
        except dkim.DKIMException as err:
            raise ConfigError(f"DKIM signing with selector {self.selector!r} failed: {err}") \
                from None
        return bytes(header + message)

    def public_record(self) -> tuple[str, str]:
        """(DNS name, TXT value) to publish for this key."""
        from cryptography.hazmat.primitives import serialization
        key = serialization.load_pem_private_key(self.private_key, password=None)
        der = key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        return (f"{self.selector}._domainkey.{self.domain}",
                f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}")


def generate_key(selector: str, domain: str, path: str | Path, bits: int = 2048) -> DKIMKey:
    """Make an RSA key pair, save the private key (mode 0600) and print the TXT record to
    publish."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    p = Path(path).expanduser()
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    dk = DKIMKey(selector, domain.lower(), pem)
    name, value = dk.public_record()
    print(f"Publish this TXT record in DNS:\n  {name}  TXT  \"{value}\"")
    return dk
