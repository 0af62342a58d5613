#!/usr/bin/env bash
# run-bench.sh — starts a throwaway one-node cluster with deploy/local/cluster, runs
# each mbx-bench mode several times, prints the median (and range) of every figure,
# and stops the node. See tests/bench/README.md for what the figures mean.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
PROG=${0##*/}

RUNS=3 SECONDS_PER_RUN=10 CLIENTS=64 SIZE=4096 PAYLOAD=text ITEMS=100000 CHANGES=10 ROUNDS=50
MODES="deliver mixed sync" DIR='' KEEP=0 BIN=${MBX_BIN:-$SRC/build} OUT=''

usage() {
  cat >&2 <<USAGE
usage: $PROG [--runs N] [--seconds S] [--clients N] [--size B] [--items N] [--changes C]
             [--rounds R] [--modes "deliver mixed sync"] [--build DIR] [--dir DIR] [--keep]
             [--out FILE] [--quick] [--payload text|random]
Runs each mode N times (3) against a fresh local node and prints medians.
--build: build directory with mbxd, mbx and mbx-bench (\$MBX_BIN, else $SRC/build).
--dir: cluster directory (default: a new one under \${TMPDIR:-/tmp}, removed at the end).
--keep: leave the node running.  --out: also write every run's JSON line to FILE.
--quick: a short smoke run (2 runs of 3 s, a 10,000-item sync folder, 10 rounds).
USAGE
  exit 2
}

die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 1; }
num() {
  if [[ ! "$2" =~ ^[0-9]+$ ]] || (($2 == 0)); then die "$1 needs a positive number, got '$2'"; fi
}

while (($# > 0)); do
  case "$1" in
    --runs) num "$1" "${2:-}"; RUNS=$2; shift 2 ;;
    --seconds) num "$1" "${2:-}"; SECONDS_PER_RUN=$2; shift 2 ;;
    --clients) num "$1" "${2:-}"; CLIENTS=$2; shift 2 ;;
    --size) num "$1" "${2:-}"; SIZE=$2; shift 2 ;;
    --payload) PAYLOAD=${2:-}; shift 2 ;;
    --items) num "$1" "${2:-}"; ITEMS=$2; shift 2 ;;
    --changes) num "$1" "${2:-}"; CHANGES=$2; shift 2 ;;
    --rounds) num "$1" "${2:-}"; ROUNDS=$2; shift 2 ;;
    --modes) MODES=${2:-}; shift 2 ;;
    --build) BIN=${2:-}; shift 2 ;;
    --dir) DIR=${2:-}; shift 2 ;;
    --out) OUT=${2:-}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --quick) RUNS=2 SECONDS_PER_RUN=3 ITEMS=10000 ROUNDS=10; shift ;;
    -h | --help) usage ;;
    *) printf '%s: unknown option %s\n' "$PROG" "$1" >&2; usage ;;
  esac
done
for m in $MODES; do
  case "$m" in deliver | mixed | sync) ;; *) die "unknown mode '$m' (deliver, mixed, sync)" ;; esac
done

BIN=$(cd "$BIN" 2>/dev/null && pwd) || die "no build directory $BIN: build the project first"
BENCH=$BIN/tests/bench/mbx-bench
[[ -x "$BENCH" ]] || die "mbx-bench not found at $BENCH: cmake --build $BIN --target mbx-bench mbxd mbx"
CLUSTER=$SRC/deploy/local/cluster

MADE_DIR=0
if [[ -z "$DIR" ]]; then
  DIR=$(mktemp -d "${TMPDIR:-/tmp}/mbx-bench.XXXXXX")
  MADE_DIR=1
fi
STARTED=0
cleanup() {
  if ((STARTED && !KEEP)); then
    "$CLUSTER" down --dir "$DIR" --purge >/dev/null 2>&1 || "$CLUSTER" down --dir "$DIR" >/dev/null 2>&1 || true
  fi
  if ((MADE_DIR && !KEEP)); then rm -rf "$DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Per-request log lines would cost the node more than the work measured.
MBX_BIN=$BIN MBX_LOG_LEVEL=${MBX_LOG_LEVEL:-warning} "$CLUSTER" up --dir "$DIR" >&2 ||
  die "the local cluster did not start (see $DIR/log)"
STARTED=1
# shellcheck disable=SC1091
. "$DIR/env"

RESULTS=$(mktemp "${TMPDIR:-/tmp}/mbx-bench-results.XXXXXX")
trap 'rm -f "$RESULTS"; cleanup' EXIT

# medians FILE: every numeric field of the flat JSON lines in FILE → "key median (min–max)"
medians() {
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
        printf "  %-22s %12.3f   (%.3f .. %.3f over %d runs)\n", k, med, s[1], s[c], c
      }
    }' "$1"
}

run_mode() { # MODE ARGS...
  local mode=$1 i rc file
  shift
  file="$RESULTS.$mode"
  : >"$file"
  for ((i = 1; i <= RUNS; i++)); do
    printf '%s: %s run %d/%d: mbx-bench %s %s\n' "$PROG" "$mode" "$i" "$RUNS" "$mode" "$*" >&2
    rc=0
    "$BENCH" "$mode" --json "$@" >>"$file" || rc=$?
    ((rc == 0)) || printf '%s: %s run %d exited %d (figures kept; see stderr above)\n' "$PROG" "$mode" "$i" "$rc" >&2
    [[ -z "$OUT" ]] || tail -n 1 "$file" >>"$OUT"
  done
  printf '\n%s — median of %d runs\n' "$mode" "$RUNS"
  medians "$file"
}

for m in $MODES; do
  case "$m" in
    deliver) run_mode deliver --clients "$CLIENTS" --size "$SIZE" --payload "$PAYLOAD" --seconds "$SECONDS_PER_RUN" --mailboxes 64 ;;
    mixed) run_mode mixed --clients "$CLIENTS" --size "$SIZE" --payload "$PAYLOAD" --seconds "$SECONDS_PER_RUN" --mailboxes 64 ;;
    # the first run fills the folder; later runs reuse it (mbx-bench tops it up)
    sync) run_mode sync --items "$ITEMS" --changes "$CHANGES" --rounds "$ROUNDS" --clients "$CLIENTS" ;;
  esac
done
rm -f "$RESULTS" "$RESULTS".*
if ((KEEP)); then printf '\nnode left running: . %s/env; %s down --dir %s\n' "$DIR" "$CLUSTER" "$DIR" >&2; fi
