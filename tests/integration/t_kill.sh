#!/bin/bash
# Backups killed with SIGKILL at random points leave a repository that checks
# clean; the next backup works and restores byte-identically; stale locks of
# dead processes do not block; a live lock does (exit 5); SIGTERM → 130.
. "$(dirname "$0")/lib.sh"

R=$T/repo
cairn_q init "$R"
IMG=$T/vm.raw
SIZE=$((300 * 1048576))
step "make a 300 MiB image"
mkimg_raw "$IMG" $SIZE dense seed-kill
t0=$(date +%s%N)
cairn_q backup "$R" --image "$T/vm.raw" --name vm     # a first good snapshot
full_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "  a full 300 MiB backup takes $full_ms ms"
cp --sparse=always "$IMG" "$T/vm-v0.raw"
good0=$(snap_id "$R" vm)

RANDOM=4242   # reproducible sleeps
killed=0 finished=0 saw_lock=0
for i in 1 2 3 4 5; do
	# all-new data each round so every backup writes ~300 MiB of packs
	mkimg_raw "$IMG" $SIZE dense "round-$i"
	# a random point in the run: 50 ms .. 1.5 s, within the measured duration
	max=$(( full_ms < 1500 ? full_ms : 1500 )); [ "$max" -gt 100 ] || max=100
	ms=$((50 + RANDOM % (max - 50)))
	step "round $i: backup killed with SIGKILL after ${ms} ms"
	"$CAIRN" backup "$R" --image "$IMG" --name vm >"$T/bg.out" 2>"$T/bg.err" &
	pid=$!
	BG_PIDS+=("$pid")
	sleep "$(awk -v m="$ms" 'BEGIN{printf "%.3f", m/1000}')"
	if kill -0 "$pid" 2>/dev/null; then
		locks=$(find "$R/locks" -type f ! -name '.*' | wc -l)
		[ "$locks" -ge 1 ] && saw_lock=$((saw_lock + 1))
		kill -9 "$pid"
		wait "$pid" || true
		killed=$((killed + 1))
		echo "  killed (locks present: $locks, temp files: $(find "$R" -name '.*' -type f | wc -l))"
	else
		wait "$pid" || die "backup round $i failed on its own: $(cat "$T/bg.err")"
		finished=$((finished + 1))
		echo "  finished before the kill"
	fi
	step "round $i: check --read-data after the kill"
	cairn check "$R" --read-data
	sid=$(snap_id "$R" vm)
	assert_eq "${#sid}" 64 "length of the latest snapshot id after the kill"
	restore_check "$R" "$good0" "$T/vm-v0.raw"
done
echo "  $killed killed, $finished finished; lock seen in $saw_lock rounds"
[ "$killed" -ge 2 ] || die "only $killed of 5 backups were actually killed (test too weak; make the image bigger)"
[ "$saw_lock" -ge 1 ] || die "a running backup never had a lock file in locks/"

step "the next backup works despite stale locks and temp files"
cairn_q backup "$R" --image "$IMG" --name vm --json
snap=$(json 'j["snapshot"]' <"$T/last.out")
# chunks of killed runs that made it into index files are reused
echo "  new chunks after the killed runs: $(json 'j["new_chunks"]' <"$T/last.out") of $(json 'j["chunks"]' <"$T/last.out")"
restore_check "$R" "$snap" "$IMG"
cairn check "$R" --read-data
left=$(find "$R/locks" -type f ! -name '.*' | wc -l)
echo "  lock files left after a clean backup: $left"

step "a stale exclusive lock of a dead pid on this host is removed"
( sleep 0 ) & dead=$!; wait $dead        # a pid that no longer runs
lockid=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
host=$(hostname)
printf '{"host": "%s", "pid": %d, "time": "2020-01-01T00:00:00Z", "exclusive": true}' "$host" "$dead" >"$R/locks/$lockid"
cairn_q backup "$R" --image "$T/vm-v0.raw" --name vm0
assert_file_absent "$R/locks/$lockid"
cairn_q check "$R"

