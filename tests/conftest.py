import os
import sys
from pathlib import Path

import pandas as pd
import pytest
import trustme

sys.path.insert(0, str(Path(__file__).parent))
from smtp_servers import start_smtp

import mailnb

USER, PASSWORD = "sender@example.com", "s3cret-Pa55word!"


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    leaf.private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
    return {"ca": str(d / "ca.pem"), "chain": (str(d / "server.pem"), str(d / "server.pem"))}


@pytest.fixture
def smtp():
    """A plain SMTP server on loopback with a fault-injecting recorder."""
    server = start_smtp("plain")
    yield server
    server.stop()


@pytest.fixture
def smtp_factory(certs):
    started = []

    def make(mode="plain", auth=None, recorder=None):
        s = start_smtp(mode, auth=auth, certs=certs["chain"], recorder=recorder)
        started.append(s)
        return s
    yield make
    for s in started:
        s.stop()


@pytest.fixture
def journal(tmp_path):
    j = mailnb.SQLiteJournal(tmp_path / "journal.sqlite")
    yield j
    j.close()


def people(n=5, addresses=None):
    addresses = addresses or [f"user{i}@example.com" for i in range(n)]
    return pd.DataFrame({"email": addresses,
                         "first_name": [f"Name{i}" for i in range(len(addresses))],
                         "slot": [f"{9 + i % 8}:00" for i in range(len(addresses))]})


def campaign(df, name="test", **kw):
    tmpl = mailnb.Template("Hello {{ first_name }}", text="Dear {{ first_name }}, your slot is "
                           "{{ slot }}.", html="<p>Dear {{ first_name }}, your slot is "
                           "<b>{{ slot }}</b>.</p>", to_name="{{ first_name }}")
    return mailnb.Campaign(name, mailnb.Audience(df), tmpl, from_addr="news@example.org",
                           from_name="News", **kw)


@pytest.fixture(autouse=True)
def _no_real_network(monkeypatch):
    # every relay in the tests is on loopback; fail loudly if a test points elsewhere
    monkeypatch.delenv("MAILNB_SMTP_PASSWORD", raising=False)
    os.environ.setdefault("MAILNB_JOURNAL", "/nonexistent-do-not-use/journal.sqlite")


@pytest.fixture(scope="session")
def dovecot():
    """A private Dovecot on loopback (IMAP, IMAPS, POP3, POP3S), for the whole session."""
    from mailservers import Dovecot
    d = Dovecot().start()
    yield d
    d.stop()


@pytest.fixture(scope="session")
def postgres():
    """A private PostgreSQL on 127.0.0.1 for the whole session (initdb'd by the fixture)."""
    from mailservers import PostgreSQL
    p = PostgreSQL().start()
    yield p
    p.stop()


_databases = iter(range(10**6))


@pytest.fixture
def pg_url(postgres, monkeypatch):
    """A fresh database on it for one test; its password in PGPASSWORD, as a user would."""
    monkeypatch.setenv("PGPASSWORD", postgres.password)
    return postgres.new_database(f"t{next(_databases)}_{os.getpid()}")


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
    d = tmp_path / "config"
    monkeypatch.setenv("MAILNB_CONFIG_DIR", str(d))
    return d


@pytest.fixture(autouse=True)
def _unsubscribe_secret(monkeypatch):
    # the HMAC secret for unsubscribe tokens; never the user's real config folder in tests
    monkeypatch.setenv("MAILNB_UNSUBSCRIBE_SECRET", "test-secret-for-unsubscribe-tokens")


@pytest.fixture
def idp(tmp_path, monkeypatch, config_dir):
    """The loopback identity provider (tests/oauth_server.py), trusted by msal through
    REQUESTS_CA_BUNDLE; msal's in-process sign-ins start afresh."""
    from oauth_server import IdentityProvider

    import mailnb.config.oauth
    p = IdentityProvider(tmp_path, "researcher@contoso.example")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", p.cafile)
    monkeypatch.delenv("MAILNB_OAUTH_REFRESH_TOKEN", raising=False)
    mailnb.config.oauth._SIGN_INS.clear()
    yield p
    p.stop()


DSN = """From: MAILER-DAEMON@mx.example.org
To: news@example.org
Subject: Undelivered Mail Returned to Sender
{message_id}MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; {rcpt}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {diag}

--B
Content-Type: message/rfc822

{original}
--B--
"""


def dsn(rcpt, status="5.1.1", diag="550 5.1.1 User unknown", original="", action="failed",
        message_id=None):
    """An RFC 3464 delivery report for one recipient, as an MTA writes it (LF line ends)."""
    mid = f"Message-ID: {message_id}\n" if message_id else ""
    return DSN.format(rcpt=rcpt, status=status, diag=diag, original=original, action=action,
                      message_id=mid).encode()
