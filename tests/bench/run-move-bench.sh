#!/usr/bin/env bash
# run-move-bench.sh — switchover benchmark (issue 8) on this machine, with the local
# launcher: on a fresh 3-node cluster (db1 active on node1), --moves `admin db
# move-active` switchovers back and forth between node1 and node2 under a steady
# write load of --threads libmbx clients (tests/integration/itl_load). For each
# switchover: the write pause the clients saw (the longest gap between consecutive
# acknowledged writes, over all clients, that overlaps the move command) and the pause
# the node reported. Then every acknowledged write must be in the mailbox exactly once.
# Prints per-run figures and medians over --runs runs. See tests/bench/README.md
# ("Switchover").
set -euo pipefail
export LC_ALL=C # sort/join/comm agree on order; printf reads '.' decimals

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
PROG=${0##*/}
RUNS=3 MOVES=20 THREADS=16 BYTES=512 INTERVAL_MS=1000 BIN=${MBX_BIN:-$SRC/build} KEEP=0 OUT=''
MOVE_TIMEOUT_S=60 # one move-active may take at most this long (the CLI's --timeout)
LIST_TIMEOUT_S=120

usage() {
  cat >&2 <<USAGE
usage: $PROG [--runs N] [--moves N] [--threads N] [--bytes B] [--interval-ms MS]
             [--build DIR] [--out DIR] [--keep]
Each run: a fresh 3-node cluster, --moves (20) switchovers of db1 node1 <-> node2,
--interval-ms (1000) apart, under --threads (16) libmbx clients delivering --bytes
(512) messages. Prints the client-seen write pause per switchover (p50/p99/max),
the longest gap between acks, the node-reported pause, errors, lost and doubled
writes; medians and ranges over --runs (3). --out DIR keeps each run's acks, move
timestamps and node logs.
USAGE
  exit 2
}
die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 1; }
num() { [[ "$2" =~ ^[0-9]+$ ]] && (($2 > 0)) || die "$1 needs a positive number, got '$2'"; }
while (($# > 0)); do
  case "$1" in
    --runs) num "$1" "${2:-}"; RUNS=$2; shift 2 ;;
    --moves) num "$1" "${2:-}"; MOVES=$2; shift 2 ;;
    --threads) num "$1" "${2:-}"; THREADS=$2; shift 2 ;;
    --bytes) num "$1" "${2:-}"; BYTES=$2; shift 2 ;;
    --interval-ms) num "$1" "${2:-}"; INTERVAL_MS=$2; shift 2 ;;
    --build) BIN=${2:-}; shift 2 ;;
    --out) OUT=${2:-}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage ;;
    *) printf '%s: unknown option %s\n' "$PROG" "$1" >&2; usage ;;
  esac
done
((RUNS <= 100 && MOVES <= 1000 && THREADS <= 64 && INTERVAL_MS <= 60000)) ||
  die "limits: --runs 100, --moves 1000, --threads 64, --interval-ms 60000"
