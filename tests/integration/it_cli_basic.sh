# it_cli_basic.sh — the whole user/operator surface of `mbx` against a real node
# over TLS: deliver, list, get, flag, move, copy, delete, folders, PIM items, sync,
# admin commands, and that everything survives a clean restart of the node; then the
# command line itself: global options after the command, partial commands listing
# theirs, and `list --limit` paging past the server's 1,000-item page.
. "$(dirname "$0")/lib.sh"
it_init
it_up --databases 2

step "ping"
as_demo ping; ok "mbx ping"

step "deliver 3 messages"
ids=()
for n in 1 2 3; do
  make_eml "$IT_WORK/m$n.eml" "basic-$n"
  as_transport --json deliver --to "$DEMO" "$IT_WORK/m$n.eml"; ok "deliver $n"
  id=$(jqo '.item.id // empty')
  [[ "$id" =~ ^[0-9]+$ ]] || fail "deliver $n: no item id"
  eq "$(jqo '.item.message.subject')" "basic-$n" "deliver $n subject"
  ids+=("$id")
  sleep 0.01   # distinct received times, so the order is defined
done

step "list Inbox newest first"
as_demo --json list Inbox; ok "list Inbox"
eq "$(jqo '[(.items // [])[].message.subject] | join(",")')" "basic-3,basic-2,basic-1" "Inbox order"
eq "$(jqo '.total // 0')" "3" "Inbox total"
eq "$(jqo '[(.items // [])[].kind // "ITEM_MESSAGE"] | unique | join(",")')" "ITEM_MESSAGE" "kinds"
eq "$(jqo '.items[2].message.from')" "alice@example.org" "from"
inbox=$(folder_json "$DEMO" "$DEMO_PW" Inbox)
inbox_id=$(printf '%s' "$inbox" | jq -r '.id')
eq "$(printf '%s' "$inbox" | jq -r '.well_known')" "WK_INBOX" "Inbox well_known"
eq "$(printf '%s' "$inbox" | jq -r '.unread_count // 0')" "3" "unread before flag"
as_demo --json list "$inbox_id"; ok "list by numeric id"
eq "$(jqo '.total // 0')" "3" "list by id total"
as_demo --json list Inbox --limit 1 --offset 1; ok "list paged"
eq "$(jqo '[(.items // [])[].message.subject] | join(",")')" "basic-2" "page 2 of size 1"

step "get --body returns the exact bytes"
as_demo --json get "${ids[0]}" --body; ok "get --body"
printf '%s' "$OUT" | jq -r '.body' | b64url_decode >"$IT_WORK/got.eml"
cmp -s "$IT_WORK/got.eml" "$IT_WORK/m1.eml" || fail "body differs from the delivered file"
eq "$(jqo '.item.size // .item.message.size // 0')" "$(stat -c %s "$IT_WORK/m1.eml")" "size"
as_demo get "${ids[0]}"; ok "get (text)"

step "flag +seen lowers the unread count"
as_demo --json flag "${ids[0]}" +seen +flagged --categories red,blue; ok "flag"
eq "$(jqo '.item.flags // 0')" "3" "flags seen+flagged"
eq "$(jqo '.item.categories | join(",")')" "red,blue" "categories"
eq "$(folder_json "$DEMO" "$DEMO_PW" Inbox | jq -r '.unread_count // 0')" "2" "unread after +seen"
as_demo --json flag "${ids[0]}" -flagged; ok "flag -flagged"
eq "$(jqo '.item.flags // 0')" "1" "flags after -flagged"

step "folder create / move / copy"
as_demo --json folder create Projects; ok "folder create Projects"
proj_id=$(jqo '.folder.id')
as_demo --json folder create 2026 --parent Projects; ok "folder create Projects/2026"
eq "$(jqo '.folder.parent_id // 0')" "$proj_id" "nested parent"
sub_id=$(jqo '.folder.id')
as_demo --json move "${ids[1]}" Projects/2026; ok "move to Projects/2026"
eq "$(jqo '.item.folder_id')" "$sub_id" "moved item folder"
as_demo --json copy "${ids[2]}" Projects; ok "copy to Projects"
copy_id=$(jqo '.item.id')
[[ "$copy_id" != "${ids[2]}" ]] || fail "copy kept the same id"
as_demo --json list Projects/2026; ok; eq "$(jqo '[(.items // [])[].id | tostring] | join(",")')" "${ids[1]}" "Projects/2026 content"
as_demo --json list Projects; ok; eq "$(jqo '[(.items // [])[].message.subject] | join(",")')" "basic-3" "Projects content"
as_demo --json list Inbox; ok; eq "$(jqo '[(.items // [])[].message.subject] | join(",")')" "basic-3,basic-1" "Inbox after move/copy"

