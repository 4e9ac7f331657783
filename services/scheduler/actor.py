"""Who is making a change: the name the audit trail and the execution history record.

An HTTP request sets it from ``X-Created-By`` / ``X-Triggered-By`` / ``X-Performed-By``
(the API's headers, as the seed's service has them), the CLI sets ``cli:<user>``, and
anything the daemon does by itself (a fire, a retry, a recovery) is ``scheduler``. It is
a context variable, so two requests served at once each keep their own.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["SYSTEM_ACTOR", "acting_as", "clean_actor", "current_actor"]

SYSTEM_ACTOR = "scheduler"
"""The actor of a change the daemon makes by itself."""
_ACTOR: ContextVar[str] = ContextVar("actor", default=SYSTEM_ACTOR)
_UNSAFE = re.compile(r"[^\w.@+:/-]")
MAX_ACTOR_CHARS = 64


def current_actor() -> str:
    """The actor of the change being made now."""
    return _ACTOR.get()


def clean_actor(name: str | None, default: str = SYSTEM_ACTOR) -> str:
    """``name`` as it is recorded: at most 64 letters, digits and ``._@+:/-`` (others become
    ``_``), ``default`` if it is empty. A header is untrusted text: this keeps a control
    character or a line break out of the audit files."""
    text = (name or "").strip()[:MAX_ACTOR_CHARS]
    return _UNSAFE.sub("_", text) if text else default


@contextlib.contextmanager
def acting_as(name: str | None) -> Iterator[str]:
    """Changes made inside the block are recorded as made by ``name``."""
    actor = clean_actor(name)
    token = _ACTOR.set(actor)
    try:
        yield actor
    finally:
        _ACTOR.reset(token)
