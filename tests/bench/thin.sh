# shellcheck shell=bash
# cairn benchmark, thin disks section: cost in proportion to the data, not
# the disk's virtual size. Sourced by tests/bench/run.sh after its helpers;
# run on its own with
#
#   BENCH_ONLY=thin make bench   or   BENCH_ONLY=thin tests/bench/run.sh ./cairn docs/benchmarks.md
#
# which replaces only this section of an existing report.
#
# The data: the WAN section's image (fs_image BENCH_WAN_IMG_SIZE
# BENCH_WAN_DATA_MB BENCH_WAN_RANDOM_MB: 1 GiB holding ext4 with 640 MB of
# /usr and 160 MiB of random data). The thick disk
# is that image; the thin disk is the same bytes followed by a hole up to
# BENCH_THIN_SIZE (500G): the same data, 500 times the virtual size. Each
# goes into a fresh local repository: cairn backup, cairn backup again
# unchanged, cairn restore (sparse output; the thin one is checked by cmp of
# its data part and SEEK_DATA past it, the thick one by cmp). Page caches
# are warm (the image's data is read once before each backup).
#
# CAIRN_BENCH_QUICK=1: the quick WAN image (128 MiB) and a 20G thin disk.

if [ "${CAIRN_BENCH_QUICK:-0}" = 1 ]; then
	TB_SIZE=${BENCH_THIN_SIZE:-20G}
	TB_IMG_SIZE=${BENCH_WAN_IMG_SIZE:-128M}
	TB_DATA_MB=${BENCH_WAN_DATA_MB:-60}
	TB_RANDOM_MB=${BENCH_WAN_RANDOM_MB:-20}
else
	TB_SIZE=${BENCH_THIN_SIZE:-500G}
	TB_IMG_SIZE=${BENCH_WAN_IMG_SIZE:-1G}
	TB_DATA_MB=${BENCH_WAN_DATA_MB:-640}
	TB_RANDOM_MB=${BENCH_WAN_RANDOM_MB:-160}
fi
declare -A TB

# tb_verify_thin RESTORED: the data part equals the image, nothing past it
tb_verify_thin() {
	[ "$(stat -c %s "$1")" = "$(stat -c %s "$TB_THIN")" ] || die "restored thin disk has the wrong size"
	cmp -n "$TB_DATA_BYTES" "$1" "$TB_IMG" || die "RESTORED THIN DISK DIFFERS FROM THE ORIGINAL: $1"
	python3 - "$1" "$TB_DATA_BYTES" <<'EOF' || die "the restored thin disk holds data past the image's bytes: $1"
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    off = os.lseek(fd, int(sys.argv[2]), os.SEEK_DATA)
except OSError as e:
    sys.exit(0 if e.errno == errno.ENXIO else 1)
# data past the image's end must at least be zeros
with os.fdopen(fd, "rb") as f:
    f.seek(off)
    while True:
        b = f.read(1 << 20)
        if not b:
            break
        if b.count(0) != len(b):
            sys.exit(1)
EOF
}

# tb_run KIND IMAGE: backup, backup again, restore into a fresh repository
tb_run() {
	local kind=$1 img=$2 repo=$WORK/thin/repo-$1 out=$WORK/thin/out-$1.raw
	rm -rf "$repo"
	"$CAIRN" init "$repo" >/dev/null || die "cairn init failed"
	# warm: the data part only (reading 500 GiB of holes would take minutes)
	dd if="$img" bs=1M count=$(((TB_DATA_BYTES + 1048575) / 1048576)) status=none >/dev/null
	timeit "tb-$kind-backup" "$CAIRN" backup "$repo" --image vda="$img" --name thin -q
	TB[${kind}_backup]=$T_WALL; TB[${kind}_backup_rss]=$T_RSS
	timeit "tb-$kind-again" "$CAIRN" backup "$repo" --image vda="$img" --name thin -q
	TB[${kind}_again]=$T_WALL; TB[${kind}_again_rss]=$T_RSS
	TB[${kind}_repo]=$(dir_bytes "$repo")
	timeit "tb-$kind-restore" "$CAIRN" restore "$repo" latest --to "$out" -q
	TB[${kind}_restore]=$T_WALL; TB[${kind}_restore_rss]=$T_RSS
	if [ "$kind" = thin ]; then tb_verify_thin "$out"; else cmp "$out" "$img" || die "RESTORED IMAGE DIFFERS: $out"; fi
	rm -rf "$out" "$repo"
}