step "delete → Deleted Items; delete --hard"
as_demo delete "$copy_id"; ok "delete copy"
as_demo --json list "Deleted Items"; ok "list Deleted Items"
eq "$(jqo '[(.items // [])[].message.subject] | join(",")')" "basic-3" "Deleted Items content"
del_id=$(jqo '.items[0].id')
as_demo delete "$del_id" --hard; ok "delete --hard"
as_demo --json list "Deleted Items"; ok; eq "$(jqo '.total // 0')" "0" "Deleted Items emptied"
as_demo get "$del_id"; refused 1 ENOTFOUND "get hard-deleted"

step "folder rename / move / delete (nested)"
as_demo --json folder rename Projects/2026 Y2026; ok "rename"
eq "$(jqo '.folder.name')" "Y2026" "renamed"
as_demo --json folder create Archive2; ok "create Archive2"
arch2=$(jqo '.folder.id')
as_demo --json folder move Projects/Y2026 --parent Archive2; ok "folder move"
eq "$(jqo '.folder.parent_id // 0')" "$arch2" "moved parent"
as_demo --json list Archive2/Y2026; ok "list moved folder"
eq "$(jqo '[(.items // [])[].id | tostring] | join(",")')" "${ids[1]}" "item followed its folder"
as_demo --json folder move Archive2/Y2026 --top; ok "folder move --top"
eq "$(jqo '.folder.parent_id // 0')" "0" "top level"
as_demo folder create Leaf --parent Y2026; ok "create Y2026/Leaf"
as_demo folder delete Archive2; ok "delete Archive2"
as_demo folder delete Y2026; ok "delete Y2026 with a subfolder"
as_demo --json folders; ok
eq "$(jqo '[.folders[] | select(.name=="Y2026" or .name=="Leaf" or .name=="Archive2")] | length')" "0" "deleted folders gone"
as_demo get "${ids[1]}"; [[ $RC -ne 0 ]] || {
  # deleting a folder may move its items to Deleted Items; either way not in Y2026
  as_demo --json get "${ids[1]}"; ok
  [[ "$(jqo '.item.folder_id')" != "$sub_id" ]] || fail "item still in a deleted folder"
}

step "folder empty"
as_demo --json folder create Scratch; ok "create Scratch"
as_demo copy "${ids[0]}" Scratch; ok "copy into Scratch"
as_demo copy "${ids[0]}" Scratch; ok "copy into Scratch again"
as_demo --json list Scratch; ok; eq "$(jqo '.total // 0')" "2" "Scratch before empty"
as_demo folder empty Scratch; ok "folder empty"
as_demo --json list Scratch; ok; eq "$(jqo '.total // 0')" "0" "Scratch after empty"
as_demo --json get "${ids[0]}"; ok "the original survives emptying a folder of its copies"
as_demo folder delete Scratch; ok "delete Scratch"

step "well-known folders cannot be deleted"
as_demo folder delete Inbox; refused 1 EPERM "delete Inbox"
as_demo folder delete "Deleted Items"; refused 1 EPERM "delete Deleted Items"
as_demo --json list Inbox; ok; eq "$(jqo '.total // 0')" "2" "Inbox intact after refused delete"

step "append to Drafts"
make_eml "$IT_WORK/draft.eml" "draft-1"
as_demo --json append Drafts "$IT_WORK/draft.eml" --flags draft; ok "append"
eq "$(jqo '.item.flags // 0')" "8" "draft flag"
as_demo --json list Drafts; ok; eq "$(jqo '[(.items // [])[].message.subject] | join(",")')" "draft-1" "Drafts"

