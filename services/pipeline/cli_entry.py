"""``run_scheduler.py`` / ``video-scheduler``: the scheduler CLI with the pipeline installed."""

from __future__ import annotations

from collections.abc import Sequence

from services.pipeline.extension import PipelineExtension
from services.scheduler.cli import main as scheduler_main

__all__ = ["main"]


def main(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> int:
    """Run one CLI command with the pipeline's kinds and commands."""
    return scheduler_main(argv, environ, extensions=[PipelineExtension()])
