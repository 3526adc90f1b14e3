"""CloudWatch alarms and a dashboard in the template, for fleets nobody scrapes with Prometheus (most RunPod pods).

The queue's own metrics (AWS/SQS) need nothing from the workers: the DLQ is not empty; the oldest message is older
than the objective. With the workers' optional metrics (`F5_WORKER_CLOUDWATCH_METRICS`, namespace `F5Worker`,
dimension `Queue`): one error code or all failures over 5 % of jobs, and no job done while messages wait. The alarms
notify `AlarmEmail` when it is set (an SNS topic with an email subscription)."""

from __future__ import annotations

import json
from typing import Any

from consumer.ops.cfn import NO_VALUE, if_, not_empty, ref, sub

NAMESPACE = "F5Worker"  # consumer.core.settings: cloudwatch_namespace's default
FAILURE_SHARE = 0.05
MIN_FINISHED = 20  # jobs in the window before a failure share means anything


def parameters() -> dict[str, Any]:
    return {
        "AlarmEmail": {"Type": "String", "Default": "", "Description": "Email the alarms notify (empty: none)."},
        "OldestMessageObjectiveS": {
            "Type": "Number",
            "Default": 600,
            "MinValue": 60,
            "Description": "Alarm when the oldest request has waited longer (seconds).",
        },
    }


def conditions() -> dict[str, Any]:
    return {"HasAlarmEmail": not_empty("AlarmEmail")}


def _queue(logical_id: str) -> dict[str, Any]:
    return {"Name": "QueueName", "Value": {"Fn::GetAtt": [logical_id, "QueueName"]}}


def _alarm(description: str, **properties: Any) -> dict[str, Any]:
    actions = if_("HasAlarmEmail", [ref("AlarmTopic")], NO_VALUE)
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": description,
            "ActionsEnabled": True,
            "AlarmActions": actions,
            "OKActions": actions,
            **properties,
        },
    }


def _worker_metric(metric_id: str, name: str, label: str) -> dict[str, Any]:
    return {
        "Id": metric_id,
        "Label": label,
        "ReturnData": False,
        "MetricStat": {
            "Metric": {
                "Namespace": NAMESPACE,
                "MetricName": name,
                "Dimensions": [{"Name": "Queue", "Value": {"Fn::GetAtt": ["RequestQueue", "QueueName"]}}],
            },
            "Period": 300,
            "Stat": "Sum",
        },
    }


