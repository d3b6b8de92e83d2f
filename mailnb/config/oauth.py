"""OAuth2 sign-in for SMTP and Graph: Microsoft 365 through Microsoft's own library (msal), Gmail
through Google's (google-auth, google-auth-oauthlib).

Exchange Online turns Basic authentication (a password) for SMTP AUTH off by default at the end of
December 2026; after that only OAuth2 signs in. The first sign-in is the device-code flow (RFC 8628):
the cell or terminal shows a URL and a code, the user signs in there in any browser, and msal keeps a
refresh token, so later runs sign in silently. Google allows no device flow for Gmail's scope: its
first sign-in is the installed-app flow (a page to open, then a redirect to this machine). A cron
job with no cache gives a refresh token in ``$MAILNB_OAUTH_REFRESH_TOKEN`` instead.

The token cache lives in the system keyring, or, where the machine has no keyring backend, in a
file of the config folder (mode 0600, folder 0700). Access and refresh tokens are :class:`Secret`s:
never in a repr, an error message, a notebook, the journal or a log.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import webbrowser
from collections.abc import Callable
from typing import Any

from ..errors import AuthenticationError, alt
from ..util.files import private_dir, write_private
from .profile import config_dir
from .secrets import KEYRING_SERVICE, Secret
from .targets import CLIENT_SECRET_ENV, REFRESH_TOKEN_ENV, OAuth


# -- the token cache --------------------------------------------------------------------------------
class TokenStore:
    """Where the serialised token cache is kept: the keyring, else a 0600 file."""

    def __init__(self, key: str) -> None:
        self.key = key
        digest = hashlib.sha256(key.encode()).hexdigest()[:20]
        self.path = config_dir() / "oauth" / f"{digest}.json"

    @staticmethod
    def _keyring() -> Any:
        try:
            import keyring
            from keyring.backends import fail
            backend = keyring.get_keyring()
        except Exception:
            return None
        if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 1) <= 0:
            return None
        return keyring

    def load(self) -> str | None:
        ring = self._keyring()
        if ring is not None:
            try:
                found: str | None = ring.get_password(KEYRING_SERVICE, self.key)
                return found
            except Exception:
                pass
        return self.path.read_text(encoding="utf-8") if self.path.is_file() else None

    def save(self, data: str) -> None:
        ring = self._keyring()
        if ring is not None:
            try:
                ring.set_password(KEYRING_SERVICE, self.key, data)
                return
            except Exception:
                pass
        private_dir(self.path.parent)
        write_private(self.path, data.encode("utf-8"))

    def clear(self) -> None:
        ring = self._keyring()
        if ring is not None:
            try:
                ring.delete_password(KEYRING_SERVICE, self.key)
            except Exception:
                pass
        self.path.unlink(missing_ok=True)


# -- Microsoft: msal ---------------------------------------------------------------------------------
_LOCK = threading.RLock()


class MicrosoftSignIn:
    """msal's PublicClientApplication for one OAuth setting, with the persisted cache."""

    def __init__(self, oauth: OAuth) -> None:
        import msal  # loaded only by those who sign in with OAuth2 (it is slow to import)
        import requests
        oauth.validate()
        self.oauth = oauth
        self.store = TokenStore(oauth.cache_key)
        self.cache = msal.SerializableTokenCache()
        saved = self.store.load()
        if saved:
            self.cache.deserialize(saved)
        session = requests.Session()          # honours REQUESTS_CA_BUNDLE for a private CA
        self.app = msal.PublicClientApplication(
            oauth.client_id, authority=oauth.authority_url, token_cache=self.cache,
            http_client=session, instance_discovery=oauth.authority is None)
        self.scopes = oauth.scope_list

    def _save(self) -> None:
        if self.cache.has_state_changed:
            self.store.save(self.cache.serialize())

    def _result(self, result: dict[str, Any] | None, how: str) -> Secret:
        if not result or "access_token" not in result:
            error = (result or {}).get("error") or "no token"
            said = (result or {}).get("error_description", "").splitlines()
            raise AuthenticationError(
                f"signing in {self.oauth.username} with Microsoft failed ({how}: {error}"
                f"{': ' + said[0] if said else ''}). The sign-in may have expired or been "
                "revoked: sign in again with `mailnb login --profile NAME` "
                "(mailnb.config.oauth.login(...) in Python), or give a new refresh token in "
                f"${REFRESH_TOKEN_ENV}")
        self._save()
        return Secret(result["access_token"])

    def token(self, force_refresh: bool = False) -> Secret:
        """An access token: from the cache, refreshed silently, or from the refresh token in
        ``$MAILNB_OAUTH_REFRESH_TOKEN``."""
        accounts = self.app.get_accounts(username=self.oauth.username) or self.app.get_accounts()
        if accounts:
            result = self.app.acquire_token_silent_with_error(
                self.scopes, account=accounts[0], force_refresh=force_refresh)
            if result and "access_token" in result:
                return self._result(result, "silent refresh")
            if os.environ.get(REFRESH_TOKEN_ENV) is None:
                return self._result(result, "silent refresh")
        refresh = os.environ.get(REFRESH_TOKEN_ENV)
        if refresh:
            return self._result(self.app.acquire_token_by_refresh_token(refresh, self.scopes),
                                f"the refresh token in ${REFRESH_TOKEN_ENV}")
        raise AuthenticationError(
            f"{self.oauth.username} has not signed in with Microsoft on this machine: run "
            + alt("mailnb.config.oauth.login(...) or the setup form's sign-in button (or `mailnb login "
                  "--profile NAME` in a terminal)", "`mailnb login --profile NAME`")
            + " once, or give a "
            f"refresh token in ${REFRESH_TOKEN_ENV} (for cron)")

    def login(self, show: Callable[[str], None]) -> None:
        """The device-code flow: ``show`` gets the URL and the code to enter there; this waits
        until the user has signed in (or the code expires)."""
        flow = self.app.initiate_device_flow(scopes=self.scopes)
        if "user_code" not in flow:
            raise AuthenticationError(f"Microsoft did not start a sign-in: "
                                      f"{flow.get('error')}: {flow.get('error_description', '')}")
        show(flow["message"])
        self._result(self.app.acquire_token_by_device_flow(flow), "device code sign-in")


