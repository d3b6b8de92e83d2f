"""The send modes beside an SMTP relay: Microsoft Graph's sendMail (OAuth2, throttling with
Retry-After) and direct delivery to each domain's MX (loopback DNS, several MX hosts, null MX)."""
import email
import ssl
import time
import warnings
from email import policy

import pytest
from aiosmtpd.controller import Controller
from conftest import people
from dns_server import DNSServer
from oauth_server import GraphServer, device_sign_in
from smtp_servers import RawServer, Recorder, free_port

import mailnb
from mailnb import ConfigError, Profile
from mailnb.config.targets import MICROSOFT_GRAPH_SCOPES, Direct, OAuth

USER = "researcher@contoso.example"          # the identity provider's user (conftest)
CLIENT = "aaaaaaaa-2222-3333-4444-555555555555"


def graph_profile(idp, graph, tmp_path, **kw):
    return Profile(name="graph", transport="graph", graph_url=graph.url, username=USER,
                   oauth_client_id=CLIENT, oauth_authority=idp.authority, auth="oauth2",
                   from_addr=USER, journal=str(tmp_path / "j.sqlite"), **kw)


def sign_in_graph(idp):
    device_sign_in(idp, OAuth("microsoft", CLIENT, USER, authority=idp.authority,
                              scopes=MICROSOFT_GRAPH_SCOPES))


def test_graph_sends_each_message_once_and_honours_retry_after(idp, tmp_path):
    graph = GraphServer(idp, throttle=2, retry_after=1)
    try:
        sign_in_graph(idp)
        graph_profile(idp, graph, tmp_path).save()
        job = mailnb.Job(campaign="via-graph", profile="graph", recipients=people(5),
                         template=mailnb.Template("Hello {{ first_name }}", text="Slot {{ slot }}"),
                         new_journal=True, progress=False)
        res = job.send()
        assert (res["status"] == "sent").all() and set(res["code"]) == {202}
        got = [email.message_from_bytes(m, policy=policy.default) for _, _, m in graph.received]
        assert sorted(str(m["To"]) for m in got) == [f"user{i}@example.com" for i in range(5)]
        assert {user for _, user, _ in graph.received} == {USER}
        throttled = [t for t, status in graph.requests if status == 429]
        accepted = [t for t, status in graph.requests if status == 202]
        assert len(throttled) == 2
        assert min(accepted) - max(throttled) >= 0.95          # the pause was honoured
        # a token the server no longer takes is refreshed once (401), and the send goes on
        idp.expire_access_tokens()
        res = mailnb.Job(campaign="via-graph-2", profile="graph", recipients=people(2),
                         template=mailnb.Template("Hi", text="x"), progress=False).send()
        assert (res["status"] == "sent").all() and "refresh_token" in idp.grants
    finally:
        graph.stop()


def test_graph_takes_no_envelope_sender_and_its_preset_paces_to_exchange(idp, tmp_path):
    graph = GraphServer(idp)
    try:
        prof = graph_profile(idp, graph, tmp_path, bounce_address="bounces@contoso.example")
        job = mailnb.Job(campaign="g", profile=prof, recipients=people(1), new_journal=True,
                         template=mailnb.Template("Hi", text="x"), progress=False)
        with pytest.raises(ConfigError, match="Graph does not take"):
            job.send()
        assert graph.requests == []
    finally:
        graph.stop()
    from mailnb.widgets import apply_preset
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = apply_preset(Profile(), "graph")
    assert (p.transport, p.auth, p.rate, p.daily_cap) == ("graph", "oauth2", "30/min", 10000)


