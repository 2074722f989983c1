# shellcheck shell=bash
# A throwaway libvirt/QEMU test guest for the integration tests: libvirtd
# started without systemd, a Debian kernel booted directly under TCG with a
# busybox initramfs whose init writes numbered 4 KiB records
# ("CAIRNREC <k>") to record k of every virtio disk, in order, with fsync.
# Source after lib.sh.

VM_DIR=${VM_DIR:-/var/tmp/cairn-vm}
VM_NREC=${VM_NREC:-16000}

# vm_available: true when this machine can run the guest (root, KVM-free
# TCG QEMU, a kernel, busybox, libvirt); prints why not otherwise.
vm_available() {
	[ "$(id -u)" = 0 ] || { echo "not root"; return 1; }
	for t in libvirtd virsh qemu-system-x86_64 busybox; do
		command -v "$t" >/dev/null || [ -x /bin/$t ] || { echo "no $t"; return 1; }
	done
	ls /boot/vmlinuz-* >/dev/null 2>&1 || { echo "no kernel in /boot"; return 1; }
}

vm_start_libvirtd() {
	pgrep -x virtlogd >/dev/null || virtlogd -d
	pgrep -x libvirtd >/dev/null || libvirtd -d
	local i
	for i in $(seq 1 30); do
		virsh -c qemu:///system version >/dev/null 2>&1 && return 0
		sleep 1
	done
	return 1
}

vm_kernel() { ls /boot/vmlinuz-* | sort -V | tail -n 1; }

# vm_initramfs: builds (once per kernel) the guest initramfs; prints its path
vm_initramfs() {
	local kver out root m f
	kver=$(basename "$(vm_kernel)"); kver=${kver#vmlinuz-}
	out=$VM_DIR/initrd-$kver-$VM_NREC.gz
	[ -s "$out" ] && { echo "$out"; return; }
	mkdir -p "$VM_DIR"; chmod 0777 "$VM_DIR"
	root=$(mktemp -d "$VM_DIR/root.XXXXXX")
	mkdir -p "$root"/{bin,dev,proc,sys,lib/modules}
	cp /bin/busybox "$root/bin/"
	for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk; do
		f=$(find "/lib/modules/$kver" -name "$m.ko*" | head -n 1)
		[ -n "$f" ] || die "kernel module $m not found for $kver"
		case $f in
		*.xz) xz -dc "$f" >"$root/lib/modules/$m.ko" ;;
		*.zst) zstd -qdc "$f" >"$root/lib/modules/$m.ko" ;;
		*) cp "$f" "$root/lib/modules/$m.ko" ;;
		esac
	done
	cat >"$root/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk; do
	insmod /lib/modules/\$m.ko
done
while [ ! -b /dev/vda ]; do sleep 0.2; done
echo "cairn-guest: ready"
k=1
while [ \$k -lt $VM_NREC ]; do
	for d in /dev/vd?; do
		printf 'CAIRNREC %08d\n' \$k | dd of=\$d bs=4096 seek=\$k conv=notrunc,fsync 2>/dev/null
	done
	[ \$((k % 100)) = 0 ] && echo "cairn-guest: wrote \$k"
	k=\$((k + 1))
done
echo "cairn-guest: done"
while true; do sleep 60; done
EOF
	chmod +x "$root/init"
	(cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip) >"$out.tmp"
	mv "$out.tmp" "$out"
	chmod 0644 "$out"
	rm -rf "$root"
	echo "$out"
}

# vm_define NAME DIR DISK... — a TCG domain with the disks as vda, vdb, ...
vm_define() {
	local name=$1 dir=$2; shift 2
	local initrd disks="" letters=abcdefgh i=0 d fmt
	initrd=$(vm_initramfs)
	chmod 0777 "$dir"
	for d in "$@"; do
		fmt=$(qemu-img info --output=json "$d" | json 'j["format"]')
		chmod 0666 "$d"
		disks+="<disk type='file' device='disk'><driver name='qemu' type='$fmt'/><source file='$d'/><target dev='vd${letters:$i:1}' bus='virtio'/></disk>"
		i=$((i + 1))
	done
	cat >"$dir/$name.xml" <<EOF
<domain type='qemu'>
  <name>$name</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type><kernel>$(vm_kernel)</kernel><initrd>$initrd</initrd>
    <cmdline>console=ttyS0 quiet</cmdline></os>
  <on_poweroff>destroy</on_poweroff><on_crash>destroy</on_crash>
  <devices>$disks
    <serial type='file'><source path='$dir/$name.console'/><target port='0'/></serial>
    <console type='file'><source path='$dir/$name.console'/><target type='serial' port='0'/></console>
  </devices>
</domain>
EOF
	virsh -q define "$dir/$name.xml" >/dev/null
	at_exit "vm_destroy $name"
}

vm_destroy() {
	virsh -q destroy "$1" >/dev/null 2>&1 || true
	virsh -q undefine "$1" --checkpoints-metadata >/dev/null 2>&1 || true
}

# vm_written NAME DIR — the highest record count the guest reported
vm_written() {
	tr -d '\r' <"$2/$1.console" 2>/dev/null |
		awk '/^cairn-guest: wrote / { if ($3 + 0 > m) m = $3 + 0 } END { print m + 0 }'
}

# vm_wait_records NAME DIR N [TIMEOUT] — waits until the guest wrote N records
vm_wait_records() {
	local name=$1 dir=$2 n=$3 t=${4:-120} i
	for i in $(seq 1 "$t"); do
		if [ "$(vm_written "$name" "$dir")" -ge "$n" ]; then return 0; fi
		sleep 1
	done
	tail -5 "$dir/$name.console" >&2 || true
	die "guest $name did not write $n records in ${t}s"
}

# records_prefix IMAGE — checks the records of a raw image form a crash-
# consistent prefix (1..K, nothing missing, nothing beyond); prints K
records_prefix() {
	python3 - "$1" <<'EOF'
import sys
k = 0
with open(sys.argv[1], "rb") as f:
    data = f.read()
n = len(data) // 4096
seen = []
for i in range(1, n):
    rec = data[i * 4096:i * 4096 + 18]
    if rec.startswith(b"CAIRNREC "):
        if int(rec[9:17]) != i:
            sys.exit(f"record {i} holds {rec!r}")
        seen.append(i)
if seen != list(range(1, len(seen) + 1)):
    sys.exit(f"records are not a prefix: first gap after {next(i for i, v in enumerate(seen, 1) if i != v) - 1}")
print(len(seen))
EOF
}
