"""The template's fleet parts (`consumer/ops/infra_fleet.py`, `consumer/ops/infra_monitoring.py`), deployed on the
embedded AWS's CloudFormation: the job records' table a worker runs on, the optional fleet user with its key in
Secrets Manager, and the alarms and dashboard on the metrics the queue and the workers really publish."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import boto3
import pytest

from consumer.aws.clients import make_clients
from consumer.aws.resources import ResourceSpec, bootstrap
from consumer.core.settings import Settings
from consumer.engine.fake import FakeEngine
from consumer.ops.infra import render_cloudformation
from consumer.producer.client import Client
from consumer.producer.voice_library import VoiceLibrary
from consumer.storage.jobs import CancelResult, JobStore
from consumer.storage.record_backends import records_for
from consumer.worker.loop import Worker
from consumer.worker.services import build_services
from tests.paths import REPO
from tests.unit.ops.iam_check import CallLog, denied, policy_document, stack_account

REGION = "us-east-1"
TEMPLATE = REPO / "infra" / "f5-worker.yaml"


def _deploy(endpoint: str, **parameters: str) -> dict[str, str]:
    cfn = boto3.client("cloudformation", endpoint_url=endpoint, region_name=REGION)
    stack = f"f5f-{uuid.uuid4().hex[:10]}"
    cfn.create_stack(
        StackName=stack,
        TemplateBody=TEMPLATE.read_text(encoding="utf-8"),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    cfn.get_waiter("stack_create_complete").wait(StackName=stack, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    return {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName=stack)["Stacks"][0]["Outputs"]}


@pytest.fixture
def template() -> dict[str, Any]:
    return render_cloudformation()


def test_a_worker_runs_a_job_on_the_stacks_table(aws_endpoint: str):
    name = f"t{uuid.uuid4().hex[:10]}"
    outputs = _deploy(aws_endpoint, Name=name)
    assert outputs["JobsTableName"] == f"{name}-jobs"
    admin = make_clients(Settings(aws_endpoint_url=aws_endpoint))
    table = admin.dynamodb.describe_table(TableName=outputs["JobsTableName"])["Table"]
    assert table["KeySchema"] == [{"AttributeName": "job_id", "KeyType": "HASH"}]
    # (moto's CloudFormation leaves TTL off; the template asks for it: test below)
    bootstrap(admin, ResourceSpec(name=name, bucket=outputs["BucketName"]), REGION)  # the raw subscription
    VoiceLibrary(admin.s3, outputs["BucketName"]).add_example("basic-en")
    admin.sqs.send_message(
        QueueUrl=outputs["QueueUrl"],
        MessageBody=json.dumps({"job_id": "tbl-1", "text": "Hello.", "voice": {"voice_id": "basic-en"}}),
    )
    settings = Settings(
        aws_endpoint_url=aws_endpoint,
        wait_time_s=1,
        engine="fake",
        burst=True,
        queue_url=outputs["QueueUrl"],
        bucket=outputs["BucketName"],
        topic_arn=outputs["TopicArn"],
        jobs_table=outputs["JobsTableName"],
    )
    worker_log, producer_log = CallLog(), CallLog()
    assert Worker(build_services(settings, FakeEngine(), clients=worker_log.attach(make_clients(settings)))).run() == 0
    record, _ = JobStore(admin.s3, outputs["BucketName"], "jobs", records=records_for(admin, settings)).read("tbl-1")
    assert record is not None and record.status == "COMPLETED"
    assert admin.s3.list_objects_v2(Bucket=outputs["BucketName"], Prefix="jobs/").get("KeyCount", 0) == 0
    # A producer on the table reads the outcome and cancels (a conditional PutItem) a job not yet sent,
    producer = producer_log.attach(
        make_clients(Settings(aws_endpoint_url=aws_endpoint, jobs_table=settings.jobs_table))
    )
    client = Client(producer, outputs["QueueUrl"], outputs["BucketName"], records=records_for(producer, settings))
    result = client.result("tbl-1")
    assert result is not None and result.job_id == "tbl-1"
    assert client.cancel("tbl-never-sent", by="test") == CancelResult.QUEUED
    # and every call of both, DynamoDB's included, is allowed by the policy the stack created for it.
    assert "PutItem" in worker_log.operations("dynamodb")  # claim, then complete: conditional writes
    assert {"GetItem", "PutItem"} <= producer_log.operations("dynamodb")
    account = stack_account(outputs)
    assert denied(worker_log, policy_document(aws_endpoint, outputs["WorkerPolicyArn"]), account) == []
    assert denied(producer_log, policy_document(aws_endpoint, outputs["ProducerPolicyArn"]), account) == []


def test_the_fleet_user_exists_only_when_asked_and_its_key_is_in_secrets_manager(aws_endpoint: str, template):
    without = _deploy(aws_endpoint, Name=f"u{uuid.uuid4().hex[:10]}")
    assert "FleetUserAccessKeyId" not in without and "FleetUserSecretArn" not in without
    outputs = _deploy(aws_endpoint, Name=f"u{uuid.uuid4().hex[:10]}", CreateFleetUser="true")
    iam = boto3.client("iam", endpoint_url=aws_endpoint, region_name=REGION)
    key_id = outputs["FleetUserAccessKeyId"]
    (user_name,) = [
        u["UserName"]
        for u in iam.list_users()["Users"]
        if key_id in [k["AccessKeyId"] for k in iam.list_access_keys(UserName=u["UserName"])["AccessKeyMetadata"]]
    ]
    assert user_name  # the key belongs to the stack's user (moto's CloudFormation attaches no policy to it:
    # the template's ManagedPolicyArns is checked below)
    # the secret half goes to Secrets Manager only (moto's CloudFormation creates no secret: checked in the
    # template), never to an output, which anyone who can describe the stack reads
    secret = template["Resources"]["FleetUserSecret"]["Properties"]["SecretString"]["Fn::Sub"]
    assert json.loads(secret.replace("${FleetUserKey.SecretAccessKey}", "s").replace("${FleetUserKey}", "k")) == {
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
    }
    assert "SecretAccessKey" not in json.dumps(template["Outputs"])
    user = template["Resources"]["FleetUser"]
    assert user["Condition"] == "HasFleetUser" and user["Properties"]["ManagedPolicyArns"] == [{"Ref": "WorkerPolicy"}]
    assert template["Resources"]["FleetUserKey"]["Properties"]["Serial"] == {"Ref": "FleetKeySerial"}
    # Only with CreateFleetUser=true (default false): the user, its key, the secret and their outputs;
    assert template["Parameters"]["CreateFleetUser"]["Default"] == "false"
    assert template["Conditions"]["HasFleetUser"] == {"Fn::Equals": [{"Ref": "CreateFleetUser"}, "true"]}
    fleet = {k for k, v in template["Resources"].items() if v.get("Condition") == "HasFleetUser"}
    assert fleet == {"FleetUser", "FleetUserKey", "FleetUserSecret"}
    assert {k for k, v in template["Outputs"].items() if v.get("Condition") == "HasFleetUser"} == {
        "FleetUserAccessKeyId",
        "FleetUserSecretArn",
    }
    # an existing role still gets the worker policy, user or not.
    roles = template["Resources"]["WorkerPolicy"]["Properties"]["Roles"]
    assert roles == {"Fn::If": ["HasWorkerRoleName", [{"Ref": "WorkerRoleName"}], {"Ref": "AWS::NoValue"}]}


def test_the_table_is_on_demand_with_ttl_and_recovery(template):
    table = template["Resources"]["JobsTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert template["Resources"]["JobsTable"]["DeletionPolicy"] == "Retain"


def _metric_names(alarm: dict[str, Any]) -> set[str]:
    props = alarm["Properties"]
    names = {props["MetricName"]} if "MetricName" in props else set()
    return names | {m["MetricStat"]["Metric"]["MetricName"] for m in props.get("Metrics", []) if "MetricStat" in m}


def test_alarms_watch_the_metrics_sqs_and_the_workers_publish(template):
    resources = template["Resources"]
    alarms = {k: v for k, v in resources.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    assert set(alarms) == {"DeadLettersAlarm", "OldestMessageAlarm", "FailureRateAlarm", "NoWorkWithBacklogAlarm"}
    publisher = (REPO / "consumer" / "worker" / "cloudwatch_metrics.py").read_text()
    sqs_metrics = {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"}
    for name, alarm in alarms.items():
        for metric in _metric_names(alarm):
            assert metric in sqs_metrics or f'"{metric}"' in publisher, (name, metric)
        actions = alarm["Properties"]["AlarmActions"]
        assert actions == {"Fn::If": ["HasAlarmEmail", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]}
    body = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    widgets = json.loads(body)["widgets"]
    assert {w["properties"]["title"] for w in widgets} >= {"Queue depth", "Dead-letter queue", "Real-time factor"}
    for widget in widgets:
        for metric in widget["properties"]["metrics"]:
            name = metric[1]
            assert name in sqs_metrics | {"ApproximateNumberOfMessagesNotVisible"} or f'"{name}"' in publisher
    assert set(re.findall(r"\$\{([^}]+)\}", body)) == {
        "AWS::Region",
        "RequestQueue.QueueName",
        "DeadLetterQueue.QueueName",
    }
