"""The bounce mailbox: IMAP (implicit TLS or STARTTLS, certificates verified) or POP3.

``list_folders`` serves the form's "List folders"; ``fetch`` yields the messages not yet processed,
each with a stable ``source_id``; ``mark_processed`` flags a message (or moves it to a folder) only
after its result is stored, so a crash never loses a bounce, and the journal's record of source ids
means a message seen twice is never counted twice.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import imaplib
import poplib
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..config.profile import Profile
from ..config.secrets import Secret
from ..config.targets import MAILBOX_PORTS, Mailbox
from ..errors import AuthenticationError, ConfigError, RelayError, TLSError, alt, arg

__all__ = ["Mailbox", "PROCESSED", "connect_imap", "connect_pop3", "list_folders"]

PROCESSED = "$MailnbProcessed"


#: how long a server may take to greet: a port that expects TLS first stays silent to a plain
#: greeting wait, so this is how soon a security setting that does not fit the port is told
GREETING_TIMEOUT = 4.0


def _wrap(mb: Mailbox, err: BaseException, secret: Secret | None) -> Exception:
    text = secret.scrub(str(err)) if secret is not None else str(err)
    if isinstance(err, ssl.SSLError | ssl.CertificateError):
        return TLSError(f"TLS with the mailbox {mb.where} failed: {text}. For a private CA pass "
                        f"{arg('imap_cafile', 'ca.pem')}", host=mb.host, port=mb.port)
    return RelayError(f"cannot read the mailbox {mb.where}: {text}", host=mb.host, port=mb.port)


def _greeting(mb: Mailbox) -> bytes:
    """The server's first line, read as the settings say (through TLS for ``tls``); b"" if none."""
    try:
        with socket.create_connection((mb.host, mb.port), timeout=GREETING_TIMEOUT) as raw:
            if mb.security == "tls":
                ctx = ssl.create_default_context()
                ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE   # only to read a line
                with ctx.wrap_socket(raw, server_hostname=mb.host) as tls:
                    return tls.recv(200)
            return raw.recv(200)
    except (OSError, ssl.SSLError):
        return b""


def _mismatch(mb: Mailbox, err: BaseException) -> ConfigError | None:
    """A security or protocol setting that does not fit the port, told from how the connection
    failed (and, when that is not enough, from the server's greeting)."""
    where, proto = mb.where, mb.protocol
    if isinstance(err, ssl.SSLError) and "WRONG_VERSION_NUMBER" in str(err):
        return ConfigError(
            f"the mailbox {where} answered in plain text, not TLS: the port starts in plain text. "
            f"Use {arg('imap_security', 'starttls')} (or the {proto.upper()} TLS port, "
            f"{arg('imap_port', MAILBOX_PORTS[(proto, 'tls')])})")
    if isinstance(err, TimeoutError) and mb.security == "starttls":
        return ConfigError(
            f"the mailbox {where} sent no greeting within {GREETING_TIMEOUT:.0f} s: the port "
            f"probably expects TLS from the first byte. Use {arg('imap_security', 'tls')} (or the "
            f"{proto.upper()} STARTTLS port, {arg('imap_port', MAILBOX_PORTS[(proto, 'starttls')])})")
    if isinstance(err, TimeoutError):
        return None
    greeting = _greeting(mb)
    other = {"imap": "pop3", "pop3": "imap"}[proto]
    if greeting.startswith(b"+OK" if proto == "imap" else b"* OK"):
        return ConfigError(
            f"the mailbox {where} is {'an' if other == 'imap' else 'a'} {other.upper()} server, "
            f"not {proto.upper()}: use "
            f"{arg('protocol', other)}, or the {proto.upper()} port "
            f"({arg('imap_port', MAILBOX_PORTS[(proto, mb.security)])})")
    return None


def _failed(mb: Mailbox, err: BaseException, secret: Secret | None) -> Exception:
    return _mismatch(mb, err) or _wrap(mb, err, secret)


