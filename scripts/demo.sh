#!/usr/bin/env bash
# A local three-node WolfScale cluster, each node with its own private MariaDB, all under
# one temp dir on loopback. It creates a table, writes through different nodes, shows that
# every node holds identical rows, kills the leader, shows the failover and that nothing
# was lost, then leaves the cluster running for you to try. Ctrl-C stops and removes all.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin"

need=()
command -v mariadbd >/dev/null 2>&1 || need+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || need+=(mariadb-client)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q "${need[@]}"
fi

if [ -n "${WOLFSCALE_BIN:-}" ]; then
  WS="$WOLFSCALE_BIN"
else
  echo "building wolfscale (release)…"
  cargo build --release --quiet --bin wolfscale
  WS="$PWD/target/release/wolfscale"
fi

DEMO=$(mktemp -d /tmp/wolfscale-demo.XXXXXX)
declare -a DB_PIDS=() NODE_PIDS=()
cleanup() {
  echo
  echo "stopping the demo cluster…"
  for p in "${NODE_PIDS[@]}" "${DB_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${NODE_PIDS[@]}" "${DB_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$DEMO"
  echo "removed $DEMO"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
user_flag=()
[ "$(id -u)" -eq 0 ] && user_flag=(--user=root)

echo "initialising a MariaDB datadir…"
mariadb-install-db --no-defaults "${user_flag[@]}" --datadir="$DEMO/template" \
  --auth-root-authentication-method=normal --skip-test-db >"$DEMO/install.log" 2>&1

SECRET=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32)
declare -a DB_PORT=() CL_PORT=() API_PORT=()
for i in 1 2 3; do
  cp -a "$DEMO/template" "$DEMO/db$i"
  DB_PORT[$i]=$(free_port); CL_PORT[$i]=$(free_port); API_PORT[$i]=$(free_port)
  mariadbd --no-defaults "${user_flag[@]}" --datadir="$DEMO/db$i" --port="${DB_PORT[$i]}" \
    --bind-address=127.0.0.1 --socket="$DEMO/db$i.sock" --pid-file="$DEMO/db$i.pid" \
    --log-error="$DEMO/db$i.err" --skip-log-bin --innodb-flush-log-at-trx-commit=2 \
    --innodb-buffer-pool-size=64M >/dev/null 2>&1 &
  DB_PIDS+=($!)
  cat >"$DEMO/node$i.toml" <<EOF
[node]
id = "node-$i"
bind_address = "127.0.0.1:${CL_PORT[$i]}"
data_dir = "$DEMO/node$i"

[database]
host = "127.0.0.1"
port = ${DB_PORT[$i]}
user = "root"
database = "demo"

[cluster]
secret = "$SECRET"
heartbeat_interval_ms = 200
election_timeout_ms = 1000

[api]
bind_address = "127.0.0.1:${API_PORT[$i]}"
EOF
done
for i in 1 2 3; do
  for _ in $(seq 1 100); do
    mariadb -h127.0.0.1 -P"${DB_PORT[$i]}" -uroot -e 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.2
  done
done
echo "3 private MariaDB servers are up (ports ${DB_PORT[1]}, ${DB_PORT[2]}, ${DB_PORT[3]})"

api() { echo "http://127.0.0.1:${API_PORT[$1]}"; }
wait_http() { for _ in $(seq 1 150); do curl -sf "$(api "$1")/health" >/dev/null && return 0; sleep 0.2; done; return 1; }

"$WS" start --bootstrap -c "$DEMO/node1.toml" >"$DEMO/node1.log" 2>&1 & NODE_PIDS[1]=$!
wait_http 1 || { echo "node-1 did not come up; see $DEMO/node1.log"; exit 1; }
for i in 2 3; do
  "$WS" join "127.0.0.1:${CL_PORT[1]}" -c "$DEMO/node$i.toml" >"$DEMO/node$i.log" 2>&1 & NODE_PIDS[$i]=$!
done
for i in 2 3; do wait_http "$i" || { echo "node-$i did not come up; see $DEMO/node$i.log"; exit 1; }; done
sleep 2
echo; echo "== the cluster"
"$WS" status --node "127.0.0.1:${API_PORT[1]}"

post() { curl -s -X POST "$(api "$1")/write/$2" -H 'Content-Type: application/json' -d "$3"; echo; }
echo; echo "== create a table through node-2 (a follower: forwarded to the leader)"
post 2 ddl '{"ddl": "CREATE TABLE users (id BIGINT PRIMARY KEY, name VARCHAR(100), created DATETIME(6) DEFAULT NOW(6))"}'
echo; echo "== 30 inserts spread over all three nodes, plus an update and a delete"
for n in $(seq 1 30); do
  i=$(( (n % 3) + 1 ))
  post "$i" insert "{\"table\": \"users\", \"values\": {\"id\": $n, \"name\": \"user $n via node-$i\"}}" >/dev/null
done
post 3 update '{"table": "users", "set": {"name": "renamed"}, "where_key": {"id": 7}}'
post 1 delete '{"table": "users", "where_key": {"id": 8}}'
echo "a duplicate key is refused the same way everywhere:"
post 2 insert '{"table": "users", "values": {"id": 1, "name": "dup"}}'
sleep 1

checksums() {
  for i in 1 2 3; do
    [ -n "${NODE_PIDS[$i]:-}" ] && kill -0 "${NODE_PIDS[$i]}" 2>/dev/null || continue
    printf 'node-%s MariaDB: ' "$i"
    mariadb -h127.0.0.1 -P"${DB_PORT[$i]}" -uroot -N -e \
      "SELECT COUNT(*), 'rows;' FROM demo.users; CHECKSUM TABLE demo.users;" | tr '\n\t' '  '
    echo
  done
}
echo; echo "== every node's own MariaDB holds the same rows"
checksums

leader=$(curl -s "$(api 1)/cluster" | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader_id"])')
n=${leader#node-}
echo; echo "== kill -9 the leader ($leader)"
kill -9 "${NODE_PIDS[$n]}"; unset "NODE_PIDS[$n]"
other=$(( n % 3 + 1 ))
start=$(date +%s.%N)
until curl -s "$(api "$other")/cluster" | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d["leader_id"] and d["leader_id"]!="'"$leader"'" else 1)' 2>/dev/null; do sleep 0.1; done
echo "new leader elected after $(python3 -c "print(round($(date +%s.%N)-$start,2))") s"
"$WS" status --node "127.0.0.1:${API_PORT[$other]}"
echo; echo "== writes keep working; nothing acknowledged was lost"
post "$other" insert '{"table": "users", "values": {"id": 100, "name": "after failover"}}'
sleep 1
checksums

cat <<EOF

The cluster keeps running (two of three nodes). Try:
  curl -s $(api "$other")/status
  curl -s $(api "$other")/cluster/nodes
  curl -s -X POST $(api "$other")/write/insert -H 'Content-Type: application/json' \\
       -d '{"table": "users", "values": {"id": 200, "name": "you"}}'
  curl -s -X POST $(api "$other")/query -H 'Content-Type: application/json' \\
       -d '{"sql": "SELECT * FROM users ORDER BY id DESC LIMIT 3"}'
  $WS status --node 127.0.0.1:${API_PORT[$other]}
  $WS wal dump -c $DEMO/node$other.toml | tail
Restart the killed node with: $WS start -c $DEMO/node$n.toml
Logs are in $DEMO. Press Ctrl-C to stop everything and remove it.
EOF
while true; do sleep 3600; done