BIN=$(cd "$BIN" 2>/dev/null && pwd) || die "no build directory $BIN"
LOAD=$BIN/tests/integration/itl_load MBX=$BIN/client/mbx CLUSTER=$SRC/deploy/local/cluster
[[ -x "$LOAD" && -x "$MBX" ]] || die "build itl_load, mbx and mbxd in $BIN first"
"$LOAD" --now >/dev/null 2>&1 || die "$LOAD has no --now (rebuild it)"
command -v jq >/dev/null || die "jq not installed"
if [[ -n "$OUT" ]]; then mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd) || die "cannot create $OUT"; fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mbx-move-bench.XXXXXX")
DIR='' LOAD_PID=''
stop_load() {
  [[ -z "$LOAD_PID" ]] && return 0
  kill -TERM "$LOAD_PID" 2>/dev/null || true
  wait "$LOAD_PID" 2>/dev/null || true
  LOAD_PID=''
}
down() { [[ -z "$DIR" ]] || "$CLUSTER" down --dir "$DIR" --purge >/dev/null 2>&1 || true; DIR=''; }
cleanup() { stop_load; ((KEEP)) || down; ((KEEP)) || rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

up() {
  down
  DIR=$WORK/c3.$RANDOM
  # notice: the switchover's own log lines (drain, activate, paused) without a line
  # per request, which would cost the nodes during the load.
  MBX_BIN=$BIN MBX_LOG_LEVEL=${MBX_LOG_LEVEL:-notice} "$CLUSTER" up --dir "$DIR" --nodes 3 --databases 1 >&2 ||
    die "cluster up --nodes 3 failed (see $DIR/log)"
  # shellcheck disable=SC1091
  . "$DIR/env"
}
median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
# pct P: nearest-rank percentile of the numbers on stdin (p99 of 20 values is the max).
pct() { sort -g | awk -v p="$1" '{v[NR] = $1} END {if (NR == 0) {print "nan"; exit} r = int(p / 100 * NR); if (r < p / 100 * NR) r++; if (r < 1) r = 1; print v[r]}'; }
range() { sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%s-%s", lo, hi}'; }
now_us() { "$LOAD" --now | cut -d' ' -f1; }
# realtime minus monotonic, in µs: maps the nodes' log times onto the acks' clock.
clock_offset_us() { local m r; read -r m r < <("$LOAD" --now); echo $((r - m)); }

# gaps ACKS MOVES → per move "i client_pause_us", and "all longest_gap_us" and
# "outside longest_gap_us_away_from_moves". ACKS: "subject mono_us" lines; MOVES:
# "i t0_us t1_us …". A move's pause is the longest gap between consecutive acks
# (sorted over all clients) that overlaps [t0, t1].
gaps() {
  sort -k2,2n "$1" | awk -v movefile="$2" '
    BEGIN {
      while ((getline line < movefile) > 0) {
        split(line, f, " "); n++; id[n] = f[1]; t0[n] = f[2]; t1[n] = f[3]; best[n] = 0
      }
    }
    {
      t = $2
      if (NR > 1) {
        g = t - prev; inside = 0
        for (j = 1; j <= n; j++)
          if (prev < t1[j] && t > t0[j]) { inside = 1; if (g > best[j]) best[j] = g }
        if (g > all) all = g
        if (!inside && g > outside) outside = g
      }
      prev = t
    }
    END {
      for (j = 1; j <= n; j++) print id[j], best[j]
      print "all", all + 0; print "outside", outside + 0
    }'
}

# events DIR OFFSET_US → "MONO_US KIND" from the nodes' logs, KIND one of drain (the
# old active stops admitting writes), active (the new active's fence opens in the new
# epoch), done (the old active is a passive of the new one and answers the CLI).
events() {
  local n line ts kind
  for n in node1 node2 node3; do
    grep -E 'db db1: (switchover to .*: draining|active in epoch|switched over to)' "$1/log/$n.log" 2>/dev/null || true
  done | while read -r line; do
    ts=${line%% *}
    case "$line" in *draining*) kind=drain ;; *"active in epoch"*) kind=active ;; *) kind="done" ;; esac
    echo "$(($(date -u -d "$ts" +%s%6N) - $2)) $kind"
  done | sort -n
}

# breakdown ACKS MOVES EVENTS → per move "i drain_to_active_ms active_to_ack_ms
# active_to_done_ms" (-1 where a log line is missing): where the client-seen pause went.
breakdown() {
  sort -k2,2n "$1" | awk -v movefile="$2" -v evfile="$3" '
    BEGIN {
      while ((getline line < movefile) > 0) { split(line, f, " "); n++; id[n] = f[1]; t0[n] = f[2]; t1[n] = f[3] }
      while ((getline line < evfile) > 0) { split(line, f, " "); e++; et[e] = f[1]; ek[e] = f[2] }
      for (j = 1; j <= n; j++) {
        d[j] = a[j] = dn[j] = -1
        for (k = 1; k <= e; k++) {
          if (et[k] < t0[j] - 5000 || et[k] > t1[j] + 5000) continue
          if (ek[k] == "drain" && d[j] < 0) d[j] = et[k]
          if (ek[k] == "active" && a[j] < 0) a[j] = et[k]
          if (ek[k] == "done" && dn[j] < 0) dn[j] = et[k]
        }
        ack[j] = -1
      }
    }
    { for (j = 1; j <= n; j++) if (a[j] >= 0 && ack[j] < 0 && $2 >= a[j]) ack[j] = $2 }
    END {
      for (j = 1; j <= n; j++)
        printf "%s %.1f %.1f %.1f\n", id[j], (d[j] < 0 || a[j] < 0) ? -1 : (a[j] - d[j]) / 1000,
          (a[j] < 0 || ack[j] < 0) ? -1 : (ack[j] - a[j]) / 1000, (a[j] < 0 || dn[j] < 0) ? -1 : (dn[j] - a[j]) / 1000
    }'
}

