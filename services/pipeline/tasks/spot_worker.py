"""The worker on a Spot instance: ``python -m services.pipeline.tasks.spot_worker render|upload``.

Started by the instance's user-data with JOB_ID, TASK_TOKEN, RENDER_BUCKET and AWS_REGION
in its environment (nothing else: no secret). It:

1. reads ``tasks/<token>/task.json`` (the job, the settings without secrets, the heartbeat
   interval) and downloads ``jobs/<job_id>/inputs/`` into a data dir of its own;
2. writes ``tasks/<token>/heartbeat`` (the time, ISO) at once and then every
   ``heartbeat_seconds`` (60 by default);
3. polls the instance metadata (IMDSv2: a session token first) every ``POLL_SECONDS`` for
   the two-minute interruption notice (``spot/instance-action``; 404 is none) and the
   rebalance recommendation (logged); on a notice it writes a failed result named
   ``WorkerLost`` at once, so WaitForRender relaunches now instead of after HeartbeatSeconds;
4. runs the same task as a local worker (``render_task.render``, ``upload_task.publish``);
   a render is made in pieces of about 30 s, each uploaded to ``jobs/<job_id>/pieces/`` as
   soon as it is finished, and a piece already there (an interrupted instance's) is
   downloaded instead of rendered, so a relaunch loses at most the piece in progress;
   uploads what it made (``jobs/<job_id>/video.mp4``, ``shorts.mp4``) and writes
   ``tasks/<token>/result.json``: succeeded with its output, or failed with the error name
   (RenderError, UploadError, or a pipeline error's own) and the cause; the first result
   written wins;
5. exits; the user-data copies its log to ``tasks/<token>/worker.log`` (what the wait's
   error quotes) and shuts the instance down, which terminates it.

The S3 and IMDS endpoints are boto3's (AWS_ENDPOINT_URL) and botocore's
(AWS_EC2_METADATA_SERVICE_ENDPOINT), so the worker runs against a moto server and a
loopback metadata service as it would on EC2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from services.pipeline.errors import PipelineError
from services.scheduler.clock import utc_now
from services.scheduler.log_format import configure_logging

__all__ = ["INTERRUPTED", "POLL_SECONDS", "BucketPieces", "SpotWorker", "interruption_notice", "main"]

logger = logging.getLogger(__name__)

POLL_SECONDS = 5.0
INTERRUPTED = "WorkerLost"  # the machine relaunches a lost worker at its Start* state at once
_ERRORS = {"render": "RenderError", "upload": "UploadError"}
_IMDS = "http://169.254.169.254"


def _imds_base() -> str:
    return os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", _IMDS).rstrip("/")


def _imds_get(path: str, timeout: float = 2.0) -> str | None:
    """One IMDSv2 read: a session token, then the path; None on 404 or no metadata service."""
    base = _imds_base()
    try:
        put = urllib.request.Request(f"{base}/latest/api/token", method="PUT",
                                     headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        with urllib.request.urlopen(put, timeout=timeout) as answer:
            session = answer.read().decode()
        get = urllib.request.Request(f"{base}{path}", headers={"X-aws-ec2-metadata-token": session})
        with urllib.request.urlopen(get, timeout=timeout) as answer:
            return answer.read().decode()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise
    except (urllib.error.URLError, TimeoutError, ConnectionError):
        return None


def interruption_notice() -> dict[str, Any] | None:
    """The interruption notice (``{"action": "terminate", "time": ...}``), or None."""
    text = _imds_get("/latest/meta-data/spot/instance-action")
    if not text:
        return None
    try:
        notice = json.loads(text)
    except ValueError:
        return {"action": text.strip()}
    return notice if isinstance(notice, dict) else {"action": str(notice)}


class BucketPieces:
    """The render's finished pieces in ``jobs/<job_id>/pieces/``: each uploaded as soon as
    it is made, so the instance that takes over after an interruption downloads them and
    renders only the rest."""

    def __init__(self, s3: Any, bucket: str, job_id: str, folder: Path) -> None:
        self.s3, self.bucket, self.prefix, self.folder = s3, bucket, f"jobs/{job_id}/pieces/", folder

    def get(self, name: str) -> Path | None:
        from botocore.exceptions import ClientError

        target = self.folder / name
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            self.s3.download_file(self.bucket, self.prefix + name, str(target))
        except ClientError:
            return None
        return target

    def put(self, name: str, path: Path) -> None:
        self.s3.upload_file(str(path), self.bucket, self.prefix + name)


class SpotWorker:
    """One task on this instance, reporting through the bucket."""

    def __init__(self, task: str, job_id: str, token: str, bucket: str, region: str, root: Path) -> None:
        import boto3

        self.task, self.job_id, self.token, self.bucket = task, job_id, token, bucket
        self.root = root
        self.s3 = boto3.client("s3", region_name=region)
        self.stop = threading.Event()
        self._result_lock = threading.Lock()
        self._reported = False

    # -- reports -----------------------------------------------------------------------------

    def beat(self) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=f"tasks/{self.token}/heartbeat",
                           Body=utc_now().isoformat().encode())

    def report(self, result: dict[str, Any]) -> bool:
        """Write the one result; False when one was already written (the first wins)."""
        with self._result_lock:
            if self._reported:
                return False
            self._reported = True
            body = json.dumps({"version": 1, **result, "at": utc_now().isoformat()}, ensure_ascii=False)
            self.s3.put_object(Bucket=self.bucket, Key=f"tasks/{self.token}/result.json", Body=body.encode())
            return True

    # -- the loops -----------------------------------------------------------------------------

    def _beating(self, every: float) -> None:
        while not self.stop.wait(every):
            try:
                self.beat()
            except Exception:  # a missed beat is not the task's failure; the next may pass
                logger.exception("could not write a heartbeat", extra={"job_id": self.job_id, "stage": "spot"})

    def _watching(self, every: float) -> None:
        warned = False
        while not self.stop.wait(every):
            try:
                notice = interruption_notice()
                if notice is None and not warned and _imds_get("/latest/meta-data/events/recommendations/rebalance"):
                    warned = True
                    logger.warning("rebalance recommendation: this instance may be interrupted soon",
                                   extra={"job_id": self.job_id, "stage": "spot"})
            except Exception:
                logger.exception("could not read the instance metadata", extra={"job_id": self.job_id, "stage": "spot"})
                continue
            if notice is not None:
                cause = f"Spot interruption notice ({notice.get('action', 'terminate')} at {notice.get('time', '?')})"
                if self.report({"status": "failed", "error": INTERRUPTED, "cause": cause}):
                    logger.warning("interrupted; reported so the machine relaunches now",
                                   extra={"job_id": self.job_id, "stage": "spot", "cause": cause})
                self.stop.set()
                return

    # -- the task ------------------------------------------------------------------------------

    def run(self, *, poll_seconds: float = POLL_SECONDS) -> int:
        task = json.loads(self.s3.get_object(Bucket=self.bucket, Key=f"tasks/{self.token}/task.json")["Body"].read())
        every = float(task.get("heartbeat_seconds") or 60)
        self.beat()
        threads = [threading.Thread(target=self._beating, args=(every,), daemon=True),
                   threading.Thread(target=self._watching, args=(poll_seconds,), daemon=True)]
        for thread in threads:
            thread.start()
        log = {"job_id": self.job_id, "stage": f"spot:{self.task}"}
        try:
            output = self._do(task)
        except Exception as exc:
            logger.exception("worker failed", extra=log)
            name = exc.name if isinstance(exc, PipelineError) else _ERRORS[self.task]
            self.report({"status": "failed", "error": name, "cause": f"{type(exc).__name__}: {exc}"})
            return 1
        finally:
            self.stop.set()
            for thread in threads:
                thread.join(timeout=poll_seconds + 5)
        if not self.report({"status": "succeeded", "output": output}):
            return 1  # interrupted first: the machine has relaunched
        logger.info("worker done", extra=log)
        return 0

    def _do(self, task: dict[str, Any]) -> dict[str, Any]:
        from services.pipeline.settings import PipelineSettings
        from services.pipeline.workspace import Workspace

        settings = PipelineSettings.from_values(task["settings"])
        work = Workspace(self.root, self.job_id)
        self._download_inputs(work.root)
        if self.task == "render":
            from services.pipeline.tasks.render_task import render

            output = render(work, settings, pieces=BucketPieces(self.s3, self.bucket, self.job_id,
                                                                work.root / ".pieces"))
            for name in ("video.mp4", "shorts.mp4"):
                if (work.root / name).exists():
                    self.s3.upload_file(str(work.root / name), self.bucket, f"jobs/{self.job_id}/{name}")
            return {key: value for key, value in output.items() if key not in ("video", "shorts")} | {
                "video": f"s3://{self.bucket}/jobs/{self.job_id}/video.mp4"}
        from services.pipeline.tasks.upload_task import publish

        token_file = self._token_file(task)
        if token_file is not None:
            values = dict(task["settings"])
            values["youtube_token_file"] = str(token_file)
            values["accounts"] = {name: {**account, "youtube_token_file": str(token_file)}
                                  for name, account in (values.get("accounts") or {}).items()}
            settings = PipelineSettings.from_values(values)
        for name in ("video.mp4", "shorts.mp4"):
            key = f"jobs/{self.job_id}/{name}"
            try:
                self.s3.download_file(self.bucket, key, str(work.root / name))
            except Exception:
                if name == "video.mp4":
                    raise
        return publish(work, settings, utc_now())

    def _token_file(self, task: dict[str, Any]) -> Path | None:
        """The YouTube token the daemon sent (an SSM SecureString), in a 0600 file here."""
        import boto3
        from botocore.exceptions import ClientError

        prefix = str((task.get("settings") or {}).get("spot_secret_prefix") or "/video-scheduler")
        ssm = boto3.client("ssm", region_name=self.s3.meta.region_name)
        try:
            value = ssm.get_parameter(Name=f"{prefix}/tasks/{self.token}/youtube-token",
                                      WithDecryption=True)["Parameter"]["Value"]
        except ClientError:
            return None
        path = self.root / ".youtube-token.json"
        self.root.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(value)
        return path

    def _download_inputs(self, root: Path) -> None:
        prefix = f"jobs/{self.job_id}/inputs/"
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                relative = item["Key"][len(prefix):]
                if not relative or ".." in Path(relative).parts:
                    continue
                target = root / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                self.s3.download_file(self.bucket, item["Key"], str(target))


def main(argv: list[str] | None = None) -> int:
    """Command line of the instance's worker (run by the user-data, not by hand)."""
    parser = argparse.ArgumentParser(prog="python -m services.pipeline.tasks.spot_worker")
    parser.add_argument("task", choices=sorted(_ERRORS))
    parser.add_argument("--data-dir", type=Path, default=None, help="where the job's files go (default: a temp dir)")
    parser.add_argument("--poll-seconds", type=float, default=POLL_SECONDS, help="seconds between metadata polls")
    args = parser.parse_args(argv)
    missing = [name for name in ("JOB_ID", "TASK_TOKEN", "RENDER_BUCKET") if not os.environ.get(name)]
    if missing:
        parser.error(f"the environment needs {', '.join(missing)} (the user-data sets them)")
    configure_logging("INFO")
    root = args.data_dir or Path(tempfile.mkdtemp(prefix="video-scheduler-"))
    worker = SpotWorker(args.task, os.environ["JOB_ID"], os.environ["TASK_TOKEN"], os.environ["RENDER_BUCKET"],
                        os.environ.get("AWS_REGION", "ap-southeast-1"), root)
    return worker.run(poll_seconds=args.poll_seconds)


if __name__ == "__main__":
    sys.exit(main())
