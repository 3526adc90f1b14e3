"""The CloudFormation template (infra/f5-worker.yaml): current with its generator, clean under cfn-lint, correct
where moto does not look (public access block, lifecycle, least privilege), and deployable: a stack created on
moto's CloudFormation runs a real job, with every AWS call of the worker and of the producer checked against the
IAM policy the stack created for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from consumer.aws.clients import make_clients
from consumer.aws.resources import ResourceSpec, bootstrap
from consumer.cli import app
from consumer.core.settings import Settings
from consumer.engine.fake import FakeEngine
from consumer.ops.infra import render_cloudformation, render_yaml
from consumer.producer.client import Client
from consumer.producer.voice_library import VoiceLibrary
from consumer.storage.jobs import CancelResult
from consumer.worker.loop import Worker
from consumer.worker.services import build_services
from contracts.events import SynthesisCompleted, parse_event
from tests.paths import REPO
from tests.unit.ops.iam_check import CallLog, denied, policy_document, stack_account
from tests.webhook_receiver import Receiver

runner = CliRunner()

TEMPLATE = REPO / "infra" / "f5-worker.yaml"
REGION = "us-east-1"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))


# --- (a) drift, (b) cfn-lint ------------------------------------------------------------------------------------------
def test_committed_template_is_current() -> None:
    # Given the generator, when rendering the default spec, then the committed file is byte-identical.
    assert TEMPLATE.read_text(encoding="utf-8") == render_yaml(), "run: f5-worker infra"


def test_check_mode_reports_drift(tmp_path: Path) -> None:
    stale = tmp_path / "t.yaml"
    stale.write_text("old\n", encoding="utf-8")
    drift = runner.invoke(app, ["infra", "--check", "--output", str(stale)])
    assert drift.exit_code == 1 and f"fix: regenerate it: f5-worker infra --output {stale}" in drift.output
    assert runner.invoke(app, ["infra", "--output", str(stale)]).exit_code == 0
    assert stale.read_text(encoding="utf-8") == render_yaml()
    assert runner.invoke(app, ["infra", "-h"]).exit_code == 0
    # `python -m consumer.ops.infra` (infra/README.md, the template's header) is the same command
    module = [sys.executable, "-m", "consumer.ops.infra", "--check", "--output", str(stale)]
    assert subprocess.run(module, capture_output=True, timeout=60).returncode == 0


def test_cfn_lint_passes() -> None:
    pytest.importorskip("cfnlint", reason="cfn-lint is a dev dependency")
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())", str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- (c) what moto ignores, checked on the parsed template --------------------------------------------------------
def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_bucket_is_private_encrypted_and_expires(template: dict[str, Any]) -> None:
    (bucket,) = _resources(template, "AWS::S3::Bucket").values()
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    (sse,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    rules = {r["Prefix"]: r for r in props["LifecycleConfiguration"]["Rules"] if "Prefix" in r}
    assert rules["outputs/"]["ExpirationInDays"] == {"Ref": "OutputExpirationDays"}
    assert rules["jobs/"]["ExpirationInDays"] == {"Ref": "JobRecordExpirationDays"}
    assert all(r["Status"] == "Enabled" for r in rules.values())
    assert bucket["DeletionPolicy"] == "Retain"
    # Job records must outlive every redelivery of their message (queue retention, then DLQ retention).
    spec = ResourceSpec()
    job_record_s = template["Parameters"]["JobRecordExpirationDays"]["Default"] * 86400
    assert job_record_s > spec.retention_s + spec.dlq_retention_s


def test_queues_follow_the_spec(template: dict[str, Any]) -> None:
    spec = ResourceSpec()
    queues = template["Resources"]
    requests, dlq = queues["RequestQueue"]["Properties"], queues["DeadLetterQueue"]["Properties"]
    assert requests["RedrivePolicy"]["maxReceiveCount"] == spec.max_receive_count
    assert requests["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert requests["MaximumMessageSize"] == dlq["MaximumMessageSize"] == spec.max_message_size
    assert requests["VisibilityTimeout"] == spec.visibility_timeout_s
    assert dlq["MessageRetentionPeriod"] > requests["MessageRetentionPeriod"]
    fifo_names = requests["QueueName"]["Fn::If"]
    assert fifo_names[0] == "IsFifo" and fifo_names[1]["Fn::Sub"].endswith(".fifo")
    # The events queue gets raw delivery and lets only our topic send to it (moto ignores both resources).
    sub = queues["EventsSubscription"]["Properties"]
    assert sub["RawMessageDelivery"] is True and sub["Protocol"] == "sqs"
    (statement,) = queues["EventsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Ref": "EventsTopic"}


def _name(node: Any) -> str:
    """A policy resource in a readable form: GetAtt X.Arn → X, Ref X → X, Sub '${AudioBucket.Arn}/jobs/*' → its text."""
    if isinstance(node, dict) and "Fn::GetAtt" in node:
        return node["Fn::GetAtt"][0]
    if isinstance(node, dict) and "Ref" in node:
        return node["Ref"]
    if isinstance(node, dict) and "Fn::Sub" in node:
        return node["Fn::Sub"].replace("${AudioBucket.Arn}", "AudioBucket")
    return str(node)


def _grants(policy: dict[str, Any]) -> set[tuple[str, str]]:
    """(action, resource) pairs an IAM policy allows; a conditional statement's resource carries its condition."""
    grants = set()
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
        if "Fn::If" in statement:  # optional statement (events queue): check the statement it adds
            statement = statement["Fn::If"][1]
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement and "NotResource" not in statement
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        condition = json.dumps(statement.get("Condition", {}), sort_keys=True) if "Condition" in statement else ""
        for action in actions:
            for resource in resources:
                grants.add((action, _name(resource) + (f" if {condition}" if condition else "")))
    return grants


