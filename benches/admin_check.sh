#!/usr/bin/env bash
# The baseline for `check` on 1,000 tokens (benches/run.sh): what admins do
# today without tokenwatch. For each token file: decode it, pull expDate out
# of the JSON, and let date(1) read it.
#
#   benches/admin_check.sh FOLDER
for f in "$1"/*.vpptoken; do
    exp=$(base64 -d "$f" 2>/dev/null | jq -r .expDate 2>/dev/null) || true
    if [[ -n $exp && $exp != null ]]; then
        echo "$f $(date -d "$exp" '+%Y-%m-%d %H:%M %Z' 2>/dev/null || echo 'bad date')"
    else
        echo "$f unreadable"
    fi
done
