# it_cache_watch.sh — `mbx --cached sync --watch` against a real node: it subscribes
# and brings a delivery into the cache within a second; a local change waits for the
# push delay, one in Sent Items goes at once; when the node goes away it says so and
# retries with backoff, and once the node is back it catches up both ways; SIGTERM
# ends it cleanly. Plain timestamped lines when not on a terminal.
. "$(dirname "$0")/lib.sh"
it_init
it_up
. "$(dirname "$0")/cache_lib.sh"

DELAY=3
sync_now w
m1=$(deliver_msg watch-m1)
[[ "$m1" =~ ^[0-9]+$ ]] || fail "no delivery"

step "sync --watch starts and subscribes"
env -u MBX_CERT -u MBX_KEY MBX_CACHE_DIR="$CACHE_DIR_IT" MBX_USER="$DEMO" MBX_PASSWORD="$DEMO_PW" \
  timeout 120 "$MBX" --cached --profile w sync --watch --push-delay "$DELAY" --timeout 100 \
  </dev/null >"$IT_WORK/watch.out" 2>"$IT_WORK/watch.err" &
WPID=$!
IT_PIDS+=("$WPID")
wait_until 15 grep -q 'watching for changes' "$IT_WORK/watch.out" ||
  fail "no subscription: $(cat "$IT_WORK/watch.out" "$IT_WORK/watch.err")"
# The catch-up pass after subscribing must be over, so that what follows can only
# reach the cache through a notification.
wait_until 15 grep -q 'synced' "$IT_WORK/watch.out" ||
  fail "no catch-up pass after subscribing: $(cat "$IT_WORK/watch.out")"

in_cache() {  # in_cache FOLDER SUBJECT [FLAGS]
  as_cached w --json list "$1" --limit 100 || return 1
  printf '%s' "$OUT" | jq -e --arg s "$2" --argjson f "${3:-null}" \
    '[.items[]? | select(.message.subject == $s) | select($f == null or (.flags // 0) == $f)] | length > 0' >/dev/null
}
on_server() {  # on_server FOLDER SUBJECT [FLAGS]
  as_demo --json list "$1" --limit 100 || return 1
  printf '%s' "$OUT" | jq -e --arg s "$2" --argjson f "${3:-null}" \
    '[.items[]? | select(.message.subject == $s) | select($f == null or (.flags // 0) == $f)] | length > 0' >/dev/null
}

step "a delivery reaches the cache by notification"
t0=$(date +%s%N)
deliver_msg watch-m2 >/dev/null
wait_until 5 in_cache Inbox watch-m2 || fail "watch-m2 not in the cache after 5 s"
echo "  in the cache after $((($(date +%s%N) - t0) / 1000000)) ms (CLI polling included)"

step "a local change waits for the push delay ($DELAY s); Sent Items goes at once"
as_cached w flag "$m1" +flagged; ok "flag (queued)"
t0=$(date +%s%N)
sleep 1.5
on_server Inbox watch-m1 2 && fail "the flag went out before the push delay"
wait_until $((DELAY + 5)) on_server Inbox watch-m1 2 || fail "the flag was never pushed"
flag_ms=$((($(date +%s%N) - t0) / 1000000))
((flag_ms >= DELAY * 1000 - 500)) || fail "the flag went out after ${flag_ms} ms, before the delay"
t0=$(date +%s%N)
make_eml "$IT_WORK/sent.eml" "watch-sent"
as_cached w append "Sent Items" "$IT_WORK/sent.eml"; ok "append to Sent Items"
wait_until 2 on_server "Sent Items" watch-sent || fail "Sent Items not pushed at once"
sent_ms=$((($(date +%s%N) - t0) / 1000000))
echo "  the flag after ${flag_ms} ms (delay ${DELAY} s); Sent Items after ${sent_ms} ms"

step "the node goes away: changes queue, the watch retries"
it_cluster stop node1
wait_until 10 grep -q 'server unreachable' "$IT_WORK/watch.out" ||
  fail "the watch did not notice: $(tail -n 5 "$IT_WORK/watch.out")"
as_cached w flag "$m1" +seen; ok "flag while the node is down"
make_eml "$IT_WORK/off.eml" "watch-offline"
as_cached w append Drafts "$IT_WORK/off.eml"; ok "append while the node is down"
sleep 1
kill -0 "$WPID" 2>/dev/null || fail "the watch died with the node away"

step "the node is back: the watch reconnects and catches up both ways"
it_cluster start node1
deliver_msg watch-after >/dev/null
wait_until 40 on_server Drafts watch-offline || fail "the offline append never reached the server"
wait_until $((DELAY + 10)) on_server Inbox watch-m1 3 || fail "the offline flag never reached the server"
wait_until 10 in_cache Inbox watch-after || fail "the delivery after the restart never reached the cache"
grep -c 'retrying in' "$IT_WORK/watch.out" | xargs echo "  retries logged:"

step "SIGTERM ends the watch cleanly"
kill -TERM "$WPID"
wait "$WPID"; wrc=$?
[[ $wrc -eq 0 ]] || fail "the watch exited $wrc: $(cat "$IT_WORK/watch.err")"
[[ ! -s "$IT_WORK/watch.err" ]] || fail "the watch wrote errors: $(cat "$IT_WORK/watch.err")"
grep -q $'\r' "$IT_WORK/watch.out" && fail "terminal control characters in plain output"
sed 's/^/  | /' "$IT_WORK/watch.out" | tail -n 12
sync_now w
same_content w
echo "PASS it_cache_watch"
