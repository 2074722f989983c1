#!/bin/bash
# `cairn backup --domain NAME --quiesce[=auto]` against a real QEMU guest
# agent (qemu-ga in the test guest, VM_AGENT=1 in vm.sh) that has a mounted
# ext4 filesystem to freeze, and against the default guest, which has no
# agent:
#   - with the agent, --quiesce and --quiesce=auto record "quiesced"; the
#     backed-up filesystem is the frozen one (ext4 clears needs_recovery when
#     frozen, a crash-consistent copy of a mounted ext4 has it set) and the
#     guest is thawed and writing afterwards;
#   - without an agent, --quiesce fails (exit 1, one line naming quiesce and
#     --quiesce=auto) and leaves no snapshot, no checkpoint, no job;
#     --quiesce=auto goes on crash-consistent with a one-line note; the same
#     for a guest whose agent channel is configured but whose qemu-ga stopped;
#   - without --quiesce a backup is "crash".
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"

why=$(vm_agent_available) || { echo "SKIP: $why"; exit 0; }
vm_start_libvirtd || { echo "SKIP: libvirtd does not start on this machine"; exit 0; }
D=$(mktemp -d /var/tmp/cairn-t_quiesce.XXXXXX)
at_exit "rm -rf '$D'"
AG=cairn-t-quiesce-$$      # runs qemu-ga, vdb is a mounted ext4
NA=cairn-t-quiesce-na-$$   # the default guest: no agent
qemu-img create -q -f qcow2 "$D/ag-vda.qcow2" 64M
truncate -s 128M "$D/fs.raw"   # the guest writes up to VM_NREC*4 KiB into /records
mkfs.ext4 -q -F "$D/fs.raw"
qemu-img convert -f raw -O qcow2 "$D/fs.raw" "$D/ag-vdb.qcow2"
rm -f "$D/fs.raw"
qemu-img create -q -f qcow2 "$D/na-vda.qcow2" 64M
VM_AGENT=1 vm_define "$AG" "$D" "$D/ag-vda.qcow2" "$D/ag-vdb.qcow2"
vm_define "$NA" "$D" "$D/na-vda.qcow2"
R=$T/repo
cairn_q init "$R"

agent() { virsh qemu-agent-command "$1" "{\"execute\":\"$2\"}" 2>&1; }
freeze_status() { agent "$1" guest-fsfreeze-status | tr -d '\n'; }
cairn_ckpts() { { virsh checkpoint-list "$1" --name | grep '^cairn-' || true; } | sort; }
job_none() { [[ $(virsh domjobinfo "$1") == *"Job type:"*None* ]]; }
# consistency SNAP — the "consistency" of a snapshot in `cairn snapshots --json`
consistency() { "$CAIRN" snapshots "$R" --json | json "[s.get('consistency') for s in j if s['id'] == '$1'][0]"; }
# fs_state SNAP — "needs_recovery" or "clean": the ext4 journal flag of the
# guest's vdb in snapshot SNAP; also checks the filesystem with e2fsck and
# leaves /records of it in $T/records
fs_state() {
	rm -f "$T/vdb.raw" "$T/records"
	cairn_q restore "$R" "$1" --name "$AG" --disk vdb --to "$T/vdb.raw"
	debugfs -R "dump /records $T/records" "$T/vdb.raw" >/dev/null 2>&1
	[ -s "$T/records" ] || die "no /records in the ext4 filesystem of snapshot $1"
	truncate -s %4096 "$T/records"
	if dumpe2fs -h "$T/vdb.raw" 2>/dev/null | grep -q '^Filesystem features:.*needs_recovery'; then
		echo needs_recovery
	else
		e2fsck -fn "$T/vdb.raw" >"$T/fsck.out" 2>&1 || { cat "$T/fsck.out" >&2; die "a clean-flagged filesystem in $1 fails e2fsck"; }
		echo clean
	fi
}
# backup_ok DOMAIN ARGS... — a backup that must succeed; prints the snapshot id
backup_ok() {
	local dom=$1
	shift
	cairn_q backup "$R" --domain "$dom" --json "$@"
	json 'j["snapshot"]' <"$T/last.out"
}
# assert_thawed_and_writing — the agent guest is thawed and its loop (which
# writes to the ext4 filesystem) goes on
assert_thawed_and_writing() {
	local st
	st=$(freeze_status "$AG")
	[[ $st == *'"thawed"'* ]] || die "the guest's filesystems are not thawed after the backup: $st"
	vm_wait_records "$AG" "$D" $(( $(vm_written "$AG" "$D") + 100 )) 90
}

