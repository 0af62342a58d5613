#!/usr/bin/env bash
# it_deploy_launcher.sh — tests deploy/local/cluster itself (arguments, certificates,
# ports, process management, resume, purge) against stand-in mbxd/mbx scripts, so it
# needs no built node; the real node is exercised by the other integration tests.
set -euo pipefail

SRC=${MBX_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
CLUSTER=$SRC/deploy/local/cluster
TMP=$(mktemp -d "${MBX_TEST_TMPDIR:-/tmp}/it_deploy_launcher.XXXXXX")
FAKE=$TMP/bin
export FAKE_STATE=$TMP/fake
mkdir -p "$FAKE/server" "$FAKE/client" "$FAKE_STATE"
LISTENER_PID=''
SLEEPER_PID=''

cleanup() {
  local d
  for d in "$TMP"/c*; do
    if [[ -d "$d" ]]; then timeout 30 "$CLUSTER" down --dir "$d" >/dev/null 2>&1 || true; fi
  done
  if [[ -n "$LISTENER_PID" ]]; then kill "$LISTENER_PID" 2>/dev/null || true; fi
  if [[ -n "$SLEEPER_PID" ]]; then kill "$SLEEPER_PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

FAILS=0
ok() { printf 'ok   %s\n' "$1"; }
fail() { printf 'FAIL %s\n' "$1"; FAILS=$((FAILS + 1)); }
check() { # description, command...
  local d=$1
  shift
  if "$@"; then ok "$d"; else fail "$d"; fi
}
# run: captures exit code and combined output of the launcher, bounded in time.
run() { RC=0; OUT=$(timeout 60 "$CLUSTER" "$@" 2>&1) || RC=$?; }

# ---- stand-ins: mbxd "listens" by touching ready-PORT; mbx ping looks for it.
cat >"$FAKE/server/mbxd" <<'EOF'
#!/usr/bin/env bash
[[ "${1:-}" == --config && -r "${2:-}" ]] || { echo "usage: mbxd --config FILE"; exit 2; }
port=$(sed -n 's/^listen = 127.0.0.1://p' "$2")
if [[ -n "${FAKE_MBXD_FAIL:-}" ]]; then echo "error: config: bad key 'x'"; exit 1; fi
if [[ -n "${FAKE_MBXD_EADDRINUSE_ONCE:-}" && ! -e "$FAKE_STATE/eaddrinuse-done" ]]; then
  : >"$FAKE_STATE/eaddrinuse-done"
  echo "error: listen 127.0.0.1:$port: address already in use"
  exit 1
fi
echo "info: node listening on 127.0.0.1:$port"
trap 'rm -f "$FAKE_STATE/ready-$port"; echo "info: SIGTERM: stopping"; exit 0' TERM
[[ -n "${FAKE_MBXD_NOREADY:-}" ]] || : >"$FAKE_STATE/ready-$port"
for ((i = 0; i < 6000; i++)); do sleep 0.1; done
EOF
cat >"$FAKE/client/mbx" <<'EOF'
#!/usr/bin/env bash
printf '%s|%s|%s|pw=%s\n' "$MBX_SERVER" "${MBX_CERT##*/}" "$*" "${MBX_PASSWORD:+set}" >>"$FAKE_STATE/mbx.log"
[[ -e "$FAKE_STATE/ready-${MBX_SERVER##*:}" ]] || { echo "mbx: cannot connect to $MBX_SERVER" >&2; exit 1; }
case "$*" in
  ping) echo pong ;;
  "admin db list") grep -o 'admin db create [a-z0-9]*' "$FAKE_STATE/mbx.log" | awk '{print $4}' | sort -u ;;
esac
exit 0
EOF
chmod +x "$FAKE/server/mbxd" "$FAKE/client/mbx"
export MBX_BIN=$FAKE
unset MBX_CLUSTER_DIR

# ---- usage errors: exit 2 and a line that says what to do
run; check "no arguments is a usage error" test "$RC" = 2
run up --dir "$TMP/c0" --nodes 0; check "--nodes 0 refused (exit 2)" test "$RC" = 2
run up --dir "$TMP/c0" --etcd 1; check "--etcd 1 refused (exit 2)" test "$RC" = 2
run up --dir "$TMP/c0" --proxies 2; check "--proxies 2 refused (exit 2)" test "$RC" = 2
run up --dir "$TMP/c0" --base-port abc; check "--base-port abc refused (exit 2)" test "$RC" = 2
run frobnicate; check "unknown command refused (exit 2)" test "$RC" = 2
run kill --dir "$TMP/c0"; check "kill without NAME refused (exit 2)" test "$RC" = 2
run status --dir "$TMP/nonexistent"; check "status of a missing dir fails (exit 1)" test "$RC" = 1

