"""TaskTransport: how the machine starts a worker and hears from it (the task-token seam).

The seed's waitForTaskToken handshake, seen from the machine: a Start* state ``start``s a
worker under a token the machine minted (``task_tokens.mint_token``, the one place tokens
are made); the matching WaitFor* state reads its ``heartbeat`` and ``result``, asks whether
it is ``alive`` (so a worker that died without a word ends the wait at once), and ``end``s
the task whatever the outcome (killing the worker first when told to). A worker reports
through the same transport's files or service (``task_tokens.LocalTransport`` for a
worker on this host).

Transports are found by name: each module ``tasks/*_transport.py`` defines ``TRANSPORT``,
a class with a ``name`` and a constructor taking the data dir and the settings; the
``TASK_TRANSPORT`` setting picks one (default ``local``), and RENDER_BACKEND /
UPLOAD_BACKEND ``spot`` pick ``tasks/spot_transport.py`` for their task.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Protocol

__all__ = ["Ended", "TaskTransport", "transport_for", "transport_names"]


@dataclass(frozen=True)
class Ended:
    """How a worker ended without reporting: ``how`` for the cause; ``lost`` unless it
    exited with a code (then running it again would fail the same way); ``reaped`` when
    its status was just collected (its process group is then known to be the worker's)."""

    how: str
    lost: bool
    reaped: bool = False


class TaskTransport(Protocol):
    """The machine's side of one kind of worker."""

    name: ClassVar[str]

    def start(self, token: str, task: dict[str, Any], *, heartbeat_seconds: float) -> dict[str, Any]:
        """Start a worker for ``task`` (JSON: what it is to do, with the settings it needs;
        no secret) under ``token``; return the seed's start fields ``instance_id``,
        ``instance_type`` and ``spot_request_id``. It beats every ``heartbeat_seconds``."""
        ...

    def heartbeat(self, token: str) -> datetime | None:
        """The worker's last heartbeat, or None before its first."""
        ...

    def result(self, token: str) -> dict[str, Any] | None:
        """The worker's one result (``{"status": "succeeded", "output"}`` or
        ``{"status": "failed", "error", "cause"}``), or None while it has none."""
        ...

    def alive(self, token: str) -> Ended | None:
        """None while the worker runs (or cannot be told apart from a running one); else
        how it ended."""
        ...

    def log_tail(self, token: str) -> str:
        """The last lines the worker logged, for an error's cause."""
        ...

    def end(self, token: str, *, kill: bool) -> None:
        """The wait is over: stop the worker if ``kill`` (and it still runs), then forget
        the task (its folder, its instance)."""
        ...


@cache
def _registry() -> dict[str, type]:
    from services.pipeline import tasks

    found: dict[str, type] = {}
    for module in pkgutil.iter_modules(tasks.__path__):
        if module.name.endswith("_transport"):
            cls = importlib.import_module(f"{tasks.__name__}.{module.name}").TRANSPORT
            found[cls.name] = cls
    return found


def transport_names() -> list[str]:
    """The names ``TASK_TRANSPORT`` may take, sorted."""
    return sorted(_registry())


def transport_for(name: str, data_dir: Path, settings: Any = None) -> TaskTransport:
    """The transport called ``name`` for the data dir ``data_dir``, with the pipeline's
    ``settings`` (which the ``spot`` one needs: its bucket, AMI, types); ValueError if none is."""
    registry = _registry()
    if name not in registry:
        raise ValueError(f"TASK_TRANSPORT must be one of {', '.join(sorted(registry))}, got {name!r}")
    return registry[name](data_dir, settings)
