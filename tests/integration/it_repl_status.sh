# it_repl_status.sh — copy status an operator can trust: every node that holds a
# copy is asked for its own view; a node that does not answer is its own row
# (ServiceDown), the view is announced as partial on stderr, a dead passive is never
# shown Healthy, and --check exits non-zero unless every copy is healthy.
. "$(dirname "$0")/lib.sh"
it_init
it_up_repl

step "all up: --check passes once the passives caught up"
make_eml "$IT_WORK/a.eml" "status-1"
as_transport deliver --to "$DEMO" "$IT_WORK/a.eml"; ok "deliver"
wait_synced 60 db1 node1 node2 node3
as_op_at node1 admin copy status db1 --check; ok "--check with every copy healthy"
[[ "$ERR" != *partial* ]] || fail "partial view announced with every node up: $ERR"
as_op_at node1 admin copy status db1; ok
[[ "$OUT" == *"LAST CONTACT"* ]] || fail "no LAST CONTACT column: $OUT"

step "a dead passive is ServiceDown, never Healthy; the view is partial"
it_cluster kill node3
for via in node1 node2; do
  as_op_at "$via" --json admin copy status db1; ok "copy status via $via"
  eq "$(jqo '.copies[] | select(.node == "node3") | .status')" ServiceDown "node3 seen from $via"
  eq "$(jqo '.unreachable | join(",")')" node3 "unreachable nodes seen from $via"
  [[ "$ERR" == *"partial view: node node3"* ]] || fail "no partial-view line on stderr: $ERR"
done
as_op_at node2 admin copy status db1 --check
[[ $RC -ne 0 ]] || fail "--check passed with node3 down"
[[ "$ERR" == *"not healthy"* ]] || fail "--check said nothing: $ERR"

step "a dead active is its own row when asked through a passive"
it_cluster start node3
wait_synced 60 db1 node1 node2 node3
it_cluster kill node1
as_op_at node2 --json admin copy status db1; ok "copy status via node2 with node1 down"
eq "$(jqo '.copies[] | select(.node == "node1") | .status')" ServiceDown "node1 seen from node2"
eq "$(jqo '.copies[] | select(.node == "node1") | .role')" active "node1's role"
[[ "$(jqo '.unreachable | join(",")')" == *node1* ]] || fail "node1 not listed unreachable: $OUT"
as_op_at node2 admin copy status db1 --check
[[ $RC -ne 0 ]] || fail "--check passed with the active down"
it_cluster start node1
echo "PASS $IT_NAME"