def connect_imap(mb: Mailbox) -> Any:
    """A logged-in IMAPClient."""
    from imapclient import IMAPClient, SocketTimeout
    from imapclient.exceptions import LoginError

    mb.validate()
    secret = mb.secret()
    timeout = SocketTimeout(connect=min(mb.timeout, GREETING_TIMEOUT), read=mb.timeout)
    try:
        client = IMAPClient(mb.host, port=mb.port, ssl=mb.security == "tls",
                            ssl_context=mb.ssl_context(), timeout=timeout)
        if mb.security == "starttls":
            client.starttls(ssl_context=mb.ssl_context())
    except (OSError, ssl.SSLError, imaplib.IMAP4.error) as err:
        raise _failed(mb, err, secret) from None
    try:
        client.login(mb.username, secret.reveal())
    except LoginError as err:
        client.shutdown()
        raise AuthenticationError(
            f"the mailbox {mb.where} refused the login of {mb.username}: "
            f"{secret.scrub(str(err))}. Check the username and password.",
            host=mb.host, port=mb.port) from None
    except Exception as err:
        client.shutdown()
        raise _wrap(mb, err, secret) from None
    return client


def connect_pop3(mb: Mailbox) -> poplib.POP3:
    """A logged-in POP3 connection."""
    mb.validate()
    secret = mb.secret()
    wait = min(mb.timeout, GREETING_TIMEOUT)
    port = mb.port or MAILBOX_PORTS[("pop3", mb.security)]     # set by Mailbox itself
    try:
        pop: poplib.POP3
        if mb.security == "tls":
            pop = poplib.POP3_SSL(mb.host, port, context=mb.ssl_context(), timeout=wait)
        else:
            pop = poplib.POP3(mb.host, port, timeout=wait)
        pop.sock.settimeout(mb.timeout)
        if mb.security == "starttls":
            pop.stls(context=mb.ssl_context())
    except (OSError, ssl.SSLError, poplib.error_proto) as err:
        raise _failed(mb, err, secret) from None
    try:
        pop.user(mb.username)
        pop.pass_(secret.reveal())
    except poplib.error_proto as err:
        pop.close()
        raise AuthenticationError(f"the mailbox {mb.where} refused the login of {mb.username}: "
                                  f"{secret.scrub(str(err))}. Check the username and password.",
                                  host=mb.host, port=mb.port) from None
    except (OSError, ssl.SSLError) as err:
        pop.close()
        raise _wrap(mb, err, secret) from None
    return pop


def list_folders(source: Profile | Mailbox, password: Secret | str | None = None) -> list[str]:
    """The folders of the mailbox (for choosing the one to monitor)."""
    mb = source if isinstance(source, Mailbox) else Mailbox.from_profile(source, password)
    if mb.protocol == "pop3":
        return ["INBOX"]
    client = connect_imap(mb)
    try:
        return sorted(name for _flags, _sep, name in client.list_folders())
    finally:
        client.logout()


@dataclass
class Fetched:
    source_id: str
    raw: bytes
    uid: Any = None


