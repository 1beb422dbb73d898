#!/usr/bin/env bash
# Brings the whole MedGo stack up in local mode (no containers): installs what is
# missing, builds medgo-tiny if needed, starts inference (real vLLM), feedback, trainer
# and gateway, waits until each is ready and prints where to send a chat request.
# Ctrl-C stops everything. Options: scripts/up.sh --help
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/bootstrap.sh
source scripts/env.sh
exec .venv/bin/python scripts/local_stack.py "$@"
