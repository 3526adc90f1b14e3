"""Checks AWS calls against an IAM policy document: every call a worker or producer made through logged clients
(S3, SQS, SNS, DynamoDB), as the IAM action it is authorized by and the ARN it touches, against the statements of
the managed policy a deployed stack created (tests/unit/ops/test_infra.py, test_infra_fleet.py)."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import boto3

from consumer.aws.clients import AwsClients

REGION = "us-east-1"


class CallLog:
    """Every AWS API call made through some clients, as (service, operation, params)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def attach(self, clients: AwsClients) -> AwsClients:
        for client in (clients.sqs, clients.s3, clients.sns, clients.dynamodb):
            if client is not None:
                client.meta.events.register("provide-client-params", self._record)
        return clients

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.service_model.service_name, model.name, dict(params)))

    def operations(self, service: str | None = None) -> set[str]:
        return {op for s, op, _ in self.calls if service in (None, s)}


# The IAM action an API operation is authorized by, where the names differ.
IAM_ACTION = {
    "HeadObject": "GetObject",
    "ListObjectsV2": "ListBucket",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
    "DeleteMessageBatch": "DeleteMessage",
    "SendMessageBatch": "SendMessage",
}


def request_arn(service: str, params: dict[str, Any], account: str) -> str:
    if service == "s3":
        return f"arn:aws:s3:::{params['Bucket']}" + (f"/{params['Key']}" if "Key" in params else "")
    if service == "sqs":
        account, name = params["QueueUrl"].rstrip("/").split("/")[-2:]
        return f"arn:aws:sqs:{REGION}:{account}:{name}"
    if service == "dynamodb":
        return f"arn:aws:dynamodb:{REGION}:{account}:table/{params['TableName']}"
    return str(params["TopicArn"])


def allows(document: dict[str, Any], action: str, arn: str, params: dict[str, Any]) -> bool:
    for statement in document["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions):
            continue
        if not any(fnmatch.fnmatchcase(arn, r) for r in resources):
            continue
        condition = statement.get("Condition")
        if condition:  # the only condition used: StringLike on s3:prefix (ListBucket)
            patterns = condition.get("StringLike", {}).get("s3:prefix", [])
            if not any(fnmatch.fnmatchcase(params.get("Prefix", ""), p) for p in patterns):
                continue
        if statement["Effect"] == "Allow":
            return True
    return False


def denied(log: CallLog, document: dict[str, Any], account: str = "123456789012") -> list[str]:
    """The calls in `log` that `document` does not allow, as 'action on arn' ('account': the stack's, for the
    ARNs a request does not carry, e.g. a DynamoDB table's)."""
    out = []
    for service, operation, params in log.calls:
        action = f"{service}:{IAM_ACTION.get(operation, operation)}"
        arn = request_arn(service, params, account)
        if not allows(document, action, arn, params):
            out.append(f"{action} on {arn}")
    return out


def policy_document(aws_endpoint: str, arn: str) -> dict[str, Any]:
    iam = boto3.client("iam", endpoint_url=aws_endpoint, region_name=REGION)
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    return json.loads(document) if isinstance(document, str) else document


def stack_account(outputs: dict[str, str]) -> str:
    """The stack's account, from its queue URL (https://.../<account>/<name>)."""
    return outputs["QueueUrl"].rstrip("/").split("/")[-2]
