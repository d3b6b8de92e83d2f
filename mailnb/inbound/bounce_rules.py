"""What mail servers say when they refuse mail, and what it means: the data that
:mod:`mailnb.classify` reads. Pure data, no logic.

Each :class:`Rule` names what it follows: the RFC 3463 status (or RFC 5321 reply) whose meaning its
words paraphrase, or a provider's published page of reply codes. A provider's own wording is more
specific than a generic phrase and wins over it; among rules of one kind the longest match wins, so
"too many recipients this hour" (speeding) beats "too many recipients" (toomanyconn) whatever the
order below. One word alone never decides a reason unless it names a mechanism (SPF, DNSBL,
STARTTLS, malware): everyday words ("policy", "blocked", "deferred", "helo") say where, not why.
Rules are reviewed as data: `tests/sisimai_eval.py` prints, for each family of real reports, the
agreement with every rule that only that family's samples use switched off.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """``pattern`` (a regular expression on the lower-cased diagnostic) means ``reason``;
    ``source`` is what it follows; ``provider`` marks a provider's own wording."""

    reason: str
    pattern: str
    source: str
    provider: bool = False


#: how much a reason says, when the words of several match one diagnostic: the cause of the
#: failure (a full mailbox, a failed SPF check, a virus) beats who or what was refused (the
#: recipient, the sending host), which beats how it ended (expired, a network or system error)
THREAT, CAUSE, TARGET, OUTCOME = 3, 2, 1, 0
REASON_TIER: dict[str, int] = {
    "virusdetected": THREAT,        # a verdict that names the threat beats "content rejected"
    **dict.fromkeys(("mailboxfull", "mesgtoobig", "exceedlimit", "suspend", "hasmoved",
                     "norelaying", "authfailure", "requireptr", "spamdetected",
                     "contenterror", "policyviolation", "badreputation", "toomanyconn",
                     "speeding", "notcompliantrfc", "filtered", "rejected", "mailererror"), CAUSE),
    **dict.fromkeys(("userunknown", "hostunknown", "notaccept", "recipient", "blocked"), TARGET),
    **dict.fromkeys(("networkerror", "expired", "failedstarttls", "securityerror", "systemerror",
                     "syntaxerror", "systemfull"), OUTCOME),
}


#: the only single words that may decide a reason: each names a mechanism (an authentication
#: standard, a blocklist, a protocol extension, a kind of malware), not an everyday word
TERMS = frozenset({
    r"\bspf\b", r"\bdkim\b", r"\bdmarc\b", r"\bptr\b", r"\brdns\b", r"virus", r"malware",
    r"trojan", r"\bspam\b", r"unsolicited", r"spamtrap", r"spammy", r"phish", r"nxdomain",
    r"\brbl\b", r"\bdnsbl\b", r"spamhaus", r"spamcop", r"sorbs", r"barracuda", r"starttls",
    r"requiretls", r"procmail", r"x-unix", r"rate-limit", r"ratelimit", r"throttl", r"dial-?up",
    r"recip(?:ient)?notfound", r"groups\.google\.com", r"google-?(?:gruppe|group)"})


#: providers' pages that several rules follow
_GMAIL = 'Gmail SMTP errors: https://support.google.com/a/answer/3726730'
_SES = (
    'Amazon SES errors: https://docs.aws.amazon.com/ses/latest/dg/troubleshoot-error-messages.html')
_GROUPS = 'Google Groups posting permissions: https://support.google.com/groups/answer/2464926'
_ORANGE = 'Orange postmaster: https://postmaster.orange.fr'
_RCPTHOSTS = 'qmail-smtpd(8) rcpthosts: https://cr.yp.to/qmail.html'


def _phrases(reason: str, source: str, *patterns: str) -> list[Rule]:
    return [Rule(reason, p, source) for p in patterns]


