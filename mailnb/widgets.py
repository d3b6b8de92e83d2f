"""ipywidgets forms for the relay, the sending preferences and the bounce mailbox.

Thin views over plain functions: each field edits a :class:`~mailnb.settings.Profile` attribute and
is checked live with ``Profile.problems()``; each button calls a function a script can call too
(``check_relay``, ``send_test_message``, ``Profile.save``, ``mailbox.list_folders``). Passwords are
typed into a password field, moved at once into a :class:`~mailnb.settings.Secret` held in memory,
and the field is cleared, so the value is not kept in the widget's state or the notebook.
"""
from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import ipywidgets as W

from .config.oauth import login
from .config.presets import PRESETS, apply_preset
from .config.profile import Profile
from .config.registry import Setting, setting
from .config.secrets import Secret
from .config.targets import DEFAULT_PORTS
from .errors import MailnbError
from .inbound.mailbox import list_folders
from .sending.trial import send_test_message
from .transports.check import check_relay
from .transports.dnscheck import check_sender
from .util.marks import WRAP, mark, marked

_WIDE = {"description_width": "150px"}


def _button(label: str, icon: str) -> W.Button:
    """A button as wide as its whole label."""
    return W.Button(description=label, icon=icon, tooltip=label,
                    layout=W.Layout(width="auto", min_width="max-content"))


def _row(children: list[W.Widget]) -> W.HBox:
    """Widgets side by side that wrap to the next line in a narrow cell."""
    return W.HBox(children, layout=W.Layout(flex_flow="row wrap", align_items="center"))


class _Form(W.VBox):
    """A form bound to profile attributes: (attribute, label, widget) rows with a live check each."""

    children: tuple[Any, ...]                       # ipywidgets' trait, typed for mypy
    FIELDS: tuple[str, ...] = ()                    # the profile settings it edits, in order
    WIDGETS: dict[str, Callable[[], W.Widget]] = {}  # a widget other than the registry's kind
    TITLE = ""

    def __init__(self, profile: Profile | None = None) -> None:
        # the forms share one profile: what one form changes, the others save too
        self.profile = profile if profile is not None else Profile()
        self.inputs: dict[str, W.Widget] = {}
        self.checks: dict[str, W.HTML] = {}
        rows: list[W.Widget] = [W.HTML(f"<b>{self.TITLE}</b>")]
        for attr in self.FIELDS:
            make = self.WIDGETS.get(attr)
            w = make() if make is not None else _widget(setting(attr))
            w.description = setting(attr).label or attr
            w.style = _WIDE
            w.value = getattr(self.profile, attr)
            w.observe(self._changed, names="value")
            self.inputs[attr] = w
            self.checks[attr] = W.HTML(layout=W.Layout(flex="0 1 auto", min_width="0"))
            rows.append(_row([w, self.checks[attr]]))
        self.message = W.HTML(layout=W.Layout(width="100%"))
        self.buttons = self._buttons()
        rows += [_row(self.buttons), self.message]
        super().__init__(rows)
        self.validate()

    def _buttons(self) -> list[W.Widget]:
        self.save_button = _button("Save profile", "save")
        self.save_button.on_click(lambda _: self.save())
        return [self.save_button]

    def _changed(self, change: dict[str, Any]) -> None:
        self.validate()

    def read(self) -> Profile:
        """The profile with the form's values."""
        for attr, w in self.inputs.items():
            value = w.value
            if isinstance(getattr(Profile(), attr), str) and value is None:
                value = ""
            setattr(self.profile, attr, value)
        return self.profile

    def validate(self) -> dict[str, str]:
        """Check every field; show a check mark or the reason next to it. Returns the problems."""
        problems = self.read().problems()
        for attr, box in self.checks.items():
            if attr in problems:
                box.value = marked("failed", problems[attr])
            else:
                value = self.inputs[attr].value
                box.value = "" if value in ("", None) or isinstance(value, bool) else mark("ok")
        return problems

    def say(self, text: str, ok: bool = True) -> None:
        self.message.value = marked("ok" if ok else "failed", text)

    def save(self) -> str:
        """Save the profile (never a password). Returns the path, or the reason it failed."""
        try:
            path = self.read().save()
        except MailnbError as err:
            self.say(str(err), ok=False)
            return str(err)
        self.say(f"saved {path}")
        return str(path)


