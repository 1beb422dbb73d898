"""Property-based run over the feedback service's OpenAPI schema: no input yields a 5xx.

In process on a fresh SQLite database, with a caller holding every scope (the test
settings' gateway token), so generated requests reach each route's handler rather
than stopping at auth; least privilege itself is tested in routes/test_scopes.py.
"""

from __future__ import annotations

from pathlib import Path

from medgo_feedback.app import create_app
from medgo_feedback.db import upgrade_to_head
from medgo_testing.schema_fuzz import assert_schema_holds


def test_no_server_errors(settings_for, gateway_auth, tmp_path: Path):
    settings = settings_for(f"sqlite:///{tmp_path / 'feedback.db'}")
    upgrade_to_head(settings)
    exercised = assert_schema_holds(create_app(settings), lambda method, path: gateway_auth)
    assert {("POST", "/v1/interactions"), ("POST", "/v1/ratings"),
            ("GET", "/v1/exports/{kind}"), ("GET", "/v1/stats")} <= exercised
