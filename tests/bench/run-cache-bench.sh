#!/usr/bin/env bash
# run-cache-bench.sh — cached mode's figures: starts a throwaway one-node cluster with
# deploy/local/cluster, runs mbx-cache-bench --runs times (each: first syncs of a
# fresh profile, then incremental two-way rounds), prints the median (and range) of
# every figure, and stops the node. See tests/bench/README.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
PROG=${0##*/}

RUNS=3 ITEMS=10000 SIZE=4096 FIRST=3 ROUNDS=20 CHANGES=10 THREADS=4 BODIES=ondemand DIR='' KEEP=0
BIN=${MBX_BIN:-$SRC/build} OUT=''

usage() {
  cat >&2 <<USAGE
usage: $PROG [--runs N] [--items N] [--size B] [--first N] [--rounds R] [--changes C]
             [--threads T] [--bodies ondemand|all] [--build DIR] [--dir DIR] [--keep]
             [--out FILE] [--quick]
Runs mbx-cache-bench N times (3) against a fresh local node and prints medians: the
first sync of --items (10,000) messages of --size (4096) bytes (--first syncs per run),
and --rounds (20) incremental two-way syncs of --changes (10) changes each way.
--build: build directory with mbxd and mbx-cache-bench (\$MBX_BIN, else $SRC/build).
--bodies all: the first sync also fetches every message body (default: on demand).
--quick: 1 run, 2 first syncs, 5 rounds.
USAGE
  exit 2
}
die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 1; }
num() { [[ "$2" =~ ^[0-9]+$ ]] && (($2 > 0)) || die "$1 needs a positive number, got '$2'"; }

while (($# > 0)); do
  case "$1" in
    --runs) num "$1" "${2:-}"; RUNS=$2; shift 2 ;;
    --items) num "$1" "${2:-}"; ITEMS=$2; shift 2 ;;
    --size) num "$1" "${2:-}"; SIZE=$2; shift 2 ;;
    --first) num "$1" "${2:-}"; FIRST=$2; shift 2 ;;
    --rounds) num "$1" "${2:-}"; ROUNDS=$2; shift 2 ;;
    --changes) num "$1" "${2:-}"; CHANGES=$2; shift 2 ;;
    --threads) num "$1" "${2:-}"; THREADS=$2; shift 2 ;;
    --bodies) [[ "${2:-}" == ondemand || "${2:-}" == all ]] || die "--bodies is ondemand or all"; BODIES=$2; shift 2 ;;
    --build) BIN=${2:-}; shift 2 ;;
    --dir) DIR=${2:-}; shift 2 ;;
    --out) OUT=${2:-}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --quick) RUNS=1 FIRST=2 ROUNDS=5; shift ;;
    -h | --help) usage ;;
    *) printf '%s: unknown option %s\n' "$PROG" "$1" >&2; usage ;;
  esac
done

BIN=$(cd "$BIN" 2>/dev/null && pwd) || die "no build directory $BIN: build the project first"
BENCH=$BIN/tests/bench/mbx-cache-bench
[[ -x "$BENCH" ]] || die "mbx-cache-bench not found at $BENCH: cmake --build $BIN --target mbx-cache-bench mbxd mbx"
CLUSTER=$SRC/deploy/local/cluster

MADE_DIR=0
if [[ -z "$DIR" ]]; then
  DIR=$(mktemp -d "${TMPDIR:-/tmp}/mbx-cache-bench.XXXXXX")
  MADE_DIR=1
fi
STARTED=0
RESULTS=''
cleanup() {
  [[ -z "$RESULTS" ]] || rm -f "$RESULTS"
  if ((STARTED && !KEEP)); then
    "$CLUSTER" down --dir "$DIR" --purge >/dev/null 2>&1 || "$CLUSTER" down --dir "$DIR" >/dev/null 2>&1 || true
  fi
  if ((MADE_DIR && !KEEP)); then rm -rf "$DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

MBX_BIN=$BIN MBX_LOG_LEVEL=${MBX_LOG_LEVEL:-warning} "$CLUSTER" up --dir "$DIR" >&2 ||
  die "the local cluster did not start (see $DIR/log)"
STARTED=1
# shellcheck disable=SC1091
. "$DIR/env"
RESULTS=$(mktemp "${TMPDIR:-/tmp}/mbx-cache-bench-results.XXXXXX")

for ((i = 1; i <= RUNS; i++)); do
  printf '%s: run %d/%d\n' "$PROG" "$i" "$RUNS" >&2
  rc=0
  "$BENCH" --json --items "$ITEMS" --size "$SIZE" --runs "$FIRST" --rounds "$ROUNDS" \
    --changes "$CHANGES" --threads "$THREADS" --bodies "$BODIES" --dir "$DIR/cache" >>"$RESULTS" || rc=$?
  ((rc == 0)) || printf '%s: run %d exited %d (figures kept; see stderr above)\n' "$PROG" "$i" "$rc" >&2
  [[ -z "$OUT" ]] || tail -n 1 "$RESULTS" >>"$OUT"
done

printf '\ncached mode, bodies %s — median of %d runs (each: %d first syncs, %d incremental rounds)\n' \
  "$BODIES" "$RUNS" "$FIRST" "$ROUNDS"
awk '
  {
    line = $0; gsub(/[{}"]/, "", line); n = split(line, kv, ",")
    for (i = 1; i <= n; i++) {
      split(kv[i], p, ":"); k = p[1]; v = p[2]
      if (v !~ /^-?[0-9.]+$/) continue
      if (!(k in cnt)) order[++nk] = k
      vals[k, ++cnt[k]] = v + 0
    }
  }
  END {
    for (j = 1; j <= nk; j++) {
      k = order[j]; c = cnt[k]
      for (a = 1; a <= c; a++) s[a] = vals[k, a]
      for (a = 2; a <= c; a++) { x = s[a]; b = a - 1; while (b >= 1 && s[b] > x) { s[b + 1] = s[b]; b-- } s[b + 1] = x }
      med = (c % 2) ? s[(c + 1) / 2] : (s[c / 2] + s[c / 2 + 1]) / 2
      printf "  %-26s %12.2f   (%.2f .. %.2f over %d runs)\n", k, med, s[1], s[c], c
    }
  }' "$RESULTS"
if ((KEEP)); then printf '\nnode left running: . %s/env; %s down --dir %s\n' "$DIR" "$CLUSTER" "$DIR" >&2; fi
