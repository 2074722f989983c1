#!/bin/bash
# qcow2 sources (read through qemu-nbd) round-trip: restore as raw and as qcow2
# and compare with qemu-img compare; unallocated qcow2 ranges become holes.
# The native qcow2 writer: qemu-img check clean, sizes that are no multiple of
# the chunk or cluster size, 64K and 1M chunks, data at the end, L2 tables
# under several L1 entries, holes unallocated, --force, file modes.
. "$(dirname "$0")/lib.sh"

R=$T/repo
cairn_q init "$R" --chunk-size 64K

step "qcow2 written with qemu-io (patterns at odd offsets, rest unallocated)"
Q1=$T/written.qcow2
qemu-img create -q -f qcow2 "$Q1" 40M
qemu-io -f qcow2 -c 'write -P 0xab 1M 2M' -c 'write -P 0x11 7340544 3000' \
	-c 'write -P 0x5c 39M 1M' -c 'write -z 20M 1M' "$Q1" >/dev/null
cairn_q backup "$R" --image "$Q1" --name written
cairn_q ls "$R" latest --name written --json
assert_eq "$(json 'j["disks"][0]["format"]' <"$T/last.out")" qcow2 "detected source format"
assert_eq "$(json 'j["disks"][0]["size"]' <"$T/last.out")" $((40 * 1048576)) "disk size (virtual, not file size)"
assert_eq "$(json 'j["disks"][0]["name"]' <"$T/last.out")" written.qcow2 "disk name"

cairn_q restore "$R" latest --name written --to "$T/w.raw"
[ "$(file_size "$T/w.raw")" -eq $((40 * 1048576)) ] || die "restored raw has size $(file_size "$T/w.raw")"
qemu-img compare -q -f qcow2 -F raw "$Q1" "$T/w.raw" || die "raw restore of written.qcow2 differs"
# pattern bytes really there (guard against compare of two empty images)
qemu-img convert -f qcow2 -O raw "$Q1" "$T/w-ref.raw"
assert_same "$T/w-ref.raw" "$T/w.raw"
[ "$(od -An -tx1 -j $((1048576 + 100)) -N1 "$T/w.raw" | tr -d ' ')" = ab ] || die "pattern 0xab missing at 1M+100"
a=$(alloc_bytes "$T/w.raw")
[ "$a" -lt $((10 * 1048576)) ] || die "raw restore of a 40M qcow2 with ~3M data allocated $a bytes"

cairn_q restore "$R" latest --name written --to "$T/w.qcow2" --format qcow2
qemu-img check -q "$T/w.qcow2" || die "restored qcow2 fails qemu-img check"
qemu-img compare -q -f qcow2 -F qcow2 "$Q1" "$T/w.qcow2" || die "qcow2 restore of written.qcow2 differs"
qemu-img compare -q -f raw -F qcow2 "$T/w-ref.raw" "$T/w.qcow2" || die "qcow2 restore differs from raw"

step "qcow2 converted from a dense raw file with an odd number of sectors"
mkimg_raw "$T/src.raw" 9M+4608 dense seed-q2
qemu-img convert -q -f raw -O qcow2 "$T/src.raw" "$T/conv.qcow2"
cairn_q backup "$R" --image "$T/conv.qcow2"
id=$(snap_id "$R" conv)
cairn_q restore "$R" "$id" --to "$T/conv.raw"
assert_same "$T/src.raw" "$T/conv.raw"
cairn_q restore "$R" "$id" --to "$T/conv-out.qcow2" --format qcow2
qemu-img compare -q -f raw -F qcow2 "$T/src.raw" "$T/conv-out.qcow2" || die "conv qcow2 restore differs"

step "compressed qcow2 with a backing file is read as the guest sees it"
qemu-img convert -q -c -f raw -O qcow2 "$T/src.raw" "$T/base.qcow2"
qemu-img create -q -f qcow2 -b "$T/base.qcow2" -F qcow2 "$T/overlay.qcow2"
qemu-io -f qcow2 -c 'write -P 0x77 2M 300k' "$T/overlay.qcow2" >/dev/null
qemu-img convert -f qcow2 -O raw "$T/overlay.qcow2" "$T/overlay-ref.raw"
cairn_q backup "$R" --image "$T/overlay.qcow2"
restore_check "$R" "$(snap_id "$R" overlay)" "$T/overlay-ref.raw"

step "dedupe between the qcow2 and the raw copy of the same data"
before=$(repo_bytes "$R")
cairn_q backup "$R" --image "$T/src.raw" --name src-raw
after=$(repo_bytes "$R")
echo "  repo grew by $((after - before)) bytes for a 9 MiB raw copy of a qcow2 already stored"
[ $((after - before)) -lt 262144 ] || die "raw copy of already stored qcow2 data added $((after - before)) bytes"

