"""sd_notify: the pure parts, the protocol on a real socket, a real daemon, the watchdog, the unit."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from services.scheduler.lock import read_holder
from services.scheduler.systemd_notify import (
    SystemdNotifier,
    Watchdog,
    notify_address,
    notify_message,
    watchdog_interval,
)

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "config" / "video-scheduler.service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"


class Receiver:
    """The systemd end: a datagram socket bound in a test folder."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "notify.sock"
        assert len(str(self.path)) < 100, "AF_UNIX paths are limited to 108 bytes"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))

    def next(self, timeout: float = 20.0) -> dict[str, str]:
        """The next datagram as its KEY=VALUE fields."""
        self.sock.settimeout(timeout)
        raw = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in raw.split("\n"))

    def until(self, key: str, timeout: float = 20.0) -> tuple[dict[str, str], list[dict[str, str]]]:
        """Read until a datagram holding ``key``; return it and those before it."""
        before: list[dict[str, str]] = []
        deadline = time.monotonic() + timeout
        while True:
            message = self.next(max(0.01, deadline - time.monotonic()))
            if key in message:
                return message, before
            before.append(message)

    def drain(self) -> list[bytes]:
        """Every datagram queued now, without waiting."""
        self.sock.setblocking(False)
        queued = []
        while True:
            try:
                queued.append(self.sock.recv(4096))
            except BlockingIOError:
                return queued

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def receiver(tmp_path: Path):
    rx = Receiver(tmp_path)
    yield rx
    rx.close()


# -- (a) the pure parts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "address"),
    [
        (None, None),
        ("", None),
        ("/run/systemd/notify", "/run/systemd/notify"),
        ("@sd-notify", b"\0sd-notify"),
        ("@", None),
        ("relative/notify", None),
        ("vsock:2:1234", None),
    ],
    ids=["unset", "empty", "path", "abstract", "bare-at", "relative", "vsock"],
)
def test_notify_address(value, address) -> None:
    assert notify_address(value) == address


@pytest.mark.parametrize(
    ("environ", "interval"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "60000000"}, 30.0),
        ({"WATCHDOG_USEC": "200000"}, 0.1),
        ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "4242"}, 0.1),
        ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "4243"}, None),
        ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "x"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
    ids=["unset", "60s", "200ms", "our-pid", "other-pid", "bad-pid", "zero", "negative", "not-a-number"],
)
def test_watchdog_interval_is_half_of_watchdog_usec_for_our_pid_only(environ, interval) -> None:
    assert watchdog_interval(environ, 4242) == interval


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({"ready": True}, "READY=1"),
        ({"ready": True, "mainpid": 7, "status": "ready: 3 jobs"}, "READY=1\nMAINPID=7\nSTATUS=ready: 3 jobs"),
        ({"stopping": True, "status": "stopping"}, "STOPPING=1\nSTATUS=stopping"),
        ({"watchdog": True}, "WATCHDOG=1"),
        ({"status": "two\nlines  and\ttabs"}, "STATUS=two lines and tabs"),
        ({"status": "Nhật ký"}, "STATUS=Nhật ký"),
        ({}, ""),
    ],
    ids=["ready", "ready-full", "stopping", "watchdog", "one-line-status", "utf-8", "nothing"],
)
def test_notify_message(fields, text) -> None:
    assert notify_message(**fields) == text.encode()


# -- the protocol on a real socket ------------------------------------------------------------


def test_without_notify_socket_every_call_is_a_silent_no_op(caplog) -> None:
    notifier = SystemdNotifier({"WATCHDOG_USEC": "200000"})
    with caplog.at_level(logging.DEBUG):
        sent = [notifier.ready("ready"), notifier.status("x"), notifier.stopping(), notifier.watchdog()]
    assert sent == [False] * 4
    assert not notifier.enabled and notifier.watchdog_interval is None
    assert notifier._sock is None  # no socket made
    assert caplog.records == []


def test_datagrams_reach_the_socket_named_by_notify_socket(receiver: Receiver) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(receiver.path), "WATCHDOG_USEC": "200000"}, pid=os.getpid())
    assert notifier.enabled and notifier.watchdog_interval == 0.1
    assert notifier.ready("ready: 0 jobs")
    assert notifier.status("saving")
    assert notifier.watchdog()
    assert notifier.mainpid(1234)
    assert notifier.stopping("stopping")
    assert [receiver.next() for _ in range(5)] == [
        {"READY": "1", "MAINPID": str(os.getpid()), "STATUS": "ready: 0 jobs"},
        {"STATUS": "saving"},
        {"WATCHDOG": "1"},
        {"MAINPID": "1234"},
        {"STOPPING": "1", "STATUS": "stopping"},
    ]
    notifier.close()


def test_no_watchdog_ping_after_stopping(receiver: Receiver) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(receiver.path)})
    assert notifier.watchdog()
    assert notifier.stopping()
    assert notifier.watchdog() is False
    assert receiver.drain() == [b"WATCHDOG=1", b"STOPPING=1"]


def test_an_abstract_socket_name_works(tmp_path: Path) -> None:
    name = f"video-scheduler-test-{os.getpid()}-{tmp_path.name}"
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind("\0" + name)
    try:
        assert SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).ready()
        rx.settimeout(5)
        assert rx.recv(100).startswith(b"READY=1\n")
    finally:
        rx.close()


def test_a_missing_socket_is_logged_and_dropped(tmp_path: Path, caplog) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    with caplog.at_level(logging.WARNING, logger="services.scheduler.systemd_notify"):
        assert notifier.ready() is False
    assert "cannot notify systemd" in caplog.text


