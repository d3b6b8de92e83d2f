"""Bounces: parse delivery reports, classify why mail failed, and keep bad addresses off the list.

Pure functions first: ``parse(raw) -> list[Bounce]`` reads RFC 3464 delivery-status reports, RFC 5965
feedback reports (complaints), RFC 3834 auto-replies and the free-text formats of the common mail
servers (recipients found with flufl.bounce where the report has no structure). ``classify`` names the
reason from the server's words, the enhanced status code and the reply code.

Then the I/O: ``process_bounces(profile)`` reads the bounce mailbox, records each bounce in the journal
against its campaign and recipient (mailnb's messages carry ``X-Mailnb-Campaign`` and a Message-ID that
a bounce quotes), marks each message processed only after that, and suppresses addresses past the
threshold.
"""
from __future__ import annotations

import email
import email.parser
import email.policy
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from email.message import Message
from pathlib import Path
from typing import Any

import pandas as pd

from .journal import open_journal
from .mailbox import Mailbox, Session

#: every reason a bounce can have (the issue's list and the few finer ones real servers give)
REASONS = ("userunknown", "hostunknown", "hasmoved", "mailboxfull", "expired", "filtered",
           "blocked", "rejected", "spamdetected", "suspend", "policyviolation", "networkerror",
           "systemerror", "toomanyconn", "mesgtoobig", "exceedlimit", "securityerror",
           "norelaying", "requireptr", "authfailure", "badreputation", "virusdetected",
           "syntaxerror", "notaccept", "notcompliantrfc", "contenterror", "speeding",
           "systemfull", "mailererror", "failedstarttls", "onhold", "undefined")
HARD = {"userunknown", "hostunknown", "hasmoved"}
KINDS = ("bounce", "feedback", "auto-reply", "delivered", "unmatched")
#: RFC 3464 2.3.3 actions that report a success (and RFC 3461's "deliverable" of a verify
#: request); with a 2.x.x status (RFC 3463: success) a report is never a bounce either
DELIVERED = ("delivered", "relayed", "expanded", "deliverable")


@dataclass
class Bounce:
    """One failed (or reported) recipient of one report."""

    recipient: str | None
    status: str | None
    reply_code: int | None
    diagnostic: str
    reason: str
    hard: bool
    kind: str = "bounce"
    action: str | None = None
    message_id: str | None = None
    campaign: str | None = None
    remote_mta: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_bounce(self) -> bool:
        return self.kind == "bounce"


