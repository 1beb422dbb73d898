"""Property-based runs of a service's own OpenAPI schema with schemathesis.

`assert_schema_holds(app, auth_for)` calls every operation of the app's schema with
generated requests, in process through the ASGI app (schemathesis drives its
lifespan), and checks each response: no 5xx, status codes, headers and bodies as the
schema documents them. `auth_for(method, path)` gives the headers of a caller allowed
to use the operation, so generated requests reach the handlers instead of stopping
at 401/403. A bounded number of examples per operation keeps a run well under a
minute; a failure is raised by Hypothesis with the request that reproduces it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

# A schema cannot express a service's settings (bounds, the model name, a recipe that
# must exist), so a schema-valid request may rightly be refused, and accepting an
# undeclared extra is not a server error: those two checks are not ours to pass.
NOT_OURS = (positive_data_acceptance, negative_data_rejection)
EXAMPLES_PER_OPERATION = 25

AuthFor = Callable[[str, str], dict[str, str]]


def assert_schema_holds(
    app, auth_for: AuthFor, *, examples: int = EXAMPLES_PER_OPERATION,
    excluded: Collection = NOT_OURS,
) -> set[tuple[str, str]]:
    """Run every operation; returns the `(method, path)` pairs exercised."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        headers = auth_for(operation.method.upper(), operation.path)
        _property(operation, headers, examples, list(excluded))()
    return {(operation.method.upper(), operation.path) for operation in operations}


def _property(operation, headers: dict[str, str], examples: int, excluded: list):
    @given(case=operation.as_strategy())
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        case.call_and_validate(headers=headers, excluded_checks=excluded)

    return run
