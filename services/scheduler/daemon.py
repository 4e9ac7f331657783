"""The daemon: lock the data dir, load, serve the API, run the loop, stop on a signal.

One process, one asyncio loop. SIGTERM/SIGINT only flip a flag and wake the loop; the
stop is then done in order: take no new work, give running jobs the grace period, save,
close the API, release the lock, exit 0.

Under systemd (``Type=notify``) it says how it is doing through ``systemd_notify``: STATUS
lines while loading, READY=1 once the jobs are loaded, the loop runs and the API listens,
STOPPING=1 at the signal, and WATCHDOG=1 pings from the loop while the scheduler is healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Iterator, Sequence

import uvicorn

from .api import create_app
from .api_token import ensure_token
from .errors import LockHeldError, SchedulerError
from .extensions import Extension
from .handlers import HandlerRegistry
from .lock import DataDirLock, read_holder
from .scheduler import RunState, Scheduler
from .settings import Settings
from .systemd_notify import SystemdNotifier, Watchdog

__all__ = ["serve"]

logger = logging.getLogger(__name__)


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:  # the name before uvicorn 0.29
        return None


def _listen(port: int) -> socket.socket:
    # IPPROTO_TCP named: asyncio then sets TCP_NODELAY on accepted connections (Nagle would
    # hold each keep-alive answer ~40 ms)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise SchedulerError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror} (set API_PORT)") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


CLI_LOCK_WAIT_SECONDS = 30.0  # a CLI command holds the lock for well under a second


async def serve(
    settings: Settings,
    *,
    registry: HandlerRegistry | None = None,
    once: bool = False,
    extensions: Sequence[Extension] = (),
    notifier: SystemdNotifier | None = None,
) -> int:
    """Run the daemon until a signal (or, with ``once``, until nothing is due).

    Returns 0 after a clean stop, 1 if the HTTP API died under it. Raises LockHeldError
    if another daemon holds the data dir (a CLI command holding it is waited for).

    :param notifier: where systemd hears of readiness, status and stop (default: the one
        NOTIFY_SOCKET names, a no-op without it).
    """
    notifier = SystemdNotifier() if notifier is None else notifier
    lock = DataDirLock(settings.data_dir, "daemon")
    deadline = time.monotonic() + CLI_LOCK_WAIT_SECONDS
    waiting = False
    while not lock.try_acquire():
        holder = read_holder(settings.data_dir)
        if (holder or {}).get("role") == "daemon" or time.monotonic() >= deadline:
            raise LockHeldError(str(settings.data_dir), holder)
        if not waiting:  # said once, so a start that seems slow explains itself
            waiting = True
            logger.warning(
                "data dir is locked by a command; waiting for it",
                extra={"data_dir": str(settings.data_dir), "holder": holder, "wait_seconds": CLI_LOCK_WAIT_SECONDS},
            )
        await asyncio.sleep(0.02)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    scheduler: Scheduler | None = None

    def on_signal(signum: int) -> None:
        logger.info("signal received; stopping", extra={"signal": signal.Signals(signum).name})
        if not stop.is_set():
            notifier.stopping(
                f"stopping on {signal.Signals(signum).name}: finishing running jobs "
                f"(grace {settings.shutdown_grace_seconds:g} s)"
            )
        stop.set()
        if scheduler is not None:
            scheduler.executor.stop_accepting()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        notifier.status(f"loading jobs from {settings.data_dir}")
        scheduler = Scheduler.from_settings(settings, registry=registry, extensions=extensions)
        jobs = scheduler.load()
        logger.info(
            "scheduler started",
            extra={
                "data_dir": str(settings.data_dir),
                "timezone": settings.timezone_name,
                "kinds": scheduler.registry.kinds(),
                "max_concurrent_jobs": settings.max_concurrent_jobs,
                "once": once,
            },
        )
        if stop.is_set():
            return 0
        if once:
            await scheduler.run_once()
            return 0
        return await _serve_forever(settings, scheduler, lock, stop, notifier, jobs)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        lock.release()
        notifier.close()


async def _serve_forever(
    settings: Settings,
    scheduler: Scheduler,
    lock: DataDirLock,
    stop: asyncio.Event,
    notifier: SystemdNotifier,
    jobs: int,
) -> int:
    token = ensure_token(settings.data_dir)
    sock = _listen(settings.api_port)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(scheduler, token), log_config=None, access_log=False, lifespan="off"
    )
    server = _EmbeddedServer(config)
    api_task = asyncio.create_task(server.serve(sockets=[sock]), name="http-api")
    exit_code = 0
    watchdog_task: asyncio.Task[None] | None = None
    try:
        await scheduler.start()
        while not server.started and not api_task.done():
            await asyncio.sleep(0.005)
        if api_task.done():
            raise SchedulerError("the HTTP API failed to start")
        lock.update(api_port=port, ready=True)
        logger.info("daemon ready", extra={"api": f"http://127.0.0.1:{port}"})
        notifier.ready(f"ready: {jobs} jobs, API http://127.0.0.1:{port}")
        if notifier.watchdog_interval is not None:
            watchdog = Watchdog(notifier, notifier.watchdog_interval, lambda: scheduler.is_ready)
            watchdog_task = asyncio.create_task(watchdog.run(), name="systemd-watchdog")
        stop_task = asyncio.create_task(stop.wait(), name="stop-signal")
        done, _ = await asyncio.wait({stop_task, api_task}, return_when=asyncio.FIRST_COMPLETED)
        stop_task.cancel()
        # systemd stops watching once the service deactivates; a long grace must not ping.
        await _cancel(watchdog_task)
        watchdog_task = None
        if api_task in done:
            logger.error("the HTTP API stopped unexpectedly; shutting down")
            notifier.stopping("stopping: the HTTP API stopped unexpectedly")
            exit_code = 1
        # The API keeps serving while running jobs finish, so commands are not refused.
        await scheduler.stop()
        lock.update(ready=False)
        notifier.status("stopped: jobs saved")
    finally:
        await _cancel(watchdog_task)
        server.should_exit = True
        with contextlib.suppress(Exception):
            await api_task
        sock.close()
        if scheduler.state is not RunState.STOPPED:
            await scheduler.stop(0)
    return exit_code


async def _cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` and wait until it has ended; a failure it ended with is logged.

    ``asyncio.wait`` rather than ``await task``: a cancellation of the caller itself still
    propagates instead of being taken for the task's.
    """
    if task is None:
        return
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled() and task.exception() is not None:
        logger.error("task %s failed", task.get_name(), exc_info=task.exception(), extra={"task": task.get_name()})
