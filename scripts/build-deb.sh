#!/usr/bin/env bash
# Builds the Debian package target/debian/wolfscale_<version>_<arch>.deb with cargo-deb
# (installed when missing): a release build, then the man pages, completions and example
# config the package ships, then the package.
# PROFILE=dev builds it from a debug build (faster; for trying the packaging and for the
# test). cargo-deb 3.8 packages a dev build with a warning that later versions may refuse
# it, hence the pinned version.
# NO_BUILD=1 packages the binary already in target/<profile dir>/ (tests/it/service.rs
# uses it: `cargo test` has just built target/debug/wolfscale). Extra arguments go to
# `cargo deb` (e.g. `--fast`, `--output FILE`); the package's path is printed last.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${PROFILE:-release}"
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked --version "~3.8"
[ -n "${NO_BUILD:-}" ] || cargo build --profile "$profile" --bin wolfscale
dir=release
[ "$profile" = dev ] && dir=debug
bin="${CARGO_TARGET_DIR:-target}/$dir/wolfscale"
rm -rf target/assets
"$bin" docs --out target/assets
"$bin" init --node-id node-1 --secret CHANGE-ME-to-one-shared-secret \
    --output target/assets/wolfscale.toml.example >/dev/null
deb="$(cargo deb --no-build --profile "$profile" "$@")"
ls -l "$deb" >&2
echo "$deb"
