"""Replies: what people (and their mail programs) answer to a campaign.

``read_reply(raw)`` is pure: it tells an unsubscribe request ("STOP", "unsubscribe", "remove me" in
eight languages, or the token of the ``mailto:`` unsubscribe link) from a calendar response
(text/calendar ``METHOD:REPLY``, RFC 5546) and from an ordinary answer, reading only what the person
wrote above the quoted original. Out-of-office answers never get here: they are automatic
(RFC 3834), and :mod:`mailnb.bounces` records them as ``auto-reply``. Each reply names the messages
it answers (``In-Reply-To``, ``References``), so the journal can tell which recipient responded.
"""
from __future__ import annotations

import email
import email.policy
import re
import unicodedata
from dataclasses import dataclass, field
from email.message import Message

from .reports import clean, first_address, text_of

#: what "no more mail, please" looks like in a short reply: a reviewed list, by language. A reply
#: counts as a request only when the person's own text is short (a request is a few words, not a
#: letter that happens to contain "stop") and says no "don't"; or when the subject is one of them.
STOP_PHRASES: dict[str, tuple[str, ...]] = {
    "en": ("stop", "unsubscribe", "unsubscribe me", "remove me", "take me off", "opt out",
           "opt-out", "stop emailing me", "stop sending", "no more emails", "please remove me"),
    "de": ("abmelden", "abbestellen", "austragen", "bitte austragen", "abmeldung",
           "entfernen sie mich", "keine e-mails mehr", "keine mails mehr"),
    "fr": ("désabonner", "me désabonner", "désinscrire", "me désinscrire", "désinscription",
           "désabonnement", "retirez-moi", "supprimez-moi", "stop"),
    "es": ("baja", "darme de baja", "dar de baja", "cancelar suscripción", "eliminarme",
           "no más correos", "no enviar más"),
    "it": ("cancellami", "disiscrivimi", "annulla iscrizione", "rimuovimi", "cancellazione",
           "non inviate più"),
    "nl": ("afmelden", "uitschrijven", "schrijf me uit", "verwijder mij", "verwijder me"),
    "pt": ("descadastrar", "descadastre-me", "cancelar inscrição", "remova-me", "sair da lista",
           "parar"),
    "ja": ("配信停止", "配信解除", "登録解除", "購読解除", "購読停止", "メール不要"),
}
#: a short reply with one of these is not a request ("don't stop", "nicht abmelden")
NEGATIONS = ("not", "don't", "dont", "never", "nicht", "nie", "pas", "non", "niet", "nunca", "não")
#: words around a request that change nothing ("Stop, thanks", "Bitte austragen")
POLITE = ("please", "pls", "thanks", "thank", "you", "bitte", "danke", "merci", "svp", "por",
          "favor", "gracias", "grazie", "per", "piacere", "alstublieft", "aub", "dank", "u",
          "obrigado", "obrigada")
#: a request is a few words; a longer text is an answer that may quote the phrase
SHORT_WORDS = 12
SHORT_CHARS = 40          # for languages written without spaces (Japanese)

#: where the quoted original starts in the common mail programs (Gmail, Apple Mail, Thunderbird,
#: Outlook) in the eight languages above, and the signature separator (RFC 3676 4.3)
_QUOTE_START = re.compile(
    r"^(?:>|-{2,} ?(?:original message|ursprüngliche nachricht|message d'origine|mensaje original|"
    r"messaggio originale|oorspronkelijk bericht|mensagem original).*|_{10,}|-- ?$|"
    r"(?:on|am|le|el|il|op|em) .{4,200}(?:wrote|schrieb|a écrit|escribió|ha scritto|schreef|"
    r"escreveu) ?:|(?:from|von|de|da|van|差出人): .+@.+)", re.I | re.M)
_TOKEN = re.compile(r"unsubscribe[:%3a ]+([A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,})", re.I)
_SUBJECT_PREFIX = re.compile(r"^(?:(?:re|aw|sv|vs|wg|fw|fwd|tr|rif|r|antw|res|返信)\s*:\s*)+", re.I)
_IDS = re.compile(r"<[^<>\s]+>")


