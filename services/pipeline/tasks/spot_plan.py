"""What an EC2 Spot worker is launched with (pure: settings and prices in, requests out).

- **Types.** The setting's type first (RENDERER_INSTANCE_TYPE, default c5.2xlarge, the
  seed's), then the others AWS suggests listing so a Spot request finds capacity: for the
  render c6i.2xlarge, c7i.2xlarge, m5.2xlarge, m6i.2xlarge, and the arm64 c7g.2xlarge,
  c6g.2xlarge (kept only when the AMI is arm64; the x86 ones only when it is x86_64); for
  the upload t3.medium, then t3a.medium, t3.large (UPLOADER_INSTANCE_TYPE first).
- **The cost guard.** A type whose current Spot price (the newest price of each zone;
  the dearest zone counts) is above SPOT_MAX_HOURLY_USD is left out, so no MaxPrice is
  set (AWS advises against it) and nothing launches above the guard.
- **The request** (``fleet_request``): ``create_fleet`` with ``Type='instant'``, one
  launch template, an override per type and subnet, ``price-capacity-optimized``, and the
  tags (project, job_id, token) on the instance and its volume.
- **The launch template** (``template_data``): the AMI, the security group, the instance
  profile, shutdown behaviour ``terminate``, IMDSv2 required (a token on every metadata
  call, one hop), and the user-data.
- **User-data** (``user_data``) holds only JOB_ID, TASK_TOKEN, the bucket, the region and
  the commands that install this project's worker (a wheel built from this checkout, in
  the bucket) and run it. No secret: the instance profile gives S3 access to the job's
  prefix. Its first line schedules a shutdown at the state's TimeoutSeconds plus a
  margin, so an instance whose daemon never comes back costs at most one timeout.
"""

from __future__ import annotations

import base64
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "DEADLINE_MARGIN_SECONDS",
    "PROJECT_TAG",
    "RENDER_TYPES",
    "UPLOAD_TYPES",
    "affordable",
    "architecture_of",
    "candidate_types",
    "current_prices",
    "fleet_request",
    "tags",
    "template_data",
    "user_data",
]

PROJECT_TAG = "video-scheduler"
RENDER_TYPES = ("c5.2xlarge", "c6i.2xlarge", "c7i.2xlarge", "m5.2xlarge", "m6i.2xlarge", "c7g.2xlarge", "c6g.2xlarge")
UPLOAD_TYPES = ("t3.medium", "t3a.medium", "t3.large")
DEADLINE_MARGIN_SECONDS = 600
_ARM_FAMILY = re.compile(r"^[a-z]+\d+g[a-z]*\.")  # c7g, c6gn, m6gd, t4g ...


def architecture_of(instance_type: str) -> str:
    """``arm64`` for a Graviton type (c7g.2xlarge), else ``x86_64``."""
    return "arm64" if _ARM_FAMILY.match(instance_type) else "x86_64"


def candidate_types(first: str, defaults: Sequence[str], architecture: str) -> list[str]:
    """``first``, then ``defaults``, without repeats, only those the AMI's architecture runs."""
    return [t for t in dict.fromkeys([first, *defaults]) if architecture_of(t) == architecture]


