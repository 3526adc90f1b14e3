"""Play audio with whatever player this machine has (`say --play`): a saved file, or a stream fed to the
player's standard input as it arrives (`StreamPlayer`), so playback starts at the first block."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path
from typing import IO

# (program, arguments before the file): the first one found on PATH plays. aplay only reads WAV.
PLAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ffplay", ("-nodisp", "-autoexit", "-loglevel", "error")),
    ("afplay", ()),
    ("paplay", ()),
    ("play", ("-q",)),
    ("aplay", ("-q",)),
)


def find_player(path: Path) -> list[str] | None:
    """The command that plays `path`, or None when no known player is installed."""
    for program, args in PLAYERS:
        if program == "aplay" and path.suffix.lower() != ".wav":
            continue
        found = shutil.which(program)
        if found:
            return [found, *args, str(path)]
    return None


def play(path: Path) -> str | None:
    """Play `path` to the end. Returns None when it played, else why it did not (one line)."""
    command = find_player(path)
    if command is None:
        names = ", ".join(program for program, _ in PLAYERS)
        return f"no audio player found (looked for {names}); the file is saved at {path}"
    completed = subprocess.run(command, check=False, capture_output=True, text=True)  # noqa: S603 - known players
    if completed.returncode != 0:
        detail = (completed.stderr or "").strip().splitlines()[-1:] or [f"exit {completed.returncode}"]
        return f"{Path(command[0]).name} could not play {path}: {detail[0]}"
    return None


def stream_command(fmt: str, sample_rate: int) -> list[str] | None:
    """The command that plays `fmt` from standard input, or None when no installed player can."""
    raw = fmt == "pcm"
    if found := shutil.which("ffplay"):
        source = ["-f", "s16le", "-ch_layout", "mono", "-ar", str(sample_rate)] if raw else []
        return [found, "-nodisp", "-autoexit", "-loglevel", "error", *source, "-i", "-"]
    if (found := shutil.which("play")) and fmt in ("wav", "mp3", "pcm"):
        kind = ["-t", "raw", "-e", "signed", "-b", "16", "-c", "1", "-r", str(sample_rate)] if raw else ["-t", fmt]
        return [found, "-q", *kind, "-"]
    if (found := shutil.which("aplay")) and fmt in ("wav", "pcm"):
        kind = ["-t", "raw", "-f", "S16_LE", "-c", "1", "-r", str(sample_rate)] if raw else []
        return [found, "-q", *kind, "-"]
    return None


class StreamPlayer:
    """A player fed block by block. `feed` returns False once the player is gone (closed by the user)."""

    def __init__(self, command: list[str]) -> None:
        self.name = Path(command[0]).name
        self._process = subprocess.Popen(  # noqa: S603 - known players
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._stdin: IO[bytes] = self._process.stdin  # type: ignore[assignment]

    def feed(self, data: bytes) -> bool:
        try:
            self._stdin.write(data)
            self._stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            return False

    def finish(self) -> str | None:
        """Wait for the player to play what it was given. None when it did, else why not (one line)."""
        with contextlib.suppress(BrokenPipeError, OSError):
            self._stdin.close()
        code = self._process.wait()
        if code != 0:
            stderr = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
            detail = stderr.strip().splitlines()[-1:] or [f"exit {code}"]
            return f"{self.name} could not play the stream: {detail[0]}"
        return None
