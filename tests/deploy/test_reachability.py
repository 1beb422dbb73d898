"""Reachability as a tested property: from the rendered manifests of every overlay, the
NetworkPolicy evaluator (netpol.py, its semantics in its docstring) decides who may
open a connection to whom, and this module states the architecture's edges as rules.

Required: the hospital range → the gateway's API (TLS) port; the gateway → inference,
feedback, Redis; feedback → PostgreSQL; the trainer → the Kubernetes API server and
feedback; the retention purge → feedback; training pods ↔ each other; the evaluation
job → its vLLM; Prometheus → every metrics port; every pod → DNS; the serving path →
the OpenTelemetry collector.
Forbidden: vLLM's port from anything but the gateway (and the evaluation pod's own;
Prometheus reads its /metrics there); feedback from anything but the gateway, the
trainer and the retention purge; the retention purge to anything but feedback and DNS
(no Kubernetes API, no database, no other pod); the gateway's API port from inside the
cluster; Prometheus on a port that is not a metrics port (nor any other pod of
`monitoring` on them); any pod to the internet.

Pods the manifests do not render are placed with the labels they have at run time:
training and evaluation pods (the labels medgo_trainer.training.executors gives them;
test_training_job.py checks the real pods against the same policies), Redis (component
`redis`, when an overlay lacks it), Prometheus and the OpenTelemetry collector in
`monitoring`, kube-dns in `kube-system`, and a pod of an unrelated namespace.
Addresses outside the pod network are the overlay's ConfigMap `cluster-network`.

A broken rule fails with "<rule>: <source> → <destination>:<port>: <why>", the why
naming the policies that isolate the pod or the one that admits the edge.
"""

from __future__ import annotations

import copy
import ipaddress
from dataclasses import dataclass
from types import ModuleType

import pytest

NS = "medgo"
INTERNET = ipaddress.ip_address("8.8.8.8")
# Run-time pods, by the labels their creators give them.
TRAINING_LABELS = {"app.kubernetes.io/part-of": "medgo",
                   "app.kubernetes.io/name": "medgo-trainer"}
RENDEZVOUS_PORTS = (23456, 29500)  # torchrun c10d / the operator's MASTER_PORT
NCCL_PORT = 40000  # NCCL picks ephemeral ports


@dataclass
class World:
    cluster: object
    pods: dict[str, object]  # role → Pod
    network: dict[str, str]  # cluster-network data

    def ip(self, key: str) -> ipaddress.IPv4Address:
        """An address inside one of cluster-network's ranges."""
        net = ipaddress.ip_network(self.network[key])
        return net[1] if net.num_addresses > 2 else net[0]


def build_world(netpol: ModuleType, objects: list[dict]) -> World:
    P, Port = netpol.Pod, netpol.ContainerPort
    network = next(o for o in objects if o["kind"] == "ConfigMap"
                   and o["metadata"]["name"] == "cluster-network")["data"]
    rendered = netpol.pods_of(objects, NS)
    pods: dict[str, object] = {}
    for pod in rendered:
        role = pod.name.split("/", 1)[1]
        pods[role] = pod
    if not any(p.labels.get("app") == "redis" for p in rendered):
        pods["redis"] = P("Deployment/redis (component redis, placed by the test)", NS,
                          {"app": "redis"}, (Port(6379, "redis"),))
    pods["training-master"] = P("PyTorchJob/job master", NS,
                                {**TRAINING_LABELS, "medgo.io/role": "master"})
    pods["training-worker"] = P("PyTorchJob/job worker", NS,
                                {**TRAINING_LABELS, "medgo.io/role": "worker"})
    pods["eval"] = P("Job/job-eval (vLLM sidecar + evaluator)", NS,
                     {**TRAINING_LABELS, "medgo.io/role": "eval"}, (Port(8001, "http"),))
    pods["prometheus"] = P("monitoring/prometheus", "monitoring",
                           {"app.kubernetes.io/name": "prometheus"})
    pods["otel-collector"] = P("monitoring/otel-collector", "monitoring",
                               {"app.kubernetes.io/name": "opentelemetry-collector"},
                               (Port(4317, "otlp-grpc"), Port(4318, "otlp-http")))
    pods["kube-dns"] = P("kube-system/kube-dns", "kube-system", {"k8s-app": "kube-dns"},
                         (Port(53, "dns", "UDP"), Port(53, "dns-tcp", "TCP")))
    pods["stranger"] = P("other/stranger", "other", {"app": "gateway"})
    namespaces = {o["metadata"]["name"]: dict(o["metadata"].get("labels", {}))
                  for o in objects if o["kind"] == "Namespace"}
    cluster = netpol.Cluster(netpol.network_policies(objects), list(pods.values()),
                             namespaces, ipaddress.ip_network(network["pod-cidr"]))
    return World(cluster, pods, network)


