# shellcheck shell=bash
# cairn benchmark, WAN restore section: restoring from a cloud repository
# seen through a simulated WAN. Sourced by tests/bench/run.sh after its
# helpers; run on its own with
#
#   BENCH_ONLY=wan make bench   or   BENCH_ONLY=wan tests/bench/run.sh ./cairn docs/benchmarks.md
#
# which replaces only this section of an existing report.
#
# The image: a raw disk (BENCH_WAN_IMG_SIZE, 1G) holding ext4 made with
# mkfs.ext4 -d from BENCH_WAN_DATA_MB (640) MB of /usr and a file of
# BENCH_WAN_RANDOM_MB (160) MiB of random data (fs_image in run.sh): about
# 320 MiB of repository, as in the issue that asked for this section. A Ceph RGW on loopback (tests/integration/rgw.sh) holds a cairn
# repository of it (cairn backup --connections 8) and a restic repository of
# it (restic backup), both written straight to the gateway. Then, for every
# one-way delay in BENCH_WAN_DELAYS (0 10 25 50 ms), the project's delaying
# proxy (tests/tools/wanproxy.c through tests/integration/wan.sh) goes in
# front of the gateway and, each through it with 8 connections:
#   - cairn restore from S3 (--connections 8), compared with cmp; peak RSS;
#   - restic restore (-o s3.connections=8, a fresh cache: a new host), cmp;
#   - rclone copy of cairn's repository objects to a local directory (the
#     bulk-transfer reference: the same bytes, fetched as whole objects);
#   - cairn serve of the same snapshot read end to end by qemu-img convert
#     over NBD (a fresh --cache-dir when serve has one), cmp.
# Requests are counted from the gateway's access log. cairn restore from a
# local copy of the repository (fetched once, without the proxy) runs at
# every delay right after the restore from S3: both meet the same state
# of this machine's disk. restic's restore is followed by a timed sync of
# the file it wrote (cairn's restore returns with its data durable).
#
# CAIRN_BENCH_QUICK=1: a 128 MiB image with 60 MB + 20 MiB, one delay (25
# ms): a smoke test of a couple of minutes, marked as such in the report.
#
# Environment: BENCH_WAN_RUNS [3], BENCH_WAN_DELAYS, BENCH_WAN_IMG_SIZE, BENCH_WAN_DATA_MB, BENCH_WAN_RANDOM_MB,
# BENCH_WAN_CONNECTIONS [8]. Needs ceph-mon ceph-osd radosgw ceph-common,
# restic, rclone, qemu-img, nbdkit and build/wanproxy (make build/wanproxy).

WAN_QUICK=${CAIRN_BENCH_QUICK:-0}
if [ "$WAN_QUICK" = 1 ]; then
	WB_DELAYS=${BENCH_WAN_DELAYS:-25}
	WB_IMG_SIZE=${BENCH_WAN_IMG_SIZE:-128M}
	WB_DATA_MB=${BENCH_WAN_DATA_MB:-60}
	WB_RANDOM_MB=${BENCH_WAN_RANDOM_MB:-20}
else
	WB_DELAYS=${BENCH_WAN_DELAYS:-0 10 25 50}
	WB_IMG_SIZE=${BENCH_WAN_IMG_SIZE:-1G}
	WB_DATA_MB=${BENCH_WAN_DATA_MB:-640}
	WB_RANDOM_MB=${BENCH_WAN_RANDOM_MB:-160}
fi
WB_CONNS=${BENCH_WAN_CONNECTIONS:-8}
# each measurement this many times, in turn (the median is reported): the
# disk's durable writes and the shared cores vary from run to run
WB_RUNS=${BENCH_WAN_RUNS:-$([ "$WAN_QUICK" = 1 ] && echo 1 || echo 3)}
declare -A WB WB_ALL

# results come back from the gateway's subshell as KEY VALUE lines
wb_record() { echo "$1 $2" >>"$WORK/wan/results"; }

