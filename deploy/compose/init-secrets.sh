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
# Compose bind-mounts file secrets with their host mode; the services run as UID 10001,
# so files are world-readable inside a directory only the owner can enter.
chmod 644 "$DIR"/*
echo "secrets ready in $DIR"
