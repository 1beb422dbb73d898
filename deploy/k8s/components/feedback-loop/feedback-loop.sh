#!/bin/sh
# The weekly feedback loop, run by the CronJob of this component: clinician ratings of
# the past 28 days (this week plus three replayed; docs/training.md, "Weekly DPO that
# trains") through the whole loop, `medgo-train loop --executor k8s` (export →
# DPO PyTorchJob → register → GPU evaluation Job → gated promote; docs/operations.md).
# The CronJob's args choose the recipe, thresholds and timeouts.
#   feedback-loop.sh [medgo-train loop flags...]
set -eu
exec medgo-train loop --executor k8s --no-progress \
  --since "$(date -u -d '28 days ago' +%Y-%m-%dT%H:%M:%SZ)" "$@"