def current_prices(history: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """The current Spot price of each type, from describe_spot_price_history's records: the
    newest record of each zone, and of the zones the dearest (the fleet may pick any)."""
    newest: dict[tuple[str, str], tuple[Any, float]] = {}
    for record in history:
        key = (str(record["InstanceType"]), str(record.get("AvailabilityZone", "")))
        when, price = record.get("Timestamp"), float(record["SpotPrice"])
        if key not in newest or when > newest[key][0]:
            newest[key] = (when, price)
    prices: dict[str, float] = {}
    for (instance_type, _zone), (_when, price) in newest.items():
        prices[instance_type] = max(price, prices.get(instance_type, 0.0))
    return prices


def affordable(types: Sequence[str], prices: Mapping[str, float], max_hourly: float | None) -> list[str]:
    """The types priced at or under ``max_hourly`` USD an hour (all when there is no guard);
    a type with no price on record is kept (the fleet will not launch what has none)."""
    if max_hourly is None:
        return list(types)
    return [t for t in types if prices.get(t, 0.0) <= max_hourly]


def tags(job_id: str, token: str) -> list[dict[str, str]]:
    """The tags of a worker instance and its volume: what the orphan sweep looks for."""
    return [
        {"Key": "project", "Value": PROJECT_TAG},
        {"Key": "job_id", "Value": job_id},
        {"Key": "token", "Value": token},
    ]


def user_data(
    *,
    job_id: str,
    token: str,
    task: str,
    bucket: str,
    region: str,
    wheel_key: str,
    deadline_seconds: int,
) -> str:
    """The instance's boot script (no secret in it; see the module's docstring)."""
    minutes = max(1, -(-(deadline_seconds + DEADLINE_MARGIN_SECONDS) // 60))
    q = shlex.quote
    wheel = wheel_key.rsplit("/", 1)[-1]
    return "\n".join(
        [
            "#!/bin/bash",
            f"shutdown -h +{minutes}  # the instance's own deadline: TimeoutSeconds plus a margin",
            "set -euo pipefail",
            f"export JOB_ID={q(job_id)}",
            f"export TASK_TOKEN={q(token)}",
            f"export RENDER_BUCKET={q(bucket)}",
            f"export AWS_REGION={q(region)} AWS_DEFAULT_REGION={q(region)}",
            "python3 -m venv /opt/video-scheduler",
            f"aws s3 cp {q(f's3://{bucket}/{wheel_key}')} /tmp/{q(wheel)}",
            f"/opt/video-scheduler/bin/pip install --quiet /tmp/{q(wheel)}",
            f"/opt/video-scheduler/bin/python -m services.pipeline.tasks.spot_worker {q(task)} "
            "> /var/log/video-scheduler-worker.log 2>&1 || true",
            f"aws s3 cp /var/log/video-scheduler-worker.log {q(f's3://{bucket}/tasks/{token}/worker.log')} || true",
            "shutdown -h now",
            "",
        ]
    )


def template_data(
    *,
    ami_id: str,
    security_group_id: str | None,
    instance_profile: str | None,
    script: str,
    job_id: str,
    token: str,
) -> dict[str, Any]:
    """The launch template's data for one worker."""
    data: dict[str, Any] = {
        "ImageId": ami_id,
        "InstanceInitiatedShutdownBehavior": "terminate",
        "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1, "HttpEndpoint": "enabled"},
        "UserData": base64.b64encode(script.encode()).decode(),
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": tags(job_id, token)},
            {"ResourceType": "volume", "Tags": tags(job_id, token)},
        ],
    }
    if security_group_id:
        data["SecurityGroupIds"] = [security_group_id]
    if instance_profile:
        key = "Arn" if instance_profile.startswith("arn:") else "Name"
        data["IamInstanceProfile"] = {key: instance_profile}
    return data


def fleet_request(template_id: str, types: Sequence[str], subnets: Sequence[str], job_id: str,
                  token: str) -> dict[str, Any]:
    """``create_fleet``'s arguments: one Spot instance of any of ``types`` in any of
    ``subnets``, price-capacity-optimized, tagged."""
    if not types:
        raise ValueError("no instance type to launch")
    overrides = [
        {"InstanceType": t, **({"SubnetId": s} if s else {})} for t in types for s in (list(subnets) or [""])
    ]
    return {
        "Type": "instant",
        "TargetCapacitySpecification": {"TotalTargetCapacity": 1, "DefaultTargetCapacityType": "spot"},
        "SpotOptions": {"AllocationStrategy": "price-capacity-optimized"},
        "LaunchTemplateConfigs": [
            {"LaunchTemplateSpecification": {"LaunchTemplateId": template_id, "Version": "$Latest"},
             "Overrides": overrides}
        ],
        "TagSpecifications": [{"ResourceType": "fleet", "Tags": tags(job_id, token)}],
    }