def test_policies_are_least_privilege(template: dict[str, Any]) -> None:
    policies = _resources(template, "AWS::IAM::ManagedPolicy")
    for policy in policies.values():
        for action, resource in _grants(policy):
            assert "*" not in action, action
            assert resource not in ("*", "AudioBucket/*"), resource
    prefixes = json.dumps(
        {"StringLike": {"s3:prefix": ["jobs/*", "outputs/*", "voices/*", "workers/*", "streams/*"]}}, sort_keys=True
    )
    assert _grants(policies["WorkerPolicy"]) == {
        ("sqs:ReceiveMessage", "RequestQueue"),
        ("sqs:DeleteMessage", "RequestQueue"),
        ("sqs:ChangeMessageVisibility", "RequestQueue"),
        ("sqs:GetQueueAttributes", "RequestQueue"),
        ("sqs:SendMessage", "RequestQueue"),
        ("s3:GetObject", "AudioBucket/jobs/*"),
        ("s3:PutObject", "AudioBucket/jobs/*"),
        ("s3:GetObject", "AudioBucket/outputs/*"),
        ("s3:PutObject", "AudioBucket/outputs/*"),
        ("s3:GetObject", "AudioBucket/voices/*"),
        ("s3:PutObject", "AudioBucket/jobs-index/*"),
        ("s3:GetObject", "AudioBucket/workers/*"),
        ("s3:PutObject", "AudioBucket/workers/*"),
        ("s3:PutObject", "AudioBucket/streams/*"),
        ("s3:DeleteObject", "AudioBucket/streams/*"),
        ("s3:ListBucket", f"AudioBucket if {prefixes}"),
        ("sns:Publish", "EventsTopic"),
        ("dynamodb:GetItem", "JobsTable"),
        ("dynamodb:PutItem", "JobsTable"),
        ("cloudwatch:PutMetricData", '* if {"StringEquals": {"cloudwatch:namespace": "F5Worker"}}'),
    }
    producer_prefixes = json.dumps(
        {
            "StringLike": {
                "s3:prefix": ["outputs/*", "voices/*", "jobs-index/*", "workers/*", "api-jobs/*", "streams/*"]
            }
        },
        sort_keys=True,
    )
    assert _grants(policies["ProducerPolicy"]) == {
        ("sqs:SendMessage", "RequestQueue"),
        ("sqs:GetQueueAttributes", "RequestQueue"),
        ("s3:GetObject", "AudioBucket/outputs/*"),
        ("s3:GetObject", "AudioBucket/jobs/*"),
        ("s3:PutObject", "AudioBucket/jobs/*"),
        ("dynamodb:GetItem", "JobsTable"),
        ("dynamodb:PutItem", "JobsTable"),
        ("s3:GetObject", "AudioBucket/jobs-index/*"),
        ("s3:GetObject", "AudioBucket/workers/*"),
        ("s3:GetObject", "AudioBucket/api-jobs/*"),
        ("s3:PutObject", "AudioBucket/api-jobs/*"),
        ("s3:GetObject", "AudioBucket/streams/*"),
        ("s3:GetObject", "AudioBucket/voices/*"),
        ("s3:PutObject", "AudioBucket/voices/*"),
        ("s3:DeleteObject", "AudioBucket/voices/*"),
        ("s3:ListBucket", f"AudioBucket if {producer_prefixes}"),
        ("sqs:ReceiveMessage", "EventsQueue"),
        ("sqs:DeleteMessage", "EventsQueue"),
    }