step "event / contact / task / note"
as_demo --json event add --subject "Standup" --start 2026-11-23T09:00:00Z --end 2026-11-23T09:15:00Z; ok "event add"
eq "$(jqo '.item.kind')" "ITEM_EVENT" "event kind"
as_demo --json event list; ok "event list"
eq "$(jqo '[(.items // [])[].event.subject] | join(",")')" "Standup" "event list"
as_demo --json contact add --name "Alice Example" --email alice@example.org; ok "contact add"
as_demo --json contact list; ok
eq "$(jqo '[(.items // [])[].contact.display_name] | join(",")')" "Alice Example" "contact list"
eq "$(jqo '.items[0].contact.emails | join(",")')" "alice@example.org" "contact email"
as_demo --json task add --subject "Write tests"; ok "task add"
as_demo --json task list; ok
eq "$(jqo '[(.items // [])[].task.subject] | join(",")')" "Write tests" "task list"
as_demo --json note add --subject "Idea" --body "ship it"; ok "note add"
as_demo --json note list; ok
eq "$(jqo '[(.items // [])[].note.subject] | join(",")')" "Idea" "note list"
eq "$(jqo '.items[0].note.body')" "ship it" "note body"

step "sync Inbox: full, then incremental"
as_demo --json sync Inbox; ok "full sync"
full_state=$(jqo '.state')
[[ -n "$full_state" && "$full_state" != null ]] || fail "no sync state"
eq "$(jqo '.added | length')" "2" "full sync added"
eq "$(jqo '.more // false')" "false" "full sync more"
as_demo --json list Inbox; ok; in_ids=($(jqo '(.items // [])[].id'))
make_eml "$IT_WORK/s1.eml" "sync-1"; as_transport deliver --to "$DEMO" "$IT_WORK/s1.eml"; ok
make_eml "$IT_WORK/s2.eml" "sync-2"; as_transport deliver --to "$DEMO" "$IT_WORK/s2.eml"; ok
# in_ids: [basic-3, basic-1]; keep basic-1 (ids[0]) for the restart checks below
eq "${in_ids[1]}" "${ids[0]}" "Inbox oldest is basic-1"
as_demo flag "${in_ids[1]}" +flagged; ok
as_demo delete "${in_ids[0]}" --hard; ok
as_demo --json sync Inbox --state "$full_state"; ok "incremental sync"
eq "$(jqo '[(.added // [])[].message.subject] | sort | join(",")')" "sync-1,sync-2" "sync added"
eq "$(jqo '[(.changed // [])[].id | tostring] | join(",")')" "${in_ids[1]}" "sync changed"
eq "$(jqo '(.deleted // []) | map(tostring) | join(",")')" "${in_ids[0]}" "sync deleted"
st2=$(jqo '.state')
as_demo --json sync Inbox --state "$st2"; ok "empty incremental"
eq "$(jqo '(.added|length)+(.changed|length)+(.deleted|length)')" "0" "nothing new"

step "sync-folders incremental"
as_demo --json sync-folders; ok "sync-folders full"
fst=$(jqo '.state')
[[ $(jqo '.added | length') -ge 11 ]] || fail "sync-folders full: fewer than the 11 well-known folders"
as_demo --json folder create SyncA; ok; fa=$(jqo '.folder.id')
as_demo --json folder create SyncB; ok; fb=$(jqo '.folder.id')
as_demo --json sync-folders --state "$fst"; ok; fst=$(jqo '.state')
eq "$(jqo '[(.added // [])[].name] | sort | join(",")')" "SyncA,SyncB" "folders added"
as_demo folder rename SyncA SyncA2; ok
as_demo folder delete SyncB; ok
as_demo --json sync-folders --state "$fst"; ok "sync-folders incremental"
eq "$(jqo '[(.added // [])[].id, (.changed // [])[].id] | map(tostring) | join(",")')" "$fa" "folders changed"
eq "$(jqo '[(.added // [])[], (.changed // [])[]][0].name')" "SyncA2" "renamed folder"
eq "$(jqo '(.deleted // []) | map(tostring) | join(",")')" "$fb" "folders deleted"

