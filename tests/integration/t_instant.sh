#!/bin/bash
# cairn instant-restore (real libvirtd and QEMU under TCG): the test guest is
# backed up, destroyed and undefined, then started again under a new name
# straight from the repository (qcow2 overlays over cairn NBD servers). It
# boots, its writes land in the overlays (the repository is unchanged),
# --stop refuses while it still reads from the repository, and with --to
# the block pull makes the disks local: the servers are gone, the VM keeps
# running, and its disk is the backed-up data plus its own writes.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"

why=$(vm_available) || { echo "SKIP: $why"; exit 0; }
vm_start_libvirtd || { echo "SKIP: libvirtd does not start on this machine"; exit 0; }
D=$(mktemp -d /var/tmp/cairn-t_instant.XXXXXX)
chmod 0777 "$D"
at_exit "rm -rf '$D'"
NAME=cairn-t-inst-$$
NEW=cairn-t-inst-new-$$
PULLED=cairn-t-inst-pulled-$$
for n in "$NAME" "$NEW" "$PULLED"; do at_exit "vm_destroy $n"; done
at_exit "'$CAIRN' instant-restore --stop $NEW; '$CAIRN' instant-restore --stop $PULLED; rm -rf /var/lib/cairn/instant/$NEW"
procs() { { pgrep -f "nbdkit.*/instant/$1/" || true; } | wc -l; }

qemu-img create -q -f qcow2 "$D/vda.qcow2" 64M
vm_define "$NAME" "$D" "$D/vda.qcow2"
virsh -q start "$NAME" >/dev/null
vm_wait_records "$NAME" "$D" 200

step "back up the paused guest, then lose it"
virsh -q suspend "$NAME" >/dev/null
R=$T/repo
cairn_q init "$R"
cairn_q backup "$R" --domain "$NAME"
qemu-img convert -U -f qcow2 -O raw "$D/vda.qcow2" "$T/want-vda.raw"
base=$(records_prefix "$T/want-vda.raw")
vm_destroy "$NAME"
rm -f "$D/vda.qcow2" "$D/$NAME.console"
(cd "$R" && find . -type f | sort | xargs sha256sum) >"$T/repo.before"

step "instant-restore without --to: the guest boots from the repository"
t0=$(date +%s)
cairn_q instant-restore "$R" latest --from "$NAME" --name "$NEW"
grep -q "domain $NEW started" "$T/last.out" || die "no start line: $(cat "$T/last.out")"
[ "$(virsh domstate "$NEW")" = running ] || die "$NEW is not running"
echo "  started in $(( $(date +%s) - t0 ))s"
[ "$(procs "$NEW")" = 1 ] || die "expected one server for $NEW"
# the console file is the stored definition's, now written by NEW
for i in $(seq 1 120); do
	grep -q "cairn-guest: ready" "$D/$NAME.console" 2>/dev/null && break
	sleep 1
done
grep -q "cairn-guest: ready" "$D/$NAME.console" || die "guest did not boot: $(tail -5 "$D/$NAME.console" 2>&1)"
vm_wait_records "$NAME" "$D" 100

step "--stop refuses while the guest reads from the repository"
expect_fail 1 "$CAIRN" instant-restore --stop "$NEW"
assert_msg_matches "still reads from the repository"
step "the same name again is refused"
expect_fail 1 "$CAIRN" instant-restore "$R" latest --from "$NAME" --name "$NEW"
virsh -q destroy "$NEW" >/dev/null
(cd "$R" && find . -type f | sort | xargs sha256sum) >"$T/repo.after"
cmp "$T/repo.before" "$T/repo.after" || die "the repository changed while the guest wrote"
cairn_q instant-restore --stop "$NEW"
assert_eq "$(procs "$NEW")" 0 "servers after --stop"
vm_destroy "$NEW"
rm -rf "/var/lib/cairn/instant/$NEW" "$D/$NAME.console"

step "instant-restore --to DIR: block pull, servers gone, the VM keeps running"
cairn_q instant-restore "$R" latest --from "$NAME" --name "$PULLED" --to "$D/pulled"
grep -q "all disks are local now" "$T/last.out" || die "no pull line: $(cat "$T/last.out")"
assert_eq "$(procs "$PULLED")" 0 "servers after the pull"
[ "$(virsh domstate "$PULLED")" = running ] || die "$PULLED is not running after the pull"
for i in $(seq 1 120); do grep -q "cairn-guest: ready" "$D/$NAME.console" 2>/dev/null && break; sleep 1; done
vm_wait_records "$NAME" "$D" $((base + 50))
qemu-img info -U "$D/pulled/$PULLED-vda.qcow2" | grep -q "backing file" && die "overlay still has a backing file"
virsh -q destroy "$PULLED" >/dev/null
qemu-img convert -f qcow2 -O raw "$D/pulled/$PULLED-vda.qcow2" "$T/got-vda.raw"
n=$(records_prefix "$T/got-vda.raw") || die "pulled disk is not backup + guest writes"
echo "  backup held records 1..$base; the pulled disk 1..$n"
[ "$n" -ge $((base + 50)) ] || die "guest writes missing from the pulled disk"
cmp -n 65536 "$T/want-vda.raw" "$T/got-vda.raw" || die "first 64 KiB differ from the backup"
(cd "$R" && find . -type f | sort | xargs sha256sum) >"$T/repo.after2"
cmp "$T/repo.before" "$T/repo.after2" || die "the repository changed"
pass