def _text() -> W.Text:
    return W.Text(continuous_update=True)


def _int() -> W.IntText:
    return W.IntText()


def _widget(s: Setting) -> W.Widget:
    """A setting's widget by its kind: a tick box, a whole number, a choice, or text."""
    if s.kind is bool:
        return W.Checkbox(indent=False)
    if s.choices:
        return W.Dropdown(options=list(s.choices))
    return _int() if s.kind is int else _text()


class _PasswordField:
    """A password field whose value moves into a Secret at once. The field then holds a stand-in
    (never the password, so the widget state and the notebook never do); clearing the field
    forgets the password."""

    STAND_IN = "\u2022" * 8
    EMPTY = "typed here, kept in memory only"

    def __init__(self, label: str) -> None:
        self.secret: Secret | None = None
        self.widget = W.Password(description=label, continuous_update=False,
                                 placeholder=self.EMPTY, style=_WIDE)
        self.widget.observe(self._take, names="value")

    def _take(self, change: dict[str, Any]) -> None:
        new = change["new"]
        if new == self.STAND_IN:
            return
        if not new:
            self.secret = None
            self.widget.placeholder = self.EMPTY
            return
        self.secret = Secret(new)
        self.widget.value = self.STAND_IN
        self.widget.placeholder = "held in memory for this session"

    def set(self, value: str) -> None:
        self.widget.value = value


