# it_repl_truncate.sh — log truncation with a small retention limit (2 MB): under a
# long-ish load the active's log stays bounded while node2 keeps up; node3, suspended,
# falls beyond the limit and, resumed, reports that it needs a reseed (Failed, reason
# says reseed) instead of the active keeping the log for it; a reseed fixes it.
. "$(dirname "$0")/lib.sh"
it_init
export MBX_NODE_CONF_EXTRA="log_retain_bytes = 2000000"
it_up_repl
unset MBX_NODE_CONF_EXTRA

step "suspend node3 (with a comment)"
as_op admin copy suspend db1 --node node3 --comment "it: falls behind on purpose"; ok "copy suspend"
copy_status db1
eq "$(copy_field node3 status)" Suspended "node3 status"
eq "$(copy_field node3 comment)" "it: falls behind on purpose" "node3 comment"
size0=$(du -sb "$IT_DIR/data/node1/db/db1" | cut -f1)
lsn0=$(db_last_lsn db1 node1)

step "load in rounds of 15 s (~1 KiB messages) until several times the retention limit"
# A slow build (sanitizers) or a busy machine needs more than one round; at most 4.
n=0
for ((round = 1; round <= 4 && n * 1000 <= 3 * 2000000; round++)); do
  load_start 15 "tr$round" $((n + 1))
  load_wait "tr$round"
  n=$((n + $(wc -l <"$IT_WORK/acked.tr$round")))
done
((n * 1000 > 3 * 2000000)) || fail "load too small to pass the retention limit ($n messages in 4 rounds)"
wait_synced 60 db1 node1 node2

step "the active's log is bounded: its store grows with content, not with the whole log"
size1=$(du -sb "$IT_DIR/data/node1/db/db1" | cut -f1)
size2=$(du -sb "$IT_DIR/data/node2/db/db1" | cut -f1)
echo "  node1 db1: $size0 → $size1 bytes; node2: $size2 bytes; $n messages"
# Content is ~n KiB once (bodies) plus indexes; an untruncated log would hold it again.
# Bound: the active's store at most the passive's plus 4x the retention limit.
((size1 <= size2 + 8000000)) || fail "node1's store ($size1) is far larger than node2's ($size2): log not truncated?"

step "resume node3: beyond the retention limit, it needs a reseed"
as_op admin copy resume db1 --node node3; ok "copy resume"
# Resumed, it finds the active's log truncated past it and reseeds by itself at
# once: copy status (each copy's own view) shows Failed "needs a reseed" or Seeding
# while that lasts; a seed faster than our polling leaves its trace in node3's log.
needs_reseed() {
  "$MBX" --json admin copy status db1 | jq -e '.copies[] | select(.node == "node3") |
    (((.status // "") | test("Failed")) and ((.reason // "") | test("reseed"; "i")))
    or ((.status // "") == "Seeding")' >/dev/null && return 0
  grep -q 'needs a reseed: node1 no longer has the log records' "$IT_DIR/log/node3.log" &&
    grep -q 'seeded from node1' "$IT_DIR/log/node3.log"
}
wait_until 20 needs_reseed ||
  { show_copies db1; fail "node3 does not report that it needs a reseed"; }
show_copies db1
eq "$(copy_field node2 status)" Healthy "node2 unaffected"

step "reseed node3; it catches up"
# Resuming a copy that needs a reseed starts one by itself; an operator's reseed
# racing it is refused with a clear EBUSY, and either way the copy must heal.
as_op admin copy reseed db1 --node node3
if ((RC != 0)); then
  [[ "$ERR" == *"(EBUSY)"* ]] || fail "copy reseed node3: rc=$RC $ERR"
  echo "  an automatic reseed was already running: $ERR"
fi
wait_synced 60 db1 node1 node2 node3
copy_status db1
eq "$(copy_field node3 status)" Healthy "node3 after reseed"
digests_equal db1 node1 node2 node3
echo "PASS $IT_NAME"
