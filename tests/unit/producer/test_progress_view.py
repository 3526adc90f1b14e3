"""The phases a waiting user sees: `describe` names each record's phase (its key changes only with the phase),
and PhaseReporter prints each phase once (a plain line) or rewrites one line on a terminal."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from consumer.producer.progress_view import PhaseReporter, describe, worker_of
from consumer.storage.job_record import CancelRequest, ChunkProgress, InProgress, Release, Released

EXPIRES = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=5)


def _running(attempt: int = 1, progress: ChunkProgress | None = None, **fields) -> InProgress:
    return InProgress(
        job_id="j", worker_id="gpu-3/ab12cd34", expires_at=EXPIRES, attempt=attempt, progress=progress, **fields
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_worker_of_drops_the_attempt_suffix():
    assert worker_of("gpu-3/ab12cd34") == "gpu-3"
    assert worker_of("host/with/slashes/ab12") == "host/with/slashes"
    assert worker_of("plain-worker") == "plain-worker"


def test_no_record_is_queued():
    assert describe(None) == (("queued",), "queued")


def test_a_started_job_names_its_worker_and_a_later_attempt():
    assert describe(_running())[1] == "started on gpu-3"
    key, text = describe(_running(attempt=3))
    assert text == "started on gpu-3, attempt 3"
    assert key != describe(_running())[0]  # another attempt is another phase


def test_chunks_are_counted_from_one_with_an_eta_when_known():
    assert describe(_running(progress=ChunkProgress(chunk=0, chunks=4, eta_s=12.4)))[1] == (
        "chunk 1/4 on gpu-3, about 12 s left"
    )
    assert describe(_running(progress=ChunkProgress(chunk=2, chunks=4)))[1] == "chunk 3/4 on gpu-3"


def test_the_key_changes_with_the_chunk_not_with_the_eta():
    first = describe(_running(progress=ChunkProgress(chunk=1, chunks=4, eta_s=30)))
    later_eta = describe(_running(progress=ChunkProgress(chunk=1, chunks=4, eta_s=20)))
    next_chunk = describe(_running(progress=ChunkProgress(chunk=2, chunks=4, eta_s=20)))
    assert first[0] == later_eta[0] != next_chunk[0]


def test_all_chunks_done_is_encoding_and_uploading():
    assert describe(_running(progress=ChunkProgress(chunk=4, chunks=4)))[1] == "encoding and uploading on gpu-3"


def test_a_released_job_is_queued_again_with_why():
    with_code = Released(job_id="j", released=Release(reason="engine failed", error_code="engine_error"))
    assert describe(with_code)[1] == "queued again (engine_error)"
    with_reason = Released(job_id="j", released=Release(reason="shutdown"))
    assert describe(with_reason)[1] == "queued again (shutdown)"
    assert describe(Released(job_id="j"))[1] == "queued again (released)"


def test_a_cancel_request_is_shown_whatever_the_state():
    cancel = CancelRequest(by="ana", at="t")
    assert describe(_running(cancel=cancel))[1] == "cancel requested"
    assert describe(Released(job_id="j", cancel=cancel))[1] == "cancel requested"


def test_a_non_tty_stream_gets_one_plain_line_per_new_phase():
    stream = io.StringIO()
    reporter = PhaseReporter(stream, tty=False)
    for record in (None, None, _running(), _running(), _running(progress=ChunkProgress(chunk=0, chunks=2))):
        reporter(record)
    reporter.close("uploaded")
    assert stream.getvalue() == "queued\nstarted on gpu-3\nchunk 1/2 on gpu-3\nuploaded\n"
    assert reporter.phases == ["queued", "started on gpu-3", "chunk 1/2 on gpu-3", "uploaded"]


def test_a_tty_rewrites_one_line_with_the_time_waited_and_clears_it_at_the_end():
    stream = io.StringIO()
    clock = Clock()
    reporter = PhaseReporter(stream, tty=True, clock=clock)
    reporter(None)
    clock.now = 3.2
    reporter(None)  # same phase: the line is redrawn with the new time
    clock.now = 7.0
    reporter(_running())
    reporter.close()
    assert stream.getvalue() == ("\r\x1b[2Kqueued (0 s)\r\x1b[2Kqueued (3 s)\r\x1b[2Kstarted on gpu-3 (7 s)\r\x1b[2K")
    assert reporter.phases == ["queued", "started on gpu-3"]


def test_tty_is_taken_from_the_stream_when_not_given():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    PhaseReporter(stream, clock=Clock())(None)
    assert stream.getvalue().startswith("\r\x1b[2K")
    plain = io.StringIO()
    PhaseReporter(plain, clock=Clock())(None)
    assert plain.getvalue() == "queued\n"


def test_closing_before_any_phase_writes_nothing_on_a_tty():
    stream = io.StringIO()
    PhaseReporter(stream, tty=True).close()
    assert stream.getvalue() == ""
