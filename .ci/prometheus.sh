#!/usr/bin/env bash
# Checks what tokenwatch shows Prometheus with promtool (Debian's
# `prometheus` package):
#   - contrib/prometheus/tokenwatch.rules.yml: `promtool check rules`, and
#     its unit tests (`promtool test rules`);
#   - `promtool check metrics` on a real scrape of /metrics from a daemon
#     started on the quickstart config with [metrics] listen set, and on
#     `check --format prometheus` output.
#
# Usage: .ci/prometheus.sh [PATH-TO-BUILT-BINARY]   (default target/debug/tokenwatch)
# Changes nothing in the checkout: the daemon runs on a copy of the
# quickstart config in a temporary folder.
set -euo pipefail

bin=$(realpath "${1:-target/debug/tokenwatch}")
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

fail() {
    echo "prometheus: FAIL: $*" >&2
    exit 1
}

command -v promtool >/dev/null || fail "promtool not found: apt-get install prometheus"
command -v curl >/dev/null || fail "curl not found: apt-get install curl"
[[ -x $bin ]] || fail "binary $bin is missing (build it first, or pass its path as \$1)"

promtool check rules "$repo/contrib/prometheus/tokenwatch.rules.yml"
# test rules resolves rule_files relative to the test file.
promtool test rules "$repo/contrib/prometheus/tokenwatch.rules.test.yml"
echo "prometheus: rules ok"

work=$(mktemp -d)
daemon=
cleanup() {
    if [[ -n $daemon ]]; then
        kill "$daemon" 2>/dev/null || true
        wait "$daemon" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# A port nobody holds right now, from the kernel.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cp "$repo/config/quickstart.toml" "$work/tokenwatch.toml"
printf '\n[metrics]\nlisten = "127.0.0.1:%s"\n' "$port" >>"$work/tokenwatch.toml"
# A sample of every kind, as contrib/quickstart.sh makes them.
tokens=$work/quickstart-tokens
mkdir -p "$tokens/push" "$tokens/ade" "$work/quickstart-keys"
"$bin" sample-token --org "Acme Corp" --days 200 -o "$tokens/acme.vpptoken"
"$bin" sample-token --org "Globex" --days 10 -o "$tokens/globex.vpptoken"
"$bin" sample-token --kind apns --org "Acme Corp" --days 120 -o "$tokens/push/acme-push.pem"
"$bin" sample-token --kind ade --days 300 -o "$tokens/ade" --key-out "$work/quickstart-keys/mdm-key.pem"

"$bin" -c "$work/tokenwatch.toml" check --format prometheus -o "$work/textfile.prom" || true
[[ -s $work/textfile.prom ]] || fail "check --format prometheus wrote nothing"
promtool check metrics <"$work/textfile.prom"
echo "prometheus: check --format prometheus output ok"

"$bin" -c "$work/tokenwatch.toml" run 2>"$work/daemon.log" &
daemon=$!
scrape=
for _ in $(seq 1 300); do
    if scrape=$(curl -fsS "http://127.0.0.1:$port/metrics" 2>/dev/null) &&
        grep -q '^tokenwatch_last_pass_timestamp_seconds' <<<"$scrape"; then
        break
    fi
    kill -0 "$daemon" 2>/dev/null || { cat "$work/daemon.log" >&2; fail "the daemon exited"; }
    scrape=
    sleep 0.1
done
[[ -n $scrape ]] || { cat "$work/daemon.log" >&2; fail "no scrape from 127.0.0.1:$port/metrics within 30 s"; }
for kind in vpp apns ade; do
    grep -q "^tokenwatch_credential_expiry_timestamp_seconds{.*kind=\"$kind\"" <<<"$scrape" ||
        fail "the scrape lacks the $kind sample: $scrape"
done
promtool check metrics <<<"$scrape"
curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null || fail "/healthz did not answer 200"
echo "prometheus: daemon scrape ok, /healthz 200"