# -- Google: google-auth and google-auth-oauthlib --------------------------------------------------
class _ShowBrowser(webbrowser.BaseBrowser):
    """A ``webbrowser`` controller that shows the sign-in URL instead of opening a window: what
    google-auth-oauthlib's flow "opens" (a notebook cell, a terminal, a form)."""

    def __init__(self, show: Callable[[str], None]) -> None:
        super().__init__("mailnb")
        self.show = show

    def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
        self.show(f"To sign in, open this page in a browser on this machine: {url}")
        return True

    open_new = open_new_tab = open


class GoogleSignIn:
    """Google's OAuth2 for Gmail: the installed-app flow once (a loopback redirect; Google allows
    no device flow for Gmail's scope), then ``google.oauth2.credentials`` refreshes silently."""

    def __init__(self, oauth: OAuth) -> None:
        oauth.validate()
        self.oauth = oauth
        self.store = TokenStore(oauth.cache_key)
        self.auth_url, self.token_url = oauth.google_endpoints

    def _secret(self) -> str:
        secret = os.environ.get(CLIENT_SECRET_ENV)
        if not secret:
            raise AuthenticationError(
                f"Google sign-in needs the OAuth client's secret in ${CLIENT_SECRET_ENV} (from "
                "the Google Cloud console, the desktop app client you made for mailnb)")
        return secret

    def _credentials(self) -> Any:
        from google.oauth2.credentials import Credentials  # loaded only for Google sign-in
        saved = self.store.load()
        refresh = os.environ.get(REFRESH_TOKEN_ENV)
        if saved:
            info = json.loads(saved)
            return Credentials(None, refresh_token=info["refresh_token"],  # type: ignore[no-untyped-call]
                               token_uri=self.token_url, client_id=self.oauth.client_id,
                               client_secret=self._secret(), scopes=self.oauth.scope_list)
        if refresh:
            return Credentials(None, refresh_token=refresh,  # type: ignore[no-untyped-call]
                               token_uri=self.token_url,
                               client_id=self.oauth.client_id, client_secret=self._secret(),
                               scopes=self.oauth.scope_list)
        raise AuthenticationError(
            f"{self.oauth.username} has not signed in with Google on this machine: run "
            + alt("mailnb.config.oauth.login(...) or the setup form's sign-in button (or `mailnb login "
                  "--profile NAME` in a terminal)", "`mailnb login --profile NAME`")
            + " once, or give a "
            f"refresh token in ${REFRESH_TOKEN_ENV} (for cron)")

    def token(self, force_refresh: bool = False) -> Secret:
        import google.auth.exceptions
        import google.auth.transport.requests
        if getattr(self, "creds", None) is None:
            self.creds = self._credentials()
        if force_refresh or not self.creds.valid:
            try:
                self.creds.refresh(google.auth.transport.requests.Request())
            except google.auth.exceptions.RefreshError as err:
                self.creds = None
                why = str(err.args[0]) if err.args else "refresh"
                raise AuthenticationError(
                    f"signing in {self.oauth.username} with Google failed ({why}). The sign-in "
                    "may have expired or been revoked: sign in again with `mailnb login "
                    f"--profile NAME`, or give a new refresh token in ${REFRESH_TOKEN_ENV}") \
                    from None
            self._keep()
        return Secret(self.creds.token)

    def _keep(self) -> None:
        if self.creds.refresh_token:
            self.store.save(json.dumps({"refresh_token": self.creds.refresh_token}))

    def login(self, show: Callable[[str], None]) -> None:

        from google_auth_oauthlib.flow import InstalledAppFlow
        config = {"installed": {"client_id": self.oauth.client_id,
                                "client_secret": self._secret(), "auth_uri": self.auth_url,
                                "token_uri": self.token_url, "redirect_uris": ["http://localhost"]}}
        flow = InstalledAppFlow.from_client_config(config, scopes=self.oauth.scope_list)
        name = f"mailnb-show-{id(self)}"
        webbrowser.register(name, None, _ShowBrowser(show))
        try:
            self.creds = flow.run_local_server(host="localhost", port=0, browser=name,
                                               authorization_prompt_message="",
                                               timeout_seconds=600, access_type="offline",
                                               prompt="consent")
        except Exception as err:
            raise AuthenticationError(f"Google sign-in did not complete: "
                                      f"{type(err).__name__}: {err}") from None
        self._keep()


