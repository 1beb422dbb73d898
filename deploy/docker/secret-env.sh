#!/bin/sh
# Entrypoint of every MedGo image. Settings classes read the environment only, while
# Compose (and Docker swarm) hand secrets over as files. A secret mounted as
# /run/secrets/<ENV_NAME> (e.g. /run/secrets/MEDGO_FEEDBACK_SERVICE_TOKENS) is exported
# as that variable before the service starts; on Kubernetes, secrets arrive as env
# already (secretKeyRef) and the directory is absent, so this is a no-op there.
set -eu
secrets_dir="${MEDGO_SECRET_FILES_DIR:-/run/secrets}"
if [ -d "$secrets_dir" ]; then
  for file in "$secrets_dir"/MEDGO_*; do
    [ -f "$file" ] || continue
    name="$(basename "$file")"
    case "$name" in *[!A-Z0-9_]*) continue ;; esac
    export "$name=$(cat "$file")"
  done
fi
exec "$@"