def resources() -> dict[str, Any]:
    return {
        "AlarmTopic": {"Type": "AWS::SNS::Topic", "Condition": "HasAlarmEmail", "Properties": {}},
        "AlarmEmailSubscription": {
            "Type": "AWS::SNS::Subscription",
            "Condition": "HasAlarmEmail",
            "Properties": {"TopicArn": ref("AlarmTopic"), "Protocol": "email", "Endpoint": ref("AlarmEmail")},
        },
        "DeadLettersAlarm": _alarm(
            "Requests are in the dead-letter queue: `f5-worker dlq list` says why (docs/troubleshooting.md)",
            Namespace="AWS/SQS",
            MetricName="ApproximateNumberOfMessagesVisible",
            Dimensions=[_queue("DeadLetterQueue")],
            Statistic="Maximum",
            Period=300,
            EvaluationPeriods=1,
            Threshold=0,
            ComparisonOperator="GreaterThanThreshold",
            TreatMissingData="notBreaching",
        ),
        "OldestMessageAlarm": _alarm(
            "The oldest request waits longer than the objective: too few workers (docs/scaling.md), or none polling",
            Namespace="AWS/SQS",
            MetricName="ApproximateAgeOfOldestMessage",
            Dimensions=[_queue("RequestQueue")],
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=5,
            Threshold=ref("OldestMessageObjectiveS"),
            ComparisonOperator="GreaterThanThreshold",
            TreatMissingData="notBreaching",
        ),
        "FailureRateAlarm": _alarm(
            f"More than {FAILURE_SHARE:.0%} of jobs failed over 15 minutes (workers' CloudWatch metrics): the "
            "JobsFailed ErrorCode dimension names the code (docs/errors.md)",
            Metrics=[
                _worker_metric("done", "JobsCompleted", "completed"),
                _worker_metric("failed", "JobsFailed", "failed"),
                {
                    "Id": "share",
                    "Label": "failed share (0 below the minimum of finished jobs)",
                    "Expression": f"IF((done + failed) >= {MIN_FINISHED}, failed / (done + failed), 0)",
                    "ReturnData": True,
                },
            ],
            EvaluationPeriods=3,
            Threshold=FAILURE_SHARE,
            ComparisonOperator="GreaterThanThreshold",
            TreatMissingData="notBreaching",
        ),
        "NoWorkWithBacklogAlarm": _alarm(
            "Requests wait but no job was done for 15 minutes: no worker, or every worker stuck "
            "(docs/troubleshooting.md)",
            Metrics=[
                _worker_metric("done", "JobsCompleted", "completed"),
                {
                    "Id": "waiting",
                    "ReturnData": False,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/SQS",
                            "MetricName": "ApproximateNumberOfMessagesVisible",
                            "Dimensions": [_queue("RequestQueue")],
                        },
                        "Period": 300,
                        "Stat": "Minimum",
                    },
                },
                {
                    "Id": "stalled",
                    "Label": "messages waited and nothing was done",
                    "Expression": "IF(waiting > 0 AND FILL(done, 0) == 0, 1, 0)",
                    "ReturnData": True,
                },
            ],
            EvaluationPeriods=3,
            Threshold=0,
            ComparisonOperator="GreaterThanThreshold",
            TreatMissingData="notBreaching",
        ),
        "Dashboard": {
            "Type": "AWS::CloudWatch::Dashboard",
            "Properties": {"DashboardName": sub("${Name}-${AWS::Region}"), "DashboardBody": _dashboard_body()},
        },
    }


def _dashboard_body() -> dict[str, Any]:
    """The dashboard's JSON with the queue names and region substituted by CloudFormation."""

    def widget(title: str, metrics: list[list[Any]], x: int, y: int, stat: str = "Sum") -> dict[str, Any]:
        return {
            "type": "metric",
            "x": x,
            "y": y,
            "width": 12,
            "height": 6,
            "properties": {"title": title, "region": "${AWS::Region}", "stat": stat, "period": 60, "metrics": metrics},
        }

    q, dlq = "${RequestQueue.QueueName}", "${DeadLetterQueue.QueueName}"
    body = {
        "widgets": [
            widget(
                "Queue depth",
                [
                    ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", q, {"label": "waiting"}],
                    [".", "ApproximateNumberOfMessagesNotVisible", ".", ".", {"label": "in flight"}],
                ],
                0,
                0,
                "Maximum",
            ),
            widget(
                "Oldest request (s)", [["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", q]], 12, 0, "Maximum"
            ),
            widget(
                "Dead-letter queue",
                [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", dlq]],
                0,
                6,
                "Maximum",
            ),
            widget(
                "Jobs completed and failed",
                [[NAMESPACE, "JobsCompleted", "Queue", q], [".", "JobsFailed", ".", "."]],
                12,
                6,
            ),
            widget("Real-time factor", [[NAMESPACE, "RealTimeFactor", "Queue", q]], 0, 12, "Average"),
            widget("Queue wait (s)", [[NAMESPACE, "QueueWaitSeconds", "Queue", q]], 12, 12, "Average"),
        ]
    }
    return sub(json.dumps(body))


def outputs() -> dict[str, Any]:
    return {
        "DashboardUrl": {
            "Description": "The fleet's CloudWatch dashboard",
            "Value": sub("https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home#dashboards:name=${Dashboard}"),
        },
        "AlarmTopicArn": {
            "Condition": "HasAlarmEmail",
            "Description": "Alarms notify this topic",
            "Value": ref("AlarmTopic"),
        },
    }
