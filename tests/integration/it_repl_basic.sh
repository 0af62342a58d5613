# it_repl_basic.sh — three nodes, db1 with a copy on each (active on node1): copy
# status shows the layout; after a write load from several connections every copy
# has received and replayed the active's last lsn and the three digests are equal;
# a passive node serves no clients itself but the CLI follows its redirect.
. "$(dirname "$0")/lib.sh"
it_init
it_up_repl

step "copy status: node1 active and Mounted, node2/node3 passive"
copy_status db1
eq "$(jqo '[.copies[] | select(.db == "db1")] | length')" 3 "copies of db1"
eq "$(copy_field node1 role)" active "node1 role"
eq "$(copy_field node1 status)" Mounted "node1 status"
for n in node2 node3; do
  eq "$(copy_field $n role)" passive "$n role"
  case "$(copy_field $n status)" in
    Healthy | Initializing) ;;
    *) fail "$n status $(copy_field $n status) (want Healthy or Initializing): $OUT" ;;
  esac
done

step "write load: 8 connections for 6 s"
load_start 6 basic 1
load_wait basic

step "every copy catches up (bounded), digests equal"
wait_synced 60 db1 node1 node2 node3
show_copies db1
for n in node2 node3; do
  eq "$(copy_field $n status)" Healthy "$n status after catching up"
  cq=$(copy_field $n copy_queue_records)
  [[ -z "$cq" || "$cq" == 0 ]] || fail "$n copy queue $cq records after catching up"
done
digests_equal db1 node1 node2 node3

step "a passive serves no clients: the CLI follows ENOTACTIVE's redirect"
make_eml "$IT_WORK/via2.eml" "via-node2"
it_run -u MBX_USER -u MBX_PASSWORD MBX_SERVER="$(node_addr node2)" MBX_CERT="$TR_CERT" MBX_KEY="$TR_KEY" \
  -- --json deliver --to "$DEMO" "$IT_WORK/via2.eml"
ok "deliver through node2 (redirected to node1)"
it_run -u MBX_CERT -u MBX_KEY MBX_SERVER="$(node_addr node3)" MBX_USER="$DEMO" MBX_PASSWORD="$DEMO_PW" \
  -- --json list Inbox --limit 1
ok "list through node3 (redirected to node1)"
wait_synced 20 db1 node1 node2 node3
digests_equal db1 node1 node2 node3
echo "PASS $IT_NAME"
