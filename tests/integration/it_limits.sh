# it_limits.sh — limits and bad references: the prohibit-receive quota, the maximum
# message size (configured small, then the node restarted), unknown folder and item
# ids, invalid sync tokens. Each must be a clear error with nothing stored.
. "$(dirname "$0")/lib.sh"
it_init
it_up

step "quota: a mailbox with --quota-prohibit 20K"
it_run -u MBX_USER MBX_PASSWORD=q-secret-1 -- admin mailbox create q@example.com --db db1 --quota-prohibit 20K
ok "create q with quota"
Q=(q@example.com q-secret-1)
delivered=0; refused_at=0
for n in $(seq 1 40); do   # 40 × ~2 KiB is four times the quota: bounded
  make_eml "$IT_WORK/q$n.eml" "quota-$n" x@example.org q@example.com 2000
  as_transport deliver --to q@example.com "$IT_WORK/q$n.eml"
  if [[ $RC -eq 0 ]]; then
    delivered=$n
  else
    refused 1 EQUOTA "delivery $n over quota"
    refused_at=$n; break
  fi
done
((refused_at > 0)) || fail "40 deliveries of 2 KiB into a 20K quota were all accepted"
((delivered >= 5)) || fail "quota refused too early: only $delivered of ~10 fit"
echo "quota: $delivered delivered, #$refused_at refused"
dq=$(digest db1) || exit 1
as_transport deliver --to q@example.com "$IT_WORK/q$refused_at.eml"; refused 1 EQUOTA "second try over quota"
as_user "${Q[@]}" append Drafts "$IT_WORK/q$refused_at.eml"; refused 1 EQUOTA "append over quota"
as_user "${Q[@]}" --json list Inbox --limit 1000; ok "list quota Inbox"
eq "$(jqo '.total // 0')" "$delivered" "items kept after quota refusal"
eq "$(jqo '[.items[].message.subject] | sort_by(ltrimstr("quota-") | tonumber) | join(",")')" \
   "$(seq -f 'quota-%g' 1 "$delivered" | paste -sd,)" "the accepted messages are the first ones"
as_user "${Q[@]}" --json get "$(jqo '.items[-1].id')" --body; ok
printf '%s' "$OUT" | jq -r .body | b64url_decode | cmp -s - "$IT_WORK/q1.eml" || fail "quota-1 body damaged"
eq "$(digest db1)" "$dq" "digest unchanged by refused deliveries"
as_demo ping; ok "other mailboxes unaffected"
make_eml "$IT_WORK/d.eml" "demo-still-works"
as_transport deliver --to "$DEMO" "$IT_WORK/d.eml"; ok "delivery to demo still works"

step "unknown folder / item ids"
as_demo list NoSuchFolder; refused 1 ENOTFOUND "list unknown folder path"
as_demo list 987654321; refused 1 ENOTFOUND "list unknown folder id"
as_demo get 987654321; refused 1 ENOTFOUND "get unknown item"
as_demo flag 987654321 +seen; refused 1 ENOTFOUND "flag unknown item"
as_demo delete 987654321; refused 1 ENOTFOUND "delete unknown item"
as_demo --json list Inbox; ok; some_item=$(jqo '.items[0].id')
as_demo move "$some_item" 987654321; refused 1 ENOTFOUND "move to unknown folder"
as_demo copy "$some_item" NoSuchFolder; refused 1 ENOTFOUND "copy to unknown folder"
as_demo folder create X --parent 987654321; refused 1 ENOTFOUND "create under unknown parent"
as_demo folder rename 987654321 Y; refused 1 ENOTFOUND "rename unknown folder"
as_demo folder delete NoSuchFolder; refused 1 ENOTFOUND "delete unknown folder"
as_demo append NoSuchFolder "$IT_WORK/d.eml"; refused 1 ENOTFOUND "append to unknown folder"
as_transport deliver --to nobody@example.com "$IT_WORK/d.eml"; refused 1 ENOTFOUND "deliver to unknown address"
as_demo --json get "$some_item"; ok "the item is still there"; eq "$(jqo '.item.flags // 0')" "0" "flags untouched"

step "invalid sync tokens → ESTATE"
as_demo --json sync Inbox; ok; inbox_state=$(jqo .state)
as_demo --json sync-folders; ok; hier_state=$(jqo .state)
as_demo sync Inbox --state AAAAAAAAAAAAAAAAAAAAAA; refused 1 ESTATE "zero token"
as_demo sync Inbox --state "${inbox_state}AAAA"; refused 1 ESTATE "token with trailing junk"
as_demo sync Drafts --state "$inbox_state"; refused 1 ESTATE "Inbox token used on Drafts"
as_demo sync Inbox --state "$hier_state"; refused 1 ESTATE "hierarchy token used on a folder"
as_demo sync-folders --state "$inbox_state"; refused 1 ESTATE "folder token used for hierarchy"
as_user "${Q[@]}" sync Inbox --state "$inbox_state"; [[ $RC -eq 1 ]] || fail "demo's token accepted for q's Inbox"
as_demo --json sync Inbox --state "$inbox_state"; ok "the genuine token still works"
eq "$(jqo '(.added|length)+(.changed|length)+(.deleted|length)')" "0" "no changes"

step "max_message_bytes: configure 64K and restart"
conf="$IT_DIR/conf/node1.conf"
[[ -f "$conf" ]] || fail "no $conf"
as_demo --json list Inbox; ok; demo_total=$(jqo '.total // 0')
if grep -Eq '^[[:space:]]*#?[[:space:]]*max_message_bytes' "$conf"; then
  sed -i -E 's/^[[:space:]]*#?[[:space:]]*max_message_bytes.*/max_message_bytes = 64K/' "$conf"
else
  printf '\nmax_message_bytes = 64K\n' >>"$conf"
fi
it_cluster stop node1
it_cluster start node1
d1=$(digest db1) || exit 1
make_eml "$IT_WORK/big.eml" "too-big" x@example.org "$DEMO" 100000
make_eml "$IT_WORK/fits.eml" "fits" x@example.org "$DEMO" 30000
as_transport deliver --to "$DEMO" "$IT_WORK/big.eml"; refused 1 ETOOBIG "deliver 100K with a 64K limit"
as_demo append Drafts "$IT_WORK/big.eml"; refused 1 ETOOBIG "append 100K with a 64K limit"
# The CLI refuses before sending (it knows the limit from Hello): ask the node itself.
env MBX_USER="$DEMO" MBX_PASSWORD="$DEMO_PW" MBX_CERT="$TR_CERT" MBX_KEY="$TR_KEY" \
  timeout 30 "$ITC_DIR/itc_roles" toobig 100000 >"$IT_WORK/toobig.out" 2>&1
rc=$?; sed 's/^/  wire: /' "$IT_WORK/toobig.out"
[[ $rc -eq 0 ]] || fail "oversized message on the wire: $(grep itc_roles "$IT_WORK/toobig.out" | head -n 3)"
eq "$(digest db1)" "$d1" "nothing stored by the refused message"
as_demo --json list Inbox; ok; eq "$(jqo '.total // 0')" "$demo_total" "Inbox count unchanged"
as_demo --json list Drafts; ok; eq "$(jqo '.total // 0')" "0" "Drafts still empty"
as_transport --json deliver --to "$DEMO" "$IT_WORK/fits.eml"; ok "30K message still fits"
fid=$(jqo .item.id)
as_demo --json get "$fid" --body; ok
printf '%s' "$OUT" | jq -r .body | b64url_decode | cmp -s - "$IT_WORK/fits.eml" || fail "30K body differs"
node_alive || fail "node died"
echo "PASS $IT_NAME"
