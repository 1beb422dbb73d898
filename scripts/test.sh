#!/usr/bin/env bash
# The test command: installs what is missing, lints, builds medgo-tiny if it is not
# cached yet (the tests serve it on real vLLM), then runs every test.
# Extra arguments go to pytest, e.g. scripts/test.sh -k gateway
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/bootstrap.sh
source scripts/env.sh
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  # The chat page's browser tests drive Debian's Chromium (a CJK font for readable
  # screenshots); without root they are skipped with that reason instead.
  echo "==> chromium for the chat page's browser tests (Debian packages)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends chromium fonts-wqy-zenhei >/dev/null; } \
    || echo "WARNING: could not install chromium; the browser tests will be skipped" >&2
fi
if ! command -v redis-server >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  # The shared-quota tests start a throwaway Debian redis-server; without root they
  # are skipped with that reason instead.
  echo "==> redis-server for the gateway's shared-quota tests (Debian package)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends redis-server >/dev/null; } \
    || echo "WARNING: could not install redis-server; the shared-quota tests will be skipped" >&2
fi
echo "==> ruff"
.venv/bin/ruff check .
echo "==> medgo-tiny (cached after the first build)"
.venv/bin/medgo-train build-tiny
echo "==> pytest"
exec .venv/bin/python -m pytest "$@"