wb_log_mark() { sleep 1; wc -l <"$WB_LOG"; }
# wb_gets_since MARK [PREFIX]: GET requests after line MARK of the access
# log (beast: "GET /bucket/key HTTP/1.1" ...) for keys under bucket/PREFIX,
# or without PREFIX every GET of the bucket, listings included (one client
# runs at a time: they are all its own)
wb_gets_since() {
	sleep 1 # the log has a writer thread of its own
	tail -n +$(($1 + 1)) "$WB_LOG" | grep -cF "\"GET /$CAIRN_TEST_S3_BUCKET${2:+/$2}" || true
}

wb_rclone_env() {
	# AWS_CA_BUNDLE makes rclone 1.60 refuse a plain http endpoint
	echo env -u AWS_CA_BUNDLE RCLONE_CONFIG_WB_TYPE=s3 RCLONE_CONFIG_WB_PROVIDER=Ceph \
		RCLONE_CONFIG_WB_ENDPOINT="$1" RCLONE_CONFIG_WB_REGION=us-east-1 \
		RCLONE_CONFIG_WB_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
		RCLONE_CONFIG_WB_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
		RCLONE_CONFIG_WB_FORCE_PATH_STYLE=true
}

# wb_verify FILE: the restored disk equals the image
wb_verify() {
	[ -f "$1" ] || die "no restored file at $1"
	cmp "$1" "$WB_IMG" || die "RESTORED IMAGE DIFFERS FROM THE ORIGINAL: $1"
	rm -f "$1"
}

wb_restic() { # wb_restic ENDPOINT ARGS...: restic on the repository under bucket/restic
	local ep=$1
	shift
	RESTIC_REPOSITORY=s3:$ep/$CAIRN_TEST_S3_BUCKET/restic \
		restic -o s3.bucket-lookup=path -o s3.connections="$WB_CONNS" "$@"
}

# the two repositories, written straight to the gateway
wb_setup() {
	local u=$CAIRN_TEST_S3_URL/wan
	"$CAIRN" init "$u" >"$WORK/logs/wb-init.log" 2>&1 || die "cairn init on RGW failed: $(cat "$WORK/logs/wb-init.log")"
	warm "$WB_IMG"
	timeit wb-cairn-backup "$CAIRN" backup "$u" --image vda="$WB_IMG" --name wan -q --connections "$WB_CONNS"
	wb_record cairn_backup "$T_WALL"
	RESTIC_CACHE_DIR=$WORK/wan/restic-cache-backup wb_restic "$CAIRN_TEST_S3_ENDPOINT" \
		init --repository-version 2 >"$WORK/logs/wb-restic-init.log" 2>&1 ||
		die "restic init on RGW failed: $(tail -n 3 "$WORK/logs/wb-restic-init.log")"
	timeit wb-restic-backup env RESTIC_CACHE_DIR="$WORK/wan/restic-cache-backup" \
		RESTIC_REPOSITORY="s3:$CAIRN_TEST_S3_ENDPOINT/$CAIRN_TEST_S3_BUCKET/restic" \
		restic -o s3.bucket-lookup=path -o s3.connections="$WB_CONNS" \
		backup --compression auto "$WB_IMG"
	wb_record restic_backup "$T_WALL"
	rm -rf "$WORK/wan/restic-cache-backup"
}

wb_cairn_restore() {
	local d=$1 mark
	mark=$(wb_log_mark)
	timeit "wb-cairn-restore-$d" "$CAIRN" restore "$WAN_S3_URL/wan" latest --to "$WORK/wan/out.raw" \
		-q --connections "$WB_CONNS"
	wb_record "cairn_$d" "$T_WALL"
	wb_record "cairn_rss_$d" "$T_RSS"
	wb_record "cairn_gets_$d" "$(wb_gets_since "$mark")"
	wb_record "cairn_data_gets_$d" "$(wb_gets_since "$mark" wan/data/)"
	wb_verify "$WORK/wan/out.raw"
}

