#!/usr/bin/env bash
# Installs a WolfScale node as a systemd service (or removes it). Idempotent: running it
# again repairs modes and files and keeps an existing config and data.
#
#   sudo ./scripts/install-service.sh --node-id node-2 [--config FILE] [--bootstrap-once]
#   sudo ./scripts/install-service.sh --uninstall
#
# What it does:
#   - a `wolfscale` system user and group (no login, no home of its own);
#   - /etc/wolfscale/wolfscale.toml, root:wolfscale 0640: FILE when --config gives one
#     (replacing the installed one), else a new one from `wolfscale init` the first time
#     (an existing one is kept);
#   - /var/lib/wolfscale (0750) and /var/lib/wolfscale/NAME (0700), owned by wolfscale;
#   - the binary at /usr/local/bin/wolfscale (from --binary, default target/release/wolfscale
#     or the `wolfscale` on PATH);
#   - the unit dist/wolfscale.service at /etc/systemd/system/wolfscale.service, which
#     always runs `wolfscale start`: a restart never bootstraps again;
#   - `systemctl daemon-reload` and `systemctl enable wolfscale` (start it yourself).
# --bootstrap-once founds a new cluster on this node, once: it runs `wolfscale start
# --bootstrap` as a transient unit until the node is ready, stops it, then starts the
# service normally. It is skipped (with a message) when the data dir already holds a node.
# --uninstall stops and disables the service and removes the unit and the binary; the
# config, the data dir and the user stay (delete them by hand to lose the data).
# --root DIR works in DIR instead of / (for tests and image builds): users go to
# DIR/etc/passwd, nothing is started, systemctl is not called.
set -euo pipefail

usage() {
    sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

die() {
    echo "install-service: $*" >&2
    exit 1
}

NODE_ID=""
CONFIG=""
BOOTSTRAP=0
UNINSTALL=0
ROOT=""
BINARY=""
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --node-id) NODE_ID="${2:?--node-id needs a name}"; shift 2 ;;
        --config) CONFIG="${2:?--config needs a file}"; shift 2 ;;
        --bootstrap-once) BOOTSTRAP=1; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
        --binary) BINARY="${2:?--binary needs a file}"; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "install-service: unknown option $1" >&2; usage 1 >&2 ;;
    esac
done

if [[ -n "$ROOT" ]]; then
    mkdir -p "$ROOT"
    ROOT="$(cd "$ROOT" && pwd)"
fi
BIN_PATH=/usr/local/bin/wolfscale
UNIT_PATH=/etc/systemd/system/wolfscale.service
CONF_DIR=/etc/wolfscale
CONF_PATH=$CONF_DIR/wolfscale.toml
DATA_ROOT=/var/lib/wolfscale

[[ $(id -u) -eq 0 ]] || die "run as root (sudo): it creates a user and writes under /etc and /var/lib"

systemctl_() {
    if [[ -n "$ROOT" ]]; then
        echo "  (scratch root: not running systemctl $*)"
    elif command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
        systemctl "$@"
    else
        echo "  (systemd is not running here: not running systemctl $*)"
    fi
}

if [[ $UNINSTALL -eq 1 ]]; then
    if [[ -z "$ROOT" && -f "$UNIT_PATH" ]]; then
        systemctl_ disable --now wolfscale.service || true
    fi
    rm -f "$ROOT$UNIT_PATH" "$ROOT$BIN_PATH"
    systemctl_ daemon-reload
    echo "removed the wolfscale unit and binary; kept $CONF_DIR, $DATA_ROOT and the wolfscale user"
    exit 0
fi

[[ -n "$NODE_ID" ]] || die "--node-id NAME is required (see --help)"
[[ "$NODE_ID" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]] ||
    die "--node-id must be letters, digits, '.', '_' or '-' (at most 64), got '$NODE_ID'"
if [[ -n "$CONFIG" && ! -f "$CONFIG" ]]; then
    die "--config $CONFIG is not a file"
fi
if [[ -z "$BINARY" ]]; then
    if [[ -x "$HERE/target/release/wolfscale" ]]; then
        BINARY="$HERE/target/release/wolfscale"
    elif command -v wolfscale >/dev/null; then
        BINARY="$(command -v wolfscale)"
    else
        die "no wolfscale binary: build one (cargo build --release) or pass --binary FILE"
    fi
fi
[[ -x "$BINARY" ]] || die "--binary $BINARY is not an executable file"
UNIT_SRC="$HERE/dist/wolfscale.service"
[[ -f "$UNIT_SRC" ]] || die "the unit template $UNIT_SRC is missing"

