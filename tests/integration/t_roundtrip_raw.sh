#!/bin/bash
# Raw images round-trip byte-identically: dense, sparse, sizes that are not a
# multiple of the chunk size, an empty image, default and 64K chunk sizes,
# encrypted and unencrypted repositories; raw restores are sparse; qcow2
# restores compare equal with qemu-img compare.
. "$(dirname "$0")/lib.sh"

ODD=5M+12345   # not a multiple of any chunk size
mkimg_raw "$T/dense.raw" $ODD dense seed-dense
mkimg_raw "$T/sparse.raw" 24M+4097 sparse seed-sparse
mkimg_raw "$T/empty.raw" 0 dense
mkimg_raw "$T/tiny.raw" 1000 dense seed-tiny      # smaller than one chunk
mkimg_raw "$T/exact.raw" 2M dense seed-exact      # exact multiple of the chunk
# mostly zero: 64 MiB with 1 MiB of data in the middle (sparse source)
truncate -s 64M "$T/mostlyzero.raw"
write_at "$T/mostlyzero.raw" $((30 * 1048576 + 333)) seed-mz 1048576
# all zero but *allocated* (dense zeros: backup must still produce holes)
head -c $((3 * 1048576 + 5)) /dev/zero >"$T/zeros.raw"

IMAGES="dense sparse empty tiny exact mostlyzero zeros"