step "admin db list / digest / mailbox create / list"
as_op --json admin db list; ok "db list"
eq "$(jqo '[.dbs[].name] | sort | join(",")')" "db1,db2" "db list"
as_op admin db create db3; ok "db create"
as_op --json admin db list; ok; eq "$(jqo '[.dbs[].name] | sort | join(",")')" "db1,db2,db3" "db list after create"
as_op admin db create db3; refused 1 EEXIST "db create twice"
it_run -u MBX_USER MBX_PASSWORD=carol-pw-1 -- --json admin mailbox create carol@example.com --db db2 --name "Carol" --alias c@example.com
ok "mailbox create"
as_op --json admin mailbox list; ok
eq "$(jqo '[.mailboxes[].address] | sort | join(",")')" "carol@example.com,demo@example.com" "mailbox list"
as_op --json admin mailbox list --db db2; ok
eq "$(jqo '[.mailboxes[].address] | join(",")')" "carol@example.com" "mailbox list --db db2"
make_eml "$IT_WORK/c.eml" "to-alias" x@y.z c@example.com
as_transport deliver --to c@example.com "$IT_WORK/c.eml"; ok "deliver to alias"
as_user carol@example.com carol-pw-1 --json list Inbox; ok "carol logs in"
eq "$(jqo '[(.items // [])[].message.subject] | join(",")')" "to-alias" "carol's Inbox"
d1=$(digest db1) || exit 1
d2=$(digest db2) || exit 1
d1b=$(digest db1) || exit 1
eq "$d1b" "$d1" "digest is deterministic"
[[ "$d1" != "$d2" ]] || fail "db1 and db2 have the same digest"

step "folders --json parses, snapshot before restart"
as_demo --json folders; ok; folders_before=$(jqo '[.folders[] | {id,name,parent_id,item_count}] | sort_by(.id)')
as_demo --json list Inbox --limit 1000; ok; inbox_before=$(jqo '[.items[] | {id,flags,cn}]')

step "restart the node (stop/start)"
it_cluster stop node1
node_alive && fail "node still running after stop"
it_cluster start node1
as_demo ping; ok "ping after restart"
eq "$(digest db1)" "$d1" "db1 digest after restart"
eq "$(digest db2)" "$d2" "db2 digest after restart"
as_demo --json folders; ok; eq "$(jqo '[.folders[] | {id,name,parent_id,item_count}] | sort_by(.id)')" "$folders_before" "folders after restart"
as_demo --json list Inbox --limit 1000; ok; eq "$(jqo '[.items[] | {id,flags,cn}]')" "$inbox_before" "Inbox after restart"
as_demo --json get "${ids[0]}" --body; ok
printf '%s' "$OUT" | jq -r '.body' | b64url_decode | cmp -s - "$IT_WORK/m1.eml" || fail "body changed by restart"
as_demo --json sync Inbox --state "$st2"; ok "old sync token after restart"
eq "$(jqo '(.added|length)+(.changed|length)+(.deleted|length)')" "0" "no changes across restart"

step "global options after the command"
as_demo list Inbox --json; ok "list Inbox --json"
eq "$(jqo '.total // 0')" "3" "list Inbox --json parses as JSON"
json_after=$OUT
as_demo --json list Inbox; ok
eq "$json_after" "$OUT" "--json after the command = before it"
as_op admin db list --json; ok "admin db list --json"
eq "$(jqo '[.dbs[].name] | sort | join(",")')" "db1,db2,db3" "admin db list --json"
as_demo folders --server="$MBX_SERVER" --ca "$MBX_CA" --json; ok "folders with --server/--ca after it"
jqo '.folders | length' >/dev/null
as_demo list -- --json; refused 1 ENOTFOUND "a folder named --json after -- is an argument"
[[ "$OUT" != "{"* ]] || fail "list -- --json printed JSON"
as_demo --json note add --subject --json --body x; ok "an option's value that looks like --json"
eq "$(jqo '.item.note.subject')" "--json" "note subject taken as it is"
as_demo list Inbox --jsn; refused_any "unknown option after the command"
[[ $RC -eq 2 ]] || fail "unknown option: want exit 2, got $RC"

step "partial commands list their commands"
it_run -- admin
[[ $RC -eq 2 ]] || fail "mbx admin: want exit 2, got $RC"
[[ -z "$OUT" ]] || fail "mbx admin wrote to stdout"
[[ "$(printf '%s\n' "$ERR" | head -n 1)" == *'"admin" needs a command'* ]] || fail "mbx admin: first line"
for c in "admin db create" "admin db list" "admin copy status" "admin mailbox create"; do
  grep -qF "  mbx $c" <<<"$ERR" || fail "mbx admin does not list $c"
