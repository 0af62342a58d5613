# it_repl_restore.sh — the active restored from a backup older than its passives:
# take an `mdb_copy` backup of the active's store, acknowledge 3 deliveries, stop the
# active, put the backup back, start it, deliver 4 more. The restored copy must not
# take writes at LSNs its passives already hold: it finds the passive that is ahead,
# hands over to it, and catches up. All 7 deliveries are there, and all digests are
# equal within 60 s.
. "$(dirname "$0")/lib.sh"
it_init
command -v mdb_copy >/dev/null || fail "mdb_copy not installed (lmdb-utils, deploy/install-deps.sh)"
it_up_repl

step "backup of node1's db1 (the active), then 3 acknowledged deliveries"
wait_synced 60 db1 node1 node2 node3
mkdir -p "$IT_WORK/backup"
mdb_copy "$IT_DIR/data/node1/db/db1" "$IT_WORK/backup" || fail "mdb_copy failed"
for i in 1 2 3; do
  make_eml "$IT_WORK/m$i.eml" "restore-$i"
  as_transport deliver --to "$DEMO" "$IT_WORK/m$i.eml"; ok "deliver $i"
done
wait_synced 60 db1 node1 node2 node3

step "restore node1 from the backup and start it"
it_cluster stop node1
rm -f "$IT_DIR/data/node1/db/db1/"*.mdb
cp "$IT_WORK/backup/data.mdb" "$IT_DIR/data/node1/db/db1/data.mdb" || fail "cannot put the backup back"
it_cluster start node1

step "4 more deliveries (libmbx follows the new active)"
for i in 4 5 6 7; do
  make_eml "$IT_WORK/m$i.eml" "restore-$i"
  as_transport deliver --to "$DEMO" "$IT_WORK/m$i.eml"; ok "deliver $i"
done

step "all 7 are there, once, and every copy holds the same history"
end=$((SECONDS + 60)) active=''
while ((SECONDS < end)) && [[ -z "$active" ]]; do
  for n in node1 node2 node3; do
    as_op_at "$n" --json admin db list
    [[ $RC -eq 0 && "$(jqo '.dbs[] | select(.name == "db1") | .role')" == active ]] && active=$n
  done
  [[ -n "$active" ]] || sleep 0.2
done
[[ -n "$active" ]] || fail "no copy of db1 is active 60 s after the restore"
echo "  db1 is active on $active"
wait_synced 60 db1 "$active" $(printf '%s\n' node1 node2 node3 | grep -vx "$active")
digests_equal db1 node1 node2 node3
it_run -u MBX_CERT -u MBX_KEY MBX_USER="$DEMO" MBX_PASSWORD="$DEMO_PW" -- --json list Inbox --limit 1000
ok "list the Inbox"
got=$(printf '%s' "$OUT" | jq -r '.items[].message.subject' | grep '^restore-' | sort | tr '\n' ' ')
eq "$got" "restore-1 restore-2 restore-3 restore-4 restore-5 restore-6 restore-7 " "the 7 deliveries"
grep -q 'restored from an older state' "$IT_DIR/log/node1.log" ||
  fail "node1's log does not say why it handed over"
echo "PASS $IT_NAME"
