#!/usr/bin/env bash
# run-repl-bench.sh — replication benchmark (issue 3) on this machine, with the local
# launcher: (a) the active's maximum delivery rate with no copies (1 node) vs with two
# passives (3 nodes), and how CPU divides between the nodes; (b) at a steady load of
# half the single-node maximum, the copies' receipt latency (commit on the active →
# durable receipt, p50/p99 from `copy status`) and the largest copy queue, sampled
# every second; (c) seeding rate: reseed node2's copy of a ~1 GB database (MB/s).
# Prints medians over --runs runs. See tests/bench/README.md ("Replication").
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
PROG=${0##*/}
RUNS=3 SECS=10 CLIENTS=64 SIZE=4096 SEED_MB=1024 PARTS="a b c" BIN=${MBX_BIN:-$SRC/build} KEEP=0 RATE=

usage() {
  cat >&2 <<USAGE
usage: $PROG [--runs N] [--seconds S] [--clients N] [--size B] [--seed-mb MB]
             [--parts "a b c"] [--rate N] [--build DIR] [--keep] [--quick]
(a) max rate without / with two passives, (b) receipt latency and copy queue at half
the single-node max (or at --rate N msgs/s), (c) seeding MB/s of a --seed-mb
database. Medians of --runs (3).
--quick: 1 run of 4 s, a 200 MB seed database.
USAGE
  exit 2
}
die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 1; }
num() { [[ "$2" =~ ^[0-9]+$ ]] && (($2 > 0)) || die "$1 needs a positive number, got '$2'"; }
while (($# > 0)); do
  case "$1" in
    --runs) num "$1" "${2:-}"; RUNS=$2; shift 2 ;;
    --seconds) num "$1" "${2:-}"; SECS=$2; shift 2 ;;
    --clients) num "$1" "${2:-}"; CLIENTS=$2; shift 2 ;;
    --size) num "$1" "${2:-}"; SIZE=$2; shift 2 ;;
    --seed-mb) num "$1" "${2:-}"; SEED_MB=$2; shift 2 ;;
    --parts) PARTS=${2:-}; shift 2 ;;
    --rate) num "$1" "${2:-}"; RATE=$2; shift 2 ;;
    --build) BIN=${2:-}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --quick) RUNS=1 SECS=4 SEED_MB=200; shift ;;
    -h | --help) usage ;;
    *) printf '%s: unknown option %s\n' "$PROG" "$1" >&2; usage ;;
  esac
