#!/bin/bash
# A running guest whose setup changes between backups (real libvirtd and
# QEMU): a disk added, a disk resized, a bitmap removed inside QEMU, the
# domain undefined and defined again; each falls back to a full read where
# needed and keeps the others incremental. Also a network (NBD) disk,
# --disk, and a scratch directory without room.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"

why=$(vm_available) || { echo "SKIP: $why"; exit 0; }
vm_start_libvirtd || { echo "SKIP: libvirtd does not start on this machine"; exit 0; }
D=$(mktemp -d /var/tmp/cairn-t_changes.XXXXXX)
at_exit "rm -rf '$D'"
NAME=cairn-t-changes-$$
qemu-img create -q -f qcow2 "$D/vda.qcow2" 64M
qemu-img create -q -f qcow2 "$D/vdb.qcow2" 64M
vm_define "$NAME" "$D" "$D/vda.qcow2" "$D/vdb.qcow2"
R=$T/repo
cairn_q init "$R"

backup() { cairn_q backup "$R" --domain "$NAME" "$@"; cp "$T/last.err" "$T/backup.err"; }
disk_read() { "$CAIRN" snapshots "$R" --json | json "[d[\"read\"] for d in j[-1][\"disks\"] if d[\"name\"] == \"$1\"][0]"; }
disk_size() { "$CAIRN" snapshots "$R" --json | json "[d[\"size\"] for d in j[-1][\"disks\"] if d[\"name\"] == \"$1\"][0]"; }
ndisks() { "$CAIRN" snapshots "$R" --json | json 'len(j[-1]["disks"])'; }
own_checkpoints() { virsh checkpoint-list "$NAME" --name | grep -c '^cairn-' || true; }
crash_consistent() { # crash_consistent DISK
	local k
	rm -f "$T/x.raw"
	cairn_q restore "$R" latest --name "$NAME" --disk "$1" --to "$T/x.raw"
	k=$(records_prefix "$T/x.raw") || die "$1 of the latest snapshot is not crash-consistent"
	[ "$k" -gt 0 ] || die "$1 of the latest snapshot holds no records"
}

# a network disk: an NBD export (nbdkit, in memory) the guest reads and
# writes like the others; raw, so libvirt gives it no bitmap
nbdkit --unix "$D/net.sock" --pidfile "$D/nbdkit.pid" memory 32M
at_exit "kill \$(cat '$D/nbdkit.pid') 2>/dev/null || true"
for _ in $(seq 1 50); do [ -S "$D/net.sock" ] && break; sleep 0.1; done
chmod 0777 "$D/net.sock"
cat >"$D/net.xml" <<EOF
<disk type='network' device='disk'><driver name='qemu' type='raw'/>
<source protocol='nbd'><host transport='unix' socket='$D/net.sock'/></source>
<target dev='vdd' bus='virtio'/></disk>
EOF
virsh -q attach-device "$NAME" "$D/net.xml" --config

virsh -q start "$NAME"
vm_wait_records "$NAME" "$D" 100
backup
backup
assert_eq "$(disk_read vda)" incremental "vda before any change"

step "the network disk is backed up (read in full, no bitmap) and restores crash-consistent"
assert_eq "$(disk_read vdd)" full "the network disk"
assert_eq "$("$CAIRN" snapshots "$R" --json | json '[d["path"] for d in j[-1]["disks"] if d["name"] == "vdd"][0]')" nbd: "its recorded source"
crash_consistent vdd

step "--disk vdb: only that disk"
backup --disk vdb --name "$NAME-vdb"
assert_eq "$("$CAIRN" snapshots "$R" --json | json 'j[-1]["disks"][0]["name"]')" vdb "the one disk"
assert_eq "$(ndisks)" 1 "disks with --disk vdb"
expect_fail 1 "$CAIRN" backup "$R" --domain "$NAME" --disk vdz

step "a disk added: read in full, the others stay incremental"
qemu-img create -q -f qcow2 "$D/vdc.qcow2" 32M
chmod 0666 "$D/vdc.qcow2"
# the guest has no ACPI hotplug: add it to the definition and restart
# (a graceful stop keeps QEMU's persistent bitmaps)
virsh -q attach-disk "$NAME" "$D/vdc.qcow2" vdc --driver qemu --subdriver qcow2 --targetbus virtio --config
virsh -q destroy "$NAME" --graceful
virsh -q start "$NAME"
vm_wait_records "$NAME" "$D" 50
backup
assert_eq "$(ndisks)" 4 "disks after attaching vdc"
assert_eq "$(disk_read vdc)" full "the new disk"
assert_eq "$(disk_read vda)" incremental "vda beside the new disk"
grep -q "vdc: full read (new disk)" "$T/backup.err" || die "no note about the new disk"
backup
assert_eq "$(disk_read vdc)" incremental "the new disk on the next run"

step "a disk resized: read in full at its new size"
virsh -q blockresize "$NAME" vdb 96M
backup
assert_eq "$(disk_read vdb)" full "the resized disk"
assert_eq "$(disk_size vdb)" $((96 << 20)) "size of the resized disk"
assert_eq "$(disk_read vda)" incremental "vda beside the resized disk"
grep -q "vdb: full read (disk resized)" "$T/backup.err" || die "no note about the resize"
crash_consistent vda

step "the checkpoint's bitmap removed inside QEMU: full read, new chain"
ckpt=$("$CAIRN" snapshots "$R" --name "$NAME" --json | json 'j[-1]["checkpoint"]')
node=$(virsh qemu-monitor-command "$NAME" '{"execute":"query-block"}' |
	json '[b["inserted"]["node-name"] for b in j["return"] if "inserted" in b and "vda" in json.dumps(b)][0]')
virsh -q qemu-monitor-command "$NAME" \
	"{\"execute\":\"block-dirty-bitmap-remove\",\"arguments\":{\"node\":\"$node\",\"name\":\"$ckpt\"}}" >/dev/null
backup
assert_eq "$(disk_read vda)" full "vda after its bitmap was removed"
assert_eq "$(own_checkpoints)" 1 "cairn checkpoints after the new chain"
backup
assert_eq "$(disk_read vda)" incremental "vda on the next run"
crash_consistent vda

step "undefined and defined again (checkpoint metadata lost): full read, then incremental"
virsh -q dumpxml --inactive "$NAME" >"$D/redefine.xml"
virsh -q destroy "$NAME" --graceful
virsh -q undefine "$NAME" --checkpoints-metadata
virsh -q define "$D/redefine.xml"
virsh -q start "$NAME"
vm_wait_records "$NAME" "$D" 50
backup
assert_eq "$(disk_read vda)" full "vda after undefine/define"
grep -q "checkpoint is gone" "$T/backup.err" || die "no note about the lost checkpoint"
backup
assert_eq "$(disk_read vda)" incremental "vda on the run after that"
crash_consistent vda

step "a scratch directory without room: refused before anything starts"
mkdir -p "$D/small"
mount -t tmpfs -o size=1m tmpfs "$D/small"
at_exit "umount '$D/small' 2>/dev/null || true"
ckpts=$(virsh checkpoint-list "$NAME" --name | sort)
expect_fail 1 "$CAIRN" backup "$R" --domain "$NAME" --scratch-dir "$D/small"
grep -q "scratch directory" "$T/fail.err" || die "unclear error: $(cat "$T/fail.err")"
assert_eq "$(virsh checkpoint-list "$NAME" --name | sort)" "$ckpts" "checkpoints after the refusal"
umount "$D/small"
cairn_q check "$R"
pass
