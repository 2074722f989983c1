# shellcheck shell=bash
# cairn benchmark, VM section: a running TCG guest backed up by cairn and by
# virtnbdbackup (plain and -z), full then incremental after a ~1 % scattered
# change written through QEMU, then the latest point restored by both tools
# and checked against the paused guest's disk. Sourced by tests/bench/run.sh
# after its helpers (log, die, timeit, mib, secs, median, dir_bytes, warm)
# and build_images (OSIMG, SCATTER, IMGDIR, SEED, BLOCK); run on its own with
#
#   BENCH_ONLY=vm make bench        or   BENCH_ONLY=vm tests/bench/run.sh ./cairn docs/benchmarks.md
#
# which replaces only the VM section (and the analysis) of an existing report.
#
# Environment (defaults in brackets):
#   BENCH_VM_RUNS      sequences (fresh guest each), medians reported   [BENCH_RUNS]
#   BENCH_VM_NREC      records the guest init writes before it idles    [64]
#   BENCH_QUIET_WAIT   seconds to wait, before each timed step, for the
#                      machine's other processes to leave the CPUs idle [90]
#   BENCH_CAIRN_REV    git revision to print when CAIRN is not in a work tree
#
# Both tools' checkpoints live on the same guest. virtnbdbackup 1.9 refuses
# to run while the domain has a checkpoint whose name lacks "virtnbdbackup",
# so around each virtnbdbackup run cairn's checkpoints are hidden from it:
# their XML is saved, their libvirt metadata deleted (the QEMU bitmaps stay)
# and then redefined (virsh checkpoint-create --redefine). Both virtnbdbackup
# chains (plain and -z) name their checkpoints virtnbdbackup.N, so they share
# one: the -z full replaces the plain full's virtnbdbackup.0 (the guest is
# idle and nothing writes in between, so both chains start from the same
# disk state), and between the two incrementals the plain one's
# virtnbdbackup.1 is deleted (its bitmap merges back into virtnbdbackup.0),
# so the -z incremental sees the same change. The restores of all chains are
# compared with the paused guest's disk, so a wrong chain cannot pass.

VMB_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VMB_RUNS=${BENCH_VM_RUNS:-${RUNS:-3}}
VMB_NREC=${BENCH_VM_NREC:-64}
VMB_QUIET_WAIT=${BENCH_QUIET_WAIT:-90}
VMB_NAME=cairn-bench-vm-$$
VMB_SKIP=""          # why the VM section did not run ("" when it ran)
VMB_CACHE=dropped    # or warm, when /proc/sys/vm/drop_caches is not writable
VMB_CLEANUP=()
VMB_HIDDEN=()
declare -A VMR       # VMR[metric] = " run1 run2 ..."

# ---------------------------------------------------------------- harness

