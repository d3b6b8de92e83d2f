"""A loopback stand-in for Microsoft's identity platform, written from its documented protocol, so
that msal (the client code under test) talks to it as it talks to login.microsoftonline.com:

- ``GET /<tenant>/v2.0/.well-known/openid-configuration``: OpenID discovery;
- ``POST /<tenant>/oauth2/v2.0/devicecode``: the device authorization request (RFC 8628 3.1-3.2);
- ``POST /<tenant>/oauth2/v2.0/token``: the device-code grant (RFC 8628 3.4-3.5:
  ``authorization_pending`` until the user has entered the code) and the refresh-token grant
  (RFC 6749 6; ``invalid_grant`` once revoked);
- ``POST /device``: what the user's browser does at the verification URL (enter the code);
- ``GET /google/auth`` and ``POST /google/token``: Google's authorization-code flow for installed
  apps (RFC 6749 4.1 with PKCE, RFC 7636; the user's consent is given at once) and its refresh
  grant, both with the client secret Google's installed-app clients have.

HTTPS with a throwaway CA (msal accepts only https authorities); the tests trust it through
``REQUESTS_CA_BUNDLE``. And an aiosmtpd handler whose XOAUTH2 and OAUTHBEARER accept only an
access token this server issued that is still valid, answering as Exchange Online does otherwise.
"""
from __future__ import annotations

import base64
import json
import secrets
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from smtp_servers import Recorder, Server, free_port


