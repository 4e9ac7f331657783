"""Notifications: short messages to the creator's webhooks when something needs a person.

``Notifier`` is what the scheduler and the packages built on it call: ``notify(event,
message, **fields)`` returns at once and never raises. ``NullNotifier`` drops everything
(the default when no webhook is configured).
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["NullNotifier", "Notifier"]


class Notifier(Protocol):
    """Sends ``message`` about ``event`` to whoever listens; never blocks, never raises."""

    def notify(self, event: str, message: str, **fields: Any) -> None: ...


class NullNotifier:
    """A notifier that tells nobody."""

    def notify(self, event: str, message: str, **fields: Any) -> None:
        return None