class Overlap(Recorder):
    """Counts the transactions in progress at once (a slow DATA), per recipient domain."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.now, self.most = 0, 0

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            return await super().handle_DATA(server, session, envelope)
        finally:
            with self.lock:
                self.now -= 1


@pytest.fixture
def mx_world(monkeypatch, certs):
    """Domains that only the loopback DNS server answers for: a.mailnb-direct.org has two MX (127.0.0.2 turns connections away
    with 421, 127.0.0.3 takes mail), b.mailnb-direct.org has only an address record (127.0.0.3), c.mailnb-direct.org a null
    MX; every MX listens on the same port, which MAILNB_DIRECT_PORT names."""
    port = free_port()
    refuser = RawServer(host="127.0.0.2", port=port)
    recorder = Overlap(delay=0.15)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(*certs["chain"])                  # STARTTLS offered, not required
    sink = Controller(recorder, hostname="127.0.0.3", port=port, tls_context=tls,
                      require_starttls=False)
    sink.start()
    a, b, c = "a.mailnb-direct.org", "b.mailnb-direct.org", "c.mailnb-direct.org"
    dns = DNSServer({(a, "MX"): [f"10 mx1.{a}.", f"20 mx2.{a}."], (f"mx1.{a}", "A"): ["127.0.0.2"],
                     (f"mx2.{a}", "A"): ["127.0.0.3"], (b, "A"): ["127.0.0.3"],
                     (c, "MX"): ["0 ."]})
    monkeypatch.setenv("MAILNB_DNS_SERVER", dns.address)
    monkeypatch.setenv("MAILNB_DIRECT_PORT", str(port))
    yield refuser, recorder
    dns.stop()
    sink.stop()
    refuser.stop()


def test_direct_delivery_follows_mx_preference_address_records_and_null_mx(mx_world, journal):
    refuser, recorder = mx_world
    addresses = ["ann@a.mailnb-direct.org", "bob@a.mailnb-direct.org", "cat@b.mailnb-direct.org", "dan@c.mailnb-direct.org"]
    aud = mailnb.Audience(people(addresses=addresses))
    c = mailnb.Campaign("direct", aud, mailnb.Template("Hi {{ first_name }}", text="x"),
                        from_addr="news@example.org")
    t0 = time.time()
    res = mailnb.send(c, Direct(helo="mail.example.org"), journal=journal, progress=None,
                      concurrency=2)
    status = dict(zip(res["address"], res["status"]))
    assert status == {"ann@a.mailnb-direct.org": "sent", "bob@a.mailnb-direct.org": "sent", "cat@b.mailnb-direct.org": "sent",
                      "dan@c.mailnb-direct.org": "failed"}
    assert "null MX" in res.set_index("address").loc["dan@c.mailnb-direct.org", "reply"]
    assert res.set_index("address").loc["dan@c.mailnb-direct.org", "attempts"] == 1      # failed at once
    assert sorted(r for m in recorder.messages for r in m.rcpt_tos) == addresses[:3]
    assert refuser.connections >= 1                    # the first MX was tried, then the second
    assert {m.helo for m in recorder.messages} == {"mail.example.org"}
    assert all(m.tls for m in recorder.messages)       # opportunistic STARTTLS: offered, taken
    assert time.time() - t0 < 20


def test_direct_delivery_opens_at_most_two_connections_per_domain(mx_world, journal):
    _, recorder = mx_world
    aud = mailnb.Audience(people(addresses=[f"p{i}@b.mailnb-direct.org" for i in range(10)]))
    c = mailnb.Campaign("cap", aud, mailnb.Template("Hi", text="x"), from_addr="news@example.org")
    res = mailnb.send(c, Direct(helo="mail.example.org"), journal=journal, progress=None,
                      concurrency=6)
    assert (res["status"] == "sent").all() and len(recorder.messages) == 10
    assert recorder.most == 2                          # six workers, two at a time to one domain


def test_direct_from_the_command_line_and_a_helo_that_is_no_fqdn_is_warned(mx_world, tmp_path,
                                                                           config_dir):
    import subprocess
    import sys
    _, recorder = mx_world
    with pytest.warns(UserWarning, match="fully qualified name"):
        Direct(helo="localhost").validate()
    people(addresses=["eve@b.mailnb-direct.org"]).to_csv(tmp_path / "p.csv", index=False)
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "subject.txt").write_text("Hi {{ first_name }}")
    (tmp_path / "tpl" / "body.txt").write_text("x")
    import os
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MAILNB_CONFIG_DIR": str(config_dir),
           "MAILNB_DNS_SERVER": os.environ["MAILNB_DNS_SERVER"],
           "MAILNB_DIRECT_PORT": os.environ["MAILNB_DIRECT_PORT"]}
    r = subprocess.run([sys.executable, "-m", "mailnb.cli", "send", "--direct", "--helo",
                        "mail.example.org", "--from", "news@example.org", "--campaign", "d",
                        "--recipients", str(tmp_path / "p.csv"), "--template", str(tmp_path / "tpl"),
                        "--journal", str(tmp_path / "j.sqlite"), "--new-journal"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "direct to each domain's MX" in r.stdout
    assert [m.rcpt_tos for m in recorder.messages] == [["eve@b.mailnb-direct.org"]]
