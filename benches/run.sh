#!/usr/bin/env bash
# Runs every benchmark scenario on this machine, each next to its
# baseline in the same run, and prints a table of medians with the ratio to
# the baseline. See BENCHMARKS.md for what each row means.
#
#   benches/run.sh            the full table (about 25 minutes on 2 cores)
#   benches/run.sh --quick    smaller sizes, 30 s idle window (about 5 minutes)
#   benches/run.sh --huge     ONLY the million-credential rows, run apart from
#                             the table above: 1,000,000 tokens in 1,000
#                             folders under $HUGE_DIR (default /var/tmp; not
#                             tmpfs, 7 GiB free), about 20 minutes
#
# Options: --runs N (timed runs per scenario, default 5; 3 with --huge),
# --out FILE (also write the table there), --keep (keep the generated data),
# --skip-micro (no criterion run).
#
# Needs: cargo, python3, hyperfine, jq, inotifywait (inotify-tools), and the
# coreutils base64/date; installs nothing itself (BENCHMARKS.md has the one
# command that does).
set -euo pipefail

QUICK=0 RUNS=5 OUT="" KEEP=0 MICRO=1 HUGE=0 RUNS_GIVEN=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --huge) HUGE=1 ;;
        --runs) RUNS="$2"; RUNS_GIVEN=1; shift ;;
        --out) OUT="$2"; shift ;;
        --keep) KEEP=1 ;;
        --skip-micro) MICRO=0 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [[ $QUICK == 1 ]]; then
    BIG=20000 IDLE_SECS=30 LAT_RUNS=8 ALERT_RUNS=1 MICRO_TIME=2
else
    BIG=100000 IDLE_SECS=300 LAT_RUNS=20 ALERT_RUNS=3 MICRO_TIME=5
fi

missing=()
for tool in cargo python3 hyperfine jq inotifywait base64 date find xargs; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "missing tools: ${missing[*]}" >&2
    echo "install them with: apt-get install -y hyperfine jq inotify-tools python3" >&2
    exit 2
fi

# The million-credential data needs a disk: on tmpfs its 6 GiB (tokens and
# the daemon's state) would be held in memory, beside the daemon measured.
HUGE_BASE="${HUGE_DIR:-/var/tmp}"
HUGE_NEED_KIB=$(( 7 * 1024 * 1024 ))
if [[ $HUGE == 1 ]]; then
    if [[ ! -d $HUGE_BASE ]]; then
        echo "--huge: $HUGE_BASE is not a directory (set HUGE_DIR)" >&2
        exit 2
    fi
    if [[ $(stat -f -c %T "$HUGE_BASE") == tmpfs ]]; then
        echo "--huge: $HUGE_BASE is on tmpfs, which would hold the 6 GiB of data in memory;" \
            "set HUGE_DIR to a folder on a disk" >&2
        exit 2
    fi
    free_kib=$(df -Pk "$HUGE_BASE" | awk 'NR == 2 { print $4 }')
    if (( free_kib < HUGE_NEED_KIB )); then
        echo "--huge: $HUGE_BASE has $(( free_kib / 1024 / 1024 )) GiB free; the run needs 7 GiB" \
            "(3.9 GiB of tokens, 2.1 GiB of daemon state); set HUGE_DIR" >&2
        exit 2
    fi
fi

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
echo "== building (release)" >&2
cargo build --release --quiet --bin tokenwatch --example gen_tokens
TW="$TARGET/release/tokenwatch"
GEN="$TARGET/release/examples/gen_tokens"