def _check(out: list[str], rule: str, verdict: object, src: object, dst: object,
           port: object, *, want: bool, netpol: ModuleType) -> None:
    if bool(verdict) != want:
        out.append(f"{rule}: {netpol.describe(src)} → {netpol.describe(dst)}:{port}: "
                   f"{verdict.reason}")


def _metrics_port(pod: object) -> str | None:
    names = {p.name for p in pod.ports}
    return "metrics" if "metrics" in names else "http" if "http" in names else None


def violations(netpol: ModuleType, objects: list[dict]) -> list[str]:
    """Every broken rule of the module docstring, as one message each."""
    world = build_world(netpol, objects)
    c, pods = world.cluster, world.pods
    out: list[str] = []

    def need(rule: str, src: object, dst: object, port: object, proto: str = "TCP") -> None:
        _check(out, rule, c.allows(src, dst, port, proto), src, dst, port, want=True,
               netpol=netpol)

    def deny(rule: str, src: object, dst: object, port: object, proto: str = "TCP") -> None:
        _check(out, rule, c.allows(src, dst, port, proto), src, dst, port, want=False,
               netpol=netpol)

    vllm = [r for r in ("inference", "inference-canary") if r in pods]
    trainers = [r for r in ("trainer", "feedback-loop") if r in pods]
    ours = [r for r, p in pods.items() if p.namespace == NS]

    # -- required edges
    need("hospital range → gateway (API/TLS port)", world.ip("hospital-cidr"),
         pods["gateway"], "api")
    for r in [*vllm, "feedback"]:
        need(f"gateway → {r}", pods["gateway"], pods[r], "http")
    need("gateway → Redis", pods["gateway"], pods["redis"], 6379)
    if "database-cidr" in world.network:
        need("feedback → PostgreSQL", pods["feedback"], world.ip("database-cidr"), 5432)
    for r in trainers:
        need(f"{r} (trainer) → feedback", pods[r], pods["feedback"], "http")
        need(f"{r} (trainer) → Kubernetes API", pods[r], world.ip("api-server-cidr"), 6443)
        need(f"{r} (trainer) → Kubernetes API", pods[r], world.ip("api-server-cidr"), 443)
    need("retention purge → feedback", pods["retention"], pods["feedback"], "http")
    for a, b in (("training-master", "training-worker"), ("training-worker", "training-master")):
        for port in (*RENDEZVOUS_PORTS, NCCL_PORT):
            need("training pods ↔ each other (rendezvous, NCCL)", pods[a], pods[b], port)
    need("evaluation job → its vLLM", pods["eval"], pods["eval"], "http")
    for r in ["gateway", *vllm, "feedback"]:
        need(f"{r} → OpenTelemetry collector", pods[r], pods["otel-collector"], "otlp-grpc")
    for r in trainers:
        deny(f"{r} sends no traces", pods[r], pods["otel-collector"], "otlp-grpc")
    for r in ours:
        port = _metrics_port(pods[r])
        if port:
            need("Prometheus → every metrics port", pods["prometheus"], pods[r], port)
        need("every pod → DNS (UDP)", pods[r], pods["kube-dns"], 53, "UDP")
        need("every pod → DNS (TCP)", pods[r], pods["kube-dns"], 53, "TCP")

    # -- forbidden edges
    pod_net = ipaddress.ip_network(world.network["pod-cidr"])
    for key, cidr in sorted(world.network.items()):
        if key != "pod-cidr" and ipaddress.ip_network(cidr).overlaps(pod_net):
            out.append(f"ranges outside the pod network stay outside: ConfigMap/cluster-network "
                       f"{key} {cidr} overlaps pod-cidr {pod_net}")
    for src_role, src in pods.items():
        if src_role not in {"gateway", "prometheus"}:  # Prometheus: /metrics, API key
            for r in vllm:
                if r != src_role:
                    deny("only the gateway and evaluation jobs reach vLLM", src, pods[r],
                         "http")
        if src_role not in {"eval", "prometheus"}:
            deny("only the evaluation job reaches its vLLM", src, pods["eval"], "http")
        if src_role not in {"gateway", "prometheus", "feedback", "retention", *trainers}:
            deny("only the gateway, the trainer and the retention purge reach feedback", src,
                 pods["feedback"], "http")
        if src_role != "gateway":
            deny("the gateway's API port is for the hospital range only", src,
                 pods["gateway"], "api")
        if src.namespace == NS:
            for port in (443, 80, 53):
                deny("no pod reaches the internet", src, INTERNET, port)
    retention = pods["retention"]
    for dst_role, dst in pods.items():
        if dst_role not in {"feedback", "kube-dns", "retention"}:
            for port in dst.ports or (dst.port(8000),):
                deny("the retention purge reaches feedback only", retention, dst,
                     port.number, port.protocol)
    for key, port in (("api-server-cidr", 443), ("api-server-cidr", 6443),
                      ("database-cidr", 5432)):
        if key in world.network:
            deny("the retention purge reaches feedback only", retention, world.ip(key), port)
    for r in ours:
        metrics = pods[r].port(_metrics_port(pods[r])) if _metrics_port(pods[r]) else None
        for port in pods[r].ports:
            if port != metrics and r != "eval":
                deny("Prometheus reaches metrics ports only", pods["prometheus"], pods[r],
                     port.number, port.protocol)
    return out


