#!/bin/sh
# The README's quick start: tokenwatch makes one sample of each credential
# kind (two content tokens, a push certificate, an ADE server token and the
# key it is encrypted to) under config/, then checks them with the shipped
# quickstart config. Run it again and it replaces the samples.
#
#   sh contrib/quickstart.sh                                  # builds with cargo
#   TOKENWATCH=/usr/bin/tokenwatch sh contrib/quickstart.sh   # an installed binary
set -eu
cd "$(dirname "$0")/.."
tw() {
    if [ -n "${TOKENWATCH:-}" ]; then "$TOKENWATCH" "$@"; else cargo run -q -- "$@"; fi
}
tokens=config/quickstart-tokens
tw sample-token --org "Acme Corp" --days 200 --force -o "$tokens/acme.vpptoken"
tw sample-token --org "Globex" --days 45 --force -o "$tokens/globex.vpptoken"
tw sample-token --kind apns --org "Acme Corp" --days 120 --force -o "$tokens/push/acme-push.pem"
# An ADE token's file name carries its download time: the old sample goes.
rm -f "$tokens"/ade/*_smime.p7m
mkdir -p "$tokens/ade"
tw sample-token --kind ade --days 300 -o "$tokens/ade" --key-out config/quickstart-keys/mdm-key.pem --force
tw -c config/quickstart.toml check
