"""Third-party chatter goes to the log at debug level; f5-worker's own output and warnings do not move."""

from __future__ import annotations

import json
import subprocess
import sys


def _run(code: str, level: str) -> subprocess.CompletedProcess[str]:
    prelude = f"from consumer.core.logs import configure, third_party_output\nconfigure({level!r}, json_lines=True)\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, check=True)


THIRD_PARTY = """
import warnings
with third_party_output("somelib"):
    print("vocab : /some/path/vocab.txt")
    print("partial", end="")
warnings.warn_explicit("Couldn't find ffmpeg", RuntimeWarning, "/site-packages/pydub/utils.py", 170)
print("our own output")
"""


def test_prints_and_warnings_of_other_libraries_are_debug_log_lines():
    quiet = _run(THIRD_PARTY, "INFO")
    assert quiet.stdout == "our own output\n" and quiet.stderr == ""

    verbose = _run(THIRD_PARTY, "DEBUG")
    assert verbose.stdout == "our own output\n"
    lines = [json.loads(line) for line in verbose.stderr.splitlines()]
    assert [(line["event"], line.get("line") or line.get("warning")) for line in lines] == [
        ("third_party_output", "vocab : /some/path/vocab.txt"),
        ("third_party_output", "partial"),
        ("third_party_warning", "Couldn't find ffmpeg"),
    ]
    assert lines[0]["source"] == "somelib" and lines[2]["category"] == "RuntimeWarning"


def test_warnings_from_f5_worker_itself_stay_visible():
    import consumer.core.logs as logs

    own_file = logs.__file__
    code = f"import warnings\nwarnings.warn_explicit('our deprecation', UserWarning, {own_file!r}, 1)\n"
    result = _run(code, "INFO")
    assert "UserWarning: our deprecation" in result.stderr


def test_capturing_prints_before_logging_is_configured_neither_loops_nor_hangs():
    # structlog's default logger prints to stdout: the capture must hand its lines to the real stdout
    code = (
        "from consumer.core.logs import third_party_output\n"
        "with third_party_output('lib'):\n    print('vocab : x')\n    print('tail', end='')\nprint('after')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    lines = result.stdout.splitlines()
    assert lines[-1] == "after" and len(lines) == 3
    assert "line='vocab : x'" in lines[0] or "line=vocab : x" in lines[0]
