#!/usr/bin/env bash
# The fuzz smoke run of the test command (tests/run.sh): builds every fuzz
# target once (cargo +nightly fuzz build -O -a: release, debug assertions
# and overflow checks, AddressSanitizer), replays the regression inputs in
# fuzz/regressions/<target>/, then fuzzes each target for 30 s from its
# seeds and prints the executions. Any crash, timeout, leak or build error
# fails the run.
#
# SOFTPHONED_FUZZ_SMOKE=0 skips it (with a loud line) outside CI; under
# CI=true it always runs. SOFTPHONED_FUZZ_SECONDS changes the 30 s.
set -euo pipefail
cd "$(dirname "$0")"

if [ "${SOFTPHONED_FUZZ_SMOKE:-1}" = 0 ]; then
  if [ "${CI:-}" = true ]; then
    echo "fuzz smoke: SOFTPHONED_FUZZ_SMOKE=0 is ignored under CI=true" >&2
  else
    echo "=== fuzz smoke: SKIPPED (SOFTPHONED_FUZZ_SMOKE=0) ===" >&2
    exit 0
  fi
fi
seconds=${SOFTPHONED_FUZZ_SECONDS:-30}
# What `cargo fuzz run` sets: rusqlite's bundled SQLite defines a global twice.
export ASAN_OPTIONS="detect_odr_violation=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
started=$(date +%s)

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "FATAL: fuzz smoke needs a nightly toolchain (cargo +nightly); install it with rustup" >&2
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz smoke: installing cargo-fuzz from crates.io" >&2
  cargo install cargo-fuzz --version 0.13.2 --locked
fi

cargo +nightly fuzz build -O -a
built=$(date +%s)
bin_dir=target/x86_64-unknown-linux-gnu/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failed=()
summary=()
for target in $(cargo +nightly fuzz list); do
  bin="$bin_dir/$target"
  # Known crashes, fixed since: each must now run clean.
  if compgen -G "regressions/$target/*" >/dev/null; then
    if ! "$bin" -runs=1 regressions/"$target"/* >"$work/$target.regressions.log" 2>&1; then
      tail -n 40 "$work/$target.regressions.log" >&2
      echo "FAIL: $target: a regression input in fuzz/regressions/$target/ crashes again" >&2
      failed+=("$target (regression)")
      continue
    fi
  fi
  mkdir -p "$work/$target" "artifacts/$target"
  # New inputs go to the scratch corpus (first directory); the seeds stay as committed.
  if "$bin" "$work/$target" "corpus/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="artifacts/$target/" -print_final_stats=1 >"$work/$target.log" 2>&1; then
    status=ok
  else
    status=FAILED
    tail -n 60 "$work/$target.log" >&2
    echo "FAIL: $target: see the input saved in fuzz/artifacts/$target/" >&2
    failed+=("$target")
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target.log")
  line=$(printf '%-18s %10s executions in %ss (%s/s) %s' "$target" "${runs:-?}" "$seconds" \
    "$(( ${runs:-0} / seconds ))" "$status")
  echo "fuzz smoke: $line"
  summary+=("$line")
done

echo "=== fuzz smoke: build $((built - started)) s, total $(( $(date +%s) - started )) s ==="
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FATAL: fuzz smoke failed: ${failed[*]}" >&2
  exit 1
fi
