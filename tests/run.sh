#!/usr/bin/env bash
# The test command (README, .ci/run): installs what the tests need on a fresh
# Debian machine, then runs every test. Peers missing under CI=true fail the
# run; they are never skipped silently.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/deps.sh build-essential pkg-config cmake libasound2-dev \
  sip-tester sox libsox-fmt-all tcpdump tshark socat kamailio kamailio-tls-modules openssl \
  baresip-core linphone-cli iproute2
export PATH="$PATH:/usr/sbin:/sbin"
for tool in sipp sox tshark tcpdump kamailio kamcmd openssl baresip linphone-daemon ip; do
  command -v "$tool" >/dev/null || { echo "FATAL: $tool is still missing after install" >&2; exit 1; }
done
for module in g711 g722 opus srtp sndfile aufile account menu ctrl_tcp; do
  [ -f "/usr/lib/baresip/modules/$module.so" ] || { echo "FATAL: baresip module $module.so is missing" >&2; exit 1; }
done
cargo build --examples
bash fuzz/smoke.sh  # every fuzz target built and run 30 s (fuzz/README.md); a failure stops the run
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --no-fail-fast --lib --bins --tests --benches "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run, whichever test binary came last.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
