# it_notify.sh — push notifications, idempotency keys and if_cn on a real node:
# a subscriber hears of deliveries from the transport within 100 ms (generous in a
# sanitizer build), a hierarchy subscriber of a folder creation; a keyed write repeated
# on a new connection applies once; `mbx watch` prints changes; subscriptions end
# cleanly when the node stops, and after a restart a new subscription works and a sync
# from the state held before returns what changed while the client was away (the
# catch-up contract). Driven partly by itc_notify (frames spoken directly).
. "$(dirname "$0")/lib.sh"
it_init
DRV="$ITC_DIR/itc_notify"
[[ -x "$DRV" ]] || fail "driver not built: $DRV"
it_up

# A sanitizer build is several times slower: the latency bound follows.
MAX_MS=100
grep -q 'MBX_SANITIZE:BOOL=ON' "$MBX_BIN/CMakeCache.txt" 2>/dev/null && MAX_MS=400

drv() {  # drv ARGS…: the driver ($DRV) as demo (user) with the transport certificate
  env MBX_USER="$DEMO" MBX_PASSWORD="$DEMO_PW" MBX_CERT="$TR_CERT" MBX_KEY="$TR_KEY" \
    timeout 60 "$DRV" "$@" >"$IT_WORK/drv.out" 2>"$IT_WORK/drv.err"
  RC=$?
  OUT=$(cat "$IT_WORK/drv.out"); ERR=$(cat "$IT_WORK/drv.err")
  printf '%s\n' "$OUT"
}

step "latency: 20 deliveries, each notified within $MAX_MS ms"
drv latency 20 "$MAX_MS"; ok "itc_notify latency"

step "hierarchy: a folder creation is notified; a delivery only to folder subscribers"
drv hierarchy; ok "itc_notify hierarchy"

step "idempotency keys and if_cn"
drv idem; ok "itc_notify idem"

step "limits: subscriptions per connection, unknown folder, 1000 folder ids"
drv limits 16; ok "itc_notify limits"

step "libmbx: mbxc_call_sync_idem, mbxc_subscribe + mbxc_wait (no request timeout)"
[[ -x "$ITC_DIR/itl_client" ]] || fail "driver not built: $ITC_DIR/itl_client"
DRV="$ITC_DIR/itl_client" drv; ok "itl_client"

# watch_start NAME ARGS…: `mbx ARGS…` (a watch) as demo in the background, output in
# $IT_WORK/NAME.
watch_start() {
  local name=$1; shift
  env -u MBX_CERT -u MBX_KEY MBX_USER="$DEMO" MBX_PASSWORD="$DEMO_PW" \
    timeout 60 "$MBX" "$@" </dev/null >"$IT_WORK/$name.out" 2>"$IT_WORK/$name.err" &
  WATCH_PID=$!
  IT_PIDS+=("$WATCH_PID")
  wait_until 10 grep -qE '^subscribed|"subscribed":' "$IT_WORK/$name.out" ||
    fail "mbx $*: not subscribed: $(cat "$IT_WORK/$name.err")"
}
watch_end() {  # watch_end: waits for the watcher; its exit code in WATCH_RC
  wait "$WATCH_PID"; WATCH_RC=$?
}

step "mbx watch: a delivery and a folder creation, then --count ends it"
watch_start w1 watch Inbox --hierarchy --count 2 --timeout 20
make_eml "$IT_WORK/m1.eml" "watched-1"
as_transport deliver --to "$DEMO" "$IT_WORK/m1.eml"; ok "deliver"
as_demo folder create "Watched"; ok "folder create"
watch_end
[[ $WATCH_RC -eq 0 ]] || fail "mbx watch exited $WATCH_RC: $(cat "$IT_WORK/w1.err")"
cat "$IT_WORK/w1.out"
eq "$(grep -c '^changed' "$IT_WORK/w1.out")" 2 "change lines from mbx watch"
grep -q '^changed  Inbox cn=' "$IT_WORK/w1.out" || fail "no Inbox change line"
grep -q '^changed  hierarchy hcn=' "$IT_WORK/w1.out" || fail "no hierarchy change line"

step "mbx watch --json, and --timeout without --count ends quietly"
watch_start w2 --json watch --timeout 3
as_transport deliver --to "$DEMO" "$IT_WORK/m1.eml"; ok "deliver"
watch_end
[[ $WATCH_RC -eq 0 ]] || fail "mbx watch --timeout exited $WATCH_RC: $(cat "$IT_WORK/w2.err")"
jq -se '[.[] | select(.subscribed == true)][0].folders | length >= 11' "$IT_WORK/w2.out" >/dev/null ||
  fail "no subscribed line with every folder: $(head -c 500 "$IT_WORK/w2.out")"
jq -se '[.[] | select(.commit_time_us != null)][0].folders[0].last_cn > 0' "$IT_WORK/w2.out" >/dev/null ||
  fail "no change with commit_time_us: $(cat "$IT_WORK/w2.out")"

step "a keyed write before the restart"
drv keyed "restart-key-1"; ok "keyed append"
keyed_before=$OUT

step "a clean stop ends the subscription (ESHUTDOWN); the state held is kept"
as_demo --json sync Inbox; ok "sync Inbox"
state=$(jqo .state)
before=$(jqo '.added | length')
watch_start w3 watch Inbox --timeout 60
it_cluster stop node1
watch_end
[[ $WATCH_RC -ne 0 ]] || fail "mbx watch ended with 0 when the node stopped"
grep -qE 'ESHUTDOWN|ECLOSED' "$IT_WORK/w3.err" || fail "watch: $(cat "$IT_WORK/w3.err")"
echo "  watch ended: $(cat "$IT_WORK/w3.err")"

step "restart: changes made while the subscriber is away are found by a sync from its state"
it_cluster start node1
make_eml "$IT_WORK/m2.eml" "while-away-1"
make_eml "$IT_WORK/m3.eml" "while-away-2"
as_transport deliver --to "$DEMO" "$IT_WORK/m2.eml"; ok "deliver while away"
as_transport deliver --to "$DEMO" "$IT_WORK/m3.eml"; ok "deliver while away"
watch_start w4 watch Inbox --count 1 --timeout 20
as_demo --json sync Inbox --state "$state"; ok "sync from the old state"
got=$(jqo '[.added[].message.subject] | sort | join(",")')
eq "$got" "while-away-1,while-away-2" "catch-up sync after the restart"
as_transport deliver --to "$DEMO" "$IT_WORK/m1.eml"; ok "deliver after resubscribing"
watch_end
[[ $WATCH_RC -eq 0 ]] || fail "resubscribed watch exited $WATCH_RC: $(cat "$IT_WORK/w4.err")"
grep -q '^changed  Inbox cn=' "$IT_WORK/w4.out" || fail "no change after the restart"
echo "  sync from the old state ($before items then): $got"

step "the keys survive the restart: the keyed write repeated now answers the same item"
drv keyed "restart-key-1"; ok "keyed append after the restart"
eq "$OUT" "$keyed_before" "keyed append repeated after the restart (item, Drafts count)"
step "keepalives keep a quiet subscription open past the node's idle timeout (3 s)"
it_cluster stop node1
node_conf_set node1 idle_timeout_s 3
it_cluster start node1
watch_start w5 --json watch --timeout 8
watch_end
[[ $WATCH_RC -eq 0 ]] || fail "a quiet watch was cut (exit $WATCH_RC): $(cat "$IT_WORK/w5.err")"
echo "PASS $IT_NAME"
