#!/bin/bash
# Deduplication: the same image twice adds no packs; two images sharing most
# data store the shared part once; incremental backups with the same --name
# store only the changed chunks and record the parent; stats --json.
. "$(dirname "$0")/lib.sh"

R=$T/repo
cairn_q init "$R"     # default chunk size
SIZE=$((32 * 1048576))
mkimg_raw "$T/img.raw" $SIZE dense seed-img

step "first backup"
cairn_q backup "$R" --image "$T/img.raw" --name vm --json
new1=$(json 'j["new_bytes"]' <"$T/last.out")
packs1=$(count_packs "$R"); bytes1=$(repo_bytes "$R")
echo "  first: $packs1 packs, $bytes1 bytes, new_bytes=$new1"
[ "$packs1" -ge 1 ] || die "no packs after the first backup"
[ "$bytes1" -ge "$SIZE" ] || die "repo ($bytes1 bytes) smaller than incompressible data ($SIZE)"
[ "$(json 'j["parent"]' <"$T/last.out")" = null ] || die "first backup has a parent"

step "same image again: no new packs, no new bytes"
cairn_q backup "$R" --image "$T/img.raw" --name vm --json
assert_eq "$(json 'j["new_chunks"]' <"$T/last.out")" 0 "new_chunks of an unchanged backup"
assert_eq "$(json 'j["new_bytes"]' <"$T/last.out")" 0 "new_bytes of an unchanged backup"
assert_eq "$(count_packs "$R")" "$packs1" "pack count after an unchanged backup"
assert_eq "$(repo_bytes "$R")" "$bytes1" "data+index bytes after an unchanged backup"
assert_eq "$(snap_count "$R")" 2 "snapshot count"

step "same image under another name also dedupes"
cp --sparse=always "$T/img.raw" "$T/copy.raw"
cairn_q backup "$R" --image "$T/copy.raw"
assert_eq "$(count_packs "$R")" "$packs1" "pack count after a copy under a new name"

step "an image sharing all but 1 MiB stores the shared part once"
cp "$T/img.raw" "$T/img2.raw"
write_at "$T/img2.raw" $((10 * 1048576)) seed-change 1048576
cairn_q backup "$R" --image "$T/img2.raw"
bytes2=$(repo_bytes "$R")
growth=$((bytes2 - bytes1))
echo "  second image grew the repository by $growth bytes (first: $bytes1)"
[ $((growth * 100)) -lt $((bytes1 * 30)) ] || die "growth $growth >= 30% of first backup $bytes1"
[ "$growth" -ge 1048576 ] || die "growth $growth < the 1 MiB that changed (changed data not stored?)"
restore_check "$R" latest "$T/img2.raw" --name img2
restore_check "$R" latest "$T/img.raw" --name vm

step "incremental: change 1% in scattered 4 KiB writes, back up with the same --name"
parent=$(snap_id "$R" vm)
cp --sparse=always "$T/img.raw" "$T/img-v1.raw"
# 1% of 32 MiB = 84 writes of 4 KiB, spread over the image
for i in $(seq 0 83); do
	write_at "$T/img.raw" $(( (i * 7919 * 4096) % (SIZE - 4096) )) "inc-$i" 4096
done
cmp -s "$T/img.raw" "$T/img-v1.raw" && die "image did not change"
before=$(repo_bytes "$R")
cairn_q backup "$R" --image "$T/img.raw" --name vm --json
cat "$T/last.out"
snap3=$(json 'j["snapshot"]' <"$T/last.out")
assert_eq "$(json 'j["parent"]' <"$T/last.out")" "$parent" "backup --json parent"
inc=$(( $(repo_bytes "$R") - before ))
new_chunks=$(json 'j["new_chunks"]' <"$T/last.out")
echo "  incremental added $inc bytes in $new_chunks new chunks"
# 84 writes touch at most 84 chunks of 256 KiB (21 MiB); must be well below a full copy
[ "$new_chunks" -ge 1 ] && [ "$new_chunks" -le 84 ] || die "incremental stored $new_chunks new chunks (expected 1..84)"
[ $((inc * 100)) -lt $((SIZE * 70)) ] || die "incremental added $inc bytes (>= 70% of a full copy)"
cairn_q snapshots "$R" --name vm --json
assert_eq "$(json '[s["id"] for s in j if s["id"] == "'"$snap3"'"][0]' <"$T/last.out")" "$snap3" "new snapshot listed with --name"
assert_eq "$(json '[s["parent"] for s in j if s["id"] == "'"$snap3"'"][0]' <"$T/last.out")" "$parent" "snapshots --json parent"
assert_eq "$(json 'all(s["name"] == "vm" for s in j)' <"$T/last.out")" true "snapshots --name filters"
assert_eq "$(json 'len(j)' <"$T/last.out")" 3 "snapshots of vm"
assert_eq "$(json '[s["parent"] for s in j][0]' <"$T/last.out")" null "first snapshot of vm has no parent"

step "both versions restore exactly (full image, no chain)"
restore_check "$R" "$snap3" "$T/img.raw"
restore_check "$R" "$parent" "$T/img-v1.raw"

step "same test with 64K chunks: a 1% change stores about 1%"
R2=$T/repo64
cairn_q init "$R2" --chunk-size 64K
cp --sparse=always "$T/img-v1.raw" "$T/s.raw"
cairn_q backup "$R2" --image "$T/s.raw"
b0=$(repo_bytes "$R2")
for i in $(seq 0 83); do
	write_at "$T/s.raw" $(( (i * 7919 * 4096) % (SIZE - 4096) )) "inc-$i" 4096
done
cairn_q backup "$R2" --image "$T/s.raw"
inc64=$(( $(repo_bytes "$R2") - b0 ))
echo "  64K chunks: 1% change added $inc64 bytes"
[ "$inc64" -le $((84 * 65536 + 262144)) ] || die "64K incremental added $inc64 bytes (> 84 chunks + metadata)"
restore_check "$R2" latest "$T/s.raw"

step "stats --json"
cairn_q stats "$R" --json
cat "$T/last.out"
for f in logical_bytes stored_bytes unique_chunks dedupe_ratio; do
	[ "$(json "type(j['$f']).__name__ in ('int', 'float')" <"$T/last.out")" = true ] || die "stats field $f is not a number"
done
logical=$(json 'j["logical_bytes"]' <"$T/last.out")
stored=$(json 'j["stored_bytes"]' <"$T/last.out")
# 5 snapshots of 32 MiB each
assert_eq "$logical" $((5 * SIZE)) "logical_bytes = sum of disk sizes over snapshots"
[ "$logical" -gt "$stored" ] || die "logical $logical <= stored $stored"
[ "$(json 'j["dedupe_ratio"] > 2.0' <"$T/last.out")" = true ] || die "dedupe_ratio not > 2"
# unique chunks: 128 from img + <=4 from img2 + new_chunks
uc=$(json 'j["unique_chunks"]' <"$T/last.out")
[ "$uc" -ge 129 ] && [ "$uc" -le $((128 + 4 + new_chunks)) ] || die "unique_chunks $uc not in 129..$((132 + new_chunks))"
# stored within 2% of what is on disk
onDisk=$(repo_bytes "$R")
[ $(( (stored - onDisk) * 100 / onDisk )) -ge -2 ] && [ $(( (stored - onDisk) * 100 / onDisk )) -le 2 ] ||
	die "stored_bytes $stored far from the $onDisk bytes in data/ and index/"
cairn_q stats "$R"
grep -qi dedupe "$T/last.out" || die "stats text output has no dedupe line"

cairn_q check "$R" --read-data
pass
