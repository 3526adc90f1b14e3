"""The layout's rules that import-linter cannot see: which module calls SQS, which paths and modules the files
outside Python name, and what the LocalStack hook can import with only its declared dependencies."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

from tests.paths import REPO

SQS_CALLS = {
    "receive_message",
    "delete_message",
    "delete_message_batch",
    "change_message_visibility",
    "change_message_visibility_batch",
    "send_message",
    "send_message_batch",
    "purge_queue",
}
QUEUE_ADAPTER = REPO / "consumer" / "aws" / "queue.py"
# Producer-side tools and the local demo talk to SQS themselves (they enqueue, redrive, read events); the worker
# (everything else) goes through the queue adapter.
NOT_THE_WORKER = ("consumer/producer/", "consumer/api/", "consumer/ops/", "consumer/cli.py")


def _sqs_calls(path: Path) -> list[str]:
    calls = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        # `sqs.delete_message(...)` and `aws_retry(sqs.delete_message)(...)` alike
        if isinstance(node, ast.Attribute) and node.attr in SQS_CALLS:
            calls.append(f"{path.relative_to(REPO)}:{node.lineno} {node.attr}")
    return calls


def test_only_the_queue_adapter_calls_sqs_inside_the_worker():
    worker_modules = [
        p
        for p in (REPO / "consumer").rglob("*.py")
        if p != QUEUE_ADAPTER and not str(p.relative_to(REPO)).startswith(NOT_THE_WORKER)
    ]
    assert len(worker_modules) > 30
    assert [call for path in worker_modules for call in _sqs_calls(path)] == []
    assert {"receive_message", "delete_message", "change_message_visibility"} <= {
        call.rsplit(" ", 1)[1] for call in _sqs_calls(QUEUE_ADAPTER)
    }


# --- paths and modules named outside Python -----------------------------------------------------------------------
NAMING_FILES = [
    REPO / "Dockerfile",
    *sorted((REPO / "docker").iterdir()),
    *sorted(  # the repository's files, not a local virtualenv (run-host.sh creates localstack/.venv)
        p
        for p in (REPO / "localstack").rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(REPO).parts[1:-1])
    ),
]
_PATH = re.compile(r"(?<![\w/.-])((?:consumer|contracts)/[\w./-]*[\w/])")
_MODULE = re.compile(r"(?<![\w/.-])((?:consumer|contracts)(?:\.\w+)+)")


def _names(text: str) -> tuple[set[str], set[str]]:
    return set(_PATH.findall(text)), set(_MODULE.findall(text))


def _resolves(dotted: str) -> bool:
    """A module (file or package) of the repository, optionally followed by a name defined in it."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        base = REPO.joinpath(*parts[:cut])
        module = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        if module.is_file():
            rest = parts[cut:]
            if not rest:
                return True
            source = module.read_text(encoding="utf-8")
            return len(rest) == 1 and re.search(rf"^(def|class) {rest[0]}\b|^{rest[0]}\b.*=", source, re.M) is not None
    return False


def test_every_path_and_module_named_outside_python_exists():
    checked = 0
    for file in NAMING_FILES:
        paths, modules = _names(file.read_text(encoding="utf-8"))
        for path in paths:
            assert (REPO / path).exists(), f"{file.relative_to(REPO)} names {path}, which does not exist"
        for module in modules:
            assert _resolves(module), f"{file.relative_to(REPO)} names {module}, which does not exist"
        checked += len(paths) + len(modules)
    assert checked >= 8  # the Dockerfile, prepare_weights.py and the LocalStack hook name several


def test_the_name_check_catches_a_moved_module():
    paths, modules = _names("COPY consumer/engine/checkpoints.py /x\nRUN python -m consumer.init_resources")
    assert paths == {"consumer/engine/checkpoints.py"} and modules == {"consumer.init_resources"}
    assert not (REPO / "consumer/engine/checkpoints.py").exists()
    assert not _resolves("consumer.init_resources")
    assert _resolves("consumer.aws.resources.ResourceSpec") and not _resolves("consumer.aws.resources.Nope")


# --- the LocalStack hook: consumer.ops.init with boto3, pydantic and pydantic-settings only ---------------------------
HOOK_DEPENDENCIES = ("boto3", "pydantic", "pydantic-settings")  # LocalStack's boto3 + what the hook installs


def _distribution_closure(names: tuple[str, ...]) -> list[importlib.metadata.Distribution]:
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = list(names)
    while todo:
        requirement = Requirement(todo.pop())
        key = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if key in seen:
            continue
        seen[key] = importlib.metadata.distribution(requirement.name)
        for dependency in seen[key].requires or []:
            marker = Requirement(dependency).marker
            if marker is None or Marker(str(marker)).evaluate({"extra": ""}):
                todo.append(dependency)
    return list(seen.values())


def _top_level(distribution: importlib.metadata.Distribution) -> set[Path]:
    root = Path(str(distribution.locate_file("")))
    names = {
        f.parts[0]
        for f in distribution.files or []
        if f.parts[0] != ".." and not f.parts[0].endswith((".dist-info", ".data", ".pth")) and f.parts[0] != "bin"
    }
    return {root / name for name in names if (root / name).exists()}


@pytest.fixture(scope="module")
def hook_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with what the hook's container has: consumer/ and contracts/, and the declared dependencies."""
    sandbox = tmp_path_factory.mktemp("hook-sandbox")
    for package in ("consumer", "contracts"):
        (sandbox / package).symlink_to(REPO / package)
    for distribution in _distribution_closure(HOOK_DEPENDENCIES):
        for top in _top_level(distribution):
            if not (sandbox / top.name).exists():
                (sandbox / top.name).symlink_to(top)
    return sandbox


def _import_isolated(sandbox: Path, statement: str) -> subprocess.CompletedProcess[str]:
    # -S: no site-packages; -I would also drop PYTHONPATH, so the sandbox goes on sys.path by hand.
    code = f"import sys; sys.path.insert(0, {str(sandbox)!r}); {statement}"
    return subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60, cwd=sandbox)


def test_localstack_hook_module_imports_with_only_its_declared_dependencies(hook_sandbox: Path):
    result = _import_isolated(hook_sandbox, "import consumer.ops.init; print(sorted(sys.modules))")
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.strip().strip("[]").replace("'", "").split(", "))
    assert not {"tenacity", "structlog", "numpy", "torch"} & loaded
    # and the sandbox is a real restriction: a module that needs more fails there
    refused = _import_isolated(hook_sandbox, "import consumer.worker.job")
    assert refused.returncode != 0 and "ModuleNotFoundError" in refused.stderr
