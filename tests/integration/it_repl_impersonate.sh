# it_repl_impersonate.sh — a node acts only in the name its certificate gives.
# With node3 stopped (so the active keeps the log from node3's position), node2's
# certificate pulls and acknowledges in node3's name: both are refused with EPERM
# naming the two nodes, the active logs why and closes the connection, and node3's
# records stay in the active's log (before the check, node2 could acknowledge for node3
# and make the active truncate them). node2 acting in its own name is accepted; node3
# comes back and catches up without a reseed. Then node3's peer address for node1 is
# pointed at node2: node3 refuses to pull from a node whose certificate names another.
. "$(dirname "$0")/lib.sh"
it_init
it_up_repl
DRV="$ITC_DIR/itc_repl"
[[ -x "$DRV" ]] || fail "driver not built: $DRV"

# repl CERT_NODE pull|ack DB NODE LSN: itc_repl against node1 with CERT_NODE's certificate.
repl() {
  env MBX_SERVER="$(node_addr node1)" MBX_CA="$MBX_CA" MBX_CERT="$IT_DIR/tls/$1.pem" \
    MBX_KEY="$IT_DIR/tls/$1.key" timeout 30 "$DRV" "$2" "$3" "$4" "$5" \
    >"$IT_WORK/out" 2>"$IT_WORK/err"
  RC=$?; OUT=$(cat "$IT_WORK/out"); ERR=$(cat "$IT_WORK/err")
  echo "  $1's certificate: $2 $3 as $4 ($5) → rc=$RC $(printf '%s' "$OUT" | tr '\n' ' ')"
}

# refused_as WHAT: the last repl was refused with EPERM naming node3 and node2, the
# connection was closed after the answer, and node1 logged it.
refused_as() {
  eq "$RC" 4 "exit of a $1 by node2 as node3"
  [[ "$OUT" == "error EPERM"* ]] || fail "$1 as node3: want EPERM, got $OUT"
  [[ "$OUT" == *"node node3"* && "$OUT" == *"names node2"* ]] ||
    fail "$1 as node3: the error does not name both nodes: $OUT"
  [[ "$OUT" == *$'\n'closed ]] || fail "$1 as node3: the connection stayed open"
  wait_until 5 grep -q "$1 refused: it speaks for node node3, but the client certificate names node2" \
    "$IT_DIR/log/node1.log" || fail "node1 logged no line for the refused $1"
}

deliver_n() { # deliver_n TAG N
  local i
  for ((i = 1; i <= $2; i++)); do
    make_eml "$IT_WORK/$1-$i.eml" "$1-$i"
    as_transport deliver --to "$DEMO" "$IT_WORK/$1-$i.eml"; ok "deliver $1-$i"
  done
}

step "node3 stops; writes go on; the active keeps the log from node3's position"
wait_synced 30 db1 node1 node2 node3
l3=$(db_last_lsn db1 node3)
it_cluster stop node3
deliver_n before 5
wait_synced 30 db1 node1 node2
last=$(db_last_lsn db1 node1)
((last >= l3 + 5)) || fail "writes did not go through: node3 at $l3, active at $last"

step "node2's certificate pulls in node3's name: refused"
repl node2 pull db1 node3 $((last + 1))
refused_as pull

step "node2's certificate acknowledges in node3's name: refused"
repl node2 ack db1 node3 "$last"
refused_as acknowledgement

step "node2's certificate in node2's own name: accepted"
repl node2 ack db1 node2 "$last"
eq "$RC" 0 "exit of node2's own acknowledgement"
eq "$OUT" accepted "node2's own acknowledgement"
repl node2 pull db1 node2 "$last"
eq "$RC" 0 "exit of node2's own pull"
[[ "$OUT" == batch* ]] || fail "node2's own pull: want a batch, got $OUT"

step "more writes (each commit truncates what no copy needs): node3's records are kept"
sleep 1                               # the active recomputes its truncation floor
deliver_n after 3
copy_status db1
eq "$(copy_field node3 received_lsn)" "$l3" "node3's position as the active sees it"
# node3's next record must still be in node1's log: node3, in its own name, gets it.
repl node3 pull db1 node3 $((l3 + 1))
eq "$RC" 0 "exit of node3's pull from lsn $((l3 + 1))"
[[ "$OUT" == "batch "[1-9]* ]] || fail "node3's records were truncated: $OUT"

step "node3 comes back and catches up without a reseed"
it_cluster start node3
wait_synced 60 db1 node1 node2 node3
show_copies db1
eq "$(copy_field node3 status)" Healthy "node3 status"
grep -q 'seeding from' "$IT_DIR/log/node3.log" && fail "node3 was reseeded"
digests_equal db1 node1 node2 node3

step "node3's address for node1 leads to node2: node3 does not pull from it"
n3_before=$(db_last_lsn db1 node3)
it_cluster stop node3
node_conf_set node3 peer.node1 "$(node_addr node2)"
it_cluster start node3
deliver_n misdirected 2
wrong_peer() {
  "$MBX" --server "$(node_addr node3)" --json admin copy status db1 2>/dev/null |
    jq -e '.copies[] | select(.node == "node3") | (.reason // "") | test("is not node1")' >/dev/null
}
wait_until 20 wrong_peer ||
  { as_op_at node3 --json admin copy status db1; fail "node3 does not say its peer is not node1: $OUT"; }
as_op_at node3 --json admin copy status db1
echo "  node3: $(printf '%s' "$OUT" | jq -r '.copies[] | select(.node == "node3") | "\(.status) — \(.reason)"')"
grep -q "presented a certificate for node2 (OU node), not node1" "$IT_DIR/log/node3.log" ||
  fail "node3 logged no line for the wrong certificate"
eq "$(db_last_lsn db1 node3)" "$n3_before" "node3 took nothing from the wrong node"

step "the right address again: node3 catches up"
it_cluster stop node3
node_conf_set node3 peer.node1 "$(node_addr node1)"
it_cluster start node3
wait_synced 60 db1 node1 node2 node3
digests_equal db1 node1 node2 node3
echo "PASS $IT_NAME"
