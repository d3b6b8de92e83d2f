"""Opening an SMTP session: aiosmtplib connects, says EHLO, negotiates TLS and logs in (a password,
or OAuth2 with OAUTHBEARER or XOAUTH2); every failure becomes the error that says what to do, with
host and port and never a password. Each step is recorded for :func:`mailnb.check_relay`."""
from __future__ import annotations

import asyncio
import ssl
from typing import Any

import aiosmtplib

from ..config.oauth import access_token, sasl_oauthbearer
from ..config.secrets import Secret
from ..config.targets import Relay, client_ssl_context
from ..errors import AuthenticationError, MailnbError, RelayError, TLSError, arg, phrase


def tls_context(relay: Relay) -> ssl.SSLContext:
    return client_ssl_context(relay.verify, relay.cafile)


def _is_tls_error(err: BaseException) -> bool:
    seen = 0
    e: BaseException | None = err
    while e is not None and seen < 10:
        if isinstance(e, ssl.SSLError | ssl.CertificateError):
            return True
        e = e.__cause__ or e.__context__
        seen += 1
    return "CERTIFICATE_VERIFY_FAILED" in str(err) or "SSL" in str(err)


def _scrub(text: str, secret: Secret | None) -> str:
    return secret.scrub(text) if secret is not None else text



#: what providers' documented refusals of a login mean, and what to do: (code, words in the reply,
#: advice). Checked in order; the first match wins. Sources:
#: Microsoft: https://learn.microsoft.com/exchange/clients-and-mobile-in-exchange-online/authenticated-client-smtp-submission
#: Google: https://support.google.com/a/answer/3726730 (SMTP error reference)
AUTH_REFUSALS: tuple[tuple[int | None, str, str], ...] = (
    (None, "5.7.30", "Microsoft 365 no longer accepts a password here (Basic authentication is off "
     "for SMTP AUTH): sign in with OAuth2 instead: " + arg("auth", "oauth2") + " and "
     + arg("oauth_client_id", "ID") + " (your app registration), then `mailnb login`."),
    (None, "5.7.139", "SMTP AUTH is disabled for this mailbox or the whole tenant: an administrator "
     "enables it with `Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled "
     "$false` (or in the Microsoft 365 admin center: Users > Active users > Mail > Manage email "
     "apps > Authenticated SMTP)."),
    (None, "5.7.3", "Microsoft 365 did not accept the sign-in: check the username; with OAuth2 the "
     "app registration needs the SMTP.Send permission (admin consent), and the mailbox's "
     "SMTP AUTH must be enabled."),
    (534, "5.7.9", "Gmail wants an app password (Google account > Security > App passwords) or "
     "OAuth2: the account has 2-step verification."),
    (None, "5.7.8", "Gmail did not accept the username and password: check them; with 2-step "
     "verification use an app password."),
)


def auth_advice(code: int | None, reply: str, relay: Relay) -> str:
    for want_code, words, advice in AUTH_REFUSALS:
        if (want_code is None or want_code == code) and words in reply:
            return advice
    if relay.uses_oauth:
        return ("The token was refused: the app registration may lack the SMTP.Send "
                "permission, or the sign-in was revoked (run `mailnb login` again).")
    return "Check the username and the password (for Gmail and Outlook: an app password)."