step "guests: $AG with qemu-ga and a mounted ext4, $NA without an agent"
virsh -q start "$AG"
virsh -q start "$NA"
vm_wait_records "$AG" "$D" 200 180
vm_wait_records "$NA" "$D" 200 180
grep -q 'cairn-guest: mounted /dev/vdb' "$D/$AG.console" || die "the agent guest did not mount its ext4 disk"
for _ in $(seq 1 60); do
	[[ $(agent "$AG" guest-ping) == *'"return"'* ]] && break
	sleep 1
done
[[ $(agent "$AG" guest-ping) == *'"return"'* ]] || { tail -n 20 "$D/$AG.console" >&2; die "the guest agent does not answer: $(agent "$AG" guest-ping)"; }
[[ $(virsh domfsinfo "$AG") == *"/mnt/vdb"*ext4* ]] || die "the agent does not report the ext4 filesystem: $(virsh domfsinfo "$AG")"
[[ $(agent "$NA" guest-ping) != *'"return"'* ]] || die "the agent-less guest answers guest-ping"
[[ $(freeze_status "$AG") == *'"thawed"'* ]] || die "the agent guest starts frozen"
# a freeze really stalls the guest's writes (so "keeps writing" below means thawed)
virsh -q domfsfreeze "$AG" >/dev/null
sleep 1
w=$(vm_written "$AG" "$D")
sleep 4
w2=$(vm_written "$AG" "$D")
virsh -q domfsthaw "$AG" >/dev/null
[ "$w2" -eq "$w" ] || die "the guest kept writing while frozen ($w -> $w2 records): the freeze is not meaningful"
echo "  frozen by hand: the guest stalled at $w records; thawed"
vm_wait_records "$AG" "$D" $((w2 + 100)) 90

step "no --quiesce: \"crash\", the ext4 copy is a live mounted filesystem"
crash_id=$(backup_ok "$AG")
soft assert_eq "$(consistency "$crash_id")" crash "consistency of a backup without --quiesce"
st=$(fs_state "$crash_id")
echo "  ext4 in the crash-consistent backup: $st"
assert_eq "$st" needs_recovery "ext4 journal flag of a backup taken without freezing"

step "--quiesce with a guest agent: \"quiesced\", the frozen filesystem, thawed after"
before=$(vm_written "$AG" "$D")
q_id=$(backup_ok "$AG" --quiesce)
echo "  stderr: $(cat "$T/last.err")"
soft assert_eq "$(consistency "$q_id")" quiesced "consistency of --quiesce with an agent"
assert_eq "$(fs_state "$q_id")" clean "ext4 journal flag of the quiesced backup (needs_recovery: not taken while frozen)"
k=$(records_prefix "$T/records") || die "/records of the quiesced backup is not a prefix"
echo "  quiesced ext4 holds records 1..$k (the guest had reported $before)"
[ "$k" -ge "$before" ] || die "the quiesced backup misses records the guest had written ($k < $before)"
assert_thawed_and_writing
assert_eq "$(cairn_ckpts "$AG" | wc -l)" 1 "cairn checkpoints of $AG after --quiesce"
job_none "$AG" || die "a backup job is still running on $AG: $(virsh domjobinfo "$AG")"

step "--quiesce=auto with a guest agent: \"quiesced\""
a_id=$(backup_ok "$AG" --quiesce=auto)
soft assert_eq "$(consistency "$a_id")" quiesced "consistency of --quiesce=auto with an agent"
assert_eq "$(fs_state "$a_id")" clean "ext4 journal flag of the --quiesce=auto backup"
assert_thawed_and_writing

