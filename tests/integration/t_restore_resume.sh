#!/bin/bash
# Restores from S3 (a real Ceph RADOS Gateway, rgw.sh) read by pack, and can
# be resumed:
#   - a restore takes few GETs (counted in the gateway's access log): whole
#     pack ranges, not one request per chunk; also through the delaying
#     proxy (wan.sh);
#   - a restore killed midway (kill -9) leaves no target, only
#     TARGET.cairn-partial and its journal; --resume finishes it
#     byte-identical and fetches less than half the data again;
#   - --resume refuses a journal of another disk, and says so when there is
#     nothing to resume; slots it does not fetch are still checked (a
#     partial file changed behind its back fails the whole-disk digest);
#   - the gateway stopped in the middle of a restore: a one-line error, no
#     target; --resume once it is back completes the restore.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rgw.sh"
. "$(dirname "$0")/wan.sh"

why=$(rgw_available) || { echo "SKIP: $why"; exit 0; }
rgw_start
export CAIRN_S3_RETRIES=2 # a stopped gateway fails within seconds
U=$CAIRN_TEST_S3_URL/resume
RGW_LOG=$RGW_DIR/log/client.rgw.log
MIB=1048576

# log_mark / data_gets MARK — "COUNT BYTES" of the GETs of data/ objects
# (packs) since MARK, from the gateway's access log (beast: "GET /bucket/key
# HTTP/1.1" status bytes ...)
log_mark() { sleep 1; wc -l <"$RGW_LOG"; }
data_gets() {
	sleep 1 # the log is written by a thread of its own
	tail -n +$(($1 + 1)) "$RGW_LOG" | python3 -c '
import re, sys
n = b = 0
for line in sys.stdin:
    m = re.search(r"\"GET /[^/ ]+/resume/data/\S+ HTTP/[0-9.]+\" (\d+) (\d+)", line)
    if m:
        n += 1
        b += int(m.group(2))
print(n, b)'
}

# journaled FILE — the slots a journal lists as written and durable (after
# its 48-byte header, a bit per slot); -1 while there is none
journaled() {
	python3 -c '
import sys
try:
    bits = open(sys.argv[1], "rb").read()[48:]
except FileNotFoundError:
    print(-1)
else:
    print(sum(bin(b).count("1") for b in bits))' "$1"
}

# wait_journaled FILE MIN — until the journal FILE lists at least MIN slots
# (0: until it exists); 2 minutes at most. Neither the partial file's
# allocation (a restore claims its space first) nor the gateway's log (its
# lines are written late, and a previous restore's may fall after a mark)
# says what a kill leaves.
wait_journaled() {
	local i
	for i in $(seq 1 240); do
		[ "$(journaled "$1")" -ge "$2" ] && return 0
		sleep 0.5
	done
	die "the restore's journal did not list $2 slots"
}

BIG=48 # MiB of incompressible data
mkimg_raw "$T/big.raw" ${BIG}M dense seed-big
# a thin image: 256 MiB holding 4 MiB of data
truncate -s 256M "$T/thin.raw"
write_at "$T/thin.raw" $((100 * MIB)) seed-thin $((4 * MIB))
cairn_q init "$U"
cairn_q backup "$U" --image "$T/big.raw" --name big
cairn_q backup "$U" --image "$T/thin.raw" --name thin

step "a restore from the gateway takes few GETs (whole pack ranges)"
mark=$(log_mark)
restore_check "$U" latest "$T/big.raw" --name big
read -r gets bytes < <(data_gets "$mark")
echo "  $gets GETs, $bytes bytes for $BIG MiB (one per chunk would be $((BIG * 4)))"
# a whole 16 MiB pack per GET (<= 100 per GiB: 5 here), plus the chunk map
[ "$gets" -ge 1 ] && [ "$gets" -le 6 ] || die "$gets GETs to restore $BIG MiB"
mark=$(log_mark)
restore_check "$U" latest "$T/thin.raw" --name thin
read -r gets bytes < <(data_gets "$mark")
echo "  thin: $gets GETs, $bytes bytes"
[ "$gets" -ge 1 ] && [ "$gets" -le 3 ] || die "$gets GETs to restore a 256 MiB image holding 4 MiB"

