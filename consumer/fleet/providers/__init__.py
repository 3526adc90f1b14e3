"""Where workers run: local processes, RunPod pods. Each provider implements `Provider` (base.py)."""
