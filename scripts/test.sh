#!/usr/bin/env bash
# The test command: installs what is missing, lints, builds medgo-tiny if it is not
# cached yet (the tests serve it on real vLLM), then runs every test.
# Extra arguments go to pytest, e.g. scripts/test.sh -k gateway
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/bootstrap.sh
source scripts/env.sh
echo "==> ruff"
.venv/bin/ruff check .
echo "==> medgo-tiny (cached after the first build)"
.venv/bin/medgo-train build-tiny
echo "==> pytest"
exec .venv/bin/python -m pytest "$@"