# ---- up: certificates, config, env, provisioning
C1=$TMP/c1
run up --dir "$C1" --databases 2
check "up succeeds" test "$RC" = 0
[[ "$RC" == 0 ]] || printf '%s\n' "$OUT"
check "CA, node, operator and transport certs exist" test -s "$C1/tls/ca.pem" -a -s "$C1/tls/node1.pem" -a -s "$C1/tls/operator.pem" -a -s "$C1/tls/transport.pem"
check "all certificates verify against the CA" bash -c "openssl verify -CAfile '$C1/tls/ca.pem' '$C1/tls/node1.pem' '$C1/tls/operator.pem' '$C1/tls/transport.pem' >/dev/null"
check "keys are mode 0600" test "$(stat -c %a "$C1"/tls/*.key | sort -u)" = 600
check "node cert subject is /O=mbx/OU=node/CN=node1 (node-to-node auth)" grep -q "O = mbx, OU = node, CN = node1" <<<"$(openssl x509 -in "$C1/tls/node1.pem" -noout -subject)"
check "a one-node config names no peers" bash -c "! grep -q '^peer\.' '$C1/conf/node1.conf'"
check "operator cert subject has OU=operator" grep -q "OU = operator" <<<"$(openssl x509 -in "$C1/tls/operator.pem" -noout -subject)"
check "transport cert subject has OU=transport" grep -q "OU = transport" <<<"$(openssl x509 -in "$C1/tls/transport.pem" -noout -subject)"
SAN=$(openssl x509 -in "$C1/tls/node1.pem" -noout -ext subjectAltName,extendedKeyUsage)
check "node cert has SAN IP:127.0.0.1 and DNS:localhost" grep -q "IP Address:127.0.0.1, DNS:localhost" <<<"$SAN"
check "node cert allows server and client auth" grep -q "Server Authentication, TLS Web Client Authentication" <<<"$SAN"
PORT=$(sed -n 's/^listen = 127.0.0.1://p' "$C1/conf/node1.conf")
check "node config has every key" test "$(grep -cE '^(node_name|listen|data_dir|tls_cert|tls_key|tls_ca|log_level) = ' "$C1/conf/node1.conf")" = 7
check "env points MBX_SERVER at the node's port" grep -q "^export MBX_SERVER=127.0.0.1:$PORT\$" "$C1/env"
check "env has absolute operator credentials" bash -c ". '$C1/env' && [[ \$MBX_CERT == /*/operator.pem && -r \$MBX_KEY && -r \$MBX_CA && \$MBX_CLUSTER_DIR == '$C1' ]]"
check "env puts mbx on PATH" bash -c ". '$C1/env' && [[ \$(command -v mbx) == '$FAKE/client/mbx' ]]"
check "demo password is 0600 and non-trivial" test "$(stat -c %a "$C1/demo-password")" = 600 -a "$(wc -c <"$C1/demo-password")" -ge 16
PID=$(cat "$C1/run/node1.pid")
check "node1 pid is alive and is our mbxd" grep -q "$C1/conf/node1.conf" "/proc/$PID/cmdline"
check "databases db1 and db2 created with the operator cert" test "$(grep -c "|operator.pem|admin db create db[12]|" "$FAKE_STATE/mbx.log")" = 2
check "demo mailbox created in db1 with a password from the env" grep -q "|operator.pem|admin mailbox create demo@example.com --db db1 --name Demo User|pw=set" "$FAKE_STATE/mbx.log"
check "the password is never in argv" bash -c "! grep -qF -- \"\$(cat '$C1/demo-password')\" '$FAKE_STATE/mbx.log'"

run up --dir "$C1"
check "up on a running cluster refused (exit 1)" test "$RC" = 1
check "... and says it is running" grep -q "already has a running cluster" <<<"$OUT"

run status --dir "$C1"
check "status exits 0 with node1 alive" test "$RC" = 0
check "status shows node1 alive on its port" grep -qE "^node1 +$PID +alive +127.0.0.1:$PORT" <<<"$OUT"
check "status lists the databases" grep -q "^db2$" <<<"$OUT"

