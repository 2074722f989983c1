#!/bin/bash
# Firmware state with the snapshot (real libvirtd, QEMU under TCG, OVMF,
# swtpm): a q35 UEFI guest with SMM, the 4M OVMF code/vars and an emulated
# TPM 2.0. Its init adds one EFI variable per boot (efivarfs: the variables
# land in the NVRAM) and prints how many it found, and reads the
# first bytes of the TPM's EK certificate (NV index 0x01c00002, written by
# swtpm_setup when libvirt created the TPM) with a raw TPM2_NV_Read on
# /dev/tpm0, printing a digest of the answer: a new TPM has another
# certificate. Backup of the running guest, an incremental after its NVRAM
# changed, verify-boot (the original's files untouched), undefine with
# --nvram --tpm, restore --define (files byte-identical, then the guest
# finds its variable and its TPM), --as --start (own files, the older
# variable), and a snapshot without firmware state restored with a note.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"

why=$(vm_available) || { echo "SKIP: $why"; exit 0; }
CODE=/usr/share/OVMF/OVMF_CODE_4M.fd VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
[ -r "$CODE" ] && [ -r "$VARS" ] || { echo "SKIP: no 4M OVMF"; exit 0; }
command -v swtpm >/dev/null || { echo "SKIP: no swtpm"; exit 0; }
vm_start_libvirtd || { echo "SKIP: libvirtd does not start on this machine"; exit 0; }
D=$(mktemp -d /var/tmp/cairn-t_firmware.XXXXXX)
chmod 0777 "$D"
at_exit "rm -rf '$D'"
NAME=cairn-t-fw-$$
COPY=cairn-t-fw-copy-$$
OLD=cairn-t-fw-old-$$
NVDIR=/var/lib/libvirt/qemu/nvram
for n in "$NAME" "$COPY" "$OLD"; do at_exit "vm_fw_destroy $n"; done

# the guest's initramfs: busybox, efivarfs, and the init described above
GUID=5ce4d3a2-6a6c-4c1e-9b3f-2f6e1c0a1b7d
kver=$(basename "$(vm_kernel)"); kver=${kver#vmlinuz-}
root=$D/root
mkdir -p "$root"/{bin,dev,proc,sys,lib/modules}
cp /bin/busybox "$root/bin/"
_vm_module "$kver" efivarfs "$root/lib/modules"
cat >"$root/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
insmod /lib/modules/efivarfs.ko
mount -t efivarfs efivarfs /sys/firmware/efi/efivars || echo "cairn-guest: no efivarfs"
# one new variable per boot (efivarfs makes existing ones immutable, and
# busybox has no chattr): CairnBoot1, CairnBoot2, ...
n=1
while [ -e /sys/firmware/efi/efivars/CairnBoot\$n-$GUID ]; do n=\$((n + 1)); done
echo "cairn-guest: efivar-was \$((n - 1))"
printf '\\007\\000\\000\\000boot%s' \$n >/sys/firmware/efi/efivars/CairnBoot\$n-$GUID
echo "cairn-guest: efivar-set \$(tail -c +5 /sys/firmware/efi/efivars/CairnBoot\$n-$GUID)"
i=0
while [ ! -c /dev/tpm0 ] && [ \$i -lt 50 ]; do sleep 0.2; i=\$((i + 1)); done
mkdir -p /tmp
exec 3<>/dev/tpm0
printf '\\200\\002\\000\\000\\000\\043\\000\\000\\001\\116\\001\\300\\000\\002\\001\\300\\000\\002\\000\\000\\000\\011\\100\\000\\000\\011\\000\\000\\000\\000\\000\\000\\100\\000\\000' >&3
dd bs=4096 count=1 <&3 >/tmp/ek 2>/dev/null
echo "cairn-guest: tpm-rc \$(dd if=/tmp/ek bs=1 skip=6 count=4 2>/dev/null | od -An -tx1 | tr -d ' \n')"
echo "cairn-guest: tpm-ek \$(md5sum </tmp/ek | cut -c1-32)"
echo "cairn-guest: ready"
while true; do sleep 60; done
EOF
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip) >"$D/initrd.gz"
chmod 0644 "$D/initrd.gz"

qemu-img create -q -f qcow2 "$D/vda.qcow2" 16M
chmod 0666 "$D/vda.qcow2"
cat >"$D/dom.xml" <<EOF
<domain type='qemu'>
  <name>$NAME</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type>
    <loader readonly='yes' type='pflash'>$CODE</loader>
    <nvram template='$VARS'/>
    <kernel>$(vm_kernel)</kernel><initrd>$D/initrd.gz</initrd>
    <cmdline>console=ttyS0 quiet</cmdline></os>
  <features><acpi/><smm state='on'/></features>
  <on_poweroff>destroy</on_poweroff><on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$D/vda.qcow2'/><target dev='vda' bus='virtio'/></disk>
    <tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>
    <serial type='file'><source path='$D/$NAME.console'/><target port='0'/></serial>
    <console type='file'><source path='$D/$NAME.console'/><target type='serial' port='0'/></console>
  </devices>
