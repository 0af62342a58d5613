# it_repl_reseed.sh — reseeding while the active takes writes: node2 from the active,
# then node3 from a passive source (node2). The old copy stays in place until the new
# one is complete, the copy catches up from the snapshot's lsn, digests are equal.
. "$(dirname "$0")/lib.sh"
it_init
it_up_repl

step "fill db1 a little, let the copies catch up"
load_start 4 fill 1
load_wait fill
wait_synced 60 db1 node1 node2 node3

step "reseed node2 from the active during a write load"
load_start 12 rs 1000000
sleep 1
as_op admin copy reseed db1 --node node2; ok "copy reseed db1 --node node2"
echo "  $ERR" | tail -n 2
[[ ! -e "$IT_DIR/data/node2/db/db1.seed.tmp" ]] || fail "seed dir left behind after the reseed"
[[ ! -e "$IT_DIR/data/node2/db/db1.old" ]] || fail "old copy dir left behind after the reseed"
copy_status db1
case "$(copy_field node2 status)" in
  Healthy | Resynchronizing | Initializing) ;;
  *) fail "node2 after reseed: $(copy_field node2 status) $(copy_field node2 reason)" ;;
esac

step "reseed node3 from node2 (a passive source) during the same load"
as_op admin copy reseed db1 --node node3 --source node2; ok "copy reseed db1 --node node3 --source node2"
grep -aq 'SeedingSource\|seed' "$IT_DIR/log/node2.log" || echo "  (node2's log does not mention the seed)"
load_wait rs

step "all copies catch up; digests equal"
wait_synced 60 db1 node1 node2 node3
show_copies db1
digests_equal db1 node1 node2 node3
echo "PASS $IT_NAME"
