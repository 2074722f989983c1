#!/bin/bash
# cairn demo, part 2 (run by `make demo` after tests/demo.sh): a throwaway
# test VM (TCG guest that keeps writing numbered records to its disk) is
# backed up full while running, writes more, is backed up incrementally,
# is paused, backed up again, and the latest snapshot is restored to a new
# image and shown identical to the paused VM's disk.
#
#   tests/demo-vm.sh [PATH/TO/cairn]
CAIRN=${1:-./cairn}
case $CAIRN in /*) ;; *) CAIRN=$(pwd)/$CAIRN ;; esac
export CAIRN
. "$(dirname "$0")/integration/lib.sh"
. "$(dirname "$0")/integration/vm.sh"

say() { printf '\n== %s\n' "$*"; }
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

why=$(vm_available) || { echo "demo-vm: skipped ($why); run as root after make deps"; exit 0; }
vm_start_libvirtd || die "libvirtd does not start"
D=$(mktemp -d /var/tmp/cairn-demo-vm.XXXXXX)
at_exit "rm -rf '$D'"
NAME=cairn-demo-$$
R=$D/repo

say "a throwaway VM: 64 MiB qcow2 disk, kernel + busybox under TCG, writing records"
qemu-img create -q -f qcow2 "$D/vda.qcow2" 64M
vm_define "$NAME" "$D" "$D/vda.qcow2"
t=$(now); virsh -q start "$NAME"; vm_wait_records "$NAME" "$D" 300
echo "   booted and wrote $(vm_written "$NAME" "$D") records in $(took "$t")"
"$CAIRN" init "$R" --quiet

say "full backup of the running VM (libvirt pull-mode backup, checkpoint cairn-...)"
t=$(now); "$CAIRN" backup "$R" --domain "$NAME"; echo "   $(took "$t")"
virsh checkpoint-list "$NAME"

say "the VM keeps writing; incremental backup reads only the dirty chunks"
vm_wait_records "$NAME" "$D" $(( $(vm_written "$NAME" "$D") + 300 ))
t=$(now); "$CAIRN" backup "$R" --domain "$NAME" --json >"$D/inc.json"; echo "   $(took "$t")"
echo "   bytes read: $(json 'j["bytes_read"]' <"$D/inc.json") of $(json 'j["bytes_total"]' <"$D/inc.json")"

say "pause the VM, back it up once more, restore the latest snapshot to a new image"
virsh -q suspend "$NAME"
"$CAIRN" backup "$R" --domain "$NAME" --quiet >/dev/null
qemu-img convert -U -f qcow2 -O raw "$D/vda.qcow2" "$D/paused.raw"
t=$(now); "$CAIRN" restore "$R" latest --name "$NAME" --disk vda --to "$D/restored.qcow2" --format qcow2
echo "   $(took "$t")"
qemu-img compare -f raw -F qcow2 "$D/paused.raw" "$D/restored.qcow2"
"$CAIRN" snapshots "$R"
k=$(records_prefix "$D/paused.raw")
echo "   the restored disk holds records 1..$k, exactly the paused VM's disk"

say "clean up: VM destroyed and undefined, files removed"
vm_destroy "$NAME"
echo "demo-vm OK"
