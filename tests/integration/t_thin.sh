#!/bin/bash
# Thin disks: a 64 GiB sparse raw image holding a few MiB at scattered
# offsets backs up, and backs up again unchanged, at the cost of its data
# (holes go to the disk writer as runs, not slot by slot), restores
# byte-identically, and its manifest records digest2 (the chunk-digest
# form, checked here against the image with XXH3 from libxxhash) and no v1
# digest.
. "$(dirname "$0")/lib.sh"

IMG=$T/thin.raw
truncate -s 64G "$IMG"
# data at chunk-aligned and unaligned offsets, across chunk boundaries and
# in the last bytes of the disk
write_at "$IMG" 0 seed-a 1048576
write_at "$IMG" $((3 * 1073741824 + 12345)) seed-b 3145728
write_at "$IMG" $((17 * 1073741824 + 262144 - 100)) seed-c 200
write_at "$IMG" $((40 * 1073741824)) seed-d 2097152
write_at "$IMG" $((64 * 1073741824 - 70000)) seed-e 70000
[ "$(file_size "$IMG")" -eq $((64 * 1073741824)) ] || die "image size changed"

R=$T/repo
# unencrypted: the manifest's JSON is readable here
cairn_q init "$R" --encryption none

# seconds BACKUP took; fails the test past LIMIT (the walk slot by slot of
# 64 GiB took longer than that; the data alone takes about a second)
timed_backup() { # timed_backup LIMIT
	local start secs
	start=$(date +%s.%N)
	cairn_q backup "$R" --image "$IMG" --name thin
	secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
	echo "  backup took ${secs}s"
	awk -v s="$secs" -v l="$1" 'BEGIN{exit !(s < l)}' ||
		die "backup of a 64 GiB image holding 6 MiB took ${secs}s (limit $1s)"
}

# manifest_json ID: the decoded manifest (envelope: 'C', version, kind 2,
# flags: bit 0 zstd (libzstd through ctypes), then the JSON)
manifest_json() {
	python3 - "$R/snapshots/$1" <<'EOF'
import ctypes, ctypes.util, sys
b = open(sys.argv[1], "rb").read()
if b[0:1] != b"C" or b[2] != 2 or b[3] & ~1:
    sys.exit("unexpected manifest envelope %r" % b[:4])
payload = b[4:]
if b[3] & 1:
    z = ctypes.CDLL(ctypes.util.find_library("zstd") or "libzstd.so.1")
    z.ZSTD_getFrameContentSize.restype = ctypes.c_ulonglong
    z.ZSTD_getFrameContentSize.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    z.ZSTD_decompress.restype = ctypes.c_size_t
    z.ZSTD_decompress.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
    z.ZSTD_isError.argtypes = [ctypes.c_size_t]
    n = z.ZSTD_getFrameContentSize(payload, len(payload))
    if n >= 2**63:
        sys.exit("manifest: no zstd content size")
    out = ctypes.create_string_buffer(n)
    got = z.ZSTD_decompress(out, n, payload, len(payload))
    if z.ZSTD_isError(got) or got != n:
        sys.exit("manifest: bad zstd frame")
    payload = out.raw[:n]
sys.stdout.write(payload.decode())
EOF
}

# the chunk-digest form of the image, computed here: XXH3-128 over the
# canonical XXH3-128 of every chunk slot (libxxhash through ctypes)
expected_digest2() { # expected_digest2 CHUNK_SIZE
	python3 - "$IMG" "$1" <<'EOF'
import ctypes, ctypes.util, os, sys
lib = ctypes.CDLL(ctypes.util.find_library("xxhash") or "libxxhash.so.0")
class H(ctypes.Structure):
    _fields_ = [("low", ctypes.c_uint64), ("high", ctypes.c_uint64)]
lib.XXH3_128bits.restype = H
lib.XXH3_128bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
def xxh(b):
    h = lib.XXH3_128bits(b, len(b))
    return h.high.to_bytes(8, "big") + h.low.to_bytes(8, "big")
path, cs = sys.argv[1], int(sys.argv[2])
size = os.path.getsize(path)
fd = os.open(path, os.O_RDONLY)
zero_full, out, off = xxh(bytes(cs)), [], 0
while off < size:
    n = min(cs, size - off)
    try:
        data_at = os.lseek(fd, off, os.SEEK_DATA)
    except OSError:
        data_at = size
    if data_at < off + n:
        out.append(xxh(os.pread(fd, n, off)))
    else:
        out.append(zero_full if n == cs else xxh(bytes(n)))
    off += n
print(xxh(b"".join(out)).hex())
EOF
}

