"""The package's public face: ``services.scheduler`` exports the seed's names, with no cycle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import services.scheduler as package
from services.scheduler import execution, job_manager, job_store, models, new_job, recovery, scheduler, storage

ROOT = Path(__file__).resolve().parents[2]
SEED_NAMES = ("Scheduler", "JobStorage", "JobRecovery", "JobManager", "JobExecutor", "ScheduledJob", "JobStatus",
              "JobPriority")


def run_fresh(code: str) -> None:
    """Run ``code`` in a fresh interpreter from the repository; fail with its stderr."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_package_exports_the_seeds_names_and_its_two_seams() -> None:
    assert sorted(package.__all__) == sorted((*SEED_NAMES, "JobStore", "NewJob"))
    homes = {
        "Scheduler": scheduler, "JobStorage": storage, "JobRecovery": recovery, "JobManager": job_manager,
        "JobExecutor": execution, "ScheduledJob": models, "JobStatus": models, "JobPriority": models,
        "JobStore": job_store, "NewJob": new_job,
    }
    for name, module in homes.items():
        assert getattr(package, name) is getattr(module, name), name


def test_a_fresh_process_imports_the_names_without_the_shells() -> None:
    code = (
        f"from services.scheduler import {', '.join(SEED_NAMES)}\n"
        "import sys\n"
        "loaded = sorted(m for m in ('fastapi', 'uvicorn', 'httpx') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    run_fresh(code)


def test_every_module_imports_first_in_a_fresh_process() -> None:
    # Each module imported first, into a table holding none of ours: any import cycle the
    # package's __init__ makes shows as an ImportError for some order.
    names = sorted(p.stem for p in (ROOT / "services" / "scheduler").glob("*.py") if p.stem != "__init__")
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    for key in [k for k in sys.modules if k == 'services' or k.startswith('services.')]:\n"
        "        del sys.modules[key]\n"
        "    importlib.import_module('services.scheduler.' + name)\n"
        "    importlib.import_module('services.scheduler').Scheduler\n"
    )
    run_fresh(code)
    assert len(names) > 20


def test_the_daemon_with_the_pipeline_starts_without_the_media_libraries() -> None:
    # `run` loads the CLI, the daemon and the pipeline's kinds; PyAV, Pillow, fontTools and
    # OpenCV load only when a video is made (PyAV alone cost a tenth of a second at start)
    code = (
        "import sys, tempfile, run_scheduler, services.scheduler.daemon\n"
        "from services.pipeline.extension import PipelineExtension\n"
        "from services.scheduler.scheduler import Scheduler\n"
        "from services.scheduler.settings import Settings\n"
        "settings = Settings.from_env({'DATA_DIR': tempfile.mkdtemp()})\n"
        "Scheduler.from_settings(settings, extensions=[PipelineExtension()])\n"
        "loaded = sorted(m for m in ('av', 'PIL', 'fontTools', 'cv2', 'numpy') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    run_fresh(code)
