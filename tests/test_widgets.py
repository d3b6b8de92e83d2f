"""The forms, driven from Python as a user would: values set, buttons clicked, real servers behind."""
import os
import stat

from conftest import PASSWORD, USER

from mailnb import Profile, widgets


def test_relay_form_preset_and_live_checks(config_dir):
    form = widgets.relay_form("new")
    form.provider.value = "gmail"
    assert form.inputs["host"].value == "smtp.gmail.com" and form.inputs["port"].value == 587
    assert form.inputs["auth"].value == "oauth2" and form.signin_button.description == \
        "Sign in with Google"
    form.provider.value = "office365"
    assert form.signin_button.description == "Sign in with Microsoft"
    form.provider.value = "gmail"
    assert "app password" in form.note.value and form.profile.daily_cap == 500
    form.inputs["host"].value = "smtp..bad"
    assert "not a valid host" in form.checks["host"].value
    form.inputs["port"].value = 70000
    assert "out of range" in form.checks["port"].value
    form.inputs["host"].value = "smtp.example.org"
    form.inputs["port"].value = 587
    assert ">ok<" in form.checks["host"].value and ">ok<" in form.checks["port"].value
    assert "Save profile" in [b.description for b in form.buttons]
    form.inputs["security"].value = "tls"                 # the port follows the security ...
    assert form.inputs["port"].value == 465
    form.inputs["port"].value = 2465
    form.inputs["security"].value = "starttls"            # ... unless the user set their own
    assert form.inputs["port"].value == 2465
    form.inputs["port"].value = 465                       # a mismatch shows at once
    assert "465 is for implicit TLS" in form.checks["port"].value


def test_relay_form_against_a_real_server(smtp_factory, certs, config_dir):
    server = smtp_factory("starttls", auth={USER: PASSWORD})
    form = widgets.relay_form(Profile(name="lab", from_addr="lab@example.org"))
    form.inputs["host"].value = "127.0.0.1"
    form.inputs["port"].value = server.port
    form.inputs["security"].value = "starttls"
    form.inputs["username"].value = USER
    form.inputs["cafile"].value = certs["ca"]
    form.password.set(PASSWORD)
    assert PASSWORD not in form.password.widget.value       # moved out of the widget at once
    assert form.password.secret.reveal() == PASSWORD
    form.test_button.click()
    assert "AUTH" in form.message.value and ">ok<" in form.message.value
    assert PASSWORD not in form.message.value
    form.test_to.value = "me@example.com"
    form.send_button.click()
    assert "sent" in form.message.value
    assert [m.rcpt_tos for m in server.recorder.messages] == [["me@example.com"]]
    form.save_button.click()
    path = config_dir / "profiles" / "lab.toml"
    assert path.is_file() and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert PASSWORD.encode() not in path.read_bytes()
    assert Profile.load("lab").port == server.port


def test_wrong_password_reported_in_the_form(smtp_factory, certs, config_dir):
    server = smtp_factory("starttls", auth={USER: PASSWORD})
    form = widgets.relay_form(Profile(name="lab"))
    for k, v in dict(host="127.0.0.1", port=server.port, username=USER, cafile=certs["ca"]).items():
        form.inputs[k].value = v
    form.password.set("nope-" + PASSWORD)
    report = form.test_connection()
    assert not report.ok and "535" in form.message.value and "nope-" not in form.message.value


def test_preferences_form_validates_and_saves(config_dir):
    form = widgets.preferences_form(Profile(name="prefs", host="smtp.example.org", requires_auth=False))
    form.inputs["from_addr"].value = "not an address"
    assert ">failed<" in form.checks["from_addr"].value
    form.save_button.click()
    assert "cannot save" in form.message.value
    form.inputs["from_addr"].value = "team@example.org"
    form.inputs["rate"].value = "600/h"
    form.inputs["block_pause"].value = "2min"
    assert ">ok<" in form.checks["rate"].value
    form.save_button.click()
    assert Profile.load("prefs").rate == "600/h"


