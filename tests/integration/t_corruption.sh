#!/bin/bash
# Damaged repositories: missing/corrupt config, truncated pack, damaged index
# file, damage confined to one snapshot, lost index rebuilt by repair index.
. "$(dirname "$0")/lib.sh"

mkimg_raw "$T/a.raw" 6M+333 dense seed-a
mkimg_raw "$T/b.raw" 5M dense seed-b

fresh_repo() { # fresh_repo DIR — repo with snapshot of a (pack set 1) and b (pack set 2)
	rm -rf "$1"
	cairn_q init "$1"
	cairn_q backup "$1" --image "$T/a.raw"
	list_packs "$1" >"$1.packs-a"
	cairn_q backup "$1" --image "$T/b.raw"
	list_packs "$1" | comm -13 "$1.packs-a" - >"$1.packs-b"
	[ -s "$1.packs-a" ] && [ -s "$1.packs-b" ] || die "expected separate packs for a and b"
	cairn_q check "$1" --read-data
}

step "missing config"
R=$T/r1; fresh_repo "$R"
mv "$R/config" "$R/config.away"
expect_fail 1 "$CAIRN" snapshots "$R"
assert_msg_matches 'config|repositor'
expect_fail 1 "$CAIRN" check "$R"
expect_fail 1 "$CAIRN" restore "$R" latest --to "$T/x.raw"
assert_file_absent "$T/x.raw"
expect_fail 1 "$CAIRN" backup "$R" --image "$T/a.raw"
mv "$R/config.away" "$R/config"

step "corrupt config (garbage JSON)"
cp "$R/config" "$T/config.good"
printf '{"version": 1, "id": garbage\n' >"$R/config"
expect_fail_any "1 3" "$CAIRN" snapshots "$R"
assert_msg_matches 'config'
expect_fail_any "1 3" "$CAIRN" check "$R"
printf '\x00\x01\x02binary' >"$R/config"
expect_fail_any "1 3" "$CAIRN" snapshots "$R"
step "config with an unknown version is refused"
sed 's/"version": *1/"version": 99/' "$T/config.good" >"$R/config"
grep -q '"version": *99' "$R/config" || die "sed did not change the version"
expect_fail_any "1 3" "$CAIRN" snapshots "$R"
assert_msg_matches 'version'
step "config with an unknown encryption is refused"
sed 's/"aes-256-gcm"/"rot13"/' "$T/config.good" >"$R/config"
expect_fail_any "1 3" "$CAIRN" snapshots "$R"
cp "$T/config.good" "$R/config"
cairn_q check "$R"

step "truncated pack: structure check finds it"
R=$T/r2; fresh_repo "$R"
p=$(head -n1 "$R.packs-a")
truncate -s -100 "$p"
expect_fail 3 "$CAIRN" check "$R"
cat "$T/fail.out"
grep -q "$(basename "$p" | cut -c1-12)" "$T/fail.out" "$T/fail.err" || die "check does not name the truncated pack $(basename "$p")"
expect_fail 3 "$CAIRN" check "$R" --read-data
# damage is confined: b still restores. The blobs of a are still intact (only
# the trailer was cut), so restoring a may either work byte-identically or
# fail with 3 and no output — never produce a wrong file.
restore_check "$R" latest "$T/b.raw" --name b
rc=0; "$CAIRN" restore "$R" latest --name a --to "$T/a-out.raw" 2>"$T/err" || rc=$?
echo "  restore of a from the pack without trailer: rc=$rc $(cat "$T/err")"
case $rc in
0) assert_same "$T/a.raw" "$T/a-out.raw"; rm -f "$T/a-out.raw" ;;
3) assert_file_absent "$T/a-out.raw"; assert_no_partial "$T" a-out.raw ;;
*) die "restore of a from a pack with a cut trailer exited $rc" ;;
esac

step "pack truncated to half: also damage"
R=$T/r2b; fresh_repo "$R"
p=$(head -n1 "$R.packs-b")
truncate -s $(( $(file_size "$p") / 2 )) "$p"
expect_fail 3 "$CAIRN" check "$R"
expect_fail 3 "$CAIRN" restore "$R" latest --name b --to "$T/b-out.raw"
assert_file_absent "$T/b-out.raw"; assert_no_partial "$T" b-out.raw
restore_check "$R" latest "$T/a.raw" --name a

step "pack deleted: structure check finds it"
R=$T/r2c; fresh_repo "$R"
xargs rm -f <"$R.packs-b"
expect_fail 3 "$CAIRN" check "$R"
# a pack the index references is gone: damaged repository (3), like check says
soft expect_fail 3 "$CAIRN" restore "$R" latest --name b --to "$T/b-out.raw"
assert_file_absent "$T/b-out.raw"
restore_check "$R" latest "$T/a.raw" --name a

