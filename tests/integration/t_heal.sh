#!/bin/bash
# Damage found by check heals: a flipped byte in a pack is found by
# check --read-data (named by snapshot and disk, exit 3) and recorded; the
# next backup of the source stores that chunk again instead of reusing the
# bad copy, after which every snapshot using it (old ones too) restores
# byte-identical; gc rewrites the damaged pack and check --read-data is
# clean again. Also --read-data-subset: N% reads the packs read longest ago
# first, so repeated runs cover every pack; i/n reads one part.
. "$(dirname "$0")/lib.sh"

R=$T/repo
cairn_q init "$R" --chunk-size 64K
mkimg_raw "$T/img.raw" 6M dense heal
cairn_q backup "$R" --image "$T/img.raw" --name vm
first=$(snap_id "$R" vm)

step "subsets: 2 x 50% read every pack once, i/n reads a part"
npacks=$(count_packs "$R")
[ "$npacks" -ge 1 ] || die "no packs"
cairn_q check "$R" --read-data-subset 50% --json
a=$(json 'j["packs_read"]' <"$T/last.out")
cairn_q check "$R" --read-data-subset 50% --json
b=$(json 'j["packs_read"]' <"$T/last.out")
[ $((a + b)) -ge "$npacks" ] || die "two half checks read $a + $b of $npacks packs"
[ -n "$(ls -A "$R/checks")" ] || die "no check record written"
total=0
for i in 1 2 3; do
	cairn_q check "$R" --read-data-subset "$i/3" --json
	total=$((total + $(json 'j["packs_read"]' <"$T/last.out")))
done
assert_eq "$total" "$npacks" "packs read by 1/3 + 2/3 + 3/3"
expect_fail 2 "$CAIRN" check "$R" --read-data-subset 0%
expect_fail 2 "$CAIRN" check "$R" --read-data-subset 4/3

step "a flipped byte is found, named and recorded"
pack=$(list_packs "$R" | head -n 1)
flip_byte "$pack" 100
expect_fail 3 "$CAIRN" check "$R" --read-data
grep -q "snapshot ${first:0:12} (vm) disk img.raw" "$T/fail.out" || die "damage not named: $(cat "$T/fail.out")"
[ -n "$(ls -A "$R/damaged")" ] || die "no damage record"

step "the next backup stores the damaged chunk again; old and new snapshots restore"
cairn_q backup "$R" --image "$T/img.raw" --name vm --json
[ "$(json 'j["new_chunks"]' <"$T/last.out")" -ge 1 ] || die "nothing stored again: $(cat "$T/last.out")"
restore_check "$R" "$first" "$T/img.raw"
restore_check "$R" latest "$T/img.raw" --name vm

step "gc rewrites the damaged pack; check --read-data is clean"
cairn_q gc "$R" --json
[ "$(json 'j["packs_deleted"]' <"$T/last.out")" -ge 1 ] || die "damaged pack kept: $(cat "$T/last.out")"
[ ! -e "$pack" ] || die "damaged pack still there"
cairn_q check "$R" --read-data
[ -z "$(ls -A "$R/damaged")" ] || die "damage record not pruned"
restore_check "$R" "$first" "$T/img.raw"
pass
