"""The stage table: which function runs each Task state, on the embedded defaults.

| state | stage | embedded backend |
| --- | --- | --- |
| CheckQuota | ``quota.handler`` | the scheduler's jobs (the context's ``jobs()`` view) |
| FetchManga | ``fetcher.handler`` | local chapter folder (SAMPLES_DIR) |
| GenerateScript | ``scriptgen.handler`` | Vietnamese template |
| GenerateTTS | ``ttsgen.handler`` | espeak-ng, else a placeholder tone |
| StartRenderer / WaitForRender | ``worker_stages`` | a local worker process, bundled ffmpeg |
| CheckVideo | ``check_video.handler`` | the quality gate (``quality/``): the figures on the job |
| StartUploader / WaitForUpload | ``worker_stages`` | a local worker publishing to DATA_DIR/published |
| Cleanup | ``cleanup.handler`` | removes DATA_DIR/work/<job_id> |
| IncrementCounter | ``counter.handler`` | DATA_DIR/counters.json |
| HandleError | ``handle_error.handler`` | the job record, via the context |
"""

from __future__ import annotations

from pathlib import Path

from services.pipeline.engine.definition import Definition, load_definition, require_states
from services.pipeline.engine.machine import StageFunc
from services.pipeline.providers import registry
from services.pipeline.settings import PipelineSettings
from services.pipeline.stages import (
    check_video,
    cleanup,
    counter,
    fetcher,
    handle_error,
    quota,
    scriptgen,
    ttsgen,
)
from services.pipeline.stages.names import CHOICES, TASKS, TERMINAL, State
from services.pipeline.stages.worker_stages import start_stage, wait_stage

__all__ = ["backend_names", "embedded_stages", "pipeline_definition"]


def pipeline_definition(path: Path | str | None = None) -> Definition:
    """The pipeline's definition (default ``config/pipeline.json``), checked to have a
    Task state for each stage (``names.TASKS``) and the Choice and Succeed states the job
    kinds look for; DefinitionError names what is missing."""
    definition = load_definition(path, required=[*TASKS, *CHOICES, *TERMINAL])
    require_states(definition, TASKS, (*CHOICES, *TERMINAL))
    return definition


def embedded_stages(definition: Definition) -> dict[str, StageFunc]:
    """Every Task state's stage, on the embedded defaults."""
    render, upload = definition.state(State.WAIT_FOR_RENDER), definition.state(State.WAIT_FOR_UPLOAD)
    return {
        State.CHECK_QUOTA: quota.handler,
        State.FETCH_MANGA: fetcher.handler,
        State.GENERATE_SCRIPT: scriptgen.handler,
        State.GENERATE_TTS: ttsgen.handler,
        State.START_RENDERER: start_stage("render", render.heartbeat_seconds, timeout_seconds=render.timeout_seconds),
        State.WAIT_FOR_RENDER: wait_stage(render, "render"),
        State.CHECK_VIDEO: check_video.handler,
        State.START_UPLOADER: start_stage("upload", upload.heartbeat_seconds, timeout_seconds=upload.timeout_seconds),
        State.WAIT_FOR_UPLOAD: wait_stage(upload, "upload"),
        State.CLEANUP: cleanup.handler,
        State.INCREMENT_COUNTER: counter.handler,
        State.HANDLE_ERROR: handle_error.handler,
    }


def backend_names(settings: PipelineSettings) -> dict[str, str]:
    """Which backend each stage uses with ``settings``, and why (each backend's ``describe``).

    For the start-up log, ``demo`` and ``doctor``.
    """
    return {kind: registry.backend_class(kind, settings).describe(settings) for kind in registry.KINDS}
