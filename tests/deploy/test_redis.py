"""Redis for the gateway's shared quotas: in prod-a100 and compose, without persistence,
and the gateway pointed at it by `MEDGO_GATEWAY_REDIS_URL` (who may reach it is checked
with the other edges in test_reachability.py)."""

from __future__ import annotations


def _named(objects: list[dict], kind: str, name: str) -> dict:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def test_prod_runs_redis_for_the_gateway(rendered: dict) -> None:
    objects = rendered["prod-a100"]
    service = _named(objects, "Service", "redis")
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(6379, "redis")]
    redis = _named(objects, "Deployment", "redis")
    args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--save") + 1] == "" and args[args.index("--appendonly") + 1] == "no"
    gateway_config = next(o for o in objects if o["kind"] == "ConfigMap"
                          and o["metadata"]["name"].startswith("gateway-config"))
    assert gateway_config["data"]["MEDGO_GATEWAY_REDIS_URL"] == "redis://redis:6379/0"


def test_local_overlay_counts_in_memory(rendered: dict) -> None:
    objects = rendered["local-cpu"]
    assert not [o for o in objects if o["metadata"]["name"] == "redis"]


def test_compose_gateway_uses_the_redis_service(compose: dict) -> None:
    services = compose["services"]
    assert services["gateway"]["environment"]["MEDGO_GATEWAY_REDIS_URL"] == "redis://redis:6379/0"
    assert "redis" in services["gateway"]["depends_on"]
    assert "--appendonly" in services["redis"]["command"]
