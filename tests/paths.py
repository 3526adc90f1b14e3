"""Where the tests find the repository and their data, wherever the test file sits."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
