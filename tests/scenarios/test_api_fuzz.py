"""The HTTP API tried from outside by a property-based fuzzer over its own `/openapi.json` (schemathesis): every
operation, valid and invalid inputs. The API never answers 5xx, answers only statuses its document declares, and
every response conforms to the documented schema and content type, so generated clients can rely on the document.
"""

from __future__ import annotations

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from consumer.api.app import create_app
from tests.conftest import new_stack

EXAMPLES = 20
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def api_app(aws_endpoint):
    stack = new_stack(aws_endpoint)  # module-scoped: one stack for every example
    # Keyless (loopback) so the fuzzer reaches the routes; the rate limit high enough not to hide them. A speech
    # request for a known voice would wait for a worker: the wait is short (504, declared).
    app = create_app(stack.settings(api_rate_per_minute=1_000_000, api_speech_wait_s=1.0))
    yield app
    app.state.api.waiter.close()  # what the lifespan's end does


@pytest.fixture(scope="module")
def api_schema(api_app):
    return schemathesis.openapi.from_asgi("/openapi.json", api_app)


def test_the_api_answers_what_its_document_declares(api_schema):
    """Every operation, `EXAMPLES` generated cases each (schemathesis' own pytest plugin does not load under
    this pytest: the operations are walked here, one hypothesis run each)."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 12, [op.label for op in operations]
    failures: list[str] = []
    for operation in operations:

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            derandomize=True,
            database=None,
        )
        def try_operation(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=CHECKS)

        try:
            try_operation()
        except Exception as exc:
            failures.append(f"{operation.label}: {str(exc)[:600]}")
    assert not failures, "\n\n".join(failures)


def test_the_document_declares_no_422_and_every_route_its_errors(api_app):
    document = api_app.openapi()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            assert "422" not in statuses, f"{method} {path} declares 422 (validation errors are 400 here)"
            assert {"401", "413", "429"} <= statuses, f"{method} {path}: {sorted(statuses)}"
            if operation.get("parameters") or operation.get("requestBody"):
                params = [p for p in operation.get("parameters", []) if p["name"] != "authorization"]
                if params or operation.get("requestBody"):
                    assert "400" in statuses or "404" in statuses, f"{method} {path} takes input: {sorted(statuses)}"
    assert "HTTPValidationError" not in document.get("components", {}).get("schemas", {})
