# it_repl_lineage.sh — a sync state issued by a history that was later discarded is
# refused with ESTATE by the surviving active, instead of silently skipping changes.
# The discarded history is made by hand: node1 (the active) writes a tail that only
# node3 receives (node2 is suspended) and hands out sync states from it; node1 is
# then put back to a copy of its store taken before the tail (node3 stopped), and
# the database is moved to node2, which begins epoch 2 and writes other records at
# the tail's lsns. The tail's states are refused on node2 (before and after it passes
# their lsn), a state from before the tail still works, node3 is reseeded away from
# the tail, and a cached profile that had synced the tail resyncs and drops it (and
# still deletes an empty folder whose state was refused).
. "$(dirname "$0")/lib.sh"
it_init
it_up_repl
. "$(dirname "$0")/cache_lib.sh"

as_demo_at() { # as_demo_at NODE ARGS…: demo's command sent to one node only
  local n=$1; shift
  it_run -u MBX_CERT -u MBX_KEY -u MBX_OPERATOR_PASSWORD MBX_SERVER="$(node_addr "$n")" \
    MBX_USER="$DEMO" MBX_PASSWORD="$DEMO_PW" -- "$@"
}
deliver_at() { # deliver_at NODE TAG N: N deliveries TAG-1…TAG-N to NODE
  local i
  for ((i = 1; i <= $3; i++)); do
    make_eml "$IT_WORK/$2-$i.eml" "$2-$i"
    it_run -u MBX_USER -u MBX_PASSWORD -u MBX_OPERATOR_PASSWORD MBX_SERVER="$(node_addr "$1")" \
      MBX_CERT="$TR_CERT" MBX_KEY="$TR_KEY" -- deliver --to "$DEMO" "$IT_WORK/$2-$i.eml"
    ok "deliver $2-$i to $1"
  done
}
subjects() { jqo '[.added[]?, .changed[]? | .message.subject] | sort | join(" ")'; }

step "fill db1; a sync state from the common history"
deliver_at node1 fill 3
as_demo_at node1 folder create Gone; ok "folder create Gone"
wait_synced 60 db1 node1 node2 node3
as_demo_at node1 --json sync Inbox; ok "sync Inbox on node1"
common=$(jqo .state)
x=$(db_last_lsn db1 node1)
it_cluster stop node1
rm -rf "$IT_WORK/db1.before"
cp -a "$IT_DIR/data/node1/db/db1" "$IT_WORK/db1.before"
it_cluster start node1
eq "$(db_last_lsn db1 node1)" "$x" "node1's last lsn across the restart"

step "node1 writes a tail (lsn $((x + 1))…$((x + 3))) that only node3 receives; states and a cached profile from it"
as_op admin copy suspend db1 --node node2; ok "suspend node2"
deliver_at node1 lost 3
wait_synced 60 db1 node1 node3
sync_now p
as_demo_at node1 --json sync Inbox --state "$common"; ok "sync Inbox on the tail"
eq "$(subjects)" "lost-1 lost-2 lost-3" "the tail's changes"
tail_state=$(jqo .state)
as_demo_at node1 --json sync-folders; ok "sync-folders on the tail"
tail_hier=$(jqo .state)
folder_items cached p Inbox | grep -q '^lost-1|' || fail "the profile did not get the tail"

step "the tail is discarded: node1 put back to lsn $x, db1 moved to node2 (epoch 2)"
it_cluster stop node3
it_cluster stop node1
rm -rf "$IT_DIR/data/node1/db/db1"
cp -a "$IT_WORK/db1.before" "$IT_DIR/data/node1/db/db1"
it_cluster start node1
as_op admin copy resume db1 --node node2; ok "resume node2"
wait_synced 30 db1 node1 node2
as_op admin db move-active db1 --to node2; ok "move-active to node2"
as_op_at node2 --json admin db list; ok
eq "$(jqo '.dbs[] | select(.name == "db1") | .role')" active "db1 on node2"
epoch=$(jqo '.dbs[] | select(.name == "db1") | .epoch')
((epoch >= 2)) || fail "node2 is active in epoch $epoch, want a new one"
((x + 3 > $(db_last_lsn db1 node2))) || fail "node2 is already past the tail's lsn"

step "a state from the discarded tail is refused while node2 is short of its lsn"
as_demo_at node2 sync Inbox --state "$tail_state"; refused 1 ESTATE "tail state, node2 behind it"
[[ "$ERR" == *"history this copy does not have"* ]] || fail "the refusal does not say why: $ERR"

step "node2 writes past the tail's lsn: the tail's states are still refused"
deliver_at node2 other 3
(($(db_last_lsn db1 node2) >= x + 3)) || fail "node2 did not pass lsn $((x + 3))"
as_demo_at node2 sync Inbox --state "$tail_state"; refused 1 ESTATE "tail state, node2 past it"
[[ "$ERR" == *"epoch 1"*"epoch $epoch"*"was discarded"* ]] || fail "the refusal does not name the lineages: $ERR"
as_demo_at node2 sync-folders --state "$tail_hier"; refused 1 ESTATE "tail hierarchy state"
grep -aq 'sync of folder [0-9]* refused: ' "$IT_DIR/log/node2.log" || fail "node2 did not log the refusal"

step "a state from before the tail is of an epoch node2's history holds; a fresh sync works"
as_demo_at node2 --json sync Inbox --state "$common"; ok "the common state"
eq "$(subjects)" "other-1 other-2 other-3" "changes since the common state"
as_demo_at node2 --json sync Inbox; ok "a fresh sync"
eq "$(subjects)" "fill-1 fill-2 fill-3 other-1 other-2 other-3" "the Inbox after the failover"
fresh=$(jqo .state)
as_demo_at node2 --json sync Inbox --state "$fresh"; ok "the fresh state continues"
eq "$(subjects)" "" "nothing new"

step "node3 is reseeded away from the tail; the copies agree"
it_cluster start node3
wait_synced 60 db1 node2 node1 node3
grep -aq 'split at lsn' "$IT_DIR/log/node3.log" || fail "node3 never found it had diverged"
digests_equal db1 node2 node1 node3

step "the cached profile that synced the tail resyncs its folders and drops it"
as_cached p folder delete Gone; ok "delete the empty folder Gone in the profile"
sync_now p
as_demo_at node2 --json folders; ok "folders on node2"
eq "$(jqo '[.folders[] | select(.name == "Gone")] | length')" 0 \
  "Gone, empty on the server, deleted despite its refused state"
folder_items server - Inbox >"$IT_WORK/inbox.server"
folder_items cached p Inbox >"$IT_WORK/inbox.p"
eq "$(cut -d'|' -f1 "$IT_WORK/inbox.p" | tr '\n' ' ')" "fill-1 fill-2 fill-3 other-1 other-2 other-3 " \
  "the profile's Inbox"
diff -u "$IT_WORK/inbox.server" "$IT_WORK/inbox.p" || fail "the profile's Inbox differs from the server's"
echo "PASS $IT_NAME"