step "a live exclusive lock blocks a backup (exit 5)"
sleep 300 & live=$!
BG_PIDS+=("$live")
printf '{"host": "%s", "pid": %d, "time": "2020-01-01T00:00:00Z", "exclusive": true}' "$host" "$live" >"$R/locks/$lockid"
n=$(snap_count "$R")
expect_fail 5 "$CAIRN" backup "$R" --image "$T/vm-v0.raw" --name vm0
assert_eq "$(snap_count "$R")" "$n" "snapshots after a locked-out backup"
[ -f "$R/locks/$lockid" ] || die "the live lock was removed"
step "a live shared lock blocks repair index (exclusive), not a backup"
printf '{"host": "%s", "pid": %d, "time": "2020-01-01T00:00:00Z", "exclusive": false}' "$host" "$live" >"$R/locks/$lockid"
expect_fail 5 "$CAIRN" repair index "$R"
cairn_q backup "$R" --image "$T/vm-v0.raw" --name vm0
kill "$live"; wait "$live" 2>/dev/null || true
step "once the holder is gone, repair index runs"
cairn_q repair index "$R"
assert_file_absent "$R/locks/$lockid"
cairn_q check "$R" --read-data

step "SIGTERM during a backup: exit 130, repository clean"
write_at "$IMG" 0 "round-term" $((150 * 1048576))
"$CAIRN" backup "$R" --image "$IMG" --name vm >"$T/bg.out" 2>"$T/bg.err" &
pid=$!
BG_PIDS+=("$pid")
sleep 0.3
rc=0
if kill -TERM "$pid" 2>/dev/null; then wait "$pid" || rc=$?; else wait "$pid" || rc=$?; fi
echo "  backup after SIGTERM: rc=$rc $(cat "$T/bg.err")"
case $rc in
130) assert_eq "$(find "$R/locks" -type f ! -name '.*' | wc -l)" 0 "lock files after SIGTERM (clean stop removes its lock)" ;;
0) echo "  (finished before the signal)" ;;
*) die "backup killed by SIGTERM exited $rc (expected 130)" ;;
esac
cairn check "$R" --read-data
restore_check "$R" "$good0" "$T/vm-v0.raw"

step "SIGTERM / SIGKILL during a restore: the target never appears half-written"
for sig in TERM KILL; do
	rm -f "$T/r-$sig.raw"
	"$CAIRN" restore "$R" "$good0" --to "$T/r-$sig.raw" >"$T/bg.out" 2>"$T/bg.err" &
	pid=$!
	BG_PIDS+=("$pid")
	sleep 0.2
	rc=0
	kill -"$sig" "$pid" 2>/dev/null || true
	wait "$pid" || rc=$?
	echo "  restore after SIG$sig: rc=$rc $(cat "$T/bg.err")"
	if [ $rc -eq 0 ]; then
		assert_same "$T/vm-v0.raw" "$T/r-$sig.raw"     # finished before the signal
	else
		[ "$sig" = KILL ] || assert_eq "$rc" 130 "exit code of a restore stopped by SIGTERM"
		assert_file_absent "$T/r-$sig.raw"
		[ "$sig" = KILL ] || assert_no_partial "$T" "r-$sig.raw"
	fi
done

step "lock ids follow the format (32 random bytes, 64 hex)"
"$CAIRN" backup "$R" --image "$IMG" --name vm >/dev/null 2>&1 &
pid=$!
BG_PIDS+=("$pid")
for _ in $(seq 1 100); do
	l=$(find "$R/locks" -type f ! -name '.*' | head -n1)
	[ -n "$l" ] && break
	sleep 0.01
done
wait "$pid"
[ -n "$l" ] || die "no lock file seen during a backup"
echo "  lock file name: $(basename "$l")"
soft eval '[[ $(basename "$l") =~ ^[0-9a-f]{64}$ ]] || die "lock id $(basename "$l") is not 64 hex (design.md §1: random 32-byte values)"'
restore_check "$R" latest "$IMG" --name vm
pass
