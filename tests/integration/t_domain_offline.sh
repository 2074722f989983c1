#!/bin/bash
# Shut-off domains (real libvirtd and QEMU): a full read of the images with
# a checkpoint cairn keeps itself (persistent qcow2 bitmap + REDEFINE), an
# incremental through that bitmap, the chain continuing into a running
# backup and back, refusing an image another process has open, and two
# domains backed up at once with --parallel.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"

why=$(vm_available) || { echo "SKIP: $why"; exit 0; }
vm_start_libvirtd || { echo "SKIP: libvirtd does not start on this machine"; exit 0; }
D=$(mktemp -d /var/tmp/cairn-t_offline.XXXXXX)
at_exit "rm -rf '$D'"
NAME=cairn-t-offline-$$
qemu-img create -q -f qcow2 "$D/vda.qcow2" 64M
truncate -s 16M "$D/vdb.raw"
qemu-io -f qcow2 -c 'write -P 0x11 0 8M' "$D/vda.qcow2" >/dev/null
printf 'raw disk data' | dd of="$D/vdb.raw" conv=notrunc status=none
vm_define "$NAME" "$D" "$D/vda.qcow2" "$D/vdb.raw"
R=$T/repo
cairn_q init "$R"

# backup_json: backs up the domain; the JSON result stays in $T/backup.json
backup_json() { cairn_q backup "$R" --domain "$NAME" --json "$@"; cp "$T/last.out" "$T/backup.json"; }
last_snapshot() { "$CAIRN" snapshots "$R" --json | json "$1"; }
own_checkpoints() { virsh checkpoint-list "$NAME" --name | grep -c '^cairn-' || true; }
own_bitmaps() {
	qemu-img info -U --output=json "$D/vda.qcow2" |
		json 'len([b for b in j["format-specific"]["data"].get("bitmaps", []) if b["name"].startswith("cairn-")])'
}
restore_vda() { rm -f "$2"; cairn_q restore "$R" "$1" --name "$NAME" --disk vda --to "$2"; }

step "full backup of a shut-off domain: a checkpoint and its qcow2 bitmap"
backup_json
full=$(json 'j["snapshot"]' <"$T/backup.json")
assert_eq "$(last_snapshot 'j[-1]["consistency"]')" offline "consistency"
assert_eq "$(last_snapshot 'j[-1]["kind"]')" full "kind"
assert_eq "$(own_checkpoints)" 1 "cairn checkpoints after the offline full"
assert_eq "$(own_bitmaps)" 1 "cairn bitmaps in vda"
restore_vda "$full" "$T/a.raw"
qemu-img compare -q -f raw -F qcow2 "$T/a.raw" "$D/vda.qcow2" || die "offline full differs"

step "offline incremental reads only what changed in the qcow2 disk"
qemu-io -f qcow2 -c 'write -P 0x22 20M 1M' "$D/vda.qcow2" >/dev/null
backup_json
read=$(json 'j["bytes_read"]' <"$T/backup.json")
assert_eq "$(json 'j["parent"]' <"$T/backup.json")" "$full" "parent of the offline incremental"
assert_eq "$(last_snapshot 'j[-1]["disks"][0]["read"]')" incremental "vda read mode"
assert_eq "$(last_snapshot 'j[-1]["disks"][1]["read"]')" full "vdb (raw) read mode"
# 1 MiB changed in vda; vdb is read in full (16 MiB, mostly holes)
[ "$read" -le $((2 * 1048576 + 262144)) ] || die "the offline incremental read $read bytes"
restore_vda latest "$T/b.raw"
qemu-img compare -q -f raw -F qcow2 "$T/b.raw" "$D/vda.qcow2" || die "offline incremental differs"
assert_eq "$(own_checkpoints)" 1 "cairn checkpoints after the offline incremental"
assert_eq "$(own_bitmaps)" 1 "cairn bitmaps in vda after the offline incremental"

step "the chain continues when the guest runs: a live incremental from the offline checkpoint"
off_snap=$(snap_id "$R" "$NAME")
virsh -q start "$NAME"
vm_wait_records "$NAME" "$D" 200
backup_json
assert_eq "$(json 'j["parent"]' <"$T/backup.json")" "$off_snap" "parent of the live backup"
assert_eq "$(last_snapshot 'j[-1]["disks"][0]["read"]')" incremental "vda read mode while running"
live_read=$(json 'j["bytes_read"]' <"$T/backup.json")
[ "$live_read" -le $((16 * 1048576 + 8 * 1048576)) ] || die "the live incremental read $live_read bytes"
restore_vda latest "$T/c.raw"
records_prefix "$T/c.raw" >/dev/null || die "the live incremental is not crash-consistent"

step "and back: shut off gracefully, an offline incremental from the live checkpoint"
virsh -q destroy "$NAME" --graceful
live_snap=$(snap_id "$R" "$NAME")
backup_json
assert_eq "$(json 'j["parent"]' <"$T/backup.json")" "$live_snap" "parent of the offline backup"
assert_eq "$(last_snapshot 'j[-1]["disks"][0]["read"]')" incremental "vda read mode after shutdown"
restore_vda latest "$T/d.raw"
qemu-img compare -q -f raw -F qcow2 "$T/d.raw" "$D/vda.qcow2" || die "offline incremental after shutdown differs"
assert_eq "$(own_bitmaps)" 1 "cairn bitmaps in vda after the round trip"

step "an image another process has open is refused, and nothing is left behind"
before=$(snap_count "$R")
ckpts=$(virsh checkpoint-list "$NAME" --name | sort)
qemu-nbd -f qcow2 --socket="$D/holder.sock" "$D/vda.qcow2" &
holder=$!
at_exit "kill $holder 2>/dev/null || true"
for _ in $(seq 1 50); do [ -S "$D/holder.sock" ] && break; sleep 0.1; done
expect_fail 1 "$CAIRN" backup "$R" --domain "$NAME"
grep -q "in use" "$T/fail.err" || die "no 'in use' in: $(cat "$T/fail.err")"
kill "$holder"; wait "$holder" 2>/dev/null || true
assert_eq "$(snap_count "$R")" "$before" "snapshots after the refusal"
assert_eq "$(virsh checkpoint-list "$NAME" --name | sort)" "$ckpts" "checkpoints after the refusal"
assert_eq "$(own_bitmaps)" 1 "cairn bitmaps after the refusal"

step "--parallel 2: two domains at once into one repository"
qemu-img create -q -f qcow2 "$D/p.qcow2" 32M
qemu-io -f qcow2 -c 'write -P 0x33 0 4M' "$D/p.qcow2" >/dev/null
vm_define "$NAME-p" "$D" "$D/p.qcow2"
qemu-io -f qcow2 -c 'write -P 0x44 30M 1M' "$D/vda.qcow2" >/dev/null
cairn_q backup "$R" --domain "$NAME" --domain "$NAME-p" --parallel 2
grep -c "saved" "$T/last.out" | grep -qx 2 || die "expected two saved snapshots: $(cat "$T/last.out")"
rm -f "$T/p.raw"
cairn_q restore "$R" latest --name "$NAME-p" --disk vda --to "$T/p.raw"
qemu-img compare -q -f raw -F qcow2 "$T/p.raw" "$D/p.qcow2" || die "parallel: $NAME-p differs"
restore_vda latest "$T/e.raw"
qemu-img compare -q -f raw -F qcow2 "$T/e.raw" "$D/vda.qcow2" || die "parallel: $NAME differs"
cairn_q check "$R" --read-data
pass