@pytest.mark.parametrize("overlay", ["local-cpu", "prod-a100"])
def test_every_required_edge_is_open_and_every_forbidden_one_closed(
    rendered: dict[str, list[dict]], netpol: ModuleType, overlay: str
) -> None:
    found = violations(netpol, rendered[overlay])
    assert not found, "\n".join(found)


def test_prod_knows_every_service_it_renders(rendered: dict[str, list[dict]],
                                             netpol: ModuleType) -> None:
    """The rules above name these pods; a renamed workload must not slip past them."""
    roles = set(build_world(netpol, rendered["prod-a100"]).pods)
    assert {"gateway", "inference", "inference-canary", "feedback", "trainer",
            "feedback-loop", "retention"} <= roles


def _without(objects: list[dict], kind: str, name: str) -> list[dict]:
    return [o for o in objects if not (o["kind"] == kind and o["metadata"]["name"] == name)]


def _policy(objects: list[dict], name: str) -> dict:
    return next(o for o in objects if o["kind"] == "NetworkPolicy"
                and o["metadata"]["name"] == name)


def test_a_missing_edge_names_the_rule_and_the_isolating_policies(
    rendered: dict[str, list[dict]], netpol: ModuleType
) -> None:
    objects = _without(rendered["prod-a100"], "NetworkPolicy", "allow-database-egress")
    found = "\n".join(violations(netpol, objects))
    assert ("feedback → PostgreSQL: Deployment/feedback → 10.30.1.10:5432: egress of "
            "Deployment/feedback is isolated by [NetworkPolicy/allow-dns-egress, "
            "NetworkPolicy/allow-otlp-egress, NetworkPolicy/default-deny] and no rule admits "
            "10.30.1.10 on 5432/TCP") in found
    objects = _without(rendered["prod-a100"], "NetworkPolicy", "allow-training-job-peers")
    assert "training pods ↔ each other" in "\n".join(violations(netpol, objects))


