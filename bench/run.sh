#!/usr/bin/env bash
# `make bench`: the proxy benchmark first, then every other bench/*_bench.py, one after the
# other (they share a small machine; running them together would measure each other).
#
# Each script runs under `timeout` in its own process group, so a hung script is stopped
# together with every server and load generator it started; Ctrl-C / SIGTERM stop the
# running script the same way. Exit status: non-zero when any script failed.
set -uo pipefail

cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
PROXY_LIMIT=${BENCH_PROXY_TIMEOUT:-660}
OTHER_LIMIT=${BENCH_SCRIPT_TIMEOUT:-360}

child=""
stop() {
    trap - INT TERM
    if [ -n "$child" ]; then
        # `timeout` passes the signal on to the script's whole process group.
        kill -TERM "$child" 2>/dev/null
        wait "$child" 2>/dev/null
    fi
    echo "bench: interrupted" >&2
    exit 130
}
trap stop INT TERM

run_script() {
    local limit=$1 script=$2 rc
    echo "== $script"
    timeout --kill-after=15 "$limit" "$PY" "$script" &
    child=$!
    wait "$child"
    rc=$?
    child=""
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "bench: $script exceeded ${limit}s and was stopped" >&2
    elif [ "$rc" -ne 0 ]; then
        echo "bench: $script failed (exit $rc)" >&2
    fi
    return "$rc"
}

failed=0
run_script "$PROXY_LIMIT" bench/proxy_bench.py || failed=1
for script in bench/*_bench.py; do
    [ "$script" = bench/proxy_bench.py ] && continue
    [ -f "$script" ] || continue
    echo
    run_script "$OTHER_LIMIT" "$script" || failed=1
done
exit "$failed"
