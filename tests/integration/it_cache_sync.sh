# it_cache_sync.sh — cached mode against a real node: two cached profiles of one
# mailbox and the server itself, changed offline (node stopped) and online, converge
# to the same content; then every conflict rule of docs/cached-mode.md, each ending
# as documented with nothing lost; local ids keep working after the push; `status`.
. "$(dirname "$0")/lib.sh"
it_init
it_up
. "$(dirname "$0")/cache_lib.sh"

step "a profile works before any sync (placeholders for the well-known folders)"
as_cached a folders; ok "folders before the first sync"
[[ "$OUT" == *Inbox* && "$OUT" == *"Deleted Items"* ]] || fail "no well-known folders: $OUT"
make_eml "$IT_WORK/early.eml" "early-draft"
as_cached a --json append Drafts "$IT_WORK/early.eml"; ok "append before the first sync"
early_local=$(jqo '.item.id')
((early_local >= 9000000000000000)) || fail "a local id is ≥ 9e15, got $early_local"

step "deliver 4 messages; first sync of two profiles"
m1=$(deliver_msg sync-m1); m2=$(deliver_msg sync-m2); m3=$(deliver_msg sync-m3)
m4=$(deliver_msg sync-m4)
[[ "$m4" =~ ^[0-9]+$ ]] || fail "deliveries gave no ids"
sync_now a
sync_now b
same_content a b
as_cached a --json get "$early_local"; ok "the local id still works after the push"
early_srv=$(jqo '.item.id')
((early_srv < 9000000000000000)) || fail "the pushed draft kept a local id: $early_srv"
eq "$(jqo '.item.message.subject')" "early-draft" "draft by its local id"

step "offline: the node is stopped, both profiles change things"
it_cluster stop node1
as_cached a flag "$m1" +seen; ok "a: flag m1"
as_cached a folder create Offline; ok "a: folder create Offline"
as_cached a move "$m2" Offline; ok "a: move m2 to Offline (a local folder)"
make_eml "$IT_WORK/draft-a.eml" "draft-a"
as_cached a append Drafts "$IT_WORK/draft-a.eml"; ok "a: append"
as_cached a note add --subject note-a; ok "a: note add"
as_cached a task add --subject task-a; ok "a: task add"
as_cached b flag "$m3" +flagged --categories blue; ok "b: flag m3"
make_eml "$IT_WORK/draft-b.eml" "draft-b"
as_cached b append Drafts "$IT_WORK/draft-b.eml"; ok "b: append"
as_cached b contact add --name contact-b; ok "b: contact add"
as_cached b delete "$m4"; ok "b: delete m4 (to Deleted Items)"
as_cached b event add --subject event-b --start 2026-12-01T09:00 --end 2026-12-01T10:00; ok
eq "$(status_field a queued)" "6" "a: changes queued offline"
as_cached a sync-now
[[ $RC -eq 3 ]] || fail "sync-now with the node down: want exit 3, got $RC ($ERR)"
eq "$(status_field a queued)" "6" "a: nothing lost by the failed sync"
it_cluster start node1
sync_now a
sync_now b
sync_now a
same_content a b
eq "$(status_field a queued)" "0" "a: queue pushed"
has_line server "" '^Offline\|ITEM_MESSAGE\|sync-m2\|' || fail "m2 is not in Offline on the server"
has_line server "" '^Deleted Items\|ITEM_MESSAGE\|sync-m4\|' || fail "m4 is not in Deleted Items"
has_line server "" '^Inbox\|ITEM_MESSAGE\|sync-m3\|2\|blue$' || fail "m3 flags/categories"

step "online: changes on the server and in both profiles"
m5=$(deliver_msg sync-m5)
as_demo flag "$m1" +answered; ok "server: flag m1"
as_demo folder create Online; ok "server: folder create Online"
as_cached a folder rename Offline Offline2; ok "a: folder rename"
sync_now b
as_cached b move "$m3" Online; ok "b: move m3 to Online"
as_cached b flag "$m5" +seen; ok "b: flag m5"
sync_now a
sync_now b
sync_now a
same_content a b
has_line server "" '^Online\|ITEM_MESSAGE\|sync-m3\|' || fail "m3 not in Online"
has_line server "" '^Inbox\|ITEM_MESSAGE\|sync-m1\|5\|$' || fail "m1 should be seen+answered"

c0=$(status_field a conflicts)

step "conflict: flags and categories changed on both sides → merged"
c1=$(deliver_msg conflict-flags)
sync_now a
as_cached a flag "$c1" +flagged --categories x,y; ok
as_demo flag "$c1" +seen --categories z; ok
sync_now a
as_demo --json get "$c1"; ok
eq "$(jqo '.item.flags')" "3" "merged flags (seen from the server, flagged from here)"
eq "$(jqo '.item.categories | sort | join(",")')" "x,y,z" "merged categories"

step "conflict: changed here, deleted on the server → the version from here is kept"
c2=$(deliver_msg conflict-gone)
sync_now a
as_cached a get "$c2" --body; ok "fetch the body into the cache"
as_cached a flag "$c2" +flagged; ok
as_demo delete "$c2" --hard; ok
sync_now a
as_demo --json list "Sync Issues/Conflicts" --limit 100; ok "the server has Sync Issues/Conflicts"
copy=$(jqo '[.items[] | select(.message.subject == "conflict-gone")][0].id // empty')
[[ -n "$copy" ]] || fail "no copy of conflict-gone in Sync Issues/Conflicts: $OUT"
eq "$(jqo "[.items[] | select(.id == $copy)][0].flags")" "2" "the copy keeps the flag set here"
# (grep reads a here-string: with pipefail, grep -q exiting early could SIGPIPE jq)
grep -q '^Sync conflict: conflict-gone' <<<"$(jqo '[.items[].message.subject] | join("\n")')" ||
  fail "no note describing the conflict"
