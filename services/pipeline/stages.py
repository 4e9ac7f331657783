"""The stage table: which function runs each Task state, on the embedded defaults.

| state | stage | embedded backend |
| --- | --- | --- |
| CheckQuota | ``quota.handler`` | the day files |
| FetchManga | ``fetcher.handler`` | local chapter folder (SAMPLES_DIR) |
| GenerateScript | ``scriptgen.handler`` | Vietnamese template |
| GenerateTTS | ``ttsgen.handler`` | espeak-ng, else a placeholder tone |
| StartRenderer / WaitForRender | ``worker_stages`` | a local worker process, bundled ffmpeg |
| StartUploader / WaitForUpload | ``worker_stages`` | a local worker publishing to DATA_DIR/published |
| Cleanup | ``cleanup.handler`` | removes DATA_DIR/work/<job_id> |
| IncrementCounter | ``counter.handler`` | DATA_DIR/counters.json |
| HandleError | ``handle_error.handler`` | the job record, via the context |
"""

from __future__ import annotations

from . import cleanup, counter, fetcher, handle_error, quota, scriptgen, ttsgen
from .definition import Definition
from .machine import StageFunc
from .providers import tts_local
from .worker_stages import start_stage, wait_stage

__all__ = ["backend_names", "embedded_stages"]


def embedded_stages(definition: Definition) -> dict[str, StageFunc]:
    """Every Task state's stage, on the embedded defaults."""
    render, upload = definition.state("WaitForRender"), definition.state("WaitForUpload")
    return {
        "CheckQuota": quota.handler,
        "FetchManga": fetcher.handler,
        "GenerateScript": scriptgen.handler,
        "GenerateTTS": ttsgen.handler,
        "StartRenderer": start_stage("render", render.heartbeat_seconds),
        "WaitForRender": wait_stage(render),
        "StartUploader": start_stage("upload", upload.heartbeat_seconds),
        "WaitForUpload": wait_stage(upload),
        "Cleanup": cleanup.handler,
        "IncrementCounter": counter.handler,
        "HandleError": handle_error.handler,
    }


def backend_names() -> dict[str, str]:
    """Which backend each stage uses here, for the start-up log and ``doctor``."""
    voice = tts_local.engine_name()
    return {
        "fetch": "local folder (SAMPLES_DIR)",
        "script": "template (no LLM configured)",
        "tts": "espeak-ng (vi)" if voice == "espeak-ng" else "placeholder tone (espeak-ng not installed)",
        "render": "local worker, bundled ffmpeg (imageio-ffmpeg) + PyAV",
        "upload": "local publisher (DATA_DIR/published)",
    }
