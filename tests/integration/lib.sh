# lib.sh — shared helpers for the integration tests (it_*.sh): a throwaway local
# cluster per test, mbx invocations as user / operator / transport that capture
# output and exit code, assertions that fail with one clear line, bounded waits.
# Sourced by each it_*.sh; expects MBX_BIN (build dir) and MBX_SRC (source dir).

set -u -o pipefail

: "${MBX_BIN:?MBX_BIN must point at the build directory}"
: "${MBX_SRC:?MBX_SRC must point at the source directory}"

MBX="$MBX_BIN/client/mbx"
MBXD="$MBX_BIN/server/mbxd"
CLUSTER="$MBX_SRC/deploy/local/cluster"
ITC_DIR="$MBX_BIN/tests/integration"
IT_NAME="$(basename "${0%.sh}")"
IT_WORK=""            # per-test temp dir (everything we create lives here)
IT_DIR=""             # cluster dir of the current test
IT_PIDS=()            # processes this test started itself (killed on exit)
IT_STEP="start"       # what the test was doing, printed on failure
OUT=""; ERR=""; RC=0  # result of the last it_run

export MBX_BIN

# ---- reporting --------------------------------------------------------------

step() { IT_STEP="$*"; echo "--- $IT_NAME: $*"; }

fail() {
  echo "FAIL [$IT_NAME] ($IT_STEP): $*" >&2
  if [[ -n "$OUT$ERR" ]]; then
    echo "  last command rc=$RC" >&2
    echo "  stdout: $(printf '%s' "$OUT" | head -c 2000)" >&2
    echo "  stderr: $(printf '%s' "$ERR" | head -c 2000)" >&2
  fi
  exit 1
}

# Skip (ctest counts exit 0 as pass; we print why so a reader sees it).
skip() { echo "SKIP [$IT_NAME]: $*"; exit 0; }

# ---- setup / teardown -------------------------------------------------------

it_cleanup() {
  local rc=$?
  local p
  for p in "${IT_PIDS[@]}"; do
    kill -9 "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  if [[ -n "$IT_DIR" && -d "$IT_DIR" ]]; then
    timeout 30 "$CLUSTER" down --dir "$IT_DIR" >/dev/null 2>&1
    # Belt and braces: the node we brought up must not outlive the test.
    local pidf
    for pidf in "$IT_DIR"/run/*.pid; do
      [[ -f "$pidf" ]] || continue
      p=$(cat "$pidf" 2>/dev/null)
      [[ "$p" =~ ^[0-9]+$ ]] && kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null
    done
    # A sanitizer build reports into the node's log; any report fails the test.
    local nlog
    for nlog in "$IT_DIR"/log/node*.log; do
      [[ -f "$nlog" ]] || continue
      if grep -aEq 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$nlog"; then
        echo "FAIL [$IT_NAME]: sanitizer report in ${nlog##*/}:" >&2
        grep -aE -A 12 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$nlog" | head -n 40 >&2
        rc=1
      fi
    done
    if [[ $rc -ne 0 ]]; then
      for nlog in "$IT_DIR"/log/node*.log; do
        [[ -f "$nlog" ]] || continue
        echo "--- tail of ${nlog##*/}:" >&2
        tail -n 40 "$nlog" >&2
      done
    fi
  fi
  if [[ -n "$IT_WORK" && -d "$IT_WORK" && -z "${MBX_IT_KEEP:-}" ]]; then
    rm -rf "$IT_WORK"
  elif [[ -n "$IT_WORK" ]]; then
    echo "kept $IT_WORK" >&2
  fi
  exit $rc
}

# it_init: checks the binaries, makes the temp dir and installs the EXIT trap.
it_init() {
  [[ -x "$MBX" ]] || fail "mbx CLI not built at $MBX"
  [[ -x "$MBXD" ]] || fail "mbxd not built at $MBXD"
  [[ -x "$CLUSTER" ]] || fail "launcher missing or not executable: $CLUSTER"
  command -v jq >/dev/null || fail "jq not installed (deploy/install-deps.sh)"
  IT_WORK=$(mktemp -d "${TMPDIR:-/tmp}/mbx-it-$IT_NAME.XXXXXX") || fail "mktemp"
  trap it_cleanup EXIT
  trap 'exit 130' INT TERM
}

