# it_cache_crash.sh — crash safety of cached mode: changes acknowledged by `mbx
# --cached` survive kill -9 of the client, and a sync killed -9 in the middle of its
# pushes (several times) and restarted pushes every queued change exactly once. The
# "exactly once" part rests on the node's idempotency keys: a push whose reply was
# lost to the kill is sent again with the same key and not applied twice.
. "$(dirname "$0")/lib.sh"
it_init
it_up
. "$(dirname "$0")/cache_lib.sh"

# Enough changes, and big enough, that a push takes a while even pipelined (64 at
# a time), so the kills below land in the middle of it.
N=1000
step "first sync, then $N appends and some flags queued offline"
sync_now a
it_cluster stop node1
for ((i = 1; i <= N; i++)); do
  make_eml "$IT_WORK/q.eml" "queued-$i" alice@example.org "$DEMO" 8192
  as_cached a --json append Drafts "$IT_WORK/q.eml"; ok "append $i"
  if ((i % 10 == 0)); then
    as_cached a flag "$(jqo '.item.id')" +flagged; ok "flag $i (a local id)"
  fi
done
queued=$(status_field a queued)
eq "$queued" "$((N + N / 10))" "queued changes"

step "kill -9 of the client while it writes changes loses nothing it acknowledged"
: >"$IT_WORK/acked"
(
  for ((i = 1; i <= 400; i++)); do
    make_eml "$IT_WORK/k.eml" "acked-$i"
    env -u MBX_CERT -u MBX_KEY MBX_CACHE_DIR="$CACHE_DIR_IT" MBX_USER="$DEMO" \
      "$MBX" --cached --profile a append Drafts "$IT_WORK/k.eml" >/dev/null 2>&1 &
    echo $! >"$IT_WORK/writer.pid"
    wait $! && echo "acked-$i" >>"$IT_WORK/acked"
  done
) &
writer=$!
IT_PIDS+=("$writer")
acked_at_least() { (($(wc -l <"$IT_WORK/acked") >= $1)); }
wait_until 30 acked_at_least 20 || fail "the writer acknowledged nothing"
# kill the loop, then the mbx it runs right now (mid-transaction or not), by pid
kill -9 "$writer" 2>/dev/null
wait "$writer" 2>/dev/null
kill -9 "$(cat "$IT_WORK/writer.pid")" 2>/dev/null
acked=$(wc -l <"$IT_WORK/acked")
echo "  $acked changes acknowledged before the kill"
folder_items cached a Drafts | cut -d'|' -f1 >"$IT_WORK/cached.subjects"
while read -r s; do
  grep -qx "$s" "$IT_WORK/cached.subjects" || fail "acknowledged change $s is not in the cache"
done <"$IT_WORK/acked"
expect=$(sort -u "$IT_WORK/cached.subjects" | grep -c '^\(queued\|acked\)-')
eq "$(wc -l <"$IT_WORK/cached.subjects")" "$expect" "no change twice in the cache"
queued=$(status_field a queued)

step "kill -9 of sync-now in the middle of its pushes, 4 times"
it_cluster start node1
# Each sync stops itself at a known point (libmbx's MBX_TEST_PUSH_STALL_WAVE): after
# its second pipelined wave was applied and answered by the node but before the
# cache recorded it, the worst moment for a kill. Then we kill it -9.
kills=0
for ((k = 1; k <= 4; k++)); do
  before=$(status_field a queued)
  ((before > 0)) || break
  stall="$IT_WORK/stall.$k"
  env -u MBX_CERT -u MBX_KEY MBX_CACHE_DIR="$CACHE_DIR_IT" MBX_USER="$DEMO" \
    MBX_PASSWORD="$DEMO_PW" MBX_TEST_PUSH_STALL_WAVE=2 MBX_TEST_PUSH_STALL_FILE="$stall" \
    "$MBX" --cached --profile a sync-now >"$IT_WORK/sync.$k.out" 2>&1 &
  spid=$!
  IT_PIDS+=("$spid")
  stalled() { [[ -s "$stall" ]] || ! kill -0 "$spid" 2>/dev/null; }
  wait_until 60 stalled || fail "sync $k neither stalled mid-push nor ended within 60 s"
  [[ -s "$stall" ]] ||
    fail "sync $k ended before its second wave was answered: $(head -c 500 "$IT_WORK/sync.$k.out")"
  kill -9 "$spid" 2>/dev/null && kills=$((kills + 1))
  wait "$spid" 2>/dev/null
  after=$(status_field a queued)
  echo "  kill $k: queue $before → $after"
  ((after < before)) || fail "sync $k pushed nothing before its kill (queue $before → $after)"
done
((kills == 4)) || fail "only $kills of 4 syncs were killed mid-push: the test proved less than it says"

step "restart: everything pushed, each change exactly once"
sync_now a
sync_now a
eq "$(status_field a queued)" "0" "queue empty"
folder_items server "" Drafts >"$IT_WORK/server.items"
cut -d'|' -f1 "$IT_WORK/server.items" >"$IT_WORK/server.subjects"
dups=$(uniq -d "$IT_WORK/server.subjects" | head -n 5 | tr '\n' ' ')
[[ -z "$dups" ]] || fail "applied twice on the server: $dups"
for ((i = 1; i <= N; i++)); do
  grep -qx "queued-$i" "$IT_WORK/server.subjects" || fail "queued-$i never reached the server"
done
while read -r s; do
  grep -qx "$s" "$IT_WORK/server.subjects" || fail "acknowledged $s never reached the server"
done <"$IT_WORK/acked"
eq "$(grep -c . "$IT_WORK/server.subjects")" "$(grep -c . "$IT_WORK/cached.subjects")" \
  "server and cache hold the same number of drafts"
flagged=$(grep -c '^queued-[0-9]*|2|' "$IT_WORK/server.items")
eq "$flagged" "$((N / 10))" "flags queued on local ids reached the server"
same_content a
echo "PASS it_cache_crash"
