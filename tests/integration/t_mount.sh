#!/bin/bash
# cairn mount / umount: the disk of a snapshot of an ext4 image appears as a
# read-only file DIR/vda (nbdfuse over a private cairn server); a file is
# read out of it with debugfs and, where loop devices work, through a
# read-only loop mount; umount leaves nothing mounted or running.
. "$(dirname "$0")/lib.sh"

command -v nbdfuse >/dev/null || { echo "SKIP: no nbdfuse (libnbd-bin)"; exit 0; }
[ -c /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 0; }
command -v debugfs >/dev/null || { echo "SKIP: no debugfs (e2fsprogs)"; exit 0; }

R=$T/repo
M=$T/mnt
mkdir -p "$M" "$T/src/etc"
at_exit "'$CAIRN' umount '$M'; umount -l '$M'"
gen_text payload 300000 >"$T/src/etc/payload.txt"
mkimg_fs "$T/fs.img" 64M "$T/src/etc"
cairn_q init "$R"
cairn_q backup "$R" --image vda="$T/fs.img" --name fsimg

mounted() { grep -c " $M " /proc/mounts || true; }
procs() { { pgrep -f "(nbdkit|nbdfuse).*$T/|nbdfuse.*$M" || true; } | wc -l; }

step "mount: DIR/vda is the disk, read-only"
cairn_q mount "$R" latest --name fsimg "$M"
grep -q "cairn umount $M" "$T/last.out" || die "no umount hint: $(cat "$T/last.out")"
assert_eq "$(mounted)" 1 "FUSE mounts at $M"
[ -f "$M/vda" ] || die "no $M/vda"
assert_eq "$(file_size "$M/vda")" "$(file_size "$T/fs.img")" "size of $M/vda"
assert_same "$T/fs.img" "$M/vda"
if echo x 2>/dev/null >>"$M/vda"; then die "$M/vda is writable"; fi

step "a file read out with debugfs"
debugfs -R "cat /etc/payload.txt" "$M/vda" >"$T/debugfs.out" 2>/dev/null
assert_same "$T/src/etc/payload.txt" "$T/debugfs.out"

step "a file read through a read-only loop mount (when loop devices work here)"
if loop=$(losetup -r -f --show "$M/vda" 2>/dev/null); then
	at_exit "umount '$T/loopmnt'; losetup -d '$loop'"
	mkdir -p "$T/loopmnt"
	if mount -o ro,noload "$loop" "$T/loopmnt" 2>/dev/null; then
		assert_same "$T/src/etc/payload.txt" "$T/loopmnt/etc/payload.txt"
		step "umount while the loop device holds the file: refused, still mounted"
		expect_fail 1 "$CAIRN" umount "$M"
		assert_msg_matches "busy"
		assert_eq "$(mounted)" 1 "FUSE mounts after a refused umount"
		umount "$T/loopmnt"
	else
		echo "  (mount of $loop failed here; loop step skipped)"
	fi
	losetup -d "$loop"
else
	echo "  (no loop devices here; loop step skipped)"
fi

step "a second mount on the same DIR is refused"
expect_fail 1 "$CAIRN" mount "$R" latest "$M"
assert_msg_matches "already mounted"

step "umount: nothing left mounted or running"
cairn_q umount "$M"
for i in $(seq 1 50); do [ "$(procs)" = 0 ] && break; sleep 0.1; done
assert_eq "$(mounted)" 0 "FUSE mounts after umount"
assert_eq "$(procs)" 0 "nbdkit/nbdfuse processes after umount"
[ ! -e "$M/vda" ] || die "$M/vda still there"
expect_fail 1 "$CAIRN" umount "$M"
assert_msg_matches "not mounted"

step "bad input fails with one line and mounts nothing"
expect_fail 1 "$CAIRN" mount "$R" latest --disk vdz "$M"
expect_fail 1 "$CAIRN" mount "$R" latest "$T/no-such-dir"
expect_fail 4 env CAIRN_PASSWORD=wrong "$CAIRN" mount "$R" latest "$M"
assert_eq "$(mounted)" 0 "FUSE mounts after the failures"
assert_eq "$(procs)" 0 "processes after the failures"
pass