class RelayForm(_Form):
    """The relay: provider preset, server, port, security, login; Test connection, Send test
    message, Save profile."""

    TITLE = "SMTP relay"
    FIELDS = ("host", "port", "security", "requires_auth", "username", "auth", "oauth_provider",
              "oauth_client_id", "oauth_tenant", "helo", "cafile", "verify", "pop_before_smtp")
    WIDGETS = {
        "auth": lambda: W.Dropdown(options=[("password", "password"), ("OAuth2", "oauth2")]),
        "oauth_provider": lambda: W.Dropdown(
            options=[("Microsoft 365", "microsoft"), ("Google", "google")]),
    }

    def __init__(self, profile: Profile | None = None) -> None:
        self.password = _PasswordField("Password")
        self.provider = W.Dropdown(options=[(p.label, k) for k, p in PRESETS.items()],
                                   description="Provider", style=_WIDE)
        self.region = W.Text(value="us-east-1", description="SES region", style=_WIDE)
        self.note = W.HTML(layout=W.Layout(width="100%"))
        self.test_to = W.Text(description="Test to", placeholder="you@example.org", style=_WIDE)
        super().__init__(profile)
        port = self.inputs["port"]
        if not port.value:     # 0 means the security's port: the form shows that port, not 0
            port.value = DEFAULT_PORTS.get(self.inputs["security"].value, 587)
        self.provider.value = self.profile.provider if self.profile.provider in PRESETS else "custom"
        self.provider.observe(lambda _: self.use_preset(), names="value")
        self.inputs["security"].observe(self._security_changed, names="value")
        for attr in ("auth", "oauth_provider"):
            self.inputs[attr].observe(lambda _: self._show_fields(), names="value")
        self._show_fields()
        self.children = (self.children[:1] + (self.provider, self.region, self.note)
                         + self.children[1:-2] + (self.password.widget, self.test_to)
                         + self.children[-2:])

    def _buttons(self) -> list[W.Widget]:
        self.signin_button = _button("Sign in with Microsoft", "sign-in")
        self.signin_button.on_click(lambda _: self.sign_in())
        self.signin_thread: threading.Thread | None = None
        self.test_button = _button("Test connection", "plug")
        self.test_button.on_click(lambda _: self.test_connection())
        self.send_button = _button("Send test message", "envelope")
        self.send_button.on_click(lambda _: self.send_test())
        return [self.signin_button, self.test_button, self.send_button, *super()._buttons()]

    def sign_in(self) -> threading.Thread | None:
        """OAuth2 device code (``mailnb.config.oauth.login``): the form shows the URL and the code, and
        says when the sign-in is done. It runs in a thread, so the notebook stays usable."""
        prof = replace(self.read(), auth="oauth2")
        try:
            oauth = prof.oauth()
            oauth.validate()
        except MailnbError as err:
            self.say(str(err), ok=False)
            return None

        def run() -> None:
            try:
                login(oauth, show=lambda text: self.say(text))
            except MailnbError as err:
                self.say(f"sign-in failed: {err}", ok=False)
                return
            self.inputs["auth"].value = "oauth2"
            self.say(f"ok: signed in as {oauth.username}; sends sign in by themselves now")

        self.signin_thread = threading.Thread(target=run, name="mailnb-sign-in", daemon=True)
        self.signin_thread.start()
        return self.signin_thread

    def _show_fields(self) -> None:
        """Show a field only where it applies: the SES region for SES, the OAuth2 fields and the
        sign-in button with OAuth2 (the tenant for Microsoft), the password without it."""
        google = self.inputs["oauth_provider"].value == "google"
        oauth = self.inputs["auth"].value == "oauth2"
        self.signin_button.description = f"Sign in with {'Google' if google else 'Microsoft'}"
        shown = {self.region: self.provider.value == "ses", self.signin_button: oauth,
                 self.password.widget: not oauth, self._field("oauth_provider"): oauth,
                 self._field("oauth_client_id"): oauth,
                 self._field("oauth_tenant"): oauth and not google}
        for widget, visible in shown.items():
            widget.layout.display = None if visible else "none"

    def _field(self, attr: str) -> W.Widget:
        """The row of a field (the input and its check)."""
        return next(c for c in self.children if isinstance(c, W.HBox)
                    and self.inputs[attr] in c.children)

    def _security_changed(self, change: dict[str, Any]) -> None:
        """The port follows the security choice unless the user set one of their own."""
        port = self.inputs["port"]
        if port.value in (0, DEFAULT_PORTS.get(change["old"])):
            port.value = DEFAULT_PORTS[change["new"]]

    def use_preset(self) -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                updated = apply_preset(self.read(), self.provider.value, self.region.value)
            except MailnbError as err:
                self.say(str(err), ok=False)
                return
        for attr in ("host", "port", "security", "requires_auth", "auth"):
            self.inputs[attr].value = getattr(updated, attr)
        if updated.oauth_provider in ("microsoft", "google"):
            self.inputs["oauth_provider"].value = updated.oauth_provider
        self.profile.provider = updated.provider
        self.profile.daily_cap = updated.daily_cap
        self.note.value = "".join(marked("warning", str(w.message)) for w in caught)
        self._show_fields()

    def test_connection(self) -> Any:
        """Connect, TLS, login, quit (``check_relay``); shows each step. Returns the report."""
        try:
            report = check_relay(self.read().relay(self.password.secret))
        except MailnbError as err:
            self.say(str(err), ok=False)
            return None
        self.message.value = report._repr_html_()
        return report

    def send_test(self) -> Any:
        """Send one test message to the address in "Test to"."""
        prof = self.read()
        try:
            result = send_test_message(prof.relay(self.password.secret), self.test_to.value,
                                       from_addr=prof.from_addr or prof.username,
                                       from_name=prof.from_name or None)
        except MailnbError as err:
            self.say(str(err), ok=False)
            return None
        self.say(f"test message: {result.status} ({result.reply})", ok=result.ok)
        return result


