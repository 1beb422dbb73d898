"""The feedback store's service scopes: which caller may do what (least privilege).

Each `/v1` route requires one scope (`medgo_common.service_auth.require_scope`); the
caller → scopes mapping is the setting `MEDGO_FEEDBACK_SERVICE_SCOPES` (JSON), whose
default is `DEFAULT_SCOPES` below. A leaked gateway token can then only add records,
and a trainer token can only read the exports and statistics it trains and gates on,
and run the retention purge it schedules (which deletes only what is already due).
"""

from __future__ import annotations

from medgo_common.service_auth import ALL_SCOPES

INTERACTIONS_WRITE = "interactions:write"  # POST /v1/interactions (the gateway's recorder)
RATINGS_WRITE = "ratings:write"  # POST /v1/ratings, first try and retries alike
INTERACTIONS_READ = "interactions:read"  # GET /v1/interactions/{id}: one conversation
EXPORTS_READ = "exports:read"  # GET /v1/exports/{kind}: every conversation, for training
STATS_READ = "stats:read"  # GET /v1/stats and GET /v1/stats/canary-gate
GATE_OVERRIDE = "gate:override"  # POST /v1/stats/canary-gate/overrides (ops' decision)
# GET /v1/retention and POST /v1/retention/purge. The purge takes no cutoff: it applies
# the configured period, so a leaked token can only run the daily purge early.
RETENTION_RUN = "retention:run"

KNOWN_SCOPES = frozenset({
    INTERACTIONS_WRITE, RATINGS_WRITE, INTERACTIONS_READ, EXPORTS_READ, STATS_READ,
    GATE_OVERRIDE, RETENTION_RUN,
})

DEFAULT_SCOPES: dict[str, tuple[str, ...]] = {  # tuples: a stable order in the docs' table
    "gateway": (INTERACTIONS_WRITE, RATINGS_WRITE),
    "trainer": (EXPORTS_READ, STATS_READ, RETENTION_RUN),  # RETENTION_RUN: medgo-train purge
    "ops": (ALL_SCOPES,),
}