# ---- kill / start / stop of one process
run kill node1 --dir "$C1"
check "kill node1 succeeds" test "$RC" = 0
check "node1 is gone after kill" test ! -e "/proc/$PID/cmdline" -o -z "$(tr -d '\0' <"/proc/$PID/cmdline" 2>/dev/null)"
run status --dir "$C1"
check "status exits 1 with node1 dead" test "$RC" = 1
check "status shows node1 dead" grep -qE "^node1 .* dead " <<<"$OUT"
run kill node1 --dir "$C1"; check "kill of a dead node fails (exit 1)" test "$RC" = 1
run kill proxy1 --dir "$C1"; check "unknown process name fails (exit 1)" test "$RC" = 1
run start node1 --dir "$C1"
check "start node1 succeeds" test "$RC" = 0
check "node1 keeps its port after start" test "$(sed -n 's/^listen = 127.0.0.1://p' "$C1/conf/node1.conf")" = "$PORT"
run start node1 --dir "$C1"; check "start of a running node fails (exit 1)" test "$RC" = 1
run stop node1 --dir "$C1"
check "stop node1 succeeds" test "$RC" = 0
check "stop ended it cleanly (SIGTERM handler ran)" grep -q "SIGTERM: stopping" "$C1/log/node1.log"

# ---- down keeps data, up resumes without re-creating; down stops exactly its pids
run start node1 --dir "$C1"
sleep 300 &
SLEEPER_PID=$!
echo "$SLEEPER_PID" >"$C1/run/node2.pid" # a stale pid file naming someone else's process
run down --dir "$C1"
check "down succeeds" test "$RC" = 0
check "down removed the pid files" test -z "$(ls "$C1/run"/*.pid 2>/dev/null)"
check "down left an unrelated process alone" kill -0 "$SLEEPER_PID"
check "down kept the data" test -s "$C1/tls/ca.pem" -a -f "$C1/conf/node1.conf"
CREATES=$(grep -c "admin db create" "$FAKE_STATE/mbx.log")
run up --dir "$C1"
check "up resumes a stopped cluster" test "$RC" = 0
check "resume did not re-create databases" test "$(grep -c "admin db create" "$FAKE_STATE/mbx.log")" = "$CREATES"
run down --dir "$C1" --purge
check "down --purge deletes the directory" test ! -e "$C1"
mkdir -p "$TMP/notacluster/x"
run down --dir "$TMP/notacluster" --purge
check "--purge refuses a directory that is not a cluster" test "$RC" = 1 -a -d "$TMP/notacluster/x"

# ---- several nodes: certificates, peers, copies with rotated preferences, per-node control
C8=$TMP/c8
: >"$FAKE_STATE/mbx.log"
run up --dir "$C8" --nodes 3 --databases 4
check "up --nodes 3 succeeds" test "$RC" = 0
[[ "$RC" == 0 ]] || printf '%s\n' "$OUT"
declare -A P=()
for n in node1 node2 node3; do
  P[$n]=$(sed -n 's/^listen = 127.0.0.1://p' "$C8/conf/$n.conf")
  check "$n has a node cert with OU=node, CN=$n, signed by the CA" bash -c "openssl verify -CAfile '$C8/tls/ca.pem' '$C8/tls/$n.pem' >/dev/null && openssl x509 -in '$C8/tls/$n.pem' -noout -subject | grep -q 'OU = node, CN = $n\$'"
  check "$n is alive" grep -q "$C8/conf/$n.conf" "/proc/$(cat "$C8/run/$n.pid")/cmdline"