one_run() { # RUN
  local run=$1 i t0 t1 rc to from cur=node1 errs=0 ms
  up
  local R=$WORK/run$run
  mkdir -p "$R"
  : >"$R/moves"
  # The load runs until stopped; --seconds only bounds it should this script die.
  env MBX_CERT="$DIR/tls/transport.pem" MBX_KEY="$DIR/tls/transport.key" \
    "$LOAD" --to demo@example.com --threads "$THREADS" --bytes "$BYTES" --run "mb$run" \
    --seconds $((MOVES * (INTERVAL_MS / 1000 + MOVE_TIMEOUT_S) + 60)) >"$R/acks" 2>"$R/load.err" &
  LOAD_PID=$!
  for ((i = 0; i < 100; i++)); do [[ -s "$R/acks" ]] && break; sleep 0.1; done
  [[ -s "$R/acks" ]] || die "run $run: the load acknowledged nothing in 10 s: $(head -c 300 "$R/load.err")"
  sleep 1 # steady state before the first move
  for ((i = 1; i <= MOVES; i++)); do
    to=$([[ "$cur" == node1 ]] && echo node2 || echo node1)
    t0=$(now_us)
    rc=0
    "$MBX" --json admin db move-active db1 --to "$to" --timeout "$MOVE_TIMEOUT_S" >"$R/move.json" 2>"$R/move.err" || rc=$?
    t1=$(now_us)
    if ((rc != 0)); then
      errs=$((errs + 1))
      printf 'run %d move %d to %s FAILED (exit %d): %s\n' "$run" "$i" "$to" "$rc" "$(head -c 300 "$R/move.err")" >&2
      echo "$i $t0 $t1 -1 $cur $to failed" >>"$R/moves"
    else
      from=$(jq -r .from_node "$R/move.json")
      printf '%d %s %s %s %s %s %s\n' "$i" "$t0" "$t1" "$(jq -r '.pause_us // -1' "$R/move.json")" \
        "$from" "$(jq -r .to_node "$R/move.json")" "$(jq -r '.epoch // 0' "$R/move.json")" >>"$R/moves"
      cur=$to
    fi
    ms=$((INTERVAL_MS - (($(now_us) - t1) / 1000)))
    ((ms > 0)) && sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
  done
  sleep 1 # steady state after the last move, so its gap is closed by an ack
  stop_load
  events "$DIR" "$(clock_offset_us)" >"$R/events"

  # Errors: every stderr line of the driver except its closing count.
  local lerrs acked dups lost extra
  lerrs=$(grep -vc 'acknowledged,' "$R/load.err" || true)
  acked=$(wc -l <"$R/acks")
  timeout "$LIST_TIMEOUT_S" \
    env -u MBX_CERT -u MBX_KEY MBX_USER=demo@example.com MBX_PASSWORD="$(cat "$DIR/demo-password")" \
    "$MBX" --json list Inbox --limit 1000000 >"$R/list.json" 2>"$R/list.err" || die "run $run: list failed: $(head -c 300 "$R/list.err")"
  jq -r '.items[].message.subject' "$R/list.json" | grep "^mb$run-" | sort >"$R/have" || true
  cut -d' ' -f1 "$R/acks" | sort >"$R/want"
  dups=$(uniq -d "$R/have" | wc -l)
  lost=$(comm -23 "$R/want" "$R/have" | wc -l)
  extra=$(comm -13 "$R/want" <(uniq "$R/have") | wc -l) # committed, but the client was stopped before the ack

  # Copies agree: wait (bounded) for equal digests and last lsn on all three nodes.
  local digests='differ' k row
  for ((k = 0; k < 60; k++)); do
    row=$(for n in node1 node2 node3; do "$MBX" --json admin db digest db1 --node "$n" 2>/dev/null | jq -r '"\(.digest) \(.last_lsn)"'; done | sort -u | wc -l)
    [[ "$row" == 1 ]] && { digests=equal; break; }
    sleep 1
  done

  gaps "$R/acks" "$R/moves" >"$R/gaps"
  local first last span
  read -r first last < <(awk 'NR == 1 {lo = $2; hi = $2} $2 < lo {lo = $2} $2 > hi {hi = $2} END {print lo, hi}' "$R/acks")
  span=$(((last - first) / 1000))
  # Per move: client pause, node pause, CLI time.
  join <(sort -k1,1 "$R/moves") <(grep -v '^all\|^outside' "$R/gaps" | sort -k1,1) | sort -n |
    awk '{printf "%d %.1f %.1f %.1f %s %s\n", $1, $8 / 1000, ($4 < 0 ? -1 : $4 / 1000), ($3 - $2) / 1000, $5, $6}' >"$R/per-move"
  # columns of per-move: i client_ms node_ms cli_ms from to drain_to_active_ms
  # active_to_ack_ms active_to_done_ms (node_ms -1 for a failed move)
  breakdown "$R/acks" "$R/moves" "$R/events" >"$R/breakdown"
  join <(sort -k1,1 "$R/per-move") <(sort -k1,1 "$R/breakdown") | sort -n >"$R/per-move.tmp"
  mv "$R/per-move.tmp" "$R/per-move"
  while read -r i c s cli f t da aa ad; do
    printf 'run %d move %2d %s -> %s: client-seen pause %6.1f ms, node-reported %6.1f ms, CLI %6.1f ms; drain -> new active %6.1f ms, new active -> first ack %6.1f ms, new active -> old one passive %6.1f ms\n' \
      "$run" "$i" "$f" "$t" "$c" "$s" "$cli" "$da" "$aa" "$ad" >&2
  done <"$R/per-move"

  local cp50 cp99 cmax sp50 sp99 all outside
  cp50=$(cut -d' ' -f2 "$R/per-move" | pct 50); cp99=$(cut -d' ' -f2 "$R/per-move" | pct 99)
  cmax=$(cut -d' ' -f2 "$R/per-move" | sort -g | tail -n 1)
  sp50=$(awk '$3 >= 0 {print $3}' "$R/per-move" | pct 50); sp99=$(awk '$3 >= 0 {print $3}' "$R/per-move" | pct 99)
  all=$(awk '$1 == "all" {printf "%.1f", $2 / 1000}' "$R/gaps")
  outside=$(awk '$1 == "outside" {printf "%.1f", $2 / 1000}' "$R/gaps")
  printf 'run %d: %d moves (%d failed), %d acks in %d ms (%.0f acks/s), %d client errors, %d lost, %d doubled, %d unacknowledged but committed, digests %s\n' \
    "$run" "$MOVES" "$errs" "$acked" "$span" "$(echo "$acked * 1000 / ($span + 1)" | bc -l)" "$lerrs" "$lost" "$dups" "$extra" "$digests"
  printf 'run %d: client-seen pause p50 %s ms, p99 %s ms, max %s ms; longest gap overall %s ms (away from moves %s ms); node-reported p50 %s ms, p99 %s ms\n' \
    "$run" "$cp50" "$cp99" "$cmax" "$all" "$outside" "$sp50" "$sp99"
  printf 'run %d: from the node logs: drain -> new active p50 %s ms, max %s ms; new active -> first ack p50 %s ms, max %s ms\n' \
    "$run" "$(awk '$7 >= 0 {print $7}' "$R/per-move" | pct 50)" "$(awk '$7 >= 0 {print $7}' "$R/per-move" | pct 100)" \
    "$(awk '$8 >= 0 {print $8}' "$R/per-move" | pct 50)" "$(awk '$8 >= 0 {print $8}' "$R/per-move" | pct 100)"
  echo "$cp50 $cp99 $cmax $all $outside $sp50 $sp99 $errs $lerrs $lost $dups $extra $acked $span $digests" >>"$WORK/runs"
  cut -d' ' -f2 "$R/per-move" >>"$WORK/all-client"
  awk '$3 >= 0 {print $3}' "$R/per-move" >>"$WORK/all-node"
  awk '$7 >= 0 {print $7}' "$R/per-move" >>"$WORK/all-drain"
  awk '$8 >= 0 {print $8}' "$R/per-move" >>"$WORK/all-follow"
  if [[ -n "$OUT" ]]; then
    mkdir -p "$OUT/run$run"
    cp "$R"/{acks,load.err,moves,gaps,events,per-move} "$OUT/run$run/"
    for n in node1 node2 node3; do cp "$DIR/log/$n.log" "$OUT/run$run/" 2>/dev/null || true; done
  fi
  down
}

