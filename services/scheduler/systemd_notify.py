"""Tell systemd how the daemon is doing: the sd_notify protocol, with no dependency.

A ``Type=notify`` unit hands the service a datagram socket in NOTIFY_SOCKET (a path, or
``@name`` for the abstract namespace); the service sends it newline-separated
``KEY=VALUE`` lines: ``READY=1`` once it serves, ``STATUS=`` a line for ``systemctl
status``, ``STOPPING=1`` when it begins to stop, ``WATCHDOG=1`` to say it still lives.
Without NOTIFY_SOCKET (a shell, the tests, ``run --once``) every call is a silent no-op.

The watchdog: with ``WatchdogSec=`` systemd sets WATCHDOG_USEC (and WATCHDOG_PID) and
restarts the service when no ``WATCHDOG=1`` comes within that time. ``Watchdog`` is a task
on the daemon's own event loop that pings every WATCHDOG_USEC/2 while the scheduler is
healthy, so a loop that hangs (a blocking call, a deadlock) stops the pings by itself, and
so does a dispatch loop that died (``Scheduler.is_ready`` turns false).

The pure parts (the socket address, the watchdog interval, the message text) are plain
functions; ``SystemdNotifier`` and ``Watchdog`` only move bytes and time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping

__all__ = [
    "SystemdNotifier",
    "Watchdog",
    "notify_address",
    "notify_message",
    "watchdog_interval",
]

logger = logging.getLogger(__name__)


def notify_address(value: str | None) -> str | bytes | None:
    """The address NOTIFY_SOCKET names, ready for ``sendto``; None when unset or unusable.

    An absolute path is a socket file; ``@name`` is ``name`` in the abstract namespace
    (a leading NUL byte). Anything else (a relative path, systemd's ``vsock:`` form, which
    a service on the host never gets) is not ours to guess at.
    """
    if not value:
        return None
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    return None


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between two ``WATCHDOG=1`` pings, or None when this process has no watchdog.

    Half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises, so one late ping is not yet a
    restart. WATCHDOG_PID, when set, names the process the watchdog is meant for: a child
    that inherited the variables (the render worker) is not it.
    """
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) <= 0:
        return None
    for_pid = environ.get("WATCHDOG_PID", "")
    if for_pid and (not for_pid.isdigit() or int(for_pid) != pid):
        return None
    return int(usec) / 2 / 1_000_000


def notify_message(
    *,
    ready: bool = False,
    stopping: bool = False,
    watchdog: bool = False,
    status: str | None = None,
    mainpid: int | None = None,
) -> bytes:
    """The datagram for these fields: ``KEY=VALUE`` lines in a fixed order.

    A status is one line (``systemctl status`` shows one): line breaks become spaces.
    """
    lines: list[str] = []
    if ready:
        lines.append("READY=1")
    if stopping:
        lines.append("STOPPING=1")
    if mainpid is not None:
        lines.append(f"MAINPID={mainpid}")
    if status is not None:
        lines.append("STATUS=" + " ".join(status.split()))
    if watchdog:
        lines.append("WATCHDOG=1")
    return "\n".join(lines).encode("utf-8")


class SystemdNotifier:
    """Sends sd_notify datagrams to the socket in NOTIFY_SOCKET, never blocking.

    :param environ: where NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID are read, once, here
        (default ``os.environ``).
    :param pid: this process's id, for WATCHDOG_PID (default ``os.getpid()``).

    A message systemd cannot take (its socket gone, its queue full) is dropped, with a
    warning the first time: telling systemd must never stop or stall the daemon. Each
    method returns whether the datagram was sent.
    """

    def __init__(self, environ: Mapping[str, str] | None = None, *, pid: int | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET")
        self._address = notify_address(raw)
        if raw and self._address is None:
            logger.warning("NOTIFY_SOCKET is not a socket path; systemd will not hear from the daemon",
                           extra={"notify_socket": raw})
        pid = os.getpid() if pid is None else pid
        self.watchdog_interval = watchdog_interval(env, pid) if self._address is not None else None
        """Seconds between watchdog pings, or None when systemd watches nothing."""
        self._sock: socket.socket | None = None
        self._failing = False
        self._stopping = False

    @property
    def enabled(self) -> bool:
        """Whether there is a systemd to tell."""
        return self._address is not None

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` (with our pid as MAINPID, and a status line if given)."""
        return self.send(notify_message(ready=True, mainpid=os.getpid(), status=status))

    def status(self, status: str) -> bool:
        """``STATUS=<line>``: what ``systemctl status`` shows."""
        return self.send(notify_message(status=status))

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: the daemon has begun to stop (no watchdog ping is sent after it)."""
        self._stopping = True
        return self.send(notify_message(stopping=True, status=status))

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: still alive; nothing once ``stopping`` was said.

        systemd stops watching a unit that deactivates, and a ping the loop had already
        scheduled when the stop signal came would only blur the last word, STOPPING=1.
        """
        if self._stopping:
            return False
        return self.send(notify_message(watchdog=True))

    def mainpid(self, pid: int) -> bool:
        """``MAINPID=<pid>``: the process systemd should watch."""
        return self.send(notify_message(mainpid=pid))

    def send(self, message: bytes) -> bool:
        """Send one datagram; False (and a log line) when it could not go."""
        if self._address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(message, self._address)
        except OSError as exc:
            # Said once until a message goes through again: a gone socket fails every ping.
            level = logging.DEBUG if self._failing else logging.WARNING
            self._failing = True
            logger.log(level, "cannot notify systemd: %s", exc.strerror or exc,
                       extra={"notify": message.decode("utf-8", "replace").splitlines()})
            return False
        self._failing = False
        return True

    def close(self) -> None:
        """Close the socket (a later message opens a new one)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class Watchdog:
    """Pings systemd's watchdog from the event loop while the daemon is healthy.

    :param notifier: where the pings go.
    :param interval: seconds between pings (``SystemdNotifier.watchdog_interval``).
    :param healthy: asked before each ping (``lambda: scheduler.is_ready``); while it says
        False no ping is sent, so systemd restarts the service once WatchdogSec has passed.
    :param sleep: how to wait between pings (default ``asyncio.sleep``, on the loop, which is
        the point: a loop that hangs stops the pings).

    A fixed interval is the protocol here, not polling: systemd wants a ping at least once
    per WatchdogSec whether or not anything happens.
    """

    def __init__(
        self,
        notifier: SystemdNotifier,
        interval: float,
        healthy: Callable[[], bool],
        *,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.notifier = notifier
        self.interval = interval
        self.healthy = healthy
        self._sleep = sleep
        self.pings = 0
        """Pings sent so far."""

    async def run(self) -> None:
        """Ping until cancelled."""
        was_healthy = True
        while True:
            is_healthy = self.healthy()
            if is_healthy:
                if self.notifier.watchdog():
                    self.pings += 1
            elif was_healthy:  # said once per fall, not at every tick
                logger.error(
                    "the scheduler is not running its loop; withholding watchdog pings so systemd restarts it",
                    extra={"interval_seconds": self.interval},
                )
                self.notifier.status("unhealthy: the dispatch loop is not running; waiting for the watchdog")
            was_healthy = is_healthy
            await self._sleep(self.interval)