# -- classification -------------------------------------------------------------------------------
# What servers say, by reason. Checked in order on the lower-cased diagnostic: the first reason with
# a match wins, so narrower reasons come before the broad ones they overlap with.
_PATTERNS: list[tuple[str, tuple[str, ...]]] = [
    ("mailererror", (r"pipe to \|",)),        # Exim: the local delivery program failed
    ("spamdetected", (
        r"spam classification", r"considered unsolicited", r"classified as (?:spam|junk)",
    )),
    ("blocked", (
        r"client host (?:\[?[\d.]+\]? )?(?:rejected|blocked)", r"refused to talk to me",
        r"service refus", r"ip source bloquee", r"messages from [\d.]+ weren't sent",
        r"please use (?:the )?smtp (?:server|relay) of your", r"my name was rejected",
        r"(?:is|as) an open relay",
    )),
    ("userunknown", (
        r"recipient address rejected: (?:access denied|user unknown|unknown user|invalid user)",
        r"recip(?:ient)?notfound", r"address couldn't be found",
    )),
    ("notaccept", (r"null mx",)),
    ("networkerror", (r"dns error",)),            # a failed lookup, retried by the sender
    ("hasmoved", (r"\b551 not our customer",)),  # 551: user not local
    ("hostunknown", (
        r"the account or domain may not exist",
        r"(?<![@\w.-])[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,24} (?:does not|doesn't) exist",
        r"host or domain name not found", r"domain (?:name )?(?:not found|does not exist)",
        r"no such domain", r"unrouteable address",
    )),
    ("notcompliantrfc", (
        r"rfc ?5322", r"rfc ?2822", r"not (?:rfc[- ]?)?compliant", r"duplicate header",
        r"multiple (?:from|to|subject|date|message-id)", r"(?:malformed|invalid|missing) (?:header|date|message-id|from)",
        r"message is not rfc", r"headers? (?:are|is) not (?:compliant|valid)", r"bare (?:lf|cr|linefeed)",
        r"multiple addresses in (?:from|to|sender)", r"duplicate header",
        r"message contains bare",
    )),
    ("badreputation", (
        r"(?:ip|sender|domain|low|poor|bad) reputation", r"reputation (?:of|is)", r"sending reputation",
        r"temporarily deferred due to (?:user|unexpected volume)",
    )),
    ("toomanyconn", (
        r"frequency limited", r"connection rate limit",
        r"too many (?:connections|concurrent|simultaneous|sessions|smtp sessions|open connections)",
        r"connection (?:limit|rate)", r"too many recipients", r"maximum (?:number of )?connections",
        r"too many (?:hosts|hops)? ?connections",
    )),
    ("speeding", (
        r"too many recipients this hour", r"sent to too many recipients",
        r"rate limit", r"rate-limit", r"ratelimit", r"sending rate", r"too many (?:messages|emails|mails) (?:in|from|per|sent)",
        r"throttl", r"too fast", r"exceeded (?:the )?(?:message|sending|hourly|daily) (?:rate|limit|quota)",
        r"message rate", r"receiving mail (?:too quickly|at a rate)",
    )),
    ("mailboxfull", (
        r"mailbox exceeds",
        r"mailbox (?:is )?full", r"mail ?box (?:is )?(?:currently )?(?:over|full)",
        r"over ?quota", r"quota (?:exceeded|full|violation)", r"exceeded? (?:the )?(?:storage|quota)",
        r"exceeds? (?:its |the |his |her )?(?:mailbox |disk |storage )?quota",
        r"(?:user|recipient|account|mailbox)(?:'s)? (?:is |has )?(?:over|exceeded) (?:the |its )?(?:quota|storage|size)",
        r"insufficient (?:disk )?(?:space|storage) (?:for|in) (?:the )?(?:user|mailbox|recipient)",
        r"mailbox (?:size )?limit", r"disk quota", r"inbox is full", r"full mailbox",
        r"mailfolder is full", r"account is full", r"maildir (?:over|exceeded)",
        r"too much mail data", r"mailbox has exceeded", r"not enough (?:storage|space) in (?:the )?mailbox",
        r"user has too many messages", r"mailbox exceeded", r"storage (?:space )?(?:quota|limit)",
        r"(?:out of|over the) storage", r"account (?:is )?over",
    )),
    ("mesgtoobig", (
        r"message (?:is )?too (?:big|large)", r"message (?:size|length) exceeds? (?:fixed|the (?:maximum|fixed)|maximum|system)",
        r"message size (?:is )?(?:larger|greater|over)", r"exceeds? (?:the )?(?:maximum|max) (?:allowed )?(?:message )?size",
        r"size (?:of the message )?exceeds", r"too big for", r"message too long", r"mail size (?:limit|exceeded)",
        r"message (?:was )?(?:rejected )?(?:because it )?exceeds? the size", r"maximum message size",
        r"message exceeds (?:the )?(?:local )?size", r"(?:email|mail) is too large", r"size limit exceeded",
        r"message file too big", r"line limit exceeded", r"message exceeded .*size",
    )),
    ("exceedlimit", (
        r"message length exceeds administrative limit", r"exceeds? (?:the )?(?:administrative|per-user|recipient) limit",
        r"message (?:header )?size exceeds limit",
    )),
    ("suspend", (
        r"is inactive",
        r"account (?:has been |is )?(?:disabled|suspended|locked|frozen|inactive|deactivated|closed|blocked)",
        r"(?:mailbox|user|recipient|address) (?:is |has been )?(?:disabled|suspended|inactive|deactivated|frozen|locked)",
        r"suspended", r"is not active", r"inactive (?:user|account|mailbox)", r"not an active",
        r"temporarily disabled", r"mailbox unavailable.{0,40}inactive", r"currently inactive",
        r"user account (?:is )?(?:unavailable|expired)", r"account expired", r"deactivated",
        r"recipient (?:is )?(?:not )?(?:receiving|accepting) (?:mail|email|messages)",
        r"mailbox (?:is )?(?:currently )?(?:disabled|unavailable for)", r"mailbox is frozen",
        r"is disabled", r"temporar(?:y|ily) locked",
        r"extended inactivity", r"disabled (?:user|recipient|account|mailbox)", r"this account has been",
    )),
    ("hasmoved", (
        r"(?:has|have) moved", r"mailbox (?:has )?moved", r"no longer (?:valid|available|in use|with|at|accepts|receives)",
        r"address (?:has )?changed", r"moved to", r"is no longer", r"new address",
    )),
    ("norelaying", (
        r"not configured to relay", r"identities failed the check", r"email address is not verified",
        r"relay(?:ing)? (?:access )?(?:denied|not (?:permitted|allowed)|prohibited|refused)",
        r"not (?:permitted|allowed|authori[sz]ed) to relay", r"unable to relay", r"we do not relay",
        r"no relaying", r"relay not permitted", r"relaying mail to .{0,60} is not allowed",
        r"not a gateway", r"relay prohibited", r"relay rejected", r"cannot relay", r"can't relay",
        r"not (?:in|on) (?:my|our) list of (?:allowed )?rcpthosts", r"sorry, that domain isn't in my list",
        r"relaying denied", r"relay access", r"open relay", r"not accepting mail for this domain",
        r"insecure mail relay",
    )),
    ("authfailure", (
        r"\bspf\b", r"\bdkim\b", r"\bdmarc\b", r"sender policy framework",
        r"does not have authentication information",
        r"(?:fails?|failed|failing) (?:to pass )?(?:sender )?authentication",
        r"not pass authentication", r"unauthenticated (?:email|mail)", r"domain authentication",
        r"\bptr\b.{0,40}spf", r"authentication check", r"sender id",
    )),
    ("requireptr", (
        r"reverse (?:dns|lookup|hostname|name|mapping)", r"\bptr\b", r"\brdns\b", r"no (?:valid )?hostname",
        r"cannot find your (?:reverse )?hostname", r"(?:does not|doesn't) have a reverse",
        r"client host .{0,60}(?:dns|reverse)", r"cannot resolve (?:your|the) (?:address|hostname|ip)",
        r"unverif(?:i|y)able", r"mismatches client ip", r"ip name lookup failed",
        r"unresolvable (?:client|host|ip)", r"ip name lookup failed", r"no reverse",
        r"needs a valid hostname", r"hostname (?:does not|doesn't) match",
    )),
    ("virusdetected", (
        r"virus", r"malware", r"infected", r"trojan", r"worm\b", r"malicious (?:content|code|attachment)",
    )),
    ("spamdetected", (
        r"\bspam\b", r"junk (?:mail|e-?mail)", r"\bbulk (?:mail|e-?mail)", r"unsolicited",
        r"content (?:was )?(?:rejected|blocked)", r"message content rejected", r"looks like spam",
        r"classified as spam", r"spam ?assassin", r"spamtrap", r"spam score", r"spammy",
        r"considered (?:as )?(?:spam|unsolicited)", r"message (?:was )?(?:identified|detected) as",
        r"high probability of", r"rejected as (?:spam|bulk)", r"suspicious", r"phish",
        r"blocked (?:by|because of) (?:our )?content", r"uce\b",
    )),
    ("contenterror", (
        r"improper use of 8-bit", r"8-?bit data", r"(?:illegal|invalid|bad) (?:character|mime|content)",
        r"header line too long", r"message header (?:size )?exceeds",
    )),
    ("policyviolation", (
        r"policy", r"prohibited (?:attachment|file|content)", r"(?:attachment|file) type",
        r"not allowed by", r"violat", r"restricted (?:content|attachment)", r"attachments? (?:not allowed|blocked)",
        r"local (?:administrative|security) (?:policy|rules)", r"content presents a potential",
    )),
    ("securityerror", (
        r"unauthenticated senders?", r"authentication (?:is )?required",
    )),
    ("filtered", (
        r"recipient preferences", r"user refuses", r"user reject", r"blocked by the recipient",
        r"message filtered", r"only accepting mail from specific", r"rejected due to user rules",
        r"refuse to receive", r"account is protected by", r"has restricted sms",
    )),
    ("rejected", (
        r"sender (?:address )?(?:rejected|refused|denied|blocked|not allowed|invalid|unknown|verify failed)",
        r"domain of sender (?:address )?(?:does not|doesn't) exist", r"sender domain (?:must|does not|doesn't)",
        r"sender (?:is )?(?:not )?(?:allowed|authorized|permitted)", r"envelope sender",
        r"mail from (?:address )?(?:rejected|refused|denied)", r"(?:bad|invalid|unknown) sender",
        r"return.?path", r"sender verification", r"sender address", r"from address (?:rejected|not allowed)",
        r"your (?:e-?mail )?address (?:has been|is) (?:rejected|blocked|blacklisted)",
        r"refused to accept (?:your|the) (?:message|mail)", r"sender .{0,40}(?:rejected|denied|refused)",
        r"we do not accept mail from", r"purported responsible address",
        r"not a member of (?:this|the) (?:mailing )?list", r"permission to post", r"from: domain",
        r"groups\.google\.com", r"google-?(?:gruppe|group)",
    )),
    ("networkerror", (
        r"name service error", r"dns error", r"host not found, try again", r"name server reply",
        r"host name lookup failure", r"lost connection with .{0,80} while", r"temporary lookup failure",
        r"nxdomain",
    )),
    ("notaccept", (
        r"doesn't receive (?:e-?)?mail",
        r"(?:does not|doesn't|do not) accept (?:any )?(?:mail|e-?mail|messages)", r"null mx", r"not accepting (?:any )?(?:mail|messages)",
        r"no mx (?:record )?found", r"couldn't find a mail exchanger", r"no (?:valid )?(?:mail exchanger|mx record)",
        r"accepts? no (?:mail|e-?mail)", r"does not receive (?:e-?)?mail", r"no smtp service", r"mail is not accepted",
    )),
    ("hostunknown", (
        r"host (?:or domain name )?(?:not found|unknown)", r"unknown (?:host|domain)", r"no such (?:domain|host)",
        r"domain (?:not found|does not exist|doesn't exist|unknown|name not found|is not valid|invalid)",
        r"(?:invalid|nonexistent|non-existent|unroutable|unrouteable) (?:mail )?domain", r"name service error",
        r"couldn't find any host", r"host not found", r"unrouteable address", r"domain is not reachable",
        r"unrouteable mail domain", r"domain .{0,60} (?:does not|doesn't) accept mail",
        r"unknown mail domain", r"no such domain",
        r"host .{0,40} not found",
    )),
    ("userunknown", (
        r"user unknown", r"unknown user", r"no such (?:user|mailbox|recipient|person|account|address|local user)",
        r"(?:mailbox|user|recipient|account|address|addressee) (?:not found|unknown|does not exist|doesn't exist|not exist|is unknown|invalid|unavailable|not valid|nonexistent|non-existent)",
        r"(?:invalid|unknown|bad|nonexistent|non-existent) (?:mailbox|recipient|user|address|account|addressee)",
        r"(?:does not|doesn't) (?:exist|have an account)", r"not (?:a )?(?:valid|known) (?:user|mailbox|recipient|address)",
        r"undeliverable address",
        r"not our customer", r"no mailbox", r"user not found", r"name is not recognized",
        r"not listed in", r"unknown (?:local )?(?:part|account)", r"no account", r"account .{0,20}not (?:found|exist)",
        r"mailbox unavailable", r"recipient (?:rejected|not accepted|invalid|unknown)", r"is not a valid",
        r"user (?:is )?not (?:here|found|local|registered)", r"address (?:is )?(?:not|no longer) (?:valid|in use)",
        r"unknown or illegal alias", r"no such", r"bad destination mailbox", r"mailbox (?:name )?not allowed",
        r"invalid (?:e-?mail|final delivery)", r"user doesn't have", r"couldn't find .{0,20}(?:user|recipient)",
        r"email account that you tried to reach does not exist", r"recipient .{0,40} does not exist",
        r"not a registered", r"rejected: user", r"mailbox .{0,40} not found",
    )),
    ("recipient", (
        r"recipient address rejected", r"address rejected", r"recipient (?:is )?not accepted",
    )),
    ("blocked", (
        r"black ?list", r"block ?list", r"blocked", r"listed (?:in|on|at|by)", r"\brbl\b", r"\bdnsbl\b",
        r"spamhaus", r"spamcop", r"sorbs", r"barracuda", r"client host (?:\[?[\d.]+\]? )?(?:rejected|blocked)",
        r"access denied", r"your (?:ip|ip address|host|server|network)", r"ip (?:address )?(?:is )?(?:not allowed|blocked|banned|rejected)",
        r"banned", r"dynamic (?:ip|address|pool)", r"dial-?up", r"residential", r"not allowed to send",
        r"connection (?:refused|rejected|denied)", r"refused (?:to talk|connection)", r"service (?:not available|unavailable).{0,60}(?:ip|host)",
        r"please use (?:the )?smtp (?:server|relay) of your", r"use your (?:isp|provider)'?s? (?:smtp|mail)",
        r"may not be mail exchanger", r"messages from [\d.]+ weren't sent", r"invalid ip for sending",
        r"my name was rejected", r"connection refused by",
        r"helo", r"ehlo", r"(?:host|ip) .{0,40} (?:rejected|refused)", r"poor",
    )),
    ("systemfull", (
        r"insufficient disk space",
        r"system (?:is )?full", r"disk (?:is )?full", r"insufficient (?:system )?storage", r"out of (?:disk|storage|space)",
        r"not enough (?:disk )?space", r"file system full", r"no space left",
    )),
    ("networkerror", (
        r"connection (?:time-out|reset|closed|lost|dropped)",
        r"network (?:error|is unreachable|unreachable)", r"(?:host|network) (?:is )?unreachable",
        r"no route to host", r"could not connect", r"unable to connect", r"lost connection",
        r"dns (?:error|failure|lookup|problem|timeout)", r"temporary (?:lookup|dns) failure",
        r"name server", r"connection refused", r"routing loop", r"mail loop", r"loops? back",
        r"too many hops", r"hop count exceeded", r"malformed or unexpected name server reply",
    )),
    ("expired", (
        r"delivery time expired", r"connection timed out", r"operation timed out",
        r"did not accept our requests to connect", r"all hosts have been failing",
        r"delivery failed \d+ attempts", r"queue too long", r"message will be retried", r"retry time(?:out)? (?:not reached|exceeded)", r"message expired",
        r"could not be delivered (?:for|within)", r"(?:has been|was) delayed", r"queue (?:life ?time|too long)",
        r"too long in (?:the )?queue", r"gave up", r"giving up", r"expired", r"undeliverable for",
        r"timeout waiting", r"time limit", r"retry period", r"have not been able to deliver",
        r"delivery attempts? (?:will continue|failed)", r"deferred",
    )),
    ("failedstarttls", (
        r"starttls", r"tls (?:handshake|negotiation|is required|required)", r"requiretls",
        r"must issue a starttls", r"encryption (?:is )?required", r"certificate",
    )),
    ("securityerror", (
        r"authentication (?:required|is required)", r"unauthenticated senders?", r"auth(?:entication)? (?:failed|failure|credentials)",
        r"not authori[sz]ed", r"unauthori[sz]ed", r"security", r"permission denied", r"must authenticate",
        r"login (?:failed|incorrect)", r"smtp auth",
    )),
    ("systemerror", (
        r"system (?:error|failure|problem)", r"internal (?:error|server error|failure)", r"server error",
        r"local error", r"configuration (?:error|problem)", r"misconfigur", r"temporary (?:local )?(?:problem|failure)",
        r"resources? (?:temporarily )?unavailable", r"try (?:again )?later", r"transaction failed",
        r"service (?:not available|unavailable)", r"i/o error", r"unable to (?:deliver|process)",
    )),
    ("syntaxerror", (
        r"syntax error", r"improper sequence", r"parameter not implemented", r"malformed address", r"command (?:unrecognized|not recognized)", r"unrecognized command",
        r"line too long", r"bad sequence of commands", r"invalid command", r"command not implemented",
    )),
    ("mailererror", (
        r"command output", r"procmail", r"mailer (?:error|failed)", r"program exited", r"exit (?:status|code)",
        r"x-unix", r"\bpipe\b", r"command died",
    )),
]
_COMPILED = [(reason, re.compile("|".join(f"(?:{p})" for p in pats))) for reason, pats in _PATTERNS]