printf 'mbx switchover benchmark: %s, %d CPU(s), %d run(s) of %d moves, %d clients, %d-byte messages, moves %d ms apart\n' \
  "$(date -u +%FT%TZ)" "$(nproc)" "$RUNS" "$MOVES" "$THREADS" "$BYTES" "$INTERVAL_MS"
: >"$WORK/runs"; : >"$WORK/all-client"; : >"$WORK/all-node"; : >"$WORK/all-drain"; : >"$WORK/all-follow"
for ((r = 1; r <= RUNS; r++)); do one_run "$r"; done

col() { cut -d' ' -f"$1" "$WORK/runs"; }
fig() { # LABEL COLUMN UNIT TARGET
  printf '  %-34s median %8s  range %-17s %s %s\n' "$1" "$(col "$2" | median)" "$(col "$2" | range)" "$3" "$4"
}
printf '\nswitchover under load: medians and ranges over %d run(s) of %d moves (per run: p50/p99 over its moves)\n' "$RUNS" "$MOVES"
fig 'client-seen pause p50' 1 ms '(target <= 150)'
fig 'client-seen pause p99' 2 ms '(target <= 300)'
fig 'client-seen pause max' 3 ms ''
fig 'longest gap between acks, overall' 4 ms ''
fig 'longest gap away from any move' 5 ms ''
fig 'node-reported pause p50' 6 ms ''
fig 'node-reported pause p99' 7 ms ''
printf '  %-34s %s\n' 'failed moves' "$(col 8 | paste -sd+ | bc)" \
  'client errors (target 0)' "$(col 9 | paste -sd+ | bc)" \
  'lost acknowledged writes (target 0)' "$(col 10 | paste -sd+ | bc)" \
  'doubled writes (target 0)' "$(col 11 | paste -sd+ | bc)" \
  'acks per run' "$(col 13 | median) (median)" \
  'digests equal after each run' "$(col 15 | grep -c equal) of $RUNS"
printf '  all %d switchovers pooled: client-seen p50 %s ms, p99 %s ms, max %s ms; node-reported p50 %s ms, p99 %s ms\n' \
  "$(wc -l <"$WORK/all-client")" "$(pct 50 <"$WORK/all-client")" "$(pct 99 <"$WORK/all-client")" \
  "$(sort -g "$WORK/all-client" | tail -n 1)" "$(pct 50 <"$WORK/all-node")" "$(pct 99 <"$WORK/all-node")"
printf '  where it went (node logs, pooled): drain -> new active p50 %s ms, p99 %s ms; new active -> first ack p50 %s ms, p99 %s ms\n' \
  "$(pct 50 <"$WORK/all-drain")" "$(pct 99 <"$WORK/all-drain")" "$(pct 50 <"$WORK/all-follow")" "$(pct 99 <"$WORK/all-follow")"
bad=$(awk '$8 + $9 + $10 + $11 > 0 || $15 != "equal"' "$WORK/runs" | wc -l)
((bad == 0)) || exit 1