# it_up [launcher args…]: one node in $IT_WORK/cluster; loads DIR/env.
it_up() {
  IT_DIR="$IT_WORK/cluster"
  step "cluster up $*"
  if ! timeout 90 "$CLUSTER" up --dir "$IT_DIR" "$@" >"$IT_WORK/up.log" 2>&1; then
    # A launcher that does not do this yet (e.g. --nodes 3 before replication) says so.
    grep -q 'not yet supported' "$IT_WORK/up.log" && skip "launcher: $(grep -m1 'not yet supported' "$IT_WORK/up.log")"
    cat "$IT_WORK/up.log" >&2; fail "cluster up failed"
  fi
  [[ -f "$IT_DIR/env" ]] || fail "cluster up wrote no $IT_DIR/env"
  # shellcheck disable=SC1091
  . "$IT_DIR/env"
  for v in MBX_SERVER MBX_CA MBX_CERT MBX_KEY; do
    [[ -n "${!v:-}" ]] || fail "$IT_DIR/env does not set $v"
  done
  export MBX_SERVER MBX_CA MBX_CERT MBX_KEY
  OP_CERT="$MBX_CERT"; OP_KEY="$MBX_KEY"
  TR_CERT="$IT_DIR/tls/transport.pem"; TR_KEY="$IT_DIR/tls/transport.key"
  DEMO=demo@example.com
  DEMO_PW=$(cat "$IT_DIR/demo-password") || fail "no demo-password"
  unset MBX_USER MBX_PASSWORD MBX_OPERATOR_PASSWORD
}

# it_cluster CMD [NAME]: stop/start/kill/status through the launcher (bounded).
it_cluster() {
  timeout 90 "$CLUSTER" "$@" --dir "$IT_DIR" >"$IT_WORK/cluster.log" 2>&1 ||
    { cat "$IT_WORK/cluster.log" >&2; fail "cluster $* failed"; }
}

node_pid() { cat "$IT_DIR/run/node1.pid" 2>/dev/null; }
node_alive() {
  local p; p=$(node_pid)
  [[ "$p" =~ ^[0-9]+$ ]] && kill -0 "$p" 2>/dev/null
}

