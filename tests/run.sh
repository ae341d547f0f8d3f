#!/usr/bin/env bash
# The test command (README, .ci/run): installs what the tests need on a fresh
# Debian machine, then runs every test. Peers missing under CI=true fail the
# run; they are never skipped silently.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/deps.sh build-essential pkg-config cmake libasound2-dev libjack-jackd2-dev \
  sip-tester sox libsox-fmt-all tcpdump tshark socat kamailio kamailio-tls-modules openssl \
  baresip-core jackd2 faketime linphone-cli iproute2 chromium coturn nftables conntrack dnsmasq \
  rtpengine-daemon systemd man-db age prometheus
export PATH="$PATH:/usr/sbin:/sbin"
for tool in sipp sox tshark tcpdump kamailio kamcmd openssl baresip jackd faketime linphone-daemon ip chromium turnserver nft conntrack dnsmasq rtpengine systemd-analyze man age promtool prometheus; do
  command -v "$tool" >/dev/null || { echo "FATAL: $tool is still missing after install" >&2; exit 1; }
done
for module in g711 g722 opus srtp sndfile aufile jack account menu ctrl_tcp; do
  [ -f "/usr/lib/baresip/modules/$module.so" ] || { echo "FATAL: baresip module $module.so is missing" >&2; exit 1; }
done
cargo build --examples
cargo build --bins  # the browser tests drive target/debug/softphoned and softphonectl
# The browser tests (tests/browser) need the machine's Node.js (20 or later,
# for playwright-core) and npm; Debian's Chromium is installed above.
browser=1
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  [ "${CI:-}" = "true" ] && { echo "FATAL: node and npm are required under CI=true (tests/browser)" >&2; exit 1; }
  echo "SKIPPED: the browser tests (tests/browser): node or npm is not installed" >&2
  browser=0
fi
[ "$browser" = 1 ] && (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
bash fuzz/smoke.sh  # every fuzz target built and run 30 s (fuzz/README.md); a failure stops the run
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --no-fail-fast --lib --bins --tests --benches "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The workspace page in real Chromium against real daemons and sipp peers
# (node's test runner, one file at a time; screenshots in target/browser-shots).
node_log=$(mktemp)
trap 'rm -f "$log" "$node_log"' EXIT
node_status=0
if [ "$browser" = 1 ]; then
  (cd tests/browser && node --test --test-reporter=tap --test-concurrency=1 ./*.test.mjs) 2>&1 | tee "$node_log"
  node_status=${PIPESTATUS[0]}
  grep -q '^# pass ' "$node_log" || { echo "FATAL: the browser tests printed no summary" >&2; node_status=1; }
fi
set -e
# One closing line for the whole run: every cargo test binary and the browser tests.
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d %d\n", p, f }' "$log" > "$log.sum"
read -r passed failed < "$log.sum"
rm -f "$log.sum"
node_passed=$(awk '/^# pass / { n = $3 } END { print n + 0 }' "$node_log")
node_failed=$(awk '/^# fail / { n = $3 } END { print n + 0 }' "$node_log")
echo "tests: $((passed + node_passed)) passed, $((failed + node_failed)) failed"
[ "$status" -ne 0 ] && exit "$status"
exit "$node_status"
