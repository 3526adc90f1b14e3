"""Writes the JSON Schemas of the contracts to contracts/schemas/. Run: python -m contracts.schema_export"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import TypeAdapter

from contracts.events import SynthesisEvent
from contracts.requests import SynthesisRequest

SCHEMA_DIR = Path(__file__).parent / "schemas"


def render_schemas() -> dict[str, str]:
    """File name → JSON text, exactly as committed."""
    schemas = {
        "synthesis-request.v1.json": SynthesisRequest.model_json_schema(),
        "synthesis-event.v1.json": TypeAdapter(SynthesisEvent).json_schema(),
    }
    return {name: json.dumps(s, indent=2, sort_keys=True) + "\n" for name, s in schemas.items()}


def main() -> int:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for name, text in render_schemas().items():
        (SCHEMA_DIR / name).write_text(text)
        print(f"wrote {SCHEMA_DIR / name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