as_demo --json get "$copy" --body; ok
printf '%s' "$OUT" | jq -r '.body' | b64url_decode >"$IT_WORK/copy.eml"
cmp -s "$IT_WORK/copy.eml" "$IT_WORK/conflict-gone.eml" || fail "the copy's body differs from the original"

step "conflict: deleted here, changed on the server → restored with the server's change"
c3=$(deliver_msg conflict-restore)
sync_now a
as_cached a delete "$c3"; ok
as_demo flag "$c3" +flagged; ok
sync_now a
has_line server "" '^Inbox\|ITEM_MESSAGE\|conflict-restore\|2\|' || fail "server: not in Inbox, flagged"
has_line cached a '^Inbox\|ITEM_MESSAGE\|conflict-restore\|2\|' || fail "a: not restored to Inbox"

step "conflict: moved on both sides → the server's folder"
c4=$(deliver_msg conflict-move)
as_demo folder create MoveS; ok
as_cached a folder create MoveA; ok
sync_now a
as_cached a move "$c4" MoveA; ok
as_demo move "$c4" MoveS; ok
sync_now a
has_line server "" '^MoveS\|ITEM_MESSAGE\|conflict-move\|' || fail "server: not in MoveS"
has_line cached a '^MoveS\|ITEM_MESSAGE\|conflict-move\|' || fail "a: not in MoveS"

step "conflict: made here in a folder deleted on the server → Sync Issues/Conflicts"
as_demo folder create Doomed; ok
sync_now a
make_eml "$IT_WORK/doomed.eml" "doomed-msg"
as_cached a append Doomed "$IT_WORK/doomed.eml"; ok
as_demo folder delete Doomed; ok
sync_now a
has_line server "" '^Sync Issues/Conflicts\|ITEM_MESSAGE\|doomed-msg\|' || fail "doomed-msg lost"
has_line cached a '^Doomed$' && fail "a still shows Doomed"

step "conflict: folder renamed on both sides → the server's name"
as_demo folder create Ren; ok
sync_now a
as_cached a folder rename Ren Ren-A; ok
as_demo folder rename Ren Ren-S; ok
sync_now a
has_line cached a '^Ren-S$' || fail "a: not Ren-S"
has_line server "" '^Ren-A$' && fail "server: renamed to Ren-A"

step "conflict: folder deleted here, changed on the server → kept, with everything"
as_demo folder create Keep; ok
c7=$(deliver_msg keep-old)
as_demo move "$c7" Keep; ok
sync_now a
as_cached a folder delete Keep; ok
has_line cached a '^Keep$' && fail "a: Keep still visible after the local delete"
make_eml "$IT_WORK/keep-new.eml" "keep-new"
as_demo append Keep "$IT_WORK/keep-new.eml"; ok
sync_now a
sync_now a
has_line cached a '^Keep\|ITEM_MESSAGE\|keep-old\|' || fail "a: keep-old not back"
has_line cached a '^Keep\|ITEM_MESSAGE\|keep-new\|' || fail "a: keep-new missing"
has_line server "" '^Keep\|ITEM_MESSAGE\|keep-old\|' || fail "server: keep-old lost"

step "a folder deleted here and unchanged on the server goes (our own pushes are not changes)"
as_demo folder create Gone; ok
as_demo folder create Inner --parent Gone; ok
g1=$(deliver_msg gone-msg)
as_demo move "$g1" Gone; ok
sync_now a
as_cached a flag "$g1" +flagged; ok "flag an item of the folder about to go"
sync_now a
as_cached a folder delete Gone; ok
sync_now a
has_line server "" '^Gone$' && fail "server: Gone still there (restored by its own echo?)"
has_line cached a '^Gone' && fail "a: Gone came back"

step "conflict: a subfolder of a folder deleted here changed on the server → all kept"
as_demo folder create Tree; ok
as_demo folder create Leaf --parent Tree; ok
sync_now a
as_cached a folder delete Tree; ok
make_eml "$IT_WORK/leaf.eml" "leaf-new"
as_demo append Tree/Leaf "$IT_WORK/leaf.eml"; ok
sync_now a
sync_now a
has_line server "" '^Tree/Leaf\|ITEM_MESSAGE\|leaf-new\|' || fail "server: leaf-new lost"
has_line cached a '^Tree/Leaf\|ITEM_MESSAGE\|leaf-new\|' || fail "a: Tree/Leaf not restored"

step "conflict: the same folder made on both sides → one folder"
as_demo folder create Both; ok
as_cached a folder create Both; ok
make_eml "$IT_WORK/both.eml" "both-msg"
as_cached a append Both "$IT_WORK/both.eml"; ok
sync_now a
eq "$(canon server | grep -c '^Both$')" "1" "one Both on the server"
has_line server "" '^Both\|ITEM_MESSAGE\|both-msg\|' || fail "both-msg not in Both"

step "everything converges; status tells what happened"
sync_now b
sync_now a
same_content a b
c_end=$(status_field a conflicts)
((c_end - c0 >= 8)) || fail "expected at least 8 recorded conflicts, got $((c_end - c0))"
eq "$(status_field a queued)" "0" "a: nothing left queued"
as_cached a status; ok "status"
printf '%s\n' "$OUT" | head -n 8
echo "PASS it_cache_sync"
