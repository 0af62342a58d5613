# it_repl_move.sh — lossless switchover under load: `admin db move-active` 20 times
# back and forth while several libmbx clients deliver; no client sees an error,
# every acknowledged delivery is in the mailbox exactly once, each switchover begins
# a new epoch, and all copies end with the same history (equal digests).
. "$(dirname "$0")/lib.sh"
it_init
it_up_repl
LOAD="$ITC_DIR/itl_load"
[[ -x "$LOAD" ]] || fail "driver not built: $LOAD"
MOVES=${MBX_IT_MOVES:-20}

step "switchover with no load: the CLI names both nodes and the pause"
as_op admin db move-active db1 --to node2; ok "move-active to node2"
[[ "$OUT" == *"from node1 to node2"*"writes paused"* ]] || fail "unexpected answer: $OUT"
as_op_at node2 --json admin db list; ok
eq "$(jqo '.dbs[] | select(.name == "db1") | .role')" active "db1 on node2"
as_op_at node1 --json admin db list; ok
eq "$(jqo '.dbs[] | select(.name == "db1") | .role')" passive "db1 on node1"
as_op admin db move-active db1 --to node1; ok "and back to node1"
as_op admin db move-active db1 --to node1
[[ $RC -ne 0 && "$ERR" == *"already active"* ]] || fail "a move to the active itself was not refused: $ERR"
as_op admin db move-active db1 --to nodex
[[ $RC -ne 0 ]] || fail "a move to a node without a copy was accepted"

step "$MOVES switchovers under a write load from 8 libmbx clients"
env MBX_CERT="$TR_CERT" MBX_KEY="$TR_KEY" timeout 300 "$LOAD" --to "$DEMO" --threads 8 \
  --seconds 600 --run mv >"$IT_WORK/acked" 2>"$IT_WORK/load.err" &
LOAD_PID=$!
IT_PIDS+=("$LOAD_PID")
wait_until 20 test -s "$IT_WORK/acked" || fail "the load acknowledged nothing: $(head -c 500 "$IT_WORK/load.err")"
epoch0=$(db_last_lsn db1 node1 >/dev/null; jqo '.epoch')
for ((i = 1; i <= MOVES; i++)); do
  as_op admin db move-active db1; ok "switchover $i"
  echo "  $i: $OUT"
  sleep 0.3
done
kill -TERM "$LOAD_PID" 2>/dev/null
wait "$LOAD_PID"
[[ ! -s "$IT_WORK/load.err" ]] || grep -v 'acknowledged,' "$IT_WORK/load.err" | head -n 5 >&2
errors=$(grep -vc 'acknowledged,' "$IT_WORK/load.err" || true)
eq "$errors" 0 "errors seen by the libmbx clients"
acked=$(wc -l <"$IT_WORK/acked")
((acked > 0)) || fail "nothing acknowledged"
echo "  $acked deliveries acknowledged across $MOVES switchovers"

step "every acknowledged delivery is there exactly once; copies agree"
active=$( ((MOVES % 2)) && echo node2 || echo node1)
as_op_at "$active" --json admin db list; ok
eq "$(jqo '.dbs[] | select(.name == "db1") | .role')" active "db1 active on $active after $MOVES moves"
eq "$(jqo '.dbs[] | select(.name == "db1") | .epoch')" "$((epoch0 + MOVES))" "one epoch begun per switchover"
it_run -u MBX_CERT -u MBX_KEY MBX_USER="$DEMO" MBX_PASSWORD="$DEMO_PW" -- --json list Inbox --limit 1000000
ok "list the Inbox"
printf '%s' "$OUT" | jq -r '.items[].message.subject' | grep '^mv-' | sort >"$IT_WORK/have"
dups=$(uniq -d "$IT_WORK/have" | head -n 3 | tr '\n' ' ')
[[ -z "$dups" ]] || fail "delivered twice: $dups"
cut -d' ' -f1 "$IT_WORK/acked" | sort >"$IT_WORK/want"
missing=$(comm -23 "$IT_WORK/want" "$IT_WORK/have" | head -n 3 | tr '\n' ' ')
[[ -z "$missing" ]] || fail "acknowledged but missing: $missing"
passives=(node1 node2 node3)
wait_synced 60 db1 "$active" $(printf '%s\n' "${passives[@]}" | grep -vx "$active")
digests_equal db1 node1 node2 node3
echo "PASS $IT_NAME"
