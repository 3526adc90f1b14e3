"""The pipeline around the device: how many messages the loop takes (admission), deletes gathered into batch
calls, and the worker end to end at the default (auto) in-flight setting."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest

from consumer.aws.failures import is_receipt_gone
from consumer.aws.queue import Queue
from consumer.core.settings import AUTO_CAP, Settings
from consumer.engine.fake import FakeEngine
from consumer.worker.admission import Admission
from consumer.worker.heartbeat import next_grid_point
from contracts.requests import VoiceRef


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run_job(admission: Admission, clock: Clock, prepare_s: float, device_s: float) -> None:
    with admission.preparing():
        clock.now += prepare_s
        with admission.at_device():
            clock.now += device_s


def test_fixed_slots_take_what_is_free_at_most_ten_per_receive():
    admission = Admission(16)
    assert admission.cap == 16
    assert admission.wanted(0) == 10 and admission.wanted(10) == 6 and admission.wanted(16) == 0


def test_auto_holds_two_until_it_has_measured_a_job():
    admission = Admission(None)
    assert admission.cap == AUTO_CAP and admission.wanted(0) == 2
    with admission.preparing(), admission.preparing():
        pass  # nested here only to count two jobs ahead on one thread
    assert admission.ahead == 0


def test_auto_covers_the_round_trips_and_batches_receives_within_the_device_queue():
    clock = Clock()
    admission = Admission(None, device_queue_s=2.0, clock=clock)
    admission.received(0.05, 1)
    run_job(admission, clock, prepare_s=0.15, device_s=0.2)
    # low = 1 + ceil(1.5 * (0.05 + 0.15) / 0.2) = 3; extra = 2.0 s / 0.2 s = 10 → high = 13
    assert admission.watermarks() == (3, 13)
    assert admission.wanted(0) == 10  # one receive holds at most 10
    with admission.preparing(), admission.preparing(), admission.preparing():
        assert admission.ahead == 3 and admission.wanted(3) == 10
        with admission.preparing():  # four ahead: above the low mark, no receive
            assert admission.wanted(4) == 0
    assert admission.wanted(AUTO_CAP - 1) == 1  # the cap holds whatever the measurements say


def test_auto_never_holds_long_jobs_behind_one_another():
    clock = Clock()
    admission = Admission(None, device_queue_s=2.0, clock=clock)
    admission.received(0.05, 1)
    run_job(admission, clock, prepare_s=0.3, device_s=60.0)
    assert admission.watermarks() == (2, 2)  # the next one ready, nothing more
    with admission.preparing(), admission.preparing():
        assert admission.wanted(2) == 0


def test_auto_keeps_a_batch_worth_ahead():
    admission = Admission(None, min_ahead=8)
    assert admission.watermarks() == (8, 8) and admission.wanted(0) == 8


def test_device_time_is_service_time_not_time_spent_waiting_for_the_device():
    clock = Clock()
    admission = Admission(None, clock=clock)
    first, second = admission.at_device(), admission.at_device()
    first.__enter__()
    second.__enter__()  # both enter at 100; the device serves them one after the other, 1 s each
    clock.now = 101.0
    first.__exit__(None, None, None)
    clock.now = 102.0
    second.__exit__(None, None, None)
    assert admission.device_s.value == pytest.approx(1.0)  # not 2.0 for the one that waited


def test_a_job_that_never_reaches_the_device_leaves_the_count_ahead():
    admission = Admission(None)
    with pytest.raises(RuntimeError), admission.preparing():
        assert admission.ahead == 1
        raise RuntimeError("claim failed")
    assert admission.ahead == 0


class FakeSqs:
    """Records batch deletes; the entries named in `fail` come back as Failed with that code."""

    def __init__(self, fail: dict[str, str] | None = None) -> None:
        self.fail = fail or {}
        self.batches: list[list[str]] = []
        self.single: list[str] = []

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:
        self.batches.append([e["ReceiptHandle"] for e in Entries])
        failed = [
            {"Id": e["Id"], "Code": self.fail[e["ReceiptHandle"]], "SenderFault": True}
            for e in Entries
            if e["ReceiptHandle"] in self.fail
        ]
        return {"Successful": [], "Failed": failed}

    def delete_message(self, QueueUrl: str, ReceiptHandle: str) -> dict:
        self.single.append(ReceiptHandle)
        return {}


def test_deletes_gather_into_batches_of_ten_and_flush_on_close():
    sqs = FakeSqs()
    queue = Queue(sqs, "https://sqs/q", delete_window_s=5.0)
    for i in range(12):
        queue.delete_soon(f"r{i}")
    deadline = time.monotonic() + 2
    while not sqs.batches and time.monotonic() < deadline:  # ten waiting: sent without waiting the window
        time.sleep(0.01)
    assert sqs.batches == [[f"r{i}" for i in range(10)]]
    queue.flush_deletes()  # the last two go at once, not after 5 s
    assert sqs.batches[1] == ["r10", "r11"] and sqs.single == []
    queue.delete_soon("late")  # after the flush: deleted at once
    assert sqs.single == ["late"]


def test_failed_batch_entries_are_retried_alone_unless_the_receipt_is_gone():
    sqs = FakeSqs({"r1": "InternalError", "r2": "ReceiptHandleIsInvalid"})
    Queue(sqs, "https://sqs/q").delete_batch(["r0", "r1", "r2"])
    assert sqs.single == ["r1"]


def test_zero_window_deletes_at_once():
    sqs = FakeSqs()
    Queue(sqs, "https://sqs/q").delete_soon("r0")
    assert sqs.single == ["r0"] and sqs.batches == []


def test_auto_in_flight_worker_finishes_every_message_once_with_fewer_requests(stack, make_worker):
    n = 40
    for start in range(0, n, 10):
        entries = [
            {"Id": str(i), "MessageBody": json.dumps({"job_id": f"auto-{start + i}", "text": "Hello there."})}
            for i in range(10)
        ]
        for entry in entries:
            body = json.loads(entry["MessageBody"])
            body["voice"] = {"voice_id": "basic-en"}
            entry["MessageBody"] = json.dumps(body)
        stack.clients.sqs.send_message_batch(QueueUrl=stack.resources.queue_url, Entries=entries)
    worker, services = make_worker(FakeEngine(work_s=0.05))
    calls: Counter = Counter()
    services.queue.sqs.meta.events.register(
        "provide-client-params.sqs.*", lambda model, **_: calls.update([model.name])
    )
    assert services.settings.max_in_flight == "auto"
    worker.run()
    assert worker.outcomes == {"done": n}
    assert [e.job_id for e in stack.events()].count("auto-7") == 1
    assert sorted(stack.objects("outputs/")) == sorted(f"outputs/auto-{i}.wav" for i in range(n))
    assert stack.queue_counts() == (0, 0)
    assert calls["DeleteMessage"] == 0 and calls["DeleteMessageBatch"] < n / 3
    assert calls["ReceiveMessage"] < n / 2  # receives came in batches
    assert services.admission.device_s.value is not None


def test_max_in_flight_reads_auto_or_a_number():
    assert Settings().max_in_flight == "auto"
    assert Settings(max_in_flight="4").max_in_flight == 4
    for bad in ("0", "65", "many"):
        with pytest.raises(ValueError):
            Settings(max_in_flight=bad)


class FakeVisibilitySqs:
    def __init__(self, gone: set[str] = frozenset()) -> None:
        self.gone = gone
        self.calls: list[list[str]] = []

    def change_message_visibility_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:
        self.calls.append([e["ReceiptHandle"] for e in Entries])
        failed = [{"Id": e["Id"], "Code": "ReceiptHandleIsInvalid"} for e in Entries if e["ReceiptHandle"] in self.gone]
        return {"Failed": failed}


def test_heartbeats_beating_together_share_one_batch_call_and_each_sees_its_own_failure():
    sqs = FakeVisibilitySqs(gone={"r3"})
    queue = Queue(sqs, "https://sqs/q")
    errors: dict[str, BaseException] = {}
    start = threading.Barrier(6)

    def beat(receipt: str) -> None:
        start.wait()
        try:
            queue.extend_visibility(receipt, 60)
        except Exception as exc:
            errors[receipt] = exc

    threads = [threading.Thread(target=beat, args=(f"r{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(sqs.calls) == 1 and sorted(sqs.calls[0]) == [f"r{i}" for i in range(6)]
    assert list(errors) == ["r3"] and is_receipt_gone(errors["r3"])


def test_beats_fall_on_a_grid_shared_by_every_heartbeat():
    assert next_grid_point(100.2, 30.0) == 120.0
    assert next_grid_point(119.9, 30.0) == 120.0 and next_grid_point(120.0, 30.0) == 150.0


def test_a_long_job_beats_through_the_batch_call_and_renews_its_claim_each_beat(stack, make_worker):
    stack.send(json.dumps({"job_id": "long-1", "text": "Hello there.", "voice": {"voice_id": "basic-en"}}))
    worker, services = make_worker(FakeEngine(work_s=4.5), visibility_timeout_s=4, heartbeat_interval_s=1)
    timeline: list[str] = []  # "W": a write of the job's record, "V": a visibility beat (one thread each)
    services.jobs.records._s3.meta.events.register(  # type: ignore[attr-defined]
        "before-parameter-build.s3.PutObject",
        lambda params, **_: timeline.append("W") if params["Key"] == "jobs/long-1.json" else None,
    )
    calls: Counter = Counter()

    def on_sqs_call(model, **_):
        calls.update([model.name])
        if model.name == "ChangeMessageVisibilityBatch":
            timeline.append("V")

    services.queue.sqs.meta.events.register("provide-client-params.sqs.*", on_sqs_call)
    worker.run()
    assert worker.outcomes == {"done": 1}
    assert calls["ChangeMessageVisibilityBatch"] >= 4 and calls["ChangeMessageVisibility"] == 0
    # The heartbeat starts with the message, so a beat may come before the claim (nothing to renew yet). From
    # the claim (first W) to the completion (last W), each beat renews: a cancel or takeover is heard within one.
    while_claimed = "".join(timeline)
    while_claimed = while_claimed[while_claimed.index("W") + 1 : while_claimed.rindex("W")]
    if while_claimed.startswith("VV"):  # that beat raced the claim: sent while the claim's write was on its way
        while_claimed = while_claimed[1:]
    assert while_claimed.count("V") >= 3, timeline
    assert while_claimed.count("VW") == while_claimed.count("V"), timeline  # progress writes may come between


def test_jobs_arriving_together_with_one_voice_look_it_up_once(stack, make_worker):
    _, services = make_worker()
    calls: Counter = Counter()
    s3 = services.voices._s3
    s3.meta.events.register("provide-client-params.s3.*", lambda model, **_: calls.update([model.name]))
    start = threading.Barrier(6)
    refs = []

    def resolve() -> None:
        start.wait()
        refs.append(services.voices.resolve(VoiceRef(voice_id="basic-en")))

    threads = [threading.Thread(target=resolve) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(refs) == 6 and all(ref is refs[0] for ref in refs)
    assert calls["HeadObject"] == 1 and calls["GetObject"] == 2  # the clip and its manifest, once
