"""The ``spot`` transport against moto (EC2 + S3 with the real boto3 calls), and botocore's
Stubber for what moto cannot produce (capacity errors, Spot prices): the launch with its
options, tags and user-data (decoded and checked for secrets), the inputs in the bucket,
the cost guard, the next type on a capacity error, the local fallback, the end that
terminates, and the orphan sweep. After every test no instance moto knows of is running."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from services.pipeline.settings import PipelineSettings
from services.pipeline.tasks import spot_ledger, spot_plan
from services.pipeline.tasks.spot_transport import NoSpotCapacity, SpotTransport
from services.pipeline.tasks.worker_wheel import build_wheel

REGION = "ap-southeast-1"
BUCKET = "video-scheduler-renders"
JOB = "job-1"
TOKEN = "tTOKEN1234567890abcdefghijklmnopqrstuv"
SECRETS = ("sk-live-openai-key", "AKIAFAKEACCESSKEY", "fake-secret-access-key", "/etc/vs/youtube-token.json")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheels"))  # this checkout's worker, built once


@pytest.fixture
def aws(monkeypatch) -> Any:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", SECRETS[1])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRETS[2])
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        boto3.client("s3", region_name=REGION).create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{n}.0/24")["Subnet"]["SubnetId"] for n in (1, 2)]
        group = ec2.create_security_group(GroupName="render", Description="render", VpcId=vpc)["GroupId"]
        images = ec2.describe_images(Owners=["amazon"])["Images"]
        x86 = next(i["ImageId"] for i in images if i.get("Architecture") == "x86_64")
        yield {"ec2": ec2, "subnets": subnets, "group": group, "ami": x86}
        running = [
            i["InstanceId"]
            for r in ec2.describe_instances()["Reservations"]
            for i in r["Instances"]
            if i["State"]["Name"] not in ("terminated", "shutting-down")
        ]
        assert running == [], f"instances left running: {running}"


def settings(aws: dict[str, Any], **extra: Any) -> PipelineSettings:
    return PipelineSettings.from_values({
        "render_backend": "spot",
        "render_bucket": BUCKET,
        "aws_region": REGION,
        "renderer_ami_id": aws["ami"],
        "renderer_security_group_id": aws["group"],
        "renderer_subnet_id": ",".join(aws["subnets"]),
        "renderer_iam_instance_profile": "video-scheduler-renderer",
        "openai_api_key": SECRETS[0],
        "youtube_token_file": SECRETS[3],
        **extra,
    })


def workspace(data: Path) -> Path:
    root = data / "work" / JOB
    (root / "panels").mkdir(parents=True)
    (root / "pages").mkdir()
    (root / "panels" / "panel-001.png").write_bytes(b"\x89PNG panel")
    (root / "pages" / "page-001.png").write_bytes(b"\x89PNG page")
    (root / "speech.json").write_text(json.dumps({"segments": []}))
    return root


def task(s: PipelineSettings, data: Path) -> dict[str, Any]:
    return {"task": "render", "job_id": JOB, "data_dir": str(data), "settings": s.for_worker(),
            "timeout_seconds": 14400}


def test_a_launch_asks_one_spot_instance_with_the_right_options_tags_and_user_data(
    aws, tmp_path: Path, wheel: Path
) -> None:
    data = tmp_path / "data"
    workspace(data)
    s = settings(aws)
    transport = SpotTransport(data, s, wheel=wheel)
    started = transport.start(TOKEN, task(s, data), heartbeat_seconds=60)
    assert started["instance_type"] == "c5.2xlarge" and started["instance_id"].startswith("i-")
    assert started["spot_request_id"]
    ec2 = aws["ec2"]
    (instance,) = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    assert instance["InstanceLifecycle"] == "spot" and instance["ImageId"] == aws["ami"]
    tagged = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tagged.items() >= {"project": "video-scheduler", "job_id": JOB, "token": TOKEN}.items()
    (template,) = ec2.describe_launch_templates()["LaunchTemplates"]
    version = ec2.describe_launch_template_versions(LaunchTemplateId=template["LaunchTemplateId"])
    lt = version["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    assert lt["MetadataOptions"]["HttpTokens"] == "required"  # IMDSv2
    assert lt["InstanceInitiatedShutdownBehavior"] == "terminate"
    assert lt["SecurityGroupIds"] == [aws["group"]] and lt["IamInstanceProfile"] == {"Name": "video-scheduler-renderer"}
    assert {spec["ResourceType"] for spec in lt["TagSpecifications"]} == {"instance", "volume"}
    assert "InstanceMarketOptions" not in lt  # no MaxPrice: the cost guard decides
    script = base64.b64decode(lt["UserData"]).decode()
    assert f"export JOB_ID={JOB}" in script and f"export TASK_TOKEN={TOKEN}" in script
    assert f"export RENDER_BUCKET={BUCKET}" in script and f"AWS_REGION={REGION}" in script
    assert "shutdown -h +250" in script  # TimeoutSeconds 14400 + 600 s, in minutes: its own deadline
    assert "git clone" not in script and f"wheels/{wheel.parent.name}/{wheel.name}" in script
    for secret in SECRETS:
        assert secret not in script
    s3 = boto3.client("s3", region_name=REGION)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert {f"jobs/{JOB}/inputs/panels/panel-001.png", f"jobs/{JOB}/inputs/speech.json",
            f"tasks/{TOKEN}/task.json", f"wheels/{wheel.parent.name}/{wheel.name}"} <= keys
    assert f"jobs/{JOB}/inputs/pages/page-001.png" not in keys  # the render works on the panels
    handed = s3.get_object(Bucket=BUCKET, Key=f"tasks/{TOKEN}/task.json")["Body"].read().decode()
    assert SECRETS[0] not in handed and SECRETS[1] not in handed
    assert transport.alive(TOKEN) is None and transport.heartbeat(TOKEN) is None and transport.result(TOKEN) is None

    transport.end(TOKEN, kill=True)  # whatever the outcome: the instance is terminated
    (gone,) = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    assert gone["State"]["Name"] in ("shutting-down", "terminated")
    assert ec2.describe_launch_templates()["LaunchTemplates"] == []
    assert transport.alive(TOKEN) is not None and transport.alive(TOKEN).lost
    spent = transport.spend(TOKEN)  # what it cost, on record for the month
    assert spent["instance_type"] == "c5.2xlarge" and spent["job_id"] == JOB and spent["seconds"] >= 0
    assert spent["cost_usd"] == spot_ledger.estimate_usd(spent["seconds"], spent["hourly_usd"])
    transport.end(TOKEN, kill=True)  # a second end records nothing more
    assert len(spot_ledger.read_runs(data)) == 1


def test_a_month_past_its_budget_renders_locally(aws, tmp_path: Path, wheel: Path, caplog) -> None:
    data = tmp_path / "data"
    workspace(data)
    month = spot_ledger.this_month(datetime.now(timezone.utc))
    spot_ledger.record_run(data, {"token": "tOLD", "instance_type": "c5.2xlarge", "seconds": 3600,
                                  "hourly_usd": 0.3, "cost_usd": 5.0, "ended_at": f"{month}-01T00:00:00+00:00"})
    assert spot_ledger.month_spend(data, month) == (5.0, spot_ledger.read_runs(data))
    s = settings(aws, spot_monthly_budget_usd=5.0)
    transport = SpotTransport(data, s, wheel=wheel)
    started = transport.start("tBUDGET", task(s, data), heartbeat_seconds=60)
    try:
        assert started["instance_type"] == "local"  # no instance launched past the budget
        assert aws["ec2"].describe_instances()["Reservations"] == []
        assert any("SPOT_MONTHLY_BUDGET_USD" in r.getMessage() for r in caplog.records)
    finally:
        transport.end("tBUDGET", kill=True)
    assert spot_ledger.estimate_usd(1800, 0.34) == 0.17


def test_a_result_in_the_bucket_ends_the_wait_and_brings_the_video_home(aws, tmp_path: Path, wheel: Path) -> None:
    data = tmp_path / "data"
    root = workspace(data)
    s = settings(aws)
    transport = SpotTransport(data, s, wheel=wheel)
    transport.start(TOKEN, task(s, data), heartbeat_seconds=60)
    s3 = boto3.client("s3", region_name=REGION)
    beat = datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc)
    s3.put_object(Bucket=BUCKET, Key=f"tasks/{TOKEN}/heartbeat", Body=beat.isoformat().encode())
    assert transport.heartbeat(TOKEN) == beat
    s3.put_object(Bucket=BUCKET, Key=f"jobs/{JOB}/video.mp4", Body=b"rendered on the instance")
    output = {"job_id": JOB, "status": "completed"}
    s3.put_object(Bucket=BUCKET, Key=f"tasks/{TOKEN}/result.json",
                  Body=json.dumps({"status": "succeeded", "output": output}).encode())
    assert transport.result(TOKEN) == {"status": "succeeded", "output": output}
    assert (root / "video.mp4").read_bytes() == b"rendered on the instance"
    transport.end(TOKEN, kill=False)


def test_the_orphan_sweep_terminates_an_instance_no_job_owns(aws, tmp_path: Path, wheel: Path) -> None:
    data = tmp_path / "data"
    workspace(data)
    s = settings(aws)
    transport = SpotTransport(data, s, wheel=wheel)
    transport.start(TOKEN, task(s, data), heartbeat_seconds=60)
    ec2 = aws["ec2"]
    stranger = ec2.run_instances(ImageId=aws["ami"], MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    assert transport.sweep_orphans({TOKEN}) == []  # owned: left to finish
    assert transport.sweep_orphans(set()) != []  # nobody owns the token any more
    states = {i["InstanceId"]: i["State"]["Name"] for r in ec2.describe_instances()["Reservations"]
              for i in r["Instances"]}
    assert states[stranger] == "running"  # not ours (no project tag): never touched
    ec2.terminate_instances(InstanceIds=[stranger])
    transport.end(TOKEN, kill=True)


# -- what moto cannot produce: capacity errors and prices, through botocore's Stubber ---------------


class _Session:
    """boto3's session as the transport uses it: the stubbed EC2 client, moto's S3."""

    def __init__(self, ec2: Any) -> None:
        self.ec2 = ec2

    def client(self, service: str, **_: Any) -> Any:
        return self.ec2 if service == "ec2" else boto3.client(service, region_name=REGION)


def _stubbed(aws: dict[str, Any], prices: dict[str, str], fleets: list[Any]) -> tuple[Any, Stubber]:
    ec2 = boto3.client("ec2", region_name=REGION)
    stub = Stubber(ec2)
    stub.add_response("describe_images", {"Images": [{"ImageId": aws["ami"], "Architecture": "x86_64"}]})
    history = [
        {"InstanceType": t, "AvailabilityZone": f"{REGION}{zone}", "SpotPrice": p,
         "Timestamp": datetime(2026, 12, 2, tzinfo=timezone.utc), "ProductDescription": "Linux/UNIX"}
        for t, p in prices.items() for zone in "ab"
    ]
    stub.add_response("describe_spot_price_history", {"SpotPriceHistory": history})
    if fleets:
        stub.add_response("create_launch_template", {"LaunchTemplate": {"LaunchTemplateId": "lt-1"}})
    for fleet in fleets:
        if isinstance(fleet, str):
            stub.add_client_error("create_fleet", service_error_code=fleet, service_message=f"no {fleet}")
        else:
            stub.add_response("create_fleet", fleet)
            if fleet.get("Instances"):
                stub.add_response("describe_instances", {"Reservations": [{"Instances": [
                    {"InstanceId": "i-0abc", "SpotInstanceRequestId": "sir-abc123"}]}]})
    if fleets and not any(isinstance(f, dict) and f.get("Instances") for f in fleets):
        stub.add_response("delete_launch_template", {})  # nothing launched: the template goes
    stub.activate()
    return ec2, stub


def test_a_capacity_error_tries_the_next_type(aws, tmp_path: Path, wheel: Path) -> None:
    data = tmp_path / "data"
    workspace(data)
    s = settings(aws)
    ok = {"FleetId": "fleet-1", "Instances": [{"InstanceIds": ["i-0abc"], "InstanceType": "c6i.2xlarge"}]}
    ec2, stub = _stubbed(aws, {t: "0.20" for t in spot_plan.RENDER_TYPES[:5]},
                         ["InsufficientInstanceCapacity", ok])
    started = SpotTransport(data, s, session=_Session(ec2), wheel=wheel).start(TOKEN, task(s, data),
                                                                             heartbeat_seconds=60)
    assert started == {"instance_id": "i-0abc", "instance_type": "c6i.2xlarge", "spot_request_id": "sir-abc123"}
    stub.assert_no_pending_responses()


def test_every_type_short_of_capacity_falls_back_to_the_local_worker_or_fails(aws, tmp_path: Path,
                                                                               wheel: Path, caplog) -> None:
    data = tmp_path / "data"
    workspace(data)
    empty = {"FleetId": "fleet-x", "Instances": [], "Errors": [{"ErrorCode": "InsufficientInstanceCapacity"}]}
    errors = ["InsufficientInstanceCapacity", "SpotMaxPriceTooLow", "MaxSpotInstanceCountExceeded", empty,
              "InsufficientInstanceCapacity"]
    s = settings(aws, spot_fallback="fail")
    ec2, stub = _stubbed(aws, {t: "0.20" for t in spot_plan.RENDER_TYPES[:5]}, errors)
    with pytest.raises(NoSpotCapacity) as refused:
        SpotTransport(data, s, session=_Session(ec2), wheel=wheel).start(TOKEN, task(s, data), heartbeat_seconds=60)
    assert "c5.2xlarge: InsufficientInstanceCapacity" in refused.value.cause
    assert "m5.2xlarge: InsufficientInstanceCapacity" in refused.value.cause  # the empty fleet's own error
    assert refused.value.name == "SpotCapacityError"
    stub.assert_no_pending_responses()  # five types tried, the template removed

    local = settings(aws)  # SPOT_FALLBACK=local, the default
    ec2, _ = _stubbed(aws, {t: "0.20" for t in spot_plan.RENDER_TYPES[:5]}, errors)
    transport = SpotTransport(data, local, session=_Session(ec2), wheel=wheel)
    started = transport.start("tLOCAL", {**task(local, data), "task": "render"}, heartbeat_seconds=60)
    try:
        assert started["instance_type"] == "local" and started["instance_id"].startswith("pid-")
        assert any(r.getMessage() == "no Spot capacity; the task runs on the local worker" for r in caplog.records)
        assert (data / "tasks" / "tLOCAL" / "task.json").exists()  # the local worker's task folder
        assert transport.alive("tLOCAL") is None  # asked of the local worker, which runs
    finally:
        transport.end("tLOCAL", kill=True)


def test_the_cost_guard_skips_a_type_priced_above_the_limit(aws, tmp_path: Path, wheel: Path) -> None:
    data = tmp_path / "data"
    workspace(data)
    s = settings(aws, spot_max_hourly_usd=0.25)
    prices = {"c5.2xlarge": "0.31", "c6i.2xlarge": "0.22", "c7i.2xlarge": "0.40", "m5.2xlarge": "0.24",
              "m6i.2xlarge": "0.26"}
    ok = {"FleetId": "fleet-1", "Instances": [{"InstanceIds": ["i-0abc"], "InstanceType": "c6i.2xlarge"}]}
    ec2, stub = _stubbed(aws, prices, [ok])
    started = SpotTransport(data, s, session=_Session(ec2), wheel=wheel).start(TOKEN, task(s, data),
                                                                             heartbeat_seconds=60)
    assert started["instance_type"] == "c6i.2xlarge"  # c5 at 0.31 $/h is over the guard
    stub.assert_no_pending_responses()
    ec2, _ = _stubbed(aws, {t: "0.90" for t in prices}, [])
    with pytest.raises(NoSpotCapacity, match="every type is priced above SPOT_MAX_HOURLY_USD=0.25"):
        SpotTransport(data, settings(aws, spot_max_hourly_usd=0.25, spot_fallback="fail"),
                      session=_Session(ec2), wheel=wheel).start(TOKEN, task(s, data), heartbeat_seconds=60)


# -- the plan (pure) ----------------------------------------------------------------------------


def test_the_types_follow_the_amis_architecture_and_the_setting_comes_first() -> None:
    assert spot_plan.candidate_types("c5.2xlarge", spot_plan.RENDER_TYPES, "x86_64") == [
        "c5.2xlarge", "c6i.2xlarge", "c7i.2xlarge", "m5.2xlarge", "m6i.2xlarge"]
    assert spot_plan.candidate_types("c7g.4xlarge", spot_plan.RENDER_TYPES, "arm64") == [
        "c7g.4xlarge", "c7g.2xlarge", "c6g.2xlarge"]
    assert spot_plan.architecture_of("t4g.medium") == "arm64" and spot_plan.architecture_of("m6i.large") == "x86_64"


def test_the_fleet_request_is_instant_price_capacity_optimized_over_types_and_subnets() -> None:
    request = spot_plan.fleet_request("lt-1", ["c5.2xlarge", "c6i.2xlarge"], ["subnet-a", "subnet-b"], JOB, TOKEN)
    assert request["Type"] == "instant" and request["SpotOptions"] == {"AllocationStrategy":
                                                                       "price-capacity-optimized"}
    overrides = request["LaunchTemplateConfigs"][0]["Overrides"]
    assert len(overrides) == 4 and {"InstanceType": "c6i.2xlarge", "SubnetId": "subnet-b"} in overrides
    assert "MaxPrice" not in json.dumps(request)
    with pytest.raises(ValueError, match="no instance type"):
        spot_plan.fleet_request("lt-1", [], [], JOB, TOKEN)


def test_the_current_price_is_each_zones_newest_and_the_dearest_zone() -> None:
    day = datetime(2026, 12, 2, tzinfo=timezone.utc)
    later = datetime(2026, 12, 2, 6, tzinfo=timezone.utc)
    history = [
        {"InstanceType": "c5.2xlarge", "AvailabilityZone": "a", "SpotPrice": "0.50", "Timestamp": day},
        {"InstanceType": "c5.2xlarge", "AvailabilityZone": "a", "SpotPrice": "0.20", "Timestamp": later},
        {"InstanceType": "c5.2xlarge", "AvailabilityZone": "b", "SpotPrice": "0.30", "Timestamp": day},
    ]
    assert spot_plan.current_prices(history) == {"c5.2xlarge": 0.30}
    assert spot_plan.affordable(["c5.2xlarge", "m5.2xlarge"], {"c5.2xlarge": 0.3}, 0.25) == ["m5.2xlarge"]
    assert spot_plan.affordable(["c5.2xlarge"], {"c5.2xlarge": 9.0}, None) == ["c5.2xlarge"]


def test_the_tokens_owned_are_those_of_the_jobs_still_waiting() -> None:
    from services.pipeline.stages.worker_stages import owned_tokens
    from services.scheduler.models import JobStatus, ScheduledJob
    from tests.pipeline.stage_context import RecordingContext

    when = datetime(2026, 12, 2, tzinfo=timezone.utc)

    def job(status: JobStatus, outputs: dict[str, Any]) -> ScheduledJob:
        return ScheduledJob(account_id="a", content="next", kind="pipeline.video", scheduled_time=when,
                            created_at=when, updated_at=when, status=status,
                            pipeline={"state": "WaitForRender", "outputs": outputs})

    jobs = [
        job(JobStatus.RUNNING, {"StartRenderer": {"task_token": "tA"}}),
        job(JobStatus.SCHEDULED, {"StartRenderer": {"task_token": "tB"}, "StartUploader": {"task_token": "tC"}}),
        job(JobStatus.COMPLETED, {"StartRenderer": {"task_token": "tD"}}),  # done: its worker is nobody's
        job(JobStatus.FAILED, {"StartUploader": {"task_token": "tE"}}),
        job(JobStatus.RUNNING, {}),
    ]
    assert owned_tokens(RecordingContext(jobs=jobs)) == {"tA", "tB", "tC"}


def test_the_spend_command_shows_the_months_runs_and_the_budget(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    data = tmp_path / "data"
    for n, (month, cost) in enumerate([("2026-11", 1.25), ("2026-12", 0.5), ("2026-12", 0.75)]):
        spot_ledger.record_run(data, {"token": f"t{n}", "job_id": f"job-{n}", "instance_type": "c5.2xlarge",
                                      "seconds": 600, "hourly_usd": 0.3, "cost_usd": cost,
                                      "ended_at": f"{month}-02T09:00:00+00:00"})
    env = {**os.environ, "DATA_DIR": str(data), "PIPELINE_SETTINGS_FILE": str(tmp_path / "none.toml"),
           "SPOT_MONTHLY_BUDGET_USD": "20"}

    def spend(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(root / "run_scheduler.py"), "spend", *args], env=env,
                              capture_output=True, text=True, timeout=60)

    shown = spend("--month", "2026-12")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip().splitlines()[-1] == "2026-12: $1.2500 on 2 Spot run(s) of the $20 budget"
    as_json = json.loads(spend("--month", "2026-11", "--json").stdout)
    assert as_json["spend_usd"] == 1.25 and [r["job_id"] for r in as_json["runs"]] == ["job-0"]
    bad = spend("--month", "2026-13")
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --month must be YYYY-MM, got '2026-13'"
    month = spot_ledger.this_month(datetime.now(timezone.utc))
    spot_ledger.record_run(data, {"token": "tNOW", "job_id": "job-now", "instance_type": "c6i.2xlarge",
                                  "seconds": 300, "hourly_usd": 0.3, "cost_usd": 0.025,
                                  "ended_at": f"{month}-01T09:00:00+00:00"})
    stats = subprocess.run([sys.executable, str(root / "run_scheduler.py"), "stats"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert stats.returncode == 0, stats.stderr
    assert stats.stdout.strip().splitlines()[-1].startswith(f"render spend {month}: $")  # the scheduler's stats too


def test_doctor_checks_the_spot_settings_against_aws(aws, monkeypatch) -> None:
    from services.pipeline.doctor import spot_checks

    iam = boto3.client("iam", region_name=REGION)
    iam.create_instance_profile(InstanceProfileName="video-scheduler-renderer")
    checks = {c.name: c for c in spot_checks(settings(aws), "render")}
    assert all(c.ok for c in checks.values()), [c for c in checks.values() if not c.ok]
    assert set(checks) == {f"spot render: {n}" for n in ("credentials", "bucket", "AMI", "subnets", "security group",
                                                         "instance profile", "launch allowed")}
    assert SECRETS[1] not in checks["spot render: credentials"].detail  # found, never printed
    broken = settings(aws, render_bucket="no-such-bucket", renderer_ami_id="ami-12345678",
                      renderer_security_group_id="sg-00000000")
    failed = {c.name for c in spot_checks(broken, "render") if not c.ok}
    assert {"spot render: bucket", "spot render: AMI", "spot render: security group"} <= failed
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    (missing,) = spot_checks(settings(aws), "render")
    assert not missing.ok and "no AWS credentials found" in missing.detail


def test_the_bucket_keeps_a_renders_pieces_for_the_next_instance(aws, tmp_path: Path) -> None:
    from services.pipeline.tasks.spot_worker import BucketPieces

    s3 = boto3.client("s3", region_name=REGION)
    first = BucketPieces(s3, BUCKET, JOB, tmp_path / "first")
    assert first.get("abc-0000.mp4") is None  # nothing made yet
    piece = tmp_path / "piece.mp4"
    piece.write_bytes(b"an encoded piece")
    first.put("abc-0000.mp4", piece)
    assert s3.head_object(Bucket=BUCKET, Key=f"jobs/{JOB}/pieces/abc-0000.mp4")["ContentLength"] == 16
    relaunched = BucketPieces(s3, BUCKET, JOB, tmp_path / "second")  # another instance, another disk
    found = relaunched.get("abc-0000.mp4")
    assert found is not None and found.read_bytes() == b"an encoded piece"
    assert relaunched.get("abc-0001.mp4") is None


def test_a_spot_uploads_youtube_token_travels_as_an_ssm_secure_string_and_nowhere_else(
    aws, tmp_path: Path, wheel: Path
) -> None:
    from services.pipeline.tasks.spot_worker import SpotWorker

    data = tmp_path / "data"
    root = workspace(data)
    (root / "video.mp4").write_bytes(b"rendered here")
    (root / "source.json").write_text(json.dumps({"account_id": "default"}))
    token_file = tmp_path / "youtube-token.json"
    token_file.write_text('{"refresh_token": "1//refresh-secret"}')
    token_file.chmod(0o600)
    ami = aws["ami"]
    s = settings(aws, upload_backend="spot", upload_target="youtube", youtube_token_file=str(token_file),
                 uploader_ami_id=ami)
    transport = SpotTransport(data, s, wheel=wheel)
    transport.start(TOKEN, {**task(s, data), "task": "upload"}, heartbeat_seconds=60)
    ssm = boto3.client("ssm", region_name=REGION)
    name = f"/video-scheduler/tasks/{TOKEN}/youtube-token"
    parameter = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
    assert parameter["Type"] == "SecureString" and parameter["Value"] == '{"refresh_token": "1//refresh-secret"}'
    s3 = boto3.client("s3", region_name=REGION)
    assert s3.get_object(Bucket=BUCKET, Key=f"jobs/{JOB}/video.mp4")["Body"].read() == b"rendered here"
    everything = b"".join(s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
                          for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"] if not o["Key"].endswith(".whl"))
    (template,) = aws["ec2"].describe_launch_templates()["LaunchTemplates"]
    data_ = aws["ec2"].describe_launch_template_versions(LaunchTemplateId=template["LaunchTemplateId"])
    script = base64.b64decode(data_["LaunchTemplateVersions"][0]["LaunchTemplateData"]["UserData"])
    assert b"refresh-secret" not in everything and b"refresh-secret" not in script
    # the instance's side: the token in a 0600 file of its own
    worker = SpotWorker("upload", JOB, TOKEN, BUCKET, REGION, tmp_path / "instance")
    path = worker._token_file({"settings": s.for_worker()})
    assert path is not None and path.read_text() == '{"refresh_token": "1//refresh-secret"}'
    assert (path.stat().st_mode & 0o777) == 0o600
    transport.end(TOKEN, kill=True)  # the copy goes with the task
    with pytest.raises(ssm.exceptions.ParameterNotFound):
        ssm.get_parameter(Name=name)


def test_the_first_run_after_a_start_sweeps_the_workers_no_job_owns(aws, tmp_path: Path, wheel: Path) -> None:
    from services.pipeline.stages import worker_stages
    from services.scheduler.models import JobStatus, ScheduledJob
    from tests.pipeline.stage_context import RecordingContext

    data = tmp_path / "data"
    workspace(data)
    s = settings(aws)
    transport = SpotTransport(data, s, wheel=wheel)
    transport.start(TOKEN, task(s, data), heartbeat_seconds=60)  # a resumed job's worker
    transport.start("tSTRAY", task(s, data), heartbeat_seconds=60)  # a job removed while it ran
    when = datetime(2026, 12, 2, tzinfo=timezone.utc)
    resumed = ScheduledJob(account_id="a", content="next", kind="pipeline.video", scheduled_time=when,
                           created_at=when, updated_at=when, status=JobStatus.RUNNING,
                           pipeline={"state": "WaitForRender", "outputs": {"StartRenderer": {"task_token": TOKEN}}})
    context = RecordingContext(data_dir=data, settings=s, jobs=[resumed])
    worker_stages._SWEPT.discard(data.resolve())
    (swept,) = worker_stages.sweep_at_start(context)
    states = {i["InstanceId"]: i["State"]["Name"] for r in aws["ec2"].describe_instances()["Reservations"]
              for i in r["Instances"]}
    assert states[swept] in ("shutting-down", "terminated")
    assert [n for n in states.values() if n == "running"] == ["running"]  # the resumed job's, re-attached later
    assert worker_stages.sweep_at_start(context) == []  # once per process
    local = RecordingContext(data_dir=tmp_path / "other", settings=PipelineSettings.embedded())
    assert worker_stages.sweep_at_start(local) == []  # no Spot backend: AWS is never asked
    transport.end(TOKEN, kill=True)
    transport.end("tSTRAY", kill=True)


def test_an_accounts_own_render_backend_picks_the_spot_transport_for_its_jobs(aws, tmp_path: Path) -> None:
    from services.pipeline.stages.worker_stages import transport_of
    from services.pipeline.tasks.subprocess_transport import SubprocessTransport
    from tests.pipeline.stage_context import RecordingContext

    data = tmp_path / "data"
    root = workspace(data)
    values = settings(aws).for_worker()
    values.update(render_backend="local", accounts={"kenh-a": {"render_backend": "spot"}, "kenh-b": {}})
    context = RecordingContext(data_dir=data, settings=PipelineSettings.from_values(values))
    (root / "source.json").write_text(json.dumps({"account_id": "kenh-a"}))
    assert isinstance(transport_of(context, "render", JOB), SpotTransport)
    assert isinstance(transport_of(context, "upload", JOB), SubprocessTransport)  # its upload stays here
    (root / "source.json").write_text(json.dumps({"account_id": "kenh-b"}))
    assert isinstance(transport_of(context, "render", JOB), SubprocessTransport)