def _b64url(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


class IdentityProvider:
    def __init__(self, tmp_path, username: str, tenant: str = "contoso-tenant",
                 lifetime: int = 3600) -> None:
        self.username, self.tenant, self.lifetime = username, tenant, lifetime
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.cafile = str(tmp_path / "idp-ca.pem")
        ca.cert_pem.write_to_path(self.cafile)
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self.ctx)
        self.lock = threading.Lock()
        self.devices: dict[str, dict] = {}           # device_code -> {user_code, approved}
        self.access: dict[str, float] = {}           # access token -> valid until
        self.refresh: dict[str, bool] = {}           # refresh token -> still valid
        self.grants: list[str] = []                  # every grant_type asked for, in order
        self.codes: dict[str, dict] = {}             # authorization code -> its request
        self.client_secret = "google-client-secret"
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.socket = self.ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.base = f"https://127.0.0.1:{self.port}"
        self.authority = f"{self.base}/{tenant}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    # -- what the tests do ---------------------------------------------------------------------
    def approve(self, user_code: str) -> None:
        """What the user does at the verification URL (POST, as the browser's form would)."""
        import requests
        r = requests.post(f"{self.base}/device", data={"user_code": user_code},
                          verify=self.cafile, timeout=10)
        assert r.status_code == 200, r.text

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access = {t: 0.0 for t in self.access}

    def revoke_refresh_tokens(self) -> None:
        with self.lock:
            self.refresh = {t: False for t in self.refresh}

    def valid(self, token: str) -> bool:
        with self.lock:
            return self.access.get(token, 0) > time.time()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- the protocol --------------------------------------------------------------------------
    def _tokens(self, client_id: str, scope: str = "https://outlook.office.com/SMTP.Send") -> dict:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        now = int(time.time())
        with self.lock:
            self.access[access] = time.time() + self.lifetime
            self.refresh[refresh] = True
        id_token = ".".join([_b64url({"alg": "none", "typ": "JWT"}), _b64url({
            "iss": f"{self.authority}/v2.0", "aud": client_id, "iat": now,
            "exp": now + 3600, "sub": "user-1", "oid": "user-1", "tid": self.tenant,
            "preferred_username": self.username, "name": "Test User"}), ""])
        return {"token_type": "Bearer", "scope": scope,
                "expires_in": self.lifetime, "ext_expires_in": self.lifetime,
                "access_token": access, "refresh_token": refresh, "id_token": id_token,
                "client_info": _b64url({"uid": "user-1", "utid": self.tenant})}

    def _token_request(self, form: dict) -> tuple[int, dict]:
        grant = form.get("grant_type", "")
        self.grants.append(grant)
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            device = self.devices.get(form.get("device_code", ""))
            if device is None:
                return 400, {"error": "invalid_grant", "error_description": "unknown code"}
            if not device["approved"]:
                return 400, {"error": "authorization_pending",
                             "error_description": "AADSTS70016: pending"}
            return 200, self._tokens(form.get("client_id", ""))
        if grant == "authorization_code":
            asked = self.codes.pop(form.get("code", ""), None)
            if asked is None or asked["redirect_uri"] != form.get("redirect_uri") or \
                    form.get("client_secret") != self.client_secret:
                return 400, {"error": "invalid_grant", "error_description": "Bad code."}
            if asked.get("code_challenge"):                   # PKCE, RFC 7636 4.6
                import hashlib
                digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
                if base64.urlsafe_b64encode(digest).decode().rstrip("=") != \
                        asked["code_challenge"]:
                    return 400, {"error": "invalid_grant", "error_description": "PKCE"}
            return 200, self._tokens(form.get("client_id", ""), asked["scope"])
        if grant == "refresh_token":
            with self.lock:
                ok = self.refresh.get(form.get("refresh_token", ""), False)
            if not ok:
                return 400, {"error": "invalid_grant", "error_description":
                             "AADSTS70000: The refresh token has been revoked."}
            return 200, self._tokens(form.get("client_id", ""),
                                     form.get("scope") or "https://outlook.office.com/SMTP.Send")
        return 400, {"error": "unsupported_grant_type"}

    def _handler(self) -> type:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: dict | str) -> None:
                data = (json.dumps(body) if isinstance(body, dict) else body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if isinstance(body, dict)
                                 else "text/html")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _form(self) -> dict:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                return {k: v[0] for k, v in parse_qs(raw).items()}

            def do_GET(self) -> None:
                path = urlparse(self.path).path
                if path == "/google/auth":                 # consent given at once
                    q = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
                    code = secrets.token_urlsafe(16)
                    idp.codes[code] = q
                    self.send_response(302)
                    self.send_header("Location", f"{q['redirect_uri']}?code={code}"
                                                 f"&state={q.get('state', '')}&scope={q['scope']}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path == f"/{idp.tenant}/v2.0/.well-known/openid-configuration":
                    base = f"{idp.authority}/oauth2/v2.0"
                    return self._send(200, {
                        "issuer": f"{idp.authority}/v2.0", "authorization_endpoint":
                        f"{base}/authorize", "token_endpoint": f"{base}/token",
                        "device_authorization_endpoint": f"{base}/devicecode"})
                self._send(404, {"error": "not_found"})

            def do_POST(self) -> None:
                path, form = urlparse(self.path).path, self._form()
                if path == f"/{idp.tenant}/oauth2/v2.0/devicecode":
                    code, user_code = secrets.token_urlsafe(16), secrets.token_hex(4).upper()
                    idp.devices[code] = {"user_code": user_code, "approved": False}
                    uri = f"{idp.base}/device"
                    return self._send(200, {
                        "device_code": code, "user_code": user_code, "verification_uri": uri,
                        "expires_in": 300, "interval": 1, "message":
                        f"To sign in, use a web browser to open the page {uri} and enter the "
                        f"code {user_code} to authenticate."})
                if path in (f"/{idp.tenant}/oauth2/v2.0/token", "/google/token"):
                    basic = self.headers.get("Authorization", "")
                    if basic.startswith("Basic "):      # client credentials, RFC 6749 2.3.1
                        from urllib.parse import unquote
                        cid, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
                        form.setdefault("client_id", unquote(cid))
                        form.setdefault("client_secret", unquote(secret))
                    return self._send(*idp._token_request(form))
                if path == "/device":
                    for device in idp.devices.values():
                        if device["user_code"] == form.get("user_code"):
                            device["approved"] = True
                            return self._send(200, "<p>You are signed in.</p>")
                    return self._send(400, "<p>unknown code</p>")
                self._send(404, {"error": "not_found"})

        return Handler


class OAuthRecorder(Recorder):
    """A Recorder whose server signs in with XOAUTH2 (and OAUTHBEARER, if asked), accepting only
    valid tokens from ``idp``; other refusals can be switched on with ``refuse``."""

    def __init__(self, idp: IdentityProvider, **kw: object) -> None:
        super().__init__(**kw)
        self.idp = idp
        self.logins: list[tuple[str, str]] = []       # (mechanism, user)
        self.refuse: str | None = None                 # a reply to give every login instead

    def _check(self, mechanism: str, user: str, token: str) -> AuthResult:
        if self.refuse:
            return AuthResult(success=False, handled=False, message=self.refuse)
        if user == self.idp.username and self.idp.valid(token):
            self.logins.append((mechanism, user))
            return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False,
                          message="535 5.7.3 Authentication unsuccessful")

    async def auth_XOAUTH2(self, server, args):
        raw = base64.b64decode(args[1]).decode() if len(args) > 1 else ""
        fields = dict(p.split("=", 1) for p in raw.split("\x01") if "=" in p)
        token = fields.get("auth", "").removeprefix("Bearer ")
        result = self._check("XOAUTH2", fields.get("user", ""), token)
        if not result.success and not self.refuse:      # the error challenge, then the reply
            await server.challenge_auth(_b64url({"status": "401"}), encode_to_b64=False)
        return result

    async def auth_OAUTHBEARER(self, server, args):
        raw = base64.b64decode(args[1]).decode() if len(args) > 1 else ""
        gs2, *kv = raw.split("\x01")
        fields = dict(p.split("=", 1) for p in kv if "=" in p)
        user = gs2.split(",")[1].removeprefix("a=") if gs2.count(",") >= 2 else ""
        token = fields.get("auth", "").removeprefix("Bearer ")
        result = self._check("OAUTHBEARER", user, token)
        if not result.success and not self.refuse:
            await server.challenge_auth(_b64url({"status": "invalid_token"}),
                                        encode_to_b64=False)
        return result


