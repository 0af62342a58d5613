#!/usr/bin/env bash
# run-ab-bench.sh — did delivery throughput or receipt latency regress between two
# builds? Runs run-repl-bench.sh parts (a) and (b) against a "before" and an "after"
# build directory in pairs, alternating which goes first (ABBA), so both see the same
# machine noise, and reports each pair's after/before ratio and their median. Part (b)
# of a pair offers both builds the same rate: half the mean of their single-node
# maxima from that pair's part (a). See tests/bench/README.md ("Switchover").
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROG=${0##*/}
RUNS=3 SECS=10 BEFORE='' AFTER='' RATE=''

usage() {
  cat >&2 <<USAGE
usage: $PROG --before DIR --after DIR [--runs N] [--seconds S] [--rate N]
DIR: build directories (mbxd, mbx, mbx-bench). --runs (3) pairs; each pair runs
run-repl-bench.sh --parts a, then --parts b --rate R, once per build, --seconds (10)
per load. --rate N: part (b) only, at N msgs/s. The local launcher and the bench
scripts of this tree drive both builds.
USAGE
  exit 2
}
die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 1; }
num() { [[ "$2" =~ ^[0-9]+$ ]] && (($2 > 0)) || die "$1 needs a positive number, got '$2'"; }
while (($# > 0)); do
  case "$1" in
    --before) BEFORE=${2:-}; shift 2 ;;
    --after) AFTER=${2:-}; shift 2 ;;
    --runs) num "$1" "${2:-}"; RUNS=$2; shift 2 ;;
    --seconds) num "$1" "${2:-}"; SECS=$2; shift 2 ;;
    --rate) num "$1" "${2:-}"; RATE=$2; shift 2 ;;
    -h | --help) usage ;;
    *) printf '%s: unknown option %s\n' "$PROG" "$1" >&2; usage ;;
  esac
done
[[ -n "$BEFORE" && -n "$AFTER" ]] || usage
((RUNS <= 50 && SECS <= 600)) || die "limits: --runs 50, --seconds 600"
BEFORE=$(cd "$BEFORE" 2>/dev/null && pwd) || die "no build directory $BEFORE"
AFTER=$(cd "$AFTER" 2>/dev/null && pwd) || die "no build directory $AFTER"
REPL=$HERE/run-repl-bench.sh

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mbx-ab-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
range() { sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%s-%s", lo, hi}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 == 0) print "nan"; else printf "%.3f\n", a / b}'; }

# repl SIDE ARGS…: one run-repl-bench.sh run of SIDE (before|after); its per-run lines
# (stderr) go to WORK/SIDE.log as well as to the terminal.
repl() {
  local side=$1 dir; shift
  dir=$([[ "$side" == before ]] && echo "$BEFORE" || echo "$AFTER")
  printf '== %s (%s): run-repl-bench.sh %s\n' "$side" "$dir" "$*" >&2
  "$REPL" --build "$dir" --runs 1 --seconds "$SECS" "$@" 2>&1 >/dev/null | tee "$WORK/$side.log" | grep '^(' >&2 ||
    die "run-repl-bench.sh failed for $side: $(tail -n 5 "$WORK/$side.log")"
}
# a SIDE → "max1 max3" from its part (a) lines
a_fig() { sed -n 's/^(a) \([13]\) node(s) run 1: \([0-9.]*\) msgs\/s.*/\1 \2/p' "$WORK/$1.log" | sort -n | awk '{printf "%s ", $2} END {print ""}'; }
# b SIDE → "achieved p50_us p99_us queue"
b_fig() { sed -n 's/^(b) run 1 at [0-9]* msgs\/s (achieved \([0-9.]*\)): receipt p50 \([0-9]*\) us, p99 \([0-9]*\) us, max copy queue \([0-9]*\).*/\1 \2 \3 \4/p' "$WORK/$1.log"; }

printf 'mbx before/after benchmark: %s, %d CPU(s), %d pairs of %d s loads\n  before %s\n  after  %s\n' \
  "$(date -u +%FT%TZ)" "$(nproc)" "$RUNS" "$SECS" "$BEFORE" "$AFTER"
: >"$WORK/pairs"
for ((r = 1; r <= RUNS; r++)); do
  order="before after"
  ((r % 2)) || order="after before"
  declare -A A1=([before]=nan [after]=nan) A3=([before]=nan [after]=nan) BF=()
  rate=$RATE
  if [[ -z "$RATE" ]]; then
    for s in $order; do
      repl "$s" --parts a
      read -r "A1[$s]" "A3[$s]" <<<"$(a_fig "$s")"
      [[ -n "${A3[$s]:-}" ]] || die "no part (a) figures for $s"
    done
    rate=$(awk -v a="${A1[before]}" -v b="${A1[after]}" 'BEGIN {printf "%.0f", (a + b) / 4}')
  fi
  for s in $order; do
    repl "$s" --parts b --rate "$rate"
    BF[$s]=$(b_fig "$s")
    [[ -n "${BF[$s]}" ]] || die "no part (b) figures for $s"
  done
  read -r bach bp50 bp99 bcq <<<"${BF[before]}"
  read -r aach ap50 ap99 acq <<<"${BF[after]}"
  printf 'pair %d (%s first): ' "$r" "${order%% *}"
  [[ -n "$RATE" ]] || printf '1 node %s -> %s msgs/s (x%s); 3 nodes %s -> %s (x%s); ' \
    "${A1[before]}" "${A1[after]}" "$(ratio "${A1[after]}" "${A1[before]}")" \
    "${A3[before]}" "${A3[after]}" "$(ratio "${A3[after]}" "${A3[before]}")"
  printf 'at %s msgs/s: receipt p50 %s -> %s us (x%s), p99 %s -> %s us (x%s), max queue %s -> %s\n' "$rate" \
    "$bp50" "$ap50" "$(ratio "$ap50" "$bp50")" "$bp99" "$ap99" "$(ratio "$ap99" "$bp99")" "$bcq" "$acq"
  echo "${A1[before]} ${A1[after]} ${A3[before]} ${A3[after]} $bp50 $ap50 $bp99 $ap99 $bcq $acq $bach $aach" >>"$WORK/pairs"
  unset A1 A3 BF
done

col() { cut -d' ' -f"$1" "$WORK/pairs"; }
ratios() { paste -d' ' <(col "$2") <(col "$1") | while read -r a b; do ratio "$a" "$b"; done; }
row() { # LABEL BEFORE_COL AFTER_COL UNIT
  local rs; rs=$(ratios "$2" "$3")
  printf '  %-28s before %10s  after %10s %-6s after/before median %s (range %s)\n' "$1" \
    "$(col "$2" | median)" "$(col "$3" | median)" "$4" "$(median <<<"$rs")" "$(range <<<"$rs")"
}
printf '\nbefore/after over %d pairs (medians; ratios are per pair; throughput: higher is better, latency: lower)\n' "$RUNS"
if [[ -z "$RATE" ]]; then
  row 'max rate, 1 node' 1 2 msgs/s
  row 'max rate, 3 nodes' 3 4 msgs/s
fi
row 'receipt p50 (part b)' 5 6 us
row 'receipt p99 (part b)' 7 8 us
row 'max copy queue (part b)' 9 10 records