def test_a_range_covering_the_pod_network_opens_the_gateway_to_every_pod(
    rendered: dict[str, list[dict]], netpol: ModuleType
) -> None:
    objects = copy.deepcopy(rendered["prod-a100"])
    _policy(objects, "allow-hospital-to-gateway")["spec"]["ingress"][0]["from"][0][
        "ipBlock"]["cidr"] = "10.0.0.0/8"
    found = "\n".join(violations(netpol, objects))
    assert ("the gateway's API port is for the hospital range only: other/stranger → "
            "StatefulSet/gateway:api: other/stranger is not isolated for egress; ingress rule "
            "0 of NetworkPolicy/allow-hospital-to-gateway") in found


def test_an_address_range_overlapping_the_pod_network_is_named(
    rendered: dict[str, list[dict]], netpol: ModuleType
) -> None:
    objects = copy.deepcopy(rendered["prod-a100"])
    network = next(o for o in objects if o["kind"] == "ConfigMap"
                   and o["metadata"]["name"] == "cluster-network")
    network["data"]["api-server-cidr"] = "10.0.0.0/8"
    assert ("ranges outside the pod network stay outside: ConfigMap/cluster-network "
            "api-server-cidr 10.0.0.0/8 overlaps pod-cidr 10.244.0.0/16") in violations(
                netpol, objects)


def test_an_open_egress_or_a_wide_scrape_is_caught(
    rendered: dict[str, list[dict]], netpol: ModuleType
) -> None:
    objects = copy.deepcopy(rendered["prod-a100"])
    trainer = _policy(objects, "allow-trainer-egress")
    trainer["spec"]["egress"][1]["to"] = []  # any address on 443/6443, as before
    scrape = _policy(objects, "allow-prometheus-scrape")
    scrape["spec"]["ingress"][0]["ports"].append({"protocol": "TCP", "port": 8000})
    found = "\n".join(violations(netpol, objects))
    assert ("no pod reaches the internet: Deployment/trainer → 8.8.8.8:443: egress rule 1 "
            "of NetworkPolicy/allow-trainer-egress") in found
    assert ("Prometheus reaches metrics ports only: monitoring/prometheus → "
            "StatefulSet/gateway:8000") in found
    assert "reach feedback" not in found


def test_retention_confined_to_feedback(rendered: dict[str, list[dict]],
                                        netpol: ModuleType) -> None:
    """Selected by the trainer's policies (app=trainer, as the weekly loop's pods are),
    the purge would also reach the Kubernetes API: the rules catch that."""
    objects = copy.deepcopy(rendered["prod-a100"])
    cronjob = next(o for o in objects if o["kind"] == "CronJob"
                   and o["metadata"]["name"] == "retention")
    cronjob["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]["app"] = "trainer"
    found = "\n".join(violations(netpol, objects))
    assert ("the retention purge reaches feedback only: CronJob/retention → 10.30.0.1:443: "
            "egress rule 1 of NetworkPolicy/allow-trainer-egress") in found


def test_a_scrape_rule_for_a_whole_namespace_opens_the_apis_to_it(
    rendered: dict[str, list[dict]], netpol: ModuleType
) -> None:
    objects = copy.deepcopy(rendered["prod-a100"])
    peer = _policy(objects, "allow-prometheus-scrape")["spec"]["ingress"][0]["from"][0]
    del peer["podSelector"]  # the namespace alone: every pod of monitoring
    found = "\n".join(violations(netpol, objects))
    assert ("only the gateway and evaluation jobs reach vLLM: monitoring/otel-collector → "
            "Deployment/inference:http") in found


def test_vllm_closed_to_everyone_but_the_gateway(
    rendered: dict[str, list[dict]], netpol: ModuleType
) -> None:
    objects = copy.deepcopy(rendered["prod-a100"])
    _policy(objects, "allow-gateway-to-inference")["spec"]["ingress"][0]["from"].append(
        {"namespaceSelector": {}})  # meant "any pod of medgo", means any namespace
    found = "\n".join(violations(netpol, objects))
    assert ("only the gateway and evaluation jobs reach vLLM: other/stranger → "
            "Deployment/inference-canary:http") in found
    assert "Deployment/trainer → Deployment/inference" not in found  # its egress holds
