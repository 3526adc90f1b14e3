"""Dependency audit with pip-audit over .venv. Fails on any known vulnerability; says plainly how many
packages could actually be checked (a registry without PyPI's per-version JSON API lets pip-audit check
nothing, which must not read as "no vulnerabilities")."""

from __future__ import annotations

import json
import subprocess
import sys


def main() -> int:
    run = subprocess.run(
        [sys.executable, "-m", "pip_audit", "--skip-editable", "--progress-spinner", "off", "-f", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(run.stdout)
    except ValueError:
        print(f"audit: pip-audit failed to run: {run.stderr.strip()[-500:]}")
        return 1
    deps = report.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    vulnerable = [d for d in deps if d.get("vulns")]
    for dep in vulnerable:
        ids = ", ".join(v["id"] for v in dep["vulns"])
        print(f"audit: {dep['name']} {dep['version']}: {ids}")
    print(
        f"audit: checked {len(deps) - len(skipped)} of {len(deps)} packages, {len(vulnerable)} vulnerable"
        + (
            " (the package index here does not serve per-version metadata; run where pypi.org is reachable)"
            if skipped and len(skipped) == len(deps)
            else ""
        )
    )
    return 1 if vulnerable else 0


if __name__ == "__main__":
    raise SystemExit(main())