step "through a WAN (10 ms each way): byte-identical, as few GETs"
wan_rgw 10
mark=$(log_mark)
t0=$(date +%s.%N)
restore_check "$WAN_S3_URL/resume" latest "$T/big.raw" --name big
read -r gets bytes < <(data_gets "$mark")
echo "  $gets GETs, $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s for $BIG MiB"
[ "$gets" -ge 1 ] && [ "$gets" -le 6 ] || die "$gets GETs to restore $BIG MiB through the WAN"
wan_stop

# slow_restore MIN: starts the slowed restore of big into $out in the
# background (its pid in $pid) and waits until its journal lists MIN slots
slow_restore() {
	"$CAIRN" restore "$U" latest --name big --to "$out" "${slow[@]}" >"$T/bg.out" 2>"$T/bg.err" &
	pid=$!
	BG_PIDS+=("$pid")
	wait_journaled "$out.cairn-journal" "$1"
}

CHUNK=$((256 * 1024)) # the default chunk size
SLOTS=$((BIG * MIB / CHUNK))
step "a restore killed midway resumes, fetching less than half again"
out=$T/out.raw
slow=(--connections 1 --limit-download 2M) # a pack every 8 s
slow_restore $((SLOTS / 2 + 1))
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
assert_file_absent "$out"
[ -f "$out.cairn-partial" ] && [ -f "$out.cairn-journal" ] || die "no partial restore and journal after kill -9"
expect_fail 1 "$CAIRN" restore "$U" latest --name big --to "$out"
assert_msg_matches "cairn-partial exists.*--resume"
mark=$(log_mark)
cairn_q restore "$U" latest --name big --to "$out" --resume
assert_same "$T/big.raw" "$out"
assert_no_partial "$T" out.raw
read -r gets bytes < <(data_gets "$mark")
echo "  resumed: $gets GETs, $bytes bytes of $((BIG * MIB))"
[ "$bytes" -lt $((BIG * MIB / 2)) ] || die "the resumed restore fetched $bytes bytes of $((BIG * MIB))"
rm -f "$out"

step "--resume refuses another disk's journal, and needs one"
slow_restore 0
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
expect_fail 1 "$CAIRN" restore "$U" latest --name thin --to "$out" --resume
assert_msg_matches "belongs to a restore of another snapshot"
[ -f "$out.cairn-journal" ] || die "a refused resume removed the journal"
cairn_q restore "$U" latest --name big --to "$out" --resume
assert_same "$T/big.raw" "$out"
rm -f "$out"
expect_fail 1 "$CAIRN" restore "$U" latest --name big --to "$T/none.raw" --resume
assert_msg_matches "cannot resume"
assert_no_partial "$T" none.raw

step "a partial file changed behind the journal's back fails the final check"
slow_restore 1
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
# a byte of every chunk: one the journal lists is not written again on
# resume, and only the final check can tell (the others are rewritten)
for ((off = 100; off < BIG * MIB; off += CHUNK)); do
	flip_byte "$out.cairn-partial" "$off"
done
expect_fail 3 "$CAIRN" restore "$U" latest --name big --to "$out" --resume
assert_msg_matches "does not match the digest"
assert_file_absent "$out"
assert_no_partial "$T" out.raw

step "the gateway stopped mid-restore: one-line error, no target; --resume completes"
slow_restore 0
rgw_stop_gateway
rc=0
wait "$pid" || rc=$?
echo "  restore with the gateway gone: rc=$rc $(cat "$T/bg.err")"
[ "$rc" -ne 0 ] || die "the restore succeeded with the gateway stopped"
assert_eq "$(wc -l <"$T/bg.err")" 1 "lines of the error message"
grep -q "run again with --resume" "$T/bg.err" || die "the error does not say how to resume"
assert_file_absent "$out"
rgw_start_gateway
cairn_q restore "$U" latest --name big --to "$out" --resume
assert_same "$T/big.raw" "$out"
assert_no_partial "$T" out.raw

pass
