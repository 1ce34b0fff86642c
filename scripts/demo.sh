#!/usr/bin/env bash
# `make demo`: kratos-hooks on :8080/:8081 in front of the Kratos stand-in on :4433/:4434,
# all on loopback, for trying the flows with curl (README, "Try it"). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PUBLIC=${DEMO_PUBLIC:-127.0.0.1:8080}
INTERNAL=${DEMO_INTERNAL:-127.0.0.1:8081}

$PY -m tests.kratos_standin --public 127.0.0.1:4433 --admin 127.0.0.1:4434 \
  --public-base-url "http://$PUBLIC" &
standin=$!
trap 'kill $standin 2>/dev/null; wait $standin 2>/dev/null || true' EXIT INT TERM

PUBLIC_LISTEN=$PUBLIC INTERNAL_LISTEN=$INTERNAL LOG_FORMAT=${LOG_FORMAT:-console} \
KRATOS_PUBLIC_URL=http://127.0.0.1:4433 KRATOS_ADMIN_URL=http://127.0.0.1:4434 \
  .venv/bin/kratos-hooks serve
