"""The local API's bearer token: a random secret in ``DATA_DIR/api_token``, mode 0600.

The daemon creates it on first start; the CLI (same user) reads it to talk to the daemon.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from .errors import StorageError

__all__ = ["TOKEN_FILE", "ensure_token", "read_token"]

TOKEN_FILE = "api_token"

logger = logging.getLogger(__name__)


def ensure_token(data_dir: Path | str) -> str:
    """Return the token, creating the file (0600) if it does not exist yet."""
    path = Path(data_dir) / TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_token(data_dir)
    except OSError as exc:
        raise StorageError(f"cannot create API token file {path}: {exc}") from exc
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(token + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    logger.info("created API token file", extra={"path": str(path)})
    return token


def read_token(data_dir: Path | str) -> str:
    """Read the token; tighten the file to 0600 if it is readable by others."""
    path = Path(data_dir) / TOKEN_FILE
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            logger.warning("API token file was readable by others; setting it to 0600", extra={"path": str(path)})
            path.chmod(0o600)
        token = path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise StorageError(f"cannot read API token file {path}: {exc}") from exc
    if not token:
        raise StorageError(f"API token file {path} is empty; delete it and restart the daemon")
    return token
