# shellcheck shell=bash
# A throwaway libvirt/QEMU test guest for the integration tests: libvirtd
# started without systemd, a Debian kernel booted directly under TCG with a
# busybox initramfs whose init writes numbered 4 KiB records
# ("CAIRNREC <k>") to record k of every virtio disk, in order, with fsync.
# Source after lib.sh.
#
# VM_AGENT=1 (set it for vm_define: `VM_AGENT=1 vm_define NAME DIR DISK...`)
# gives a guest that also runs the QEMU guest agent (Debian's qemu-ga) on the
# virtio-serial port org.qemu.guest_agent.0, and that mounts every disk
# holding an ext4 filesystem (on /mnt/vdX) instead of writing to it raw: its
# records go to the file /records of that filesystem (record k at offset
# k*4 KiB, so the filesystem needs VM_NREC*4 KiB of room), in the same loop
# as the raw disks, so a frozen filesystem stalls the whole loop.
# guest-fsfreeze-freeze then has a real filesystem to freeze.

VM_DIR=${VM_DIR:-/var/tmp/cairn-vm}
VM_NREC=${VM_NREC:-16000}
VM_AGENT=${VM_AGENT:-}
# kernel modules of the guest, in load order
VM_MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk"
# the agent guest adds the virtio-serial console and ext4 (with its
# dependencies, `modinfo -F depends`: ext4 needs jbd2, mbcache, crc16; the
# crc32c checksums of metadata_csum come from crc32c_generic)
VM_AGENT_MODULES="virtio_console crc16 crc32c_generic mbcache jbd2 ext4"

# vm_available: true when this machine can run the guest (root, KVM-free
# TCG QEMU, a kernel, busybox, libvirt); prints why not otherwise.
vm_available() {
	[ "$(id -u)" = 0 ] || { echo "not root"; return 1; }
	for t in libvirtd virsh qemu-system-x86_64 busybox; do
		command -v "$t" >/dev/null || [ -x /bin/$t ] || { echo "no $t"; return 1; }
	done
	ls /boot/vmlinuz-* >/dev/null 2>&1 || { echo "no kernel in /boot"; return 1; }
}

# vm_agent_available: true when the agent guest can be built as well (the
# qemu-guest-agent package); prints why not otherwise.
vm_agent_available() {
	vm_available || return 1
	[ -x /usr/sbin/qemu-ga ] || { echo "no /usr/sbin/qemu-ga (apt-get install qemu-guest-agent)"; return 1; }
	command -v ldd >/dev/null || { echo "no ldd"; return 1; }
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

# _vm_module KVER NAME DESTDIR — copies a kernel module, decompressed
_vm_module() {
	local f
	f=$(find "/lib/modules/$1" -name "$2.ko*" | head -n 1)
	[ -n "$f" ] || die "kernel module $2 not found for $1"
	case $f in
	*.xz) xz -dc "$f" >"$3/$2.ko" ;;
	*.zst) zstd -qdc "$f" >"$3/$2.ko" ;;
	*) cp "$f" "$3/$2.ko" ;;
	esac
}

