# it_cache_big.sh — cached mode on a 10,000-item folder: the first sync brings every
# item (bodies on demand), then an incremental two-way sync with 10 changes each way
# (5 deliveries + 5 flag changes on the server; 5 flags + 5 moves in the cache)
# leaves the cache and the server with the same content. Functional: the speed
# targets are measured by tests/bench/run-cache-bench.sh.
. "$(dirname "$0")/lib.sh"
it_init
it_up
. "$(dirname "$0")/cache_lib.sh"
N=10000

step "fill the Inbox with $N messages"
[[ -x "$ITC_DIR/itc_load" ]] || fail "driver not built: $ITC_DIR/itc_load"
env MBX_CERT="$TR_CERT" MBX_KEY="$TR_KEY" timeout 300 "$ITC_DIR/itc_load" --to "$DEMO" \
  --conns 8 --count "$N" --seconds 240 >"$IT_WORK/acked" 2>"$IT_WORK/load.err" ||
  fail "itc_load failed: $(cat "$IT_WORK/load.err")"
eq "$(wc -l <"$IT_WORK/acked")" "$N" "deliveries acknowledged"

step "first sync"
as_cached big --json sync-now; ok "first sync-now"
echo "  $OUT"
eq "$(jqo '.added')" "$N" "items brought by the first sync"
us=$(jqo '.elapsed_us')
echo "  first sync of $N items: $((us / 1000)) ms, $((N * 1000000 / (us > 0 ? us : 1))) items/s (with logins)"
as_cached big --json list Inbox --limit 1; ok
eq "$(jqo '.total')" "$N" "Inbox total in the cache"

step "10 changes each way"
as_demo --json list Inbox --limit 40; ok
mapfile -t ids < <(jqo '.items[].id')
((${#ids[@]} == 40)) || fail "want 40 ids, got ${#ids[@]}"
for n in 1 2 3 4 5; do deliver_msg "big-new-$n" >/dev/null; done
for i in 0 1 2 3 4; do as_demo flag "${ids[$i]}" +seen; ok "server flag"; done
for i in 10 11 12 13 14; do as_cached big flag "${ids[$i]}" +flagged; ok "cache flag"; done
for i in 20 21 22 23 24; do as_cached big move "${ids[$i]}" Archive; ok "cache move"; done
as_cached big --json sync-now; ok "incremental sync-now"
echo "  $OUT"
eq "$(jqo '.added')" "5" "deliveries brought"
eq "$(jqo '.changed')" "5" "server flag changes brought"
eq "$(jqo '.pushed')" "10" "local changes pushed"
eq "$(jqo '.queued')" "0" "nothing left queued"

step "the cache and the server agree"
folder_items server "" Inbox >"$IT_WORK/srv.inbox"
folder_items cached big Inbox >"$IT_WORK/cache.inbox"
eq "$(wc -l <"$IT_WORK/srv.inbox")" "$((N + 5 - 5))" "server Inbox items"
diff -q "$IT_WORK/srv.inbox" "$IT_WORK/cache.inbox" >/dev/null ||
  fail "Inbox differs: $(diff "$IT_WORK/srv.inbox" "$IT_WORK/cache.inbox" | head -n 10)"
folder_items server "" Archive >"$IT_WORK/srv.archive"
folder_items cached big Archive >"$IT_WORK/cache.archive"
eq "$(wc -l <"$IT_WORK/srv.archive")" "5" "moved to Archive"
diff -q "$IT_WORK/srv.archive" "$IT_WORK/cache.archive" >/dev/null || fail "Archive differs"
eq "$(grep -c '|3|$' "$IT_WORK/srv.inbox")" "0" "no item both seen and flagged"
eq "$(grep -c '|1|$' "$IT_WORK/srv.inbox")" "5" "seen on the server"
eq "$(grep -c '|2|$' "$IT_WORK/srv.inbox")" "5" "flagged in the cache, pushed"
echo "PASS it_cache_big"
