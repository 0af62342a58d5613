# it_cache_ifcn.sh — cached mode's if_cn preconditions on a real node: changes pushed
# with the cn they were based on meet ECONFLICT when the server changed the item in
# between; the sync then re-syncs the item, applies the documented rule (flags
# merged; the server's move kept; a delete here undone by the server's change) and
# pushes what is left. Driven by itl_cache (see there for how the race is staged).
. "$(dirname "$0")/lib.sh"
it_init
DRV="$ITC_DIR/itl_cache"
[[ -x "$DRV" ]] || fail "driver not built: $DRV"
it_up

step "stale if_cn: re-sync, rule, push again"
env -u MBX_CERT -u MBX_KEY MBX_USER="$DEMO" MBX_PASSWORD="$DEMO_PW" \
  MBX_CACHE_DIR="$IT_WORK/cache" timeout 120 "$DRV" ifcn >"$IT_WORK/drv.out" 2>"$IT_WORK/drv.err"
RC=$?
cat "$IT_WORK/drv.out"
[[ $RC -eq 0 ]] || fail "itl_cache ifcn exited $RC: $(cat "$IT_WORK/drv.err")"
echo "PASS it_cache_ifcn"
