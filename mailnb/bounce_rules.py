"""What mail servers say when they refuse mail, and what it means: the data that
:mod:`mailnb.classify` reads. Pure data, no logic."""
from __future__ import annotations

import re

# What servers say, by reason. Checked in order on the lower-cased diagnostic: the first reason with
# a match wins, so narrower reasons come before the broad ones they overlap with.
PATTERNS: list[tuple[str, tuple[str, ...]]] = [
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

# RFC 3463 enhanced status codes, by what they usually mean for a sender
STATUS_REASONS: dict[str, str] = {
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


# providers that accept every RCPT TO and say whether the mailbox exists only after DATA
CHECKED_AFTER_DATA = re.compile("|".join((
    r"delivery error: dd this user doesn't have an? ",       # Yahoo
    r"\b(?:lpn|ofr|ouk)\d*_41[68]\b",                        # Orange, La Poste
)))
# Orange and La Poste end each refusal with a code (``LPN007_416``, ``OFR_506``) whose last three
# digits say why, whatever the words around it
ORANGE_CODE = re.compile(r"\b(?:lpn|ofr|ouk)(?:\d{3})?[_-](\d{3})\b")
ORANGE_REASONS = {
    "102": "blocked", "103": "blocked", "104": "toomanyconn", "305": "securityerror",
    "401": "blocked", "402": "securityerror", "403": "rejected", "405": "rejected",
    "415": "rejected", "416": "userunknown", "417": "mailboxfull", "418": "userunknown",
    "420": "suspend", "421": "rejected", "426": "suspend", "505": "systemerror",
    "506": "spamdetected", "510": "blocked", "514": "mesgtoobig", "630": "policyviolation",
    "999": "blocked",
}
# answers that settle "no such user" though no status code or RCPT TO confirms it: a mailbox
# server's own directory lookup, or a provider's documented wording
NO_SUCH_USER = re.compile("|".join((
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