# RFC 3463 enhanced status codes, by what they usually mean for a sender
_STATUS: dict[str, str] = {
    "1.0": "userunknown", "1.1": "userunknown", "1.2": "hostunknown", "1.3": "userunknown",
    "1.4": "filtered", "1.6": "hasmoved", "1.7": "rejected", "1.8": "rejected",
    "1.9": "systemerror", "1.10": "notaccept",
    "2.0": "filtered", "2.1": "filtered", "2.2": "mailboxfull", "2.3": "exceedlimit",
    "2.4": "filtered",
    "3.0": "systemerror", "3.1": "systemfull", "3.2": "notaccept", "3.3": "systemerror",
    "3.4": "mesgtoobig", "3.5": "systemerror",
    "4.0": "networkerror", "4.1": "expired", "4.2": "networkerror", "4.3": "systemerror",
    "4.4": "hostunknown", "4.5": "systemfull", "4.6": "networkerror", "4.7": "expired",
    "5.2": "syntaxerror", "5.3": "toomanyconn", "5.4": "systemerror", "5.5": "systemerror",
    "5.6": "syntaxerror",
    "6.0": "contenterror", "6.1": "contenterror", "6.2": "contenterror", "6.3": "contenterror",
    "6.5": "contenterror", "6.6": "contenterror", "6.7": "contenterror", "6.8": "contenterror",
    "6.9": "contenterror",
    "7.0": "securityerror", "7.1": "securityerror", "7.2": "securityerror",
    "7.3": "securityerror", "7.4": "securityerror", "7.5": "securityerror",
    "7.6": "securityerror", "7.7": "securityerror", "7.8": "securityerror",
    "7.9": "securityerror", "7.10": "securityerror", "7.11": "securityerror",
    "7.13": "suspend", "7.14": "securityerror", "7.15": "securityerror",
    "7.16": "mesgtoobig", "7.17": "hasmoved", "7.18": "hasmoved", "7.19": "securityerror",
    "7.20": "authfailure", "7.21": "authfailure", "7.22": "authfailure", "7.23": "authfailure",
    "7.24": "authfailure", "7.25": "requireptr", "7.26": "authfailure", "7.27": "notaccept",
    "7.28": "spamdetected", "7.29": "authfailure", "7.30": "failedstarttls",
}
# codes whose meaning is exact enough to win over the words around them
_DEFINITE = {"1.1", "1.2", "1.6", "1.10", "2.2", "2.3", "3.4", "4.7", "7.13", "7.17", "7.18",
             "7.20", "7.21", "7.22", "7.23", "7.24", "7.25", "7.26", "7.27", "7.30"}
