"""The NetworkPolicy evaluator (netpol.py) on small hand-written policies: one test per
rule of its documented semantics, including the ones people get wrong (a peer with both
selectors is an AND, two peers are an OR; an empty podSelector selects everything;
ipBlock excepts; named ports resolve on the destination; both ends must allow)."""

from __future__ import annotations

import ipaddress
from types import ModuleType

import pytest

NS = "app"


def policy(name: str, selector: dict, *, ingress: list | None = None,
           egress: list | None = None, types: list[str] | None = None,
           namespace: str = NS) -> dict:
    spec: dict = {"podSelector": selector}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    if types is not None:
        spec["policyTypes"] = types
    return {"kind": "NetworkPolicy", "metadata": {"name": name, "namespace": namespace},
            "spec": spec}


@pytest.fixture()
def pods(netpol: ModuleType) -> dict:
    P, Port = netpol.Pod, netpol.ContainerPort
    return {
        "web": P("Deployment/web", NS, {"app": "web", "tier": "front"},
                 (Port(8080, "http"), Port(9090, "metrics"))),
        "db": P("Deployment/db", NS, {"app": "db"}, (Port(5432, "pg"),)),
        "batch": P("Job/batch", NS, {"app": "batch", "tier": "back"}),
        "other": P("Deployment/other", "other", {"app": "web"}),
        "prom": P("Deployment/prometheus", "monitoring", {"app": "prometheus"}),
    }


def cluster(netpol: ModuleType, pods: dict, *policies: dict, **kw) -> object:
    labels = {"monitoring": {"team": "obs"}, "other": {"team": "dev"}}
    return netpol.Cluster(list(policies), list(pods.values()), labels, **kw)


def test_no_policy_means_open(netpol: ModuleType, pods: dict) -> None:
    c = cluster(netpol, pods)
    assert c.allows(pods["batch"], pods["db"], 5432)
    assert c.allows(pods["db"], ipaddress.ip_address("8.8.8.8"), 443)


def test_an_empty_pod_selector_isolates_every_pod_of_the_namespace_only(
    netpol: ModuleType, pods: dict
) -> None:
    c = cluster(netpol, pods, policy("deny", {}, types=["Ingress", "Egress"]))
    verdict = c.allows(pods["web"], pods["db"], 5432)
    assert not verdict
    assert "egress of Deployment/web is isolated by [NetworkPolicy/deny]" in verdict.reason
    assert c.allows(pods["other"], pods["prom"], 80)  # other namespaces untouched
    assert c.allows(pods["web"], pods["web"], 8080)  # inside one pod