step "other qemu formats (vmdk) also work"
qemu-img convert -q -f raw -O vmdk "$T/src.raw" "$T/src.vmdk"
cairn_q backup "$R" --image "$T/src.vmdk"
cairn_q restore "$R" latest --name src --to "$T/vmdk.raw"
assert_same "$T/src.raw" "$T/vmdk.raw"

step "a qcow2 image is not backed up as its raw container bytes"
cairn_q ls "$R" latest --name src --json
assert_eq "$(json 'j["disks"][0]["size"]' <"$T/last.out")" "$(file_size "$T/src.raw")" "vmdk virtual size"

# qcow2_facts FILE — the header fields and the number of used L1 entries of a
# qcow2 file, as JSON (read directly, not through QEMU)
qcow2_facts() {
	python3 - "$1" <<'PY'
import json, struct, sys
f = open(sys.argv[1], "rb")
h = f.read(104)
(magic, version, _bfo, _bfs, cluster_bits, size, crypt, l1_size, l1_off, rt_off,
 rt_clusters, nb_snap, _snap_off, incompat, compat, autoclear, rc_order,
 hdr_len) = struct.unpack(">4sIQIIQIIQQIIQQQQII", h)
f.seek(l1_off)
l1 = struct.unpack(">%dQ" % l1_size, f.read(8 * l1_size)) if l1_size else ()
print(json.dumps(dict(magic=magic.hex(), version=version, cluster_bits=cluster_bits,
    size=size, crypt=crypt, l1_size=l1_size, l1_used=sum(1 for e in l1 if e),
    snapshots=nb_snap, incompat=incompat, compat=compat, autoclear=autoclear,
    refcount_order=rc_order, header_length=hdr_len)))
PY
}

# restore_qcow2 REPO NAME REF OUT — restore NAME as qcow2 to OUT and check it
# against the raw image REF: qemu-img check clean (no errors, no leaks),
# equal contents, virtual size = disk size (whole sectors), the header cairn
# promises, and only the non-zero chunks allocated (holes stay holes)
restore_qcow2() {
	local repo=$1 name=$2 ref=$3 out=$4 size written mapped actual
	size=$(file_size "$ref")
	cairn_q restore "$repo" latest --name "$name" --to "$out" --format qcow2 --json
	written=$(json 'j["bytes_written"]' <"$T/last.out")
	qemu-img check "$out" >"$T/check.txt" 2>&1 || die "qemu-img check $out: $(cat "$T/check.txt")"
	grep -q '^No errors were found on the image.$' "$T/check.txt" || die "qemu-img check $out: $(cat "$T/check.txt")"
	! grep -qi 'leak' "$T/check.txt" || die "qemu-img check $out reports leaks: $(cat "$T/check.txt")"
	qemu-img check --output=json "$out" >"$T/check.json"
	assert_eq "$(json 'j["check-errors"] + j.get("leaks", 0) + j.get("corruptions", 0)' <"$T/check.json")" 0 "qemu-img check errors+leaks+corruptions of $out"
	qemu-img compare -q -f raw -F qcow2 "$ref" "$out" || die "qemu-img compare: $out differs from $ref"
	qemu-img info --output=json "$out" >"$T/info.json"
	assert_eq "$(json 'j["format"]' <"$T/info.json")" qcow2 "format of $out"
	assert_eq "$(json 'j["virtual-size"]' <"$T/info.json")" $(( (size + 511) / 512 * 512 )) "virtual size of $out (disk size $size)"
	assert_eq "$(json 'j["format-specific"]["data"]["compat"]' <"$T/info.json")" 1.1 "qcow2 version of $out"
	assert_eq "$(json 'j["format-specific"]["data"]["refcount-bits"]' <"$T/info.json")" 16 "refcount bits of $out"
	assert_eq "$(json 'j["cluster-size"]' <"$T/info.json")" 65536 "cluster size of $out"
	assert_eq "$(json '"backing-filename" in j' <"$T/info.json")" false "$out has a backing file"
	qcow2_facts "$out" >"$T/facts.json"
	assert_eq "$(json '(j["incompat"], j["compat"], j["autoclear"], j["crypt"], j["snapshots"])' <"$T/facts.json")" \
		"(0, 0, 0, 0, 0)" "feature bits (dirty bit clear), encryption, snapshots of $out"
	# guest bytes mapped to data: the non-zero chunks, each rounded up to whole
	# clusters (only the short last chunk is not already a multiple of 64K)
	mapped=$(qemu-img map --output=json "$out" | json 'sum(e["length"] for e in j if e["data"])')
	[ "$mapped" -ge "$written" ] && [ $((mapped - written)) -lt 65536 ] ||
		die "$out maps $mapped guest bytes to data, $written bytes of non-zero chunks were restored"
	actual=$(alloc_bytes "$out")
	[ "$actual" -le $((written + 4 * 1048576)) ] ||
		die "$out allocates $actual bytes on disk for $written bytes of data"
	echo "  $out: disk size $size, $written data bytes, $mapped mapped, $actual on disk, $(json 'j["l1_used"]' <"$T/facts.json")/$(json 'j["l1_size"]' <"$T/facts.json") L1 entries"
}

