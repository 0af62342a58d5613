# it_repl_lag.sh — a lagged copy (node3, --lag 3) receives records at once but
# replays them only once they are 3 s old; play-down replays everything on demand.
. "$(dirname "$0")/lib.sh"
it_init
it_up_repl

step "node3 becomes a lagged copy: copy remove, copy add --lag 3"
as_op admin copy remove db1 --node node3; ok "copy remove node3"
copy_status db1
[[ -z "$(copy_field node3 node)" ]] || fail "node3 still listed after copy remove: $OUT"
as_op admin copy add db1 --node node3 --lag 3; ok "copy add db1 --node node3 --lag 3"
wait_synced 60 db1 node1 node3
copy_status db1
eq "$(copy_field node3 lag_s)" 3 "node3 lag_s"

step "a delivery: received by node3 at once, not replayed"
make_eml "$IT_WORK/l1.eml" "lagged-1"
as_transport --json deliver --to "$DEMO" "$IT_WORK/l1.eml"; ok "deliver"
t0=$SECONDS
last=$(db_last_lsn db1 node1)
wait_until 2 bash -c '"$0" --json admin copy status db1 | jq -e ".copies[] | select(.node == \"node3\") | .received_lsn == $1" >/dev/null' "$MBX" "$last" ||
  { show_copies db1; fail "node3 did not receive lsn $last within 2 s"; }
copy_status db1
r3=$(copy_field node3 replayed_lsn)
((SECONDS - t0 < 3)) || fail "test too slow to observe the lag (took $((SECONDS - t0)) s)"
((${r3:-0} < last)) || fail "node3 replayed lsn $last before its 3 s lag passed"
rq=$(copy_field node3 replay_queue_records)
((${rq:-0} >= 1)) || fail "node3 replay queue is ${rq:-0}, want >= 1"
eq "$(copy_field node2 replayed_lsn)" "$last" "node2 (no lag) replayed at once"
echo "  held: node3 received $last, replayed ${r3:-0}, replay queue $rq"

step "after the lag, node3 replays it"
wait_synced 10 db1 node1 node2 node3
echo "  replayed after $((SECONDS - t0)) s"
((SECONDS - t0 >= 2)) || fail "node3 replayed after $((SECONDS - t0)) s: lag not honoured"
digests_equal db1 node1 node2 node3

step "play-down replays held records at once"
for i in 1 2 3; do
  make_eml "$IT_WORK/p$i.eml" "playdown-$i"
  as_transport --json deliver --to "$DEMO" "$IT_WORK/p$i.eml"; ok "deliver $i"
done
last=$(db_last_lsn db1 node1)
wait_until 2 bash -c '"$0" --json admin copy status db1 | jq -e ".copies[] | select(.node == \"node3\") | .received_lsn == $1" >/dev/null' "$MBX" "$last" ||
  fail "node3 did not receive lsn $last"
t0=$SECONDS
as_op admin copy play-down db1 --node node3; ok "copy play-down db1 --node node3"
wait_synced 2 db1 node1 node3
echo "  played down in $((SECONDS - t0)) s"
digests_equal db1 node1 node2 node3
echo "PASS $IT_NAME"
