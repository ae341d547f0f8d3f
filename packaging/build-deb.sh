#!/usr/bin/env bash
# Builds the .deb: `bash packaging/build-deb.sh [PROFILE] [--no-build] [cargo-deb options]`
# (PROFILE: release, the default; tests/package.rs passes `dev --no-build`
# to pack the binaries its `cargo test` already built, since a cargo run
# from inside a test would wait on the test's own build lock).
# The man pages and completions are written by the binaries themselves
# (a hidden option each) into the profile's folder, where Cargo.toml's
# [package.metadata.deb] assets take them; cargo-deb is pinned in
# packaging/cargo-deb-version and installed from crates.io when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-release}
shift || true
version=$(cat packaging/cargo-deb-version)
if [ "$(cargo deb --version 2>/dev/null | awk '{print $2}')" != "$version" ]; then
  cargo install cargo-deb --locked --version "$version"
fi
if [ "${1:-}" = --no-build ]; then
  shift
else
  cargo build --profile "$profile" --bins
fi
# Cargo names the dev profile's folder "debug".
[ "$profile" = dev ] && dir=debug || dir=$profile
out="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/$dir"
"$out/softphoned" --generate-docs "$out/deb-docs/softphoned"
"$out/softphonectl" generate-docs "$out/deb-docs/softphonectl"
cargo deb --profile "$profile" --no-build "$@"
