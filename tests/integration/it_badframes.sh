# it_badframes.sh — hostile bytes on the node's port (driver: itc_badframes): garbage
# instead of TLS, an oversized length prefix, truncated frames, invalid protobuf,
# requests without a known body. After each: the node runs, serves, data unchanged.
. "$(dirname "$0")/lib.sh"
it_init
DRIVER="$ITC_DIR/itc_badframes"
[[ -x "$DRIVER" ]] || fail "driver not built: $DRIVER"
it_up

step "setup: some data"
for n in 1 2 3; do
  make_eml "$IT_WORK/m$n.eml" "bf-$n"
  as_transport deliver --to "$DEMO" "$IT_WORK/m$n.eml"; ok "deliver $n"
done
d0=$(digest db1) || exit 1
pid0=$(node_pid)

for mode in garbage oversized truncated badproto nobody unknownbody; do
  step "bad input: $mode"
  timeout 30 "$DRIVER" "$mode" >"$IT_WORK/drv.out" 2>&1
  rc=$?
  cat "$IT_WORK/drv.out"
  [[ $rc -eq 0 ]] || fail "$mode: $(tail -n 1 "$IT_WORK/drv.out") (driver rc=$rc)"
  node_alive || fail "$mode: node died"
  eq "$(node_pid)" "$pid0" "$mode: node pid (no restart)"
  as_demo ping; ok "$mode: ping afterwards"
  eq "$(digest db1)" "$d0" "$mode: digest unchanged"
done

step "data intact"
as_demo --json list Inbox; ok
eq "$(jqo '[.items[].message.subject] | join(",")')" "bf-3,bf-2,bf-1" "Inbox after bad input"
as_demo --json get "$(jqo '.items[2].id')" --body; ok
printf '%s' "$OUT" | jq -r .body | b64url_decode | cmp -s - "$IT_WORK/m1.eml" || fail "body changed"
grep -Eiq 'EFRAME|frame' "$IT_DIR/log/node1.log" || echo "note: node log does not mention the oversized frame"
echo "PASS $IT_NAME"