@dataclass
class Reply:
    """One reply: ``kind`` is ``unsubscribe``, ``calendar`` or ``answer``."""

    kind: str
    sender: str | None
    subject: str
    text: str
    answers: list[str] = field(default_factory=list)   # Message-IDs it refers to, newest first
    token: str | None = None                             # of the mailto: unsubscribe link
    partstat: str | None = None                          # ACCEPTED, DECLINED, TENTATIVE


def _plain(msg: Message) -> str:
    """The first text/plain part (or the first text/html one, as text)."""
    html = None
    for part in msg.walk():
        ctype = part.get_content_type()
        if part.get_content_disposition() == "attachment":
            continue
        if ctype == "text/plain":
            return text_of(part)
        if ctype == "text/html" and html is None:
            html = text_of(part)
    if html is None:
        return ""
    from ..compose.text import html_to_text
    return html_to_text(html)


def own_text(msg: Message) -> str:
    """What the person wrote: the text above the quoted original and the signature."""
    text = _plain(msg).replace("\r\n", "\n")
    cut = _QUOTE_START.search(text)
    return (text[:cut.start()] if cut else text).strip()


def _normal(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w'\-\s]", " ", text).split())


def _bare(line: str) -> str:
    return " ".join(w for w in _normal(line).split() if w not in POLITE)


def is_stop(text: str, subject: str = "") -> bool:
    """A request to hear no more: the subject is a stop phrase; or the first line of the
    person's own text is one ("STOP", "Bitte austragen"); or their short text holds a phrase of
    several words ("please remove me from this list") and no negation."""
    phrases = {_normal(p) for group in STOP_PHRASES.values() for p in group}
    if _bare(_SUBJECT_PREFIX.sub("", subject)) in phrases:
        return True
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    if _bare(first) in phrases:
        return True
    own = _normal(text)
    words = own.split()
    if not words or len(words) > SHORT_WORDS or (" " not in own and len(own) > SHORT_CHARS):
        return False
    if any(w in NEGATIONS for w in words):
        return False
    padded = f" {own} "
    # one word ("stop", "baja") decides only as the whole first line, above
    return any((" " in p and f" {p} " in padded) or (not p.isascii() and p in own)
               for p in phrases)


def calendar_reply(msg: Message) -> str | None:
    """The PARTSTAT of a calendar response (METHOD:REPLY), else None."""
    for part in msg.walk():
        if part.get_content_type() != "text/calendar":
            continue
        body = text_of(part)
        method = (part.get_param("method") or "")
        if str(method).upper() == "REPLY" or re.search(r"^METHOD:REPLY\s*$", body, re.M | re.I):
            found = re.search(r"PARTSTAT=([A-Z-]+)", body.replace("\r\n ", ""), re.I)
            return found.group(1).upper() if found else "REPLY"
    return None


def answered(msg: Message) -> list[str]:
    """The Message-IDs a message answers, nearest first: In-Reply-To, then References from the
    newest (RFC 5322 3.6.4)."""
    return list(reversed(_IDS.findall(" ".join(
        str(v) for v in msg.get_all("References", []) + msg.get_all("In-Reply-To", [])))))


def read_reply(raw: bytes) -> Reply:
    """What one reply is (pure: no journal, no network)."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    subject = clean(msg.get("Subject"))
    sender = first_address(str(msg.get("From") or ""))
    answers = answered(msg)
    text = own_text(msg)
    token = _TOKEN.search(f"{subject} {msg.get('To', '')}")
    partstat = calendar_reply(msg)
    if token or is_stop(text, subject):
        kind = "unsubscribe"
    elif partstat:
        kind = "calendar"
    else:
        kind = "answer"
    return Reply(kind, sender, subject, text[:4000], answers,
                 token.group(1) if token else None, partstat)
