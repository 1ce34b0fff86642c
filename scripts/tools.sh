#!/usr/bin/env bash
# Debian packages the end-to-end tests and benchmarks drive for real: nginx (auth_request,
# proxy_pass reference peer), wrk (load generator), and Go with the sources the parity
# suite's oracle is built from (tests/parity/oracle), and Prometheus with promtool (the ops
# tests check the alert rules and the dashboard against a real one), redis-sentinel (the
# scale tests start their own Redis Cluster and Sentinel set) and Chromium (the token page's
# browser test drives Debian's build through Playwright, which cannot download its own).
# Installed only when missing.
set -euo pipefail
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v go >/dev/null 2>&1 || missing+=(golang-go)
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || missing+=(prometheus)
command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
[ -x /usr/bin/chromium ] || missing+=(chromium)
gocode=/usr/share/gocode/src
[ -d "$gocode/golang.org/x/text/secure/precis" ] || missing+=(golang-golang-x-text-dev)
[ -d "$gocode/github.com/gofrs/uuid" ] || missing+=(golang-github-gofrs-uuid-dev)
[ -d "$gocode/github.com/julienschmidt/httprouter" ] ||
  missing+=(golang-github-julienschmidt-httprouter-dev)
if [ ${#missing[@]} -eq 0 ]; then
  echo "tools: nginx, wrk, prometheus, redis-sentinel, chromium and the Go oracle's packages are installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "tools: missing ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "tools: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