def start_oauth_smtp(idp: IdentityProvider, mechanisms=("XOAUTH2",)) -> Server:
    recorder = OAuthRecorder(idp)
    port = free_port()
    excluded = ["LOGIN", "PLAIN"] + [m for m in ("XOAUTH2", "OAUTHBEARER") if m not in mechanisms]
    controller = Controller(recorder, hostname="127.0.0.1", port=port,
                            server_hostname="localhost", auth_required=True,
                            auth_require_tls=False, auth_exclude_mechanism=excluded)
    controller.start()
    return Server("127.0.0.1", port, recorder, controller)


class GraphServer:
    """Microsoft Graph's ``POST /v1.0/users/{id}/sendMail`` on loopback HTTPS, taking MIME as
    Microsoft documents it (base64 in a text/plain body, answered 202), accepting only valid
    tokens from ``idp``; the first ``throttle`` requests are answered 429 with Retry-After."""

    def __init__(self, idp: IdentityProvider, *, throttle: int = 0, retry_after: int = 1) -> None:
        self.idp, self.throttle, self.retry_after = idp, throttle, retry_after
        self.received: list[tuple[float, str, bytes]] = []     # (time, user, MIME)
        self.requests: list[tuple[float, int]] = []            # (time, status answered)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.socket = idp.ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}/v1.0"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _answer(self, path: str, headers, body: bytes) -> tuple[int, dict, dict]:
        token = headers.get("Authorization", "").removeprefix("Bearer ")
        if not self.idp.valid(token):
            return 401, {}, {"error": {"code": "InvalidAuthenticationToken",
                                       "message": "Access token has expired or is not valid."}}
        parts = path.split("/")
        if len(parts) != 5 or parts[2] != "users" or parts[4] != "sendMail":
            return 404, {}, {"error": {"code": "ResourceNotFound", "message": path}}
        if headers.get("Content-Type") != "text/plain":
            return 400, {}, {"error": {"code": "ErrorMimeContentInvalid", "message": "type"}}
        if self.throttle > 0:
            self.throttle -= 1
            return 429, {"Retry-After": str(self.retry_after)}, {"error": {
                "code": "ApplicationThrottled", "message": "Application is over its limit."}}
        self.received.append((time.time(), parts[3], base64.b64decode(body)))
        return 202, {}, {}

    def _handler(self) -> type:
        graph = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, extra, payload = graph._answer(urlparse(self.path).path, self.headers,
                                                       body)
                graph.requests.append((time.time(), status))
                data = json.dumps(payload).encode() if payload else b""
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                if data:
                    self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(data)

        return Handler


def device_sign_in(idp: IdentityProvider, who) -> str:
    """The device-code flow as a person does it: read the code shown, enter it at the URL."""
    import re

    from mailnb.config.oauth import login
    said: list[str] = []
    t = threading.Thread(target=login, args=(who,), kwargs={"show": said.append})
    t.start()
    deadline = time.time() + 20
    while not said and time.time() < deadline:
        time.sleep(0.05)
    assert said and f"{idp.base}/device" in said[0]
    idp.approve(re.search(r"enter the code (\w+)", said[0]).group(1))
    t.join(30)
    assert not t.is_alive()
    return said[0]
