"""The daily retention purge (base/retention.yaml) in every overlay: it runs the command
the trainer's real parser knows as `medgo-train purge` (no dry run), sees the model store
where the trainer's settings say the loop writes its exports, presents a feedback token
whose default scopes include the purge, and holds no Kubernetes API token. Schema
validity is test_kustomize.py's, its network reach test_reachability.py's."""

from __future__ import annotations

import pytest


def _retention(objects: list[dict]) -> dict:
    (cronjob,) = [o for o in objects if o["kind"] == "CronJob"
                  and o["metadata"]["name"] == "retention"]
    return cronjob


def _config(objects: list[dict], prefix: str) -> dict[str, str]:
    return next(o for o in objects if o["kind"] == "ConfigMap"
                and o["metadata"]["name"].startswith(prefix))["data"]


@pytest.mark.parametrize("overlay", ["local-cpu", "prod-a100"])
def test_the_purge_runs_daily_on_the_model_store(rendered: dict, overlay: str) -> None:
    from medgo_feedback.scopes import DEFAULT_SCOPES, RETENTION_RUN
    from medgo_trainer.cli import build_parser

    objects = rendered[overlay]
    cronjob = _retention(objects)
    spec = cronjob["spec"]
    minute, hour, *every = spec["schedule"].split()
    assert every == ["*", "*", "*"] and minute.isdigit() and hour.isdigit()  # once a day
    assert spec["concurrencyPolicy"] == "Forbid"
    template = spec["jobTemplate"]["spec"]["template"]
    assert template["metadata"]["labels"]["app"] == "retention"  # not trainer: see netpol
    pod = template["spec"]
    (container,) = pod["containers"]
    command = container["command"]
    assert command[0] == "medgo-train"
    args = build_parser().parse_args(command[1:] + container.get("args", []))
    assert (args.command, args.dry_run) == ("purge", False)

    model_dir = _config(objects, "trainer-config")["MEDGO_TRAINER_MODEL_DIR"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    claim = volumes[mounts[model_dir]]["persistentVolumeClaim"]["claimName"]
    assert claim == "medgo-checkpoints"
    assert not volumes[mounts[model_dir]]["persistentVolumeClaim"].get("readOnly")

    token = next(e for e in container["env"] if e["name"] == "MEDGO_TRAINER_FEEDBACK_TOKEN")
    secret = token["valueFrom"]["secretKeyRef"]
    assert secret == {"name": "service-tokens", "key": "trainer"}
    assert RETENTION_RUN in DEFAULT_SCOPES[secret["key"]]

    assert pod["automountServiceAccountToken"] is False
    account = next(o for o in objects if o["kind"] == "ServiceAccount"
                   and o["metadata"]["name"] == pod["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False
    bound = {s["name"] for o in objects if o["kind"] == "RoleBinding" for s in o["subjects"]}
    assert pod["serviceAccountName"] not in bound
