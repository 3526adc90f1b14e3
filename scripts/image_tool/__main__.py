"""Build the Dockerfile's `runtime` and `api` targets here and check them: stand-in bases (debootstrap), the tiny
random checkpoint as `model-src`, buildah builds with the host's index settings mounted, what the images carry,
the bad build arguments each refused at their step, and the images run (podman) with the embedded AWS.

The last line sums it up:
    image: runtime_mb=R api_mb=A build_s=B ready_s=T job=ok sigterm=ok multi_gpu=ok
Exit status: 0 every check held; 1 a check failed (the lines above say which); 2 this machine cannot build
(not root, or a tool is missing: `bash scripts/image` installs them with apt-get)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from scripts.image_tool.bases import ensure_bases
from scripts.image_tool.build import (
    REPO,
    Build,
    ModelSource,
    api_build,
    pip_mounts,
    runtime_build,
    standin_args,
    tiny_model_source,
)
from scripts.image_tool.engines import (
    ToolError,
    buildah,
    dangling_images,
    image_size_mb,
    missing_tools,
    remove_images,
    run,
)
from scripts.image_tool.hygiene import problems

# Bad build arguments: each build must stop at its step with one line naming the cause and the argument to set.
BAD_INPUTS: list[tuple[str, str, dict[str, str], str]] = [
    ("no MODEL_SHA256", "weights", {"MODEL_SHA256": ""}, "MODEL_SHA256 is required"),
    ("a wrong MODEL_SHA256", "weights", {"MODEL_SHA256": "0" * 64}, "(build argument: MODEL_SHA256)"),
    (
        "model-src without a checkpoint",
        "weights",
        {"MODEL_ARCH": "F5TTS_v1_Base"},  # the production architecture: the empty context has no model.json
        "model.safetensors not found in /model-src (build argument: MODEL_FILE)",
    ),
    ("an unknown FLASH_ATTN_WHEEL", "build", {"FLASH_ATTN_WHEEL": "flash-attn==2.8.3"}, "FLASH_ATTN_WHEEL="),
]


BAD_TAG = "localhost/f5-worker-bad:check"


def say(message: str) -> None:
    print(f"[image] {message}", file=sys.stderr, flush=True)


def check_bad_inputs(model: ModelSource, mounts: list[str], work: Path, log: Path) -> list[str]:
    failures: list[str] = []
    empty = work / "empty-model-src"
    empty.mkdir(exist_ok=True)
    for label, target, overrides, expected in BAD_INPUTS:
        other_context = "without a checkpoint" in label
        contexts = {"model-src": empty if other_context else model.directory}
        build = Build(target, BAD_TAG, standin_args(model) | overrides, contexts, no_cache=other_context)
        output = build.run(mounts, log, check=False)
        run(buildah("rmi", "--force", BAD_TAG), check=False)  # only there if the build wrongly succeeded
        lines = [line for line in output.splitlines() if expected in line and "STEP" not in line]
        failed = "error building at STEP" in output or "exit status" in output
        if not failed or not lines:
            failures.append(f"bad input ({label}): the build did not stop with a line saying {expected!r}")
        else:
            say(f"refused {label} in {build.seconds:.0f} s: {lines[0].strip()}")
    return failures


def run_checks(runtime: str, api: str, log: Path) -> dict[str, Any]:
    """The run checks, inside a fresh network namespace whose only interface is its loopback."""
    name = f"f5-image-{os.getpid()}"
    run(["ip", "netns", "add", name])
    try:
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        argv = ["ip", "netns", "exec", name, sys.executable, "-m", "scripts.image_tool.run_checks"]
        argv += ["--runtime", runtime, "--api", api, "--netns", f"/run/netns/{name}"]
        env = os.environ | {"F5_IMAGE_HOST_PID": str(os.getpid())}  # podman runs back in this process's namespaces
        result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800, check=False)
        with log.open("a", encoding="utf-8") as handle:
            handle.write(result.stdout + result.stderr)
        last = result.stdout.strip().splitlines()[-1:] or ["{}"]
        try:
            return dict(json.loads(last[0]))
        except ValueError:
            return {"failures": [f"run checks: exit {result.returncode}: {result.stderr.strip()[-500:]}"]}
    finally:
        run(["ip", "netns", "delete", name], check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-bad-input", action="store_true", help="skip the refused-build checks")
    parser.add_argument("--log", type=Path, default=None, help="full tool output (default: a temporary file)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("image: building and running images here needs root (chroot builds, network namespaces)", file=sys.stderr)
        return 2
    if missing := missing_tools():
        print(f"image: missing {', '.join(missing)}: `bash scripts/image` installs them with apt-get", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="f5-image-"))
    log = args.log or work / "build.log"
    say(f"full output: {log}")
    failures: list[str] = []
    summary: dict[str, Any] = {}
    try:
        started = time.monotonic()
        made = ensure_bases(log)
        bases_s = time.monotonic() - started
        say(f"stand-in bases: {'made ' + ', '.join(made) if made else 'cached'} ({bases_s:.0f} s)")
        model = tiny_model_source()
        say(f"model-src: {model.directory} (sha256 {model.sha256[:16]}...)")
        mounts = pip_mounts(work)
        builds = [runtime_build(model), api_build()]
        superseded = dangling_images()  # earlier builds' caches: removed once these builds stand
        for build in builds:
            build.run(mounts, log)
            say(f"built {build.tag} ({build.target}) in {build.seconds:.0f} s, {image_size_mb(build.tag)} MB")
        remove_images(superseded)  # a 9 GB image a build: without this, the store fills the disk
        summary["runtime_mb"] = image_size_mb(builds[0].tag)
        summary["api_mb"] = image_size_mb(builds[1].tag)
        summary["build_s"] = round(bases_s + sum(b.seconds for b in builds))
        for build in builds:
            found = problems(build.tag)
            failures += [f"{build.tag}: {problem}" for problem in found]
            say(f"{build.tag}: {'carries nothing of the build host' if not found else f'{len(found)} problem(s)'}")
        if not args.skip_bad_input:
            failures += check_bad_inputs(model, mounts, work, log)
        results = run_checks(builds[0].tag, builds[1].tag, log)
        failures += results.pop("failures", [])
        summary |= results
    except ToolError as exc:
        failures.append(str(exc))
    finally:
        if args.log is None and not failures:
            shutil.rmtree(work, ignore_errors=True)
    for failure in failures:
        print(f"image: FAILED {failure}", file=sys.stderr)
    extra = {k: v for k, v in summary.items() if k not in ("runtime_mb", "api_mb", "build_s", "ready_s")}
    say(f"details: {json.dumps(extra)}")
    fields = ["runtime_mb", "api_mb", "build_s", "ready_s"]
    line = " ".join(f"{k}={summary.get(k, '?')}" for k in fields)
    line += " " + " ".join(f"{k}={summary.get(k, 'failed')}" for k in ("job", "sigterm", "multi_gpu"))
    print(f"image: {line}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
