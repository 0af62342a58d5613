# cache_lib.sh — helpers for the cached-mode tests (it_cache_*.sh), sourced after
# lib.sh and it_up: cached profiles of the demo mailbox, a canonical dump of a
# mailbox's content (the server's or a profile's) to compare them, and lookups.

CACHE_DIR_IT="$IT_WORK/cache"

# as_cached PROFILE ARGS…: `mbx --cached --profile PROFILE ARGS…` as demo.
as_cached() {
  local p=$1; shift
  it_run -u MBX_CERT -u MBX_KEY MBX_CACHE_DIR="$CACHE_DIR_IT" MBX_USER="$DEMO" \
    MBX_PASSWORD="$DEMO_PW" -- --cached --profile "$p" "$@"
}

# sync_now PROFILE: a full two-way pass that must succeed; prints its summary.
sync_now() {
  as_cached "$1" sync-now
  ok "sync-now $1"
  printf '  %s: %s\n' "$1" "$(printf '%s' "$OUT" | tail -n 1)"
  [[ -z "$(printf '%s' "$OUT" | grep -v '^synced\|^conflict: ')" ]] || fail "sync-now $1: unexpected output"
}

# canon MODE [PROFILE]: one sorted line per folder and per item of the mailbox —
# "path" and "path|kind|title|flags|categories" — from the server (MODE server) or
# from a profile's cache (MODE cached). Ids are left out: they are the same
# everywhere once synced, titles are unique in these tests.
canon() {
  local mode=$1 p=${2:-}
  local run=(as_demo)
  [[ $mode == cached ]] && run=(as_cached "$p")
  "${run[@]}" --json folders; ok "folders ($mode $p)"
  local fj=$OUT
  local ids
  ids=$(printf '%s' "$fj" | jq -r '.folders[].id')
  printf '%s' "$fj" | jq -r '
    (.folders | map({key: (.id|tostring), value: .}) | from_entries) as $m |
    def p($id): $m[$id|tostring] as $x |
      if ($x.parent_id // 0) == 0 or $m[($x.parent_id|tostring)] == null then $x.name
      else p($x.parent_id) + "/" + $x.name end;
    .folders[] | "\(.id)\t\(p(.id))"' >"$IT_WORK/paths"
  local id path
  {
    while IFS=$'\t' read -r id path; do
      printf '%s\n' "$path"
      local off=0 total=1
      while ((off < total)); do
        "${run[@]}" --json list "$id" --limit 1000 --offset "$off"; ok "list $path ($mode $p)"
        total=$(jqo '.total // 0')
        printf '%s' "$OUT" | jq -r --arg p "$path" '.items[]? |
          "\($p)|\(.kind // "ITEM_MESSAGE")|\(.message.subject // .event.subject //
            .contact.display_name // .task.subject // .note.subject // "")|\(.flags // 0)|\(
            (.categories // []) | sort | join(","))"'
        off=$((off + 1000))
        ((off <= 100000)) || fail "more than 100,000 items in $path"
      done
    done <"$IT_WORK/paths"
  } | sort
}

# same_content PROFILE…: every profile's cache holds exactly the server's content.
same_content() {
  canon server >"$IT_WORK/canon.server"
  local p
  for p in "$@"; do
    canon cached "$p" >"$IT_WORK/canon.$p"
    if ! diff -u "$IT_WORK/canon.server" "$IT_WORK/canon.$p" >"$IT_WORK/canon.diff"; then
      cat "$IT_WORK/canon.diff" >&2
      fail "profile $p differs from the server (- server, + $p)"
    fi
  done
  echo "  same content: server $* ($(wc -l <"$IT_WORK/canon.server") lines)"
}

# has_line MODE [PROFILE] PATTERN: a canonical line matches the ERE.
has_line() {
  local mode=$1 p=$2 pat=$3
  canon "$mode" "$p" | grep -Eq -- "$pat"
}

# deliver_msg SUBJECT: delivers a message to demo's Inbox; prints its id.
deliver_msg() {
  make_eml "$IT_WORK/$1.eml" "$1"
  as_transport --json deliver --to "$DEMO" "$IT_WORK/$1.eml"; ok "deliver $1"
  jqo '.item.id'
}

# status_field PROFILE FIELD: a field of `status --json`.
status_field() {
  as_cached "$1" --json status; ok "status $1"
  jqo ".$2 // 0"
}

# folder_items MODE PROFILE FOLDER: "subject|flags|categories" of every item of the
# folder (paged 1000 at a time), sorted.
folder_items() {
  local mode=$1 p=$2 f=$3 off=0 total=1
  local run=(as_demo)
  [[ $mode == cached ]] && run=(as_cached "$p")
  while ((off < total)); do
    "${run[@]}" --json list "$f" --limit 1000 --offset "$off"; ok "list $f ($mode)"
    total=$(jqo '.total // 0')
    printf '%s' "$OUT" | jq -r '.items[]? | "\(.message.subject // .note.subject // "")|\(.flags // 0)|\((.categories // []) | join(","))"'
    off=$((off + 1000))
    ((off <= 100000)) || fail "more than 100,000 items in $f"
  done | sort
}
