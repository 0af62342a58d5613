# it_repl_relay_cuts.sh — node2 pulls from node1 through a fault-injecting relay
# (itc_relay) that resets every connection through it again and again during a
# write load: node2 reconnects and resumes from its received lsn each time; at the
# end every copy is caught up and the digests are equal.
. "$(dirname "$0")/lib.sh"
it_init
it_up_repl

step "node2's peer.node1 points at the relay"
relay_start node1
restart_via_relay node2
wait_synced 30 db1 node1 node2 node3

step "load for 10 s; cut the relayed connections every 0.4-1.2 s"
load_start 10 cuts 1
end=$((SECONDS + 10))
while ((SECONDS < end)); do
  sleep "0.$((4 + RANDOM % 8))"
  kill -USR1 "$RELAY_PID" || fail "relay gone: $(cat "$IT_WORK/relay.err")"
done
load_wait cuts
cut_conns=$(awk '/cut [0-9]+ connection/ && $3 > 0 {n++} END {print n+0}' "$IT_WORK/relay.err")
echo "  relay: $(grep -c 'cut ' "$IT_WORK/relay.err") cuts, $cut_conns of them with live connections"
((cut_conns >= 4)) || fail "only $cut_conns cuts hit a live replication connection: $(cat "$IT_WORK/relay.err")"

step "copies resume and catch up; digests equal"
wait_synced 60 db1 node1 node2 node3
show_copies db1
eq "$(copy_field node2 status)" Healthy "node2 status after the cuts"
digests_equal db1 node1 node2 node3
echo "PASS $IT_NAME"
