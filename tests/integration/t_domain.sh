#!/bin/bash
# Backups of a running libvirt guest (real libvirtd, QEMU under TCG): full
# and dirty-bitmap incrementals, crash consistency across two disks (qcow2
# and raw), paused guest equality, and the fallbacks: checkpoint deleted
# behind cairn's back, a foreign checkpoint, a backup job left running,
# bitmaps lost to a QEMU SIGKILL, and a shut-off domain.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"

why=$(vm_available) || { echo "SKIP: $why"; exit 0; }
vm_start_libvirtd || { echo "SKIP: libvirtd does not start on this machine"; exit 0; }
D=$(mktemp -d /var/tmp/cairn-t_domain.XXXXXX)
at_exit "rm -rf '$D'"
NAME=cairn-t-domain-$$
qemu-img create -q -f qcow2 "$D/vda.qcow2" 64M
truncate -s 64M "$D/vdb.raw"
# a disk with 512 MiB of incompressible data makes a full read take long
# enough to interrupt it
head -c 512M /dev/urandom >"$D/vdc.raw"
vm_define "$NAME" "$D" "$D/vda.qcow2" "$D/vdb.raw" "$D/vdc.raw"
R=$T/repo
cairn_q init "$R"

# backup_json: backs up the domain, leaves the JSON result in $T/last.out
backup_json() { cairn_q backup "$R" --domain "$NAME" --json "$@"; }
restore_disk() { # restore_disk SNAP DISK OUT
	rm -f "$3"
	cairn_q restore "$R" "$1" --name "$NAME" --disk "$2" --to "$3"
}
last_kind() { "$CAIRN" snapshots "$R" --json | json 'j[-1]["kind"]'; }
checkpoints() { local l; l=$(virsh checkpoint-list "$NAME" --name); grep -c "^cairn-" <<<"$l" || true; }

step "full backup of the running guest while it writes"
virsh -q start "$NAME"
vm_wait_records "$NAME" "$D" 300
backup_json
full_read=$(json 'j["bytes_read"]' <"$T/last.out")
full_id=$(json 'j["snapshot"]' <"$T/last.out")
assert_eq "$(checkpoints)" 1 "cairn checkpoints after the full"
restore_disk "$full_id" vda "$T/a.raw"
restore_disk "$full_id" vdb "$T/b.raw"
ka=$(records_prefix "$T/a.raw") || die "vda of the full is not crash-consistent"
kb=$(records_prefix "$T/b.raw") || die "vdb of the full is not crash-consistent"
echo "  full: vda holds records 1..$ka, vdb 1..$kb"
[ "$ka" -ge 300 ] || die "the full missed records the guest had written ($ka)"
[ "$kb" -eq "$ka" ] || [ "$kb" -eq $((ka - 1)) ] || die "disks not from one instant: vda $ka, vdb $kb"

step "incrementals while it writes read only what changed (qcow2), the raw disk in full"
vm_wait_records "$NAME" "$D" $(( $(vm_written "$NAME" "$D") + 200 ))
backup_json
inc_id=$(json 'j["snapshot"]' <"$T/last.out")
inc_read=$(json 'j["bytes_read"]' <"$T/last.out")
assert_eq "$(json 'j["parent"]' <"$T/last.out")" "$full_id" "parent of the incremental"
assert_eq "$(last_kind)" incremental "kind of the incremental"
restore_disk "$inc_id" vda "$T/a2.raw"
restore_disk "$inc_id" vdb "$T/b2.raw"
ka2=$(records_prefix "$T/a2.raw") || die "vda of the incremental is not crash-consistent"
kb2=$(records_prefix "$T/b2.raw") || die "vdb of the incremental is not crash-consistent"
echo "  incremental: vda 1..$ka2, vdb 1..$kb2; read $inc_read bytes (full read $full_read)"
# raw disks are read in full; of vda only the chunks holding new records
raw_now=$(python3 -c 'import os,sys; print(sum(os.stat(f).st_blocks * 512 for f in sys.argv[1:]))' "$D/vdb.raw" "$D/vdc.raw")
vda_max=$(( (ka2 - ka + 1) * 4096 + 2 * 262144 ))
[ "$inc_read" -le $((raw_now + vda_max)) ] ||
	die "the incremental read $inc_read bytes; raw disks hold $raw_now, vda changed at most $vda_max"
