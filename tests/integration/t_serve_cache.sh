#!/bin/bash
# cairn serve from S3 (a real Ceph RADOS Gateway, rgw.sh) at the speed of
# whole packs, and its on-disk chunk cache:
#   - a snapshot read end to end by qemu-img convert is byte-identical, and
#     the gateway's access log shows few GETs on data/ (ranges of packs,
#     not one per chunk);
#   - served again with the same --cache-dir: identical, no GET on data/;
#   - a cache entry altered or torn behind cairn's back is detected and
#     fetched again (still identical), never served;
#   - --cache-size bounds the directory (du); two servers share one
#     directory; an encrypted repository's cache holds no plaintext;
#   - the default: a cache under $XDG_CACHE_HOME for a remote repository,
#     none for a local one.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/rgw.sh"

command -v nbdkit >/dev/null || { echo "SKIP: no nbdkit"; exit 0; }
command -v qemu-img >/dev/null || { echo "SKIP: no qemu-img"; exit 0; }
why=$(rgw_available) || { echo "SKIP: $why"; exit 0; }
rgw_start
U=$CAIRN_TEST_S3_URL
RGW_LOG=$RGW_DIR/log/client.rgw.log
export XDG_CACHE_HOME=$T/xdg # the default cache stays in the test's directory

# log_mark / data_gets_since MARK — GETs of pack objects in the gateway's
# access log (beast: "GET /bucket/key HTTP/1.1" status ...)
log_mark() { sleep 1; wc -l <"$RGW_LOG"; }
data_gets_since() {
	sleep 1 # the log is written by a thread of its own
	tail -n +$(($1 + 1)) "$RGW_LOG" | grep -cE "\"GET /$CAIRN_TEST_S3_BUCKET/[^ ]*/data/" || true
}

at_exit 'for p in "$T"/*.pid; do [ -s "$p" ] && kill "$(cat "$p")" 2>/dev/null; done'

# read_served REPO OUT [serve args...] — serve the latest snapshot, read it
# whole with qemu-img convert into OUT, stop the server
read_served() {
	local repo=$1 out=$2 sock=$T/nbd.$RANDOM.sock
	shift 2
	cairn_q serve "$repo" latest --socket "$sock" --pidfile "$sock.pid" "$@"
	qemu-img convert -f raw -O raw "nbd+unix:///?socket=$sock" "$out" ||
		die "qemu-img convert from $repo failed"
	cairn_q serve --stop --socket "$sock" --pidfile "$sock.pid"
}

# 40 MiB of incompressible data among holes: three packs' worth
mkimg_raw "$T/disk.raw" 56M dense seed-disk
truncate -s 0 "$T/holes" && truncate -s 8M "$T/holes"
dd if="$T/holes" of="$T/disk.raw" bs=1M seek=20 count=8 conv=notrunc status=none
dd if="$T/holes" of="$T/disk.raw" bs=1M seek=44 count=8 conv=notrunc status=none
cairn_q init "$U/enc"
cairn_q backup "$U/enc" --image vda="$T/disk.raw" --name img
C=$T/cache

# what a serve costs before any read: the chunk map's pages are blobs in
# packs too (read by cairn and by the plugin)
step "baseline: GETs on data/ of a serve that reads nothing"
mark=$(log_mark)
cairn_q serve "$U/enc" latest --socket "$T/base.sock" --pidfile "$T/base.pid" --cache-dir "$T/base"
cairn_q serve --stop --socket "$T/base.sock" --pidfile "$T/base.pid"
base=$(data_gets_since "$mark")
echo "GETs on data/ without a read: $base"
[ "$base" -le 4 ] || die "$base GETs on data/ without a read"

step "cold: read end to end byte-identical, with few GETs of packs"
mark=$(log_mark)
read_served "$U/enc" "$T/cold.raw" --cache-dir "$C"
assert_same "$T/disk.raw" "$T/cold.raw"
gets=$(($(data_gets_since "$mark") - base))
echo "GETs on data/ for 40 MiB of chunks: $gets (one per chunk would be 160)"
# ranges of up to 8 MiB: 5 at best; every request of qemu-img that
# arrives before read-ahead covers it may cost one more
[ "$gets" -ge 1 ] && [ "$gets" -le 24 ] || die "$gets GETs on data/ for 160 chunks"
entries=$(find "$C/blobs" -type f | wc -l)
assert_eq "$entries" 160 "cache entries after the cold read"

step "warm: the same cache directory, no GET of a pack"
mark=$(log_mark)
read_served "$U/enc" "$T/warm.raw" --cache-dir "$C"
assert_same "$T/disk.raw" "$T/warm.raw"
assert_eq "$(($(data_gets_since "$mark") - base))" 0 "GETs on data/ for chunks with a warm cache"

