#!/bin/bash
# Firmware state, the cases t_firmware leaves (issue 17), with real
# libvirtd, QEMU under TCG, OVMF and swtpm: a q35 domain with
# <os firmware='efi'> (libvirt picks the firmware and the NVRAM path
# itself) and an emulated TPM 2.0 is started once (OVMF writes its
# variables, swtpm_setup makes the TPM), then backed up shut off.
# restore --define --as puts its NVRAM and TPM state, byte-identical, where
# libvirt expects them for the copy; instant-restore runs a copy with its
# own state files and leaves the original's alone; a re-chunking replica
# carries the firmware state; a domain whose firmware file this host lacks
# is refused in one line before anything is written.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"

why=$(vm_available) || { echo "SKIP: $why"; exit 0; }
CODE=/usr/share/OVMF/OVMF_CODE_4M.fd VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
[ -r "$CODE" ] && [ -r "$VARS" ] || { echo "SKIP: no 4M OVMF"; exit 0; }
compgen -G "/usr/share/qemu/firmware/*.json" >/dev/null || { echo "SKIP: no firmware descriptors"; exit 0; }
command -v swtpm >/dev/null || { echo "SKIP: no swtpm"; exit 0; }
vm_start_libvirtd || { echo "SKIP: libvirtd does not start on this machine"; exit 0; }
D=$(mktemp -d /var/tmp/cairn-t_firmware_auto.XXXXXX)
chmod 0777 "$D"
at_exit "rm -rf '$D'"
NAME=cairn-t-fwa-$$
COPY=cairn-t-fwa-copy-$$
INST=cairn-t-fwa-inst-$$
REP=cairn-t-fwa-rep-$$
CUST=cairn-t-fwa-cust-$$
NVDIR=/var/lib/libvirt/qemu/nvram
for n in "$NAME" "$COPY" "$INST" "$REP" "$CUST"; do at_exit "vm_fw_destroy $n"; done
at_exit "'$CAIRN' instant-restore --stop $INST; rm -rf /var/lib/cairn/instant/$INST"

