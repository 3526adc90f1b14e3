"""check_aws: the configured queue and bucket answer at this endpoint, or a ConfigurationError says why, fast."""

from __future__ import annotations

import socket
import time

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from consumer.aws.probe import _head_bucket, check_aws
from consumer.core.errors import ConfigurationError
from consumer.core.settings import Settings


def _closed_port() -> int:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return free.getsockname()[1]  # nothing listens there once the socket is closed


def test_a_working_stack_passes(stack):
    check_aws(stack.settings())  # no exception


def test_a_queue_that_does_not_exist_is_a_configuration_error(stack):
    missing = stack.resources.queue_url.rsplit("/", 1)[0] + "/no-such-queue"
    with pytest.raises(ConfigurationError, match=f"queue {missing} does not exist at {stack.endpoint_url}") as raised:
        check_aws(stack.settings(queue_url=missing))
    assert "f5-worker init" in raised.value.fix


def test_a_bucket_that_does_not_exist_is_a_configuration_error(stack):
    with pytest.raises(ConfigurationError, match="bucket no-such-bucket-f5 does not exist") as raised:
        check_aws(stack.settings(bucket="no-such-bucket-f5"))
    assert "F5_WORKER_BUCKET" in raised.value.fix


def test_an_endpoint_nobody_listens_on_fails_within_seconds():
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    settings = Settings(aws_endpoint_url=endpoint, queue_url=f"{endpoint}/123456789012/q", bucket="b-audio")
    started = time.monotonic()
    with pytest.raises(ConfigurationError, match=f"cannot reach {endpoint}") as raised:
        check_aws(settings)
    assert time.monotonic() - started < 5
    assert "F5_WORKER_AWS_ENDPOINT_URL" in raised.value.fix


def test_a_bucket_that_answers_403_to_head_bucket_passes_and_a_404_does_not():
    # the generated policies grant s3:ListBucket per prefix only, so HeadBucket may be refused on a bucket that exists
    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    with Stubber(s3) as stub:
        stub.add_client_error("head_bucket", "403", http_status_code=403)
        _head_bucket(s3, "b-audio")  # no exception
        stub.add_client_error("head_bucket", "404", http_status_code=404)
        with pytest.raises(ClientError):
            _head_bucket(s3, "b-audio")
