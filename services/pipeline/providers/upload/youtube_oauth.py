"""The YouTube channel's OAuth token file (``youtube-auth``, ``doctor`` and the uploader).

``authorize`` runs the installed-app flow and writes the authorized-user token file (mode
0600, atomically); ``load_credentials`` reads it and refreshes the access token when it has
expired, saving it back; ``check_token`` forces a refresh and says until when the token is
valid. A token Google refuses raises ``YouTubeAuthError`` with how to authorise again.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import timezone
from pathlib import Path
from typing import Any

import google.auth.exceptions
from google.auth.transport.requests import Request as AuthRequest
from google.oauth2.credentials import Credentials

from services.pipeline.providers.upload.youtube_errors import YouTubeAuthError, reauth_hint
from services.pipeline.providers.upload.youtube_metadata import rfc3339
from services.pipeline.settings import read_secret_file
from services.scheduler.atomic_file import write_atomic

__all__ = ["SCOPES", "authorize", "check_token", "load_credentials"]

SCOPES = ["https://www.googleapis.com/auth/youtube.upload"]


def _write_token(token_file: Path, credentials: Credentials) -> None:
    """Save the authorized-user JSON atomically, created 0600."""
    token_file.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(token_file, (credentials.to_json() + "\n").encode("utf-8"), mode=0o600)


def _read_token(token_file: Path, account: str) -> Credentials:
    text = read_secret_file(token_file, "YOUTUBE_TOKEN_FILE")  # SettingsError: missing, empty, not 0600
    try:
        info = json.loads(text)
        credentials = Credentials.from_authorized_user_info(info, SCOPES)
    except ValueError as exc:  # not JSON, or no refresh_token / client_id / client_secret
        raise YouTubeAuthError(
            f"{token_file} is not a usable token file ({exc}); {reauth_hint(account)}"
        ) from None
    # google-auth always sets Google's token endpoint here; the file's own token_uri (a
    # proxy, a test server) is kept, as the file says (and as the refresh saves it back)
    token_uri = info.get("token_uri")
    if isinstance(token_uri, str) and token_uri and token_uri != credentials.token_uri:
        expiry = credentials.expiry
        credentials = credentials.with_token_uri(token_uri)
        credentials.expiry = expiry  # the copy forgets it: an expired token would look valid
    return credentials


def _refresh(credentials: Credentials, token_file: Path, request: Any, account: str) -> None:
    """Refresh the access token and save it back; YouTubeAuthError when Google refuses."""
    try:
        credentials.refresh(request if request is not None else AuthRequest())
    except google.auth.exceptions.RefreshError as exc:
        reason = exc.args[0] if exc.args else exc
        raise YouTubeAuthError(
            f"the YouTube token in {token_file} cannot be refreshed ({reason}); {reauth_hint(account)}"
        ) from None
    _write_token(token_file, credentials)


def load_credentials(token_file: Path, *, request: Any = None, account: str = "<id>") -> Credentials:
    """The channel's credentials from its 0600 token file, refreshed (and saved) if expired.

    :param request: a ``google.auth.transport.Request`` for the refresh (default: requests).
    :param account: the account id named in the re-authorisation hint.
    """
    credentials = _read_token(token_file, account)
    if not credentials.valid:
        _refresh(credentials, token_file, request, account)
    return credentials


def check_token(token_file: Path, *, request: Any = None, account: str = "<id>") -> str:
    """Refresh the token now (for ``doctor``); say until when it is valid."""
    credentials = _read_token(token_file, account)
    _refresh(credentials, token_file, request, account)
    if credentials.expiry is None:
        return "token refreshed"
    until = credentials.expiry.replace(tzinfo=timezone.utc)  # google-auth keeps naive UTC
    return f"token refreshed, valid until {rfc3339(until)}"


def _stderr_line(text: str) -> None:
    sys.stderr.write(text + "\n")


def authorize(
    client_secrets: Path, token_file: Path, *, port: int = 8080, write: Callable[[str], None] = _stderr_line
) -> Path:
    """Run the OAuth consent for a channel and write its token file (0600); return its path.

    The flow listens on ``localhost:<port>`` for Google's redirect. On a headless server,
    forward the port from the machine with the browser (``ssh -L <port>:localhost:<port>``).
    """
    from google_auth_oauthlib.flow import InstalledAppFlow  # only the youtube-auth command needs it

    write(
        f"Authorising YouTube uploads. Google redirects the browser to http://localhost:{port}/ "
        f"when you accept; on a remote server, first run `ssh -L {port}:localhost:{port} <server>`."
    )
    flow = InstalledAppFlow.from_client_secrets_file(str(client_secrets), SCOPES)
    credentials = flow.run_local_server(
        host="localhost",
        port=port,
        open_browser=False,
        authorization_prompt_message="Open this URL in a browser: {url}",
        access_type="offline",
        prompt="consent",
    )
    if not credentials.refresh_token:
        raise YouTubeAuthError(
            "Google returned no refresh token; remove the app's access at "
            "https://myaccount.google.com/permissions and authorise again"
        )
    _write_token(token_file, credentials)
    write(f"Token saved to {token_file} (mode 600).")
    return token_file
