#!/bin/bash
# qcow2 sources (read through qemu-nbd) round-trip: restore as raw and as qcow2
# and compare with qemu-img compare; unallocated qcow2 ranges become holes.
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

cairn_q check "$R" --read-data
pass
