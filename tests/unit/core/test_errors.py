"""One home for exception classes, and docs/errors.md generated from it."""

from __future__ import annotations

import ast
from pathlib import Path

from consumer.core import errors
from contracts.codes import ErrorCode

_EXCEPTION_BASES = {"Exception", "BaseException", "TimeoutError", "ValueError", "RuntimeError", "OSError"}


def _defined_classes(path: Path) -> list[ast.ClassDef]:
    return [node for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ClassDef)]


def test_every_exception_class_lives_in_the_errors_module(repo_root):
    """A class deriving from an exception is defined in consumer/core/errors.py and nowhere else."""
    exception_names = {
        name for name, value in vars(errors).items() if isinstance(value, type) and issubclass(value, BaseException)
    } | _EXCEPTION_BASES
    offenders = []
    for folder in ("consumer", "contracts", "docker", "benchmarks", "infra", "localstack", "scripts"):
        for path in (repo_root / folder).rglob("*.py"):
            if path == repo_root / "consumer" / "core" / "errors.py" or any(
                part.startswith(".")
                for part in path.relative_to(repo_root).parts  # e.g. localstack/.venv
            ):
                continue
            for cls in _defined_classes(path):
                bases = {getattr(base, "id", getattr(base, "attr", "")) for base in cls.bases}
                if bases & exception_names or any(b.endswith(("Error", "Exception")) for b in bases):
                    offenders.append(f"{path.relative_to(repo_root)}:{cls.lineno} {cls.name}")
    assert offenders == []


def test_errors_doc_is_generated_from_the_classes(repo_root):
    doc = (repo_root / "docs" / "errors.md").read_text()
    assert doc == errors.render_errors_doc(), "run `python -m consumer.core.errors` and commit docs/errors.md"


def test_lease_lost_has_its_own_code_and_every_code_is_documented(repo_root):
    assert errors.LeaseLost("x").code is ErrorCode.LEASE_LOST
    doc = (repo_root / "docs" / "errors.md").read_text()
    published = set(ErrorCode) - {ErrorCode.UNKNOWN, ErrorCode.INVALID_JSON}
    assert {code for code in published if f"`{code.value}`" not in doc} == set()
    assert "`invalid_json`" in doc


def test_unknown_codes_read_as_unknown():
    assert ErrorCode("a_code_from_the_future") is ErrorCode.UNKNOWN
    assert ErrorCode("storage_error") is ErrorCode.STORAGE_ERROR