_STATUS_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_REPLY_RE = re.compile(r"(?<![\w.:/\-])([245][0-5]\d)(?=[\s\-]|$)", re.M)


# providers that accept every RCPT TO and say whether the mailbox exists only after DATA
_CHECKED_AFTER_DATA = re.compile("|".join((
    r"delivery error: dd this user doesn't have an? ",       # Yahoo
    r"\b(?:lpn|ofr|ouk)\d*_41[68]\b",                        # Orange, La Poste
)))
# Orange and La Poste end each refusal with a code (``LPN007_416``, ``OFR_506``) whose last three
# digits say why, whatever the words around it
_ORANGE_CODE = re.compile(r"\b(?:lpn|ofr|ouk)(?:\d{3})?[_-](\d{3})\b")
_ORANGE_REASONS = {
    "102": "blocked", "103": "blocked", "104": "toomanyconn", "305": "securityerror",
    "401": "blocked", "402": "securityerror", "403": "rejected", "405": "rejected",
    "415": "rejected", "416": "userunknown", "417": "mailboxfull", "418": "userunknown",
    "420": "suspend", "421": "rejected", "426": "suspend", "505": "systemerror",
    "506": "spamdetected", "510": "blocked", "514": "mesgtoobig", "630": "policyviolation",
    "999": "blocked",
}
# answers that settle "no such user" though no status code or RCPT TO confirms it: a mailbox
# server's own directory lookup, or a provider's documented wording
_NO_SUCH_USER = re.compile("|".join((
    r"not listed in .{0,40}(?:directory|address book)",      # Lotus Domino, Notes
    r"recipient name is not recognized",                     # Exchange 2003
    r"(?:^|\s)unknown user: \S+@", r"invalid final delivery userid",   # IMail
    r"mail\.local: unknown user",                            # Sendmail's local delivery agent
    r"resolver\.adr\.recip\w*notfound",                       # Exchange Online
    r"recipient address rejected: access denied",            # Exchange Online edge blocking
    r"requested action not taken: mailbox unavailable",      # Outlook.com
    r"address couldn't be found",                            # Gmail
    r"@(?:[\w-]+\.)*(?:ezweb\.ne\.jp|au\.com)>: user unknown",  # au (KDDI)
)))


def find_status(text: str) -> str | None:
    """The enhanced status code in a server's text, preferring one that follows a reply code
    (``550 5.7.1``: the remote server's own) over a wrapper's."""
    text = text or ""
    found = [m.group(1) for m in
             re.finditer(r"\b[245]\d\d[ -]'?([245]\.\d{1,3}\.\d{1,3})(?![\d.])", text)] or \
        [".".join(m.groups()) for m in _STATUS_RE.finditer(text)]
    # in a session transcript the failure comes after the successes ("250 2.1.5 Ok")
    return next((c for c in found if c[0] != "2"), found[0] if found else None)


def find_reply_code(text: str) -> int | None:
    found = [int(m.group(1)) for m in _REPLY_RE.finditer(text or "")]
    return next((c for c in found if c >= 400), found[0] if found else None)


_VERB = r"(rcpt(?:[ _]to)?|mail(?:[ _]from)?|end of data|data|text|helo|ehlo|initial connection)"
_COMMANDS = [
    re.compile(rf"in reply to {_VERB}", re.I),                        # Postfix
    re.compile(rf"after {_VERB}\b", re.I),                            # Exim, GMX
    re.compile(rf"did not like our {_VERB}", re.I),                   # DragonFly
    re.compile(rf"for {_VERB} command", re.I),                        # 1&1
    re.compile(rf">>> {_VERB}", re.I),                                # Sendmail transcript
    re.compile(rf"most progress was {_VERB}", re.I),
    re.compile(rf"smtp:{_VERB}\b", re.I),                             # "SMTP:RCPT host ..."
    re.compile(rf"\[{_VERB}\]", re.I),                                # Yahoo's "[RCPT_TO]"
    re.compile(r"does not like (recipient)", re.I),                   # qmail
]


def find_command(text: str) -> str | None:
    """The SMTP command a server refused: MAIL, RCPT, DATA, HELO or CONN."""
    for rx in _COMMANDS:
        found = rx.findall(text or "")
        if found:
            word = found[-1].lower()
            if word.startswith("mail"):
                return "MAIL"
            if word.startswith(("rcpt", "recipient")):
                return "RCPT"
            if "data" in word or word == "text":
                return "DATA"
            if word in ("helo", "ehlo"):
                return "HELO"
            return "CONN"
    return None


def classify(diagnostic: str, status: str | None = None, reply_code: int | None = None, *,
             action: str | None = None, diagnostic_type: str | None = None,
             command: str | None = None, gateway: bool = False) -> str:
    """The reason a delivery failed, from the server's words first, then the status code, the
    SMTP command that was refused and the reply code. ``gateway``: the report comes from a
    filtering appliance in front of the mail server, which refuses whole messages."""
    text = re.sub(r"\s+", " ", (diagnostic or "").lower())
    quoted = re.search(r"\b[245]\d\d-'([^']{4,})'", text)
    if quoted:
        # a relay's own summary quoting the remote server's answer (Amazon SES: "5.1.0 -
        # Unknown address error 550-'5.7.1 ... Access denied'"): the answer is what counts
        text = quoted.group(0)
    own = find_status(text)
    if own and own != status and not own.startswith("2"):
        status = own                          # the remote server's code beats a wrapper's
    sub = status.split(".", 1)[1] if status and _STATUS_RE.fullmatch(status) else None
    command = command or find_command(text)
    reason = None
    if diagnostic_type and diagnostic_type.lower().startswith("x-unix") and \
            dict(_COMPILED)["mailererror"].search(text):
        reason = "mailererror"                # a local delivery program failed
    if reason is None:
        for name, rx in _COMPILED:
            if rx.search(text):
                if name == "mailererror" and diagnostic_type and \
                        not diagnostic_type.lower().startswith("x-unix"):
                    continue
                reason = name
                break
    if _STATUS.get(sub or "") in ("userunknown", "hostunknown") and sub != "1.0" and \
            reason in (None, "systemerror", "securityerror", "expired", "networkerror",
                       "syntaxerror", "onhold", "contenterror", "recipient"):
        reason = _STATUS[sub]                 # x.1.1 / x.1.2 said plainly beat vague words
    if sub == "2.3" and reason == "mesgtoobig":
        reason = "exceedlimit"                # the per-mailbox limit, not the system's
    if sub in ("1.7", "1.8"):
        reason = "rejected"                   # the sender's address was refused
    if command == "MAIL" and "access denied" in text and reason == "blocked":
        reason = "rejected"
    if reason == "recipient":
        # "recipient address rejected" alone says where, not why: the status code says why
        reason = _STATUS.get(sub or "", "userunknown") if sub not in (None, "0.0") else \
            ("userunknown" if command in ("RCPT", None) else None)
    if reason is None and sub in _STATUS:
        reason = _STATUS[sub]
    # what the refused command says about a reason the words alone got wrong
    if reason == "userunknown" and _STATUS.get(sub or "") != "userunknown" and \
            not _CHECKED_AFTER_DATA.search(text) and (
                command == "DATA" or gateway or re.search(r"\b550:? ?: user unknown", text) or
                (command is None and not _NO_SUCH_USER.search(text))):
        # "user unknown" is believed when the status code (x.1.1) or the refused command (RCPT
        # TO) confirms it. Said in answer to DATA, by a filtering gateway, or with nothing to
        # confirm it, the words may be a filter's: many filters in front of a mailbox (and
        # Japanese carriers' sender filters) answer "user unknown" to mail they refuse.
        reason = "filtered"
    if command == "MAIL" and reason in (None, "userunknown", "hostunknown", "filtered",
                                        "systemerror"):
        reason = "rejected"                   # MAIL FROM refused: the sender was the problem
    if command in ("HELO", "CONN") and reason in (None, "rejected", "userunknown", "systemerror"):
        reason = "blocked"
    orange = _ORANGE_CODE.search(text)
    if orange and orange.group(1) in _ORANGE_REASONS:
        reason = _ORANGE_REASONS[orange.group(1)]
    if reason is not None:
        return reason
    if action in ("delayed", "expired"):
        return "expired"
    if diagnostic_type and diagnostic_type.lower().startswith("x-unix"):
        return "mailererror"
    if reply_code in (421, 450, 451):
        return "systemerror"
    if reply_code == 452:
        return "mailboxfull"
    if reply_code in (550, 551):
        return "userunknown"
    if reply_code == 552:
        return "mailboxfull"
    if reply_code in (553, 554):
        return "rejected"
    return "onhold" if text.strip() else "undefined"