step "an encrypted repository's cache holds no plaintext"
# 64 bytes of the disk's (incompressible) data, as they would be stored
dd if="$T/disk.raw" of="$T/probe" bs=64 skip=1000 count=1 status=none
# probe_absent DIR: true when no file under DIR holds the bytes of $T/probe
probe_absent() {
	python3 - "$T/probe" "$1" <<'EOF'
import os, sys
probe = open(sys.argv[1], "rb").read()
for root, _, files in os.walk(sys.argv[2]):
    for f in files:
        if probe in open(os.path.join(root, f), "rb").read():
            sys.exit(1)
EOF
}
probe_absent "$C/blobs" || die "plaintext of the disk found in the cache"

step "altered and torn entries are detected, fetched again, never served"
mapfile -t victims < <(find "$C/blobs" -type f | sort | head -n 2)
flip_byte "${victims[0]}" 100
truncate -s 1000 "${victims[1]}"
altered=$(md5sum <"${victims[0]}")
mark=$(log_mark)
read_served "$U/enc" "$T/healed.raw" --cache-dir "$C"
assert_same "$T/disk.raw" "$T/healed.raw"
gets=$(($(data_gets_since "$mark") - base))
[ "$gets" -ge 1 ] && [ "$gets" -le 2 ] || die "$gets GETs on data/ to heal 2 entries"
[ "$(md5sum <"${victims[0]}")" != "$altered" ] || die "the altered entry was not replaced"
[ "$(file_size "${victims[1]}")" -gt 1000 ] || die "the torn entry was not replaced"

step "--cache-size bounds the directory"
read_served "$U/enc" "$T/small.raw" --cache-dir "$T/small" --cache-size 12M
assert_same "$T/disk.raw" "$T/small.raw"
used=$(du -sk "$T/small" | cut -f1)
echo "cache of 12M uses ${used}K"
# entries at most 12 MiB, plus the directories (256 at 4 KiB at most)
[ "$used" -le $((12 * 1024 + 1024)) ] || die "cache of 12M uses ${used}K"
[ "$(find "$T/small/blobs" -type f | wc -l)" -ge 20 ] || die "the small cache holds almost nothing"

step "two servers share one cache directory"
for i in 1 2; do
	cairn_q serve "$U/enc" latest --socket "$T/s$i.sock" --pidfile "$T/s$i.pid" --cache-dir "$T/shared"
done
qemu-img convert -f raw -O raw "nbd+unix:///?socket=$T/s1.sock" "$T/s1.raw" &
qemu-img convert -f raw -O raw "nbd+unix:///?socket=$T/s2.sock" "$T/s2.raw"
wait $! || die "qemu-img convert from the first server failed"
for i in 1 2; do
	assert_same "$T/disk.raw" "$T/s$i.raw"
	cairn_q serve --stop --socket "$T/s$i.sock" --pidfile "$T/s$i.pid"
done
assert_eq "$(find "$T/shared/blobs" -type f | wc -l)" 160 "entries of the shared cache"
[ -z "$(ls -A "$T/shared/tmp")" ] || die "temporary files left in the shared cache"

step "defaults: on for a remote repository, off for a local one, off with --cache-size 0"
read_served "$U/enc" "$T/default.raw"
assert_same "$T/disk.raw" "$T/default.raw"
assert_eq "$(find "$XDG_CACHE_HOME/cairn/blobs" -type f | wc -l)" 160 "entries of the default cache"
rm -rf "$XDG_CACHE_HOME"
read_served "$U/enc" "$T/off.raw" --cache-size 0
assert_same "$T/disk.raw" "$T/off.raw"
[ ! -e "$XDG_CACHE_HOME" ] || die "--cache-size 0 made a cache"
cairn_q init "$T/local" --encryption none --compression none
cairn_q backup "$T/local" --image vda="$T/disk.raw" --name img
read_served "$T/local" "$T/local.raw"
assert_same "$T/disk.raw" "$T/local.raw"
[ ! -e "$XDG_CACHE_HOME" ] || die "a local repository got a cache by default"

step "contrast: a plain uncompressed repository's cache does hold the data"
read_served "$T/local" "$T/local2.raw" --cache-dir "$T/plain"
probe_absent "$T/plain/blobs" && die "the probe is not found even in plain entries: the check above proves nothing"

step "bad input"
expect_fail 2 "$CAIRN" serve "$U/enc" latest --socket "$T/x.sock" --cache-size lots
assert_msg_matches "cache-size"
pass
