"""Create f5-worker's AWS resources in LocalStack, moto or an account with `bootstrap()` (the same ResourceSpec the
tests and the CloudFormation template use), print the worker's environment, and store the example voice `basic-en`
(`say`'s default) in the voice library unless it is there:

    f5-worker init --endpoint-url http://localhost:4566 > .env

Idempotent: run it again and it finds the resources and prints the same lines. Torch-free. `f5-worker init` is the
typer command in `consumer.ops.cli`; `python -m consumer.ops.init` (same options) is the LocalStack hook's entry
point, for a Python that has boto3 and pydantic but no typer, numpy or f5-tts (the example voice is then skipped)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from consumer.aws.clients import AwsClients, make_clients
from consumer.aws.failures import explain_aws_failure
from consumer.aws.resources import Resources, ResourceSpec, bootstrap
from consumer.core.errors import ConfigurationError, ModelSpecError, VoiceExists
from consumer.core.settings import Settings, load_settings

_DEFAULTS = ResourceSpec()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m consumer.ops.init",
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
    parser.add_argument("--max-receive-count", type=int, default=None)
    parser.add_argument("--visibility-timeout", type=int, default=None)
    parser.add_argument("--no-events-queue", action="store_true", help="no SQS queue subscribed to the topic")
    parser.add_argument("--example-voice", action=argparse.BooleanOptionalAction, default=True)
    return parser


def make_spec(
    name: str | None = None,
    bucket: str | None = None,
    *,
    fifo: bool = False,
    max_receive_count: int | None = None,
    visibility_timeout: int | None = None,
    events_queue: bool = True,
) -> ResourceSpec:
    """The resources to create: `ResourceSpec`'s defaults where an option is None."""
    name = name or _DEFAULTS.name
    return ResourceSpec(
        name=name,
        bucket=bucket or f"{name}-audio",
        fifo=fifo,
        visibility_timeout_s=visibility_timeout or _DEFAULTS.visibility_timeout_s,
        max_receive_count=max_receive_count or _DEFAULTS.max_receive_count,
        events_queue=events_queue,
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


def init_resources(spec: ResourceSpec, endpoint_url: str | None, region: str, *, example_voice: bool = True) -> int:
    """Create (or find) the resources, print the environment on stdout, offer the example voice (notes on stderr).
    Exit 0 on success, 2 when AWS cannot be reached or refuses (the cause and the fix, in two lines)."""
    if endpoint_url:
        # Emulators accept any credentials; a real account keeps the default provider chain.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    try:
        settings = load_settings(aws_endpoint_url=endpoint_url, aws_region=region)
    except ConfigurationError as mistake:  # a bad F5_WORKER_* variable
        return _say_mistake("cannot start", mistake)
    clients = make_clients(settings)
    try:
        resources = bootstrap(clients, spec, region)
    except (BotoCoreError, ClientError) as exc:
        return _refused("could not create the resources", exc, settings)
    print("\n".join(env_lines(resources, endpoint_url, region)), flush=True)
    return _offer_example_voice(clients, resources.bucket, settings) if example_voice else 0


def _offer_example_voice(clients: AwsClients, bucket: str, settings: Settings) -> int:
    """`say`'s default voice, from the f5-tts wheel's English example clip, unless the library has a voice of that
    id. Skipped with a note where the clip or the audio libraries are not installed (LocalStack's own Python)."""
    how = "add a voice with `f5-worker voices add ID CLIP --transcript TEXT`"
    try:
        from consumer.producer.voice_library import EXAMPLE_VOICE_ID, VoiceLibrary
    except ImportError as exc:
        return _note(f"example voice not added: {exc}; {how}")
    library = VoiceLibrary(clients.s3, bucket, settings.voices_prefix)
    try:
        if library.show(EXAMPLE_VOICE_ID) is None:
            library.add_example(EXAMPLE_VOICE_ID, force=False)
            return _note(f"voice {EXAMPLE_VOICE_ID} added (f5-tts's English example; --no-example-voice skips it)")
    except VoiceExists:
        pass  # another `init` added it meanwhile
    except (ImportError, ModelSpecError, FileNotFoundError) as exc:
        return _note(f"example voice {EXAMPLE_VOICE_ID} not added: {exc}; {how}")
    except (BotoCoreError, ClientError) as exc:
        return _refused(f"could not add the example voice {EXAMPLE_VOICE_ID}", exc, settings)
    return _note(f"voice {EXAMPLE_VOICE_ID} is in the library")


def _note(line: str) -> int:
    print(f"f5-worker init: {line}", file=sys.stderr)
    return 0


def _refused(what: str, exc: Any, settings: Settings) -> int:
    return _say_mistake(what, explain_aws_failure(exc, settings))


def _say_mistake(what: str, mistake: ConfigurationError) -> int:
    print(f"f5-worker init: {what}: {mistake}\n  fix: {mistake.fix}", file=sys.stderr)
    return mistake.exit_code


def init_main(argv: Sequence[str] | None = None) -> int:
    """`python -m consumer.ops.init [options]`: the LocalStack hook's entry point (argparse: no typer there)."""
    args = _parser().parse_args(argv)
    spec = make_spec(
        args.name,
        args.bucket,
        fifo=args.fifo,
        max_receive_count=args.max_receive_count,
        visibility_timeout=args.visibility_timeout,
        events_queue=not args.no_events_queue,
    )
    return init_resources(spec, args.endpoint_url, args.region, example_voice=args.example_voice)


if __name__ == "__main__":
    sys.exit(init_main())
