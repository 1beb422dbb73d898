"""The NetworkPolicies admit exactly the edges of the architecture: the hospital network
reaches only the gateway, inference is reached only from the gateway, feedback only from
the gateway and the trainer (Prometheus in `monitoring` may scrape every pod)."""

from __future__ import annotations

import pytest

MONITORING = "namespace kubernetes.io/metadata.name=monitoring"


def _selects(policy: dict, app: str) -> bool:
    selector = policy["spec"]["podSelector"]
    labels = selector.get("matchLabels")
    if labels is not None:
        return labels == {"app": app}
    return selector == {}


def _peer(peer: dict) -> str:
    if "ipBlock" in peer:
        return f"cidr {peer['ipBlock']['cidr']}"
    if "namespaceSelector" in peer:
        (key, value), = peer["namespaceSelector"]["matchLabels"].items()
        return f"namespace {key}={value}"
    return f"app {peer['podSelector']['matchLabels']['app']}"


def ingress_sources(objects: list[dict], app: str) -> set[str]:
    """Who may open connections to pods labelled app=<app>, by the rendered policies."""
    sources: set[str] = set()
    for policy in objects:
        if policy["kind"] != "NetworkPolicy" or not _selects(policy, app):
            continue
        if "Ingress" not in policy["spec"]["policyTypes"]:
            continue
        for rule in policy["spec"].get("ingress", []):
            sources.update(_peer(p) for p in rule["from"])
    return sources


@pytest.mark.parametrize("overlay", ["local-cpu", "prod-a100"])
def test_each_service_is_reachable_only_along_its_edges(rendered: dict, overlay: str) -> None:
    objects = rendered[overlay]
    hospital_cidr = "cidr 10.20.0.0/16" if overlay == "prod-a100" else "cidr 10.0.0.0/8"
    assert ingress_sources(objects, "gateway") == {
        "namespace medgo.io/network=hospital", hospital_cidr, MONITORING,
    }
    assert ingress_sources(objects, "inference") == {"app gateway", MONITORING}
    assert ingress_sources(objects, "feedback") == {"app gateway", "app trainer", MONITORING}
    assert ingress_sources(objects, "trainer") == {MONITORING}


@pytest.mark.parametrize("overlay", ["local-cpu", "prod-a100"])
def test_every_pod_may_resolve_dns(rendered: dict, overlay: str) -> None:
    dns = next(o for o in rendered[overlay]
               if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "allow-dns-egress")
    assert dns["spec"]["podSelector"] == {}
    ports = {(p["protocol"], p["port"]) for p in dns["spec"]["egress"][0]["ports"]}
    assert ports == {("UDP", 53), ("TCP", 53)}