# The user and group.
PREFIX=()
if [[ -n "$ROOT" ]]; then
    mkdir -p "$ROOT/etc"
    PREFIX=(--prefix "$ROOT")
fi
passwd_entry() { # the wolfscale line of (ROOT)/etc/passwd, if any
    if [[ -n "$ROOT" ]]; then
        grep '^wolfscale:' "$ROOT/etc/passwd" 2>/dev/null || true
    else
        getent passwd wolfscale || true
    fi
}
if [[ -z "$(passwd_entry)" ]]; then
    useradd "${PREFIX[@]}" --system --user-group --no-create-home \
        --home-dir "$DATA_ROOT" --shell /usr/sbin/nologin \
        --comment "WolfScale node" wolfscale
    echo "created the wolfscale system user"
fi
WUID="$(passwd_entry | cut -d: -f3)"
WGID="$(passwd_entry | cut -d: -f4)"
[[ -n "$WUID" && -n "$WGID" ]] || die "cannot read the wolfscale user's uid and gid"

# The binary.
install -D -m 0755 -o root -g root "$BINARY" "$ROOT$BIN_PATH"

# The config: given, kept, or new.
install -d -m 0750 -o root -g "$WGID" "$ROOT$CONF_DIR"
if [[ -n "$CONFIG" ]]; then
    install -m 0640 -o root -g "$WGID" "$CONFIG" "$ROOT$CONF_PATH"
    echo "installed $CONFIG as $CONF_PATH"
elif [[ -f "$ROOT$CONF_PATH" ]]; then
    echo "kept the existing $CONF_PATH"
else
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    "$BINARY" init --node-id "$NODE_ID" --output "$tmp/wolfscale.toml" >/dev/null
    install -m 0640 -o root -g "$WGID" "$tmp/wolfscale.toml" "$ROOT$CONF_PATH"
    echo "wrote a new $CONF_PATH for $NODE_ID (set database.* and cluster.peers, and give every node the same cluster.secret)"
fi
chown root:"$WGID" "$ROOT$CONF_PATH"
chmod 0640 "$ROOT$CONF_PATH"

# The data dir.
install -d -m 0750 -o "$WUID" -g "$WGID" "$ROOT$DATA_ROOT"
install -d -m 0700 -o "$WUID" -g "$WGID" "$ROOT$DATA_ROOT/$NODE_ID"
chown "$WUID:$WGID" "$ROOT$DATA_ROOT" "$ROOT$DATA_ROOT/$NODE_ID"
chmod 0750 "$ROOT$DATA_ROOT"
chmod 0700 "$ROOT$DATA_ROOT/$NODE_ID"

# The unit, pointing at the installed binary.
install -d -m 0755 "$(dirname "$ROOT$UNIT_PATH")"
sed "s|/usr/bin/wolfscale|$BIN_PATH|g" "$UNIT_SRC" >"$ROOT$UNIT_PATH.tmp"
chmod 0644 "$ROOT$UNIT_PATH.tmp"
mv "$ROOT$UNIT_PATH.tmp" "$ROOT$UNIT_PATH"
grep -q -- '--bootstrap' <(grep '^ExecStart' "$ROOT$UNIT_PATH") &&
    die "the unit must never run --bootstrap"
echo "installed $BIN_PATH and $UNIT_PATH"
systemctl_ daemon-reload
systemctl_ enable wolfscale.service

if [[ $BOOTSTRAP -eq 1 ]]; then
    if [[ -n "$ROOT" ]]; then
        echo "  (scratch root: not bootstrapping; on a real host this runs 'wolfscale start --bootstrap' once)"
    elif [[ -e "$DATA_ROOT/$NODE_ID/state" || -e "$DATA_ROOT/$NODE_ID/wal" ]]; then
        echo "$DATA_ROOT/$NODE_ID already holds a node: not bootstrapping again"
    else
        # A transient notify unit: systemd-run returns once the node is ready, i.e. the
        # new cluster exists on disk; then the regular unit takes over with `start`.
        systemd-run --unit=wolfscale-bootstrap --uid=wolfscale --gid=wolfscale \
            --property=Type=notify --property=TimeoutStartSec=5min \
            --property=ReadWritePaths="$DATA_ROOT" \
            "$BIN_PATH" --config "$CONF_PATH" start --bootstrap
        systemctl stop wolfscale-bootstrap.service
        systemctl start wolfscale.service
        echo "bootstrapped a new cluster on $NODE_ID; the service now runs 'wolfscale start'"
    fi
fi
echo "done: start it with 'systemctl start wolfscale' (after editing $CONF_PATH)"
