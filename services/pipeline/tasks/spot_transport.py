"""The ``spot`` TaskTransport: the worker is an EC2 Spot instance, the reports go through S3.

Chosen per task by RENDER_BACKEND / UPLOAD_BACKEND (``spot``; global or per account), beside
the ``local`` one, which stays the default. The objects, in RENDER_BUCKET::

    jobs/<job_id>/inputs/...          the job's workspace (panels, audio, speech.json ...)
    jobs/<job_id>/video.mp4           what the worker rendered (and shorts.mp4)
    tasks/<token>/task.json           what the machine hands the worker (no secret)
    tasks/<token>/heartbeat           the worker's last beat (ISO time), every minute
    tasks/<token>/result.json         its one result: succeeded with its output, or failed
    wheels/<digest>/<name>.whl        this checkout's worker, built once per code version

``start`` uploads the inputs and the task, makes a launch template for this token
(``spot_plan.template_data``: IMDSv2 required, terminate on shutdown, the user-data) and asks
``create_fleet`` (instant, price-capacity-optimized) for one instance of the types the cost
guard lets through (``spot_plan.affordable`` over describe_spot_price_history). A launch
that finds no capacity (InsufficientInstanceCapacity, SpotMaxPriceTooLow,
MaxSpotInstanceCountExceeded, or a fleet with no instance) tries the next type on its own;
when none is left the task runs on the local worker with a warning (SPOT_FALLBACK=local)
or fails (``fail``). botocore's own retries are kept low (2) for the launch: the next type
is a better retry than the same one.

``heartbeat`` and ``result`` read the task's objects (a succeeded result downloads the
video into the workspace first); ``alive`` asks EC2 for the instance (terminated or
stopped without a result: lost, so the machine relaunches it); ``end`` terminates the
instance whatever the outcome and removes the launch template. ``sweep_orphans``
terminates the instances tagged by this project whose token no job still waits on.

The endpoints are boto3's own: AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3 / _EC2) points the
whole path at a moto server. Credentials come from boto3's chain (environment, the
instance profile, ``~/.aws``), never from a job or a task file.
"""

from __future__ import annotations

import functools
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from services.pipeline.errors import PipelineError
from services.pipeline.tasks import spot_ledger, spot_plan
from services.pipeline.tasks.subprocess_transport import SubprocessTransport
from services.pipeline.tasks.transport import Ended
from services.scheduler.clock import utc_now

__all__ = ["CAPACITY_ERRORS", "NoSpotCapacity", "SpotTransport", "TRANSPORT"]

logger = logging.getLogger(__name__)

CAPACITY_ERRORS = frozenset(
    {
        "InsufficientInstanceCapacity",
        "SpotMaxPriceTooLow",
        "MaxSpotInstanceCountExceeded",
        "InsufficientCapacity",
        "UnfulfillableCapacity",
    }
)
_LAUNCH_RETRIES = 2
_GONE = ("shutting-down", "terminated", "stopping", "stopped")


class NoSpotCapacity(PipelineError):
    """No type the guard allows could be launched (each tried type and why, in the cause).
    With SPOT_FALLBACK=fail it is the Start* state's error (``SpotCapacityError``)."""

    name = "SpotCapacityError"