roundtrip() { # roundtrip REPO
	local R=$1 n id out
	for n in $IMAGES; do
		step "$R: backup + restore $n.raw ($(file_size "$T/$n.raw") bytes)"
		cairn_q backup "$R" --image "$T/$n.raw" --name "$n"
		id=$(snap_id "$R" "$n")
		[ ${#id} -eq 64 ] || die "snapshot id '$id' is not 64 hex"
		out=$T/out-$n.raw
		cairn restore "$R" "$id" --to "$out"
		assert_same "$T/$n.raw" "$out"
		# manifest size is right
		cairn_q ls "$R" "$id" --json
		assert_eq "$(json 'j["disks"][0]["size"]' <"$T/last.out")" "$(file_size "$T/$n.raw")" "ls size of $n"
		assert_eq "$(json 'j["disks"][0]["name"]' <"$T/last.out")" "$n.raw" "ls disk name of $n"
		rm -f "$out"
	done

	step "$R: restored mostly-zero image is sparse"
	out=$T/mz.raw
	cairn_q restore "$R" latest --name mostlyzero --to "$out"
	assert_same "$T/mostlyzero.raw" "$out"
	local a
	a=$(alloc_bytes "$out")
	echo "  allocated $a of $(file_size "$out") bytes"
	[ "$a" -lt $((8 * 1048576)) ] || die "restore of a 64 MiB image with 1 MiB of data allocated $a bytes (not sparse)"
	rm -f "$out"

	step "$R: allocated zeros restore as holes"
	cairn_q restore "$R" latest --name zeros --to "$out"
	assert_same "$T/zeros.raw" "$out"
	a=$(alloc_bytes "$out")
	[ "$a" -lt 1048576 ] || die "restore of an all-zero image allocated $a bytes"
	rm -f "$out"

	step "$R: qcow2 output"
	for n in dense sparse tiny exact mostlyzero; do
		out=$T/out-$n.qcow2
		cairn_q restore "$R" latest --name "$n" --to "$out" --format qcow2
		[ "$(qemu-img info --output=json "$out" | json 'j["format"]')" = qcow2 ] || die "$out is not qcow2"
		# qcow2 sizes are whole 512-byte sectors: the size is rounded up
		assert_eq "$(qemu-img info --output=json "$out" | json 'j["virtual-size"]')" \
			$(( ($(file_size "$T/$n.raw") + 511) / 512 * 512 )) "qcow2 virtual size of $n"
		qemu-img compare -q -f raw -F qcow2 "$T/$n.raw" "$out" || die "qemu-img compare: $n.qcow2 differs"
		rm -f "$out"
	done
	# mostly-zero qcow2 stays small
	cairn_q restore "$R" latest --name mostlyzero --to "$T/mz.qcow2" --format qcow2
	a=$(alloc_bytes "$T/mz.qcow2")
	[ "$a" -lt $((8 * 1048576)) ] || die "qcow2 restore of mostly-zero image allocated $a bytes"
	rm -f "$T/mz.qcow2"
}

step "default chunk size, encrypted"
cairn_q init "$T/r-default"
roundtrip "$T/r-default"

step "64K chunks"
cairn_q init "$T/r-64k" --chunk-size 64K
grep -q '"chunk_size": *65536' "$T/r-64k/config" || die "config does not record chunk_size 65536: $(cat "$T/r-64k/config")"
roundtrip "$T/r-64k"
cairn_q ls "$T/r-64k" latest --name dense --json
assert_eq "$(json 'j["disks"][0]["chunk_size"]' <"$T/last.out")" 65536 "disk chunk_size"

step "unencrypted, uncompressed"
cairn_q init "$T/r-plain" --encryption none --compression none
[ ! -d "$T/r-plain/keys" ] || [ -z "$(ls -A "$T/r-plain/keys")" ] || die "unencrypted repo has key files"
grep -q '"encryption": *"none"' "$T/r-plain/config" || die "config encryption is not none"
roundtrip "$T/r-plain"
# and it really does not need a password
(unset CAIRN_PASSWORD; "$CAIRN" restore "$T/r-plain" latest --name dense --to "$T/np.raw") ||
	die "restore from an unencrypted repo needs a password"
assert_same "$T/dense.raw" "$T/np.raw"

step "8M chunks (largest), zstd level"
cairn_q init "$T/r-8m" --chunk-size 8M --compression zstd:1
mkimg_raw "$T/big.raw" 20M+3 dense seed-big
cairn_q backup "$T/r-8m" --image "$T/big.raw"
restore_check "$T/r-8m" latest "$T/big.raw"

step "a large sparse image (8 GiB, 3 MiB of data): holes are skipped, not read"
truncate -s 8G "$T/huge.raw"
write_at "$T/huge.raw" 4096 seed-h1 1048576
write_at "$T/huge.raw" $((5 * 1073741824 + 12345)) seed-h2 1048576
write_at "$T/huge.raw" $((8 * 1073741824 - 1048576)) seed-h3 1048576
t0=$(date +%s)
cairn_q backup "$T/r-default" --image "$T/huge.raw" --json
echo "  backup of 8 GiB sparse: $(( $(date +%s) - t0 ))s, bytes_read $(json 'j["bytes_read"]' <"$T/last.out")"
[ "$(json 'j["bytes_read"]' <"$T/last.out")" -le $((16 * 1048576)) ] || die "backup read $(json 'j["bytes_read"]' <"$T/last.out") bytes of an 8 GiB file with 3 MiB of data (holes not skipped)"
cs=$(json 'j["chunk_size"]' <"$T/r-default/config")
want=0
for r in "4096 1048576" "$((5 * 1073741824 + 12345)) 1048576" "$((8 * 1073741824 - 1048576)) 1048576"; do
	set -- $r
	want=$(( want + ($1 + $2 - 1) / cs - $1 / cs + 1 ))
done
assert_eq "$(json 'j["new_chunks"]' <"$T/last.out")" "$want" "new chunks for 3 x 1 MiB of data in an 8 GiB sparse image (chunk size $cs)"
cairn_q restore "$T/r-default" latest --name huge --to "$T/huge-out.raw"
assert_eq "$(file_size "$T/huge-out.raw")" $((8 * 1073741824)) "size of the restored 8 GiB image"
a=$(alloc_bytes "$T/huge-out.raw")
[ "$a" -lt $((32 * 1048576)) ] || die "restore of the 8 GiB sparse image allocated $a bytes"
qemu-img compare -q -f raw -F raw "$T/huge.raw" "$T/huge-out.raw" || die "8 GiB sparse restore differs"
rm -f "$T/huge-out.raw"
cairn_q restore "$T/r-default" latest --name huge --to "$T/huge-out.qcow2" --format qcow2
qemu-img compare -q -f raw -F qcow2 "$T/huge.raw" "$T/huge-out.qcow2" || die "8 GiB sparse qcow2 restore differs"
[ "$(alloc_bytes "$T/huge-out.qcow2")" -lt $((32 * 1048576)) ] || die "qcow2 restore of the sparse image is not small"
rm -f "$T/huge-out.qcow2" "$T/huge.raw"

step "a restored file gets the mode of a new file under the umask"
for m in "022 644" "077 600"; do
	set -- $m
	rm -f "$T/mode.raw"
	(umask "$1" && "$CAIRN" restore "$T/r-8m" latest --to "$T/mode.raw" >/dev/null)
	assert_eq "$(stat -c %a "$T/mode.raw")" "$2" "mode of a raw restore under umask $1"
done
rm -f "$T/mode.raw"

step "check all repositories"
for r in r-default r-64k r-plain r-8m; do cairn_q check "$T/$r" --read-data; done

step "bad chunk sizes are usage errors"
expect_fail_any "1 2" "$CAIRN" init "$T/r-bad1" --chunk-size 100000
expect_fail_any "1 2" "$CAIRN" init "$T/r-bad2" --chunk-size 32K
expect_fail_any "1 2" "$CAIRN" init "$T/r-bad3" --chunk-size 16M
step "init over an existing repository is refused"
expect_fail 1 "$CAIRN" init "$T/r-default"
pass
