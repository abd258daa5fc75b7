#!/usr/bin/env bash
# Fuzzes the token reader, the push-certificate reader and the config loader
# with cargo-fuzz (libFuzzer, AddressSanitizer, debug assertions and overflow
# checks on). Fails on any crash: a panic, a hang (-timeout), an allocation
# without bound (-malloc_limit_mb for one allocation, -rss_limit_mb in total).
# Fuzzes the token readers (content tokens, ADE server tokens) and the
# config loader with cargo-fuzz (libFuzzer, AddressSanitizer, debug
# assertions and overflow checks on). Fails on any crash: a panic, a hang
# (-timeout), an allocation without bound (-malloc_limit_mb for one
# allocation, -rss_limit_mb in total).
#
#   .ci/fuzz.sh                      # each target 60 s (CI)
#   FUZZ_SECONDS=3600 .ci/fuzz.sh    # the documented long run, 1 h per target
#   .ci/fuzz.sh config_loader        # one target
#
# FUZZ_SANITIZER=none builds without AddressSanitizer: a third less build
# time (the fuzzed code paths are safe Rust), but -malloc_limit_mb then has
# no effect (-rss_limit_mb still holds).
# FUZZ_TARGET_DIR overrides the build folder (default fuzz/target);
# FUZZ_KEEP_CORPUS=DIR keeps the grown corpus there instead of a temp folder.
# A crash leaves its input in fuzz/artifacts/TARGET/ and this script prints
# the command that replays it.
#
# Needs a stable Rust toolchain and a C++ compiler; cargo-fuzz passes -Z
# flags to rustc, which stable accepts with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(token_reader apns_reader ade_reader config_loader)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never
# 16 codegen units: the tokenwatch crate builds in parallel (cargo-fuzz
# defaults to 1), a large saving on a 2-core CI machine.
build=(--codegen-units 16 --sanitizer "${FUZZ_SANITIZER:-address}")
if [ -n "${FUZZ_TARGET_DIR:-}" ]; then
  build+=(--target-dir "$FUZZ_TARGET_DIR")
fi

echo "==> building fuzz targets"
start=$(date +%s)
# cargo-fuzz has no --locked and runs a plain `cargo build`, which would
# quietly update fuzz/Cargo.lock. This fails instead when the lock file does
# not match fuzz/Cargo.toml; the build then resolves exactly to it.
cargo fetch --locked --manifest-path fuzz/Cargo.toml \
  --target "$(rustc -vV | sed -n 's/^host: //p')"
cargo fuzz build "${build[@]}"
echo "build took $(( $(date +%s) - start )) s"

summary=()
status=0
for t in "${targets[@]}"; do
  if [ -n "${FUZZ_KEEP_CORPUS:-}" ]; then
    work="$FUZZ_KEEP_CORPUS/$t"
    mkdir -p "$work"
  else
    work=$(mktemp -d)
  fi
  log=$(mktemp)
  echo "==> fuzzing $t for ${seconds} s (grown corpus: $work)"
  # The first corpus folder receives new inputs; the committed seeds are
  # only read, so the repository stays small.
  set +e
  cargo fuzz run "${build[@]}" "$t" "$work" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" \
    -timeout=10 \
    -rss_limit_mb=1024 \
    -malloc_limit_mb=64 \
    -max_len=8192 \
    -dict="fuzz/dict/$t.dict" \
    -print_final_stats=1 2>&1 | tee "$log" | grep --line-buffered -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE)'
  rc=${PIPESTATUS[0]}
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  units=$(sed -n 's/^stat::new_units_added: *//p' "$log")
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
  if [ "$rc" -ne 0 ]; then
    status=1
    summary+=("$t: FAILED (exit $rc) after ${runs:-?} inputs")
    for a in fuzz/artifacts/"$t"/*; do
      [ -e "$a" ] || continue
      echo "replay: RUSTC_BOOTSTRAP=1 cargo fuzz run $t $a"
    done
  else
    summary+=("$t: ok, ${runs} inputs in ${seconds} s (${rate} exec/s), ${units} new coverage units, peak RSS ${rss} MB")
  fi
  rm -f "$log"
  if [ -z "${FUZZ_KEEP_CORPUS:-}" ]; then
    rm -rf "$work"
  fi
done

echo
echo "==> fuzzing summary"
printf '%s\n' "${summary[@]}"
exit "$status"
