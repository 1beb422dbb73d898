"""The job API's service scopes: which caller may start jobs and which may only watch.

Checked per route with `medgo_common.service_auth.require_scope` (the feedback store's
machinery); the caller → scopes mapping is `MEDGO_TRAINER_SERVICE_SCOPES` (JSON), whose
default admits ops alone. A job runs code on the training machine, so no other
service's token — the gateway's least of all — gets in unless ops grants it here.
"""

from __future__ import annotations

from medgo_common.service_auth import ALL_SCOPES

JOBS_WRITE = "jobs:write"  # POST /v1/jobs and POST /v1/jobs/{id}/cancel
JOBS_READ = "jobs:read"  # GET /v1/jobs/{id} and its logs

KNOWN_SCOPES = frozenset({JOBS_WRITE, JOBS_READ})

DEFAULT_SCOPES: dict[str, tuple[str, ...]] = {"ops": (ALL_SCOPES,)}
