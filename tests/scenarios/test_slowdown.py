"""S3 throttling at its documented per-prefix rates (scaled down to what a moto server and two in-process workers
can reach): every request over its prefix's budget in a second gets 503 SlowDown. Every job still ends exactly
once: one COMPLETED record, one audio object and one event id per job, nothing in the DLQ. (Before the
AWS_THROTTLED policy, the same run failed jobs with retries_exhausted, each throttled claim using up a receive,
and left some with no record at all.)"""

from __future__ import annotations

import json
import threading
import time

from consumer.aws.clients import make_clients
from consumer.engine.fake import FakeEngine
from consumer.worker.loop import Worker
from consumer.worker.services import build_services
from tests.aws_faults import PrefixRateLimit

JOBS = 100


def test_every_job_finishes_once_under_s3_slowdown_at_the_prefix_limits(stack):
    # 3,500 PUT/s and 5,500 GET/s per prefix scaled by 1/250: 14 writes and 22 reads a second per prefix
    limit = PrefixRateLimit(scale=1 / 250)
    for start in range(0, JOBS, 10):
        entries = [
            {
                "Id": str(i),
                "MessageBody": json.dumps({"job_id": f"slow-{i}", "text": "Hi.", "voice": {"voice_id": "basic-en"}}),
            }
            for i in range(start, start + 10)
        ]
        stack.clients.sqs.send_message_batch(QueueUrl=stack.resources.queue_url, Entries=entries)

    def worker(n: int):
        settings = stack.settings(worker_id=f"slow-w{n}", max_in_flight=8, index_flush_s=1.0)
        clients = make_clients(settings)
        clients.s3.meta.events.register("before-send.s3", limit.before_send)
        return build_services(settings, FakeEngine(), clients=clients)

    services = [worker(n) for n in range(2)]
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        threads = [threading.Thread(target=Worker(s).run) for s in services]  # burst: each runs until idle
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if stack.queue_counts() == (0, 0):
            break
        time.sleep(1)  # messages released for a retry come back after their visibility

    records = {f"slow-{i}": stack.record(f"slow-{i}") for i in range(JOBS)}
    assert {r["status"] for r in records.values()} == {"COMPLETED"}
    assert all(r["generation"] == 1 for r in records.values())
    assert len(stack.objects("outputs/")) == JOBS
    events = stack.events()
    assert {e.type for e in events} == {"synthesis.completed.v1"}
    assert len({e.event_id for e in events}) == len({e.job_id for e in events}) == JOBS
    assert stack.queue_counts() == (0, 0) and stack.queue_counts(stack.resources.dlq_url) == (0, 0)
    # the records' prefix (two writes a job) went over its budget, many times, and the calls waited it out
    assert limit.throttled.get("jobs/", 0) > JOBS, limit.throttled
    retried = sum(s.metrics.count("retry") for s in services)
    print(f"slowdown: throttled={limit.throttled} allowed={limit.allowed} job_retries={retried}")