# byte-identical comparison of two sparse files of the same size: every
# range either holds data in is compared; elsewhere both read as zeros
sparse_same() { # sparse_same A B
	python3 - "$1" "$2" <<'EOF'
import os, sys
a, b = (os.open(p, os.O_RDONLY) for p in sys.argv[1:3])
size = os.fstat(a).st_size
if os.fstat(b).st_size != size:
    sys.exit("sizes differ")
def extents(fd):
    off, out = 0, []
    while off < size:
        try:
            d = os.lseek(fd, off, os.SEEK_DATA)
        except OSError:
            break
        h = os.lseek(fd, d, os.SEEK_HOLE)
        out.append((d, h))
        off = h
    return out
ranges = sorted(extents(a) + extents(b))
for start, end in ranges:
    off = start
    while off < end:
        n = min(1 << 20, end - off)
        if os.pread(a, n, off) != os.pread(b, n, off):
            sys.exit("differ within [%d, %d)" % (off, off + n))
        off += n
print("identical: %d bytes compared in %d ranges" % (sum(e - s for s, e in ranges), len(ranges)))
EOF
}

step "backup of a 64 GiB thin image"
timed_backup 30
id1=$(snap_id "$R" thin)
cairn_q snapshots "$R" --json
assert_eq "$(json 'j[0]["bytes_read"] <= 12 * 1048576' <"$T/last.out")" true "bytes read"
assert_eq "$(json 'j[0]["disks"][0].get("digest")' <"$T/last.out")" null "v1 digest listed"

step "manifest has digest2 and no digest"
manifest_json "$id1" >"$T/m1.json"
assert_eq "$(json '"digest" in j["disks"][0]' <"$T/m1.json")" false "v1 digest in the manifest"
d2=$(json 'j["disks"][0]["digest2"]' <"$T/m1.json")
cs=$(json 'j["disks"][0]["chunk_size"]' <"$T/m1.json")
want=$(expected_digest2 "$cs")
echo "  digest2 $d2 (computed from the image: $want)"
assert_eq "$d2" "$want" "digest2 of the image"

step "backup again, unchanged"
timed_backup 30
id2=$(snap_id "$R" thin)
[ "$id2" != "$id1" ] || die "the second backup made no snapshot"
manifest_json "$id2" >"$T/m2.json"
assert_eq "$(json 'j["disks"][0]["digest2"]' <"$T/m2.json")" "$d2" "digest2 of the unchanged image"
assert_eq "$(json 'j["stats"]["new_chunks"]' <"$T/m2.json")" 0 "new chunks of an unchanged backup"
stored=$(repo_bytes "$R")
echo "  repository holds $stored bytes"
[ "$stored" -lt $((16 * 1048576)) ] || die "repository of 6 MiB of data holds $stored bytes"

step "restore is byte-identical"
cairn_q restore "$R" "$id2" --to "$T/out.raw"
sparse_same "$IMG" "$T/out.raw"
a=$(alloc_bytes "$T/out.raw")
[ "$a" -lt $((64 * 1048576)) ] || die "restore of a thin image allocated $a bytes"

step "a changed image gets a different digest2"
write_at "$IMG" $((40 * 1073741824 + 4096)) seed-f 10
timed_backup 30
manifest_json "$(snap_id "$R" thin)" >"$T/m3.json"
d3=$(json 'j["disks"][0]["digest2"]' <"$T/m3.json")
[ "$d3" != "$d2" ] || die "digest2 did not change with the image"
assert_eq "$d3" "$(expected_digest2 "$cs")" "digest2 of the changed image"
rm -f "$T/out.raw"
cairn_q restore "$R" latest --name thin --to "$T/out.raw"
sparse_same "$IMG" "$T/out.raw"

pass