done
BIN=$(cd "$BIN" 2>/dev/null && pwd) || die "no build directory $BIN"
BENCH=$BIN/tests/bench/mbx-bench MBX=$BIN/client/mbx CLUSTER=$SRC/deploy/local/cluster
[[ -x "$BENCH" && -x "$MBX" ]] || die "build mbx-bench, mbx and mbxd in $BIN first"
command -v jq >/dev/null || die "jq not installed"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mbx-repl-bench.XXXXXX")
DIR=''
down() { [[ -z "$DIR" ]] || "$CLUSTER" down --dir "$DIR" --purge >/dev/null 2>&1 || true; DIR=''; }
cleanup() { ((KEEP)) || down; ((KEEP)) || rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

up() { # NODES
  down
  DIR=$WORK/c$1.$RANDOM
  MBX_BIN=$BIN MBX_LOG_LEVEL=${MBX_LOG_LEVEL:-warning} "$CLUSTER" up --dir "$DIR" --nodes "$1" --databases 1 >&2 ||
    die "cluster up --nodes $1 failed (see $DIR/log)"
  # shellcheck disable=SC1091
  . "$DIR/env"
  ACTIVE=127.0.0.1:$(sed -n 's/^port_node1=//p' "$DIR/cluster.conf")
}
bench() { # mbx-bench deliver ARGS… as the transport, against the active
  MBX_SERVER=$ACTIVE MBX_CERT=$DIR/tls/transport.pem MBX_KEY=$DIR/tls/transport.key \
    "$BENCH" deliver --json --to demo@example.com --clients "$CLIENTS" --size "$SIZE" "$@"
}
median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
cpu_s() { # NAME → CPU seconds (user+sys) of that node so far
  local pid; pid=$(cat "$DIR/run/$1.pid")
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$pid/stat"
}
synced() { # all passives received = replayed = active's last lsn
  "$MBX" --json admin copy status db1 | jq -e '
    ([.copies[] | select(.role == "active")][0].replayed_lsn // 0) as $l |
    $l > 0 and ([.copies[] | select(.role == "passive") | (.received_lsn == $l and .replayed_lsn == $l)] | all)' >/dev/null
}

MAX1=''
# Runs alternate between a fresh 1-node and a fresh 3-node cluster, so both see the
# same machine noise and the same (empty) database size; the ratio is reported both
# as the ratio of medians and as the median of the per-pair ratios.
part_a() {
  local n r f
  : >"$WORK/a1"; : >"$WORK/a3"; : >"$WORK/ar"
  for ((r = 1; r <= RUNS; r++)); do
    local pair=()
    for n in 1 3; do
      up "$n"
      local c0=() c1=() i
      for ((i = 1; i <= n; i++)); do c0[i]=$(cpu_s node$i); done
      bench --seconds "$SECS" >"$WORK/a.json" || die "mbx-bench failed"
      for ((i = 1; i <= n; i++)); do c1[i]=$(cpu_s node$i); done
      f=$(jq -r .msgs_per_s "$WORK/a.json")
      echo "$f" >>"$WORK/a$n"
      pair[n]=$f
      printf '(a) %d node(s) run %d: %s msgs/s; CPU s per node:' "$n" "$r" "$f" >&2
      for ((i = 1; i <= n; i++)); do printf ' node%d %.1f' "$i" "$(echo "${c1[i]} - ${c0[i]}" | bc -l)" >&2; done
      printf '\n' >&2
    done
    echo "${pair[3]} / ${pair[1]}" | bc -l >>"$WORK/ar"
  done
  MAX1=$(median <"$WORK/a1") MAX3=$(median <"$WORK/a3")
  printf '\n(a) max delivery rate, median of %d interleaved runs of %d s (%d clients, %d-byte messages)\n' "$RUNS" "$SECS" "$CLIENTS" "$SIZE"
  printf '  no copies (1 node)        %10.1f msgs/s\n' "$MAX1"
  printf '  two passives (3 nodes)    %10.1f msgs/s\n' "$MAX3"
  printf '  ratio of medians          %10.2f  (target >= 0.60)\n' "$(echo "$MAX3 / $MAX1" | bc -l)"
  printf '  median of paired ratios   %10.2f\n' "$(median <"$WORK/ar")"
}

part_b() {
  local rate=$RATE r # given: the same offered load for every build compared (run-ab-bench.sh)
  if [[ -z "$rate" ]]; then
    if [[ -z "$MAX1" ]]; then up 1; bench --seconds "$SECS" >"$WORK/b1.json"; MAX1=$(jq -r .msgs_per_s "$WORK/b1.json"); fi
    rate=$(printf '%.0f' "$(echo "$MAX1 / 2" | bc -l)")
  fi
  up 3
  : >"$WORK/b.p50"; : >"$WORK/b.p99"; : >"$WORK/b.cq"
  for ((r = 1; r <= RUNS; r++)); do
    bench --seconds "$SECS" --rate "$rate" >"$WORK/b.json" &
    local bp=$! s=0 p50=0 p99=0 cq=0 row
    sleep 1
    while kill -0 "$bp" 2>/dev/null && ((s < SECS + 5)); do
      row=$("$MBX" --json admin copy status db1 2>/dev/null |
        jq -r '[.copies[] | select(.role == "passive")] |
          "\(map(.receipt_p50_us // 0) | max) \(map(.receipt_p99_us // 0) | max) \(map(.copy_queue_records // 0) | max)"') || row="0 0 0"
      read -r a b c <<<"$row"
      ((a > p50)) && p50=$a; ((b > p99)) && p99=$b; ((c > cq)) && cq=$c
      sleep 1; s=$((s + 1))
    done
    wait "$bp" || die "mbx-bench --rate failed"
    echo "$p50" >>"$WORK/b.p50"; echo "$p99" >>"$WORK/b.p99"; echo "$cq" >>"$WORK/b.cq"
    printf '(b) run %d at %s msgs/s (achieved %s): receipt p50 %s us, p99 %s us, max copy queue %s\n' \
      "$r" "$rate" "$(jq -r .msgs_per_s "$WORK/b.json")" "$p50" "$p99" "$cq" >&2
  done
  printf '\n(b) steady load %s msgs/s (%s), median of %d runs (worst copy, worst sample)\n' "$rate" "$([[ -n "$RATE" ]] && echo "--rate" || echo "half the single-node max")" "$RUNS"
  printf '  receipt latency p50      %10s us  (target <= 2000)\n' "$(median <"$WORK/b.p50")"
  printf '  receipt latency p99      %10s us  (target <= 20000)\n' "$(median <"$WORK/b.p99")"
  printf '  max copy queue           %10s records (target < 100)\n' "$(median <"$WORK/b.cq")"
}

part_c() {
  up 3
  local msg=65536 n r t0 t1 bytes
  n=$((SEED_MB * 1024 * 1024 / msg))
  printf '(c) filling db1 with %d random %d-byte messages (~%d MB)\n' "$n" "$msg" "$SEED_MB" >&2
  MBX_SERVER=$ACTIVE MBX_CERT=$DIR/tls/transport.pem MBX_KEY=$DIR/tls/transport.key \
    "$BENCH" deliver --json --to demo@example.com --clients 16 --size "$msg" --payload random --messages "$n" >/dev/null ||
    die "fill failed"
  for ((t0 = 0; t0 < 300; t0++)); do synced && break; sleep 1; done
  : >"$WORK/c"
  for ((r = 1; r <= RUNS; r++)); do
    t0=$(date +%s.%N)
    "$MBX" admin copy reseed db1 --node node2 >/dev/null 2>"$WORK/c.err" || die "reseed failed: $(tail -n 2 "$WORK/c.err")"
    t1=$(date +%s.%N)
    bytes=$(stat -c %s "$DIR/data/node2/db/db1/data.mdb")
    local mbs; mbs=$(echo "$bytes / 1000000 / ($t1 - $t0)" | bc -l)
    echo "$mbs" >>"$WORK/c"
    printf '(c) run %d: %d bytes in %.2f s: %.1f MB/s\n' "$r" "$bytes" "$(echo "$t1 - $t0" | bc -l)" "$mbs" >&2
  done
  printf '\n(c) seeding (reseed node2 from the active), median of %d runs\n' "$RUNS"
  printf '  rate                     %10.1f MB/s  (target >= 200)\n' "$(median <"$WORK/c")"
}

printf 'mbx replication benchmark: %s, %d CPU(s), runs %d\n' "$(date -u +%FT%TZ)" "$(nproc)" "$RUNS"
for p in $PARTS; do
  case "$p" in a) part_a ;; b) part_b ;; c) part_c ;; *) die "unknown part '$p' (a b c)" ;; esac
done
