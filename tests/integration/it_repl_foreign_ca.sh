# it_repl_foreign_ca.sh — who may pull a database's log: a certificate from another
# CA (even one named node2 with OU=node) is refused at the TLS handshake; an operator
# certificate of the cluster CA gets EPERM; the real node2 certificate gets batches.
. "$(dirname "$0")/lib.sh"
it_init
it_up_repl
DRV="$ITC_DIR/itc_repl"
[[ -x "$DRV" ]] || fail "driver not built: $DRV"

step "a foreign CA with its own node2 certificate"
"$MBX_SRC/deploy/certs/mkcerts.sh" all "$IT_WORK/evil" node2 >/dev/null 2>&1 || fail "mkcerts (foreign CA)"
openssl x509 -in "$IT_WORK/evil/node2.pem" -noout -subject | grep -q 'OU *= *node' ||
  fail "foreign node2 cert has no OU=node: $(openssl x509 -in "$IT_WORK/evil/node2.pem" -noout -subject)"

pull() { # CERT KEY → OUT/RC of itc_repl pull db1 node2 FROM against node1
  # FROM: the active's last record, which its log always keeps (older ones may
  # already be truncated once every copy has them).
  local from
  from=$(db_last_lsn db1 node1) || fail "db1 last lsn on node1"
  env MBX_SERVER="$(node_addr node1)" MBX_CA="$MBX_CA" MBX_CERT="$1" MBX_KEY="$2" \
    timeout 20 "$DRV" pull db1 node2 "$from" >"$IT_WORK/out" 2>"$IT_WORK/err"
  RC=$?; OUT=$(cat "$IT_WORK/out"); ERR=$(cat "$IT_WORK/err")
  echo "  → rc=$RC $OUT"
}

step "pull with the foreign node2 certificate: refused at the handshake"
pull "$IT_WORK/evil/node2.pem" "$IT_WORK/evil/node2.key"
eq "$RC" 3 "exit of a pull with a foreign certificate"
[[ "$OUT" == refused:* ]] || fail "foreign certificate was not refused: $OUT"
node_alive || fail "node1 died"

step "the CLI with the foreign certificate is refused too"
it_run MBX_SERVER="$(node_addr node1)" MBX_CERT="$IT_WORK/evil/operator.pem" MBX_KEY="$IT_WORK/evil/operator.key" \
  -- admin copy status db1
[[ $RC -ne 0 ]] || fail "admin copy status with a foreign operator certificate succeeded"
echo "  refused: $ERR"

step "pull with the operator certificate of the cluster CA: EPERM"
pull "$OP_CERT" "$OP_KEY"
eq "$RC" 4 "exit of a pull as operator"
[[ "$OUT" == "error EPERM"* || "$OUT" == "error ENOTAUTH"* ]] || fail "operator pull: want EPERM, got $OUT"

step "pull with the transport certificate: EPERM"
pull "$TR_CERT" "$TR_KEY"
[[ "$OUT" == "error EPERM"* || "$OUT" == "error ENOTAUTH"* ]] || fail "transport pull: want EPERM, got $OUT"

step "pull with the real node2 certificate: a batch"
pull "$IT_DIR/tls/node2.pem" "$IT_DIR/tls/node2.key"
eq "$RC" 0 "exit of a pull with node2's certificate"
[[ "$OUT" == batch* ]] || fail "node2 pull: want a batch, got $OUT"

step "the cluster is unharmed"
wait_synced 30 db1 node1 node2 node3
digests_equal db1 node1 node2 node3
echo "PASS $IT_NAME"
