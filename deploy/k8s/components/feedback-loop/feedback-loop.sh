#!/bin/sh
# The weekly feedback loop, run by the CronJob in this component: last week's clinician
# ratings → DPO pairs (the feedback service's streamed export) → a DPO run on the A100
# pool (a PyTorchJob through the trainer's Kubernetes executor). When the job has
# finished, ops register, evaluate and roll the candidate out through the canary
# (docs/operations.md): a new checkpoint reaches clinicians only through that gate.
# Paths: /data is the medgo-data PVC and /ckpt the model store, as in the training pods.
#   feedback-loop.sh [MIN_PAIRS (200)] [DATA_ROOT (/data)]
set -eu

week="$(date -u +%G-w%V)"                       # e.g. 2026-w48
since="$(date -u -d '7 days ago' +%Y-%m-%dT%H:%M:%SZ)"
min_pairs="${1:-200}"                           # fewer pairs than this: skip the week
out="${2:-/data}/exports/${week}"
mkdir -p "$out"

# Stream the export to a file (constant memory), renamed into place only when complete.
python3.11 - "$since" "$out/dpo.jsonl" <<'PY'
import os
import sys
import urllib.parse
import urllib.request

since, target = sys.argv[1], sys.argv[2]
query = urllib.parse.urlencode({"since": since})
request = urllib.request.Request(
    f"{os.environ['MEDGO_TRAINER_FEEDBACK_URL']}/v1/exports/dpo?{query}",
    headers={"Authorization": f"Bearer {os.environ['MEDGO_TRAINER_FEEDBACK_TOKEN']}"},
)
with urllib.request.urlopen(request, timeout=900) as response, open(target + ".part", "wb") as f:
    while chunk := response.read(1 << 20):
        f.write(chunk)
os.replace(target + ".part", target)
PY

pairs="$(wc -l < "$out/dpo.jsonl")"
echo "feedback-loop: ${pairs} DPO pairs since ${since} in ${out}/dpo.jsonl"
if [ "$pairs" -lt "$min_pairs" ]; then
  echo "feedback-loop: fewer than ${min_pairs} pairs; no training run this week"
  exit 0
fi

exec medgo-train submit --executor k8s --stage dpo --recipe medgo-72b-dpo \
  --name "dpo-${week}" \
  --set "base=/ckpt/medgo-72b/base" \
  --set "adapter=/ckpt/medgo-72b/adapters/sft" \
  --set "data.train=[${out}/dpo.jsonl]"