# tpm_state NAME — digest of every TPM state file of the domain, with names
tpm_state() {
	local f
	for f in "$(vm_tpm_dir_of "$1")"/*; do basename "$f"; cat "$f"; done | md5sum | cut -c1-32
}

qemu-img create -q -f qcow2 "$D/vda.qcow2" 16M
chmod 0666 "$D/vda.qcow2"
initrd=$(vm_initramfs)
# dom_xml NAME OS-ATTRS OS-FIRMWARE-XML TPM-XML — a q35 domain with SMM
dom_xml() {
	cat <<EOF
<domain type='qemu'>
  <name>$1</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>
  <os$2><type arch='x86_64' machine='q35'>hvm</type>$3
    <kernel>$(vm_kernel)</kernel><initrd>$initrd</initrd><cmdline>console=ttyS0</cmdline></os>
  <features><acpi/><smm state='on'/></features>
  <on_poweroff>destroy</on_poweroff><on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$D/vda.qcow2'/><target dev='vda' bus='virtio'/></disk>$4
    <serial type='file'><source path='$D/$1.console'/><target port='0'/></serial>
    <console type='file'><source path='$D/$1.console'/><target type='serial' port='0'/></console>
  </devices>
</domain>
EOF
}
# wait_kernel NAME CONSOLE — waits (up to 150 s) until OVMF has handed over
# to the kernel
wait_kernel() {
	local i
	for i in $(seq 1 150); do
		grep -q "Linux version" "$2" 2>/dev/null && return 0
		[ "$(virsh domstate "$1" 2>/dev/null)" = running ] || die "$1 is not running: $(tail -3 "$2" 2>&1 || true)"
		sleep 1
	done
	die "$1 did not reach the kernel in 150s: $(tail -5 "$2" 2>&1 || true)"
}

step "first start: libvirt picks the firmware and makes the NVRAM, swtpm the TPM state"
dom_xml "$NAME" " firmware='efi'" "" "
    <tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>" >"$D/dom.xml"
virsh -q define "$D/dom.xml" >/dev/null
virsh -q start "$NAME" >/dev/null
wait_kernel "$NAME" "$D/$NAME.console"
template=$(virsh dumpxml "$NAME" | sed -n "s:.*<nvram[^>]*template='\([^']*\)'.*:\1:p")
virsh -q destroy "$NAME" >/dev/null
NV=$NVDIR/${NAME}_VARS.fd
[ -s "$NV" ] || die "libvirt made no NVRAM at $NV"
[ -z "$template" ] || ! cmp -s "$NV" "$template" || die "OVMF wrote nothing into the NVRAM (still $template)"
[ -s "$(vm_tpm_dir_of "$NAME")/tpm2-00.permall" ] || die "no TPM state in $(vm_tpm_dir_of "$NAME")"
cp "$NV" "$T/nvram0"
tpm0=$(tpm_state "$NAME")

step "backup of the shut-off domain stores its NVRAM and TPM state"
R=$T/repo
cairn_q init "$R"
cairn_q backup "$R" --domain "$NAME" --json
s1=$(json 'j["snapshot"]' <"$T/last.out")
cairn_q ls "$R" "$s1" --json
assert_eq "$(json 'sorted(set(f["kind"] for f in j["firmware"]))' <"$T/last.out")" '["nvram", "tpm"]' "firmware kinds stored"
assert_eq "$(json '[f["size"] for f in j["firmware"] if f["kind"] == "nvram"]' <"$T/last.out")" "[$(file_size "$NV")]" "stored NVRAM size"
cairn_q ls "$R" "$s1"
grep -qi "nvram" "$T/last.out" || die "ls does not show the NVRAM: $(cat "$T/last.out")"

step "restore --define --as: the copy's own NVRAM and TPM state, byte-identical to the backup's"
cairn_q restore "$R" "$s1" --to "$D/copy" --define --as "$COPY"
grep -q "restored the" "$T/last.out" || die "restore does not say it restored the firmware state: $(cat "$T/last.out")"
nv_copy=$(vm_nvram_of "$COPY")
[ -n "$nv_copy" ] && [ "$nv_copy" != "$NV" ] || die "the copy's NVRAM is '$nv_copy' (the original's is $NV)"
cmp "$nv_copy" "$T/nvram0" || die "the copy's NVRAM differs from the NVRAM at backup time"
[ "$(vm_tpm_dir_of "$COPY")" != "$(vm_tpm_dir_of "$NAME")" ] || die "the copy shares the original's TPM directory"
assert_eq "$(tpm_state "$COPY")" "$tpm0" "the copy's TPM state"
cmp "$NV" "$T/nvram0" || die "restore --as changed the original's NVRAM"
assert_eq "$(tpm_state "$NAME")" "$tpm0" "the original's TPM state after restore --as"

step "instant-restore: a running copy with its own NVRAM and TPM state; the original's untouched"
rm -f "$D/$NAME.console" # the stored definition's console, written by the copy
cairn_q instant-restore "$R" "$s1" --name "$INST"
grep -q "restored the .* of domain $INST" "$T/last.out" || die "instant-restore does not name the firmware state: $(cat "$T/last.out")"
[ "$(virsh domstate "$INST")" = running ] || die "$INST is not running"
nv_inst=$(vm_nvram_of "$INST")
[ -n "$nv_inst" ] && [ "$nv_inst" != "$NV" ] && [ "$nv_inst" != "$nv_copy" ] ||
	die "the instant copy's NVRAM is '$nv_inst'"
[ -s "$nv_inst" ] || die "the instant copy has no NVRAM file"
[ "$(vm_tpm_dir_of "$INST")" != "$(vm_tpm_dir_of "$NAME")" ] || die "the instant copy shares the original's TPM directory"
[ -s "$(vm_tpm_dir_of "$INST")/tpm2-00.permall" ] || die "the instant copy has no TPM state"
wait_kernel "$INST" "$D/$NAME.console"
virsh -q destroy "$INST" >/dev/null
cairn_q instant-restore --stop "$INST"
cmp "$NV" "$T/nvram0" || die "instant-restore changed the original's NVRAM"
assert_eq "$(tpm_state "$NAME")" "$tpm0" "the original's TPM state after instant-restore"

step "a re-chunking replica carries the firmware state"
P=$T/replica
cairn_q init "$P" --chunk-size 128K
cairn_q replicate "$R" "$P" --verify
s2=$(snap_id "$P" "$NAME")
cairn_q ls "$P" "$s2" --json
assert_eq "$(json 'sorted(set(f["kind"] for f in j["firmware"]))' <"$T/last.out")" '["nvram", "tpm"]' "firmware kinds in the replica"
cairn_q restore "$P" "$s2" --to "$D/rep" --define --as "$REP"
cmp "$(vm_nvram_of "$REP")" "$T/nvram0" || die "the replica's NVRAM differs from the NVRAM at backup time"
assert_eq "$(tpm_state "$REP")" "$tpm0" "the replica's TPM state"

step "a domain whose firmware file this host lacks is refused in one line, before anything is written"
cp "$CODE" "$D/CAIRN_CODE.fd"
cp "$VARS" "$D/CAIRN_VARS.fd"
chmod 0644 "$D/CAIRN_CODE.fd" "$D/CAIRN_VARS.fd"
dom_xml "$CUST" "" "
    <loader readonly='yes' type='pflash'>$D/CAIRN_CODE.fd</loader><nvram template='$D/CAIRN_VARS.fd'/>" "" >"$D/cust.xml"
virsh -q define "$D/cust.xml" >/dev/null
cairn_q backup "$R" --domain "$CUST" --json
s3=$(json 'j["snapshot"]' <"$T/last.out")
grep -q "NVRAM file .* does not exist yet; none stored" "$T/last.err" ||
	die "no notice for a domain never started: $(cat "$T/last.err")"
vm_fw_destroy "$CUST"
rm -f "$D/CAIRN_CODE.fd"
expect_fail 1 "$CAIRN" restore "$R" "$s3" --to "$D/cust" --define
assert_msg_matches "this host has no UEFI firmware $D/CAIRN_CODE.fd .*install OVMF"
[ -z "$(ls -A "$D/cust" 2>/dev/null)" ] || die "files written for a refused restore"
virsh dominfo "$CUST" >/dev/null 2>&1 && die "a refused restore defined the domain"
pass
