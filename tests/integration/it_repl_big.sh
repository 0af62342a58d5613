# it_repl_big.sh — replication never wedges on size. Four 30 MB deliveries at once on
# 3 nodes, with the active's group commit free to put them in one record (as it did
# when two of them made one 67.5 MiB record) and the passives' frame limit far below
# any of those records: the records ship in parts, the passives keep up and every
# copy has the same digest. Then a copy told to take records of at most 8 MiB gets a
# 30 MB one: it stops with a reason that names the record and the limit (never
# DisconnectedAndHealthy retrying forever), the other copy stays Healthy, and once
# the limit is raised and the copy resumed it catches up.
. "$(dirname "$0")/lib.sh"
it_init
# Group commit bounded by bytes would make one record per message: let it batch.
export MBX_NODE_CONF_EXTRA="commit_batch_bytes = 1G"
it_up_repl
unset MBX_NODE_CONF_EXTRA

step "passives with a 5 MiB frame limit (every record of a 30 MB message is larger)"
for n in node2 node3; do
  it_cluster stop "$n"
  node_conf_set "$n" max_message_bytes 4M
  node_conf_set "$n" max_frame_bytes 5M
  it_cluster start "$n"
done
wait_synced 30 db1 node1 node2 node3

# big_eml FILE SUBJECT: ~30 MB message whose body (base64 of random bytes, like an
# attachment) compresses poorly: stored, each is still ~23 MB.
big_eml() {
  {
    printf 'From: alice@example.org\r\nTo: %s\r\nSubject: %s\r\n' "$DEMO" "$2"
    printf 'Message-ID: <%s.%s@it.example>\r\nMIME-Version: 1.0\r\n' "$2" "$RANDOM"
    printf 'Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n'
    head -c 22200000 /dev/urandom | base64 -w 76 | sed 's/$/\r/'
  } >"$1"
}

# deliver_at_once FILE...: the files delivered to the active at the same moment, one
# connection each (answers awaited up to 180 s: 30 MB on a loaded machine is slow).
DRV="$ITC_DIR/itc_deliver_at_once"
[[ -x "$DRV" ]] || fail "driver not built: $DRV"
deliver_at_once() {
  env MBX_SERVER="$(node_addr node1)" MBX_CERT="$TR_CERT" MBX_KEY="$TR_KEY" \
    timeout 240 "$DRV" --to "$DEMO" --wait 180 "$@" >"$IT_WORK/at_once.out" 2>&1
  RC=$?
  sed 's|^.*/|  |' "$IT_WORK/at_once.out"
  [[ $RC -eq 0 ]] || fail "deliveries failed (rc=$RC): $(grep -v delivered "$IT_WORK/at_once.out" | head -n 3)"
}

step "four 30 MB deliveries at once"
for i in 1 2 3 4; do big_eml "$IT_WORK/big$i.eml" "big-$i"; done
size=$(stat -c %s "$IT_WORK/big1.eml")
((size > 30000000 && size < 35 * 1024 * 1024)) || fail "test message is $size bytes"
lsn0=$(db_last_lsn db1 node1)
start=$SECONDS
deliver_at_once "$IT_WORK"/big{1,2,3,4}.eml
lsn1=$(db_last_lsn db1 node1)
echo "  4 x $size bytes acknowledged in $((SECONDS - start)) s; log records $lsn0 → $lsn1" \
     "($((lsn1 - lsn0)) records for 4 messages)"
((lsn1 > lsn0 && lsn1 - lsn0 <= 4)) || fail "unexpected records: $lsn0 → $lsn1"

step "the passives keep up and every copy has the same content"
wait_synced 120 db1 node1 node2 node3
show_copies db1
for n in node2 node3; do eq "$(copy_field "$n" status)" Healthy "$n status"; done
digests_equal db1 node1 node2 node3
grep -q 'frame of [0-9]* bytes .* is over the' "$IT_DIR"/log/node*.log &&
  fail "a frame went over a limit: $(grep -h 'is over the' "$IT_DIR"/log/node*.log | head -n 2)"

step "node3 takes records of at most 8 MiB: a 30 MB one stops it with the reason"
it_cluster stop node3
node_conf_set node3 repl_record_max_bytes 8M
it_cluster start node3
wait_synced 30 db1 node1 node2 node3
big_eml "$IT_WORK/big5.eml" big-5
deliver_at_once "$IT_WORK/big5.eml"
wait_synced 60 db1 node1 node2
over_limit() {
  "$MBX" --json admin copy status db1 | jq -e '.copies[] | select(.node == "node3")
    | (.status == "Failed") and ((.reason // "") | test("repl_record_max_bytes"))' >/dev/null
}
wait_until 30 over_limit || { show_copies db1; fail "node3 does not say the record is over its limit"; }
show_copies db1
eq "$(copy_field node2 status)" Healthy "node2 unaffected"
reason=$(copy_field node3 reason)
[[ "$reason" == *"more than this copy accepts"* && "$reason" == *"8388608"* ]] ||
  fail "node3's reason does not give the limit: $reason"
as_op_at node3 --json admin copy status db1; ok "copy status on node3"
grep -q 'copy failed: record [0-9]* is [0-9]* bytes, more than this copy accepts' \
  "$IT_DIR/log/node3.log" || fail "node3 logged no line for the refused record"
sleep 1
copy_status db1
eq "$(copy_field node3 status)" Failed "node3 stays Failed (no retry loop)"

step "raise the limit, restart node3, resume: it catches up"
it_cluster stop node3
sed -i '/^[[:space:]]*repl_record_max_bytes[[:space:]]*=/d' "$IT_DIR/conf/node3.conf"
it_cluster start node3
as_op admin copy resume db1 --node node3; ok "copy resume"
wait_synced 120 db1 node1 node2 node3
copy_status db1
eq "$(copy_field node3 status)" Healthy "node3 after resume"
digests_equal db1 node1 node2 node3
echo "PASS $IT_NAME"