# tests/integration/vm.sh needs die (run.sh's), at_exit and json
at_exit() { VMB_CLEANUP+=("$1"); }
declare -F json >/dev/null || json() {
	python3 -c 'import json, sys; j = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

# vm_bench_cleanup: destroys and undefines the guest, removes its files;
# safe to call more than once (run.sh's EXIT trap calls it)
vm_bench_cleanup() {
	local i
	for ((i = ${#VMB_CLEANUP[@]} - 1; i >= 0; i--)); do
		eval "${VMB_CLEANUP[$i]}" >/dev/null 2>&1 || true
	done
	VMB_CLEANUP=()
	rm -rf "$WORK/runs/vm"
}

# vm_bench_check: sets VMB_SKIP (with the reason) when this machine cannot
# run the guest; fails with an install hint when virtnbdbackup is missing
vm_bench_check() {
	local why
	# shellcheck source=../integration/vm.sh
	. "$VMB_HERE/../integration/vm.sh"
	# shellcheck disable=SC2034 # read by vm.sh's functions
	VM_NREC=$VMB_NREC VM_AGENT="" VM_DIR="$WORK/vm"
	if ! why=$(vm_available); then
		VMB_SKIP="the test guest cannot run here: $why"
		return 0
	fi
	local missing=()
	command -v virtnbdbackup >/dev/null || missing+=("virtnbdbackup (apt-get install virtnbdbackup)")
	command -v virtnbdrestore >/dev/null || missing+=("virtnbdrestore (apt-get install virtnbdbackup)")
	command -v qemu-img >/dev/null || missing+=("qemu-img (apt-get install qemu-utils)")
	if [ ${#missing[@]} -gt 0 ]; then
		printf 'bench: missing tool: %s\n' "${missing[@]}" >&2
		exit 1
	fi
	if ! (sync; echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
		VMB_CACHE=warm
		log "note: cannot drop page caches here; VM steps start warm instead"
	fi
}

# ---------------------------------------------------------------- helpers

vrecord() { VMR[$1]="${VMR[$1]:-} $2"; }
vmed() { local -a v; read -ra v <<<"${VMR[$1]:-}"; [ ${#v[@]} -gt 0 ] && median "${v[@]}"; }
vmax() { local -a v; read -ra v <<<"${VMR[$1]:-}"; [ ${#v[@]} -gt 0 ] && maxof "${v[@]}"; }

# CPU accounting, in clock ticks (USER_HZ): the whole machine's busy time;
# and what the processes that belong to the measurement use: kernel threads
# (writeback, I/O completion), qemu-nbd servers, libvirtd, virtlogd and the
# guest's QEMU (which serves the backup reads). Short-lived children of the
# measured command are in its own rusage.
pid_cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
cpu_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
cpu_ours() {
	{ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v q="${1:-0}" '{
		c = $0; sub(/^[0-9]+ \(/, "", c); sub(/\) [^)]*$/, "", c)
		r = $0; sub(/^.*\) /, "", r); split(r, f, " ")
		if ($1 == q || $1 == 2 || f[2] == 2 || c == "qemu-nbd" || c == "libvirtd" || c == "virtlogd")
			s += f[12] + f[13]
	} END { printf "%.0f\n", s }'
}

# busy_cores SECONDS: average number of busy CPUs over that time
busy_cores() {
	local b0 t0 b1 t1
	b0=$(cpu_busy); t0=$(date +%s.%N)
	sleep "$1"
	b1=$(cpu_busy); t1=$(date +%s.%N)
	awk -v b="$((b1 - b0))" -v hz="$(getconf CLK_TCK)" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.2f", b / hz / (z - a) }'
}

# wait_quiet: wait (at most BENCH_QUIET_WAIT s) until other processes leave
# the CPUs idle (< 0.2 busy cores over 2 s), so they do not skew the timing
wait_quiet() {
	local end=$((SECONDS + VMB_QUIET_WAIT)) b
	while :; do
		b=$(busy_cores 2)
		awk -v b="$b" 'BEGIN { exit !(b < 0.2) }' && return 0
		if [ $SECONDS -ge $end ]; then
			log "machine still busy ($b cores used by others) after ${VMB_QUIET_WAIT}s; timing anyway"
			return 0
		fi
	done
}

# cold FILE|DIR...: flush, then drop the page cache (or, where that is not
# allowed, read the inputs once so every tool starts equally warm)
cold() {
	sync
	if [ "$VMB_CACHE" = dropped ]; then
		echo 3 >/proc/sys/vm/drop_caches
	else
		warm "$@"
	fi
}

# vtime LABEL INPUT CMD...: quiet machine, cold cache (INPUT: what CMD reads,
# only used when caches cannot be dropped), then run.sh's timeit. Sets T_WALL,
# T_RSS and T_OTHER: CPU seconds used meanwhile by processes other than CMD
# and those of cpu_ours (a measure of how much the timing was disturbed by
# whatever else ran on the machine).
vtime() {
	local label=$1 input=$2; shift 2
	local b0 o0 b1 o1 q0 q1 qpid own hz
	hz=$(getconf CLK_TCK)
	wait_quiet
	cold "$input"
	qpid=$(pgrep -f -- "-name guest=$VMB_NAME," | head -n 1 || true)
	b0=$(cpu_busy); o0=$(cpu_ours "$qpid"); q0=$(pid_cpu "${qpid:-0}")
	timeit "$label" "$@"
	b1=$(cpu_busy); o1=$(cpu_ours "$qpid"); q1=$(pid_cpu "${qpid:-0}")
	own=$(awk -F': *' '/User time \(seconds\)|System time \(seconds\)/ { s += $2 } END { print s + 0 }' \
		"$WORK/logs/$label.time")
	T_OTHER=$(awk -v b="$((b1 - b0))" -v q="$((o1 - o0))" -v o="$own" -v hz="$hz" \
		'BEGIN { x = (b - q) / hz - o; printf "%.1f", x < 0 ? 0 : x }')
	T_CPU=$own
	T_QEMU=$(awk -v q="$((q1 - q0))" -v hz="$hz" 'BEGIN { printf "%.1f", q / hz }')
	log "  $label: $(secs "$T_WALL") s, CPU: tool $T_CPU s, guest QEMU $T_QEMU s, others $T_OTHER s"
}

# vnb_data DIR: bytes of virtnbdbackup's disk data files (without the
# kernel/initrd copies, logs and XML it also keeps)
vnb_data() { find "$1" -maxdepth 1 -name 'vda.*data' -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f\n", s }'; }

# hide_cairn_checkpoints / unhide_cairn_checkpoints: see the header
hide_cairn_checkpoints() {
	local cp
	VMB_HIDDEN=()
	for cp in $(virsh checkpoint-list "$VMB_NAME" --name | grep '^cairn-' || true); do
		virsh checkpoint-dumpxml "$VMB_NAME" "$cp" >"$VMB_DIR/hidden-$cp.xml"
		virsh -q checkpoint-delete "$VMB_NAME" "$cp" --metadata >/dev/null
		VMB_HIDDEN+=("$VMB_DIR/hidden-$cp.xml")
	done
	[ ${#VMB_HIDDEN[@]} -gt 0 ] || die "no cairn checkpoint on $VMB_NAME after a cairn backup"
}
unhide_cairn_checkpoints() {
	# a checkpoint's parent must exist first: redefine in passes until done
	local f left
	for _ in 1 2 3 4 5 6 7 8; do
		left=()
		for f in "${VMB_HIDDEN[@]}"; do
			virsh -q checkpoint-create "$VMB_NAME" "$f" --redefine >/dev/null 2>"$VMB_DIR/redefine.err" ||
				left+=("$f")
		done
		VMB_HIDDEN=("${left[@]}")
		[ ${#VMB_HIDDEN[@]} -gt 0 ] || return 0
	done
	die "cannot redefine cairn checkpoint from ${VMB_HIDDEN[0]}: $(cat "$VMB_DIR/redefine.err")"
}

# wait_guest_idle: the guest init wrote its VM_NREC records and now sleeps
wait_guest_idle() {
	local i
	for i in $(seq 1 240); do
		grep -q 'cairn-guest: done' "$VMB_DIR/$VMB_NAME.console" 2>/dev/null && return 0
		sleep 1
	done
	tail -n 5 "$VMB_DIR/$VMB_NAME.console" >&2 || true
	die "guest $VMB_NAME did not finish its writes in 240 s"
}

# write_dirty: the scatter workload (the same offsets and random data as the
# scatter image of the disk benchmark) written through QEMU's block layer of
# the running guest's virtio disk, with qemu-io over HMP, so that the dirty
# bitmaps of both tools' checkpoints record it
write_dirty() {
	local dev i=0 off cmds="$VMB_DIR/dirty.virsh" out="$VMB_DIR/dirty.out"
	dev=$(virsh qemu-monitor-command "$VMB_NAME" --hmp 'info block' | tr -d '\r' |
		awk '/Attached to:/ { print $3; exit }')
	[ -n "$dev" ] || die "no block backend of $VMB_NAME in 'info block'"
	while read -r off; do
		printf "qemu-monitor-command %s --hmp 'qemu-io -d %s \"write -s %s/w%04d %d 64k\"'\n" \
			"$VMB_NAME" "$dev" "$VMB_DIRTY" "$i" $((off * BLOCK))
		i=$((i + 1))
	done <"$IMGDIR/offsets" >"$cmds"
	virsh -c qemu:///system <"$cmds" >"$out" 2>&1 || die "virsh qemu-io batch failed: $(tail -n 3 "$out")"
	# HMP qemu-io prints only errors back (its statistics go to QEMU's log)
	if grep -v -e '^virsh #' -e '^Welcome to virsh' -e "^Type:" -e "'help' for help" \
		-e "'quit' to quit" -e '^[[:space:]]*$' "$out" | grep -q .; then
		die "qemu-io writes failed: $(grep -v -e '^virsh #' -e '^[[:space:]]*$' "$out" | head -n 5)"
	fi
}

# make_dirty_files: one 64 KiB file per scattered write, from the same
# AES-CTR stream as run.sh's scatter image (readable by QEMU's user)
make_dirty_files() {
	local n
	n=$(wc -l <"$IMGDIR/offsets")
	VMB_DIRTY="$VMB_DIR/dirty"
	mkdir -p "$VMB_DIRTY"
	head -c $((n * BLOCK)) /dev/zero |
		openssl enc -aes-256-ctr -K "$(printf '%064x' "$SEED")" -iv "$(printf '%032x' "$SEED")" |
		(cd "$VMB_DIRTY" && split -b "$BLOCK" -a 4 -d - w)
	chmod 0755 "$VMB_DIRTY"; chmod 0644 "$VMB_DIRTY"/w*
	VMB_NWRITES=$n
}

# same_image A B: qemu-img compare, content only (formats probed)
same_image() {
	qemu-img compare -q "$1" "$2" || die "RESTORED IMAGE DIFFERS: $2 is not $1 (qemu-img compare exit $?)"
}

# ---------------------------------------------------------------- one run

vm_bench_run() {
	local n=$1 repo vnb vnbz out r0 v0 z0 f
	VMB_DIR="$WORK/runs/vm/$n"
	rm -rf "$VMB_DIR"; mkdir -p "$VMB_DIR"; chmod 0777 "$WORK/runs/vm" "$VMB_DIR"
	repo="$VMB_DIR/repo" vnb="$VMB_DIR/vnb" vnbz="$VMB_DIR/vnbz" out="$VMB_DIR/out"
	mkdir -p "$out"

	log "vm run $n/$VMB_RUNS: guest $VMB_NAME on a copy of $VMB_QCOW2"
	cp --sparse=always "$VMB_QCOW2" "$VMB_DIR/vda.qcow2"
	make_dirty_files
	vm_define "$VMB_NAME" "$VMB_DIR" "$VMB_DIR/vda.qcow2"
	virsh -q start "$VMB_NAME" >/dev/null
	wait_guest_idle

	"$CAIRN" init "$repo" --encryption aes-256-gcm --quiet >"$WORK/logs/vm-$n-init.log" 2>&1 ||
		die "cairn init failed: $(cat "$WORK/logs/vm-$n-init.log")"

	# full backups: cairn, then virtnbdbackup plain and -z
	vtime "vm-$n-cairn-full" "$VMB_DIR/vda.qcow2" "$CAIRN" backup "$repo" --domain "$VMB_NAME" --json
	vrecord cairn_full "$T_WALL"; vrecord cairn_full_other "$T_OTHER"; vrecord cairn_rss "$T_RSS"
	vrecord cairn_full_cpu "$T_CPU"; vrecord cairn_full_qemu "$T_QEMU"
	r0=$(dir_bytes "$repo"); vrecord cairn_repo "$r0"
	hide_cairn_checkpoints
	vtime "vm-$n-vnb-full" "$VMB_DIR/vda.qcow2" virtnbdbackup -d "$VMB_NAME" -l full -o "$vnb" -n
	vrecord vnb_full "$T_WALL"; vrecord vnb_full_other "$T_OTHER"
	vrecord vnb_full_cpu "$T_CPU"; vrecord vnb_full_qemu "$T_QEMU"
	v0=$(vnb_data "$vnb"); vrecord vnb_repo "$v0"; vrecord vnb_dir "$(dir_bytes "$vnb")"
	vtime "vm-$n-vnbz-full" "$VMB_DIR/vda.qcow2" virtnbdbackup -d "$VMB_NAME" -l full -o "$vnbz" -z -n
	vrecord vnbz_full "$T_WALL"; vrecord vnbz_full_other "$T_OTHER"
	z0=$(vnb_data "$vnbz"); vrecord vnbz_repo "$z0"; vrecord vnbz_dir "$(dir_bytes "$vnbz")"
	unhide_cairn_checkpoints
	# for reference: cairn's full with zstd level 1 (a second repository,
	# whose checkpoint is only hidden along with the first one's from now on)
	"$CAIRN" init "$repo-z1" --encryption aes-256-gcm --compression zstd:1 --quiet \
		>"$WORK/logs/vm-$n-init-z1.log" 2>&1 || die "cairn init failed: $(cat "$WORK/logs/vm-$n-init-z1.log")"
	vtime "vm-$n-cairn-z1-full" "$VMB_DIR/vda.qcow2" "$CAIRN" backup "$repo-z1" --domain "$VMB_NAME" --json
	vrecord cairn_z1_full "$T_WALL"; vrecord cairn_z1_full_other "$T_OTHER"
	vrecord cairn_z1_full_cpu "$T_CPU"; vrecord cairn_z1_full_qemu "$T_QEMU"
	vrecord cairn_z1_repo "$(dir_bytes "$repo-z1")"; rm -rf "$repo-z1"

	# ~1 % scattered change through QEMU, then the incrementals
	write_dirty
	vtime "vm-$n-cairn-inc" "$VMB_DIR/vda.qcow2" "$CAIRN" backup "$repo" --domain "$VMB_NAME" --json
	f="$WORK/logs/vm-$n-cairn-inc.log"
	[ "$(sed -n 's/^ *"parent": *\(.*\),$/\1/p' "$f")" != null ] || die "cairn's second backup has no parent"
	local nread total
	nread=$(sed -n 's/^ *"bytes_read": *\([0-9]*\).*/\1/p' "$f")
	total=$(sed -n 's/^ *"bytes_total": *\([0-9]*\).*/\1/p' "$f")
	[ -n "$nread" ] && [ "$nread" -lt $((total / 10)) ] ||
		die "cairn's second backup read $nread of $total bytes: not incremental ($(grep -i note "$f" | head -n 1))"
	vrecord cairn_inc "$T_WALL"; vrecord cairn_inc_other "$T_OTHER"; vrecord cairn_inc_read "$nread"
	vrecord cairn_inc_cpu "$T_CPU"
	vrecord cairn_rss "$T_RSS"
	vrecord cairn_growth $(( $(dir_bytes "$repo") - r0 ))
	hide_cairn_checkpoints
	vtime "vm-$n-vnb-inc" "$VMB_DIR/vda.qcow2" virtnbdbackup -d "$VMB_NAME" -l inc -o "$vnb" -n
	vrecord vnb_inc "$T_WALL"; vrecord vnb_inc_other "$T_OTHER"
	vrecord vnb_growth $(( $(vnb_data "$vnb") - v0 ))
	virsh -q checkpoint-delete "$VMB_NAME" virtnbdbackup.1 >/dev/null ||
		die "cannot delete virtnbdbackup.1 before the -z incremental"
	vtime "vm-$n-vnbz-inc" "$VMB_DIR/vda.qcow2" virtnbdbackup -d "$VMB_NAME" -l inc -o "$vnbz" -z -n
	vrecord vnbz_inc "$T_WALL"; vrecord vnbz_inc_other "$T_OTHER"
	vrecord vnbz_growth $(( $(vnb_data "$vnbz") - z0 ))
	unhide_cairn_checkpoints

	# the reference: the paused guest's disk; beyond the guest's own records
	# it must be the disk benchmark's scatter image exactly
	virsh -q suspend "$VMB_NAME" >/dev/null
	qemu-img convert -U -f qcow2 -O raw "$VMB_DIR/vda.qcow2" "$VMB_DIR/paused.raw"
	vm_destroy "$VMB_NAME"
	local skip=$((VMB_NREC * 4096))
	cmp -s -i "$skip" "$VMB_DIR/paused.raw" "$SCATTER" ||
		die "the guest's disk after the qemu-io writes is not the scatter image beyond byte $skip"
	rm -f "$VMB_DIR/vda.qcow2"

	# restores of the latest point, each compared with the paused disk
	vtime "vm-$n-cairn-restore-qcow2" "$repo" \
		"$CAIRN" restore "$repo" latest --name "$VMB_NAME" --disk vda --to "$out/cairn.qcow2" --format qcow2
	vrecord cairn_restore_qcow2 "$T_WALL"; vrecord cairn_restore_qcow2_other "$T_OTHER"; vrecord cairn_rss "$T_RSS"
	vrecord cairn_restore_qcow2_cpu "$T_CPU"
	same_image "$VMB_DIR/paused.raw" "$out/cairn.qcow2"; rm -f "$out/cairn.qcow2"
	vtime "vm-$n-cairn-restore-raw" "$repo" \
		"$CAIRN" restore "$repo" latest --name "$VMB_NAME" --disk vda --to "$out/cairn.raw"
	vrecord cairn_restore_raw "$T_WALL"; vrecord cairn_restore_raw_other "$T_OTHER"; vrecord cairn_rss "$T_RSS"
	vrecord cairn_restore_raw_cpu "$T_CPU"
	same_image "$VMB_DIR/paused.raw" "$out/cairn.raw"; rm -f "$out/cairn.raw"
	local t
	for t in vnb vnbz; do
		mkdir -p "$out/$t"
		vtime "vm-$n-$t-restore" "$VMB_DIR/$t" \
			virtnbdrestore -i "$VMB_DIR/$t" -o "$out/$t" -n -L "$VMB_DIR/$t-restore.log"
		vrecord "${t}_restore" "$T_WALL"; vrecord "${t}_restore_other" "$T_OTHER"
		[ -f "$out/$t/vda.qcow2" ] || die "virtnbdrestore wrote no $out/$t/vda.qcow2: $(ls "$out/$t")"
		same_image "$VMB_DIR/paused.raw" "$out/$t/vda.qcow2"
		rm -rf "${out:?}/$t"
	done
	log "vm run $n: cairn full $(secs "${VMR[cairn_full]##* }") s, inc $(secs "${VMR[cairn_inc]##* }") s," \
		"restore $(secs "${VMR[cairn_restore_qcow2]##* }") s; virtnbdbackup full $(secs "${VMR[vnb_full]##* }") s," \
		"inc $(secs "${VMR[vnb_inc]##* }") s, restore $(secs "${VMR[vnb_restore]##* }") s; all restores verified"
	vm_bench_cleanup
}

# ---------------------------------------------------------------- main

# vm_bench_main: runs the VM section (or records why it is skipped)
vm_bench_main() {
	vm_bench_check
	if [ -n "$VMB_SKIP" ]; then
		log "VM section skipped: $VMB_SKIP"
		return 0
	fi
	vm_start_libvirtd || die "libvirtd does not start (virsh -c qemu:///system version fails)"
	VMB_QCOW2="$IMGDIR/osimg.qcow2"
	if [ ! -s "$VMB_QCOW2" ]; then
		log "converting osimg to qcow2 for the guest"
		qemu-img convert -f raw -O qcow2 "$OSIMG" "$VMB_QCOW2.tmp"
		mv "$VMB_QCOW2.tmp" "$VMB_QCOW2"
	fi
	VMB_LOAD0=$(awk '{ print $1 }' /proc/loadavg)
	local n
	for n in $(seq 1 "$VMB_RUNS"); do
		vm_bench_run "$n"
	done
}

# ---------------------------------------------------------------- report

# vm_target NAME "A / B" OP LIMIT: a target row, the ratio with 3 decimals
vm_target() {
	awk -v n="$1" -v e="$2" -v op="$3" -v r="$4" 'BEGIN {
		split(e, p, " / "); x = (p[2] > 0) ? p[1] / p[2] : 0
		ok = (op == ">=") ? x >= r : (op == "<=") ? x <= r : x < r
		printf "| %s | %.3f | %s %s | %s |\n", n, x, (op == ">=") ? "≥" : (op == "<=") ? "≤" : "<", r, ok ? "PASS" : "MISS"
	}'
}

vm_ratio() { # vm_ratio A B: A / B, 2 decimals
	awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
}

# vm_bench_report: the VM section of the report, between markers
vm_bench_report() {
	echo "<!-- vm-bench begin -->"
	echo "## Running VM: cairn vs virtnbdbackup"
	echo
	if [ -n "$VMB_SKIP" ]; then
		echo "Skipped on this run: $VMB_SKIP."
		echo
		echo "<!-- vm-bench end -->"
		return
	fi
	local rev qemu libv
	rev=$(git -C "$(dirname "$CAIRN")" rev-parse --short HEAD 2>/dev/null || echo "${BENCH_CAIRN_REV:-?}")
	qemu=$(qemu-system-x86_64 --version | head -n 1 | sed 's/^QEMU emulator version //')
	libv=$(virsh -c qemu:///system version 2>/dev/null | awk -F': *' '/Using library/ { print $2 }')
	echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`tests/bench/vm.sh\` (\`BENCH_ONLY=vm make bench\` runs this section alone); $(nproc) cores; load average ${VMB_LOAD0:-?} when it started."
	echo
	echo "- Tools: $("$CAIRN" --version 2>&1 | head -n 1), git $rev; virtnbdbackup $(virtnbdbackup -V 2>&1 | tail -n 1); ${libv:-libvirt ?}; QEMU $qemu."
	echo "- Guest: a TCG domain (\`<domain type='qemu'>\`, 256 MiB, 1 vCPU, direct kernel boot of this machine's Debian kernel with a busybox initramfs, tests/integration/vm.sh), one virtio disk: osimg converted to a $IMG_SIZE qcow2 v3 ($(mib "$(du -B1 "$VMB_QCOW2" | awk '{ print $1 }')") MiB allocated). Its init writes $((VMB_NREC - 1)) 4 KiB records at the start of the disk, then idles; the benchmark waits for that."
	echo "- Full backups, in this order on the running guest: \`cairn backup REPO --domain D --json\` (fresh repository, \`cairn init --encryption aes-256-gcm\`, default zstd level 3), \`virtnbdbackup -d D -l full -o DIR -n\`, \`virtnbdbackup -d D -l full -o DIR2 -z -n\` (lz4); then, for reference only, cairn into a second repository made with \`--compression zstd:1\`."
	echo "- Then $VMB_NWRITES writes of 64 KiB of random data at random 64 KiB-aligned offsets ($(awk -v w="$VMB_NWRITES" -v b="$IMG_BYTES" 'BEGIN { printf "%.2f", w * 65536 * 100 / b }') % of the disk; the same offsets and data as the scatter image above) through QEMU's block layer (\`virsh qemu-monitor-command D --hmp 'qemu-io -d <virtio backend> \"write -s FILE OFF 64k\"'\`), once; then the incrementals on that same change: \`cairn backup\` again (incremental from its checkpoint), \`virtnbdbackup -l inc\` into DIR and into DIR2 -z. The paused guest's disk is then checked to equal the scatter image beyond the guest's records."
	echo "- Restores of the latest point: \`cairn restore REPO latest --name D --disk vda --to F --format qcow2\` (and raw, cairn's default), \`virtnbdrestore -i DIR -o OUT -n\` (replays full + incremental into a qcow2), the same for DIR2; every restored image is compared with the paused guest's disk (\`qemu-img compare\`)."
	if [ "$VMB_CACHE" = dropped ]; then
		echo "- Before each timed step: wait (up to ${VMB_QUIET_WAIT} s) until other processes use < 0.2 cores, then \`sync; echo 3 > /proc/sys/vm/drop_caches\`: every step starts cold, unlike the disk benchmark above."
	else
		echo "- Before each timed step: wait (up to ${VMB_QUIET_WAIT} s) until other processes use < 0.2 cores; page caches could not be dropped here, so the inputs are read once first (warm)."
	fi
	echo "- Stored sizes: cairn's whole repository directory; for virtnbdbackup its disk data files (\`vda.*.data\`) only: it also keeps a copy of the guest's kernel and initrd (direct kernel boot), logs and XML per backup, listed apart."
	echo "- $VMB_RUNS run(s), each on a fresh guest and fresh repositories; medians. \"_other\" (every-run table) = CPU seconds used during the step by anything but the tool and its children, the guest's QEMU, libvirtd, virtlogd, qemu-nbd servers and kernel threads: other people's work on this shared machine, which slows the step down."
	echo
	echo "| tool | full backup s | stored after full MiB | 1% incremental s | incremental growth MiB | restore latest s (qcow2) | restore latest s (raw) |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	echo "| cairn | $(secs "$(vmed cairn_full)") | $(mib "$(vmed cairn_repo)") | $(secs "$(vmed cairn_inc)") | $(mib "$(vmed cairn_growth)") | $(secs "$(vmed cairn_restore_qcow2)") | $(secs "$(vmed cairn_restore_raw)") |"
	echo "| cairn \`--compression zstd:1\` (full only, for reference) | $(secs "$(vmed cairn_z1_full)") | $(mib "$(vmed cairn_z1_repo)") | | | | |"
	echo "| virtnbdbackup | $(secs "$(vmed vnb_full)") | $(mib "$(vmed vnb_repo)") | $(secs "$(vmed vnb_inc)") | $(mib "$(vmed vnb_growth)") | $(secs "$(vmed vnb_restore)") | n/a |"
	echo "| virtnbdbackup -z | $(secs "$(vmed vnbz_full)") | $(mib "$(vmed vnbz_repo)") | $(secs "$(vmed vnbz_inc)") | $(mib "$(vmed vnbz_growth)") | $(secs "$(vmed vnbz_restore)") | n/a |"
	echo
	echo "virtnbdbackup's whole output directory after the full: $(mib "$(vmed vnb_dir)") MiB plain, $(mib "$(vmed vnbz_dir)") MiB -z. cairn's incremental read $(mib "$(vmed cairn_inc_read)") MiB of the $(mib "$IMG_BYTES") MiB disk; cairn's peak RSS over all its commands: $(mib $(( $(vmax cairn_rss) * 1024 ))) MiB."
	echo
	echo "<details><summary>every run</summary>"
	echo
	echo "| metric | runs |"
	echo "|---|---|"
	local m
	for m in cairn_full cairn_full_cpu cairn_full_qemu cairn_full_other \
		cairn_z1_full cairn_z1_full_cpu cairn_z1_full_qemu cairn_z1_full_other cairn_z1_repo \
		vnb_full vnb_full_cpu vnb_full_qemu vnb_full_other vnbz_full vnbz_full_other \
		cairn_repo vnb_repo vnb_dir vnbz_repo vnbz_dir \
		cairn_inc cairn_inc_cpu cairn_inc_other cairn_inc_read vnb_inc vnb_inc_other vnbz_inc vnbz_inc_other \
		cairn_growth vnb_growth vnbz_growth \
		cairn_restore_qcow2 cairn_restore_qcow2_cpu cairn_restore_qcow2_other \
		cairn_restore_raw cairn_restore_raw_cpu cairn_restore_raw_other \
		vnb_restore vnb_restore_other vnbz_restore vnbz_restore_other cairn_rss; do
		echo "| $m | ${VMR[$m]# } |"
	done
	echo
	echo "Times in seconds (\`_cpu\`: user + system CPU seconds of the tool and its children, \`_qemu\`: of the guest's QEMU process, which serves the backup reads, \`_other\`: of other work on the machine during the step), sizes in bytes, RSS in KiB."
	echo
	echo "</details>"
	echo
	local cf vf ci cx vx cr zr
	cf=$(vmed cairn_full); vf=$(vmed vnb_full); ci=$(vmed cairn_inc)
	cx=$(vmed cairn_restore_qcow2); vx=$(vmed vnb_restore)
	cr=$(vmed cairn_repo); zr=$(vmed vnbz_repo)
	echo "### Targets (running VM)"
	echo
	echo "| target | measured | required | result |"
	echo "|---|---:|---:|---|"
	vm_target "full backup speed-up vs virtnbdbackup (plain)" "$vf / $cf" ">=" 2
	vm_target "stored size after full / virtnbdbackup -z's" "$cr / $zr" "<=" 0.7
	vm_target "1% incremental time / cairn full time" "$ci / $cf" "<" 0.1
	vm_target "restore speed-up vs virtnbdrestore (both to qcow2)" "$vx / $cx" ">=" 3
	echo "| (restore speed-up vs virtnbdrestore, cairn to raw) | $(vm_ratio "$vx" "$(vmed cairn_restore_raw)") | (information) | |"
	echo
	echo "<!-- vm-bench end -->"
}

# vm_bench_splice OUT.md: puts the VM section (and the current analysis)
# into an existing report, leaving the rest as it is; a new report gets a
# short header
vm_bench_splice() {
	local md=$1 tmp="$WORK/vm-section.md.tmp" first
	first=$(head -n 1 "$BENCH_HERE/analysis.md")
	{
		if [ -f "$md" ]; then
			# drop the old VM section and everything from the analysis on
			awk -v first="$first" '
				/^<!-- vm-bench begin -->$/ { skip = 1 }
				!skip && $0 == first { exit }
				!skip { print }
				/^<!-- vm-bench end -->$/ { skip = 0 }
			' "$md" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'
		else
			echo "# cairn benchmarks"
			echo
			echo "Generated by \`BENCH_ONLY=vm make bench\` (tests/bench/run.sh): the VM section only; \`make bench\` adds the disk-image benchmark."
		fi
		echo
		vm_bench_report
		echo
		cat "$BENCH_HERE/analysis.md"
	} >"$tmp"
	mv "$tmp" "$md"
}
