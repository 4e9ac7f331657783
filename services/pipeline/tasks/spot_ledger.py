"""What Spot workers cost: ``DATA_DIR/spot_ledger.json``, one record per instance run.

::

    {"version": 1, "runs": [{"job_id", "token", "task", "instance_id", "instance_type",
                             "seconds", "hourly_usd", "cost_usd", "ended_at"}]}

A run is recorded when its wait ends (``SpotTransport.end``): the seconds from the
instance's launch to now, at the type's current Spot price (an estimate: AWS bills the
price of each second, which moves slowly). ``month_spend`` adds up a calendar month (UTC),
which SPOT_MONTHLY_BUDGET_USD is held to (past it, renders run locally) and
``run_scheduler.py spend`` shows. Written under the file's lock, atomically, like the
other records (``json_records.py``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from services.pipeline.json_records import read_json, update_json

__all__ = ["LEDGER_FILE", "LEDGER_VERSION", "estimate_usd", "month_spend", "read_runs", "record_run", "this_month"]

LEDGER_FILE = "spot_ledger.json"
LEDGER_VERSION = 1


def estimate_usd(seconds: float, hourly_usd: float) -> float:
    """The cost of ``seconds`` at ``hourly_usd`` an hour, to a hundredth of a cent."""
    return round(max(0.0, seconds) * hourly_usd / 3600, 4)


def record_run(data_dir: Path, run: dict[str, Any]) -> None:
    """Add one instance run to the ledger (once per token: a second end adds nothing)."""

    def add(record: dict[str, Any]) -> None:
        runs = record.setdefault("runs", [])
        if not any(r.get("token") == run.get("token") for r in runs):
            runs.append(run)

    update_json(data_dir / LEDGER_FILE, add, version=LEDGER_VERSION)


def month_spend(data_dir: Path, month: str) -> tuple[float, list[dict[str, Any]]]:
    """The estimated spend of ``month`` (``YYYY-MM``, UTC) and its runs."""
    runs = [r for r in read_json(data_dir / LEDGER_FILE, version=LEDGER_VERSION).get("runs", [])
            if str(r.get("ended_at", "")).startswith(month)]
    return round(sum(float(r.get("cost_usd") or 0) for r in runs), 4), runs


def read_runs(data_dir: Path) -> list[dict[str, Any]]:
    """Every run on record."""
    return list(read_json(data_dir / LEDGER_FILE, version=LEDGER_VERSION).get("runs", []))


def this_month(now: datetime) -> str:
    """``YYYY-MM`` of ``now`` (UTC)."""
    return now.strftime("%Y-%m")