def is_hard(reason: str, status: str | None, reply_code: int | None) -> bool:
    """Hard: the address itself is bad (unknown user or domain, moved), or the domain accepts no
    mail at all (a permanent ``notaccept``)."""
    if reason in HARD:
        return True
    # a domain with no mail exchanger stays so: permanent unless the server itself said "try
    # again" with a 4xx code
    temporary = (status or "").startswith("4") or 400 <= (reply_code or 0) < 500
    return reason == "notaccept" and not temporary


# -- parsing ----------------------------------------------------------------------------------------
_ADDR_RE = re.compile(r"<?([A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+)>?")
_DAEMON = re.compile(r"^(?:mailer-daemon|postmaster|mail-daemon|mailerdaemon|mdaemon|"
                     r"bounce|bounces|noreply|no-reply|nobody|root|double-bounce)@", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (?:status|failure|failed|has failed|notification|problem)|"
    r"returned (?:mail|to sender)|failure notice|mail delivery|could not be delivered|"
    r"non.?deliver|nondeliver|delivery report|rejected|bounce|warning: could not|"
    r"unable to deliver|mail system error|failed|error", re.I)
_AUTOREPLY_SUBJECT = re.compile(
    r"out of (?:the )?office|auto(?:matic)?[ -]?(?:reply|response|antwort|matische)|vacation|away|"
    r"abwesen|absence|absent|on leave|holiday|congé|ausser haus|autoreply|re: ", re.I)
#: filtering appliances and services in front of mail servers: a "user unknown" from them is their
#: filter's verdict on the message
_GATEWAYS = re.compile(r"mcafee|m-filter|surfcontrol|mailfoundry|mxlogic|active!?hunter", re.I)
_ORIGINAL_MARKERS = re.compile(
    r"^(?:-{2,}.*(?:original message|copy of|below this line|returned message|undelivered message|"
    r"message headers?|headers of|original mail).*|.*this is a copy of the message.*|"
    r"message headers follow\.?|"
    r"content-type: (?:message/rfc822|text/rfc822-headers).*)$", re.I | re.M)


def _text_of(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if payload is None:
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


def _clean(value: Any) -> str:
    return re.sub(r"\s+", " ", str(value or "")).strip()


def _strip_type(value: str) -> tuple[str | None, str]:
    """``rfc822; user@x`` -> ("rfc822", "user@x"); ``smtp; 550 ...`` -> ("smtp", "550 ...")."""
    if ";" in value[:20]:
        t, _, rest = value.partition(";")
        return t.strip().lower(), rest.strip()
    return None, value.strip()


def _address(value: str | None) -> str | None:
    if not value:
        return None
    _, v = _strip_type(value)
    m = _ADDR_RE.search(v)
    return m.group(1) if m else None


def _original_headers(msg: Message, body_text: str) -> tuple[str | None, str | None]:
    """(Message-ID, campaign) of the original message the report quotes."""
    mid = camp = None
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            if isinstance(inner, Message):
                mid = mid or inner.get("Message-ID")
                camp = camp or inner.get("X-Mailnb-Campaign")
        elif ctype == "text/rfc822-headers":
            h = email.message_from_string(_text_of(part))
            mid = mid or h.get("Message-ID")
            camp = camp or h.get("X-Mailnb-Campaign")
    if not mid or not camp:
        start = _ORIGINAL_MARKERS.search(body_text)
        tail = body_text[start.start():] if start else body_text
        if not mid:
            m = re.search(r"^\s*message-id:\s*(<[^>\s]+>)", tail, re.I | re.M)
            mid = m.group(1) if m else None
        if not camp:
            m = re.search(r"^\s*x-mailnb-campaign:\s*(.+)$", tail, re.I | re.M)
            camp = m.group(1).strip() if m else None
    return (_clean(mid) or None), (_clean(camp) or None)


def _human_text(msg: Message) -> str:
    """The readable part of a report, without the quoted original message."""
    texts = []
    for part in msg.walk():
        if part.get_content_maintype() == "multipart":
            if isinstance(part.get_payload(), str) and part is not msg:
                texts.append(part.get_payload())   # a broken boundary: read the parts as text
            continue
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "text/rfc822-headers", "message/delivery-status",
                     "message/feedback-report"):
            continue
        if ctype.startswith("text/"):
            t = _text_of(part)
            if ctype == "text/html":
                from .templates import html_to_text
                t = html_to_text(t)
            texts.append(t)
        if isinstance(part.get_payload(), Message):
            continue
    if not texts and not msg.is_multipart():
        raw = msg.get_payload()
        texts.append(raw if isinstance(raw, str) else "")
    text = "\n".join(texts)
    cut = _ORIGINAL_MARKERS.search(text)
    return text[:cut.start()] if cut else text


def _status_blocks(msg: Message) -> list[Message] | None:
    found = _mime_status_blocks(msg)
    if found is not None:
        return found
    # a report whose MIME structure is broken (a wrong boundary, a forwarded copy): read the
    # delivery-status fields from the text
    text = _text_of_all(msg)
    m = re.search(r"^(?:reporting-mta|final-recipient|original-recipient):", text, re.I | re.M)
    if not m or not re.search(r"^final-recipient:", text, re.I | re.M):
        return None
    region = text[m.start():]
    blocks = []
    for chunk in re.split(r"\n\s*\n", region):
        if not re.search(r"^[\w-]+:", chunk.strip(), re.M):
            break
        head = email.message_from_string(chunk.strip() + "\n")
        if not head.keys():
            break
        blocks.append(head)
        if len(blocks) > 200:
            break
    if blocks and not blocks[0].get("Final-Recipient"):
        return blocks
    return [Message(), *blocks] if blocks else None


def _split_recipients(block: Message) -> list[Message]:
    """One block per recipient, for reports that run several recipients' fields together
    without the blank line between them."""
    if len(block.get_all("Final-Recipient") or []) < 2:
        return [block]
    out: list[Message] = []
    current = Message()
    for name, value in block.items():
        key = name.lower()
        if key in ("final-recipient", "original-recipient") and current.get(name) is not None:
            out.append(current)
            current = Message()
        current[name] = value
    out.append(current)
    return out