done
it_run -- admin db
[[ $RC -eq 2 ]] || fail "mbx admin db: want exit 2, got $RC"
eq "$(printf '%s\n' "$ERR" | grep -c '^  mbx admin db ')" "5" "mbx admin db lists create, list, move-active, activate, digest"
grep -q 'admin copy' <<<"$ERR" && fail "mbx admin db lists copy commands"
it_run -- admin copy; [[ $RC -eq 2 ]] && grep -qF '  mbx admin copy reseed' <<<"$ERR" || fail "mbx admin copy"
it_run -- admin mailbox; [[ $RC -eq 2 ]] && grep -qF '  mbx admin mailbox list' <<<"$ERR" || fail "mbx admin mailbox"
it_run -- folder; [[ $RC -eq 2 ]] && grep -qF '  mbx folder rename' <<<"$ERR" || fail "mbx folder"
it_run -- admin db bogus
[[ $RC -eq 2 && "$ERR" == *'unknown command "admin db bogus"'* ]] || fail "mbx admin db bogus"
it_run -- admin db --help; ok "mbx admin db --help"
[[ -z "$ERR" ]] || fail "mbx admin db --help wrote to stderr"
grep -qF '  admin db digest DB' <<<"$OUT" || fail "mbx admin db --help does not list digest"
it_run -- admin --help; ok "mbx admin --help"
grep -qF '  admin copy add DB' <<<"$OUT" || fail "mbx admin --help does not list copy add"
it_run -- bogus; refused_any "an unknown command stays one line"

step "list --limit pages past the server's 1,000-item page"
N=1005
it_run -u MBX_USER MBX_PASSWORD=bulk-pw-1 -- admin mailbox create bulk@example.com --db db3
ok "mailbox create bulk"
[[ -x "$ITC_DIR/itc_load" ]] || fail "driver not built: $ITC_DIR/itc_load"
t0=$(date +%s%N)
env MBX_CERT="$TR_CERT" MBX_KEY="$TR_KEY" timeout 120 "$ITC_DIR/itc_load" --to bulk@example.com \
  --conns 4 --count "$N" --seconds 90 >"$IT_WORK/acked" 2>"$IT_WORK/load.err" ||
  fail "itc_load failed: $(cat "$IT_WORK/load.err")"
eq "$(wc -l <"$IT_WORK/acked")" "$N" "deliveries acknowledged"
echo "  $N deliveries in $((($(date +%s%N) - t0) / 1000000)) ms"
as_bulk() { as_user bulk@example.com bulk-pw-1 "$@"; }
as_bulk --json list Inbox --limit 5000; ok "list --limit past the end"
eq "$(jqo '.items | length')" "$N" "a limit past the end lists everything"
eq "$(jqo '[.items[].message.subject] | map(ltrimstr("load-") | tonumber) | unique | length')" "$N" "every delivery listed once"
all=$(jqo '[.items[].id] | join(",")')
as_bulk list Inbox --limit 1003 --json; ok "list --limit 1003"
eq "$(jqo '.items | length')" "1003" "items listed with --limit 1003"
eq "$(jqo '.total')" "$N" "total"
eq "$(jqo '[.items[].id] | join(",")')" "$(tr ',' '\n' <<<"$all" | head -n 1003 | paste -sd,)" "the first 1003 of the full listing, in order"
[[ -z "$ERR" ]] || fail "list --limit 1003: unexpected stderr: $ERR"
as_bulk list Inbox --limit 1003; ok "list --limit 1003 (text)"
eq "$(printf '%s\n' "$OUT" | tail -n 1)" "(1003 of $N)" "text listing count line"
as_bulk --json list Inbox; ok "list without --limit"
eq "$(jqo '.items | length')" "50" "the default page"
[[ "$ERR" == *"50 of $N items listed; --limit N lists more"* ]] || fail "no note that more items exist: $ERR"
as_bulk --json list Inbox --offset 1000; ok "list --offset 1000"
eq "$(jqo '[.items[].id] | join(",")')" "$(tr ',' '\n' <<<"$all" | tail -n 5 | paste -sd,)" "the 5 items after the first 1,000"
[[ -z "$ERR" ]] || fail "a note although nothing more exists: $ERR"
echo "PASS $IT_NAME"