[ "$ka2" -gt "$ka" ] || die "the incremental does not hold the new records"
[ "$kb2" -eq "$ka2" ] || [ "$kb2" -eq $((ka2 - 1)) ] || die "disks not from one instant: vda $ka2, vdb $kb2"
assert_eq "$(checkpoints)" 1 "cairn checkpoints after the incremental (the older one is dropped)"

step "--quiesce=auto without a guest agent: a note, and a crash-consistent backup"
backup_json --quiesce=auto
grep -q "cannot quiesce" "$T/last.err" || die "no note about the missing guest agent"
cairn_q snapshots "$R" --json
assert_eq "$(json 'j[-1]["consistency"]' <"$T/last.out")" crash "consistency of the --quiesce=auto snapshot"
[[ $(virsh domstate "$NAME") == running* ]] || die "the guest is not running after --quiesce"

step "paused guest: the restored disks equal copies taken while paused"
virsh -q suspend "$NAME"
backup_json
pid=$(json 'j["snapshot"]' <"$T/last.out")
qemu-img convert -U -f qcow2 -O raw "$D/vda.qcow2" "$T/vda-paused.raw"
cp --sparse=always "$D/vdb.raw" "$T/vdb-paused.raw"
restore_disk "$pid" vda "$T/a3.raw"
restore_disk "$pid" vdb "$T/b3.raw"
cmp "$T/a3.raw" "$T/vda-paused.raw" || die "vda restored from the paused guest differs"
cmp "$T/b3.raw" "$T/vdb-paused.raw" || die "vdb restored from the paused guest differs"

step "an incremental of the paused guest reads no qcow2 data, only the raw disk"
backup_json
idle_read=$(json 'j["bytes_read"]' <"$T/last.out")
raw_data=$(python3 -c 'import os,sys; print(sum(os.stat(f).st_blocks * 512 for f in sys.argv[1:]))' "$D/vdb.raw" "$D/vdc.raw")
echo "  read $idle_read bytes; the raw disks hold $raw_data allocated bytes"
[ "$idle_read" -le $((raw_data + 2 * 262144)) ] || die "an idle incremental read $idle_read bytes"
restore_disk latest vda "$T/a4.raw"
cmp "$T/a4.raw" "$T/vda-paused.raw" || die "vda of the idle incremental differs"
virsh -q resume "$NAME"

step "checkpoint deleted behind cairn's back: full read, new chain"
for c in $(virsh checkpoint-list "$NAME" --name); do virsh -q checkpoint-delete "$NAME" "$c"; done
backup_json
assert_eq "$(last_kind)" full "kind after losing the checkpoint"
grep -q "full read" "$T/last.err" || die "no note saying why the backup read everything"

step "a foreign checkpoint is left alone and does not block"
virsh -q checkpoint-create-as "$NAME" admin-ckpt --diskspec vda,checkpoint=bitmap --diskspec vdb,checkpoint=no >/dev/null
backup_json
assert_eq "$(last_kind)" incremental "kind with a foreign checkpoint present"
[[ $'\n'$(virsh checkpoint-list "$NAME" --name)$'\n' == *$'\n'admin-ckpt$'\n'* ]] || { virsh checkpoint-list "$NAME"; cat "$T/last.err"; die "cairn removed a foreign checkpoint"; }

