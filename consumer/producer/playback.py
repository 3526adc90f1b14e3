"""Play a saved audio file with whatever player this machine has (`say --play`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

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