# wait_until SECONDS CMD…: polls CMD every 0.1 s; 0 once it succeeds, 1 on timeout.
wait_until() {
  local secs=$1; shift
  local end=$((SECONDS + secs))
  while ((SECONDS < end)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  "$@" >/dev/null 2>&1
}

# ---- running mbx --------------------------------------------------------------

# it_run ENV… -- ARGS…: runs mbx with extra env assignments, capturing OUT/ERR/RC.
it_run() {
  local envs=()
  while [[ $# -gt 0 && "$1" != "--" ]]; do envs+=("$1"); shift; done
  shift
  env "${envs[@]}" timeout 30 "$MBX" "$@" </dev/null >"$IT_WORK/out" 2>"$IT_WORK/err"
  RC=$?
  OUT=$(cat "$IT_WORK/out"); ERR=$(cat "$IT_WORK/err")
  return 0
}

# Credentials: user (address + password, no cert), operator (cert), transport (cert).
as_user() {  # as_user ADDR PASSWORD ARGS…
  local u=$1 p=$2; shift 2
  it_run -u MBX_CERT -u MBX_KEY -u MBX_OPERATOR_PASSWORD MBX_USER="$u" MBX_PASSWORD="$p" -- "$@"
}
as_demo() { as_user "$DEMO" "$DEMO_PW" "$@"; }
as_op() { it_run -u MBX_USER -u MBX_PASSWORD MBX_CERT="$OP_CERT" MBX_KEY="$OP_KEY" -- "$@"; }
as_transport() {
  it_run -u MBX_USER -u MBX_PASSWORD -u MBX_OPERATOR_PASSWORD MBX_CERT="$TR_CERT" MBX_KEY="$TR_KEY" -- "$@"
}

# ok: the last command must have exited 0.
ok() { [[ $RC -eq 0 ]] || fail "${1:-command failed} (rc=$RC)"; }

# refused EXIT NAME [what]: the last command exited EXIT with one stderr line
# ending in "(NAME)".
refused() {
  local code=$1 name=$2 what=${3:-}
  [[ $RC -eq $code ]] || fail "$what: expected exit $code ($name), got $RC"
  local last
  last=$(printf '%s\n' "$ERR" | grep -v '^[[:space:]]*$' | tail -n 1)
  [[ "$last" == *"($name)" ]] || fail "$what: stderr does not end with ($name): $ERR"
  local n
  n=$(printf '%s\n' "$ERR" | grep -cv '^[[:space:]]*$')
  [[ $n -eq 1 ]] || fail "$what: expected one stderr line, got $n"
  echo "  ok, refused: $what: $ERR"
}

# jqo FILTER: applies jq to the last OUT (fails the test if it is not JSON).
jqo() {
  local r
  r=$(printf '%s' "$OUT" | jq -r "$1") || fail "output is not JSON / jq '$1' failed"
  printf '%s' "$r"
}

# eq GOT WANT WHAT
eq() { [[ "$1" == "$2" ]] || fail "$3: got '$1', want '$2'"; }

# ---- data ------------------------------------------------------------------------

# make_eml FILE SUBJECT [FROM] [TO] [PAD_BYTES]: a small RFC 5322 message.
make_eml() {
  local f=$1 subj=$2 from=${3:-alice@example.org} to=${4:-demo@example.com} pad=${5:-0}
  local mid
  mid="<$(date +%s%N).$RANDOM.$subj@it.example>"
  mid=${mid// /_}
  {
    printf 'From: %s\r\n' "$from"
    printf 'To: %s\r\n' "$to"
    printf 'Subject: %s\r\n' "$subj"
    printf 'Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n'
    printf 'Message-ID: %s\r\n' "$mid"
    printf '\r\n'
    printf 'Hello, this is %s.\r\n' "$subj"
    if ((pad > 0)); then
      head -c "$pad" /dev/zero | tr '\0' 'x' | fold -w 76 | sed 's/$/\r/'
    fi
  } >"$f"
}

# b64url_decode: stdin base64url without padding → raw bytes on stdout.
b64url_decode() {
  local s; s=$(tr -d '\n' | tr '_-' '/+')
  while (( ${#s} % 4 )); do s="$s="; done
  printf '%s' "$s" | base64 -d
}

# digest DB: prints the hex digest of DB (operator).
digest() {
  as_op --json admin db digest "$1"
  ok "admin db digest $1"
  local d; d=$(jqo '.digest // empty')
  [[ "$d" =~ ^[0-9a-f]{16,}$ ]] || fail "admin db digest $1: no hex digest in $OUT"
  printf '%s' "$d"
}

# folder_id NAME: id of a top-level (or path) folder of demo via `folders --json`.
folder_json() { # folder_json USER PW NAME → the folder object
  as_user "$1" "$2" --json folders
  ok "folders"
  printf '%s' "$OUT" | jq -c --arg n "$3" '.folders[] | select(.name == $n)' | head -n 1
}

# refused_any: the last command failed (exit 1 or 2) with exactly one clear stderr line.
refused_any() {
  local what=$1
  [[ $RC -eq 1 || $RC -eq 2 ]] || fail "$what: expected exit 1 or 2, got $RC"
  local n
  n=$(printf '%s\n' "$ERR" | grep -cv '^[[:space:]]*$')
  [[ $n -eq 1 ]] || fail "$what: expected one stderr line, got $n"
  echo "  ok, refused: $what: $ERR"
}

# ---- several nodes (replication tests, it_repl_*.sh) ------------------------------
# Nodes are node1…nodeN of the launcher; db1's active is node1 unless a test moves it.

# node_port NAME: the node's port, from the launcher's DIR/cluster.conf.
node_port() {
  local p
  p=$(sed -n "s/^port_$1=//p" "$IT_DIR/cluster.conf" 2>/dev/null)
  [[ "$p" =~ ^[0-9]+$ ]] || fail "no port for $1 in $IT_DIR/cluster.conf"
  printf '%s' "$p"
}
node_addr() { printf '127.0.0.1:%s' "$(node_port "$1")"; }
pid_of_node() { cat "$IT_DIR/run/$1.pid" 2>/dev/null; }

# it_up_repl [launcher args…]: 3 nodes, db1 with a copy on each (active on node1).
it_up_repl() {
  it_up --nodes 3 --databases 1 "$@"
  [[ "$MBX_SERVER" == *,* ]] || fail "MBX_SERVER lists one node ($MBX_SERVER): want all three"
}

# as_op_at NAME ARGS…: operator command sent to one node only.
as_op_at() { local n=$1; shift; as_op_server "$(node_addr "$n")" "$@"; }
as_op_server() {
  local s=$1; shift
  it_run -u MBX_USER -u MBX_PASSWORD MBX_SERVER="$s" MBX_CERT="$OP_CERT" MBX_KEY="$OP_KEY" -- "$@"
}

# copy_status DB: `admin copy status DB --json` into OUT (any node answers).
copy_status() { as_op --json admin copy status "$1"; ok "admin copy status $1"; }
# copy_field NODE FIELD: a field of NODE's copy in the last copy_status (empty if none).
copy_field() {
  printf '%s' "$OUT" | jq -r --arg n "$1" --arg f "$2" \
    '[.copies[]? | select(.node == $n)][0][$f] // empty' 2>/dev/null
}
# show_copies DB: one line per copy, for the test log.
show_copies() {
  copy_status "$1"
  printf '%s' "$OUT" | jq -r '.copies[]? | "  \(.node) \(.role // "-") \(.status // "-")'\
' recv=\(.received_lsn // 0) repl=\(.replayed_lsn // 0) cq=\(.copy_queue_records // 0)'\
' rq=\(.replay_queue_records // 0) \(.reason // "")"'
}

# db_last_lsn DB NODE: last lsn of NODE's copy (admin db digest --node, --json).
node_digest_json() { as_op --json admin db digest "$1" --node "$2"; }
db_last_lsn() {
  node_digest_json "$1" "$2"; ok "admin db digest $1 --node $2"
  jqo '.last_lsn // 0'
}

# repl_synced DB ACTIVE PASSIVE…: 0 when every passive has received = replayed = the
# active's last lsn (and it is > 0).
repl_synced() {
  local db=$1 act=$2; shift 2
  local last n r p
  last=$(db_last_lsn "$db" "$act") || return 1
  ((last > 0)) || return 1
  copy_status "$db"
  for n in "$@"; do
    r=$(copy_field "$n" received_lsn); p=$(copy_field "$n" replayed_lsn)
    [[ "$r" == "$last" && "$p" == "$last" ]] || return 1
  done
}

# wait_synced SECONDS DB ACTIVE PASSIVE…: bounded wait for repl_synced; fails with
# the copies' state on timeout. (Runs in this shell: fail inside must end the test.)
wait_synced() {
  local secs=$1; shift
  local end=$((SECONDS + secs))
  while ((SECONDS < end)); do
    (repl_synced "$@") >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  (repl_synced "$@") >/dev/null 2>&1 && return 0
  echo "copies of $1 after ${secs}s (active $2 last lsn: $(db_last_lsn "$1" "$2" 2>/dev/null)):" >&2
  show_copies "$1" >&2
  fail "copies of $1 did not catch up with $2 within ${secs}s"
}

# digests_equal DB NODE…: the digest and last lsn of every NODE's copy are the same.
digests_equal() {
  local db=$1; shift
  local n d l first_d='' first_l='' first_n=''
  for n in "$@"; do
    node_digest_json "$db" "$n"; ok "admin db digest $db --node $n"
    d=$(jqo '.digest // empty'); l=$(jqo '.last_lsn // 0')
    [[ "$d" =~ ^[0-9a-f]{16,}$ ]] || fail "digest of $db on $n: no hex digest in $OUT"
    echo "  digest $db on $n: ${d:0:16}… last lsn $l"
    if [[ -z "$first_n" ]]; then first_d=$d first_l=$l first_n=$n; continue; fi
    [[ "$l" == "$first_l" ]] || fail "last lsn of $db: $first_n $first_l, $n $l"
    [[ "$d" == "$first_d" ]] || fail "digest of $db differs: $first_n $first_d, $n $d"
  done
}

# node_conf_set NAME KEY VALUE: replaces (or adds) one key in NAME's config in the
# test's cluster dir; takes effect at the node's next start.
node_conf_set() {
  local f="$IT_DIR/conf/$1.conf"
  [[ -f "$f" ]] || fail "no config $f"
  sed -i "/^[[:space:]]*${2//./\\.}[[:space:]]*=/d" "$f"
  printf '%s = %s\n' "$2" "$3" >>"$f"
}

# load_start SECONDS TAG FIRST [CONNS]: itc_load against the active (node1) in the
# background, acked numbers in $IT_WORK/acked.TAG; LOAD_PID is its pid.
load_start() {
  local secs=$1 tag=$2 first=$3 conns=${4:-8}
  [[ -x "$ITC_DIR/itc_load" ]] || fail "driver not built: $ITC_DIR/itc_load"
  env MBX_SERVER="$(node_addr node1)" MBX_CERT="$TR_CERT" MBX_KEY="$TR_KEY" \
    timeout $((secs + 30)) "$ITC_DIR/itc_load" --to "$DEMO" --conns "$conns" --first "$first" \
    --count 10000000 --seconds "$secs" --run "$tag" \
    >"$IT_WORK/acked.$tag" 2>"$IT_WORK/load.$tag.err" &
  LOAD_PID=$!
  IT_PIDS+=("$LOAD_PID")
}
# load_wait TAG: waits for the load; fails if it failed or had nothing acknowledged.
load_wait() {
  wait "$LOAD_PID"; local lrc=$?
  cat "$IT_WORK/load.$1.err"
  [[ $lrc -eq 0 ]] || fail "load driver failed (rc=$lrc)"
  local n; n=$(wc -l <"$IT_WORK/acked.$1")
  ((n > 0)) || fail "load $1: nothing acknowledged"
  echo "  load $1: $n deliveries acknowledged"
}

# relay_start TARGET_NODE [relay args…]: itc_relay in front of a node; RELAY_PORT,
# RELAY_PID; its stderr (one line per cut/flip) in $IT_WORK/relay.err.
relay_start() {
  local tgt=$1; shift
  [[ -x "$ITC_DIR/itc_relay" ]] || fail "driver not built: $ITC_DIR/itc_relay"
  rm -f "$IT_WORK/relay.port"
  "$ITC_DIR/itc_relay" --target "$(node_addr "$tgt")" --port-file "$IT_WORK/relay.port" \
    --seconds 900 "$@" >/dev/null 2>"$IT_WORK/relay.err" &
  RELAY_PID=$!
  IT_PIDS+=("$RELAY_PID")
  wait_until 5 test -s "$IT_WORK/relay.port" || fail "relay did not start: $(cat "$IT_WORK/relay.err")"
  RELAY_PORT=$(cat "$IT_WORK/relay.port")
}

# restart_via_relay NAME: NAME pulls from node1 through the relay from now on.
restart_via_relay() {
  it_cluster stop "$1"
  node_conf_set "$1" peer.node1 "127.0.0.1:$RELAY_PORT"
  it_cluster start "$1"
}