_SIGN_INS: dict[str, MicrosoftSignIn | GoogleSignIn] = {}


def sign_in(oauth: OAuth) -> MicrosoftSignIn | GoogleSignIn:
    """One sign-in object per OAuth setting in this process (msal keeps its cache in memory)."""
    key = f"{oauth.cache_key} {' '.join(oauth.scope_list)}"
    with _LOCK:
        if key not in _SIGN_INS:
            cls = GoogleSignIn if oauth.provider == "google" else MicrosoftSignIn
            _SIGN_INS[key] = cls(oauth)
        return _SIGN_INS[key]


def access_token(oauth: OAuth, force_refresh: bool = False) -> Secret:
    with _LOCK:
        return sign_in(oauth).token(force_refresh)


def login(oauth: OAuth, show: Callable[[str], None] = print) -> None:
    """Sign in once (device code): ``show`` prints the URL and the code; later runs on this machine
    sign in silently."""
    sign_in(oauth).login(show)


def logout(oauth: OAuth) -> None:
    """Forget the cached tokens of this sign-in."""
    with _LOCK:
        for key in [k for k in _SIGN_INS if k.startswith(oauth.cache_key + " ")]:
            _SIGN_INS.pop(key)
    TokenStore(oauth.cache_key).clear()


def sasl_oauthbearer(username: str, token: str, host: str, port: int) -> str:
    """The OAUTHBEARER initial client response (RFC 7628 3.1), base64-encoded."""
    gs2 = f"n,a={username.replace('=', '=3D').replace(',', '=2C')},"
    raw = f"{gs2}\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01"
    return base64.b64encode(raw.encode()).decode()


__all__ = ["OAuth", "access_token", "login", "logout", "REFRESH_TOKEN_ENV"]