def _mime_status_blocks(msg: Message) -> list[Message] | None:
    for part in msg.walk():
        if part.get_content_type() in ("message/delivery-status", "message/global-delivery-status"):
            blocks = part.get_payload()
            if isinstance(blocks, list) and blocks:
                return [b for b in blocks if isinstance(b, Message)]
            text = _text_of(part) if not isinstance(blocks, list) else ""
            return [email.message_from_string(chunk) for chunk in re.split(r"\n\s*\n", text)
                    if chunk.strip()]
    return None


def _around(text: str, address: str, lines_after: int = 4,
            others: Iterable[str] = ()) -> str:
    """The lines of a free-text report that speak of one address: from its first mention up to
    ``lines_after`` lines on, stopping where another failed address begins."""
    lines = text.splitlines()
    others = [o.lower() for o in others if o and o.lower() != address.lower()]
    for i, line in enumerate(lines):
        if address.lower() in line.lower():
            chunk = [line]
            for nxt in lines[i + 1:i + 1 + lines_after]:
                if any(o in nxt.lower() for o in others):
                    break
                chunk.append(nxt)
            return "\n".join(chunk)
    return ""


def _session_reply(text: str, address: str) -> tuple[str, str | None] | None:
    """In a Sendmail-style transcript, the status line for ``address``
    (``554 <a@b>... Remote protocol error``) with the remote server's replies (``<<< ...``) that
    caused it, and the command they answered (``>>> MAIL From:...``); no command when no reply
    of the remote server led to the line."""
    address = address.lower()
    command, replies, notes = None, [], []
    for line in text.splitlines():
        t = line.strip()
        if re.match(r"\.*\s*while talking to ", t, re.I):
            command, replies, notes = None, [], []
        elif t.startswith(">>> "):
            command, replies = find_command(t), []
        elif t.startswith("<<< "):
            replies.append(t[4:])
        elif re.match(r"[245]\d\d[ -]\S+.*\.\.\.", t):
            # Sendmail's own status line; the replies before it were its cause
            m = re.match(r"[245]\d\d[ -]<?([^\s<>]+@[^\s<>]+?)>?\.\.\.\s", t)
            if m and m.group(1).lower() == address:
                return " ".join([t, *replies, *notes]), command if replies else None
            replies, notes = [], []
        elif t and not t.startswith("-----"):
            notes.append(t)                   # a local program's words ("mail.local: ...")
    return None


def _auto_reply(msg: Message, subject: str) -> bool:
    auto = (msg.get("Auto-Submitted", "") or "").lower()
    if msg.get("X-Autoreply") or msg.get("X-Autorespond") or msg.get("X-Auto-Response-Suppress") \
            and _AUTOREPLY_SUBJECT.search(subject):
        return True
    prec = (msg.get("Precedence", "") or "").lower()
    if "auto-replied" in auto or prec == "auto_reply":
        return True
    return bool(_AUTOREPLY_SUBJECT.search(subject) and not _BOUNCE_SUBJECT.search(subject))


