"""The retry policies: what each retries, how often, how long it waits, one layer per AWS call, and the docs table."""

from __future__ import annotations

import re

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, EndpointConnectionError

from consumer.aws.clients import make_clients
from consumer.aws.retry import (
    AWS_CALL,
    AWS_THROTTLED,
    DELIVERY_TASK,
    EVENT_PUBLISH,
    QUEUE_BACKOFF,
    QUEUE_POLL,
    WEBHOOK_INLINE,
    Backoff,
    delivery_task_delay_s,
    queue_backoff_s,
    render_table,
)
from consumer.core.settings import Settings
from tests.aws_faults import _Body
from tests.paths import REPO


def _throttled() -> ClientError:
    return ClientError({"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "PutObject")


def _denied() -> ClientError:
    return ClientError({"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutObject")


def test_waits_stay_under_their_ceiling_and_jitter_as_declared():
    full = Backoff("X", "x", tries=5, base_s=1.0, max_s=4.0)
    assert [full.ceiling_s(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 4.0]
    assert all(0 <= full.delay_s(3) <= 4.0 for _ in range(200))
    assert {WEBHOOK_INLINE.delay_s(n) for n in (1, 2, 3)} == {0.5, 1.0, 2.0}  # no jitter: as before the module
    upper = [QUEUE_BACKOFF.delay_s(2) for _ in range(200)]
    assert min(upper) >= 5.0 and max(upper) <= 10.0
    assert full.waits_s() == 1 + 2 + 4 + 4


def test_retrying_tries_again_on_what_it_is_told_to_and_gives_up_after_its_tries():
    waits: list[float] = []
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _throttled()
        return "ok"

    policy = Backoff("X", "x", tries=3, base_s=1.0, max_s=1.5, jitter="none")
    assert policy.retrying(lambda e: True, sleep=waits.append)(flaky) == "ok"
    assert len(calls) == 3 and waits == [1.0, 1.5]  # its own waits, through the sleep it was given
    calls.clear()

    def always() -> str:
        calls.append(1)
        raise _throttled()

    with pytest.raises(ClientError):  # the last exception itself, not tenacity's RetryError
        Backoff("X", "x", tries=2, base_s=0.01, max_s=0.01).retrying(lambda e: True, sleep=waits.append)(always)
    assert len(calls) == 2
    calls.clear()
    with pytest.raises(ClientError):  # not retried: an answer, not a fault
        EVENT_PUBLISH.retrying(lambda e: False, sleep=waits.append)(always)
    assert len(calls) == 1


def test_retrying_on_a_result_hands_back_the_last_one():
    results = iter(["failed", "failed", "failed", "delivered"])
    tries = 0

    def post() -> str:
        nonlocal tries
        tries += 1
        return next(results)

    waits: list[float] = []
    got = WEBHOOK_INLINE.retrying(retry_result=lambda r: r == "failed", sleep=waits.append)(post)
    assert (got, tries, waits) == ("failed", 3, [0.5, 1.0])  # WEBHOOK_INLINE.tries, then the last result


def test_worst_case_waits_are_the_sum_of_the_ceilings():
    assert AWS_CALL.waits_s() == pytest.approx(0.1 + 0.2 + 0.4)
    assert EVENT_PUBLISH.waits_s() == pytest.approx(0.2 + 0.4 + 0.8)
    assert DELIVERY_TASK.waits_s() == 30 + 60 + 120 + 240 + 480 + 900 + 900
    assert QUEUE_POLL.waits_s() == float("inf")  # never gives up


def test_queued_delays_double_up_to_their_caps():
    assert [delivery_task_delay_s(n, 30) for n in (1, 2, 3, 4, 5, 6)] == [30, 60, 120, 240, 480, 900]
    settings = Settings(retry_base_delay_s=5, retry_max_delay_s=900)
    assert all(10 <= queue_backoff_s(3, settings) <= 20 for _ in range(100))
    capped = Settings(retry_base_delay_s=5, retry_max_delay_s=60)
    assert all(30 <= queue_backoff_s(12, capped) <= 60 for _ in range(100))
    assert DELIVERY_TASK.tries == 8


def test_one_aws_call_is_tried_by_one_layer_only(stack):
    """A dropped connection is tried AWS_CALL.tries times in all (botocore's own retries are off), a 4xx once."""
    clients = make_clients(Settings(aws_endpoint_url=stack.endpoint_url))
    sent: list[str] = []

    def drop(request, **_):
        sent.append(request.url)
        raise EndpointConnectionError(endpoint_url=request.url)

    clients.s3.meta.events.register("before-send.s3.HeadBucket", drop)
    with pytest.raises(EndpointConnectionError):
        clients.s3.head_bucket(Bucket=stack.resources.bucket)
    assert len(sent) == AWS_CALL.tries

    answered: list[int] = []
    clients.s3.meta.events.register("after-call.s3.GetObject", lambda http_response, **_: answered.append(1))
    with pytest.raises(ClientError):
        clients.s3.get_object(Bucket=stack.resources.bucket, Key="no-such-key")
    assert len(answered) == 1  # NoSuchKey is an answer


def test_publish_and_receive_are_left_to_their_own_policies(stack):
    clients = make_clients(Settings(aws_endpoint_url=stack.endpoint_url))
    sent: list[str] = []

    def drop(request, **_):
        sent.append(request.url)
        raise EndpointConnectionError(endpoint_url=request.url)

    clients.sns.meta.events.register("before-send.sns.Publish", drop)
    with pytest.raises(EndpointConnectionError):
        clients.sns.publish(TopicArn=stack.resources.topic_arn, Message="x")
    assert len(sent) == 1  # EVENT_PUBLISH (the Notifier) retries it, not the client


def test_the_docs_table_is_the_generated_one():
    text = (REPO / "docs" / "architecture.md").read_text()
    found = re.search(r"<!-- retry-policies -->\n(.*?)<!-- /retry-policies -->", text, re.S)
    assert found is not None, "docs/architecture.md lost its retry-policies table"
    assert found.group(1) == render_table(), "regenerate it: python -m consumer.aws.retry"
    assert render_table().count("\n| `") == 9  # every policy has its row


def test_throttling_is_retried_longer_than_other_faults(stack, monkeypatch):
    """S3's 503 SlowDown follows AWS_THROTTLED (8 tries, waits in their upper half); a 500 follows AWS_CALL (4)."""
    waits: list[float] = []
    monkeypatch.setattr("time.sleep", waits.append)  # botocore sleeps through time.sleep
    clients = make_clients(Settings(aws_endpoint_url=stack.endpoint_url))
    sent: list[str] = []

    def answer(code: str, status: int):
        def send(request, **_):
            sent.append(code)
            body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
            return AWSResponse(request.url, status, {"Content-Type": "application/xml"}, _Body(body))

        return send

    clients.s3.meta.events.register("before-send.s3.PutObject", answer("SlowDown", 503), unique_id="answer")
    with pytest.raises(ClientError, match="SlowDown"):
        clients.s3.put_object(Bucket=stack.resources.bucket, Key="x", Body=b"x")
    assert len(sent) == AWS_THROTTLED.tries == 8
    assert all(AWS_THROTTLED.ceiling_s(n) / 2 <= w <= AWS_THROTTLED.ceiling_s(n) for n, w in enumerate(waits, 1))
    clients.s3.meta.events.unregister("before-send.s3.PutObject", unique_id="answer")
    sent.clear()
    clients.s3.meta.events.register("before-send.s3.PutObject", answer("InternalError", 500), unique_id="answer")
    with pytest.raises(ClientError, match="InternalError"):
        clients.s3.put_object(Bucket=stack.resources.bucket, Key="x", Body=b"x")
    assert len(sent) == AWS_CALL.tries == 4
