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
    Rule('mailererror', 'pipe to \\|',
         'Exim spec, the pipe transport: https://www.exim.org/exim-html-current/doc/html/spec_html/ch-the_pipe_transport.html', provider=True),
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
              'please use (?:the )?smtp (?:server|relay) of your', 'my name was rejected',
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
              "(?<![@\\w.-])[a-z0-9-]+(?:\\.[a-z0-9-]+)*\\.[a-z]{2,24} (?:does not|doesn't) exist",
              'host or domain name not found', 'domain (?:name )?(?:not found|does not exist)',
              'no such domain', 'unrouteable address'),
    *_phrases('notcompliantrfc', 'RFC 5322 (message format), RFC 3463 X.6.x',
              'rfc ?5322', 'rfc ?2822', 'not (?:rfc[- ]?)?compliant', 'duplicate header',
              'multiple (?:from|to|subject|date|message-id)',
              '(?:malformed|invalid|missing) (?:header|date|message-id|from)',
              'message is not rfc', 'headers? (?:are|is) not (?:compliant|valid)',
              'bare (?:lf|cr|linefeed)', 'multiple addresses in (?:from|to|sender)',
              'message contains bare'),
    Rule('badreputation', 'temporarily deferred due to (?:user|unexpected volume)',
         'Yahoo SMTP error codes: https://senders.yahooinc.com/smtp-error-codes/', provider=True),
    *_phrases('badreputation', "RFC 3463 X.7.1 (refused for the sender's reputation, as providers word it)",
              '(?:ip|sender|domain|low|poor|bad) reputation', 'reputation (?:of|is)',
              'sending reputation'),
    Rule('toomanyconn', 'frequency limited',
         'Tencent QQ Mail sender notes: https://service.mail.qq.com', provider=True),
    *_phrases('toomanyconn', 'RFC 3463 X.4.5 (mail system congestion), RFC 5321 421',
              'connection rate limit',
              'too many (?:connections|concurrent|simultaneous|sessions|smtp sessions|open connections)',
              'connection (?:limit|rate)', 'too many recipients',
              'maximum (?:number of )?connections', 'too many (?:hosts|hops)? ?connections'),
    *_phrases('speeding', 'RFC 3463 X.7.x and 4.7.x (rate limits, as providers word them)',
              'too many recipients this hour', 'sent to too many recipients', 'rate limit',
              'rate-limit', 'ratelimit', 'sending rate',
              'too many (?:messages|emails|mails) (?:in|from|per|sent)', 'throttl', 'too fast',
              'exceeded (?:the )?(?:message|sending|hourly|daily) (?:rate|limit|quota)',
              'message rate', 'receiving mail (?:too quickly|at a rate)'),
    *_phrases('mailboxfull', 'RFC 3463 X.2.2 (mailbox full), RFC 5321 452/552',
              'mailbox exceeds', 'mailbox (?:is )?full',
              'mail ?box (?:is )?(?:currently )?(?:over|full)', 'over ?quota',
              'quota (?:exceeded|full|violation)', 'exceeded? (?:the )?(?:storage|quota)',
              'exceeds? (?:its |the |his |her )?(?:mailbox |disk |storage )?quota',
              "(?:user|recipient|account|mailbox)(?:'s)? (?:is |has )?(?:over|exceeded) (?:the |its )?(?:quota|storage|size)",
              'insufficient (?:disk )?(?:space|storage) (?:for|in) (?:the )?(?:user|mailbox|recipient)',
              'mailbox (?:size )?limit', 'disk quota', 'inbox is full', 'full mailbox',
              'mailfolder is full', 'account is full', 'maildir (?:over|exceeded)',
              'too much mail data', 'mailbox has exceeded',
              'not enough (?:storage|space) in (?:the )?mailbox', 'user has too many messages',
              'mailbox exceeded', 'storage (?:space )?(?:quota|limit)',
              '(?:out of|over the) storage', 'account (?:is )?over'),
    *_phrases('mesgtoobig', 'RFC 3463 X.3.4 (message too big for system), RFC 1870 SIZE',
              'message (?:is )?too (?:big|large)',
              'message (?:size|length) exceeds? (?:fixed|the (?:maximum|fixed)|maximum|system)',
              'message size (?:is )?(?:larger|greater|over)',
              'exceeds? (?:the )?(?:maximum|max) (?:allowed )?(?:message )?size',
              'size (?:of the message )?exceeds', 'too big for', 'message too long',
              'mail size (?:limit|exceeded)',
              'message (?:was )?(?:rejected )?(?:because it )?exceeds? the size',
              'maximum message size', 'message exceeds (?:the )?(?:local )?size',
              '(?:email|mail) is too large', 'size limit exceeded', 'message file too big',
              'line limit exceeded', 'message exceeded .*size'),
    *_phrases('exceedlimit', 'RFC 3463 X.2.3 (message length exceeds administrative limit)',
              'message length exceeds administrative limit',
              'exceeds? (?:the )?(?:administrative|per-user|recipient) limit',
              'message (?:header )?size exceeds limit'),
    *_phrases('suspend', 'RFC 3463 X.2.1 (mailbox disabled, not accepting messages)',
              'is inactive',
              'account (?:has been |is )?(?:disabled|suspended|locked|frozen|inactive|deactivated|closed|blocked)',
              '(?:mailbox|user|recipient|address) (?:is |has been )?(?:disabled|suspended|inactive|deactivated|frozen|locked)',
              'is not active', 'inactive (?:user|account|mailbox)', 'not an active',
              'temporarily disabled', 'mailbox unavailable.{0,40}inactive', 'currently inactive',
              'user account (?:is )?(?:unavailable|expired)', 'account expired',
              'recipient (?:is )?(?:not )?(?:receiving|accepting) (?:mail|email|messages)',
              'mailbox (?:is )?(?:currently )?(?:disabled|unavailable for)', 'mailbox is frozen',
              'is disabled', 'temporar(?:y|ily) locked', 'extended inactivity',
              'disabled (?:user|recipient|account|mailbox)', 'this account has been'),
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
              'not configured to relay',
              'relay(?:ing)? (?:access )?(?:denied|not (?:permitted|allowed)|prohibited|refused)',
              'not (?:permitted|allowed|authori[sz]ed) to relay', 'unable to relay',
              'we do not relay', 'no relaying', 'relay not permitted',
              'relaying mail to .{0,60} is not allowed', 'not a gateway', 'relay prohibited',
              'relay rejected', 'cannot relay', "can't relay", 'relaying denied', 'relay access',
              'not accepting mail for this domain', 'insecure mail relay'),
    *_phrases('authfailure', 'RFC 7372 X.7.20-X.7.26 (DKIM, SPF, DMARC failures)',
              '\\bspf\\b', '\\bdkim\\b', '\\bdmarc\\b', 'sender policy framework',
              'does not have authentication information',
              '(?:fails?|failed|failing) (?:to pass )?(?:sender )?authentication',
              'not pass authentication', 'unauthenticated (?:email|mail)', 'domain authentication',
              '\\bptr\\b.{0,40}spf', 'authentication check', 'sender id'),
    *_phrases('requireptr', 'RFC 7372 X.7.25 (reverse DNS validation failed)',
              'unverif(?:i|y)able (?:sending )?(?:ips?|hosts?|hostnames?|addresses)',
              'reverse (?:dns|lookup|hostname|name|mapping)', '\\bptr\\b', '\\brdns\\b',
              'no (?:valid )?hostname', 'cannot find your (?:reverse )?hostname',
              "(?:does not|doesn't) have a reverse", 'client host .{0,60}(?:dns|reverse)',
              'cannot resolve (?:your|the) (?:address|hostname|ip)', 'mismatches client ip',
              'ip name lookup failed', 'unresolvable (?:client|host|ip)', 'no reverse',
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
              'recipient preferences', 'user refuses', 'user reject', 'blocked by the recipient',
              'message filtered', 'only accepting mail from specific',
              'rejected due to user rules', 'refuse to receive', 'account is protected by',
              'has restricted sms'),
    Rule('rejected', 'permission to post',
         _GROUPS, provider=True),
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
              'from address (?:rejected|not allowed)',
              'your (?:e-?mail )?address (?:has been|is) (?:rejected|blocked|blacklisted)',
              'refused to accept (?:your|the) (?:message|mail)',
              'sender .{0,40}(?:rejected|denied|refused)', 'we do not accept mail from',
              'purported responsible address', 'not a member of (?:this|the) (?:mailing )?list',
              'from: domain'),
    *_phrases('networkerror', 'RFC 3463 X.4.x (network and routing status)',
              'name service error', 'host not found, try again', 'name server reply',
              'host name lookup failure', 'lost connection with .{0,80} while',
              'temporary lookup failure', 'nxdomain'),
    *_phrases('notaccept', 'RFC 7505 (null MX), RFC 3463 X.1.10',
              "doesn't receive (?:e-?)?mail",
              "(?:does not|doesn't|do not) accept (?:any )?(?:mail|e-?mail|messages)",
              'not accepting (?:any )?(?:mail|messages)', 'no mx (?:record )?found',
              "couldn't find a mail exchanger", 'no (?:valid )?(?:mail exchanger|mx record)',
              'accepts? no (?:mail|e-?mail)', 'does not receive (?:e-?)?mail', 'no smtp service',
              'mail is not accepted'),
    *_phrases('hostunknown', 'RFC 3463 X.1.2 (bad destination system address)',
              'host (?:or domain name )?(?:not found|unknown)', 'unknown (?:host|domain)',
              'no such (?:domain|host)',
              "domain (?:not found|does not exist|doesn't exist|unknown|name not found|is not valid|invalid)",
              '(?:invalid|nonexistent|non-existent|unroutable|unrouteable) (?:mail )?domain',
              'name service error', "couldn't find any host", 'host not found',
              'domain is not reachable', 'unrouteable mail domain',
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
    Rule('blocked', 'spamhaus',
         'Spamhaus blocklists: https://www.spamhaus.org/', provider=True),
    Rule('blocked', 'spamcop',
         'SpamCop blocklist: https://www.spamcop.net/bl.shtml', provider=True),
    Rule('blocked', 'sorbs',
         'SORBS blocklists: http://www.sorbs.net', provider=True),
    Rule('blocked', 'barracuda',
         'Barracuda reputation blocklist: https://www.barracudacentral.org/rbl', provider=True),
    *_phrases('blocked', 'RFC 3463 X.7.1 (delivery not authorized: the sending host or IP)',
              'black ?list', 'block ?list', 'listed (?:in|on|at|by)', '\\brbl\\b', '\\bdnsbl\\b',
              'access denied', 'your (?:ip|ip address|host|server|network)',
              'ip (?:address )?(?:is )?(?:not allowed|blocked|banned|rejected)',
              'dynamic (?:ip|address|pool)', 'dial-?up', 'not allowed to send',
              'connection (?:refused|rejected|denied)', 'refused (?:to talk|connection)',
              'service (?:not available|unavailable).{0,60}(?:ip|host)',
              "use your (?:isp|provider)'?s? (?:smtp|mail)", 'may not be mail exchanger',
              'invalid ip for sending', 'connection refused by',
              '(?:host|ip) .{0,40} (?:rejected|refused)'),
    *_phrases('systemfull', 'RFC 3463 X.3.1 (mail system full)',
              'insufficient disk space', 'system (?:is )?full', 'disk (?:is )?full',
              'insufficient (?:system )?storage', 'out of (?:disk|storage|space)',
              'not enough (?:disk )?space', 'file system full', 'no space left'),
    *_phrases('networkerror', 'RFC 3463 X.4.x (network and routing status)',
              'connection (?:time-out|reset|closed|lost|dropped)',
              'network (?:error|is unreachable|unreachable)',
              '(?:host|network) (?:is )?unreachable', 'no route to host', 'could not connect',
              'unable to connect', 'lost connection',
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
    Rule('expired', r'envelope expired',
         'OpenSMTPD smtpd(8) bounce text: https://man.openbsd.org/smtpd.8', provider=True),
    *_phrases('expired', 'RFC 3463 X.4.7 (delivery time expired), RFC 3464 Action: delayed',
              'message (?:has )?expired', 'delivery (?:was |has been )?deferred',
              'delivery time expired', 'connection timed out', 'operation timed out',
              'did not accept our requests to connect', 'all hosts have been failing',
              'delivery failed \\d+ attempts', 'queue too long', 'message will be retried',
              'retry time(?:out)? (?:not reached|exceeded)', 'message expired',
              'could not be delivered (?:for|within)', '(?:has been|was) delayed',
              'queue (?:life ?time|too long)', 'too long in (?:the )?queue', 'gave up',
              'giving up', 'undeliverable for', 'timeout waiting', 'time limit', 'retry period',
              'have not been able to deliver', 'delivery attempts? (?:will continue|failed)'),
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
              'command output', 'procmail', 'mailer (?:error|failed)', 'program exited',
              'exit (?:status|code)', 'x-unix', 'command died'),
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