def parse(raw: bytes | str) -> list[Bounce]:
    """Every failed (or reported) recipient in one message. A message that is no report at all
    gives an empty list; feedback, auto-replies and success reports come back with their ``kind``
    so a caller never counts them as bounces."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    raw = raw.replace(b"\r\n", b"\n")
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    subject = _clean(msg.get("Subject"))
    sender = _address(str(msg.get("From", ""))) or ""
    human = _human_text(msg)
    mid, campaign = _original_headers(msg, _text_of_all(msg))
    gateway = bool(_GATEWAYS.search(" ".join(f"{k}: {v}" for k, v in msg.items())
                                    + human[:3000]))
    report_type = str(msg.get_param("report-type") or "").lower() if msg.get_content_type() == \
        "multipart/report" else ""

    # RFC 5965 feedback (a complaint)
    feedback = next((p for p in msg.walk() if p.get_content_type() == "message/feedback-report"),
                    None)
    if feedback is not None or report_type == "feedback-report":
        fields = _feedback_fields(feedback)
        rcpts = [a for a in (_address(v) for v in fields.get("original-rcpt-to", []) +
                             fields.get("removal-recipient", [])) if a] or [_quoted_to(msg)]
        ftype = (fields.get("feedback-type") or ["abuse"])[0]
        return [Bounce(r, None, None, _clean(ftype), "feedback", False, kind="feedback",
                       message_id=mid, campaign=campaign, extra={"feedback_type": ftype})
                for r in rcpts]

    if re.fullmatch(r"unsubscribe", subject, re.I) or \
            re.search(r"sent this (?:e-?mail|message) to unsubscribe", human, re.I):
        # a one-click List-Unsubscribe by mail: a request, not a failure
        return [Bounce(sender or None, None, None, "unsubscribe request", "feedback", False,
                       kind="feedback", message_id=mid, campaign=campaign,
                       extra={"feedback_type": "unsubscribe"})]

    ses = _ses_notification(_text_of_all(msg))
    if ses is not None:
        return ses

    blocks = _status_blocks(msg)
    if blocks:
        out = []
        blocks = [one for b in blocks[1:] or blocks for one in _split_recipients(b)]
        everyone = [a for a in (_address(b.get("Final-Recipient")) for b in blocks) if a]
        for block in blocks:
            rcpt = _address(block.get("Final-Recipient")) or \
                _address(block.get("Original-Recipient")) or _address(block.get("X-Actual-Recipient"))
            action = _clean(block.get("Action")).lower() or None
            if rcpt is None and action is None:
                continue
            status = _clean(block.get("Status")) or None
            if status and not _STATUS_RE.fullmatch(status):
                status = find_status(status)
            dtype, diag = _strip_type(_clean(block.get("Diagnostic-Code")))
            if not diag or diag.lower() in ("", "smtp;"):
                diag = _clean(_around(human, rcpt) if rcpt else "") or _clean(human)[:500]
            elif rcpt:
                # the human-readable part often says more than the code (e.g. Gmail's text)
                near = _clean(_around(human, rcpt))
                if near and near not in diag and len(diag) < 40:
                    diag = f"{diag} {near}"
            code = find_reply_code(diag)
            if action in DELIVERED or (status or "").startswith("2."):
                out.append(Bounce(rcpt, status, code, diag, "delivered", False, kind="delivered",
                                  action=action, message_id=mid, campaign=campaign))
                continue
            if status is None:
                status = find_status(diag)
            command = find_command(diag) or (
                (_session_reply(human, rcpt) or ("", None))[1] or
                find_command(_around(human, rcpt, 5, everyone))
                if rcpt else None)
            reason = classify(diag, status, code, action=action, diagnostic_type=dtype,
                              command=command, gateway=gateway)
            out.append(Bounce(rcpt, status, code, diag, reason, is_hard(reason, status, code),
                              action=action, message_id=mid, campaign=campaign,
                              remote_mta=_strip_type(_clean(block.get("Remote-MTA")))[1] or None))
        if out:
            return out

    if _auto_reply(msg, subject) and not _DAEMON.match(sender) and \
            not _BOUNCE_SUBJECT.search(subject) and not msg.get("X-Failed-Recipients"):
        return [Bounce(sender or None, None, None, subject, "vacation", False, kind="auto-reply",
                       message_id=mid, campaign=campaign)]

    # a free-text report: who failed, and what the server said about each
    recipients = _free_text_recipients(msg, human, sender)
    if not recipients:
        return []
    out = []
    for rcpt in recipients:
        session = _session_reply(human, rcpt)
        diag, command = session if session else \
            (_clean(_around(human, rcpt, 12, recipients)) or _clean(human)[:800], None)
        status = find_status(diag) or find_status(human)
        code = find_reply_code(diag) or find_reply_code(human)
        # the lines about the address, unless they are too short to say anything or the
        # server's answer (its reply code) stands elsewhere in the report
        own_words = len(diag) > 30 and (find_reply_code(diag) or not find_reply_code(human))
        reason = classify(diag if own_words else _clean(human), status, code,
                          command=command, gateway=gateway)
        if reason in ("onhold", "undefined"):
            reason = classify(_clean(human) + " " + subject, status, code, gateway=gateway)
        out.append(Bounce(rcpt, status, code, diag, reason, is_hard(reason, status, code),
                          message_id=mid, campaign=campaign))
    return out


def _text_of_all(msg: Message) -> str:
    out = []
    for part in msg.walk():
        if part.get_content_maintype() == "multipart":
            continue
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            if isinstance(inner, Message):
                out.append("----- original message -----\n" + "\n".join(
                    f"{k}: {v}" for k, v in inner.items()))
            continue
        out.append(_text_of(part))
    return "\n".join(out)


def _ses_notification(text: str) -> list[Bounce] | None:
    """Amazon SES notifications (bounce, complaint, delivery) forwarded as JSON."""
    import json
    start = text.find('{"notificationType"')
    if start < 0 and '\\"notificationType\\"' in text:
        text = text.replace('\\"', '"')     # wrapped in an SNS notification as a JSON string
        start = text.find('{"notificationType"')
    if start < 0:
        return None
    try:
        data, _ = json.JSONDecoder(strict=False).raw_decode(text[start:])
    except ValueError:
        # wrapped lines or a truncated copy: read what is needed with patterns
        chunk = re.sub(r"\s*\n\s*", "", text[start:start + 20000])
        try:
            data, _ = json.JSONDecoder(strict=False).raw_decode(chunk)
        except ValueError:
            kind = re.search(r'"notificationType"\s*:\s*"(\w+)"', chunk)
            addrs = re.findall(r'"emailAddress"\s*:\s*"([^"]+)"', chunk)
            if not kind or not addrs:
                return None
            key = {"Complaint": "complaint", "Bounce": "bounce"}.get(kind.group(1), "other")
            data = {"notificationType": kind.group(1),
                    key: {"complainedRecipients" if key == "complaint" else "bouncedRecipients":
                          [{"emailAddress": a} for a in addrs]}}
    kind = data.get("notificationType")
    mail = data.get("mail", {})
    headers = {h.get("name", "").lower(): h.get("value") for h in mail.get("headers", [])}
    mid = headers.get("message-id")
    camp = headers.get("x-mailnb-campaign")
    if kind == "Complaint":
        return [Bounce(r.get("emailAddress"), None, None,
                       data["complaint"].get("complaintFeedbackType", "abuse"), "feedback", False,
                       kind="feedback", message_id=mid, campaign=camp)
                for r in data.get("complaint", {}).get("complainedRecipients", [])]
    if kind == "Delivery":
        return [Bounce(r, None, 250, data.get("delivery", {}).get("smtpResponse", ""),
                       "delivered", False, kind="delivered", message_id=mid, campaign=camp)
                for r in data.get("delivery", {}).get("recipients", [])]
    if kind == "Bounce":
        out = []
        b = data.get("bounce", {})
        for r in b.get("bouncedRecipients", []):
            diag = r.get("diagnosticCode", "") or b.get("bounceSubType", "")
            status = r.get("status") or find_status(diag)
            code = find_reply_code(diag)
            reason = classify(diag, status, code)
            if b.get("bounceType") == "Permanent" and b.get("bounceSubType") == "Suppressed":
                reason = "userunknown" if reason in ("onhold", "undefined") else reason
            out.append(Bounce(r.get("emailAddress"), status, code, diag, reason,
                              is_hard(reason, status, code), message_id=mid, campaign=camp))
        return out
    return None


def _feedback_fields(part: Message | None) -> dict[str, list[str]]:
    if part is None:
        return {}
    payload = part.get_payload()
    text = ""
    if isinstance(payload, list):
        for block in payload:
            if isinstance(block, Message):
                text += "\n".join(f"{k}: {v}" for k, v in block.items()) + "\n"
    else:
        text = _text_of(part)
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep and k.strip() and " " not in k.strip():
            fields.setdefault(k.strip().lower(), []).append(v.strip())
    return fields


def _quoted_to(msg: Message) -> str | None:
    for part in msg.walk():
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            if isinstance(inner, Message):
                return _address(inner.get("To"))
            if isinstance(inner, str):
                return _address(email.message_from_string(inner).get("To"))
    return None


def _free_text_recipients(msg: Message, human: str, sender: str) -> list[str]:
    found: list[str] = []
    failed = msg.get_all("X-Failed-Recipients") or []
    for value in failed:
        for a in _ADDR_RE.findall(str(value)):
            if a.lower() not in (f.lower() for f in found):
                found.append(a)
    if found:
        return found
    own = {sender.lower(), (_address(str(msg.get("To", ""))) or "").lower()}
    # the envelope sender in a session transcript ("MAIL FROM:<...>") is not a recipient
    own |= {a.lower() for a in re.findall(r"\bfrom:\s*<([^<>\s]+@[^<>\s]+)>", human, re.I)}
    # nor is a help desk to write to, or a message id or sender in headers quoted in the text
    noise = {a.lower() for a in re.findall(
        r"(?:\bcontact\s+(?:\w+\s+){0,3}|^[>\s]*(?:message-id|in-reply-to|references|"
        r"return-path|reply-to|sender):\s*|^[>\s]*from:(?:[^<\n]*<|\s*))"
        r"<?([\w.+=-]+@[\w-]+(?:\.[\w-]+)+)", human, re.I | re.M)}
    try:
        import flufl.bounce
        temporary, permanent = flufl.bounce.all_failures(msg)
        for a in sorted(permanent | temporary):
            addr = a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a)
            if _ADDR_RE.fullmatch(addr) and not _DAEMON.match(addr) and addr.lower() not in noise:
                found.append(addr)
    except Exception:  # a detector that trips over one odd message must not lose the rest
        pass
    if found:
        order = {a.lower(): human.lower().find(a.lower()) for a in found}
        return sorted(found, key=lambda a: (order[a.lower()] < 0, order[a.lower()]))
    quoted = (_quoted_to(msg) or "").lower()
    # an address the text names as the one that failed counts even if it looks like a role
    # account (postmaster@ can bounce too)
    named = {a.lower() for a in re.findall(
        r"(?:error delivering your (?:mail|message) to|could not be delivered to|"
        r"failed to deliver to)\s*:?\s*<?([\w.+=-]+@[\w-]+(?:\.[\w-]+)+)", human, re.I)}
    for a in _ADDR_RE.findall(human):
        if a.lower() in (f.lower() for f in found):
            continue
        if a.lower() in noise and a.lower() not in named:
            continue
        if a.lower() in named or a.lower() == quoted or not (a.lower() in own or _DAEMON.match(a)):
            found.append(a)
    if not found and quoted and _BOUNCE_SUBJECT.search(str(msg.get("Subject", ""))):
        found.append(_quoted_to(msg) or "")
    return found[:20]


def parse_many(messages: Iterable[bytes]) -> pd.DataFrame:
    rows = []
    for raw in messages:
        for b in parse(raw):
            rows.append(asdict(b))
    return pd.DataFrame(rows)


# -- VERP: the bounce address names the message ---------------------------------------------------
#: ``local+<the Message-ID's local part>@domain`` (``Campaign.envelope_from`` with ``verp=True``)
_VERP = re.compile(r"\+([0-9a-f]{6,24}\.[0-9a-f]{16})@", re.I)
#: where the address a report was delivered to shows (RFC 9228 Delivered-To, Postfix, Exim)
_ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")


def verp_token(raw: bytes) -> str | None:
    """The message token of a VERP bounce address the report was delivered to, if any."""
    head = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    for name in _ENVELOPE_HEADERS:
        for value in head.get_all(name, []):
            if (m := _VERP.search(str(value))):
                return m.group(1).lower()
    return None


def with_verp(found: list[Bounce], match: Mapping[str, Any] | None) -> list[Bounce]:
    """Fill in what the report's text did not say from the message its VERP address names; a
    report whose text names no recipient at all still counts for that message's recipient."""
    if match is None:
        return found
    out = [replace(b, recipient=b.recipient or match["address"],
                   message_id=b.message_id or match["message_id"],
                   campaign=b.campaign or match["campaign"]) if b.kind == "bounce" else b
           for b in found]
    if not any(b.recipient for b in out):
        out = [b for b in out if b.recipient] + [Bounce(
            match["address"], None, None, "a report to this message's VERP address; its text "
            "names no recipient", "undefined", False, message_id=match["message_id"],
            campaign=match["campaign"])]
    return out