</domain>
EOF
virsh -q define "$D/dom.xml" >/dev/null

# wait_line DOMAIN CONSOLE TEXT — waits (up to 150 s) for a console line
wait_line() {
	local i
	for i in $(seq 1 150); do
		tr -d '\r' <"$2" 2>/dev/null | grep -q "^cairn-guest: $3" && return 0
		[ "$(virsh domstate "$1" 2>/dev/null)" = running ] || die "$1 is not running: $(tail -3 "$2")"
		sleep 1
	done
	die "$1 did not print '$3' in 150s: $(tail -5 "$2" 2>/dev/null)"
}
line() { tr -d '\r' <"$1" | sed -n "s/.*cairn-guest: $2 //p" | tail -n 1; }
# state NAME — digest of the domain's NVRAM and every TPM state file
state() {
	{ cat "$(vm_nvram_of "$1")"; for f in "$(vm_tpm_dir_of "$1")"/*; do basename "$f"; cat "$f"; done; } | md5sum | cut -c1-32
}

step "boot the UEFI+TPM guest; it stores boot count 1 in an EFI variable"
R=$T/repo
cairn_q init "$R" --encryption none
virsh -q start "$NAME" >/dev/null
wait_line "$NAME" "$D/$NAME.console" ready
assert_eq "$(line "$D/$NAME.console" efivar-was)" 0 "first boot's variables"
assert_eq "$(line "$D/$NAME.console" tpm-rc)" 00000000 "TPM2_NV_Read of the EK certificate"
ek=$(line "$D/$NAME.console" tpm-ek)
nv=$(vm_nvram_of "$NAME")
[ -n "$nv" ] && [ -s "$nv" ] || die "libvirt gave the domain no NVRAM file ($nv)"

step "back up the running guest: NVRAM and TPM state go with the snapshot (warned: unencrypted)"
before=$(state "$NAME")
cairn_q backup "$R" --domain "$NAME"
grep -q "repository is not encrypted.*TPM state" "$T/last.err" || die "no warning about TPM state: $(cat "$T/last.err")"
assert_eq "$(state "$NAME")" "$before" "firmware state of the idle guest across the backup"
s1=$(snap_id "$R" "$NAME")
cp "$nv" "$T/nvram1"
cairn_q ls "$R" "$s1"
grep -q "nvram.*$nv" "$T/last.out" || die "ls shows no NVRAM: $(cat "$T/last.out")"
grep -q "tpm.*tpm2-00.permall" "$T/last.out" || die "ls shows no TPM state: $(cat "$T/last.out")"

step "second boot changes the variable; an incremental carries the new NVRAM"
virsh -q destroy "$NAME" >/dev/null
: >"$D/$NAME.console"
virsh -q start "$NAME" >/dev/null
wait_line "$NAME" "$D/$NAME.console" ready
assert_eq "$(line "$D/$NAME.console" efivar-was)" 1 "second boot finds the first boot's variable"
cmp -s "$nv" "$T/nvram1" && die "the guest did not change its NVRAM"
cairn_q backup "$R" --domain "$NAME"
s2=$(snap_id "$R" "$NAME")
assert_eq "$("$CAIRN" snapshots "$R" --json | json "[s['kind'] for s in j if s['id'].startswith('$s2')][0]")" incremental "second backup"
cp "$nv" "$T/nvram2"
tpm=$(vm_tpm_dir_of "$NAME")
cp -a "$tpm" "$T/tpm2"
want=$(state "$NAME")

step "verify-boot of the incremental: the copy finds count 2; the original's files are untouched"
nvfiles=$(ls "$NVDIR" | wc -l) tpmdirs=$(ls /var/lib/libvirt/swtpm | wc -l)
cairn_q verify-boot "$R" "$s2" --expect-console 'cairn-guest: efivar-was 2' --timeout 120
assert_eq "$(state "$NAME")" "$want" "original's NVRAM and TPM state after verify-boot"
assert_eq "$(ls "$NVDIR" | wc -l) $(ls /var/lib/libvirt/swtpm | wc -l)" "$nvfiles $tpmdirs" "NVRAM files and TPM directories after verify-boot"

step "the host burns: undefine with --nvram --tpm; restore --define puts the files back"
virsh -q destroy "$NAME" >/dev/null
virsh -q undefine "$NAME" --checkpoints-metadata --nvram --tpm >/dev/null
[ ! -e "$nv" ] && [ ! -e "$tpm" ] || die "undefine left the firmware state"
cairn_q restore "$R" "$s2" --to "$D/restored" --define
grep -q "restored the NVRAM and TPM state of domain $NAME" "$T/last.out" || die "no firmware line: $(cat "$T/last.out")"
cmp "$(vm_nvram_of "$NAME")" "$T/nvram2" || die "restored NVRAM differs from the one at backup time"
diff -r -x .lock "$(vm_tpm_dir_of "$NAME")" "$T/tpm2" || die "restored TPM state differs from the one at backup time"
[ "$(vm_tpm_dir_of "$NAME")" != "$tpm" ] || die "restored domain kept the old UUID's TPM directory"
: >"$D/$NAME.console"
virsh -q start "$NAME" >/dev/null
wait_line "$NAME" "$D/$NAME.console" ready
assert_eq "$(line "$D/$NAME.console" efivar-was)" 2 "restored guest's EFI variable"
assert_eq "$(line "$D/$NAME.console" tpm-ek)" "$ek" "restored guest's TPM (EK certificate)"

step "--as --start of the first snapshot: own NVRAM and TPM files, the older variable"
# the stored serial console is the original's file: one guest at a time
virsh -q destroy "$NAME" >/dev/null
orig=$(state "$NAME")
: >"$D/$NAME.console"
cairn_q restore "$R" "$s1" --to "$D/copy" --define --as "$COPY" --start
[ "$(vm_nvram_of "$COPY")" = "$NVDIR/${COPY}_VARS.fd" ] || die "copy's NVRAM is $(vm_nvram_of "$COPY")"
[ "$(vm_tpm_dir_of "$COPY")" != "$(vm_tpm_dir_of "$NAME")" ] || die "copy shares the TPM directory"
wait_line "$COPY" "$D/$NAME.console" ready
assert_eq "$(line "$D/$NAME.console" efivar-was)" 1 "copy's EFI variable (first snapshot)"
assert_eq "$(line "$D/$NAME.console" tpm-ek)" "$ek" "copy's TPM (EK certificate)"
assert_eq "$(state "$NAME")" "$orig" "original's NVRAM and TPM state after the copy ran"
vm_fw_destroy "$COPY"

step "a snapshot without firmware state (as older cairn wrote) restores as before, with a note"
# the first manifest without its "firmware" key, stored as an uncompressed
# envelope under the hash of its bytes (docs/design.md sections 1, 8)
old=$(python3 - "$R" "$s1" <<'PY'
import hashlib, json, os, subprocess, sys
repo, sid = sys.argv[1], sys.argv[2]
[name] = [n for n in os.listdir(repo + "/snapshots") if n.startswith(sid)]
raw = open(f"{repo}/snapshots/{name}", "rb").read()
assert raw[:3] == b"C\x01\x02" and not raw[3] & 2, raw[:4]
body = subprocess.run(["zstd", "-dc"], input=raw[4:], capture_output=True, check=True).stdout if raw[3] & 1 else raw[4:]
m = json.loads(body)
assert m.pop("firmware")
m["time_ns"] -= 1000
out = b"C\x01\x02\x00" + json.dumps(m).encode()
open(f"{repo}/snapshots/{hashlib.sha256(out).hexdigest()}", "wb").write(out)
print(hashlib.sha256(out).hexdigest())
PY
)
cairn_q restore "$R" "$old" --to "$D/old" --define --as "$OLD"
grep -q "note: the snapshot holds no NVRAM or TPM state" "$T/last.err" || die "no note: $(cat "$T/last.err")"
grep -q "restored the" "$T/last.out" && die "claims firmware state it did not restore"
[ ! -e "$NVDIR/${OLD}_VARS.fd" ] || die "an NVRAM file appeared for a snapshot without one"
dom_nv=$(vm_nvram_of "$OLD")
[ "$dom_nv" = "$NVDIR/${OLD}_VARS.fd" ] || die "old snapshot's domain points at $dom_nv"

step "check reads the firmware blobs, replicate carries them"
cairn_q check "$R" --read-data
R2=$T/replica
cairn_q init "$R2" --replica-of "$R"
cairn_q replicate "$R" "$R2" --verify
cairn_q check "$R2" --read-data
cairn_q ls "$R2" "$s2" --json
assert_eq "$(json '[(f["kind"], f["size"]) for f in j["firmware"]][0]' <"$T/last.out")" "('nvram', $(file_size "$T/nvram2"))" "replica's NVRAM item"
step "a host without swtpm or OVMF is refused in one line, before anything is written"
expect_fail 1 env PATH=/nonexistent "$CAIRN" restore "$R" "$s2" --to "$D/noswtpm" --define --as "$OLD-x"
assert_msg_matches "emulated TPM but this host has no swtpm"
[ -z "$(ls -A "$D/noswtpm" 2>/dev/null)" ] || die "files written for a refused restore"
pass