class PreferencesForm(_Form):
    """From, Reply-To, footer, format, pacing, exclusion policy and journal."""

    TITLE = "Sending preferences"
    FIELDS = ("from_addr", "from_name", "alt_from_addr", "alt_from_name", "reply_to", "footer",
              "email_format", "rate", "daily_cap", "block_size", "block_pause", "concurrency",
              "limit", "exclusion_policy", "journal", "unsubscribe_mailto", "unsubscribe_url",
              "dkim_selector", "dkim_domain", "dkim_key_file")
    WIDGETS = {
        "footer": lambda: W.Textarea(rows=3),
        "concurrency": lambda: W.BoundedIntText(min=1, max=100),
        "exclusion_policy": lambda: W.Dropdown(
            options=[("all campaigns", "global"), ("per campaign", "campaign")]),
    }

    def _buttons(self) -> list[W.Widget]:
        self.check_button = _button("Check sender domain", "check")
        self.check_button.on_click(lambda _: self.check_sender())
        return [self.check_button, *super()._buttons()]

    def check_sender(self) -> Any:
        """SPF, DKIM and DMARC of the From domain (``dnscheck.check_sender``)."""
        try:
            report = check_sender(self.read())
        except MailnbError as err:
            self.say(str(err), ok=False)
            return None
        self.message.value = report._repr_html_()
        return report


class BounceForm(_Form):
    """The bounce mailbox: IMAP server, login, the folder to monitor, the threshold."""

    TITLE = "Bounce mailbox"
    FIELDS = ("imap_host", "imap_port", "imap_security", "imap_username", "imap_cafile",
              "bounce_address", "bounce_folder", "bounce_threshold", "processed_folder")
    WIDGETS = {"bounce_folder": lambda: W.Combobox(ensure_option=False)}

    def __init__(self, profile: Profile | None = None) -> None:
        self.password = _PasswordField("IMAP password")
        super().__init__(profile)
        self.children = self.children[:-2] + (self.password.widget,) + self.children[-2:]

    def _buttons(self) -> list[W.Widget]:
        self.list_button = _button("List folders", "folder")
        self.list_button.on_click(lambda _: self.list_folders())
        return [self.list_button, *super()._buttons()]

    def list_folders(self) -> list[str]:
        """Fetch the mailbox's folders and offer them in the Folder field."""
        try:
            names = list_folders(self.read(), password=self.password.secret)
        except MailnbError as err:
            self.say(str(err), ok=False)
            return []
        self.inputs["bounce_folder"].options = names
        self.say(f"{len(names)} folders: {', '.join(names)}")
        return names


class TestSendForm(W.VBox):
    """"Send me a test first": the first messages of a campaign, exactly as they will go out,
    to your own address (``Job.send_test``, as ``mailnb send --test-to`` does)."""

    def __init__(self, job: Any) -> None:
        self.job = job
        self.to = W.Text(description="Your address", placeholder="you@example.org", style=_WIDE,
                         value=job.test_to or "")
        self.rows = W.BoundedIntText(description="Messages", min=1, max=20,
                                     value=job.test_rows or 1, style=_WIDE)
        self.button = _button("Send test to me", "envelope")
        self.button.on_click(lambda _: self.send())
        self.message = W.HTML(layout=W.Layout(width="100%"))
        super().__init__([W.HTML("<b>Send me a test first</b>"), self.to, self.rows,
                          self.button, self.message])

    def send(self) -> Any:
        """Send the test; show what went where. Returns the result frame (None on an error)."""
        try:
            out = self.job.send_test(self.to.value, self.rows.value)
        except MailnbError as err:
            self.message.value = marked("failed", str(err))
            return None
        ok = bool((out["status"] == "sent").all())
        self.message.value = (marked("ok" if ok else "failed",
                                     f"{len(out)} test message(s) to {self.to.value}; nothing "
                                     "was journaled")
                              + f"<div style='{WRAP}'>{out.to_html()}</div>")
        return out


def test_send_form(job: Any) -> TestSendForm:
    return TestSendForm(job)


def relay_form(profile: Profile | str | None = None) -> RelayForm:
    return RelayForm(_profile(profile))


def preferences_form(profile: Profile | str | None = None) -> PreferencesForm:
    return PreferencesForm(_profile(profile))


def bounce_form(profile: Profile | str | None = None) -> BounceForm:
    return BounceForm(_profile(profile))


def _profile(profile: Profile | str | None) -> Profile:
    if isinstance(profile, Profile):
        return profile
    try:
        return Profile.load(profile)
    except MailnbError:
        return Profile(name=profile or "default")