kib_mib() { echo $(($1 / 1024)); }

thin_report() {
	local op ratio worst=0
	echo "<!-- thin-bench begin -->"
	echo "## Thin disks: cost in proportion to the data"
	echo
	[ "${CAIRN_BENCH_QUICK:-0}" = 1 ] && echo "**QUICK MODE (CAIRN_BENCH_QUICK=1): a smoke test with small sizes, not a measurement; re-run without it.**" && echo
	echo "Measured $(date -u '+%Y-%m-%d %H:%M') UTC by \`tests/bench/thin.sh\` (\`BENCH_ONLY=thin make bench\`); $(nproc) cores; load average ${TB[load0]} when it started, ${TB[load1]} when it ended."
	echo
	echo "The same data two ways: a $TB_IMG_SIZE raw image holding ext4 made with \`mkfs.ext4 -d\` from $TB_DATA_MB MB of /usr and $TB_RANDOM_MB MiB of random data ($(mib "$TB_ALLOC") MiB allocated), and a $TB_SIZE sparse raw image whose first $TB_IMG_SIZE are those bytes and the rest a hole. Each into a fresh local repository (default chunk size, aes-256-gcm): \`cairn backup\`, \`cairn backup\` again with nothing changed, \`cairn restore\` to a sparse file (checked with cmp; the thin one by its data part and SEEK_DATA past it). Page caches warm."
	echo
	echo "| step | $TB_IMG_SIZE image s | $TB_SIZE thin image s | thin / thick | target | peak RSS MiB (thick / thin) |"
	echo "|---|---:|---:|---:|---:|---|"
	for op in backup again restore; do
		ratio=$(awk -v a="${TB[thin_$op]}" -v b="${TB[thick_$op]}" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
		worst=$(awk -v a="$worst" -v b="$ratio" 'BEGIN { print (b > a) ? b : a }')
		echo "| $(case $op in backup) echo "backup" ;; again) echo "backup again, unchanged" ;; restore) echo "restore" ;; esac) | $(secs "${TB[thick_$op]}") | $(secs "${TB[thin_$op]}") | $ratio | ≤ 1.5 $(awk -v r="$ratio" 'BEGIN { print (r <= 1.5) ? "PASS" : "MISS" }') | $(kib_mib "${TB[thick_${op}_rss]}") / $(kib_mib "${TB[thin_${op}_rss]}") |"
	done
	echo
	echo "Repository size: thick $(mib "${TB[thick_repo]}") MiB, thin $(mib "${TB[thin_repo]}") MiB. Worst ratio $worst (target ≤ 1.5 for every step)."
	echo "<!-- thin-bench end -->"
}

thin_bench_main() {
	TB_IMG=$(fs_image "$TB_IMG_SIZE" "$TB_DATA_MB" "$TB_RANDOM_MB")
	TB_DATA_BYTES=$(stat -c %s "$TB_IMG")
	TB_ALLOC=$(du -B1 "$TB_IMG" | awk '{ print $1 }')
	rm -rf "$WORK/thin"
	mkdir -p "$WORK/thin"
	TB_THIN=$WORK/thin/thin.raw
	cp --sparse=always "$TB_IMG" "$TB_THIN"
	truncate -s "$TB_SIZE" "$TB_THIN"
	[ "$(stat -c %s "$TB_THIN")" -gt "$TB_DATA_BYTES" ] || die "BENCH_THIN_SIZE $TB_SIZE is not larger than the image"
	TB[load0]=$(awk '{ print $1 }' /proc/loadavg)
	tb_run thick "$TB_IMG"; log "thin: $TB_IMG_SIZE image done"
	tb_run thin "$TB_THIN"; log "thin: $TB_SIZE thin image done"
	TB[load1]=$(awk '{ print $1 }' /proc/loadavg)
	rm -rf "$WORK/thin"
}