wb_restic_restore() {
	local d=$1 mark
	mark=$(wb_log_mark)
	rm -rf "$WORK/wan/restic-out" "$WORK/wan/restic-cache"
	timeit "wb-restic-restore-$d" env RESTIC_CACHE_DIR="$WORK/wan/restic-cache" \
		RESTIC_REPOSITORY="s3:$WAN_S3_ENDPOINT/$CAIRN_TEST_S3_BUCKET/restic" \
		restic -o s3.bucket-lookup=path -o s3.connections="$WB_CONNS" \
		restore latest --target "$WORK/wan/restic-out"
	local restored=$T_WALL
	wb_record "restic_$d" "$T_WALL"
	wb_record "restic_rss_$d" "$T_RSS"
	# what cairn's restore does before it returns: the data on disk
	timeit "wb-restic-sync-$d" sync "$WORK/wan/restic-out$WB_IMG"
	wb_record "restic_sync_$d" "$T_WALL"
	log "wan: $d ms: restic restore $restored s, sync after it $T_WALL s"
	wb_record "restic_gets_$d" "$(wb_gets_since "$mark")"
	wb_verify "$WORK/wan/restic-out$WB_IMG"
	rm -rf "$WORK/wan/restic-out" "$WORK/wan/restic-cache"
}

wb_rclone() {
	local d=$1 mark dst=$WORK/wan/rclone-$1
	mark=$(wb_log_mark)
	rm -rf "$dst"
	# shellcheck disable=SC2046
	timeit "wb-rclone-$d" $(wb_rclone_env "$WAN_S3_ENDPOINT") \
		rclone copy --config /dev/null --transfers "$WB_CONNS" --checkers "$WB_CONNS" \
		"WB:$CAIRN_TEST_S3_BUCKET/wan" "$dst"
	wb_record "rclone_$d" "$T_WALL"
	wb_record "rclone_gets_$d" "$(wb_gets_since "$mark")"
	rm -rf "$dst"
}

# cairn serve through the proxy, read end to end by qemu-img convert
wb_serve() {
	local d=$1 mark sock=$WORK/wan/nbd.sock cache=()
	if "$CAIRN" serve --help 2>&1 | grep -q -- --cache-dir; then
		rm -rf "$WORK/wan/serve-cache"
		cache=(--cache-dir "$WORK/wan/serve-cache")
	fi
	mark=$(wb_log_mark)
	"$CAIRN" serve "$WAN_S3_URL/wan" latest --socket "$sock" --connections "$WB_CONNS" "${cache[@]}" \
		>"$WORK/logs/wb-serve-$d.log" 2>&1 || die "cairn serve failed: $(cat "$WORK/logs/wb-serve-$d.log")"
	timeit "wb-serve-read-$d" qemu-img convert -f raw -O raw "nbd+unix:///?socket=$sock" "$WORK/wan/served.raw"
	wb_record "serve_$d" "$T_WALL"
	"$CAIRN" serve --stop --socket "$sock" >/dev/null 2>&1 || die "cairn serve --stop failed"
	wb_record "serve_gets_$d" "$(wb_gets_since "$mark")"
	wb_verify "$WORK/wan/served.raw"
	rm -rf "$WORK/wan/serve-cache"
}

# the local copy of cairn's repository, fetched once without the proxy
wb_local_copy() {
	# shellcheck disable=SC2046
	$(wb_rclone_env "$CAIRN_TEST_S3_ENDPOINT") rclone copy --config /dev/null \
		--transfers "$WB_CONNS" "WB:$CAIRN_TEST_S3_BUCKET/wan" "$WORK/wan/local" \
		>"$WORK/logs/wb-local-copy.log" 2>&1 || die "rclone copy of the repository failed"
	[ -f "$WORK/wan/local/config" ] || die "the rclone copy at $WORK/wan/local is not a repository"
	wb_record repo_bytes "$(dir_bytes "$WORK/wan/local")"
	wb_record repo_files "$(find "$WORK/wan/local" -type f | wc -l)"
}

