"""Create f5-worker's AWS resources in LocalStack, moto or an account with `bootstrap()` (the same ResourceSpec the
tests and the CloudFormation template use) and print the worker's environment:

    python -m consumer.ops.init --endpoint-url http://localhost:4566 > .env

Idempotent: run it again and it finds the resources and prints the same lines. Torch-free."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from botocore.exceptions import BotoCoreError, ClientError

from consumer.aws.clients import make_clients
from consumer.aws.failures import explain_aws_failure
from consumer.aws.resources import Resources, ResourceSpec, bootstrap
from consumer.core.settings import Settings

_DEFAULTS = ResourceSpec()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="f5-worker init",
        description="Create (or find) the request queue + DLQ, bucket, topic and events queue; print the env.",
    )
    parser.add_argument(
        "--endpoint-url",
        default=os.environ.get("F5_WORKER_AWS_ENDPOINT_URL"),
        help="LocalStack/moto URL, e.g. http://localhost:4566 (default: $F5_WORKER_AWS_ENDPOINT_URL; none = AWS)",
    )
    parser.add_argument("--region", default=os.environ.get("F5_WORKER_AWS_REGION", "us-east-1"))
    parser.add_argument("--name", default=_DEFAULTS.name, help=f"resource name prefix (default {_DEFAULTS.name})")
    parser.add_argument("--bucket", default=None, help="bucket name (default: <name>-audio)")
    parser.add_argument("--fifo", action="store_true", help="FIFO request queue and DLQ")
    parser.add_argument("--max-receive-count", type=int, default=_DEFAULTS.max_receive_count)
    parser.add_argument("--visibility-timeout", type=int, default=_DEFAULTS.visibility_timeout_s)
    parser.add_argument("--no-events-queue", action="store_true", help="no SQS queue subscribed to the topic")
    return parser


def spec_from_args(args: argparse.Namespace) -> ResourceSpec:
    return ResourceSpec(
        name=args.name,
        bucket=args.bucket or f"{args.name}-audio",
        fifo=args.fifo,
        visibility_timeout_s=args.visibility_timeout,
        max_receive_count=args.max_receive_count,
        events_queue=not args.no_events_queue,
    )


def env_lines(resources: Resources, endpoint_url: str | None, region: str) -> list[str]:
    """A complete environment for these resources, as `KEY=value` lines (a .env file, or `export $(...)`): the
    worker's and the producers' settings, and for an emulator endpoint its credentials (any values work there;
    a real account keeps its own credential chain, so none are printed for it)."""
    lines = []
    if endpoint_url:
        lines.append(f"F5_WORKER_AWS_ENDPOINT_URL={endpoint_url}")
        lines += ["AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test"]
    lines.append(f"F5_WORKER_AWS_REGION={region}")
    lines += [f"{key}={value}" for key, value in resources.env().items()]
    if resources.events_queue_url:
        lines.append(f"F5_WORKER_EVENTS_QUEUE_URL={resources.events_queue_url}")
    lines.append(f"# dead-letter queue: {resources.dlq_url}")
    return lines


def init_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `f5-worker init` (and `python -m consumer.ops.init`). Exit 0 on success, 2 on bad
    arguments or when AWS cannot be reached or refuses (the cause and the fix, in two lines)."""
    args = _parser().parse_args(argv)
    if args.endpoint_url:
        # Emulators accept any credentials; a real account keeps the default provider chain.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    spec = spec_from_args(args)
    settings = Settings(aws_endpoint_url=args.endpoint_url, aws_region=args.region)
    try:
        resources = bootstrap(make_clients(settings), spec, args.region)
    except (BotoCoreError, ClientError) as exc:
        mistake = explain_aws_failure(exc, settings)
        print(f"f5-worker init: could not create the resources: {mistake}\n  fix: {mistake.fix}", file=sys.stderr)
        return mistake.exit_code
    print("\n".join(env_lines(resources, args.endpoint_url, args.region)))
    return 0


if __name__ == "__main__":
    sys.exit(init_main())
