"""The scheduler core: jobs in daily JSON files, run by priority with retries and recovery.

Generic: it knows nothing of manga or video (the pipeline package is built on it). The
names below are its public API, the seed's (scheduler-modules.md) plus the two seams a
caller builds on: ``NewJob`` (a job to add) and ``JobStore`` (where jobs are kept). The
shells (``cli``, ``api``, ``daemon``, ``daemon_client``) are imported from their modules,
so importing the package loads neither FastAPI nor httpx.
"""

from .execution import JobExecutor
from .job_manager import JobManager
from .job_store import JobStore
from .models import JobPriority, JobStatus, ScheduledJob
from .new_job import NewJob
from .recovery import JobRecovery
from .scheduler import Scheduler
from .storage import JobStorage

__all__ = [
    "JobExecutor",
    "JobManager",
    "JobPriority",
    "JobRecovery",
    "JobStatus",
    "JobStorage",
    "JobStore",
    "NewJob",
    "ScheduledJob",
    "Scheduler",
]