step "flipped bit in an index file: check exits 3 naming the index file"
R=$T/r3; fresh_repo "$R"
for idx in "$R"/index/*; do
	flip_byte "$idx" $(( $(file_size "$idx") / 2 ))
	break
done
expect_fail 3 "$CAIRN" check "$R"
grep -q "$(basename "$idx" | cut -c1-12)" "$T/fail.out" "$T/fail.err" || die "check does not name the damaged index file $(basename "$idx")"
"$CAIRN" check "$R" --json >"$T/check.json" 2>/dev/null || true
assert_eq "$(json 'j["ok"]' <"$T/check.json")" false "check --json ok on a damaged index"
assert_eq "$(json 'any("'"$(basename "$idx" | cut -c1-12)"'" in p for p in j["problems"])' <"$T/check.json")" true "check --json names the index file"
step "repair index fixes it"
cairn_q repair index "$R"
cairn_q check "$R" --read-data
restore_check "$R" latest "$T/a.raw" --name a
restore_check "$R" latest "$T/b.raw" --name b

step "damage in one snapshot's pack: that restore fails loudly, the other works"
R=$T/r4; fresh_repo "$R"
p=$(head -n1 "$R.packs-a")
flip_byte "$p" $(( $(file_size "$p") / 2 ))
cairn_q check "$R"          # structure (directory) still intact
expect_fail 3 "$CAIRN" check "$R" --read-data
cat "$T/fail.out"
grep -q "$(snap_id "$R" a | cut -c1-12)" "$T/fail.out" || die "check --read-data does not name the affected snapshot"
grep -q "$(snap_id "$R" b | cut -c1-12)" "$T/fail.out" && die "check --read-data names the undamaged snapshot b as affected"
expect_fail 3 "$CAIRN" restore "$R" "$(snap_id "$R" a)" --to "$T/a-out.raw"
assert_file_absent "$T/a-out.raw"; assert_no_partial "$T" a-out.raw
expect_fail 3 "$CAIRN" restore "$R" "$(snap_id "$R" a)" --to "$T/a-out.qcow2" --format qcow2
assert_file_absent "$T/a-out.qcow2"; assert_no_partial "$T" a-out.qcow2
step "a failed restore with --force leaves the existing target untouched"
echo "precious" >"$T/keep.raw"
expect_fail 3 "$CAIRN" restore "$R" "$(snap_id "$R" a)" --to "$T/keep.raw" --force
assert_eq "$(cat "$T/keep.raw")" precious "existing target after a failed --force restore"
restore_check "$R" "$(snap_id "$R" b)" "$T/b.raw"

step "damaged snapshot manifest"
R=$T/r5; fresh_repo "$R"
sa=$(snap_id "$R" a)
# bit rot keeps the object's write time: the manifest of a, written before
# b's backup began, cannot be the latest of b
touch -r "$R/snapshots/$sa" "$T/stamp"
flip_byte "$R/snapshots/$sa" 10
touch -r "$T/stamp" "$R/snapshots/$sa"
expect_fail 3 "$CAIRN" check "$R"
# the manifest exists but is damaged: that is damage (3), not "no snapshot"
soft expect_fail 3 "$CAIRN" restore "$R" "$sa" --to "$T/m.raw"
assert_file_absent "$T/m.raw"
restore_check "$R" latest "$T/b.raw" --name b
# written now (its name unknown), it may be the latest of b: only a choice
# made on purpose takes b
touch "$R/snapshots/$sa"
expect_fail 3 "$CAIRN" restore "$R" latest --name b --to "$T/m.raw"
assert_msg_matches "${sa:0:12}.*latest-readable"
restore_check "$R" latest-readable "$T/b.raw" --name b

step "missing index: restore fails, repair index rebuilds it"
R=$T/r6; fresh_repo "$R"
rm -f "$R"/index/*
expect_fail 3 "$CAIRN" restore "$R" latest --name a --to "$T/noidx.raw"
assert_file_absent "$T/noidx.raw"
expect_fail 3 "$CAIRN" check "$R"
cairn repair index "$R"
[ "$(count_index "$R")" -ge 1 ] || die "repair index wrote no index file"
cairn_q check "$R" --read-data
restore_check "$R" latest "$T/a.raw" --name a
restore_check "$R" latest "$T/b.raw" --name b
step "a backup after repair still dedupes against the rebuilt index"
packs=$(count_packs "$R")
cairn_q backup "$R" --image "$T/a.raw" --json
assert_eq "$(json 'j["new_chunks"]' <"$T/last.out")" 0 "new chunks after repair"
assert_eq "$(count_packs "$R")" "$packs" "packs after repair + backup"

step "temp files of an unfinished write are ignored"
R=$T/r7; fresh_repo "$R"
d=$(dirname "$(head -n1 "$R.packs-a")")
head -c 1000 /dev/urandom >"$d/.tmp-deadbeef"
head -c 1000 /dev/urandom >"$R/index/.tmp-deadbeef"
head -c 1000 /dev/urandom >"$R/snapshots/.tmp-deadbeef"
cairn_q check "$R" --read-data
cairn_q repair index "$R"
cairn_q check "$R" --read-data
assert_eq "$(snap_count "$R")" 2 "snapshots with temp files around"
pass
