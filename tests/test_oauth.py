"""OAuth2 sign-in for SMTP (Microsoft 365), with msal as the client, against a loopback identity
provider that implements the documented protocol (tests/oauth_server.py) and an SMTP server that
accepts only a currently valid access token (XOAUTH2 or OAUTHBEARER)."""
import os
import re
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from conftest import campaign, people
from oauth_server import device_sign_in, start_oauth_smtp
from smtp_servers import Recorder, free_port

import mailnb
from mailnb import AuthenticationError, Profile, Relay
from mailnb.config.oauth import REFRESH_TOKEN_ENV
from mailnb.config.targets import OAuth

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "campaign.ipynb"
USER = "researcher@contoso.example"          # the identity provider's user (conftest)
CLIENT = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def server(idp):
    s = start_oauth_smtp(idp)
    yield s
    s.stop()


def oauth(idp):
    return OAuth("microsoft", CLIENT, USER, authority=idp.authority)


def relay(server, idp):
    return Relay("127.0.0.1", server.port, security="none", username=USER, auth="oauth2",
                 oauth=oauth(idp), timeout=10)


def sign_in(idp, who=None):
    return device_sign_in(idp, who or oauth(idp))


def test_device_code_sign_in_then_silent_refresh(idp, server, journal, tmp_path, config_dir):
    with pytest.raises(AuthenticationError, match="has not signed in.*mailnb login"):
        mailnb.send(campaign(people(2), name="before"), relay(server, idp), journal=journal,
                    progress=None)
    assert server.recorder.messages == []
    sign_in(idp)
    cache = list((config_dir / "oauth").glob("*.json"))
    assert len(cache) == 1 and stat.S_IMODE(cache[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(cache[0].parent.stat().st_mode) == 0o700
    res = mailnb.send(campaign(people(3), name="first"), relay(server, idp), journal=journal,
                      progress=None)
    assert (res["status"] == "sent").all()
    assert server.recorder.logins == [("XOAUTH2", USER)]
    # the server stops accepting the token: one silent refresh, and the send goes on
    idp.expire_access_tokens()
    res = mailnb.send(campaign(people(3), name="second"), relay(server, idp), journal=journal,
                      progress=None)
    assert (res["status"] == "sent").all() and idp.grants.count("refresh_token") == 1
    # a token near its end (msal refreshes under 5 minutes) is refreshed before it is used
    idp.lifetime = 120
    idp.expire_access_tokens()
    mailnb.send(campaign(people(1), name="third"), relay(server, idp), journal=journal,
                progress=None)
    before = idp.grants.count("refresh_token")
    res = mailnb.send(campaign(people(2), name="fourth"), relay(server, idp), journal=journal,
                      progress=None)
    assert (res["status"] == "sent").all() and idp.grants.count("refresh_token") == before + 1
    # the profile door: auth, oauth_client_id, oauth_tenant, oauth_authority, oauth_provider
    Profile(name="m365", host="127.0.0.1", port=server.port, security="none", username=USER,
            auth="oauth2", oauth_provider="microsoft", oauth_client_id=CLIENT,
            oauth_tenant="contoso-tenant", oauth_authority=idp.authority,
            from_addr="team@contoso.example", journal=str(tmp_path / "p.sqlite")).save()
    job = mailnb.Job(campaign="via-profile", profile="m365", recipients=people(2),
                     template=mailnb.Template("Hi", text="x"), new_journal=True, progress=False)
    assert (job.send()["status"] == "sent").all()
    assert job.relay().oauth.authority == idp.authority and "OAuth2" in job.relay().describe()


def test_revoked_sign_in_is_a_clear_error_and_nothing_is_sent(idp, server, journal):
    sign_in(idp)
    idp.revoke_refresh_tokens()
    idp.expire_access_tokens()
    with pytest.raises(AuthenticationError) as info:
        mailnb.send(campaign(people(3), name="revoked"), relay(server, idp), journal=journal,
                    progress=None)
    text = str(info.value)
    assert "revoked" in text and "mailnb login" in text
    assert not any(tok in text for tok in [*idp.access, *idp.refresh])
    assert server.recorder.messages == []
    assert set(journal.history("revoked")["status"]) == {"pending"}


def test_oauthbearer_when_the_server_offers_it(idp, journal):
    server = start_oauth_smtp(idp, mechanisms=("OAUTHBEARER", "XOAUTH2"))
    try:
        sign_in(idp)
        res = mailnb.send(campaign(people(2), name="bearer"), relay(server, idp),
                          journal=journal, progress=None)
        assert (res["status"] == "sent").all()
        assert server.recorder.logins == [("OAUTHBEARER", USER)]
    finally:
        server.stop()


def test_cron_with_a_refresh_token_leaves_no_token_in_any_artefact(idp, server, tmp_path,
                                                                   config_dir):
    refresh = idp._tokens(CLIENT)["refresh_token"]          # as an administrator hands one out
    Profile(name="cron", host="127.0.0.1", port=server.port, security="none", username=USER,
            auth="oauth2", oauth_client_id=CLIENT, oauth_authority=idp.authority,
            from_addr="team@contoso.example", journal=str(tmp_path / "j.sqlite")).save()
    people(3).to_csv(tmp_path / "p.csv", index=False)
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "subject.txt").write_text("Hi {{ first_name }}")
    (tmp_path / "tpl" / "body.txt").write_text("Slot {{ slot }}")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MAILNB_CONFIG_DIR": str(config_dir),
           REFRESH_TOKEN_ENV: refresh, "REQUESTS_CA_BUNDLE": idp.cafile}
    r = subprocess.run([sys.executable, "-m", "mailnb.cli", "send", "--profile", "cron",
                        "--campaign", "cron-cli", "--recipients", str(tmp_path / "p.csv"),
                        "--template", str(tmp_path / "tpl"), "--new-journal", "--results",
                        str(tmp_path / "r.csv")], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    import papermill
    old = {k: os.environ.get(k) for k in env}
    os.environ.update({k: v for k, v in env.items() if k not in ("PATH", "HOME")})
    try:
        papermill.execute_notebook(
            str(NOTEBOOK), str(tmp_path / "out.ipynb"), cwd=str(tmp_path),
            progress_bar=False, kernel_name="python3",
            parameters={"profile": "cron", "campaign": "cron-nb", "dry_run": False,
                        "recipients": str(tmp_path / "p.csv"), "template": str(tmp_path / "tpl")})
    finally:
        for k, v in old.items():
            if k in ("PATH", "HOME"):
                continue
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert len(server.recorder.messages) == 6
    mailnb.SQLiteJournal(tmp_path / "j.sqlite").db.execute("PRAGMA wal_checkpoint(FULL)")
    secrets_ = [refresh, *idp.access, *idp.refresh]
    artefacts = [tmp_path / "out.ipynb", tmp_path / "r.csv", config_dir / "profiles" / "cron.toml",
                 *tmp_path.glob("j.sqlite*"), *tmp_path.glob("results-*.csv")]
    for f in artefacts:
        data = f.read_bytes()
        assert not any(s.encode() in data for s in secrets_), f
    assert not any(s in r.stdout + r.stderr for s in secrets_)


@pytest.mark.parametrize("reply, says", [
    ("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
     "Mailbox.", "Set-CASMailbox"),
    ("535 5.7.3 Authentication unsuccessful", "SMTP.Send permission"),
])
def test_microsoft_refusals_of_a_token_say_what_to_do(idp, server, journal, reply, says):
    sign_in(idp)
    server.recorder.refuse = reply
    with pytest.raises(AuthenticationError, match=re.escape(says)):
        mailnb.send(campaign(people(1), name="refused"), relay(server, idp), journal=journal,
                    progress=None)
    assert server.recorder.messages == []


@pytest.mark.parametrize("reply, says", [
    ("550 5.7.30 Basic authentication is not supported for Client Submission.",
     "sign in with OAuth2 instead"),
    ("534 5.7.9 Application-specific password required.", "app password"),
    ("535 5.7.8 Username and Password not accepted.", "Gmail did not accept"),
])
def test_password_refusals_say_what_to_do(reply, says, journal, monkeypatch):
    def refuse(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=False, handled=False, message=reply)
    port = free_port()
    ctl = Controller(Recorder(), hostname="127.0.0.1", port=port, authenticator=refuse,
                     auth_required=True, auth_require_tls=False)
    ctl.start()
    monkeypatch.setenv("MAILNB_SMTP_PASSWORD", "an-old-password")
    try:
        with pytest.raises(AuthenticationError) as info:
            mailnb.send(campaign(people(1), name="pw"), Relay("127.0.0.1", port,
                        security="none", username=USER, timeout=10), journal=journal,
                        progress=None)
        assert says in str(info.value) and "an-old-password" not in str(info.value)
    finally:
        ctl.stop()


def test_mailnb_login_then_send_from_the_command_line(idp, server, tmp_path, config_dir):
    Profile(name="cli", host="127.0.0.1", port=server.port, security="none", username=USER,
            auth="oauth2", oauth_client_id=CLIENT, oauth_authority=idp.authority,
            from_addr="team@contoso.example", journal=str(tmp_path / "j.sqlite")).save()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MAILNB_CONFIG_DIR": str(config_dir),
           "REQUESTS_CA_BUNDLE": idp.cafile}
    proc = subprocess.Popen([sys.executable, "-m", "mailnb.cli", "login", "--profile", "cli"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    idp.approve(re.search(r"enter the code (\w+)", line).group(1))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "signed in as researcher@contoso.example" in out
    people(2).to_csv(tmp_path / "p.csv", index=False)
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "subject.txt").write_text("Hi {{ first_name }}")
    (tmp_path / "tpl" / "body.txt").write_text("Slot {{ slot }}")
    r = subprocess.run([sys.executable, "-m", "mailnb.cli", "send", "--profile", "cli",
                        "--campaign", "after-login", "--recipients", str(tmp_path / "p.csv"),
                        "--template", str(tmp_path / "tpl"), "--new-journal"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(server.recorder.messages) == 2 and server.recorder.logins == [("XOAUTH2", USER)]
    assert idp.grants.count("urn:ietf:params:oauth:grant-type:device_code") >= 1


def test_the_relay_form_signs_in_with_microsoft(idp, server, config_dir):
    from mailnb import widgets
    form = widgets.relay_form(Profile(name="lab", from_addr="lab@contoso.example"))
    for k, v in dict(host="127.0.0.1", port=server.port, security="none", username=USER,
                     auth="oauth2", oauth_client_id=CLIENT).items():
        form.inputs[k].value = v
    form.profile.oauth_authority = idp.authority
    thread = form.sign_in()
    deadline = time.time() + 20
    while "enter the code" not in form.message.value and time.time() < deadline:
        time.sleep(0.05)
    idp.approve(re.search(r"enter the code (\w+)", form.message.value).group(1))
    thread.join(30)
    assert "ok: signed in as researcher@contoso.example" in form.message.value
    report = form.test_connection()
    assert report.ok and any("OAuth2" in detail for _, _, detail in report.steps)


def google(idp):
    return OAuth("google", "google-client.apps.example", USER, authority=f"{idp.base}/google")


def sign_in_google(idp):
    """The installed-app flow as a person does it: open the page shown; the consent redirects to
    the flow's own loopback server."""
    import requests

    from mailnb.config.oauth import login
    said = []
    t = threading.Thread(target=login, args=(google(idp),), kwargs={"show": said.append})
    t.start()
    deadline = time.time() + 20
    while not said and time.time() < deadline:
        time.sleep(0.05)
    url = re.search(r"(https://\S+)", said[0]).group(1)
    assert requests.get(url, verify=idp.cafile, timeout=20).status_code == 200
    t.join(30)
    assert not t.is_alive()


def test_google_sign_in_then_refresh_and_gmail_s_xoauth2(idp, server, journal, monkeypatch,
                                                         config_dir):
    monkeypatch.setenv("MAILNB_OAUTH_CLIENT_SECRET", idp.client_secret)
    target = Relay("127.0.0.1", server.port, security="none", username=USER, auth="oauth2",
                   oauth=google(idp), timeout=10)
    with pytest.raises(AuthenticationError, match="not signed in with Google"):
        mailnb.send(campaign(people(1), name="g0"), target, journal=journal, progress=None)
    sign_in_google(idp)
    assert idp.grants == ["authorization_code"]
    cache = list((config_dir / "oauth").glob("*.json"))
    assert len(cache) == 1 and stat.S_IMODE(cache[0].stat().st_mode) == 0o600
    res = mailnb.send(campaign(people(2), name="g1"), target, journal=journal, progress=None)
    assert (res["status"] == "sent").all() and server.recorder.logins == [("XOAUTH2", USER)]
    idp.expire_access_tokens()                     # refused: refreshed once, then it goes on
    res = mailnb.send(campaign(people(2), name="g2"), target, journal=journal, progress=None)
    assert (res["status"] == "sent").all() and "refresh_token" in idp.grants
    idp.revoke_refresh_tokens()
    idp.expire_access_tokens()
    with pytest.raises(AuthenticationError, match="revoked"):
        mailnb.send(campaign(people(1), name="g3"), target, journal=journal, progress=None)
    # the Gmail preset signs in with Google's OAuth2
    import warnings

    from mailnb.widgets import apply_preset
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = apply_preset(Profile(), "gmail")
    assert (p.auth, p.oauth_provider) == ("oauth2", "google")


def test_identity_provider_urls_are_https_or_loopback_http():
    assert "oauth_authority" in Profile(auth="oauth2", oauth_client_id="x",
                                        oauth_authority="http://idp.example.org/t").problems()
    assert "oauth_authority" in Profile(auth="oauth2", oauth_client_id="x",
                                        oauth_authority="http://10.1.2.3/t").problems()
    for fine in ("https://idp.example.org/t", "http://127.0.0.1:8080/t", "http://127.5.0.1/t"):
        assert "oauth_authority" not in Profile(auth="oauth2", oauth_client_id="x",
                                                oauth_provider="google",
                                                oauth_authority=fine).problems()
    # msal takes https only: plain http, even on loopback, is said before any sign-in (issue 29)
    assert "oauth_authority" not in Profile(auth="oauth2", oauth_client_id="x",
                                            oauth_authority="https://127.0.0.1:8080/t").problems()
    problem = Profile(auth="oauth2", oauth_client_id="x",
                      oauth_authority="http://127.0.0.1:8080/t").problems()["oauth_authority"]
    assert "must be https://" in problem and "msal" in problem
    assert "graph_url" in Profile(graph_url="http://graph.example.org/v1.0").problems()
    assert "oauth_client_id" in Profile(auth="oauth2").problems()


def test_an_http_microsoft_authority_is_a_clear_error_in_every_door(tmp_path, config_dir):
    """`--oauth-authority http://127.0.0.1:...` once ended in msal's ValueError as an
    'unexpected error'; now the settings' check says https, in the door's words, and nothing is
    signed in or sent."""
    import subprocess
    import sys
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MAILNB_CONFIG_DIR": str(config_dir)}
    r = subprocess.run([sys.executable, "-m", "mailnb.cli", "send", "--campaign", "c", "--sample",
                        "--host", "127.0.0.1", "--port", "9", "--username", "me@example.org",
                        "--from", "me@example.org", "--auth", "oauth2", "--oauth-client-id", "x",
                        "--oauth-authority", "http://127.0.0.1:9/tenant", "--journal",
                        str(tmp_path / "j.sqlite"), "--new-journal"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "unexpected" not in r.stderr
    assert "must be https://" in r.stderr and "msal" in r.stderr
    with pytest.raises(mailnb.ConfigError, match="must be https://"):
        mailnb.Job(campaign="c", sample=True, host="127.0.0.1", port=9, username="me@example.org",
                   from_addr="me@example.org", auth="oauth2", oauth_client_id="x",
                   oauth_authority="http://127.0.0.1:9/tenant",
                   journal=str(tmp_path / "p.sqlite"), new_journal=True).send()