STARTED="$(date -u +%Y-%m-%dT%H:%MZ)"
LOAD_AT_START="$(cut -d' ' -f1-3 /proc/loadavg)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tokenwatch-bench.XXXXXX")"
DAEMON=(python3 "$ROOT/benches/daemon.py" --tw "$TW" --log "$WORK/daemon.log")
cleanup() {
    if [[ $KEEP == 1 ]]; then echo "data kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"

# One table row: scenario, baseline name, value, baseline value, unit,
# target text, met (true/false/null), note.
row() {
    jq -nc --arg s "$1" --arg b "$2" --arg v "$3" --arg bv "$4" --arg u "$5" \
        --arg t "$6" --arg ok "$7" --arg n "${8:-}" \
        '{scenario:$s, baseline:$b, value:$v, base:$bv, unit:$u, target:$t, ok:$ok, note:$n}' >>"$RESULTS"
}
JQ_MEDIAN='def median: sort | if length == 0 then null elif length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end;'
median() { jq -s "$JQ_MEDIAN map($1) | median" "$2"; }
fmt() { LC_ALL=C printf "%.${2:-3}f" "$1"; }
ratio() { LC_ALL=C awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
le() { LC_ALL=C awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }' && echo true || echo false; }

gen() { # name tokens folders
    "$GEN" --out "$WORK/$1" --tokens "$2" --folders "$3" 2>>"$WORK/gen.log"
}

# --- the million-credential rows (--huge only) --------------------------------
# Issue 16: `check --json` of 1,000,000 tokens in 1,000 folders next to cat
# of the same files, and the daemon's first start on them under systemd's
# watchdog (BENCHMARKS.md, "The million-credential rows"). Nothing else runs.
if [[ $HUGE == 1 ]]; then
    [[ $RUNS_GIVEN == 1 ]] || RUNS=3
    HUGE_TOKENS="${HUGE_TOKENS:-1000000}" HUGE_FOLDERS="${HUGE_FOLDERS:-1000}"
    HUGE_WORK="$(mktemp -d "$HUGE_BASE/tokenwatch-huge.XXXXXX")"
    huge_cleanup() {
        if [[ $KEEP == 1 ]]; then echo "million-credential data kept in $HUGE_WORK" >&2; else rm -rf "$HUGE_WORK"; fi
    }
    trap 'cleanup; huge_cleanup' EXIT
    thousands() { echo "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }
    n_tok="$(thousands "$HUGE_TOKENS")" n_dir="$(thousands "$HUGE_FOLDERS")"
    echo "== generating $n_tok tokens in $n_dir folders in $HUGE_WORK" >&2
    t0=$(date +%s.%N)
    "$GEN" --out "$HUGE_WORK/data" --tokens "$HUGE_TOKENS" --folders "$HUGE_FOLDERS" 2>>"$WORK/gen.log"
    gen_s=$(LC_ALL=C awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
    data_gib=$(du -sk "$HUGE_WORK/data/tokens" | LC_ALL=C awk '{ printf "%.1f", $1 / 1048576 }')
    # Warm page cache, as the targets assume (a cold read of a million
    # files from this disk took minutes).
    find "$HUGE_WORK/data/tokens" -name '*.vpptoken' -print0 | xargs -0 cat >/dev/null

    echo "== check --json vs cat ($n_tok tokens, $RUNS runs each)" >&2
    d="$HUGE_WORK/data"
    hyperfine --style none --warmup 1 --runs "$RUNS" -i --export-json "$WORK/hf-huge.json" \
        -n check "$TW -c $d/tokenwatch.toml check --json" \
        -n cat "find $d/tokens -name '*.vpptoken' -print0 | xargs -0 cat" >/dev/null
    tw=$(jq '.results[] | select(.command == "check") | .median' "$WORK/hf-huge.json")
    base=$(jq '.results[] | select(.command == "cat") | .median' "$WORK/hf-huge.json")
    r=$(ratio "$tw" "$base")
    # check's own peak memory, from one more run (GNU time's %M, if there).
    note="generated in $gen_s s, $data_gib GiB on disk"
    if [[ -x /usr/bin/time ]]; then
        kib=$(/usr/bin/time -f %M "$TW" -c "$d/tokenwatch.toml" check --json 2>&1 >/dev/null | tail -1) || true
        [[ $kib =~ ^[0-9]+$ ]] && note="$note; check's peak RSS $(( kib / 1024 )) MiB"
    fi
    row "check --json, $n_tok tokens, $n_dir folders" "cat of the same files" "$(fmt "$tw") s" \
        "$(fmt "$base") s" "x$r" "<= 1.2x baseline" "$(le "$r" 1.2)" "$note"

    echo "== daemon: first start on $n_tok tokens under a 60 s watchdog, then a scheduled full scan" >&2
    "${DAEMON[@]}" huge --data "$d" --watchdog-usec 60000000 >"$WORK/huge.jsonl"
    h="$WORK/huge.jsonl"
    hj() { jq -r "$1" "$h"; }
    ready=$(hj .ready_s) rss=$(hj .rss_mib) gap=$(hj .max_gap_s) over=$(hj .gaps_over_watchdog)
    row "daemon start-up to READY=1, $n_tok tokens in $n_dir folders, empty state" "-" "$(fmt "$ready" 1) s" \
        "-" "-" "<= 60 s" "$(le "$ready" 60)" \
        "first scan, evaluation, $(hj .first_pass.rows_written) token rows and the snapshot written; $(fmt "$(hj .cpu_at_ready_s)" 1) s CPU by then"
    row "daemon RSS after the first scan, $n_tok tokens" "-" "$(fmt "$rss" 1) MiB" "-" "-" \
        "<= 640 MiB" "$(le "$rss" 640)" \
        "RssAnon $(fmt "$(hj .rss_anon_mib)" 0) MiB; peak $(fmt "$(hj .peak_rss_mib)" 0) MiB in the first pass, $(hj '.peak_rss_scheduled_mib // "?" | if type == "number" then (. | floor | tostring) else . end') MiB in a scheduled one; settled after $(fmt "$(hj .settled_s)" 0) s"
    row "scheduled full scan and pass, $n_tok unchanged tokens" "-" \
        "$(fmt "$(hj .scheduled_wall_s)" 1) s wall, $(fmt "$(hj .scheduled_cpu_s)" 1) s CPU" "-" "-" "-" "" \
        "pass $(hj '.scheduled_pass.total_ms / 1000 | . * 10 | round / 10') s of it (report $(hj '.scheduled_pass.report_ms / 1000 | . * 10 | round / 10') s); status snapshot $(fmt "$(hj .snapshot_mib)" 0) MiB of SQLite's 953 MiB limit for one value; state $(fmt "$(hj .state_mib)" 0) MiB"
    row "watchdog, WATCHDOG_USEC = 60 s: longest gap between WATCHDOG=1" "-" "$(fmt "$gap" 1) s" "-" \
        "$over gaps > 60 s" "no gap > 60 s" "$( [[ $over == 0 ]] && echo true || echo false )" \
        "$(hj .pings) pings over $(fmt "$(hj .window_s)" 0) s from spawn, $(hj .pings_before_ready) before READY=1 (and $(hj .extends_before_ready) EXTEND_TIMEOUT_USEC)"
    row "daemon log, first start and a scheduled scan of $n_tok tokens" "-" \
        "$(hj .log_warn) WARN, $(hj .log_error) ERROR" "-" "-" "no ERROR" "$( [[ $(hj .log_error) == 0 ]] && echo true || echo false )" \
        "$(hj '.log_distinct | to_entries | map("\(.value) x \(.key | sub("^[A-Z]+ tokenwatch::[a-z_:]+: "; ""))") | join("; ")')"
    {
        echo "tokenwatch million-credential rows, started $STARTED, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average at start $LOAD_AT_START, at end $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "mode: huge, $RUNS runs of check and cat (medians), one daemon run; data on $(stat -f -c %T "$HUGE_BASE") ($HUGE_BASE)"
        echo
        echo "| scenario | tokenwatch | baseline | ratio / detail | target | met | note |"
        echo "|---|---|---|---|---|---|---|"
        jq -r '"| \(.scenario) | \(.value) | \(.baseline)\(if .base == "-" then "" else ": " + .base end) | \(.unit) | \(.target) | \(if .ok == "true" then "yes" elif .ok == "false" then "**no**" else "-" end) | \(.note) |"' "$RESULTS"
    } | tee "${OUT:-/dev/null}"
    exit 0
fi

# --- token reader micro-benchmark ------------------------------------------
# First, before the 220,000 generated files keep the kernel writing back
# and the caches busy: one run measured the reader after generation at
# 5.1 us a token, against 3.0-3.4 us back to back on a quiet machine
# (BENCHMARKS.md). Its rows go to their place in the table below.
RESULTS_TABLE="$RESULTS"
RESULTS="$WORK/micro.jsonl"
: >"$RESULTS"
if [[ $MICRO == 1 ]]; then
    echo "== criterion: token reader" >&2
    cargo bench --quiet --bench reader -- --warm-up-time 1 --measurement-time "$MICRO_TIME" \
        >"$WORK/criterion-reader.txt" 2>&1
    est="$TARGET/criterion/reader/parse_with_fingerprint/new/estimates.json"
    ns=$(jq '.median.point_estimate' "$est")
    per_sec=$(LC_ALL=C awk -v ns="$ns" 'BEGIN { printf "%.0f", 1e9 / ns }')
    row "token reader (criterion, one core)" "-" "$per_sec tokens/s" "-" "-" \
        ">= 200,000 tokens/s" "$(le 200000 "$per_sec")" "$(fmt "$ns" 0) ns CPU time per token"
    echo "== criterion: evaluation" >&2
    cargo bench --quiet --bench evaluate -- --warm-up-time 1 --measurement-time "$MICRO_TIME" \
        >"$WORK/criterion-evaluate.txt" 2>&1
    for k in "apns_pem:push certificate (PEM):100000:certificates" \
             "ade_p7m_with_key:ADE server token with its key, one RSA decryption:1000:tokens"; do
        IFS=: read -r id what want unit <<<"$k"
        ns=$(jq '.median.point_estimate' "$TARGET/criterion/kinds/$id/new/estimates.json")
        per_sec=$(LC_ALL=C awk -v ns="$ns" 'BEGIN { printf "%.0f", 1e9 / ns }')
        row "reader: $what (criterion, one core)" "-" "$per_sec $unit/s" "-" "-" \
            ">= $(LC_ALL=C printf "%'d" "$want") $unit/s" "$(le "$want" "$per_sec")" \
            "$(fmt "$ns" 0) ns CPU time each, every file read fresh"
    done
    ns=$(jq '.median.point_estimate' "$TARGET/criterion/evaluate/one_token/new/estimates.json")
    row "evaluation of one token (criterion)" "-" "$(fmt "$ns" 1) ns" "-" "-" "-" "" \
        "status, days left, password-change rule"
    ns=$(jq '.median.point_estimate' "$TARGET/criterion/report/build_10k_tokens/new/estimates.json")
    row "report::build, 10,000 tokens (criterion)" "-" "$(fmt "$(awk -v n="$ns" 'BEGIN{print n/1e6}')" 1) ms" \
        "-" "-" "-" "" "evaluation plus the check/status view"
fi
RESULTS="$RESULTS_TABLE"

echo "== generating tokens in $WORK" >&2
gen 10 10 1
gen 1k 1000 1
gen 10k-1 10000 1
gen 10k-100 10000 100
gen big-1 "$BIG" 1
gen big-100 "$BIG" 100
# Warm page cache, as the targets assume.
find "$WORK" -name '*.vpptoken' -print0 | xargs -0 cat >/dev/null

# --- check --json vs cat -------------------------------------------------
check_vs_cat() { # data label
    local d="$WORK/$1"
    hyperfine --style none --warmup 2 --runs "$RUNS" -i --export-json "$WORK/hf-$1.json" \
        -n check "$TW -c $d/tokenwatch.toml check --json" \
        -n cat "find $d/tokens -name '*.vpptoken' -print0 | xargs -0 cat" >/dev/null
    local tw base
    tw=$(jq '.results[] | select(.command == "check") | .median' "$WORK/hf-$1.json")
    base=$(jq '.results[] | select(.command == "cat") | .median' "$WORK/hf-$1.json")
    local r; r=$(ratio "$tw" "$base")
    row "check --json, $2" "cat of the same files" "$(fmt "$tw") s" "$(fmt "$base") s" "x$r" \
        "<= 2x baseline" "$(le "$r" 2)"
}
echo "== check --json vs cat" >&2
check_vs_cat 10k-1 "10,000 tokens, 1 folder"
check_vs_cat 10k-100 "10,000 tokens, 100 folders"
check_vs_cat big-1 "$(printf "%'d" "$BIG") tokens, 1 folder"
check_vs_cat big-100 "$(printf "%'d" "$BIG") tokens, 100 folders"

# --- check --json vs the admin script on 1,000 tokens ----------------------
echo "== check --json vs the admin shell script (1,000 tokens)" >&2
hyperfine --style none --warmup 2 --runs "$RUNS" -i --export-json "$WORK/hf-1k.json" \
    -n check "$TW -c $WORK/1k/tokenwatch.toml check --json" >/dev/null
hyperfine --style none --runs "$(( QUICK ? 1 : 3 ))" -i --export-json "$WORK/hf-admin.json" \
    -n admin "bash $ROOT/benches/admin_check.sh $WORK/1k/tokens/f000" >/dev/null
tw=$(jq '.results[0].median' "$WORK/hf-1k.json")
base=$(jq '.results[0].median' "$WORK/hf-admin.json")
speedup=$(ratio "$base" "$tw")
row "check --json, 1,000 tokens" "admin script: base64 -d, jq, date per file" \
    "$(fmt "$tw") s" "$(fmt "$base") s" "${speedup}x faster" ">= 100x faster" \
    "$(le 100 "$speedup")"

# --- check on 10 tokens, process start to exit ------------------------------
# What a monitoring system pays when it runs `check` every minute: start-up
# (config, state database, zone data) dominates, so the baseline is `cat`
# of the same ten files, also started as a process. No shell in between
# (-N), many runs: the figures are a few milliseconds.
echo "== check on 10 tokens vs cat of the same files" >&2
ten=$(find "$WORK/10/tokens" -name '*.vpptoken' | sort | tr '\n' ' ')
hyperfine -N --style none --warmup 20 --runs "$(( QUICK ? 100 : 300 ))" -i --export-json "$WORK/hf-10.json" \
    -n check "$TW -c $WORK/10/tokenwatch.toml check" \
    -n cat "cat $ten" >/dev/null
tw=$(jq '.results[] | select(.command == "check") | .median' "$WORK/hf-10.json")
base=$(jq '.results[] | select(.command == "cat") | .median' "$WORK/hf-10.json")
ms=$(LC_ALL=C awk -v s="$tw" 'BEGIN { printf "%.2f", s * 1000 }')
row "check, 10 tokens, process start to exit" "cat of the same files" "$ms ms" \
    "$(LC_ALL=C awk -v s="$base" 'BEGIN { printf "%.2f ms", s * 1000 }')" "x$(ratio "$tw" "$base")" \
    "<= 5 ms" "$(le "$ms" 5)" "median of hyperfine -N runs"

# --- token reader micro-benchmark (run first, see above) -----------------
cat "$WORK/micro.jsonl" >>"$RESULTS"

# --- daemon: start-up and memory -------------------------------------------
echo "== daemon start-up and memory (10,000 tokens)" >&2
"${DAEMON[@]}" startup --data "$WORK/10k-1" --runs "$RUNS" --fresh >"$WORK/startup-fresh.jsonl"
"${DAEMON[@]}" startup --data "$WORK/10k-1" --runs "$(( RUNS + 1 ))" >"$WORK/startup-warm.jsonl"
fresh=$(median .ready_s "$WORK/startup-fresh.jsonl")
warm=$(jq -s "$JQ_MEDIAN map(select(.fresh_state | not) | .ready_s) | median" "$WORK/startup-warm.jsonl")
row "daemon start-up to READY=1, 10,000 tokens, empty state" "-" "$(fmt "$fresh") s" "-" "-" \
    "< 1 s" "$(le "$fresh" 1)" "first start: creates the database, queues the first alerts"
row "daemon start-up to READY=1, 10,000 tokens, restart" "-" "$(fmt "$warm") s" "-" "-" \
    "< 1 s" "$(le "$warm" 1)"
# Memory: settled RSS after the first scan, split into the daemon's data
# (RssAnon) and the mapped pages of its binary and libraries (RssFile,
# shared with the page cache), next to the same daemon watching 10 tokens;
# and the peak during the first pass against the settled figure.
"${DAEMON[@]}" startup --data "$WORK/10" --runs 1 --fresh >"$WORK/startup-10.jsonl"
base=$(median .rss_mib "$WORK/startup-10.jsonl")
base_anon=$(median .rss_anon_mib "$WORK/startup-10.jsonl")
rss_rows() { # jsonl label limit
    local rss anon file peak peak_ratio
    rss=$(median .rss_mib "$1")
    anon=$(median .rss_anon_mib "$1")
    file=$(median .rss_file_mib "$1")
    peak=$(median .peak_rss_mib "$1")
    peak_ratio=$(ratio "$peak" "$rss")
    row "daemon RSS after the first scan, $2" "same daemon, 10 tokens" "$(fmt "$rss" 1) MiB" \
        "$(fmt "$base" 1) MiB" "data $(fmt "$anon" 1) MiB (10 tokens: $(fmt "$base_anon" 1)), code $(fmt "$file" 1) MiB" \
        "<= $3 MiB" "$(le "$rss" "$3")" "RssAnon + RssFile from /proc/PID/status"
    row "daemon peak RSS during the first pass, $2" "settled RSS" "$(fmt "$peak" 1) MiB" \
        "$(fmt "$rss" 1) MiB" "x$peak_ratio" "<= 2x settled" "$(le "$peak_ratio" 2)" "VmHWM"
}
rss_rows "$WORK/startup-fresh.jsonl" "10,000 tokens" 16

echo "== daemon memory ($(printf "%'d" "$BIG") tokens)" >&2
"${DAEMON[@]}" startup --data "$WORK/big-1" --runs "$(( QUICK ? 1 : 3 ))" --fresh >"$WORK/startup-big.jsonl"
ready=$(median .ready_s "$WORK/startup-big.jsonl")
row "daemon start-up to READY=1, $(printf "%'d" "$BIG") tokens, empty state" "-" "$(fmt "$ready") s" "-" "-" "-" ""
rss_rows "$WORK/startup-big.jsonl" "$(printf "%'d" "$BIG") tokens" "$(( BIG == 100000 ? 64 : 16 + (64 - 16) * (BIG - 10000) / 90000 ))"

# --- daemon: idle CPU ------------------------------------------------------
echo "== daemon idle CPU over $IDLE_SECS s (10,000 tokens)" >&2
"${DAEMON[@]}" idle --data "$WORK/10k-1" --seconds "$IDLE_SECS" >"$WORK/idle.jsonl"
cpu=$(jq '.cpu_s' "$WORK/idle.jsonl")
limit=$(LC_ALL=C awk -v s="$IDLE_SECS" 'BEGIN { printf "%.3f", 0.05 * s / 300 }')
row "daemon idle CPU, 10,000 tokens, $IDLE_SECS s without the scheduled scan" "-" "$(fmt "$cpu" 2) s" "-" "-" \
    "<= $limit s" "$(le "$cpu" "$limit")" "utime+stime from /proc/PID/stat (10 ms ticks)"

echo "== the hourly safety-net scan of 10,000 unchanged tokens: CPU" >&2
"${DAEMON[@]}" rescan --data "$WORK/10k-1" --runs "$RUNS" >"$WORK/rescan.jsonl"
cpu=$(median .scan_cpu_s "$WORK/rescan.jsonl")
worst=$(jq -s 'map(.scan_cpu_s) | max' "$WORK/rescan.jsonl")
row "scheduled full scan, 10,000 unchanged tokens, CPU" "-" "$(fmt "$cpu" 2) s (worst $(fmt "$worst" 2) s)" "-" "-" \
    "<= 0.1 s" "$(le "$cpu" 0.1)" "utime+stime around the fire, less an idle window; run every 15 s for this"

# --- daemon: idle writes and CPU with polled folders --------------------------
# poll = true is what the README recommends for NFS and SMB: every poll looks
# at each file's metadata, and must write nothing when nothing changed.
echo "== daemon idle writes and CPU over 60 s, 10,000 tokens in a poll = true folder" >&2
"${DAEMON[@]}" pollidle --data "$WORK/10k-1" --seconds 60 >"$WORK/pollidle.jsonl"
wkib=$(jq '.wchar_bytes / 1024' "$WORK/pollidle.jsonl")
cpu=$(jq '.cpu_s' "$WORK/pollidle.jsonl")
ok=$( [[ $(le "$wkib" 256) == true && $(le "$cpu" 1) == true ]] && echo true || echo false )
row "daemon idle, 10,000 tokens, poll = true folder, 60 s" "-" \
    "$(fmt "$wkib" 1) KiB written, $(fmt "$cpu" 2) s CPU" "-" "-" \
    "< 256 KiB and < 1 s CPU" "$ok" "wchar from /proc/PID/io, logs at warn"

# --- daemon: rename-into-folder latency ------------------------------------
echo "== rename of a due token into a watched folder: latency to its alert (10,000 tokens present)" >&2
"${DAEMON[@]}" latency --data "$WORK/10k-1" --runs "$LAT_RUNS" >"$WORK/latency.jsonl"
lat=$(median .eml_s "$WORK/latency.jsonl")
worst=$(jq -s 'map(.eml_s) | max' "$WORK/latency.jsonl")
state=$(median .state_s "$WORK/latency.jsonl")
ino=$(median .inotify_s "$WORK/latency.jsonl")
ok=$( [[ $(le "$lat" 0.3) == true && $(le "$worst" 0.5) == true ]] && echo true || echo false )
row "rename of a due token into a watched folder of 10,000 -> its alert's .eml (file transport)" \
    "inotifywait seeing the rename" \
    "$(fmt "$lat") s (worst $(fmt "$worst") s)" "$(fmt "$ino" 4) s" \
    "state row after $(fmt "$state") s" \
    "median <= 0.3 s, worst <= 0.5 s" "$ok" "token expires in 5 days; $LAT_RUNS renames"

# --- daemon: 1,000 alerts by SMTP and by webhook ------------------------------
# The storm guard (max_mails_per_pass) is raised to 1,500 in the generated
# config, so each alert is its own message.
for channel in smtp webhook; do
    echo "== 1,000 alerts at once by $channel to 127.0.0.1" >&2
    mkdir -p "$WORK/alerts-$channel"
    "${DAEMON[@]}" alerts --channel "$channel" --gen "$GEN" --workdir "$WORK/alerts-$channel" \
        --runs "$ALERT_RUNS" >"$WORK/alerts-$channel.jsonl"
    all=$(median '.all_delivered_s // 1e9' "$WORK/alerts-$channel.jsonl")
    once=$(jq -s 'all(.received == .expected and .distinct == .expected)' "$WORK/alerts-$channel.jsonl")
    worst=$(jq -s 'map(.all_delivered_s // 1e9) | max' "$WORK/alerts-$channel.jsonl")
    ok=$( [[ $once == true && $(le "$worst" 5) == true ]] && echo true || echo false )
    if [[ $channel == smtp ]]; then
        what="1,000 alerts due at once, SMTP sink on 127.0.0.1"
        how="from daemon start to the last mail received (by Message-ID)"
    else
        what="1,000 alerts due at once, webhook receiver on 127.0.0.1"
        how="from daemon start to the last post received (by Idempotency-Key)"
    fi
    row "$what" "-" "$(fmt "$all" 1) s (worst $(fmt "$worst" 1) s)" "-" "each once: $once" \
        "<= 5 s, each once" "$ok" "$how; storm guard raised to 1,500"
done

# --- the table ---------------------------------------------------------------
{
    echo "tokenwatch benchmarks, started $STARTED, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average at start $LOAD_AT_START, at end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "mode: $([[ $QUICK == 1 ]] && echo quick || echo full), $RUNS runs per timed scenario (medians)"
    echo
    echo "| scenario | tokenwatch | baseline | ratio / detail | target | met | note |"
    echo "|---|---|---|---|---|---|---|"
    jq -r '"| \(.scenario) | \(.value) | \(.baseline)\(if .base == "-" then "" else ": " + .base end) | \(.unit) | \(.target) | \(if .ok == "true" then "yes" elif .ok == "false" then "**no**" else "-" end) | \(.note) |"' "$RESULTS"
} | tee "${OUT:-/dev/null}"
