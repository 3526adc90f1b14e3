"""Playback: the first known player on PATH plays the file (aplay only WAV); no player, or a player that fails,
is one line saying why."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from consumer.producer.playback import PLAYERS, find_player, play


def _install(bin_dir: Path, name: str, script: str = "exit 0") -> Path:
    program = bin_dir / name
    program.write_text(f"#!/bin/sh\n{script}\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return program


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH with only the players a test installs."""
    path = tmp_path / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", str(path))
    return path


def test_no_player_means_no_command_and_a_message_naming_those_looked_for(bin_dir, tmp_path):
    audio = tmp_path / "speech.wav"
    assert find_player(audio) is None
    why = play(audio)
    assert why is not None and "no audio player found" in why and str(audio) in why
    for program, _ in PLAYERS:
        assert program in why


def test_the_first_player_in_order_is_chosen_with_its_arguments(bin_dir, tmp_path):
    _install(bin_dir, "aplay")
    ffplay = _install(bin_dir, "ffplay")
    audio = tmp_path / "speech.wav"
    assert find_player(audio) == [str(ffplay), "-nodisp", "-autoexit", "-loglevel", "error", str(audio)]


def test_aplay_plays_only_wav(bin_dir, tmp_path):
    aplay = _install(bin_dir, "aplay")
    assert find_player(tmp_path / "speech.WAV") == [str(aplay), "-q", str(tmp_path / "speech.WAV")]
    assert find_player(tmp_path / "speech.mp3") is None
    play_ = _install(bin_dir, "play")
    assert find_player(tmp_path / "speech.mp3") == [str(play_), "-q", str(tmp_path / "speech.mp3")]


def test_a_player_that_succeeds_plays_the_file(bin_dir, tmp_path):
    seen = tmp_path / "seen"
    _install(bin_dir, "paplay", f'echo "$@" > {seen}')
    audio = tmp_path / "speech.flac"
    assert play(audio) is None
    assert seen.read_text().strip() == str(audio)


def test_a_player_that_fails_is_named_with_its_last_error_line(bin_dir, tmp_path):
    _install(bin_dir, "afplay", 'echo "starting" >&2; echo "cannot open device" >&2; exit 3')
    assert play(tmp_path / "a.wav") == f"afplay could not play {tmp_path / 'a.wav'}: cannot open device"


def test_a_silent_failure_gives_the_exit_status(bin_dir, tmp_path):
    _install(bin_dir, "afplay", "exit 4")
    assert play(tmp_path / "a.wav") == f"afplay could not play {tmp_path / 'a.wav'}: exit 4"


def test_a_stream_goes_to_a_player_that_reads_standard_input_told_the_raw_format(bin_dir):
    from consumer.producer.playback import stream_command

    assert stream_command("mp3", 24000) is None  # nothing installed
    aplay = _install(bin_dir, "aplay")
    assert stream_command("mp3", 24000) is None  # aplay reads wav and raw pcm only
    assert stream_command("pcm", 16000) == [
        str(aplay),
        "-q",
        "-t",
        "raw",
        "-f",
        "S16_LE",
        "-c",
        "1",
        "-r",
        "16000",
        "-",
    ]
    ffplay = _install(bin_dir, "ffplay")
    command = stream_command("pcm", 24000)
    assert command is not None and command[0] == str(ffplay) and command[-2:] == ["-i", "-"]
    assert "s16le" in command and "24000" in command
    assert stream_command("aac", 24000) == [str(ffplay), "-nodisp", "-autoexit", "-loglevel", "error", "-i", "-"]


def test_a_stream_player_is_fed_until_it_goes_away_and_reports_a_failure(bin_dir, tmp_path):
    from consumer.producer.playback import StreamPlayer

    heard = tmp_path / "heard"
    player = StreamPlayer([str(_install(bin_dir, "ffplay", f"/bin/cat > {heard}"))])
    assert player.feed(b"abc") and player.feed(b"def")
    assert player.finish() is None and heard.read_bytes() == b"abcdef"
    broken = StreamPlayer([str(_install(bin_dir, "play", 'echo "no audio device" >&2; exit 1'))])
    while broken.feed(b"x" * 65536):  # a player gone: feeding stops instead of raising
        pass
    assert broken.finish() == "play could not play the stream: no audio device"