done
check "three distinct ports" test "$(printf '%s\n' "${P[@]}" | sort -u | wc -l)" = 3
check "node1's config names node2 and node3 as peers, not itself" bash -c "grep -qx 'peer.node2 = 127.0.0.1:${P[node2]}' '$C8/conf/node1.conf' && grep -qx 'peer.node3 = 127.0.0.1:${P[node3]}' '$C8/conf/node1.conf' && ! grep -q '^peer.node1 ' '$C8/conf/node1.conf'"
check "node3's config names node1 and node2 as peers" test "$(grep -c '^peer\.node[12] = ' "$C8/conf/node3.conf")" = 2
check "env lists every node in MBX_SERVER" bash -c ". '$C8/env' && [[ \$MBX_SERVER == 127.0.0.1:${P[node1]},127.0.0.1:${P[node2]},127.0.0.1:${P[node3]} ]]"
check "db1 has copies on all three, active node1" grep -q "|admin db create db1 --copies node1:1,node2:2,node3:3|" "$FAKE_STATE/mbx.log"
check "db2's actives rotate: node2 first" grep -q "|admin db create db2 --copies node2:1,node3:2,node1:3|" "$FAKE_STATE/mbx.log"
check "db3 active on node3" grep -q "|admin db create db3 --copies node3:1,node1:2,node2:3|" "$FAKE_STATE/mbx.log"
check "db4 wraps around to node1" grep -q "|admin db create db4 --copies node1:1,node2:2,node3:3|" "$FAKE_STATE/mbx.log"
check "the demo mailbox is made in db1" grep -q "|admin mailbox create demo@example.com --db db1 " "$FAKE_STATE/mbx.log"
run status --dir "$C8"
check "status exits 0 with three nodes alive" test "$RC" = 0
check "status shows every node" test "$(grep -cE '^node[123] +[0-9]+ +alive ' <<<"$OUT")" = 3
check "status asks for copy status" grep -q "|admin copy status|" "$FAKE_STATE/mbx.log"
run kill node2 --dir "$C8"
check "kill node2 succeeds" test "$RC" = 0
run status --dir "$C8"
check "status shows node2 dead, the others alive" bash -c "grep -qE '^node2 .* dead ' <<<\"\$1\" && [[ \$(grep -cE '^node[13] .* alive ' <<<\"\$1\") == 2 ]]" _ "$OUT"
run start node2 --dir "$C8"
check "start node2 brings it back on its port" bash -c "[[ $RC == 0 ]] && grep -q '127.0.0.1:${P[node2]}' <<<\"\$1\"" _ "$OUT"
run down --dir "$C8" --purge
check "down stops all three nodes" grep -q "stopped: node1 node2 node3" <<<"$OUT"
: >"$FAKE_STATE/mbx.log"
run up --dir "$TMP/c9" --nodes 2 --databases 2
check "with two nodes, databases get two copies each" bash -c "grep -q '|admin db create db1 --copies node1:1,node2:2|' '$FAKE_STATE/mbx.log' && grep -q '|admin db create db2 --copies node2:1,node1:2|' '$FAKE_STATE/mbx.log'"
run down --dir "$TMP/c9" --purge

# ---- ports: --base-port, a taken port, a port lost to a race
C2=$TMP/c2
BP=$((21000 + RANDOM % 9000))
run up --dir "$C2" --base-port "$BP"
check "--base-port P puts node1 on P" grep -q "^listen = 127.0.0.1:$BP\$" "$C2/conf/node1.conf"
run down --dir "$C2" --purge
mkdir -p "$TMP/lst"
"$SRC/deploy/certs/mkcerts.sh" all "$TMP/lst" n >/dev/null
openssl s_server -quiet -accept "127.0.0.1:$BP" -cert "$TMP/lst/n.pem" -key "$TMP/lst/n.key" </dev/null >/dev/null 2>&1 &
LISTENER_PID=$!
for ((i = 0; i < 50; i++)); do [[ -n "$(ss -Htln "sport = :$BP")" ]] && break; sleep 0.1; done
run up --dir "$TMP/c3" --base-port "$BP"
check "--base-port on a taken port fails (exit 1)" test "$RC" = 1
check "... naming the port" grep -q "port $BP (for node1) is in use" <<<"$OUT"
C4=$TMP/c4
FAKE_MBXD_EADDRINUSE_ONCE=1 run up --dir "$C4"
check "a port lost between check and bind is retried" test "$RC" = 0
check "... on another port, with config and env in step" bash -c "p=\$(sed -n 's/^listen = 127.0.0.1://p' '$C4/conf/node1.conf'); grep -q \"MBX_SERVER=127.0.0.1:\$p\$\" '$C4/env'"
run down --dir "$C4" --purge

# ---- startup failures: the log's last lines, exit 1, nothing left running
FAKE_MBXD_FAIL=1 run up --dir "$TMP/c5"
check "a node that exits at startup fails up (exit 1)" test "$RC" = 1
check "... and shows its log" grep -q "bad key 'x'" <<<"$OUT"
MBX_READY_TIMEOUT_S=2 FAKE_MBXD_NOREADY=1 run up --dir "$TMP/c6"
check "a node that never answers ping fails up (exit 1)" test "$RC" = 1
check "... and is not left running" test ! -e "$TMP/c6/run/node1.pid"
MBX_BIN=$TMP/nowhere run up --dir "$TMP/c7"
check "missing binaries fail up (exit 1)" test "$RC" = 1
check "... with a hint to build or set MBX_BIN" grep -q "set MBX_BIN" <<<"$OUT"

if ((FAILS)); then printf '%d check(s) failed\n' "$FAILS"; exit 1; fi
echo "all launcher checks passed"
