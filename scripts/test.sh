#!/usr/bin/env bash
# Runs WolfScale's whole test suite on a Debian machine with Rust: installs what the
# tests need when it is missing, then checks formatting and lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need_apt+=(mariadb-server)
command -v mariadb-install-db >/dev/null 2>&1 || need_apt+=(mariadb-server)
# libfiu's fiu-run injects fdatasync failures into the WAL in tests/it/wal_fiu.rs.
command -v fiu-run >/dev/null 2>&1 || need_apt+=(fiu-utils)
# libfaketime skews one node's clock in the chaos soak mode (tests/it/chaos/).
command -v faketime >/dev/null 2>&1 || need_apt+=(faketime)
# promtool (package prometheus) checks /metrics and contrib/'s alert rules; headless
# chromium renders the /ui dashboard (tests/it/observe.rs); python3-venv holds schemathesis.
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
/usr/bin/python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
# systemd-analyze verifies the service unit (tests/it/service.rs); useradd (passwd)
# creates the service user in install-service.sh's scratch root.
[ -x /usr/bin/systemd-analyze ] || need_apt+=(systemd)
command -v useradd >/dev/null 2>&1 || [ -x /usr/sbin/useradd ] || need_apt+=(passwd)
# The Galera bridge test (tests/it/galera_bridge.rs) runs two 3-node Galera clusters
# with rsync state transfers.
[ -e /usr/lib/galera/libgalera_smm.so ] || need_apt+=(galera-4)
command -v rsync >/dev/null 2>&1 || need_apt+=(rsync)
# The MySQL front end's tests (tests/it/proxy.rs) drive it with real clients: the
# mariadb CLI and mariadb-dump (mariadb-client, with the server) and sysbench.
command -v mariadb >/dev/null 2>&1 || need_apt+=(mariadb-client)
command -v sysbench >/dev/null 2>&1 || need_apt+=(sysbench)
# The TLS test talks to every port with openssl s_client and curl; the .deb test runs
# dpkg -i under unshare and asks man for the installed page.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v unshare >/dev/null 2>&1 || need_apt+=(util-linux)
command -v man >/dev/null 2>&1 || need_apt+=(man-db)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q "${need_apt[@]}"
fi
# schemathesis checks /openapi.json against a live node; Debian 12's Python is
# externally managed, so it lives in a venv under target/ (found there by the test).
venv=target/schemathesis-venv
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
  echo "installing schemathesis into $venv"
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'schemathesis>=4,<5'
fi
# cargo-deb packages the .deb that tests/it/service.rs installs with dpkg -i (the
# version scripts/build-deb.sh pins).
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked --version "~3.8"
# PyMySQL drives the MySQL front end (tests/it/proxy.rs), from its own venv like
# schemathesis.
venv=target/pymysql-venv
if ! "$venv/bin/python" -c 'import pymysql' >/dev/null 2>&1; then
  echo "installing PyMySQL into $venv"
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'PyMySQL>=1.1,<2'
fi
export PATH="$PATH:/usr/sbin:/sbin"

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test
