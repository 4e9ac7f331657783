"""The local API's bearer token: a random secret in ``DATA_DIR/api_token``, mode 0600.

The daemon creates it on first start; the CLI (same user) reads it to talk to the daemon.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from .atomic_file import fsync_dir, storage_error
from .errors import StorageError

__all__ = ["TOKEN_FILE", "ensure_token", "read_token"]

TOKEN_FILE = "api_token"

logger = logging.getLogger(__name__)


def ensure_token(data_dir: Path | str) -> str:
    """Return the token, creating the file (0600) if it does not exist yet.

    The file appears whole or not at all: the token is written to a temp file, fsynced,
    then linked into place (a link fails if another process made the file first). A full
    disk leaves no empty token file behind.
    """
    path = Path(data_dir) / TOKEN_FILE
    if path.exists():
        return read_token(data_dir)
    token = secrets.token_urlsafe(32)
    temp = path.with_name(f".{TOKEN_FILE}.{os.getpid()}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(token + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temp, path)
        fsync_dir(path.parent)
    except FileExistsError:
        return read_token(data_dir)
    except OSError as exc:
        raise storage_error("create the API token file", path.parent, exc) from exc
    finally:
        temp.unlink(missing_ok=True)
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
