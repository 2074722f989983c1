# shellcheck shell=bash
# cairn benchmark, lifecycle section: garbage collection and data checks.
# Sourced by tests/bench/run.sh after its helpers and build_images; run on
# its own with
#
#   BENCH_ONLY=lifecycle make bench   or   BENCH_ONLY=lifecycle tests/bench/run.sh ./cairn docs/benchmarks.md
#
# which replaces only this section of an existing report.
#
# 1. History: the osimg image receives 30 rounds of scattered changes (each
#    BENCH_SCATTER_WRITES random 64 KiB writes, new offsets and data per
#    round); after each round cairn and restic back the same file up. Then
#    both forget all but the last 10 snapshots, and `cairn gc` is timed
#    against `restic prune`, `cairn check --read-data` against `restic
#    check --read-data` (every step cold: caches dropped before it).
# 2. Scale: a synthetic repository with LC_CHUNKS (1M) distinct chunks in
#    one snapshot and as many in a second; the first is forgotten and gc
#    deletes half the repository. Reported: gc time and peak memory, and the
#    index's bytes per chunk when it is loaded (cairn check's peak RSS over
#    the number of chunks gives an upper bound including everything else).
#
# Environment: BENCH_LC_ROUNDS [30], BENCH_LC_KEEP [10], BENCH_LC_CHUNKS [1048576]

LC_ROUNDS=${BENCH_LC_ROUNDS:-30}
LC_KEEP=${BENCH_LC_KEEP:-10}
LC_CHUNKS=${BENCH_LC_CHUNKS:-1048576}
declare -A LC

lc_cold() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }

# lc_scatter FILE ROUND: SCATTER_WRITES random 64 KiB writes, seeded by round
lc_scatter() {
	local f=$1 round=$2 blocks=$((IMG_BYTES / BLOCK)) seed=$((SEED + 1000 * $2))
	awk -v seed="$seed" -v n="$SCATTER_WRITES" -v blocks="$blocks" 'BEGIN {
		srand(seed)
		while (k < n) { b = int(rand() * blocks); if (!(b in seen)) { seen[b] = 1; print b; k++ } }
	}' >"$WORK/lc/offsets"
	head -c $((SCATTER_WRITES * BLOCK)) /dev/zero |
		openssl enc -aes-256-ctr -K "$(printf '%064x' "$seed")" -iv "$(printf '%032x' "$seed")" \
			>"$WORK/lc/random.bin"
	python3 - "$f" "$WORK/lc/offsets" "$WORK/lc/random.bin" "$BLOCK" <<'EOF'
import os, sys
img, offs, data, block = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
fd = os.open(img, os.O_WRONLY)
with open(data, "rb") as d, open(offs) as o:
    for line in o:
        os.pwrite(fd, d.read(block), int(line) * block)
os.close(fd)
EOF
}

lc_history() {
	local img="$WORK/lc/disk.raw" i
	rm -rf "$WORK/lc"
	mkdir -p "$WORK/lc"
	cp --sparse=always "$OSIMG" "$img"
	"$CAIRN" init "$WORK/lc/cairn" >/dev/null
	RESTIC_REPOSITORY="$WORK/lc/restic" restic init --repository-version 2 >/dev/null 2>&1 ||
		die "restic init failed"
	for i in $(seq 1 "$LC_ROUNDS"); do
		[ "$i" -gt 1 ] && lc_scatter "$img" "$i"
		"$CAIRN" backup "$WORK/lc/cairn" --image "$img" --name disk -q >/dev/null ||
			die "cairn backup round $i failed"
		RESTIC_REPOSITORY="$WORK/lc/restic" restic backup --compression auto -q "$img" \
			>/dev/null 2>&1 || die "restic backup round $i failed"
		log "lifecycle history: round $i/$LC_ROUNDS"
	done
	"$CAIRN" forget "$WORK/lc/cairn" --all --keep-last "$LC_KEEP" -q >/dev/null
	RESTIC_REPOSITORY="$WORK/lc/restic" restic forget --keep-last "$LC_KEEP" -q >/dev/null 2>&1 ||
		die "restic forget failed"
	LC[cairn_before]=$(dir_bytes "$WORK/lc/cairn")
	LC[restic_before]=$(dir_bytes "$WORK/lc/restic")
	lc_cold; timeit lc-cairn-gc "$CAIRN" gc "$WORK/lc/cairn"
	LC[cairn_gc]=$T_WALL; LC[cairn_gc_rss]=$T_RSS
	lc_cold; timeit lc-restic-prune env RESTIC_REPOSITORY="$WORK/lc/restic" restic prune
	LC[restic_prune]=$T_WALL; LC[restic_prune_rss]=$T_RSS
	LC[cairn_after]=$(dir_bytes "$WORK/lc/cairn")
	LC[restic_after]=$(dir_bytes "$WORK/lc/restic")
	lc_cold; timeit lc-cairn-check "$CAIRN" check "$WORK/lc/cairn" --read-data
	LC[cairn_check]=$T_WALL
	lc_cold; timeit lc-restic-check env RESTIC_REPOSITORY="$WORK/lc/restic" restic check --read-data
	LC[restic_check]=$T_WALL
	"$CAIRN" restore "$WORK/lc/cairn" latest --to "$WORK/lc/out.raw" -q >/dev/null
	cmp -s "$WORK/lc/out.raw" "$img" || die "lifecycle: cairn's latest snapshot restores different data after gc"
	rm -f "$WORK/lc/out.raw"
}