class SpotTransport:
    """Workers on EC2 Spot, their reports in S3 (a local worker when Spot falls back)."""

    name: ClassVar[str] = "spot"

    def __init__(self, data_dir: Path | str, settings: Any = None, *, session: Any = None,
                 wheel: Path | None = None) -> None:
        if settings is None:
            raise ValueError("the spot transport needs the pipeline settings (RENDER_BUCKET, RENDERER_AMI_ID ...)")
        if not settings.render_bucket:
            raise ValueError("RENDER_BACKEND=spot needs RENDER_BUCKET: the S3 bucket the worker's files go through")
        self.data_dir = Path(data_dir).resolve()
        self.settings = settings
        self.bucket = settings.render_bucket
        self.local = SubprocessTransport(self.data_dir)
        self._session = session
        self._wheel = wheel

    # -- clients ---------------------------------------------------------------------------

    def _client(self, service: str, retries: int | None = None) -> Any:
        import boto3
        from botocore.config import Config

        session = self._session or boto3.session.Session(region_name=self.settings.aws_region)
        config = Config(retries={"max_attempts": retries, "mode": "standard"}) if retries else None
        return session.client(service, region_name=self.settings.aws_region, config=config)

    @functools.cached_property
    def s3(self) -> Any:
        return self._client("s3")  # made once: the wait asks for the heartbeat twice a second

    @functools.cached_property
    def ec2(self) -> Any:
        return self._client("ec2")

    # -- the machine's side ----------------------------------------------------------------

    def start(self, token: str, task: dict[str, Any], *, heartbeat_seconds: float) -> dict[str, Any]:
        kind = str(task["task"])
        job_id = str(task["job_id"])
        role = _Role.of(self.settings, kind)
        if not role.ami_id:
            raise ValueError(f"{kind.upper()}_BACKEND=spot needs {role.prefix}_AMI_ID")
        budget = self.settings.spot_monthly_budget_usd
        if budget is not None:
            spent, _ = spot_ledger.month_spend(self.data_dir, spot_ledger.this_month(utc_now()))
            if spent >= budget:
                logger.warning(
                    "this month's Spot spend is past SPOT_MONTHLY_BUDGET_USD; the task runs on the local worker",
                    extra={"job_id": job_id, "stage": f"spot:{kind}", "spent_usd": spent, "budget_usd": budget},
                )
                return self.local.start(token, task, heartbeat_seconds=heartbeat_seconds)
        try:
            return self._launch(token, task, role, job_id, kind, heartbeat_seconds)
        except NoSpotCapacity as exc:
            if self.settings.spot_fallback != "local":
                raise
            logger.warning(
                "no Spot capacity; the task runs on the local worker",
                extra={"job_id": job_id, "stage": f"spot:{kind}", "why": str(exc)},
            )
            return self.local.start(token, task, heartbeat_seconds=heartbeat_seconds)

    def _launch(self, token: str, task: dict[str, Any], role: _Role, job_id: str, kind: str,
                heartbeat_seconds: float) -> dict[str, Any]:
        ec2 = self._client("ec2", retries=_LAUNCH_RETRIES)
        architecture = self._architecture(ec2, role.ami_id)
        types = spot_plan.candidate_types(role.instance_type, role.defaults, architecture)
        prices = self._prices(ec2, types)
        allowed = spot_plan.affordable(types, prices, self.settings.spot_max_hourly_usd)
        if not allowed:
            raise NoSpotCapacity(
                f"every type is priced above SPOT_MAX_HOURLY_USD={self.settings.spot_max_hourly_usd:g}: "
                + ", ".join(f"{t} {prices.get(t, 0):.4f}" for t in types)
            )
        self._upload_inputs(job_id, with_video=kind == "upload")
        if kind == "upload":
            self._send_token(token, job_id)
        wheel_key = self._upload_wheel()
        self.s3.put_object(Bucket=self.bucket, Key=f"tasks/{token}/task.json",
                           Body=json.dumps({**task, "token": token, "bucket": self.bucket,
                                            "heartbeat_seconds": heartbeat_seconds}).encode())
        script = spot_plan.user_data(
            job_id=job_id, token=token, task=kind, bucket=self.bucket, region=self.settings.aws_region,
            wheel_key=wheel_key, deadline_seconds=int(task.get("timeout_seconds") or 14400),
        )
        template = ec2.create_launch_template(
            LaunchTemplateName=_template_name(token),
            LaunchTemplateData=spot_plan.template_data(
                ami_id=role.ami_id, security_group_id=role.security_group_id,
                instance_profile=role.instance_profile, script=script, job_id=job_id, token=token,
            ),
        )["LaunchTemplate"]["LaunchTemplateId"]
        tried: list[str] = []
        try:
            for instance_type in allowed:  # the setting's type first, then the next
                launched = self._fleet(ec2, template, instance_type, role.subnets, job_id, token, tried)
                if launched is not None:
                    return launched
        except BaseException:
            ec2.delete_launch_template(LaunchTemplateId=template)
            raise
        ec2.delete_launch_template(LaunchTemplateId=template)
        raise NoSpotCapacity("; ".join(tried) or "no instance type to try")

    def _fleet(self, ec2: Any, template: str, instance_type: str, subnets: list[str], job_id: str, token: str,
               tried: list[str]) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            answer = ec2.create_fleet(**spot_plan.fleet_request(template, [instance_type], subnets, job_id, token))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in CAPACITY_ERRORS:
                raise
            tried.append(f"{instance_type}: {code}")
            return None
        for instance in answer.get("Instances", []):
            if instance.get("InstanceIds"):
                instance_id = instance["InstanceIds"][0]
                described = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
                return {
                    "instance_id": instance_id,
                    "instance_type": instance.get("InstanceType", instance_type),
                    "spot_request_id": described.get("SpotInstanceRequestId") or answer.get("FleetId"),
                }
        errors = [e.get("ErrorCode", "") for e in answer.get("Errors", [])]
        tried.append(f"{instance_type}: {', '.join(errors) or 'the fleet returned no instance'}")
        return None

    def heartbeat(self, token: str) -> datetime | None:
        if self._is_local(token):
            return self.local.heartbeat(token)
        text = self._read(f"tasks/{token}/heartbeat")
        return datetime.fromisoformat(text.strip()) if text else None

    def result(self, token: str) -> dict[str, Any] | None:
        if self._is_local(token):
            return self.local.result(token)
        text = self._read(f"tasks/{token}/result.json")
        if text is None:
            return None
        result = json.loads(text)
        if result.get("status") == "succeeded":
            self._download_outputs(token)
        return result

    def alive(self, token: str) -> Ended | None:
        if self._is_local(token):
            return self.local.alive(token)
        instances = self._instances(token)
        if not instances:
            return Ended("instance is gone (no instance carries its token)", lost=True)
        state = instances[0]["State"]["Name"]
        if state in _GONE:
            reason = instances[0].get("StateReason", {}).get("Message", "")
            return Ended(f"instance {instances[0]['InstanceId']} is {state}" + (f" ({reason})" if reason else ""),
                         lost=True)
        return None

    def log_tail(self, token: str, lines: int = 3) -> str:
        if self._is_local(token):
            return self.local.log_tail(token, lines)
        text = self._read(f"tasks/{token}/worker.log") or ""
        tail = [line for line in text.splitlines() if line.strip()][-lines:]
        return "worker.log: " + " | ".join(tail) if tail else "no worker.log in the bucket"

    def end(self, token: str, *, kill: bool) -> None:
        """Terminate the token's instance whatever the outcome (an instance left running is
        money), and remove its launch template."""
        if self._is_local(token):
            self.local.end(token, kill=kill)
            return
        ec2 = self.ec2
        instances = self._instances(token)
        ids = [i["InstanceId"] for i in instances if i["State"]["Name"] != "terminated"]
        if ids:
            ec2.terminate_instances(InstanceIds=ids)
        for instance in instances:
            self._record_spend(token, instance)
        templates = ec2.describe_launch_templates(
            Filters=[{"Name": "launch-template-name", "Values": [_template_name(token)]}]
        )["LaunchTemplates"]
        for template in templates:
            ec2.delete_launch_template(LaunchTemplateId=template["LaunchTemplateId"])
        if self.settings.upload_backend == "spot":
            from botocore.exceptions import ClientError

            try:  # the token's copy goes with the task
                self._client("ssm").delete_parameter(Name=self.token_parameter(token))
            except ClientError:
                pass

    def spend(self, token: str) -> dict[str, Any] | None:
        """What the token's instance cost (the ledger's record), once its wait has ended."""
        runs = spot_ledger.read_runs(self.data_dir)
        return next((r for r in runs if r.get("token") == token), None)

    def _record_spend(self, token: str, instance: dict[str, Any]) -> None:
        launched = instance.get("LaunchTime")
        if launched is None:
            return
        now = utc_now()
        seconds = max(0.0, (now - launched).total_seconds())
        instance_type = str(instance.get("InstanceType"))
        try:
            hourly = self._prices(self.ec2, [instance_type]).get(instance_type, 0.0)
        except Exception:  # the price is an estimate: a failed lookup records the time alone
            logger.exception("could not read the Spot price", extra={"stage": "spot"})
            hourly = 0.0
        tag = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
        spot_ledger.record_run(self.data_dir, {
            "job_id": tag.get("job_id"), "token": token, "instance_id": instance["InstanceId"],
            "instance_type": instance_type, "seconds": round(seconds, 1), "hourly_usd": hourly,
            "cost_usd": spot_ledger.estimate_usd(seconds, hourly), "ended_at": now.isoformat(),
        })

    def sweep_orphans(self, owned_tokens: set[str]) -> list[str]:
        """Terminate this project's instances whose token no job owns; their ids."""
        orphans = []
        for instance in self._project_instances():
            tag = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
            if tag.get("token") not in owned_tokens:
                orphans.append(instance["InstanceId"])
        if orphans:
            self.ec2.terminate_instances(InstanceIds=orphans)
            logger.warning("orphan Spot workers terminated", extra={"stage": "spot", "instances": orphans})
        return orphans

    # -- helpers ---------------------------------------------------------------------------

    def _is_local(self, token: str) -> bool:
        """Whether the task fell back to the local worker (its folder is here)."""
        return self.local.files.task_dir(token).exists()

    def _architecture(self, ec2: Any, ami_id: str) -> str:
        images = ec2.describe_images(ImageIds=[ami_id])["Images"]
        if not images:
            raise ValueError(f"AMI {ami_id} does not exist in {self.settings.aws_region}")
        return str(images[0].get("Architecture") or "x86_64")

    def _prices(self, ec2: Any, types: list[str]) -> dict[str, float]:
        pages = ec2.get_paginator("describe_spot_price_history").paginate(
            InstanceTypes=types, ProductDescriptions=["Linux/UNIX"], StartTime=datetime.now().astimezone(),
        )
        return spot_plan.current_prices(r for page in pages for r in page.get("SpotPriceHistory", []))

    def _instances(self, token: str) -> list[dict[str, Any]]:
        answer = self.ec2.describe_instances(Filters=[{"Name": "tag:token", "Values": [token]}])
        return [i for r in answer.get("Reservations", []) for i in r.get("Instances", [])]

    def _project_instances(self) -> list[dict[str, Any]]:
        answer = self.ec2.describe_instances(Filters=[
            {"Name": "tag:project", "Values": [spot_plan.PROJECT_TAG]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
        ])
        return [i for r in answer.get("Reservations", []) for i in r.get("Instances", [])]

    def _read(self, key: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    def _upload_inputs(self, job_id: str, *, with_video: bool = False) -> None:
        root = self.data_dir / "work" / job_id
        s3 = self.s3
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            relative = path.relative_to(root).as_posix()
            if relative in ("video.mp4", "shorts.mp4"):
                if with_video:  # an upload of a video rendered here: the instance needs it
                    s3.upload_file(str(path), self.bucket, f"jobs/{job_id}/{relative}")
                continue
            if relative.startswith(("pages/", ".")) or "/." in relative:
                continue  # the render works on the panels; temporaries stay here
            s3.upload_file(str(path), self.bucket, f"jobs/{job_id}/inputs/{relative}")

    def token_parameter(self, token: str) -> str:
        """The SSM parameter a Spot upload's YouTube token travels in."""
        return f"{self.settings.spot_secret_prefix}/tasks/{token}/youtube-token"

    def _send_token(self, token: str, job_id: str) -> None:
        """The job's account's YouTube token, as an SSM SecureString (KMS-encrypted) only the
        instance profile can read; never in user-data, the task file or the bucket."""
        from services.pipeline.settings import read_secret_file

        root = self.data_dir / "work" / job_id
        try:
            account = json.loads((root / "source.json").read_text(encoding="utf-8")).get("account_id")
        except (OSError, ValueError):
            account = None
        settings = self.settings.for_account(str(account or "default")) if self.settings.accounts else self.settings
        if settings.upload_target != "youtube" or settings.youtube_token_file is None:
            return
        secret = read_secret_file(settings.youtube_token_file, "YOUTUBE_TOKEN_FILE")
        options = {"KeyId": self.settings.spot_kms_key_id} if self.settings.spot_kms_key_id else {}
        self._client("ssm").put_parameter(Name=self.token_parameter(token), Value=secret, Type="SecureString",
                                          Overwrite=True, **options)

    def _download_outputs(self, token: str) -> None:
        task = json.loads(self._read(f"tasks/{token}/task.json") or "{}")
        job_id = str(task.get("job_id") or "")
        if not job_id:
            return
        root = self.data_dir / "work" / job_id
        for name in ("video.mp4", "shorts.mp4"):
            target = root / name
            if target.exists() or self._read_head(f"jobs/{job_id}/{name}") is None:
                continue
            part = target.with_name(f".{name}.part")
            self.s3.download_file(self.bucket, f"jobs/{job_id}/{name}", str(part))
            part.replace(target)

    def _read_head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError:
            return None

    def _upload_wheel(self) -> str:
        from services.pipeline.tasks.worker_wheel import build_wheel

        wheel = self._wheel or build_wheel(self.data_dir / "cache" / "wheels")
        key = f"wheels/{wheel.parent.name}/{wheel.name}"  # the digest folder: one per code version
        if self._read_head(key) is None:
            self.s3.upload_file(str(wheel), self.bucket, key)
        return key


class _Role:
    """The RENDERER_* or UPLOADER_* settings of one task kind."""

    def __init__(self, prefix: str, settings: Any, defaults: tuple[str, ...]) -> None:
        low = prefix.lower()
        self.prefix = prefix
        self.ami_id: str | None = getattr(settings, f"{low}_ami_id")
        self.instance_type: str = getattr(settings, f"{low}_instance_type")
        self.security_group_id: str | None = getattr(settings, f"{low}_security_group_id")
        self.instance_profile: str | None = getattr(settings, f"{low}_iam_instance_profile")
        subnets = getattr(settings, f"{low}_subnet_id") or ""
        self.subnets = [s.strip() for s in subnets.split(",") if s.strip()]
        self.defaults = defaults

    @classmethod
    def of(cls, settings: Any, kind: str) -> _Role:
        if kind == "render":
            return cls("RENDERER", settings, spot_plan.RENDER_TYPES)
        return cls("UPLOADER", settings, spot_plan.UPLOAD_TYPES)


def _template_name(token: str) -> str:
    return f"video-scheduler-{token[:40]}"


TRANSPORT = SpotTransport
