"""An executable runbook: every `kubectl` command in the bash blocks of
docs/operations.md is checked against the rendered prod-a100 overlay, so a renamed
Deployment, label, container, port or Secret key breaks a test instead of an on-call
night.

Each command (command substitutions `$(...)` are commands too) is parsed like kubectl
does — global `-n`, the verb, flags with values, positional resources, everything after
`--` left to the container — and checked:

- the namespace exists; `-k` paths are kustomizations of this repository;
- every `kind/name` (or `kind name`) resolves: the kind is known, and the object is
  rendered (generated ConfigMaps by name prefix), a Secret is one the manifests read or
  a Certificate issues, and run-time kinds (Job, PyTorchJob, Pod, …) take any name;
- every `-l` selector matches the labels of some rendered object or pod template (a
  placeholder value such as `<id>` only needs a label key the manifests or the trainer's
  jobs use); `-c` names a container of the selected pods;
- `port-forward` targets a port the Service or pod has;
- `rollout status --timeout` waits at least the Deployment's progressDeadlineSeconds
  (a shorter wait gives up on a model that is still loading);
- `create secret generic` sets every key the manifests read from that Secret, and runs
  as a client-side dry run (no cluster) whose output validates strictly.

Commands this cannot check are listed in UNCHECKED with the reason.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "operations.md"
# Commands (after `kubectl`, as the test normalises them) that cannot be checked here.
UNCHECKED = {
    "apply -f -": "applies what the command before the pipe printed; that one is checked",
}
KINDS = {
    "Deployment": ("deploy", "deployment", "deployments"),
    "StatefulSet": ("sts", "statefulset", "statefulsets"),
    "Service": ("svc", "service", "services"),
    "ConfigMap": ("cm", "configmap", "configmaps"),
    "Secret": ("secret", "secrets"),
    "CronJob": ("cj", "cronjob", "cronjobs"),
    "PersistentVolumeClaim": ("pvc", "persistentvolumeclaim", "persistentvolumeclaims"),
    "NetworkPolicy": ("netpol", "networkpolicy", "networkpolicies"),
    "HorizontalPodAutoscaler": ("hpa", "horizontalpodautoscaler"),
    "PodDisruptionBudget": ("pdb", "poddisruptionbudget", "poddisruptionbudgets"),
    "Certificate": ("cert", "certificate", "certificates"),
    "Namespace": ("ns", "namespace", "namespaces"),
    "ServiceAccount": ("sa", "serviceaccount", "serviceaccounts"),
    "PriorityClass": ("pc", "priorityclass", "priorityclasses"),
}
# Kinds whose objects exist only at run time (the trainer's jobs, pods, events).
RUNTIME_KINDS = {
    "Job": ("job", "jobs"), "PyTorchJob": ("pytorchjob", "pytorchjobs"),
    "TrainJob": ("trainjob", "trainjobs"), "Pod": ("po", "pod", "pods"),
    "Event": ("ev", "event", "events"), "ReplicaSet": ("rs", "replicaset", "replicasets"),
}
ALIASES = {alias: kind for table in (KINDS, RUNTIME_KINDS)
           for kind, aliases in table.items() for alias in aliases}
# Labels the trainer's executor puts on the jobs and pods it creates.
RUNTIME_LABEL_KEYS = {"medgo.io/job", "medgo.io/role", "medgo.io/stage"}
VALUE_FLAGS = {"-n", "--namespace", "-l", "--selector", "-c", "--container", "-o",
               "--output", "-f", "--filename", "-k", "--kustomize", "--from", "--type",
               "-p", "--patch", "--tail", "--since", "--timeout", "--sort-by",
               "--replicas", "--from-literal", "--from-file", "--dry-run", "--context"}
PLACEHOLDER = re.compile(r"<[^>]+>|\$|SUBST")


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"^[ \t]*```bash\n(.*?)^[ \t]*```", text, flags=re.M | re.S)


def _substitutions(line: str) -> tuple[str, list[str]]:
    """`line` with each `$(...)` replaced by SUBST, and the inner commands."""
    inner: list[str] = []
    out, i = [], 0
    while i < len(line):
        if line.startswith("$(", i):
            depth, j = 1, i + 2
            while j < len(line) and depth:
                depth += {"(": 1, ")": -1}.get(line[j], 0)
                j += 1
            body = line[i + 2:j - 1]
            rest, nested = _substitutions(body)
            inner += [rest, *nested]
            out.append("SUBST")
            i = j
        else:
            out.append(line[i])
            i += 1
    return "".join(out), inner


def kubectl_commands(text: str) -> list[list[str]]:
    """Every kubectl invocation in the bash blocks of `text`, as argv after `kubectl`."""
    commands = []
    for block in bash_blocks(text):
        for line in block.replace("\\\n", " ").splitlines():
            outer, inner = _substitutions(line)
            for part in (outer, *inner):
                lexer = shlex.shlex(part, posix=True, punctuation_chars=True)
                lexer.whitespace_split = True
                simple: list[str] = []
                for token in [*lexer, ";"]:
                    if token and set(token) <= set("();<>|&"):
                        if simple and simple[0] == "kubectl":
                            commands.append(simple[1:])
                        simple = []
                    else:
                        simple.append(token)
    return commands


def parse(argv: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """(positional words, flags → values) of one kubectl argv; stops at `--`."""
    words: list[str] = []
    flags: dict[str, list[str]] = {}
    it = iter(argv)
    for token in it:
        if token == "--":
            break
        if token.startswith("-") and token != "-":
            name, eq, value = token.partition("=")
            if not eq and name in VALUE_FLAGS:
                value = next(it)
            flags.setdefault(name, []).append(value)
        else:
            words.append(token)
    return words, flags


class Manifests:
    """What the prod overlay renders, indexed for the checks."""

    def __init__(self, objects: list[dict]) -> None:
        self.objects = objects
        self.names = {(o["kind"], o["metadata"]["name"]) for o in objects}
        self.namespaces = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
        self.workloads = [o for o in objects
                          if o["kind"] in {"Deployment", "StatefulSet", "CronJob"}]
        self.secret_keys: dict[str, set[str]] = {}
        for pod in map(self.pod_spec, self.workloads):
            for c in [*pod.get("initContainers", []), *pod["containers"]]:
                for item in c.get("env", []):
                    ref = item.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        self.secret_keys.setdefault(ref["name"], set()).add(ref["key"])
            for volume in pod.get("volumes", []):
                if "secret" in volume:
                    self.secret_keys.setdefault(volume["secret"]["secretName"], set())
        for o in objects:
            if o["kind"] == "Certificate":
                self.secret_keys.setdefault(o["spec"]["secretName"], set())
            if o["kind"] == "Secret":
                self.secret_keys.setdefault(o["metadata"]["name"], set())

    @staticmethod
    def pod_spec(obj: dict) -> dict:
        spec = obj["spec"]
        if obj["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        return spec["template"]["spec"]

    @staticmethod
    def pod_labels(obj: dict) -> dict:
        spec = obj["spec"]
        if obj["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        return spec["template"]["metadata"].get("labels", {})

    def find(self, kind: str, name: str) -> dict | None:
        hashed = re.compile(rf"{re.escape(name)}-[a-z0-9]{{10}}")
        return next((o for o in self.objects if o["kind"] == kind and (
            o["metadata"]["name"] == name or hashed.fullmatch(o["metadata"]["name"]))), None)

    def exists(self, kind: str, name: str) -> bool:
        if kind in RUNTIME_KINDS or PLACEHOLDER.search(name):
            return True
        if kind == "Secret":
            return name in self.secret_keys
        return self.find(kind, name) is not None

    def selected(self, selector: str) -> list[dict] | None:
        """Workloads/objects whose labels match `selector`; None if it cannot match."""
        pairs = [p.partition("=")[::2] for p in selector.split(",")]
        if any(PLACEHOLDER.search(v) for _, v in pairs):
            keys = {k for o in self.objects for k in o["metadata"].get("labels", {})}
            keys |= {k for w in self.workloads for k in self.pod_labels(w)}
            return [] if all(k in keys | RUNTIME_LABEL_KEYS for k, _ in pairs) else None
        found = [o for o in self.objects if all(
            o["metadata"].get("labels", {}).get(k) == v
            or (o in self.workloads and self.pod_labels(o).get(k) == v) for k, v in pairs)]
        return found or None

    def containers(self, workloads: list[dict]) -> set[str]:
        return {c["name"] for w in workloads if w in self.workloads
                for c in [*self.pod_spec(w).get("initContainers", []),
                          *self.pod_spec(w)["containers"]]}


def _resources(words: list[str]) -> list[tuple[str, str | None]]:
    """(kind, name) pairs of `TYPE/NAME ...` or `TYPE[,TYPE] [NAME ...]`."""
    if not words:
        return []
    if "/" in words[0]:
        return [tuple(w.split("/", 1)) for w in words]
    types = words[0].split(",")
    return [(t, n) for t in types for n in (words[1:] or [None])]


def check(argv: list[str], m: Manifests) -> list[str]:
    words, flags = parse(argv)
    errors: list[str] = []
    for ns in flags.get("-n", []) + flags.get("--namespace", []):
        if ns not in m.namespaces:
            errors.append(f"namespace {ns} is not rendered")
    for path in flags.get("-k", []) + flags.get("--kustomize", []):
        if not (ROOT / path / "kustomization.yaml").is_file():
            errors.append(f"-k {path} is not a kustomization")
    verb, rest = (words[0], words[1:]) if words else ("", [])
    if verb in {"rollout", "create", "set"} and rest:
        verb, rest = f"{verb} {rest[0]}", rest[1:]
    targets: list[dict] = []
    if verb == "create secret":
        errors += _check_secret(rest, flags, m)
        rest = []
    elif verb in {"create namespace"}:
        rest = [f"namespace/{n}" for n in rest]
    elif verb == "create job":
        rest = flags.get("--from", [])
    elif verb == "port-forward":
        rest = rest[:1]
    elif verb == "cp":  # POD:PATH LOCAL (or the reverse)
        rest = [w.partition(":")[0] for w in rest if ":" in w][:1]
    if verb in {"logs", "exec", "port-forward", "cp"} and rest and "/" not in rest[0]:
        rest = [f"pod/{rest[0]}"]
    for alias, name in _resources(rest):
        kind = ALIASES.get(alias.lower())
        if kind is None:
            errors.append(f"unknown resource type {alias}")
        elif name is not None and not m.exists(kind, name):
            errors.append(f"{kind} {name} is not in the prod manifests")
        elif name is not None and kind not in RUNTIME_KINDS:
            found = m.find(kind, name)
            targets += [found] if found else []
    if verb == "port-forward" and len(words) > 2 and targets:
        remote = words[2].rpartition(":")[2]
        target = targets[0]
        ports = ({str(p["port"]) for p in target["spec"].get("ports", [])}
                 if target["kind"] == "Service" else
                 {str(p["containerPort"]) for c in m.pod_spec(target)["containers"]
                  for p in c.get("ports", [])})
        if remote not in ports:
            errors.append(f"{target['kind']} {target['metadata']['name']} has no port "
                          f"{remote} (ports: {', '.join(sorted(ports))})")
    if verb == "rollout status" and targets and flags.get("--timeout"):
        waited = _seconds(flags["--timeout"][0])
        deadline = targets[0]["spec"].get("progressDeadlineSeconds", 600)
        if waited < deadline:
            errors.append(f"--timeout {flags['--timeout'][0]} is shorter than "
                          f"progressDeadlineSeconds {deadline} of {targets[0]['metadata']['name']}")
    for selector in flags.get("-l", []) + flags.get("--selector", []):
        found = m.selected(selector)
        if found is None:
            errors.append(f"selector {selector} matches nothing rendered")
        else:
            targets += found
    for container in flags.get("-c", []) + flags.get("--container", []):
        pool = targets or m.workloads
        if container not in m.containers(pool):
            errors.append(f"no container {container} in the selected pods")
    return errors


def _seconds(duration: str) -> int:
    """A kubectl duration such as 45m, 1h30m, 90s."""
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", duration))


def _check_secret(rest: list[str], flags: dict[str, list[str]], m: Manifests) -> list[str]:
    kind, name = rest[0], rest[1]
    if kind != "generic":
        return [f"secret type {kind} is not used by the manifests"]
    if name not in m.secret_keys:
        return [f"Secret {name} is read by nothing in the prod manifests"]
    keys = {v.partition("=")[0] for v in flags.get("--from-literal", [])}
    keys |= {Path(v.rpartition("=")[2]).name if "=" not in v else v.partition("=")[0]
             for v in flags.get("--from-file", [])}
    missing = m.secret_keys[name] - keys
    return [f"Secret {name} lacks key(s) {', '.join(sorted(missing))} that pods read"] \
        if missing else []


@pytest.fixture(scope="module")
def manifests(rendered: dict) -> Manifests:
    return Manifests(rendered["prod-a100"])


@pytest.fixture(scope="module")
def commands() -> list[list[str]]:
    return kubectl_commands(RUNBOOK.read_text(encoding="utf-8"))


def test_every_kubectl_command_matches_the_prod_manifests(
    commands: list[list[str]], manifests: Manifests
) -> None:
    assert len(commands) >= 40, "the runbook's bash blocks were not read"
    problems = [f"kubectl {shlex.join(argv)}: {error}"
                for argv in commands if shlex.join(argv) not in UNCHECKED
                for error in check(argv, manifests)]
    assert not problems, "\n".join(problems)


def test_secrets_created_by_the_runbook_dry_run_and_validate(
    commands: list[list[str]], kubectl: str, k8s_schemas: object, tmp_path: Path,
    manifests: Manifests,
) -> None:
    """`kubectl create secret` runs client-side (no cluster): placeholders become dummy
    values, files a dummy file; the Secret it prints must validate strictly, and together
    the runbook creates every Secret that prod's pods read but prod does not render."""
    dummy = tmp_path / "dummy"
    dummy.write_text("x")
    created = set()
    for argv in commands:
        words, flags = parse(argv)
        if words[:2] != ["create", "secret"]:
            continue
        literal = [f"--from-literal={v.partition('=')[0]}=x" for v in flags["--from-literal"]] \
            if "--from-literal" in flags else []
        files = [f"--from-file={Path(v).name}={dummy}" for v in flags.get("--from-file", [])]
        proc = subprocess.run(
            [kubectl, "-n", "medgo", "create", "secret", *words[2:4], *literal, *files,
             "--dry-run=client", "-o", "yaml"],
            capture_output=True, text=True, timeout=30, env={"KUBECONFIG": "/nonexistent"},
        )
        assert proc.returncode == 0, proc.stderr
        secret = yaml.safe_load(proc.stdout)
        assert k8s_schemas.errors(secret) == []
        created.add(secret["metadata"]["name"])
    rendered_or_issued = {o["metadata"]["name"] for o in manifests.objects
                          if o["kind"] == "Secret"}
    rendered_or_issued |= {o["spec"]["secretName"] for o in manifests.objects
                           if o["kind"] == "Certificate"}
    assert set(manifests.secret_keys) - rendered_or_issued <= created


