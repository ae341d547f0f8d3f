#!/usr/bin/env bash
# The run command (README): builds softphoned and runs the loopback demo,
# two daemons exchanging tones through the control socket. No PBX, no sound card.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/deps.sh build-essential pkg-config cmake libasound2-dev libjack-jackd2-dev
cargo run --release --example demo -- "$@"
