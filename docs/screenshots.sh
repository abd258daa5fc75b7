#!/usr/bin/env bash
# Screenshots of two mails for the README: an expiring alert and a digest.
#
# Not part of CI. Runs the real binary on sample tokens with the file
# transport, takes the HTML part of the written .eml files and shoots it with
# headless Chromium. Needs python3 and Debian's `chromium` package
# (`apt-get install chromium`); as root it runs Chromium with --no-sandbox.
#
#   docs/screenshots.sh            # writes docs/mail-expiring.png, docs/mail-digest.png
#
# The dates in the pictures are today's: sample tokens expire relative to now.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"

chromium=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chromium" ]; then
    echo "screenshots.sh: chromium not found (apt-get install chromium)" >&2
    exit 1
fi
sandbox=()
if [ "$(id -u)" = 0 ]; then
    # Chromium's sandbox refuses to run as root.
    sandbox=(--no-sandbox)
fi

cargo build --quiet
bin="$root/target/debug/tokenwatch"

work=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/tokens"
"$bin" sample-token --org "Acme Corp" --days 20 -o "$work/tokens/sToken_for_Berlin.vpptoken" >/dev/null 2>&1
"$bin" sample-token --org "Globex" --days 95 -o "$work/tokens/sToken_for_Globex.vpptoken" >/dev/null 2>&1
"$bin" sample-token --org "Initech" --days 230 -o "$work/tokens/sToken_for_Initech.vpptoken" >/dev/null 2>&1
"$bin" sample-token --org "Umbrella" --days 330 -o "$work/tokens/sToken_for_Umbrella.vpptoken" >/dev/null 2>&1

cat >"$work/tokenwatch.toml" <<'EOF'
state_dir = "state"
timezone = "Europe/Berlin"

[alerts]
recipients = ["ops@example.com"]
from = "tokenwatch <tokenwatch@example.com>"

[schedule]
# Every second, so the digest comes at once.
digest = "* * * * * *"

[[folder]]
path = "tokens"
account = "apps@acme.appleaccount.com"
EOF

(cd "$work" && exec "$bin" -c tokenwatch.toml run >"$work/daemon.log" 2>&1) &
pid=$!

# The HTML part of the first .eml whose subject contains $1.
html_of() {
    python3 - "$work/state/mail" "$1" <<'PY'
import email, email.policy, pathlib, sys
folder, needle = pathlib.Path(sys.argv[1]), sys.argv[2]
for f in sorted(folder.glob("*.eml")) if folder.is_dir() else []:
    m = email.message_from_bytes(f.read_bytes(), policy=email.policy.default)
    if needle in str(m["Subject"]):
        sys.stdout.write(m.get_body(("html",)).get_content())
        sys.exit(0)
sys.exit(1)
PY
}

for _ in $(seq 1 60); do
    if html_of "expires in" >"$work/expiring.html" && html_of "Digest:" >"$work/digest.html"; then
        break
    fi
    sleep 1
done
if ! [ -s "$work/expiring.html" ] || ! [ -s "$work/digest.html" ]; then
    echo "screenshots.sh: the daemon wrote no alert and digest within a minute; its log:" >&2
    cat "$work/daemon.log" >&2
    exit 1
fi

shoot() {
    "$chromium" --headless "${sandbox[@]}" --disable-gpu --hide-scrollbars \
        --force-device-scale-factor=1 --window-size="$2" \
        --screenshot="$here/$3" "file://$work/$1" >/dev/null 2>&1
    echo "wrote docs/$3"
}
shoot expiring.html 760,680 mail-expiring.png
shoot digest.html 860,750 mail-digest.png
