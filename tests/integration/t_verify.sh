#!/bin/bash
# cairn verify-boot (real libvirtd and QEMU under TCG): the test guest's
# snapshot boots as a throwaway VM straight from the repository, with no
# network; a console pattern, a script and (with the agent guest) the QEMU
# guest agent prove it booted; a pattern that never appears fails after
# the timeout. Each run is recorded in the repository and shown by
# `cairn snapshots`; nothing is left behind (domain, servers, overlays),
# the repository's data is unchanged, and a snapshot of a plain image or a
# domain without a way to prove the boot is refused.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"

why=$(vm_available) || { echo "SKIP: $why"; exit 0; }
vm_start_libvirtd || { echo "SKIP: libvirtd does not start on this machine"; exit 0; }
D=$(mktemp -d /var/tmp/cairn-t_verify.XXXXXX)
chmod 0777 "$D"
at_exit "rm -rf '$D'"
NAME=cairn-t-verify-$$
at_exit "vm_destroy $NAME"
leftovers() {
	{ virsh list --all --name | grep '^cairn-verify-' || true; pgrep -f 'nbdkit.*/instant/cairn-verify-' || true
	  ls -d /run/cairn/instant/cairn-verify-* 2>/dev/null || true; } | wc -l
}
at_exit 'for d in $(virsh list --name | grep "^cairn-verify-"); do virsh -q destroy "$d"; done'

qemu-img create -q -f qcow2 "$D/vda.qcow2" 64M
vm_define "$NAME" "$D" "$D/vda.qcow2"
virsh -q start "$NAME" >/dev/null
vm_wait_records "$NAME" "$D" 100
R=$T/repo
cairn_q init "$R"
cairn_q backup "$R" --domain "$NAME"
snap=$(snap_id "$R" "$NAME")
data_sums() { (cd "$R" && find data index snapshots -type f | sort | xargs sha256sum); }
data_sums >"$T/data.before"

step "a console pattern proves the boot; the result is recorded"
cairn_q verify-boot "$R" latest --name "$NAME" --expect-console 'cairn-guest: ready' --timeout 120
grep -q "booted as cairn-verify-" "$T/last.out" || die "no success line: $(cat "$T/last.out")"
assert_eq "$(leftovers)" 0 "leftover domains, servers or run dirs"
"$CAIRN" snapshots "$R" --json >"$T/snaps.json"
assert_eq "$(json 'j[0]["verification"]["result"]' <"$T/snaps.json")" ok "recorded result"
assert_eq "$(json 'j[0]["verification"]["method"]' <"$T/snaps.json")" console "recorded method"
secs=$(json 'j[0]["verification"]["boot_seconds"]' <"$T/snaps.json")
python3 -c "import sys; sys.exit(0 if 0 < $secs < 120 else 1)" || die "boot_seconds $secs"
"$CAIRN" snapshots "$R" | grep -q " ok [0-9]*s " || die "snapshots does not show the verification"

step "a script can prove it too (it gets the console log)"
cairn_q verify-boot "$R" "$snap" --script 'grep -q "boot-sum vda" "$CAIRN_VERIFY_CONSOLE" && echo found it' --timeout 120
grep -q "found it" "$T/last.out" || die "script output not reported: $(cat "$T/last.out")"
assert_eq "$(leftovers)" 0 "leftovers after the script test"

step "a pattern that never appears fails after the timeout, and that is recorded too"
expect_fail 1 "$CAIRN" verify-boot "$R" "$snap" --expect-console 'no such line ever' --timeout 15
assert_msg_matches "did not pass its boot test: no success within 15s"
assert_eq "$(leftovers)" 0 "leftovers after a failed test"
"$CAIRN" snapshots "$R" --json >"$T/snaps.json"
assert_eq "$(json 'j[0]["verification"]["result"]' <"$T/snaps.json")" failed "recorded failure"
"$CAIRN" snapshots "$R" | grep -q " FAILED " || die "snapshots does not show the failure"

step "the repository's data is untouched: the runs only added their records"
data_sums >"$T/data.after"
diff "$T/data.before" "$T/data.after" || die "verify-boot changed the repository's data"
assert_eq "$(ls "$R/verifications" | wc -l)" 3 "verification records"
cairn_q check "$R"

step "nothing to prove the boot with, or nothing to boot: refused"
expect_fail 2 "$CAIRN" verify-boot "$R" "$snap"
assert_msg_matches "guest agent.*--expect-console"
expect_fail 2 "$CAIRN" verify-boot "$R" "$snap" --expect-console x --timeout 0
head -c 1M /dev/urandom >"$T/img.raw"
cairn_q backup "$R" --image "$T/img.raw" --name plain
expect_fail 1 "$CAIRN" verify-boot "$R" latest --name plain --expect-console x
assert_msg_matches "not a libvirt domain"

if why=$(vm_agent_available); then
	step "the QEMU guest agent answers: no option needed"
	AG=cairn-t-verify-ag-$$
	at_exit "vm_destroy $AG"
	mkfs.ext4 -q -F "$D/ag.raw" 64M >/dev/null 2>&1 || { truncate -s 64M "$D/ag.raw"; mkfs.ext4 -q -F "$D/ag.raw"; }
	qemu-img convert -O qcow2 "$D/ag.raw" "$D/ag.qcow2"
	VM_AGENT=1 vm_define "$AG" "$D" "$D/ag.qcow2"
	virsh -q start "$AG" >/dev/null
	for i in $(seq 1 90); do virsh qemu-agent-command "$AG" '{"execute":"guest-ping"}' >/dev/null 2>&1 && break; sleep 1; done
	cairn_q backup "$R" --domain "$AG"
	vm_destroy "$AG"
	cairn_q verify-boot "$R" latest --name "$AG" --timeout 150
	grep -q "guest agent answered" "$T/last.out" || die "agent not used: $(cat "$T/last.out")"
	assert_eq "$(leftovers)" 0 "leftovers after the agent test"
else
	echo "(no agent guest here: $why)"
fi
pass
