#!/usr/bin/env bash
# Debian packages the end-to-end tests and benchmarks drive for real: nginx (auth_request,
# proxy_pass reference peer) and wrk (load generator). Installed only when missing.
set -euo pipefail
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if [ ${#missing[@]} -eq 0 ]; then
  echo "tools: nginx and wrk are installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "tools: missing ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "tools: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
