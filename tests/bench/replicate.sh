# shellcheck shell=bash
# cairn benchmark, replication section: a repository of the osimg image
# copied to a Ceph RADOS Gateway on loopback, and backup/restore straight
# to/from it. Sourced by tests/bench/run.sh after its helpers and
# build_images; run on its own with
#
#   BENCH_ONLY=replicate make bench   or   BENCH_ONLY=replicate tests/bench/run.sh ./cairn docs/benchmarks.md
#
# which replaces only this section of an existing report.
#
# 1. A local cairn repository of osimg (the timed local backup) is copied to
#    the gateway three ways, each into a freshly started gateway (a memstore
#    OSD holds everything in RAM; a fresh one keeps the runs independent):
#    `cairn replicate --connections N` into a replica (init --replica-of),
#    `rclone copy --transfers N` of the same repository directory, and
#    `restic copy` (s3.connections=N) of a local restic repository of the
#    same image into a restic repository on the gateway.
# 2. osimg backed up straight into the gateway and restored from it, against
#    the same into a local directory; the restore is compared with cmp. S3
#    requests are counted from the gateway's own access log (one line per
#    request, beast frontend), PUTs (and multipart POSTs) per GiB of packs
#    stored.
#
# Environment: BENCH_RB_CONNECTIONS [8], BENCH_RB_RUNS [3] (cairn replicate
# and rclone alternate; medians). Needs ceph-mon ceph-osd radosgw
# ceph-common (as the integration tests), rclone and restic.

RB_CONNS=${BENCH_RB_CONNECTIONS:-8}
RB_RUNS=${BENCH_RB_RUNS:-3}
declare -A RB

# The gateway of tests/integration/rgw.sh, in a subshell of its own: lib.sh
# (which rgw.sh needs) installs EXIT/ERR traps and a temp dir that must not
# replace run.sh's; the subshell's exit stops the daemons. Results come
# back through $WORK/rp/results (KEY VALUE lines).
rb_record() { echo "$1 $2" >>"$WORK/rp/results"; }

# rb_gateway_restart: a fresh, empty cluster and gateway
rb_gateway_restart() {
	[ -n "${RGW_DIR:-}" ] && rgw_stop
	rgw_start >"$WORK/logs/rb-rgw.log" 2>&1 || { cat "$WORK/logs/rb-rgw.log" >&2; die "RGW did not start"; }
	# (rgw.sh starts beast with tcp_nodelay=1: see there)
	RB_LOG=$RGW_DIR/log/client.rgw.log
}

# rb_writes_since LINE PREFIX: PUT and POST requests under bucket/PREFIX
# in the access log after line LINE
rb_writes_since() {
	sleep 1 # the log has a writer thread of its own
	tail -n +$(($1 + 1)) "$RB_LOG" | grep -E '"(PUT|POST) /' | grep -cF " /$CAIRN_TEST_S3_BUCKET/$2" || true
}
rb_log_mark() { sleep 1; wc -l <"$RB_LOG"; }

rb_pack_bytes() { find "$1/data" -type f ! -name '.*' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }

rb_local() {
	local repo="$WORK/rp/cairn"
	"$CAIRN" init "$repo" >/dev/null || die "cairn init failed"
	warm "$OSIMG"
	timeit rb-local-backup "$CAIRN" backup "$repo" --image "$OSIMG" --name osimg -q
	rb_record local_backup "$T_WALL"
	rb_record repo_bytes "$(dir_bytes "$repo")"
	rb_record repo_files "$(find "$repo" -type f | wc -l)"
	rb_record pack_bytes "$(rb_pack_bytes "$repo")"
	warm "$repo"
	timeit rb-local-restore "$CAIRN" restore "$repo" latest --to "$WORK/rp/out.raw" -q
	rb_record local_restore "$T_WALL"
	verify_restore "$WORK/rp/out.raw"
	rm -f "$WORK/rp/out.raw"
}

