"""Redaction: a copy of a record with its secrets replaced, for files people read.

The audit trail (``audit.py``) keeps before/after copies of job and schedule records, and
those carry secrets now and then: a pipeline job's checkpoint holds each worker's
``task_token`` (the credential a render or upload worker reports with), a schedule's
settings may hold an API key or a webhook URL. ``redact`` walks dicts and lists and
replaces

- the value under a key that looks secret (``is_secret_key``: token, secret, password,
  api_key, authorization, credential, cookie, webhook, signature, ``*_key`` ..., in any
  case, with ``-`` or ``_``) by ``"[redacted]"``; a ``null`` stays ``null`` (an absent
  secret tells nothing);
- inside any other text, what reads as a secret (``scrub_text``): the password of a URL's
  ``user:password@``, a query parameter with a secret-looking name, a ``Bearer`` or
  ``Basic`` credential, the path of a Slack or Discord webhook;
- a string longer than ``max_chars`` by its start and a note of how much was cut.

Pure functions, no I/O; the input is left as it was.
"""

from __future__ import annotations

import functools
import re
from typing import Any

__all__ = ["MAX_STRING_CHARS", "REDACTED", "is_secret_key", "redact", "scrub_text"]

REDACTED = "[redacted]"
MAX_STRING_CHARS = 2000
"""The longest string kept whole; a longer one keeps its start and says how much was cut."""

_SECRET_WORDS = re.compile(
    r"token|secret|passw(or)?d|passphrase|api_?key|authorization|credential|cookie|webhook|signature"
    r"|private_?key|access_?key|session_?id"
)
_SECRET_NAMES = frozenset({"key", "auth", "pwd", "sig", "dsn", "jwt", "bearer", "otp"})
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*):[^/\s@]+@")
_QUERY_SECRET = re.compile(
    r"(?i)([?&;](?:[\w.-]*(?:token|secret|passw(?:or)?d|api_?key|signature|credential)[\w.-]*"
    r"|key|sig|auth|code|access_key|x-amz-signature|x-amz-credential)=)[^&#\s'\"]+"
)
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/=-]{8,}")
_HINT = re.compile(r"://|=|(?i:bearer|basic|token)")
_WEBHOOK_PATH = re.compile(
    r"(?i)(https?://(?:hooks\.slack\.com/(?:services|workflows|triggers)"
    r"|(?:[\w-]+\.)?discord(?:app)?\.com/api/webhooks))/[^\s'\"]+"
)


@functools.lru_cache(maxsize=4096)  # records repeat the same few hundred keys
def is_secret_key(name: str) -> bool:
    """Whether the value under ``name`` is taken for a secret (case and ``-``/``_`` ignored).

    Errs on the side of hiding: ``max_tokens`` or ``token_uri`` are hidden too.
    """
    key = name.lower().replace("-", "_").replace(" ", "_")
    if key in _SECRET_NAMES or key.endswith(("_key", "_auth", "_pwd", "_sig", "_dsn")):
        return True
    return _SECRET_WORDS.search(key) is not None


def scrub_text(text: str) -> str:
    """``text`` with the secrets it carries replaced (see the module docstring)."""
    if _HINT.search(text) is None:
        return text  # the common case: no URL, no parameter, no credential
    text = _URL_USERINFO.sub(rf"\1:{REDACTED}@", text)
    text = _WEBHOOK_PATH.sub(rf"\1/{REDACTED}", text)
    text = _QUERY_SECRET.sub(rf"\1{REDACTED}", text)
    return _AUTH_SCHEME.sub(rf"\1\2{REDACTED}", text)


def redact(value: Any, *, max_chars: int = MAX_STRING_CHARS) -> Any:
    """A copy of ``value`` (JSON-like: dicts, lists, scalars) with its secrets replaced.

    Dict keys are kept as they are (made ``str``); tuples become lists.
    """
    if isinstance(value, str):
        return _cap(scrub_text(value), max_chars)
    if isinstance(value, dict):
        return {
            str(key): (REDACTED if item is not None and is_secret_key(str(key))
                       else redact(item, max_chars=max_chars))
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(item, max_chars=max_chars) for item in value]
    return value


def _cap(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}…[{len(text) - max_chars} more characters]"