# -- I/O: the mailbox, the journal, suppression ----------------------------------------------------
BOUNCE_COLUMNS = ["recipient", "status", "reply_code", "diagnostic", "reason", "hard", "kind",
                  "action", "message_id", "campaign", "remote_mta", "source_id"]


def content_id(raw: bytes) -> str:
    """What a report is known by: its Message-ID, else a hash of its bytes. The same report
    under a new IMAP UID (a migrated mailbox, a forwarding rule) is the same report."""
    import hashlib
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    found = re.search(rb"^message-id:[ \t]*(<[^>\r\n]+>)", head, re.I | re.M)
    if found:
        return "mid:" + found.group(1).decode("ascii", "replace")
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def read_report(raw: bytes, journal: Any) -> list[Bounce]:
    """The report's bounces, matched by VERP where the text names nobody. Never raises: an
    odd message is stored as unparsable, for review."""
    try:
        found = parse(raw)
    except Exception as err:  # noqa: BLE001 - never lose the mailbox over one odd message
        found = [Bounce(None, None, None, f"unparsable: {err}", "undefined", False)]
    token = verp_token(raw)
    if token is not None:
        found = with_verp(found, journal.find_message(token))
    if not found:               # kept, for a person to look at: nothing here names a recipient
        subject = email.message_from_bytes(raw, policy=email.policy.compat32).get("Subject", "")
        found = [Bounce(None, None, None, f"no recipient found (subject: {_clean(subject)[:200]})",
                        "unmatched", False, kind="unmatched")]
    return found


def process_bounces(profile: Any, *, folder: str | None = None, since: str | None = None,
                    threshold: int | None = None, journal: Any = None, mailbox: Any = None,
                    window_days: float = 30.0, grace_days: float = 3.0) -> pd.DataFrame:
    """Read the bounce mailbox, record each report in the journal and the suppressions it
    triggers, then mark it processed. Returns one row per report recipient of the reports new to
    the journal (``recipient``, ``reason``, ``hard``, ``kind``, ``campaign``, ``suppressed``, ...);
    ``attrs["counts"]`` has what the run read.

    Cron can trust it: each report is stored before it is flagged or moved, its suppressions right
    after it, and every run starts by settling the suppressions an interrupted run left undecided,
    so an interrupted run and its rerun end with the suppressions of one uninterrupted run."""
    j = open_journal(journal if journal is not None else (profile.journal or None), new=True)
    mb = mailbox or Mailbox.from_profile(profile, folder=folder)
    rule = dict(threshold=threshold or getattr(profile, "bounce_threshold", 3) or 3,
                window_days=window_days, grace_days=grace_days)
    newly = apply_threshold(j, j.unsettled_bounces(), **rule)    # what a stopped run left
    rows: list[dict[str, Any]] = []
    counts = {"read": 0, "duplicates": 0}
    with Session(mb) as session:
        for item in session.fetch(since=since, seen=j.bounce_sources()):
            counts["read"] += 1
            found = read_report(item.raw, j)
            if not j.record_bounces(content_id(item.raw), found, also=item.source_id):
                counts["duplicates"] += 1             # the same report seen before
            else:
                newly |= apply_threshold(j, {b.recipient for b in found if b.recipient
                                             and b.kind == "bounce"}, **rule)
                rows += [{**{k: v for k, v in asdict(b).items() if k != "extra"},
                          "source_id": item.source_id} for b in found]
            session.mark_processed(item)               # only once it is stored
    out = pd.DataFrame(rows, columns=BOUNCE_COLUMNS)
    out["suppressed"] = out["recipient"].map(lambda r: isinstance(r, str) and r.casefold()
                                             in newly)
    out.attrs["counts"] = {**counts, "newly_suppressed": len(newly)}
    return out


def summary_line(found: pd.DataFrame) -> str:
    """One line for cron's mail: what was read and what it did."""
    counts = found.attrs.get("counts", {})
    kind = found["kind"] if len(found) else pd.Series(dtype=object)
    bounced = found[kind == "bounce"]
    unmatched = int((kind == "unmatched").sum())
    hard = int(bounced["hard"].astype(bool).sum())
    return (f"{counts.get('read', len(found))} read ({counts.get('duplicates', 0)} seen before), "
            f"{len(bounced)} bounce(s) ({hard} hard, {len(bounced) - hard} soft), "
            f"{int((kind == 'feedback').sum())} complaint(s), "
            f"{int((kind == 'auto-reply').sum())} auto-reply(ies), {unmatched} unmatched, "
            f"{counts.get('newly_suppressed', int(found['suppressed'].sum()))} address(es) newly "
            "suppressed")


def apply_threshold(journal: Any, addresses: Iterable[str], *, threshold: int = 3,
                    window_days: float = 30.0, grace_days: float = 3.0) -> set[str]:
    """Suppress each address whose hard bounces reach 1, or whose soft bounces since its last
    successful delivery reach ``threshold`` within ``window_days``. A delivery counts as successful
    when a report says so, or when a message sent to the address is more than ``grace_days`` old
    and nothing bounced for it. Returns the addresses newly suppressed (case-folded)."""
    newly: set[str] = set()
    now = time.time()
    for address in set(addresses):
        hist = journal.bounce_history(address)
        if hist.empty:
            continue
        bounces = hist[hist["kind"] == "bounce"]
        hard = bounces[bounces["hard"]]
        if len(hard):
            last = hard.iloc[-1]
            if journal.suppress(address, f"hard bounce: {last['reason']} ({last['status'] or ''} "
                                f"{_clean(last['diagnostic'])[:120]})".strip(), "bounces"):
                newly.add(address.casefold())
            continue
        since = now - window_days * 86400
        success = journal.last_success(address, grace_seconds=grace_days * 86400)
        soft = bounces[(bounces["at"] >= max(since, success or 0))]
        if len(soft) >= threshold:
            if journal.suppress(address, f"{len(soft)} soft bounces in {window_days:g} days "
                                f"(last: {soft.iloc[-1]['reason']})", "bounces"):
                newly.add(address.casefold())
    return newly


def read_folder(path: str | Path) -> pd.DataFrame:
    """Parse every ``.eml`` file in a folder (a saved bounce mailbox) into one DataFrame."""
    files = sorted(Path(path).glob("*.eml"))
    rows = []
    for f in files:
        for b in parse(f.read_bytes()):
            row = asdict(b)
            row["file"] = f.name
            rows.append(row)
    return pd.DataFrame(rows)
