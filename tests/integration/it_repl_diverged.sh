# it_repl_diverged.sh — a passive whose log is not a prefix of the active's is Diverged,
# with the lsn where the histories split, and never Healthy. The divergence is made
# by hand: node1 (the active) is put back to a copy of its store taken earlier while
# node3 kept the records written after it, then node1 writes other records at those
# lsns. With auto_reseed_diverged = no node3 stays Diverged until an operator reseeds
# it; by default it is reseeded at once. Either way it ends Healthy with equal digests.
# (node2 is suspended while node1 is put back, so only node3 diverges.)
. "$(dirname "$0")/lib.sh"
it_init
it_up_repl

deliver_n() { # deliver_n N TAG: N deliveries to the active (node1)
  local i f
  for ((i = 1; i <= $1; i++)); do
    f="$IT_WORK/$2.$i.eml"
    make_eml "$f" "$2-$i"
    it_run -u MBX_USER -u MBX_PASSWORD -u MBX_OPERATOR_PASSWORD MBX_SERVER="$(node_addr node1)" \
      MBX_CERT="$TR_CERT" MBX_KEY="$TR_KEY" -- deliver --to "$DEMO" "$f"
    ok "deliver $2-$i"
  done
}

# diverge_node3 TAG: leaves node3 stopped with 3 records (lsn X+1..X+3) that node1 no
# longer has; node1 holds 5 other records from X+1 on. Sets DIV_X to X.
diverge_node3() {
  local tag=$1
  it_cluster stop node1
  rm -rf "$IT_WORK/db1.$tag"
  cp -a "$IT_DIR/data/node1/db/db1" "$IT_WORK/db1.$tag"
  it_cluster start node1
  DIV_X=$(db_last_lsn db1 node1)
  as_op admin copy suspend db1 --node node2; ok "suspend node2"
  deliver_n 3 "$tag-lost"
  wait_synced 60 db1 node1 node3
  it_cluster stop node3
  it_cluster stop node1
  rm -rf "$IT_DIR/data/node1/db/db1"
  cp -a "$IT_WORK/db1.$tag" "$IT_DIR/data/node1/db/db1"
  it_cluster start node1
  deliver_n 5 "$tag-other"
}

step "fill db1, all copies in step"
deliver_n 5 fill
wait_synced 60 db1 node1 node2 node3

step "phase 1: auto_reseed_diverged = no; node3 gets a history node1 does not have"
node_conf_set node3 auto_reseed_diverged no
diverge_node3 p1
split=$((DIV_X + 1))
echo "  node1 was put back to lsn $DIV_X; node3 holds other records from lsn $split"
it_cluster start node3

step "node3 is Diverged at lsn $split, and stays so (never Healthy)"
wait_until 20 sh -c "grep -aq 'split at lsn' '$IT_DIR/log/node3.log'" ||
  fail "node3 never logged a divergence"
for i in 1 2 3 4 5 6; do
  copy_status db1
  st=$(copy_field node3 status)
  [[ "$st" != Healthy && "$st" != DisconnectedAndHealthy ]] || fail "diverged node3 shown as $st"
  sleep 0.5
done
as_op_at node3 --json admin copy status db1; ok "copy status on node3"
show_copies db1
eq "$(copy_field node3 status)" Diverged "node3 status"
eq "$(copy_field node3 diverged_lsn)" "$split" "node3 diverged_lsn"
[[ "$(copy_field node3 reason)" == *"split at lsn $split"* ]] ||
  fail "node3's reason does not name lsn $split: $(copy_field node3 reason)"

step "the operator reseeds node3; it ends Healthy with node1's digest"
as_op admin copy reseed db1 --node node3; ok "copy reseed db1 --node node3"
wait_synced 60 db1 node1 node3
as_op admin copy resume db1 --node node2; ok "resume node2"
wait_synced 60 db1 node1 node2 node3
show_copies db1
eq "$(copy_field node3 status)" Healthy "node3 after the reseed"
eq "$(copy_field node2 status)" Healthy "node2 (its log was a prefix: it follows)"
digests_equal db1 node1 node2 node3

step "phase 2: by default a Diverged copy is reseeded at once"
it_cluster stop node3
node_conf_set node3 auto_reseed_diverged yes
it_cluster start node3
wait_synced 60 db1 node1 node2 node3
diverge_node3 p2
split=$((DIV_X + 1))
it_cluster start node3
wait_until 20 sh -c "test \$(grep -ac 'split at lsn $split' '$IT_DIR/log/node3.log') -gt 0" ||
  fail "node3 never logged the divergence at lsn $split"
wait_synced 90 db1 node1 node3
grep -aq 'reseeding from the active' "$IT_DIR/log/node3.log" || fail "node3 did not reseed itself"
as_op admin copy resume db1 --node node2; ok "resume node2"
wait_synced 60 db1 node1 node2 node3
show_copies db1
eq "$(copy_field node3 status)" Healthy "node3 after the automatic reseed"
digests_equal db1 node1 node2 node3
echo "PASS $IT_NAME"
