#!/bin/bash
# Block devices: back up a (loop) block device directly; restore onto a block
# device either writes the image in place (zero chunks as explicit zeros) or
# is refused — it must never replace the device node with a regular file.
. "$(dirname "$0")/lib.sh"

command -v losetup >/dev/null || { echo "SKIP: no losetup"; exit 0; }
loop_attach() { # loop_attach FILE → prints /dev/loopN
	losetup -f --show "$1" 2>"$T/losetup.err"
}

R=$T/repo
cairn_q init "$R"
truncate -s 16M "$T/src.img"
write_at "$T/src.img" $((3 * 1048576 + 4096)) seed-bd1 $((2 * 1048576))
write_at "$T/src.img" $((15 * 1048576)) seed-bd2 1048576

SRC=$(loop_attach "$T/src.img") || { echo "SKIP: cannot attach a loop device ($(cat "$T/losetup.err"))"; exit 0; }
at_exit "losetup -d '$SRC'"
[ -b "$SRC" ] || die "$SRC is not a block device"

step "back up the block device $SRC"
cairn_q backup "$R" --image "disk0=$SRC" --name bdev --json
cat "$T/last.out"
cairn_q ls "$R" latest --name bdev --json
assert_eq "$(json 'j["disks"][0]["size"]' <"$T/last.out")" $((16 * 1048576)) "size of the block device disk"
restore_check "$R" latest "$T/src.img" --name bdev
step "its zero ranges are not stored"
cairn_q ls "$R" latest --name bdev --json
[ "$(json 'j["disks"][0]["zero_chunks"]' <"$T/last.out")" -ge 1 ] || die "no zero chunks recorded for a mostly-zero block device"

step "restore onto a block device (through a private device node, so /dev stays safe)"
head -c $((16 * 1048576)) /dev/zero | tr '\0' '\377' >"$T/tgt.img"
TGT=$(loop_attach "$T/tgt.img") || die "cannot attach a second loop device"
at_exit "losetup -d '$TGT'"
majmin=$(stat -c '%t %T' "$TGT")
NODE=$T/tgtdev
mknod "$NODE" b $((16#${majmin% *})) $((16#${majmin#* }))
if ! head -c 1 "$NODE" >/dev/null 2>&1; then
	echo "  (device nodes are not usable in $T: nodev?) — skipping the restore-to-device part"
	pass; exit 0
fi
rc=0
"$CAIRN" restore "$R" latest --name bdev --to "$NODE" --force >"$T/out" 2>"$T/err" || rc=$?
echo "  restore --to <block device> --force: rc=$rc $(cat "$T/err")"
[ -b "$NODE" ] || die "restore replaced the block device node $NODE with a $(stat -c %F "$NODE")"
assert_no_partial "$T" tgtdev
case $rc in
0)
	sync
	cmp "$TGT" "$T/src.img" || die "block device content after restore differs (zero chunks must be written as zeros)"
	echo "  restored in place; zero chunks written as explicit zeros"
	;;
1 | 2)
	[ "$(wc -l <"$T/err")" -eq 1 ] || die "refusal is not one line: $(cat "$T/err")"
	echo "  restore onto a block device refused"
	;;
*) die "restore onto a block device exited $rc" ;;
esac
pass
