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
