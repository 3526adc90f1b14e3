"""What the template adds for a fleet: the job records' DynamoDB table (cheaper per write than S3 objects), and an
IAM user for workers outside AWS (RunPod pods cannot assume a role), its key kept in Secrets Manager.

The table is what `bootstrap()` creates with `ResourceSpec(jobs_table=True)`: on demand, key `job_id`, TTL on
`expires_at`. The user is optional (`CreateFleetUser`); its access key rotates by changing `FleetKeySerial`
(CloudFormation makes a new key and deletes the old one: roll the pods in between, infra/README.md)."""

from __future__ import annotations

from typing import Any

from consumer.aws.resources import PARTITION_KEY, TTL_ATTRIBUTE
from consumer.ops.cfn import arn, ref, sub

WORKER_TABLE_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem"]  # read a record, conditional writes
PRODUCER_TABLE_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem"]  # `jobs show`, `jobs cancel` (conditional)


def parameters() -> dict[str, Any]:
    return {
        "CreateFleetUser": {
            "Type": "String",
            "Default": "false",
            "AllowedValues": ["false", "true"],
            "Description": "Create an IAM user with the worker policy for workers outside AWS (RunPod); its key "
            "goes to Secrets Manager.",
        },
        "FleetKeySerial": {
            "Type": "Number",
            "Default": 1,
            "MinValue": 1,
            "Description": "Change to rotate the fleet user's access key (a new key, the old one deleted).",
        },
    }


def conditions() -> dict[str, Any]:
    return {"HasFleetUser": {"Fn::Equals": [ref("CreateFleetUser"), "true"]}}


def table_statement(sid: str, actions: list[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": arn("JobsTable")}


def resources() -> dict[str, Any]:
    return {
        "JobsTable": {
            "Type": "AWS::DynamoDB::Table",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "TableName": sub("${Name}-jobs"),
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": PARTITION_KEY, "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}],
                "TimeToLiveSpecification": {"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                "SSESpecification": {"SSEEnabled": True},
            },
        },
        "FleetUser": {
            "Type": "AWS::IAM::User",
            "Condition": "HasFleetUser",
            "Properties": {"ManagedPolicyArns": [ref("WorkerPolicy")]},
        },
        "FleetUserKey": {
            "Type": "AWS::IAM::AccessKey",
            "Condition": "HasFleetUser",
            "Properties": {"UserName": ref("FleetUser"), "Serial": ref("FleetKeySerial")},
        },
        "FleetUserSecret": {
            "Type": "AWS::SecretsManager::Secret",
            "Condition": "HasFleetUser",
            "Properties": {
                "Description": "The fleet user's access key: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                "SecretString": sub(
                    '{"AWS_ACCESS_KEY_ID": "${FleetUserKey}", '
                    '"AWS_SECRET_ACCESS_KEY": "${FleetUserKey.SecretAccessKey}"}'
                ),
            },
        },
    }


def outputs() -> dict[str, Any]:
    return {
        "JobsTableName": {"Description": "F5_WORKER_JOBS_TABLE", "Value": ref("JobsTable")},
        "FleetUserAccessKeyId": {
            "Condition": "HasFleetUser",
            "Description": "AWS_ACCESS_KEY_ID of the fleet user (its secret: FleetUserSecretArn)",
            "Value": ref("FleetUserKey"),
        },
        "FleetUserSecretArn": {
            "Condition": "HasFleetUser",
            "Description": "aws secretsmanager get-secret-value --secret-id <this>: the fleet user's key",
            "Value": ref("FleetUserSecret"),
        },
    }
