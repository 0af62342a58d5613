# it_repl_activate.sh — forced activation with the active's node down: without
# --force it is refused with how far behind the copy may be; with --force node2 is
# active in a new epoch and node3 follows it. node1 held records node2 never got (its
# copy was suspended); when node1 returns it learns of the newer epoch, takes no
# writes, is found Diverged and is reseeded: every copy ends with equal digests and
# the new active's history.
. "$(dirname "$0")/lib.sh"
it_init
it_up_repl

step "node2 misses two deliveries (suspended), node1 and node3 have them"
make_eml "$IT_WORK/a.eml" "before"
as_transport deliver --to "$DEMO" "$IT_WORK/a.eml"; ok "deliver"
wait_synced 60 db1 node1 node2 node3
as_op admin copy suspend db1 --node node2 --comment "test: miss the tail"; ok "suspend node2"
for i in 1 2; do
  make_eml "$IT_WORK/t$i.eml" "tail-$i"
  as_transport deliver --to "$DEMO" "$IT_WORK/t$i.eml"; ok "deliver tail $i"
done
wait_synced 60 db1 node1 node3
as_op admin copy resume db1 --node node2; ok "resume node2"

step "the active's node dies before node2 catches up; activation without --force is refused"
# kill at once: node2 may or may not have pulled the tail; either way must work
it_cluster kill node1
as_op_at node2 admin db activate db1 --node node2
[[ $RC -ne 0 ]] || fail "activation without --force was accepted"
[[ "$ERR" == *"cannot prove nothing is lost"* ]] || fail "the refusal does not say why: $ERR"

step "--force: node2 active in a new epoch, node3 follows, writes work"
as_op_at node2 admin db activate db1 --node node2 --force; ok "forced activation"
as_op_at node2 --json admin db list; ok
eq "$(jqo '.dbs[] | select(.name == "db1") | .role')" active "db1 on node2"
make_eml "$IT_WORK/b.eml" "after"
it_run -u MBX_USER -u MBX_PASSWORD MBX_SERVER="$(node_addr node2),$(node_addr node3)" \
  MBX_CERT="$TR_CERT" MBX_KEY="$TR_KEY" -- deliver --to "$DEMO" "$IT_WORK/b.eml"
ok "deliver to the new active"

step "node1 returns: becomes a passive of node2, resynced; digests equal"
it_cluster start node1
end=$((SECONDS + 60))
until as_op_at node1 --json admin db list &&
  [[ "$(jqo '.dbs[] | select(.name == "db1") | .role')" == passive ]]; do
  ((SECONDS < end)) || fail "node1 did not become passive: $OUT"
  sleep 0.2
done
wait_synced 90 db1 node2 node1 node3
digests_equal db1 node1 node2 node3
it_run -u MBX_CERT -u MBX_KEY MBX_SERVER="$(node_addr node2)" MBX_USER="$DEMO" MBX_PASSWORD="$DEMO_PW" \
  -- --json list Inbox --limit 1000
ok "list"
got=$(printf '%s' "$OUT" | jq -r '.items[].message.subject' | grep -E '^(before|after)$' | sort | tr '\n' ' ')
eq "$got" "after before " "the new active's history on every copy"
echo "PASS $IT_NAME"