step "a pull-mode job left by a killed cairn is ended"
mkdir -p "$D/cairn-stale"; chmod 0777 "$D/cairn-stale"
cat >"$D/stale.xml" <<EOF
<domainbackup mode='pull'><server transport='unix' socket='$D/cairn-stale/nbd.sock'/>
<disks><disk name='vda' backup='yes' type='file'><scratch file='$D/cairn-stale/s'/></disk>
<disk name='vdb' backup='no'/></disks></domainbackup>
EOF
virsh -q backup-begin "$NAME" "$D/stale.xml" >/dev/null
backup_json
sleep 1
[[ $(virsh domjobinfo "$NAME") == *"Job type:"*None* ]] || { virsh domjobinfo "$NAME"; cat "$T/last.err"; die "the stale job is still running"; }

step "QEMU killed with SIGKILL: bitmaps lost, full read, new chain"
virsh -q checkpoint-delete "$NAME" admin-ckpt --metadata 2>/dev/null || true
pkill -9 -f "qemu-system.*$NAME"
sleep 2
virsh -q start "$NAME"
sleep 3
vm_wait_records "$NAME" "$D" 100
backup_json
grep -q "inconsistent" "$T/last.err" || die "no note about the inconsistent bitmaps"
backup_json
assert_eq "$(last_kind)" incremental "kind after the new chain"

step "SIGTERM during a backup: job ended, its checkpoint dropped, repository clean"
ckpts_before=$(virsh checkpoint-list "$NAME" --name | sort)
last_snap=$(snap_id "$R" "$NAME")
rc=0
"$CAIRN" backup "$R" --domain "$NAME" --full >"$T/bg.out" 2>"$T/bg.err" &
bg=$!
sleep 0.7
kill -TERM "$bg"
wait "$bg" || rc=$?
echo "  backup after SIGTERM: rc=$rc $(cat "$T/bg.err")"
assert_eq "$rc" 130 "exit status of an interrupted backup"
assert_eq "$(virsh checkpoint-list "$NAME" --name | sort)" "$ckpts_before" "checkpoints after the interrupted backup"
[[ $(virsh domjobinfo "$NAME") == *"Job type:"*None* ]] || die "the interrupted backup left its job running"
assert_eq "$(snap_id "$R" "$NAME")" "$last_snap" "latest snapshot after the interrupted backup"
cairn_q check "$R"
backup_json
assert_eq "$(json 'j["parent"]' <"$T/last.out")" "$last_snap" "the next backup follows the last good one"
assert_eq "$(last_kind)" incremental "kind of the backup after SIGTERM"

step "--all --exclude GLOB: every defined domain but the excluded ones, one snapshot each"
truncate -s 8M "$D/off.raw"
printf 'offline disk' | dd of="$D/off.raw" conv=notrunc status=none
vm_define "$NAME-off" "$D" "$D/off.raw"
before=$(snap_count "$R")
main_before=$(snap_id "$R" "$NAME")
"$CAIRN" backup "$R" --all --exclude "$NAME" >"$T/all.out" 2>"$T/all.err" || true
cat "$T/all.out"
snap_id "$R" "$NAME-off" >/dev/null || die "--all did not back up $NAME-off: $(cat "$T/all.err")"
assert_eq "$(snap_id "$R" "$NAME")" "$main_before" "latest snapshot of the excluded domain"
[ "$(snap_count "$R")" -gt "$before" ] || die "--all added no snapshot"
restore_disk() { rm -f "$4"; cairn_q restore "$R" "$1" --name "$2" --disk "$3" --to "$4"; }
restore_disk latest "$NAME-off" vda "$T/offdom.raw"
cmp "$T/offdom.raw" "$D/off.raw" || die "the shut-off domain's disk differs"
expect_fail 2 "$CAIRN" backup "$R" --exclude "$NAME"

step "shut-off domain: the images are read directly"
virsh -q destroy "$NAME"
backup_json
restore_disk latest "$NAME" vda "$T/off.raw"
qemu-img compare -q -f raw -F qcow2 "$T/off.raw" "$D/vda.qcow2" || die "offline backup differs"

step "no scratch files left, repository clean"
ls -d /var/tmp/cairn-?????? 2>/dev/null && die "scratch directories left behind"
cairn_q check "$R" --read-data
pass
