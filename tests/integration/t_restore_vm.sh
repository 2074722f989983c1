#!/bin/bash
# Whole-VM restore on "a new host" (real libvirtd and QEMU): the repository
# is copied elsewhere, the VM and its disks are deleted, and `restore
# --define --start` brings it back: the guest boots from the restored disks
# and its init prints a checksum of each disk's first MiB, which must equal
# the checksum taken while the original was paused for the backup. Also:
# qcow2 and raw, a copy under another name (--as), a disk written in place
# onto a block device (loop), refusal to clobber a domain or a file, a
# domain whose network this host lacks (clear error, then --network-map and
# --new-macs), and --define on a snapshot that holds no domain.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"

why=$(vm_available) || { echo "SKIP: $why"; exit 0; }
vm_start_libvirtd || { echo "SKIP: libvirtd does not start on this machine"; exit 0; }
D=$(mktemp -d /var/tmp/cairn-t_restore_vm.XXXXXX)
chmod 0777 "$D"
at_exit "rm -rf '$D'"
NAME=cairn-t-rvm-$$
COPY=cairn-t-rvm-copy-$$
BLK=cairn-t-rvm-blk-$$
NET=cairn-t-rvm-net-$$
# the definition as a file first: grep -q closing a pipe early would fail
# virsh with SIGPIPE under pipefail
dom_xml() { virsh dumpxml "$1" >"$T/dom.xml"; }
for n in "$NAME" "$COPY" "$COPY-x" "$BLK" "$NET" "$NET-2"; do at_exit "vm_destroy $n"; done

qemu-img create -q -f qcow2 "$D/vda.qcow2" 64M
truncate -s 32M "$D/vdb.raw"
vm_define "$NAME" "$D" "$D/vda.qcow2" "$D/vdb.raw"
virsh -q start "$NAME" >/dev/null
vm_wait_records "$NAME" "$D" 300

step "back up the paused guest; keep what its disks held"
virsh -q suspend "$NAME" >/dev/null
R=$T/repo
cairn_q init "$R"
cairn_q backup "$R" --domain "$NAME"
qemu-img convert -U -f qcow2 -O raw "$D/vda.qcow2" "$T/want-vda.raw"
cp "$D/vdb.raw" "$T/want-vdb.raw"
sum_vda=$(head -c 1M "$T/want-vda.raw" | md5sum | cut -d' ' -f1)
sum_vdb=$(head -c 1M "$T/want-vdb.raw" | md5sum | cut -d' ' -f1)
orig_uuid=$(virsh domuuid "$NAME")

step "disaster: the VM, its disks and the original repository are gone"
vm_destroy "$NAME"
rm -f "$D/vda.qcow2" "$D/vdb.raw" "$D/$NAME.console"
NEW=$T/newhost-repo
cp -a "$R" "$NEW"
rm -rf "$R"

step "restore --define --start on the new host: the guest boots from its restored disks"
cairn_q restore "$NEW" latest --name "$NAME" --to "$D/restored" --define --start
grep -q "defined domain $NAME and started it" "$T/last.out" || die "no define/start line: $(cat "$T/last.out")"
[ "$(virsh domstate "$NAME")" = running ] || die "restored domain is not running"
[ "$(virsh domuuid "$NAME")" != "$orig_uuid" ] || die "restored domain kept the old UUID"
virsh domblklist "$NAME" --details >"$T/blk"; grep -q "$D/restored/$NAME-vda.raw" "$T/blk" ||
	die "vda not at the restored file: $(virsh domblklist "$NAME" --details)"
[ "$(virsh dumpxml "$NAME" | grep -c "<driver name='qemu' type='raw'")" = 2 ] ||
	die "restored disks are not raw: $(virsh dumpxml "$NAME" | grep '<driver')"
for i in $(seq 1 90); do
	grep -q "cairn-guest: boot-sum vdb" "$D/$NAME.console" 2>/dev/null && break
	sleep 1
done
grep -q "cairn-guest: boot-sum vda $sum_vda" "$D/$NAME.console" ||
	die "guest saw other data on vda: $(grep boot-sum "$D/$NAME.console" || echo no boot line)"
grep -q "cairn-guest: boot-sum vdb $sum_vdb" "$D/$NAME.console" || die "guest saw other data on vdb"

step "the same name again is refused before anything is written"
expect_fail 1 "$CAIRN" restore "$NEW" latest --name "$NAME" --to "$D/again" --define
assert_msg_matches "domain named $NAME already exists.*--as"
[ -z "$(ls -A "$D/again" 2>/dev/null)" ] || die "files written for a refused restore"

