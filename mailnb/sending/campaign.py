"""What to send to whom: a campaign's name, audience, template and sender, checked as a whole."""
from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..audience.recipients import Audience, normalize
from ..compose.checks import EMPTY_CHOICES
from ..compose.signing import DKIMKey
from ..compose.templates import CONTROL, Template
from ..compose.unsubscribe import Unsubscribe
from ..config.profile import Profile
from ..errors import ConfigError
from .plan import Item, Row


@dataclass
class Campaign:
    """What to send to whom: a name (the journal's key: the same name resumes), an audience, a
    template, and the sender's From, Reply-To and default footer.

    ``key`` names a column that identifies a recipient (default: the normalised address), so a row
    whose address changed is still the same person. ``headers`` are added to every message.
    ``email_format``: ``"both"`` (text and HTML, multipart/alternative), ``"text"`` or ``"html"``
    (one part only). ``bounce_address`` is the envelope sender (MAIL FROM, so Return-Path): where
    delivery reports go (default: the From address); ``verp=True`` makes it per message,
    ``local+<id>@domain``, so a report is matched to its recipient even when its text is not.

    ``data`` names objects every row's template can use (a DataFrame, an image, a callable that
    takes the row): personalised reports (:mod:`mailnb.embeds`). ``empty`` says what a row whose
    report selection is empty gets: ``"error"`` (the preflight stops), ``"skip"`` or ``"send"``.

    ``follow_up`` names an earlier campaign: this one is a reminder, sent only to the recipients
    that campaign reached, each threaded to their original message (In-Reply-To, References).

    Compliance by default: every message of a non-transactional audience carries a one-click
    List-Unsubscribe (``unsubscribe``, default: a ``mailto:`` to the Reply-To or From address with a
    signed token; ``{{ unsubscribe_url }}`` is the link for templates), and ``dkim`` signs every
    message.
    """

    name: str
    audience: Audience
    template: Template
    from_addr: str
    from_name: str | None = None
    reply_to: str | None = None
    footer: str | None = None
    footer_html: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    key: str | None = None
    email_format: str = "both"
    follow_up: str | None = None
    unsubscribe: Unsubscribe | None = None
    dkim: DKIMKey | None = None
    bounce_address: str | None = None
    verp: bool = False
    data: Mapping[str, Any] = field(default_factory=dict)
    empty: str = "error"

    @classmethod
    def from_profile(cls, profile: Profile, name: str, audience: Audience, template: Template, *,
                     alternate: bool | None = None, **overrides: Any) -> Campaign:
        """A campaign with From, Reply-To, footer, format, bounce address, unsubscribe links and
        DKIM from a profile's preferences (``alternate=True``, or the profile's
        ``alternate_from``: the alternate From, falling back to the main one). ``overrides`` that
        are None are ignored."""
        use_alt = profile.alternate_from if alternate is None else alternate
        from_addr, from_name = profile.sender(use_alt)
        values: dict[str, Any] = {"from_addr": from_addr, "from_name": from_name,
                                  "reply_to": profile.reply_to or None,
                                  "footer": profile.footer or None,
                                  "email_format": profile.email_format,
                                  "bounce_address": profile.bounce_address or None,
                                  "verp": profile.verp, "key": profile.key_column or None}
        if profile.unsubscribe_mailto or profile.unsubscribe_url:
            values["unsubscribe"] = Unsubscribe(mailto=profile.unsubscribe_mailto or None,
                                                url=profile.unsubscribe_url or None)
        if profile.dkim_key_file:
            values["dkim"] = DKIMKey.from_file(profile.dkim_key_file, profile.dkim_selector,
                                               profile.dkim_domain or from_addr.rpartition("@")[2])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(name, audience, template, **values)

    def unsubscribe_links(self) -> Unsubscribe:
        """The links every bulk message carries: always a ``mailto:`` (some mail programs use
        only that one), to the Reply-To or From address unless one is given, and the https
        link when there is one."""
        mailto = self.reply_to or self.from_addr
        if self.unsubscribe is None:
            return Unsubscribe(mailto=mailto)
        if self.unsubscribe.mailto:
            return self.unsubscribe
        return replace(self.unsubscribe, mailto=mailto)

    @functools.cached_property
    def links_and_secret(self) -> tuple[Unsubscribe, bytes]:
        """:meth:`unsubscribe_links` and the secret that signs their tokens, read once."""
        links = self.unsubscribe_links()
        return links, links.key()

    def envelope_from(self, message_id: str | None) -> str:
        """MAIL FROM: the bounce address (per message with VERP), else the From address."""
        base = self.bounce_address or self.from_addr
        if not self.verp or not message_id:
            return base
        local, _, domain = base.rpartition("@")
        return f"{local}+{message_id.strip('<>').partition('@')[0]}@{domain}"

    def validate(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or CONTROL.search(self.name) \
                or len(self.name) > 200:
            raise ConfigError(f"campaign name {self.name!r} must be a non-empty line of text (at "
                              "most 200 characters): it identifies the campaign in the journal")
        if not isinstance(self.audience, Audience):
            raise ConfigError("Campaign.audience must be a mailnb.Audience; build it with "
                              "mailnb.Audience(df, 'email')")
        if not isinstance(self.template, Template):
            raise ConfigError("Campaign.template must be a mailnb.Template")
        for label, value in (("from_addr", self.from_addr), ("reply_to", self.reply_to),
                             ("bounce_address", self.bounce_address)):
            if value is None and label != "from_addr":
                continue
            try:
                normalize(str(value), allow_test_domains=True)
            except Exception as err:
                raise ConfigError(f"{label} {value!r} is not a valid address: {err}") from None
        if self.email_format not in ("both", "text", "html"):
            raise ConfigError(f"email_format must be 'both', 'text' or 'html', not "
                              f"{self.email_format!r}")
        if self.key is not None and self.key not in self.audience.sendable.columns:
            raise ConfigError(f"key column {self.key!r} is not in the audience; the columns are "
                              f"{list(self.audience.sendable.columns)}")
        if self.empty not in EMPTY_CHOICES:
            raise ConfigError(f"empty must be one of {', '.join(EMPTY_CHOICES)}, not "
                              f"{self.empty!r}")
        if not isinstance(self.data, Mapping):
            raise ConfigError("data must be a dict of names to DataFrames, images or callables")
        for name in self.data:
            if not str(name).isidentifier():
                raise ConfigError(f"data name {name!r} is not usable in a template: use letters, "
                                  "digits and _ (not first a digit)")
            if name in self.audience.sendable.columns:
                raise ConfigError(f"data name {name!r} is also a column of the recipients: "
                                  "rename one, so a template says which it means")
        if self.follow_up is not None and self.follow_up == self.name:
            raise ConfigError("a follow-up needs a campaign name of its own, e.g. "
                              f"{self.name + '-reminder'!r}")

    def recipients(self) -> list[Item]:
        """One item a sendable row, its merge fields a view of the audience's columns."""
        aud = self.audience
        items: list[Item] = []
        seen: dict[str, Any] = {}
        frame = aud.sendable
        columns = {str(c): frame.iloc[:, k].tolist() for k, c in enumerate(frame.columns)}
        keys = columns[self.key] if self.key else aud.keys.tolist()
        for pos, (idx, address, akey, utf8) in enumerate(zip(
                frame.index, aud.addresses.tolist(), keys, aud.smtputf8.tolist())):
            key = akey
            if self.key:
                if akey is None or (isinstance(akey, float) and math.isnan(akey)) or \
                        str(akey) == "":
                    raise ConfigError(f"row {idx!r}, column {self.key!r}: the key is empty; every "
                                      "row needs a key when key= is set")
                key = str(akey)
                if key in seen:
                    raise ConfigError(f"row {idx!r}, column {self.key!r}: key {key!r} is also in "
                                      f"row {seen[key]!r}; keys must be unique")
                seen[key] = idx
            items.append(Item(idx, key, address, utf8, Row(columns, pos)))
        return items