# no_trace DOM CKPTS SNAPS — a failed backup left the checkpoints CKPTS, SNAPS
# snapshots, no job, and a running guest
no_trace() {
	assert_eq "$(cairn_ckpts "$1")" "$2" "cairn checkpoints of $1 after the failed --quiesce"
	assert_eq "$(snap_count "$R")" "$3" "snapshots after the failed --quiesce"
	job_none "$1" || die "a backup job is still running on $1: $(virsh domjobinfo "$1")"
	[[ $(virsh domstate "$1") == running* ]] || die "$1 is not running after the failed --quiesce: $(virsh domstate "$1")"
}

step "--quiesce without an agent: exit 1, one line naming --quiesce=auto, nothing left"
n=$(snap_count "$R")
expect_fail 1 "$CAIRN" backup "$R" --domain "$NA" --quiesce
assert_msg_matches 'quiesce'
grep -qF -- '--quiesce=auto' <<<"$FAIL_MSG" || die "the error does not point to --quiesce=auto: $FAIL_MSG"
no_trace "$NA" "" "$n"
snap_id "$R" "$NA" >/dev/null 2>&1 && die "a snapshot of $NA was written"

step "--quiesce=auto without an agent: \"crash\" and a one-line note"
na_id=$(backup_ok "$NA" --quiesce=auto)
echo "  stderr: $(cat "$T/last.err")"
soft assert_eq "$(consistency "$na_id")" crash "consistency of --quiesce=auto without an agent"
notes=$(grep -ci 'quiesce\|agent' "$T/last.err" || true)
assert_eq "$notes" 1 "lines about quiesce/the agent on stderr of --quiesce=auto without an agent"
[[ $(virsh domstate "$NA") == running* ]] || die "$NA is not running after --quiesce=auto"

step "--quiesce without an agent, with a previous checkpoint: still nothing left"
ck=$(cairn_ckpts "$NA")
[ -n "$ck" ] || die "no cairn checkpoint of $NA after a successful backup"
n=$(snap_count "$R")
expect_fail 1 "$CAIRN" backup "$R" --domain "$NA" --quiesce
assert_msg_matches 'quiesce'
no_trace "$NA" "$ck" "$n"
assert_eq "$(snap_id "$R" "$NA")" "$na_id" "latest snapshot of $NA after the failed --quiesce"

step "no --quiesce without an agent: \"crash\", an incremental on the kept chain"
c_id=$(backup_ok "$NA")
soft assert_eq "$(consistency "$c_id")" crash "consistency of a backup without --quiesce ($NA)"
assert_eq "$(json 'j["parent"]' <"$T/last.out")" "$na_id" "parent after the failed --quiesce"

step "--quiesce with an agent configured but not running: exit 1, nothing left"
virsh qemu-agent-command "$AG" '{"execute":"guest-exec","arguments":{"path":"/bin/busybox","arg":["sh","-c","sleep 1; killall qemu-ga"]}}' >/dev/null
for _ in $(seq 1 30); do
	[[ $(agent "$AG" guest-ping) == *'"return"'* ]] || break
	sleep 1
done
[[ $(agent "$AG" guest-ping) != *'"return"'* ]] || die "qemu-ga in $AG does not stop"
ck=$(cairn_ckpts "$AG")
n=$(snap_count "$R")
w=$(vm_written "$AG" "$D")
expect_fail 1 "$CAIRN" backup "$R" --domain "$AG" --quiesce
assert_msg_matches 'quiesce'
grep -qF -- '--quiesce=auto' <<<"$FAIL_MSG" || die "the error does not point to --quiesce=auto: $FAIL_MSG"
no_trace "$AG" "$ck" "$n"
vm_wait_records "$AG" "$D" $((w + 100)) 90
auto_id=$(backup_ok "$AG" --quiesce=auto)
soft assert_eq "$(consistency "$auto_id")" crash "consistency of --quiesce=auto with a dead agent"

cairn_q check "$R"
pass