class SMTPLogin:
    """The session-opening half of :class:`~mailnb.transports.smtp.SMTPConnection`."""

    relay: Relay
    password: Secret | None
    secrets: list[Secret]
    steps: list[tuple[str, bool, str]]
    smtp: Any
    extensions: set[str]

    @property
    def where(self) -> str:
        return f"{self.relay.host}:{self.relay.port}"

    def _step(self, name: str, ok: bool, detail: str) -> None:
        self.steps.append((name, ok, self._scrubbed(phrase(detail))))

    async def open(self) -> None:
        """Connect, EHLO, STARTTLS, EHLO, AUTH. Raises RelayError (AuthenticationError, TLSError)
        or, for a temporary refusal (421 greeting, timeout, refused socket), RelayError with
        ``code`` 421 or None so the caller can retry."""
        r = self.relay
        smtp = aiosmtplib.SMTP(
            hostname=r.host, port=r.port, use_tls=r.security == "tls", start_tls=False,
            tls_context=tls_context(r) if r.security != "none" else None,
            local_hostname=r.helo, timeout=r.timeout)
        try:
            await self._handshake(smtp)
            if r.uses_oauth:
                await self._login_oauth(smtp)
            elif r.username:
                await self._login_password(smtp)
        except MailnbError as err:
            self._step("error", False, str(err))
            smtp.close()
            raise
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as err:
            smtp.close()
            raise self._failure(err) from None
        self.extensions = {k.lower() for k in smtp.esmtp_extensions}
        transport = smtp.transport
        smtp.transport = None          # the session is ours from here: aiosmtplib lets go of it
        smtp.protocol = None
        self.take_over(transport)

    def take_over(self, transport: Any) -> None:
        """Run the session from here on, on aiosmtplib's transport (TLS included)."""
        raise NotImplementedError

    async def _handshake(self, smtp: aiosmtplib.SMTP) -> None:
        r, where = self.relay, self.where
        greeting = await smtp.connect()
        self._step("connect", True, f"{where}: {greeting.code} {greeting.message}"
                   + (" (TLS)" if r.security == "tls" else ""))
        ehlo = await smtp.ehlo()
        self._step("EHLO", True, f"{ehlo.code}: {', '.join(sorted(smtp.esmtp_extensions))}")
        if r.security == "starttls":
            if not smtp.supports_extension("starttls"):
                raise TLSError(f"{where} does not offer STARTTLS; use {arg('security', 'tls')} "
                               "(port 465) or, for a relay on this machine only, "
                               f"{arg('security', 'none')}",
                               host=r.host, port=r.port)
            await smtp.starttls()
            await smtp.ehlo()
            self._step("STARTTLS", True, "TLS negotiated, certificate verified"
                       if r.verify else "TLS negotiated, certificate NOT verified")
        elif r.opportunistic and smtp.supports_extension("starttls"):
            await smtp.starttls(tls_context=client_ssl_context(verify=False))
            await smtp.ehlo()
            self._step("STARTTLS", True, "opportunistic TLS (RFC 7435: not authenticated)")
        if (r.username or r.uses_oauth) and not smtp.supports_extension("auth"):
            raise AuthenticationError(
                f"{where} does not offer AUTH on this connection; the relay may require "
                f"STARTTLS first ({arg('security', 'starttls')}) or need no login (no username)",
                host=r.host, port=r.port)

    async def _login_password(self, smtp: aiosmtplib.SMTP) -> None:
        r = self.relay
        if self.password is None:
            raise AuthenticationError(f"{self.where}: a username is set but no password",
                                      host=r.host, port=r.port)
        await smtp.login(r.username or "", self.password.reveal())
        self._step("AUTH", True, f"logged in as {r.username}")

    async def _login_oauth(self, smtp: aiosmtplib.SMTP) -> None:
        """OAUTHBEARER (RFC 7628) when offered, else XOAUTH2, with a token from the identity
        provider; a token the server refuses is refreshed once (it may have been revoked)."""
        r = self.relay
        methods = {m.lower() for m in smtp.server_auth_methods}
        mechanism = "OAUTHBEARER" if "oauthbearer" in methods else "XOAUTH2"
        for attempt in (1, 2):
            token = await asyncio.to_thread(access_token, r.oauth, attempt == 2)
            self.secrets.append(token)
            try:
                if mechanism == "OAUTHBEARER":
                    await self._oauthbearer(smtp, token)
                else:
                    await smtp.auth_xoauth2(r.username or "", token.reveal())
                break
            except aiosmtplib.SMTPAuthenticationError:
                if attempt == 2:
                    raise
        self._step("AUTH", True, f"signed in as {r.username} ({mechanism}, OAuth2)")

    async def _oauthbearer(self, smtp: aiosmtplib.SMTP, token: Secret) -> None:
        r = self.relay
        reply = await smtp.execute_command(
            b"AUTH", b"OAUTHBEARER",
            sasl_oauthbearer(r.username or "", token.reveal(), r.host, r.port or 0).encode())
        if reply.code == 334:             # an error challenge: end the exchange (RFC 7628 3.2.3)
            reply = await smtp.execute_command(b"AQ==")
        if reply.code != 235:
            raise aiosmtplib.SMTPAuthenticationError(reply.code, reply.message)

    def _failure(self, err: BaseException) -> RelayError:
        """The error to raise for a failure of connect, TLS or login, with what to do."""
        r, where = self.relay, self.where
        if isinstance(err, aiosmtplib.SMTPAuthenticationError):
            said = self._scrubbed(err.message)
            msg = (f"{where} refused the login of {r.username}: {err.code} {said}. "
                   f"{auth_advice(err.code, said, r)}")
            self._step("AUTH", False, msg)
            return AuthenticationError(msg, host=r.host, port=r.port, code=err.code)
        if isinstance(err, aiosmtplib.SMTPResponseException):
            msg = f"{where} answered {err.code} {self._scrubbed(err.message)}"
            self._step("connect", False, msg)
            return RelayError(msg, host=r.host, port=r.port, code=err.code)
        text = self._scrubbed(str(err))
        if _is_tls_error(err):
            msg = (f"TLS with {where} failed: {text}. If the relay uses a private CA, pass "
                   f"{arg('cafile', 'ca.pem')}; check that security {r.security!r} fits port "
                   f"{r.port}.")
            self._step("TLS", False, msg)
            return TLSError(msg, host=r.host, port=r.port)
        msg = f"cannot talk to {where}: {text}"
        self._step("connect", False, msg)
        return RelayError(msg, host=r.host, port=r.port)

    def _scrubbed(self, text: str) -> str:
        for secret in (self.password, *self.secrets):
            text = _scrub(text, secret)
        return text
