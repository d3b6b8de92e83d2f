"""Presets: the published settings of known providers (host, port, security, daily cap)."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, warn

if TYPE_CHECKING:
    from .profile import Profile
@dataclass(frozen=True)
class Preset:
    label: str
    host: str
    port: int
    security: str
    daily_cap: int | None
    note: str = ""
    username_hint: str = ""
    auth: str = "password"
    oauth_provider: str = ""
    transport: str = "smtp"
    rate: str = ""


PRESETS: dict[str, Preset] = {
    "custom": Preset("Custom", "", 587, "starttls", None),
    "gmail": Preset("Gmail", "smtp.gmail.com", 587, "starttls", 500,
                    "Gmail signs in with OAuth2: give the client id of your OAuth client (Google "
                    "Cloud console, a desktop app) and its secret in $MAILNB_OAUTH_CLIENT_SECRET, "
                    "then 'Sign in with Google' (or choose password and an app password). It "
                    "sends at most 500 messages a day (2,000 with Google Workspace).",
                    "you@gmail.com", auth="oauth2", oauth_provider="google"),
    "outlook": Preset("Outlook.com / Hotmail", "smtp-mail.outlook.com", 587, "starttls", 300,
                      "Outlook.com accounts send at most 300 messages a day.", "you@outlook.com"),
    "office365": Preset("Office 365", "smtp.office365.com", 587, "starttls", 10000,
                        "Microsoft 365 signs in with OAuth2 (passwords are off by default from "
                        "the end of December 2026): give the client id of your organisation's "
                        "app registration (SMTP.Send permission), then 'Sign in with Microsoft'. "
                        "It allows 10,000 recipients a day; SMTP AUTH must be enabled for the "
                        "mailbox.", "you@yourorg.example", auth="oauth2",
                        oauth_provider="microsoft"),
    "graph": Preset("Microsoft 365 (Graph)", "", 0, "tls", 10000,
                    "Microsoft Graph sends from the mailbox with OAuth2 (the app registration "
                    "needs the delegated Mail.Send permission). Exchange Online allows 30 "
                    "messages a minute and 10,000 recipients a day: the preset paces to that.",
                    "you@yourorg.example", auth="oauth2", oauth_provider="microsoft",
                    transport="graph", rate="30/min"),
    "ses": Preset("Amazon SES", "email-smtp.{region}.amazonaws.com", 587, "starttls", 200,
                  "Amazon SES: the username and password are SMTP credentials from the SES console; "
                  "the sandbox allows 200 messages a day to verified addresses.", "AKIA..."),
    "sendgrid": Preset("SendGrid", "smtp.sendgrid.net", 587, "starttls", 100,
                       "SendGrid: the username is the word 'apikey' and the password an API key.",
                       "apikey"),
    "mailgun": Preset("Mailgun", "smtp.mailgun.org", 587, "starttls", 100,
                      "Mailgun: SMTP credentials from the domain's settings page.",
                      "postmaster@mg.yourdomain.example"),
    "postmark": Preset("Postmark", "smtp.postmarkapp.com", 587, "starttls", None,
                       "Postmark: the username and password are both the server API token.", ""),
}


def preset(name: str, region: str = "us-east-1") -> Preset:
    try:
        p = PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown provider {name!r}; choose one of {sorted(PRESETS)}") from None
    if "{region}" in p.host:
        if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region):
            raise ConfigError(f"{region!r} is not an AWS region name like 'eu-west-1'")
        p = replace(p, host=p.host.format(region=region))
    return p


def apply_preset(profile: Profile, provider: str, region: str = "us-east-1") -> Profile:
    """A copy of the profile with the provider's server, port, security and daily limit filled in.
    Warns with the provider's note (Gmail: app passwords and 500 a day)."""
    p = preset(provider, region)
    if p.note:
        warn(p.note, stacklevel=2)
    changes: dict[str, Any] = {"provider": provider}
    if provider != "custom":
        changes.update(host=p.host, port=p.port, security=p.security,
                       daily_cap=p.daily_cap or 0, requires_auth=True, auth=p.auth,
                       transport=p.transport, rate=p.rate or profile.rate)
        if p.oauth_provider:
            changes["oauth_provider"] = p.oauth_provider
    return replace(profile, **changes)


