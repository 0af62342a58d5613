# it_repl_passive_writes.sh — writes sent straight to a passive copy's node never
# fork the copies: an admin mailbox create and a deliver aimed at node2 (passive of
# db1) are refused there with ENOTACTIVE and a redirect, or applied on the active by
# a client that follows it; afterwards every copy holds the same history (equal
# digests), the mailbox exists once, and each copy reports its real role.
. "$(dirname "$0")/lib.sh"
it_init
it_up_repl

step "admin db list on each node shows that copy's own role"
for n in node1 node2 node3; do
  it_run MBX_SERVER="$(node_addr $n)" -- --json admin db list; ok "db list on $n"
  want=passive; [[ $n == node1 ]] && want=active
  eq "$(jqo '.dbs[] | select(.name == "db1") | .role')" "$want" "role of db1 on $n"
done

step "a mailbox create through node2 lands once, on the active"
it_run MBX_SERVER="$(node_addr node2)" MBX_PASSWORD=pw-for-carol-1 -- \
  admin mailbox create carol@example.com --db db1 --name Carol
if [[ $RC -ne 0 ]]; then
  [[ "$ERR" == *ENOTACTIVE* || "$ERR" == *"not active"* || "$ERR" == *passive* ]] ||
    fail "mailbox create via the passive: neither applied on the active nor refused as not active"
  it_run MBX_SERVER="$(node_addr node1)" MBX_PASSWORD=pw-for-carol-1 -- \
    admin mailbox create carol@example.com --db db1 --name Carol
  ok "mailbox create on the active"
fi
it_run MBX_SERVER="$(node_addr node1)" -- --json admin mailbox list; ok "mailbox list"
eq "$(jqo '[.mailboxes[] | select(.address == "carol@example.com")] | length')" 1 "carol exists once"

step "a deliver sent to node2 and node3 lands once each, on the active"
for n in node2 node3; do
  make_eml "$IT_WORK/$n.eml" "via-$n" x@example.org carol@example.com
  it_run -u MBX_USER -u MBX_PASSWORD MBX_SERVER="$(node_addr $n)" MBX_CERT="$TR_CERT" \
    MBX_KEY="$TR_KEY" -- --json deliver --to carol@example.com "$IT_WORK/$n.eml"
  ok "deliver through $n"
  eq "$(jqo '.ack_node')" node1 "the node that acknowledged the deliver through $n"
  [[ "$(jqo '.ack_epoch')" =~ ^[1-9][0-9]*$ ]] || fail "no ack_epoch in $OUT"
done

step "the copies did not fork: same history everywhere"
wait_synced 60 db1 node1 node2 node3
digests_equal db1 node1 node2 node3
show_copies db1
for n in node2 node3; do
  eq "$(copy_field $n status)" Healthy "$n status"
done
it_run -u MBX_CERT -u MBX_KEY MBX_SERVER="$(node_addr node1)" MBX_USER=carol@example.com \
  MBX_PASSWORD=pw-for-carol-1 -- --json list Inbox
ok "carol lists her Inbox"
eq "$(jqo '[.items[].message.subject] | sort | join(",")')" "via-node2,via-node3" "each deliver once"
echo "PASS $IT_NAME"