# cairn restore from the local copy, at every delay right after the
# restore from S3: the disk writes the same in both, so both see the same
# state of this machine's disk (its durable writes vary from run to run)
wb_local() {
	local d=$1 repo=$WORK/wan/local
	warm "$repo"
	timeit "wb-local-restore-$d" "$CAIRN" restore "$repo" latest --to "$WORK/wan/out.raw" -q
	wb_record "local_$d" "$T_WALL"
	wb_record "local_rss_$d" "$T_RSS"
	wb_verify "$WORK/wan/out.raw"
}

wan_bench_run() {
	(
		# shellcheck source=/dev/null
		. "$BENCH_HERE/../integration/lib.sh"
		# shellcheck source=/dev/null
		. "$BENCH_HERE/../integration/rgw.sh"
		# shellcheck source=/dev/null
		. "$BENCH_HERE/../integration/wan.sh"
		export CAIRN_PASSWORD=$PASSWORD RESTIC_PASSWORD=$PASSWORD
		why=$(rgw_available) || die "the WAN section needs Ceph: $why"
		# both repositories in a memstore OSD, which holds about twice that in RAM
		export RGW_STORE_BYTES=$((3 * 1024 * 1024 * 1024))
		rgw_start >"$WORK/logs/wb-rgw.log" 2>&1 || { cat "$WORK/logs/wb-rgw.log" >&2; die "RGW did not start"; }
		WB_LOG=$RGW_DIR/log/client.rgw.log
		wb_record load0 "$(awk '{ print $1 }' /proc/loadavg)"
		wb_setup; log "wan: repositories on RGW written"
		wb_local_copy
		local d
		for d in $WB_DELAYS; do
			wan_rgw "$d" >>"$WORK/logs/wb-proxy.log" 2>&1 || die "the WAN proxy did not start"
			for run in $(seq 1 "$WB_RUNS"); do
				wb_cairn_restore "$d"; log "wan: $d ms: cairn restore $T_WALL s"
				wb_local "$d"; log "wan: $d ms: cairn local restore $T_WALL s"
				wb_restic_restore "$d"
				wb_rclone "$d"; log "wan: $d ms: rclone copy $T_WALL s"
				wb_serve "$d"; log "wan: $d ms: serve read by qemu-img $T_WALL s (run $run)"
			done
			wan_stop
		done
		wb_record load1 "$(awk '{ print $1 }' /proc/loadavg)"
		wb_record ceph "$(ceph --version | awk '{ print $3 }')"
	) || die "WAN section failed (logs in $WORK/logs)"
	local k v
	while read -r k v; do WB_ALL[$k]="${WB_ALL[$k]:+${WB_ALL[$k]} }$v"; done <"$WORK/wan/results"
	# every figure measured WB_RUNS times: times by their median, requests
	# and memory by their worst
	for k in "${!WB_ALL[@]}"; do
		case $k in
		*rss* | *gets*) WB[$k]=$(tr ' ' '\n' <<<"${WB_ALL[$k]}" | sort -n | tail -n 1) ;;
		*) WB[$k]=$(tr ' ' '\n' <<<"${WB_ALL[$k]}" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }') ;;
		esac
	done
}

# wb_ratio A B: A / B with two decimals
wb_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }
kib_mib() { echo $(($1 / 1024)); }
wb_max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b) ? a : b }'; }
# wb_verdict VALUE OP LIMIT: PASS or MISS
wb_verdict() {
	awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN { ok = (op == "<=") ? v <= l : v >= l; print ok ? "PASS" : "MISS" }'
}

