"""The bounce mailbox: IMAP (implicit TLS or STARTTLS, certificates verified) or POP3.

``list_folders`` serves the form's "List folders"; ``fetch`` yields the messages not yet processed,
each with a stable ``source_id``; ``mark_processed`` flags a message (or moves it to a folder) only
after its result is stored, so a crash never loses a bounce, and the journal's record of source ids
means a message seen twice is never counted twice.
"""
from __future__ import annotations

import datetime as dt
import poplib
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .errors import AuthenticationError, ConfigError, RelayError, TLSError, alt
from .settings import Mailbox, Profile, Secret

__all__ = ["Mailbox", "PROCESSED", "connect_imap", "list_folders"]

PROCESSED = "$MailnbProcessed"


def _wrap(mb: Mailbox, err: BaseException, secret: Secret | None) -> Exception:
    text = secret.scrub(str(err)) if secret is not None else str(err)
    if isinstance(err, ssl.SSLError | ssl.CertificateError):
        return TLSError(f"TLS with the mailbox {mb.where} failed: {text}. For a private CA pass "
                        f"cafile=...", host=mb.host, port=mb.port)
    return RelayError(f"cannot read the mailbox {mb.where}: {text}", host=mb.host, port=mb.port)


def connect_imap(mb: Mailbox) -> Any:
    """A logged-in IMAPClient."""
    from imapclient import IMAPClient
    from imapclient.exceptions import LoginError

    mb.validate()
    secret = mb.secret()
    try:
        client = IMAPClient(mb.host, port=mb.port, ssl=mb.security == "tls",
                            ssl_context=mb.ssl_context(), timeout=mb.timeout)
        if mb.security == "starttls":
            client.starttls(ssl_context=mb.ssl_context())
    except (OSError, ssl.SSLError, socket.timeout) as err:
        raise _wrap(mb, err, secret) from None
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
            mb.validate()
            secret = mb.secret()
            try:
                if mb.security == "tls":
                    self.pop = poplib.POP3_SSL(mb.host, mb.port, context=mb.ssl_context(),
                                               timeout=mb.timeout)
                else:
                    self.pop = poplib.POP3(mb.host, mb.port, timeout=mb.timeout)
                    self.pop.stls(context=mb.ssl_context())
                self.pop.user(mb.username)
                self.pop.pass_(secret.reveal())
            except poplib.error_proto as err:
                raise AuthenticationError(f"the mailbox {mb.where} refused the login of "
                                          f"{mb.username}: {err}", host=mb.host,
                                          port=mb.port) from None
            except (OSError, ssl.SSLError) as err:
                raise _wrap(mb, err, secret) from None
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.imap is not None:
                self.imap.logout()
            if self.pop is not None:
                self.pop.quit()
        except Exception:
            pass

    def fetch(self, since: dt.date | str | None = None,
              seen: set[str] | None = None) -> Iterator[Fetched]:
        """The messages not processed yet, oldest first. ``seen``: source ids already in the
        journal (POP3 has no flags, so that is how it knows)."""
        if isinstance(since, str):
            since = dt.date.fromisoformat(since)
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
                        self.mark_processed(Fetched(sid, b"", uid))
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
