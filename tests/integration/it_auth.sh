# it_auth.sh — authentication and isolation: bad logins, missing credentials, one
# user touching another mailbox's ids, user/transport roles trying admin commands.
# Every refusal must be a clear error, and the data must be unchanged afterwards.
. "$(dirname "$0")/lib.sh"
it_init
it_up

step "setup: demo has mail and a folder; bob exists with his own mail"
make_eml "$IT_WORK/a.eml" "for-demo"
as_transport --json deliver --to "$DEMO" "$IT_WORK/a.eml"; ok "deliver to demo"
demo_item=$(jqo '.item.id')
as_demo --json folder create Private; ok "demo folder create"
demo_folder=$(jqo '.folder.id')
inbox_id=$(folder_json "$DEMO" "$DEMO_PW" Inbox | jq -r .id)
it_run -u MBX_USER MBX_PASSWORD=bob-secret-1 -- admin mailbox create bob@example.com --db db1 --name Bob
ok "create bob"
make_eml "$IT_WORK/b.eml" "for-bob" x@example.org bob@example.com
as_transport --json deliver --to bob@example.com "$IT_WORK/b.eml"; ok "deliver to bob"
bob_item=$(jqo '.item.id')
BOB=(bob@example.com bob-secret-1)
as_demo --json list Inbox; ok; demo_list=$(jqo '[.items[] | {id,flags,cn,folder_id}]')
d0=$(digest db1) || exit 1