def test_both_ends_must_allow(netpol: ModuleType, pods: dict) -> None:
    to_db = {"to": [{"podSelector": {"matchLabels": {"app": "db"}}}]}
    c = cluster(netpol, pods, policy("deny", {}, types=["Ingress", "Egress"]),
                policy("web-out", {"matchLabels": {"app": "web"}}, egress=[to_db]))
    verdict = c.allows(pods["web"], pods["db"], 5432)
    assert not verdict and "ingress of Deployment/db" in verdict.reason
    from_web = {"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}
    c.policies.append(policy("db-in", {"matchLabels": {"app": "db"}}, ingress=[from_web]))
    assert c.allows(pods["web"], pods["db"], 5432)
    assert not c.allows(pods["batch"], pods["db"], 5432)


def test_policy_types_default_to_ingress_plus_egress_when_present(
    netpol: ModuleType, pods: dict
) -> None:
    c = cluster(netpol, pods, policy("in-only", {"matchLabels": {"app": "db"}}, ingress=[]))
    assert not c.allows(pods["web"], pods["db"], 5432)
    assert c.allows(pods["db"], ipaddress.ip_address("8.8.8.8"), 443)  # egress not isolated
    c = cluster(netpol, pods, policy("out", {"matchLabels": {"app": "db"}}, egress=[]))
    assert not c.allows(pods["db"], ipaddress.ip_address("8.8.8.8"), 443)


def test_policies_are_a_union(netpol: ModuleType, pods: dict) -> None:
    from_web = {"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}
    from_batch = {"from": [{"podSelector": {"matchLabels": {"app": "batch"}}}]}
    db = {"matchLabels": {"app": "db"}}
    c = cluster(netpol, pods, policy("a", db, ingress=[from_web]),
                policy("b", db, ingress=[from_batch]))
    assert c.allows(pods["web"], pods["db"], 5432)
    assert c.allows(pods["batch"], pods["db"], 5432)
    assert not c.allows(pods["prom"], pods["db"], 5432)


def test_selectors_combine_match_labels_and_expressions(netpol: ModuleType) -> None:
    labels = {"app": "web", "tier": "front"}
    match = netpol.selector_matches
    assert match({}, labels)
    assert match({"matchLabels": {"app": "web"},
                  "matchExpressions": [{"key": "tier", "operator": "In",
                                        "values": ["front", "edge"]}]}, labels)
    assert not match({"matchLabels": {"app": "web"},
                      "matchExpressions": [{"key": "tier", "operator": "NotIn",
                                            "values": ["front"]}]}, labels)
    assert match({"matchExpressions": [{"key": "zone", "operator": "NotIn",
                                        "values": ["a"]}]}, labels)  # absent key
    assert match({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, labels)
    assert not match({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]},
                     labels)
    assert not match({"matchExpressions": [{"key": "zone", "operator": "In",
                                            "values": ["a"]}]}, labels)


def test_one_peer_with_both_selectors_is_an_and_two_peers_an_or(
    netpol: ModuleType, pods: dict
) -> None:
    ns, app = {"matchLabels": {"team": "obs"}}, {"matchLabels": {"app": "prometheus"}}
    db = {"matchLabels": {"app": "db"}}
    both = cluster(netpol, pods, policy("p", db, ingress=[
        {"from": [{"namespaceSelector": ns, "podSelector": {"matchLabels": {"app": "web"}}}]}]))
    assert not both.allows(pods["prom"], pods["db"], 5432)  # right namespace, wrong pod
    assert not both.allows(pods["web"], pods["db"], 5432)  # right pod, wrong namespace
    both = cluster(netpol, pods, policy("p", db, ingress=[
        {"from": [{"namespaceSelector": ns, "podSelector": app}]}]))
    assert both.allows(pods["prom"], pods["db"], 5432)
    either = cluster(netpol, pods, policy("p", db, ingress=[
        {"from": [{"namespaceSelector": ns}, {"podSelector": {"matchLabels": {"app": "web"}}}]}]))
    assert either.allows(pods["prom"], pods["db"], 5432)
    assert either.allows(pods["web"], pods["db"], 5432)
    assert not either.allows(pods["other"], pods["db"], 5432)  # app=web, other namespace


def test_a_pod_selector_alone_stays_in_the_policys_namespace(
    netpol: ModuleType, pods: dict
) -> None:
    c = cluster(netpol, pods, policy("p", {"matchLabels": {"app": "db"}}, ingress=[
        {"from": [{"podSelector": {}}]}]))
    assert c.allows(pods["batch"], pods["db"], 5432)
    assert not c.allows(pods["other"], pods["db"], 5432)
    c = cluster(netpol, pods, policy("p", {"matchLabels": {"app": "db"}}, ingress=[
        {"from": [{"namespaceSelector": {}}]}]))
    assert c.allows(pods["other"], pods["db"], 5432)


def test_ip_block_with_except(netpol: ModuleType, pods: dict) -> None:
    block = {"cidr": "10.20.0.0/16", "except": ["10.20.5.0/24"]}
    c = cluster(netpol, pods, policy("p", {"matchLabels": {"app": "web"}}, ingress=[
        {"from": [{"ipBlock": block}]}]))
    ip = ipaddress.ip_address
    assert c.allows(ip("10.20.1.7"), pods["web"], 8080)
    assert not c.allows(ip("10.20.5.7"), pods["web"], 8080)
    assert not c.allows(ip("10.21.0.1"), pods["web"], 8080)
    assert not c.allows(pods["batch"], pods["web"], 8080)  # pods: no pod network given


def test_an_ip_block_covering_the_pod_network_admits_pods(
    netpol: ModuleType, pods: dict
) -> None:
    web = {"matchLabels": {"app": "web"}}
    wide = policy("p", web, ingress=[{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}])
    pod_net = ipaddress.ip_network("10.244.0.0/16")
    assert cluster(netpol, pods, wide, pod_network=pod_net).allows(
        pods["batch"], pods["web"], 8080)
    excepted = policy("p", web, ingress=[{"from": [{"ipBlock": {
        "cidr": "10.0.0.0/8", "except": ["10.244.0.0/16"]}}]}])
    assert not cluster(netpol, pods, excepted, pod_network=pod_net).allows(
        pods["batch"], pods["web"], 8080)
    narrow = policy("p", web, ingress=[{"from": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]}])
    assert not cluster(netpol, pods, narrow, pod_network=pod_net).allows(
        pods["batch"], pods["web"], 8080)


def test_ports_numbers_names_protocols_and_ranges(netpol: ModuleType, pods: dict) -> None:
    web = {"matchLabels": {"app": "web"}}
    named = cluster(netpol, pods, policy("p", web, ingress=[{"ports": [{"port": "metrics"}]}]))
    assert named.allows(pods["prom"], pods["web"], 9090)
    assert named.allows(pods["prom"], pods["web"], "metrics")
    assert not named.allows(pods["prom"], pods["web"], 8080)
    assert not named.allows(pods["prom"], pods["web"], 9090, "UDP")
    ranged = cluster(netpol, pods, policy("p", web, ingress=[
        {"ports": [{"port": 8000, "endPort": 8100, "protocol": "TCP"}]}]))
    assert ranged.allows(pods["prom"], pods["web"], 8080)
    assert not ranged.allows(pods["prom"], pods["web"], 9090)
    udp = cluster(netpol, pods, policy("p", web, ingress=[{"ports": [{"protocol": "UDP"}]}]))
    assert udp.allows(pods["prom"], pods["web"], 53, "UDP")
    assert not udp.allows(pods["prom"], pods["web"], 53)


def test_a_named_egress_port_resolves_on_the_destination_never_outside(
    netpol: ModuleType, pods: dict
) -> None:
    c = cluster(netpol, pods, policy("p", {"matchLabels": {"app": "batch"}},
                                     egress=[{"ports": [{"port": "pg"}]}]))
    assert c.allows(pods["batch"], pods["db"], 5432)
    assert not c.allows(pods["batch"], pods["web"], 8080)
    assert not c.allows(pods["batch"], ipaddress.ip_address("10.1.1.1"), 5432)


def test_pods_of_reads_workloads_with_their_template_labels_and_ports(
    netpol: ModuleType,
) -> None:
    cronjob = {"kind": "CronJob", "metadata": {"name": "loop", "namespace": NS},
               "spec": {"jobTemplate": {"spec": {"template": {
                   "metadata": {"labels": {"app": "trainer"}},
                   "spec": {"initContainers": [{"name": "side", "ports": [
                       {"containerPort": 8001, "name": "http"}]}],
                            "containers": [{"name": "main"}]}}}}}}
    (pod,) = netpol.pods_of([cronjob, {"kind": "Service", "metadata": {"name": "x"}}])
    assert pod == netpol.Pod("CronJob/loop", NS, {"app": "trainer"},
                             (netpol.ContainerPort(8001, "http"),))
