"""A worker process for the chaos harness: the real `f5-worker run` (fake engine), with two additions made
through botocore's event hooks, not through the worker's code, and one log field:

- the windows between the lifecycle's steps are widened (a short sleep before the completion record, the
  SNS publish and the DeleteMessage), so random kills land between upload and publish and between publish
  and delete, not only during synthesis;
- every completed audio upload and every step entered is appended to a ledger file, so the harness can
  count distinct syntheses per job and say where each kill landed;
- each attempt's log lines carry `receive_count` to the end, its `job_finished` line included, so the harness
  can tell each job's receives apart (a log context only: the worker's behaviour is untouched).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import boto3
import structlog

LEDGER = Path(os.environ["CHAOS_LEDGER"])
WINDOW_S = float(os.environ.get("CHAOS_WINDOW_S", "0.15"))


def _note(kind: str, **fields) -> None:
    line = json.dumps({"pid": os.getpid(), "kind": kind, "t": time.time(), **fields})
    with LEDGER.open("a") as f:  # O_APPEND: whole lines from concurrent processes
        f.write(line + "\n")


def _before(step: str):
    def handler(params, **_):
        key = params.get("Key", "")
        if step == "record":
            if not key.startswith("jobs/"):
                return
            body = params.get("Body", b"")
            completed = b'"COMPLETED"' in (body if isinstance(body, bytes) else b"")
            _note("step", step="complete" if completed else "claim", key=key)
        else:
            _note("step", step=step, key=key)
        time.sleep(WINDOW_S)

    return handler


def _install() -> None:
    original = boto3.session.Session.client

    def client(self, service, *args, **kwargs):
        c = original(self, service, *args, **kwargs)
        events = c.meta.events
        if service == "s3":
            events.register("before-parameter-build.s3.PutObject", _before("record"))

            def track(params, context, **_):
                context["chaos_key"] = params.get("Key", "")

            def uploaded(parsed, context, **_):
                key = context.get("chaos_key", "")
                if key.startswith("outputs/") and parsed.get("ResponseMetadata", {}).get("HTTPStatusCode") == 200:
                    _note("upload", key=key)

            events.register("before-parameter-build.s3.PutObject", track)
            events.register("after-call.s3.PutObject", uploaded)
        elif service == "dynamodb":  # job records in a table: the same windows around their writes

            def item_write(params, **_):
                item = params.get("Item", {})
                job_id = item.get("job_id", {}).get("S", "")
                completed = '"COMPLETED"' in item.get("body", {}).get("S", "")
                _note("step", step="complete" if completed else "claim", key=f"jobs/{job_id}.json")
                time.sleep(WINDOW_S)

            events.register("before-parameter-build.dynamodb.PutItem", item_write)
        elif service == "sns":
            events.register("before-parameter-build.sns.Publish", _before("publish"))
        elif service == "sqs":
            events.register("before-parameter-build.sqs.DeleteMessage", _before("delete"))
            polled: list[bool] = []

            def first_poll(**_):
                if not polled:
                    polled.append(True)
                    _note("ready")

            events.register("before-parameter-build.sqs.ReceiveMessage", first_poll)
        return c

    boto3.session.Session.client = client


def _tag_receives() -> None:
    from consumer.worker.job import JobRun, Outcome

    run = JobRun.run

    def tagged(self: JobRun) -> Outcome:
        with structlog.contextvars.bound_contextvars(receive_count=self.msg.receive_count):
            return run(self)

    JobRun.run = tagged


if __name__ == "__main__":
    _install()
    _tag_receives()
    from consumer.cli import main

    sys.argv = ["f5-worker", "run"]
    main()
