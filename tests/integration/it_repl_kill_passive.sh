# it_repl_kill_passive.sh — kill -9 of a passive (node2) in the middle of the stream
# while writes continue; restarted, it catches up from where it was with no gap
# (its store refuses a gap, so caught up + equal digests means none) and the active
# never stopped acknowledging.
. "$(dirname "$0")/lib.sh"
it_init
it_up_repl

step "load for 12 s; kill -9 node2 mid-stream"
load_start 12 kp 1
sleep 1
wait_until 5 test "$(wc -l <"$IT_WORK/acked.kp")" -ge 50 || fail "load did not get going"
p=$(pid_of_node node2)
before=$(wc -l <"$IT_WORK/acked.kp")
it_cluster kill node2
echo "  killed node2 (pid $p) at $before acks"

step "writes continue on the active while node2 is down"
sleep 2
after=$(wc -l <"$IT_WORK/acked.kp")
((after > before + 50)) || fail "active stalled while a passive was down ($before → $after acks in 2 s)"
copy_status db1
echo "  node2 seen by the active: $(copy_field node2 status)"

step "restart node2 while the load still runs"
it_cluster start node2
load_wait kp

step "node2 catches up; digests equal; node3 stayed in step"
wait_synced 60 db1 node1 node2 node3
show_copies db1
eq "$(copy_field node2 status)" Healthy "node2 status"
digests_equal db1 node1 node2 node3
echo "PASS $IT_NAME"