RULES: list[Rule] = [
    *_phrases('spamdetected', 'RFC 3463 X.7.1 (refused for its content), RFC 7372 X.7.28',
              'spam classification', 'considered unsolicited', 'classified as (?:spam|junk)'),
    Rule('blocked', 'service refus',
         _ORANGE, provider=True),
    Rule('blocked', 'ip source bloquee',
         _ORANGE, provider=True),
    Rule('blocked', "messages from [\\d.]+ weren't sent",
         'Outlook.com sender support: https://sendersupport.olc.protection.outlook.com/pm/', provider=True),
    *_phrases('blocked', 'RFC 3463 X.7.1 (delivery not authorized: the sending host or IP)',
              'client host (?:\\[?[\\d.]+\\]? )?(?:rejected|blocked)', 'refused to talk to me',
              # send through your provider's relay (mail from a dynamic address)
              "use (?:the |your )?(?:(?:isp|provider)'?s? )?(?:smtp|mail|outgoing) ?(?:server|relay|host)?s? (?:of your|at your)|use your (?:isp|provider)'?s? (?:smtp|mail|outgoing)",
              # the greeting's host name refused (qmail: "my name was rejected")
              '(?:helo|ehlo|greeting|my name|host ?name)(?: name| command)? (?:was |is |has been )?(?:rejected|refused|not accepted)',
              '(?:is|as) an open relay'),
    Rule('userunknown', 'recip(?:ient)?notfound',
         'Exchange Online NDRs: https://learn.microsoft.com/exchange/mail-flow-best-practices/non-delivery-reports-in-exchange-online/non-delivery-reports-in-exchange-online', provider=True),
    Rule('userunknown', "address couldn't be found",
         _GMAIL, provider=True),
    *_phrases('userunknown', 'RFC 3463 X.1.1 (bad destination mailbox address), RFC 5321 550/551',

              'recipient address rejected: (?:access denied|user unknown|unknown user|invalid user)'),
    *_phrases('notaccept', 'RFC 7505 (null MX), RFC 3463 X.1.10',
              'null mx'),
    *_phrases('networkerror', 'RFC 3463 X.4.x (network and routing status)',
              'dns error'),
    Rule('hasmoved', '\\b551 not our customer',
         'RFC 5321 4.2.3 (551 user not local)', provider=True),
    Rule('hostunknown', 'the account or domain may not exist',
         _GMAIL, provider=True),
    *_phrases('hostunknown', 'RFC 3463 X.1.2 (bad destination system address)',
              # the domain, called so or by its name ("example.net does not exist"), is not there
              "(?:domain(?: name)?|(?<![@\\w.-])[a-z0-9-]+(?:\\.[a-z0-9-]+)*\\.[a-z]{2,24}) (?:not found|(?:does not|doesn't) exist)",
              'host or domain name not found',
              'no such domain',
              'unrout(?:e)?able (?:mail )?(?:address|domain)'),
    *_phrases('notcompliantrfc', 'RFC 5322 (message format), RFC 3463 X.6.x',
              'rfc ?(?:5322|2822)', 'not (?:rfc[- ]?)?compliant',
              "(?:duplicate|multiple|more than one) (?:[\\w'\"-]+ ){0,2}?(?:headers?\\b|addresses in (?:from|to|sender))|multiple (?:from|to|subject|date|message-id)",
              '(?:malformed|invalid|missing) (?:header|date|message-id|from)',
              'message is not rfc', 'headers? (?:are|is) not (?:compliant|valid)',
              'bare (?:lf|cr|linefeed)',
              'message contains bare'),
    Rule('badreputation', 'temporarily deferred due to (?:user|unexpected volume)',
         'Yahoo SMTP error codes: https://senders.yahooinc.com/smtp-error-codes/', provider=True),
    *_phrases('badreputation', "RFC 3463 X.7.1 (refused for the sender's reputation, as providers word it)",
              '(?:ip|sender|domain|low|poor|bad) reputation', 'reputation (?:of|is)',
              'sending reputation'),
    Rule('toomanyconn', 'frequency limited',
         'Tencent QQ Mail sender notes: https://service.mail.qq.com', provider=True),
    *_phrases('toomanyconn', 'RFC 3463 X.4.5 (mail system congestion), RFC 5321 421',
              # too many connections from one client, however counted (QQ Mail: "Ip frequency
              # limited", "Connection frequency limited")
              '(?:connection|connections|ip|session|sessions)(?: (?:rate|frequency|count))? limit(?:ed|s)?\\b|connection rate|(?:connection|ip) frequency',
              'too many (?:(?:hosts|open|concurrent|simultaneous|smtp) ){0,2}(?:connections|sessions)|maximum (?:number of )?connections',
              'too many recipients'),
    *_phrases('speeding', 'RFC 3463 X.7.x and 4.7.x (rate limits, as providers word them)',
              # more than a sender (or a recipient) may get in a time
              '(?:send|sent|sending|receiving|received?) (?:\\w+ ){0,3}?(?:too (?:many|much|quickly|fast)|at a rate)',
              'too many (?:\\w+ )?(?:messages|emails|mails|recipients)?(?: (?:in|from|per|sent|this|an?))+ (?:hour|day|minute|period)',
              'too many (?:messages|emails|mails) (?:in|from|per|sent)',
              'rate limit', 'rate-limit', 'ratelimit', 'sending rate', 'message rate', 'throttl',
              'too fast', 'exceeded (?:the )?(?:message|sending|hourly|daily) (?:rate|limit|quota)'),
    *_phrases('mailboxfull', 'RFC 3463 X.2.2 (mailbox full), RFC 5321 452/552',
              # the mailbox (folder, maildir, inbox) is full or over its size, in any wording
              "(?:mail ?(?:box|folder|dir)|in ?box)(?:'s)?(?: (?:size|storage|is|has|currently|now|already|been))* (?:full|over\\b|exceed)",
              "(?:user|recipient|account)(?:'s)? (?:is |has )?(?:full|over\\b|exceeded (?:the |its |his |her )?(?:quota|storage|size))",
              # a quota or storage limit reached
              '(?:over|exceed(?:s|ed|ing)?|reached|hit) (?:(?:its|the|his|her|their|your|allowed|mailbox|disk|storage|size) )*(?:quota|storage)',
              'quota (?:exceeded|full|violation|reached)', 'over ?quota', 'disk quota',
              'storage (?:space )?(?:quota|limit)', '(?:out of|over the) storage',
              '(?:insufficient|not enough) (?:disk )?(?:space|storage) (?:for|in) (?:the )?(?:user|mailbox|recipient)',
              'mailbox (?:size )?limit', 'full mailbox', 'too much mail data',
              '(?:user|mailbox) has too many messages'),
    *_phrases('mesgtoobig', 'RFC 3463 X.3.4 (message too big for system), RFC 1870 SIZE',
              # the message (its size, a line of it) is over a limit, in any wording
              '(?:message|mail|e-?mail)(?: (?:file|size|is|was))* too (?:big|large|long)',
              '(?:message|mail|e-?mail) (?:size|length) (?:\\w+ ){0,3}?(?:exceed|(?:is )?(?:larger|greater|over)\\b)',
              'exceed(?:s|ed)? (?:the |our |this )?(?:(?:maximum|max|allowed|local|fixed|system) ){0,3}message size',
              '(?:message|mail|it) (?:\\w+ ){0,3}?exceed(?:s|ed)? (?:the |our |this )?(?:(?:maximum|max|allowed|local|fixed|system) ){0,3}size',
              '(?:size|line|length) limit (?:exceeded|reached)', 'size (?:of the message )?exceeds',
              'maximum message size', 'too big for'),
    *_phrases('exceedlimit', 'RFC 3463 X.2.3 (message length exceeds administrative limit)',
              'message length exceeds administrative limit',
              'exceeds? (?:the )?(?:administrative|per-user|recipient) limit',
              'message (?:header )?size exceeds limit'),
    *_phrases('suspend', 'RFC 3463 X.2.1 (mailbox disabled, not accepting messages)',
              # the account or mailbox, however named, is switched off for now
              '(?:account|mailbox|user|recipient|address)(?: \\S+){0,5}? (?:is |has been |was |been )?(?:currently |temporar(?:y|ily) |permanently )?(?:disabled|suspended|locked|frozen|inactive|deactivated|not active)\\b',
              'account (?:has been |is )?(?:closed|blocked|expired)',
              '(?:inactive|disabled|suspended|deactivated) (?:user|account|mailbox|recipient)|not an active',
              'is (?:currently )?(?:inactive|not active|disabled)|temporarily disabled',
              'user account (?:is )?unavailable',
              'recipient (?:is )?(?:not )?(?:receiving|accepting) (?:mail|email|messages)',
              'mailbox (?:is )?(?:currently )?unavailable for', 'extended inactivity',
              'this account has been'),
    *_phrases('hasmoved', 'RFC 3463 X.1.6 (destination mailbox has moved), RFC 5321 551 (user not local)',
              '(?:has|have) moved', 'mailbox (?:has )?moved',
              'no longer (?:valid|available|in use|with|at|accepts|receives)',
              'address (?:has )?changed', 'moved to', 'is no longer', 'new address'),
    Rule('norelaying', 'identities failed the check',
         _SES, provider=True),
    Rule('norelaying', 'email address is not verified',
         _SES, provider=True),
    Rule('norelaying', 'not (?:in|on) (?:my|our) list of (?:allowed )?rcpthosts',
         _RCPTHOSTS, provider=True),
    Rule('norelaying', "sorry, that domain isn't in my list",
         _RCPTHOSTS, provider=True),
    *_phrases('norelaying', 'RFC 5321 3.6.2 (mail relaying), RFC 3463 X.7.1',
              "(?:not (?:configured|permitted|allowed|authori[sz]ed)|unable|refuse|cannot|can't|(?:do|does|will) not|(?:do|does|wo)n't) (?:to )?relay",
              'relay(?:ing)?(?: mail to .{0,60})? (?:access )?(?:is )?(?:denied|not (?:permitted|allowed)|prohibited|refused|rejected)',
              'no relaying', 'relay access', 'insecure (?:mail )?relay', 'not a gateway',
              'not accepting mail for this domain'),
    *_phrases('authfailure', 'RFC 7372 X.7.20-X.7.26 (DKIM, SPF, DMARC failures)',
              '\\bspf\\b', '\\bdkim\\b', '\\bdmarc\\b', 'sender policy framework',
              'does not have authentication information',
              '(?:fails?|failed|failing) (?:to pass )?(?:sender )?authentication',
              'not pass authentication', 'unauthenticated (?:email|mail)', 'domain authentication',
              '\\bptr\\b.{0,40}spf', 'authentication check', 'sender id'),
    *_phrases('requireptr', 'RFC 7372 X.7.25 (reverse DNS validation failed)',
              '(?:unverif(?:i|y)able|unresolvable) (?:sending |client )?(?:ips?|hosts?|hostnames?|addresses)|(?:ip|reverse|client) ?(?:host ?)?name lookup failed|cannot resolve (?:your|the) (?:address|hostname|ip)',
              'reverse (?:dns|lookup|hostname|name|mapping)', '\\bptr\\b', '\\brdns\\b',
              'no (?:valid )?hostname', 'cannot find your (?:reverse )?hostname',
              "(?:does not|doesn't) have a reverse", 'client host .{0,60}(?:dns|reverse)',
              'mismatches client ip', 'no reverse',
              'needs a valid hostname', "hostname (?:does not|doesn't) match"),
    *_phrases('virusdetected', 'RFC 3463 X.7.1 (refused for its content: malware)',
              'virus', 'malware', 'trojan', 'malicious (?:content|code|attachment)',
              'virus (?:detected|found)', '(?:contains?|infected with) (?:a )?virus'),
    *_phrases('spamdetected', 'RFC 3463 X.7.1 (refused for its content), RFC 7372 X.7.28',
              '\\bspam\\b', 'junk (?:mail|e-?mail)', '\\bbulk (?:mail|e-?mail)', 'unsolicited',
              'content (?:was )?(?:rejected|blocked)', 'message content rejected',
              'looks like spam', 'classified as spam', 'spam ?assassin', 'spamtrap', 'spam score',
              'spammy', 'considered (?:as )?(?:spam|unsolicited)',
              'message (?:was )?(?:identified|detected) as', 'high probability of',
              'rejected as (?:spam|bulk)', 'phish', 'blocked (?:by|because of) (?:our )?content'),
    *_phrases('contenterror', 'RFC 3463 X.6.x (message content or media status)',
              'improper use of 8-bit', '8-?bit data',
              '(?:illegal|invalid|bad) (?:character|mime|content)', 'header line too long',
              'message header (?:size )?exceeds'),
    *_phrases('policyviolation', 'RFC 3463 X.7.1 (delivery not authorized, message refused by policy)',
              'prohibited (?:attachment|file|content)', '(?:attachment|file) type',
              'not allowed by', 'restricted (?:content|attachment)',
              'attachments? (?:not allowed|blocked)',
              'local (?:administrative|security) (?:policy|rules)', 'content presents a potential',
              'polic(?:y|ies) (?:violation|reasons|restriction)', 'protocol violation',
              '(?:for|due to|by) (?:local |security |our |site |content )?polic(?:y|ies)',
              '(?:local|site|security|content|spam|mail|e-?mail|sending|our) polic(?:y|ies)'),
    *_phrases('securityerror', 'RFC 4954 530 5.7.0 (authentication required), RFC 3463 X.7.x',
              'unauthenticated senders?', 'authentication (?:is )?required'),
    *_phrases('filtered', "RFC 3463 X.7.1 (refused by the recipient's own rules)",
              "(?:recipient|user)(?:'s)? (?:preferences|rules|filters?|refuses|rejects?)\\b|due to (?:recipient|user) (?:preferences|rules)",
              'blocked by the recipient',
              'message filtered', 'only accepting mail from specific',
              'refuse to receive', 'account is protected by',
              'has restricted sms'),
    Rule('rejected', 'groups\\.google\\.com',
         _GROUPS, provider=True),
    Rule('rejected', 'google-?(?:gruppe|group)',
         _GROUPS, provider=True),
    *_phrases('rejected', "RFC 3463 X.1.7, X.1.8 (bad sender's mailbox or system address)",

              'sender (?:address )?(?:rejected|refused|denied|blocked|not allowed|invalid|unknown|verify failed)',
              "domain of sender (?:address )?(?:does not|doesn't) exist",
              "sender domain (?:must|does not|doesn't)",
              'sender (?:is )?(?:not )?(?:allowed|authorized|permitted)', 'envelope sender',
              'mail from (?:address )?(?:rejected|refused|denied)',
              '(?:bad|invalid|unknown) sender', 'sender verification', 'sender address',
              'your (?:e-?mail )?address (?:has been|is) (?:rejected|blocked|blacklisted)',
              'refused to accept (?:your|the) (?:message|mail)',
              'sender .{0,40}(?:rejected|denied|refused)', 'we do not accept mail from',
              'purported responsible address',
              '(?:from:?|from header) (?:domain|address) (?:is )?(?:invalid|not valid|rejected|not allowed)'),
    Rule('rejected',
         "not a member of (?:this|the) (?:mailing )?(?:list|group)|(?:no|not have|(?:do|does)(?: not|n't) have) (?:the )?permission to post|not allowed to post|non-?member (?:post|submission)",
         'RFC 3463 X.7.1, as mailing-list managers word a refused post from a non-member '
         '(fml, Mailman, ' + _GROUPS + ')'),
    *_phrases('networkerror', 'RFC 3463 X.4.x (network and routing status)',
              'name service error', 'host not found, try again', 'name server reply',
              'host name lookup failure', 'lost connection with .{0,80} while',
              'temporary lookup failure', 'nxdomain'),
    *_phrases('notaccept', 'RFC 7505 (null MX), RFC 3463 X.1.10',
              "(?:does not|doesn't|do not|don't|cannot|can't) (?:receive|accept) (?:any )?(?:e-?mail|mail|messages)|not accepting (?:any )?(?:mail|messages)|accepts? no (?:e-?)?mail|mail is not accepted",
              "(?:no|(?:couldn't|could not|cannot|can't|unable to) find an?) (?:valid )?(?:mail exchanger|mx(?: record)?)s?\\b",
              'no smtp service'),
    *_phrases('hostunknown', 'RFC 3463 X.1.2 (bad destination system address)',
              'host (?:or domain name )?(?:not found|unknown)', 'unknown (?:host|domain)',
              'no such (?:domain|host)',
              "domain (?:name )?(?:may |might )?(?:not found|(?:does|do|may|might) ?(?:not|n't) exist|unknown|not found|is not valid|invalid)",
              '(?:invalid|nonexistent|non-existent) (?:mail )?domain',
              'name service error', "couldn't find any host", 'host not found',
              'domain is not reachable',
              "domain .{0,60} (?:does not|doesn't) accept mail", 'unknown mail domain',
              'host .{0,40} not found'),
    Rule('userunknown', 'email account that you tried to reach does not exist',
         _GMAIL, provider=True),
    *_phrases('userunknown', 'RFC 3463 X.1.1 (bad destination mailbox address), RFC 5321 550/551',
              'user unknown', 'unknown user',
              'no such (?:user|mailbox|recipient|person|account|address|local user)',
              "(?:mailbox|user|recipient|account|address|addressee) (?:not found|unknown|does not exist|doesn't exist|not exist|is unknown|invalid|unavailable|not valid|nonexistent|non-existent)",
              '(?:invalid|unknown|bad|nonexistent|non-existent) (?:mailbox|recipient|user|address|account|addressee)',
              "(?:does not|doesn't) (?:exist|have an account)",
              'not (?:a )?(?:valid|known) (?:user|mailbox|recipient|address)',
              'undeliverable address', 'not our customer', 'no mailbox', 'user not found',
              'name is not recognized', 'not listed in', 'unknown (?:local )?(?:part|account)',
              'no account', 'account .{0,20}not (?:found|exist)', 'mailbox unavailable',
              'recipient (?:rejected|not accepted|invalid|unknown)', 'is not a valid',
              'user (?:is )?not (?:here|found|local|registered)',
              'address (?:is )?(?:not|no longer) (?:valid|in use)', 'unknown or illegal alias',
              'no such', 'bad destination mailbox', 'mailbox (?:name )?not allowed',
              'invalid (?:e-?mail|final delivery)', "user doesn't have",
              "couldn't find .{0,20}(?:user|recipient)", 'recipient .{0,40} does not exist',
              'not a registered', 'rejected: user', 'mailbox .{0,40} not found'),
    *_phrases('recipient', 'RFC 5321 550 at RCPT TO: where, not why (the status code says why)',
              'recipient address rejected', 'address rejected', 'recipient (?:is )?not accepted'),
    Rule('blocked', '\\b(?:rbl|dnsbl|spamhaus|spamcop|sorbs|barracuda)\\b|black ?list|block ?list',
         'RFC 5782 (DNS blocklists), by name: Spamhaus https://www.spamhaus.org/, SpamCop '
         'https://www.spamcop.net/bl.shtml, SORBS, Barracuda https://www.barracudacentral.org/rbl'),
    *_phrases('blocked', 'RFC 3463 X.7.1 (delivery not authorized: the sending host or IP)',
              'listed (?:in|on|at|by)',
              'access denied', 'your (?:ip|ip address|host|server|network)',
              'ip (?:address )?(?:is )?(?:not allowed|blocked|banned|rejected)',
              'dynamic (?:ip|address|pool)', 'dial-?up', 'not allowed to send',
              'connection (?:refused|rejected|denied)', 'refused (?:to talk|connection)',
              'service (?:not available|unavailable).{0,60}(?:ip|host)',
              'may not be mail exchanger',
              'invalid ip for sending', 'connection refused by',
              '(?:host|ip) .{0,40} (?:rejected|refused)'),
    *_phrases('systemfull', 'RFC 3463 X.3.1 (mail system full)',
              '(?:insufficient|not enough|out of|no) (?:free )?(?:(?:disk|system) )?(?:space|storage)(?: left)?',
              '(?:file ?)?system (?:is )?full|disk (?:is )?full'),
    *_phrases('networkerror', 'RFC 3463 X.4.x (network and routing status)',
              'connection (?:time-out|reset|closed|lost|dropped)|lost connection',
              # no path to the destination (X.4.1 no answer, X.4.4 unable to route)
              '(?:network|host|destination)s? (?:is |are )?(?:unreachable|not reachable)|no route to (?:host|network)|network (?:error|failure|problem)',
              '(?:could not|unable to|cannot|can\'t) connect',
              'dns (?:error|failure|lookup|problem|timeout)', 'temporary (?:lookup|dns) failure',
              'name server', 'connection refused', 'routing loop', 'mail loop', 'loops? back',
              'too many hops', 'hop count exceeded', 'malformed or unexpected name server reply'),
    Rule('networkerror', r'name service error for .{0,80}host not found, try again',
         'Postfix smtp(8): a temporary DNS failure, https://www.postfix.org/smtp.8.html',
         provider=True),
    Rule('networkerror', r'host name lookup failure',
         'Sendmail Installation and Operation Guide ("host name lookup failure": a temporary '
         'DNS failure), https://www.sendmail.org/~ca/email/doc8.12/op-sh-4.html', provider=True),
    Rule('networkerror', r'dns error: .{0,80}(?:lookup|responded)',
         'Gmail SMTP errors ("DNS Error"): https://support.google.com/a/answer/3726730',
         provider=True),
    Rule('authfailure', r'(?:does not pass|fails to pass|not pass) (?:spf|dkim|dmarc)',
         'Gmail SMTP errors 5.7.26: https://support.google.com/a/answer/3726730', provider=True),
    Rule('expired', r'(?:been|was) in the queue too long',
         'qmail-send(8): "this message has been in the queue too long"', provider=True),
    *_phrases('expired', 'RFC 3463 X.4.7 (delivery time expired), RFC 3464 Action: delayed',
              # the message, its envelope or its time to live ran out (OpenSMTPD: "Envelope
              # expired")
              '(?:message|envelope|delivery time|lifetime)(?: has| was)? expired',
              # tried for too long or too often (Exim: "all hosts have been failing for a long
              # time"; IMail: "Delivery failed 20 attempts")
              '(?:queue|queued) (?:life ?time|too long)|too long in (?:the )?queue',
              '(?:failing|undeliverable|not (?:been )?delivered|delayed|queued) (?:for|since|within) (?:a long time|(?:more than |over )?\\d+ (?:hours?|days?|minutes?))',
              '(?:after|failed|giving up after|gave up after) \\d+ (?:delivery )?(?:attempts|tries|retries)',
              'could not be delivered (?:for|within)', 'undeliverable for',
              'delivery (?:was |has been )?deferred', '(?:has been|was) delayed',
              'connection timed out', 'operation timed out', 'timeout waiting',
              'did not accept our requests to connect', 'message will be retried',
              'retry (?:time(?:out)?|period) (?:not reached|exceeded)', 'time limit',
              'gave up', 'giving up', 'have not been able to deliver',
              'delivery attempts? (?:will continue|failed)'),
    *_phrases('failedstarttls', 'RFC 3207 (STARTTLS), RFC 3463 X.7.10 (encryption needed)',
              'starttls', 'tls (?:handshake|negotiation|is required|required)', 'requiretls',
              'must issue a starttls', 'encryption (?:is )?required'),
    *_phrases('securityerror', 'RFC 4954 530 5.7.0 (authentication required), RFC 3463 X.7.x',
              'authentication (?:required|is required)',
              'auth(?:entication)? (?:failed|failure|credentials)', 'not authori[sz]ed',
              'permission denied', 'must authenticate', 'login (?:failed|incorrect)', 'smtp auth'),
    *_phrases('systemerror', 'RFC 3463 X.3.0 (other or undefined mail system status), RFC 5321 451',
              'system (?:error|failure|problem)', 'internal (?:error|server error|failure)',
              'server error', 'local error', 'configuration (?:error|problem)',
              'temporary (?:local )?problem', 'temporary (?:local |system )?failure(?! report)',
              'resources? (?:temporarily )?unavailable', 'try (?:again )?later',
              'transaction failed', 'service (?:not available|unavailable)', 'i/o error',
              'unable to (?:deliver|process)'),
    *_phrases('syntaxerror', 'RFC 5321 4.2.2 (500, 501, 503 replies), RFC 3463 X.5.x',
              'syntax error', 'improper sequence', 'parameter not implemented',
              'malformed address', 'command (?:unrecognized|not recognized)',
              'unrecognized command', 'line too long', 'bad sequence of commands',
              'invalid command', 'command not implemented'),
    *_phrases('mailererror', 'RFC 3464 2.3.6 (x-unix diagnostic: the local delivery program)',
              # the pipe or program that delivers locally failed (Exim's pipe transport:
              # https://www.exim.org/exim-html-current/doc/html/spec_html/ch-the_pipe_transport.html)
              'pipe to \\||mailer (?:error|failed)|command (?:output|died)|program exited|exit (?:status|code)',
              'procmail', 'x-unix'),
]

#: RFC 5321 4.2 reply codes, by what they mean when nothing else in the answer says why (RFC 4954
#: 530: authentication required; RFC 7504 521/556: the host or domain accepts no mail)
REPLY_REASONS: dict[int, str] = {
    421: "systemerror", 450: "systemerror", 451: "systemerror", 452: "mailboxfull",
    500: "syntaxerror", 501: "syntaxerror", 502: "syntaxerror", 503: "syntaxerror",
    504: "syntaxerror", 521: "notaccept", 530: "securityerror", 550: "userunknown",
    551: "userunknown", 552: "mailboxfull", 553: "rejected", 554: "rejected", 556: "notaccept",
}

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


# words that say a DNS lookup did not complete (RFC 3463 X.4.3, directory server failure), which
# is not the same as the domain not existing (X.1.2, X.4.4) whatever the status code says:
# Postfix's "Malformed or unexpected name server reply" (smtp(8)), RFC 1035 SERVFAIL, a timeout
LOOKUP_FAILED = re.compile(
    r"malformed or unexpected name server reply|servfail|dns (?:timeout|failure)|"
    r"temporary (?:lookup|dns) failure|name server (?:timeout|timed out)")

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
