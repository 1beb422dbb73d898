"""A small NetworkPolicy evaluator: who may open a connection to whom, on which port.

The deployment tests use it to turn the rendered manifests into a reachability
question ("may the gateway reach PostgreSQL on 5432?") answered with the same rules
the cluster's network plugin applies, so a policy that forgets an edge (or admits one
too many) fails a test instead of a pod in the hospital.

Semantics implemented (networking.k8s.io/v1 NetworkPolicy, as the Kubernetes docs
define them):

- A policy applies to the pods of its own namespace (`default` when it names none)
  that its `spec.podSelector` selects; an empty selector `{}` selects every pod of the
  namespace.
- `policyTypes` says which directions it governs; when absent it is `[Ingress]`, plus
  `Egress` if the policy has an `egress` section.
- Isolation is per direction: a pod is isolated for ingress (egress) when at least one
  policy of that direction selects it; then only what some rule of those policies
  admits is allowed (default deny). A pod no policy of a direction selects is open in
  that direction. Policies are additive: the union of their rules, never an order.
- A connection from pod A to pod B needs both A's egress and B's ingress to allow it.
  Traffic from an address outside the cluster needs only B's ingress; traffic to one
  only A's egress. Traffic inside one pod (loopback, a sidecar) is never filtered.
- A rule matches when one of its peers matches the other end and one of its ports
  matches the destination port. A missing or empty `from`/`to` matches every peer; a
  missing or empty `ports` matches every port.
- Peers: `podSelector` alone = pods of the policy's namespace; `namespaceSelector`
  alone = every pod of the selected namespaces; both in ONE peer = the selected pods
  within the selected namespaces (an AND, unlike two peers, which are an OR).
  Selectors combine `matchLabels` and `matchExpressions` (In, NotIn, Exists,
  DoesNotExist; NotIn and DoesNotExist match a pod without the key) with AND.
  Namespaces carry their automatic `kubernetes.io/metadata.name` label.
- `ipBlock`: addresses in `cidr` but not in any `except`. The API leaves open whether
  an ipBlock also matches pod IPs; plugins such as Calico and Cilium do match them, so
  this evaluator assumes the worst: a pod matches an ipBlock when the block (minus its
  excepts) overlaps the pod network given to `Cluster`. That is how "10.0.0.0/8
  admitted to the gateway" shows up as every pod reaching the gateway.
- Ports: `protocol` defaults to TCP; `port` is a number or a named port, absent = every
  port of that protocol; `endPort` extends a numeric port to a range. A named port is
  resolved against the destination pod's container ports (name and protocol); it never
  matches an address outside the cluster.

Not modelled: Services (policies act on pod ports after the Service's translation, so
callers ask about pod ports), node-local and host-network traffic, plugin-specific
policy kinds, and namespaces without policies beyond the ones given (they are open).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob",
                  "Pod"}


@dataclass(frozen=True)
class ContainerPort:
    number: int
    name: str | None = None
    protocol: str = "TCP"


@dataclass(frozen=True)
class Pod:
    """A pod (or every replica of a workload: they share labels and ports)."""

    name: str  # e.g. "Deployment/gateway", used in messages
    namespace: str
    labels: Mapping[str, str]
    ports: tuple[ContainerPort, ...] = ()

    def port(self, name_or_number: str | int) -> ContainerPort:
        """The container port by name or number (a number not declared is still a port)."""
        for p in self.ports:
            if name_or_number in (p.name, p.number):
                return p
        if isinstance(name_or_number, int):
            return ContainerPort(name_or_number)
        raise KeyError(f"{self.name} has no container port named {name_or_number}")


Endpoint = Pod | IPAddress


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def selector_matches(selector: Mapping | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector: matchLabels AND every matchExpression; `{}` matches everything."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op not in {"In", "NotIn", "Exists", "DoesNotExist"}:
            raise ValueError(f"unknown selector operator {op}")
    return True


def policy_types(policy: Mapping) -> set[str]:
    spec = policy["spec"]
    if spec.get("policyTypes"):
        return set(spec["policyTypes"])
    return {"Ingress", "Egress"} if "egress" in spec else {"Ingress"}


def _name(obj: Mapping) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


@dataclass
class Cluster:
    """Pods, namespaces and policies; answers `allows(src, dst, port)`."""

    policies: list[dict]
    pods: list[Pod]
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    pod_network: IPNetwork | None = None

    def __post_init__(self) -> None:
        for pod in self.pods:
            self.namespace_labels.setdefault(pod.namespace, {})
        for ns, labels in self.namespace_labels.items():
            labels.setdefault("kubernetes.io/metadata.name", ns)

    # -- peers and ports
    def _block_matches(self, block: Mapping, end: Endpoint) -> bool:
        cidr = ipaddress.ip_network(block["cidr"], strict=False)
        excepts = [ipaddress.ip_network(e, strict=False) for e in block.get("except") or []]
        if isinstance(end, Pod):
            net = self.pod_network
            if net is None or net.version != cidr.version or not cidr.overlaps(net):
                return False
            # Still reachable unless the excepts cover the whole overlap.
            overlap = cidr if cidr.subnet_of(net) else net
            return not any(overlap.subnet_of(e) for e in excepts if e.version == overlap.version)
        return (end.version == cidr.version and end in cidr
                and not any(end.version == e.version and end in e for e in excepts))

    def _peer_matches(self, peer: Mapping, end: Endpoint, policy_ns: str) -> bool:
        if "ipBlock" in peer:
            return self._block_matches(peer["ipBlock"], end)
        if not isinstance(end, Pod):
            return False
        pod_sel, ns_sel = peer.get("podSelector"), peer.get("namespaceSelector")
        if ns_sel is None:
            in_namespace = end.namespace == policy_ns
        else:
            in_namespace = selector_matches(ns_sel, self.namespace_labels.get(end.namespace, {}))
        return in_namespace and (pod_sel is None or selector_matches(pod_sel, end.labels))

    @staticmethod
    def _port_matches(rule_port: Mapping, dst: Endpoint, port: ContainerPort) -> bool:
        if rule_port.get("protocol", "TCP") != port.protocol:
            return False
        wanted = rule_port.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, str):  # named: the destination pod's container port
            return isinstance(dst, Pod) and any(
                p.name == wanted and p.protocol == port.protocol and p.number == port.number
                for p in dst.ports)
        end = rule_port.get("endPort", wanted)
        return wanted <= port.number <= end

    # -- one direction at one pod
    def _direction(self, pod: Pod, direction: str, other: Endpoint, dst: Endpoint,
                   port: ContainerPort) -> Verdict:
        section, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        selecting = [p for p in self.policies
                     if p["metadata"].get("namespace", "default") == pod.namespace
                     and selector_matches(p["spec"].get("podSelector", {}), pod.labels)
                     and direction in policy_types(p)]
        if not selecting:
            return Verdict(True, f"{pod.name} is not isolated for {section}")
        for policy in selecting:
            ns = pod.namespace
            for i, rule in enumerate(policy["spec"].get(section) or []):
                peers, ports = rule.get(peers_key) or [], rule.get("ports") or []
                if peers and not any(self._peer_matches(p, other, ns) for p in peers):
                    continue
                if ports and not any(self._port_matches(p, dst, port) for p in ports):
                    continue
                return Verdict(True, f"{section} rule {i} of {_name(policy)}")
        names = ", ".join(_name(p) for p in selecting)
        return Verdict(False, f"{section} of {pod.name} is isolated by [{names}] and no rule "
                              f"admits {describe(other)} on {port.number}/{port.protocol}")

    def allows(self, src: Endpoint, dst: Endpoint, port: int | str,
               protocol: str = "TCP") -> Verdict:
        """Whether `src` may open a connection to `dst` on `port` (a number, or a named
        container port of `dst`), with the policy rule (or the missing one) as reason."""
        if isinstance(port, str):
            if not isinstance(dst, Pod):
                raise ValueError("a named port needs a pod as destination")
            target = dst.port(port)
        else:
            target = ContainerPort(port, protocol=protocol)
            if isinstance(dst, Pod):
                target = next((p for p in dst.ports if p.number == port
                               and p.protocol == protocol), target)
        if isinstance(src, Pod) and src == dst:
            return Verdict(True, "inside one pod")
        reasons = []
        if isinstance(src, Pod):
            verdict = self._direction(src, "Egress", dst, dst, target)
            if not verdict:
                return verdict
            reasons.append(verdict.reason)
        if isinstance(dst, Pod):
            verdict = self._direction(dst, "Ingress", src, dst, target)
            if not verdict:
                return verdict
            reasons.append(verdict.reason)
        return Verdict(True, "; ".join(reasons))


def describe(end: Endpoint) -> str:
    return end.name if isinstance(end, Pod) else str(end)


def _pod_template(obj: Mapping) -> Mapping:
    spec = obj["spec"]
    if obj["kind"] == "Pod":
        return obj
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]


def pods_of(objects: Iterable[Mapping], default_namespace: str = "default") -> list[Pod]:
    """One `Pod` per workload in rendered objects: its template labels and container
    ports (init containers too: a native sidecar serves from there)."""
    pods = []
    for obj in objects:
        if obj.get("kind") not in WORKLOAD_KINDS:
            continue
        template = _pod_template(obj)
        spec = template["spec"]
        ports = tuple(
            ContainerPort(p["containerPort"], p.get("name"), p.get("protocol", "TCP"))
            for c in [*spec.get("initContainers", []), *spec["containers"]]
            for p in c.get("ports", [])
        )
        pods.append(Pod(_name(obj), obj["metadata"].get("namespace", default_namespace),
                        dict(template.get("metadata", {}).get("labels", {})), ports))
    return pods


def network_policies(objects: Iterable[Mapping]) -> list[dict]:
    return [dict(o) for o in objects if o.get("kind") == "NetworkPolicy"]
