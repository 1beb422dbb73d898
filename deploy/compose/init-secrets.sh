#!/usr/bin/env bash
# Creates the secret files compose.yaml mounts (var/secrets/compose/, git-ignored), once:
# random service tokens (feedback's two callers; ops on the trainer's job API), the
# PostgreSQL password and the feedback DSN built from it, the vLLM API key (inference
# requires it, the gateway presents it), a self-signed certificate for the optional
# HTTPS gateway (deploy/compose/tls.yaml; replace tls.crt/tls.key with one from the
# hospital's CA), and an API keys file with one ops key (printed once; only its hash is
# stored). Existing files are kept, so re-running never rotates anything by accident;
# rotation is in docs/operations.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="$ROOT/var/secrets/compose"
mkdir -p "$DIR"
chmod 700 "$DIR"
umask 077

token() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }
keep_or_write() {  # keep_or_write FILE VALUE
  [[ -s "$1" ]] || printf '%s' "$2" > "$1"
}

keep_or_write "$DIR/MEDGO_GATEWAY_FEEDBACK_TOKEN" "$(token)"
keep_or_write "$DIR/MEDGO_TRAINER_FEEDBACK_TOKEN" "$(token)"
keep_or_write "$DIR/MEDGO_FEEDBACK_SERVICE_TOKENS" \
  "gateway=$(cat "$DIR/MEDGO_GATEWAY_FEEDBACK_TOKEN"),trainer=$(cat "$DIR/MEDGO_TRAINER_FEEDBACK_TOKEN")"
keep_or_write "$DIR/MEDGO_TRAINER_SERVICE_TOKENS" "ops=$(token)"
keep_or_write "$DIR/postgres_password" "$(token)"
keep_or_write "$DIR/MEDGO_FEEDBACK_DATABASE_URL" \
  "postgresql://medgo:$(cat "$DIR/postgres_password")@postgres:5432/medgo"
keep_or_write "$DIR/MEDGO_INFERENCE_API_KEY" "$(token)"
keep_or_write "$DIR/MEDGO_GATEWAY_INFERENCE_API_KEY" "$(cat "$DIR/MEDGO_INFERENCE_API_KEY")"
if [[ ! -s "$DIR/tls.crt" ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -subj "/CN=$(hostname -f)" -addext "subjectAltName=DNS:$(hostname -f),IP:127.0.0.1" \
    -keyout "$DIR/tls.key" -out "$DIR/tls.crt" 2>/dev/null
fi
if [[ ! -s "$DIR/api_keys.json" ]]; then
  "$ROOT/.venv/bin/medgo-gateway" keys add --file "$DIR/api_keys.json" --name compose-ops --role ops
fi
# Who may read what. Compose (outside swarm) bind-mounts file secrets with their host
# owner and mode and ignores a secret's uid/gid/mode, so the modes set here are the ones
# inside the containers. Every file was created 0600 (umask 077 above: never readable by
# others, not even for a moment, like medgo_common.secret_files.write_private_file).
# - postgres_password stays 0600, owner only: the postgres image's entrypoint reads
#   POSTGRES_PASSWORD_FILE as root (CAP_DAC_OVERRIDE is in its cap_add) before it drops
#   to the postgres user.
# - Everything else is read by the MedGo services, which all run as UID:GID 10001:10001
#   (the `medgo` user and group of every image under services/*/Dockerfile*): 0640 with
#   group 10001, so the containers read through the group while the file stays the
#   operator's to rotate, and no other uid - on the host or in a container - can read it.
#   With user-namespace remapping set MEDGO_SECRETS_GID to the host gid the containers'
#   10001 maps to. Changing a file's group needs root (or membership of that group).
#   Re-run this script after replacing a file by hand (tls.*, api_keys.json): it keeps
#   the contents and puts these modes back.
gid="${MEDGO_SECRETS_GID:-10001}"
service_files=()
for file in "$DIR"/*; do
  [[ "$(basename "$file")" == postgres_password ]] || service_files+=("$file")
done
if ! chgrp "$gid" "${service_files[@]}" 2>/dev/null; then
  echo "error: cannot give the secret files to group $gid (the services' group); run" \
       "this script as root (sudo $0) or as a member of that group" >&2
  exit 1
fi
chmod 600 "$DIR/postgres_password"
chmod 640 "${service_files[@]}"
echo "secrets ready in $DIR"