wan_report() {
	local d gib ref r_ref r_restic restic_sync r_serve gets worst_ref=0 worst_restic=1e9 worst_serve=1e9 worst_gets=0 worst_rss=0
	gib=$(awk -v b="$WB_IMG_BYTES" 'BEGIN { printf "%.4f", b / 1073741824 }')
	echo "<!-- wan-bench begin -->"
	echo "## Restore from S3 across a WAN"
	echo
	[ "$WAN_QUICK" = 1 ] && echo "**QUICK MODE (CAIRN_BENCH_QUICK=1): a smoke test on a small image ($WB_IMG_SIZE, delays: $WB_DELAYS ms), not a measurement; re-run without it.**" && echo
	echo "Measured $(date -u '+%Y-%m-%d %H:%M') UTC by \`tests/bench/wan.sh\` (\`BENCH_ONLY=wan make bench\`); $(nproc) cores shared by the clients, the proxy and the gateway; load average ${WB[load0]} when it started, ${WB[load1]} when it ended."
	echo
	echo "The disk: a $WB_IMG_SIZE raw image holding ext4 made with \`mkfs.ext4 -d\` from $WB_DATA_MB MB of this machine's /usr and a file of $WB_RANDOM_MB MiB of random data. Its cairn repository (default chunk and pack size, aes-256-gcm, \`cairn backup --connections $WB_CONNS\` straight to the gateway in $(secs "${WB[cairn_backup]}") s) holds $(mib "${WB[repo_bytes]}") MiB in ${WB[repo_files]} objects; the restic repository of the same image (\`restic backup --compression auto\`, $(secs "${WB[restic_backup]}") s) sits in the same bucket. The gateway is a single-node Ceph ${WB[ceph]} RGW on 127.0.0.1 (\`tests/integration/rgw.sh\`)."
	echo
	echo "The WAN is the project's own delaying TCP proxy (\`tests/tools/wanproxy.c\`; this kernel has no netem) in front of the gateway: every byte is delivered D ms after it arrived, in each direction, so a request costs 2 x D more and a new connection one round trip more (the handshake), while throughput is not limited. Each measurement runs $WB_RUNS times, the clients in turn, and the tables give the median time (GETs and peak RSS: the largest of the runs). Every client goes through it with $WB_CONNS connections: \`cairn restore --connections $WB_CONNS\`; \`restic restore\` with \`-o s3.connections=$WB_CONNS\` and a fresh cache (a new host); \`rclone copy --transfers $WB_CONNS\` of cairn's repository objects to a local directory (the bulk-transfer reference); \`cairn serve --connections $WB_CONNS\` read end to end by \`qemu-img convert\` over NBD. cairn restore from a local copy of the repository (fetched once beforehand; warm page cache) runs at every delay right after the restore from S3, so that both meet the same state of this machine's disk, whose durable writes vary from run to run; the reference of each row is its own. cairn's restores return once the disk is durable (O_DIRECT writes, fsync); restic's restore leaves its writes in the page cache, so \`sync\` of the restored file is timed after it as well and shown beside it (restic + sync: the same work); the target is judged on restic's restore alone, as the issue states it. Every restored image is compared with cmp. GETs come from the gateway's access log, per GiB of disk restored ($gib GiB); peak RSS of cairn restore by \`/usr/bin/time\`."
	echo
	echo "| one-way delay | cairn restore s | restic restore s | restic + sync s | rclone copy s | cairn local restore s | serve + qemu-img s | cairn / max(rclone, local) | restic / cairn | (restic + sync) / cairn | serve / restore throughput | cairn GETs per GiB | cairn peak RSS MiB |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for d in $WB_DELAYS; do
		ref=$(wb_max "${WB[rclone_$d]}" "${WB[local_$d]}")
		r_ref=$(wb_ratio "${WB[cairn_$d]}" "$ref")
		r_restic=$(wb_ratio "${WB[restic_$d]}" "${WB[cairn_$d]}")
		restic_sync=$(awk -v a="${WB[restic_$d]}" -v b="${WB[restic_sync_$d]}" 'BEGIN { print a + b }')
		r_serve=$(wb_ratio "${WB[cairn_$d]}" "${WB[serve_$d]}")
		gets=$(awk -v g="${WB[cairn_gets_$d]}" -v s="$gib" 'BEGIN { printf "%.0f", g / s }')
		echo "| $d ms | $(secs "${WB[cairn_$d]}") | $(secs "${WB[restic_$d]}") | $(secs "$restic_sync") | $(secs "${WB[rclone_$d]}") | $(secs "${WB[local_$d]}") | $(secs "${WB[serve_$d]}") | $r_ref | $r_restic | $(wb_ratio "$restic_sync" "${WB[cairn_$d]}") | $r_serve | $gets | $(kib_mib "${WB[cairn_rss_$d]}") |"
		worst_ref=$(wb_max "$worst_ref" "$r_ref")
		worst_restic=$(awk -v a="$worst_restic" -v b="$r_restic" 'BEGIN { print (b < a) ? b : a }')
		worst_serve=$(awk -v a="$worst_serve" -v b="$r_serve" 'BEGIN { print (b < a) ? b : a }')
		worst_gets=$(wb_max "$worst_gets" "$gets")
		worst_rss=$(wb_max "$worst_rss" "$(kib_mib "${WB[cairn_rss_$d]}")")
	done
	echo
	echo "| target (every delay up to 50 ms) | worst measured | required | result |"
	echo "|---|---:|---:|---|"
	echo "| cairn restore from S3 / max(rclone download, local restore) | $worst_ref | ≤ 1.5 | $(wb_verdict "$worst_ref" "<=" 1.5) |"
	echo "| restic restore / cairn restore (same gateway) | $worst_restic | ≥ 3 | $(wb_verdict "$worst_restic" ">=" 3) |"
	echo "| serve read end to end / restore throughput | $worst_serve | ≥ 0.7 | $(wb_verdict "$worst_serve" ">=" 0.7) |"
	echo "| GETs per GiB restored | $worst_gets | ≤ 100 | $(wb_verdict "$worst_gets" "<=" 100) |"
	echo "| cairn restore peak RSS MiB | $worst_rss | ≤ 512 | $(wb_verdict "$worst_rss" "<=" 512) |"
	echo
	printf 'GET requests of each client through the proxy (listings included):'
	for d in $WB_DELAYS; do
		printf ' %s ms: cairn restore %s (%s of pack data), restic %s, rclone %s, serve %s;' "$d" \
			"${WB[cairn_gets_$d]}" "${WB[cairn_data_gets_$d]}" "${WB[restic_gets_$d]}" \
			"${WB[rclone_gets_$d]}" "${WB[serve_gets_$d]}"
	done
	echo " Every run (s, in order), cairn restore / local restore / serve: $(for d in $WB_DELAYS; do printf '%s ms: %s / %s / %s; ' "$d" "${WB_ALL[cairn_$d]}" "${WB_ALL[local_$d]}" "${WB_ALL[serve_$d]}"; done)"
	echo " peak RSS of restic restore $(for d in $WB_DELAYS; do printf '%s ' "$(kib_mib "${WB[restic_rss_$d]}")"; done)MiB, of cairn's local restore $(for d in $WB_DELAYS; do printf '%s ' "$(kib_mib "${WB[local_rss_$d]}")"; done)MiB."
	echo "<!-- wan-bench end -->"
}

wan_bench_main() {
	local t
	for t in rclone restic qemu-img nbdkit; do
		command -v "$t" >/dev/null || die "$t is needed for the WAN section"
	done
	WB_IMG=$(fs_image "$WB_IMG_SIZE" "$WB_DATA_MB" "$WB_RANDOM_MB")
	WB_IMG_BYTES=$(stat -c %s "$WB_IMG")
	rm -rf "$WORK/wan"
	mkdir -p "$WORK/wan"
	wan_bench_run
	rm -rf "$WORK/wan"
}
