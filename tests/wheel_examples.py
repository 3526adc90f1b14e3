"""The reference clips that ship inside the f5-tts wheel, and their transcripts (the fixtures that load them
are in conftest.py)."""

from __future__ import annotations

REF_EN_FILE = "infer/examples/basic/basic_ref_en.wav"
REF_EN_TEXT = "Some call me nature, others call me mother nature."
REF_ZH_FILE = "infer/examples/basic/basic_ref_zh.wav"
REF_ZH_TEXT = "对，这就是我，万人敬仰的太乙真人。"