# A sparse image with one 8-byte marker per 64 KiB block: every chunk
# distinct, almost nothing to compress or store, so the repository's size
# is all index and metadata.
lc_synthetic_image() {
	python3 - "$1" "$LC_CHUNKS" "$2" <<'EOF'
import os, sys
path, n, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.ftruncate(fd, n * 65536)
for i in range(n):
    os.pwrite(fd, tag + i.to_bytes(8, "little"), i * 65536)
os.close(fd)
EOF
}

lc_scale() {
	local r="$WORK/lc/scale" img="$WORK/lc/synth.raw"
	"$CAIRN" init "$r" --chunk-size 64K >/dev/null
	lc_synthetic_image "$img" A
	timeit lc-scale-backup1 "$CAIRN" backup "$r" --image "$img" --name synth -q
	LC[scale_backup]=$T_WALL
	lc_synthetic_image "$img" B
	"$CAIRN" backup "$r" --image "$img" --name synth -q >/dev/null || die "synthetic backup 2 failed"
	rm -f "$img"
	lc_cold; timeit lc-scale-check "$CAIRN" check "$r"
	LC[scale_check]=$T_WALL; LC[scale_check_rss]=$T_RSS
	"$CAIRN" forget "$r" --all --keep-last 1 -q >/dev/null
	lc_cold; timeit lc-scale-gc "$CAIRN" gc "$r" --json
	LC[scale_gc]=$T_WALL; LC[scale_gc_rss]=$T_RSS
	LC[scale_deleted]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["packs_deleted"])' "$WORK/logs/lc-scale-gc.log")
	"$CAIRN" check "$r" >/dev/null || die "synthetic repository does not check clean after gc"
}

lc_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }

lifecycle_report() {
	echo "<!-- lifecycle-bench begin -->"
	echo "## Repository lifecycle: gc and data checks"
	echo
	echo "Measured $(date -u '+%Y-%m-%d %H:%M') UTC by \`tests/bench/lifecycle.sh\` (\`BENCH_ONLY=lifecycle make bench\`); $(nproc) cores; every timed step starts with dropped caches."
	echo
	echo "History: osimg, then $((LC_ROUNDS - 1)) rounds of $SCATTER_WRITES random 64 KiB writes (new offsets and data each round), backed up after each round by cairn (\`cairn backup\`, default repository) and restic (\`restic backup --compression auto\`, repository v2) into their own repositories: $LC_ROUNDS snapshots each. Both then forget all but the last $LC_KEEP (\`cairn forget --all --keep-last $LC_KEEP\`, \`restic forget --keep-last $LC_KEEP\`) and collect garbage (\`cairn gc\`, default --max-unused 5 %; \`restic prune\`, default max-unused 5 %), then read and verify every byte (\`cairn check --read-data\`, \`restic check --read-data\`). cairn's latest snapshot is restored and compared with the image afterwards."
	echo
	echo "| step | cairn s | restic s | restic / cairn |"
	echo "|---|---:|---:|---:|"
	echo "| gc / prune | $(secs "${LC[cairn_gc]}") | $(secs "${LC[restic_prune]}") | $(lc_ratio "${LC[cairn_gc]}" "${LC[restic_prune]}") |"
	echo "| check --read-data | $(secs "${LC[cairn_check]}") | $(secs "${LC[restic_check]}") | $(lc_ratio "${LC[cairn_check]}" "${LC[restic_check]}") |"
	echo
	echo "Repository size before → after gc: cairn $(mib "${LC[cairn_before]}") → $(mib "${LC[cairn_after]}") MiB, restic $(mib "${LC[restic_before]}") → $(mib "${LC[restic_after]}") MiB. Peak RSS: cairn gc $((LC[cairn_gc_rss] / 1024)) MiB, restic prune $((LC[restic_prune_rss] / 1024)) MiB."
	echo
	echo "Scale: a synthetic repository (64 KiB chunks) with two snapshots of $LC_CHUNKS distinct chunks each ($((2 * LC_CHUNKS)) chunks): one 8-byte marker per chunk of a sparse image, so the work is all hashing, indexing and metadata. The first snapshot is forgotten and gc deletes its packs."
	echo
	echo "| measure | value |"
	echo "|---|---:|"
	echo "| backup of $LC_CHUNKS chunks | $(secs "${LC[scale_backup]}") s |"
	echo "| check (structure, index of $((2 * LC_CHUNKS)) chunks loaded) | $(secs "${LC[scale_check]}") s, peak RSS $((LC[scale_check_rss] / 1024)) MiB = $(awk -v r="${LC[scale_check_rss]}" -v n="$((2 * LC_CHUNKS))" 'BEGIN { printf "%.0f", r * 1024 / n }') bytes per chunk, everything included |"
	echo "| gc of $((2 * LC_CHUNKS)) chunks, deleting half | $(secs "${LC[scale_gc]}") s ($(awk -v s="${LC[scale_gc]}" 'BEGIN { printf "%.1f", s / 60 }') min), ${LC[scale_deleted]} packs deleted, peak RSS $((LC[scale_gc_rss] / 1024)) MiB |"
	echo
	echo "The index alone takes at most 64 bytes per chunk once loaded (48-byte entries, table sized from the index files at most 80 % full; \`tests/unit/test_index.c\` asserts it): 600 MiB for 10 million chunks."
	echo "<!-- lifecycle-bench end -->"
}

lifecycle_bench_main() {
	command -v restic >/dev/null || die "restic is needed for the lifecycle section"
	lc_history
	lc_scale
	rm -rf "$WORK/lc"
}
