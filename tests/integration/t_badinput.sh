#!/bin/bash
# Bad input: unreadable images, usage errors, restore onto an existing target,
# an image that grows between backups, snapshot id resolution.
. "$(dirname "$0")/lib.sh"

R=$T/repo
cairn_q init "$R"
mkimg_raw "$T/a.raw" 4M+100 dense seed-a

step "image that does not exist / is a directory / is unreadable"
expect_fail 1 "$CAIRN" backup "$R" --image "$T/nope.raw"
assert_msg_matches 'nope\.raw'
expect_fail 1 "$CAIRN" backup "$R" --image "$T"
mkfifo "$T/fifo"
# a FIFO is not a disk image: refuse it, do not hang (timeout → 124)
soft expect_fail_any "1 2" timeout -k 5 20 "$CAIRN" backup "$R" --image "$T/fifo"
cp "$T/a.raw" "$T/noperm.raw"; chmod 000 "$T/noperm.raw"
if [ "$(id -u)" != 0 ]; then expect_fail 1 "$CAIRN" backup "$R" --image "$T/noperm.raw"; fi
assert_eq "$(snap_count "$R")" 0 "snapshots after failed backups"
assert_eq "$(count_packs "$R")" 0 "packs after failed backups"
step "a file that is not a disk image of the named format"
echo "not a qcow2" >"$T/fake.qcow2"
rc=0; "$CAIRN" backup "$R" --image "$T/fake.qcow2" >/dev/null 2>&1 || rc=$?
echo "  fake.qcow2 (text file): rc=$rc (raw detection: 0 is fine)"
[ $rc -eq 0 ] || [ $rc -eq 1 ] || die "fake.qcow2 backup exited $rc"

step "usage errors: exit 2"
expect_fail 2 "$CAIRN" backup "$R" --image "$T/a.raw" --bogus-option
expect_fail 2 "$CAIRN" backup "$R"
expect_fail 2 "$CAIRN" restore "$R" latest
expect_fail 2 "$CAIRN" frobnicate "$R"
expect_fail 2 "$CAIRN" snapshots
expect_fail 2 "$CAIRN" restore "$R" latest --to "$T/x" --format vmdk7
expect_fail 2 "$CAIRN" init "$T/r2" --compression lz4
expect_fail 2 "$CAIRN" init "$T/r3" --encryption rot13
expect_fail 2 "$CAIRN" check "$R" --read-data --extra
expect_fail 2 "$CAIRN" repair "$R"
expect_fail 2 "$CAIRN" key frob "$R"
expect_fail 2 "$CAIRN" backup "$R" --image
rc=0; "$CAIRN" >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 2 "exit code of cairn without arguments"
assert_file_absent "$T/r2"; assert_file_absent "$T/r3"
step "the password is never taken from the command line"
# (--password must not be taken as an abbreviation of --password-file)
soft expect_fail 2 "$CAIRN" snapshots "$R" --password testpass

step "operations on a repository that does not exist"
expect_fail 1 "$CAIRN" snapshots "$T/no-repo"
expect_fail 1 "$CAIRN" backup "$T/no-repo" --image "$T/a.raw"
assert_file_absent "$T/no-repo"

step "restore onto an existing target: refused without --force"
cairn_q backup "$R" --image "$T/a.raw"
echo "existing content" >"$T/target.raw"
expect_fail 1 "$CAIRN" restore "$R" latest --to "$T/target.raw"
assert_msg_matches 'force|exist'
assert_eq "$(cat "$T/target.raw")" "existing content" "existing target after a refused restore"
cairn_q restore "$R" latest --to "$T/target.raw" --force
assert_same "$T/a.raw" "$T/target.raw"
step "--force over a bigger file leaves exactly the image (no stale tail)"
head -c $((9 * 1048576)) /dev/urandom >"$T/target2.raw"
cairn_q restore "$R" latest --to "$T/target2.raw" --force
assert_same "$T/a.raw" "$T/target2.raw"
step "restore into a directory that does not exist"
expect_fail 1 "$CAIRN" restore "$R" latest --to "$T/no/such/dir/x.raw"
step "restore onto a directory: the disk goes into it, the directory stays"
mkdir "$T/adir"
cairn_q restore "$R" latest --to "$T/adir"
[ -d "$T/adir" ] || die "restore replaced a directory"
[ "$(ls "$T/adir" | wc -l)" -eq 1 ] || die "expected one restored file in the directory"
assert_same "$T/a.raw" "$T/adir/$(ls "$T/adir")"
expect_fail 1 "$CAIRN" restore "$R" latest --to "$T/adir"
assert_msg_matches "exists; use --force"

