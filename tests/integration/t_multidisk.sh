#!/bin/bash
# Several images in one snapshot: ls lists each disk; restore picks one with
# --disk; restoring a multi-disk snapshot without --disk is refused.
. "$(dirname "$0")/lib.sh"

R=$T/repo
cairn_q init "$R"
mkimg_raw "$T/a.raw" 6M+100 dense seed-a
mkimg_raw "$T/b-src.raw" 8M sparse seed-b
qemu-img convert -q -f raw -O qcow2 "$T/b-src.raw" "$T/b.qcow2"
mkimg_raw "$T/c.raw" 3M dense seed-c

step "backup a.raw + b.qcow2 in one snapshot"
cairn_q backup "$R" --image "$T/a.raw" --image "$T/b.qcow2" --name vm1 --json
snap=$(json 'j["snapshot"]' <"$T/last.out")
assert_eq "$(snap_count "$R")" 1 "snapshot count after one multi-disk backup"
assert_eq "$(snap_id "$R")" "$snap" "backup --json snapshot id vs snapshots --json"

cairn_q ls "$R" "$snap" --json
cat "$T/last.out"
assert_eq "$(json 'len(j["disks"])' <"$T/last.out")" 2 "number of disks"
assert_eq "$(json '" ".join(d["name"] for d in j["disks"])' <"$T/last.out")" "a.raw b.qcow2" "disk names"
assert_eq "$(json '[d["size"] for d in j["disks"]]' <"$T/last.out")" "[$(file_size "$T/a.raw"), $(file_size "$T/b-src.raw")]" "disk sizes"
assert_eq "$(json '[d["format"] for d in j["disks"]]' <"$T/last.out")" '["raw", "qcow2"]' "disk formats"
assert_eq "$(json 'j["name"]' <"$T/last.out")" vm1 "snapshot name"
# human output lists both
cairn_q ls "$R" "$snap"
grep -q 'a\.raw' "$T/last.out" && grep -q 'b\.qcow2' "$T/last.out" || die "ls text output does not list both disks"

step "restore each disk with --disk"
restore_check "$R" "$snap" "$T/a.raw" --disk a.raw
restore_check "$R" "$snap" "$T/b-src.raw" --disk b.qcow2
cairn_q restore "$R" "$snap" --disk b.qcow2 --to "$T/b-out.qcow2" --format qcow2
qemu-img compare -q -f raw -F qcow2 "$T/b-src.raw" "$T/b-out.qcow2" || die "b.qcow2 qcow2 restore differs"

step "restore without --disk on a multi-disk snapshot is refused"
expect_fail_any "1 2" "$CAIRN" restore "$R" "$snap" --to "$T/nodisk.raw"
assert_msg_matches 'disk'
assert_file_absent "$T/nodisk.raw"
step "unknown --disk"
expect_fail_any "1 2" "$CAIRN" restore "$R" "$snap" --disk nope.raw --to "$T/nope.raw"
assert_msg_matches 'nope\.raw'
assert_file_absent "$T/nope.raw"

step "--image NAME=FILE names the disk; three disks"
cairn_q backup "$R" --image "sys=$T/a.raw" --image "data=$T/b.qcow2" --image "$T/c.raw" --name vm2
cairn_q ls "$R" latest --name vm2 --json
assert_eq "$(json '" ".join(d["name"] for d in j["disks"])' <"$T/last.out")" "sys data c.raw" "named disks"
restore_check "$R" latest "$T/a.raw" --name vm2 --disk sys
restore_check "$R" latest "$T/b-src.raw" --name vm2 --disk data
restore_check "$R" latest "$T/c.raw" --name vm2 --disk c.raw
# the second backup shares every chunk with the first except c.raw
cairn_q snapshots "$R" --json
assert_eq "$(json '[s["name"] for s in j]' <"$T/last.out")" '["vm1", "vm2"]' "snapshot names"

step "single-disk snapshot restores without --disk"
cairn_q backup "$R" --image "$T/c.raw"
restore_check "$R" latest "$T/c.raw" --name c

step "duplicate disk names in one snapshot are refused"
expect_fail_any "1 2" "$CAIRN" backup "$R" --image "x=$T/a.raw" --image "x=$T/c.raw"
assert_eq "$(snap_count "$R")" 3 "no snapshot written by the refused backup"

step "backup with a missing image writes no snapshot"
expect_fail 1 "$CAIRN" backup "$R" --image "$T/a.raw" --image "$T/missing.raw" --name vm3
assert_eq "$(snap_count "$R")" 3 "no snapshot written by the failed backup"

step "--tag and --quiet"
out=$("$CAIRN" backup "$R" --image "$T/c.raw" --name tagged --tag nightly --tag "with space" --quiet 2>"$T/q.err")
assert_eq "$(cat "$T/q.err")" "" "stderr of backup --quiet"
cairn_q snapshots "$R" --name tagged --json
# --quiet prints nothing, or just the new snapshot id
[ -z "$out" ] || [ "$out" = "$(json 'j[0]["id"]' <"$T/last.out")" ] || die "backup --quiet printed: $out"
assert_eq "$(json 'j[0]["tags"]' <"$T/last.out")" '["nightly", "with space"]' "snapshot tags"
out=$("$CAIRN" restore "$R" latest --name tagged --to "$T/q.raw" --quiet 2>&1)
assert_eq "$out" "" "output of restore --quiet"
assert_same "$T/c.raw" "$T/q.raw"

step "odd characters in snapshot names, tags, disk names and paths survive JSON"
cp "$T/c.raw" "$T/we=ird name.raw"
cairn_q backup "$R" --image "$T/we=ird name.raw"
cairn_q snapshots "$R" --name "we=ird name" --json
assert_eq "$(json 'j[0]["disks"][0]["name"]' <"$T/last.out")" "we=ird name.raw" "disk name from a path with '=' and a space"
odd='q"uo\te ü/..'
cairn_q backup "$R" --image "$odd=$T/c.raw" --name "$odd" --tag "$odd"
cairn_q snapshots "$R" --name "$odd" --json
assert_eq "$(json 'j[0]["name"]' <"$T/last.out")" "$odd" "odd snapshot name"
assert_eq "$(json 'j[0]["tags"][0]' <"$T/last.out")" "$odd" "odd tag"
assert_eq "$(json 'j[0]["disks"][0]["name"]' <"$T/last.out")" "$odd" "odd disk name"
restore_check "$R" latest "$T/c.raw" --name "$odd" --disk "$odd"

cairn_q check "$R" --read-data
pass