step "wrong password / unknown user"
as_user "$DEMO" "not-the-password" folders; refused 1 EAUTH "wrong password"
msg_wrong=${ERR//$DEMO/ADDR}
as_user nobody@example.com "not-the-password" folders; refused 1 EAUTH "unknown user"
msg_unknown=${ERR//nobody@example.com/ADDR}
eq "$msg_unknown" "$msg_wrong" "unknown user and wrong password look the same"
as_user "$DEMO" "" folders; [[ $RC -ne 0 ]] || fail "empty password accepted"

step "user commands without login / without password"
it_run -u MBX_USER -u MBX_PASSWORD -u MBX_CERT -u MBX_KEY -u MBX_OPERATOR_PASSWORD -- folders
refused_any "folders without any credentials"
it_run -u MBX_PASSWORD -u MBX_CERT -u MBX_KEY -u MBX_OPERATOR_PASSWORD MBX_USER="$DEMO" -- folders
refused_any "folders without a password"

step "bob cannot see or touch demo's items and folders"
as_user "${BOB[@]}" get "$demo_item"; refused 1 ENOTFOUND "bob get demo item"
msg_foreign=$ERR
as_user "${BOB[@]}" get 999999999; refused 1 ENOTFOUND "bob get nonexistent item"
eq "${ERR//999999999/ID}" "${msg_foreign//$demo_item/ID}" "another user's item looks like a missing one"
as_user "${BOB[@]}" get "$demo_item" --body; refused 1 ENOTFOUND "bob get --body"
as_user "${BOB[@]}" flag "$demo_item" +seen; refused 1 ENOTFOUND "bob flag"
as_user "${BOB[@]}" move "$demo_item" Inbox; refused 1 ENOTFOUND "bob move demo item"
as_user "${BOB[@]}" copy "$demo_item" Inbox; refused 1 ENOTFOUND "bob copy demo item"
as_user "${BOB[@]}" delete "$demo_item"; refused 1 ENOTFOUND "bob delete"
as_user "${BOB[@]}" delete "$demo_item" --hard; refused 1 ENOTFOUND "bob delete --hard"
as_user "${BOB[@]}" list "$inbox_id"; refused 1 ENOTFOUND "bob list demo Inbox id"
as_user "${BOB[@]}" list "$demo_folder"; refused 1 ENOTFOUND "bob list demo folder id"
as_user "${BOB[@]}" sync "$inbox_id"; refused 1 ENOTFOUND "bob sync demo Inbox id"
as_user "${BOB[@]}" folder rename "$demo_folder" Stolen; refused 1 ENOTFOUND "bob rename demo folder"
as_user "${BOB[@]}" folder delete "$demo_folder"; refused 1 ENOTFOUND "bob delete demo folder"
as_user "${BOB[@]}" folder empty "$inbox_id"; refused 1 ENOTFOUND "bob empty demo Inbox"
as_user "${BOB[@]}" folder create Sub --parent "$demo_folder"; refused 1 ENOTFOUND "bob create in demo folder"
as_user "${BOB[@]}" move "$bob_item" "$inbox_id"; refused 1 ENOTFOUND "bob move into demo Inbox"
as_user "${BOB[@]}" append "$demo_folder" "$IT_WORK/b.eml"; refused 1 ENOTFOUND "bob append into demo folder"
# The CLI resolves folder ids itself; send the same ids to the node on the wire.
env MBX_USER="${BOB[0]}" MBX_PASSWORD="${BOB[1]}" timeout 30 "$ITC_DIR/itc_roles" foreign \
  "$demo_item" "$demo_folder" >"$IT_WORK/foreign.out" 2>&1
rc=$?; sed 's/^/  wire: /' "$IT_WORK/foreign.out"
[[ $rc -eq 0 ]] || fail "bob on the wire: $(grep itc_roles "$IT_WORK/foreign.out" | head -n 3)"
env MBX_USER="${BOB[0]}" MBX_PASSWORD="${BOB[1]}" timeout 30 "$ITC_DIR/itc_roles" foreign \
  "$demo_item" "$inbox_id" >"$IT_WORK/foreign.out" 2>&1
rc=$?
[[ $rc -eq 0 ]] || fail "bob on the wire (demo Inbox): $(grep itc_roles "$IT_WORK/foreign.out" | head -n 3)"
as_user "${BOB[@]}" --json list Inbox; ok "bob lists his own Inbox"
eq "$(jqo '[(.items // [])[].message.subject] | join(",")')" "for-bob" "bob sees only his mail"
as_user "${BOB[@]}" --json folders; ok
[[ "$(jqo "[.folders[] | select(.name==\"Private\")] | length")" == 0 ]] || fail "bob sees demo's folder"
as_user "${BOB[@]}" --json sync Inbox; ok
[[ "$(jqo "[(.added // [])[].id | tostring] | index(\"$demo_item\")")" == null ]] || fail "bob's sync shows demo's item"

step "user and transport credentials cannot run admin commands"
ROLES="$ITC_DIR/itc_roles"
[[ -x "$ROLES" ]] || fail "driver not built: $ROLES"
# The CLI asks for operator credentials before sending anything…
as_demo admin db list; refused_any "user admin db list (CLI)"
as_demo admin db create dbx; refused_any "user admin db create (CLI)"
it_run -u MBX_CERT -u MBX_KEY MBX_USER="$DEMO" MBX_OPERATOR_PASSWORD="$DEMO_PW" -- admin mailbox list
refused_any "user password as operator password"
as_transport admin db list; refused_any "transport admin db list (CLI)"
it_run -u MBX_USER MBX_CERT="$TR_CERT" MBX_KEY="$TR_KEY" MBX_PASSWORD=x -- admin mailbox create eve@example.com --db db1
refused_any "transport admin mailbox create (CLI)"
as_transport folders; [[ $RC -ne 0 ]] || fail "transport cert could list folders without a user login"
# … so the node's own checks are exercised below the CLI, on the wire.
for mode in user transport none; do
  env MBX_USER="$DEMO" MBX_PASSWORD="$DEMO_PW" MBX_CERT="$TR_CERT" MBX_KEY="$TR_KEY" \
    timeout 30 "$ROLES" "$mode" >"$IT_WORK/roles.out" 2>&1
  rc=$?
  sed "s/^/  $mode: /" "$IT_WORK/roles.out"
  [[ $rc -eq 0 ]] || fail "role checks on the wire ($mode): $(grep itc_roles "$IT_WORK/roles.out" | head -n 3)"
done

step "no cert and no operator password → refused"
it_run -u MBX_USER -u MBX_PASSWORD -u MBX_CERT -u MBX_KEY -u MBX_OPERATOR_PASSWORD -- admin db list
refused_any "admin without credentials"
it_run -u MBX_USER -u MBX_CERT -u MBX_KEY -u MBX_OPERATOR_PASSWORD MBX_PASSWORD=x -- admin mailbox create eve@example.com --db db1
refused_any "admin mailbox create without credentials"

step "a certificate from another CA is refused"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/O=mbx/OU=operator/CN=rogue" \
  -keyout "$IT_WORK/rogue.key" -out "$IT_WORK/rogue.pem" >/dev/null 2>&1 || fail "openssl req"
it_run -u MBX_USER -u MBX_PASSWORD MBX_CERT="$IT_WORK/rogue.pem" MBX_KEY="$IT_WORK/rogue.key" -- admin db list
[[ $RC -ne 0 ]] || fail "a certificate not signed by the cluster CA ran admin db list"

step "the transport credential still delivers; data intact"
eq "$(digest db1)" "$d0" "db1 digest unchanged by refused commands"
make_eml "$IT_WORK/c.eml" "after-attacks"
as_transport deliver --to bob@example.com "$IT_WORK/c.eml"; ok "transport deliver"
as_demo --json list Inbox; ok
eq "$(jqo '[.items[] | {id,flags,cn,folder_id}]')" "$demo_list" "demo Inbox unchanged"
as_demo --json get "$demo_item"; ok; eq "$(jqo '.item.flags // 0')" "0" "demo item flags unchanged"
as_demo --json folders; ok
eq "$(jqo '[.folders[] | select(.name=="Private")] | length')" "1" "demo folder still there"
as_op --json admin mailbox list; ok
eq "$(jqo '[.mailboxes[].address] | sort | join(",")')" "bob@example.com,demo@example.com" "no mailbox created by refused commands"
as_op --json admin db list; ok
eq "$(jqo '[.dbs[].name] | join(",")')" "db1" "no db created by refused commands"
step "two creations of one address on two databases: exactly one wins"
as_op admin db create race1; ok
as_op admin db create race2; ok
timeout 30 "$ROLES" race racer@example.com race1 race2 >"$IT_WORK/race.out" 2>&1
rc=$?
sed "s/^/  /" "$IT_WORK/race.out"
[[ $rc -eq 0 ]] || fail "concurrent creations of one address: $(cat "$IT_WORK/race.out")"
as_op --json admin mailbox list; ok
[[ "$(jqo '[.mailboxes[] | select(.address=="racer@example.com")] | length')" == 1 ]] ||
  fail "racer@example.com exists more than once"
node_alive || fail "node died"
echo "PASS $IT_NAME"