step "an image that grows (and shrinks) between two backups of the same name"
cp "$T/a.raw" "$T/grow.raw"
cairn_q backup "$R" --image "$T/grow.raw" --name grow
v1=$(snap_id "$R" grow)
cp "$T/grow.raw" "$T/grow-v1.raw"
write_at "$T/grow.raw" "$(file_size "$T/grow.raw")" seed-grow $((3 * 1048576 + 777))
[ "$(file_size "$T/grow.raw")" -eq $(( $(file_size "$T/a.raw") + 3 * 1048576 + 777 )) ] || die "image did not grow"
cairn_q backup "$R" --image "$T/grow.raw" --name grow --json
assert_eq "$(json 'j["parent"]' <"$T/last.out")" "$v1" "parent of the grown image's snapshot"
v2=$(json 'j["snapshot"]' <"$T/last.out")
restore_check "$R" "$v2" "$T/grow.raw"
restore_check "$R" "$v1" "$T/grow-v1.raw"
cairn_q ls "$R" "$v2" --json
assert_eq "$(json 'j["disks"][0]["size"]' <"$T/last.out")" "$(file_size "$T/grow.raw")" "size of the grown disk"
truncate -s 1M "$T/grow.raw"
cairn_q backup "$R" --image "$T/grow.raw" --name grow
restore_check "$R" latest "$T/grow.raw" --name grow
truncate -s 1000000 "$T/grow.raw"   # not a multiple of 512 either
cairn_q backup "$R" --image "$T/grow.raw" --name grow
restore_check "$R" latest "$T/grow.raw" --name grow

step "snapshot id resolution"
full=$v2
# full id
cairn_q ls "$R" "$full" --json
assert_eq "$(json 'j["id"]' <"$T/last.out")" "$full" "ls by full id"
# 8-char prefix
cairn_q ls "$R" "${full:0:8}" --json
assert_eq "$(json 'j["id"]' <"$T/last.out")" "$full" "ls by 8-char prefix"
# latest
cairn_q ls "$R" latest --json
assert_eq "$(json 'j["id"]' <"$T/last.out")" "$(snap_id "$R")" "ls latest"
cairn_q ls "$R" latest --name grow --json
assert_eq "$(json 'j["id"]' <"$T/last.out")" "$(snap_id "$R" grow)" "ls latest --name grow"
# restore by 8-char prefix gives the right image
cairn_q restore "$R" "${v1:0:8}" --to "$T/pv1.raw"
assert_same "$T/grow-v1.raw" "$T/pv1.raw"
# unknown prefix
expect_fail 1 "$CAIRN" restore "$R" ffffffffffff --to "$T/unk.raw"
assert_file_absent "$T/unk.raw"
expect_fail 1 "$CAIRN" ls "$R" 0123456789abcdef0123
# not hex at all
expect_fail_any "1 2" "$CAIRN" ls "$R" 'zz/../x'
# ambiguous prefix: find the shortest prefix shared by two ids (a 1-char
# prefix is shared by two of 17 snapshots for sure by pigeonhole)
while [ "$(snap_count "$R")" -lt 17 ]; do
	write_at "$T/a.raw" 0 "amb-$(snap_count "$R")" 512
	cairn_q backup "$R" --image "$T/a.raw" --name amb
done
amb=$("$CAIRN" snapshots "$R" --json | json '__import__("collections").Counter(s["id"][0] for s in j).most_common(1)[0][0]')
echo "  ambiguous prefix: $amb"
expect_fail_any "1 2" "$CAIRN" ls "$R" "$amb"
assert_msg_matches 'ambiguous|prefix|several|more than one'
expect_fail 1 "$CAIRN" restore "$R" latest --name no-such-name --to "$T/nn.raw"
assert_file_absent "$T/nn.raw"
step "latest on an empty repository"
cairn_q init "$T/empty"
expect_fail 1 "$CAIRN" restore "$T/empty" latest --to "$T/e.raw"
cairn_q snapshots "$T/empty" --json
assert_eq "$(json 'len(j)' <"$T/last.out")" 0 "snapshots --json of an empty repo"
pass