step "a qcow2 copy under another name, defined but not started"
cairn_q restore "$NEW" latest --name "$NAME" --to "$D/copy" --define --as "$COPY" --format qcow2
[ "$(virsh domstate "$COPY")" = "shut off" ] || die "copy should be defined, not running"
qemu-img compare -q -f qcow2 -F raw "$D/copy/$COPY-vda.qcow2" "$T/want-vda.raw" || die "vda qcow2 differs"
qemu-img compare -q -f qcow2 -F raw "$D/copy/$COPY-vdb.qcow2" "$T/want-vdb.raw" || die "vdb qcow2 differs"
dom_xml "$COPY"; grep -q "type='qcow2'" "$T/dom.xml" || die "copy's driver type is not qcow2"

step "existing files are not clobbered"
echo keep >"$D/copy/$COPY-x-vdb.qcow2"
expect_fail 1 "$CAIRN" restore "$NEW" latest --name "$NAME" --to "$D/copy" --define --as "$COPY-x" --format qcow2
assert_msg_matches "exists.*--force"
virsh dominfo "$COPY-x" >/dev/null 2>&1 && die "domain defined although its files exist"
assert_eq "$(cat "$D/copy/$COPY-x-vdb.qcow2")" keep "the existing file"
assert_file_absent "$D/copy/$COPY-x-vda.qcow2"

step "one disk in place onto a block device, the other into a directory"
if loop=$(truncate -s 64M "$D/loop.img" && losetup -f --show "$D/loop.img" 2>/dev/null); then
	at_exit "losetup -d $loop"
	dd if=/dev/urandom of="$loop" bs=1M count=64 status=none # zeros must be written
	expect_fail 1 "$CAIRN" restore "$NEW" latest --name "$NAME" --disk "vda=$loop" --to "$D/blk"
	assert_msg_matches "block device.*--force"
	cairn_q restore "$NEW" latest --name "$NAME" --disk "vda=$loop" --disk vdb --to "$D/blk" \
		--define --as "$BLK" --force
	cmp "$loop" "$T/want-vda.raw" || die "block device differs from the snapshot"
	dom_xml "$BLK"; grep -q "<source dev='$loop'" "$T/dom.xml" || die "vda is not the block device"
	cmp "$D/blk/$BLK-vdb.raw" "$T/want-vdb.raw" || die "vdb differs"
else
	echo "(no loop device here: block-device restore not tested)"
fi

step "a domain on a network this host does not have"
qemu-img create -q -f qcow2 "$D/net.qcow2" 16M
qemu-io -f qcow2 -c 'write -P 0x5a 0 1M' "$D/net.qcow2" >/dev/null
cat >"$D/net.xml" <<EOF
<domain type='qemu'><name>$NET</name><memory unit='MiB'>64</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='$D/net.qcow2'/><target dev='vda' bus='virtio'/></disk>
    <interface type='network'><mac address='52:54:00:c0:ff:ee'/><source network='cairn-nowhere'/></interface>
  </devices></domain>
EOF
virsh -q define "$D/net.xml" >/dev/null
cairn_q init "$R.net"
cairn_q backup "$R.net" --domain "$NET"
expect_fail 1 "$CAIRN" restore "$R.net" latest --to "$D/net-r" --define --as "$NET-2"
assert_msg_matches "network cairn-nowhere.*--network-map cairn-nowhere="
[ -z "$(ls -A "$D/net-r" 2>/dev/null)" ] || die "files written although the network is missing"
expect_fail_any "1 2" "$CAIRN" restore "$R.net" latest --to "$D/net-r" --define --as "$NET-2" \
	--network-map nosuch=x
assert_msg_matches "no interface on nosuch"
ISO=cairn-t-iso-$$
cat >"$D/iso.xml" <<EOF
<network><name>$ISO</name><bridge name='cairnbr$(( $$ % 10000 ))'/></network>
EOF
virsh -q net-define "$D/iso.xml" >/dev/null
at_exit "virsh -q net-destroy $ISO; virsh -q net-undefine $ISO"
virsh -q net-start "$ISO" >/dev/null
cairn_q restore "$R.net" latest --to "$D/net-r" --define --as "$NET-2" \
	--network-map "cairn-nowhere=$ISO" --new-macs
dom_xml "$NET-2"; grep -q "<source network='$ISO'" "$T/dom.xml" || die "network not remapped"
dom_xml "$NET-2"; grep -q "52:54:00:c0:ff:ee" "$T/dom.xml" && die "old MAC kept despite --new-macs"
dom_xml "$NET-2"; grep -q "<mac address=" "$T/dom.xml" || die "libvirt gave no new MAC"
virsh -q undefine "$NET-2" >/dev/null

step "--define needs a domain snapshot"
head -c 4M /dev/urandom >"$T/img.raw"
cairn_q backup "$R.net" --image "$T/img.raw" --name plainimage
expect_fail 1 "$CAIRN" restore "$R.net" latest --name plainimage --to "$D/img-r" --define
assert_msg_matches "not a libvirt domain"

step "the repository still checks clean"
cairn_q check "$NEW"
pass
