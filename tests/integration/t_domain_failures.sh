#!/bin/bash
# A backup of a running guest that fails half-way (real libvirtd and QEMU):
# the guest destroyed, QEMU's NBD server stopped under it, the repository
# turned read-only. Each must exit non-zero with
# one line and leave no job, no new checkpoint, no scratch files and a
# clean repository; the next backup continues the chain correctly.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"

why=$(vm_available) || { echo "SKIP: $why"; exit 0; }
vm_start_libvirtd || { echo "SKIP: libvirtd does not start on this machine"; exit 0; }
D=$(mktemp -d /var/tmp/cairn-t_failures.XXXXXX)
at_exit "rm -rf '$D'"
NAME=cairn-t-failures-$$
qemu-img create -q -f qcow2 "$D/vda.qcow2" 64M
# incompressible data makes a full read last long enough to break it
head -c 384M /dev/urandom >"$D/vdb.raw"
vm_define "$NAME" "$D" "$D/vda.qcow2" "$D/vdb.raw"
R=$T/repo
cairn_q init "$R"
scratch_dirs() { { ls -d /var/tmp/cairn-?????? 2>/dev/null || true; } | wc -l; }
scratch_before=$(scratch_dirs)

virsh -q start "$NAME"
vm_wait_records "$NAME" "$D" 100
cairn_q backup "$R" --domain "$NAME"

# break_backup WHAT ACTION...: runs a full backup, does ACTION while it
# reads, and checks what it leaves behind
break_backup() {
	local what=$1 rc=0 bg ckpts last
	shift
	step "$what"
	ckpts=$(virsh checkpoint-list "$NAME" --name | sort)
	last=$(snap_id "$R" "$NAME")
	"$CAIRN" backup "$R" --domain "$NAME" --full >"$T/bg.out" 2>"$T/bg.err" &
	bg=$!
	# freeze cairn once QEMU exports the disks, so the failure lands
	# mid-backup
	for _ in $(seq 1 3000); do
		compgen -G "/var/tmp/cairn-??????/nbd.sock" >/dev/null && break
		sleep 0.01
	done
	kill -STOP "$bg"
	# the action may need cairn to go on: QEMU's nbd-server-stop drains
	# requests in flight, which waits for a reader that is stopped
	"$@" &
	local act=$!
	sleep 1
	kill -CONT "$bg"
	wait "$act" || die "$what: the action failed"
	wait "$bg" || rc=$?
	echo "  rc=$rc: $(cat "$T/bg.err")"
	[ "$rc" -ne 0 ] || die "$what: the backup succeeded"
	[ "$rc" -ne 130 ] || die "$what: reported as interrupted"
	[ "$(grep -c . "$T/bg.err")" -eq 1 ] || die "$what: expected one line on stderr"
	assert_eq "$(virsh checkpoint-list "$NAME" --name | sort)" "$ckpts" "$what: checkpoints"
	if [[ $(virsh domstate "$NAME") == running* ]]; then
		[[ $(virsh domjobinfo "$NAME") == *"Job type:"*None* ]] || die "$what: a job is still running"
	fi
	assert_eq "$(scratch_dirs)" "$scratch_before" "$what: scratch directories"
	assert_eq "$(snap_id "$R" "$NAME")" "$last" "$what: latest snapshot"
	mount -o remount,rw,bind "$R" 2>/dev/null || true
	cairn_q check "$R"
}

# next_is_good: the next backup has the last good snapshot as parent and
# restores to a crash-consistent disk
next_is_good() {
	local last
	last=$(snap_id "$R" "$NAME")
	cairn_q backup "$R" --domain "$NAME" --json
	assert_eq "$(json 'j["parent"]' <"$T/last.out")" "$last" "$1: parent of the next backup"
	rm -f "$T/a.raw"
	cairn_q restore "$R" latest --name "$NAME" --disk vda --to "$T/a.raw"
	records_prefix "$T/a.raw" >/dev/null || die "$1: the next backup is not crash-consistent"
}

kill_guest() { virsh -q destroy "$NAME"; }
break_backup "the guest destroyed mid-backup" kill_guest
virsh -q start "$NAME"
vm_wait_records "$NAME" "$D" 50
next_is_good "after the guest was destroyed"

stop_nbd() { virsh -q qemu-monitor-command "$NAME" '{"execute":"nbd-server-stop"}' >/dev/null; }
break_backup "the NBD server dropped mid-backup" stop_nbd
next_is_good "after the NBD server dropped"

# a bind mount of its own, made before cairn opens it, so that remounting it
# read-only reaches the directory cairn already has open
mount --bind "$R" "$R"
at_exit "umount '$R' 2>/dev/null || true"
read_only_repo() { mount -o remount,ro,bind "$R"; }
break_backup "the repository turned read-only mid-backup" read_only_repo
grep -q "Read-only" "$T/bg.err" || die "the error does not say the repository is read-only"
next_is_good "after the repository was read-only"
pass
