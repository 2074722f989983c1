#!/bin/bash
# The WAN simulation (tests/tools/wanproxy.c, tests/integration/wan.sh) and
# cairn through it:
#   - the proxy on its own: each direction D late, a round trip 2 x D, a bulk
#     stream at full speed and intact, half-close, resets, a missing target,
#     many connections (tests/tools/wanproxy_test.py);
#   - a small request to the Ceph RGW costs at least 100 ms more through a
#     50 ms proxy than straight;
#   - cairn backs up to and restores from RGW (and sshd) through the proxy,
#     byte-identical, several connections at once;
#   - the gateway going away: cairn fails with one clear line within the
#     retries (no hang) and leaves no target that looks complete, killed
#     mid-restore too (the partial restore is kept and finished with
#     --resume); the proxy itself lives on and serves the gateway
#     again once it is back.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rgw.sh"
. "$(dirname "$0")/sshd.sh"
. "$(dirname "$0")/wan.sh"

why=$(rgw_available) || { echo "SKIP: $why"; exit 0; }
export CAIRN_S3_RETRIES=2 # a missing gateway fails within a second or two
D=50

step "the proxy on its own (D = 25 ms)"
python3 "$TOP_DIR/tests/tools/wanproxy_test.py" "$(_wan_binary)" 25

rgw_start
wan_rgw $D
PROXY_PID=$WAN_PID
RGW_LOG=$RGW_DIR/log/client.rgw.log

step "a small RGW request: straight vs through the $D ms proxy"
# request_ms ENDPOINT: the median of 3 bucket listings (new connection each)
request_ms() {
	local t=()
	for _ in 1 2 3; do
		t+=("$(rgw_curl -f -o /dev/null -w '%{time_total}' "$1/$CAIRN_TEST_S3_BUCKET?max-keys=1")")
	done
	printf '%s\n' "${t[@]}" | sort -g | sed -n 2p | awk '{ printf "%.0f", $1 * 1000 }'
}
direct=$(request_ms "$CAIRN_TEST_S3_ENDPOINT")
delayed=$(request_ms "$WAN_S3_ENDPOINT")
echo "  straight ${direct} ms, through the proxy ${delayed} ms"
[ $((delayed - direct)) -ge $((2 * D)) ] ||
	die "the proxy added only $((delayed - direct)) ms to a request (expected >= $((2 * D)))"
[ "$delayed" -lt 3000 ] || die "a request through the proxy took $delayed ms"

step "cairn backup and restore through the proxy: byte-identical"
U=$WAN_S3_URL/wan
mkimg_fs "$T/fs.img" 24M
mkimg_raw "$T/dense.raw" 6M+4097 dense seed-wan
cairn_q init "$U" --chunk-size 256K
cairn_q backup "$U" --image vda="$T/fs.img" --image vdb="$T/dense.raw" --name wan --connections 4
SNAP=$(snap_id "$U" wan)
mark=$(sleep 1; wc -l <"$RGW_LOG")
cairn_q restore "$U" "$SNAP" --disk vda="$T/fs.out" --disk vdb="$T/dense.out" --connections 8
assert_same "$T/fs.img" "$T/fs.out"
assert_same "$T/dense.raw" "$T/dense.out"
sleep 1 # the access log has a writer thread of its own
gets=$(tail -n +$((mark + 1)) "$RGW_LOG" | grep -cF "\"GET /$CAIRN_TEST_S3_BUCKET/wan/data/" || true)
echo "  the restore made $gets GETs of pack data through the proxy"
[ "$gets" -gt 0 ] || die "the restore read no pack through the proxy (access log $RGW_LOG)"
# the proxy passed these requests: the gateway saw them from the proxy's side
cairn_q check "$U" --read-data

# serve_check URL SNAP DISK EXPECTED: the disk served over NBD from the
# repository behind the proxy, read end to end, is the original
serve_check() {
	local sock=$T/serve-$RANDOM.sock
	cairn_q serve "$1" "$2" --disk "$3" --socket "$sock" --connections 8
	at_exit "'$CAIRN' serve --stop --socket '$sock' >/dev/null 2>&1"
	nbdcopy "nbd+unix:///?socket=$sock" "$sock.out"
	assert_same "$4" "$sock.out"
	cairn_q serve --stop --socket "$sock"
}