rb_cairn_replicate() {
	local repo="$WORK/rp/cairn" u n=$1
	rb_gateway_restart
	u=$CAIRN_TEST_S3_URL/replica
	"$CAIRN" init "$u" --replica-of "$repo" >/dev/null || die "cairn init --replica-of failed"
	warm "$repo"
	timeit "rb-cairn-replicate-$n" "$CAIRN" replicate "$repo" "$u" --connections "$RB_CONNS" --json
	rb_record "cairn_replicate_$n" "$T_WALL"
	rb_record "cairn_replicate_rss_$n" "$T_RSS"
	"$CAIRN" check "$u" -q >/dev/null || die "the replica on RGW does not check clean"
	timeit "rb-cairn-replicate-again-$n" "$CAIRN" replicate "$repo" "$u" --connections "$RB_CONNS" --json
	rb_record "cairn_replicate_again_$n" "$T_WALL"
}

rb_rclone() {
	local repo="$WORK/rp/cairn" n=$1
	rb_gateway_restart
	warm "$repo"
	# the environment's AWS_CA_BUNDLE makes rclone 1.60 refuse a plain
	# http endpoint ("unable to load custom CA bundle")
	timeit "rb-rclone-$n" env -u AWS_CA_BUNDLE RCLONE_CONFIG_RB_TYPE=s3 RCLONE_CONFIG_RB_PROVIDER=Ceph \
		RCLONE_CONFIG_RB_ENDPOINT="$CAIRN_TEST_S3_ENDPOINT" RCLONE_CONFIG_RB_REGION=us-east-1 \
		RCLONE_CONFIG_RB_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
		RCLONE_CONFIG_RB_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
		RCLONE_CONFIG_RB_FORCE_PATH_STYLE=true \
		rclone copy --config /dev/null --transfers "$RB_CONNS" "$repo" "RB:$CAIRN_TEST_S3_BUCKET/rclone"
	rb_record "rclone_$n" "$T_WALL"
	rb_record "rclone_rss_$n" "$T_RSS"
}

rb_restic() {
	local src="$WORK/rp/restic" dst
	RESTIC_REPOSITORY="$src" restic init --repository-version 2 >/dev/null 2>&1 || die "restic init failed"
	RESTIC_REPOSITORY="$src" RESTIC_CACHE_DIR="$WORK/rp/restic-cache" \
		restic backup --compression auto -q "$OSIMG" >/dev/null 2>&1 || die "restic backup failed"
	rb_record restic_repo_bytes "$(dir_bytes "$src")"
	rb_gateway_restart
	dst=s3:$CAIRN_TEST_S3_ENDPOINT/$CAIRN_TEST_S3_BUCKET/restic
	RESTIC_FROM_PASSWORD=$PASSWORD RESTIC_REPOSITORY="$dst" restic init --from-repo "$src" \
		--copy-chunker-params >"$WORK/logs/rb-restic-init.log" 2>&1 ||
		die "restic init on RGW failed: $(tail -n 3 "$WORK/logs/rb-restic-init.log")"
	warm "$src"
	timeit rb-restic-copy env RESTIC_FROM_PASSWORD="$PASSWORD" RESTIC_REPOSITORY="$dst" \
		RESTIC_CACHE_DIR="$WORK/rp/restic-cache2" \
		restic copy --from-repo "$src" -o s3.connections="$RB_CONNS"
	rb_record restic_copy "$T_WALL"
	rb_record restic_copy_rss "$T_RSS"
}