def test_bounce_form_lists_folders_from_dovecot(dovecot, config_dir):
    dovecot.deliver(b"From: x@example.test\r\nSubject: x\r\n\r\nx\r\n", "Bounces")
    form = widgets.bounce_form(Profile(name="b"))
    for k, v in dict(imap_host="127.0.0.1", imap_port=dovecot.ports["imaps"],
                     imap_security="tls", imap_username=dovecot.user).items():
        form.inputs[k].value = v
    form.password.set(dovecot.password)
    form.list_button.click()          # without the private CA: a clear TLS error, no password
    assert "TLS" in form.message.value and dovecot.password not in form.message.value
    form.inputs["imap_cafile"].value = dovecot.cafile
    form.list_button.click()
    assert "Bounces" in form.inputs["bounce_folder"].options
    assert "INBOX" in form.message.value


def test_test_send_form_sends_the_campaigns_first_messages_to_me(smtp, tmp_path, config_dir):
    import email
    from email import policy

    from conftest import people

    import mailnb
    df = people(3)
    job = mailnb.Job(campaign="form", recipients=df, template=mailnb.Template(
        "Hello {{ first_name }}", text="Slot {{ slot }}"), host="127.0.0.1", port=smtp.port,
        security="none", from_addr="news@example.org", journal=str(tmp_path / "j.sqlite"),
        new_journal=True)
    form = widgets.test_send_form(job)
    form.to.value = "me@example.org"
    form.rows.value = 2
    form.button.click()
    assert ">ok<" in form.message.value and "2 test message(s)" in form.message.value
    got = [email.message_from_bytes(m.data, policy=policy.default) for m in smtp.recorder.messages]
    assert [m["Subject"] for m in got] == ["[TEST] Hello Name0", "[TEST] Hello Name1"]
    assert {tuple(m.rcpt_tos) for m in smtp.recorder.messages} == {("me@example.org",)}
    assert mailnb.history("form", str(tmp_path / "j.sqlite")).empty
    form.to.value = "not an address"
    form.button.click()
    assert "failed" in form.message.value


def test_forms_read_without_emoji_and_show_only_what_applies(config_dir):
    form = widgets.relay_form(Profile(name="p", host="smtp.example.org"))
    # "Requires login" with no username: flagged at once, next to the box and the username
    assert "failed" in form.checks["requires_auth"].value
    assert "required" in form.checks["username"].value
    form.inputs["username"].value = "me@example.org"
    assert form.checks["requires_auth"].value == "" and ">ok<" in form.checks["username"].value
    # the marks are words on a colour, no glyph that needs an emoji font
    for box in form.checks.values():
        assert not any(ch in box.value for ch in "✓✗✅❌⚠")
    # a field only where it applies
    assert form.region.layout.display == "none"
    form.provider.value = "ses"
    assert form.region.layout.display is None
    form.provider.value = "custom"
    assert form.region.layout.display == "none"
    assert form.signin_button.layout.display == "none"      # password sign-in: no OAuth parts
    form.inputs["auth"].value = "oauth2"
    assert form.signin_button.layout.display is None
    assert form.password.widget.layout.display == "none"
    assert form._field("oauth_tenant").layout.display is None
    form.inputs["oauth_provider"].value = "google"
    assert form._field("oauth_tenant").layout.display == "none"   # Microsoft only
    # every button sizes to its label
    assert all(b.layout.width == "auto" for b in form.buttons)


def test_clearing_the_password_field_forgets_the_password(config_dir):
    form = widgets.relay_form(Profile(name="p"))
    form.password.set("s3cret-value")
    assert form.password.secret.reveal() == "s3cret-value"
    assert "s3cret" not in form.password.widget.value
    form.password.set("")                                   # the user clears the field
    assert form.password.secret is None
    form.password.set("another-one")
    assert form.password.secret.reveal() == "another-one"


def test_relay_form_shows_the_port_it_will_use(config_dir):
    """A new profile's port is 0, "the security's port": the form shows that port (587 for
    STARTTLS, 465 for TLS), checked, never a 0 with a green mark."""
    form = widgets.relay_form("fresh")
    assert form.inputs["port"].value == 587 and ">ok<" in form.checks["port"].value
    form = widgets.relay_form(Profile(name="tls", host="smtp.example.org", security="tls"))
    assert form.inputs["port"].value == 465 and form.profile.port == 465
    form = widgets.relay_form(Profile(name="own", host="smtp.example.org", port=2525,
                                      security="none"))
    assert form.inputs["port"].value == 2525               # a port of the user's own stays