# vm_initramfs: builds (once per kernel) the guest initramfs; prints its path
# (with VM_AGENT set: the agent guest's, see _vm_initramfs_agent)
vm_initramfs() {
	local kver out root m f
	[ -n "$VM_AGENT" ] && { _vm_initramfs_agent; return; }
	kver=$(basename "$(vm_kernel)"); kver=${kver#vmlinuz-}
	out=$VM_DIR/initrd-v2-$kver-$VM_NREC.gz
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
for d in /dev/vd?; do
	echo "cairn-guest: boot-sum \${d#/dev/} \$(dd if=\$d bs=65536 count=16 2>/dev/null | md5sum | cut -d' ' -f1)"
done
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

# _vm_initramfs_agent: the agent guest's initramfs (cached under a name that
# carries a digest of its init script and of qemu-ga, so a change rebuilds it)
_vm_initramfs_agent() {
	local kver out root m lib init sum tmp
	kver=$(basename "$(vm_kernel)"); kver=${kver#vmlinuz-}
	init=$(cat <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /run /tmp /mnt /dev/virtio-ports; ln -s /run /var/run
for m in $VM_MODULES $VM_AGENT_MODULES; do
	insmod /lib/modules/\$m.ko || echo "cairn-guest: insmod \$m failed"
done
while [ ! -b /dev/vda ]; do sleep 0.2; done
# no udev: name the virtio-serial ports as its rules would
i=0
while [ ! -e /dev/virtio-ports/org.qemu.guest_agent.0 ] && [ \$i -lt 100 ]; do
	for p in /sys/class/virtio-ports/*; do
		[ -s \$p/name ] && ln -sf ../\${p##*/} /dev/virtio-ports/\$(cat \$p/name) 2>/dev/null
	done
	sleep 0.1; i=\$((i + 1))
done
[ -e /dev/virtio-ports/org.qemu.guest_agent.0 ] || echo "cairn-guest: no guest agent port"
raw= fs=
for d in /dev/vd?; do
	if [ "\$(dd if=\$d bs=2 skip=540 count=1 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 53ef ]; then
		mkdir -p /mnt/\${d#/dev/}
		if mount -t ext4 \$d /mnt/\${d#/dev/}; then
			fs="\$fs /mnt/\${d#/dev/}"; echo "cairn-guest: mounted \$d"
		else
			echo "cairn-guest: cannot mount \$d"
		fi
	else
		raw="\$raw \$d"
	fi
done
/usr/sbin/qemu-ga -m virtio-serial -p /dev/virtio-ports/org.qemu.guest_agent.0 -t /run -f /run/qemu-ga.pid &
echo "cairn-guest: agent started"
echo "cairn-guest: ready"
k=1
while [ \$k -lt $VM_NREC ]; do
	for d in \$raw; do
		printf 'CAIRNREC %08d\n' \$k | dd of=\$d bs=4096 seek=\$k conv=notrunc,fsync 2>/dev/null
	done
	for m in \$fs; do
		printf 'CAIRNREC %08d\n' \$k | dd of=\$m/records bs=4096 seek=\$k conv=notrunc,fsync 2>/dev/null
	done
	[ \$((k % 100)) = 0 ] && echo "cairn-guest: wrote \$k"
	k=\$((k + 1))
done
echo "cairn-guest: done"
while true; do sleep 60; done
EOF
)
	sum=$({ printf '%s' "$init"; cat /usr/sbin/qemu-ga; } | md5sum | cut -c1-10)
	out=$VM_DIR/initrd-agent-$kver-$sum.gz
	[ -s "$out" ] && { echo "$out"; return; }
	mkdir -p "$VM_DIR"; chmod 0777 "$VM_DIR"
	root=$(mktemp -d "$VM_DIR/root.XXXXXX")
	mkdir -p "$root"/{bin,dev,proc,sys,var,lib/modules,lib64,usr/sbin}
	cp /bin/busybox "$root/bin/"
	for m in $VM_MODULES $VM_AGENT_MODULES; do _vm_module "$kver" "$m" "$root/lib/modules"; done
	cp /usr/sbin/qemu-ga "$root/usr/sbin/"
	# every shared library qemu-ga needs, and the dynamic loader, at the
	# paths ldd resolves them to
	for lib in $(ldd /usr/sbin/qemu-ga | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
	[ -e "$root/lib64/ld-linux-x86-64.so.2" ] || die "agent initramfs: no dynamic loader from ldd"
	printf '%s\n' "$init" >"$root/init"
	chmod +x "$root/init"
	tmp=$(mktemp "$out.XXXXXX")
	(cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip) >"$tmp"
	chmod 0644 "$tmp"
	mv "$tmp" "$out"
	rm -rf "$root"
	echo "$out"
}

# vm_define NAME DIR DISK... — a TCG domain with the disks as vda, vdb, ...
vm_define() {
	local name=$1 dir=$2; shift 2
	local initrd disks="" letters=abcdefgh i=0 d fmt channel=""
	initrd=$(vm_initramfs)
	[ -n "$VM_AGENT" ] && channel="
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
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
    <console type='file'><source path='$dir/$name.console'/><target type='serial' port='0'/></console>$channel
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

# UEFI and TPM domains (t_firmware, t_firmware_auto)
# vm_fw_destroy NAME — stops and undefines NAME with its NVRAM and TPM state
vm_fw_destroy() {
	virsh -q destroy "$1" >/dev/null 2>&1 || true
	virsh -q undefine "$1" --checkpoints-metadata --nvram --tpm >/dev/null 2>&1 || true
}
# vm_nvram_of NAME — the NVRAM file its definition names
vm_nvram_of() { virsh dumpxml "$1" | sed -n 's:.*<nvram[^>]*>\(.*\)</nvram>.*:\1:p'; }
# vm_tpm_dir_of NAME — where libvirt keeps its TPM 2.0 state
vm_tpm_dir_of() { echo "/var/lib/libvirt/swtpm/$(virsh domuuid "$1")/tpm2"; }