rb_direct() {
	local u mark
	rb_gateway_restart
	u=$CAIRN_TEST_S3_URL/direct
	"$CAIRN" init "$u" >/dev/null || die "cairn init on RGW failed"
	warm "$OSIMG"
	mark=$(rb_log_mark)
	timeit rb-s3-backup "$CAIRN" backup "$u" --image "$OSIMG" --name osimg -q --connections "$RB_CONNS"
	rb_record s3_backup "$T_WALL"
	rb_record s3_backup_puts "$(rb_writes_since "$mark" direct/)"
	rb_record s3_backup_pack_puts "$(rb_writes_since "$mark" direct/data/)"
	mark=$(rb_log_mark)
	timeit rb-s3-restore "$CAIRN" restore "$u" latest --to "$WORK/rp/out.raw" -q --connections "$RB_CONNS"
	rb_record s3_restore "$T_WALL"
	sleep 1
	rb_record s3_restore_gets "$(tail -n +$((mark + 1)) "$RB_LOG" | grep -cF "\"GET /$CAIRN_TEST_S3_BUCKET/direct/data/" || true)"
	verify_restore "$WORK/rp/out.raw"
	rm -f "$WORK/rp/out.raw"
}

replicate_bench_run() {
	(
		# shellcheck source=/dev/null
		. "$BENCH_HERE/../integration/lib.sh"
		# shellcheck source=/dev/null
		. "$BENCH_HERE/../integration/rgw.sh"
		export CAIRN_PASSWORD=$PASSWORD RESTIC_PASSWORD=$PASSWORD
		why=$(rgw_available) || die "the replication section needs Ceph: $why"
		# every run below holds one copy of the repository (about half of
		# osimg's data) in a fresh memstore OSD; twice that in RAM
		export RGW_STORE_BYTES=$((3 * 1024 * 1024 * 1024))
		rb_record load0 "$(awk '{ print $1 }' /proc/loadavg)"
		rb_local; log "replicate: local backup and restore done"
		# the machine is shared and the gateway shares its cores: runs
		# alternate, medians are reported
		for n in $(seq 1 "$RB_RUNS"); do
			rb_cairn_replicate "$n"; log "replicate: cairn replicate run $n done"
			rb_rclone "$n"; log "replicate: rclone copy run $n done"
		done
		rb_restic; log "replicate: restic copy done"
		rb_direct; log "replicate: backup and restore on RGW done"
		rb_record load1 "$(awk '{ print $1 }' /proc/loadavg)"
		rb_record ceph "$(ceph --version | awk '{ print $3 }')"
	) || die "replication section failed (logs in $WORK/logs)"
	local k v n
	while read -r k v; do RB[$k]=$v; done <"$WORK/rp/results"
	for k in cairn_replicate cairn_replicate_rss cairn_replicate_again rclone rclone_rss; do
		v=""
		for n in $(seq 1 "$RB_RUNS"); do v+=" ${RB[${k}_$n]}"; done
		RB[${k}_all]=${v# }
		# shellcheck disable=SC2086
		if [ "${k%_rss}" = "$k" ]; then RB[$k]=$(median $v); else RB[$k]=$(maxof $v); fi
	done
}

rb_rate() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / 1048576 / s }'; }
rb_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }

replicate_report() {
	local gib puts_per_gib
	gib=$(awk -v b="${RB[pack_bytes]}" 'BEGIN { printf "%.3f", b / 1073741824 }')
	puts_per_gib=$(awk -v p="${RB[s3_backup_puts]}" -v g="$gib" 'BEGIN { printf "%.0f", p / g }')
	echo "<!-- replicate-bench begin -->"
	echo "## Replication and backup to S3 (Ceph RGW on loopback)"
	echo
	echo "Measured $(date -u '+%Y-%m-%d %H:%M') UTC by \`tests/bench/replicate.sh\` (\`BENCH_ONLY=replicate make bench\`); $(nproc) cores shared by the client and the gateway; load average ${RB[load0]} when it started, ${RB[load1]} when it ended (the machine is shared: other work ran meanwhile)."
	echo
	echo "The S3 server is a single-node Ceph ${RB[ceph]} cluster (one mon, one memstore OSD) with a RADOS Gateway on 127.0.0.1, as in the integration tests (\`tests/integration/rgw.sh\`), started afresh for every copy, with \`tcp_nodelay=1\` on its beast frontend (without it every response waits 40 ms for a delayed ACK on loopback, which would measure Nagle's algorithm rather than the clients). The source is a local cairn repository of osimg (default chunk and pack size, aes-256-gcm): $(mib "${RB[repo_bytes]}") MiB in ${RB[repo_files]} files, $(mib "${RB[pack_bytes]}") MiB of them packs. Every tool runs with $RB_CONNS connections; page caches are warm."
	echo
	echo "| copy of the osimg repository to RGW | s (median) | MiB/s | peak RSS MiB | every run s |"
	echo "|---|---:|---:|---:|---|"
	echo "| \`cairn replicate --connections $RB_CONNS\` (into \`init --replica-of\`) | $(secs "${RB[cairn_replicate]}") | $(rb_rate "${RB[repo_bytes]}" "${RB[cairn_replicate]}") | $((RB[cairn_replicate_rss] / 1024)) | ${RB[cairn_replicate_all]} |"
	echo "| \`rclone copy --transfers $RB_CONNS\` of the repository directory | $(secs "${RB[rclone]}") | $(rb_rate "${RB[repo_bytes]}" "${RB[rclone]}") | $((RB[rclone_rss] / 1024)) | ${RB[rclone_all]} |"
	echo "| \`restic copy -o s3.connections=$RB_CONNS\` (restic repository of osimg, $(mib "${RB[restic_repo_bytes]}") MiB) | $(secs "${RB[restic_copy]}") | $(rb_rate "${RB[restic_repo_bytes]}" "${RB[restic_copy]}") | $((RB[restic_copy_rss] / 1024)) | one run |"
	echo "| \`cairn replicate\` again (nothing to send) | $(secs "${RB[cairn_replicate_again]}") | | | ${RB[cairn_replicate_again_all]} |"
	echo
	echo "rclone / cairn: $(rb_ratio "${RB[cairn_replicate]}" "${RB[rclone]}") (target ≥ 1: cairn at least as fast as rclone with the same connections). cairn checks every pack against its name before sending it, writes an index file per 64 packs, copies the manifests last and checks the replica afterwards (\`cairn check\`, not timed)."
	echo
	echo "| osimg, backup and restore | local directory s | RGW s | RGW / local |"
	echo "|---|---:|---:|---:|"
	echo "| \`cairn backup\` | $(secs "${RB[local_backup]}") | $(secs "${RB[s3_backup]}") | $(rb_ratio "${RB[local_backup]}" "${RB[s3_backup]}") |"
	echo "| \`cairn restore\` (compared with cmp) | $(secs "${RB[local_restore]}") | $(secs "${RB[s3_restore]}") | $(rb_ratio "${RB[local_restore]}" "${RB[s3_restore]}") |"
	echo
	echo "S3 requests of the backup to RGW, from the gateway's access log: ${RB[s3_backup_puts]} PUT/POST in all, ${RB[s3_backup_pack_puts]} of them packs, for $(mib "${RB[pack_bytes]}") MiB of unique compressed data: **$puts_per_gib PUTs per GiB** (target < 100). Packs are 16 MiB and sent with one PUT each (multipart from 64 MiB); the rest are index files, the manifest and the lock."
	echo
	echo "The restore from RGW made ${RB[s3_restore_gets]} GETs of pack ranges: one ranged GET per chunk, $RB_CONNS in flight (\`--connections $RB_CONNS\`: restore runs as many workers as the backend's connections when that is more than the cores). Neighbouring chunks of a pack are not yet read with one GET, which would matter more on a store with a longer round trip than loopback's."
	echo "<!-- replicate-bench end -->"
}

replicate_bench_main() {
	command -v rclone >/dev/null || die "rclone is needed for the replication section (apt-get install rclone)"
	command -v restic >/dev/null || die "restic is needed for the replication section"
	rm -rf "$WORK/rp"
	mkdir -p "$WORK/rp"
	replicate_bench_run
	rm -rf "$WORK/rp"
}
