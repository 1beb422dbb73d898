"""Property-based run over the gateway's own OpenAPI schema: no input yields a 5xx.

The app runs in-process (schemathesis drives its lifespan) in front of the real vLLM;
the feedback service is down, so valid ratings are spooled (202). Each operation is
called with a key whose role may use it, so generated bodies reach the handlers
instead of stopping at 403 (`medgo_testing.schema_fuzz`, shared with the feedback and
trainer runs). Bounded examples keep the run well under a minute.
"""

from __future__ import annotations

from medgo_gateway.app import create_app
from medgo_testing.schema_fuzz import assert_schema_holds


def _role_for(path: str) -> str:
    if path.startswith("/admin"):
        return "ops"
    return "clinician" if path == "/v1/feedback" else "api_client"


def test_no_server_errors(make_settings, vllm_server, keys):
    settings_ = make_settings(inference_url=vllm_server, max_tokens=16, default_max_tokens=4)
    exercised = assert_schema_holds(
        create_app(settings_), lambda method, path: keys.auth(_role_for(path)))
    assert {("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("POST", "/v1/feedback"),
            ("GET", "/admin/routing"), ("DELETE", "/v1/sessions"),
            ("DELETE", "/admin/keys/{key_id}/sessions")} <= exercised