def test_rendering_follows_the_spec() -> None:
    spec = ResourceSpec(name="x", max_receive_count=9, visibility_timeout_s=300, fifo=True, events_queue=False)
    template = render_cloudformation(spec)
    requests = template["Resources"]["RequestQueue"]["Properties"]
    assert requests["RedrivePolicy"]["maxReceiveCount"] == 9
    assert requests["VisibilityTimeout"] == 300
    assert template["Parameters"]["Fifo"]["Default"] == "true"
    assert template["Parameters"]["CreateEventsQueue"]["Default"] == "false"


# --- (d) deploy on moto's CloudFormation and run a job on the stack (the policy checker: tests/unit/ops/iam_check.py)
@pytest.fixture
def cfn(aws_endpoint: str) -> Iterator[Any]:
    client = boto3.client("cloudformation", endpoint_url=aws_endpoint, region_name=REGION)
    if os.environ.get("F5_WORKER_TEST_LOCALSTACK_URL"):
        try:
            client.list_stacks()
        except ClientError as exc:
            pytest.skip(f"this LocalStack has no CloudFormation ({exc})")
    yield client


def _deploy(cfn: Any, **parameters: str) -> dict[str, str]:
    stack = f"f5w-{uuid.uuid4().hex[:10]}"
    cfn.create_stack(
        StackName=stack,
        TemplateBody=TEMPLATE.read_text(encoding="utf-8"),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    cfn.get_waiter("stack_create_complete").wait(StackName=stack, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}


def test_stack_runs_a_job_within_its_policies(aws_endpoint: str, cfn: Any) -> None:
    # Given a stack created from the committed template,
    name = f"c{uuid.uuid4().hex[:10]}"
    outputs = _deploy(cfn, Name=name)
    spec = ResourceSpec(name=name, bucket=outputs["BucketName"])
    assert outputs["QueueUrl"].endswith("/" + spec.queue_name)
    assert outputs["DlqUrl"].endswith("/" + spec.dlq_name)
    assert outputs["TopicArn"].endswith(":" + spec.topic_name)
    admin = make_clients(Settings(aws_endpoint_url=aws_endpoint))
    # bootstrap() over the stack is a no-op for the queues (SQS refuses a CreateQueue whose attributes differ from
    # the existing queue's), and applies what moto's CloudFormation ignores: the raw subscription and the bucket's
    # public access block.
    created = bootstrap(admin, spec, REGION)
    assert created.topic_arn == outputs["TopicArn"]
    assert created.events_queue_url is not None and created.events_queue_url.endswith("/" + spec.events_queue_name)

    # and a producer that adds a voice and sends a request,
    producer_log, worker_log = CallLog(), CallLog()
    base = {"aws_endpoint_url": aws_endpoint, "wait_time_s": 1}
    producer = producer_log.attach(make_clients(Settings(**base)))
    voices = VoiceLibrary(producer.s3, outputs["BucketName"])
    voices.add_example("basic-en")
    assert [v["voice_id"] for v in voices.list()] == ["basic-en"]  # ListBucket under voices/
    receiver = Receiver(status=503)  # a webhook that is down: the worker queues a delivery retry
    request = {
        "job_id": "cfn-1",
        "text": "hello",
        "voice": {"voice_id": "basic-en"},
        "notify": {"webhook_url": receiver.url},
    }
    producer.sqs.send_message(QueueUrl=outputs["QueueUrl"], MessageBody=json.dumps(request))

    # when the worker runs on the stack's resources,
    settings = Settings(
        **base,
        engine="fake",
        burst=True,
        queue_url=outputs["QueueUrl"],
        bucket=outputs["BucketName"],
        topic_arn=outputs["TopicArn"],
        webhook_allow_private=True,
        webhook_inline_attempts=1,
    )
    worker_clients = worker_log.attach(make_clients(settings))
    try:
        assert Worker(build_services(settings, FakeEngine(), clients=worker_clients)).run() == 0
    finally:
        receiver.close()
    assert receiver.requests, "the webhook was tried"

    # then the audio is in S3, the queue is empty and the producer gets the completion event,
    head = producer.s3.head_object(Bucket=outputs["BucketName"], Key="outputs/cfn-1.wav")
    assert head["ContentLength"] > 44
    attrs = admin.sqs.get_queue_attributes(
        QueueUrl=outputs["QueueUrl"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attrs == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
    received = producer.sqs.receive_message(QueueUrl=outputs["EventsQueueUrl"], WaitTimeSeconds=2)["Messages"]
    event = parse_event(received[0]["Body"])
    assert isinstance(event, SynthesisCompleted) and event.job_id == "cfn-1"
    producer.sqs.delete_message(QueueUrl=outputs["EventsQueueUrl"], ReceiptHandle=received[0]["ReceiptHandle"])

    # and every call each of them made is allowed by the IAM policy the stack created for it.
    worker_ops = {op for _, op, _ in worker_log.calls}
    assert {"ReceiveMessage", "PutObject", "Publish", "DeleteMessageBatch", "SendMessage"} <= worker_ops
    client = Client(producer, outputs["QueueUrl"], outputs["BucketName"])
    assert client.result("cfn-1") == event  # jobs/ readable
    since = datetime.now(UTC) - timedelta(minutes=5)
    assert [(e.job_id, e.status) for e in client.recent(since)] == [("cfn-1", "COMPLETED")]  # the index
    assert client.cancel("cfn-1", by="test") == CancelResult.FINISHED
    assert client.cancel("cfn-never-sent", by="test") == CancelResult.QUEUED  # a conditional PutObject
    assert {"ListObjectsV2", "SendMessage", "ReceiveMessage", "GetObject"} <= {op for _, op, _ in producer_log.calls}
    account = stack_account(outputs)
    assert denied(worker_log, policy_document(aws_endpoint, outputs["WorkerPolicyArn"]), account) == []
    assert denied(producer_log, policy_document(aws_endpoint, outputs["ProducerPolicyArn"]), account) == []


def test_policy_check_catches_a_missing_grant(aws_endpoint: str, cfn: Any) -> None:
    # The checker above is only worth something if it can fail: the producer may not consume requests,
    outputs = _deploy(cfn, Name=f"c{uuid.uuid4().hex[:10]}")
    document = policy_document(aws_endpoint, outputs["ProducerPolicyArn"])
    log = CallLog()
    log.calls.append(("sqs", "ReceiveMessage", {"QueueUrl": outputs["QueueUrl"]}))
    log.calls.append(("s3", "PutObject", {"Bucket": outputs["BucketName"], "Key": "outputs/x.wav"}))
    log.calls.append(("s3", "PutObject", {"Bucket": outputs["BucketName"], "Key": "voices/v/reference.wav"}))
    assert len(denied(log, document)) == 2
    # and the worker may read and write its table's items, not delete them, nor touch another table.
    worker = policy_document(aws_endpoint, outputs["WorkerPolicyArn"])
    account, table = stack_account(outputs), outputs["JobsTableName"]
    log = CallLog()
    log.calls.append(("dynamodb", "GetItem", {"TableName": table}))
    log.calls.append(("dynamodb", "PutItem", {"TableName": table}))
    assert denied(log, worker, account) == []
    log.calls.append(("dynamodb", "DeleteItem", {"TableName": table}))
    log.calls.append(("dynamodb", "PutItem", {"TableName": table + "-other"}))
    assert len(denied(log, worker, account)) == 2


def test_fifo_variant_deploys(aws_endpoint: str, cfn: Any) -> None:
    outputs = _deploy(cfn, Name=f"c{uuid.uuid4().hex[:10]}", Fifo="true")
    sqs = boto3.client("sqs", endpoint_url=aws_endpoint, region_name=REGION)
    attrs = sqs.get_queue_attributes(QueueUrl=outputs["QueueUrl"], AttributeNames=["All"])["Attributes"]
    assert outputs["QueueUrl"].endswith("-requests.fifo") and outputs["DlqUrl"].endswith("-requests-dlq.fifo")
    assert attrs["FifoQueue"] == "true" and attrs["ContentBasedDeduplication"] == "false"
    assert json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"].endswith("-requests-dlq.fifo")
    # (CreateEventsQueue=false is left to cfn-lint: moto keeps AWS::NoValue inside a Statement list as null and
    # rejects the policy, where CloudFormation drops the element.)


# --- local emulators: consumer.ops.init and the LocalStack init hook --------------------------------------------
REPO = TEMPLATE.parent.parent
HOOK = REPO / "localstack" / "init" / "ready.d" / "10-f5-worker.sh"


def _env(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def _assert_resources(aws_endpoint: str, env: dict[str, str], name: str) -> None:
    admin = make_clients(Settings(aws_endpoint_url=aws_endpoint))
    assert env["F5_WORKER_QUEUE_URL"].endswith(f"/{name}-requests")
    assert env["F5_WORKER_BUCKET"] == f"{name}-audio"
    redrive = admin.sqs.get_queue_attributes(QueueUrl=env["F5_WORKER_QUEUE_URL"], AttributeNames=["RedrivePolicy"])
    assert json.loads(redrive["Attributes"]["RedrivePolicy"])["maxReceiveCount"] == ResourceSpec().max_receive_count
    subscriptions = admin.sns.list_subscriptions_by_topic(TopicArn=env["F5_WORKER_TOPIC_ARN"])["Subscriptions"]
    assert [s["Protocol"] for s in subscriptions] == ["sqs"]
    admin.s3.head_bucket(Bucket=env["F5_WORKER_BUCKET"])


def test_init_resources_prints_a_working_env(aws_endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    from consumer.ops.init import init_main

    name = f"i{uuid.uuid4().hex[:10]}"
    assert init_main(["--endpoint-url", aws_endpoint, "--name", name]) == 0
    first = capsys.readouterr()
    env = _env(first.out)
    assert env["F5_WORKER_AWS_ENDPOINT_URL"] == aws_endpoint
    _assert_resources(aws_endpoint, env, name)
    assert "voice basic-en added" in first.err
    library = VoiceLibrary(make_clients(Settings(aws_endpoint_url=aws_endpoint)).s3, env["F5_WORKER_BUCKET"])
    example = library.show("basic-en")
    assert example is not None and example["transcript_source"] == "given"
    # Idempotent: a second run finds the same resources (and subscribes nothing twice) and keeps the voice.
    assert init_main(["--endpoint-url", aws_endpoint, "--name", name]) == 0
    second = capsys.readouterr()
    assert second.out == first.out and "voice basic-en is in the library" in second.err
    assert library.show("basic-en") == example
    _assert_resources(aws_endpoint, env, name)


def test_init_resources_fails_clearly_without_aws(capsys: pytest.CaptureFixture[str]) -> None:
    from consumer.ops.init import init_main

    assert init_main(["--endpoint-url", "http://127.0.0.1:9", "--name", "x"]) == 2
    err = capsys.readouterr().err
    assert "could not create the resources: cannot reach http://127.0.0.1:9" in err and "fix:" in err
    assert len(err.strip().splitlines()) == 2


def test_localstack_hook_creates_the_resources(aws_endpoint: str) -> None:
    # The hook as LocalStack runs it (an executable, no arguments), in host mode: the repository's Python.
    assert os.access(HOOK, os.X_OK)
    name = f"h{uuid.uuid4().hex[:10]}"
    env = os.environ | {
        "F5_WORKER_SRC": str(REPO),
        "F5_WORKER_INIT_PYTHON": sys.executable,
        "F5_WORKER_INIT_ENDPOINT": aws_endpoint,
        "F5_WORKER_RESOURCE_NAME": name,
    }
    result = subprocess.run([str(HOOK)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    _assert_resources(aws_endpoint, _env(result.stdout), name)


def test_localstack_compose_is_pinned_and_mounts_the_hook() -> None:
    compose = yaml.safe_load((REPO / "localstack" / "docker-compose.yml").read_text(encoding="utf-8"))
    service = compose["services"]["localstack"]
    assert service["image"] == "localstack/localstack:4.14.0"
    assert service["environment"]["SERVICES"] == "sqs,sns,s3"
    assert "./init/ready.d:/etc/localstack/init/ready.d:ro" in service["volumes"]
    assert "../consumer:/opt/f5-worker/consumer:ro" in service["volumes"]
    assert "../contracts:/opt/f5-worker/contracts:ro" in service["volumes"]
    assert all(port.startswith("127.0.0.1:") for port in service["ports"])
