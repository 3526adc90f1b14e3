"""Progress: snapshots of chunk i of n with an ETA (from the chunks done, else from the real-time factor),
handed out once per change; RealTimeFactor's moving average."""

from __future__ import annotations

import pytest

from consumer.storage.job_record import ChunkProgress
from consumer.worker.progress import Progress, RealTimeFactor


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- RealTimeFactor ------------------------------------------------------------------------------------------
def test_the_first_observation_is_the_value():
    rtf = RealTimeFactor()
    assert rtf.value is None
    rtf.observe(synthesis_s=2.0, audio_s=4.0)
    assert rtf.value == pytest.approx(0.5)


def test_later_observations_move_the_average_by_the_weight():
    rtf = RealTimeFactor(weight=0.25)
    rtf.observe(1.0, 1.0)  # 1.0
    rtf.observe(3.0, 1.0)  # 0.75 * 1.0 + 0.25 * 3.0
    assert rtf.value == pytest.approx(1.5)


def test_an_observation_without_audio_is_ignored():
    rtf = RealTimeFactor()
    rtf.observe(5.0, 0.0)
    rtf.observe(5.0, -1.0)
    assert rtf.value is None
    rtf.observe(1.0, 2.0)
    rtf.observe(5.0, 0.0)
    assert rtf.value == pytest.approx(0.5)


# --- Progress --------------------------------------------------------------------------------------------------
def test_no_snapshot_until_the_engine_reports_its_plan():
    progress = Progress(RealTimeFactor(), clock=Clock())
    progress.start(expected_audio_s=10.0)
    assert progress.snapshot() is None
    assert progress.take() is None


def test_take_hands_out_each_change_once():
    clock = Clock()
    progress = Progress(RealTimeFactor(), clock=clock)
    progress.start(10.0)
    progress.update(0, 4)
    first = progress.take()
    assert first is not None and (first.chunk, first.chunks) == (0, 4)
    assert progress.take() is None  # nothing new
    progress.update(0, 4)  # the same boundary again is no change
    assert progress.take() is None
    progress.update(1, 4)
    second = progress.take()
    assert second is not None and second.chunk == 1
    assert progress.snapshot() == second  # snapshot is always available, take only once


def test_eta_from_the_chunks_done_so_far():
    clock = Clock(100.0)
    progress = Progress(RealTimeFactor(), clock=clock)
    progress.start(10.0)
    progress.update(0, 4)
    clock.now = 106.0
    progress.update(2, 4)  # 2 chunks in 6 s: 3 s each, 2 left
    assert progress.snapshot() == ChunkProgress(chunk=2, chunks=4, eta_s=6.0)


def test_eta_before_the_first_chunk_comes_from_the_real_time_factor():
    rtf = RealTimeFactor()
    rtf.observe(synthesis_s=1.0, audio_s=2.0)  # 0.5 s of work per audio second
    clock = Clock(0.0)
    progress = Progress(rtf, clock=clock)
    progress.start(expected_audio_s=20.0)  # about 10 s of work
    progress.update(0, 5)
    clock.now = 3.0
    snapshot = progress.snapshot()
    assert snapshot is not None and snapshot.eta_s == pytest.approx(7.0)
    clock.now = 15.0  # slower than expected: the estimate does not go negative
    snapshot = progress.snapshot()
    assert snapshot is not None and snapshot.eta_s == 0.0


def test_no_eta_without_chunks_done_or_a_measured_speed():
    progress = Progress(RealTimeFactor(), clock=Clock())
    progress.start(expected_audio_s=20.0)
    progress.update(0, 3)
    snapshot = progress.snapshot()
    assert snapshot is not None and snapshot.eta_s is None

    rtf = RealTimeFactor()
    rtf.observe(1.0, 1.0)
    unknown_length = Progress(rtf, clock=Clock())
    unknown_length.start(expected_audio_s=0.0)
    unknown_length.update(0, 3)
    snapshot = unknown_length.snapshot()
    assert snapshot is not None and snapshot.eta_s is None


def test_all_chunks_done_means_no_time_left():
    clock = Clock()
    progress = Progress(RealTimeFactor(), clock=clock)
    progress.start(5.0)
    clock.now = 9.0
    progress.update(3, 3)  # encoding and uploading
    assert progress.snapshot() == ChunkProgress(chunk=3, chunks=3, eta_s=0.0)


def test_an_update_without_start_starts_the_clock_at_the_first_boundary():
    clock = Clock(50.0)
    progress = Progress(RealTimeFactor(), clock=clock)
    progress.update(0, 2)
    clock.now = 54.0
    progress.update(1, 2)  # 4 s since the first boundary for one chunk
    snapshot = progress.snapshot()
    assert snapshot is not None and snapshot.eta_s == 4.0