step "serve and mount from RGW through the proxy: byte-identical"
serve_check "$U" "$SNAP" vda "$T/fs.img"
M=$T/mnt
mkdir -p "$M"
at_exit "'$CAIRN' umount '$M' >/dev/null 2>&1; umount -l '$M' 2>/dev/null"
cairn_q mount "$U" "$SNAP" --disk vdb "$M"
assert_same "$T/dense.raw" "$M/vdb"
cairn_q umount "$M"

if why=$(sshd_available); then
	step "cairn backup and restore over SFTP through the proxy"
	sshd_start
	wan_sshd 10
	cairn_q init "$WAN_SFTP_URL/repo" --chunk-size 256K
	cairn_q backup "$WAN_SFTP_URL/repo" --image vda="$T/dense.raw" --name sftp
	restore_check "$WAN_SFTP_URL/repo" latest "$T/dense.raw"
	step "serve from sshd through the proxy: byte-identical"
	serve_check "$WAN_SFTP_URL/repo" latest vda "$T/dense.raw"
	wan_stop
else
	echo "  (sftp part skipped: $why)"
fi

step "the gateway goes away: one clear line, no hang, no complete-looking target"
rgw_stop_gateway
t0=$(date +%s)
expect_fail_any "1 2 3 4 5 6 7" timeout 120 "$CAIRN" restore "$U" "$SNAP" --disk vda="$T/gone.out" \
	--disk vdb="$T/gone2.out" --connections 8
[ $(($(date +%s) - t0)) -lt 60 ] || die "cairn took $(($(date +%s) - t0)) s to give up"
assert_msg_matches "127\.0\.0\.1:$WAN_PORT|connect|reset|refused|unreachable|recv|send"
assert_file_absent "$T/gone.out"
assert_file_absent "$T/gone2.out"
assert_no_partial "$T" gone.out
kill -0 "$PROXY_PID" || die "the proxy died with its target"

step "the proxy serves the gateway again once it is back"
rgw_start_gateway
restore_check "$U" "$SNAP" "$T/dense.raw" --disk vdb --connections 8

step "the gateway killed mid-restore: a clean failure or a correct disk, never a hang"
mkimg_raw "$T/big.raw" 48M dense seed-wan-big
cairn_q backup "$U" --image "$T/big.raw" --name big --connections 4
mark=$(sleep 1; wc -l <"$RGW_LOG")
timeout 120 "$CAIRN" restore "$U" latest --name big --to "$T/mid.out" --connections 8 \
	>"$T/mid.log" 2>&1 &
pid=$!
BG_PIDS+=("$pid")
for _ in $(seq 1 600); do
	tail -n +$((mark + 1)) "$RGW_LOG" | grep -qF "\"GET /$CAIRN_TEST_S3_BUCKET/wan/data/" && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.05
done
rgw_stop_gateway
rc=0
wait "$pid" || rc=$?
echo "  restore exited $rc: $(head -c 300 "$T/mid.log")"
[ "$rc" -ne 124 ] || die "the restore hung after its gateway went away"
if [ "$rc" -eq 0 ]; then
	# everything was already on its way through the proxy when the gateway died
	assert_same "$T/big.raw" "$T/mid.out"
else
	assert_eq "$(grep -vc '^cairn: warning:' "$T/mid.log")" 1 "error lines of the interrupted restore"
	grep -q '^cairn:' "$T/mid.log" || die "the error is not a cairn: line: $(cat "$T/mid.log")"
	assert_file_absent "$T/mid.out"
	# a transport failure keeps the partial restore and its journal for
	# --resume, never under the target's name
	grep -q -- '--resume' "$T/mid.log" || die "the error does not say how to resume: $(cat "$T/mid.log")"
	[ -f "$T/mid.out.cairn-partial" ] || die "no partial restore kept for --resume"
fi
kill -0 "$PROXY_PID" || die "the proxy died with its target"
rgw_start_gateway
if [ "$rc" -ne 0 ]; then
	cairn_q restore "$U" latest --name big --to "$T/mid.out" --connections 8 --resume
	assert_same "$T/big.raw" "$T/mid.out"
	assert_no_partial "$T" mid.out
fi
restore_check "$U" latest "$T/big.raw" --name big --connections 8

pass
