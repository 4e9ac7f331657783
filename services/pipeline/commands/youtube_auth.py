"""``youtube-auth [--account ID] [--client-secrets FILE] [--token-file FILE] [--port N]``:
authorise a YouTube channel once (OAuth installed-app flow; it prints the URL to open, and
listens on localhost:N for Google's redirect) and write the refresh token file (0600) the
uploads use.

Exit 2 on a missing or wrong argument, 1 when the authorisation fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.pipeline.settings import load_settings
from services.scheduler.settings import Settings, SettingsError

__all__ = ["youtube_auth_command"]


def youtube_auth_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run the OAuth flow for ``--account`` and write its token file."""
    try:
        view = load_settings().for_account(args.account)
    except SettingsError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    secrets = args.client_secrets or view.youtube_client_secrets_file
    token = args.token_file or view.youtube_token_file
    if secrets is None or not Path(secrets).is_file():
        sys.stderr.write(
            "error: --client-secrets: name the OAuth client JSON (Desktop app) downloaded from Google "
            f"Cloud Console{f' ({secrets} does not exist)' if secrets else ''}\n"
        )
        return 2
    if token is None:
        sys.stderr.write("error: --token-file: name where to write the token (or set YOUTUBE_TOKEN_FILE)\n")
        return 2
    if not 1 <= args.port <= 65535:
        sys.stderr.write("error: --port must be 1-65535\n")
        return 2
    from services.pipeline.providers.upload import youtube  # the Google client loads only for this command

    try:
        written = youtube.authorize(Path(secrets), Path(token), port=args.port, write=args.out.line)
    except ValueError as exc:  # google-auth-oauthlib's word for a file that is not a client
        sys.stderr.write(f"error: --client-secrets: {secrets} is not an OAuth client file: {exc}\n")
        return 2
    except youtube.YouTubeAuthError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    args.out.changed(f"the token was written to {written}")
    args.out.line(f"token written to {written} (mode 600); `doctor` refreshes it to check")
    return 0
