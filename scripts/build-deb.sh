#!/usr/bin/env bash
# Builds the Debian package target/debian/wolfscale_<version>_<arch>.deb with cargo-deb
# (installed with `cargo install cargo-deb` when missing): a release build, then the man
# pages, completions and example config the package ships, then the package.
# PROFILE=dev builds it from a debug build (faster; for trying the packaging).
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${PROFILE:-release}"
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked
cargo build --profile "$profile" --bin wolfscale
dir=release
[ "$profile" = dev ] && dir=debug
bin="target/$dir/wolfscale"
rm -rf target/assets
"$bin" docs --out target/assets
"$bin" init --node-id node-1 --secret CHANGE-ME-to-one-shared-secret \
    --output target/assets/wolfscale.toml.example >/dev/null
cargo deb --no-build --profile "$profile" "$@"
ls -l target/debian/*.deb
