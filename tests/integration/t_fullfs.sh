#!/bin/bash
# A repository on a filesystem that runs full: the backup fails cleanly (exit
# 1, one line mentioning the lack of space), the repository still checks clean
# and older snapshots restore. A restore onto a full filesystem fails cleanly
# and leaves no partial output.
. "$(dirname "$0")/lib.sh"

MNT=$T/mnt
mkdir -p "$MNT"
if ! mount -t tmpfs -o size=20M tmpfs "$MNT" 2>"$T/mount.err"; then
	echo "SKIP: cannot mount a tmpfs here ($(cat "$T/mount.err")); run as root"
	exit 0
fi
at_exit "umount -l '$MNT'"
R=$MNT/repo

step "a small first snapshot fits"
cairn_q init "$R"
mkimg_raw "$T/small.raw" 3M+5 dense seed-small
cairn_q backup "$R" --image "$T/small.raw"
small=$(snap_id "$R")
packs=$(list_packs "$R")
df -k "$MNT" | tail -n1

step "backup of 60 MB of incompressible data onto the 20 MB filesystem"
mkimg_raw "$T/big.raw" 60M dense seed-big
expect_fail 1 "$CAIRN" backup "$R" --image "$T/big.raw"
assert_msg_matches 'space'
assert_eq "$(snap_count "$R")" 1 "snapshots after the failed backup"
step "the repository still checks clean and the old snapshot restores"
cairn check "$R" --read-data
restore_check "$R" "$small" "$T/small.raw"
echo "  temp files left on the full filesystem: $(find "$R" -name '.*' -type f | wc -l), free: $(df -k --output=avail "$MNT" | tail -n1) KiB"
assert_eq "$(find "$R/locks" -type f ! -name '.*' | wc -l)" 0 "locks left by the failed backup"

step "after freeing space, the same backup succeeds (the repo is usable)"
umount "$MNT"
mount -t tmpfs -o size=100M tmpfs "$MNT"   # fresh, bigger
cairn_q init "$R"
cairn_q backup "$R" --image "$T/small.raw"
small=$(snap_id "$R")
# fill the filesystem up to ~70 MB and try again: backup needs ~60 MB
head -c $((70 * 1048576)) /dev/zero >"$MNT/filler" 2>/dev/null || true
expect_fail 1 "$CAIRN" backup "$R" --image "$T/big.raw"
assert_msg_matches 'space'
cairn check "$R" --read-data
rm -f "$MNT/filler"
cairn_q backup "$R" --image "$T/big.raw"
restore_check "$R" latest "$T/big.raw" --name big
cairn_q check "$R" --read-data

step "restore onto a full filesystem fails cleanly, no partial file"
OUT=$T/out
mkdir -p "$OUT"
mount -t tmpfs -o size=20M tmpfs "$OUT"
at_exit "umount -l '$OUT'"
expect_fail 1 "$CAIRN" restore "$R" latest --name big --to "$OUT/big.raw"
# the space is claimed before anything is fetched
assert_msg_matches 'not enough space for .*big.raw'
assert_file_absent "$OUT/big.raw"
left=$(find "$OUT" -mindepth 1)
[ -z "$left" ] || die "restore onto a full filesystem left: $left"
assert_eq "$(df -k --output=used "$OUT" | tail -n1 | tr -d ' ')" 0 "KiB used on the target after the failed restore"
step "same for qcow2 output"
expect_fail 1 "$CAIRN" restore "$R" latest --name big --to "$OUT/big.qcow2" --format qcow2
assert_file_absent "$OUT/big.qcow2"
left=$(find "$OUT" -mindepth 1)
[ -z "$left" ] || die "qcow2 restore onto a full filesystem left: $left"
step "a small restore onto that filesystem works"
cairn_q restore "$R" "$small" --to "$OUT/small.raw"
assert_same "$T/small.raw" "$OUT/small.raw"
step "--force onto a full filesystem keeps the old target"
head -c $((15 * 1048576)) /dev/zero | tr '\0' 'x' >"$OUT/keep.raw" 2>/dev/null || true
sz=$(file_size "$OUT/keep.raw")
expect_fail 1 "$CAIRN" restore "$R" latest --name big --to "$OUT/keep.raw" --force
assert_eq "$(file_size "$OUT/keep.raw")" "$sz" "size of the old target after a failed --force restore"
[ "$(head -c 4 "$OUT/keep.raw")" = xxxx ] || die "old target overwritten by a failed restore"
pass