def test_a_full_queue_never_blocks_the_sender(receiver: Receiver) -> None:
    # Nobody reads: the receiver's queue fills; a blocking send would hang here for good.
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(receiver.path)})
    results: list[bool] = []
    sender = threading.Thread(target=lambda: results.extend(notifier.watchdog() for _ in range(2000)), daemon=True)
    sender.start()
    sender.join(timeout=10)
    assert not sender.is_alive(), "sd_notify blocked on a full socket"
    assert results[0] is True and False in results


# -- (b) a real daemon process ----------------------------------------------------------------


def test_a_daemon_says_ready_pings_the_watchdog_and_says_stopping(receiver: Receiver, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("DATA_DIR", "WATCHDOG_PID")}
    env.update(API_PORT="0", PYTHONPATH=str(ROOT), NOTIFY_SOCKET=str(receiver.path), WATCHDOG_USEC="200000")
    proc = subprocess.Popen(
        [sys.executable, "run_scheduler.py", "run", "--data-dir", str(data_dir)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        ready, before = receiver.until("READY")
        assert [m.get("STATUS", "") for m in before] == [f"loading jobs from {data_dir}"]
        assert "WATCHDOG" not in str(before)  # no ping before READY
        holder = read_holder(data_dir)
        api = f"http://127.0.0.1:{holder['api_port']}"
        assert ready == {"READY": "1", "MAINPID": str(proc.pid), "STATUS": f"ready: 0 jobs, API {api}"}
        # READY came once the API listens and the loop runs
        assert holder["ready"] is True
        assert httpx.get(f"{api}/health", timeout=10).json()["state"] == "running"

        pings = [receiver.next(timeout=5) for _ in range(4)]
        assert pings == [{"WATCHDOG": "1"}] * 4

        proc.send_signal(signal.SIGTERM)
        stopping, between = receiver.until("STOPPING")
        assert set(map(str, between)) <= {str({"WATCHDOG": "1"})}
        assert stopping["STATUS"].startswith("stopping on SIGTERM")
        assert receiver.next() == {"STATUS": "stopped: jobs saved"}
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
        assert receiver.drain() == []  # no ping after STOPPING
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


# -- (c) the watchdog stops when the loop hangs or the scheduler is not running ---------------


async def test_a_hung_event_loop_sends_no_pings(receiver: Receiver) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(receiver.path)})
    watchdog = Watchdog(notifier, 0.01, healthy=lambda: True)
    task = asyncio.create_task(watchdog.run(), name="systemd-watchdog")
    try:
        async with asyncio.timeout(10):
            while watchdog.pings < 3:
                await asyncio.sleep(0.01)
        receiver.drain()
        time.sleep(0.3)  # the loop hangs: 30 intervals pass with no chance to run
        assert receiver.drain() == []
        pings = watchdog.pings
        async with asyncio.timeout(10):  # it runs again: so do the pings
            while watchdog.pings == pings:
                await asyncio.sleep(0.01)
        assert receiver.drain()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_no_ping_while_the_scheduler_is_not_ready(make_scheduler, receiver: Receiver, caplog) -> None:
    scheduler = make_scheduler()
    ticks: list[float] = []

    async def tick(seconds: float) -> None:
        ticks.append(seconds)
        await asyncio.sleep(0)

    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(receiver.path)})
    watchdog = Watchdog(notifier, 30.0, healthy=lambda: scheduler.is_ready, sleep=tick)

    async def run_ticks(n: int) -> None:
        task = asyncio.create_task(watchdog.run(), name="systemd-watchdog")
        start = len(ticks)
        while len(ticks) < start + n:
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.wait({task})

    await run_ticks(3)  # loaded but not started: not ready
    assert watchdog.pings == 0
    assert [receiver.next()] == [{"STATUS": "unhealthy: the dispatch loop is not running; waiting for the watchdog"}]
    await scheduler.start()
    await run_ticks(3)
    assert watchdog.pings == 3
    await scheduler.stop()
    with caplog.at_level(logging.ERROR, logger="services.scheduler.systemd_notify"):
        await run_ticks(3)
    assert watchdog.pings == 3
    assert "withholding watchdog pings" in caplog.text
    assert set(ticks) == {30.0}


# -- (d) the unit ----------------------------------------------------------------------------


@pytest.fixture
def unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart on this checkout's Python (verify wants the binary to exist)."""
    text = UNIT.read_text()
    assert "ExecStart=/opt/video-scheduler/.venv/bin/python run_scheduler.py run" in text
    copy = tmp_path / "video-scheduler.service"
    copy.write_text(text.replace("/opt/video-scheduler/.venv/bin/python", sys.executable))
    return copy


def test_systemd_analyze_verify_is_clean(unit_copy: Path) -> None:
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", str(unit_copy)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout + done.stderr == ""


def test_systemd_analyze_security_rates_the_unit_ok(unit_copy: Path) -> None:
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=yes", "--no-pager", str(unit_copy)],
        capture_output=True, text=True, timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", done.stdout)
    assert found, done.stdout + done.stderr
    exposure, rating = float(found[1]), found[2]
    assert exposure <= 2.0 and rating == "OK", done.stdout


def test_the_unit_keeps_notify_watchdog_and_kill_mode_process() -> None:
    settings = [line.strip() for line in UNIT.read_text().splitlines() if line and not line.startswith("#")]
    for wanted in ("Type=notify", "NotifyAccess=main", "WatchdogSec=60", "Restart=on-failure", "KillMode=process",
                   "User=video-scheduler", "StateDirectory=video-scheduler",
                   "Environment=DATA_DIR=/var/lib/video-scheduler",
                   "EnvironmentFile=-/etc/video-scheduler/scheduler.env"):
        assert wanted in settings, wanted