step "native qcow2 writer: odd sizes, data at the end, L2 tables under several L1 entries"
SZ_A=10M+4K       # not a multiple of any chunk size nor of 64 KiB
SZ_B=10M+4K+123   # not even whole sectors: the qcow2 size is rounded up
mkimg_raw "$T/odd-sparse.raw" $SZ_A sparse seed-os   # also data in its last 50000 bytes
mkimg_raw "$T/odd-dense.raw" $SZ_B dense seed-od
truncate -s $(to_bytes 33M+8K) "$T/end.raw"          # only its last 3000 bytes are data
write_at "$T/end.raw" $(( $(to_bytes 33M+8K) - 3000 )) seed-end 3000
# 3 GiB + 4 KiB, data scattered over all seven 512 MiB L1 ranges (one write
# straddles the first boundary, the last one ends at the last byte)
HUGE=$((3 * 1073741824 + 4096))
truncate -s $HUGE "$T/scatter.raw"
for o in 0 $((512 * 1048576 - 100000)) $((1100 * 1048576 + 12345)) $((1536 * 1048576)) \
	$((2 * 1073741824 + 77777)) $((2560 * 1048576 + 65536 * 3)); do
	write_at "$T/scatter.raw" $o "seed-sc-$o" 200000
done
write_at "$T/scatter.raw" $((HUGE - 100000)) seed-sc-end 100000

R1M=$T/repo-1m
cairn_q init "$R1M" --chunk-size 1M
for repo in "$R" "$R1M"; do
	for n in odd-sparse odd-dense end scatter; do
		cairn_q backup "$repo" --image "$T/$n.raw" --name "$n"
		restore_qcow2 "$repo" "$n" "$T/$n.raw" "$T/$n.qcow2"
		rm -f "$T/$n.qcow2"
	done
	cairn_q restore "$repo" latest --name scatter --to "$T/scatter.qcow2" --format qcow2
	qcow2_facts "$T/scatter.qcow2" >"$T/facts.json"
	assert_eq "$(json 'j["l1_size"]' <"$T/facts.json")" 7 "L1 entries of a 3 GiB + 4 KiB image"
	assert_eq "$(json 'j["l1_used"]' <"$T/facts.json")" 7 "L1 entries with an L2 table in $repo"
	[ "$(alloc_bytes "$T/scatter.qcow2")" -lt $((32 * 1048576)) ] || die "qcow2 of the sparse 3 GiB image is not small"
	rm -f "$T/scatter.qcow2"
done

step "the qcow2 restore replaces a target only with --force, atomically"
cairn_q restore "$R1M" latest --name odd-dense --to "$T/f.qcow2" --format qcow2
expect_fail 1 "$CAIRN" restore "$R1M" latest --name end --to "$T/f.qcow2" --format qcow2
qemu-img compare -q -f raw -F qcow2 "$T/odd-dense.raw" "$T/f.qcow2" || die "refused restore changed the target"
cairn_q restore "$R1M" latest --name end --to "$T/f.qcow2" --format qcow2 --force
qemu-img compare -q -f raw -F qcow2 "$T/end.raw" "$T/f.qcow2" || die "--force did not replace the target"
assert_no_partial "$T" f.qcow2

step "restored files get the mode of a new file under the umask"
for fmt in raw qcow2; do
	for m in "022 644" "077 600"; do
		set -- $m
		rm -f "$T/mode.$fmt"
		(umask "$1" && "$CAIRN" restore "$R" latest --name end --to "$T/mode.$fmt" --format $fmt >/dev/null)
		assert_eq "$(stat -c %a "$T/mode.$fmt")" "$2" "mode of a $fmt restore under umask $1"
	done
done

cairn_q check "$R" --read-data
cairn_q check "$R1M" --read-data
pass
