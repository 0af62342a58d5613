# it_crash.sh — crash safety: kill -9 of mbxd in the middle of a delivery load (three
# times), restart, and every delivery the node acknowledged must be there exactly once,
# with a database that still answers digest, list and sync consistently.
. "$(dirname "$0")/lib.sh"
it_init
LOAD="$ITC_DIR/itc_load"
[[ -x "$LOAD" ]] || fail "driver not built: $LOAD"
it_up

# all_subjects: every subject in demo's Inbox, one per line (paged list, bounded).
all_subjects() {
  local off=0 page total=-1
  : >"$IT_WORK/subjects"
  for page in $(seq 1 200); do
    as_demo --json list Inbox --limit 1000 --offset "$off"; ok "list Inbox offset $off"
    total=$(jqo '.total // 0')
    local n; n=$(jqo '(.items // []) | length')
    jqo '(.items // [])[].message.subject' >>"$IT_WORK/subjects"; echo >>"$IT_WORK/subjects"
    off=$((off + n))
    ((n == 0 || off >= total)) && break
  done
  sed -i '/^$/d' "$IT_WORK/subjects"
  eq "$(wc -l <"$IT_WORK/subjects")" "$total" "listed items vs total"
}

: >"$IT_WORK/acked.all"
for round in 1 2 3; do
  step "round $round: load, then kill -9 mid-load"
  first=$((round * 1000000))
  env MBX_CERT="$TR_CERT" MBX_KEY="$TR_KEY" timeout 60 "$LOAD" --to "$DEMO" --conns 8 \
    --first "$first" --count 200000 --seconds 30 --run "r$round" \
    >"$IT_WORK/acked.$round" 2>"$IT_WORK/load.$round.err" &
  lpid=$!
  IT_PIDS+=("$lpid")
  # Kill once the load is flowing (≥ 50 acks), between 1 and 2 seconds in.
  sleep 1
  wait_until 5 test "$(wc -l <"$IT_WORK/acked.$round")" -ge 50 ||
    { cat "$IT_WORK/load.$round.err" >&2; fail "load did not get going (acks: $(wc -l <"$IT_WORK/acked.$round"))"; }
  sleep 0.$((RANDOM % 10))
  pid=$(node_pid)
  kill -9 "$pid" || fail "kill -9 $pid"
  killed_at=$(wc -l <"$IT_WORK/acked.$round")
  wait_until 10 bash -c "! kill -0 $pid" || fail "node $pid survived SIGKILL"
  wait "$lpid"; lrc=$?
  cat "$IT_WORK/load.$round.err"
  [[ $lrc -eq 0 ]] || fail "load driver failed (rc=$lrc)"
  acked=$(wc -l <"$IT_WORK/acked.$round")
  echo "round $round: $acked acknowledged ($killed_at when killed)"
  ((acked < 200000)) || fail "load finished before the kill: not a mid-load crash"
  grep -q 'load-[0-9]* refused' "$IT_WORK/load.$round.err" && fail "deliveries refused during the load"
  sed "s/^/load-/" "$IT_WORK/acked.$round" >>"$IT_WORK/acked.all"

  step "round $round: restart and check every acknowledged delivery"
  it_cluster start node1
  node_alive || fail "node not running after start"
  all_subjects
  sort "$IT_WORK/subjects" >"$IT_WORK/subjects.sorted"
  dups=$(uniq -d "$IT_WORK/subjects.sorted" | head -n 5)
  [[ -z "$dups" ]] || fail "duplicated items after restart: $dups"
  sort -u "$IT_WORK/acked.all" >"$IT_WORK/acked.sorted"
  missing=$(comm -23 "$IT_WORK/acked.sorted" "$IT_WORK/subjects.sorted" | head -n 5)
  [[ -z "$missing" ]] || fail "acknowledged but missing after kill -9: $missing"
  echo "round $round: all $(wc -l <"$IT_WORK/acked.sorted") acknowledged present," \
       "$(wc -l <"$IT_WORK/subjects.sorted") items in Inbox"
  d=$(digest db1) || exit 1
  as_demo --json sync Inbox; ok "full sync after restart"
  [[ "$(jqo '.more // false')" == true || "$(jqo '.added | length')" -eq "$(wc -l <"$IT_WORK/subjects")" ]] ||
    fail "full sync and list disagree"
  eq "$(digest db1)" "$d" "digest stable"
done

step "the store still takes writes, and a clean restart keeps the same digest"
make_eml "$IT_WORK/after.eml" "after-crashes"
as_transport --json deliver --to "$DEMO" "$IT_WORK/after.eml"; ok "deliver after crashes"
aid=$(jqo .item.id)
as_demo --json get "$aid" --body; ok
printf '%s' "$OUT" | jq -r .body | b64url_decode | cmp -s - "$IT_WORK/after.eml" || fail "body"
d=$(digest db1) || exit 1
it_cluster stop node1
it_cluster start node1
eq "$(digest db1)" "$d" "digest after clean restart"
echo "PASS $IT_NAME"