def test_the_checks_catch_stale_commands(manifests: Manifests) -> None:
    stale = {
        "-n medgo rollout status deployment/inferense":
            "Deployment inferense is not in the prod manifests",
        "-n medgo logs -l app=inference -c vllm": "no container vllm in the selected pods",
        "-n medgo logs -l app=inferenc": "selector app=inferenc matches nothing rendered",
        "-n medgo logs -l training.kubeflow.org/job-name=<job>":
            "selector training.kubeflow.org/job-name=<job> matches nothing rendered",
        "-n medgo port-forward svc/gateway 18000:8000":
            "Service gateway has no port 8000 (ports: 443)",
        "-n medgo create secret generic inference-api-key --from-literal=key=x":
            "Secret inference-api-key lacks key(s) token that pods read",
        "-n medgo get widget": "unknown resource type widget",
        "-n prod get pods": "namespace prod is not rendered",
        "-n medgo rollout status deployment/inference --timeout=45m":
            "--timeout 45m is shorter than progressDeadlineSeconds 3600 of inference",
        "diff -k deploy/k8s/overlays/prod": "-k deploy/k8s/overlays/prod is not a kustomization",
    }
    for command, error in stale.items():
        assert check(shlex.split(command), manifests) == [error], command
    assert check(shlex.split("-n medgo logs -l medgo.io/job=<id> --prefix"), manifests) == []


def test_commands_are_extracted_from_pipes_substitutions_and_continuations() -> None:
    text = ("```bash\nTOKEN=$(kubectl -n medgo get secret s -o name | cut -d/ -f2)\n"
            "kubectl -n medgo rollout restart deployment/a && kubectl -n medgo \\\n"
            "  rollout status deployment/a   # wait\n```\n"
            "```promql\nkubectl not bash\n```\n")
    assert kubectl_commands(text) == [
        ["-n", "medgo", "get", "secret", "s", "-o", "name"],
        ["-n", "medgo", "rollout", "restart", "deployment/a"],
        ["-n", "medgo", "rollout", "status", "deployment/a"],
    ]
