"""The manga → narrated Vietnamese video pipeline, built on ``services.scheduler``.

``engine/`` is a generic state machine (Amazon States Language's Task, Choice, Succeed,
Retry, Catch, TimeoutSeconds, HeartbeatSeconds) that reads ``config/pipeline.json``;
``stages/`` holds one function per seed Lambda; ``tasks/`` the worker handshake;
``jobs/`` the scheduler job kinds; ``providers/<kind>/`` the backends of each outside
thing. ``docs/architecture.md`` has the map. The dependencies point one way: jobs ->
engine, stages -> providers; the pipeline imports ``services.scheduler``, never the reverse.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Checkpoint",
    "DailyJobs",
    "Definition",
    "Machine",
    "PipelineExtension",
    "PipelineSettings",
    "State",
    "VideoJobs",
    "VideoPipelineError",
    "load_settings",
    "pipeline_definition",
]

_WHERE = {
    "Checkpoint": "services.pipeline.engine.machine",
    "DailyJobs": "services.pipeline.jobs.daily_job",
    "Definition": "services.pipeline.engine.definition",
    "Machine": "services.pipeline.engine.machine",
    "PipelineExtension": "services.pipeline.extension",
    "PipelineSettings": "services.pipeline.settings",
    "State": "services.pipeline.stages.names",
    "VideoJobs": "services.pipeline.jobs.video_job",
    "VideoPipelineError": "services.pipeline.errors",
    "load_settings": "services.pipeline.settings",
    "pipeline_definition": "services.pipeline.stages",
}


def __getattr__(name: str) -> Any:
    """The public names, imported when first asked for (so ``import services.pipeline.x``
    does not load the renderer, the Google client or PyAV)."""
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value