class Session:
    """An open mailbox: ``fetch()`` the unprocessed messages, ``mark_processed()`` each one."""

    def __init__(self, mb: Mailbox) -> None:
        self.mb = mb
        self.imap: Any = None
        self.pop: poplib.POP3 | None = None
        self.keyword = PROCESSED
        self.uidvalidity = ""

    def __enter__(self) -> Session:
        mb = self.mb
        if mb.protocol == "imap":
            self.imap = connect_imap(mb)
            try:
                info = self.imap.select_folder(mb.folder)
            except Exception as err:
                self.imap.logout()
                raise ConfigError(f"the mailbox has no folder {mb.folder!r}: {err}. "
                                  + alt("List the folders with mailnb.mailbox.list_folders(...)",
                                        "Name another with --folder") + ".") from None
            self.uidvalidity = str(info.get(b"UIDVALIDITY", ""))
            if mb.processed_folder and not self.imap.folder_exists(mb.processed_folder):
                self.imap.create_folder(mb.processed_folder)
            perm = info.get(b"PERMANENTFLAGS", ())
            if b"\\*" not in perm and self.keyword.encode() not in perm:
                self.keyword = "\\Seen"      # the server keeps no keywords: fall back to \Seen
        else:
            self.pop = connect_pop3(mb)
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.imap is not None:
                self.imap.logout()
            if self.pop is not None:
                self.pop.quit()
        except Exception:
            pass

    @contextlib.contextmanager
    def _talking(self) -> Iterator[None]:
        """A connection lost mid-session (a server restart, a dropped network) is one
        RelayError that says a rerun is safe."""
        try:
            yield
        except (OSError, ssl.SSLError, imaplib.IMAP4.error, poplib.error_proto) as err:
            raise RelayError(f"lost the connection to the mailbox {self.mb.where}: {err}. What "
                             "was read so far is stored; run again to read the rest",
                             host=self.mb.host, port=self.mb.port) from None

    def fetch(self, since: dt.date | str | None = None,
              seen: set[str] | None = None) -> Iterator[Fetched]:
        """The messages not processed yet, oldest first. ``seen``: source ids already in the
        journal (POP3 has no flags, so that is how it knows)."""
        if isinstance(since, str):
            since = dt.date.fromisoformat(since)
        it = self._fetch(since, seen)
        while True:
            with self._talking():
                item = next(it, None)
            if item is None:
                return
            yield item

    def _fetch(self, since: dt.date | None, seen: set[str] | None) -> Iterator[Fetched]:
        if self.imap is not None:
            criteria: list[Any] = ["NOT", "KEYWORD", self.keyword] if self.keyword != "\\Seen" \
                else ["UNSEEN"]
            if since:
                criteria += ["SINCE", since]
            uids = sorted(self.imap.search(criteria))
            for start in range(0, len(uids), 100):
                chunk = uids[start:start + 100]
                for uid, data in sorted(self.imap.fetch(chunk, ["BODY.PEEK[]"]).items()):
                    sid = f"imap:{self.mb.host}:{self.mb.username}:{self.mb.folder}:" \
                          f"{self.uidvalidity}:{uid}"
                    if seen and sid in seen:
                        self._mark(Fetched(sid, b"", uid))
                        continue
                    yield Fetched(sid, bytes(data[b"BODY[]"]), uid)
        else:
            assert self.pop is not None
            _, listing, _ = self.pop.uidl()
            for line in listing:
                num, uidl = line.decode().split(" ", 1)
                sid = f"pop3:{self.mb.host}:{self.mb.username}:{uidl}"
                if seen and sid in seen:
                    continue
                _, lines, _ = self.pop.retr(int(num))
                yield Fetched(sid, b"\r\n".join(lines) + b"\r\n", int(num))

    def mark_processed(self, item: Fetched) -> None:
        if self.imap is None:
            return        # POP3: the journal's source ids are the record
        with self._talking():
            self._mark(item)

    def _mark(self, item: Fetched) -> None:
        if self.mb.processed_folder:
            self.imap.add_flags([item.uid], [self.keyword])
            if self.imap.has_capability("MOVE"):
                self.imap.move([item.uid], self.mb.processed_folder)
            else:
                self.imap.copy([item.uid], self.mb.processed_folder)
                self.imap.delete_messages([item.uid])
                self.imap.expunge()
        else:
            self.imap.add_flags([item.uid], [self.keyword])


def pop_login(mb: Mailbox) -> None:
    """Log in to the POP3 mailbox and out again: "POP before SMTP", which older relays ask for
    before they accept mail from the same address."""
    from dataclasses import replace
    if mb.protocol != "pop3":
        mb = replace(mb, protocol="pop3", port=995 if mb.security == "tls" else 110)
    with Session(mb):
        pass
